import t from 'tap'
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { authorized, route, serveAgentMetrics, startMetricsServer } from '../../src/metrics/server.js'
import { FerryMetrics } from '../../src/metrics/registry.js'

const log = pino({ level: 'silent' })

function get (port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, body: string, type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('routing and auth (pure)', async (t) => {
  t.same(route('GET', '/metrics', true), { status: 200 })
  t.same(route('HEAD', '/metrics?x', true), { status: 200 })
  t.equal(route('POST', '/metrics', true).status, 405)
  t.equal(route('GET', '/', true).status, 404)
  t.equal(route('GET', '/metrics', false).status, 401)
  const tok = 'x'.repeat(20)
  t.ok(authorized(undefined, undefined))
  t.ok(authorized(`Bearer ${tok}`, tok))
  t.ok(authorized(`bearer  ${tok}`, tok))
  t.notOk(authorized(undefined, tok))
  t.notOk(authorized(`Bearer ${tok}x`, tok))
  t.notOk(authorized(`Basic ${tok}`, tok))
  t.notOk(authorized(`Bearer ${tok} extra`, tok))
})

t.test('serves /metrics on loopback without a token', async (t) => {
  const m = new FerryMetrics()
  m.onCall('NetworkDriver.Join', 1)
  const s = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 } }, m, log)
  t.teardown(() => s.close())
  const r = await get(s.address.port, '/metrics')
  t.equal(r.status, 200)
  t.match(r.type, /^text\/plain; version=0\.0\.4/)
  t.match(r.body, 'ferry_plugin_request_duration_seconds_count{method="NetworkDriver.Join"} 1')
  t.equal((await get(s.address.port, '/other')).status, 404)
  t.equal((await get(s.address.port, '/metrics', {}, 'DELETE')).status, 405)
})

t.test('the agent\'s endpoint reads the agent on each scrape', async (t) => {
  const networks: Array<{ id: string }> = []
  const { metrics, server } = await serveAgentMetrics({ listen: { host: '127.0.0.1', port: 0 } }, {
    networks: () => networks as never[],
    endpoints: () => [],
    reconcile: { runs: 3, repairs: 1, lastError: '' },
    store: { writes: 7, lastWriteMs: 1.5 },
  }, log)
  t.teardown(() => server.close())
  metrics.onCall('NetworkDriver.Join', 1)
  const first = await get(server.address.port, '/metrics')
  t.match(first.body, /ferry_reconcile_runs_total 3/)
  t.match(first.body, 'ferry_plugin_request_duration_seconds_count{method="NetworkDriver.Join"} 1', 'plugin calls counted by the registry returned')
  t.match(first.body, /ferry_networks\{driver="bridge"\} 0/)
  networks.push({ id: 'n1' })
  t.match((await get(server.address.port, '/metrics')).body, /ferry_networks\{driver="bridge"\} 1/, 'read again at the next scrape')
})

t.test('with a token, every request must carry it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fyms-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const token = 'f00dfeedf00dfeedf00dfeed'
  writeFileSync(join(dir, 'token'), token + '\n', { mode: 0o600 })
  const s = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 }, tokenFile: join(dir, 'token') }, new FerryMetrics(), log)
  t.teardown(() => s.close())
  const denied = await get(s.address.port, '/metrics')
  t.equal(denied.status, 401)
  t.notMatch(denied.body, 'ferry_')
  t.equal((await get(s.address.port, '/metrics', { authorization: 'Bearer wrong-token-wrong-token' })).status, 401)
  const ok = await get(s.address.port, '/metrics', { authorization: `Bearer ${token}` })
  t.equal(ok.status, 200)
  t.match(ok.body, 'ferry_build_info')
})

t.test('a port in use is a clear start error', async (t) => {
  const a = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 } }, new FerryMetrics(), log)
  t.teardown(() => a.close())
  await t.rejects(startMetricsServer({ listen: { host: '127.0.0.1', port: a.address.port } }, new FerryMetrics(), log), { code: 'INVALID_OPTION', message: /cannot serve metrics/ })
})
