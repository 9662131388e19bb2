/**
 * What stays bounded whatever the store holds or however long it is away:
 * allocation steps on a nearly full /8 (counted in addresses looked at per
 * call, against a real redis-server), host keys that expire on their own,
 * removals remembered while the store is down, changes buffered during a full
 * read; and the store's answers that a host refuses (an address outside the
 * overlay), and the --cluster-key file checks.
 */
import t from 'tap'
import { ClusterClient } from '../../src/cluster/client.js'
import { RedisBackend, RedisClusterStore } from '../../src/cluster/redis.js'
import { parseClusterUrl } from '../../src/cluster/url.js'
import { MemoryCluster } from '../harness/cluster-memory.js'
import type { AllocationStep, ClusterBackend } from '../../src/cluster/backend.js'
import type { ClusterSnapshot, ClusterStore } from '../../src/cluster/types.js'
import { checkClusterKey } from '../../src/cluster/key.js'
import { overlayMac } from '../../src/vxlan/plan.js'
import { redisServer } from '../harness/redis.js'
import { peerHost } from '../harness/peer-host.js'

const server = await redisServer(t)

/** A Redis client whose allocation steps are recorded (addresses looked at per EVAL). */
function recordingClient (t: Parameters<Parameters<typeof t.test>[1]>[0], hostId: string, limit?: number): { client: ClusterClient, steps: AllocationStep[] } {
  const backend = new RedisBackend(parseClusterUrl(server.url), { hostId, prefix: 'ferry:', commandTimeoutMs: 3000, connectTimeoutMs: 2000 })
  const steps: AllocationStep[] = []
  const allocate = backend.allocate.bind(backend)
  backend.allocate = async (...args: Parameters<ClusterBackend['allocate']>) => {
    const r = await allocate(...args)
    steps.push(r)
    return r
  }
  const client = new ClusterClient(backend, { hostId, advertiseAddr: '192.168.50.1', heartbeatMs: 0, allocationScanLimit: limit })
  t.teardown(() => client.close())
  return { client, steps }
}

t.test('a nearly full /8: no allocation call looks at more than 4096 addresses, and the free one is found', async (t) => {
  server.cli(['flushall'])
  const { client, steps } = recordingClient(t, 'h1')
  await client.start()
  await client.defineOverlay({ name: 'big', subnet: '10.0.0.0/8', gateway: '10.0.0.1' })
  // 200,000 addresses taken in a row after the gateway: the next free one is 10.3.13.66.
  server.cli(['eval', `for i = 2, 200001 do
      redis.call('HSET', KEYS[1], string.format('10.%d.%d.%d', math.floor(i / 65536), math.floor(i / 256) % 256, i % 256), 'h9')
    end
    return 1`, '1', 'ferry:overlay:big:addrs'])
  const ip = await client.allocateAddress('big')
  t.equal(ip, '10.3.13.66', 'the first free address after the run')
  t.ok(steps.length >= 49, `${steps.length} calls`)
  t.ok(steps.every((s) => s.probes >= 1 && s.probes <= 4096), `addresses looked at per call: at most ${Math.max(...steps.map((s) => s.probes))}`)
  t.equal(steps.reduce((n, s) => n + s.probes, 0), 200_002, 'each address looked at once: the gateway, the 200,000 taken, the free one')
  t.equal(await client.allocateAddress('big'), '10.3.13.67', 'the cursor moved on')
  await client.leave()
})

t.test('exhaustion is found across bounded steps', async (t) => {
  server.cli(['flushall'])
  const { client, steps } = recordingClient(t, 'h1', 16)
  await client.start()
  await client.defineOverlay({ name: 'small', subnet: '10.40.0.0/26', gateway: '10.40.0.1' })
  for (let i = 0; i < 61; i++) await client.allocateAddress('small')
  steps.length = 0
  await t.rejects(client.allocateAddress('small'), { code: 'POOL_EXHAUSTED' })
  t.same(steps.map((s) => s.probes), [16, 16, 16], '62 addresses: three steps of 16, the fourth (14) says exhausted')
  await client.leave()
})

t.test('host keys expire a few TTLs after the last heartbeat, which refreshes them', async (t) => {
  server.cli(['flushall'])
  const s = new RedisClusterStore({ url: server.url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, hostTtlMs: 10_000 })
  t.teardown(() => s.close())
  await s.start()
  await s.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await s.allocateAddress('ov1')
  await s.heartbeat()
  for (const k of ['ferry:host:h1', 'ferry:host:h1:addrs', 'ferry:host:h1:overlays']) {
    const ttl = Number(server.cli(['pttl', k]).trim())
    t.ok(ttl > 25_000 && ttl <= 30_000, `${k} expires in ${ttl} ms (3 x TTL)`)
  }
  server.cli(['pexpire', 'ferry:host:h1', '5000'])
  await s.heartbeat()
  t.ok(Number(server.cli(['pttl', 'ferry:host:h1']).trim()) > 25_000, 'the heartbeat refreshes it')
  await s.leave()
})

t.test('an address the store hands out outside the overlay is refused', async (t) => {
  server.cli(['flushall'])
  const s = new RedisClusterStore({ url: server.url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => s.close())
  await s.start()
  await s.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  server.cli(['hset', 'ferry:overlay:ov1', 'net', String(8 * 2 ** 24 + 8 * 2 ** 16 + 8 * 256), 'prefix', '24', 'cursor', ''])
  await t.rejects(s.allocateAddress('ov1'), { code: 'CLUSTER_REFUSED', message: /8\.8\.8\.\d+ in overlay ov1, which is refused: address 8\.8\.8\.\d+ is not a host address/ })
  t.same(s.heldAddresses('ov1'), [], 'not held')
  t.match(s.status().rejected, [{ kind: 'allocation', reason: 'invalid', count: 1 }])
  await s.leave()
})

t.test('removals while the store is away are coalesced and capped; past the cap, a prune does their work', async (t) => {
  const cluster = new MemoryCluster()
  const h1 = cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, maxTombstones: 10 })
  t.teardown(() => h1.close())
  await h1.start()
  await h1.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  for (let i = 0; i < 20; i++) {
    const ip = await h1.allocateAddress('ov1')
    await h1.publishEndpoint({ overlay: 'ov1', endpointId: `e${i}`, ip, mac: overlayMac(ip) })
  }
  cluster.stop()
  for (let i = 0; i < 5; i++) await t.rejects(h1.withdrawEndpoint('ov1', 'e0'), { code: 'CLUSTER_UNAVAILABLE' })
  t.same(h1.pendingRemovals(), { count: 1, overflowed: false }, 'the same removal five times is kept once')
  for (let i = 1; i < 20; i++) await t.rejects(h1.withdrawEndpoint('ov1', `e${i}`), { code: 'CLUSTER_UNAVAILABLE' })
  t.same(h1.pendingRemovals(), { count: 0, overflowed: true }, 'past 10, nothing more is kept')
  cluster.start()
  // Back with the same history (resumed: the withdrawals come as changes) or not (resync): the prune ran before either.
  await new Promise<void>((resolve) => { const off = h1.subscribe((e) => { if (e.kind === 'resumed' || e.kind === 'resync') { off(); resolve() } }) })
  t.same(await h1.endpoints('ov1'), [], 'the prune at reconnection withdrew every one')
  t.same(h1.pendingRemovals(), { count: 0, overflowed: false })
  await h1.leave()
})

t.test('changes during a full read are coalesced by endpoint and capped; past the cap, another full read', async (t) => {
  const cluster = new MemoryCluster()
  const real = cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => real.close())
  await real.start()
  let hold: Promise<void> | undefined
  let reads = 0
  const store: ClusterStore = Object.assign(Object.create(real) as ClusterStore, {
    snapshot: async (): Promise<ClusterSnapshot> => { reads++; const snap = await real.snapshot(); await hold; return snap },
  })
  const h1 = await peerHost(t, store, '192.168.50.1', { maxBuffered: 10 })
  const h2 = cluster.connect({ hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0 })
  t.teardown(() => h2.close())
  await h2.start()
  const ov = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }
  await h1.sync.attach({ ...ov, vni: (await real.defineOverlay(ov)).vni })
  await h2.defineOverlay(ov)
  await h1.sync.settled()
  const ip = await h2.allocateAddress('ov1')
  let release!: () => void
  hold = new Promise((resolve) => { release = resolve })
  cluster.forgetLog() // nothing to catch up from: the reconnection reads in full
  cluster.stop()
  cluster.start()
  await new Promise((resolve) => setImmediate(resolve))
  for (const names of [['a'], ['b'], ['c'], ['d'], ['e']]) await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'e1', ip, mac: overlayMac(ip), names })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(h1.sync.buffered(), { changes: 1, revisions: 5, overflowed: false }, 'five changes of one endpoint: one kept')
  for (let i = 2; i <= 12; i++) {
    const x = await h2.allocateAddress('ov1')
    await h2.publishEndpoint({ overlay: 'ov1', endpointId: `e${i}`, ip: x, mac: overlayMac(x) })
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.same(h1.sync.buffered(), { changes: 0, revisions: 0, overflowed: true }, 'past 10 revisions: dropped, another full read is due')
  const before = reads
  hold = undefined
  release()
  await h1.sync.settled()
  t.ok(reads > before, 'read again')
  t.equal((await h1.links.listNeigh('fyv-1000')).length, 12, 'every endpoint programmed')
  t.same(h1.sync.remoteEndpoints().get('ov1')?.find((e) => e.endpointId === 'e1')?.names, ['e'], 'the latest state of e1')
})

t.test('--cluster-key file: mode 600, owned by root, at least 32 bytes', async (t) => {
  const secret = Buffer.from('s'.repeat(32) + '\n')
  t.throws(() => checkClusterKey('/k', secret, 0o100644, 0), { code: 'INVALID_OPTION', message: '--cluster-key /k is readable by others (mode 644): chmod 600 it' })
  t.throws(() => checkClusterKey('/k', secret, 0o100600, 1000), { code: 'INVALID_OPTION', message: /must be owned by root/ })
  t.throws(() => checkClusterKey('/k', Buffer.from('short\n'), 0o100600, 0), { code: 'INVALID_OPTION', message: /at least 32 bytes/ })
  const k = checkClusterKey('/k', secret, 0o100400, 0)
  const sig = k.sign('endpoint', 'ov1|e1', '{}')
  t.ok(k.verify('endpoint', 'ov1|e1', '{}', sig))
  t.notOk(k.verify('endpoint', 'ov2|e1', '{}', sig), 'the key name is covered')
  t.notOk(k.verify('host', 'ov1|e1', '{}', sig), 'and the kind')
  t.notOk(k.verify('endpoint', 'ov1|e1', '{}', 'x'), 'garbage')
})
