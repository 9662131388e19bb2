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
import type { FdbEntry, NeighEntry } from '../kernel/types.js'
import type { NeighFdbOp } from '../kernel/iproute.js'
import { canonical, compareIps, contains, isIp, maskOf, parseCidr, parseIpOrUndefined } from '../util/ip.js'
import { macForIp } from '../bridge/names.js'
import { wgOverhead } from '../wireguard/plan.js'

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
  const overhead = vxlanOverhead(isIp(u.vtep, 4) ? 4 : 6)
  const mtu = o.mtu ?? u.mtu - overhead
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new FerryError('INVALID_OPTION', `overlay MTU ${mtu} must be from 68 to 65535${o.mtu === undefined ? ` (underlay MTU ${u.mtu} - ${overhead})` : ''}`)
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
  return d
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
function checkPeer (c: PeerCheck, self: { hostId: string, vtep: string }, raw: RemotePeer): { p: RemotePeer, n: bigint } | PeerConflict {
  const mac = typeof raw.mac === 'string' ? raw.mac.toLowerCase() : ''
  const p: RemotePeer = raw.mac === mac ? raw : { ...raw, mac }
  const ips = peerIps(p)
  const parsed = ips.map((ip) => (typeof ip === 'string' ? parseIpOrUndefined(ip) : undefined))
  const n = parsed[0]?.value
  if (parsed.includes(undefined) || n === undefined || !isIp(p.vtep) || !MAC_RE.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1 || mac === ZERO_MAC) {
    return { endpointId: p.endpointId, ip: ips.join(' '), reason: 'invalid' }
  }
  if (p.hostId === self.hostId || p.vtep === self.vtep) return { endpointId: p.endpointId, ip: p.ip, reason: 'local' }
  // A VXLAN device sends from one underlay family: a peer behind a VTEP of the other one cannot be reached.
  if (isIp(p.vtep, 4) !== isIp(self.vtep, 4)) return { endpointId: p.endpointId, ip: p.ip, reason: 'vtep-family' }
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
  const { kept, skipped } = choosePeers(peerCheck(d), self, peers)
  const fdb: FdbEntry[] = kept.map((p) => peerFdb(d, p))
  if (opts.flood === true) {
    const vteps = [...new Set(kept.map((p) => p.vtep))].sort(ipOrder)
    fdb.push(...vteps.map((vtep) => floodFdb(d, vtep)))
  }
  const neigh: NeighEntry[] = kept.flatMap((p) => peerNeigh(d, p))
  return { fdb, neigh, peers: kept, skipped }
}

/** The peers planPeers programs (sorted by IP) and those it leaves out, without their entries. */
function choosePeers (c: PeerCheck, self: { hostId: string, vtep: string }, peers: readonly RemotePeer[]): { kept: RemotePeer[], skipped: PeerConflict[] } {
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

function peerFdb (d: OverlayDevices, p: RemotePeer): FdbEntry { return { dev: d.vxlan, mac: p.mac, dst: p.vtep } }
/** One neighbour entry per address of the peer (ARP and NDP are answered from them alike). */
function peerNeigh (d: OverlayDevices, p: RemotePeer): NeighEntry[] { return peerIps(p).map((ip) => ({ dev: d.vxlan, ip, mac: p.mac })) }
function floodFdb (d: OverlayDevices, vtep: string): FdbEntry { return { dev: d.vxlan, mac: ZERO_MAC, dst: vtep } }

function samePeer (a: RemotePeer, b: RemotePeer): boolean {
  return a.endpointId === b.endpointId && a.hostId === b.hostId && a.ip === b.ip && a.ip6 === b.ip6 && a.mac === b.mac && a.vtep === b.vtep
}

/** Ids by key: one id is the string itself (the common case: no Set per peer). */
type Users = Map<string, string | Set<string>>

function addTo (m: Users, key: string, id: string): void {
  const s = m.get(key)
  if (s === undefined || s === id) m.set(key, id)
  else if (typeof s === 'string') m.set(key, new Set([s, id]))
  else s.add(id)
}

function removeFrom (m: Users, key: string, id: string): void {
  const s = m.get(key)
  if (s === undefined) return
  if (typeof s === 'string') { if (s === id) m.delete(key); return }
  s.delete(id)
  const [only] = s
  if (s.size === 1 && only !== undefined) m.set(key, only)
  else if (s.size === 0) m.delete(key)
}

/** Does anyone but `id` use the key? */
function othersUse (m: Users, key: string, id: string): boolean {
  const s = m.get(key)
  return s !== undefined && (typeof s === 'string' ? s !== id : s.size > 1 || !s.has(id))
}

/**
 * The plan of one overlay kept up to date change by change: the same result as
 * `planPeers` over the current peers, at a cost per change that does not depend
 * on how many peers there are. An upsert or removal of a peer whose address and
 * MAC no other peer uses touches that peer's entries only (and its VTEP's flood
 * entry); a change that involves a duplicate address or MAC (whose winner
 * depends on the other claimants) is planned in full instead. Each call returns
 * the operations that take the previous plan to the new one.
 */
export class PeerPlanner {
  private readonly check: PeerCheck
  private readonly peers = new Map<string, RemotePeer>()
  /** Every given peer by address and by (lower-case) MAC, valid or not: a shared one means "plan in full". */
  private readonly ipUsers: Users = new Map()
  private readonly macUsers: Users = new Map()
  /**
   * The peers left out, with why; every other peer is programmed (its FDB and neighbour
   * entries are the table), with its MAC in lower case (`programmed`). No second map of
   * the programmed peers: at 100,000 peers each map costs megabytes.
   */
  private readonly skipped = new Map<string, PeerConflict>()
  /** Programmed peers per VTEP (flood entries). */
  private readonly vteps = new Map<string, number>()
  /** Full plans made so far (for tests and benchmarks: deltas must not make any). */
  fullPlans = 0

  constructor (readonly devices: OverlayDevices, private readonly self: { hostId: string, vtep: string }, private readonly opts: PlanOptions = {}) {
    this.check = peerCheck(devices)
  }

  /** Replace every peer; the operations from the previous plan to the new one. */
  reset (peers: readonly RemotePeer[]): PeerOp[] {
    const before = this.table()
    for (const id of [...this.peers.keys()]) this.unindex(id)
    for (const p of peers) this.index(p)
    return this.replan(before)
  }

  /**
   * Replace every peer without computing the operations (a full reconcile diffs
   * `table()` against what the kernel reports instead): half the work of `reset`.
   */
  load (peers: readonly RemotePeer[]): void {
    for (const id of [...this.peers.keys()]) this.unindex(id)
    for (const p of peers) this.index(p)
    this.fullPlans++
    // Only which peers are programmed: the table is not built (opsFrom diffs without it).
    const { kept, skipped } = choosePeers(this.check, this.self, [...this.peers.values()])
    this.adopt(kept, skipped)
  }

  /** Add or change one peer. */
  upsert (peer: RemotePeer): PeerOp[] {
    const id = peer.endpointId
    const old = this.peers.get(id)
    if (old && samePeer(old, peer)) return []
    const shared = (old !== undefined && this.isShared(old)) || this.isShared(peer)
    // The programmed state is derived from the peers: what it was is taken before they change.
    const before = shared ? this.table() : undefined
    const was = this.programmed(id)
    if (old) this.unindex(id)
    this.index(peer)
    return before ? this.replan(before) : this.single(id, was, peer)
  }

  /** Remove one peer (unknown: nothing to do). */
  remove (endpointId: string): PeerOp[] {
    const old = this.peers.get(endpointId)
    if (!old) return []
    const before = this.isShared(old) ? this.table() : undefined
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
    const dev = this.devices.vxlan
    const haveFdb = new Map(actual.fdb.map((e) => [fdbKey(e), e]))
    const haveNeigh = new Map(actual.neigh.map((e) => [neighKey(e), e]))
    const ops: PeerOp[] = []
    for (const e of haveNeigh.values()) if (!(e.dev === dev && this.programsIp(e.ip))) ops.push({ op: 'deleteNeigh', entry: e })
    for (const e of haveFdb.values()) if (!this.wantsFdb(e)) ops.push({ op: 'deleteFdb', entry: e })
    const addFdb = (e: FdbEntry): void => {
      const have = haveFdb.size === 0 ? undefined : haveFdb.get(fdbKey(e))
      if (!have || !sameFdb(have, e)) ops.push({ op: 'addFdb', entry: e })
    }
    for (const p of this.programmedPeers()) addFdb(peerFdb(this.devices, p))
    for (const vtep of this.vteps.keys()) addFdb(floodFdb(this.devices, vtep))
    for (const p of this.programmedPeers()) {
      for (const ip of peerIps(p)) {
        const have = haveNeigh.size === 0 ? undefined : haveNeigh.get(`${dev}|${ip}`)
        if (!have || have.mac.toLowerCase() !== p.mac) ops.push({ op: 'addNeigh', entry: { dev, ip, mac: p.mac } })
      }
    }
    return ops
  }

  /**
   * The operations that take what `old` programmed to this plan: the same as
   * `diffPeers(this.table(), old.table())` without either table (a resync's full plan
   * against the plan as programmed, at 100,000 peers).
   */
  opsFromPlanner (old: PeerPlanner): PeerOp[] {
    const dev = this.devices.vxlan
    const oldDev = old.devices.vxlan
    const ops: PeerOp[] = []
    for (const p of old.programmedPeers()) {
      for (const ip of peerIps(p)) if (!(oldDev === dev && this.programsIp(ip))) ops.push({ op: 'deleteNeigh', entry: { dev: oldDev, ip, mac: p.mac } })
    }
    for (const p of old.programmedPeers()) { const e = peerFdb(old.devices, p); if (!this.wantsFdb(e)) ops.push({ op: 'deleteFdb', entry: e }) }
    for (const vtep of old.vteps.keys()) { const e = floodFdb(old.devices, vtep); if (!this.wantsFdb(e)) ops.push({ op: 'deleteFdb', entry: e }) }
    for (const p of this.programmedPeers()) {
      const had = oldDev === dev ? old.programmedWith(old.macUsers, p.mac) : undefined
      if (had?.vtep !== p.vtep) ops.push({ op: 'addFdb', entry: peerFdb(this.devices, p) })
    }
    for (const vtep of this.vteps.keys()) if (!(oldDev === dev && old.vteps.has(vtep))) ops.push({ op: 'addFdb', entry: floodFdb(this.devices, vtep) })
    for (const p of this.programmedPeers()) {
      for (const ip of peerIps(p)) {
        const had = oldDev === dev ? old.programmedWith(old.ipUsers, ip) : undefined
        if (had?.mac !== p.mac) ops.push({ op: 'addNeigh', entry: { dev, ip, mac: p.mac } })
      }
    }
    return ops
  }

  size (): { peers: number, programmed: number, skipped: number } {
    let skipped = 0
    for (const s of this.skipped.values()) if (s.reason !== 'local') skipped++
    return { peers: this.peers.size, programmed: this.peers.size - this.skipped.size, skipped }
  }

  /** A programmed peer as programmed (MAC in lower case); undefined when it is left out or unknown. */
  private programmed (id: string): RemotePeer | undefined {
    const p = this.peers.get(id)
    if (p === undefined || this.skipped.has(id)) return undefined
    return p.mac === p.mac.toLowerCase() ? p : { ...p, mac: p.mac.toLowerCase() }
  }

  private * programmedPeers (): Generator<RemotePeer> {
    for (const id of this.peers.keys()) {
      const p = this.programmed(id)
      if (p !== undefined) yield p
    }
  }

  /** The programmed peer among the users of a key of `users` (an address or a MAC: at most one is programmed). */
  private programmedWith (users: Users, key: string): RemotePeer | undefined {
    const ids = users.get(key)
    if (ids === undefined) return undefined
    for (const id of typeof ids === 'string' ? [ids] : ids) {
      const p = this.programmed(id)
      if (p !== undefined) return p
    }
    return undefined
  }

  /** Is `ip` an address of a programmed peer? */
  private programsIp (ip: string): boolean {
    return this.programmedWith(this.ipUsers, ip) !== undefined
  }

  /** Is this entry (of any device) one of the table's? */
  private wantsFdb (e: FdbEntry): boolean {
    if (e.dev !== this.devices.vxlan) return false
    const mac = e.mac.toLowerCase()
    if (!isUnicast(mac)) return mac === ZERO_MAC && e.dst !== undefined && this.vteps.has(e.dst)
    // A unicast MAC has one entry: one of another destination is replaced, not deleted.
    return this.programmedWith(this.macUsers, mac) !== undefined
  }

  private isShared (p: RemotePeer): boolean {
    const mac = typeof p.mac === 'string' ? p.mac.toLowerCase() : ''
    return peerIps(p).some((ip) => othersUse(this.ipUsers, ip, p.endpointId)) || othersUse(this.macUsers, mac, p.endpointId)
  }

  private index (p: RemotePeer): void {
    this.peers.set(p.endpointId, p)
    for (const ip of peerIps(p)) addTo(this.ipUsers, ip, p.endpointId)
    addTo(this.macUsers, typeof p.mac === 'string' ? p.mac.toLowerCase() : '', p.endpointId)
  }

  private unindex (id: string): void {
    const p = this.peers.get(id)
    if (!p) return
    this.peers.delete(id)
    for (const ip of peerIps(p)) removeFrom(this.ipUsers, ip, id)
    removeFrom(this.macUsers, typeof p.mac === 'string' ? p.mac.toLowerCase() : '', id)
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
    const plan = planPeers(this.devices, this.self, [...this.peers.values()], this.opts)
    this.adopt(plan.peers, plan.skipped)
    return diffPeers(plan, before)
  }

  /** A full plan's choice as the programmed state (skipped peers, flood VTEPs); every peer is in `kept` or `skipped`. */
  private adopt (kept: readonly RemotePeer[], skipped: readonly PeerConflict[]): void {
    this.skipped.clear()
    for (const s of skipped) this.skipped.set(s.endpointId, s)
    this.vteps.clear()
    if (this.opts.flood === true) for (const p of kept) this.vteps.set(p.vtep, (this.vteps.get(p.vtep) ?? 0) + 1)
  }
}

/** An FDB or neighbour change of a VXLAN device (the LinkDriver runs it, or an iproute batch line: src/kernel/iproute.ts). */
export type PeerOp = NeighFdbOp

function isUnicast (mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 && mac !== ZERO_MAC
}

/** Unicast MACs have one destination (an add replaces it); all-zeros/multicast entries are one per destination. */
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
