/**
 * The agent's record source for the DNS server: what ferry knows of its
 * endpoints (addresses, networks), what the engine says of their names (network
 * aliases, links, short ids), and, for overlays, the names other hosts publish
 * through the cluster. Names are scoped by network; an overlay is one scope on
 * every host. Also answers "which scopes may this client see" by source address.
 */
import { EventEmitter } from 'node:events'
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { ContainerNames } from '../docker/watch.js'
import type { ClusterEndpoint } from '../cluster/types.js'
import type { RecordEntry, RecordSource } from './records.js'

export function scopeOf (net: Pick<NetworkRecord, 'id' | 'overlay'>): string {
  return net.overlay ? `overlay:${net.overlay.name}` : net.id
}

export interface RecordInputs {
  networks: readonly NetworkRecord[]
  endpoints: readonly EndpointRecord[]
  names: readonly ContainerNames[]
  /** Remote endpoints per overlay name (this host's own are skipped by hostId). */
  remote: ReadonlyMap<string, readonly ClusterEndpoint[]>
  hostId?: string
}

/** Pure: the records and the client map for a given state. */
export function buildRecords (inp: RecordInputs): { entries: RecordEntry[], clients: Map<string, string[]>, local: Map<string, string[]> } {
  const netById = new Map(inp.networks.map((n) => [n.id, n]))
  const byEndpoint = new Map<string, { c: ContainerNames, aliases: string[] }>()
  for (const c of inp.names) for (const [eid, e] of c.endpoints) byEndpoint.set(eid, { c, aliases: e.aliases })
  const entries: RecordEntry[] = []
  const clients = new Map<string, string[]>()
  /** endpoint id -> names, for publishing overlay names cluster-wide */
  const local = new Map<string, string[]>()
  const entryOf = new Map<string, RecordEntry & { aliases: string[] }>()   // `${scope}|${container}` -> entry
  for (const ep of inp.endpoints) {
    const net = netById.get(ep.networkId)
    if (!net) continue
    const scope = scopeOf(net)
    const scopes = clients.get(ep.address) ?? []
    if (!scopes.includes(scope)) clients.set(ep.address, [...scopes, scope])
    const known = byEndpoint.get(ep.id)
    if (!known) continue
    const aliases = known.aliases.filter((a) => a !== known.c.name)
    const entry = { network: scope, name: known.c.name, aliases, ip: ep.address }
    entries.push(entry)
    entryOf.set(`${scope}|${known.c.name}`, entry)
    local.set(ep.id, [known.c.name, ...aliases])
  }
  // --link target:alias makes the alias resolve to the target on the networks the two share.
  for (const ep of inp.endpoints) {
    const known = byEndpoint.get(ep.id)
    const net = netById.get(ep.networkId)
    if (!known || !net) continue
    for (const l of known.c.links) {
      const target = entryOf.get(`${scopeOf(net)}|${l.target}`)
      if (target && !target.aliases.includes(l.alias)) target.aliases.push(l.alias)
    }
  }
  for (const [overlay, eps] of inp.remote) {
    for (const e of eps) {
      if (e.hostId === inp.hostId || !e.names || e.names.length === 0) continue
      entries.push({ network: `overlay:${overlay}`, name: e.names[0]!, aliases: e.names.slice(1), ip: e.ip })
    }
  }
  return { entries, clients, local }
}

const NONE: readonly string[] = Object.freeze([])

export class AgentRecordSource extends EventEmitter implements RecordSource {
  private entries: RecordEntry[] = []
  private clients = new Map<string, string[]>()
  localNames = new Map<string, string[]>()

  records (): readonly RecordEntry[] { return this.entries }

  /** The scopes a client may see; the same array while nothing changes. */
  clientNetworks = (srcIp: string): readonly string[] => this.clients.get(srcIp) ?? NONE

  update (inp: RecordInputs): void {
    const next = buildRecords(inp)
    const same = JSON.stringify(next.entries) === JSON.stringify(this.entries) &&
      JSON.stringify([...next.clients]) === JSON.stringify([...this.clients])
    this.localNames = next.local
    if (same) return
    this.entries = next.entries
    this.clients = next.clients
    this.emit('change')
  }
}
