/** The admin API's views of an agent (src/api/views.ts) over fake sources: names, counters, DNS and cluster views, and their refusals. */
import t from 'tap'
import { agentInfo, AgentViews, type AgentInfo, type ViewSources } from '../../src/api/views.js'
import type { EngineNames } from '../../src/docker/client.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../../src/model/types.js'
import type { RecordEntry } from '../../src/dns/records.js'

const BR = { id: 'b'.repeat(64), poolId: 'P4', gateway: '10.1.0.1' } as NetworkRecord
const RT = { id: 'r'.repeat(64), poolId: 'PR', gateway: '10.2.0.1' } as NetworkRecord
const OV = { id: 'o'.repeat(64), poolId: 'PO', gateway: '10.9.0.1', overlay: { name: 'ov', vni: 4097 }, options: {} } as unknown as NetworkRecord
const ep = (id: string, networkId: string, ports: unknown[] = []) => ({ id, networkId, address: '10.1.0.2', ports }) as unknown as EndpointRecord
const ENDPOINTS = [ep('e1', BR.id, [{ proto: 'tcp', containerPort: 80, hostPort: 8080 }]), ep('e2', RT.id), ep('e3', OV.id)]
const NAMES: EngineNames = {
  networks: new Map([[BR.id, 'front'], [OV.id, 'over']]),
  endpoints: new Map([['e1', { containerId: 'c1c1c1', containerName: '/web' }]]),
  addresses: new Map(),
}
const INFO: AgentInfo = {
  version: '9.9.9', status: 'running', pid: 42, uptimeSeconds: 7, pluginSocket: '/p.sock', apiSocket: '/a.sock', stateDir: '/s',
  reconcile: { runs: 1 }, engine: { dockerHost: 'unix:///d.sock', lastError: '' }, firewall: { iptables: true, backend: 'nftables', reason: 'default' },
}
const RECORDS: RecordEntry[] = [
  { network: BR.id, name: 'web', aliases: ['www'], ip: '10.1.0.2' },
  { network: 'overlay:ov', name: 'far', aliases: [], ip: '10.9.0.7', ip6: 'fd00::7', ports: [{ proto: 'tcp', port: 80 }] },
]

function sources (over: Partial<ViewSources> = {}): ViewSources {
  return {
    driver: { networks: () => [BR, RT, OV], endpoints: () => ENDPOINTS },
    ipam: { pool: (id: string) => (id === 'P4' ? { id } as PoolRecord : undefined) },
    store: {
      state: { networks: { a: BR, b: RT }, endpoints: Object.fromEntries(ENDPOINTS.map((e) => [e.id, e])), pools: { P4: {} } },
      writes: 5, journalWrites: 4, snapshots: 1, lastWriteMs: 1.23456, loss: undefined,
    } as unknown as ViewSources['store'],
    engineNames: async () => NAMES,
    runtimeNames: () => ({ networkName: (id) => (id === RT.id ? 'ferry-net' : undefined), endpointOwner: (id) => (id === 'e2' ? 'job' : undefined), endpointOwnerId: (id) => (id === 'e2' ? 'f00d' : undefined) }),
    dns: () => ({
      records: { records: () => RECORDS },
      server: {
        query: async (name: string, type: string) => {
          return { rcode: 'NOERROR', answers: [{ name, type, ttl: 0, data: '10.1.0.2', extra: 1 }] } as never },
        cacheFlush: () => 3,
        cacheStats: () => ({ entries: 1, bytes: 10, hits: 2, misses: 3, evictions: 0, stale: 0, prefetches: 0, maxEntries: 100, maxBytes: 1000 }),
        upstreamHealth: () => [],
      },
    }),
    overlay: () => undefined,
    info: () => INFO,
    reconcile: async () => ({ links: 0 }),
    runtime: () => { throw new Error('not used') },
    ...over,
  }
}

t.test('status: the agent\'s part, the store\'s counters, no cluster part without a cluster', async (t) => {
  const s = await new AgentViews(sources()).status()
  t.same(Object.keys(s), ['version', 'status', 'pid', 'uptimeSeconds', 'pluginSocket', 'apiSocket', 'stateDir', 'networks', 'endpoints', 'pools', 'publishedPorts', 'store', 'reconcile', 'engine', 'firewall'])
  t.match(s, { version: '9.9.9', networks: 2, endpoints: 3, pools: 1, publishedPorts: 1, firewall: { backend: 'nftables' } })
  t.same(s.store, { healthy: true, writes: 5, journalWrites: 4, snapshots: 1, lastWriteMs: 1.23, loss: undefined })
})

t.test('networks and endpoints are named by the engine, else by ferry\'s runtime, else by a short id', async (t) => {
  const v = new AgentViews(sources())
  t.same((await v.networks()).map((n) => [n.name, n.endpoints]), [['front', 1], ['ferry-net', 1], ['over', 1]])
  t.same((await v.endpoints()).map((e) => [e.id, e.container, e.containerId, e.networkName]), [
    ['e1', 'web', 'c1c1c1', 'front'], ['e2', 'job', 'f00d', 'ferry-net'], ['e3', '', '', 'over'],
  ])
  t.same(v.pool('P4'), { id: 'P4' })
})

t.test('DNS records and queries by network name, id prefix or overlay name', async (t) => {
  const queries: unknown[] = []
  const base = sources()
  const dns = base.dns()!
  const v = new AgentViews({ ...base, dns: () => ({ ...dns, server: { ...dns.server, query: async (...a: unknown[]) => { queries.push(a); return dns.server.query(...(a as Parameters<typeof dns.server.query>)) } } }) })
  t.same(await v.dnsRecords(), [
    { network: 'front', name: 'web', aliases: ['www'], ip: '10.1.0.2' },
    { network: 'overlay:ov', name: 'far', aliases: [], ip: '10.9.0.7', ip6: 'fd00::7', ports: [{ proto: 'tcp', port: 80 }] },
  ], 'an entry\'s SRV ports when it has some')
  t.same((await v.dnsRecords('front')).map((r) => (r as { name: string }).name), ['web'], 'by the engine\'s name')
  t.same((await v.dnsRecords('bbbb')).map((r) => (r as { name: string }).name), ['web'], 'by an id prefix')
  t.same((await v.dnsRecords('ov')).map((r) => (r as { name: string }).name), ['far'], 'by the overlay\'s name')
  await t.rejects(v.dnsRecords('nope'), { code: 'NETWORK_NOT_FOUND' }, 'an unknown network is an error, not an empty list')
  t.same(await v.dnsQuery('web', 'A', 'front'), { rcode: 'NOERROR', answers: [{ name: 'web', type: 'A', ttl: 0, data: '10.1.0.2' }] })
  t.same(queries, [['web', 'A', [BR.id]]])
  t.match(await v.dnsCache(true), { entries: 1, flushed: 3, upstreams: [] })
  t.match(await v.dnsCache(false), { flushed: 0 })
})

t.test('without a DNS server or a cluster: a clear error', async (t) => {
  const v = new AgentViews(sources({ dns: () => undefined }))
  await t.rejects(v.dnsRecords(), { code: 'UNSUPPORTED', message: /--no-dns-server/ })
  await t.rejects(v.dnsQuery('web', 'A', 'front'), { code: 'UNSUPPORTED' })
  await t.rejects(v.dnsCache(false), { code: 'UNSUPPORTED' })
  await t.rejects(v.clusterStatus(), { code: 'CLUSTER_UNAVAILABLE', message: /--cluster/ })
  await t.rejects(v.peers(), { code: 'CLUSTER_UNAVAILABLE' })
  const base = sources()
  const dns = base.dns()!
  const noCache = new AgentViews({ ...base, dns: () => ({ ...dns, server: { ...dns.server, cacheStats: () => undefined } }) })
  await t.rejects(noCache.dnsCache(false), { code: 'UNSUPPORTED', message: 'the DNS cache is off' })
})

t.test('cluster status and peers from the overlay', async (t) => {
  const overlay = {
    cluster: {
      status: () => ({ state: 'ready', hostId: 'h1', clusterKey: 'on' }),
      hosts: async () => { throw new Error('down') },
      revision: async () => 12,
    },
    peers: {
      status: () => ({ revision: 12, synced: true, overlays: [] }),
      wireguardStatus: async () => undefined,
      report: async (name: string) => ({ overlay: name, differences: 0 }),
    },
  } as unknown as ReturnType<ViewSources['overlay']>
  const v = new AgentViews(sources({ overlay: () => overlay }))
  t.same(await v.clusterStatus(), { state: 'ready', hostId: 'h1', clusterKey: 'on', revision: 12, hosts: undefined, peers: { revision: 12, synced: true, overlays: [] }, wireguard: undefined })
  t.same(await v.peers(), [{ network: 'over', encrypted: false, overlay: 'ov', differences: 0 }])
  t.same(await v.peers('over'), [{ network: 'over', encrypted: false, overlay: 'ov', differences: 0 }], 'by the engine\'s name')
  await t.rejects(v.peers('front'), { code: 'NETWORK_NOT_FOUND', message: 'no overlay network "front" on this host (front is a bridge network)' })
  t.same(await v.peers('oooo'), [{ network: 'over', encrypted: false, overlay: 'ov', differences: 0 }], 'by an id prefix')
  await t.rejects(v.peers('nope'), { code: 'NETWORK_NOT_FOUND', message: /^no ferry network is named "nope" or has that id; known: front/ })
  t.match(await v.status(), { cluster: { clusterKey: 'on' } })
})

t.test('agentInfo: uptime from the start time, the firewall backend or --iptables=false', async (t) => {
  const facts = {
    version: '1.2.3', status: 'running', startedAt: 1_000_000, pluginSocket: '/run/docker/plugins/ferry.sock', apiSocket: '/run/ferry/ferry.sock',
    stateDir: '/var/lib/ferry', reconcile: { runs: 2 }, engine: { dockerHost: 'unix:///var/run/docker.sock', lastError: '' },
    firewall: { backend: 'nftables', reason: 'default: nft is installed and the kernel supports inet tables' },
  }
  t.same(agentInfo(facts, 1_061_400, 42), {
    version: '1.2.3', status: 'running', pid: 42, uptimeSeconds: 61, pluginSocket: '/run/docker/plugins/ferry.sock', apiSocket: '/run/ferry/ferry.sock',
    stateDir: '/var/lib/ferry', reconcile: { runs: 2 }, engine: { dockerHost: 'unix:///var/run/docker.sock', lastError: '' },
    firewall: { iptables: true, backend: 'nftables', reason: 'default: nft is installed and the kernel supports inet tables' },
  })
  t.same(agentInfo({ ...facts, firewall: undefined }).firewall, { iptables: false, backend: 'disabled', reason: '--iptables=false' })
  t.equal(agentInfo(facts).pid, process.pid, 'this process by default')
})

t.test('peers of an encrypted overlay carry their host\'s WireGuard handshake, bytes and encryption', async (t) => {
  const EV = { ...OV, id: 'e'.repeat(64), overlay: { name: 'ev', vni: 4098 }, options: { 'ferry.encrypt': 'wireguard' } } as unknown as NetworkRecord
  const rows = [{ ip: '10.9.0.5', mac: '02:00:00:00:00:05', hostId: 'h2', status: 'ok' }, { ip: '10.9.0.6', mac: '02:00:00:00:00:06', hostId: 'h3', status: 'missing' }]
  const overlay = {
    cluster: { status: () => ({}), hosts: async () => [], revision: async () => 1 },
    peers: {
      status: () => ({}),
      wireguardStatus: async () => ({ peers: [{ hostId: 'h2', handshakeAgeS: 4, lastHandshake: 1, rxBytes: 10, txBytes: 20, encrypted: true }] }),
      report: async (name: string) => ({ overlay: name, differences: 1, rows }),
    },
  } as unknown as ReturnType<ViewSources['overlay']>
  const base = sources({ overlay: () => overlay })
  const v = new AgentViews({ ...base, driver: { ...base.driver, networks: () => [OV, EV] } as unknown as ViewSources['driver'] })
  const [plain, enc] = await v.peers() as Array<Record<string, unknown>>
  t.match(plain, { overlay: 'ov', encrypted: false })
  t.match(enc, { overlay: 'ev', encrypted: true })
  t.same(enc?.rows, [{ ...rows[0], wireguard: { handshakeAgeS: 4, rxBytes: 10, txBytes: 20, encrypted: true } }, rows[1]], 'a host without a WireGuard peer has no such column')
})
