/**
 * One rtnetlink dump read in a worker thread (src/kernel/netlink.ts, `NetlinkDriver.tableDump`).
 *
 * The kernel makes a dump's replies inside the reader's recvmsg, one reply per read, and the
 * `netlink` addon reads up to 32 replies in one go from libuv's poll callback, synchronously. A
 * VXLAN FDB dump re-walks the device's table from its start for every reply (32 KiB, some 300
 * entries), so at 100,000 entries each read costs the kernel milliseconds and one callback held
 * the agent's event loop for up to 240 ms (0.9 s for the whole dump), whatever the JavaScript
 * did between callbacks: a change's pubsub message waited behind it. Here the reads block this
 * thread only.
 *
 * The worker opens its own socket (in the process's network namespace: ferry never switches
 * namespaces), sends the request it is given (`DumpJob`), keeps the entries of the device asked
 * for, packed (`packEntries`: 24 bytes each instead of a parsed message's objects), up to the
 * closing NLMSG_DONE, and posts them back as a transferred ArrayBuffer (`DumpResult`: moved to the
 * caller, not copied), then ends; the caller's promise settles on the worker's exit, so its isolate
 * is gone by then. The periodic repair diffs the packed entries as they are (listFdbPacked,
 * listNeighPacked; src/vxlan/plan.ts `indexPacked`); listFdb and listNeigh make objects of them.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import { Flags, MessageType, Protocol, RawNetlinkSocket } from 'netlink'
import { ENTRY_BYTES } from './types.js'

/**
 * What the worker is given: one dump request (nlmsghdr + body, its sequence number written in),
 * and which entries to keep: the device's permanent FDB entries of its own (NTF_SELF) with a
 * unicast or zero MAC, or its permanent neighbours.
 */
export interface DumpJob {
  request: Uint8Array
  seq: number
  keep: 'fdb' | 'neigh'
  ifindex: number
  timeoutMs: number
}

/**
 * What it posts back: `count` entries packed at the start of `entries` (ENTRY_BYTES each: the MAC,
 * the address's length (0, 4 or 16), a pad byte, the address; the buffer may be longer); or the errno the kernel closed the
 * dump with (positive), `intr` when a concurrent change interrupted it (NLM_F_DUMP_INTR); or why
 * it could not read at all.
 */
export type DumpResult =
  | { ok: true, entries: ArrayBuffer, count: number }
  | { ok: false, errno: number, intr: boolean }
  | { ok: false, error: string }

export { ENTRY_BYTES }

/** The replies are read into 64 KiB buffers (a dump's are at most 32 KiB; see openLinkDriver). */
const READ_BYTES = 65536
const RECV_BUFFER_BYTES = 512 * 1024
const NLMSG_HDRLEN = 16
const NDMSG_LEN = 12
const RTM_NEWNEIGH = 28
const NDA_DST = 1
const NDA_LLADDR = 2
const NTF_SELF = 0x02
const NUD_PERMANENT = 0x80

/** What one datagram of a dump's answer says. */
export interface ReplyScan {
  /** Where the messages of the dump end in it (before a closing NLMSG_DONE or NLMSG_ERROR). */
  dataEnd: number
  /** The dump is over: NLMSG_DONE or NLMSG_ERROR met. */
  done: boolean
  /** The errno the dump closed with (positive; 0 for none). */
  errno: number
  /** A message carried NLM_F_DUMP_INTR. */
  intr: boolean
}

/**
 * Scan one datagram of the answer to request `seq` (the socket carries that answer only): where
 * its entries end, whether the dump is over and how. A malformed length ends the scan as an error
 * (EBADMSG's errno, 74).
 */
export function scanReply (buf: Uint8Array, seq: number): ReplyScan {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let intr = false
  let off = 0
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(off, true)
    if (len < NLMSG_HDRLEN || off + len > buf.length) return { dataEnd: off, done: true, errno: 74, intr }
    const type = view.getUint16(off + 4, true)
    const flags = view.getUint16(off + 6, true)
    if ((flags & Flags.DUMP_INTR) !== 0) intr = true
    if (view.getUint32(off + 8, true) === seq && (type === MessageType.DONE || type === MessageType.ERROR)) {
      const errno = len >= NLMSG_HDRLEN + 4 ? -view.getInt32(off + NLMSG_HDRLEN, true) : 0
      return { dataEnd: off, done: true, errno: Math.max(0, errno), intr }
    }
    off += (len + 3) & ~3
  }
  return { dataEnd: Math.min(off, buf.length), done: false, errno: 0, intr }
}

/** A growing buffer of packed entries. */
export class Packed {
  bytes = new Uint8Array(ENTRY_BYTES * 4096)
  count = 0

  add (mac: Uint8Array, ip: Uint8Array | undefined): void {
    const off = this.count * ENTRY_BYTES
    if (off + ENTRY_BYTES > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2)
      grown.set(this.bytes)
      this.bytes = grown
    }
    this.bytes.set(mac, off)
    this.bytes[off + 6] = ip?.length ?? 0
    this.bytes[off + 7] = 0
    if (ip !== undefined) this.bytes.set(ip, off + 8)
    this.count++
  }
}

/**
 * Keep the entries of `job` among the messages of `buf` before `end` (as scanReply found them):
 * RTM_NEWNEIGH of the device `job.ifindex`, permanent, with a 6-byte MAC; for 'fdb' the device's
 * own (NTF_SELF) with a unicast or zero MAC and the destination if any, for 'neigh' those with an
 * IPv4 or IPv6 address.
 */
export function packEntries (buf: Uint8Array, end: number, job: Pick<DumpJob, 'keep' | 'ifindex'>, out: Packed): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  for (let off = 0; off + NLMSG_HDRLEN <= end;) {
    const len = view.getUint32(off, true)
    const next = off + ((len + 3) & ~3)
    const nd = off + NLMSG_HDRLEN
    if (view.getUint16(off + 4, true) !== RTM_NEWNEIGH || len < NLMSG_HDRLEN + NDMSG_LEN ||
      view.getInt32(nd + 4, true) !== job.ifindex || (view.getUint16(nd + 8, true) & NUD_PERMANENT) === 0 ||
      (job.keep === 'fdb' && (view.getUint8(nd + 10) & NTF_SELF) === 0)) { off = next; continue }
    let mac: Uint8Array | undefined
    let ip: Uint8Array | undefined
    for (let a = nd + NDMSG_LEN; a + 4 <= off + len;) {
      const alen = view.getUint16(a, true)
      if (alen < 4 || a + alen > off + len) break
      const type = view.getUint16(a + 2, true) & 0x3fff
      if (type === NDA_LLADDR && alen === 4 + 6) mac = buf.subarray(a + 4, a + 10)
      else if (type === NDA_DST && (alen === 4 + 4 || alen === 4 + 16)) ip = buf.subarray(a + 4, a + alen)
      a += (alen + 3) & ~3
    }
    off = next
    if (mac === undefined) continue
    if (job.keep === 'fdb' ? (mac[0]! & 1) === 0 : ip !== undefined) out.add(mac, ip)
  }
}

function run (job: DumpJob, post: (r: DumpResult, transfer: ArrayBuffer[]) => void): void {
  const packed = new Packed()
  let intr = false
  let finished = false
  let sock: RawNetlinkSocket | undefined
  const finish = (r: DumpResult): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    try { sock?.close() } catch { /* closed */ }
    post(r, r.ok ? [r.entries] : [])
  }
  const timer = setTimeout(() => { finish({ ok: false, error: 'no answer from the kernel to a dump' }) }, job.timeoutMs)
  try {
    sock = new RawNetlinkSocket(Protocol.ROUTE, { messagePeeking: false, msgBufferSize: READ_BYTES, recvBufferSize: RECV_BUFFER_BYTES, sendBufferSize: 0 })
  } catch (err) {
    finish({ ok: false, error: `cannot open rtnetlink socket: ${err instanceof Error ? err.message : String(err)}` })
    return
  }
  sock.on('message', (buf) => {
    if (finished) return
    const s = scanReply(buf, job.seq)
    if (s.intr) intr = true
    packEntries(buf, s.dataEnd, job, packed)
    if (!s.done) return
    if (s.errno !== 0 || intr) finish({ ok: false, errno: s.errno, intr })
    // The whole buffer is transferred (moved, not copied: its first `count` entries are the answer).
    else finish({ ok: true, entries: packed.bytes.buffer as ArrayBuffer, count: packed.count })
  })
  sock.on('truncatedMessage', () => { finish({ ok: false, error: 'a dump reply did not fit the read buffer' }) })
  sock.on('error', (err) => { finish({ ok: false, error: err.message }) })
  sock.send(job.request, {}, (err) => { if (err) finish({ ok: false, error: err.message }) })
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  run(workerData as DumpJob, (r, transfer) => { port.postMessage(r, transfer) })
}
