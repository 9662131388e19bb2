/**
 * An in-memory cluster store with the same semantics as the Redis one, for unit
 * tests of consumers. A `MemoryCluster` plays the Redis server (its data mirrors
 * the Redis keys one to one, see src/cluster/lua.ts); each host connects with
 * `cluster.connect(opts)` and gets a `MemoryClusterStore`. Every backend method
 * runs synchronously, hence atomically, like a Lua script; changes reach the
 * other connections on a later microtask, like pub/sub.
 *
 * Test controls: `advance(ms)` moves the server clock (for heartbeat TTLs),
 * `stop()`/`start()` make the server unreachable and back (`stop({ loseData: true })`
 * also loses all data, like Redis without persistence), `restart()` does both, `isEmpty()` says nothing is left.
 */
import { FerryError } from '../errors/errors.js'
import { bounds, intToIp, ipToInt, parseCidr, rangesOverlap } from '../ipam/cidr.js'
import { VNI_AUTO_MIN, VNI_MAX } from './backend.js'
import type { BackendListener, ClusterBackend, HostKeep, HostRegistration, VniMode } from './backend.js'
import { ClusterClient, type ClusterClientOptions } from './client.js'
import type {
  ClusterChange, ClusterEndpoint, ClusterSnapshot, HostInfo, OverlayDefinition, OverlayRequest,
} from './types.js'

/** A change before it gets its revision. */
type ChangeBody = ClusterChange extends infer C ? C extends ClusterChange ? Omit<C, 'rev'> : never : never

/** The owner recorded for an overlay's gateway address. */
export const GATEWAY_OWNER = '@gateway'

interface HostRecord { vtep: string, version: string, lastHeartbeat: number, registeredAt: number }

interface OverlayRecord {
  def: OverlayDefinition
  net: number
  prefix: number
  cursor?: number
  hosts: Set<string>
  /** ip -> owner host id (or GATEWAY_OWNER). */
  addrs: Map<string, string>
  eps: Map<string, ClusterEndpoint>
}

function sameEndpoint (a: ClusterEndpoint, b: ClusterEndpoint): boolean {
  return a.endpointId === b.endpointId && a.ip === b.ip && a.mac === b.mac && a.hostId === b.hostId && a.vtep === b.vtep &&
    (a.names ?? []).join(',') === (b.names ?? []).join(',')
}

function err (code: ConstructorParameters<typeof FerryError>[0], message: string): FerryError {
  return new FerryError(code, message)
}

function setOf<K, V> (m: Map<K, Set<V>>, k: K): Set<V> {
  let s = m.get(k)
  if (!s) { s = new Set(); m.set(k, s) }
  return s
}

export class MemoryCluster {
  private rev: number | undefined
  private vniCursor: number | undefined
  private readonly hostRecords = new Map<string, HostRecord>()
  /** hostId -> expiry (the `hosts` sorted set). */
  private readonly expiries = new Map<string, number>()
  private readonly hostEps = new Map<string, Set<string>>()
  private readonly hostAddrs = new Map<string, Set<string>>()
  private readonly hostOverlays = new Map<string, Set<string>>()
  private readonly overlayRecords = new Map<string, OverlayRecord>()
  private readonly vnis = new Map<number, string>()
  private readonly conns = new Set<MemoryBackend>()
  private offset = 0
  private up = true

  constructor (private readonly clock: () => number = Date.now) {}

  /** A store for one host, connected to this cluster. */
  connect (opts: ClusterClientOptions): MemoryClusterStore {
    return new MemoryClusterStore(this, opts)
  }

  now (): number { return this.clock() + this.offset }
  advance (ms: number): void { this.offset += ms }
  isUp (): boolean { return this.up }

  /** Make the server unreachable: every connection is told, every call fails. `loseData` also wipes everything. */
  stop (opts: { loseData?: boolean } = {}): void {
    if (opts.loseData === true) this.wipe()
    if (!this.up) return
    this.up = false
    for (const c of this.conns) c.lost()
  }

  /** Make the server reachable again: every connection reconnects. */
  start (): void {
    if (this.up) return
    this.up = true
    for (const c of this.conns) c.reconnected()
  }

  /** Stop, lose all data (like Redis without persistence), start. */
  restart (): void {
    this.stop({ loseData: true })
    this.start()
  }

  private wipe (): void {
    this.rev = undefined
    this.vniCursor = undefined
    for (const m of [this.hostRecords, this.expiries, this.hostEps, this.hostAddrs, this.hostOverlays, this.overlayRecords, this.vnis]) m.clear()
  }

  /** True when nothing is stored (the Redis equivalent: no ferry:* key). */
  isEmpty (): boolean {
    return this.rev === undefined && this.vniCursor === undefined && this.hostRecords.size === 0 && this.expiries.size === 0 &&
      this.hostEps.size === 0 && this.hostAddrs.size === 0 && this.hostOverlays.size === 0 && this.overlayRecords.size === 0 && this.vnis.size === 0
  }

  /** @internal */
  attach (c: MemoryBackend): void { this.conns.add(c) }
  /** @internal */
  detach (c: MemoryBackend): void { this.conns.delete(c) }

  // -------------------------------------------------------------------------
  // Server-side steps (each one atomic), mirroring the Lua scripts.

  private bump (change: ChangeBody): number {
    this.rev = (this.rev ?? this.now() * 1000) + 1
    const full = { ...change, rev: this.rev } as ClusterChange
    for (const c of this.conns) c.deliver(structuredClone(full))
    return this.rev
  }

  private cleanupIfEmpty (): void {
    if (this.expiries.size === 0 && this.overlayRecords.size === 0) {
      this.rev = undefined
      this.vniCursor = undefined
    }
  }

  private joinOverlay (hostId: string, name: string): void {
    this.overlayRecords.get(name)?.hosts.add(hostId)
    setOf(this.hostOverlays, hostId).add(name)
  }

  private deleteOverlay (name: string): void {
    const o = this.overlayRecords.get(name)
    if (!o) return
    for (const [id, ep] of o.eps) this.hostEps.get(ep.hostId)?.delete(`${name}|${id}`)
    for (const [ip, owner] of o.addrs) this.hostAddrs.get(owner)?.delete(`${name}|${ip}`)
    for (const h of o.hosts) this.hostOverlays.get(h)?.delete(name)
    for (const m of [this.hostEps, this.hostAddrs, this.hostOverlays]) for (const [k, s] of m) if (s.size === 0) m.delete(k)
    this.vnis.delete(o.def.vni)
    this.overlayRecords.delete(name)
    this.bump({ kind: 'overlay-removed', name })
  }

  heartbeat (reg: HostRegistration): { isNew: boolean, removed: string[] } {
    const now = this.now()
    const old = this.hostRecords.get(reg.hostId)
    const isNew = !this.expiries.has(reg.hostId)
    this.expiries.set(reg.hostId, now + reg.ttlMs)
    this.hostRecords.set(reg.hostId, { vtep: reg.vtep, version: reg.version, lastHeartbeat: now, registeredAt: isNew || !old ? now : old.registeredAt })
    if (isNew || old?.vtep !== reg.vtep) this.bump({ kind: 'host-up', host: { hostId: reg.hostId, vtep: reg.vtep, version: reg.version } })
    const removed: string[] = []
    if (!reg.reap) return { isNew, removed }
    for (const [h, exp] of [...this.expiries].sort((a, b) => a[1] - b[1])) {
      if (exp <= now && h !== reg.hostId) { this.removeHost(h); removed.push(h) }
    }
    return { isNew, removed }
  }

  removeHost (hostId: string): void {
    for (const m of this.hostEps.get(hostId) ?? []) {
      const [ov, id] = m.split('|') as [string, string]
      this.overlayRecords.get(ov)?.eps.delete(id)
    }
    for (const m of this.hostAddrs.get(hostId) ?? []) {
      const [ov, ip] = m.split('|') as [string, string]
      const o = this.overlayRecords.get(ov)
      if (o?.addrs.get(ip) === hostId) o.addrs.delete(ip)
    }
    const ovs = [...(this.hostOverlays.get(hostId) ?? [])]
    const existed = this.expiries.has(hostId) || this.hostRecords.has(hostId)
    this.hostRecords.delete(hostId)
    this.expiries.delete(hostId)
    this.hostEps.delete(hostId)
    this.hostAddrs.delete(hostId)
    this.hostOverlays.delete(hostId)
    if (existed) this.bump({ kind: 'host-removed', hostId })
    for (const ov of ovs) this.leaveMembership(hostId, ov)
    this.cleanupIfEmpty()
  }

  private leaveMembership (hostId: string, name: string): boolean {
    const o = this.overlayRecords.get(name)
    this.hostOverlays.get(hostId)?.delete(name)
    if (this.hostOverlays.get(hostId)?.size === 0) this.hostOverlays.delete(hostId)
    if (!o) return false
    o.hosts.delete(hostId)
    if (o.hosts.size > 0) return false
    this.deleteOverlay(name)
    return true
  }

  define (hostId: string, req: OverlayRequest, mode: VniMode): OverlayDefinition {
    const ex = this.overlayRecords.get(req.name)
    if (ex) {
      const d = ex.def
      if (d.subnet !== req.subnet) throw err('NAME_CONFLICT', `overlay ${req.name} already exists with subnet ${d.subnet} (this host asked for ${req.subnet})`)
      if (d.gateway !== req.gateway) throw err('NAME_CONFLICT', `overlay ${req.name} already exists with gateway ${d.gateway} (this host asked for ${req.gateway})`)
      if (mode === 'require' && req.vni !== undefined && req.vni !== d.vni) {
        throw err('NAME_CONFLICT', `overlay ${req.name} already exists with VNI ${d.vni} (this host asked for ${req.vni})`)
      }
      this.joinOverlay(hostId, req.name)
      return { ...d }
    }
    const c = parseCidr(req.subnet)
    const range = bounds(c)
    for (const o of [...this.overlayRecords.values()].sort((a, b) => a.def.name.localeCompare(b.def.name))) {
      if (rangesOverlap(range, bounds({ network: o.net, prefix: o.prefix }))) {
        throw err('POOL_OVERLAP', `subnet ${req.subnet} of overlay ${req.name} overlaps overlay ${o.def.name} (${o.def.subnet})`)
      }
    }
    let vni = req.vni
    if (vni !== undefined && this.vnis.has(vni)) {
      if (mode === 'require') throw err('NAME_CONFLICT', `VNI ${vni} is already used by overlay ${this.vnis.get(vni) ?? '?'}`)
      vni = undefined
    }
    if (vni === undefined) {
      const span = VNI_MAX - VNI_AUTO_MIN + 1
      const cursor = this.vniCursor ?? VNI_AUTO_MIN - 1
      for (let i = 1; i <= span; i++) {
        const v = VNI_AUTO_MIN + ((cursor + i - VNI_AUTO_MIN) % span)
        if (!this.vnis.has(v)) { vni = v; break }
      }
      if (vni === undefined) throw err('POOL_EXHAUSTED', 'no free VNI is left in the cluster')
      this.vniCursor = vni
    }
    const def: OverlayDefinition = { name: req.name, subnet: req.subnet, gateway: req.gateway, vni, createdBy: hostId, createdAt: this.now() }
    this.overlayRecords.set(req.name, {
      def, net: c.network, prefix: c.prefix, hosts: new Set(), addrs: new Map([[req.gateway, GATEWAY_OWNER]]), eps: new Map(),
    })
    this.vnis.set(vni, req.name)
    this.joinOverlay(hostId, req.name)
    this.bump({ kind: 'overlay-defined', overlay: { ...def } })
    return { ...def }
  }

  leaveOverlay (hostId: string, name: string): { deleted: boolean } {
    const o = this.overlayRecords.get(name)
    if (!o) {
      this.hostOverlays.get(hostId)?.delete(name)
      return { deleted: false }
    }
    for (const m of [...(this.hostEps.get(hostId) ?? [])]) {
      if (m.startsWith(`${name}|`)) this.withdraw(name, m.slice(name.length + 1))
    }
    for (const m of [...(this.hostAddrs.get(hostId) ?? [])]) {
      if (m.startsWith(`${name}|`)) this.release(hostId, name, m.slice(name.length + 1))
    }
    const deleted = this.leaveMembership(hostId, name)
    this.cleanupIfEmpty()
    return { deleted }
  }

  private overlayOrThrow (name: string): OverlayRecord {
    const o = this.overlayRecords.get(name)
    if (!o) throw err('NETWORK_NOT_FOUND', `overlay ${name} is not defined in the cluster`)
    return o
  }

  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean): string {
    const o = this.overlayOrThrow(overlay)
    const size = 2 ** (32 - o.prefix)
    const first = o.net + 1
    const last = o.net + size - 2
    const take = (ip: string, n: number | undefined): string => {
      o.addrs.set(ip, hostId)
      if (n !== undefined) o.cursor = n
      setOf(this.hostAddrs, hostId).add(`${overlay}|${ip}`)
      this.joinOverlay(hostId, overlay)
      return ip
    }
    if (preferred !== undefined) {
      const n = ipToInt(preferred)
      if (n < first || n > last) throw err('ADDRESS_OUT_OF_POOL', `address ${preferred} is not a host address of overlay ${overlay} (${o.def.subnet})`)
      const owner = o.addrs.get(preferred)
      if (owner === undefined) return take(preferred, undefined)
      if (owner === hostId && reclaim) return take(preferred, undefined)
      if (owner === GATEWAY_OWNER) throw err('ADDRESS_IN_USE', `address ${preferred} is the gateway of overlay ${overlay}`)
      throw err('ADDRESS_IN_USE', `address ${preferred} of overlay ${overlay} is already allocated (by host ${owner})`)
    }
    const count = last - first + 1
    const start = o.cursor ?? first - 1
    for (let i = 1; i <= count; i++) {
      const n = first + ((start + i - first) % count)
      const ip = intToIp(n)
      if (!o.addrs.has(ip)) return take(ip, n)
    }
    throw err('POOL_EXHAUSTED', `no free address is left in overlay ${overlay} (${o.def.subnet})`)
  }

  release (hostId: string, overlay: string, ip: string): boolean {
    const o = this.overlayRecords.get(overlay)
    if (!o || o.addrs.get(ip) !== hostId) return false
    o.addrs.delete(ip)
    const s = this.hostAddrs.get(hostId)
    s?.delete(`${overlay}|${ip}`)
    if (s?.size === 0) this.hostAddrs.delete(hostId)
    return true
  }

  publish (overlay: string, ep: ClusterEndpoint): number {
    const o = this.overlayOrThrow(overlay)
    const old = o.eps.get(ep.endpointId)
    if (old && sameEndpoint(old, ep)) return this.rev ?? 0
    if (old && old.hostId !== ep.hostId) this.hostEps.get(old.hostId)?.delete(`${overlay}|${ep.endpointId}`)
    o.eps.set(ep.endpointId, { ...ep })
    setOf(this.hostEps, ep.hostId).add(`${overlay}|${ep.endpointId}`)
    this.joinOverlay(ep.hostId, overlay)
    return this.bump({ kind: 'endpoint-published', overlay, endpoint: { ...ep } })
  }

  withdraw (overlay: string, endpointId: string): boolean {
    const o = this.overlayRecords.get(overlay)
    const old = o?.eps.get(endpointId)
    if (!o || !old) return false
    o.eps.delete(endpointId)
    const s = this.hostEps.get(old.hostId)
    s?.delete(`${overlay}|${endpointId}`)
    if (s?.size === 0) this.hostEps.delete(old.hostId)
    this.bump({ kind: 'endpoint-withdrawn', overlay, endpointId, hostId: old.hostId })
    return true
  }

  prune (hostId: string, keep: HostKeep): void {
    const eps = new Set(keep.endpoints)
    const addrs = new Set(keep.addresses)
    const ovs = new Set(keep.overlays)
    for (const m of [...(this.hostEps.get(hostId) ?? [])]) {
      if (eps.has(m)) continue
      const bar = m.indexOf('|')
      this.withdraw(m.slice(0, bar), m.slice(bar + 1))
    }
    for (const m of [...(this.hostAddrs.get(hostId) ?? [])]) {
      if (addrs.has(m)) continue
      const bar = m.indexOf('|')
      this.release(hostId, m.slice(0, bar), m.slice(bar + 1))
    }
    for (const ov of [...(this.hostOverlays.get(hostId) ?? [])]) {
      if (!ovs.has(ov)) this.leaveOverlay(hostId, ov)
    }
    this.cleanupIfEmpty()
  }

  private hostInfo (hostId: string): HostInfo | undefined {
    const r = this.hostRecords.get(hostId)
    const exp = this.expiries.get(hostId)
    if (!r || exp === undefined) return undefined
    return { hostId, vtep: r.vtep, version: r.version, lastHeartbeat: r.lastHeartbeat, expiresAt: exp, registeredAt: r.registeredAt }
  }

  hosts (): HostInfo[] {
    return [...this.expiries.keys()].sort().map((h) => this.hostInfo(h)).filter((h): h is HostInfo => h !== undefined)
  }

  overlay (name: string): OverlayDefinition | undefined {
    const o = this.overlayRecords.get(name)
    return o ? { ...o.def } : undefined
  }

  endpoints (overlay: string): ClusterEndpoint[] {
    const o = this.overlayRecords.get(overlay)
    if (!o) return []
    return [...o.eps.values()].sort((a, b) => (a.endpointId < b.endpointId ? -1 : 1)).map((e) => ({ ...e }))
  }

  revision (): number { return this.rev ?? 0 }

  snapshot (): ClusterSnapshot {
    return {
      rev: this.revision(),
      time: this.now(),
      hosts: this.hosts(),
      overlays: [...this.overlayRecords.keys()].sort().map((name) => {
        const o = this.overlayRecords.get(name)!
        return { definition: { ...o.def }, hosts: [...o.hosts].sort(), endpoints: this.endpoints(name) }
      }),
    }
  }
}

/** One host's connection to a MemoryCluster. */
export class MemoryBackend implements ClusterBackend {
  readonly description = 'memory://'
  private listener: BackendListener | undefined
  private commands = 0
  private closed = false

  constructor (private readonly cluster: MemoryCluster) {}

  open (listener: BackendListener): void {
    this.listener = listener
    this.cluster.attach(this)
    if (this.cluster.isUp()) queueMicrotask(() => { if (!this.closed) this.listener?.ready() })
    else queueMicrotask(() => this.listener?.down(new Error('connection refused')))
  }

  async close (): Promise<void> {
    this.closed = true
    this.cluster.detach(this)
  }

  isReady (): boolean { return !this.closed && this.listener !== undefined && this.cluster.isUp() }
  commandCount (): number { return this.commands }

  /** @internal the server went away */
  lost (): void { queueMicrotask(() => this.listener?.down(new Error('connection lost'))) }
  /** @internal the server is back */
  reconnected (): void { queueMicrotask(() => { if (!this.closed) this.listener?.ready() }) }
  /** @internal a published change */
  deliver (change: ClusterChange): void { queueMicrotask(() => { if (!this.closed) this.listener?.change(change) }) }

  /** One command: fails when the server is down, runs atomically otherwise. */
  private async run<T> (fn: () => T): Promise<T> {
    if (this.closed || !this.cluster.isUp()) throw new FerryError('CLUSTER_UNAVAILABLE', 'the memory cluster is not reachable')
    this.commands++
    return fn()
  }

  heartbeat (reg: HostRegistration) { return this.run(() => this.cluster.heartbeat(reg)) }
  define (hostId: string, req: OverlayRequest, mode: VniMode) { return this.run(() => this.cluster.define(hostId, req, mode)) }
  leaveOverlay (hostId: string, name: string) { return this.run(() => this.cluster.leaveOverlay(hostId, name)) }
  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean) {
    return this.run(() => this.cluster.allocate(hostId, overlay, preferred, reclaim))
  }

  release (hostId: string, overlay: string, ip: string) { return this.run(() => this.cluster.release(hostId, overlay, ip)) }
  publish (overlay: string, ep: ClusterEndpoint) { return this.run(() => this.cluster.publish(overlay, ep)) }
  withdraw (overlay: string, endpointId: string) { return this.run(() => this.cluster.withdraw(overlay, endpointId)) }
  prune (hostId: string, keep: HostKeep) { return this.run(() => this.cluster.prune(hostId, keep)) }
  removeHost (hostId: string) { return this.run(() => this.cluster.removeHost(hostId)) }
  snapshot () { return this.run(() => this.cluster.snapshot()) }
  overlay (name: string) { return this.run(() => this.cluster.overlay(name)) }
  endpoints (overlay: string) { return this.run(() => this.cluster.endpoints(overlay)) }
  hosts () { return this.run(() => this.cluster.hosts()) }
  revision () { return this.run(() => this.cluster.revision()) }
}

/** The in-memory ClusterStore of one host. */
export class MemoryClusterStore extends ClusterClient {
  constructor (cluster: MemoryCluster, opts: ClusterClientOptions) {
    super(new MemoryBackend(cluster), opts)
  }
}
