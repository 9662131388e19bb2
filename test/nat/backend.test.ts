/**
 * Choosing the firewall backend (src/nat/backend.ts) and opening the agent's, the host_ipv4 option
 * (src/bridge/options.ts) and its way into the firewall's network
 * (src/driver/network.ts natNetwork).
 */
import t from 'tap'
import { chooseBackend, openAgentFirewall, openFirewall, parseBackend, probeNftables } from '../../src/nat/backend.js'
import { pino } from 'pino'
import { DisabledFirewall } from '../../src/nat/disabled.js'
import { parseNetworkOptions } from '../../src/bridge/options.js'
import { natNetwork } from '../../src/driver/network.js'
import { NftablesDriver } from '../../src/nat/nftables.js'
import { IptablesDriver } from '../../src/nat/iptables.js'
import type { ExecOptions, ExecResult } from '../../src/kernel/exec.js'
import type { NetworkRecord } from '../../src/model/types.js'

t.test('chooseBackend', async (t) => {
  const works = async (): Promise<string | undefined> => undefined
  const broken = async (): Promise<string | undefined> => 'the nft program cannot run (ENOENT)'
  t.match(await chooseBackend(undefined, works), { backend: 'nftables', reason: /^default/ })
  t.match(await chooseBackend(undefined, broken), { backend: 'iptables', reason: /nftables unavailable \(the nft program cannot run/ })
  t.match(await chooseBackend('iptables', broken), { backend: 'iptables', reason: '--firewall-backend iptables' })
  t.match(await chooseBackend('nftables', works), { backend: 'nftables', reason: '--firewall-backend nftables' })
  await t.rejects(chooseBackend('nftables', broken), { code: 'INVALID_OPTION', message: /cannot work on this host: the nft program cannot run/ })
  t.equal(parseBackend(undefined), undefined)
  t.equal(parseBackend('iptables'), 'iptables')
  t.throws(() => parseBackend('ipfw'), { code: 'INVALID_OPTION' })
})

t.test('probeNftables sends a checked (never committed) transaction', async (t) => {
  const calls: Array<{ argv: readonly string[], input?: string }> = []
  const run = async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    calls.push({ argv, input: opts.input })
    return { stdout: '', stderr: 'Error: Could not process rule: Operation not supported\n', code: 1 }
  }
  t.match(await probeNftables(run), /the kernel refused an inet table with a nat hook \(Error: Could not process rule: Operation not supported\)/)
  t.same(calls[0]?.argv, ['nft', '-c', '-f', '-'], '-c: check only')
  t.match(calls[0]?.input, /add table inet ferry_probe/)
  const missing = async (): Promise<ExecResult> => { throw new Error('spawn nft ENOENT') }
  t.match(await probeNftables(missing), /the nft program cannot run/)
})

t.test('openFirewall removes the other backend only where its tool exists', async (t) => {
  const calls: string[] = []
  const run = (present: string[]) => async (argv: readonly string[]): Promise<ExecResult> => {
    calls.push(argv.join(' '))
    if (argv[1] === '--version') return { stdout: '', stderr: '', code: present.includes(argv[0]!) ? 0 : 127 }
    if (argv[0] === 'nft' && argv[1] === 'list') return { stdout: '', stderr: 'Error: No such file or directory', code: 1 }
    return { stdout: '', stderr: '', code: 0 }
  }
  const nft = openFirewall('nftables', { run: run([]) })
  t.ok(nft.driver instanceof NftablesDriver)
  await nft.removeOther()
  t.same(calls, ['iptables-save --version'], 'no iptables on this host: nothing else runs')
  calls.length = 0
  const ipt = openFirewall('iptables', { run: run(['nft']) })
  t.ok(ipt.driver instanceof IptablesDriver)
  await ipt.removeOther()
  t.same(calls, ['nft --version', 'nft list table inet ferry', 'iptables -w 5 -t filter -S FORWARD', 'ip6tables -w 5 -t filter -S FORWARD'], 'the nftables table and the FORWARD accepts are looked for (and absent here)')
})

t.test('openAgentFirewall: disabled with its warnings, or the chosen backend logged, the other removed', async (t) => {
  const logged: Array<{ msg: string, backend?: string }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line) as { msg: string }) } })
  const net = { id: 'n1', bridge: 'fy-n1', icc: false } as unknown as NetworkRecord
  const off = await openAgentFirewall({ iptables: false, log, networks: [net], endpoints: [], run: async () => { throw new Error('no program may run') } })
  t.ok(off.driver instanceof DisabledFirewall && off.limits === off.driver, 'the disabled firewall, which is also the limits')
  t.equal(off.choice, undefined, 'no backend')
  t.match(logged.map((l) => l.msg), [/iptables is off/, /enable_icc=false/], 'what the store holds that it no longer provides')
  off.close()
  logged.length = 0
  const calls: string[] = []
  const run = async (argv: readonly string[]): Promise<ExecResult> => {
    calls.push(argv.join(' '))
    return { stdout: '', stderr: '', code: argv[1] === '--version' ? 127 : 0 }
  }
  const ipt = await openAgentFirewall({ backend: 'iptables', log, networks: [], endpoints: [], run })
  t.ok(ipt.driver instanceof IptablesDriver)
  t.equal(ipt.limits, undefined, 'no limits')
  t.same(ipt.choice, { backend: 'iptables', reason: '--firewall-backend iptables' })
  t.match(logged, [{ msg: 'firewall backend', backend: 'iptables' }], 'the choice is logged')
  t.same(calls, ['nft --version'], 'the other backend is looked for (absent here)')
  ipt.close()
  const nft = await openAgentFirewall({ log, networks: [], endpoints: [], run, probe: async () => undefined })
  t.match(nft.choice, { backend: 'nftables', reason: /^default/ }, 'the default when nftables works')
  nft.close()
})

t.test('com.docker.network.host_ipv4', async (t) => {
  t.equal(parseNetworkOptions({ 'com.docker.network.host_ipv4': '192.0.2.7' }, false).outboundAddr, '192.0.2.7')
  t.throws(() => parseNetworkOptions({ 'com.docker.network.host_ipv4': 'eth0' }, false), { code: 'INVALID_OPTION' })
  const rec = { id: 'n', bridge: 'fy-n', subnet: '10.1.0.0/24', gateway: '10.1.0.1', icc: true, masquerade: true, internal: false, options: {} } as unknown as NetworkRecord
  t.equal(natNetwork(rec).outboundAddr, undefined)
  t.equal(natNetwork({ ...rec, options: { 'com.docker.network.host_ipv4': '192.0.2.7' } }).outboundAddr, '192.0.2.7')
})
