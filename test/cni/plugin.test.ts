/**
 * The CNI plugin's logic (src/cni/plugin.ts) without an agent: the result's `dns` (ferry's DNS
 * server, the configuration's `dns`, the runtime's `dns` capability), the aliases capability,
 * container names that fit a DNS label, the checks of the configuration, and ADD / DEL / CHECK
 * over fake agent calls.
 */
import t from 'tap'
import {
  CNI_ERROR, CniError, addResult, attachBody, containerName, dnsProblem, legacyContainerName, parseConfig, resultDns, runCni,
  type AgentContainer, type CniDeps, type CniEnv,
} from '../../src/cni/plugin.js'
import type { AttachWire } from '../../src/runtime/spec.js'

const ferryOn = { nameservers: ['10.63.0.1'], search: [], options: [] }
const ferryOff = { nameservers: [], search: [], options: [] }

function container (over: Partial<AgentContainer> = {}): AgentContainer {
  return {
    id: 'ab'.repeat(32), name: 'cni-eth0-c0ffee', owner: 'cni', mode: 'network', netns: '/run/netns/x', ifname: 'eth0',
    networkId: 'cd'.repeat(32), endpointId: 'ef'.repeat(32), address: '10.63.0.2', prefixLen: 24, gateway: '10.63.0.1', mac: '02:42:0a:3f:00:02',
    aliases: [], links: [], exposed: [], hostname: 'h', dns: [], dnsSearch: [], createdAt: '', resolver: ferryOn, ...over,
  }
}

t.test('the result dns: ferry first, then the configuration, the runtime replacing a field it gives', async (t) => {
  t.same(resultDns(ferryOn, undefined, undefined), { nameservers: ['10.63.0.1'] }, "ferry's DNS server on the gateway")
  t.same(resultDns(ferryOff, undefined, undefined), {}, '--no-dns-server and no configuration: nothing')
  t.same(resultDns(undefined, undefined, undefined), {}, 'an agent without the resolver field')
  const conf = { nameservers: ['192.0.2.53', '10.63.0.1'], domain: 'front.test', search: ['front.test'], options: ['ndots:2'] }
  t.same(resultDns(ferryOn, conf, undefined), { nameservers: ['10.63.0.1', '192.0.2.53'], domain: 'front.test', search: ['front.test'], options: ['ndots:2'] },
    'the configuration after ferry, without repeats')
  t.same(resultDns(ferryOff, conf, undefined).nameservers, ['192.0.2.53', '10.63.0.1'], 'DNS off: only the configuration names servers')
  const agentDefaults = { nameservers: ['10.63.0.1'], search: ['corp.test'], options: ['edns0'] }
  t.same(resultDns(agentDefaults, conf, undefined), {
    nameservers: ['10.63.0.1', '192.0.2.53'], domain: 'front.test', search: ['corp.test', 'front.test'], options: ['edns0', 'ndots:2'],
  }, "the agent's --dns-search and --dns-opt come first too")
  t.same(resultDns(ferryOn, conf, { servers: ['198.51.100.1', '198.51.100.1'], searches: ['rt.test'] }), {
    nameservers: ['198.51.100.1'], domain: 'front.test', search: ['rt.test'], options: ['ndots:2'],
  }, 'the runtime speaks for the container: its servers and searches replace, options stay')
  t.same(resultDns(ferryOn, conf, { servers: [], searches: [], options: ['ndots:5'] }).nameservers, ['10.63.0.1', '192.0.2.53'], 'an empty runtime list replaces nothing')
  t.notOk('domain' in resultDns(ferryOn, { domain: '' }, undefined), 'an empty domain is left out')
})

t.test('the ADD result carries the dns', async (t) => {
  const r = addResult('1.0.0', container(), { nameservers: ['10.63.0.1'] })
  t.match(r, { cniVersion: '1.0.0', ips: [{ address: '10.63.0.2/24', gateway: '10.63.0.1', interface: 1 }], dns: { nameservers: ['10.63.0.1'] } })
  t.same(addResult('0.4.0', container()).dns, {}, 'no dns given: an empty object, as before')
})

t.test('the dns of the configuration and the runtime are checked', async (t) => {
  const base = { cniVersion: '1.0.0', name: 'front', type: 'ferry-cni' }
  const ok = parseConfig(JSON.stringify({ ...base, dns: { nameservers: ['10.0.0.53', 'fd00::53'], domain: 'd.test', search: ['a.test'], options: ['ndots:2'] } }))
  t.same(ok.dns?.nameservers, ['10.0.0.53', 'fd00::53'], 'IPv6 name servers pass through')
  const bad: Array<[string, unknown]> = [
    ['dns not an object', { dns: ['10.0.0.53'] }],
    ['a name server that is no address', { dns: { nameservers: ['ns.example'] } }],
    ['a search list that is a string', { dns: { search: 'a.test' } }],
    ['a search domain with a line break', { dns: { search: ['a.test\nnameserver 1.2.3.4'] } }],
    ['an option with a space', { dns: { options: ['ndots:2 rotate'] } }],
    ['a domain that is a list', { dns: { domain: ['d.test'] } }],
    ['runtimeConfig not an object', { runtimeConfig: 'x' }],
    ['runtime servers that are no addresses', { runtimeConfig: { dns: { servers: ['x'] } } }],
    ['runtime searches not a list', { runtimeConfig: { dns: { searches: 'a' } } }],
    ['aliases not a map of lists', { runtimeConfig: { aliases: { front: 'web' } } }],
  ]
  for (const [what, extra] of bad) {
    t.throws(() => parseConfig(JSON.stringify({ ...base, ...extra as object })), { code: CNI_ERROR.INVALID_CONFIG }, what)
  }
})

t.test('the aliases capability gives names in ferry’s DNS for this network only', async (t) => {
  const env: CniEnv = { command: 'ADD', containerId: 'c0ffee', netns: '/run/netns/x', ifname: 'eth0' }
  const cfg = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'front', type: 'ferry-cni', runtimeConfig: { aliases: { front: ['web', 'a34cea3fe32c', 'web'], back: ['db'] } } }))
  t.same(attachBody(env, cfg).aliases, ['web', 'a34cea3fe32c'])
  const none = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'front', type: 'ferry-cni' }))
  t.notOk('aliases' in attachBody(env, none), 'no aliases: none sent')
})

t.test('container names fit in one DNS label, else ferry’s DNS would leave the container out', async (t) => {
  t.equal(containerName('c0ffee01', 'eth0'), 'cni-eth0-c0ffee01')
  const podman = '55c3ee100a5c59f1c44d7d91f9d32df272c58398367d4bb2c144c0a4dc6e1eaa'
  const name = containerName(podman, 'eth0')
  t.match(name, /^cni-eth0-55c3ee100a5c-[0-9a-f]{8}$/, "a 64-hex id: the runtime's short id and a hash")
  t.equal(containerName(podman, 'eth0'), name, 'deterministic')
  t.not(containerName(podman, 'eth1'), name, 'per interface')
  t.not(containerName(podman.slice(0, 12) + 'f'.repeat(52), 'eth0'), name, 'the same short id, another container')
  t.ok(containerName('x'.repeat(300), 'a-very-long-if0').length <= 63)
  t.equal(legacyContainerName(podman, 'eth0'), `cni-eth0-${podman}`, 'the name earlier plugins gave')
  t.equal(legacyContainerName('c0ffee01', 'eth0'), 'cni-eth0-c0ffee01', 'the same for short ids')
})

function fakeDeps (c: AgentContainer | undefined, addrs = ['10.63.0.2/24']): CniDeps & { bodies: AttachWire[], asked: string[] } {
  const bodies: AttachWire[] = []
  const asked: string[] = []
  return {
    bodies,
    asked,
    attach: async (body) => { bodies.push(body); return { container: c!, env: {}, warnings: [] } },
    detach: async (name) => { asked.push(`detach ${name}`) },
    get: async (name) => { asked.push(`get ${name}`); return name === c?.name ? c : undefined },
    addressesIn: async () => addrs,
  }
}

t.test('DEL and CHECK find attachments under the names earlier plugins gave', async (t) => {
  const id = 'ab'.repeat(32)
  const env: CniEnv = { command: 'DEL', containerId: id, netns: '/run/netns/x', ifname: 'eth0' }
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'front', type: 'ferry-cni' })
  const del = fakeDeps(undefined)
  t.equal(await runCni(env, conf, del), '')
  t.same(del.asked, [`detach ${containerName(id, 'eth0')}`, `detach cni-eth0-${id}`])
  const old = fakeDeps(container({ name: `cni-eth0-${id}` }))
  t.equal(await runCni({ ...env, command: 'CHECK' }, conf, old), '', 'CHECK of an attachment with the old name passes')
  const short = fakeDeps(undefined)
  await runCni({ ...env, command: 'DEL', containerId: 'c0ffee' }, conf, short)
  t.same(short.asked, ['detach cni-eth0-c0ffee'], 'one name when both are the same')
})

t.test('ADD prints the dns; CHECK verifies ferry’s DNS server is still served', async (t) => {
  const env: CniEnv = { command: 'ADD', containerId: 'c0ffee', netns: '/run/netns/x', ifname: 'eth0' }
  const conf = { cniVersion: '1.0.0', name: 'front', type: 'ferry-cni', dns: { nameservers: ['192.0.2.53'], search: ['front.test'] } }
  t.equal(container().name, containerName('c0ffee', 'eth0'))
  const add = JSON.parse(await runCni(env, JSON.stringify(conf), fakeDeps(container()))) as { dns: unknown }
  t.same(add.dns, { nameservers: ['10.63.0.1', '192.0.2.53'], search: ['front.test'] })

  const check: CniEnv = { ...env, command: 'CHECK' }
  const prev = { ...conf, prevResult: add }
  t.equal(await runCni(check, JSON.stringify(prev), fakeDeps(container())), '', 'served as given: CHECK passes')
  await t.rejects(runCni(check, JSON.stringify(prev), fakeDeps(container({ resolver: ferryOff }))),
    { code: CNI_ERROR.AGENT, message: /ferry's DNS server 10\.63\.0\.1 .*--no-dns-server/ }, 'the agent stopped serving DNS: CHECK fails')
  t.equal(await runCni(check, JSON.stringify(prev), fakeDeps(container({ resolver: undefined }))), '', 'an agent that does not say: nothing to check')
  const confGw = { ...conf, dns: { nameservers: ['10.63.0.1'] }, prevResult: add }
  t.equal(await runCni(check, JSON.stringify(confGw), fakeDeps(container({ resolver: ferryOff }))), '', 'the configuration names the gateway itself: not ferry’s to check')
  const noDns = { ...conf, prevResult: { ...add, dns: {} } }
  t.equal(await runCni(check, JSON.stringify(noDns), fakeDeps(container())), '', 'a result without ferry’s server (DNS was off at ADD) passes')
  await t.rejects(runCni(check, JSON.stringify(prev), fakeDeps(container(), ['10.63.0.9/24'])), { message: /lacks 10\.63\.0\.2\/24/ }, 'the address check still comes first')
})

t.test('dnsProblem ignores malformed previous results', async (t) => {
  const cfg = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'front', type: 'ferry-cni', prevResult: { dns: { nameservers: 'x' } } }))
  t.equal(dnsProblem(cfg, container({ resolver: ferryOff })), undefined)
  t.type(new CniError(1, 'x'), Error)
})

t.test('a dual-stack container: ips of both families, a default route per family, CHECK of both addresses, DNS on both gateways', async (t) => {
  const dual = container({ address6: 'fd00:63::2', prefixLen6: 64, gateway6: 'fd00:63::1', resolver: { nameservers: ['10.63.0.1', 'fd00:63::1'], search: [], options: [] } })
  const r = addResult('1.0.0', dual, resultDns(dual.resolver, undefined, undefined))
  t.same(r.ips, [
    { address: '10.63.0.2/24', interface: 1, gateway: '10.63.0.1' },
    { address: 'fd00:63::2/64', interface: 1, gateway: 'fd00:63::1' },
  ])
  t.same(r.routes, [{ dst: '0.0.0.0/0', gw: '10.63.0.1' }, { dst: '::/0', gw: 'fd00:63::1' }])
  t.same(r.dns, { nameservers: ['10.63.0.1', 'fd00:63::1'] })
  t.same((addResult('0.3.1', dual).ips as Array<{ version: string }>).map((i) => i.version), ['4', '6'], '0.3.x: version per family')
  const only6 = container({ address: 'fd00:64::5', prefixLen: 64, gateway: 'fd00:64::1' })
  t.same(addResult('1.0.0', only6).routes, [{ dst: '::/0', gw: 'fd00:64::1' }], 'an IPv6-only container: its one address in the IPv4 fields still gives ::/0')
  const noGw = container({ gateway: undefined, address6: 'fd00:63::2', prefixLen6: 64, gateway6: '10.63.0.1' })
  t.same(addResult('1.0.0', noGw).routes, [], 'no gateway, or one of the wrong family: no route')
  t.same(addResult('1.0.0', container({ address6: 'not-an-ip' })).ips, [{ address: '10.63.0.2/24', interface: 1, gateway: '10.63.0.1' }], 'a bad address6 is left out')

  const env: CniEnv = { command: 'CHECK', containerId: 'c0ffee', netns: '/run/netns/x', ifname: 'eth0' }
  const conf = { cniVersion: '1.0.0', name: 'front', type: 'ferry-cni' }
  t.equal(await runCni(env, JSON.stringify(conf), fakeDeps(dual, ['10.63.0.2/24', 'FD00:63:0::2/64', 'fe80::1/64'])), '', 'both addresses present (however spelt): CHECK passes')
  await t.rejects(runCni(env, JSON.stringify(conf), fakeDeps(dual, ['10.63.0.2/24', 'fe80::1/64'])), { code: CNI_ERROR.AGENT, message: /lacks fd00:63::2\/64/ }, 'the IPv6 address missing: CHECK fails')
  const prev = { ...conf, prevResult: r }
  await t.rejects(runCni(env, JSON.stringify(prev), fakeDeps({ ...dual, resolver: { nameservers: ['10.63.0.1'], search: [], options: [] } }, ['10.63.0.2/24', 'fd00:63::2/64'])),
    { message: /ferry's DNS server fd00:63::1 / }, 'the IPv6 gateway no longer served: CHECK fails')
})
