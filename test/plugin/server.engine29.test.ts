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
  { lifecycle: Step[], gwAllocCheck: Refusal[] }

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

t.test('a Docker 29 lifecycle: create, run with a port, stop, network rm', async (t) => {
  const { app, links, firewall, store } = setup(t)
  let pool = ''
  for (const step of fixture.lifecycle) {
    const res = await call(app, step.method, step.body === undefined ? undefined : withPool(step.body, pool))
    t.equal(res.status, 200, `${step.method} (${step.source}): ${JSON.stringify(res.body)}`)
    if (step.method === 'IpamDriver.RequestPool') pool = String(res.body.PoolID)
    if (step.expect !== undefined) t.match(res.body, step.expect, step.method)
    if (step.method === 'NetworkDriver.ProgramExternalConnectivity') t.equal(firewall.endpoints.get(EPA)?.ports.length, 1, 'the port is published')
    if (step.method === 'NetworkDriver.CreateNetwork') t.equal((await links.getLink('fy-8202ce046a94'))?.mtu, 1400)
  }
  t.notOk(await links.getLink('fy-8202ce046a94'))
  t.same(store.state.networks, {})
  t.same(store.state.endpoints, {})
  t.same(store.state.pools, {})
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

t.test('an IPv6 pool request (20.10 sends it after the IPv4 pool) is refused with the IPv6 sentence', async (t) => {
  const { app, store } = setup(t)
  const res = await call(app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '', SubPool: '', Options: {}, V6: true })
  t.equal(res.status, 400)
  t.match(res.body.Error, /do not support IPv6 yet: create the network without --ipv6/)
  t.same(store.state.pools, {})
})

t.test('an IPv4-less CreateNetwork (no IPv4Data, enable_ipv4 false) is refused clearly', async (t) => {
  const { app } = setup(t)
  const res = await call(app, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1,
    Options: { 'com.docker.network.enable_ipv4': false, 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': {} },
    IPv4Data: [], IPv6Data: [{ AddressSpace: 'FerryLocal', Gateway: 'fd00::1/64', Pool: 'fd00::/64' }],
  })
  t.equal(res.status, 400)
  t.equal(res.body.Err, 'ferry networks need IPv4: create the network without --ipv4=false')
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
