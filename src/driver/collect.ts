/**
 * Garbage the engine leaves behind, found and collected beside the driver:
 *
 * - Orphaned endpoints. The engine calls DeleteEndpoint for every endpoint it made,
 *   except when it dies between CreateEndpoint and Join (observed in the soak): such
 *   an endpoint holds its address, its veth and, on an overlay, a peer on every host
 *   forever. An endpoint of a network the engine knows, that no container of the
 *   engine (nor one attached without the engine) has had for the grace period, is
 *   deleted and its address released.
 * - Leaked addresses: see `leakedAddresses`.
 *
 * Nothing is collected while the engine cannot be asked. Each candidate's grace
 * period counts from the first collection that sees it as one; one that comes back
 * (or goes) starts afresh.
 */
import type { Logger } from 'pino'
import type { EngineNames } from '../docker/client.js'
import type { Ipam } from '../ipam/ipam.js'
import type { NetworkRecord } from '../model/types.js'
import type { NetworkDriver } from './network.js'

/** An address no endpoint holds (see leakedAddresses); `id` keys its grace period; `poolId` set for an IPv6 address (the network's IPv6 pool). */
export interface LeakedAddress { id: string, net: NetworkRecord, ip: string, poolId?: string }

/** What collection reads and changes: the driver's records and operations, the IPAM's pools. */
export interface CollectorDeps {
  driver: Pick<NetworkDriver, 'networks' | 'endpoints' | 'network' | 'deleteEndpoint' | 'releaseOverlayAddress'>
  ipam: Pick<Ipam, 'pool' | 'releaseAddress'>
  /** The engine's names; undefined when the engine cannot be asked (nothing is collected then). */
  engineNames (): Promise<EngineNames | undefined>
  /** The container attached without the engine that owns an endpoint, if any (src/runtime). */
  endpointOwner? (endpointId: string): string | undefined
  /** The cluster-wide addresses this host holds in an overlay (src/cluster), if known. */
  heldAddresses? (overlay: string): string[] | undefined
  /** How long a candidate waits before it is collected (ms); default 60 s. */
  graceMs?: number
  log: Logger
  now? (): number
}

/**
 * Endpoint addresses of ferry's networks that neither a ferry endpoint nor one of
 * the engine's holds: the engine asked for them and then lost track (an agent
 * killed between RequestAddress and its answer makes the engine ask again; a
 * ReleaseAddress re-sent with an empty body after an agent restart is refused).
 * On a bridge network they are the local pool's; on an overlay, the cluster-wide
 * addresses this host holds. Networks the engine does not know (ferry's own) are
 * left alone; the caller waits the grace period before releasing, which also
 * covers an address between RequestAddress and CreateEndpoint.
 */
export function leakedAddresses (d: Pick<CollectorDeps, 'driver' | 'ipam' | 'heldAddresses'>, names: EngineNames): LeakedAddress[] {
  const out: LeakedAddress[] = []
  const endpointIps = (poolId: string | undefined): string[] => poolId === undefined
    ? []
    : Object.entries(d.ipam.pool(poolId)?.allocated ?? {}).filter(([, use]) => use.kind === 'endpoint').map(([ip]) => ip)
  for (const net of d.driver.networks()) {
    const engineHeld = names.addresses.get(net.id)
    if (engineHeld === undefined) continue
    const held = new Set(d.driver.endpoints(net.id).flatMap((e) => e.address6 === undefined ? [e.address] : [e.address, e.address6]))
    const candidates = net.overlay ? d.heldAddresses?.(net.overlay.name) ?? [] : endpointIps(net.poolId)
    for (const ip of candidates) {
      if (held.has(ip) || engineHeld.has(ip) || ip === net.gateway) continue
      out.push({ id: `address ${net.id} ${ip}`, net, ip })
    }
    for (const ip of endpointIps(net.poolId6)) {
      if (held.has(ip) || engineHeld.has(ip)) continue
      out.push({ id: `address ${net.id} ${ip}`, net, ip, poolId: net.poolId6 })
    }
  }
  return out
}

export class Collector {
  /** Candidates (endpoint ids, leaked address ids) and since when they are ones. */
  private readonly since = new Map<string, number>()

  constructor (private readonly d: CollectorDeps) {}

  /** How many candidates wait for their grace period (for tests). */
  get waiting (): number { return this.since.size }

  /** One collection: orphaned endpoints first, then leaked addresses. */
  async collect (): Promise<void> {
    const names = await this.d.engineNames()
    if (names === undefined) return
    const now = this.d.now?.() ?? Date.now()
    const grace = this.d.graceMs ?? 60_000
    const seen = new Set<string>()
    /** True once `id` has been a candidate for the grace period (counted from the first time it is seen as one). */
    const due = (id: string): boolean => {
      seen.add(id)
      const since = this.since.get(id) ?? now
      this.since.set(id, since)
      return now - since >= grace
    }
    for (const ep of this.d.driver.endpoints()) {
      if (names.endpoints.has(ep.id) || !names.networks.has(ep.networkId) || this.d.endpointOwner?.(ep.id) !== undefined) continue
      if (!due(ep.id)) continue
      const net = this.d.driver.network(ep.networkId)
      this.d.log.warn({ endpoint: ep.id, network: ep.networkId, address: ep.address }, 'deleting an endpoint the engine no longer knows')
      await this.d.driver.deleteEndpoint(ep.networkId, ep.id)
      if (ep.address !== undefined) await this.releaseAddressOf(net, ep.address)
      if (ep.address6 !== undefined && net.poolId6 !== undefined) await this.d.ipam.releaseAddress(net.poolId6, ep.address6)
    }
    for (const leak of leakedAddresses(this.d, names)) {
      if (!due(leak.id)) continue
      this.d.log.warn({ network: leak.net.id, address: leak.ip }, 'releasing an address no endpoint holds (the engine lost track of it)')
      if (leak.poolId !== undefined) await this.d.ipam.releaseAddress(leak.poolId, leak.ip)
      else await this.releaseAddressOf(leak.net, leak.ip)
    }
    // Candidates that came back (or went) start their grace period afresh.
    for (const id of [...this.since.keys()]) if (!seen.has(id)) this.since.delete(id)
  }

  /** Give an endpoint address back where it came from: the cluster for an overlay, the local pool otherwise. */
  private async releaseAddressOf (net: NetworkRecord, ip: string): Promise<void> {
    if (net.overlay) await this.d.driver.releaseOverlayAddress(net.overlay.name, ip)
    else if (net.poolId !== undefined) await this.d.ipam.releaseAddress(net.poolId, ip)
  }
}
