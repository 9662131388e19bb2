/**
 * Pure planning of the WireGuard mesh that carries encrypted overlays.
 *
 * Each host has one WireGuard device (`fyw-<hash of host id>`) holding its
 * tunnel address (`/16` of the tunnel range, default 100.64.0.0/16), derived
 * from its host id unless given. An encrypted overlay's VXLAN device sends from
 * this host's tunnel address to the peers' tunnel addresses, so its packets
 * enter WireGuard; plain overlays keep the underlay. Every other registered
 * host that published WireGuard information is a peer: its public key, its
 * endpoint (its VTEP address and WireGuard port) and AllowedIPs = its tunnel
 * address /32. Two hosts that claim one tunnel address or one public key: the
 * smaller host id keeps it, the other is left out and reported.
 *
 * Also the UAPI text (wireguard-go's configuration protocol) for a plan, and
 * the parser of its `get=1` answer.
 */
import { createHash } from 'node:crypto'
import { FerryError } from '../errors/errors.js'
import { bounds, contains, familyOf, ipString, ipValue, isIp, normalizeIp, parseCidr } from '../util/ip.js'
import { checkKey, keyFromHex, keyHex } from './keys.js'
import type { WgDeviceGet, WgPeerSet, WgSetDevice } from '../kernel/wireguard-genl.js'

export const WG_PREFIX = 'fyw-'
export const DEFAULT_WG_PORT = 51820
export const DEFAULT_TUNNEL_RANGE = '100.64.0.0/16'
/** Outer IPv4 20 + UDP 8 + WireGuard header 32; over an IPv6 underlay the outer header is 40 bytes: 80. */
export const WG_OVERHEAD = 60
export const WG_OVERHEAD6 = 80

/** What WireGuard adds to a packet on an underlay of `family` (src/vxlan/plan.ts overlayMtu: the one place MTUs are derived). */
export function wgOverhead (family: 4 | 6): number {
  return family === 4 ? WG_OVERHEAD : WG_OVERHEAD6
}

/**
 * The family WireGuard's packets travel in: that of `addr` (this host's VTEP, or the endpoint it publishes behind
 * NAT), IPv6 when any is. The encrypted VXLAN inside is always IPv4 (tunnel addresses).
 */
export function wgFamily (...addrs: Array<string | undefined>): 4 | 6 {
  return addrs.some((a) => a !== undefined && familyOf(splitEndpoint(a)?.ip ?? a) === 6) ? 6 : 4
}

/** `ip:port`, an IPv6 address in brackets (WireGuard's endpoint notation). */
export function joinEndpoint (ip: string, port: number): string {
  return isIp(ip, 6) ? `[${ip}]:${port}` : `${ip}:${port}`
}

/** An endpoint `IPv4:port` or `[IPv6]:port` split, or undefined when it is neither (the address not checked). */
function splitEndpoint (e: string): { ip: string, port: string, family: 4 | 6 } | undefined {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]{2,45})\]):(\d{1,5})$/.exec(e)
  if (!m) return undefined
  return m[1] !== undefined ? { ip: m[1], port: m[3]!, family: 4 } : { ip: m[2]!, port: m[3]!, family: 6 }
}
/** VXLAN port of encrypted overlays: apart from 4789, so the plain VXLAN socket never takes their VNIs. */
export const ENCRYPTED_VXLAN_PORT = 4799
export const DEFAULT_KEEPALIVE = 25
const IFNAME_MAX = 15

/** What a host publishes beside its registration. */
export interface WireGuardInfo {
  publicKey: string
  port: number
  /** Its tunnel address (IPv4). */
  tunnel: string
  /**
   * Where peers send to reach it, `IPv4:port` or `[IPv6]:port`, when that is not its advertise
   * address and port: a host behind NAT (--wireguard-endpoint). Absent: `<vtep>:<port>`.
   */
  endpoint?: string
}

/** One peer of this host's device. */
export interface WgPeer {
  hostId: string
  publicKey: string
  /** ip:port */
  endpoint: string
  allowedIps: string[]
  keepalive: number
}

export interface WgSkip { hostId: string, reason: 'invalid' | 'duplicate-tunnel' | 'duplicate-key' | 'self-tunnel' | 'outside-range', detail: string }

export interface MeshPlan {
  peers: WgPeer[]
  skipped: WgSkip[]
}

/**
 * The name of this host's WireGuard device in `slot` 0 or 1. A key rotation
 * brings the new key up on the other slot's device (and port), then retires
 * the old one, so the device alternates between the two names.
 */
export function wgDeviceName (hostId: string, slot: 0 | 1 = 0): string {
  return WG_PREFIX + createHash('sha256').update(slot === 0 ? hostId : `${hostId}\nslot 1`).digest('hex').slice(0, IFNAME_MAX - WG_PREFIX.length)
}

/** The listen port of a slot: the configured port, and the one above it for slot 1. */
export function wgSlotPort (port: number, slot: 0 | 1): number {
  return checkPort(port + slot)
}

export function checkPort (port: unknown, what = 'WireGuard port'): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new FerryError('INVALID_OPTION', `${what} must be from 1 to 65535`)
  return port
}

/** An IPv4 range of /8 to /24 for tunnel addresses. */
export function checkTunnelRange (range: string): string {
  const c = parseCidr(range, 4)
  if (c.prefix < 8 || c.prefix > 24) throw new FerryError('INVALID_OPTION', `the WireGuard tunnel range ${range} must be an IPv4 /8 to /24`)
  return `${ipString(4, c.network)}/${c.prefix}`
}

/** The tunnel address of a host: a host address of the range picked by a hash of its id (the same on every run). */
export function tunnelAddress (hostId: string, range = DEFAULT_TUNNEL_RANGE): string {
  const b = bounds(checkTunnelRange(range))
  const hosts = b.last - b.first - 1n
  const h = BigInt('0x' + createHash('sha256').update(`ferry-wg-tunnel\n${hostId}`).digest('hex').slice(0, 12))
  return ipString(4, b.first + 1n + (h % hosts))
}

/** Check what a host publishes (the write side and the read side share it). */
export function checkWireGuardInfo (raw: unknown, range: string | undefined = DEFAULT_TUNNEL_RANGE): WireGuardInfo {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FerryError('INVALID_REQUEST', 'the WireGuard information is not an object')
  const r = raw as Record<string, unknown>
  for (const k of Object.keys(r)) {
    if (k !== 'publicKey' && k !== 'port' && k !== 'tunnel' && k !== 'endpoint') throw new FerryError('INVALID_REQUEST', `the WireGuard information has an unknown field "${k.slice(0, 32)}"`)
  }
  const endpoint = r.endpoint === undefined ? {} : { endpoint: checkEndpoint(r.endpoint) }
  const publicKey = checkKey(r.publicKey, 'the WireGuard public key')
  const port = checkPort(r.port)
  const tunnel = r.tunnel
  if (typeof tunnel !== 'string' || !isIp(tunnel, 4) || ipString(4, ipValue(tunnel, 4)) !== tunnel) throw new FerryError('INVALID_REQUEST', 'the WireGuard tunnel address is not a canonical IPv4 address')
  if (range === undefined) return { publicKey, port, tunnel, ...endpoint }
  const b = bounds(checkTunnelRange(range))
  const n = ipValue(tunnel, 4)
  if (!contains(range, tunnel) || n === b.first || n === b.last) throw new FerryError('INVALID_REQUEST', `the WireGuard tunnel address ${tunnel} is not a host address of ${range}`)
  return { publicKey, port, tunnel, ...endpoint }
}

/**
 * A WireGuard endpoint in canonical form, `IPv4:port` or `[IPv6]:port` (RFC 5952 form in brackets)
 * (--wireguard-endpoint, and what hosts publish).
 */
export function checkEndpoint (raw: unknown, what = 'the WireGuard endpoint'): string {
  const m = typeof raw === 'string' ? splitEndpoint(raw) : undefined
  if (!m || !isIp(m.ip, m.family) || normalizeIp(m.ip) !== m.ip || String(Number(m.port)) !== m.port) {
    throw new FerryError('INVALID_OPTION', `${what} ${String(raw).slice(0, 60)} must be an IP address and a port, e.g. 203.0.113.7:51820 or [2001:db8::7]:51820`)
  }
  checkPort(Number(m.port), `the port of ${what}`)
  return raw as string
}

/** The endpoint a host publishes for a slot: a configured one moves to the port above it with the device (key rotation). */
export function slotEndpoint (endpoint: string | undefined, slot: 0 | 1): string | undefined {
  if (endpoint === undefined) return undefined
  const i = endpoint.lastIndexOf(':')
  return `${endpoint.slice(0, i)}:${checkPort(Number(endpoint.slice(i + 1)) + slot)}`
}

/** The canonical text of the information (what is stored and signed). */
export function wireGuardContent (w: WireGuardInfo): string {
  return JSON.stringify({ publicKey: w.publicKey, port: w.port, tunnel: w.tunnel, ...(w.endpoint !== undefined ? { endpoint: w.endpoint } : {}) })
}

/** Read the stored text (at most 256 bytes of JSON); the range is checked by the planner, which knows it. */
export function readWireGuardContent (text: unknown, range?: string): WireGuardInfo {
  if (typeof text !== 'string' || text.length > 256) throw new FerryError('INVALID_REQUEST', 'the WireGuard information is not a short JSON text')
  let v: unknown
  try { v = JSON.parse(text) } catch { throw new FerryError('INVALID_REQUEST', 'the WireGuard information is not JSON') }
  const w = checkWireGuardInfo(v, range)
  if (wireGuardContent(w) !== text) throw new FerryError('INVALID_REQUEST', 'the WireGuard information is not in canonical form')
  return w
}

export interface MeshHost { hostId: string, vtep: string, wg?: WireGuardInfo }

/**
 * The peers of this host: every other host with WireGuard information, sorted
 * by host id; duplicates of a tunnel address or a key (and a host claiming
 * this host's tunnel) are left out deterministically.
 */
export function planMesh (self: { hostId: string, wg: WireGuardInfo }, hosts: Iterable<MeshHost>, range = DEFAULT_TUNNEL_RANGE, keepalive = DEFAULT_KEEPALIVE): MeshPlan {
  const peers: WgPeer[] = []
  const skipped: WgSkip[] = []
  const tunnels = new Map<string, string>([[self.wg.tunnel, self.hostId]])
  const keys = new Map<string, string>([[self.wg.publicKey, self.hostId]])
  const sorted = [...hosts].filter((h) => h.hostId !== self.hostId).sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
  for (const h of sorted) {
    if (h.wg === undefined) continue
    let w: WireGuardInfo
    try { w = checkWireGuardInfo(h.wg, range) } catch (err) {
      skipped.push({ hostId: h.hostId, reason: 'invalid', detail: (err as Error).message })
      continue
    }
    if (w.endpoint === undefined && !isIp(h.vtep)) { skipped.push({ hostId: h.hostId, reason: 'invalid', detail: `endpoint address ${h.vtep} is not an IP address` }); continue }
    const tHolder = tunnels.get(w.tunnel)
    if (tHolder !== undefined) {
      skipped.push({ hostId: h.hostId, reason: tHolder === self.hostId ? 'self-tunnel' : 'duplicate-tunnel', detail: `tunnel address ${w.tunnel} is held by ${tHolder}` })
      continue
    }
    const kHolder = keys.get(w.publicKey)
    if (kHolder !== undefined) { skipped.push({ hostId: h.hostId, reason: 'duplicate-key', detail: `public key is held by ${kHolder}` }); continue }
    tunnels.set(w.tunnel, h.hostId)
    keys.set(w.publicKey, h.hostId)
    // Persistent keepalive on every peer keeps a NAT's mapping open for a host behind it.
    peers.push({ hostId: h.hostId, publicKey: w.publicKey, endpoint: w.endpoint ?? joinEndpoint(h.vtep, w.port), allowedIps: [`${w.tunnel}/32`], keepalive })
  }
  return { peers, skipped }
}

/** The tunnel address of each planned peer, by host id (the FDB destinations of encrypted overlays). */
export function tunnelsOf (plan: MeshPlan): Map<string, string> {
  return new Map(plan.peers.map((p) => [p.hostId, (p.allowedIps[0] ?? '').split('/')[0] ?? '']))
}

// ---------------------------------------------------------------------------
// UAPI (https://www.wireguard.com/xplatform/): the text protocol of wireguard-go

/** A peer as the device reports it. */
export interface WgPeerState {
  publicKey: string
  endpoint?: string
  allowedIps: string[]
  keepalive: number
  /** ms since the epoch; 0 = never */
  lastHandshake: number
  rxBytes: number
  txBytes: number
}

export interface WgDeviceState {
  /** The device's private key (base64): compared, never shown. */
  privateKey?: string
  listenPort?: number
  peers: WgPeerState[]
}

function endpointOk (e: string): boolean {
  const m = splitEndpoint(e)
  return m !== undefined && isIp(m.ip, m.family) && Number(m.port) <= 65535
}

function uapiPeerLines (p: WgPeer): string[] {
  if (!endpointOk(p.endpoint)) throw new FerryError('INTERNAL', `refusing to render endpoint "${p.endpoint}"`)
  const lines = [`public_key=${keyHex(p.publicKey)}`, `endpoint=${p.endpoint}`, `persistent_keepalive_interval=${checkPort(p.keepalive, 'keepalive')}`, 'replace_allowed_ips=true']
  for (const a of p.allowedIps) {
    const [ip, len] = a.split('/')
    if (ip === undefined || !isIp(ip, 4) || len !== '32') throw new FerryError('INTERNAL', `refusing to render allowed IP "${a}"`)
    lines.push(`allowed_ip=${a}`)
  }
  return lines
}

/**
 * The `set=1` request that turns the device's `current` peers into `want`:
 * private key and port, then a removal for each peer that goes, and each
 * wanted peer (an update of an existing peer keeps its session).
 */
export function uapiSet (cfg: { privateKey?: string, listenPort?: number }, want: readonly WgPeer[], current: readonly WgPeerState[] | undefined): string {
  const lines = ['set=1']
  if (cfg.privateKey !== undefined) lines.push(`private_key=${keyHex(cfg.privateKey)}`)
  if (cfg.listenPort !== undefined) lines.push(`listen_port=${checkPort(cfg.listenPort)}`)
  if (current === undefined) lines.push('replace_peers=true')
  const wanted = new Set(want.map((p) => p.publicKey))
  for (const c of current ?? []) if (!wanted.has(c.publicKey)) lines.push(`public_key=${keyHex(c.publicKey)}`, 'remove=true')
  for (const p of want) lines.push(...uapiPeerLines(p))
  return lines.join('\n') + '\n\n'
}

const MAX_UAPI_LINES = 100_000

/** Parse a `get=1` answer (ends with `errno=N`); a non-zero errno is an error. */
export function parseUapiGet (text: string): WgDeviceState {
  const state: WgDeviceState = { peers: [] }
  let peer: WgPeerState | undefined
  let errno: number | undefined
  let sec = 0
  let nsec = 0
  const flushTime = (): void => { if (peer) peer.lastHandshake = sec * 1000 + Math.floor(nsec / 1e6) }
  const lines = text.split('\n')
  if (lines.length > MAX_UAPI_LINES) throw new FerryError('KERNEL', 'the WireGuard device answered too many lines')
  for (const line of lines) {
    if (line === '') continue
    const i = line.indexOf('=')
    if (i < 0) throw new FerryError('KERNEL', `the WireGuard device answered a line without '=': ${line.slice(0, 60)}`)
    const k = line.slice(0, i)
    const v = line.slice(i + 1)
    const int = (): number => { const n = Number(v); if (!Number.isSafeInteger(n) || n < 0) throw new FerryError('KERNEL', `the WireGuard device answered ${k}=${v.slice(0, 30)}`); return n }
    switch (k) {
      case 'private_key': state.privateKey = keyFromHex(v); break
      case 'listen_port': state.listenPort = int(); break
      case 'fwmark': break
      case 'public_key':
        flushTime()
        sec = 0; nsec = 0
        peer = { publicKey: keyFromHex(v), allowedIps: [], keepalive: 0, lastHandshake: 0, rxBytes: 0, txBytes: 0 }
        state.peers.push(peer)
        break
      case 'errno': errno = int(); break
      default:
        if (!peer) break
        switch (k) {
          case 'endpoint': peer.endpoint = v; break
          case 'allowed_ip': peer.allowedIps.push(v); break
          case 'persistent_keepalive_interval': peer.keepalive = int(); break
          case 'last_handshake_time_sec': sec = int(); break
          case 'last_handshake_time_nsec': nsec = int(); break
          case 'rx_bytes': peer.rxBytes = int(); break
          case 'tx_bytes': peer.txBytes = int(); break
        }
    }
  }
  flushTime()
  if (errno === undefined) throw new FerryError('KERNEL', 'the WireGuard device\'s answer has no errno line')
  if (errno !== 0) throw new FerryError('KERNEL', `the WireGuard device answered errno ${errno}`)
  return state
}

/** Check a `set=1` answer. */
export function parseUapiSet (text: string): void {
  const m = /^errno=(-?\d+)$/m.exec(text)
  if (!m) throw new FerryError('KERNEL', 'the WireGuard device\'s answer has no errno line')
  if (m[1] !== '0') throw new FerryError('KERNEL', `the WireGuard device refused the configuration (errno ${m[1] ?? '?'})`)
}


// ---------------------------------------------------------------------------
// Generic netlink (the kernel module): the same change as uapiSet, as data for src/kernel/wireguard-genl.ts

function keyBuf (key: string): Buffer { return Buffer.from(keyHex(key), 'hex') }

/** An endpoint as the kernel takes it: the address (an IPv6 one without its brackets) and the port. */
function genlEndpoint (e: string): { ip: string, port: number } {
  const m = splitEndpoint(e)
  if (m === undefined || !endpointOk(e)) throw new FerryError('INTERNAL', `refusing to render endpoint "${e}"`)
  return { ip: m.ip, port: Number(m.port) }
}

/**
 * The SET_DEVICE change that turns the device's `current` peers into `want`
 * (as uapiSet): private key and port, a removal for each peer that goes, and
 * each wanted peer with its allowed IPs replaced (an update keeps its session).
 */
export function genlSet (dev: string, cfg: { privateKey?: string, listenPort?: number }, want: readonly WgPeer[], current: readonly WgPeerState[] | undefined): WgSetDevice {
  const wanted = new Set(want.map((p) => p.publicKey))
  const peers: WgPeerSet[] = []
  for (const c of current ?? []) if (!wanted.has(c.publicKey)) peers.push({ publicKey: keyBuf(c.publicKey), remove: true })
  for (const p of want) {
    const allowedIps = p.allowedIps.map((a) => {
      const [ip, len] = a.split('/')
      if (ip === undefined || !isIp(ip, 4) || len !== '32') throw new FerryError('INTERNAL', `refusing to render allowed IP "${a}"`)
      return { ip, cidr: 32 }
    })
    peers.push({ publicKey: keyBuf(p.publicKey), endpoint: genlEndpoint(p.endpoint), keepalive: checkPort(p.keepalive, 'keepalive'), replaceAllowedIps: true, allowedIps })
  }
  return {
    ifname: dev, peers, ...(current === undefined ? { replacePeers: true } : {}),
    ...(cfg.privateKey !== undefined ? { privateKey: keyBuf(cfg.privateKey) } : {}),
    ...(cfg.listenPort !== undefined ? { listenPort: checkPort(cfg.listenPort) } : {}),
  }
}

/** A GET_DEVICE answer as ferry's device state (keys in base64, as the UAPI parser gives them). */
export function stateOfGenl (d: WgDeviceGet): WgDeviceState {
  const b64 = (k: Buffer): string => k.toString('base64')
  const state: WgDeviceState = {
    peers: d.peers.map((p) => ({
      publicKey: b64(p.publicKey), allowedIps: p.allowedIps.map((a) => `${a.ip}/${a.cidr}`), keepalive: p.keepalive,
      lastHandshake: p.lastHandshake, rxBytes: p.rxBytes, txBytes: p.txBytes,
      ...(p.endpoint !== undefined ? { endpoint: p.endpoint.ip.includes(':') ? `[${p.endpoint.ip}]:${p.endpoint.port}` : `${p.endpoint.ip}:${p.endpoint.port}` } : {}),
    })),
  }
  // An all-zero key is "no key" (the kernel reports what was set; ferry always sets one).
  if (d.privateKey !== undefined && d.privateKey.some((b) => b !== 0)) state.privateKey = b64(d.privateKey)
  if (d.listenPort !== undefined) state.listenPort = d.listenPort
  return state
}
