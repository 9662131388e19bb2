/**
 * Pure planning of the overlay data plane (libnetwork's recipe, with static
 * entries only): per overlay and host, a bridge holding the gateway address and
 * a VXLAN device (learning off, proxy ARP on) enslaved to it; for every remote
 * endpoint, a permanent FDB entry (its MAC -> its host's VTEP, on the VXLAN
 * device) and a permanent neighbour entry (its IP -> its MAC, which the VXLAN
 * device answers ARP from, so ARP never crosses the tunnel). Optionally, the
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
import { canonical, contains, ipToInt, isIp, parseCidr, parseIpOrUndefined } from '../ipam/cidr.js'
import { macForIp } from '../bridge/names.js'

export const VXLAN_PREFIX = 'fyv-'
export const OVERLAY_BRIDGE_PREFIX = 'fyo-'
export const DEFAULT_VXLAN_PORT = 4789
/** Inner Ethernet 14 + outer IPv4 20 + UDP 8 + VXLAN 8. */
export const VXLAN_OVERHEAD = 50
export const DEFAULT_UNDERLAY_MTU = 1500
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
  /** MTU of the overlay (-o com.docker.network.driver.mtu); default: underlay MTU - 50. */
  mtu?: number
  /** VXLAN UDP port; default 4789. */
  port?: number
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
}

export function overlayDevices (o: LocalOverlay, u: Underlay): OverlayDevices {
  if (!Number.isInteger(o.vni) || o.vni < 1 || o.vni > 16777215) throw new FerryError('INVALID_OPTION', `VNI ${o.vni} must be from 1 to 16777215`)
  if (!isIp(u.vtep)) throw new FerryError('INVALID_OPTION', `VTEP address "${u.vtep}" is not an IPv4 address`)
  const subnet = canonical(o.subnet)
  if (!isIp(o.gateway) || !contains(subnet, o.gateway)) throw new FerryError('INVALID_OPTION', `gateway ${o.gateway} is not in ${subnet}`)
  const port = o.port ?? DEFAULT_VXLAN_PORT
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new FerryError('INVALID_OPTION', `VXLAN port ${port} must be from 1 to 65535`)
  const mtu = o.mtu ?? u.mtu - VXLAN_OVERHEAD
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new FerryError('INVALID_OPTION', `overlay MTU ${mtu} must be from 68 to 65535${o.mtu === undefined ? ` (underlay MTU ${u.mtu} - ${VXLAN_OVERHEAD})` : ''}`)
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
  if (u.dev !== undefined) d.dev = u.dev
  return d
}

/** A remote endpoint as the cluster knows it. */
export interface RemotePeer {
  endpointId: string
  hostId: string
  ip: string
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
  reason: 'local' | 'invalid' | 'outside-subnet' | 'gateway' | 'duplicate-ip' | 'duplicate-mac'
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

function ipOrder (a: string, b: string): number {
  return ipToInt(a) - ipToInt(b)
}

function prefixMask (prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/**
 * The FDB and neighbour entries for the remote peers of one overlay. Peers on
 * this host (same host id or VTEP) are not programmed: the local bridge reaches
 * them. Invalid records, addresses outside the subnet and the gateway are left
 * out. When two endpoints claim the same IP (or MAC), the one with the smallest
 * endpoint id wins, deterministically on every host, and the other is reported.
 */
export function planPeers (d: OverlayDevices, self: { hostId: string, vtep: string }, peers: readonly RemotePeer[], opts: PlanOptions = {}): PeerPlan {
  const skipped: PeerConflict[] = []
  const byIp = new Map<string, { p: RemotePeer, n: number }>()
  const byMac = new Map<string, RemotePeer>()
  // Each address is parsed once: at 10,000 peers this runs on every change.
  const subnet = parseCidr(d.subnet)
  const mask = prefixMask(subnet.prefix)
  const sorted = [...peers].sort((a, b) => (a.endpointId < b.endpointId ? -1 : a.endpointId > b.endpointId ? 1 : 0))
  for (const raw of sorted) {
    const mac = typeof raw.mac === 'string' ? raw.mac.toLowerCase() : ''
    const p: RemotePeer = { ...raw, mac }
    const n = typeof p.ip === 'string' ? parseIpOrUndefined(p.ip) : undefined
    if (n === undefined || !isIp(p.vtep) || !MAC_RE.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1 || mac === ZERO_MAC) {
      skipped.push({ endpointId: p.endpointId, ip: String(p.ip), reason: 'invalid' })
      continue
    }
    if (p.hostId === self.hostId || p.vtep === self.vtep) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'local' }); continue }
    if (((n & mask) >>> 0) !== subnet.network) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'outside-subnet' }); continue }
    if (p.ip === d.gateway) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'gateway' }); continue }
    const ipWinner = byIp.get(p.ip)
    if (ipWinner) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'duplicate-ip', keptEndpointId: ipWinner.p.endpointId }); continue }
    const macWinner = byMac.get(mac)
    if (macWinner) { skipped.push({ endpointId: p.endpointId, ip: p.ip, reason: 'duplicate-mac', keptEndpointId: macWinner.endpointId }); continue }
    byIp.set(p.ip, { p, n })
    byMac.set(mac, p)
  }
  const kept = [...byIp.values()].sort((a, b) => a.n - b.n).map((x) => x.p)
  const fdb: FdbEntry[] = kept.map((p) => ({ dev: d.vxlan, mac: p.mac, dst: p.vtep }))
  if (opts.flood === true) {
    const vteps = [...new Set(kept.map((p) => p.vtep))].sort(ipOrder)
    fdb.push(...vteps.map((vtep) => ({ dev: d.vxlan, mac: ZERO_MAC, dst: vtep })))
  }
  const neigh: NeighEntry[] = kept.map((p) => ({ dev: d.vxlan, ip: p.ip, mac: p.mac }))
  return { fdb, neigh, peers: kept, skipped }
}

export type PeerOp =
  | { op: 'addFdb', entry: FdbEntry }
  | { op: 'deleteFdb', entry: FdbEntry }
  | { op: 'addNeigh', entry: NeighEntry }
  | { op: 'deleteNeigh', entry: NeighEntry }

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
