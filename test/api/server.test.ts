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
