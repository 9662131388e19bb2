/**
 * The IptablesDriver's bookkeeping against a fake iptables (no root, no kernel):
 * a tiny emulator of `iptables-restore --noflush` and `iptables-save` over ferry's
 * chains, fake sysctl and a recording conntrack. The real kernel is exercised by
 * test/kernel/iptables.test.ts.
 */
import t from 'tap'
import type { ExecOptions, ExecResult } from '../../src/kernel/exec.js'
import { FerryError } from '../../src/errors/errors.js'
import { IptablesDriver, type SysctlAccess } from '../../src/nat/iptables.js'
import { parseConntrack } from '../../src/kernel/conntrack.js'
import type { NatEndpoint, NatNetwork } from '../../src/nat/types.js'

/** Chains per table, as iptables-restore would leave them (built-ins hold only what ferry put there). */
class FakeIptables {
  tables = new Map<string, Map<string, string[]>>()
  calls: string[][] = []
  failNext = 0
  conntrackOut = ''
  /** ip6tables: the same emulator, for the IPv6 batches. */
  v6: FakeIptables | undefined

  constructor (family: 4 | 6 = 4) {
    if (family === 4) this.v6 = new FakeIptables(6)
  }

  run = async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    this.calls.push([...argv])
    const [cmd] = argv
    if (cmd === 'ip6tables-save' && this.v6 !== undefined) return { stdout: this.v6.save(), stderr: '', code: 0 }
    if (cmd === 'ip6tables-restore' && this.v6 !== undefined) { this.v6.restore(opts.input ?? ''); return { stdout: '', stderr: '', code: 0 } }
    if (cmd === 'iptables-save') return { stdout: this.save(), stderr: '', code: 0 }
    if (cmd === 'conntrack') return argv.includes('-L') ? { stdout: this.conntrackOut, stderr: '', code: 0 } : { stdout: '', stderr: '0 flow entries have been deleted.', code: 1 }
    if (cmd !== 'iptables-restore') throw new Error(`unexpected ${argv.join(' ')}`)
    if (this.failNext > 0) { this.failNext--; throw new FerryError('KERNEL', 'iptables-restore failed (exit 1): line 2 failed') }
    this.restore(opts.input ?? '')
    return { stdout: '', stderr: '', code: 0 }
  }

  chain (table: string, name: string): string[] {
    let tb = this.tables.get(table)
    if (tb === undefined) { tb = new Map(); this.tables.set(table, tb) }
    let c = tb.get(name)
    if (c === undefined) { c = []; tb.set(name, c) }
    return c
  }

  restore (text: string): void {
    let table = ''
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) { table = line.slice(1); continue }
      if (line === '' || line === 'COMMIT') continue
      if (line.startsWith(':')) { this.chain(table, line.slice(1).split(' ')[0]!).length = 0; continue }
      const [op, name, ...rest] = line.split(' ')
      const rule = rest.join(' ')
      if (op === '-X') { this.tables.get(table)?.delete(name!); continue }
      const c = this.chain(table, name!)
      if (op === '-A') c.push(rule)
      else if (op === '-I') c.unshift(rest.slice(1).join(' '))
      else if (op === '-D') {
        const i = c.indexOf(rule)
        if (i < 0) throw new FerryError('KERNEL', `line failed: -D ${name} ${rule}`)
        c.splice(i, 1)
      }
    }
  }

  save (): string {
    const out: string[] = []
    for (const [table, chains] of this.tables) {
      out.push(`*${table}`)
      for (const name of chains.keys()) out.push(`:${name} ${name.startsWith('FERRY-') ? '-' : 'ACCEPT'} [0:0]`)
      for (const [name, rules] of chains) for (const r of rules) out.push(`-A ${name} ${r}`)
      out.push('COMMIT')
    }
    return out.join('\n') + '\n'
  }

  count (cmd: string): number {
    return this.calls.filter((c) => c[0] === cmd).length
  }
}

class FakeSysctl implements SysctlAccess {
  values = new Map<string, string>()
  async read (key: readonly string[]): Promise<string> {
    const v = this.values.get(key.join('.'))
    if (v === undefined) throw new FerryError('KERNEL', `no such key ${key.join('.')}`)
    return v
  }

  async write (key: readonly string[], value: string): Promise<void> {
    if (!this.values.has(key.join('.'))) throw new FerryError('KERNEL', `no such key ${key.join('.')}`)
    this.values.set(key.join('.'), value)
  }
}

const n1: NatNetwork = { id: 'n1', bridge: 'fy-n1', subnet: '10.20.0.0/24', gateway: '10.20.0.1', icc: true, masquerade: true, internal: false }
const e1: NatEndpoint = {
  id: 'e1',
  networkId: 'n1',
  address: '10.20.0.2',
  ports: [{ proto: 'udp', hostIp: '', hostPort: 5353, hostPortEnd: 5353, containerIp: '10.20.0.2', containerPort: 53, containerPortEnd: 53 }],
}

function setup (): { fake: FakeIptables, sysctl: FakeSysctl, d: IptablesDriver } {
  const fake = new FakeIptables()
  const sysctl = new FakeSysctl()
  sysctl.values.set('net.ipv4.conf.fy-n1.route_localnet', '0')
  const d = new IptablesDriver({ run: fake.run, sysctl })
  return { fake, sysctl, d }
}

t.test('the first change reads the kernel, later ones only write', async (t) => {
  const { fake, d } = setup()
  await d.addNetwork(n1)
  t.equal(fake.count('iptables-save'), 1)
  await d.setEndpoint(e1)
  await d.removeEndpoint(e1.id)
  t.equal(fake.count('iptables-save'), 1, 'no more reads')
  t.equal(fake.count('iptables-restore'), 3)
  t.same(fake.calls.find((c) => c[0] === 'iptables-restore'), ['iptables-restore', '--noflush', '-w', '5'], 'always -w')
  t.equal(d.stats().reconciled, false)
})

t.test('route_localnet follows loopback publications; a missing bridge is skipped', async (t) => {
  const { fake, sysctl, d } = setup()
  await d.addNetwork(n1)
  await d.setEndpoint(e1)
  t.equal(sysctl.values.get('net.ipv4.conf.fy-n1.route_localnet'), '1')
  await d.removeEndpoint(e1.id)
  t.equal(sysctl.values.get('net.ipv4.conf.fy-n1.route_localnet'), '0')
  const n2 = { ...n1, id: 'n2', bridge: 'fy-gone', subnet: '10.21.0.0/24', gateway: '10.21.0.1' }
  await d.addNetwork(n2)
  await d.setEndpoint({ ...e1, id: 'e2', networkId: 'n2', address: '10.21.0.2', ports: [{ ...e1.ports[0]!, hostPort: 5354, hostPortEnd: 5354, containerIp: '10.21.0.2' }] })
  t.match(fake.save(), 'ferry:ep e2', 'no error for a bridge that does not exist (yet): the endpoint is programmed')
  t.notOk(sysctl.values.has('net.ipv4.conf.fy-gone.route_localnet'), 'and nothing written for the missing bridge')
})

t.test('UDP changes flush conntrack in one command per container', async (t) => {
  const { fake, d } = setup()
  await d.addNetwork(n1)
  fake.conntrackOut = [
    'udp      17 29 src=192.0.2.9 dst=198.51.100.1 sport=41000 dport=5353 [UNREPLIED] src=198.51.100.1 dst=192.0.2.9 sport=5353 dport=41000 mark=0 use=1',
    'udp      17 29 src=192.0.2.9 dst=198.51.100.1 sport=41001 dport=5353 src=10.20.0.2 dst=192.0.2.9 sport=53 dport=41001 mark=0 use=1',
    'udp      17 29 src=192.0.2.9 dst=198.51.100.1 sport=41002 dport=6000 [UNREPLIED] src=198.51.100.1 dst=192.0.2.9 sport=6000 dport=41002 mark=0 use=1',
  ].join('\n')
  await d.setEndpoint(e1)
  const cts = fake.calls.filter((c) => c[0] === 'conntrack').map((c) => c.slice(1).join(' '))
  t.same(cts, ['-L -p udp', '-D -p udp -s 192.0.2.9 -d 198.51.100.1 --sport 41000 --dport 5353'], 'only the stale flow to the new port')
  fake.calls = []
  await d.removeEndpoint(e1.id)
  t.same(fake.calls.filter((c) => c[0] === 'conntrack').map((c) => c.slice(1).join(' ')), ['-D -p udp --dst-nat 10.20.0.2'])
  t.same(parseConntrack(fake.conntrackOut).map((f) => f.replySrc), ['198.51.100.1', '10.20.0.2', '198.51.100.1'])
})

t.test('a refused batch falls back to reconcile; when that fails too, the change is undone', async (t) => {
  const { fake, d } = setup()
  await d.addNetwork(n1)
  fake.failNext = 1
  await d.setEndpoint(e1)
  t.equal(d.stats().reconciled, true, 'reconciled after the refused batch')
  t.match(fake.save(), 'ferry:ep e1')

  fake.failNext = 2
  const e2 = { ...e1, id: 'e2', address: '10.20.0.3', ports: [{ ...e1.ports[0]!, hostPort: 6000, hostPortEnd: 6000, containerIp: '10.20.0.3' }] }
  await t.rejects(d.setEndpoint(e2), { code: 'KERNEL' })
  t.same(d.state().endpoints.map((e) => e.id), ['e1'], 'the desired state is back to before')
  const saves = fake.count('iptables-save')
  await d.setEndpoint(e2)
  t.equal(fake.count('iptables-save'), saves + 1, 'the next change starts with a reconcile')
  t.match(fake.save(), 'ferry:ep e2')
})

t.test('input is validated before anything runs', async (t) => {
  const { fake, d } = setup()
  await t.rejects(d.addNetwork({ ...n1, bridge: 'x\n-A INPUT -j ACCEPT' }), { code: 'INVALID_REQUEST' })
  await t.rejects(d.setEndpoint({ ...e1, networkId: 'nope' }), { code: 'NETWORK_NOT_FOUND' })
  await t.rejects(d.setEndpoint({ ...e1, address: '10.20.0.300' }), { code: 'INVALID_REQUEST' })
  t.equal(fake.calls.length, 0)
  await d.removeEndpoint('unknown')
  await d.removeNetwork('unknown')
  t.equal(fake.calls.length, 0, 'removing what is not there is fine: nothing runs')
  t.same(d.state(), { networks: [], endpoints: [], links: [] }, 'and nothing is desired')
})

t.test('reconcile adopts a state and drops what is no longer in it', async (t) => {
  const { fake, d } = setup()
  t.equal(await d.reconcile({ networks: [n1], endpoints: [e1] }), true, 'a fresh kernel needs everything')
  t.equal(await d.reconcile({ networks: [n1], endpoints: [e1] }), false)
  t.equal(await d.reconcile({ networks: [n1], endpoints: [] }), true)
  t.notMatch(fake.save(), 'ferry:ep')
  t.equal(await d.reconcile({ networks: [], endpoints: [{ ...e1, networkId: 'elsewhere' }] }), true, 'an endpoint without its network is ignored')
  t.notMatch(fake.save(), 'fy-n1')
  await d.teardown()
  t.notMatch(fake.save(), /FERRY/)
})

t.test('both families: one ip6tables-restore batch beside the iptables one, IPv6 rules in it', async (t) => {
  const { fake, d } = setup()
  const dual: NatNetwork = { ...n1, subnet6: 'fd00:20::/64', gateway6: 'fd00:20::1' }
  await d.addNetwork(dual)
  t.equal(fake.count('ip6tables-save'), 1)
  await d.setEndpoint({ ...e1, address6: 'fd00:20::2', ports: [...e1.ports, { ...e1.ports[0]!, containerIp: 'fd00:20::2' }] })
  t.ok(fake.v6!.tables.get('nat')?.get('FERRY-POSTROUTING')?.some((r) => r.startsWith('-s fd00:20::/64 ! -o fy-n1')), 'IPv6 masquerade in ip6tables')
  t.ok([...fake.v6!.tables.get('nat')!.values()].flat().some((r) => r.includes('--to-destination [fd00:20::2]:53')), 'IPv6 DNAT in ip6tables')
  t.notOk([...fake.tables.get('nat')!.values()].flat().some((r) => r.includes('fd00')), 'nothing IPv6 in iptables')
  await d.removeEndpoint(e1.id)
  t.notOk([...fake.v6!.tables.get('nat')!.values()].flat().some((r) => r.includes('fd00:20::2')), 'removed from ip6tables')
  t.equal(fake.count('ip6tables-save'), 1, 'no more reads')
})

t.test('without a usable ip6tables, IPv4 goes on alone until a network needs IPv6', async (t) => {
  const { fake, d } = setup()
  fake.v6 = undefined
  await d.addNetwork(n1)
  await d.setEndpoint(e1)
  t.ok([...fake.tables.get('nat')!.values()].flat().some((r) => r.includes('10.20.0.2:53')), 'IPv4 programmed')
  await t.rejects(d.addNetwork({ ...n1, id: 'n2', bridge: 'fy-n2', subnet: '10.21.0.0/24', gateway: '10.21.0.1', subnet6: 'fd00:21::/64', gateway6: 'fd00:21::1' }), /ip6tables-save/)
})

t.test('teardown is best effort: the IPv6 rules go even when removing the IPv4 ones failed', async (t) => {
  const { fake, d } = setup()
  await d.addNetwork({ ...n1, subnet6: 'fd00:20::/64', gateway6: 'fd00:20::1' })
  t.match(fake.v6!.save(), /FERRY/, 'IPv6 rules in place')
  fake.failNext = 1
  await t.rejects(d.teardown(), { code: 'KERNEL', message: /line 2 failed/ })
  t.notMatch(fake.v6!.save(), /FERRY/, 'ip6tables-restore ran after iptables-restore failed')
  t.match(fake.save(), /FERRY/, 'the IPv4 rules that failed to go are still there')
  await d.teardown()
  t.notMatch(fake.save(), /FERRY/, 'a second teardown removes them')
})
