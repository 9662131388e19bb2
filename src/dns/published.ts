/**
 * The DNS names and published ports this host publishes for its overlay endpoints
 * (so that every host answers for the whole overlay, SRV included): remembers what
 * was last sent per endpoint, so a sync sends only changes, and forgets endpoints
 * that are gone, so the memory follows the live endpoints and not every endpoint
 * the agent ever had.
 */
import type { EndpointRecord, NetworkRecord, PortBinding } from '../model/types.js'
import type { ClusterPort } from '../cluster/types.js'
import { MAX_PORTS } from '../cluster/validate.js'
import { isIp, normalizeIp } from '../util/ip.js'

export interface NamePublication { overlay: string, endpoint: EndpointRecord, names: string[], ports: ClusterPort[] }

/**
 * An endpoint's port bindings as the cluster record carries them: TCP and UDP,
 * ranges expanded (container port n with host port n of the host range), each
 * at most once, the first MAX_PORTS; the host address canonical, absent for every address.
 */
export function clusterPorts (bindings: readonly PortBinding[] | undefined): ClusterPort[] {
  const out: ClusterPort[] = []
  const seen = new Set<string>()
  for (const b of bindings ?? []) {
    if (b.proto !== 'tcp' && b.proto !== 'udp') continue
    const hostIp = b.hostIp !== '' && isIp(b.hostIp) ? normalizeIp(b.hostIp) : undefined
    const end = Math.max(b.containerPort, b.containerPortEnd || b.containerPort)
    for (let i = 0; b.containerPort + i <= end && out.length < MAX_PORTS; i++) {
      const p: ClusterPort = { proto: b.proto, port: b.containerPort + i, hostPort: b.hostPort + i, ...(hostIp !== undefined ? { hostIp } : {}) }
      const k = `${p.proto}/${p.port}/${p.hostPort}/${hostIp ?? ''}`
      if (p.port > 65535 || p.hostPort < 1 || p.hostPort > 65535 || seen.has(k)) continue
      seen.add(k)
      out.push(p)
    }
  }
  return out
}

export class PublishedNames {
  /** Endpoint id → the names and ports last sent, joined. */
  private readonly sent = new Map<string, string>()

  get size (): number { return this.sent.size }

  /**
   * The publications a sync must make: overlay endpoints whose names or ports differ from the
   * last ones sent. They count as sent from now on (call `failed` when one is not).
   * Endpoints no longer among `endpoints` are forgotten.
   */
  due (endpoints: readonly EndpointRecord[], networks: readonly NetworkRecord[], localNames: ReadonlyMap<string, string[]>): NamePublication[] {
    const live = new Set(endpoints.map((e) => e.id))
    for (const id of this.sent.keys()) if (!live.has(id)) this.sent.delete(id)
    const overlayOf = new Map(networks.filter((n) => n.overlay).map((n) => [n.id, n.overlay!.name]))
    const out: NamePublication[] = []
    for (const ep of endpoints) {
      const overlay = overlayOf.get(ep.networkId)
      const names = localNames.get(ep.id)
      if (overlay === undefined || !names) continue
      const ports = clusterPorts(ep.ports)
      const key = ports.length === 0 ? names.join(',') : `${names.join(',')} ${JSON.stringify(ports)}`
      if (this.sent.get(ep.id) === key) continue
      this.sent.set(ep.id, key)
      out.push({ overlay, endpoint: ep, names, ports })
    }
    return out
  }

  /** A publication did not reach the cluster: the next sync sends it again. */
  failed (endpointId: string): void {
    this.sent.delete(endpointId)
  }
}
