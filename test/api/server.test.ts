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
