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
import { FerryError } from '../../src/errors/errors.js'
import { bounds, ipString, ipValue, parseCidr, rangesOverlap } from '../../src/util/ip.js'

/** The overlay is IPv4: its addresses as numbers, as the Redis scripts hold them. */
const ipToInt = (ip: string): number => Number(ipValue(ip, 4))
const intToIp = (n: number): string => ipString(4, BigInt(n))
import { VNI_AUTO_MIN, VNI_MAX } from '../../src/cluster/backend.js'
import { CHANGE_LOG_LENGTH } from '../../src/cluster/lua.js'
import type { AllocationStep, BackendListener, ClusterBackend, HostKeep, HostRegistration, RawEndpoint, RawSnapshot, VniMode } from '../../src/cluster/backend.js'
import { ClusterClient, type ClusterClientOptions } from '../../src/cluster/client.js'
import type { ClusterChange, ClusterEndpoint, HostInfo, OverlayDefinition, OverlayRequest } from '../../src/cluster/types.js'

/** A change before it gets its revision. */
type ChangeBody = ClusterChange extends infer C ? C extends ClusterChange ? Omit<C, 'rev'> : never : never

/** The owner recorded for an overlay's gateway address. */
export const GATEWAY_OWNER = '@gateway'

interface HostRecord { vtep: string, version: string, lastHeartbeat: number, registeredAt: number, sig: string, wg: string, keyExpiresAt: number, features: string, vtep2: string }

/** An endpoint as stored: normally a ClusterEndpoint with its MAC; tests may forge anything (forgeEndpoint). */
type StoredEndpoint = Record<string, unknown>

interface OverlayRecord {
  def: OverlayDefinition
  sig: string
  net: number
  prefix: number
  cursor?: number
  /** The IPv6 side of a dual-stack overlay: its network, prefix and cursor (an offset from the network). */
  net6?: bigint
  prefix6?: number
  cursor6?: number
  hosts: Set<string>
  /** ip -> owner host id (or GATEWAY_OWNER). */
  addrs: Map<string, string>
  eps: Map<string, StoredEndpoint>
  /** ip -> the endpoint that published it first. */
  claims: Map<string, string>
}

function stored (ep: ClusterEndpoint, sig: string): StoredEndpoint {
  const s: StoredEndpoint = { endpointId: ep.endpointId, ip: ep.ip, ...(ep.ip6 !== undefined ? { ip6: ep.ip6 } : {}), mac: ep.mac, hostId: ep.hostId, vtep: ep.vtep }
  if (ep.names) s.names = [...ep.names]
  if (ep.ports) s.ports = ep.ports.map((p) => ({ ...p }))
  if (sig !== '') s.sig = sig
  return s
}

function sameStored (a: StoredEndpoint, b: StoredEndpoint): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

function strField (e: StoredEndpoint | undefined, name: string): string | undefined {
  const v = e?.[name]
  return typeof v === 'string' ? v : undefined
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
  /** The last CHANGE_LOG_LENGTH messages, oldest first (the `log` list). */
  private log: unknown[] = []
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
    this.log = []
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

  /** Bump the revision and publish the change (stored endpoints and signed entries go as stored, MAC included). */
  private bump (change: ChangeBody | { kind: string, [k: string]: unknown }): number {
    this.rev = (this.rev ?? this.now() * 1000) + 1
    const full = { ...change, rev: this.rev }
    // While the server is down nobody is subscribed: what a test changes then is in the log only.
    if (this.up) for (const c of this.conns) c.deliver(structuredClone(full))
    this.log.push(structuredClone(full))
    if (this.log.length > CHANGE_LOG_LENGTH) this.log.shift()
    return this.rev
  }

  /** Publish on the second VTEP channel (while the server is up). */
  private publishVtep2 (msg: { hostId: string, record: string }): void {
    if (this.up) for (const c of this.conns) c.deliverVtep2(structuredClone(msg))
  }

  /** Test hook: what a Redis writer could do, publish any message on the second VTEP channel. */
  forgeVtep2 (raw: unknown): void {
    for (const c of this.conns) c.deliverVtep2(structuredClone(raw))
  }

  /** Test hook: store anything as a host's second VTEP record (no message). */
  forgeVtep2Record (hostId: string, record: string): void {
    const r = this.hostRecords.get(hostId)
    if (r) r.vtep2 = record
  }

  /** Test hook: what a Redis writer could do, publish any message to every host. */
  forgeChange (raw: unknown): void {
    for (const c of this.conns) c.deliver(structuredClone(raw))
  }

  /** Test hook: store anything as an endpoint entry (no claim, no message). */
  forgeEndpoint (overlay: string, id: string, raw: Record<string, unknown>): void {
    this.overlayRecords.get(overlay)?.eps.set(id, structuredClone(raw))
  }

  private unclaim (o: OverlayRecord, ip: string | undefined, id: string): void {
    if (ip !== undefined && o.claims.get(ip) === id) o.claims.delete(ip)
  }

  private cleanupIfEmpty (): void {
    if (this.expiries.size === 0 && this.overlayRecords.size === 0) {
      this.rev = undefined
      this.log = []
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
    for (const [id, ep] of o.eps) this.hostEps.get(strField(ep, 'hostId') ?? '')?.delete(`${name}|${id}`)
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
    this.hostRecords.set(reg.hostId, {
      vtep: reg.vtep, version: reg.version, lastHeartbeat: now, registeredAt: isNew || !old ? now : old.registeredAt, sig: reg.sig, wg: reg.wg, keyExpiresAt: now + reg.keyTtlMs,
      features: reg.features ?? '', vtep2: reg.vtep2 ?? '',
    })
    const v2 = reg.vtep2 ?? ''
    if (isNew || old?.vtep !== reg.vtep || old.sig !== reg.sig || old.wg !== reg.wg || old.features !== (reg.features ?? '') || old.vtep2 !== v2) {
      // As the heartbeat script: the second VTEP on its own channel first.
      if (v2 !== '' || (old?.vtep2 ?? '') !== '') this.publishVtep2({ hostId: reg.hostId, record: v2 })
      const host = { hostId: reg.hostId, vtep: reg.vtep, version: reg.version, ...(reg.sig !== '' ? { sig: reg.sig } : {}), ...(reg.wg !== '' ? { wg: reg.wg } : {}) }
      this.bump({ kind: 'host-up', host })
    }
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
      const o = this.overlayRecords.get(ov)
      if (o) for (const f of ['ip', 'ip6']) this.unclaim(o, strField(o.eps.get(id), f), id)
      o?.eps.delete(id)
    }
    for (const m of this.hostAddrs.get(hostId) ?? []) {
      const [ov, ip] = m.split('|') as [string, string]
      const o = this.overlayRecords.get(ov)
      if (o?.addrs.get(ip) === hostId) { o.addrs.delete(ip); o.claims.delete(ip) }
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

  private rawDefinition (o: OverlayRecord): Record<string, unknown> {
    return { ...o.def, ...(o.sig !== '' ? { sig: o.sig } : {}) }
  }

  define (hostId: string, req: OverlayRequest, mode: VniMode, announce: boolean): { definition: Record<string, unknown>, created: boolean } {
    const ex = this.overlayRecords.get(req.name)
    if (ex) {
      const d = ex.def
      const what = (e: string | undefined): string => (e === undefined ? 'plain' : `encrypted (ferry.encrypt=${e})`)
      if (d.encrypt !== req.encrypt) throw err('NAME_CONFLICT', `overlay ${req.name} already exists ${what(d.encrypt)} (this host asked for it ${what(req.encrypt)})`)
      if (d.subnet !== req.subnet) throw err('NAME_CONFLICT', `overlay ${req.name} already exists with subnet ${d.subnet} (this host asked for ${req.subnet})`)
      if (d.gateway !== req.gateway) throw err('NAME_CONFLICT', `overlay ${req.name} already exists with gateway ${d.gateway} (this host asked for ${req.gateway})`)
      if (d.subnet6 !== req.subnet6 || d.gateway6 !== req.gateway6) {
        const stack = (s6?: string, g6?: string): string => (s6 === undefined ? 'IPv4-only' : `dual-stack with IPv6 subnet ${s6} and gateway ${g6 ?? ''}`)
        throw err('NAME_CONFLICT', `overlay ${req.name} already exists ${stack(d.subnet6, d.gateway6)} (this host asked for it ${stack(req.subnet6, req.gateway6)})`)
      }
      if (mode === 'require' && req.vni !== undefined && req.vni !== d.vni) {
        throw err('NAME_CONFLICT', `overlay ${req.name} already exists with VNI ${d.vni} (this host asked for ${req.vni})`)
      }
      this.joinOverlay(hostId, req.name)
      return { definition: this.rawDefinition(ex), created: false }
    }
    const c = parseCidr(req.subnet)
    const range = bounds(c)
    for (const o of [...this.overlayRecords.values()].sort((a, b) => a.def.name.localeCompare(b.def.name))) {
      if (rangesOverlap(range, bounds({ family: 4, network: BigInt(o.net), prefix: o.prefix }))) {
        throw err('POOL_OVERLAP', `subnet ${req.subnet} of overlay ${req.name} overlaps overlay ${o.def.name} (${o.def.subnet})`)
      }
      if (req.subnet6 !== undefined && o.def.subnet6 !== undefined && rangesOverlap(bounds(req.subnet6), bounds(o.def.subnet6))) {
        throw err('POOL_OVERLAP', `IPv6 subnet ${req.subnet6} of overlay ${req.name} overlaps overlay ${o.def.name} (${o.def.subnet6})`)
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
    const v6 = req.subnet6 === undefined ? {} : { subnet6: req.subnet6, gateway6: req.gateway6 }
    const def: OverlayDefinition = {
      name: req.name, subnet: req.subnet, gateway: req.gateway, ...v6, vni, ...(req.encrypt ? { encrypt: req.encrypt } : {}), createdBy: hostId, createdAt: this.now(),
    }
    const rec: OverlayRecord = {
      def, sig: '', net: Number(c.network), prefix: c.prefix, hosts: new Set(), addrs: new Map([[req.gateway, GATEWAY_OWNER]]), eps: new Map(), claims: new Map(),
    }
    if (req.subnet6 !== undefined && req.gateway6 !== undefined) {
      const c6 = parseCidr(req.subnet6, 6)
      rec.net6 = c6.network
      rec.prefix6 = c6.prefix
      rec.addrs.set(req.gateway6, GATEWAY_OWNER)
    }
    this.overlayRecords.set(req.name, rec)
    this.vnis.set(vni, req.name)
    this.joinOverlay(hostId, req.name)
    if (announce) this.bump({ kind: 'overlay-defined', overlay: { ...def } })
    return { definition: this.rawDefinition(rec), created: true }
  }

  seal (name: string, d: { subnet: string, gateway: string, subnet6?: string, gateway6?: string, vni: number, encrypt?: 'wireguard' }, sig: string): boolean {
    const o = this.overlayRecords.get(name)
    if (!o || o.def.subnet !== d.subnet || o.def.gateway !== d.gateway || o.def.vni !== d.vni || o.def.subnet6 !== d.subnet6 || o.def.gateway6 !== d.gateway6 || o.def.encrypt !== d.encrypt) return false
    o.sig = sig
    this.bump({ kind: 'overlay-defined', overlay: { ...o.def, sig } })
    return true
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

  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean, scanned: number, limit: number, family: 4 | 6 = 4): AllocationStep {
    const o = this.overlayOrThrow(overlay)
    // IPv4 addresses as numbers; IPv6 ones as offsets (1 to 2^32 - 1 at most) from the network, as the script does.
    const net6 = o.net6
    if (family === 6 && (net6 === undefined || o.prefix6 === undefined)) throw err('ADDRESS_OUT_OF_POOL', `overlay ${overlay} has no IPv6 subnet (it was defined without --ipv6)`)
    const [first, last] = family === 4 ? [o.net + 1, o.net + 2 ** (32 - o.prefix) - 2] : [1, 2 ** Math.min(32, 128 - (o.prefix6 ?? 0)) - 1]
    const toIp = (n: number): string => (net6 === undefined || family === 4 ? intToIp(n) : ipString(6, net6 + BigInt(n)))
    const subnet = family === 4 ? o.def.subnet : o.def.subnet6
    const take = (ip: string, n: number | undefined): string => {
      o.addrs.set(ip, hostId)
      if (n !== undefined) { if (family === 4) o.cursor = n; else o.cursor6 = n }
      setOf(this.hostAddrs, hostId).add(`${overlay}|${ip}`)
      this.joinOverlay(hostId, overlay)
      return ip
    }
    if (preferred !== undefined) {
      // An IPv6 preferred address was checked against the subnet by the client.
      const n = family === 4 ? ipToInt(preferred) : first
      if (n < first || n > last) throw err('ADDRESS_OUT_OF_POOL', `address ${preferred} is not a host address of overlay ${overlay} (${o.def.subnet})`)
      const owner = o.addrs.get(preferred)
      if (owner === undefined || (owner === hostId && reclaim)) return { ip: take(preferred, undefined), probes: 1 }
      if (owner === GATEWAY_OWNER) throw err('ADDRESS_IN_USE', `address ${preferred} is the gateway of overlay ${overlay}`)
      throw err('ADDRESS_IN_USE', `address ${preferred} of overlay ${overlay} is already allocated (by host ${owner})`)
    }
    const count = last - first + 1
    const start = (family === 4 ? o.cursor : o.cursor6) ?? first - 1
    const left = count - scanned
    if (left <= 0) throw err('POOL_EXHAUSTED', `no free address is left in overlay ${overlay} (${subnet ?? ''})`)
    const steps = Math.min(limit, left)
    for (let i = 1; i <= steps; i++) {
      const n = first + ((start + i - first) % count)
      const ip = toIp(n)
      if (!o.addrs.has(ip)) return { ip: take(ip, n), probes: i }
    }
    if (steps >= left) throw err('POOL_EXHAUSTED', `no free address is left in overlay ${overlay} (${subnet ?? ''})`)
    if (family === 4) o.cursor = first + ((start + steps - first) % count)
    else o.cursor6 = first + ((start + steps - first) % count)
    return { probes: steps }
  }

  release (hostId: string, overlay: string, ip: string): boolean {
    const o = this.overlayRecords.get(overlay)
    if (!o || o.addrs.get(ip) !== hostId) return false
    o.addrs.delete(ip)
    o.claims.delete(ip)
    const s = this.hostAddrs.get(hostId)
    s?.delete(`${overlay}|${ip}`)
    if (s?.size === 0) this.hostAddrs.delete(hostId)
    return true
  }

  publish (overlay: string, ep: ClusterEndpoint, sig: string): number {
    const o = this.overlayOrThrow(overlay)
    const mine: Array<[string, 'ip' | 'ip6']> = ep.ip6 === undefined ? [[ep.ip, 'ip']] : [[ep.ip, 'ip'], [ep.ip6, 'ip6']]
    for (const [ip, f] of mine) {
      if (o.addrs.get(ip) !== ep.hostId) throw err('ADDRESS_IN_USE', `address ${ip} of overlay ${overlay} is not allocated to host ${ep.hostId}`)
      const claimant = o.claims.get(ip)
      if (claimant !== undefined && claimant !== ep.endpointId && strField(o.eps.get(claimant), f) === ip) {
        throw err('ADDRESS_IN_USE', `address ${ip} of overlay ${overlay} is already claimed by endpoint ${claimant.slice(0, 12)}`)
      }
    }
    const old = o.eps.get(ep.endpointId)
    const oldIp = strField(old, 'ip')
    const oldIp6 = strField(old, 'ip6')
    if (oldIp !== ep.ip) this.unclaim(o, oldIp, ep.endpointId)
    if (oldIp6 !== ep.ip6) this.unclaim(o, oldIp6, ep.endpointId)
    for (const [ip] of mine) o.claims.set(ip, ep.endpointId)
    const entry = stored(ep, sig)
    if (old && sameStored(old, entry)) return this.rev ?? 0
    const oldHost = strField(old, 'hostId')
    if (oldHost !== undefined && oldHost !== ep.hostId) this.hostEps.get(oldHost)?.delete(`${overlay}|${ep.endpointId}`)
    o.eps.set(ep.endpointId, entry)
    setOf(this.hostEps, ep.hostId).add(`${overlay}|${ep.endpointId}`)
    this.joinOverlay(ep.hostId, overlay)
    return this.bump({ kind: 'endpoint-published', overlay, endpoint: structuredClone(entry) })
  }

  withdraw (overlay: string, endpointId: string): boolean {
    const o = this.overlayRecords.get(overlay)
    const old = o?.eps.get(endpointId)
    if (!o || !old) return false
    o.eps.delete(endpointId)
    this.unclaim(o, strField(old, 'ip'), endpointId)
    this.unclaim(o, strField(old, 'ip6'), endpointId)
    const oldHost = strField(old, 'hostId') ?? ''
    const s = this.hostEps.get(oldHost)
    s?.delete(`${overlay}|${endpointId}`)
    if (s?.size === 0) this.hostEps.delete(oldHost)
    this.bump({ kind: 'endpoint-withdrawn', overlay, endpointId, hostId: oldHost })
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

  /** A host row; its record is gone once its keys expired (a few TTLs without heartbeat or reaper), as in Redis. */
  private hostInfo (hostId: string): Record<string, unknown> | undefined {
    const r = this.hostRecords.get(hostId)
    const exp = this.expiries.get(hostId)
    if (!r || exp === undefined || r.keyExpiresAt <= this.now()) return undefined
    const h: Omit<HostInfo, 'wg'> & { sig?: string, wg?: string } = { hostId, vtep: r.vtep, version: r.version, lastHeartbeat: r.lastHeartbeat, expiresAt: exp, registeredAt: r.registeredAt }
    if (r.sig !== '') h.sig = r.sig
    if (r.wg !== '') h.wg = r.wg
    // The features entry stamped with the heartbeat that wrote it, as the Redis script stores it.
    return { ...h, ...(r.features !== '' ? { features: `${r.lastHeartbeat} ${r.features}` } : {}), ...(r.vtep2 !== '' ? { vtep2: r.vtep2 } : {}) }
  }

  hosts (): Array<Record<string, unknown>> {
    return [...this.expiries.keys()].sort().map((h) => this.hostInfo(h)).filter((h): h is Record<string, unknown> => h !== undefined)
  }

  overlay (name: string): Record<string, unknown> | undefined {
    const o = this.overlayRecords.get(name)
    return o ? this.rawDefinition(o) : undefined
  }

  private rawEndpoints (o: OverlayRecord): RawEndpoint[] {
    return [...o.eps].map(([id, raw]) => ({ id, raw: structuredClone(raw) }))
  }

  endpoints (overlay: string): { definition?: Record<string, unknown>, endpoints: RawEndpoint[] } {
    const o = this.overlayRecords.get(overlay)
    if (!o) return { endpoints: [] }
    return { definition: this.rawDefinition(o), endpoints: this.rawEndpoints(o) }
  }

  revision (): number { return this.rev ?? 0 }

  /** The changesSince script: the messages from `since` (and up to `overlap` before) to the current revision, or undefined. */
  changesSince (since: number, overlap: number): { rev: number, changes: unknown[] } | undefined {
    const cur = this.revision()
    const need = cur - since + 1
    if (cur < since || need > this.log.length) return undefined
    const changes = structuredClone(this.log.slice(-Math.min(this.log.length, need + overlap)))
    const ids = [...new Set(changes.flatMap((c) => {
      const host = (c as { kind?: unknown, host?: { hostId?: unknown } }).kind === 'host-up' ? (c as { host?: { hostId?: unknown } }).host?.hostId : undefined
      return typeof host === 'string' ? [host] : []
    }))]
    return { rev: cur, changes, vteps: ids.map((hostId) => ({ hostId, record: this.hostRecords.get(hostId)?.vtep2 ?? '' })) }
  }

  /** Test hook: the change log gone (trimmed, or deleted by a Redis writer): the next reconnection reads in full. */
  forgetLog (): void { this.log = [] }

  /** Test hook: a failover that lost the last `n` changes' messages and revisions (not their effect: enough to tell histories apart). */
  loseLastChanges (n: number): void {
    if (this.rev !== undefined) this.rev -= n
    this.log = this.log.slice(0, Math.max(0, this.log.length - n))
  }

  snapshot (): RawSnapshot {
    return {
      rev: this.revision(),
      time: this.now(),
      hosts: this.hosts(),
      overlays: [...this.overlayRecords.keys()].sort().map((name) => {
        const o = this.overlayRecords.get(name)!
        return {
          definition: this.rawDefinition(o), hosts: [...o.hosts], endpoints: this.rawEndpoints(o),
          claims: [...o.claims].map(([ip, endpointId]) => ({ ip, endpointId })),
        }
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
  /** @internal a published change (or anything a test forges) */
  deliver (change: unknown): void { queueMicrotask(() => { if (!this.closed) this.listener?.change(change) }) }
  /** @internal a message of the second VTEP channel */
  deliverVtep2 (msg: unknown): void { queueMicrotask(() => { if (!this.closed) this.listener?.hostVtep?.(msg) }) }

  /** One command: fails when the server is down, runs atomically otherwise. */
  private async run<T> (fn: () => T): Promise<T> {
    if (this.closed || !this.cluster.isUp()) throw new FerryError('CLUSTER_UNAVAILABLE', 'the memory cluster is not reachable')
    this.commands++
    return fn()
  }

  heartbeat (reg: HostRegistration) { return this.run(() => this.cluster.heartbeat(reg)) }
  define (hostId: string, req: OverlayRequest, mode: VniMode, announce: boolean) { return this.run(() => this.cluster.define(hostId, req, mode, announce)) }
  seal (name: string, d: { subnet: string, gateway: string, subnet6?: string, gateway6?: string, vni: number, encrypt?: 'wireguard' }, sig: string) { return this.run(() => this.cluster.seal(name, d, sig)) }
  leaveOverlay (hostId: string, name: string) { return this.run(() => this.cluster.leaveOverlay(hostId, name)) }
  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean, scanned: number, limit: number, family?: 4 | 6) {
    return this.run(() => this.cluster.allocate(hostId, overlay, preferred, reclaim, scanned, limit, family))
  }

  release (hostId: string, overlay: string, ip: string) { return this.run(() => this.cluster.release(hostId, overlay, ip)) }
  publish (overlay: string, ep: ClusterEndpoint, sig: string) { return this.run(() => this.cluster.publish(overlay, ep, sig)) }
  withdraw (overlay: string, endpointId: string) { return this.run(() => this.cluster.withdraw(overlay, endpointId)) }
  prune (hostId: string, keep: HostKeep) { return this.run(() => this.cluster.prune(hostId, keep)) }
  removeHost (hostId: string) { return this.run(() => this.cluster.removeHost(hostId)) }
  snapshot () { return this.run(() => this.cluster.snapshot()) }
  overlay (name: string) { return this.run(() => this.cluster.overlay(name)) }
  endpoints (overlay: string) { return this.run(() => this.cluster.endpoints(overlay)) }
  hosts () { return this.run(() => this.cluster.hosts()) }
  revision () { return this.run(() => this.cluster.revision()) }
  changesSince (since: number, overlap: number) { return this.run(() => this.cluster.changesSince(since, overlap)) }
}

/** The in-memory ClusterStore of one host. */
export class MemoryClusterStore extends ClusterClient {
  constructor (cluster: MemoryCluster, opts: ClusterClientOptions) {
    super(new MemoryBackend(cluster), opts)
  }
}
