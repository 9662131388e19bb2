import t from 'tap'
import { fakeWorld, FakePublisher, overlayWorld, silentLog } from '../harness/fakes.js'
import { MemoryStore } from '../../src/store/store.js'
import { FakeLinkDriver } from '../harness/kernel-fake.js'
import { Ipam } from '../../src/ipam/ipam.js'
import { NetworkDriver } from '../../src/driver/network.js'
import { DisabledFirewall } from '../../src/nat/disabled.js'
import type { OverlayService } from '../../src/overlay/service.js'

const NET = 'aa'.repeat(32)
const EP = 'bb'.repeat(32)

async function withNetwork (w: { ipam: Ipam, driver: NetworkDriver }, generic: Record<string, unknown> = {}, internal = false) {
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr: '10.50.0.1/24', generic, internal, ipv6: false, extraIpv4Data: 0 })
  // What the engine does before each CreateEndpoint: the tests' endpoint addresses come from IPAM.
  for (const ip of ['10.50.0.2', '10.50.0.3']) await w.ipam.requestAddress({ poolId: pool.poolId, address: ip, options: null })
  return pool.poolId
}

t.test('a failed network create leaves nothing behind', async (t) => {
  const w = fakeWorld()
  w.links.failOn('setUp', 1, new Error('injected'))
  await t.rejects(withNetwork(w), /injected/)
  t.same((await w.links.listLinks()).filter((l) => l.name.startsWith('fy')), [], 'bridge removed')
  t.same(w.store.state.networks, {})
  t.equal(w.firewall.networks.size, 0)
})

t.test('a failed endpoint create leaves no veth and no record', async (t) => {
  const w = fakeWorld()
  await withNetwork(w)
  w.links.failOn('setMaster', 1, new Error('injected'))
  await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [] }), /injected/)
  t.same((await w.links.listLinks()).map((l) => l.name).filter((n) => n.startsWith('fyh') || n.startsWith('fyc')), [])
  t.same(w.store.state.endpoints, {})
})

t.test('internal networks: no gateway, no gateway service, no publishing', async (t) => {
  const w = fakeWorld()
  await withNetwork(w, {}, true)
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [] })
  const j = await w.driver.join(NET, EP, '/sandbox')
  t.same(j, { srcName: 'fycbbbbbbbbbbbb', disableGatewayService: true })
  await w.driver.programExternalConnectivity(NET, EP, [{ proto: 'tcp', containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }])
  t.equal(w.firewall.endpoints.size, 0)
})

t.test('options are validated before anything is created', async (t) => {
  const w = fakeWorld()
  await t.rejects(withNetwork(w, { 'com.docker.network.bridge.enable_icc': 'maybe' }), { code: 'INVALID_OPTION', message: /enable_icc must be true or false/ })
  await t.rejects(withNetwork(fakeWorld(), { 'com.docker.network.bridge.name': 'bad name!' }), { code: 'INVALID_OPTION' })
  await t.rejects(withNetwork(fakeWorld(), { 'ferry.colour': 'blue' }), { message: /unknown option ferry.colour/ })
  await t.rejects(withNetwork(fakeWorld(), { 'ferry.overlay': 'ov1' }), { code: 'CLUSTER_UNAVAILABLE', message: /--cluster/ })
  t.same(w.links.calls.filter((c) => c.op.startsWith('create')), [])
})

t.test('a bridge name that exists and is not ferry\'s is refused', async (t) => {
  const w = fakeWorld()
  await w.links.createBridge('docker0')
  await t.rejects(withNetwork(w, { 'com.docker.network.bridge.name': 'docker0' }), { code: 'NAME_CONFLICT', message: /docker0 already exists and is not ferry's/ })
})

t.test('port conflict is refused and nothing stays programmed', async (t) => {
  const w = fakeWorld()
  await withNetwork(w)
  const req = [{ proto: 'tcp' as const, containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }]
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: req, exposed: [] })
  await w.driver.programExternalConnectivity(NET, EP, undefined)
  const EP2 = 'cc'.repeat(32)
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP2, addressCidr: '10.50.0.3/24', mac: '', portRequests: req, exposed: [] })
  await t.rejects(w.driver.programExternalConnectivity(NET, EP2, undefined), { code: 'PORT_CONFLICT' })
  t.notOk(w.firewall.endpoints.has(EP2))
  t.same(w.store.state.endpoints[EP2]?.ports, [])
})

t.test('reconcile recreates a missing bridge and removes ferry leftovers only', async (t) => {
  const w = fakeWorld()
  await withNetwork(w)
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [] })
  await w.links.deleteLink('fy-aaaaaaaaaaaa')
  await w.links.createBridge('fy-leftover0000')
  await w.links.createBridge('docker0')
  const r = await w.driver.reconcile()
  t.ok(r.links > 0)
  const names = (await w.links.listLinks()).map((l) => l.name)
  t.ok(names.includes('fy-aaaaaaaaaaaa'), 'bridge back')
  t.notOk(names.includes('fy-leftover0000'), 'leftover removed')
  t.ok(names.includes('docker0'), 'foreign bridge untouched')
  t.equal((await w.driver.reconcile()).links, 0, 'second run has nothing to do')
})

t.test('reconcile gives the firewall the records\' revision: the same while nothing changed, another after any change', async (t) => {
  const w = fakeWorld()
  await withNetwork(w)
  await w.driver.reconcile()
  await w.driver.reconcile()
  const [a, b] = w.firewall.revisions
  t.type(a, 'number')
  t.equal(b, a, 'nothing changed: the same revision (the firewall need not compare the records again)')
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [] })
  await w.driver.reconcile()
  t.not(w.firewall.revisions[2], b, 'an endpoint made: another revision')
  await w.driver.reconcile()
  t.equal(w.firewall.revisions[3], w.firewall.revisions[2])
})

t.test('while the store is recovered with loss, reconcile keeps the links it cannot explain and leaves the firewall', async (t) => {
  const w = fakeWorld()
  let lossy = true
  const driver = new NetworkDriver({ store: w.store, links: w.links, firewall: w.firewall, ipam: w.ipam, ports: new FakePublisher(), log: silentLog, storeLoss: () => lossy })
  await withNetwork({ ipam: w.ipam, driver })
  const EP2 = 'cc'.repeat(32)
  for (const [id, ip] of [[EP, '10.50.0.2/24'], [EP2, '10.50.0.3/24']] as const) {
    await driver.createEndpoint({ networkId: NET, endpointId: id, addressCidr: ip, mac: '', portRequests: [], exposed: [] })
  }
  // The store lost EP2's record (a damaged journal line); its container still runs.
  delete w.store.state.endpoints[EP2]
  await w.links.deleteLink('fy-aaaaaaaaaaaa')
  w.firewall.calls.length = 0
  const r = await driver.reconcile()
  const names = (await w.links.listLinks()).map((l) => l.name)
  t.ok(names.includes('fy-aaaaaaaaaaaa'), 'repairs still happen')
  t.ok(names.includes('fyhcccccccccccc') && names.includes('fyhbbbbbbbbbbbb'), 'the lost container\'s veth stays')
  t.notOk(r.firewall)
  t.same(w.firewall.calls, [], 'the firewall is not rewritten from a store that lost records')
  lossy = false
  await driver.reconcile()
  t.notOk((await w.links.listLinks()).some((l) => l.name === 'fyhcccccccccccc'), 'once the loss is handled, reconcile removes what nothing needs, as before')
  t.same(w.firewall.calls, ['reconcile'])
})

t.test('endpoint create is idempotent for an engine retry', async (t) => {
  const w = fakeWorld()
  await withNetwork(w)
  const input = { networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [] }
  const a = await w.driver.createEndpoint(input)
  const b = await w.driver.createEndpoint(input)
  t.same(a, b)
  t.equal(w.driver.endpoints().length, 1)
})

/** The driver of an agent started with --iptables=false: the real DisabledFirewall as firewall and limits. */
function worldWithoutIptables () {
  const store = new MemoryStore()
  const links = new FakeLinkDriver()
  const firewall = new DisabledFirewall()
  const ipam = new Ipam({ store, hostNetworks: async () => ['192.168.0.0/24'] })
  const driver = new NetworkDriver({ store, links, firewall, limits: firewall, ipam, ports: new FakePublisher(), log: silentLog })
  return { store, links, firewall, ipam, driver }
}

t.test('--iptables=false: publishing is refused before anything is made; the rest works', async (t) => {
  const w = worldWithoutIptables()
  await withNetwork(w)
  t.ok(w.store.state.networks[NET], 'a network is created')
  const p8080 = [{ proto: 'tcp' as const, containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }]
  const linksBefore = (await w.links.listLinks()).map((l) => l.name).sort()
  await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: p8080, exposed: [] }),
    { code: 'UNSUPPORTED', message: /^cannot publish ports: the ferry agent runs with --iptables=false/ })
  t.same((await w.links.listLinks()).map((l) => l.name).sort(), linksBefore, 'no veth')
  t.same(w.store.state.endpoints, {}, 'no endpoint record')
  t.same(w.links.calls.filter((c) => c.op === 'createVeth'), [], 'nothing was even tried')

  // -P with nothing exposed publishes nothing; --expose alone is fine.
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: [], exposed: [{ proto: 'tcp', port: 80 }] })
  await w.driver.join(NET, EP, '/sandbox')
  await w.driver.programExternalConnectivity(NET, EP, [])
  await w.driver.programExternalConnectivity(NET, EP, undefined)
  await t.rejects(w.driver.programExternalConnectivity(NET, EP, p8080), { code: 'UNSUPPORTED', message: /cannot publish ports/ })
  t.same(w.store.state.endpoints[EP]?.ports, [], 'nothing recorded as published')
  t.same(await w.driver.reconcile(), { links: 0, firewall: false })
  await w.driver.deleteEndpoint(NET, EP)
  await w.driver.deleteNetwork(NET)
  t.same(w.store.state.networks, {})
})

t.test('--iptables=false: enable_icc=false is refused (nothing would block the traffic); internal networks publish nothing anyway', async (t) => {
  const w = worldWithoutIptables()
  await t.rejects(withNetwork(w, { 'com.docker.network.bridge.enable_icc': 'false' }),
    { code: 'UNSUPPORTED', message: /enable_icc=false needs iptables/ })
  t.same(w.links.calls.filter((c) => c.op.startsWith('create')), [], 'no bridge')
  const inner = worldWithoutIptables()
  await withNetwork(inner, {}, true)
  const p = [{ proto: 'tcp' as const, containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }]
  await inner.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', mac: '', portRequests: p, exposed: [] })
  await inner.driver.programExternalConnectivity(NET, EP, p)
  t.same(inner.store.state.endpoints[EP]?.ports, [], 'ignored on an internal network, as with iptables on')
})

t.test('network options that are not strings are refused with a sentence before anything is made', async (t) => {
  for (const v of [{}, JSON.parse('{"toString":"x"}'), ['1500'], 1500, null, true]) {
    const w = fakeWorld()
    await t.rejects(withNetwork(w, { 'com.docker.network.driver.mtu': v }), { code: 'INVALID_OPTION', message: /^option com\.docker\.network\.driver\.mtu must be a string \(-o com\.docker\.network\.driver\.mtu=VALUE\), not / }, JSON.stringify(v))
    t.same(w.links.calls.filter((c) => c.op.startsWith('create')), [])
  }
  for (const k of ['constructor', 'toString', '__proto__']) {
    await t.rejects(withNetwork(fakeWorld(), JSON.parse(`{"${k}":"x"}`) as Record<string, unknown>), { code: 'INVALID_OPTION', message: new RegExp(`^unknown option ${k};`) }, k)
  }
})

t.test('CreateEndpoint refuses every address ferry did not hand out for an endpoint, and leaves nothing behind', async (t) => {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '10.50.0.9', options: null }) // --aux-address r=10.50.0.9
  await w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr: '10.50.0.1/24', generic: {}, internal: false, ipv6: false, extraIpv4Data: 0, auxAddresses: ['10.50.0.9/24'] })
  t.equal(w.ipam.pool(pool.poolId)?.allocated['10.50.0.9']?.kind, 'aux', 'the aux address is marked')
  const a2 = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })
  t.equal(a2.address, '10.50.0.2/24')
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: a2.address, mac: '', portRequests: [], exposed: [] })
  const before = { links: (await w.links.listLinks()).map((l) => l.name).sort(), endpoints: Object.keys(w.store.state.endpoints), calls: w.links.calls.length }
  const EP2 = 'cc'.repeat(32)
  const bad: Array<[string, string, RegExp]> = [
    ['8.8.8.8/24', 'ADDRESS_OUT_OF_POOL', /^endpoint address 8\.8\.8\.8 is outside the network's subnet 10\.50\.0\.0\/24$/],
    ['10.51.0.2/24', 'ADDRESS_OUT_OF_POOL', /outside the network's subnet/],
    ['10.50.0.0/24', 'ADDRESS_OUT_OF_POOL', /^endpoint address 10\.50\.0\.0 is the network address of subnet 10\.50\.0\.0\/24$/],
    ['10.50.0.255/24', 'ADDRESS_OUT_OF_POOL', /^endpoint address 10\.50\.0\.255 is the broadcast address of subnet 10\.50\.0\.0\/24$/],
    ['10.50.0.1/24', 'ADDRESS_IN_USE', /^endpoint address 10\.50\.0\.1 is the gateway's address of network aaaaaaaaaaaa$/],
    ['10.50.0.77/24', 'INVALID_REQUEST', /^endpoint address 10\.50\.0\.77 was not allocated by ferry's IPAM in pool 10\.50\.0\.0\/24: ask IPAM for it first/],
    ['10.50.0.9/24', 'ADDRESS_IN_USE', /^endpoint address 10\.50\.0\.9 is reserved as an auxiliary address \(--aux-address\) of network aaaaaaaaaaaa$/],
    ['10.50.0.2/24', 'ADDRESS_IN_USE', /^endpoint address 10\.50\.0\.2 is already used by endpoint bbbbbbbbbbbb of network aaaaaaaaaaaa$/],
    ['10.50.0.2/16', 'INVALID_REQUEST', /^endpoint address "10\.50\.0\.2\/16" is not an IPv4 address with the prefix \/24 of subnet 10\.50\.0\.0\/24$/],
    ['10.50.0.2', 'INVALID_REQUEST', /is not an IPv4 address with the prefix \/24/],
    ['10.50.0.02/24', 'INVALID_REQUEST', /is not an IPv4 address/],
    ['10.50.0.2/24/24', 'INVALID_REQUEST', /is not an IPv4 address/],
    ['garbage\n', 'INVALID_REQUEST', /^endpoint address "garbage\\n" is not/],
    ['', 'INVALID_REQUEST', /^CreateEndpoint carries no IPv4 address: ferry networks need --ipam-driver ferry$/],
  ]
  for (const [addressCidr, code, message] of bad) {
    await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: EP2, addressCidr, mac: '', portRequests: [], exposed: [] }), { code, message }, JSON.stringify(addressCidr))
  }
  t.equal(w.links.calls.length, before.calls, 'the kernel was not asked anything')
  t.same((await w.links.listLinks()).map((l) => l.name).sort(), before.links, 'no link made or removed')
  t.same(Object.keys(w.store.state.endpoints), before.endpoints, 'no endpoint recorded')
  // Once released by the engine, an address can no longer be used either.
  await w.ipam.releaseAddress(pool.poolId, '10.50.0.3')
  const a3 = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP2, addressCidr: a3.address, mac: '', portRequests: [], exposed: [] })
  t.equal(w.store.state.endpoints[EP2]?.address, '10.50.0.3', 'an address from IPAM is accepted')
  // The pool released under the network (the engine's order at network rm): nothing can be added.
  await w.ipam.releasePool(pool.poolId)
  await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: 'dd'.repeat(32), addressCidr: '10.50.0.4/24', mac: '', portRequests: [], exposed: [] }), { code: 'INVALID_REQUEST', message: /address pool FerryLocal\/10\.50\.0\.0\/24 of network aaaaaaaaaaaa was released/ })
})

t.test('CreateEndpoint on an overlay: the address must be held by this host in the cluster', async (t) => {
  const held = new Set<string>()
  const published: string[] = []
  const overlay: OverlayService = {
    attach: async () => ({ vni: 4096, bridge: 'fyo-ov1', mtu: 1450 }),
    detach: async () => undefined,
    allocateAddress: async (_o, preferred) => { const ip = preferred ?? '10.60.0.5'; held.add(ip); return ip },
    releaseAddress: async (_o, ip) => { held.delete(ip) },
    holdsAddress: (_o, ip) => held.has(ip),
    publish: async (_o, id) => { published.push(id) },
    withdraw: async () => undefined,
  }
  const { driver, poolId, createOverlay } = await overlayWorld(overlay)
  await createOverlay(NET)
  await t.rejects(driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.60.0.7/24', mac: '', portRequests: [], exposed: [] }),
    { code: 'INVALID_REQUEST', message: /^endpoint address 10\.60\.0\.7 was not allocated to this host by the cluster for overlay ov1/ })
  await t.rejects(driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.60.0.1/24', mac: '', portRequests: [], exposed: [] }), { code: 'ADDRESS_IN_USE', message: /gateway/ })
  t.same(published, [], 'nothing published')
  const cidr = await driver.requestOverlayAddress(poolId, 'ov1', '', false)
  await driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: cidr, mac: '', portRequests: [], exposed: [] })
  t.same(published, [EP])
})

t.test('a dual-stack overlay: the IPv6 side goes to the cluster, both pools are the overlay\'s, the endpoint is published with both addresses', async (t) => {
  const held = new Set<string>()
  const calls: unknown[] = []
  const overlay: OverlayService = {
    attach: async (req) => { calls.push(['attach', req]); return { vni: 4096, bridge: 'fyo-ov1', mtu: 1450 } },
    detach: async () => undefined,
    allocateAddress: async (_o, preferred, _r, family) => { const ip = preferred ?? (family === 6 ? 'fd00:60::5' : '10.60.0.5'); held.add(ip); return ip },
    releaseAddress: async (_o, ip) => { held.delete(ip) },
    holdsAddress: (_o, ip) => held.has(ip),
    publish: async (...args) => { calls.push(['publish', ...args]) },
    withdraw: async () => undefined,
  }
  const { driver, ipam, poolId } = await overlayWorld(overlay)
  const pool6 = await ipam.requestPool({ addressSpace: 'FerryLocal', pool: 'fd00:60::/64', subPool: '', options: {}, v6: true })
  await ipam.requestAddress({ poolId: pool6.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await driver.createNetwork({
    id: NET, subnet: '10.60.0.0/24', gatewayCidr: '10.60.0.1/24', subnet6: 'fd00:60::/64', gatewayCidr6: 'fd00:60::1/64',
    generic: { 'ferry.overlay': 'ov1' }, internal: false, ipv6: true, extraIpv4Data: 0,
  })
  t.match(calls[0], ['attach', { name: 'ov1', subnet: '10.60.0.0/24', gateway: '10.60.0.1', subnet6: 'fd00:60::/64', gateway6: 'fd00:60::1' }])
  t.same([driver.overlayOfPool(poolId), driver.overlayOfPool(pool6.poolId)], ['ov1', 'ov1'], 'both pools are tied to the overlay')
  const cidr = await driver.requestOverlayAddress(poolId, 'ov1', '', false)
  const cidr6 = await driver.requestOverlayAddress(pool6.poolId, 'ov1', '', false)
  t.same([cidr, cidr6], ['10.60.0.5/24', 'fd00:60::5/64'], 'each pool\'s address from the cluster, in its family')
  await t.rejects(driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: cidr, addressCidr6: 'fd00:60::9/64', mac: '', portRequests: [], exposed: [] }),
    { code: 'INVALID_REQUEST', message: /^endpoint address fd00:60::9 was not allocated to this host by the cluster for overlay ov1/ })
  await driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: cidr, addressCidr6: cidr6, mac: '', portRequests: [], exposed: [] })
  t.same(calls[1], ['publish', 'ov1', EP, '10.60.0.5', '02:42:0a:3c:00:05', undefined, 'fd00:60::5'])
  const local = driver.localClusterState()
  t.same(local.overlays, [{ name: 'ov1', subnet: '10.60.0.0/24', gateway: '10.60.0.1', vni: 4096, subnet6: 'fd00:60::/64', gateway6: 'fd00:60::1' }])
  t.same(local.addresses, [{ overlay: 'ov1', ip: '10.60.0.5' }, { overlay: 'ov1', ip: 'fd00:60::5' }], 'both addresses are re-asserted after a reconnect')
  t.same(local.endpoints, [{ overlay: 'ov1', endpointId: EP, ip: '10.60.0.5', ip6: 'fd00:60::5', mac: '02:42:0a:3c:00:05' }])
})

/** A network on `subnet` with id `id`, and `n` endpoint addresses allocated from it (as the engine asks before CreateEndpoint). */
async function networkOn (w: ReturnType<typeof fakeWorld>, id: string, subnet: string, n = 2): Promise<string[]> {
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: subnet, subPool: '', options: {}, v6: false })
  const gw = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id, subnet, gatewayCidr: gw.address, generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 })
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push((await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })).address)
  return out
}

const linkNames = async (w: ReturnType<typeof fakeWorld>): Promise<string[]> => (await w.links.listLinks()).map((l) => l.name).sort()

t.test('endpoint ids sharing their first 12 characters get distinct veths; deleting one leaves the other', async (t) => {
  const w = fakeWorld()
  const [a1, a2] = await networkOn(w, NET, '10.50.0.0/24')
  const A = 'ab'.repeat(6) + '0'.repeat(52)
  const B = 'ab'.repeat(6) + '1'.repeat(52)
  await w.driver.createEndpoint({ networkId: NET, endpointId: A, addressCidr: a1!, mac: '', portRequests: [], exposed: [] })
  await w.driver.createEndpoint({ networkId: NET, endpointId: B, addressCidr: a2!, mac: '', portRequests: [], exposed: [] })
  const ea = w.store.state.endpoints[A]!
  const eb = w.store.state.endpoints[B]!
  t.equal(ea.hostVeth, 'fyhabababababab', 'the first keeps the usual name')
  t.not(eb.hostVeth, ea.hostVeth, 'the second gets another host name')
  t.not(eb.containerVeth, ea.containerVeth, 'and another container name')
  t.match(eb.hostVeth, /^fyh[0-9a-f]{12}$/)
  t.match(eb.containerVeth, /^fyc[0-9a-f]{12}$/)
  const names = await linkNames(w)
  for (const n of [ea.hostVeth, ea.containerVeth, eb.hostVeth, eb.containerVeth]) t.ok(names.includes(n), `${n} exists`)
  t.equal((await w.driver.join(NET, B, '/x')).srcName, eb.containerVeth, 'Join hands out the recorded name')
  t.equal((await w.driver.reconcile()).links, 0, 'reconcile finds both as they should be')
  await w.driver.deleteEndpoint(NET, B)
  const after = await linkNames(w)
  t.ok(after.includes(ea.hostVeth) && after.includes(ea.containerVeth), 'the first endpoint\'s veth stays')
  t.notOk(after.includes(eb.hostVeth) || after.includes(eb.containerVeth), 'the second\'s is gone')
})

t.test('deleting an unknown endpoint id never deletes a link, even one its id would be named after', async (t) => {
  const w = fakeWorld()
  const [a1] = await networkOn(w, NET, '10.50.0.0/24', 1)
  const A = 'ab'.repeat(6) + '0'.repeat(52)
  await w.driver.createEndpoint({ networkId: NET, endpointId: A, addressCidr: a1!, mac: '', portRequests: [], exposed: [] })
  await w.links.createVeth('fyhcdcdcdcdcdcd', 'fyccdcdcdcdcdcd') // a leftover of some crash
  const before = await linkNames(w)
  await w.driver.deleteEndpoint(NET, 'ab'.repeat(6) + '9'.repeat(52)) // shares A's first 12 characters
  await w.driver.deleteEndpoint(NET, 'cd'.repeat(32)) // named like the leftover
  await w.driver.deleteEndpoint('ff'.repeat(32), A) // A, but on another network
  await w.driver.leave('ff'.repeat(32), A)
  t.same(await linkNames(w), before, 'no link deleted')
  t.ok(w.store.state.endpoints[A], 'A is still recorded')
  // The leftover belongs to no record: reconcile removes it, and only it.
  await w.driver.reconcile()
  t.same(await linkNames(w), before.filter((n) => !n.includes('cdcdcdcd')))
})

t.test('a link left with an endpoint\'s first-choice name is not deleted at create: another name is used', async (t) => {
  const w = fakeWorld()
  const [a1] = await networkOn(w, NET, '10.50.0.0/24', 1)
  await w.links.createVeth('fyhbbbbbbbbbbbb', 'fycbbbbbbbbbbbb')
  const callsBefore = w.links.calls.length
  await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: a1!, mac: '', portRequests: [], exposed: [] })
  t.same(w.links.calls.slice(callsBefore).filter((c) => c.op === 'deleteLink'), [], 'nothing deleted')
  const ep = w.store.state.endpoints[EP]!
  t.not(ep.hostVeth, 'fyhbbbbbbbbbbbb')
  t.ok((await linkNames(w)).includes(ep.hostVeth))
})

t.test('concurrent creates of endpoints sharing a prefix on two networks pick distinct names', async (t) => {
  const w = fakeWorld()
  const NET2 = 'a'.repeat(12) + 'f'.repeat(52) // shares NET's first 12 characters too
  const [a1] = await networkOn(w, NET, '10.50.0.0/24', 1)
  const [b1] = await networkOn(w, NET2, '10.51.0.0/24', 1)
  const n1 = w.store.state.networks[NET]!
  const n2 = w.store.state.networks[NET2]!
  t.equal(n1.bridge, 'fy-aaaaaaaaaaaa')
  t.not(n2.bridge, n1.bridge, 'networks sharing 12 characters get distinct bridges')
  t.match(n2.bridge, /^fy-[0-9a-f]{12}$/)
  const A = 'ab'.repeat(6) + '0'.repeat(52)
  const B = 'ab'.repeat(6) + '1'.repeat(52)
  await Promise.all([
    w.driver.createEndpoint({ networkId: NET, endpointId: A, addressCidr: a1!, mac: '', portRequests: [], exposed: [] }),
    w.driver.createEndpoint({ networkId: NET2, endpointId: B, addressCidr: b1!, mac: '', portRequests: [], exposed: [] }),
  ])
  const ea = w.store.state.endpoints[A]!
  const eb = w.store.state.endpoints[B]!
  t.not(ea.hostVeth, eb.hostVeth)
  const links = await w.links.listLinks()
  const master = (name: string) => links.find((l) => l.index === links.find((x) => x.name === name)?.master)?.name
  t.equal(master(ea.hostVeth), n1.bridge)
  t.equal(master(eb.hostVeth), n2.bridge)
  await w.driver.deleteNetwork(NET2)
  t.ok((await linkNames(w)).includes(n1.bridge), 'deleting the second network leaves the first bridge')
  t.ok((await linkNames(w)).includes(ea.hostVeth))
})

t.test('CreateNetwork takes only the gateway ferry\'s IPAM handed out, and makes nothing otherwise', async (t) => {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '10.50.0.7', options: null })
  const create = (gatewayCidr: string) => w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr, generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 })
  const bad: Array<[string, string, RegExp]> = [
    ['', 'INVALID_REQUEST', /^gateway "" is not an IPv4 address with the prefix \/24 of subnet 10\.50\.0\.0\/24$/],
    ['10.50.0.1', 'INVALID_REQUEST', /is not an IPv4 address with the prefix/],
    ['10.50.0.1/16', 'INVALID_REQUEST', /is not an IPv4 address with the prefix/],
    ['8.8.8.8/24', 'ADDRESS_OUT_OF_POOL', /^gateway 8\.8\.8\.8 is outside the network's subnet 10\.50\.0\.0\/24$/],
    ['10.50.0.0/24', 'ADDRESS_OUT_OF_POOL', /network address/],
    ['10.50.0.255/24', 'ADDRESS_OUT_OF_POOL', /broadcast address/],
    ['10.50.0.7/24', 'INVALID_REQUEST', /^gateway 10\.50\.0\.7 was not allocated by ferry's IPAM as the gateway of pool 10\.50\.0\.0\/24$/],
    ['10.50.0.9/24', 'INVALID_REQUEST', /was not allocated by ferry's IPAM as the gateway/],
  ]
  for (const [gw, code, message] of bad) await t.rejects(create(gw), { code, message }, JSON.stringify(gw))
  t.same(w.links.calls.filter((c) => c.op !== 'getLink'), [], 'the kernel was not changed')
  t.same(Object.keys(w.store.state.networks), [])
  await create('10.50.0.1/24')
  t.equal(w.store.state.networks[NET]?.gateway, '10.50.0.1')
})

t.test('--iptables=false: an encrypted overlay is refused (nothing would drop plain VXLAN from the underlay), a plain one is not', async (t) => {
  const overlay = { attach: async () => ({ vni: 4096, bridge: 'fyo-ov1', mtu: 1450 }) } as unknown as OverlayService
  const firewall = new DisabledFirewall()
  const store = new MemoryStore()
  const driver = new NetworkDriver({ store, links: new FakeLinkDriver(), firewall, limits: firewall, ipam: new Ipam({ store, hostNetworks: async () => [] }), ports: new FakePublisher(), overlay, log: silentLog })
  t.throws(() => driver.checkNetwork({ generic: { 'ferry.overlay': 'ov1', 'ferry.encrypt': 'wireguard' }, internal: false, ipv6: false }),
    { code: 'UNSUPPORTED', message: /^ferry\.encrypt=wireguard needs ferry's firewall to drop plain VXLAN \(UDP 4799\)/ })
  t.equal(driver.checkNetwork({ generic: { 'ferry.overlay': 'ov1' }, internal: false, ipv6: false }).overlay, 'ov1')
})

t.test('an IPv6-only network (--ipv4=false): the IPv6 side alone in the record, the bridge, Join, the firewall and the reconcile', async (t) => {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: 'fd00:50::/64', subPool: '', options: {}, v6: true })
  const gw = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id: NET, generic: {}, internal: false, ipv4: false, ipv6: true, extraIpv4Data: 0, subnet6: 'fd00:50::/64', gatewayCidr6: gw.address })
  const net = w.store.state.networks[NET]!
  t.match(net, { subnet6: 'fd00:50::/64', gateway6: 'fd00:50::1', poolId6: pool.poolId, gatewayMode6: 'nat' })
  t.notOk('subnet' in net || 'gateway' in net || 'poolId' in net, 'no IPv4 field')
  const bridge = net.bridge
  t.same((await w.links.listAddresses()).filter((a) => a.ifname === bridge).map((a) => a.cidr), ['fd00:50::1/64'])
  t.equal((await w.links.getLink(bridge))?.mac, '02:42:00:00:00:01', 'the bridge MAC from the IPv6 gateway\'s last four bytes')
  t.equal(await w.links.getIpv6Conf(bridge, 'disable_ipv6'), '0')
  t.same(w.firewall.networks.get(NET), { id: NET, bridge, icc: true, masquerade: true, internal: false, subnet6: 'fd00:50::/64', gateway6: 'fd00:50::1', mode6: 'nat' })

  const a6 = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })
  await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '10.50.0.2/24', addressCidr6: a6.address, mac: '', portRequests: [], exposed: [] }),
    { code: 'INVALID_REQUEST', message: /^endpoint IPv4 address "10\.50\.0\.2\/24" given on network aaaaaaaaaaaa, which is IPv6-only \(it was created with --ipv4=false\)$/ })
  await t.rejects(w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr: '', mac: '', portRequests: [], exposed: [] }),
    { code: 'INVALID_REQUEST', message: /no IPv6 address on an IPv6-only network/ })
  const res = await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr6: a6.address, mac: '', portRequests: [], exposed: [] })
  t.same(res, { mac: '02:42:00:00:00:02' })
  const ep = w.store.state.endpoints[EP]!
  t.match(ep, { address6: 'fd00:50::2', prefixLen6: 64 })
  t.notOk('address' in ep || 'prefixLen' in ep, 'no IPv4 address')
  t.same(await w.driver.createEndpoint({ networkId: NET, endpointId: EP, addressCidr6: a6.address, mac: '', portRequests: [], exposed: [] }), { mac: '02:42:00:00:00:02' }, 'an engine retry')
  t.same(await w.driver.join(NET, EP, '/var/run/docker/netns/x'), { srcName: ep.containerVeth, gateway6: 'fd00:50::1', disableGatewayService: false })
  await w.links.deleteAddress(bridge, 'fd00:50::1/64')
  t.same(await w.driver.reconcile(), { links: 1, firewall: false })
  t.same((await w.links.listAddresses()).filter((a) => a.ifname === bridge).map((a) => a.cidr), ['fd00:50::1/64'], 'the reconcile puts back the IPv6 gateway alone')
  await w.driver.deleteEndpoint(NET, EP)
  await w.driver.deleteNetwork(NET)
  t.notOk(await w.links.getLink(bridge))
})

t.test('--ipv4=false needs --ipv6 and is not for overlays; the pools must match the flags', async (t) => {
  const w = fakeWorld()
  await t.rejects(w.driver.createNetwork({ id: NET, generic: {}, internal: false, ipv4: false, ipv6: false, extraIpv4Data: 0 }), { code: 'INVALID_OPTION', message: /at least one address family/ })
  await t.rejects(w.driver.createNetwork({ id: NET, generic: { 'ferry.overlay': 'ov1' }, internal: false, ipv4: false, ipv6: true, extraIpv4Data: 0, subnet6: 'fd00:50::/64', gatewayCidr6: 'fd00:50::1/64' }),
    { code: 'UNSUPPORTED', message: 'overlay networks need IPv4: create overlay ov1 without --ipv4=false' })
  await t.rejects(w.driver.createNetwork({ id: NET, generic: {}, internal: false, ipv6: true, extraIpv4Data: 0, subnet6: 'fd00:50::/64', gatewayCidr6: 'fd00:50::1/64' }),
    { code: 'INVALID_REQUEST', message: /asked for an IPv4 network but sent no IPv4 pool/ })
  t.same(w.store.state.networks, {})
})
