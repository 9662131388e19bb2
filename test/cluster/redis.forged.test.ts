/**
 * Whoever can write to the cluster's Redis, tried against a real redis-server:
 * forged and malformed messages and entries of every kind, with and without
 * --cluster-key. Each host runs the real RedisClusterStore and PeerSync over a
 * recording fake kernel; the DNS view is built from PeerSync's vetted endpoints
 * as the agent builds it. After every forgery: no kernel or DNS state changed,
 * the refusal is counted, and the next valid change still lands.
 */
import t from 'tap'
import { RedisClusterStore } from '../../src/cluster/redis.js'
import { ClusterKey } from '../../src/cluster/key.js'
import { overlayMac } from '../../src/vxlan/plan.js'
import { buildRecords } from '../../src/dns/source.js'
import { redisServer } from '../harness/redis.js'
import { peerHost, type PeerHost } from '../harness/peer-host.js'
import { until } from '../harness/until.js'

type T = Parameters<Parameters<typeof t.test>[1]>[0]
const OV = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }
const server = await redisServer(t)
const KEY = new ClusterKey(Buffer.from('k'.repeat(40)))
const OTHER_KEY = new ClusterKey(Buffer.from('x'.repeat(40)))

type Host = PeerHost<RedisClusterStore>

async function host (t: T, n: number, key?: ClusterKey): Promise<Host> {
  const vtep = `192.168.50.${n}`
  const store = new RedisClusterStore({ url: server.url, hostId: `h${n}`, advertiseAddr: vtep, heartbeatMs: 0, hostTtlMs: 60_000, key })
  t.teardown(() => store.close())
  await store.start()
  const h = await peerHost(t, store, vtep)
  const def = await store.defineOverlay(OV)
  await h.sync.attach({ ...OV, vni: def.vni })
  return h
}

/** What the kernel (fake) has on the observer: [ip, mac, vtep] per neighbour, and every link name. */
async function kernel (h: Host): Promise<{ peers: string[], links: string[] }> {
  await h.sync.settled()
  const fdb = new Map((await h.links.listFdb('fyv-1000')).map((e) => [e.mac, e.dst ?? '']))
  const peers = (await h.links.listNeigh('fyv-1000')).map((n) => `${n.ip} ${n.mac} ${fdb.get(n.mac) ?? 'NO FDB'}`).sort()
  return { peers, links: (await h.links.listLinks()).map((l) => l.name).sort() }
}

/** The DNS records the agent would serve from the cluster, as name=ip. */
function dns (h: Host): string[] {
  const { entries } = buildRecords({ networks: [], endpoints: [], names: [], remote: h.sync.remoteEndpoints(), hostId: 'h1' })
  return entries.flatMap((e) => [e.name, ...e.aliases].map((n) => `${n}=${e.ip}`)).sort()
}

let serial = 20
/** A valid change from h2; resolves once h1's kernel has it (so everything pushed before it was processed). */
async function validChange (h1: Host, h2: Host): Promise<string> {
  const ip = `10.30.0.${serial++}`
  const id = `ok${serial}`
  await h2.store.allocateAddress('ov1', ip)
  await h2.store.publishEndpoint({ overlay: 'ov1', endpointId: id, ip, mac: overlayMac(ip), names: [id] })
  await until(`${id} programmed`, async () => (await kernel(h1)).peers.some((p) => p.startsWith(`${ip} `)))
  return `${ip} ${overlayMac(ip)} 192.168.50.2`
}

function rev (): number { return Number(server.cli(['get', 'ferry:rev']).trim()) }
function publishRaw (msg: unknown): void { server.cli(['publish', 'ferry:events', typeof msg === 'string' ? msg : JSON.stringify(msg)]) }
function rejected (h: Host, kind: string, reason: string): number {
  return h.store.rejects.list().filter((r) => r.kind === kind && r.reason === reason).reduce((n, r) => n + r.count, 0)
}

const ep = (o: Record<string, unknown>): Record<string, unknown> => ({ endpointId: 'evil', ip: '10.30.0.99', mac: '02:42:0a:1e:00:63', hostId: 'h2', vtep: '192.168.50.2', names: ['evil'], ...o })

t.test('without a key: forged and malformed messages change nothing, and every valid change after them lands', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 1)
  const h2 = await host(t, 2)
  const first = await validChange(h1, h2)
  const before = { kernel: await kernel(h1), dns: dns(h1) }
  t.same(before.kernel.peers, [first])
  t.same(before.dns, [`ok${serial}=10.30.0.${serial - 1}`])

  const forged: Array<[string, () => unknown, string, string]> = [
    ['not JSON', () => '{"kind":', 'message', 'invalid'],
    ['unknown kind', () => ({ kind: 'endpoint-stolen', rev: rev() + 1 }), 'message', 'invalid'],
    ['names: 1', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ names: 1 }) }), 'message', 'invalid'],
    ['a name that is not a DNS name', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ names: ['a b'] }) }), 'message', 'invalid'],
    ['a bad MAC', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ mac: 'ff:ff:ff:ff:ff:ff' }) }), 'message', 'invalid'],
    ['an ip that is a number', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ip: 167772161 }) }), 'message', 'invalid'],
    ['an unknown field longer than 4096 bytes (a short one is ignored: validate.test.ts)', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ extra: 'x'.repeat(5000) }) }), 'message', 'invalid'],
    ['an unknown field with a name ferry does not give fields', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ 'x-y': 1 }) }), 'message', 'invalid'],
    ['published ports that are not an array', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ports: { 80: 'tcp' } }) }), 'message', 'invalid'],
    ['65 published ports', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ports: Array.from({ length: 65 }, (_, i) => ({ proto: 'tcp', port: i + 1, hostPort: i + 1 })) }) }), 'message', 'invalid'],
    ['a published port of another protocol', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ports: [{ proto: 'sctp', port: 80, hostPort: 80 }] }) }), 'message', 'invalid'],
    ['a published port out of range', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ports: [{ proto: 'tcp', port: 70000, hostPort: 80 }] }) }), 'message', 'invalid'],
    ['a revision that is not a safe integer', () => ({ kind: 'endpoint-withdrawn', rev: 1e300, overlay: 'ov1', endpointId: 'x', hostId: 'h2' }), 'message', 'revision'],
    ['a revision as a string', () => ({ kind: 'endpoint-withdrawn', rev: String(rev() + 1), overlay: 'ov1', endpointId: 'x', hostId: 'h2' }), 'message', 'revision'],
    ['an address outside the subnet', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ip: '8.8.8.8' }) }), 'endpoint', 'outside-subnet'],
    ['the gateway', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ ip: '10.30.0.1' }) }), 'endpoint', 'outside-subnet'],
    ['the VTEP of an unregistered host', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ hostId: 'ghost', vtep: '10.9.9.9' }) }), 'endpoint', 'unregistered-host'],
    ['another VTEP for a registered host', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ vtep: '10.9.9.9' }) }), 'endpoint', 'vtep-mismatch'],
    ['an address claimed by another endpoint, with id "0"', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({ endpointId: '0', ip: first.split(' ')[0] }) }), 'endpoint', 'address-claimed'],
    ['a changed VNI', () => ({ kind: 'overlay-defined', rev: rev() + 1, overlay: { ...OV, vni: 9999, createdBy: 'h1', createdAt: 1 } }), 'overlay', 'changed-definition'],
    ['a changed subnet', () => ({ kind: 'overlay-defined', rev: rev() + 1, overlay: { name: 'ov1', subnet: '10.0.0.0/8', gateway: '10.0.0.1', vni: 4096, createdBy: 'h1', createdAt: 1 } }), 'overlay', 'changed-definition'],
  ]
  for (const [what, msg, kind, reason] of forged) {
    const n = rejected(h1, kind, reason)
    publishRaw(msg())
    const next = await validChange(h1, h2)
    t.ok(rejected(h1, kind, reason) > n, `${what}: refused and counted as ${kind}/${reason}`)
    const now = await kernel(h1)
    t.same(now.links, before.kernel.links, `${what}: no device rebuilt`)
    t.notOk(now.peers.some((p) => /10\.30\.0\.99|8\.8\.8\.8|10\.9\.9\.9|:63 /.test(p)), `${what}: no forged peer`)
    t.ok(now.peers.includes(first) && now.peers.includes(next), `${what}: the valid state stands and the next change landed`)
    t.notOk(dns(h1).some((d) => d.startsWith('evil=')), `${what}: no forged DNS name`)
  }
  t.equal(h1.sync.devices('ov1')?.vni, 4096, 'the VNI never changed')
})

t.test('without a key: a forged revision does not hide the real change, and a huge one only costs a re-read', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 1)
  const h2 = await host(t, 2)
  const first = await validChange(h1, h2)
  // A forged withdrawal takes the next revision; the real change comes with the same revision.
  publishRaw({ kind: 'endpoint-withdrawn', rev: rev() + 1, overlay: 'ov1', endpointId: `ok${serial}`, hostId: 'h2' })
  await until('forged withdrawal applied', async () => (await kernel(h1)).peers.length === 0)
  const next = await validChange(h1, h2)
  await until('both back', async () => { const p = (await kernel(h1)).peers; return p.includes(first) && p.includes(next) })
  t.ok(rejected(h1, 'message', 'revision') >= 1, 'the clash was seen and the store re-read')
  // A forged revision far ahead: a gap, a full read, and the next real change applies in order.
  publishRaw({ kind: 'endpoint-withdrawn', rev: Number.MAX_SAFE_INTEGER, overlay: 'ov1', endpointId: 'nope', hostId: 'h2' })
  const third = await validChange(h1, h2)
  t.same((await kernel(h1)).peers, [first, next, third].sort())
  t.ok(h1.sync.status().revision < Number.MAX_SAFE_INTEGER, 'the applied revision is the store\'s')
  // A forged message alone, with nothing after it: the revision check sees it ahead of the store's counter.
  publishRaw({ kind: 'endpoint-withdrawn', rev: rev() + 1, overlay: 'ov1', endpointId: `ok${serial}`, hostId: 'h2' })
  await until('forged withdrawal applied', async () => (await kernel(h1)).peers.length === 2)
  t.equal(await h1.sync.checkRevision(), true, 'ahead of the store: re-read')
  await until('restored', async () => (await kernel(h1)).peers.length === 3)
  t.same((await kernel(h1)).peers, [first, next, third].sort())
})

t.test('without a key: forged entries in the store are skipped one by one at every full read', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 1)
  const h2 = await host(t, 2)
  const first = await validChange(h1, h2)
  const entries: Array<[string, string]> = [
    ['bad1', JSON.stringify(ep({ endpointId: 'bad1', names: 1 }))],
    ['bad2', '{not json'],
    ['bad3', JSON.stringify(ep({ endpointId: 'other-id' }))],
    ['bad4', JSON.stringify(ep({ endpointId: 'bad4', hostId: 'ghost', vtep: '10.9.9.9' }))],
    ['0', JSON.stringify(ep({ endpointId: '0', ip: first.split(' ')[0] }))],
    ['bad5', JSON.stringify(ep({ endpointId: 'bad5', ip: '8.8.8.8' }))],
    ['bad6', 'x'.repeat(20_000)],
  ]
  for (const [id, json] of entries) server.cli(['hset', 'ferry:overlay:ov1:eps', id, json])
  server.cli(['hset', 'ferry:overlay:ov1', 'vni', '9999'])
  server.cli(['zadd', 'ferry:hosts', '99999999999999', 'bad|host'])
  // A gap makes h1 read everything again: the forged VNI is refused, the overlay keeps its endpoints.
  const changed = rejected(h1, 'overlay', 'changed-definition')
  publishRaw({ kind: 'endpoint-withdrawn', rev: Number.MAX_SAFE_INTEGER, overlay: 'ov1', endpointId: 'nope', hostId: 'h2' })
  await until('re-read', () => rejected(h1, 'overlay', 'changed-definition') > changed)
  t.same((await kernel(h1)).links.filter((l) => l.startsWith('fyv-')), ['fyv-1000'], 'no VXLAN device rebuilt for the forged VNI')
  server.cli(['hset', 'ferry:overlay:ov1', 'vni', '4096'])
  const n = h1.store.rejects.total()
  const snap = await h1.store.snapshot()
  t.same(snap.overlays[0]?.endpoints.map((e) => e.endpointId).sort(), ['0', 'bad4', `ok${serial}`].sort(), 'schema-valid entries only; the rest skipped, not thrown')
  t.same(snap.hosts.map((h) => h.hostId), ['h1', 'h2'], 'a host id that is not valid is skipped')
  t.ok(h1.store.rejects.total() > n, 'counted')
  const next = await validChange(h1, h2)
  t.same((await kernel(h1)).peers, [first, next].sort(), 'a host not registered and a stolen address are not programmed')
  t.same(dns(h1), [`ok${serial - 1}=${first.split(' ')[0]}`, `ok${serial}=${next.split(' ')[0]}`].sort())
  // h2 leaves the overlay: the scripts get past the forged entries (decoded with pcall).
  t.same(await h2.store.removeOverlayHost('ov1'), { deleted: false })
  await until('h2 gone from h1', async () => (await kernel(h1)).peers.length === 0)
})

t.test('with --cluster-key: unsigned, wrongly signed and moved entries are refused; signed ones work', async (t) => {
  server.cli(['flushall'])
  const h1 = await host(t, 1, KEY)
  const h2 = await host(t, 2, KEY)
  const first = await validChange(h1, h2)
  const stored = server.cli(['hget', 'ferry:overlay:ov1:eps', `ok${serial}`]).trim()
  t.match(JSON.parse(stored), { sig: /^[A-Za-z0-9_-]{43}$/ }, 'stored entries carry a MAC')
  t.match(server.cli(['hget', 'ferry:overlay:ov1', 'sig']).trim(), /^[A-Za-z0-9_-]{43}$/, 'the definition too')
  t.match(server.cli(['hget', 'ferry:host:h2', 'sig']).trim(), /^[A-Za-z0-9_-]{43}$/, 'and the host')
  const signed = (o: Record<string, unknown>, key: ClusterKey, name = `ov1|${String(o.endpointId)}`): Record<string, unknown> => {
    const content = JSON.stringify({ endpointId: o.endpointId, ip: o.ip, mac: o.mac, hostId: o.hostId, vtep: o.vtep, names: o.names })
    return { ...o, sig: key.sign('endpoint', name, content) }
  }
  const forged: Array<[string, () => unknown, string]> = [
    ['no MAC', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: ep({}) }), 'missing-mac'],
    ['a MAC of another key', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: signed(ep({}), OTHER_KEY) }), 'bad-mac'],
    ['a MAC made for another overlay', () => ({ kind: 'endpoint-published', rev: rev() + 1, overlay: 'ov1', endpoint: signed(ep({}), KEY, 'ov2|evil') }), 'bad-mac'],
    ['an unsigned host', () => ({ kind: 'host-up', rev: rev() + 1, host: { hostId: 'ghost', vtep: '10.9.9.9', version: 'x' } }), 'missing-mac'],
    ['an unsigned VNI change', () => ({ kind: 'overlay-defined', rev: rev() + 1, overlay: { ...OV, vni: 9999, createdBy: 'h1', createdAt: 1 } }), 'missing-mac'],
  ]
  for (const [what, msg, reason] of forged) {
    const n = rejected(h1, 'message', reason)
    publishRaw(msg())
    const next = await validChange(h1, h2)
    t.ok(rejected(h1, 'message', reason) > n, `${what}: refused (${reason})`)
    t.ok((await kernel(h1)).peers.includes(next), `${what}: the next change landed`)
    t.notOk(dns(h1).some((d) => d.startsWith('evil=')), `${what}: no forged name`)
  }
  // Entries: an unsigned one, and h2's authentic entry copied under another id.
  server.cli(['hset', 'ferry:overlay:ov1:eps', 'evil', JSON.stringify(ep({}))])
  server.cli(['hset', 'ferry:overlay:ov1:eps', 'copy', stored])
  const snap = await h1.store.snapshot()
  t.notOk(snap.overlays[0]?.endpoints.some((e) => e.endpointId === 'evil' || e.endpointId === 'copy'), 'refused at read')
  t.ok(rejected(h1, 'endpoint', 'missing-mac') >= 1 && rejected(h1, 'endpoint', 'invalid') >= 1)
  t.ok((await kernel(h1)).peers.includes(first))
  t.match(h1.store.status(), { clusterKey: true })
  // A host without a key ignores MACs.
  const plain = new RedisClusterStore({ url: server.url, hostId: 'h3', advertiseAddr: '192.168.50.3', heartbeatMs: 0 })
  t.teardown(() => plain.close())
  await plain.start()
  t.ok((await plain.endpoints('ov1')).some((e) => e.endpointId === `ok${serial}`), 'an agent without a key reads signed entries')
  t.match(plain.status(), { clusterKey: false })
})

t.test('with --cluster-key: an encrypted overlay made plain in Redis is refused, not joined in the clear', async (t) => {
  const stores = [1, 2].map((n) => new RedisClusterStore({ url: server.url, hostId: `e${n}`, advertiseAddr: `192.168.51.${n}`, heartbeatMs: 0, hostTtlMs: 60_000, key: KEY }))
  const [e1, e2] = stores as [RedisClusterStore, RedisClusterStore]
  for (const s of stores) { t.teardown(() => s.close()); await s.start() }
  const OVE = { name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1', encrypt: 'wireguard' as const }
  t.match(await e1.defineOverlay(OVE), { encrypt: 'wireguard' })
  t.equal(server.cli(['hget', 'ferry:overlay:ove', 'encrypt']).trim(), 'wireguard', 'stored with the definition')
  // A Redis writer strips the flag: the store now says plain, the MAC still covers "encrypted".
  server.cli(['hdel', 'ferry:overlay:ove', 'encrypt'])
  await t.rejects(e2.defineOverlay({ ...OVE, encrypt: undefined }), { code: 'CLUSTER_REFUSED', message: /definition of overlay ove was refused/ })
  t.ok(e2.rejects.list().some((r) => r.kind === 'overlay' && r.reason === 'bad-mac'), 'as a wrong MAC')
  t.equal(await e1.overlay('ove'), undefined, 'every keyed reader refuses it')
  server.cli(['hset', 'ferry:overlay:ove', 'encrypt', 'wireguard'])
  t.match(await e2.defineOverlay(OVE), { encrypt: 'wireguard' }, 'put back, it is joined encrypted')
  for (const s of stores) await s.leave()
})
