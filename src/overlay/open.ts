/**
 * Opening the overlay for the agent: this host's id (given, or made once and kept
 * in the store), the cluster key, the WireGuard mesh, the Redis control plane and
 * the peer sync over the agent's link driver; and the overlays a restarted agent
 * rebuilds from its network records.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { LinkDriver } from '../kernel/types.js'
import type { NetworkRecord } from '../model/types.js'
import { keepHostId, type Store } from '../store/store.js'
import { readClusterKey } from '../cluster/key.js'
import { RedisClusterStore } from '../cluster/redis.js'
import { openOverlayDataPlane } from '../vxlan/apply.js'
import { PeerSync } from '../vxlan/peers.js'
import { openWireGuardMesh } from '../wireguard/open.js'
import { ClusterOverlay, type OverlayAttachRequest } from './service.js'

/** The agent's --cluster settings (waitMs: how long a request waits for an unreachable cluster store). */
export interface ClusterConfig {
  url: string, advertiseAddr: string, hostId?: string, hostTtlMs?: number, keyFile?: string, waitMs: number, wireguardPort?: number
  /** A dual-stack host's second --advertise-addr (the other family). */
  advertiseAddr2?: string
  /** --key-rotation-interval: rotate this host's WireGuard key this often. */
  keyRotationMs?: number
  /** --wireguard-endpoint IP:PORT: where peers reach this host's WireGuard (behind NAT). */
  wireguardEndpoint?: string
}

export async function openClusterOverlay (c: ClusterConfig, deps: { store: Store, links: LinkDriver, stateDir: string, version: string, log: Logger }): Promise<ClusterOverlay> {
  const hostId = c.hostId !== undefined && c.hostId !== ''
    ? c.hostId
    : await keepHostId(deps.store, () => `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`)
  const log = deps.log.child({ component: 'cluster' })
  const key = c.keyFile === undefined ? undefined : await readClusterKey(c.keyFile)
  const wireguard = await openWireGuardMesh({ links: deps.links, hostId, stateDir: deps.stateDir, port: c.wireguardPort, endpoint: c.wireguardEndpoint, log: deps.log.child({ component: 'wireguard' }) })
  const cluster = new RedisClusterStore({
    url: c.url, hostId, advertiseAddr: c.advertiseAddr, ...(c.advertiseAddr2 === undefined ? {} : { advertiseAddr2: c.advertiseAddr2 }), version: deps.version, hostTtlMs: c.hostTtlMs, log, key, unavailableWaitMs: c.waitMs, wireguard: wireguard?.info(),
  })
  if (wireguard && cluster.setWireGuard) wireguard.setPublisher((info) => cluster.setWireGuard(info))
  if (wireguard && c.keyRotationMs !== undefined) wireguard.rotateEvery(c.keyRotationMs)
  const peers = new PeerSync({ store: cluster, dataPlane: await openOverlayDataPlane(deps.links), log: deps.log.child({ component: 'peers' }), wireguard })
  return new ClusterOverlay(cluster, peers, log)
}

/** The overlays of the agent's network records, as a restart rebuilds them (MTU only where it was given). */
export function overlaysOf (networks: readonly NetworkRecord[]): Array<OverlayAttachRequest & { vni: number }> {
  // Overlays always have IPv4 (NetworkDriver.checkNetwork refuses --ipv4=false there), IPv6 too when dual-stack.
  return networks.filter((n) => n.overlay).map((n) => ({
    name: n.overlay!.name, subnet: n.subnet!, gateway: n.gateway!, vni: n.overlay!.vni,
    ...(n.subnet6 !== undefined && n.gateway6 !== undefined ? { subnet6: n.subnet6, gateway6: n.gateway6 } : {}),
    mtu: n.options['com.docker.network.driver.mtu'] !== undefined ? n.mtu : undefined,
    ...(n.options['ferry.encrypt'] === 'wireguard' ? { encrypt: 'wireguard' as const } : {}),
  }))
}
