/**
 * Replays what a current engine (Docker 28/29) sends, from test/fixtures/engine-29-requests.json
 * (written from moby's source; docs/compatibility.md cites the lines), and the requests such an
 * engine makes for options ferry refuses: every refusal one sentence and a 4xx, never a 500.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildPluginServer } from '../../src/plugin/server.js'
import { fakeWorld, silentLog } from '../harness/fakes.js'

interface Step { method: string, source: string, body?: unknown, expect?: Record<string, unknown> }
interface Refusal { what: string, options: Record<string, unknown>, refused: string | null }
const fixture = JSON.parse(readFileSync(new URL('../fixtures/engine-29-requests.json', import.meta.url), 'utf8')) as
  { lifecycle: Step[], ipv6Only: Step[], gwAllocCheck: Refusal[] }

const N1 = '8202ce046a9453e028a5bdf94d5d110858a259ca27328f15d691d0e8e4c561c1'
const EPA = '4165a563164108a7381e6dffcfdfab4eb7bd6c8aca0d2dccaf021a0205971004'

/** POST as dockerd does: no Content-Type, raw body (empty for no body). */
async function call (app: ReturnType<typeof buildPluginServer>, method: string, body?: unknown) {
  const payload = body === undefined ? '' : JSON.stringify(body)
  const res = await app.inject({ method: 'POST', url: `/${method}`, headers: { accept: 'application/vnd.docker.plugins.v1.2+json' }, payload })
  return { status: res.statusCode, body: res.body === '' ? {} : JSON.parse(res.body) as Record<string, unknown> }
}

function setup (t: Tap.Test) {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  return { ...w, app }
}

const withPool = (body: unknown, pool: string): unknown => JSON.parse(JSON.stringify(body ?? null).replaceAll('"$POOL"', JSON.stringify(pool))) ?? undefined

/** Send each step as the engine does (the PoolID ferry answered where '$POOL' stands): every one succeeds; `check` sees each answer. */
async function replay (t: Tap.Test, app: ReturnType<typeof buildPluginServer>, steps: Step[],
  check: (step: Step, body: Record<string, unknown>, pool: string) => Promise<void> | void): Promise<void> {
  let pool = ''
  for (const step of steps) {
    const res = await call(app, step.method, step.body === undefined ? undefined : withPool(step.body, pool))
    t.equal(res.status, 200, `${step.method} (${step.source}): ${JSON.stringify(res.body)}`)
    if (step.method === 'IpamDriver.RequestPool') pool = String(res.body.PoolID)
    if (step.expect !== undefined) t.match(res.body, step.expect, step.method)
    await check(step, res.body, pool)
  }
}

/** After network rm: no bridge, no record, no pool. */
async function nothingLeft (t: Tap.Test, w: Pick<ReturnType<typeof setup>, 'links' | 'store'>): Promise<void> {
  t.notOk(await w.links.getLink('fy-8202ce046a94'), 'the bridge is gone')
  t.same([w.store.state.networks, w.store.state.endpoints, w.store.state.pools], [{}, {}, {}], 'no network, endpoint or pool left')
}

t.test('a Docker 29 lifecycle: create, run with a port, stop, network rm', async (t) => {
  const { app, links, firewall, store } = setup(t)
  await replay(t, app, fixture.lifecycle, async (step) => {
    if (step.method === 'NetworkDriver.ProgramExternalConnectivity') t.equal(firewall.endpoints.get(EPA)?.ports.length, 1, 'the port is published')
    if (step.method === 'NetworkDriver.CreateNetwork') t.equal((await links.getLink('fy-8202ce046a94'))?.mtu, 1400)
  })
  await nothingLeft(t, { links, store })
})

t.test('GwAllocCheck: options ferry cannot honour are refused before any pool exists', async (t) => {
  const { app, store } = setup(t)
  for (const r of fixture.gwAllocCheck) {
    const res = await call(app, 'NetworkDriver.GwAllocCheck', { Options: r.options })
    if (r.refused === null) {
      t.same(res, { status: 200, body: { SkipIPv4: false, SkipIPv6: false } }, r.what)
      continue
    }
    t.equal(res.status, 400, r.what)
    t.match(String(res.body.Err), r.refused, r.what)
    t.notMatch(String(res.body.Err), /\n|at .*\.js/, `${r.what}: one sentence, no stack`)
  }
  t.same(store.state.pools, {}, 'nothing allocated')
})

t.test('CreateNetwork refuses the same (engines before 28 send no GwAllocCheck)', async (t) => {
  const { app, links } = setup(t)
  const pool = (await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })).body.PoolID
  await call(app, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '10.123.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  for (const r of fixture.gwAllocCheck) {
    if (r.refused === null) continue
    const res = await call(app, 'NetworkDriver.CreateNetwork', {
      NetworkID: N1, Options: r.options, IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }], IPv6Data: [],
    })
    t.equal(res.status, 400, r.what)
    t.match(String(res.body.Err), r.refused, r.what)
    t.notOk(await links.getLink('fy-8202ce046a94'), `${r.what}: no bridge`)
  }
})

t.test('a dual-stack network as 20.10 asks for it (--ipv6): pools, gateways, endpoint, Join, delete', async (t) => {
  const { app, store, links } = setup(t)
  const gw = { RequestAddressType: 'com.docker.network.gateway' }
  const p4 = (await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })).body
  const p6 = (await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: 'fd00:7::/64', SubPool: '', Options: {}, V6: true })).body
  t.same(p6, { PoolID: 'FerryLocal/fd00:7::/64', Pool: 'fd00:7::/64', Data: {} })
  t.same((await call(app, 'IpamDriver.RequestAddress', { PoolID: p4.PoolID, Address: '', Options: gw })).body, { Address: '10.123.0.1/24', Data: {} })
  t.same((await call(app, 'IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: '', Options: gw })).body, { Address: 'fd00:7::1/64', Data: {} })
  const bad = await call(app, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1, Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { 'com.docker.network.bridge.gateway_mode_ipv6': 'isolated' } },
    IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }],
    IPv6Data: [{ AddressSpace: 'FerryLocal', Gateway: 'fd00:7::1/64', Pool: 'fd00:7::/64' }],
  })
  t.match(bad, { status: 400, body: { Err: /gateway_mode_ipv6=isolated is not supported/ } })
  const cn = await call(app, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1, Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { 'com.docker.network.bridge.gateway_mode_ipv6': 'routed' } },
    IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }],
    IPv6Data: [{ AddressSpace: 'FerryLocal', Gateway: 'fd00:7::1/64', Pool: 'fd00:7::/64' }],
  })
  t.equal(cn.status, 200, JSON.stringify(cn.body))
  t.match(store.state.networks[N1], { subnet: '10.123.0.0/24', gateway: '10.123.0.1', subnet6: 'fd00:7::/64', gateway6: 'fd00:7::1', poolId6: 'FerryLocal/fd00:7::/64', gatewayMode6: 'routed' })
  const addrs = (await links.listAddresses()).filter((a) => a.ifname === 'fy-8202ce046a94').map((a) => a.cidr)
  t.same(addrs, ['10.123.0.1/24', 'fd00:7::1/64'], 'both gateways on the bridge')
  t.equal(await links.getIpv6Conf('fy-8202ce046a94', 'accept_ra'), '0')
  t.equal(await links.getIpv6Conf('fy-8202ce046a94', 'autoconf'), '0')
  t.equal(await links.getIpv6Conf('fy-8202ce046a94', 'disable_ipv6'), '0')
  t.same((await call(app, 'IpamDriver.RequestAddress', { PoolID: p4.PoolID, Address: '', Options: {} })).body, { Address: '10.123.0.2/24', Data: {} })
  t.same((await call(app, 'IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: 'fd00:7::a', Options: {} })).body, { Address: 'fd00:7::a/64', Data: {} })
  const outside = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: 'fd00:8::a/64', MacAddress: '' } })
  t.match(outside, { status: 400, body: { Err: /endpoint IPv6 address "fd00:8::a\/64" is not an IPv6 address with the prefix \/64 of subnet fd00:7::\/64|outside the network's subnet fd00:7::\/64/ } })
  const gwAddr = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: 'fd00:7::1/64', MacAddress: '' } })
  t.match(gwAddr, { status: 409, body: { Err: /endpoint IPv6 address fd00:7::1 is the gateway's address/ } })
  const ep = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: 'fd00:7:0::a/64', MacAddress: '' } })
  t.equal(ep.status, 200, JSON.stringify(ep.body))
  t.notOk((ep.body.Interface as Record<string, unknown>).AddressIPv6, 'the engine\'s own IPv6 address is never answered back')
  t.match(store.state.endpoints[EPA], { address: '10.123.0.2', prefixLen: 24, address6: 'fd00:7::a', prefixLen6: 64 })
  t.equal(await links.getIpv6Conf('fyh4165a5631641', 'disable_ipv6'), '1', 'the host end takes no IPv6 address')
  const join = await call(app, 'NetworkDriver.Join', { NetworkID: N1, EndpointID: EPA, SandboxKey: '/var/run/docker/netns/x' })
  t.match(join.body, { Gateway: '10.123.0.1', GatewayIPv6: 'fd00:7::1' })
  await call(app, 'NetworkDriver.Leave', { NetworkID: N1, EndpointID: EPA })
  await call(app, 'NetworkDriver.DeleteEndpoint', { NetworkID: N1, EndpointID: EPA })
  await call(app, 'NetworkDriver.DeleteNetwork', { NetworkID: N1 })
  for (const [pool, a] of [[p4.PoolID, '10.123.0.2/24'], [p4.PoolID, '10.123.0.1/24'], [p6.PoolID, 'fd00:7::a/64'], [p6.PoolID, 'fd00:7::1/64']]) {
    await call(app, 'IpamDriver.ReleaseAddress', { PoolID: pool, Address: a })
  }
  await call(app, 'IpamDriver.ReleasePool', { PoolID: p4.PoolID })
  await call(app, 'IpamDriver.ReleasePool', { PoolID: p6.PoolID })
  t.same(store.state.pools, {}, 'no pool left')
  t.notOk(await links.getLink('fy-8202ce046a94'))
})

t.test('an IPv6 address on an IPv4-only network is refused with a sentence; --ipv6 on an overlay needs only a cluster', async (t) => {
  const { app } = setup(t)
  let pool = ''
  for (const step of fixture.lifecycle.slice(0, 9)) {
    const res = await call(app, step.method, step.body === undefined ? undefined : withPool(step.body, pool))
    if (step.method === 'IpamDriver.RequestPool') pool = String(res.body.PoolID)
  }
  const res = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: 'fd00::2/64', MacAddress: '' } })
  t.equal(res.status, 400)
  t.match(res.body.Err, /endpoint IPv6 address "fd00::2\/64" given on network 8202ce046a94, which has no IPv6 subnet \(it was created without --ipv6\)/)
  const ov = await call(app, 'NetworkDriver.GwAllocCheck', { Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { 'ferry.overlay': 'ov1' } } })
  t.match(ov, { status: 503, body: { Err: /network option ferry.overlay=ov1 needs a cluster/ } }, 'dual-stack overlays are supported: only the missing cluster is refused')
})

t.test('an IPv6-only network as Docker 28+ makes it (--ipv4=false --ipv6): no IPv4 pool, address, gateway or rule', async (t) => {
  const { app, links, firewall, store } = setup(t)
  await replay(t, app, fixture.ipv6Only, async (step, body, pool) => {
    if (step.method === 'NetworkDriver.CreateNetwork') {
      const net = store.state.networks[N1]!
      t.match(net, { subnet6: 'fd00:123::/64', gateway6: 'fd00:123::1', poolId6: pool })
      t.same([net.subnet, net.gateway, net.poolId], [undefined, undefined, undefined], 'no IPv4 side')
      t.same((await links.listAddresses()).filter((a) => a.ifname === 'fy-8202ce046a94').map((a) => a.cidr), ['fd00:123::1/64'], 'the IPv6 gateway alone on the bridge')
      t.equal(await links.getIpv6Conf('fy-8202ce046a94', 'accept_ra'), '0')
      const nat = firewall.networks.get(N1)!
      t.same([nat.subnet, nat.gateway, nat.subnet6], [undefined, undefined, 'fd00:123::/64'], 'the firewall gets the IPv6 side only')
    }
    if (step.method === 'NetworkDriver.CreateEndpoint') {
      const ep = store.state.endpoints[EPA]!
      t.match(ep, { address6: 'fd00:123::2', prefixLen6: 64 })
      t.same([ep.address, ep.prefixLen], [undefined, undefined], 'no IPv4 address')
    }
    if (step.method === 'NetworkDriver.Join') t.notOk('Gateway' in body, 'no IPv4 gateway: the engine sets the IPv6 default route only')
    if (step.method === 'NetworkDriver.ProgramExternalConnectivity') {
      t.match(firewall.endpoints.get(EPA)?.ports, [{ containerIp: 'fd00:123::2', hostPort: 18080, containerPort: 80 }], 'the port is published to the IPv6 address')
    }
  })
  await nothingLeft(t, { links, store })
})

t.test('an IPv6-only CreateNetwork without its IPv6 pool, an IPv4 pool with enable_ipv4 false, and an IPv4 address on it are refused', async (t) => {
  const { app } = setup(t)
  const v6only = { 'com.docker.network.enable_ipv4': false, 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': {} }
  const none = await call(app, 'NetworkDriver.CreateNetwork', { NetworkID: N1, Options: v6only, IPv4Data: [], IPv6Data: [] })
  t.match(none, { status: 400, body: { Err: /^CreateNetwork carries no address pool \(neither IPv4Data nor IPv6Data\)/ } })
  const p4 = (await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })).body
  await call(app, 'IpamDriver.RequestAddress', { PoolID: p4.PoolID, Address: '10.123.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  const p6 = (await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: 'fd00:124::/64', SubPool: '', Options: {}, V6: true })).body
  await call(app, 'IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  const v4Data = [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }]
  const v6Data = [{ AddressSpace: 'FerryLocal', Gateway: 'fd00:124::1/64', Pool: 'fd00:124::/64' }]
  const both = await call(app, 'NetworkDriver.CreateNetwork', { NetworkID: N1, Options: v6only, IPv4Data: v4Data, IPv6Data: v6Data })
  t.match(both, { status: 400, body: { Err: /IPv6-only network \(enable_ipv4 false\) but sent the IPv4 pool "10\.123\.0\.0\/24"/ } })
  const noV4 = await call(app, 'NetworkDriver.CreateNetwork', { NetworkID: N1, Options: { 'com.docker.network.enable_ipv6': true }, IPv4Data: [], IPv6Data: v6Data })
  t.match(noV4, { status: 400, body: { Err: /asked for an IPv4 network but sent no IPv4 pool/ } }, 'without enable_ipv4 false (an engine before 28) IPv4 is expected')
  t.equal((await call(app, 'NetworkDriver.CreateNetwork', { NetworkID: N1, Options: v6only, IPv4Data: [], IPv6Data: v6Data })).status, 200)
  const addr = await call(app, 'IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: '', Options: {} })
  const v4ep = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: String(addr.body.Address), MacAddress: '' } })
  t.match(v4ep, { status: 400, body: { Err: /endpoint IPv4 address "10\.123\.0\.2\/24" given on network 8202ce046a94, which is IPv6-only/ } })
  const noAddr = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EPA, Interface: { Address: '', AddressIPv6: '', MacAddress: '' } })
  t.match(noAddr, { status: 400, body: { Err: /CreateEndpoint carries no IPv6 address on an IPv6-only network/ } })
})

t.test('the per-endpoint interface name option is refused (the protocol cannot carry it)', async (t) => {
  const { app, links } = setup(t)
  let pool = ''
  for (const step of fixture.lifecycle.slice(0, 9)) {
    const res = await call(app, step.method, step.body === undefined ? undefined : withPool(step.body, pool))
    if (step.method === 'IpamDriver.RequestPool') pool = String(res.body.PoolID)
  }
  const res = await call(app, 'NetworkDriver.CreateEndpoint', {
    NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: '', MacAddress: '' },
    Options: { 'com.docker.network.endpoint.ifname': 'web0' },
  })
  t.equal(res.status, 400)
  t.match(res.body.Err, /com\.docker\.network\.endpoint\.ifname is not supported/)
  t.notOk(await links.getLink('fyh4165a5631641'))
})

t.test('swarm-only calls have schemas: a bad body is a 400, never a 500', async (t) => {
  const { app } = setup(t)
  t.equal((await call(app, 'NetworkDriver.FreeNetwork', { NetworkID: 'a/b' })).status, 400)
  t.equal((await call(app, 'NetworkDriver.AllocateNetwork', { NetworkID: N1, Options: { a: 1 } })).status, 400)
  t.match((await call(app, 'NetworkDriver.AllocateNetwork', { NetworkID: N1, Options: {} })).body, { Err: /swarm network allocation/ })
  t.equal((await call(app, 'NetworkDriver.GwAllocCheck', { Options: { 'com.docker.network.enable_ipv4': 'yes' } })).status, 400)
})
