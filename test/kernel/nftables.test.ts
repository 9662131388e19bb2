/**
 * The real NftablesDriver (dist/nat/nftables.js, build first with `npx tsc -p .`)
 * against the kernel, each subtest in a fresh namespace with no iptables rules
 * (a host where only nftables is in use), through the nsnode harness. Checked
 * against `nft list table inet ferry` in that namespace (the planner's text must
 * be what nft prints), sysctl and conntrack output, plus real traffic between
 * namespaces (test/harness/firewall.ts, shared with the iptables driver's test).
 */
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { link, netns, nsExec, sh } from '../harness/netns.js'
import { REPO_ROOT, nsNode, type NsNode } from '../harness/nsnode.js'
import {
  addBridges, applyMatrix, matrixNetworks, bind, connect, container, dualEndpoint, dualHost, dualNet, endpoint, familyScenario, FAMILIES, isolationMatrix, net,
  routedScenario, serve, udpConntrackScenario, waitListening,
} from '../harness/firewall.js'
import type { NftablesDriver } from '../../src/nat/nftables.js'
import { planTable, sameTable } from '../../src/nat/nft-plan.js'
import { parseNftTable } from '../../src/nat/nft-parse.js'
import type { FirewallDriver, FirewallState, NatEndpoint, NatLink, NatNetwork } from '../../src/nat/types.js'
import { until } from '../harness/until.js'
import { ACCEPT_RULE } from '../../src/nat/iptables-accept.js'

type Driver = NsNode<NftablesDriver>

if (!existsSync(`${REPO_ROOT}dist/nat/nftables.js`)) {
  t.fail('dist/nat/nftables.js is missing: run `npx tsc -p .` (npm test builds first)')
}

const nft = (ns: string, args: string[], input?: string): string => nsExec(ns, ['nft', ...args], { input })
const list = (ns: string): string => nsExec(ns, ['nft', 'list', 'table', 'inet', 'ferry'], { allowFailure: true })
const ruleset = (ns: string): string => nft(ns, ['list', 'ruleset'])
const sysctl = (ns: string, key: string): string => nsExec(ns, ['sysctl', '-n', key]).trim()

/** A namespace like the agent's, without any iptables rule: forwarding on, the bridges present. */
function hostNs (t: Test, bridges: Array<{ name: string, cidr?: string }>): string {
  const ns = netns(t, 'fyn')
  nsExec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  addBridges(ns, bridges)
  return ns
}

async function driver (t: Test, ns: string): Promise<Driver> {
  return nsNode<NftablesDriver>(t, ns, { module: 'dist/nat/nftables.js', factory: 'openNftablesDriver' })
}

/** Someone else's table, with a forward hook. */
function otherTable (ns: string): void {
  nft(ns, ['-f', '-'], 'table inet other {\n chain fw {\n type filter hook forward priority 0; policy accept;\n counter comment "someone else"\n }\n}\n')
}

function expectPlan (t: Test, ns: string, state: FirewallState, msg: string): void {
  const kernel = parseNftTable(list(ns))
  const plan = planTable(state).table
  t.ok(sameTable(kernel, plan), `${msg}: nft list table inet ferry holds exactly the plan`)
  if (!sameTable(kernel, plan)) t.comment(list(ns))
}

/** The elements of one set as nft lists them, sorted. */
function elements (ns: string, set: string): string[] {
  return [...(parseNftTable(list(ns))?.sets.get(set)?.elements ?? [])].sort()
}

t.test('networks and ports: plan round trip, element deltas, reconcile, teardown', async (t) => {
  const nets = matrixNetworks()
  const [n1, n2, n3] = nets
  const ns = hostNs(t, nets.map((n) => ({ name: n.bridge })))
  otherTable(ns)
  const d = await driver(t, ns)
  const applied = await applyMatrix(d, nets, 200)
  const { e1, e3 } = applied
  let state: FirewallState = applied.state
  expectPlan(t, ns, state, 'after setup')
  t.same(elements(ns, 'any_keep'), ['tcp . 20000-20199 : 10.31.0.2'], 'a 200-port range is one interval element')
  t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '1', 'route_localnet on the bridge with loopback publications')
  t.equal(sysctl(ns, `net.ipv4.conf.${n2.bridge}.route_localnet`), '0', 'and not elsewhere')
  t.match(ruleset(ns), 'comment "someone else"', 'other tables untouched')

  await t.test('the user chain is the administrator\'s', async (t) => {
    nft(ns, ['add', 'rule', 'inet', 'ferry', 'user', 'ip', 'saddr', '192.0.2.0/24', 'drop'])
    await d.call('addNetwork', [net(4)])
    await d.call('removeNetwork', [net(4).id])
    t.same(await d.call('userChainRules'), ['ip saddr 192.0.2.0/24 drop'], 'its rule survives changes')
    t.equal(await d.call('reconcile', [state]), false, 'and is not a difference for reconcile')
    nft(ns, ['flush', 'set', 'inet', 'ferry', 'external'])
    t.equal(await d.call('reconcile', [state]), true, 'a rewrite of the table')
    t.same(await d.call('userChainRules'), ['ip saddr 192.0.2.0/24 drop'], 'keeps it too')
  })

  await t.test('incremental: one endpoint adds and removes only its own elements', async (t) => {
    const before = list(ns)
    const e2 = endpoint('e2', n1, 3, [(ip) => bind('udp', '192.0.2.10', 8081, ip, 81)])
    await d.call('setEndpoint', [e2])
    const stats = await d.call('stats')
    t.equal(stats.reconciled, false, 'no reconcile needed')
    t.equal(stats.lines, 1, 'one element: its DNAT')
    t.ok(elements(ns, 'host_port').includes('192.0.2.10 . udp . 8081 : 10.31.0.3 . 81'))
    await d.call('removeEndpoint', [e2.id])
    t.equal(list(ns), before, 'removal restores the previous table')
  })

  await t.test('links are elements of an ICC-off network, counted by reference', async (t) => {
    const link = (id: string): NatLink => ({ id, networkId: n2.id, parentIp: '10.32.0.2', childIp: '10.32.0.3', ports: [{ proto: 'tcp', port: 5432 }] })
    await d.call('allowLink', [link('l1')])
    await d.call('allowLink', [link('l2')])
    t.same(elements(ns, 'link_to'), ['"fy-n2" . 10.32.0.2 . 10.32.0.3 . tcp . 5432'])
    await d.call('removeLink', ['l1'])
    t.same(elements(ns, 'link_to'), ['"fy-n2" . 10.32.0.2 . 10.32.0.3 . tcp . 5432'], 'still needed by l2')
    await d.call('removeLink', ['l2'])
    t.same(elements(ns, 'link_to'), [], 'gone with the last link')
  })

  await t.test('reconcile repairs a flushed ruleset, a deleted table, a deleted element and a flushed chain', async (t) => {
    for (const tamper of [
      ['flush', 'ruleset'],
      ['delete', 'table', 'inet', 'ferry'],
      ['delete', 'element', 'inet', 'ferry', 'any_port', '{ tcp . 8080 }'],
      ['flush', 'chain', 'inet', 'ferry', 'filter-forward'],
    ]) {
      nft(ns, tamper)
      nsExec(ns, ['sysctl', '-qw', `net.ipv4.conf.${n1.bridge}.route_localnet=0`])
      t.equal(await d.call('reconcile', [state]), true, `repaired after ${tamper.join(' ')}`)
      expectPlan(t, ns, state, `after ${tamper.join(' ')}`)
      t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '1', 'route_localnet restored')
      t.equal(await d.call('reconcile', [state]), false, 'a second reconcile finds nothing')
    }
  })

  await t.test('a change on a tampered set falls back to a rewrite', async (t) => {
    nft(ns, ['delete', 'element', 'inet', 'ferry', 'any_port', '{ tcp . 8080 }'])
    const e1b = { ...e1, ports: e1.ports.slice(1) }
    await d.call('setEndpoint', [e1b])
    t.equal((await d.call('stats')).reconciled, true, 'the delete failed, the rewrite took over')
    state = { networks: [n1, n2, n3], endpoints: [e1b, e3] }
    expectPlan(t, ns, state, 'after fallback')
  })

  await t.test('an endpoint of an unknown network is refused; a refused element leaves the table whole', async (t) => {
    await t.rejects(d.call('setEndpoint', [endpoint('ex', net(9), 2, [])]), { code: 'NETWORK_NOT_FOUND' })
    const clash: NatEndpoint = endpoint('ey', n1, 9, [(ip) => bind('tcp', '', 20100, ip, 20100, 10)])
    await t.rejects(d.call('setEndpoint', [clash]), { code: 'KERNEL' }, 'an overlapping range is refused by the kernel')
    expectPlan(t, ns, state, 'after the refused change')
  })

  await t.test('a new driver (agent restart) adopts the table without rewriting it', async (t) => {
    const d2 = await driver(t, ns)
    t.equal(await d2.call('reconcile', [state]), false, 'nothing to repair')
    await d2.close()
  })

  await t.test('teardown', async (t) => {
    // The flush ruleset above took the first rule and the other table.
    nft(ns, ['add', 'rule', 'inet', 'ferry', 'user', 'ip', 'saddr', '192.0.2.0/24', 'drop'])
    otherTable(ns)
    await d.call('teardown')
    t.match(list(ns), /chain user \{\n\s+ip saddr 192\.0\.2\.0\/24 drop\n\s+\}/, 'a non-empty user chain stays')
    t.same([...(parseNftTable(list(ns))?.chains.keys() ?? [])], ['user'], 'and nothing else')
    t.same([...(parseNftTable(list(ns))?.sets.keys() ?? [])], [], 'no set')
    nft(ns, ['flush', 'chain', 'inet', 'ferry', 'user'])
    await d.call('teardown')
    t.notMatch(ruleset(ns), /ferry/, 'nft list ruleset has no trace of ferry')
    t.match(ruleset(ns), 'comment "someone else"', 'the other table stays')
    t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '0')
    await d.call('teardown')
    t.notMatch(ruleset(ns), /ferry/, 'teardown twice is fine: still no trace of ferry')
    t.match(ruleset(ns), 'comment "someone else"', 'and the other table still stays')
  })

  await t.test('teardown when a user rule names one of ferry\'s sets', async (t) => {
    await d.call('reconcile', [state])
    nft(ns, ['add', 'rule', 'inet', 'ferry', 'user', 'iifname', '@external', 'ip', 'saddr', '192.0.2.0/24', 'drop'])
    await d.call('teardown')
    t.same([...(parseNftTable(list(ns))?.chains.keys() ?? [])], ['user'], 'only the user chain')
    t.same(elements(ns, 'external'), [], 'and ferry\'s sets, empty (nft refuses to delete a set in use)')
    nft(ns, ['flush', 'chain', 'inet', 'ferry', 'user'])
    await d.call('teardown')
    t.notMatch(ruleset(ns), /ferry/, 'gone once the user chain is empty')
  })
})

t.test('the periodic reconcile reads the table only after someone else\'s commit (nftables generation)', async (t) => {
  const n1 = net(1)
  const ns = hostNs(t, [{ name: n1.bridge }])
  const d = await driver(t, ns)
  const e1 = endpoint('e1', n1, 2, [(ip) => bind('tcp', '', 8080, ip, 80), (ip) => bind('udp', '', 5353, ip, 53)])
  await d.call('addNetwork', [n1])
  await d.call('setEndpoint', [e1])
  const state: FirewallState = { networks: [n1], endpoints: [e1] }
  const reads = async (): Promise<number> => (await d.call('readStats')).tableReads
  let before = await reads()
  t.equal(await d.call('reconcile', [state]), false, 'nothing to repair')
  t.equal(await reads(), before, 'ferry\'s own transactions only since the table was known: not read')
  const e2 = endpoint('e2', n1, 3, [(ip) => bind('tcp', '', 9090, ip, 90)])
  await d.call('setEndpoint', [e2])
  await d.call('removeEndpoint', [e2.id])
  t.equal(await d.call('reconcile', [state]), false, 'after two more deltas of ferry\'s')
  t.equal(await reads(), before, 'still not read')
  for (const tamper of [
    ['delete', 'element', 'inet', 'ferry', 'any_port', '{ tcp . 8080 }'],
    ['flush', 'table', 'inet', 'ferry'],
    ['delete', 'table', 'inet', 'ferry'],
  ]) {
    nft(ns, tamper)
    before = await reads()
    t.equal(await d.call('reconcile', [state]), true, `repaired after someone else's ${tamper.join(' ')}`)
    t.equal(await reads(), before + 1, 'the table was read')
    expectPlan(t, ns, state, `after ${tamper.join(' ')}`)
    t.equal(await d.call('reconcile', [state]), false, 'the next reconcile finds nothing')
    t.equal(await reads(), before + 1, 'without reading it')
  }
  otherTable(ns)
  before = await reads()
  t.equal(await d.call('reconcile', [state]), false, 'another table\'s commit: nothing of ferry\'s to repair')
  t.equal(await reads(), before + 1, 'but the table was read (the generation is the ruleset\'s, not the table\'s)')
  const { skippedReads } = await d.call('readStats')
  t.ok(skippedReads >= 5, `reconciles that skipped the read: ${skippedReads}`)
})

t.test('the FORWARD accept (iptables-nft) is not read again while nobody else commits, and is put back when someone removes it', async (t) => {
  const n1 = net(1)
  const ns = hostNs(t, [{ name: n1.bridge }])
  nsExec(ns, ['iptables', '-w', '-P', 'FORWARD', 'DROP'])
  const d = await driver(t, ns)
  await d.call('addNetwork', [n1])
  const accepts = (): number => (nsExec(ns, ['iptables', '-w', '-S', 'FORWARD']).match(/ferry: accepted by table inet ferry/g) ?? []).length
  t.equal(accepts(), 1, 'policy DROP: the first change puts the accept')
  const state: FirewallState = { networks: [n1], endpoints: [], revision: 1 }
  const checks = async (): Promise<number> => (await d.call('readStats')).forwardChecks
  t.equal(await d.call('reconcile', [state]), false, 'the accept\'s own commit was not ferry\'s table\'s: one full check, nothing to repair')
  const before = await checks()
  t.equal(await d.call('reconcile', [state]), false, 'nothing committed since')
  t.equal(await checks(), before, 'the FORWARD chain was not read')
  nsExec(ns, ['iptables', '-w', '-D', 'FORWARD', ...ACCEPT_RULE])
  t.equal(accepts(), 0, 'someone else removed it')
  t.equal(await d.call('reconcile', [state]), true, 'the next reconcile repairs it')
  t.equal(accepts(), 1, 'the accept is back')
  nsExec(ns, ['iptables', '-w', '-P', 'FORWARD', 'ACCEPT'])
  t.equal(await d.call('reconcile', [state]), true, 'policy ACCEPT again: noticed')
  t.equal(accepts(), 0, 'and the accept taken away')
  t.equal(await d.call('reconcile', [state]), false)
  const quiet = await checks()
  t.equal(await d.call('reconcile', [state]), false)
  t.equal(await checks(), quiet, 'quiet again')
})

t.test('stale UDP conntrack entries are flushed when a port is published and removed', async (t) => {
  await udpConntrackScenario(t, hostNs, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>)
})


/** A host with network n1 (10.31.0.0/24), a container 10.31.0.2 serving `hello c1` on 80, and an outside namespace. */
async function oneContainerHost (t: Test, n1: NatNetwork): Promise<{ host: string, outside: string }> {
  const host = hostNs(t, [{ name: n1.bridge, cidr: '10.31.0.1/24' }])
  const outside = netns(t, 'fyo')
  link({ ns: host, ifname: 'uplink', cidr: '198.51.100.1/24' }, { ns: outside, ifname: 'eth0', cidr: '198.51.100.2/24' })
  const c1 = container(t, host, n1.bridge, '10.31.0.2/24', '10.31.0.1', 'fyh1')
  serve(c1, 80, 'c1')
  await waitListening(c1, 80)
  return { host, outside }
}

t.test('restore after someone else flushes: nftables events, proved with traffic', async (t) => {
  const n1 = net(1)
  const { host, outside } = await oneContainerHost(t, n1)
  const d = await driver(t, host)
  await d.call('addNetwork', [n1])
  await d.call('setEndpoint', [{ id: 'c1'.padEnd(64, '0'), networkId: n1.id, address: '10.31.0.2', ports: [bind('tcp', '', 8080, '10.31.0.2', 80)] }])
  await d.call('startWatch')
  t.equal(connect(outside, '198.51.100.1', 8080), 'hello c1', 'published')
  let restores = 0
  for (const tamper of [['flush', 'ruleset'], ['delete', 'table', 'inet', 'ferry'], ['flush', 'chain', 'inet', 'ferry', 'nat-prerouting']]) {
    nft(host, tamper)
    // No periodic reconcile runs here: only the watcher can bring the table back.
    await until(`the watcher to rewrite the table after ${tamper.join(' ')}`, async () => (await d.call('watchStats')).restores > restores, { timeoutMs: 2000, everyMs: 20 })
    const after = (await d.call('watchStats')).restores
    t.ok(after > restores, `the watcher rewrote the table after ${tamper.join(' ')}`)
    restores = after
    t.equal(connect(outside, '198.51.100.1', 8080), 'hello c1', `after ${tamper.join(' ')}: the published port answers again`)
    t.ok(sameTable(parseNftTable(list(host)), planTable({ networks: [n1], endpoints: [endpoint('c1', n1, 2, [(ip) => bind('tcp', '', 8080, ip, 80)])] }).table), 'the table is the plan')
  }
  // Each rewrite flushes ferry's chains: those events are its own commit's, recognised by the generation.
  await until('the events of the watcher\'s own rewrites to be recognised', async () => (await d.call('watchStats')).ownEvents > 0, { timeoutMs: 2000, everyMs: 20 })
  t.equal((await d.call('watchStats')).restores, restores, 'and no rewrite followed them')
  await d.call('teardown')
  await new Promise((r) => setTimeout(r, 200))
  t.notMatch(ruleset(host), /ferry/, 'its own teardown is not undone by the watcher')
  await d.call('stopWatch')
})

t.test('a host with no iptables program at all: the default is nftables and everything works', async (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'ferry-noipt-'))
  t.teardown(() => rmSync(bin, { recursive: true, force: true }))
  // Only nft (and sysctl's /proc files, which need no program): no iptables, iptables-save, nor conntrack.
  symlinkSync(sh(['sh', '-c', 'command -v nft']).trim(), join(bin, 'nft'))
  const n1 = net(1)
  const { host, outside } = await oneContainerHost(t, n1)
  const d = await nsNode<FirewallDriver>(t, host, { module: 'dist/nat/backend.js', factory: 'openDefaultFirewall', path: bin })
  await d.call('addNetwork', [n1])
  await d.call('setEndpoint', [{ id: 'c1'.padEnd(64, '0'), networkId: n1.id, address: '10.31.0.2', ports: [bind('udp', '', 5353, '10.31.0.2', 53), bind('tcp', '', 8080, '10.31.0.2', 80)] }])
  t.match(list(host), /table inet ferry/, 'nftables was chosen')
  t.equal(connect(outside, '198.51.100.1', 8080), 'hello c1', 'published port from outside')
  await d.call('removeEndpoint', ['c1'.padEnd(64, '0')])
  t.equal(connect(outside, '198.51.100.1', 8080), '', 'removed (conntrack missing: only logged)')
  await d.call('teardown')
  t.notMatch(ruleset(host), /ferry/, 'nothing left')
})

t.test('switching backends is clean: each removes every trace of the other', async (t) => {
  const n1 = net(1)
  const ns = hostNs(t, [{ name: n1.bridge }])
  nsExec(ns, ['iptables', '-w', '-P', 'FORWARD', 'DROP'])
  const state: FirewallState = { networks: [n1], endpoints: [endpoint('e1', n1, 2, [(ip) => bind('tcp', '', 8080, ip, 80)])] }
  const ipt = await nsNode<FirewallDriver>(t, ns, { module: 'dist/nat/iptables.js', factory: 'openIptablesDriver' })
  await ipt.call('reconcile', [state])
  await ipt.close()
  t.match(nsExec(ns, ['iptables-save']), /FERRY-DNAT/, 'the iptables backend\'s chains')
  const tools = await nsNode<typeof import('../../src/nat/backend.js')>(t, ns, { module: 'dist/nat/backend.js' })
  await tools.call('removeBackend', ['iptables'])
  t.notMatch(nsExec(ns, ['iptables-save']), /ferry/i, 'an agent on nftables removes them all')
  const d = await driver(t, ns)
  await d.call('reconcile', [state])
  await d.close()
  t.match(nsExec(ns, ['iptables', '-w', '-S', 'FORWARD']), /ferry: accepted by table inet ferry/, 'the nftables backend\'s FORWARD accept (policy DROP)')
  await tools.call('removeBackend', ['nftables'])
  t.equal(ruleset(ns).match(/ferry/g), null, 'an agent on iptables removes table inet ferry and the FORWARD accept')
  t.notMatch(nsExec(ns, ['iptables-save']), /ferry/i)
})

// ---------------------------------------------------------------------------
// Both families.

t.test('dual-stack: IPv6 elements round trip, deltas and an idempotent reconcile', async (t) => {
  const n1 = dualNet(1)
  const n2 = dualNet(2, { mode6: 'routed', icc: false, outboundAddr6: '2001:db8::9', clampMss: true })
  const ns = dualHost(t, [1, 2])
  const d = await driver(t, ns)
  await d.call('addNetwork', [n1])
  await d.call('addNetwork', [n2])
  const ports = (off: number) => (f: 4 | 6, ip: string): Array<ReturnType<typeof bind>> => [
    bind('tcp', '', 8080 + off, ip, 80),
    bind('udp', f === 4 ? '192.0.2.10' : '2001:db8::5', 5353 + off, ip, 53),
    bind('tcp', f === 4 ? '0.0.0.0' : '::', 20000 + off, ip, 20000 + off, 100),
    bind('tcp', '', 30000 + off, ip, 22, 1),
    bind('sctp', f === 4 ? '192.0.2.10' : '2001:db8::5', 40000 + off, ip, 40, 5),
  ]
  const e1 = dualEndpoint('e1', n1, 1, 2, ports(0))
  const e2 = dualEndpoint('e2', n2, 2, 2, ports(1000))
  await d.call('setEndpoint', [e1])
  await d.call('setEndpoint', [e2])
  const links = [
    { id: 'l4', networkId: n2.id, parentIp: '10.32.0.2', childIp: '10.32.0.3', ports: [{ proto: 'tcp' as const, port: 5432 }] },
    { id: 'l6', networkId: n2.id, parentIp: 'fd00:32::2', childIp: 'fd00:32::3', ports: [{ proto: 'tcp' as const, port: 5432 }] },
  ]
  for (const l of links) await d.call('allowLink', [l])
  const state: FirewallState = { networks: [n1, n2], endpoints: [e1, e2], links }
  expectPlan(t, ns, state, 'dual-stack')
  t.same(elements(ns, 'any_keep6'), ['tcp . 20000-20099 : fd00:31::2'], 'an IPv6 N:N range is one interval element')
  t.same(elements(ns, 'masq6'), ['fd00:31::/64'], 'only the nat-mode network is masqueraded over IPv6')
  t.same(elements(ns, 'mss_clamp'), ['"fy-n2"'], 'the MSS clamp of an encrypted overlay\'s bridge')
  t.ok(elements(ns, 'routed6').includes('"fy-n2" . fd00:32::2 . tcp . 80'), 'the routed network\'s published port is opened')
  t.equal(await d.call('reconcile', [state]), false, 'a reconcile right after changes nothing')
  t.equal(await d.call('reconcile', [state]), false, 'nor does a second one')
  const before = list(ns)
  const e3 = dualEndpoint('e3', n1, 1, 3, (f, ip) => [bind('tcp', '', 8081, ip, 81)])
  await d.call('setEndpoint', [e3])
  t.equal((await d.call('stats')).lines, 2, 'one element per family')
  t.ok(elements(ns, 'any_port6').includes('tcp . 8081 : fd00:31::3 . 81'))
  await d.call('removeEndpoint', [e3.id])
  t.equal(list(ns), before, 'removal restores the previous table')
  nft(ns, ['flush', 'map', 'inet', 'ferry', 'any_port6'])
  t.equal(await d.call('reconcile', [state]), true, 'a lost IPv6 element is a difference')
  expectPlan(t, ns, state, 'repaired')
  t.equal(await d.call('reconcile', [state]), false, 'and then idempotent')
  await d.call('teardown')
  t.notMatch(ruleset(ns), /ferry/, 'nothing left')
})

for (const f of FAMILIES) {
  t.test(`traffic over IPv${f} on dual-stack networks`, async (t) => {
    await familyScenario(t, f, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>)
  })
}

for (const f of FAMILIES) {
  t.test(`traffic over IPv${f} beside an engine with its defaults (FORWARD policy DROP and a DOCKER-USER jump in iptables and ip6tables)`, async (t) => {
    await familyScenario(t, f, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>, {
      setup: (ns) => {
        for (const tool of ['iptables', 'ip6tables']) {
          nsExec(ns, [tool, '-w', '-P', 'FORWARD', 'DROP'])
          nsExec(ns, [tool, '-w', '-N', 'DOCKER-USER'])
          nsExec(ns, [tool, '-w', '-A', 'FORWARD', '-j', 'DOCKER-USER'])
        }
      },
      blocksBefore: true,
      untouched: (t, ns) => {
        for (const tool of ['iptables', 'ip6tables']) t.match(nsExec(ns, [tool, '-w', '-S', 'FORWARD']), /-P FORWARD DROP\n-A FORWARD -j DOCKER-USER/, `${tool}: the engine's policy and jump untouched`)
      },
    })
  })
}

t.test('IPv6 routed mode', async (t) => {
  await routedScenario(t, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>)
})

t.test('isolation holds the same in both families (netavark#1515)', async (t) => {
  const m = await isolationMatrix(t, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>)
  t.equal(m[4].get('n1c2->n1c3'), true, 'ICC on')
  t.equal(m[4].get('n2c2->n2c3'), false, 'ICC off')
  t.equal(m[4].get('n1c2->n2c2'), false, 'between networks')
  t.equal(m[4].get('n1c2->outside'), true, 'the way out')
  t.equal(m[4].get('n3c2->n3c3'), true, 'inside an internal network')
  t.equal(m[4].get('n3c2->outside'), false, 'internal: no way out')
  t.equal(m[4].get('n4c2->n4c3'), false, 'internal, ICC off')
  t.equal(m[4].get('outside->n1c2'), false, 'unpublished from outside')
})
