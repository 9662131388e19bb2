import t, { type Test } from 'tap'
import { ClusterClient } from '../../src/cluster/client.js'
import { ClusterKey } from '../../src/cluster/key.js'
import { FerryError } from '../../src/errors/errors.js'
import { MemoryBackend, MemoryCluster } from '../harness/cluster-memory.js'
import { record } from '../harness/cluster-contract.js'
import { until } from '../harness/until.js'

/**
 * A connection that dies under a command: the command fails as unavailable while the store still
 * looks up (ioredis' "Stream isn't writeable" right after a Sentinel failover's kill), and only
 * then does the connection say it is down; the store comes back a little later.
 */
class DyingBackend extends MemoryBackend {
  failures = 0
  constructor (private readonly lab: MemoryCluster, private readonly downAfterMs: number) { super(lab) }
  override allocate (...args: Parameters<MemoryBackend['allocate']>): ReturnType<MemoryBackend['allocate']> {
    if (this.failures === 0) {
      this.failures++
      if (this.downAfterMs >= 0) {
        setTimeout(() => {
          this.lab.stop()
          setTimeout(() => this.lab.start(), 40)
        }, this.downAfterMs)
      }
      return Promise.reject(new FerryError('CLUSTER_UNAVAILABLE', 'the cluster store (allocate) failed: Stream isn\'t writeable and enableOfflineQueue options is false'))
    }
    return super.allocate(...args)
  }
}

async function client (t: Test, backend: MemoryBackend, waitMs: number): Promise<ClusterClient> {
  const c = new ClusterClient(backend, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, unavailableWaitMs: waitMs })
  t.teardown(() => c.close())
  await c.start()
  await c.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  return c
}

t.test('a command that fails as unavailable before the store notices the drop waits for it to come back (--cluster-wait)', async (t) => {
  const lab = new MemoryCluster()
  const backend = new DyingBackend(lab, 30)
  const c = await client(t, backend, 5000)
  const ip = await c.allocateAddress('ov1')
  t.match(ip, /^10\.30\./, 'the allocation is made once the store is back')
  t.equal(backend.failures, 1, 'after one failure')
})

t.test('without --cluster-wait it fails at once, as before', async (t) => {
  const lab = new MemoryCluster()
  const c = await client(t, new DyingBackend(lab, 30), 0)
  await t.rejects(c.allocateAddress('ov1'), { code: 'CLUSTER_UNAVAILABLE', message: /Stream isn't writeable/ })
})

t.test('an unavailable error while the store stays up is given back after the notice window, not waited on forever', async (t) => {
  const lab = new MemoryCluster()
  const backend = new DyingBackend(lab, -1)
  const c = await client(t, backend, 5000)
  await t.rejects(c.allocateAddress('ov1'), { code: 'CLUSTER_UNAVAILABLE', message: /Stream isn't writeable/ })
  t.equal(backend.failures, 1)
})

/** One host's connection cut and healed on its own (its messages lost meanwhile), while the other hosts go on writing. */
class CutBackend extends MemoryBackend {
  private isCut = false
  cut (): void { this.isCut = true; this.lost() }
  heal (): void { this.isCut = false; this.reconnected() }
  override isReady (): boolean { return !this.isCut && super.isReady() }
  override deliver (change: unknown): void { if (!this.isCut) super.deliver(change) }
  override deliverVtep2 (msg: unknown): void { if (!this.isCut) super.deliverVtep2(msg) }
}

const OV1 = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }

/** h1 (whose connection the test cuts) and h2 on one cluster, h1 recording its events, both in overlay ov1 with h2's endpoint e1. */
async function cutPair (t: Test): Promise<{ lab: MemoryCluster, cut: CutBackend, h1: ClusterClient, h2: ClusterClient, events: ReturnType<typeof record> }> {
  const lab = new MemoryCluster()
  const cut = new CutBackend(lab)
  const h1 = new ClusterClient(cut, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  const h2 = lab.connect({ hostId: 'h2', advertiseAddr: '192.168.50.2', heartbeatMs: 0 })
  t.teardown(() => h1.close())
  t.teardown(() => h2.close())
  await h1.start()
  await h2.start()
  await h1.defineOverlay(OV1)
  await h2.defineOverlay(OV1)
  const events = record(h1)
  await events.wait('resync')
  await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'e1', ip: await h2.allocateAddress('ov1'), mac: '02:42:0a:1e:00:02' })
  await events.wait('endpoint-published')
  events.clear()
  return { lab, cut, h1, h2, events }
}

t.test('back with the same history: the changes missed, in order, then resumed at the store\'s revision; no full read', async (t) => {
  const { cut, h1, h2, events } = await cutPair(t)
  cut.cut()
  await events.wait('down')
  await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'e2', ip: await h2.allocateAddress('ov1'), mac: '02:42:0a:1e:00:03' })
  await h2.withdrawEndpoint('ov1', 'e1')
  const rev = await h2.revision()
  cut.heal()
  await events.wait('resumed')
  t.same(events.events.map((e) => e.kind === 'endpoint-published' ? `+${e.endpoint.endpointId}` : e.kind === 'endpoint-withdrawn' ? `-${e.endpointId}` : e.kind),
    ['down', '+e2', '-e1', 'resumed'], 'what was missed, then resumed; no resync')
  t.same(events.events.at(-1), { kind: 'resumed', rev })
  t.equal(h1.status().state, 'ready')
  // And again, from where it left off.
  events.clear()
  cut.cut()
  await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'e3', ip: await h2.allocateAddress('ov1'), mac: '02:42:0a:1e:00:04' })
  cut.heal()
  await events.wait('resumed')
  t.same(events.events.map((e) => e.kind), ['down', 'endpoint-published', 'resumed'])
})

t.test('back with another history, or without a log that reaches back: a full read (resync), nothing handed on', async (t) => {
  const cases: Array<[string, (lab: MemoryCluster, h2: ClusterClient) => Promise<void>]> = [
    ['the log is gone', async (lab) => { lab.forgetLog() }],
    ['a failover lost the last change this host saw, and its revision went to another change', async (lab, h2) => {
      lab.loseLastChanges(1)
      await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'e9', ip: await h2.allocateAddress('ov1'), mac: '02:42:0a:1e:00:09' })
    }],
    ['a failover lost the last change this host saw (the store is behind)', async (lab) => { lab.loseLastChanges(1) }],
  ]
  for (const [what, meanwhile] of cases) {
    await t.test(what, async (t) => {
      const { lab, cut, h2, events } = await cutPair(t)
      cut.cut()
      await events.wait('down')
      await meanwhile(lab, h2)
      cut.heal()
      await events.wait('resync')
      t.same(events.events.map((e) => e.kind), ['down', 'resync'])
    })
  }
})

t.test('the writer\'s decision: ports only while every live host understands them (in-memory store)', async (t) => {
  const lab = new MemoryCluster()
  const h1 = lab.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0 })
  t.teardown(() => h1.close())
  t.same(h1.status().compat?.heldBack, ['ports'], 'held back until the hosts were read')
  await h1.start()
  t.same(h1.status().compat?.heldBack, [], 'read at registration: only this host')
  await h1.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  const ip = await h1.allocateAddress('ov1')
  const ports = [{ proto: 'tcp' as const, port: 80, hostPort: 8080 }]
  await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'e1', ip, mac: '02:42:0a:1e:00:02', ports })
  const raw = (): unknown => { const r = lab.endpoints('ov1').endpoints[0]?.raw; return typeof r === 'string' ? JSON.parse(r) as unknown : r }
  t.match(raw(), { ports })
  const old = lab.connect({ hostId: 'old', advertiseAddr: '192.168.50.9', heartbeatMs: 0, features: [] })
  t.teardown(() => old.close())
  await old.start()
  await until('held back', () => h1.status().compat?.heldBack.join() === 'ports')
  await h1.republished()
  const r = raw()
  t.ok(typeof r === 'object' && r !== null && !('ports' in r), 'written again without ports')
  t.equal(h1.status().compat?.olderHosts[0]?.hostId, 'old')
  await old.leave()
  await until('ports again', () => h1.status().compat?.heldBack.length === 0)
  await h1.republished()
  t.match(raw(), { ports }, 'the older host gone: with ports again')
})

// ---------------------------------------------------------------------------
// A dual-stack host's second VTEP: its own record, read with the host list, its host-up change and a catch-up.

const KEY = new ClusterKey(Buffer.alloc(32, 7))

t.test('a second --advertise-addr of the same family is refused with a sentence', async (t) => {
  const lab = new MemoryCluster()
  t.throws(() => lab.connect({ hostId: 'h3', advertiseAddr: '192.168.50.3', advertiseAddr2: '192.168.60.3', heartbeatMs: 0 }),
    { code: 'INVALID_OPTION', message: 'the second VTEP address 192.168.60.3 is IPv4 like the first (192.168.50.3): a host advertises at most one address per family' })
})

t.test('a dual-stack host\'s second VTEP: in the host list, on its host-up change, after a catch-up; a host without one as before', async (t) => {
  for (const key of [undefined, KEY]) {
    await t.test(key ? 'with a cluster key' : 'without a key', async (t) => {
      const lab = new MemoryCluster()
      const cut = new CutBackend(lab)
      const h1 = new ClusterClient(cut, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, ...(key ? { key } : {}) })
      t.teardown(() => h1.close())
      await h1.start()
      const events = record(h1)
      await events.wait('resync')
      const h3 = lab.connect({ hostId: 'h3', advertiseAddr: '192.168.50.3', advertiseAddr2: 'fd00:ff::3', heartbeatMs: 0, ...(key ? { key } : {}) })
      t.teardown(() => h3.close())
      await h3.start()
      const up = await events.wait('host-up', (e) => e.kind === 'host-up' && e.host.hostId === 'h3')
      t.same(up.kind === 'host-up' && up.host, { hostId: 'h3', vtep: '192.168.50.3', version: up.kind === 'host-up' ? up.host.version : '', vtep2: 'fd00:ff::3' }, 'the host-up change carries it')
      const hosts = await h1.hosts()
      t.same(hosts.map((h) => [h.hostId, h.vtep, h.vtep2]), [['h1', '192.168.50.1', undefined], ['h3', '192.168.50.3', 'fd00:ff::3']], 'the host list has it; h1 has none')
      t.same((await h1.snapshot()).hosts.find((h) => h.hostId === 'h3')?.vtep2, 'fd00:ff::3', 'and a full read')
      // Away while another dual-stack host (IPv6 first) registers: the catch-up hands its host-up on with it.
      cut.cut()
      await events.wait('down')
      const h4 = lab.connect({ hostId: 'h4', advertiseAddr: 'fd00:ff::4', advertiseAddr2: '192.168.50.4', heartbeatMs: 0, ...(key ? { key } : {}) })
      t.teardown(() => h4.close())
      await h4.start()
      cut.heal()
      await events.wait('resumed')
      const up4 = events.events.find((e) => e.kind === 'host-up' && e.host.hostId === 'h4')
      t.same(up4?.kind === 'host-up' && [up4.host.vtep, up4.host.vtep2], ['fd00:ff::4', '192.168.50.4'], 'caught up with it')
      t.same(h1.status().rejected, [], 'nothing refused')
    })
  }
})

t.test('a second VTEP record that is forged, oversized, of the wrong family or of another host is refused alone, with a sentence', async (t) => {
  const lab = new MemoryCluster()
  const h1 = lab.connect({ hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, key: KEY })
  const h3 = lab.connect({ hostId: 'h3', advertiseAddr: '192.168.50.3', advertiseAddr2: 'fd00:ff::3', heartbeatMs: 0, key: KEY })
  t.teardown(() => h1.close())
  t.teardown(() => h3.close())
  await h1.start()
  await h3.start()
  const signed = (vtep: string, hostId = 'h3'): string => JSON.stringify({ hostId, vtep, sig: KEY.sign('host', `${hostId}|vtep2`, JSON.stringify({ hostId, vtep })) })
  const cases: Array<[string, string, string]> = [
    ['unsigned', JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::66' }), 'missing-mac'],
    ['signed with another key', JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::66', sig: new ClusterKey(Buffer.alloc(32, 9)).sign('host', 'h3|vtep2', '{"hostId":"h3","vtep":"fd00:ff::66"}') }), 'bad-mac'],
    ['the MAC of another address', JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::66', sig: JSON.parse(signed('fd00:ff::3')).sig as string }), 'bad-mac'],
    ['of the first VTEP\'s family', signed('192.168.60.3'), 'invalid'],
    ['of another host', signed('fd00:ff::3', 'h9'), 'invalid'],
    ['with an unknown field', JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::3', extra: 1 }), 'invalid'],
    ['oversized', JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::3', pad: 'x'.repeat(600) }), 'too-large'],
    ['not JSON', '{"hostId":', 'invalid'],
  ]
  for (const [what, record, reason] of cases) {
    lab.forgeVtep2Record('h3', record)
    const hosts = await h1.hosts()
    const h = hosts.find((x) => x.hostId === 'h3')
    t.same(h && [h.vtep, h.vtep2], ['192.168.50.3', undefined], `${what}: the host stays, without it`)
    t.ok(h1.status().rejected.some((r) => r.kind === 'host' && r.reason === reason), `${what}: counted as ${reason}`)
  }
  lab.forgeVtep2Record('h3', signed('fd00:ff::3'))
  t.equal((await h1.hosts()).find((x) => x.hostId === 'h3')?.vtep2, 'fd00:ff::3', 'the real record is read again')
  // A forged message on the second VTEP channel is refused too: the next host-up takes nothing from it.
  const events = record(h1)
  lab.forgeVtep2({ hostId: 'h3', record: JSON.stringify({ hostId: 'h3', vtep: 'fd00:ff::99' }) })
  lab.forgeVtep2({ hostId: 'h3' })
  await h3.heartbeat()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(events.events.filter((e) => e.kind === 'host-up'), [], 'no host-up: nothing of h3 changed')
})
