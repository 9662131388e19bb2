/**
 * The DNS names this host publishes for its overlay endpoints (so that every host
 * answers for the whole overlay): remembers what was last sent per endpoint, so a
 * sync sends only changes, and forgets endpoints that are gone, so the memory
 * follows the live endpoints and not every endpoint the agent ever had.
 */
import type { EndpointRecord, NetworkRecord } from '../model/types.js'

export interface NamePublication { overlay: string, endpoint: EndpointRecord, names: string[] }

export class PublishedNames {
  /** Endpoint id → the names last sent, joined. */
  private readonly sent = new Map<string, string>()

  get size (): number { return this.sent.size }

  /**
   * The publications a sync must make: overlay endpoints whose names differ from the
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
      const key = names.join(',')
      if (this.sent.get(ep.id) === key) continue
      this.sent.set(ep.id, key)
      out.push({ overlay, endpoint: ep, names })
    }
    return out
  }

  /** A publication did not reach the cluster: the next sync sends it again. */
  failed (endpointId: string): void {
    this.sent.delete(endpointId)
  }
}
