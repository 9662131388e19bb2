/**
 * Batched UDP for the DNS server (`udp: 'batch'`): the native addon of
 * src/dns/native (N-API, built by node-gyp at `npm ci`) owns the listen socket,
 * polls it on Node's event loop, and reads up to `MAX_BATCH` datagrams per
 * wake-up with one `recvmmsg` into one preallocated buffer; the server answers
 * them all in one JS call and the answers leave with one `sendmmsg`. Node's
 * own path costs a wake-up, a `recvmsg`, a `sendmsg`, a Buffer and an rinfo
 * object per datagram: measured here with dnsperf at 100 in flight, a bare
 * responder spends 11–12 µs of CPU per query through `node:dgram` and 5–6 µs
 * through this one (docs/dns.md).
 *
 * The addon is optional: when it did not build or does not load, `loadBatch()`
 * says why in one sentence and the server uses `node:dgram`.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Datagrams read per `recvmmsg` at most (and answers per `sendmmsg`). */
export const MAX_BATCH = 64
/**
 * Bytes kept per datagram. A DNS query is a few dozen bytes; a longer datagram
 * is dropped (reported with length -1 by the addon, counted as `dropped`).
 */
export const SLOT = 4096
/** The answers of one batch: a larger one (or one that does not fit) is sent alone. */
const OUT_BYTES = MAX_BATCH * 1232

/** The addon's functions (udp_batch.c); every argument is checked there too. */
export interface BatchBinding {
  META: number
  OUT_META: number
  open (family: 4 | 6, ip: string, port: number, rcvbuf: number): object
  port (h: object): number
  start (h: object, inb: Buffer, meta: Buffer, out: Buffer, outMeta: Buffer, max: number, slot: number, cb: (n: number) => void): void
  send (h: object, count: number): number
  sendTo (h: object, buf: Buffer, port: number, ip: string): number
  stats (h: object): number[]
  close (h: object): void
}

/** The addon's file: build/Release under the package root (two levels up from src/dns and dist/dns). */
export function bindingPath (): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'ferry_udp_batch.node')
}

let loaded: BatchBinding | Error | undefined

/** The addon, or why it cannot be used (loaded once). */
export function loadBatch (path = bindingPath()): BatchBinding | Error {
  if (loaded !== undefined && path === bindingPath()) return loaded
  let r: BatchBinding | Error
  if (process.platform !== 'linux') r = new Error('batched UDP needs Linux (recvmmsg/sendmmsg); using node:dgram')
  else {
    try {
      r = createRequire(import.meta.url)(path) as BatchBinding
    } catch (err) {
      r = new Error(`the batched UDP addon did not load (${path}: ${(err as Error).message.split('\n')[0]}); using node:dgram — rebuild it with \`npx node-gyp rebuild\` or \`npm ci\``, { cause: err })
    }
  }
  if (path === bindingPath()) loaded = r
  return r
}

/**
 * Called once per datagram of a batch: the query (a view of the shared input
 * buffer, valid only during the call: copy what outlives it), and its source.
 * Returns the answer to send now, or undefined (dropped, or answered later with `sendTo`).
 */
export type OnDatagram = (msg: Buffer, address: string, port: number) => Buffer | undefined

export interface BatchStats { recvCalls: number, datagrams: number, sendCalls: number, sendErrors: number, oversized: number }

/** One UDP listen socket served in batches (see the module comment). */
export class BatchSocket {
  readonly port: number
  private readonly inb = Buffer.allocUnsafeSlow(MAX_BATCH * SLOT)
  private readonly meta: Buffer
  private readonly out = Buffer.allocUnsafeSlow(OUT_BYTES)
  private readonly outMeta: Buffer
  private closed = false

  /** Bind `ip`:`port` (0: a free port), exclusively; throws the bind's error (EADDRINUSE…). */
  constructor (private readonly b: BatchBinding, private readonly family: 4 | 6, ip: string, port: number, private readonly h = b.open(family, ip, port, 1 << 20)) {
    this.port = b.port(h)
    this.meta = Buffer.allocUnsafeSlow(MAX_BATCH * b.META)
    this.outMeta = Buffer.allocUnsafeSlow(MAX_BATCH * b.OUT_META)
  }

  /**
   * Start reading; `onDatagram` is called for each datagram, a throw of it is
   * `onError`'s and the batch goes on; `onDrop` for each datagram dropped here
   * (longer than a slot, or no source address). A failed poll of the socket
   * (libuv's error) is `onError`'s too, and reading stops.
   */
  start (onDatagram: OnDatagram, onError: (err: unknown) => void, onDrop: () => void): void {
    const { b, h, inb, meta, out, outMeta } = this
    const M = b.META
    const OM = b.OUT_META
    b.start(h, inb, meta, out, outMeta, MAX_BATCH, SLOT, (n) => {
      if (n < 0) {
        onError(new Error(`udp batch: polling the socket failed (libuv error ${n}); it is no longer read`))
        return
      }
      let k = 0
      let off = 0
      const count = Math.min(n, MAX_BATCH)
      for (let i = 0; i < count; i++) {
        const m = i * M
        const len = meta.readInt32LE(m)
        if (len < 0 || len > SLOT) {
          onDrop()
          continue
        }
        const port = meta.readInt32LE(m + 4)
        const address = meta.toString('latin1', m + 10, m + 10 + Math.min(meta[m + 9]!, 46))
        let resp: Buffer | undefined
        try {
          resp = onDatagram(inb.subarray(i * SLOT, i * SLOT + len), address, port)
        } catch (err) {
          onError(err)
          continue
        }
        if (resp === undefined || resp.length === 0) continue
        if (off + resp.length > OUT_BYTES) {
          b.sendTo(h, resp, port, address)
          continue
        }
        resp.copy(out, off)
        const o = k * OM
        outMeta.writeInt32LE(i, o)
        outMeta.writeInt32LE(off, o + 4)
        outMeta.writeInt32LE(resp.length, o + 8)
        off += resp.length
        k++
      }
      if (k > 0 && !this.closed) b.send(h, k)
    })
  }

  /** One datagram now (an answer that came back from upstream); false when the socket is closed or the send failed. */
  sendTo (buf: Buffer, port: number, address: string): boolean {
    if (this.closed) return false
    return this.b.sendTo(this.h, buf, port, address) === 1
  }

  stats (): BatchStats {
    const [recvCalls = 0, datagrams = 0, sendCalls = 0, sendErrors = 0, oversized = 0] = this.b.stats(this.h)
    return { recvCalls, datagrams, sendCalls, sendErrors, oversized }
  }

  /** Stop reading and close the socket (again: nothing). */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.b.close(this.h)
  }
}
