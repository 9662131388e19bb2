/**
 * The kernel WireGuard module's configuration interface: generic netlink,
 * family "wireguard", version 1, commands WG_CMD_GET_DEVICE (0, a dump) and
 * WG_CMD_SET_DEVICE (1), attributes per include/uapi/linux/wireguard.h.
 *
 * The `netlink` package (0.3.0) has a generic netlink socket and a `wg` module,
 * but its `wg` module does not match the kernel: it numbers the commands from 1
 * (GET_DEVICE=1, SET_DEVICE=2: the kernel's 1 is SET_DEVICE), numbers the items
 * of nested lists from 1 (the kernel writes and reads them as type 0), and never
 * sets NLA_F_NESTED, which the kernel's nla_parse_nested() requires on every
 * peer and allowed IP. So ferry encodes and decodes the attributes itself
 * (pure functions below, tested byte for byte against the header's layout, as
 * `wg` of wireguard-tools, src/ipc-linux.h, lays them out) and uses the
 * package only for the socket and the message framing (the same socket class
 * as rtnetlink: src/kernel/netlink.ts' NetlinkReplySocket, which turns an
 * errno in a dump's closing NLMSG_DONE into a rejection).
 *
 * Integers are in host byte order (x86 and arm64 hosts: little endian), except
 * the port inside struct sockaddr_in, which is in network order.
 */
import { FlagsGet } from 'netlink'
import { FerryError } from '../errors/errors.js'
import { Mutex } from '../util/mutex.js'
import { ipFromBytes, ipToBytes, isIp } from '../util/ip.js'
import { KernelErrno, NetlinkReplySocket, checkIfname } from './netlink.js'
import { attr, genlError, genlRequest, nest, openGenlFamily, parseAttrs, resolveFamily, openGenlSocket, strz, u32 } from './genl.js'

export const WG_GENL_NAME = 'wireguard'
export const WG_GENL_VERSION = 1
export const WG_KEY_LEN = 32
export const WG_CMD_GET_DEVICE = 0
export const WG_CMD_SET_DEVICE = 1

const WGDEVICE_A_IFINDEX = 1
const WGDEVICE_A_IFNAME = 2
const WGDEVICE_A_PRIVATE_KEY = 3
const WGDEVICE_A_PUBLIC_KEY = 4
const WGDEVICE_A_FLAGS = 5
const WGDEVICE_A_LISTEN_PORT = 6
const WGDEVICE_A_FWMARK = 7
const WGDEVICE_A_PEERS = 8
const WGDEVICE_F_REPLACE_PEERS = 1

const WGPEER_A_PUBLIC_KEY = 1
const WGPEER_A_FLAGS = 3
const WGPEER_A_ENDPOINT = 4
const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5
const WGPEER_A_LAST_HANDSHAKE_TIME = 6
const WGPEER_A_RX_BYTES = 7
const WGPEER_A_TX_BYTES = 8
const WGPEER_A_ALLOWEDIPS = 9
const WGPEER_F_REMOVE_ME = 1
const WGPEER_F_REPLACE_ALLOWEDIPS = 2

const WGALLOWEDIP_A_FAMILY = 1
const WGALLOWEDIP_A_IPADDR = 2
const WGALLOWEDIP_A_CIDR_MASK = 3

const AF_INET = 2
const AF_INET6 = 10
/**
 * The peers of one SET_DEVICE message, in bytes: a nested attribute's length is
 * 16 bits, so the peer list is split over several messages well below 64 KiB
 * (the header's "several messages should be sent one after another").
 */
export const MAX_PEERS_BYTES = 32 * 1024

/** An endpoint or allowed IP as the kernel takes it. */
export interface WgAddr { ip: string, port: number }
export interface WgAllowedIp { ip: string, cidr: number }

/** One peer of a SET_DEVICE. */
export interface WgPeerSet {
  publicKey: Buffer
  /** The peer must not exist after the change (only the key is sent with it). */
  remove?: boolean
  /** Its allowed IPs become exactly `allowedIps`. */
  replaceAllowedIps?: boolean
  endpoint?: WgAddr
  /** Seconds; 0 disables. */
  keepalive?: number
  allowedIps?: WgAllowedIp[]
}

export interface WgSetDevice {
  ifname: string
  privateKey?: Buffer
  listenPort?: number
  /** Every current peer goes before `peers` are added. */
  replacePeers?: boolean
  peers: WgPeerSet[]
}

/** A peer as GET_DEVICE reports it. */
export interface WgPeerGet {
  publicKey: Buffer
  endpoint?: WgAddr
  keepalive: number
  /** ms since the epoch, 0 = never. */
  lastHandshake: number
  rxBytes: number
  txBytes: number
  allowedIps: WgAllowedIp[]
}

export interface WgDeviceGet {
  ifindex?: number
  ifname?: string
  privateKey?: Buffer
  publicKey?: Buffer
  listenPort?: number
  fwmark?: number
  peers: WgPeerGet[]
}

// ---------------------------------------------------------------------------
// Attributes (the generic ones in src/kernel/genl.ts)

function u8 (n: number): Buffer { return Buffer.from([n]) }
function u16 (n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b }

function checkKeyBuf (k: Buffer, what: string): Buffer {
  if (k.length !== WG_KEY_LEN) throw new FerryError('INTERNAL', `${what} is ${k.length} bytes, not ${WG_KEY_LEN}`)
  return k
}

function checkU16 (n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new FerryError('INTERNAL', `${what} ${n} is not a 16-bit number`)
  return n
}

/** struct sockaddr_in (16 bytes) or struct sockaddr_in6 (28 bytes). */
export function sockaddr (a: WgAddr): Buffer {
  if (!isIp(a.ip)) throw new FerryError('INTERNAL', `refusing WireGuard endpoint address "${a.ip}"`)
  const ip = ipToBytes(a.ip)
  const v4 = ip.length === 4
  const b = Buffer.alloc(v4 ? 16 : 28)
  b.writeUInt16LE(v4 ? AF_INET : AF_INET6, 0)
  b.writeUInt16BE(checkU16(a.port, 'the WireGuard endpoint port'), 2)
  Buffer.from(ip).copy(b, v4 ? 4 : 8) // sockaddr_in6: flowinfo (4 bytes) before the address, scope id after
  return b
}

function parseSockaddr (b: Buffer): WgAddr | undefined {
  if (b.length < 16) return undefined
  const family = b.readUInt16LE(0)
  const port = b.readUInt16BE(2)
  const ip = family === AF_INET ? ipFromBytes(b.subarray(4, 8)) : family === AF_INET6 && b.length >= 28 ? ipFromBytes(b.subarray(8, 24)) : undefined
  return ip === undefined ? undefined : { ip, port }
}

function allowedIpAttr (a: WgAllowedIp): Buffer {
  if (!isIp(a.ip)) throw new FerryError('INTERNAL', `refusing WireGuard allowed IP "${a.ip}"`)
  const ip = Buffer.from(ipToBytes(a.ip))
  if (!Number.isInteger(a.cidr) || a.cidr < 0 || a.cidr > ip.length * 8) throw new FerryError('INTERNAL', `refusing WireGuard allowed IP ${a.ip}/${a.cidr}`)
  return nest(0, [attr(WGALLOWEDIP_A_FAMILY, u16(ip.length === 4 ? AF_INET : AF_INET6)), attr(WGALLOWEDIP_A_IPADDR, ip), attr(WGALLOWEDIP_A_CIDR_MASK, u8(a.cidr))])
}

/** One peer in the order `wg` writes it: key, endpoint, keepalive, flags, allowed IPs. */
export function peerAttr (p: WgPeerSet): Buffer {
  const parts = [attr(WGPEER_A_PUBLIC_KEY, checkKeyBuf(p.publicKey, 'a peer\'s public key'))]
  let flags = p.remove === true ? WGPEER_F_REMOVE_ME : 0
  if (p.remove !== true) {
    if (p.endpoint !== undefined) parts.push(attr(WGPEER_A_ENDPOINT, sockaddr(p.endpoint)))
    if (p.keepalive !== undefined) parts.push(attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, u16(checkU16(p.keepalive, 'the keepalive'))))
    if (p.replaceAllowedIps === true) flags |= WGPEER_F_REPLACE_ALLOWEDIPS
  }
  if (flags !== 0) parts.push(attr(WGPEER_A_FLAGS, u32(flags)))
  if (p.remove !== true && p.allowedIps !== undefined && p.allowedIps.length > 0) parts.push(nest(WGPEER_A_ALLOWEDIPS, p.allowedIps.map(allowedIpAttr)))
  return nest(0, parts)
}

/**
 * The attributes of the SET_DEVICE messages of one change (each to follow a
 * genl header): the first carries the device's key, port and flags; peers go
 * in order, as many per message as fit in MAX_PEERS_BYTES (a peer is never
 * split: ferry's have one allowed IP). At least one message.
 */
export function encodeSetDevice (req: WgSetDevice, maxPeersBytes = MAX_PEERS_BYTES): Buffer[] {
  const name = attr(WGDEVICE_A_IFNAME, strz(checkIfname(req.ifname)))
  const head: Buffer[] = [name]
  if (req.privateKey !== undefined) head.push(attr(WGDEVICE_A_PRIVATE_KEY, checkKeyBuf(req.privateKey, 'the private key')))
  if (req.listenPort !== undefined) head.push(attr(WGDEVICE_A_LISTEN_PORT, u16(checkU16(req.listenPort, 'the listen port'))))
  if (req.replacePeers === true) head.push(attr(WGDEVICE_A_FLAGS, u32(WGDEVICE_F_REPLACE_PEERS)))
  const messages: Buffer[] = []
  let current: Buffer[] = head
  let batch: Buffer[] = []
  let size = 0
  const flush = (): void => {
    messages.push(Buffer.concat(batch.length > 0 ? [...current, nest(WGDEVICE_A_PEERS, batch)] : current))
    current = [name]
    batch = []
    size = 0
  }
  for (const p of req.peers) {
    const a = peerAttr(p)
    if (batch.length > 0 && size + a.length > maxPeersBytes) flush()
    batch.push(a)
    size += a.length
  }
  if (batch.length > 0 || messages.length === 0) flush()
  return messages
}

/** The attributes of a GET_DEVICE dump request for one device. */
export function encodeGetDevice (ifname: string): Buffer {
  return attr(WGDEVICE_A_IFNAME, strz(checkIfname(ifname)))
}

function readU16 (d: Buffer): number { return d.length >= 2 ? d.readUInt16LE(0) : 0 }
function readU32 (d: Buffer): number { return d.length >= 4 ? d.readUInt32LE(0) : 0 }
function readU64 (d: Buffer): number { return d.length >= 8 ? Number(d.readBigUInt64LE(0)) : 0 }

function decodeAllowedIp (b: Buffer): WgAllowedIp | undefined {
  let family = 0
  let ip: string | undefined
  let cidr = -1
  for (const a of parseAttrs(b)) {
    if (a.type === WGALLOWEDIP_A_FAMILY) family = readU16(a.data)
    else if (a.type === WGALLOWEDIP_A_IPADDR) ip = ipFromBytes(a.data)
    else if (a.type === WGALLOWEDIP_A_CIDR_MASK && a.data.length >= 1) cidr = a.data.readUInt8(0)
  }
  const bits = family === AF_INET ? 32 : family === AF_INET6 ? 128 : 0
  return ip !== undefined && cidr >= 0 && cidr <= bits && isIp(ip, family === AF_INET ? 4 : 6) ? { ip, cidr } : undefined
}

function decodePeer (b: Buffer): WgPeerGet {
  const p: WgPeerGet = { publicKey: Buffer.alloc(0), keepalive: 0, lastHandshake: 0, rxBytes: 0, txBytes: 0, allowedIps: [] }
  for (const a of parseAttrs(b)) {
    switch (a.type) {
      case WGPEER_A_PUBLIC_KEY: p.publicKey = Buffer.from(a.data); break
      case WGPEER_A_ENDPOINT: { const e = parseSockaddr(a.data); if (e !== undefined) p.endpoint = e; break }
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: p.keepalive = readU16(a.data); break
      case WGPEER_A_LAST_HANDSHAKE_TIME:
        // struct __kernel_timespec: s64 seconds, s64 nanoseconds
        if (a.data.length >= 16) p.lastHandshake = Number(a.data.readBigInt64LE(0)) * 1000 + Math.floor(Number(a.data.readBigInt64LE(8)) / 1e6)
        break
      case WGPEER_A_RX_BYTES: p.rxBytes = readU64(a.data); break
      case WGPEER_A_TX_BYTES: p.txBytes = readU64(a.data); break
      case WGPEER_A_ALLOWEDIPS:
        for (const item of parseAttrs(a.data)) { const ip = decodeAllowedIp(item.data); if (ip !== undefined) p.allowedIps.push(ip) }
        break
      default: break // preshared key, protocol version: not ferry's
    }
  }
  if (p.publicKey.length !== WG_KEY_LEN) throw new FerryError('KERNEL', 'the WireGuard module answered a peer without a 32-byte public key')
  return p
}

/**
 * The device of a GET_DEVICE dump: the attributes of each message (after its
 * genl header), in order. A peer continued in the next message (its key and
 * more allowed IPs only) is joined to the one before, as the header asks.
 */
export function decodeGetDevice (messages: readonly Buffer[]): WgDeviceGet {
  const dev: WgDeviceGet = { peers: [] }
  for (const m of messages) {
    for (const a of parseAttrs(m)) {
      switch (a.type) {
        case WGDEVICE_A_IFINDEX: dev.ifindex = readU32(a.data); break
        case WGDEVICE_A_IFNAME: dev.ifname = a.data.toString('utf8').replace(/\0.*$/s, ''); break
        case WGDEVICE_A_PRIVATE_KEY: dev.privateKey = Buffer.from(a.data); break
        case WGDEVICE_A_PUBLIC_KEY: dev.publicKey = Buffer.from(a.data); break
        case WGDEVICE_A_LISTEN_PORT: dev.listenPort = readU16(a.data); break
        case WGDEVICE_A_FWMARK: dev.fwmark = readU32(a.data); break
        case WGDEVICE_A_PEERS:
          for (const item of parseAttrs(a.data)) {
            const p = decodePeer(item.data)
            const last = dev.peers[dev.peers.length - 1]
            if (last !== undefined && last.publicKey.equals(p.publicKey)) last.allowedIps.push(...p.allowedIps)
            else dev.peers.push(p)
          }
          break
        default: break
      }
    }
  }
  return dev
}

// ---------------------------------------------------------------------------
// The socket

/**
 * Whether the kernel has the WireGuard module: its generic netlink family
 * resolves (asking for it makes the kernel load the module when it is
 * installed, as `ip link add type wireguard` would).
 */
export async function probeWireGuardModule (): Promise<boolean> {
  let sock: NetlinkReplySocket | undefined
  try {
    sock = openGenlSocket()
    return (await resolveFamily(sock, WG_GENL_NAME)) !== undefined
  } catch {
    return false
  } finally {
    try { sock?.close() } catch { /* closed */ }
  }
}

/** The kernel module's configuration socket (one per agent; requests one at a time). */
export class WireGuardGenl {
  private readonly queue = new Mutex()
  private constructor (private readonly sock: NetlinkReplySocket, private readonly family: number) {}

  static async open (): Promise<WireGuardGenl> {
    const { sock, family } = await openGenlFamily(WG_GENL_NAME, 'the WireGuard', 'the kernel has no WireGuard module')
    return new WireGuardGenl(sock, family)
  }

  /** Apply a change (one or more messages, each acknowledged before the next). */
  async setDevice (req: WgSetDevice): Promise<void> {
    await this.queue.run(async () => {
      for (const m of encodeSetDevice(req)) {
        await genlRequest(this.sock, this.family, WG_CMD_SET_DEVICE, WG_GENL_VERSION, m, 0)
          .catch((err: unknown) => { throw genlError(`cannot configure the WireGuard device ${req.ifname}`, err) })
      }
    })
  }

  /** The device's configuration and peers; undefined when there is no such WireGuard device. */
  async getDevice (ifname: string): Promise<WgDeviceGet | undefined> {
    return await this.queue.run(async () => {
      try {
        return decodeGetDevice(await genlRequest(this.sock, this.family, WG_CMD_GET_DEVICE, WG_GENL_VERSION, encodeGetDevice(ifname), FlagsGet.DUMP))
      } catch (err) {
        if (err instanceof KernelErrno && (err.code === 'ENODEV' || err.code === 'EOPNOTSUPP')) return undefined
        throw genlError(`cannot read the WireGuard device ${ifname}`, err)
      }
    })
  }

  close (): void {
    try { this.sock.close() } catch { /* closed */ }
  }
}

