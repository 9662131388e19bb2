import t from 'tap'
import { MemoryCluster } from './cluster-memory.js'
import type { ClusterStore } from '../../src/cluster/types.js'
import { clusterContract, record } from './cluster-contract.js'

let cluster = new MemoryCluster()

t.beforeEach(() => { cluster = new MemoryCluster() })

clusterContract(t, {
  concurrency: 300,
  async store (t, hostId, vtep, opts = {}) {
    const s = cluster.connect({ hostId, advertiseAddr: vtep, heartbeatMs: 0, hostTtlMs: opts.ttlMs ?? 10_000 })
    t.teardown(() => s.close())
    await s.start(opts.local)
    return s
  },
  async elapse (ms) { cluster.advance(ms) },
  async crash () { cluster.stop({ loseData: true }) },
  async revive () { cluster.start() },
  async isEmpty () { return cluster.isEmpty() },
})

async function host (t: Parameters<Parameters<typeof t.test>[1]>[0], hostId: string, vtep: string): Promise<ClusterStore> {
  const s = cluster.connect({ hostId, advertiseAddr: vtep, heartbeatMs: 0 })
  t.teardown(() => s.close())
  await s.start()
  return s
}

t.test('an outage without data loss: re-assertion changes nothing and subscribers resume without a full read', async (t) => {
  const h1 = await host(t, 'h1', '192.168.50.1')
  const h2 = await host(t, 'h2', '192.168.50.2')
  await h1.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await h2.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await h1.allocateAddress('ov1', '10.30.0.2')
  await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' })
  const r2 = record(h2)
  await r2.wait('resync')
  const rev = await h2.revision()
  cluster.stop()
  await r2.wait('down')
  await t.rejects(h1.allocateAddress('ov1'), { code: 'CLUSTER_UNAVAILABLE', message: /not reachable/ })
  r2.clear()
  cluster.start()
  await r2.wait('resumed')
  t.equal(await h2.revision(), rev, 'nothing changed')
  t.same(r2.events, [{ kind: 'resumed', rev }], 'no change event, no full read: resumed at the same revision')
  await h1.leave()
  await h2.leave()
  t.ok(cluster.isEmpty())
})

t.test('subscribing to a ready store delivers a resync; unsubscribing stops delivery', async (t) => {
  const h1 = await host(t, 'h1', '192.168.50.1')
  const got: string[] = []
  const off = h1.subscribe((e) => got.push(e.kind))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(got, ['resync'])
  off()
  await h1.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(got, ['resync'])
  await h1.leave()
})

t.test('start fails with CLUSTER_UNAVAILABLE when the store stays away, then connects in the background', async (t) => {
  cluster.stop()
  const s = cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, startTimeoutMs: 50 })
  t.teardown(() => s.close())
  const r = record(s)
  await t.rejects(s.start(), { code: 'CLUSTER_UNAVAILABLE', message: /still trying in the background/ })
  t.equal(s.status().state, 'down')
  cluster.start()
  await r.wait('resync')
  t.equal(s.status().state, 'ready')
  t.same((await s.hosts()).map((h) => h.hostId), ['h1'])
  await s.leave()
})

t.test('heartbeat timer keeps a host alive and reaps others', async (t) => {
  const c = new MemoryCluster()
  const live = c.connect({ hostId: 'live', advertiseAddr: '192.168.50.1', heartbeatMs: 20, hostTtlMs: 100 })
  const dead = c.connect({ hostId: 'dead', advertiseAddr: '192.168.50.2', heartbeatMs: 20, hostTtlMs: 100 })
  t.teardown(() => live.close())
  await live.start()
  await dead.start()
  const r = record(live)
  await dead.close()
  await r.wait('host-removed', undefined, 2000)
  t.same((await live.hosts()).map((h) => h.hostId), ['live'])
  await live.leave()
  t.ok(c.isEmpty())
})

t.test('options are validated at construction', async (t) => {
  t.throws(() => cluster.connect({ hostId: 'bad id', advertiseAddr: '192.168.50.1' }), { code: 'INVALID_OPTION' })
  t.throws(() => cluster.connect({ hostId: 'h1', advertiseAddr: 'nope' }), { code: 'INVALID_CIDR' })
  t.throws(() => cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 1000, hostTtlMs: 1000 }), { code: 'INVALID_OPTION', message: /TTL/ })
  const s = cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  await t.rejects(s.hosts(), { code: 'CLUSTER_UNAVAILABLE', message: /not started/ })
  await s.close()
  await t.rejects(s.start(), { code: 'CLUSTER_UNAVAILABLE', message: /closed/ })
})

t.test('after an outage longer than the TTL, hosts re-register without removing each other', async (t) => {
  const h1 = cluster.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, hostTtlMs: 1000 })
  const h2 = cluster.connect({ hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0, hostTtlMs: 1000 })
  t.teardown(() => h1.close())
  t.teardown(() => h2.close())
  await h1.start()
  await h2.start()
  await h2.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  await h2.allocateAddress('ov1', '10.30.0.2')
  await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep2', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' })
  const r1 = record(h1)
  await r1.wait('resync')
  cluster.stop()
  cluster.advance(5000)
  cluster.start()
  await r1.wait('resumed')
  await h1.heartbeat()
  t.notOk(r1.events.some((e) => e.kind === 'host-removed'), 'nobody was removed')
  t.same((await h1.endpoints('ov1')).map((e) => e.endpointId), ['ep2'])
  await h1.leave()
  await h2.leave()
  t.ok(cluster.isEmpty())
})

t.test('after leave() the heartbeat timer does not register the host again', async (t) => {
  const c = new MemoryCluster()
  const s = c.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 10, hostTtlMs: 100 })
  t.teardown(() => s.close())
  await s.start()
  await s.leave()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(c.isEmpty())
  await s.start()
  t.same((await s.hosts()).map((h) => h.hostId), ['h1'], 'start() registers again')
  await s.leave()
})
