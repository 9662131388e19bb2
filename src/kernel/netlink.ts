/**
 * The real LinkDriver: ferry's typed calls over one rtnetlink socket, using the
 * `netlink` package for the socket, message framing and struct/attribute codecs.
 *
 * - Link kinds are created by encoding IFLA_LINKINFO ourselves (the package types
 *   it as a raw Buffer): IFLA_INFO_KIND plus IFLA_INFO_DATA (the veth peer is an
 *   ifinfomsg followed by its own attributes; VXLAN options are IFLA_VXLAN_*).
 * - Every request goes through one queue (the kernel refuses a second dump on a
 *   socket while one is running) and one place that turns errno answers into
 *   FerryError KERNEL ('cannot create bridge fy-abc: File exists'). The dumps of
 *   FDB and neighbour entries (100,000 each on a large overlay: more than a second)
 *   are read in a worker thread of their own (src/kernel/dump-worker.ts), one at a
 *   time: the kernel makes a dump's replies inside the reader's recvmsg and the addon
 *   reads 32 of them in one go, which held the event loop up to 240 ms at a time;
 *   changes of single endpoints are not queued behind them (the overlay's periodic
 *   repair reads while changes flow). Their answers are parsed with a pause for other
 *   work every 4,096 entries.
 * - Dumps interrupted by a concurrent change (NLM_F_DUMP_INTR, or EINTR in the
 *   closing NLMSG_DONE) are retried in `dump()`.
 * - Idempotency: creating a link that exists with the same kind, deleting what is
 *   gone and adding an address that is there all succeed; FDB and neighbour adds
 *   replace.
 * - Bridge port options (hairpin) are set with an AF_BRIDGE RTM_SETLINK carrying a
 *   nested IFLA_PROTINFO, as `bridge link set` does; they are read back from the
 *   port's IFLA_INFO_SLAVE_DATA in an ordinary link dump.
 */
import {
  AttrStream, Flags, FlagsGet, FlagsNew, MessageType, NetlinkSocket, Protocol, RawNetlinkSocket,
  ifla, parseAttributes, parseError, rt,
} from 'netlink'
import type { MessageInfo, NetlinkMessage, StreamData } from 'netlink'
import { setImmediate as setImmediatePromise, setTimeout as delay } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import { FerryError, toFerryError } from '../errors/errors.js'
import { Mutex } from '../util/mutex.js'
import { ipFromBytes, ipToBytes, isCidr, isIp, lastAddress, parseAddress, parseIpOrUndefined, type Family } from '../util/ip.js'
import { errnoName, errnoNumber, errnoText } from './errno.js'
import { ENTRY_BYTES, type AddressInfo, type FdbEntry, type Ipv6ConfKey, type LinkDriver, type LinkInfo, type NeighEntry, type NeighFdbFailure, type NeighFdbOp, type PackedEntries, type RouteInfo, type VxlanSpec } from './types.js'
import { readSysctl, writeSysctl } from './sysctl.js'
import type { EthtoolGenl } from './ethtool-genl.js'
import type { DumpJob, DumpResult } from './dump-worker.js'

const AF_INET = 2
const AF_INET6 = 10
const AF_UNSPEC = 0
const AF_BRIDGE = 7
const RT_TABLE_LOCAL = 255
const REQUEST_TIMEOUT_MS = 10_000
/** The buffer each rtnetlink reply is read into (see openLinkDriver). */
const DUMP_READ_BYTES = 65536
const DUMP_ATTEMPTS = 10
/** A large dump's entries are parsed in slices of 4,096 (mask), with a turn of the event loop between them. */
const PARSE_SLICE = 4095
const ZERO_MAC = '00:00:00:00:00:00'
const NLMSG_HDRLEN = 16
const MAX_IFNAME = 15
const NLA_F_NESTED = 0x8000
const NLA_ALIGNTO = 4
const IFLA_PROTINFO = 12
const IFLA_BRPORT_MODE = 4
const IFLA_BRPORT_ISOLATED = 33
/**
 * FDB and neighbour changes packed into one send (see applyNeighFdb): as many as the socket's
 * receive buffer holds the answers of if every one of them fails (each error answer echoes its
 * request; the buffer is charged the answer's whole allocation, well under ANSWER_BYTES), from
 * MIN up to MAX. MAX is the kernel's sweet spot measured with bench/neigh-fdb.ts (200,000 changes,
 * 2026-12-07, load 3–6): 64 or 128 a datagram cost the kernel 310–560 ms of system time, 512 or
 * 1,024 (30–60 KiB datagrams) 560–1,030 ms; the JavaScript side falls from ~150 to ~50 ms. The
 * socket asks for RECV_BUFFER (the kernel grants up to net.core.rmem_max, doubled).
 */
const NEIGH_FDB_CHUNK_MIN = 64
const NEIGH_FDB_CHUNK_MAX = 128
const NEIGH_FDB_ANSWER_BYTES = 2048
const RECV_BUFFER_BYTES = 512 * 1024
/** The longest FDB or neighbour message: header, ndmsg, an IPv6 NDA_DST and NDA_LLADDR (each padded). */
const NEIGH_FDB_MAX_BYTES = 16 + 12 + 20 + 12

// ---------------------------------------------------------------------------
// Pure encoding helpers (exported for tests)

/** Validate an interface name as the kernel would (1..15 bytes, no '/', ':' or blanks). */
export function checkIfname (name: string): string {
  if (name.length === 0 || Buffer.byteLength(name) > MAX_IFNAME || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new FerryError('INVALID_REQUEST', `invalid interface name "${name}"`)
  }
  return name
}

/** 'aa:bb:cc:dd:ee:ff' (any case) to 6 bytes. */
export function macToBuffer (mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new FerryError('INVALID_REQUEST', `invalid MAC address "${mac}"`)
  return Buffer.from(mac.replace(/:/g, ''), 'hex')
}

/** Two lower-case hex digits of each byte value. */
const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

/** Bytes to lower-case 'aa:bb:cc:dd:ee:ff' (a table lookup per byte: a dump of 100,000 entries converts 200,000). */
export function bufferToMac (buf: Uint8Array): string {
  let s = ''
  for (let i = 0; i < buf.length; i++) s += (i === 0 ? '' : ':') + HEX_BYTE[buf[i]!]!
  return s
}

/** True unless the group bit (multicast/broadcast) is set or the MAC is all zeros. */
export function isUnicastMac (mac: string): boolean {
  const first = parseInt(mac.slice(0, 2), 16)
  return (first & 1) === 0 && mac.toLowerCase() !== ZERO_MAC
}

/** An address of either family to its bytes; INVALID_CIDR for anything else. */
export function ipToBuffer (ip: string): Buffer {
  if (!isIp(ip)) throw new FerryError('INVALID_CIDR', `invalid IP address "${ip}"`)
  return ipToBytes(ip)
}

/** `address/n` of either family; INVALID_CIDR for anything else (a bare address is refused). */
export function parseCidr (cidr: string): { ip: string, prefix: number, family: Family } {
  const p = isCidr(cidr) ? parseAddress(cidr) : undefined
  if (p?.prefix === undefined) throw new FerryError('INVALID_CIDR', `invalid CIDR "${cidr}"`)
  return { ip: p.ip, prefix: p.prefix, family: p.family }
}

/** The directed broadcast address of an IPv4 ip/prefix (as `ip addr add … brd +` computes it). */
export function broadcastOf (ip: string, prefix: number): string {
  return lastAddress(`${ip}/${prefix}`)
}

function afOf (family: Family): number {
  return family === 4 ? AF_INET : AF_INET6
}

/** IPv6 link-local addresses (fe80::/10) are the kernel's own on every link: ferry neither lists nor manages them. */
function isLinkLocal6 (bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes[0] === 0xfe && ((bytes[1] ?? 0) & 0xc0) === 0x80
}

function u16be (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function u32 (n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

/** Flatten an attribute stream into one buffer (the payload of a nested attribute). */
export function encodeAttrs (data: StreamData): Buffer {
  const s = new AttrStream()
  s.emit(data)
  return Buffer.concat(s.bufs)
}

/** IFLA_LINKINFO payload: IFLA_INFO_KIND and, when given, IFLA_INFO_DATA. */
export function linkInfo (kind: string, data?: Buffer): Buffer {
  return encodeAttrs(ifla.formatInfo(data === undefined ? { kind } : { kind, data }))
}

/** IFLA_INFO_DATA of a veth: VETH_INFO_PEER = struct ifinfomsg + the peer's IFLA_* attributes. */
export function vethInfoData (peer: string, opts: { mtu?: number, mac?: string }): Buffer {
  const attrs: ifla.LinkAttrs = { ifname: peer }
  if (opts.mtu !== undefined) attrs.mtu = opts.mtu
  if (opts.mac !== undefined) attrs.address = macToBuffer(opts.mac)
  const peerMsg = Buffer.concat([rt.formatLink({}), encodeAttrs(ifla.formatLinkAttrs(attrs))])
  return encodeAttrs(ifla.formatVethInfo({ peer: peerMsg }))
}

/** IFLA_INFO_DATA of a vxlan. `linkIndex` is the underlay's ifindex. The port goes in network byte order. */
export function vxlanInfoData (spec: VxlanSpec, linkIndex?: number): Buffer {
  const data: ifla.Vxlan = { id: spec.vni, port: u16be(spec.port), learning: spec.learning ? 1 : 0 }
  if (spec.proxy) data.proxy = 1
  if (spec.udpCsum !== undefined) {
    // Both families' attributes: the kernel uses the one of the underlay's family (IPv6's is "zero checksums", the reverse).
    data.udpCsum = spec.udpCsum ? 1 : 0
    data.udpZeroCsum6Tx = spec.udpCsum ? 0 : 1
    data.udpZeroCsum6Rx = spec.udpCsum ? 0 : 1
  }
  if (spec.local !== undefined) {
    // IFLA_VXLAN_LOCAL carries an IPv4 underlay address, IFLA_VXLAN_LOCAL6 an IPv6 one.
    if (!isIp(spec.local)) throw new FerryError('INVALID_CIDR', `the VXLAN underlay address ${spec.local} is not an IP address`)
    if (isIp(spec.local, 4)) data.local = ipToBuffer(spec.local)
    else data.local6 = ipToBuffer(spec.local)
  }
  if (linkIndex !== undefined) data.link = linkIndex
  return encodeAttrs(ifla.formatVxlan(data))
}

/**
 * One attribute flagged NLA_F_NESTED. The package's AttrStream masks that flag off,
 * and the bridge needs it: an IFLA_PROTINFO without it is read as a bare STP state.
 */
export function nestedAttr (type: number, payload: Buffer): Buffer {
  const padded = Buffer.concat([payload, Buffer.alloc((NLA_ALIGNTO - (payload.length % NLA_ALIGNTO)) % NLA_ALIGNTO)])
  const header = Buffer.alloc(4)
  header.writeUInt16LE(4 + padded.length, 0)
  header.writeUInt16LE(type | NLA_F_NESTED, 2)
  return Buffer.concat([header, padded])
}

/**
 * The body of `bridge link set dev <index> hairpin on|off`: an AF_BRIDGE ifinfomsg
 * and IFLA_PROTINFO (nested) holding IFLA_BRPORT_MODE (u8, 1 = hairpin).
 */
export function hairpinBody (index: number, on: boolean): Buffer {
  const mode = on ? ifla.BridgePortMode.HAIRPIN : ifla.BridgePortMode.UNSPEC
  return Buffer.concat([
    rt.formatLink({ family: AF_BRIDGE, index }),
    nestedAttr(IFLA_PROTINFO, encodeAttrs(ifla.formatBridgePort({ mode }))),
  ])
}

/** IFLA_BRPORT_MODE in a bridge port's IFLA_INFO_SLAVE_DATA (undefined when absent). */
export function brportMode (slaveData: Buffer): number | undefined {
  return brportU8(slaveData, IFLA_BRPORT_MODE)
}

/** A u8 attribute of a bridge port's IFLA_INFO_SLAVE_DATA (undefined when absent). */
function brportU8 (slaveData: Buffer, type: number): number | undefined {
  let v: number | undefined
  parseAttributes(slaveData, (a) => {
    if (a.type === type && a.data.length >= 1) v = a.data.readUInt8(0)
  })
  return v
}

/** The body of `bridge link set dev <index> isolated on|off`: IFLA_PROTINFO holding IFLA_BRPORT_ISOLATED (u8). */
export function isolatedBody (index: number, on: boolean): Buffer {
  return Buffer.concat([
    rt.formatLink({ family: AF_BRIDGE, index }),
    nestedAttr(IFLA_PROTINFO, encodeAttrs(ifla.formatBridgePort({ isolated: Buffer.from([on ? 1 : 0]) }))),
  ])
}

function linkBody (data: rt.Link, attrs: ifla.LinkAttrs): Uint8Array[] {
  const s = new AttrStream()
  rt.formatLinkMessage({ kind: 'link', data, attrs }, s)
  return s.bufs
}

function addressBody (data: rt.Address, attrs: rt.AddressAttrs): Uint8Array[] {
  const s = new AttrStream()
  rt.formatAddressMessage({ kind: 'address', data, attrs }, s)
  return s.bufs
}

function neighborBody (data: rt.Neighbor, attrs: rt.NeighborAttrs): Uint8Array[] {
  const s = new AttrStream()
  rt.formatNeighborMessage({ kind: 'neighbor', data, attrs }, s)
  return s.bufs
}

function routeBody (data: rt.Route): Uint8Array[] {
  const s = new AttrStream()
  rt.formatRouteMessage({ kind: 'route', data, attrs: {} }, s)
  return s.bufs
}

/** A parsed RTM_NEWLINK to ferry's LinkInfo. */
export function toLinkInfo (m: rt.LinkMessage): LinkInfo {
  const a = m.attrs
  const info: LinkInfo = {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    mtu: a.mtu ?? 0,
    mac: a.address ? bufferToMac(a.address) : ZERO_MAC,
    up: m.data.flags?.up === true,
  }
  const li = a.linkinfo ? ifla.parseInfo(a.linkinfo) : {}
  const kind = li.kind
  if (kind !== undefined) info.kind = kind
  if (a.master !== undefined && a.master !== 0) info.master = a.master
  if (kind === 'veth' && a.link !== undefined && a.link.length >= 4) info.peerIndex = a.link.readUInt32LE(0)
  const mode = li.slaveKind === 'bridge' && li.slaveData !== undefined ? brportMode(li.slaveData) : undefined
  if (mode !== undefined) info.hairpin = mode === ifla.BridgePortMode.HAIRPIN
  const isolated = li.slaveKind === 'bridge' && li.slaveData !== undefined ? brportU8(li.slaveData, IFLA_BRPORT_ISOLATED) : undefined
  if (isolated === 1) info.isolated = true
  return info
}

/** The MAC and the address (undefined: none) of the packed entry `i` (ENTRY_BYTES each: src/kernel/types.ts). */
function unpackEntry (b: Uint8Array, i: number): { mac: string, ip: string | undefined } {
  const at = i * ENTRY_BYTES
  return { mac: bufferToMac(b.subarray(at, at + 6)), ip: ipFromBytes(b.subarray(at + 8, at + 8 + b[at + 6]!)) }
}

/** The module of the FDB and neighbour dumps' worker thread: built beside this one, or its source when run from it. */
function dumpWorkerEntry (): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './dump-worker.ts' : './dump-worker.js', import.meta.url)
}

/** The dump's worker holds little on its heap (the replies' bytes are ArrayBuffers, outside it): a small one. */
const DUMP_WORKER_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 }

// ---------------------------------------------------------------------------
// Socket

/** An errno answer from the kernel (positive number). */
export class KernelErrno extends Error {
  readonly errno: number
  readonly code: string
  constructor (errno: number, detail?: string) {
    super(detail ?? errnoText(errno))
    this.errno = errno
    this.code = errnoName(errno)
  }
}

/**
 * The package's NetlinkSocket drops the closing NLMSG_DONE of a dump and with it
 * the dump's error code, and ignores NLM_F_DUMP_INTR. This subclass turns both
 * into an EINTR/errno rejection of the request.
 */
export class NetlinkReplySocket extends NetlinkSocket {
  /** The chunk of a batch being answered (sendChunk): request seq -> its index in the chunk, and the errnos heard. */
  private chunk: { seqs: Map<number, number>, errnos: Map<number, number>, last: number, done: (errnos: Map<number, number>) => void } | undefined

  /**
   * Send `datagram` (messages with sequence numbers `seqs`, in order); only the last asks for an ACK.
   * The kernel handles them one after the other and answers a failure at once, so when the
   * last one's answer arrives every failure of the chunk has been heard: resolves them as
   * index in the chunk -> errno (positive). Rejects when the send fails or no answer comes.
   */
  sendChunk (datagram: Buffer, seqs: number[], timeoutMs: number): Promise<Map<number, number>> {
    return new Promise((resolve, reject) => {
      const last = seqs[seqs.length - 1]
      if (last === undefined) { resolve(new Map()); return }
      const timer = setTimeout(() => { this.chunk = undefined; reject(new Error('no answer from the kernel to a batch of changes')) }, timeoutMs)
      this.chunk = {
        seqs: new Map(seqs.map((seq, i) => [seq, i])),
        errnos: new Map(),
        last,
        done: (errnos) => { clearTimeout(timer); this.chunk = undefined; resolve(errnos) },
      }
      this.socket.send(datagram, {}, (err) => {
        if (err === undefined || err === null) return
        clearTimeout(timer)
        this.chunk = undefined
        reject(err)
      })
    })
  }

  protected override emitMessage (msg: NetlinkMessage | NetlinkMessage[], rinfo: MessageInfo): unknown {
    const chunk = this.chunk
    if (chunk !== undefined && !Array.isArray(msg) && msg.type === MessageType.ERROR) {
      const i = chunk.seqs.get(msg.seq)
      if (i !== undefined) {
        const errno = msg.data.length >= 4 ? -msg.data.readInt32LE(0) : 0
        if (errno !== 0) chunk.errnos.set(i, errno)
        if (msg.seq === chunk.last) chunk.done(chunk.errnos)
        return undefined
      }
    }
    if (Array.isArray(msg)) {
      const first = msg[0]
      const last = msg[msg.length - 1]
      const cb = first !== undefined ? this.requests.get(first.seq) : undefined
      if (cb !== undefined && last !== undefined && last.type === MessageType.DONE) {
        const errno = last.data.length >= 4 ? last.data.readInt32LE(0) : 0
        if (msg.some((m) => (m.flags & Flags.DUMP_INTR) !== 0)) {
          return cb(new KernelErrno(errnoNumber('EINTR'), 'dump interrupted by a concurrent change'), undefined, rinfo)
        }
        if (errno < 0) return cb(new KernelErrno(-errno), undefined, rinfo)
      }
    }
    return super.emitMessage(msg, rinfo)
  }
}

function kernelError (what: string, err: unknown): FerryError {
  if (err instanceof FerryError) return err
  const reason = err instanceof Error ? err.message : String(err)
  return new FerryError('KERNEL', `${what}: ${reason}`, { cause: err })
}

// ---------------------------------------------------------------------------
// Driver

export class NetlinkDriver implements LinkDriver {
  private readonly queue = new Mutex()
  private readonly sock: NetlinkReplySocket
  /** FDB and neighbour dumps: one at a time, each in a worker thread (tableDump). */
  private readonly tableQueue = new Mutex()
  private retries = 0
  private workerDumps = 0
  /** The ethtool generic netlink socket, opened at the first offload-feature call (src/kernel/ethtool-genl.ts). */
  private ethtool: Promise<EthtoolGenl> | undefined

  constructor (sock: NetlinkReplySocket) {
    this.sock = sock
  }

  /** One request/answer; resolves the answer's messages, rejects with KernelErrno. */
  private request (type: number, body: Uint8Array[], flags: number): Promise<NetlinkMessage[]> {
    return this.queue.run(async () => {
      const [msgs] = await this.sock.request(type, body, { flags, checkError: false, timeout: REQUEST_TIMEOUT_MS })
      const first = msgs[0]
      if (first !== undefined && first.type === MessageType.ERROR) {
        const { errno } = parseError(first.data, first.flags)
        if (errno !== 0) throw new KernelErrno(-errno)
        return []
      }
      return msgs
    })
  }

  /** A change. Errno names in `tolerate` count as success; the one met is returned. */
  private async change (what: string, type: number, body: Uint8Array[], flags: number, tolerate: readonly string[] = []): Promise<string | undefined> {
    try {
      await this.request(type, body, flags)
      return undefined
    } catch (err) {
      if (err instanceof KernelErrno && tolerate.includes(err.code)) return err.code
      throw kernelError(what, err)
    }
  }

  /** A dump, retried (after a short, growing pause) when a concurrent change interrupted it. */
  private dump (what: string, type: number, body: Uint8Array[]): Promise<NetlinkMessage[]> {
    return this.retried(what, () => this.request(type, body, FlagsGet.DUMP))
  }

  /**
   * The permanent FDB entries (`keep` 'fdb') or neighbours of device `ifindex`, read in a worker
   * thread (src/kernel/dump-worker.ts) and retried as `dump` is; packed, ENTRY_BYTES each.
   */
  private tableDump (what: string, keep: DumpJob['keep'], ifindex: number, family: number): Promise<PackedEntries> {
    const body = neighborBody({ family }, {})
    return this.retried(what, () => this.tableQueue.run(() => this.dumpInWorker(rt.MessageType.GETNEIGH, body, keep, ifindex)))
  }

  private async retried<T> (what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt()
      } catch (err) {
        if (!(err instanceof KernelErrno && err.code === 'EINTR') || n >= DUMP_ATTEMPTS) throw kernelError(what, err)
        this.retries++
        await delay(n)
      }
    }
  }

  /**
   * Run one dump in a short-lived worker; settles when the worker has ended (so that no two
   * are alive at once). Rejects with KernelErrno for the kernel's errno (EINTR when interrupted).
   */
  private dumpInWorker (type: number, body: Uint8Array[], keep: DumpJob['keep'], ifindex: number): Promise<PackedEntries> {
    const payload = Buffer.concat(body)
    const seq = this.sock.generateSeq()
    const request = Buffer.alloc(NLMSG_HDRLEN + payload.length)
    request.writeUInt32LE(request.length, 0)
    request.writeUInt16LE(type, 4)
    request.writeUInt16LE(Flags.REQUEST | FlagsGet.DUMP, 6)
    request.writeUInt32LE(seq, 8)
    payload.copy(request, NLMSG_HDRLEN)
    const job: DumpJob = { request, seq, keep, ifindex, timeoutMs: REQUEST_TIMEOUT_MS }
    this.workerDumps++
    return new Promise((resolve, reject) => {
      let result: DumpResult | undefined
      let failure: unknown
      const worker = new Worker(dumpWorkerEntry(), { workerData: job, resourceLimits: DUMP_WORKER_LIMITS })
      worker.once('message', (r: DumpResult) => { result = r })
      worker.once('error', (err) => { failure = err })
      worker.once('exit', (code) => {
        if (result === undefined) {
          const why = failure instanceof Error ? failure.message : `it ended with code ${code} without an answer`
          reject(new Error(`the dump's worker thread failed: ${why}`, { cause: failure }))
        } else if (result.ok) resolve({ bytes: new Uint8Array(result.entries), count: result.count })
        else if ('errno' in result) reject(result.errno === 0 || errnoName(result.errno) === 'EINTR' ? new KernelErrno(errnoNumber('EINTR'), 'dump interrupted by a concurrent change') : new KernelErrno(result.errno))
        else reject(new Error(result.error))
      })
    })
  }

  /** How many dumps were retried because a concurrent change interrupted them. */
  retriedDumps (): number {
    return this.retries
  }

  /** How many FDB and neighbour dumps were read in a worker thread. */
  dumpsInWorkers (): number {
    return this.workerDumps
  }

  private async requireLink (what: string, name: string): Promise<LinkInfo> {
    const link = await this.getLink(name)
    if (link === undefined) throw new FerryError('KERNEL', `${what}: no such device ${name}`)
    return link
  }

  private async linkNames (): Promise<Map<number, string>> {
    return new Map((await this.listLinks()).map((l) => [l.index, l.name]))
  }

  async listLinks (): Promise<LinkInfo[]> {
    const body = linkBody({}, { extMask: u32(rt.formatRtExtFilter({ skipStats: true })) })
    const msgs = await this.dump('cannot list links', rt.MessageType.GETLINK, body)
    return msgs.filter((m) => m.type === rt.MessageType.NEWLINK).map((m) => toLinkInfo(rt.parseLinkMessage(m.data)))
  }

  async getLink (name: string): Promise<LinkInfo | undefined> {
    checkIfname(name)
    const body = linkBody({}, { ifname: name, extMask: u32(rt.formatRtExtFilter({ skipStats: true })) })
    try {
      const msgs = await this.request(rt.MessageType.GETLINK, body, 0)
      const m = msgs.find((x) => x.type === rt.MessageType.NEWLINK)
      return m === undefined ? undefined : toLinkInfo(rt.parseLinkMessage(m.data))
    } catch (err) {
      if (err instanceof KernelErrno && err.code === 'ENODEV') return undefined
      throw kernelError(`cannot get link ${name}`, err)
    }
  }

  /**
   * RTM_NEWLINK with CREATE|EXCL. When the name is taken, succeed if the existing
   * link has the same kind (and `same` agrees), otherwise NAME_CONFLICT.
   * Resolves true when the link was created, false when it was there.
   */
  private async createLink (what: string, name: string, kind: string, attrs: ifla.LinkAttrs,
    same: (existing: LinkInfo) => Promise<string | undefined> = async () => undefined): Promise<boolean> {
    const body = linkBody({}, { ...attrs, ifname: name })
    const met = await this.change(what, rt.MessageType.NEWLINK, body, FlagsNew.CREATE | FlagsNew.EXCL, ['EEXIST'])
    if (met === undefined) return true
    const existing = await this.getLink(name)
    if (existing === undefined) throw new FerryError('KERNEL', `${what}: ${errnoText('EEXIST')}`)
    if (existing.kind !== kind) {
      throw new FerryError('NAME_CONFLICT', `${what}: ${name} exists as a ${existing.kind ?? 'plain'} device`)
    }
    const conflict = await same(existing)
    if (conflict !== undefined) throw new FerryError('NAME_CONFLICT', `${what}: ${conflict}`)
    return false
  }

  /**
   * A bridge given a MAC keeps it (otherwise the kernel copies the lowest port's).
   * The MTU is set by a change after creation, not at creation: only a change
   * marks it as set by the user, and without that mark the kernel re-adjusts the
   * bridge MTU to its ports' minimum at every enslave.
   */
  async createBridge (name: string, opts: { mtu?: number, mac?: string } = {}): Promise<void> {
    checkIfname(name)
    const attrs: ifla.LinkAttrs = { linkinfo: linkInfo('bridge') }
    if (opts.mac !== undefined) attrs.address = macToBuffer(opts.mac)
    const created = await this.createLink(`cannot create bridge ${name}`, name, 'bridge', attrs)
    if (created && opts.mtu !== undefined) await this.setMtu(name, opts.mtu)
  }

  async createVeth (name: string, peer: string, opts: { mtu?: number, mac?: string, peerMac?: string } = {}): Promise<void> {
    checkIfname(name)
    checkIfname(peer)
    const peerOpts: { mtu?: number, mac?: string } = {}
    if (opts.mtu !== undefined) peerOpts.mtu = opts.mtu
    if (opts.peerMac !== undefined) peerOpts.mac = opts.peerMac
    const attrs: ifla.LinkAttrs = { linkinfo: linkInfo('veth', vethInfoData(peer, peerOpts)) }
    if (opts.mtu !== undefined) attrs.mtu = opts.mtu
    if (opts.mac !== undefined) attrs.address = macToBuffer(opts.mac)
    await this.createLink(`cannot create veth ${name} (peer ${peer})`, name, 'veth', attrs, async (existing) => {
      const p = await this.getLink(peer)
      return p !== undefined && existing.peerIndex === p.index ? undefined : `${name} exists with another peer`
    })
  }

  async createVxlan (name: string, spec: VxlanSpec): Promise<void> {
    checkIfname(name)
    const what = `cannot create vxlan ${name}`
    const underlay = spec.dev === undefined ? undefined : (await this.requireLink(what, spec.dev)).index
    const attrs: ifla.LinkAttrs = { linkinfo: linkInfo('vxlan', vxlanInfoData(spec, underlay)) }
    if (spec.mtu !== undefined) attrs.mtu = spec.mtu
    if (spec.mac !== undefined) attrs.address = macToBuffer(spec.mac)
    await this.createLink(what, name, 'vxlan', attrs)
  }

  async createWireGuard (name: string): Promise<void> {
    checkIfname(name)
    await this.createLink(`cannot create WireGuard device ${name}`, name, 'wireguard', { linkinfo: linkInfo('wireguard') })
  }

  async setMaster (name: string, master: string | undefined): Promise<void> {
    checkIfname(name)
    const what = master === undefined ? `cannot release ${name} from its bridge` : `cannot enslave ${name} to ${master}`
    const index = master === undefined ? 0 : (await this.requireLink(what, master)).index
    await this.change(what, rt.MessageType.SETLINK, linkBody({}, { ifname: name, master: index }), 0)
  }

  /** Not a bridge port: KERNEL 'Operation not supported'. */
  async setIsolated (name: string, on: boolean): Promise<void> {
    checkIfname(name)
    const what = `cannot set isolated ${on ? 'on' : 'off'} on ${name}`
    const link = await this.requireLink(what, name)
    await this.change(what, rt.MessageType.SETLINK, [isolatedBody(link.index, on)], 0)
  }

  /** Not a bridge port: KERNEL 'Operation not supported'. */
  async setHairpin (name: string, on: boolean): Promise<void> {
    checkIfname(name)
    const what = `cannot set hairpin ${on ? 'on' : 'off'} on ${name}`
    const link = await this.requireLink(what, name)
    await this.change(what, rt.MessageType.SETLINK, [hairpinBody(link.index, on)], 0)
  }

  async setUp (name: string, up: boolean): Promise<void> {
    checkIfname(name)
    const body = linkBody({ change: { up: true }, flags: up ? { up: true } : {} }, { ifname: name })
    await this.change(`cannot set ${name} ${up ? 'up' : 'down'}`, rt.MessageType.SETLINK, body, 0)
  }

  async setMtu (name: string, mtu: number): Promise<void> {
    checkIfname(name)
    await this.change(`cannot set MTU ${mtu} on ${name}`, rt.MessageType.SETLINK, linkBody({}, { ifname: name, mtu }), 0)
  }

  /** Through /proc/sys, which shows this process's network namespace: the agent's own. */
  async setIpv6Conf (name: string, key: Ipv6ConfKey, value: string): Promise<void> {
    checkIfname(name)
    await writeSysctl(['net', 'ipv6', 'conf', name, key], value)
  }

  async getIpv6Conf (name: string, key: Ipv6ConfKey): Promise<string | undefined> {
    checkIfname(name)
    try {
      return await readSysctl(['net', 'ipv6', 'conf', name, key])
    } catch {
      return undefined
    }
  }

  async deleteLink (name: string): Promise<void> {
    checkIfname(name)
    await this.change(`cannot delete link ${name}`, rt.MessageType.DELLINK, linkBody({}, { ifname: name }), 0, ['ENODEV'])
  }

  async addAddress (name: string, cidr: string): Promise<void> {
    const { ip, prefix, family } = parseCidr(cidr)
    const what = `cannot add address ${cidr} to ${name}`
    const link = await this.requireLink(what, name)
    const attrs: rt.AddressAttrs = { local: ipToBuffer(ip), address: ipToBuffer(ip) }
    if (family === 4 && prefix < 31) attrs.broadcast = ipToBuffer(broadcastOf(ip, prefix))
    // An IPv6 gateway is usable at once: no duplicate address detection (ferry's IPAM owns the subnet).
    const data: rt.Address = { family: afOf(family), prefixlen: prefix, index: link.index }
    if (family === 6) data.flags = { nodad: true }
    const body = addressBody(data, attrs)
    await this.change(what, rt.MessageType.NEWADDR, body, FlagsNew.CREATE | FlagsNew.EXCL, ['EEXIST'])
  }

  async deleteAddress (name: string, cidr: string): Promise<void> {
    const { ip, prefix, family } = parseCidr(cidr)
    const link = await this.getLink(name)
    if (link === undefined) return
    const body = addressBody({ family: afOf(family), prefixlen: prefix, index: link.index }, { local: ipToBuffer(ip), address: ipToBuffer(ip) })
    await this.change(`cannot delete address ${cidr} from ${name}`, rt.MessageType.DELADDR, body, 0, ['EADDRNOTAVAIL', 'ENODEV'])
  }

  async listAddresses (): Promise<AddressInfo[]> {
    const names = await this.linkNames()
    const msgs = await this.dump('cannot list addresses', rt.MessageType.GETADDR, addressBody({ family: AF_UNSPEC }, {}))
    const out: AddressInfo[] = []
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWADDR) continue
      const { data, attrs } = rt.parseAddressMessage(m.data)
      const bytes = attrs.local ?? attrs.address
      const ip = bytes === undefined ? undefined : ipFromBytes(bytes)
      if ((data.family !== AF_INET && data.family !== AF_INET6) || bytes === undefined || ip === undefined || isLinkLocal6(bytes)) continue
      const index = data.index ?? 0
      out.push({ ifname: names.get(index) ?? attrs.label ?? '', index, cidr: `${ip}/${data.prefixlen ?? (bytes.length * 8)}` })
    }
    return out
  }

  async listRoutes (): Promise<RouteInfo[]> {
    const names = await this.linkNames()
    const msgs = await this.dump('cannot list routes', rt.MessageType.GETROUTE, routeBody({ family: AF_UNSPEC }))
    const out: RouteInfo[] = []
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWROUTE) continue
      const { data, attrs } = rt.parseRouteMessage(m.data)
      const table = attrs.table ?? data.table ?? 0
      if ((data.family !== AF_INET && data.family !== AF_INET6) || table === RT_TABLE_LOCAL) continue
      const v6 = data.family === AF_INET6
      const dst = attrs.dst === undefined ? undefined : ipFromBytes(attrs.dst)
      // Link-local and multicast routes of IPv6 are the kernel's own on every link.
      if (v6 && dst !== undefined && (isLinkLocal6(attrs.dst!) || dst.startsWith('ff'))) continue
      const route: RouteInfo = { dst: dst !== undefined ? `${dst}/${data.dstLen ?? (v6 ? 128 : 32)}` : v6 ? '::/0' : '0.0.0.0/0', table }
      const dev = attrs.oif === undefined ? undefined : names.get(attrs.oif)
      if (dev !== undefined) route.dev = dev
      const gw = attrs.gateway === undefined ? undefined : ipFromBytes(attrs.gateway)
      if (gw !== undefined) route.gateway = gw
      out.push(route)
    }
    return out
  }

  private fdbBody (index: number, entry: FdbEntry): Uint8Array[] {
    const attrs: rt.NeighborAttrs = { lladdr: macToBuffer(entry.mac) }
    if (entry.dst !== undefined) attrs.dst = ipToBuffer(entry.dst)
    if (entry.master) return neighborBody({ family: AF_BRIDGE, ifindex: index, flags: { master: true } }, attrs)
    return neighborBody({ family: AF_BRIDGE, ifindex: index, state: { permanent: true }, flags: { self: true } }, attrs)
  }

  /**
   * Replace semantics for a unicast MAC. The all-zeros MAC (flood list of a vxlan)
   * and multicast MACs can hold several destinations, so they are appended; adding
   * a destination that is there already succeeds.
   */
  async addFdb (entry: FdbEntry): Promise<void> {
    const what = `cannot add FDB entry ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ''} on ${entry.dev}`
    const link = await this.requireLink(what, entry.dev)
    const mode = isUnicastMac(entry.mac) ? FlagsNew.REPLACE : FlagsNew.APPEND
    await this.change(what, rt.MessageType.NEWNEIGH, this.fdbBody(link.index, entry), FlagsNew.CREATE | mode)
  }

  async deleteFdb (entry: FdbEntry): Promise<void> {
    const link = await this.getLink(entry.dev)
    if (link === undefined) return
    const what = `cannot delete FDB entry ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ''} on ${entry.dev}`
    await this.change(what, rt.MessageType.DELNEIGH, this.fdbBody(link.index, entry), 0, ['ENOENT', 'ENODEV'])
  }

  /**
   * The permanent, device-own (NTF_SELF) unicast-or-zero entries of `dev`: for a
   * vxlan, its configured forwarding table, one entry per destination. Entries the
   * bridge learned and the device's multicast addresses are left out. [] when `dev`
   * does not exist.
   */
  async listFdb (dev: string): Promise<FdbEntry[]> {
    const { bytes: entries, count } = await this.listFdbPacked(dev)
    const out: FdbEntry[] = []
    for (let i = 0; i < count; i++) {
      if ((i & PARSE_SLICE) === PARSE_SLICE) await setImmediatePromise()
      const { mac, ip: dst } = unpackEntry(entries, i)
      const entry: FdbEntry = { dev, mac }
      if (dst !== undefined) entry.dst = dst
      out.push(entry)
    }
    return out
  }

  /** `listFdb`'s entries as the dump's worker packed them (no object per entry). */
  async listFdbPacked (dev: string): Promise<PackedEntries> {
    const link = await this.getLink(dev)
    if (link === undefined) return { bytes: new Uint8Array(0), count: 0 }
    return await this.tableDump(`cannot list FDB of ${dev}`, 'fdb', link.index, AF_BRIDGE)
  }

  async addNeigh (entry: NeighEntry): Promise<void> {
    const what = `cannot add neighbour ${entry.ip} lladdr ${entry.mac} on ${entry.dev}`
    const link = await this.requireLink(what, entry.dev)
    const body = neighborBody({ family: afOf(parseAddress(entry.ip).family), ifindex: link.index, state: { permanent: true } },
      { dst: ipToBuffer(entry.ip), lladdr: macToBuffer(entry.mac) })
    await this.change(what, rt.MessageType.NEWNEIGH, body, FlagsNew.CREATE | FlagsNew.REPLACE)
  }

  async deleteNeigh (entry: NeighEntry): Promise<void> {
    const link = await this.getLink(entry.dev)
    if (link === undefined) return
    const body = neighborBody({ family: afOf(parseAddress(entry.ip).family), ifindex: link.index }, { dst: ipToBuffer(entry.ip) })
    await this.change(`cannot delete neighbour ${entry.ip} on ${entry.dev}`, rt.MessageType.DELNEIGH, body, 0, ['ENOENT', 'ENODEV'])
  }

  /** The permanent neighbours of `dev`, both families ([] when it does not exist). */
  async listNeigh (dev: string): Promise<NeighEntry[]> {
    const { bytes: entries, count } = await this.listNeighPacked(dev)
    const out: NeighEntry[] = []
    for (let i = 0; i < count; i++) {
      if ((i & PARSE_SLICE) === PARSE_SLICE) await setImmediatePromise()
      const { mac, ip } = unpackEntry(entries, i)
      if (ip !== undefined) out.push({ dev, ip, mac })
    }
    return out
  }

  /** `listNeigh`'s entries as the dump's worker packed them. */
  async listNeighPacked (dev: string): Promise<PackedEntries> {
    const link = await this.getLink(dev)
    if (link === undefined) return { bytes: new Uint8Array(0), count: 0 }
    return await this.tableDump(`cannot list neighbours of ${dev}`, 'neigh', link.index, AF_UNSPEC)
  }

  /**
   * FDB and neighbour changes in order, packed many to a datagram (`neighFdbChunk`): the kernel
   * runs each message of a datagram in turn and answers only the failures and the last one
   * (NLM_F_ACK), so 200,000 entries cost some 1,600 sends and as many answers instead of 200,000
   * round trips. The messages are written straight into the datagram's buffer (`encodeNeighFdb`),
   * not built attribute by attribute. Every operation means what its single call means (a delete
   * of what is gone, or on a device that is gone, succeeds). Resolves the refused ones, each with
   * its errno (or, for an entry that is not a valid MAC or address, ferry's own code); the others
   * took effect. Rejects (KERNEL) when a chunk's answer never comes: then what the kernel has is
   * unknown from that chunk on, and the caller must read it back.
   */
  async applyNeighFdb (ops: readonly NeighFdbOp[]): Promise<NeighFdbFailure[]> {
    const index = new Map<string, number | undefined>()
    for (const o of ops) if (!index.has(o.entry.dev)) index.set(o.entry.dev, (await this.getLink(checkIfname(o.entry.dev)))?.index)
    const failures: NeighFdbFailure[] = []
    const fail = (i: number, op: NeighFdbOp, code: string, reason: string): void => {
      failures.push({ index: i, op, code, message: `${neighFdbText(op)}: ${reason}` })
    }
    const chunk = this.neighFdbChunk()
    await this.queue.run(async () => {
      const port = this.sock.socket.address().port
      let start = 0
      while (start < ops.length) {
        // Room for this datagram's messages only: a delta's two take 120 bytes, not a whole chunk's 7.5 KiB.
        const buf = Buffer.allocUnsafe(Math.min(chunk, ops.length - start) * NEIGH_FDB_MAX_BYTES)
        const seqs: number[] = []
        const sent: number[] = []
        let off = 0
        let lastOff = -1
        let i = start
        for (; i < ops.length && sent.length < chunk; i++) {
          const op = ops[i]!
          const ifindex = index.get(op.entry.dev)
          if (ifindex === undefined) {
            // The device is gone: its entries went with it; nothing can be added to it.
            if (op.op === 'addFdb' || op.op === 'addNeigh') fail(i, op, 'ENODEV', errnoText('ENODEV'))
            continue
          }
          const seq = this.sock.generateSeq()
          try {
            const next = encodeNeighFdb(buf, off, op, ifindex, seq, port)
            lastOff = off
            off = next
          } catch (err) {
            // Not sent: the kernel would not know what to make of it either.
            const e = toFerryError(err)
            fail(i, op, e.code, e.message)
            continue
          }
          seqs.push(seq)
          sent.push(i)
        }
        const from = start
        start = i
        if (sent.length === 0) continue
        // Only the chunk's last message asks for an answer when it succeeds.
        buf.writeUInt16LE(buf.readUInt16LE(lastOff + 6) | Flags.ACK, lastOff + 6)
        let errnos: Map<number, number>
        try {
          errnos = await this.sock.sendChunk(buf.subarray(0, off), seqs, REQUEST_TIMEOUT_MS)
        } catch (err) {
          throw kernelError(`cannot program ${ops.length} FDB and neighbour entries (${failures.length} refused before, entries from #${from} on unknown)`, err)
        }
        for (const [k, errno] of errnos) {
          const at = sent[k]!
          const op = ops[at]!
          const gone = errnoName(errno)
          if ((op.op === 'deleteFdb' || op.op === 'deleteNeigh') && (gone === 'ENOENT' || gone === 'ENODEV')) continue
          fail(at, op, gone, errnoText(errno))
        }
      }
    })
    failures.sort((a, b) => a.index - b.index)
    return failures
  }

  /**
   * Messages to a datagram: as many as the socket's receive buffer holds the answers of, were every
   * one refused (each answer is charged some NEIGH_FDB_ANSWER_BYTES there), within NEIGH_FDB_CHUNK_MAX.
   */
  private neighFdbChunk (): number {
    let rcvbuf = 0
    try { rcvbuf = this.sock.socket.getRecvBufferSize() } catch { /* the default below */ }
    return Math.max(NEIGH_FDB_CHUNK_MIN, Math.min(NEIGH_FDB_CHUNK_MAX, Math.floor(rcvbuf / NEIGH_FDB_ANSWER_BYTES)))
  }

  private ethtoolSocket (): Promise<EthtoolGenl> {
    // Imported when first needed: ethtool-genl.ts builds on this module's socket class.
    this.ethtool ??= import('./ethtool-genl.js').then(async (m) => await m.EthtoolGenl.open())
    this.ethtool.catch(() => { this.ethtool = undefined })
    return this.ethtool
  }

  async setFeatures (name: string, wanted: Readonly<Record<string, boolean>>): Promise<void> {
    await (await this.ethtoolSocket()).setFeatures(name, wanted)
  }

  async getFeatures (name: string): Promise<string[]> {
    return [...await (await this.ethtoolSocket()).features(name)].sort()
  }

  close (): void {
    try { this.sock.close() } catch { /* already closed */ }
    void this.ethtool?.then((e) => { e.close() }, () => undefined)
  }
}

/** Open an rtnetlink socket in the calling process's network namespace. */
export async function openLinkDriver (): Promise<LinkDriver> {
  try {
    // Replies are read into a 64 KiB buffer, not peeked at their exact size: the kernel sizes a dump's
    // replies after the largest read it has seen (up to 32 KiB), and a VXLAN FDB dump re-walks the device's
    // table from the start for every reply, so 4 KiB replies made reading 100,000 entries back take 5.7 s
    // instead of 1.3 s. No rtnetlink reply ferry asks for comes near 64 KiB (a dump's are at most 32 KiB).
    // (The FDB and neighbour dumps' worker reads the same way: src/kernel/dump-worker.ts.)
    return new NetlinkDriver(new NetlinkReplySocket(new RawNetlinkSocket(Protocol.ROUTE,
      { messagePeeking: false, msgBufferSize: DUMP_READ_BYTES, recvBufferSize: RECV_BUFFER_BYTES, sendBufferSize: 0 })))
  } catch (err) {
    throw new FerryError('KERNEL', `cannot open rtnetlink socket: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}

// ---------------------------------------------------------------------------
// Batches of FDB and neighbour changes (NetlinkDriver.applyNeighFdb)

const NDA_DST = 1
const NDA_LLADDR = 2
const NTF_SELF = 0x02
const NTF_MASTER = 0x04
const NUD_PERMANENT = 0x80
const NDMSG_LEN = 12

/** 'aa:bb:cc:dd:ee:ff' (any case) written as 6 bytes at `off`; INVALID_REQUEST otherwise. */
function writeMac (buf: Buffer, off: number, mac: string): void {
  if (mac.length !== 17) throw new FerryError('INVALID_REQUEST', `invalid MAC address "${mac}"`)
  for (let b = 0; b < 6; b++) {
    const hi = hexDigit(mac.charCodeAt(b * 3))
    const lo = hexDigit(mac.charCodeAt(b * 3 + 1))
    if (hi < 0 || lo < 0 || (b < 5 && mac.charCodeAt(b * 3 + 2) !== 58)) throw new FerryError('INVALID_REQUEST', `invalid MAC address "${mac}"`)
    buf[off + b] = hi * 16 + lo
  }
}

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const l = c | 0x20
  return l >= 97 && l <= 102 ? l - 87 : -1
}

/** An address written at `off` in network order (4 or 16 bytes); its family. INVALID_CIDR for anything else. */
function writeIp (buf: Buffer, off: number, ip: string): Family {
  const p = parseIpOrUndefined(ip)
  if (p === undefined) throw new FerryError('INVALID_CIDR', `invalid IP address "${ip}"`)
  if (p.family === 4) {
    buf.writeUInt32BE(Number(p.value), off)
    return 4
  }
  let v = p.value
  for (let i = 15; i >= 0; i -= 4) {
    buf.writeUInt32BE(Number(v & 0xffffffffn), off + i - 3)
    v >>= 32n
  }
  return 6
}

/** An attribute header (length counts the header and the payload, not the padding); the payload's offset. */
function attrHeader (buf: Buffer, off: number, type: number, payload: number): number {
  buf.writeUInt16LE(4 + payload, off)
  buf.writeUInt16LE(type, off + 2)
  return off + 4
}

/**
 * One FDB or neighbour change as an rtnetlink message (nlmsghdr, ndmsg, NDA_* attributes), written
 * at `off` in `buf` (room for NEIGH_FDB_MAX_BYTES); returns where the next message goes (4-byte
 * aligned). The same bytes as the single calls' messages (addFdb, deleteNeigh, …), without the ACK
 * flag. Throws INVALID_REQUEST / INVALID_CIDR for a MAC or address that is not one (nothing counts
 * as written then).
 */
export function encodeNeighFdb (buf: Buffer, off: number, op: NeighFdbOp, ifindex: number, seq: number, port: number): number {
  const fdb = op.op === 'addFdb' || op.op === 'deleteFdb'
  const add = op.op === 'addFdb' || op.op === 'addNeigh'
  let family = AF_BRIDGE
  let state = 0
  let ntf = 0
  let p = off + NLMSG_HDRLEN + NDMSG_LEN
  if (fdb) {
    const e = op.entry as FdbEntry
    if (e.master === true) ntf = NTF_MASTER
    else { state = NUD_PERMANENT; ntf = NTF_SELF }
    writeMac(buf, attrHeader(buf, p, NDA_LLADDR, 6), e.mac)
    buf.writeUInt16LE(0, p + 10)
    p += 12
    if (e.dst !== undefined) {
      const fam = writeIp(buf, p + 4, e.dst)
      attrHeader(buf, p, NDA_DST, fam === 4 ? 4 : 16)
      p += fam === 4 ? 8 : 20
    }
  } else {
    const e = op.entry as NeighEntry
    const fam = writeIp(buf, p + 4, e.ip)
    attrHeader(buf, p, NDA_DST, fam === 4 ? 4 : 16)
    p += fam === 4 ? 8 : 20
    family = afOf(fam)
    if (add) {
      state = NUD_PERMANENT
      writeMac(buf, attrHeader(buf, p, NDA_LLADDR, 6), e.mac)
      buf.writeUInt16LE(0, p + 10)
      p += 12
    }
  }
  const replace = !fdb || isUnicastMac(op.entry.mac) ? FlagsNew.REPLACE : FlagsNew.APPEND
  // The length leaves out the last attribute's padding (a MAC's two bytes), as the package's encoder does.
  const last = fdb ? (op.entry as FdbEntry).dst === undefined : add
  buf.writeUInt32LE(p - off - (last ? 2 : 0), off)
  buf.writeUInt16LE(add ? rt.MessageType.NEWNEIGH : rt.MessageType.DELNEIGH, off + 4)
  buf.writeUInt16LE(Flags.REQUEST | (add ? FlagsNew.CREATE | replace : 0), off + 6)
  buf.writeUInt32LE(seq, off + 8)
  buf.writeUInt32LE(port, off + 12)
  const nd = off + NLMSG_HDRLEN
  buf.writeUInt32LE(family, nd) // family, two pad bytes
  buf.writeInt32LE(ifindex, nd + 4)
  buf.writeUInt16LE(state, nd + 8)
  buf.writeUInt8(ntf, nd + 10)
  buf.writeUInt8(0, nd + 11)
  return p
}

/** What an operation does, for an error sentence. */
export function neighFdbText (op: NeighFdbOp): string {
  switch (op.op) {
    case 'addFdb': return `cannot add FDB entry ${op.entry.mac}${op.entry.dst !== undefined ? ` dst ${op.entry.dst}` : ''} on ${op.entry.dev}`
    case 'deleteFdb': return `cannot delete FDB entry ${op.entry.mac}${op.entry.dst !== undefined ? ` dst ${op.entry.dst}` : ''} on ${op.entry.dev}`
    case 'addNeigh': return `cannot add neighbour ${op.entry.ip} lladdr ${op.entry.mac} on ${op.entry.dev}`
    case 'deleteNeigh': return `cannot delete neighbour ${op.entry.ip} on ${op.entry.dev}`
  }
}
