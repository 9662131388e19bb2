/**
 * The agent's record source for the DNS server: what ferry knows of its
 * endpoints (addresses, networks), what the engine says of their names (network
 * aliases, links, short ids), and, for overlays, the names other hosts publish
 * through the cluster. Names are scoped by network; an overlay is one scope on
 * every host. Also answers "which scopes may this client see" by source address.
 */
import { EventEmitter } from 'node:events'
import type { EndpointRecord, NetworkRecord, PortBinding } from '../model/types.js'
import type { ContainerNames } from '../docker/watch.js'
import type { ClusterEndpoint, ClusterPort } from '../cluster/types.js'
import { EndpointTable } from '../cluster/endpoints.js'
import { FerryError } from '../errors/errors.js'
import { canonical, contains, familyOf, isCidr, isIp } from '../util/ip.js'
import { MAX_SRV_PORTS, type RecordDelta, type RecordEntry, type RecordSource, type ServicePort } from './records.js'

export function scopeOf (net: Pick<NetworkRecord, 'id' | 'overlay'>): string {
  return net.overlay ? `overlay:${net.overlay.name}` : net.id
}

export interface RecordInputs {
  networks: readonly NetworkRecord[]
  endpoints: readonly EndpointRecord[]
  names: readonly ContainerNames[]
  /** Remote endpoints per overlay name (this host's own are skipped by hostId). */
  remote: ReadonlyMap<string, EndpointTable | readonly ClusterEndpoint[]>
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
    // A client is known by each of its addresses: a dual-stack container asks over either family.
    for (const ip of endpointAddresses(ep)) {
      const scopes = clients.get(ip) ?? []
      if (!scopes.includes(scope)) clients.set(ip, [...scopes, scope])
    }
    const known = byEndpoint.get(ep.id)
    if (!known) continue
    const aliases = known.aliases.filter((a) => a !== known.c.name)
    const ports = servicePorts(ep.ports)
    // An IPv6-only endpoint's one address is its entry's `ip`.
    const [ip = '', ip6] = endpointAddresses(ep)
    const entry = {
      network: scope, name: known.c.name, aliases, ip,
      ...(ip6 !== undefined ? { ip6 } : {}),
      ...(ports.length > 0 ? { ports } : {}),
    }
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
    for (const e of eps instanceof EndpointTable ? eps.values() : eps) {
      const entry = remoteEntry(overlay, e, inp.hostId)
      if (entry) entries.push(entry)
    }
  }
  return { entries, clients, local }
}

/**
 * The addresses of an endpoint, IPv4 first, as the store holds them (canonical text, so
 * they equal the source address a socket reports); an IPv6-only endpoint has no IPv4 one.
 */
export function endpointAddresses (ep: Pick<EndpointRecord, 'address' | 'address6'>): string[] {
  return [ep.address, ep.address6].filter((ip): ip is string => ip !== undefined && ip !== '')
}

/**
 * Where the DNS server listens: each network's gateway address, and its IPv6
 * gateway when it is dual-stack (or IPv6-only), each address once.
 */
export function listenAddresses (networks: readonly Pick<NetworkRecord, 'gateway' | 'gateway6'>[], port: number): Array<{ ip: string, port: number }> {
  const ips = new Set(networks.flatMap((n) => [n.gateway, n.gateway6]).filter((ip): ip is string => ip !== undefined && ip !== ''))
  return [...ips].map((ip) => ({ ip, port }))
}

/** The container ports an endpoint publishes (SRV records), TCP and UDP, ranges expanded up to MAX_SRV_PORTS. */
export function servicePorts (bindings: readonly PortBinding[] | undefined): ServicePort[] {
  const out: ServicePort[] = []
  const seen = new Set<string>()
  for (const b of bindings ?? []) {
    if (b.proto !== 'tcp' && b.proto !== 'udp') continue
    const end = Math.max(b.containerPort, b.containerPortEnd || b.containerPort)
    for (let port = b.containerPort; port <= end && out.length < MAX_SRV_PORTS; port++) {
      const k = `${b.proto}/${port}`
      if (seen.has(k)) continue
      seen.add(k)
      out.push({ proto: b.proto, port })
    }
  }
  return out
}

/**
 * The record of another host's overlay endpoint (none for this host's own, or without names): A, and AAAA on a dual-stack overlay;
 * SRV for the ports it publishes (the container's port, target its name: reached over the overlay, as Docker Swarm's DNS answers).
 */
export function remoteEntry (overlay: string, e: ClusterEndpoint, hostId: string | undefined, network = overlayScope(overlay)): RecordEntry | undefined {
  if (e.hostId === hostId || !e.names || e.names.length === 0) return undefined
  const aliases = e.names.length === 1 ? NONE : e.names.slice(1)
  return { network, name: e.names[0]!, aliases, ip: e.ip, ...(e.ip6 !== undefined ? { ip6: e.ip6 } : {}), ...remoteServicePorts(e.ports) }
}

/** The SRV ports of a remote endpoint's published ports (each container port once), as a field only when it has some: most have none. */
function remoteServicePorts (ports: readonly ClusterPort[] | undefined): { ports?: ServicePort[] } {
  if (ports === undefined || ports.length === 0) return {}
  const out: ServicePort[] = []
  for (const p of ports) if (!out.some((o) => o.proto === p.proto && o.port === p.port)) out.push({ proto: p.proto, port: p.port })
  return { ports: out }
}

function samePorts (a: readonly ServicePort[] | undefined, b: readonly ServicePort[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return a.length === b.length && a.every((p, i) => p.proto === b[i]!.proto && p.port === b[i]!.port)
}

/** The scope of an overlay's records (one string for all of them when the caller passes it along). */
function overlayScope (overlay: string): string {
  return `overlay:${overlay}`
}

function sameEntry (a: RecordEntry, b: RecordEntry): boolean {
  return a.network === b.network && a.name === b.name && a.ip === b.ip && a.ip6 === b.ip6 &&
    a.aliases.length === b.aliases.length && a.aliases.every((x, i) => x === b.aliases[i]) && samePorts(a.ports, b.ports)
}

/** One remote endpoint that changed (its vetted record, or none when it is gone; what it was, when the sender knows). */
export interface RemoteEndpointChange {
  overlay: string
  endpointId: string
  endpoint?: ClusterEndpoint
  previous?: ClusterEndpoint
}

/**
 * The remote endpoints of an overlay as the records read them: the peer sync's vetted table
 * itself (`shared`: it applies the changes, and tells what each endpoint was), or a table of
 * this source's own (given as a list: the changes are applied to it here).
 */
interface RemoteOverlay { table: EndpointTable, shared: boolean }

const NONE: readonly string[] = Object.freeze([])

/** `--dns-engine-clients`: the prefixes, canonical; INVALID_OPTION for one that is not a prefix. */
export function engineClientPrefixes (cidrs: readonly string[]): string[] {
  return cidrs.map((c) => {
    if (!isCidr(c)) throw new FerryError('INVALID_OPTION', `--dns-engine-clients "${c}" must be a prefix such as 172.17.0.0/16 or fd00:17::/64`)
    return canonical(c)
  })
}

/** Sources remembered per engine-client check at most (then the memo starts again). */
const MAX_OUTSIDE_MEMO = 4096

/**
 * The agent's records in two parts: this host's (rebuilt by `update` when the
 * engine or the driver change something) and other hosts' overlay endpoints
 * (replaced by `setRemote` after a full read, then changed endpoint by
 * endpoint by `remoteChanged`, which emits a 'delta' and costs the same
 * whatever the size of the overlay). The remote records are not kept as
 * records: they are read from the peer sync's compact table of the overlay
 * (src/cluster/endpoints.ts) when every record is asked for (the DNS server
 * builds its index once per 'change'), and a delta is made from the change.
 *
 * Engine clients (`--dns-engine-clients`): a source address in one of these
 * prefixes that is no endpoint of ferry's — a container on one of the engine's
 * own networks whose resolver (the engine's `--dns`) points at ferry — sees the
 * names of every overlay this host runs, and is forwarded like a client. The
 * names of ferry's local networks stay with their own containers.
 */
export class AgentRecordSource extends EventEmitter implements RecordSource {
  private localEntries: RecordEntry[] = []
  /** The remote endpoints of the overlays this host runs. */
  private remote = new Map<string, RemoteOverlay>()
  private hostId: string | undefined
  private clients = new Map<string, string[]>()
  localNames = new Map<string, string[]>()
  private engineClients: readonly string[] = []
  private overlayScopes: readonly string[] = NONE
  private readonly outsideMemo = new Map<string, boolean>()

  /**
   * Every record: this host's, and the remote ones made now from the tables (not kept: the caller
   * indexes them), each through `remoteEntry` as a change's delta is, from the endpoint's record
   * (made one at a time; a field the table keeps aside, such as published ports, comes with it).
   */
  records (): readonly RecordEntry[] {
    return [...this.each()]
  }

  /** The local entries, then each remote endpoint's, made as they are taken (the DNS server's index build keeps no list). */
  * each (): Generator<RecordEntry> {
    yield * this.localEntries
    for (const [overlay, { table }] of this.remote) {
      const network = overlayScope(overlay)
      for (const e of table.values()) {
        const entry = remoteEntry(overlay, e, this.hostId, network)
        if (entry) yield entry
      }
    }
  }

  /** The scopes a client may see; the same array while nothing changes. */
  clientNetworks = (srcIp: string): readonly string[] => this.clients.get(srcIp) ?? this.outside(srcIp)

  /**
   * The prefixes of the engine's networks whose containers may ask (see above);
   * throws INVALID_OPTION naming a bad one.
   */
  setEngineClients (cidrs: readonly string[]): void {
    this.engineClients = engineClientPrefixes(cidrs)
    this.outsideMemo.clear()
  }

  private outside (srcIp: string): readonly string[] {
    if (this.engineClients.length === 0 || this.overlayScopes.length === 0) return NONE
    let inside = this.outsideMemo.get(srcIp)
    if (inside === undefined) {
      inside = isIp(srcIp) && this.engineClients.some((c) => familyOf(c) === familyOf(srcIp) && contains(c, srcIp))
      if (this.outsideMemo.size >= MAX_OUTSIDE_MEMO) this.outsideMemo.clear()
      this.outsideMemo.set(srcIp, inside)
    }
    return inside ? this.overlayScopes : NONE
  }

  /** This host's records (and, when `inp.remote` has overlays, theirs replaced as by `setRemote`). */
  update (inp: RecordInputs): void {
    const next = buildRecords({ ...inp, remote: new Map() })
    const overlays = inp.networks.filter((n) => n.overlay).map(scopeOf).sort()
    if (overlays.join('\0') !== this.overlayScopes.join('\0')) this.overlayScopes = overlays.length === 0 ? NONE : overlays
    const same = JSON.stringify(next.entries) === JSON.stringify(this.localEntries) &&
      JSON.stringify([...next.clients]) === JSON.stringify([...this.clients])
    this.localNames = next.local
    if (inp.remote.size > 0) this.replaceRemote(inp.remote, inp.hostId)
    else if (same) return
    this.localEntries = next.entries
    this.clients = next.clients
    this.emit('change')
  }

  /**
   * Replace the remote records of the overlays this host runs (after a full read of the cluster):
   * an overlay given as the peer sync's table is read in place (it applies the changes); one
   * given as a list is copied into a table of this source's own.
   */
  setRemote (remote: ReadonlyMap<string, EndpointTable | readonly ClusterEndpoint[]>, hostId: string | undefined): void {
    this.replaceRemote(remote, hostId)
    this.emit('change')
  }

  private replaceRemote (remote: ReadonlyMap<string, EndpointTable | readonly ClusterEndpoint[]>, hostId: string | undefined): void {
    this.hostId = hostId
    this.remote = new Map()
    for (const [overlay, eps] of remote) {
      if (eps instanceof EndpointTable) { this.remote.set(overlay, { table: eps, shared: true }); continue }
      const table = new EndpointTable()
      for (const e of eps) table.set(e)
      this.remote.set(overlay, { table, shared: false })
    }
  }

  /**
   * Remote endpoints changed: their records only (overlays this host does not run are ignored).
   * What an endpoint was comes with the change (a shared table has it already changed) or from
   * this source's own table.
   */
  remoteChanged (changes: readonly RemoteEndpointChange[]): void {
    const remove: RecordEntry[] = []
    const add: RecordEntry[] = []
    for (const c of changes) {
      const r = this.remote.get(c.overlay)
      if (!r) continue
      const was = r.shared ? c.previous : r.table.get(c.endpointId)
      if (!r.shared) {
        if (c.endpoint) r.table.set(c.endpoint.endpointId === c.endpointId ? c.endpoint : { ...c.endpoint, endpointId: c.endpointId })
        else r.table.delete(c.endpointId)
      }
      const before = was && remoteEntry(c.overlay, was, this.hostId)
      const after = c.endpoint && remoteEntry(c.overlay, c.endpoint, this.hostId)
      if (before && after && sameEntry(before, after)) continue
      if (before) remove.push(before)
      if (after) add.push(after)
    }
    if (remove.length === 0 && add.length === 0) return
    const d: RecordDelta = { remove, add }
    this.emit('delta', d)
  }
}
