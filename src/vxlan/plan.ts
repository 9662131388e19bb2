/**
 * Pure planning of the overlay data plane (libnetwork's recipe, with static
 * entries only): per overlay and host, a bridge holding the gateway address and
 * a VXLAN device (learning off, proxy ARP on) enslaved to it; for every remote
 * endpoint, a permanent FDB entry (its MAC -> its host's VTEP, on the VXLAN
 * device) and a permanent neighbour entry per address (its IP -> its MAC, which
 * the VXLAN device answers ARP from, and on a dual-stack overlay neighbour
 * solicitations for its IPv6 address too: proxy NDP; neither crosses the
 * tunnel). Both families go through the same code: a peer has one address per
 * family of the overlay. Optionally, the
 * all-zeros "flood" entries (one per remote VTEP) for broadcast and unknown
 * unicast; off by default, because with proxy ARP nothing needs flooding and a
 * flooded ARP for the gateway (the same address on every host) would get
 * answers from every host.
 *
 * `diffPeers(desired, actual)` gives the operations that turn what the kernel
 * has into what is wanted; src/vxlan/apply.ts runs them.
 */
import { createHash } from 'node:crypto'
import { FerryError } from '../errors/errors.js'
import { ENTRY_BYTES, type FdbEntry, type NeighEntry, type PackedEntries } from '../kernel/types.js'
import type { NeighFdbOp } from '../kernel/iproute.js'
import { canonical, compareIps, contains, isIp, maskOf, parseCidr, parseIpOrUndefined } from '../util/ip.js'
import { macForIp } from '../bridge/names.js'
import { wgOverhead } from '../wireguard/plan.js'
import { EndpointTable, packIp, packMac, unpackIp, unpackMac } from '../cluster/endpoints.js'

export const VXLAN_PREFIX = 'fyv-'
export const OVERLAY_BRIDGE_PREFIX = 'fyo-'
export const DEFAULT_VXLAN_PORT = 4789
/** Inner Ethernet 14 + outer IPv4 20 + UDP 8 + VXLAN 8; over an IPv6 underlay the outer header is 40 bytes: 70. */
export const VXLAN_OVERHEAD = 50
export const VXLAN_OVERHEAD6 = 70
export const DEFAULT_UNDERLAY_MTU = 1500

/**
 * The offload features ferry sets on every VXLAN device it creates (ethtool names;
 * docs/cluster.md, "What ferry sets on the VXLAN device"): checksum offload, scatter-gather
 * and segmentation (TSO/GSO) on transmit, so a container's 64 KiB TCP segments cross the
 * bridge and the VXLAN device whole and are encapsulated once (the underlay device or its
 * driver segments them, `tx-udp_tnl-segmentation`); receive checksum and GRO on the device.
 * These are the kernel's defaults for a new VXLAN device: ferry states them so that none is
 * inherited off, and never turns transmit checksum offload off (the flannel#2152 workaround,
 * which also turns TSO off: 0.18 of the throughput in bench:overlay's setting).
 */
export const VXLAN_OFFLOADS: Readonly<Record<string, boolean>> = {
  'tx-checksum-ip-generic': true,
  'tx-scatter-gather': true,
  'tx-tcp-segmentation': true,
  'tx-tcp6-segmentation': true,
  'tx-generic-segmentation': true,
  'rx-checksum': true,
  'rx-gro': true,
}

/** What VXLAN adds to an inner frame on an underlay of `family`. */
export function vxlanOverhead (family: 4 | 6): number {
  return family === 4 ? VXLAN_OVERHEAD : VXLAN_OVERHEAD6
}

/**
 * The MTU of an overlay (its bridge, VXLAN device and containers) on an underlay
 * of `underlayMtu` and `family`: the one place it is computed. Plain: underlay -
 * VXLAN (50 / 70). Encrypted: underlay - WireGuard (60 / 80) is the WireGuard
 * device's MTU, and the VXLAN inside it runs over the IPv4 tunnel addresses (50):
 * 1390 on a 1500-byte IPv4 underlay, 1370 on IPv6. overlayDevices gets the same
 * figure from the WireGuard device's MTU and the tunnel's family.
 */
export function overlayMtu (underlayMtu: number, family: 4 | 6, encrypted: boolean): number {
  return encrypted ? underlayMtu - wgOverhead(family) - VXLAN_OVERHEAD : underlayMtu - vxlanOverhead(family)
}

/** The TCP MSS that fits an MTU: less the IPv4 (20) or IPv6 (40) header and TCP's (20). */
export function tcpMss (mtu: number, family: 4 | 6): number {
  return mtu - (family === 4 ? 40 : 60)
}
export const ZERO_MAC = '00:00:00:00:00:00'
const IFNAME_MAX = 15
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/

/** `fyv-<vni in hex>`: at most 10 bytes, the same on every host. */
export function vxlanName (vni: number): string {
  return VXLAN_PREFIX + vni.toString(16)
}

/**
 * The VXLAN device of a dual-stack host's second underlay family: `fyv-<vni in hex>-4` or `-6`
 * (at most 12 bytes; ferry's prefix, so reconcile and ownership treat it as the first one).
 */
export function vxlanName2 (vni: number, family: 4 | 6): string {
  return `${vxlanName(vni)}-${family}`
}

/** `fyo-<first 11 hex of sha256(name)>`: 15 bytes, the same on every host. */
export function overlayBridgeName (overlay: string): string {
  const hash = createHash('sha256').update(overlay).digest('hex')
  return OVERLAY_BRIDGE_PREFIX + hash.slice(0, IFNAME_MAX - OVERLAY_BRIDGE_PREFIX.length)
}

/** Is this a link name the overlay data plane creates (and may delete at reconcile)? */
export function isOverlayLinkName (name: string): boolean {
  return name.startsWith(VXLAN_PREFIX) || name.startsWith(OVERLAY_BRIDGE_PREFIX)
}

/** Deterministic MAC of an overlay address, as Docker does: 02:42:<the four bytes>. */
export const overlayMac = macForIp

/** The overlay as this host runs it. */
export interface LocalOverlay {
  name: string
  vni: number
  subnet: string
  gateway: string
  /** The IPv6 side of a dual-stack overlay (both or neither). */
  subnet6?: string
  gateway6?: string
  /** MTU of the overlay (-o com.docker.network.driver.mtu); default: underlay MTU - 50. */
  mtu?: number
  /** VXLAN UDP port; default 4789. */
  port?: number
  /** Carry the overlay inside WireGuard (src/wireguard). */
  encrypt?: 'wireguard'
}

/** This host's side of the tunnel. */
export interface Underlay {
  /** The VTEP address (`--advertise-addr`). */
  vtep: string
  /** MTU of the device that holds the VTEP address. */
  mtu: number
  /** That device, when known (the VXLAN device is bound to it). */
  dev?: string
  /** A dual-stack host's second VTEP (a second `--advertise-addr`, of the other family), its device and MTU. */
  second?: Omit<Underlay, 'second'>
}

/** A dual-stack host's second VXLAN device: the same VNI over the other underlay family. */
export interface SecondVxlan {
  vxlan: string
  /** Its VTEP address (the host's second `--advertise-addr`). */
  local: string
  family: 4 | 6
  dev?: string
}

/** Everything the executor needs to build one overlay on this host. */
export interface OverlayDevices {
  overlay: string
  vni: number
  subnet: string
  gateway: string
  bridge: string
  vxlan: string
  mtu: number
  port: number
  /** The VTEP address, used as the VXLAN source address. */
  local: string
  dev?: string
  /** A dual-stack host: the VXLAN device of its second underlay family, an isolated port of the same bridge. */
  second?: SecondVxlan
  /** The bridge's address: gateway/prefix. */
  gatewayCidr: string
  /** A dual-stack overlay: its IPv6 subnet and the bridge's IPv6 address (gateway6/prefix). */
  subnet6?: string
  gateway6?: string
  gatewayCidr6?: string
}

/** The subnet and gateway of each family of an overlay (IPv4 first). */
export function overlaySides (d: Pick<OverlayDevices, 'subnet' | 'gateway' | 'subnet6' | 'gateway6'>): Array<{ family: 4 | 6, subnet: string, gateway: string }> {
  const sides: Array<{ family: 4 | 6, subnet: string, gateway: string }> = [{ family: 4, subnet: d.subnet, gateway: d.gateway }]
  if (d.subnet6 !== undefined && d.gateway6 !== undefined) sides.push({ family: 6, subnet: d.subnet6, gateway: d.gateway6 })
  return sides
}

export function overlayDevices (o: LocalOverlay, u: Underlay): OverlayDevices {
  if (!Number.isInteger(o.vni) || o.vni < 1 || o.vni > 16777215) throw new FerryError('INVALID_OPTION', `VNI ${o.vni} must be from 1 to 16777215`)
  if (!isIp(u.vtep)) throw new FerryError('INVALID_OPTION', `VTEP address "${u.vtep}" is not an IP address`)
  const subnet = canonical(o.subnet)
  if (!isIp(o.gateway) || !contains(subnet, o.gateway)) throw new FerryError('INVALID_OPTION', `gateway ${o.gateway} is not in ${subnet}`)
  if ((o.subnet6 === undefined) !== (o.gateway6 === undefined)) throw new FerryError('INVALID_OPTION', `overlay ${o.name}: an IPv6 subnet needs an IPv6 gateway`)
  const subnet6 = o.subnet6 === undefined ? undefined : canonical(o.subnet6)
  if (subnet6 !== undefined && (!isIp(o.gateway6 ?? '', 6) || !contains(subnet6, o.gateway6 ?? ''))) {
    throw new FerryError('INVALID_OPTION', `IPv6 gateway ${o.gateway6 ?? ''} is not in ${subnet6}`)
  }
  const port = o.port ?? DEFAULT_VXLAN_PORT
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new FerryError('INVALID_OPTION', `VXLAN port ${port} must be from 1 to 65535`)
  const family = isIp(u.vtep, 4) ? 4 : 6
  const second = u.second === undefined ? undefined : secondVxlan(o.vni, family, u.second)
  // Both devices share the bridge: the overlay's MTU fits the smaller of the two underlays.
  const fits = [u, ...(u.second ? [u.second] : [])].map((x) => ({ mtu: x.mtu, overhead: vxlanOverhead(isIp(x.vtep, 4) ? 4 : 6) }))
  const tightest = fits.reduce((a, b) => (b.mtu - b.overhead < a.mtu - a.overhead ? b : a))
  const mtu = o.mtu ?? tightest.mtu - tightest.overhead
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new FerryError('INVALID_OPTION', `overlay MTU ${mtu} must be from 68 to 65535${o.mtu === undefined ? ` (underlay MTU ${tightest.mtu} - ${tightest.overhead})` : ''}`)
  }
  const d: OverlayDevices = {
    overlay: o.name,
    vni: o.vni,
    subnet,
    gateway: o.gateway,
    bridge: overlayBridgeName(o.name),
    vxlan: vxlanName(o.vni),
    mtu,
    port,
    local: u.vtep,
    gatewayCidr: `${o.gateway}/${parseCidr(subnet).prefix}`,
  }
  if (subnet6 !== undefined && o.gateway6 !== undefined) {
    d.subnet6 = subnet6
    d.gateway6 = o.gateway6
    d.gatewayCidr6 = `${o.gateway6}/${parseCidr(subnet6, 6).prefix}`
  }
  if (u.dev !== undefined) d.dev = u.dev
  if (second) d.second = second
  return d
}

/** The second VXLAN device of a host with a VTEP of each family. */
function secondVxlan (vni: number, family: 4 | 6, u: Omit<Underlay, 'second'>): SecondVxlan {
  if (!isIp(u.vtep)) throw new FerryError('INVALID_OPTION', `VTEP address "${u.vtep}" is not an IP address`)
  const f2 = isIp(u.vtep, 4) ? 4 : 6
  if (f2 === family) throw new FerryError('INVALID_OPTION', `the second VTEP address ${u.vtep} is of the same family as the first: a host has at most one VTEP per family`)
  return { vxlan: vxlanName2(vni, f2), local: u.vtep, family: f2, ...(u.dev === undefined ? {} : { dev: u.dev }) }
}

/** A host's VTEP addresses: its primary (the host record's `vtep`) and, on a dual-stack host, its second one. */
export interface HostVteps { vtep: string, vtep2?: string }

function familyOfIp (ip: string): 4 | 6 | undefined {
  return isIp(ip, 4) ? 4 : isIp(ip, 6) ? 6 : undefined
}

/** The family of an address already checked (a VTEP the planner programs): by its separator, without parsing it again. */
function familyOfChecked (ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4
}

/**
 * Where this host sends to reach `remote`: the remote host's primary VTEP when this host has a
 * VTEP of its family, else its second VTEP when this host has one of that family; undefined when
 * the two hosts share no underlay family (the remote host is not programmed: noCommonFamily says why).
 */
export function chooseVtep (self: HostVteps, remote: HostVteps): string | undefined {
  const mine = new Set([self.vtep, ...(self.vtep2 !== undefined ? [self.vtep2] : [])].map(familyOfIp))
  for (const v of [remote.vtep, ...(remote.vtep2 !== undefined ? [remote.vtep2] : [])]) {
    const f = familyOfIp(v)
    if (f !== undefined && mine.has(f)) return v
  }
  return undefined
}

/** The sentence for a remote host this host shares no underlay family with. */
export function noCommonFamily (hostId: string, remote: HostVteps, self: HostVteps): string {
  const theirs = [remote.vtep, ...(remote.vtep2 !== undefined ? [remote.vtep2] : [])]
  const families = [...new Set(theirs.map(familyOfIp))].map((f) => (f === 4 ? 'IPv4' : 'IPv6'))
  const mine = new Set([self.vtep, ...(self.vtep2 !== undefined ? [self.vtep2] : [])].map(familyOfIp))
  const lacking = families.filter((f) => !mine.has(f === 'IPv4' ? 4 : 6))
  return `host ${hostId} advertises only ${families.join(' and ')} (${theirs.join(', ')}); this host has no ${lacking.join(' or ')} VTEP`
}

/** The VXLAN device of `d` that reaches `vtep` (the one of its family); undefined when this host has no VTEP of that family. */
export function vxlanFor (d: Pick<OverlayDevices, 'vxlan' | 'local' | 'second'>, vtep: string): string | undefined {
  const f = familyOfIp(vtep)
  if (f === undefined) return undefined
  if (familyOfIp(d.local) === f) return d.vxlan
  return d.second?.family === f ? d.second.vxlan : undefined
}

/** Every VXLAN device of the overlay on this host: the primary one, and the second one of a dual-stack host. */
export function vxlanDevices (d: Pick<OverlayDevices, 'vxlan' | 'second'>): string[] {
  return d.second === undefined ? [d.vxlan] : [d.vxlan, d.second.vxlan]
}

/** A remote endpoint as the cluster knows it. */
export interface RemotePeer {
  endpointId: string
  hostId: string
  ip: string
  /** Its IPv6 address on a dual-stack overlay. */
  ip6?: string
  mac: string
  vtep: string
}

/** The static entries of one VXLAN device. */
export interface PeerTable {
  fdb: FdbEntry[]
  neigh: NeighEntry[]
}

/** A peer left out of the plan, and why. */
export interface PeerConflict {
  endpointId: string
  ip: string
  reason: 'local' | 'invalid' | 'outside-subnet' | 'gateway' | 'duplicate-ip' | 'duplicate-mac' | 'vtep-family'
  /** For duplicates: the endpoint that won. */
  keptEndpointId?: string
}

/** What the kernel reported, by the keys a diff looks entries up by (made from the table alone: no planner needed). */
export interface KernelIndex {
  fdb: Map<string, FdbEntry>
  neigh: Map<string, NeighEntry>
}

/** Index a kernel read for `PeerPlanner.opsFromIndexEach`. */
export function indexKernel (actual: PeerTable): KernelIndex {
  return { fdb: new Map(actual.fdb.map((e) => [fdbKey(e), e])), neigh: new Map(actual.neigh.map((e) => [neighKey(e), e])) }
}

/** The permanent entries of one VXLAN device as the kernel reported them, packed (`PackedEntries`). */
export interface PackedPeers {
  dev: string
  fdb: PackedEntries
  neigh: PackedEntries
}

/** Pack a device's entries read as objects (a data plane without packed reads); an entry whose MAC or address does not parse is left out. */
export function packPeers (dev: string, t: PeerTable): PackedPeers {
  const pack = (list: ReadonlyArray<{ mac: string, ip?: string, dst?: string }>): PackedEntries => {
    const bytes = new Uint8Array(list.length * ENTRY_BYTES)
    let count = 0
    for (const e of list) {
      const at = count * ENTRY_BYTES
      const ip = e.ip ?? e.dst
      if (ip === undefined) bytes[at + 6] = 0 // (a skipped entry's bytes may be there)
      const f = ip === undefined ? 0 : packAddrAt(ip, bytes, at)
      if (!packMac(e.mac, bytes, at) || (ip !== undefined && f === 0)) continue
      bytes[at + 7] = 0
      count++
    }
    return { bytes, count }
  }
  return { dev, fdb: pack(t.fdb.filter((e) => e.dev === dev)), neigh: pack(t.neigh.filter((e) => e.dev === dev)) }
}

/**
 * One kind of packed kernel entries (every device's, one after the other) with an open-addressing
 * index over them, keyed as `fdbKey` or `neighKey` key their objects but on the bytes (no string,
 * no object per entry): 4 bytes a cell, twice as many cells as entries, and per entry its device
 * (`dev`), its representative (`rep`: where a key's first entry stands, the last entry of that key,
 * as a Map set entry by entry keeps it; -1 for the later ones) and whether the plan wants it.
 */
class PackedKind {
  readonly bytes: Uint8Array
  readonly count: number
  readonly dev: Uint8Array
  readonly rep: Int32Array
  readonly wanted: Uint8Array
  private readonly cells: Int32Array

  constructor (readonly fdb: boolean, parts: ReadonlyArray<{ dev: number, e: PackedEntries }>) {
    this.count = parts.reduce((n, p) => n + p.e.count, 0)
    const only = parts.length === 1 ? parts[0] : undefined
    this.bytes = only ? only.e.bytes : new Uint8Array(this.count * ENTRY_BYTES)
    this.dev = new Uint8Array(this.count)
    let n = 0
    for (const p of parts) {
      if (!only) this.bytes.set(p.e.bytes.subarray(0, p.e.count * ENTRY_BYTES), n * ENTRY_BYTES)
      this.dev.fill(p.dev, n, n + p.e.count)
      n += p.e.count
    }
    this.rep = new Int32Array(this.count)
    this.wanted = new Uint8Array(this.count)
    let size = 16
    while (size < this.count * 2) size *= 2
    this.cells = new Int32Array(size).fill(-1)
  }

  /** Index entries [from, to). */
  add (from: number, to: number): void {
    const mask = this.cells.length - 1
    for (let i = from; i < to; i++) {
      const d = this.dev[i]!
      for (let c = this.hash(this.bytes, i * ENTRY_BYTES, d) & mask; ; c = (c + 1) & mask) {
        const j = this.cells[c]!
        if (j === -1) { this.cells[c] = i; this.rep[i] = i; break }
        if (this.dev[j] === d && this.same(this.bytes, i * ENTRY_BYTES, j)) { this.rep[j] = i; this.rep[i] = -1; break }
      }
    }
  }

  /** The entry with the key of the packed entry at `at` of `b` on device `d`: its representative (-1: none). */
  find (b: Uint8Array, at: number, d: number): number {
    const mask = this.cells.length - 1
    for (let c = this.hash(b, at, d) & mask; ; c = (c + 1) & mask) {
      const j = this.cells[c]!
      if (j === -1) return -1
      if (this.dev[j] === d && this.same(b, at, j)) return j
    }
  }

  /** FNV-1a over the key's bytes: an FDB entry's MAC (and a non-unicast one's destination), a neighbour's address. */
  private hash (b: Uint8Array, at: number, d: number): number {
    let h = (0x811c9dc5 ^ d) >>> 0
    if (this.fdb) for (let k = 0; k < 6; k++) h = Math.imul(h ^ b[at + k]!, 0x01000193) >>> 0
    if (!this.fdb || !unicastAt(b, at)) {
      const len = b[at + 6]!
      h = Math.imul(h ^ len, 0x01000193) >>> 0
      for (let k = 0; k < len; k++) h = Math.imul(h ^ b[at + 8 + k]!, 0x01000193) >>> 0
    }
    return h
  }

  private same (b: Uint8Array, at: number, j: number): boolean {
    const o = j * ENTRY_BYTES
    if (this.fdb) for (let k = 0; k < 6; k++) if (b[at + k] !== this.bytes[o + k]) return false
    return this.fdb && unicastAt(b, at) ? true : sameAddr(b, at, this.bytes, o)
  }
}

/** A row's two addresses (`ip`, `ip6`), as EndpointTable numbers them. */
const BOTH_ADDRS = [0, 1] as const

/** Is the MAC packed at `at` unicast (and not all zeros)? */
function unicastAt (b: Uint8Array, at: number): boolean {
  return (b[at]! & 1) === 0 && (b[at]! | b[at + 1]! | b[at + 2]! | b[at + 3]! | b[at + 4]! | b[at + 5]!) !== 0
}

/** The same address (length and bytes) in the packed entries at `at` of `a` and `bt` of `b`. */
function sameAddr (a: Uint8Array, at: number, b: Uint8Array, bt: number): boolean {
  const len = a[at + 6]!
  if (b[bt + 6] !== len) return false
  for (let k = 0; k < len; k++) if (a[at + 8 + k] !== b[bt + 8 + k]) return false
  return true
}

/** The same MAC in the packed entries at `at` of `a` and at the start of `b`. */
function sameMacAt (a: Uint8Array, at: number, b: Uint8Array): boolean {
  for (let k = 0; k < 6; k++) if (a[at + k] !== b[k]) return false
  return true
}

/** Write `ip` as the address of the packed entry at `at` (its length byte too: 0 when it does not parse); its family, 0 for none. */
function packAddrAt (ip: string, b: Uint8Array, at: number): 0 | 4 | 6 {
  const f = packIp(ip, b, at + 8)
  b[at + 6] = f === 4 ? 4 : f === 6 ? 16 : 0
  return f
}

/** The address of the packed entry at `at` (undefined: none). */
function addrAt (b: Uint8Array, at: number): string | undefined {
  const len = b[at + 6]
  return len === 4 ? unpackIp(4, b, at + 8) : len === 16 ? unpackIp(6, b, at + 8) : undefined
}

/**
 * What the kernel reported, packed and indexed by the keys a diff looks entries up by, for
 * `PeerPlanner.opsFromPackedSteps` (the periodic repair: at 100,000 peers, 200,000 entries and
 * no object or string made for any of them). Built by `indexPacked`.
 */
export class PackedIndex {
  readonly devs: string[]
  readonly fdb: PackedKind
  readonly neigh: PackedKind

  constructor (tables: readonly PackedPeers[]) {
    this.devs = tables.map((t) => t.dev)
    this.fdb = new PackedKind(true, tables.map((t, dev) => ({ dev, e: t.fdb })))
    this.neigh = new PackedKind(false, tables.map((t, dev) => ({ dev, e: t.neigh })))
  }

  /** The FDB entry `i` (a representative) as an object. */
  fdbEntry (i: number): FdbEntry {
    const at = i * ENTRY_BYTES
    const e: FdbEntry = { dev: this.devs[this.fdb.dev[i]!]!, mac: unpackMac(this.fdb.bytes, at) }
    const dst = addrAt(this.fdb.bytes, at)
    if (dst !== undefined) e.dst = dst
    return e
  }

  /** The neighbour `i` (a representative) as an object. */
  neighEntry (i: number): NeighEntry {
    const at = i * ENTRY_BYTES
    return { dev: this.devs[this.neigh.dev[i]!]!, ip: addrAt(this.neigh.bytes, at) ?? '', mac: unpackMac(this.neigh.bytes, at) }
  }
}

/** Index the packed kernel read of an overlay's devices, `pause()` awaited every `every` entries. */
export async function indexPacked (tables: readonly PackedPeers[], every: number, pause: () => Promise<unknown>): Promise<PackedIndex> {
  const index = new PackedIndex(tables)
  for (const kind of [index.neigh, index.fdb]) {
    for (let i = 0; i < kind.count; i += every) {
      kind.add(i, Math.min(kind.count, i + every))
      if (i + every < kind.count) await pause()
    }
  }
  return index
}

export interface PeerPlan extends PeerTable {
  /** The peers that are programmed (sorted by IP). */
  peers: RemotePeer[]
  skipped: PeerConflict[]
}

export interface PlanOptions {
  /** Add all-zeros FDB entries to every remote VTEP (broadcast and unknown unicast go to all hosts). */
  flood?: boolean
}

const ipOrder = compareIps

/**
 * The FDB and neighbour entries for the remote peers of one overlay. Peers on
 * this host (same host id or VTEP) are not programmed: the local bridge reaches
 * them. Invalid records, addresses outside the subnet and the gateway are left
 * out. When two endpoints claim the same IP (or MAC), the one with the smallest
 * endpoint id wins, deterministically on every host, and the other is reported.
 */
/** Per family of the overlay: its subnet as network and mask, and its gateway. */
type PeerCheck = Array<{ family: 4 | 6, subnet: bigint, mask: bigint, gateway: string }>

/** This host as the planner sees it: its id, its VTEPs, and the underlay families it has a VXLAN device of. */
interface PlanSelf { hostId: string, vtep: string, vtep2?: string, families: ReadonlySet<4 | 6> }

function planSelf (d: Pick<OverlayDevices, 'local' | 'second'>, self: { hostId: string, vtep: string }): PlanSelf {
  const families = new Set<4 | 6>([isIp(d.local, 4) ? 4 : 6])
  if (d.second) families.add(d.second.family)
  return { hostId: self.hostId, vtep: self.vtep, ...(d.second ? { vtep2: d.second.local } : {}), families }
}

function peerCheck (d: OverlayDevices): PeerCheck {
  return overlaySides(d).map((side) => {
    const c = parseCidr(side.subnet, side.family)
    return { family: side.family, subnet: c.network, mask: maskOf(c.family, c.prefix), gateway: side.gateway }
  })
}

/** A peer's addresses, one per family it has (the IPv4 one first). */
function peerIps (p: RemotePeer): string[] {
  return p.ip6 === undefined ? [String(p.ip)] : [String(p.ip), String(p.ip6)]
}

/** One peer alone: the normalized peer and its IPv4 address as a number, or why it is left out (duplicates aside). */
function checkPeer (c: PeerCheck, self: PlanSelf, raw: RemotePeer): { p: RemotePeer, n: bigint } | PeerConflict {
  const mac = typeof raw.mac === 'string' ? raw.mac.toLowerCase() : ''
  const p: RemotePeer = raw.mac === mac ? raw : { ...raw, mac }
  const ips = peerIps(p)
  const parsed = ips.map((ip) => (typeof ip === 'string' ? parseIpOrUndefined(ip) : undefined))
  const n = parsed[0]?.value
  if (parsed.includes(undefined) || n === undefined || !isIp(p.vtep) || !MAC_RE.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1 || mac === ZERO_MAC) {
    return { endpointId: p.endpointId, ip: ips.join(' '), reason: 'invalid' }
  }
  if (p.hostId === self.hostId || p.vtep === self.vtep || p.vtep === self.vtep2) return { endpointId: p.endpointId, ip: p.ip, reason: 'local' }
  // A VXLAN device sends from one underlay family: a peer behind a VTEP of a family this host has no device of cannot be reached.
  if (!self.families.has(familyOfChecked(p.vtep))) return { endpointId: p.endpointId, ip: p.ip, reason: 'vtep-family' }
  // Address i must be of side i's family and in its subnet: IPv4 first, then IPv6 on a dual-stack overlay only.
  for (const [i, a] of parsed.entries()) {
    const side = c[i]
    if (a === undefined || side === undefined || a.family !== side.family || (a.value & side.mask) !== side.subnet) {
      return { endpointId: p.endpointId, ip: ips[i] ?? '', reason: 'outside-subnet' }
    }
    if (ips[i] === side.gateway) return { endpointId: p.endpointId, ip: ips[i] ?? '', reason: 'gateway' }
  }
  return { p, n }
}

function byEndpointId (a: RemotePeer, b: RemotePeer): number {
  return a.endpointId < b.endpointId ? -1 : a.endpointId > b.endpointId ? 1 : 0
}

/**
 * The FDB and neighbour entries for the remote peers of one overlay. Peers on
 * this host (same host id or VTEP) are not programmed: the local bridge reaches
 * them. Invalid records, addresses outside the subnet and the gateway are left
 * out. When two endpoints claim the same IP (or MAC), the one with the smallest
 * endpoint id wins, deterministically on every host, and the other is reported.
 */
export function planPeers (d: OverlayDevices, self: { hostId: string, vtep: string }, peers: readonly RemotePeer[], opts: PlanOptions = {}): PeerPlan {
  const { kept, skipped } = choosePeers(peerCheck(d), planSelf(d, self), peers)
  const fdb: FdbEntry[] = kept.map((p) => peerFdb(d, p))
  if (opts.flood === true) {
    const vteps = [...new Set(kept.map((p) => p.vtep))].sort(ipOrder)
    fdb.push(...vteps.map((vtep) => floodFdb(d, vtep)))
  }
  const neigh: NeighEntry[] = kept.flatMap((p) => peerNeigh(d, p))
  return { fdb, neigh, peers: kept, skipped }
}

/** The peers planPeers programs (sorted by IP) and those it leaves out, without their entries. */
function choosePeers (c: PeerCheck, self: PlanSelf, peers: readonly RemotePeer[]): { kept: RemotePeer[], skipped: PeerConflict[] } {
  const skipped: PeerConflict[] = []
  const byIp = new Map<string, { p: RemotePeer, n: bigint }>()
  const byMac = new Map<string, RemotePeer>()
  // Each address is parsed once.
  for (const raw of [...peers].sort(byEndpointId)) {
    const r = checkPeer(c, self, raw)
    if (!('p' in r)) { skipped.push(r); continue }
    const { p } = r
    const ips = peerIps(p)
    const taken = ips.find((ip) => byIp.has(ip))
    const ipWinner = taken === undefined ? undefined : byIp.get(taken)
    if (taken !== undefined && ipWinner) { skipped.push({ endpointId: p.endpointId, ip: taken, reason: 'duplicate-ip', keptEndpointId: ipWinner.p.endpointId }); continue }
    const macWinner = byMac.get(p.mac)
    if (macWinner) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'duplicate-mac', keptEndpointId: macWinner.endpointId }); continue }
    for (const ip of ips) byIp.set(ip, r)
    byMac.set(p.mac, p)
  }
  const kept = [...new Set(byIp.values())].sort((a, b) => a.n < b.n ? -1 : a.n > b.n ? 1 : 0).map((x) => x.p)
  return { kept, skipped }
}

/** The device a programmed peer's entries go on: the one of its VTEP's family (checkPeer has checked the address and that there is one). */
function peerDev (d: OverlayDevices, vtep: string): string {
  return d.second === undefined || d.second.family !== familyOfChecked(vtep) ? d.vxlan : d.second.vxlan
}
function peerFdb (d: OverlayDevices, p: RemotePeer): FdbEntry { return { dev: peerDev(d, p.vtep), mac: p.mac, dst: p.vtep } }
/** One neighbour entry per address of the peer (ARP and NDP are answered from them alike), on the device of its VTEP's family. */
function peerNeigh (d: OverlayDevices, p: RemotePeer): NeighEntry[] { const dev = peerDev(d, p.vtep); return peerIps(p).map((ip) => ({ dev, ip, mac: p.mac })) }
function floodFdb (d: OverlayDevices, vtep: string): FdbEntry { return { dev: peerDev(d, vtep), mac: ZERO_MAC, dst: vtep } }

function samePeer (a: RemotePeer, b: RemotePeer): boolean {
  return a.endpointId === b.endpointId && a.hostId === b.hostId && a.ip === b.ip && a.ip6 === b.ip6 && a.mac === b.mac && a.vtep === b.vtep
}

/** The fields of a peer the planner keeps (a cluster record passed as a peer carries names too). */
function peerOnly (p: RemotePeer): RemotePeer {
  const q: RemotePeer = { endpointId: p.endpointId, hostId: p.hostId, ip: p.ip, mac: p.mac, vtep: p.vtep }
  if (p.ip6 !== undefined) q.ip6 = p.ip6
  return q
}

/**
 * The plan of one overlay kept up to date change by change: the same result as
 * `planPeers` over the current peers, at a cost per change that does not depend
 * on how many peers there are. An upsert or removal of a peer whose address and
 * MAC no other peer uses touches that peer's entries only (and its VTEP's flood
 * entry); a change that involves a duplicate address or MAC (whose winner
 * depends on the other claimants) is planned in full instead. Each call returns
 * the operations that take the previous plan to the new one.
 *
 * The peers are held in a compact table (src/cluster/endpoints.ts: addresses and
 * MAC as bytes, hosts interned, found by address and MAC through its indexes), so
 * their addresses are programmed in canonical spelling (the store's client gives
 * nothing else); a peer whose addresses or MAC do not parse (left out as invalid,
 * never sharing anything that matters) is kept apart as given.
 */
export class PeerPlanner {
  private readonly check: PeerCheck
  private readonly self: PlanSelf
  private readonly peers = new EndpointTable()
  /** Peers that do not pack (invalid): left out, kept as given. */
  private readonly odd = new Map<string, RemotePeer>()
  /**
   * The peers left out, with why; every other peer is programmed (its FDB and neighbour
   * entries are the table), with its MAC in lower case (as the table gives it).
   */
  private readonly skipped = new Map<string, PeerConflict>()
  /** Programmed peers per VTEP (flood entries). */
  private readonly vteps = new Map<string, number>()
  /** Full plans made so far (for tests and benchmarks: deltas must not make any). */
  fullPlans = 0

  constructor (readonly devices: OverlayDevices, self: { hostId: string, vtep: string }, private readonly opts: PlanOptions = {}) {
    this.check = peerCheck(devices)
    this.self = planSelf(devices, self)
  }

  /** Replace every peer; the operations from the previous plan to the new one. */
  reset (peers: Iterable<RemotePeer>): PeerOp[] {
    const before = this.table()
    this.clear()
    for (const p of peers) this.index(p)
    return this.replan(before)
  }

  /**
   * Replace every peer without computing the operations (a full reconcile diffs
   * against what the kernel reports, or the previous planner, instead). The peers
   * are packed as they come: no array of them is made.
   */
  load (peers: Iterable<RemotePeer>): void {
    this.clear()
    for (const p of peers) this.index(p)
    this.fullPlans++
    this.adopt(this.choose())
  }

  /** `load` of every row of a table of vetted endpoints, copied as they are packed (no record made per peer). */
  loadTable (peers: EndpointTable): void {
    this.clear()
    this.peers.copyRows(peers)
    this.fullPlans++
    this.adopt(this.choose())
  }

  /** Add or change one peer. */
  upsert (peer: RemotePeer): PeerOp[] {
    const id = peer.endpointId
    const old = this.peer(id)
    if (old && samePeer(old, peer)) return []
    const shared = (old !== undefined && this.isShared(id)) || this.wouldShare(peer)
    // The programmed state is derived from the peers: what it was is taken before they change.
    const before = shared ? this.table() : undefined
    const was = this.programmed(id)
    if (old) this.unindex(id)
    this.index(peer)
    // As the table holds it (addresses canonical, MAC in lower case), as a full plan of the table programs it.
    return before ? this.replan(before) : this.single(id, was, this.peer(id))
  }

  /** Remove one peer (unknown: nothing to do). */
  remove (endpointId: string): PeerOp[] {
    const old = this.peer(endpointId)
    if (!old) return []
    const before = this.isShared(endpointId) ? this.table() : undefined
    const was = this.programmed(endpointId)
    this.unindex(endpointId)
    return before ? this.replan(before) : this.single(endpointId, was, undefined)
  }

  table (): PeerTable {
    const fdb: FdbEntry[] = []
    const neigh: NeighEntry[] = []
    for (const p of this.programmedPeers()) { fdb.push(peerFdb(this.devices, p)); neigh.push(...peerNeigh(this.devices, p)) }
    for (const vtep of this.vteps.keys()) fdb.push(floodFdb(this.devices, vtep))
    return { fdb, neigh }
  }

  /**
   * The operations that take `actual` (what the kernel has) to this plan: the same as
   * `diffPeers(this.table(), actual)`, without building the table (at 100,000 peers, 200,000
   * entries and as many keys), and with no lookups at all when `actual` is empty.
   */
  opsFrom (actual: PeerTable): PeerOp[] {
    return [...this.opsFromEach(actual)]
  }

  /** `opsFrom`'s operations one at a time, in the same order (a full reconcile applies them in chunks: no array of 200,000). */
  * opsFromEach (actual: PeerTable): Generator<PeerOp> {
    yield * this.opsFromIndexEach(indexKernel(actual))
  }

  /** `opsFromEach` from what the kernel reported, already indexed. */
  * opsFromIndexEach (actual: KernelIndex): Generator<PeerOp> {
    const { fdb: haveFdb, neigh: haveNeigh } = actual
    for (const e of haveNeigh.values()) if (this.devWithIp(e.ip) !== e.dev) yield { op: 'deleteNeigh', entry: e }
    for (const e of haveFdb.values()) if (!this.wantsFdb(e)) yield { op: 'deleteFdb', entry: e }
    const addFdb = (e: FdbEntry): PeerOp | undefined => {
      const have = haveFdb.size === 0 ? undefined : haveFdb.get(fdbKey(e))
      return !have || !sameFdb(have, e) ? { op: 'addFdb', entry: e } : undefined
    }
    for (const p of this.programmedPeers()) { const o = addFdb(peerFdb(this.devices, p)); if (o) yield o }
    for (const vtep of this.vteps.keys()) { const o = addFdb(floodFdb(this.devices, vtep)); if (o) yield o }
    for (const p of this.programmedPeers()) {
      const dev = peerDev(this.devices, p.vtep)
      for (const ip of peerIps(p)) {
        const have = haveNeigh.size === 0 ? undefined : haveNeigh.get(`${dev}|${ip}`)
        if (!have || have.mac.toLowerCase() !== p.mac) yield { op: 'addNeigh', entry: { dev, ip, mac: p.mac } }
      }
    }
  }

  /**
   * `opsFromIndexEach` against the packed kernel read (`indexPacked`): the same operations in the
   * same order, with no object or string made per entry looked at (only for the operations). Entries
   * are looked up by their bytes: first every entry the plan has is marked in the index (those left
   * unmarked go), then the deletes, then the adds of what is missing or differs, with a `null` after
   * every `every` entries looked at. The marks are made in the first slices: a row changed after them
   * costs at most a redundant operation of an entry the change touched (the caller drops those).
   */
  * opsFromPackedSteps (actual: PackedIndex, every = 2048): Generator<PeerOp | null> {
    const { fdb, neigh } = actual
    const key = new Uint8Array(ENTRY_BYTES)
    const t = this.peers
    /** Per VTEP: the index of its device in the read (-1: not read) and its address packed in `vtepBytes`. */
    const vtepDev = new Map<string, { name: string, dev: number, at: number }>()
    let vtepBuf = new Uint8Array(ENTRY_BYTES * (this.vteps.size + 64))
    const vtepOf = (vtep: string): { name: string, dev: number, at: number } => {
      let v = vtepDev.get(vtep)
      if (v === undefined) {
        const name = peerDev(this.devices, vtep)
        const at = vtepDev.size * ENTRY_BYTES
        if (at + ENTRY_BYTES > vtepBuf.length) { const grown = new Uint8Array(vtepBuf.length * 2); grown.set(vtepBuf); vtepBuf = grown }
        packAddrAt(vtep, vtepBuf, at)
        v = { name, dev: actual.devs.indexOf(name), at }
        vtepDev.set(vtep, v)
      }
      return v
    }
    /** The FDB entry the index has with row `slot`'s MAC on its device (-1: none); `key` then holds the MAC. */
    const fdbOf = (slot: number, dev: number): number => {
      t.copyMac(slot, key, 0)
      return dev < 0 ? -1 : fdb.find(key, 0, dev)
    }
    /** The neighbour the index has with address `which` of row `slot` on its device (-1: none; -2: the row has no such address). */
    const neighOf = (slot: number, which: 0 | 1, dev: number): number => {
      const len = t.copyAddr(slot, which, key, 8)
      if (len === 0) return -2
      key[6] = len
      return dev < 0 ? -1 : neigh.find(key, 0, dev)
    }
    const floodOf = (v: { dev: number, at: number }): number => {
      if (v.dev < 0) return -1
      key.fill(0, 0, 8)
      key[6] = vtepBuf[v.at + 6]!
      key.set(vtepBuf.subarray(v.at + 8, v.at + 24), 8)
      return fdb.find(key, 0, v.dev)
    }
    fdb.wanted.fill(0)
    neigh.wanted.fill(0)
    let n = 0
    // The marks: every entry of the kernel's that the plan has (by key; its value may differ, then it is replaced, not deleted).
    if (fdb.count + neigh.count > 0) {
      for (const slot of this.programmedSlots()) {
        const v = vtepOf(t.vtep(slot))
        const f = fdbOf(slot, v.dev)
        if (f >= 0) fdb.wanted[f] = 1
        for (const which of BOTH_ADDRS) { const m = neighOf(slot, which, v.dev); if (m >= 0) neigh.wanted[m] = 1 }
        if (++n % every === 0) yield null
      }
      for (const vtep of this.vteps.keys()) { const f = floodOf(vtepOf(vtep)); if (f >= 0) fdb.wanted[f] = 1 }
    }
    for (let i = 0; i < neigh.count; i++) {
      const r = neigh.rep[i]!
      if (r >= 0 && neigh.wanted[i] === 0) yield { op: 'deleteNeigh', entry: actual.neighEntry(r) }
      if (++n % every === 0) yield null
    }
    for (let i = 0; i < fdb.count; i++) {
      const r = fdb.rep[i]!
      if (r >= 0 && fdb.wanted[i] === 0) yield { op: 'deleteFdb', entry: actual.fdbEntry(r) }
      if (++n % every === 0) yield null
    }
    for (const slot of this.programmedSlots()) {
      const v = vtepOf(t.vtep(slot))
      const f = fdbOf(slot, v.dev)
      if (f < 0 || !sameAddr(fdb.bytes, fdb.rep[f]! * ENTRY_BYTES, vtepBuf, v.at)) yield { op: 'addFdb', entry: { dev: v.name, mac: t.mac(slot), dst: t.vtep(slot) } }
      if (++n % every === 0) yield null
    }
    for (const vtep of this.vteps.keys()) {
      const v = vtepOf(vtep)
      if (floodOf(v) < 0) yield { op: 'addFdb', entry: floodFdb(this.devices, vtep) }
    }
    for (const slot of this.programmedSlots()) {
      const v = vtepOf(t.vtep(slot))
      t.copyMac(slot, key, 0)
      for (const which of BOTH_ADDRS) {
        const m = neighOf(slot, which, v.dev)
        if (m === -2) continue
        if (m < 0 || !sameMacAt(neigh.bytes, neigh.rep[m]! * ENTRY_BYTES, key)) {
          yield { op: 'addNeigh', entry: { dev: v.name, ip: which === 0 ? t.ip(slot) : t.ip6(slot) ?? '', mac: t.mac(slot) } }
        }
      }
      if (++n % every === 0) yield null
    }
  }

  /**
   * The operations that take what `old` programmed to this plan: the same as
   * `diffPeers(this.table(), old.table())` without either table (a resync's full plan
   * against the plan as programmed, at 100,000 peers).
   */
  opsFromPlanner (old: PeerPlanner): PeerOp[] {
    return [...this.opsFromPlannerEach(old)]
  }

  /** `opsFromPlanner`'s operations one at a time, in the same order. */
  * opsFromPlannerEach (old: PeerPlanner): Generator<PeerOp> {
    /** Did `old` program `had` (found by the same MAC or address) on the device this plan programs `p` on? */
    const sameDev = (had: RemotePeer | undefined, p: RemotePeer): had is RemotePeer => had !== undefined && peerDev(old.devices, had.vtep) === peerDev(this.devices, p.vtep)
    for (const p of old.programmedPeers()) {
      const dev = peerDev(old.devices, p.vtep)
      for (const ip of peerIps(p)) if (this.devWithIp(ip) !== dev) yield { op: 'deleteNeigh', entry: { dev, ip, mac: p.mac } }
    }
    for (const p of old.programmedPeers()) { const e = peerFdb(old.devices, p); if (!this.wantsFdb(e)) yield { op: 'deleteFdb', entry: e } }
    for (const vtep of old.vteps.keys()) { const e = floodFdb(old.devices, vtep); if (!this.wantsFdb(e)) yield { op: 'deleteFdb', entry: e } }
    for (const p of this.programmedPeers()) {
      const had = old.programmedWith(old.peers.slotsWithMac(p.mac))
      if (!sameDev(had, p) || had.vtep !== p.vtep) yield { op: 'addFdb', entry: peerFdb(this.devices, p) }
    }
    for (const vtep of this.vteps.keys()) {
      if (!(old.vteps.has(vtep) && peerDev(old.devices, vtep) === peerDev(this.devices, vtep))) yield { op: 'addFdb', entry: floodFdb(this.devices, vtep) }
    }
    for (const p of this.programmedPeers()) {
      for (const ip of peerIps(p)) {
        const had = old.programmedWith(old.peers.slotsWithIp(ip))
        if (!sameDev(had, p) || had.mac !== p.mac) yield { op: 'addNeigh', entry: { dev: peerDev(this.devices, p.vtep), ip, mac: p.mac } }
      }
    }
  }

  size (): { peers: number, programmed: number, skipped: number } {
    let skipped = 0
    for (const s of this.skipped.values()) if (s.reason !== 'local') skipped++
    const peers = this.peers.size + this.odd.size
    return { peers, programmed: peers - this.skipped.size, skipped }
  }

  /** A peer as given (addresses canonical, MAC in lower case when it packed). */
  private peer (id: string): RemotePeer | undefined {
    return this.peers.get(id) ?? this.odd.get(id)
  }

  /** A programmed peer as programmed (MAC in lower case); undefined when it is left out or unknown. */
  private programmed (id: string): RemotePeer | undefined {
    const slot = this.peers.slot(id)
    return slot < 0 || this.skipped.has(id) ? undefined : this.peers.row(slot)
  }

  /** Every programmed peer, made one at a time (the peers that do not pack are never programmed). */
  private * programmedPeers (): Generator<RemotePeer> {
    for (const slot of this.peers.slots()) if (!this.skipped.has(this.peers.endpointId(slot))) yield this.peers.row(slot)
  }

  /** Every programmed row (no record made). */
  private * programmedSlots (): Generator<number> {
    for (const slot of this.peers.slots()) if (!this.skipped.has(this.peers.endpointId(slot))) yield slot
  }

  /** The programmed peer among these rows (of one address or one MAC: at most one is programmed). */
  private programmedWith (slots: readonly number[]): RemotePeer | undefined {
    for (const slot of slots) if (!this.skipped.has(this.peers.endpointId(slot))) return this.peers.row(slot)
    return undefined
  }

  /** The device whose neighbour entry of `ip` the plan has (that of the programmed peer with the address); undefined: none. */
  private devWithIp (ip: string): string | undefined {
    const p = this.programmedWith(this.peers.slotsWithIp(ip))
    return p === undefined ? undefined : peerDev(this.devices, p.vtep)
  }

  /** Is this entry (of any device) one of the table's? */
  private wantsFdb (e: FdbEntry): boolean {
    const mac = e.mac.toLowerCase()
    if (!isUnicast(mac)) return mac === ZERO_MAC && e.dst !== undefined && this.vteps.has(e.dst) && peerDev(this.devices, e.dst) === e.dev
    // A unicast MAC has one entry per device: one of another destination is replaced, not deleted.
    const p = this.programmedWith(this.peers.slotsWithMac(mac))
    return p !== undefined && peerDev(this.devices, p.vtep) === e.dev
  }

  /** Does another peer use an address or the MAC of peer `id` (a packed one: the others share nothing that matters)? */
  private isShared (id: string): boolean {
    const slot = this.peers.slot(id)
    if (slot < 0) return false
    const t = this.peers
    return t.slotsWithIpOf(slot, 0).length > 1 || t.slotsWithIpOf(slot, 1).length > 1 || t.slotsWithMacOf(slot).length > 1
  }

  /** Would `p` share an address or its MAC with a peer other than itself? */
  private wouldShare (p: RemotePeer): boolean {
    const t = this.peers
    const others = (slots: readonly number[]): boolean => slots.some((s) => t.endpointId(s) !== p.endpointId)
    return peerIps(p).some((ip) => others(t.slotsWithIp(ip))) || (typeof p.mac === 'string' && others(t.slotsWithMac(p.mac)))
  }

  private index (p: RemotePeer): void {
    this.unindex(p.endpointId)
    if (!this.peers.set(peerOnly(p))) this.odd.set(p.endpointId, p)
  }

  private unindex (id: string): void {
    if (!this.peers.delete(id)) this.odd.delete(id)
  }

  private clear (): void {
    this.peers.clear()
    this.odd.clear()
  }

  /**
   * Which peers planPeers would leave out, without a list of every peer: a peer that shares
   * no address and no MAC with another is programmed when it passes alone; only the peers
   * that share one (and, through them, anything they share) go through the rule of the
   * smallest endpoint id (choosePeers), which involves nobody else.
   */
  private choose (): PeerConflict[] {
    const skipped: PeerConflict[] = []
    const contested: RemotePeer[] = []
    const t = this.peers
    for (const slot of t.slots()) {
      const p = t.row(slot)
      if (t.slotsWithIpOf(slot, 0).length > 1 || t.slotsWithIpOf(slot, 1).length > 1 || t.slotsWithMacOf(slot).length > 1) { contested.push(p); continue }
      const r = checkPeer(this.check, this.self, p)
      if (!('p' in r)) skipped.push(r)
    }
    for (const p of this.odd.values()) contested.push(p)
    if (contested.length > 0) skipped.push(...choosePeers(this.check, this.self, contested).skipped)
    return skipped
  }

  /** The peer `id` alone changed from `was` (as programmed; undefined: it was not) to `next` (undefined: gone); nobody else shares its address or MAC. */
  private single (id: string, was: RemotePeer | undefined, next: RemotePeer | undefined): PeerOp[] {
    const before: PeerTable = { fdb: [], neigh: [] }
    const after: PeerTable = { fdb: [], neigh: [] }
    if (was) {
      before.fdb.push(peerFdb(this.devices, was))
      before.neigh.push(...peerNeigh(this.devices, was))
      this.countVtep(was.vtep, -1, before, after)
    }
    this.skipped.delete(id)
    if (next) {
      const r = checkPeer(this.check, this.self, next)
      if ('p' in r) {
        after.fdb.push(peerFdb(this.devices, r.p))
        after.neigh.push(...peerNeigh(this.devices, r.p))
        this.countVtep(r.p.vtep, 1, before, after)
      } else {
        this.skipped.set(id, r)
      }
    }
    return diffPeers(after, before)
  }

  /** Flood entries: one per VTEP that has at least one programmed peer. */
  private countVtep (vtep: string, delta: number, before: PeerTable, after: PeerTable): void {
    if (this.opts.flood !== true) return
    const had = this.vteps.get(vtep) ?? 0
    const now = had + delta
    if (now > 0) this.vteps.set(vtep, now)
    else this.vteps.delete(vtep)
    if (had === 0 && now > 0) after.fdb.push(floodFdb(this.devices, vtep))
    if (had > 0 && now === 0) before.fdb.push(floodFdb(this.devices, vtep))
  }

  /** A full plan of the peers now; the operations from `before` (the table before the peers changed) to it. */
  private replan (before: PeerTable): PeerOp[] {
    this.fullPlans++
    this.adopt(this.choose())
    return diffPeers(this.table(), before)
  }

  /** A full plan's choice as the programmed state (skipped peers, flood VTEPs): every peer not skipped is programmed. */
  private adopt (skipped: readonly PeerConflict[]): void {
    this.skipped.clear()
    for (const s of skipped) this.skipped.set(s.endpointId, s)
    this.vteps.clear()
    if (this.opts.flood !== true) return
    for (const slot of this.peers.slots()) {
      if (this.skipped.has(this.peers.endpointId(slot))) continue
      const vtep = this.peers.vtep(slot)
      this.vteps.set(vtep, (this.vteps.get(vtep) ?? 0) + 1)
    }
  }
}

/** An FDB or neighbour change of a VXLAN device (the LinkDriver runs it, or an iproute batch line: src/kernel/iproute.ts). */
export type PeerOp = NeighFdbOp

function isUnicast (mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 && mac !== ZERO_MAC
}

/** Unicast MACs have one destination (an add replaces it); all-zeros/multicast entries are one per destination. */
/** The kernel entry an operation is about: its device and MAC (a flood entry: and destination), or its device and address. */
export function peerOpKey (o: PeerOp): string {
  return o.op === 'addFdb' || o.op === 'deleteFdb' ? fdbKey(o.entry) : neighKey(o.entry)
}

function fdbKey (e: FdbEntry): string {
  const mac = e.mac.toLowerCase()
  return isUnicast(mac) ? `${e.dev}|${mac}` : `${e.dev}|${mac}|${e.dst ?? ''}`
}

function neighKey (e: NeighEntry): string {
  return `${e.dev}|${e.ip}`
}

function sameFdb (a: FdbEntry, b: FdbEntry): boolean {
  return a.mac.toLowerCase() === b.mac.toLowerCase() && (a.dst ?? '') === (b.dst ?? '')
}

/**
 * The operations that turn `actual` into `desired`, in a safe order: first the
 * neighbour, then the FDB entries that go; then the FDB, then the neighbour
 * entries that come or change (an add replaces, so a MAC that moves to another
 * VTEP is one add, never a delete then an add).
 */
export function diffPeers (desired: PeerTable, actual: PeerTable): PeerOp[] {
  const wantFdb = new Map(desired.fdb.map((e) => [fdbKey(e), e]))
  const haveFdb = new Map(actual.fdb.map((e) => [fdbKey(e), e]))
  const wantNeigh = new Map(desired.neigh.map((e) => [neighKey(e), e]))
  const haveNeigh = new Map(actual.neigh.map((e) => [neighKey(e), e]))
  const ops: PeerOp[] = []
  for (const [k, e] of haveNeigh) if (!wantNeigh.has(k)) ops.push({ op: 'deleteNeigh', entry: e })
  for (const [k, e] of haveFdb) if (!wantFdb.has(k)) ops.push({ op: 'deleteFdb', entry: e })
  for (const [k, e] of wantFdb) {
    const have = haveFdb.get(k)
    if (!have || !sameFdb(have, e)) ops.push({ op: 'addFdb', entry: e })
  }
  for (const [k, e] of wantNeigh) {
    const have = haveNeigh.get(k)
    if (!have || have.mac.toLowerCase() !== e.mac.toLowerCase()) ops.push({ op: 'addNeigh', entry: e })
  }
  return ops
}

/** The table after `ops` ran on `table` (what the executor assumes once they succeeded). */
export function applyOpsToTable (table: PeerTable, ops: readonly PeerOp[]): PeerTable {
  const fdb = new Map(table.fdb.map((e) => [fdbKey(e), e]))
  const neigh = new Map(table.neigh.map((e) => [neighKey(e), e]))
  for (const o of ops) {
    switch (o.op) {
      case 'addFdb': fdb.set(fdbKey(o.entry), o.entry); break
      case 'deleteFdb': fdb.delete(fdbKey(o.entry)); break
      case 'addNeigh': neigh.set(neighKey(o.entry), o.entry); break
      case 'deleteNeigh': neigh.delete(neighKey(o.entry)); break
    }
  }
  return { fdb: [...fdb.values()], neigh: [...neigh.values()] }
}
