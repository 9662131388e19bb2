/** The agent's flags: --iptables as dockerd spells it (its conflict with --icc=false, how status shows it), the DNS flags, key rotation, advertise addresses. */
import t from 'tap'
import { buildCli, firewallText } from '../../src/cli/main.js'
import { advertiseAddrs, dnsTtl, iptablesEnabled, keyRotationMs } from '../../src/agent/main.js'

/** The options `ferry agent ARGS` hands to runAgent (the action is replaced: nothing starts). */
async function agentOpts (args: string[]): Promise<Record<string, unknown>> {
  const quiet = { writeErr: () => {}, writeOut: () => {} }
  const program = buildCli().exitOverride().configureOutput(quiet)
  const agent = program.commands.find((c) => c.name() === 'agent')!.exitOverride().configureOutput(quiet)
  let got: Record<string, unknown> = {}
  agent.action((opts: Record<string, unknown>) => { got = opts })
  await program.parseAsync(['node', 'ferry', 'agent', ...args])
  return got
}

t.test('--iptables is a dockerd-style boolean, on by default', async (t) => {
  t.equal((await agentOpts([])).iptables, undefined, 'absent: the default (on)')
  t.equal((await agentOpts(['--iptables'])).iptables, true)
  t.equal((await agentOpts(['--iptables=true'])).iptables, true)
  t.equal((await agentOpts(['--iptables=false'])).iptables, false)
  t.equal((await agentOpts(['--iptables', 'false'])).iptables, false)
  t.equal((await agentOpts(['--iptables=0'])).iptables, false)
  await t.rejects(agentOpts(['--iptables=maybe']), /"maybe" is not a boolean/)
})

t.test('--iptables=false cannot honour --icc=false, as dockerd says', async (t) => {
  t.equal(iptablesEnabled({}), true)
  t.equal(iptablesEnabled({ iptables: true, icc: false }), true)
  t.equal(iptablesEnabled({ iptables: false }), false)
  t.equal(iptablesEnabled({ iptables: false, icc: true }), false)
  t.throws(() => iptablesEnabled({ iptables: false, icc: false }), { code: 'INVALID_OPTION', message: /--icc=false .* --iptables=false .*: set --icc or --iptables to true/ })
})

t.test('ferry status shows the firewall', async (t) => {
  t.match(firewallText({ iptables: false }), /^disabled \(--iptables=false\)/)
  t.match(firewallText({ iptables: true }), /^iptables/)
  t.equal(firewallText(undefined), '-')
})

t.test('--dns-ttl: whole seconds from 0 to 3600, else a clear error', async (t) => {
  t.equal((await agentOpts(['--dns-ttl', '5'])).dnsTtl, '5', 'passed on as given, checked by the agent')
  t.equal(dnsTtl(undefined), undefined, 'absent: the server\'s default')
  t.equal(dnsTtl('0'), 0)
  t.equal(dnsTtl('5'), 5)
  t.equal(dnsTtl('3600'), 3600)
  for (const bad of ['3601', '-1', '1.5', '', 'ten', '1e3', '99999999999']) {
    t.throws(() => dnsTtl(bad), { code: 'INVALID_OPTION', message: /--dns-ttl ".*" must be a whole number of seconds from 0 to 3600/ }, bad)
  }
})

t.test('--dns-engine-clients and --dns-search: repeatable, passed on as given', async (t) => {
  const o = await agentOpts(['--dns-engine-clients', '172.17.0.0/16', '--dns-engine-clients', 'fd00:17::/64', '--dns-search', 'corp.example'])
  t.same(o.dnsEngineClients, ['172.17.0.0/16', 'fd00:17::/64'])
  t.same(o.dnsSearch, ['corp.example'])
  t.same((await agentOpts([])).dnsEngineClients, [], 'none by default: the engine\'s networks are strangers')
})

t.test('--dns-udp: auto (the default), batch or dgram; anything else refused', async (t) => {
  t.equal((await agentOpts([])).dnsUdp, 'auto')
  t.equal((await agentOpts(['--dns-udp', 'batch'])).dnsUdp, 'batch')
  t.equal((await agentOpts(['--dns-udp', 'dgram'])).dnsUdp, 'dgram')
  await t.rejects(agentOpts(['--dns-udp', 'fast']), /argument 'fast' is invalid. Allowed choices are auto, batch, dgram/)
})

t.test('--key-rotation-interval: whole seconds, at least a minute', async (t) => {
  t.equal((await agentOpts(['--key-rotation-interval', '86400'])).keyRotationInterval, 86400)
  t.equal((await agentOpts([])).keyRotationInterval, undefined, 'absent: no periodic rotation')
  t.equal(keyRotationMs(3600), 3_600_000)
  t.throws(() => keyRotationMs(59), { code: 'INVALID_OPTION', message: /from 60/ })
  t.throws(() => keyRotationMs(400 * 86400), { code: 'INVALID_OPTION' })
})

t.test('--wireguard-endpoint is taken as given, checked when the agent starts', async (t) => {
  t.equal((await agentOpts(['--wireguard-endpoint', '203.0.113.7:51820'])).wireguardEndpoint, '203.0.113.7:51820')
})

t.test('--advertise-addr: once, or twice for a dual-stack host (one IPv4, one IPv6, the first its primary); two of one family refused', async (t) => {
  t.same((await agentOpts(['--advertise-addr', '192.0.2.1'])).advertiseAddr, ['192.0.2.1'])
  t.same((await agentOpts(['--advertise-addr', '192.0.2.1', '--advertise-addr', 'fd00::1'])).advertiseAddr, ['192.0.2.1', 'fd00::1'], 'repeatable, in order')
  t.same(advertiseAddrs('192.0.2.1'), ['192.0.2.1'])
  t.same(advertiseAddrs(['fd00::1', '192.0.2.1']), ['fd00::1', '192.0.2.1'], 'IPv6 first: IPv6 is the primary')
  t.throws(() => advertiseAddrs(['192.0.2.1', '192.0.2.2']), { code: 'INVALID_OPTION', message: '--advertise-addr is given two IPv4 addresses (192.0.2.1, 192.0.2.2): a host advertises at most one address per family, one IPv4 and one IPv6' })
  t.throws(() => advertiseAddrs(['fd00::1', 'fd00::2']), { code: 'INVALID_OPTION', message: /two IPv6 addresses/ })
  t.throws(() => advertiseAddrs(['192.0.2.1', 'fd00::1', '192.0.2.3']), { code: 'INVALID_OPTION', message: /given 3 times/ })
  t.throws(() => advertiseAddrs(['192.0.2.1', 'nope']), { code: 'INVALID_OPTION', message: '--advertise-addr nope is not an IP address' })
  t.throws(() => advertiseAddrs([]), { code: 'INVALID_OPTION', message: /--cluster needs --advertise-addr IP/ })
  t.throws(() => advertiseAddrs(undefined), { code: 'INVALID_OPTION' })
})
