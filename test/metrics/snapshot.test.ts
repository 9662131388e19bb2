import t from 'tap'
import { clusterSnapshot, countEndpoints, countNetworks, countPorts, snapshotAgent } from '../../src/metrics/snapshot.js'
import type { EndpointRecord, NetworkRecord, PortBinding } from '../../src/model/types.js'
import { newMetrics } from '../../src/dns/metrics.js'
import type { ClusterStatus } from '../../src/cluster/types.js'
import type { PeerSyncStatus } from '../../src/vxlan/peers.js'

const net = (id: string, overlay?: string): NetworkRecord => ({ id, overlay: overlay === undefined ? undefined : { name: overlay, vni: 1 } } as unknown as NetworkRecord)
const port = (proto: 'tcp' | 'udp', hostPort: number, hostPortEnd = hostPort): PortBinding =>
  ({ proto, hostIp: '', hostPort, hostPortEnd, containerIp: '10.0.0.2', containerPort: 80, containerPortEnd: 80 + hostPortEnd - hostPort })
const ep = (joined: boolean, ports: PortBinding[] = []): EndpointRecord => ({ joined, ports } as unknown as EndpointRecord)

const rejected = [{ kind: 'endpoint', reason: 'bad-mac', count: 2 }]
const status: ClusterStatus = { state: 'ready', url: 'redis://r:6379', hostId: 'h1', vtep: '10.0.0.1', commands: 33, clusterKey: true, rejected }
const peers: PeerSyncStatus = { revision: 8, synced: true, overlays: [{ name: 'ov', vni: 5, bridge: 'b', vxlan: 'v', peers: 4, skipped: 0 }] }

t.test('counting', async (t) => {
  t.same(countNetworks([net('a'), net('b', 'ov'), net('c')]), { bridge: 2, overlay: 1 })
  t.same(countEndpoints([ep(true), ep(false), ep(true)]), { created: 1, joined: 2 })
  t.same(countPorts([ep(true, [port('tcp', 80), port('tcp', 8000, 8009)]), ep(true, [port('udp', 53)])]), { tcp: 11, udp: 1, sctp: 0 })
  t.same(clusterSnapshot(status, peers, 10), { connected: true, commands: 33, applied: 8, synced: true, overlays: [{ name: 'ov', peers: 4 }], revision: 10, clusterKey: true, rejected })
  t.same(clusterSnapshot({ ...status, state: 'down' }, peers, undefined), { connected: false, commands: 33, applied: 8, synced: true, overlays: [{ name: 'ov', peers: 4 }], clusterKey: true, rejected })
  const mixed = { ...peers, unreachableHosts: [{ hostId: 'h2', detail: 'host h2 advertises only IPv6 (fd00::2); this host has no IPv6 VTEP' }] }
  t.equal(clusterSnapshot(status, mixed, 10).unreachableHosts, 1, 'hosts sharing no underlay family are counted')
})

t.test('snapshotAgent reads live parts; a Redis that does not answer leaves the revision out', async (t) => {
  const dns = { metrics: newMetrics() }
  dns.metrics.queries = 3
  const reconcile = { runs: 1, repairs: 0, lastError: '' }
  const parts = {
    networks: () => [net('a')],
    endpoints: () => [ep(true, [port('tcp', 1)])],
    reconcile,
    store: { writes: 2, lastWriteMs: 1 },
    dns,
    cluster: { status: () => status, revision: () => new Promise<number>(() => {}), peers: () => peers },
  }
  // The revision never resolves: the snapshot resolving at all shows the wait for Redis is bounded.
  const s = await snapshotAgent(parts)
  t.equal(s.cluster?.revision, undefined, 'a Redis that does not answer leaves the revision out')
  t.equal(s.dns?.queries, 3)
  t.same(s.reconcile, { runs: 1, repairs: 0, failing: false })
  t.same(s.store, { writes: 2, lastWriteMs: 1, damagedFiles: 0 })
  const lossy = await snapshotAgent({ ...parts, cluster: undefined, store: { writes: 2, lastWriteMs: 1, loss: { kept: ['/s/state.journal.damaged-x'] } } })
  t.equal(lossy.store.damagedFiles, 1, 'a kept damaged file counts')
  reconcile.lastError = 'boom'
  const s2 = await snapshotAgent({ ...parts, cluster: { ...parts.cluster, revision: async () => 9 } })
  t.equal(s2.cluster?.revision, 9)
  t.equal(s2.reconcile.failing, true)
  const s3 = await snapshotAgent({ ...parts, cluster: { ...parts.cluster, revision: async () => { throw new Error('down') } } })
  t.equal(s3.cluster?.revision, undefined)
  t.equal(s3.cluster?.wireguard, undefined, 'no mesh: no WireGuard part')

  const mesh = {
    mode: 'userspace' as const, device: 'fyw-x', active: true, publicKey: 'k', tunnel: '100.64.0.1', port: 51820, skipped: [], lastRotation: 5,
    peers: [{ hostId: 'h2', endpoint: '192.0.2.2:51820', tunnel: '100.64.0.2', handshakeAgeS: 3, lastHandshake: 7, rxBytes: 1, txBytes: 2, encrypted: true },
      { hostId: 'h3', endpoint: '192.0.2.3:51820', tunnel: '100.64.0.3', rxBytes: 0, txBytes: 0, encrypted: false }],
  }
  const s4 = await snapshotAgent({ ...parts, cluster: { ...parts.cluster, revision: async () => 9, wireguard: async () => mesh } })
  t.same(s4.cluster?.wireguard, {
    active: true, lastRotation: 5,
    peers: [{ hostId: 'h2', rxBytes: 1, txBytes: 2, encrypted: true, lastHandshake: 7 }, { hostId: 'h3', rxBytes: 0, txBytes: 0, encrypted: false }],
  })
  const s5 = await snapshotAgent({ ...parts, cluster: { ...parts.cluster, revision: async () => 9, wireguard: () => new Promise<undefined>(() => {}) } })
  t.equal(s5.cluster?.wireguard, undefined, 'a WireGuard socket that does not answer is left out, in bounded time')
})
