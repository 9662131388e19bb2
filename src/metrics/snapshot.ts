/**
 * Builds the metrics snapshot from the agent's parts, on each scrape. Pure
 * counting functions, plus `snapshotAgent` which reads the live objects; the
 * only I/O is one Redis read of the cluster revision (bounded in time, and
 * simply left out when Redis does not answer).
 */
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { DnsMetrics } from '../dns/metrics.js'
import type { ClusterStatus } from '../cluster/types.js'
import type { PeerSyncStatus } from '../vxlan/peers.js'
import type { MeshStatus } from '../wireguard/mesh.js'
import type { AgentSnapshot, ClusterSnapshot, WireGuardSnapshot } from './registry.js'

const REVISION_TIMEOUT_MS = 1000

/** The parts of the agent a scrape reads. */
export interface SnapshotParts {
  networks: () => NetworkRecord[]
  endpoints: () => EndpointRecord[]
  reconcile: { runs: number, repairs: number, lastError: string }
  store: { writes: number, lastWriteMs: number, loss?: { kept: readonly unknown[] } }
  dns?: { metrics: DnsMetrics }
  cluster?: {
    status: () => ClusterStatus
    revision: () => Promise<number>
    peers: () => PeerSyncStatus
    /** This host's WireGuard mesh (undefined without one): read over wireguard-go's socket, bounded in time. */
    wireguard?: () => Promise<MeshStatus | undefined>
  }
}

export function countNetworks (nets: readonly NetworkRecord[]): AgentSnapshot['networks'] {
  const overlay = nets.filter((n) => n.overlay !== undefined).length
  return { bridge: nets.length - overlay, overlay }
}

export function countEndpoints (eps: readonly EndpointRecord[]): AgentSnapshot['endpoints'] {
  const joined = eps.filter((e) => e.joined).length
  return { created: eps.length - joined, joined }
}

/** Published host ports by protocol; a range counts each of its ports. */
export function countPorts (eps: readonly EndpointRecord[]): AgentSnapshot['publishedPorts'] {
  const n = { tcp: 0, udp: 0, sctp: 0 }
  for (const e of eps) {
    for (const p of e.ports) n[p.proto] += Math.max(1, p.hostPortEnd - p.hostPort + 1)
  }
  return n
}

export function clusterSnapshot (status: ClusterStatus, peers: PeerSyncStatus, revision: number | undefined): ClusterSnapshot {
  const s: ClusterSnapshot = {
    connected: status.state === 'ready',
    commands: status.commands,
    applied: peers.revision,
    synced: peers.synced,
    overlays: peers.overlays.map((o) => ({ name: o.name, peers: o.peers })),
    // Only in a mixed-family cluster (the gauge reads 0 without it).
    ...(peers.unreachableHosts !== undefined && peers.unreachableHosts.length > 0 ? { unreachableHosts: peers.unreachableHosts.length } : {}),
    clusterKey: status.clusterKey,
    rejected: status.rejected,
  }
  if (revision !== undefined) s.revision = revision
  return s
}

/** The metrics' view of the mesh: whether it is up, and per peer host its handshake, bytes and encryption. */
export function wireGuardSnapshot (m: MeshStatus): WireGuardSnapshot {
  return {
    active: m.active,
    ...(m.lastRotation !== undefined ? { lastRotation: m.lastRotation } : {}),
    peers: m.peers.map((p) => ({ hostId: p.hostId, rxBytes: p.rxBytes, txBytes: p.txBytes, encrypted: p.encrypted, ...(p.lastHandshake !== undefined ? { lastHandshake: p.lastHandshake } : {}) })),
  }
}

async function within<T> (p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms) })
  try {
    return await Promise.race([p.catch(() => undefined), timeout])
  } finally {
    clearTimeout(timer)
  }
}

export async function snapshotAgent (p: SnapshotParts): Promise<AgentSnapshot> {
  const endpoints = p.endpoints()
  const snap: AgentSnapshot = {
    networks: countNetworks(p.networks()),
    endpoints: countEndpoints(endpoints),
    publishedPorts: countPorts(endpoints),
    reconcile: { runs: p.reconcile.runs, repairs: p.reconcile.repairs, failing: p.reconcile.lastError !== '' },
    store: { writes: p.store.writes, lastWriteMs: p.store.lastWriteMs, damagedFiles: p.store.loss?.kept.length ?? 0 },
  }
  if (p.dns !== undefined) snap.dns = p.dns.metrics
  if (p.cluster !== undefined) {
    const status = p.cluster.status()
    const revision = status.state === 'ready' ? await within(p.cluster.revision(), REVISION_TIMEOUT_MS) : undefined
    snap.cluster = clusterSnapshot(status, p.cluster.peers(), revision)
    const wg = p.cluster.wireguard === undefined ? undefined : await within(p.cluster.wireguard(), REVISION_TIMEOUT_MS)
    if (wg !== undefined) snap.cluster.wireguard = wireGuardSnapshot(wg)
  }
  return snap
}
