import t from 'tap'
import { buildPluginServer } from '../../src/plugin/server.js'
import { fakeWorld, silentLog } from '../harness/fakes.js'

const N1 = '8202ce046a9453e028a5bdf94d5d110858a259ca27328f15d691d0e8e4c561c1'
const EPA = '4165a563164108a7381e6dffcfdfab4eb7bd6c8aca0d2dccaf021a0205971004'

/** Send a request exactly as dockerd does: POST, no Content-Type, Accept header, raw body. */
async function call (app: ReturnType<typeof buildPluginServer>, method: string, body?: unknown) {
  const payload = body === undefined ? '' : JSON.stringify(body)
  const res = await app.inject({
    method: 'POST',
    url: `/${method}`,
    headers: { host: '', 'user-agent': 'Go-http-client/1.1', accept: 'application/vnd.docker.plugins.v1.2+json', 'content-length': String(Buffer.byteLength(payload)) },
    payload,
  })
  return { status: res.statusCode, body: res.body === '' ? {} : JSON.parse(res.body) }
}

function setup (t: Tap.Test) {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  return { ...w, app }
}

t.test('activate and capabilities (empty bodies)', async (t) => {
  const { app } = setup(t)
  t.same(await call(app, 'Plugin.Activate'), { status: 200, body: { Implements: ['NetworkDriver', 'IpamDriver'] } })
  t.same((await call(app, 'NetworkDriver.GetCapabilities')).body, { Scope: 'local', ConnectivityScope: 'global', GwAllocChecker: true })
  t.same((await call(app, 'IpamDriver.GetCapabilities')).body, { RequiresMACAddress: false, RequiresRequestReplay: true })
  const spaces = (await call(app, 'IpamDriver.GetDefaultAddressSpaces')).body
  t.type(spaces.LocalDefaultAddressSpace, 'string')
})

t.test('the trace: network create, container start, stop, network rm', async (t) => {
  const { app, links, firewall, store } = setup(t)
  const pool = await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })
  t.equal(pool.status, 200)
  t.equal(pool.body.Pool, '10.123.0.0/24')
  const poolId = pool.body.PoolID
  const gw = await call(app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.123.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  t.same(gw.body.Address, '10.123.0.1/24')
  const cn = await call(app, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1400' } },
    IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }],
    IPv6Data: [],
  })
  t.same(cn, { status: 200, body: {} })
  const br = await links.getLink('fy-8202ce046a94')
  t.equal(br?.kind, 'bridge')
  t.equal(br?.mtu, 1400)
  t.ok(br?.up)
  t.ok((await links.listAddresses()).some((a) => a.ifname === 'fy-8202ce046a94' && a.cidr === '10.123.0.1/24'))
  t.ok(firewall.networks.has(N1))

  const addr = await call(app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })
  t.equal(addr.body.Address, '10.123.0.2/24')
  const portmap = [
    { Proto: 6, IP: '', Port: 9000, HostIP: '', HostPort: 0, HostPortEnd: 0 },
    { Proto: 17, IP: '', Port: 82, HostIP: '', HostPort: 18081, HostPortEnd: 18081 },
    { Proto: 6, IP: '', Port: 81, HostIP: '127.0.0.1', HostPort: 0, HostPortEnd: 0 },
    { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18080, HostPortEnd: 18080 },
  ]
  const exposed = [{ Proto: 6, Port: 9000 }, { Proto: 17, Port: 82 }, { Proto: 6, Port: 81 }, { Proto: 6, Port: 80 }]
  const opts = { 'com.docker.network.endpoint.exposedports': exposed, 'com.docker.network.portmap': portmap }
  const ce = await call(app, 'NetworkDriver.CreateEndpoint', {
    NetworkID: N1, EndpointID: EPA, Interface: { Address: '10.123.0.2/24', AddressIPv6: '', MacAddress: '' }, Options: opts,
  })
  t.same(ce, { status: 200, body: { Interface: { MacAddress: '02:42:0a:7b:00:02' } } })
  const host = await links.getLink('fyh4165a5631641')
  t.equal(host?.master, br?.index, 'host end on the bridge')
  t.equal((await links.getLink('fyc4165a5631641'))?.mac, '02:42:0a:7b:00:02')
  const join = await call(app, 'NetworkDriver.Join', { NetworkID: N1, EndpointID: EPA, SandboxKey: '/var/run/docker/netns/271a0c939929', Options: { ...opts, 'com.docker.network.portmap': [...portmap].reverse() } })
  t.same(join.body, { InterfaceName: { SrcName: 'fyc4165a5631641', DstPrefix: 'eth' }, Gateway: '10.123.0.1' })
  const pec = await call(app, 'NetworkDriver.ProgramExternalConnectivity', { NetworkID: N1, EndpointID: EPA, Options: opts })
  t.same(pec.body, {})
  t.equal(firewall.endpoints.get(EPA)?.ports.length, 4)
  const info = await call(app, 'NetworkDriver.EndpointOperInfo', { NetworkID: N1, EndpointID: EPA })
  t.equal(info.status, 200)
  t.type(info.body.Value, 'object')

  t.same((await call(app, 'NetworkDriver.RevokeExternalConnectivity', { NetworkID: N1, EndpointID: EPA })).body, {})
  t.notOk(firewall.endpoints.has(EPA))
  t.same((await call(app, 'NetworkDriver.Leave', { NetworkID: N1, EndpointID: EPA })).body, {})
  t.same((await call(app, 'NetworkDriver.DeleteEndpoint', { NetworkID: N1, EndpointID: EPA })).body, {})
  t.notOk(await links.getLink('fyh4165a5631641'))
  t.same((await call(app, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.123.0.2' })).body, {})

  t.same((await call(app, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.123.0.1' })).body, {})
  t.same((await call(app, 'IpamDriver.ReleasePool', { PoolID: poolId })).body, {})
  t.same((await call(app, 'NetworkDriver.DeleteNetwork', { NetworkID: N1 })).body, {})
  t.notOk(await links.getLink('fy-8202ce046a94'))
  t.same(store.state.networks, {})
  t.same(store.state.endpoints, {})
  t.same(store.state.pools, {})
})

t.test('errors: Err for the network driver, Error for IPAM, never a stack', async (t) => {
  const { app } = setup(t)
  const bad = await call(app, 'NetworkDriver.CreateEndpoint', { NetworkID: N1 })
  t.equal(bad.status, 400)
  t.match(bad.body.Err, /EndpointID/)
  t.notOk(bad.body.Error)
  const nojson = await app.inject({ method: 'POST', url: '/NetworkDriver.Join', payload: '{nope' })
  t.equal(nojson.statusCode, 400)
  t.same(JSON.parse(nojson.body), { Err: 'the request body is not valid JSON' })
  const wrongType = await call(app, 'IpamDriver.RequestPool', { Pool: 42 })
  t.equal(wrongType.status, 400)
  t.match(wrongType.body.Error, /Pool/)
  const unknown = await call(app, 'NetworkDriver.Frobnicate', {})
  t.equal(unknown.status, 404)
  t.match(unknown.body.Err, /does not implement/)
  const noNet = await call(app, 'NetworkDriver.Join', { NetworkID: N1, EndpointID: EPA, SandboxKey: '/x' })
  t.equal(noNet.status, 404)
  t.match(noNet.body.Err, /not a ferry network/)
  const v6 = await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.0.0.0/24', SubPool: '', Options: {}, V6: true })
  t.match(v6.body.Error, /is not an IPv6 subnet/)
  t.equal(v6.body.Err, v6.body.Error)
  const badOpt = await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.9.0.0/24', SubPool: '', Options: {}, V6: false })
  await call(app, 'IpamDriver.RequestAddress', { PoolID: badOpt.body.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  const cn = await call(app, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1, Options: { 'com.docker.network.generic': { 'com.docker.network.driver.mtu': 'big' } },
    IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.9.0.1/24', Pool: '10.9.0.0/24' }],
  })
  t.equal(cn.status, 400)
  t.equal(cn.body.Err, 'option com.docker.network.driver.mtu must be a whole number from 68 to 65535, not "big"')
})

t.test('delete of what is already gone succeeds', async (t) => {
  const { app } = setup(t)
  t.same(await call(app, 'NetworkDriver.DeleteEndpoint', { NetworkID: N1, EndpointID: EPA }), { status: 200, body: {} })
  t.same(await call(app, 'NetworkDriver.DeleteNetwork', { NetworkID: N1 }), { status: 200, body: {} })
  t.same(await call(app, 'NetworkDriver.Leave', { NetworkID: N1, EndpointID: EPA }), { status: 200, body: {} })
  t.same(await call(app, 'NetworkDriver.RevokeExternalConnectivity', { NetworkID: N1, EndpointID: EPA }), { status: 200, body: {} })
  t.same(await call(app, 'IpamDriver.ReleaseAddress', { PoolID: 'FerryLocal/10.1.0.0/24', Address: '10.1.0.9' }), { status: 200, body: {} })
  t.same(await call(app, 'IpamDriver.ReleasePool', { PoolID: 'FerryLocal/10.1.0.0/24' }), { status: 200, body: {} })
})

t.test('the replay window opens on Plugin.Activate and on IpamDriver.GetCapabilities (a managed plugin is never activated)', async (t) => {
  const req = { AddressSpace: 'FerryLocal', Pool: '10.124.0.0/24', SubPool: '', Options: {}, V6: false }
  for (const opener of ['Plugin.Activate', 'IpamDriver.GetCapabilities']) {
    const { app } = setup(t)
    const held = await call(app, 'IpamDriver.RequestPool', req)
    t.equal(held.status, 200)
    const again = await call(app, 'IpamDriver.RequestPool', req)
    t.match(again, { status: 409, body: { Error: /overlaps/ } }, 'outside a replay the same subnet is a conflict')
    await call(app, 'NetworkDriver.GetCapabilities')
    t.equal((await call(app, 'IpamDriver.RequestPool', req)).status, 409, "NetworkDriver.GetCapabilities (the harness's probe) opens no replay")
    await call(app, opener)
    t.same(await call(app, 'IpamDriver.RequestPool', req), held, `after ${opener} the engine's replay of a held pool gets that pool`)
    t.equal((await call(app, 'IpamDriver.RequestPool', req)).status, 409, 'once per replay')
  }
})
