/**
 * Mixed versions against a real redis-server: hosts advertise the record features they understand
 * (src/cluster/features.ts); an "older" host (one with no features entry, as a version before the signal
 * registers) makes the writers drop `ports` from their endpoint records, and its departure or its upgrade
 * in place brings them back. No kernel: the stores alone.
 */
import t, { type Test } from 'tap'
import { RedisClusterStore, type RedisClusterOptions } from '../../src/cluster/redis.js'
import { ClusterKey } from '../../src/cluster/key.js'
import type { ClusterPort } from '../../src/cluster/types.js'
import { redisServer } from '../harness/redis.js'
import { until } from '../harness/until.js'

const server = await redisServer(t)
const OV = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }
const PORTS: ClusterPort[] = [{ proto: 'tcp', port: 80, hostPort: 8080 }]

async function host (t: Test, hostId: string, n: number, extra: Partial<RedisClusterOptions> = {}): Promise<RedisClusterStore> {
  const s = new RedisClusterStore({ url: server.url, hostId, advertiseAddr: `192.168.50.${n}`, heartbeatMs: 0, ...extra })
  t.teardown(() => s.close())
  await s.start()
  await s.defineOverlay(OV)
  return s
}

/** The endpoint's record as Redis holds it (what an older host reads at its join). */
function stored (id: string): Record<string, unknown> {
  return JSON.parse(server.cli(['hget', 'ferry:overlay:ov1:eps', id]).trim()) as Record<string, unknown>
}

const withPorts = (id: string): boolean => 'ports' in stored(id)

async function publish (s: RedisClusterStore, id: string, ports?: ClusterPort[]): Promise<void> {
  const ip = await s.allocateAddress('ov1')
  await s.publishEndpoint({ overlay: 'ov1', endpointId: id, ip, mac: '02:42:0a:1e:00:02', names: [id], ...(ports ? { ports } : {}) })
}

t.test('an older host holds ports back while it is a member; its departure brings them back', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 'h1', 1)
  const h2 = await host(t, 'h2', 2)
  await publish(h1, 'e1', PORTS)
  await publish(h1, 'e2', PORTS)
  await publish(h1, 'e3')
  t.same(h1.status().compat?.heldBack, [], 'every host understands ports')
  t.ok(withPorts('e1') && withPorts('e2'), 'records are written with their ports')
  t.same((await h2.hosts()).map((h) => h.features), [['ports'], ['ports']], 'each host\'s features, read back')

  // An older version: registers with no features entry (its heartbeat script knows no such field).
  const old = await host(t, 'old', 9, { features: [] })
  await until('h1 holds ports back', () => h1.status().compat?.heldBack.join() === 'ports')
  t.match(h1.status().compat, { olderHosts: [{ hostId: 'old', features: [] }], sentence: /held back: ports .* host old \(0\.1\.0\) runs an older ferry/ })
  await h1.republished()
  t.notOk(withPorts('e1') || withPorts('e2'), 'the records with ports are written again without them')
  t.same((await h2.endpoints('ov1')).map((e) => e.ports), [undefined, undefined, undefined], 'and read so by every host')

  // Written while the older host is a member: without ports; this host's intent keeps them.
  await publish(h1, 'e4', PORTS)
  t.notOk(withPorts('e4'), 'a new record is written without ports')

  await old.leave()
  await until('h1 writes ports again', () => h1.status().compat?.heldBack.length === 0)
  await h1.republished()
  t.ok(['e1', 'e2', 'e4'].every(withPorts), 'the last older host gone: the records are written with their ports again')
  t.notOk(withPorts('e3'), 'an endpoint that publishes nothing has no field')
  t.same((await h2.endpoints('ov1')).map((e) => e.ports), [PORTS, PORTS, undefined, PORTS])
})

t.test('an older host that joins between the check and the write: the record converges without ports', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 'h1', 1)
  t.same(h1.status().compat?.heldBack, [])
  const old = new RedisClusterStore({ url: server.url, hostId: 'old', advertiseAddr: '192.168.50.9', heartbeatMs: 0, features: [] })
  t.teardown(() => old.close())
  await old.start()
  // h1 has not read the hosts since (the check runs after the host-up): it writes with ports ...
  await publish(h1, 'e1', PORTS)
  // ... and the check that follows the older host's host-up writes it again without.
  await until('h1 holds ports back', () => h1.status().compat?.heldBack.join() === 'ports')
  await h1.republished()
  t.notOk(withPorts('e1'), 'converged: no record with ports while the older host is a member')
})

t.test('an older host upgraded in place (same host id, within its TTL) announces its features: ports come back', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 'h1', 1)
  const old = await host(t, 'h3', 3, { features: [] })
  await publish(h1, 'e1', PORTS)
  await until('h1 holds ports back', () => h1.status().compat?.heldBack.join() === 'ports')
  t.notOk(withPorts('e1'))
  await old.close()
  const upgraded = await host(t, 'h3', 3)
  await until('h1 writes ports again', () => h1.status().compat?.heldBack.length === 0)
  await h1.republished()
  t.ok(withPorts('e1'), 'the upgraded host\'s heartbeat changed its entry, announced as host-up: records carry ports again')
  t.same((await upgraded.hosts()).map((h) => [h.hostId, h.features]), [['h1', ['ports']], ['h3', ['ports']]])
})

t.test('an entry left by the newer version is not taken for the older version that replaced it (a downgrade in place)', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 'h1', 1)
  const h3 = await host(t, 'h3', 3)
  // An older version's heartbeat moves lastHeartbeat and leaves the field it does not know as it was.
  server.cli(['hset', 'ferry:host:h3', 'lastHeartbeat', String(Date.now() + 1)])
  t.same((await h1.hosts()).map((h) => h.features), [['ports'], undefined], 'the stale entry counts as none')
  await h3.close()
})

t.test('with a cluster key the entries are signed; a forged entry counts as none and is refused', async (t) => {
  server.cli(['flushall'])
  const key = new ClusterKey(Buffer.alloc(32, 5))
  const h1 = await host(t, 'h1', 1, { key })
  await host(t, 'h2', 2, { key })
  await publish(h1, 'e1', PORTS)
  t.same(h1.status().compat?.heldBack, [], 'signed entries are read')
  t.ok(withPorts('e1'))
  const [at] = server.cli(['hget', 'ferry:host:h2', 'features']).trim().split(' ')
  server.cli(['hset', 'ferry:host:h2', 'features', `${at ?? ''} {"features":["ports"]}`])
  t.same((await h1.hosts()).map((h) => h.features), [['ports'], undefined], 'an unsigned entry counts as none')
  t.ok(h1.rejects.list().some((r) => r.kind === 'host' && r.reason === 'missing-mac'), 'and is counted as refused')
})
