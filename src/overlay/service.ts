/**
 * The overlay as the network driver sees it: define or join an overlay, allocate
 * its addresses cluster-wide, publish and withdraw endpoints. Behind it, the
 * Redis control plane (src/cluster) and the VXLAN data plane (src/vxlan).
 */
import type { Logger } from 'pino'
import type { ClusterPort, ClusterStore, LocalClusterState } from '../cluster/types.js'
import type { PeerSync } from '../vxlan/peers.js'
import { isUnavailable } from '../cluster/client.js'
import { ErrorList, FerryError } from '../errors/errors.js'
import { canonical } from '../util/ip.js'

export interface OverlayAttachment { vni: number, bridge: string, mtu: number }
export interface OverlayAttachRequest {
  name: string, subnet: string, gateway: string, vni?: number, mtu?: number, encrypt?: 'wireguard'
  /** A dual-stack overlay (--ipv6): its IPv6 subnet and gateway, the same on every host. */
  subnet6?: string, gateway6?: string
}

export interface OverlayService {
  attach (req: OverlayAttachRequest): Promise<OverlayAttachment>
  /** This host leaves the overlay (devices removed, cluster told). */
  detach (name: string): Promise<void>
  /** An address of the overlay's IPv4 subnet, or of its IPv6 one with `family` 6. */
  allocateAddress (overlay: string, preferred: string | undefined, reclaim: boolean, family?: 4 | 6): Promise<string>
  releaseAddress (overlay: string, ip: string): Promise<void>
  /** Whether `ip` is allocated to this host in the overlay (CreateEndpoint checks it); undefined when it cannot tell. */
  holdsAddress? (overlay: string, ip: string): boolean | undefined
  publish (overlay: string, endpointId: string, ip: string, mac: string, names?: string[], ip6?: string): Promise<void>
  withdraw (overlay: string, endpointId: string): Promise<void>
}

export class ClusterOverlay implements OverlayService {
  constructor (readonly cluster: ClusterStore, readonly peers: PeerSync, private readonly log: Logger) {}

  /** At agent start: re-assert this host's state, and rebuild the devices of every overlay it has. */
  async start (local: LocalClusterState, overlays: Array<OverlayAttachRequest & { vni: number }>): Promise<void> {
    this.peers.start()
    for (const o of overlays) await this.peers.attach(o)
    // Reachability of Redis must not hold the agent back: local networking works without it.
    await this.cluster.start(local).catch((err: unknown) => this.log.warn({ err }, 'cluster store not reachable yet; retrying in the background'))
  }

  async stop (): Promise<void> {
    this.peers.stop()
    await this.cluster.close()
  }

  async attach (req: OverlayAttachRequest): Promise<OverlayAttachment> {
    const v6 = req.subnet6 !== undefined && req.gateway6 !== undefined ? { subnet6: canonical(req.subnet6), gateway6: req.gateway6 } : {}
    const def = await this.cluster.defineOverlay({ name: req.name, subnet: req.subnet, gateway: req.gateway, vni: req.vni, ...(req.encrypt ? { encrypt: req.encrypt } : {}), ...v6 })
    if (def.name !== req.name || def.subnet !== canonical(req.subnet) || def.gateway !== req.gateway || (req.vni !== undefined && def.vni !== req.vni) ||
      def.subnet6 !== v6.subnet6 || def.gateway6 !== v6.gateway6) {
      // The store checks this too (src/cluster/client.ts); the data plane is built only from what was asked for.
      await this.cluster.removeOverlayHost(req.name).catch(() => undefined)
      throw new FerryError('CLUSTER_REFUSED', `the cluster answered overlay ${req.name} with subnet ${def.subnet}, gateway ${def.gateway}, VNI ${def.vni}, which this host did not ask for: refused`)
    }
    try {
      const d = await this.peers.attach({ name: req.name, vni: def.vni, subnet: def.subnet, gateway: def.gateway, mtu: req.mtu, ...(req.encrypt ? { encrypt: req.encrypt } : {}), ...v6 })
      return { vni: def.vni, bridge: d.bridge, mtu: d.mtu }
    } catch (err) {
      await this.cluster.removeOverlayHost(req.name).catch(() => undefined)
      throw err
    }
  }

  /** Best effort: the cluster is told this host left even when its devices could not be removed. */
  async detach (name: string): Promise<void> {
    const errors = new ErrorList()
    await errors.run(`removing the devices of overlay ${name}`, () => this.peers.detach(name))
    await errors.run(`telling the cluster this host left overlay ${name}`, () => this.tolerant(() => this.cluster.removeOverlayHost(name)))
    errors.throwIfAny(`leaving overlay ${name} was incomplete`)
  }

  allocateAddress (overlay: string, preferred: string | undefined, reclaim: boolean, family: 4 | 6 = 4): Promise<string> {
    return this.cluster.allocateAddress(overlay, preferred, { reclaim, family })
  }

  async releaseAddress (overlay: string, ip: string): Promise<void> {
    await this.tolerant(() => this.cluster.releaseAddress(overlay, ip))
  }

  holdsAddress (overlay: string, ip: string): boolean | undefined {
    return this.cluster.heldAddresses?.(overlay).includes(ip)
  }

  /** Names and ports undefined: not known here, the ones already published are kept. */
  async publish (overlay: string, endpointId: string, ip: string, mac: string, names?: string[], ip6?: string, ports?: ClusterPort[]): Promise<void> {
    await this.cluster.publishEndpoint({ overlay, endpointId, ip, ...(ip6 !== undefined ? { ip6 } : {}), mac, names, ...(ports !== undefined ? { ports } : {}) })
  }

  async withdraw (overlay: string, endpointId: string): Promise<void> {
    await this.tolerant(() => this.cluster.withdrawEndpoint(overlay, endpointId))
  }

  /** Removals made while Redis is down are remembered by the store and replayed on reconnect. */
  private async tolerant (fn: () => Promise<unknown>): Promise<void> {
    try { await fn() } catch (err) { if (!isUnavailable(err)) throw err }
  }

}
