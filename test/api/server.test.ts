/** The DNS cache routes of the admin API (src/api/server.ts) over a fake agent. */
import t from 'tap'
import { buildApiServer, type AgentView } from '../../src/api/server.js'
import { silentLog } from '../harness/fakes.js'

const notUsed = async (): Promise<never> => { throw new Error('not used') }
const base = {
  status: notUsed, networks: notUsed, endpoints: notUsed, reconcile: notUsed, clusterStatus: notUsed, peers: notUsed,
  dnsRecords: notUsed, dnsQuery: notUsed, runtime: notUsed,
}

t.test('GET shows the cache, DELETE flushes it first', async (t) => {
  const calls: boolean[] = []
  const agent = { ...base, dnsCache: async (flush: boolean) => { calls.push(flush); return { entries: flush ? 0 : 3, flushed: flush ? 3 : 0 } } } as unknown as AgentView
  const app = buildApiServer(agent, silentLog)
  t.teardown(() => app.close())
  const shown = await app.inject({ method: 'GET', url: '/v1/dns/cache' })
  t.equal(shown.statusCode, 200)
  t.same(shown.json(), { entries: 3, flushed: 0 })
  const flushed = await app.inject({ method: 'DELETE', url: '/v1/dns/cache' })
  t.equal(flushed.statusCode, 200)
  t.same(flushed.json(), { entries: 0, flushed: 3 })
  t.same(calls, [false, true])
})

t.test('an agent without a cache: a clear error, not a crash', async (t) => {
  const app = buildApiServer(base as unknown as AgentView, silentLog)
  t.teardown(() => app.close())
  const r = await app.inject({ method: 'GET', url: '/v1/dns/cache' })
  t.equal(r.statusCode, 400)
  t.match(r.json(), { error: { code: 'UNSUPPORTED' } })
})

t.test('network inspect shows a dual-stack network\'s IPv6 pool beside its IPv4 one', async (t) => {
  const net = { id: 'a'.repeat(64), name: 'dual', poolId: 'P4', poolId6: 'P6', subnet: '10.1.0.0/24', subnet6: 'fd00:1::/64' }
  const pools: Record<string, unknown> = { P4: { id: 'P4', subnet: '10.1.0.0/24' }, P6: { id: 'P6', subnet: 'fd00:1::/64' } }
  const agent = { ...base, networks: async () => [net], endpoints: async () => [], pool: (id: string) => pools[id] } as unknown as AgentView
  const app = buildApiServer(agent, silentLog)
  t.teardown(() => app.close())
  const r = await app.inject({ method: 'GET', url: '/v1/networks/dual' })
  t.equal(r.statusCode, 200, r.body)
  t.match(r.json(), { subnet6: 'fd00:1::/64', pool: { subnet: '10.1.0.0/24' }, pool6: { subnet: 'fd00:1::/64' } })
})

t.test('networks, endpoints and ports by name, full id or id prefix (src/util/resolve.ts), as the CLI sends them', async (t) => {
  const hex = (c: string, rest = c) => c + rest.repeat(63)
  const front = { id: hex('3', 'a'), name: 'front', bridge: 'fy-front' }
  const back = { id: hex('3', 'b'), name: 'back', bridge: 'fy-back' }
  const port = { proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.1.0.2', containerPort: 80, containerPortEnd: 80 }
  const web = { id: hex('e', '1'), networkId: front.id, networkName: 'front', container: 'web', containerId: hex('a', '1'), ports: [port] }
  const webBack = { id: hex('e', '2'), networkId: back.id, networkName: 'back', container: 'web', containerId: hex('a', '1'), ports: [] }
  const db = { id: hex('e', '3'), networkId: back.id, networkName: 'back', container: 'db', containerId: hex('a', '2'), ports: [] }
  const agent = { ...base, networks: async () => [front, back], endpoints: async () => [web, webBack, db] } as unknown as AgentView
  const app = buildApiServer(agent, silentLog)
  t.teardown(() => app.close())
  const get = async (url: string) => { const r = await app.inject({ method: 'GET', url }); return { status: r.statusCode, body: r.json<Record<string, unknown> & { error?: { code: string, message: string } }>() } }

  for (const key of ['front', front.id, front.id.slice(0, 12), '3a', 'fy-front']) {
    const r = await get(`/v1/networks/${encodeURIComponent(key)}`)
    t.equal(r.status, 200, `network inspect ${key}`)
    t.match(r.body, { id: front.id, endpointList: [{ container: 'web' }] })
  }
  const amb = await get('/v1/networks/3')
  t.equal(amb.status, 400)
  t.same(amb.body.error?.message, '"3" names 2 ferry networks: front (3aaaaaaaaaaa), back (3bbbbbbbbbbb); give more of the id (ferry network ls lists them)')
  const unknown = await get('/v1/networks/nope')
  t.equal(unknown.status, 404)
  t.match(unknown.body.error, { code: 'NETWORK_NOT_FOUND', message: /^no ferry network is named "nope" or has that id; known: front \(3aaaaaaaaaaa\), back/ })
  const bad = await get(`/v1/networks/${encodeURIComponent('a\u0001b')}`)
  t.equal(bad.status, 400)
  t.match(bad.body.error, { code: 'INVALID_REQUEST', message: /control characters/ })

  const eps = async (q: string) => ((await get(`/v1/endpoints?network=${encodeURIComponent(q)}`)).body as unknown as Array<{ id: string }>).map((e) => e.id)
  t.same(await eps('back'), [webBack.id, db.id], 'endpoint ls --network by name')
  t.same(await eps('3b'), [webBack.id, db.id], 'by id prefix')

  const ports = async (target: string) => get(`/v1/ports?target=${encodeURIComponent(target)}`)
  for (const key of ['web', '/web', web.containerId, web.containerId.slice(0, 12), 'a1', web.id, 'e1']) {
    const r = await ports(key)
    t.equal(r.status, 200, `port ls ${key}`)
    t.match(r.body, [{ endpoint: web.id, container: 'web', network: 'front', hostPort: 8080 }])
  }
  t.same((await ports('db')).body, [], 'a container that publishes nothing: no ports, no error')
  const ambC = await ports('a')
  t.equal(ambC.status, 400)
  t.match(ambC.body.error, { code: 'INVALID_REQUEST', message: '"a" names 2 containers or endpoints: web (a11111111111), db (a22222222222); give more of the id' })
  const none = await ports('nobody')
  t.equal(none.status, 404)
  t.match(none.body.error, { code: 'ENDPOINT_NOT_FOUND', message: 'no container or endpoint is named "nobody" or has that id (ferry endpoint ls lists them)' })
  t.equal((await ports('x;y')).status, 400, 'a container key outside Docker\'s name characters')
  t.equal((await get(`/v1/networks/${'x'.repeat(257)}`)).status, 400, 'too long')
})
