/**
 * The metrics endpoint of a real agent (no engine) in a test namespace: it is
 * off unless asked for, and after plugin calls made as the engine makes them,
 * GET /metrics (scraped from inside the namespace) has every family.
 */
import t from 'tap'
import http from 'node:http'
import { netns, nsExec, uniqueName } from '../harness/netns.js'
import { startAgent } from '../harness/agent.js'
import { redisServer } from '../harness/redis.js'
import { untilValue } from '../harness/until.js'

const PORT = 9323
const N1 = '8202ce046a9453e028a5bdf94d5d110858a259ca27328f15d691d0e8e4c561c1'

/** A plugin call exactly as dockerd sends it: POST, no Content-Type, Accept header, raw body. */
function call (socketPath: string, method: string, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const payload = body === undefined ? '' : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath, method: 'POST', path: `/${method}`,
      headers: { Host: '', 'User-Agent': 'Go-http-client/1.1', 'Content-Length': Buffer.byteLength(payload), Accept: 'application/vnd.docker.plugins.v1.2+json' },
    }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

function scrape (ns: string, extra: string[] = []): { code: string, body: string } {
  const out = nsExec(ns, ['curl', '-sS', '-m', '5', '-w', '\n%{http_code}', ...extra, `http://127.0.0.1:${PORT}/metrics`], { allowFailure: true })
  const i = out.lastIndexOf('\n')
  return { body: out.slice(0, i), code: out.slice(i + 1) }
}

t.test('no metrics listener unless asked for', async (t) => {
  const ns = netns(t, 'fym')
  await startAgent(t, { ns, pluginName: uniqueName('fym') })
  const listening = nsExec(ns, ['ss', '-Htln'])
  t.equal(listening.trim(), '', 'no TCP listener in the namespace')
})

t.test('GET /metrics after plugin calls', async (t) => {
  const ns = netns(t, 'fym')
  const agent = await startAgent(t, { ns, pluginName: uniqueName('fym'), args: ['--metrics-listen', `127.0.0.1:${PORT}`] })
  const sock = agent.pluginSocket
  const pool = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })
  t.equal(pool.status, 200)
  const gw = await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Address: '10.123.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  t.equal(gw.status, 200)
  const cn = await call(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: N1, Options: { 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'FerryLocal', Gateway: '10.123.0.1/24', Pool: '10.123.0.0/24' }], IPv6Data: [],
  })
  t.equal(cn.status, 200, JSON.stringify(cn.body))
  const overlap = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/25', SubPool: '', Options: {}, V6: false })
  t.not(overlap.status, 200, 'an overlapping pool is refused')
  t.equal((await call(sock, 'NetworkDriver.Join', { junk: true })).status, 400)

  const { code, body } = scrape(ns)
  t.equal(code, '200')
  const families = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1])
  for (const f of [
    'ferry_plugin_request_duration_seconds', 'ferry_plugin_errors_total', 'ferry_networks', 'ferry_endpoints', 'ferry_published_ports',
    'ferry_reconcile_runs_total', 'ferry_reconcile_repairs_total', 'ferry_store_writes_total', 'ferry_store_last_write_seconds',
    'ferry_dns_queries_total', 'ferry_dns_failures_total', 'ferry_build_info',
  ]) t.ok(families.includes(f), `family ${f}`)
  t.match(body, /^ferry_plugin_request_duration_seconds_count\{method="NetworkDriver.CreateNetwork"\} 1$/m)
  t.match(body, /^ferry_plugin_request_duration_seconds_count\{method="IpamDriver.RequestPool"\} 1$/m)
  t.match(body, /^ferry_plugin_errors_total\{method="IpamDriver.RequestPool",code="POOL_OVERLAP"\} 1$/m)
  t.match(body, /^ferry_plugin_errors_total\{method="NetworkDriver.Join",code="INVALID_REQUEST"\} 1$/m)
  t.match(body, /^ferry_networks\{driver="bridge"\} 1$/m)
  t.match(body, /^ferry_reconcile_runs_total [1-9]\d*$/m)
  t.match(body, /^ferry_store_writes_total [1-9]\d*$/m)
  t.notMatch(body, 'ferry_cluster_', 'no cluster families without --cluster')

  t.equal(scrape(ns, ['-X', 'POST']).code, '405')
})

t.test('a non-loopback metrics address without a token is refused at start', async (t) => {
  const ns = netns(t, 'fym')
  await t.rejects(startAgent(t, { ns, pluginName: uniqueName('fym'), args: ['--metrics-listen', `0.0.0.0:${PORT}`], readyTimeoutMs: 15_000 }),
    { message: /needs --metrics-token/ })
})

t.test('with --cluster: the overlay families', async (t) => {
  const ns = netns(t, 'fym')
  const redis = await redisServer(t, { ns })
  await startAgent(t, { ns, pluginName: uniqueName('fym'), args: ['--metrics-listen', `127.0.0.1:${PORT}`, '--cluster', redis.url, '--advertise-addr', '127.0.0.1'] })
  const body = await untilValue('the agent to report its cluster connected', () => { const b = scrape(ns).body; return /^ferry_cluster_connected 1$/m.test(b) && b }, { everyMs: 100 })
  t.match(body, /^ferry_cluster_connected 1$/m)
  t.match(body, /^ferry_cluster_commands_total [1-9]\d*$/m)
  t.match(body, /^ferry_cluster_revision \d+$/m)
  t.match(body, /^ferry_overlay_sync_revision -?\d+$/m)
  t.match(body, /^ferry_overlay_sync_lag_revisions \d+$/m)
  t.match(body, /^ferry_overlay_synced [01]$/m)
  t.match(body, /^# TYPE ferry_overlay_peers gauge$/m)
})
