/**
 * The Redis cluster store against a real redis-server (started by the test on a
 * free loopback port, killed on teardown): the shared contract, then what only
 * a real server shows (timers, pub/sub latency, command counts, auth, sentinel).
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { RedisBackend, RedisClusterStore, connectCluster, type RedisClusterOptions } from '../../src/cluster/redis.js'
import { ClusterClient } from '../../src/cluster/client.js'
import { ClusterKey } from '../../src/cluster/key.js'
import { parseClusterUrl } from '../../src/cluster/url.js'
import { PeerSync } from '../../src/vxlan/peers.js'
import { overlayMac } from '../../src/vxlan/plan.js'
import { GatedDataPlane } from '../harness/recording-dataplane.js'
import { clusterContract, record } from '../harness/cluster-contract.js'
import { freePort, redisServer } from '../harness/redis.js'
import { sh } from '../harness/netns.js'
import { until } from '../harness/until.js'

const server = await redisServer(t)

function store (hostId: string, vtep: string, extra: Partial<RedisClusterOptions> = {}): RedisClusterStore {
  return new RedisClusterStore({ url: server.url, hostId, advertiseAddr: vtep, heartbeatMs: 0, ...extra })
}

clusterContract(t, {
  concurrency: 100,
  async store (t, hostId, vtep, opts = {}) {
    const s = store(hostId, vtep, { hostTtlMs: opts.ttlMs ?? 10_000 })
    t.teardown(() => s.close())
    await s.start(opts.local)
    return s
  },
  async elapse (ms) { await delay(ms) },
  async crash () { await server.kill() },
  async revive () { await server.start() },
  async isEmpty () {
    const left = server.keys('*')
    if (left.length > 0) t.comment(`keys left: ${left.join(' ')}`)
    return left.length === 0
  },
})

function evalshaCalls (): number {
  const m = /cmdstat_evalsha:calls=(\d+)/.exec(server.cli(['info', 'commandstats']))
  return Number(m?.[1] ?? 0)
}

t.test('every key is under the ferry: prefix; a publication is one EVALSHA on the server', async (t) => {
  const h1 = store('h1', '192.168.50.1')
  const h2 = store('h2', '192.168.50.2')
  t.teardown(() => h1.close())
  t.teardown(() => h2.close())
  await h1.start()
  await h2.start()
  await h1.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await h2.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  const ip = await h1.allocateAddress('ov1')
  await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:02' })
  const keys = server.keys('*')
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith('ferry:')), `keys: ${keys.join(' ')}`)

  const r2 = record(h2)
  await r2.wait('resync')
  const n = 200
  for (let i = 0; i < n; i++) await h1.allocateAddress('ov1', `10.30.1.${i + 1}`)
  const before = evalshaCalls()
  const c0 = h1.status().commands
  const lat: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await h1.publishEndpoint({ overlay: 'ov1', endpointId: `lat${i}`, ip: `10.30.1.${i + 1}`, mac: '02:42:0a:1e:01:01' })
    await r2.wait('endpoint-published', (e) => e.kind === 'endpoint-published' && e.endpoint.endpointId === `lat${i}`)
    lat.push(performance.now() - t0)
  }
  t.equal(evalshaCalls() - before, n, 'one EVALSHA per endpoint change, as the server counts')
  t.equal(h1.status().commands - c0, n, 'and as the client counts')
  lat.sort((a, b) => a - b)
  t.comment(`publish -> event on another host: p50 ${lat[n / 2]?.toFixed(2)} ms, p99 ${lat[Math.floor(n * 0.99)]?.toFixed(2)} ms`)

  await h1.leave()
  await h2.leave()
  t.same(server.keys('*'), [], 'no key left')
})

t.test('heartbeat timers: a host that stops (kill -9) is removed after its TTL', async (t) => {
  const live = store('live', '192.168.50.1', { heartbeatMs: 200, hostTtlMs: 1000 })
  const dead = store('dead', '192.168.50.2', { heartbeatMs: 200, hostTtlMs: 1000 })
  t.teardown(() => live.close())
  await live.start()
  await dead.start()
  await dead.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await dead.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip: await dead.allocateAddress('ov1'), mac: '02:42:0a:1e:00:02' })
  const r = record(live)
  await delay(1500)
  t.same((await live.hosts()).map((h) => h.hostId), ['dead', 'live'], 'heartbeats keep both')
  await dead.close()
  t.same((await live.hosts()).map((h) => h.hostId), ['dead', 'live'], 'a stopped host is not removed at once: its registration lives out its TTL')
  const ev = await r.wait('host-removed', undefined, 5000)
  t.match(ev, { hostId: 'dead' }, 'then it is removed (TTL 1000, heartbeat 200)')
  t.same((await live.hosts()).map((h) => h.hostId), ['live'])
  t.same(await live.snapshot().then((s) => s.overlays), [], 'its overlay went with it (no other host used it)')
  await live.leave()
  t.same(server.keys('*'), [])
})

t.test('an unreachable store: start times out, calls fail fast, connect closes', async (t) => {
  const port = await freePort()
  const s = new RedisClusterStore({ url: `redis://127.0.0.1:${port}`, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, startTimeoutMs: 400 })
  t.teardown(() => s.close())
  await t.rejects(s.start(), { code: 'CLUSTER_UNAVAILABLE', message: /ECONNREFUSED|connect/ }, 'start gives up after its timeout')
  await t.rejects(s.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }), { code: 'CLUSTER_UNAVAILABLE', message: new RegExp(`127.0.0.1:${port}`) }, 'a call fails while the store is down')
  t.equal(s.status().state, 'down', 'and the store says so')
  await t.rejects(connectCluster({ url: `redis://127.0.0.1:${port}`, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, startTimeoutMs: 200 }),
    { code: 'CLUSTER_UNAVAILABLE' })
  t.throws(() => new RedisClusterStore({ url: 'http://x', hostId: 'h1', advertiseAddr: '192.168.50.1' }), { code: 'INVALID_OPTION' })
  t.throws(() => new RedisClusterStore({ url: server.url, hostId: 'h1', advertiseAddr: '192.168.50.1', prefix: 'no colon' }), { code: 'INVALID_OPTION' })
})

t.test('a store that comes up after the agent: start fails, the store connects in the background', async (t) => {
  const other = await redisServer(t)
  await other.kill()
  const s = new RedisClusterStore({ url: other.url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, startTimeoutMs: 300 })
  t.teardown(() => s.close())
  const r = record(s)
  await t.rejects(s.start(), { code: 'CLUSTER_UNAVAILABLE' })
  await other.start()
  await r.wait('resync', undefined, 5000)
  t.same((await s.hosts()).map((h) => h.hostId), ['h1'])
  await s.leave()
})

t.test('a password in the URL (requirepass)', async (t) => {
  const other = await redisServer(t)
  other.cli(['config', 'set', 'requirepass', 's3cret/!'])
  const bad = new RedisClusterStore({ url: `redis://:wrong@127.0.0.1:${other.port}`, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, startTimeoutMs: 500 })
  t.teardown(() => bad.close())
  await t.rejects(bad.start(), { code: 'CLUSTER_UNAVAILABLE' })
  t.match(bad.status(), { url: `redis://:***@127.0.0.1:${other.port}` }, 'the password is never shown')
  const good = await connectCluster({ url: `redis://:${encodeURIComponent('s3cret/!')}@127.0.0.1:${other.port}`, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => good.close())
  t.same((await good.hosts()).map((h) => h.hostId), ['h1'])
  await good.leave()
})

t.test('sentinel:// finds the master through a real redis-sentinel', async (t) => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ferry-sentinel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\nsentinel monitor fymaster 127.0.0.1 ${server.port} 1\n`)
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  t.teardown(() => { proc.kill('SIGKILL') })
  await until('the sentinel to know its master', () => sh(['redis-cli', '-p', String(port), 'sentinel', 'get-master-addr-by-name', 'fymaster'], { allowFailure: true }).includes('127.0.0.1'), { everyMs: 50 })
  const s = await connectCluster({ url: `sentinel://127.0.0.1:${port},127.0.0.1:1/fymaster`, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => s.close())
  const def = await s.defineOverlay({ name: 'ovs', subnet: '10.60.0.0/24', gateway: '10.60.0.1' })
  t.equal(def.vni, 4096)
  t.ok(server.keys('ferry:overlay:ovs').length === 1, 'written to the master')
  await s.leave()
  t.same(server.keys('*'), [])
})

t.test('a request made while Redis restarts waits for it (--cluster-wait) instead of failing; a longer outage fails clearly', async (t) => {
  const other = await redisServer(t)
  const OV = { name: 'ovw', subnet: '10.61.0.0/24', gateway: '10.61.0.1' }
  const s = new RedisClusterStore({ url: other.url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, unavailableWaitMs: 60_000 })
  t.teardown(() => s.close())
  const r = record(s)
  await s.start({ overlays: [], addresses: [], endpoints: [] })
  await s.defineOverlay(OV)
  const events: string[] = []
  await other.kill()
  await r.wait('down', undefined, 5000)
  events.push('redis down')
  // The engine's request arrives while the agent is reconnecting.
  const request = s.allocateAddress(OV.name).then((ip) => { events.push(`allocated ${ip}`); return ip }, (err: Error) => { events.push(`failed: ${err.message}`) })
  await delay(0)
  events.push('redis restarting')
  await other.start()
  const ip = await request
  // The client may reconnect (and answer) before the harness's own check sees the new server: only the order up to the restart is fixed.
  t.same(events, ['redis down', 'redis restarting', 'allocated 10.61.0.2'], 'the request waited for the store and then succeeded')
  t.equal(ip, '10.61.0.2')
  t.same(await s.overlay(OV.name).then((d) => d?.subnet), OV.subnet, 'the overlay was re-asserted before the request ran (Redis lost every key)')

  // A short wait, and Redis stays away: the request fails with the clear error once the wait is over.
  const quick = new RedisClusterStore({ url: other.url, hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0, unavailableWaitMs: 300 })
  t.teardown(() => quick.close())
  const rq = record(quick)
  await quick.start()
  await other.kill()
  await rq.wait('down', undefined, 5000)
  await t.rejects(quick.defineOverlay(OV), { code: 'CLUSTER_UNAVAILABLE', message: /not reachable .*did not come back within 0\.3 s/ })
})

t.test('a full read pages through a large overlay (HSCAN), never one reply of the whole set', async (t) => {
  const other = await redisServer(t)
  const N = 1200
  const pub = new RedisClusterStore({ url: other.url, hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0 })
  t.teardown(() => pub.close())
  await pub.start()
  await pub.defineOverlay({ name: 'big', subnet: '10.62.0.0/16', gateway: '10.62.0.1' })
  for (let i = 0; i < N; i++) {
    const n = 2 + i
    const ip = `10.62.${n >> 8}.${n & 255}`
    await pub.allocateAddress('big', ip)
    await pub.publishEndpoint({ overlay: 'big', endpointId: `e${i}`, ip, mac: `02:42:0a:3e:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}` })
  }
  const reader = new RedisClusterStore({ url: other.url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, scanPage: 100 })
  t.teardown(() => reader.close())
  await reader.start()
  // What the server sends per reply: MONITOR shows every command of the read.
  const monitor = spawn('redis-cli', ['-p', String(other.port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => { monitor.kill('SIGKILL') })
  const lines: string[] = []
  monitor.stdout.setEncoding('utf8').on('data', (d: string) => { lines.push(...d.split('\n').filter(Boolean)) })
  await delay(200)
  const before = reader.status().commands
  const snap = await reader.snapshot()
  const used = reader.status().commands - before
  t.equal(snap.overlays[0]?.endpoints.length, N, 'every endpoint is read')
  t.equal(snap.overlays[0]?.claims.length, N, 'and every claim')
  t.equal(new Set(snap.overlays[0]?.endpoints.map((e) => e.endpointId)).size, N, 'each once')
  t.ok(used >= 2 * N / 100, `${used} commands for ${N} endpoints in pages of about 100`)
  await delay(200)
  const scans = lines.filter((l) => /"hscan"/i.test(l))
  t.ok(scans.length >= 2 * N / 100 && scans.every((l) => /"COUNT" "100"/i.test(l)), `${scans.length} HSCAN pages of 100 on the server`)
  t.notOk(lines.some((l) => /"hgetall"/i.test(l)), 'no HGETALL of the whole hash')
  t.equal((await reader.endpoints('big')).length, N, 'the report\'s read of one overlay pages too')
})

/** Host h2 on `url`, in overlay `ov`: `publish(id, n)` allocates `<prefix>.<n / 256>.<n % 256>` and publishes endpoint `id` on it. */
async function publisher (t: Test, url: string, ov: { name: string, subnet: string, gateway: string }, prefix: string):
Promise<((id: string, n: number) => Promise<string>) & { store: RedisClusterStore }> {
  const store = new RedisClusterStore({ url, hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0 })
  t.teardown(() => store.close())
  await store.start()
  await store.defineOverlay(ov)
  const publish = async (id: string, n: number): Promise<string> => {
    const ip = `${prefix}.${n >> 8}.${n & 255}`
    await store.allocateAddress(ov.name, ip)
    await store.publishEndpoint({ overlay: ov.name, endpointId: id, ip, mac: overlayMac(ip) })
    return ip
  }
  return Object.assign(publish, { store })
}

t.test('after a reconnection, endpoints published between two HSCAN pages of the full read, or while its full reconcile runs, are programmed at once', async (t) => {
  const other = await redisServer(t)
  const N = 120
  const ov = { name: 'pg', subnet: '10.64.0.0/16', gateway: '10.64.0.1' }
  const publish = await publisher(t, other.url, ov, '10.64')
  for (let i = 0; i < N; i++) await publish(`e${i}`, 2 + i)
  const backend = new RedisBackend(parseClusterUrl(other.url), { hostId: 'h1', prefix: 'ferry:', commandTimeoutMs: 3000, connectTimeoutMs: 2000, scanPage: 20 })
  const reader = new ClusterClient(backend, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => reader.close())
  await reader.start()
  const dp = new GatedDataPlane('192.168.50.1')
  const sync = new PeerSync({ store: reader, dataPlane: dp, fullReconcileMs: 0, readKernelOnResync: true })
  sync.start()
  t.teardown(() => sync.stop())
  await sync.attach({ ...ov, vni: (await reader.defineOverlay(ov)).vni })
  await sync.settled()
  t.equal(dp.neigh.size, N, 'every endpoint programmed')

  // h2 publishes "mid" right after the first HSCAN page of the endpoints (the command connection's own hscan, wrapped).
  const cmd = (backend as unknown as { cmd: { hscan: (...a: unknown[]) => Promise<unknown> } }).cmd
  const hscan = cmd.hscan.bind(cmd)
  let pages = 0
  let mid = ''
  cmd.hscan = async (...args: unknown[]) => {
    const r = await hscan(...args)
    if (String(args[0]).endsWith(':eps') && pages++ === 0) mid = await publish('mid', 1000)
    return r
  }
  const reading = dp.hold()
  // h1's two connections drop (what a Redis restart does to it): it reconnects, re-asserts itself and reads everything again.
  const ids = other.cli(['client', 'list']).split('\n').filter((l) => / name=ferry-h1 /.test(l)).map((l) => /^id=(\d+)/.exec(l)?.[1] ?? '')
  t.equal(ids.length, 2, 'h1 has a command and a subscriber connection')
  other.cli(['del', 'ferry:log']) // no change log to catch up from (a restart that kept none): h1 reads in full
  for (const id of ids) other.cli(['client', 'kill', 'id', id])
  await reading
  t.ok(pages >= 2, `the full read took ${pages} HSCAN pages of the endpoints`)
  t.ok(sync.remoteEndpoints().get('pg')?.some((e) => e.endpointId === 'mid'), 'what was published between two pages is known after the read')
  // The full reconcile that follows the read is at its kernel read: h2 publishes "late".
  const late = await publish('late', 1001)
  await until('"late" to be known', () => sync.remoteEndpoints().get('pg')?.some((e) => e.endpointId === 'late') === true, { everyMs: 5 })
  dp.release()
  await sync.settled()
  t.ok(dp.neigh.has(mid), `${mid} (published between two pages) is programmed`)
  t.ok(dp.neigh.has(late), `${late} (published during the full reconcile) is programmed`)
  t.equal(dp.neigh.size, N + 2, 'and nothing else is missing')
})

t.test('after a reconnection to a store with the history it followed, a host reads only what it missed from the change log: no full read', async (t) => {
  const other = await redisServer(t)
  const ov = { name: 'cu', subnet: '10.65.0.0/16', gateway: '10.65.0.1' }
  const publish = await publisher(t, other.url, ov, '10.65')
  const pub = publish.store
  await publish('e1', 11)
  const backend = new RedisBackend(parseClusterUrl(other.url), { hostId: 'h1', prefix: 'ferry:', commandTimeoutMs: 3000, connectTimeoutMs: 2000, scanPage: 20 })
  const reader = new ClusterClient(backend, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => reader.close())
  await reader.start()
  const dp = new GatedDataPlane('192.168.50.1')
  const sync = new PeerSync({ store: reader, dataPlane: dp, fullReconcileMs: 0 })
  sync.start()
  t.teardown(() => sync.stop())
  await sync.attach({ ...ov, vni: (await reader.defineOverlay(ov)).vni })
  await sync.settled()
  await publish('e2', 12)
  await until('e2 programmed', () => dp.neigh.has('10.65.0.12'))
  const events = record(reader)
  await events.wait('resync') // what subscribing to a ready store answers
  events.clear()
  const cmd = (backend as unknown as { cmd: { hscan: (...a: unknown[]) => Promise<unknown> } }).cmd
  const hscan = cmd.hscan.bind(cmd)
  let scans = 0
  cmd.hscan = async (...args: unknown[]) => { scans++; return await hscan(...args) }
  // h1's connections drop; h2 publishes and withdraws before h1 is back (or just after: then they come live).
  for (const l of other.cli(['client', 'list']).split('\n').filter((l) => / name=ferry-h1 /.test(l))) other.cli(['client', 'kill', 'id', /^id=(\d+)/.exec(l)?.[1] ?? ''])
  const away = await publish('away', 13)
  await pub.withdrawEndpoint('cu', 'e1')
  const resumed = await events.wait('resumed', undefined, 10_000)
  t.same(resumed, { kind: 'resumed', rev: await pub.revision() }, 'resumed at the store\'s revision')
  t.notOk(events.events.some((e) => e.kind === 'resync'), 'no full read asked for')
  await until('the missed changes applied', () => dp.neigh.has(away) && !dp.neigh.has('10.65.0.11'))
  await sync.settled()
  t.equal(scans, 0, 'no HSCAN: nothing read in full')
  t.same([...dp.neigh.keys()].sort(), ['10.65.0.12', '10.65.0.13'])
  t.ok(sync.status().synced, 'up to date')
})

t.test('?wait=1 with no replica: WAIT is asked six times, then the change counts as not acknowledged', async (t) => {
  const other = await redisServer(t)
  const backend = new RedisBackend(parseClusterUrl(`${other.url}?wait=1`), { hostId: 'h1', prefix: 'ferry:', commandTimeoutMs: 1000, connectTimeoutMs: 2000, scanPage: 20 })
  const client = new ClusterClient(backend, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, unavailableWaitMs: 0 })
  t.teardown(() => client.close())
  await client.start().catch(() => undefined) // its registration is a change too: not acknowledged either
  const waits = (): number => Number(/cmdstat_wait:calls=(\d+)/.exec(other.cli(['info', 'commandstats']))?.[1] ?? 0)
  const before = waits()
  await t.rejects(backend.define('h1', { name: 'ovw', subnet: '10.66.0.0/16', gateway: '10.66.0.1' }, 'auto' as never, false), /did not replicate .* to 1 replica\(s\) in time \(0 did\)/)
  t.equal(waits() - before, 6, 'six WAITs, not one: a failover\'s re-syncing replica gets time to catch up')
})

t.test('a dual-stack overlay signed with a cluster key, between hosts with IPv6 VTEPs: define, seal, publish, read back', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 3))
  const [a, b] = [store('h1', 'fd00:ff::1', { key }), store('h2', 'fd00:ff::2', { key })]
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  await a.start()
  await b.start()
  const req = { name: 'ovk', subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' }
  t.match(await a.defineOverlay(req), req, 'the definer seals the definition with its IPv6 side')
  t.match(await b.defineOverlay(req), req, 'and the other host accepts its MAC')
  const ip = await b.allocateAddress('ovk')
  const ip6 = await b.allocateAddress('ovk', undefined, { family: 6 })
  await b.publishEndpoint({ overlay: 'ovk', endpointId: 'e1', ip, ip6, mac: '02:42:0a:1e:00:02' })
  const snap = await a.snapshot()
  t.match(snap.overlays[0]?.endpoints, [{ ip, ip6, vtep: 'fd00:ff::2' }])
  t.same(snap.hosts.map((h) => h.vtep), ['fd00:ff::1', 'fd00:ff::2'])
  t.same(a.status().rejected, [], 'nothing refused')
  await a.leave()
  await b.leave()
  t.same(server.keys('*'), [], 'nothing left')
})
