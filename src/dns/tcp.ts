/**
 * DNS over TCP (RFC 7766 framing: a 2-byte length, then the message), with the
 * brakes a root daemon listening to containers needs. A TCP client can do what
 * a UDP one cannot: keep state on the server. So every kind of that state has a
 * bound, and a client that reaches one is slowed down, then dropped:
 *
 * - Who: a source that is no ferry network's client is closed at accept,
 *   before it takes a slot (over UDP it gets REFUSED; over TCP it would only
 *   hold a connection). Connections are capped per source and in total, so one
 *   container cannot lock the others out.
 * - Memory: answer bytes waiting for the client to read them are counted per
 *   connection and in total. Above `highWaterBytes` the server stops reading
 *   that connection's queries (so it makes no new answers for it) until the
 *   kernel takes the bytes ('drain', seen through the write callbacks); past
 *   `maxQueuedBytes` (or the total past `maxQueuedBytesTotal`) the connection
 *   is dropped. Queries being answered at once are capped per connection
 *   (`maxInFlight`), so a pipelining client cannot hold the forwarder's slots.
 *   Bytes received are bounded too: reading pauses whenever a limit is reached,
 *   and a frame is at most 65,537 bytes.
 * - Time: `idleMs` counts from the last *complete* query (bytes trickled one at
 *   a time do not reset it); a query's bytes must all arrive within
 *   `queryDeadlineMs` of its first one; a connection lives `maxLifetimeMs` and
 *   carries `maxQueries` queries at most, then the server answers what it was
 *   asked and closes it (a resolver simply opens another).
 *
 * Worst case held in the agent's memory by TCP clients: `maxQueuedBytesTotal`
 * of answers plus, per connection, one read chunk and `maxInFlight` queries.
 * The timers are injectable for tests (see `TcpTimers`).
 */
import type { Socket as TcpSocket } from 'node:net'
import { ferryError } from '../errors/errors.js'
import type { DnsMetrics } from './metrics.js'

export interface TcpLimits {
  /** Open connections at most, every source together. Default 1024. */
  maxConnections: number
  /** Open connections at most from one source address. Default 16. */
  maxConnectionsPerSource: number
  /** Closed when no complete query arrived for this long, whatever bytes trickled in. Default 10 s. */
  idleMs: number
  /** All bytes of a query must arrive within this time of its first one. Default 2 s. */
  queryDeadlineMs: number
  /** A connection is closed (gracefully: what was asked is answered) after this long. Default 60 s. */
  maxLifetimeMs: number
  /** Queries one connection may carry; then it is closed gracefully. Default 1000. */
  maxQueries: number
  /** Queries of one connection answered at once (forwarded ones wait); reading pauses there. Default 4. */
  maxInFlight: number
  /** Reading pauses while this many answer bytes wait for the client. Default 64 KiB. */
  highWaterBytes: number
  /** A connection with more answer bytes waiting is dropped. Default 256 KiB (4 of the largest answers). */
  maxQueuedBytes: number
  /** Answer bytes waiting on all connections together; a connection that would pass it is dropped. Default 16 MiB. */
  maxQueuedBytesTotal: number
}

export const DEFAULT_TCP_LIMITS: Readonly<TcpLimits> = Object.freeze({
  maxConnections: 1024,
  maxConnectionsPerSource: 16,
  idleMs: 10_000,
  queryDeadlineMs: 2_000,
  maxLifetimeMs: 60_000,
  maxQueries: 1000,
  maxInFlight: 4,
  highWaterBytes: 64 * 1024,
  maxQueuedBytes: 256 * 1024,
  maxQueuedBytesTotal: 16 * 1024 * 1024,
})

/** The limits with defaults filled in; throws INVALID_OPTION on a value that is not a positive integer. */
export function tcpLimits (over: Partial<TcpLimits> = {}): TcpLimits {
  const out = { ...DEFAULT_TCP_LIMITS }
  for (const k of Object.keys(DEFAULT_TCP_LIMITS) as (keyof TcpLimits)[]) {
    const v = over[k]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v < 1) throw ferryError('INVALID_OPTION', `dns: tcp.${k} must be a positive integer, not ${String(v)}`)
    out[k] = v
  }
  return out
}

export interface TcpTimers {
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

/** Received bytes held at most per connection: two of the largest frames. */
const MAX_HELD = 2 * (2 + 65535)

const realTimers: TcpTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** Answer one query: call `reply` exactly once, with the answer or undefined for none. */
export type TcpQueryHandler = (src: string, msg: Buffer, reply: (resp: Buffer | undefined) => void) => void

export interface TcpFrontOptions {
  limits: TcpLimits
  metrics: DnsMetrics
  /** Whether `src` is a ferry client at all (others are closed at accept). */
  isClient: (src: string) => boolean
  onQuery: TcpQueryHandler
  onError: (err: unknown) => void
  timers?: TcpTimers
}

/** Figures of the TCP side, for tests and status. */
export interface TcpStats {
  open: number
  /** Answer bytes waiting for clients now, all connections. */
  queuedBytes: number
  /** The most answer bytes that ever waited on one connection. */
  peakConnectionQueued: number
  /** Bytes received from clients, all connections ever. */
  bytesReceived: number
}

/** The connections of every listener: admission, accounting, limits. */
export class TcpFront {
  private readonly perSource = new Map<string, number>()
  readonly timers: TcpTimers
  open = 0
  queuedBytes = 0
  peakConnectionQueued = 0
  bytesReceived = 0
  closed = false

  constructor (readonly opts: TcpFrontOptions) {
    this.timers = opts.timers ?? realTimers
  }

  get stats (): TcpStats {
    return { open: this.open, queuedBytes: this.queuedBytes, peakConnectionQueued: this.peakConnectionQueued, bytesReceived: this.bytesReceived }
  }

  /** A new connection: admit it (and add it to `conns` until it closes) or close it at once. */
  accept (sock: TcpSocket, conns: Set<TcpSocket>): void {
    const m = this.opts.metrics
    const lim = this.opts.limits
    const src = sock.remoteAddress ?? ''
    let reject: 'tcpRejected' | 'tcpRejectedNonClient' | 'tcpRejectedPerSource' | undefined
    if (this.closed || this.open >= lim.maxConnections) reject = 'tcpRejected'
    else if (src === '' || !this.opts.isClient(src)) reject = 'tcpRejectedNonClient'
    else if ((this.perSource.get(src) ?? 0) >= lim.maxConnectionsPerSource) reject = 'tcpRejectedPerSource'
    if (reject !== undefined) {
      m[reject]++
      sock.on('error', () => undefined)
      sock.resetAndDestroy()
      return
    }
    m.tcpConnections++
    this.open++
    this.perSource.set(src, (this.perSource.get(src) ?? 0) + 1)
    conns.add(sock)
    const conn = new TcpConn(this, sock, src)
    sock.on('close', () => {
      conns.delete(sock)
      this.open--
      const n = (this.perSource.get(src) ?? 1) - 1
      if (n <= 0) this.perSource.delete(src)
      else this.perSource.set(src, n)
      conn.release()
    })
  }
}

/** One client connection. */
class TcpConn {
  /** Answer bytes handed to the socket and not yet taken by the kernel. */
  private queued = 0
  private inFlight = 0
  private queries = 0
  /** Bytes received and not yet parsed: a partial frame, or frames held while reading is paused. */
  private acc: Buffer | undefined
  /** No more queries are read: a limit of lifetime or count was reached. */
  private closing = false
  private paused = false
  private parsing = false
  private released = false
  private idleTimer: unknown
  private frameTimer: unknown
  private readonly lifeTimer: unknown

  constructor (private readonly front: TcpFront, private readonly sock: TcpSocket, private readonly src: string) {
    const lim = front.opts.limits
    sock.setNoDelay(true)
    sock.on('error', () => sock.destroy())
    sock.on('data', (chunk: Buffer) => this.guard(() => this.onData(chunk)))
    this.idleTimer = front.timers.setTimeout(() => this.timeout(), lim.idleMs)
    this.lifeTimer = front.timers.setTimeout(() => this.guard(() => this.stopReading()), lim.maxLifetimeMs)
  }

  private guard (fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.front.opts.onError(err)
      this.sock.destroy()
    }
  }

  private onData (chunk: Buffer): void {
    this.front.bytesReceived += chunk.length
    this.acc = this.acc === undefined ? chunk : Buffer.concat([this.acc, chunk])
    if (this.acc.length > MAX_HELD) {
      // Only if a 'data' event came after pause(): never hold more than this.
      this.front.opts.metrics.tcpSlowReaders++
      this.sock.destroy()
      return
    }
    this.parse()
  }

  private canRead (): boolean {
    const lim = this.front.opts.limits
    return !this.closing && !this.sock.destroyed && this.inFlight < lim.maxInFlight && this.queued < lim.highWaterBytes
  }

  /** Hand every complete frame to the server while limits allow; keep the rest. */
  private parse (): void {
    if (this.parsing) return
    this.parsing = true
    let completed = false
    try {
      let buf = this.acc
      this.acc = undefined
      while (buf !== undefined && buf.length >= 2 && this.canRead()) {
        const len = buf.readUInt16BE(0)
        if (buf.length < 2 + len) break
        const msg = buf.subarray(2, 2 + len)
        buf = buf.length > 2 + len ? buf.subarray(2 + len) : undefined
        completed = true
        this.onFrame(msg)
      }
      this.acc = buf
    } finally {
      this.parsing = false
    }
    this.updateFrameTimer(completed)
    this.updateReading()
  }

  private onFrame (msg: Buffer): void {
    const t = this.front.timers
    t.clearTimeout(this.idleTimer)
    this.idleTimer = t.setTimeout(() => this.timeout(), this.front.opts.limits.idleMs)
    this.queries++
    if (this.queries >= this.front.opts.limits.maxQueries && !this.closing) {
      this.closing = true
      this.front.opts.metrics.tcpClosedAtLimit++
    }
    this.inFlight++
    let once = false
    this.front.opts.onQuery(this.src, msg, (resp) => {
      if (once) return
      once = true
      this.guard(() => this.onReply(resp))
    })
  }

  /**
   * The deadline of the query being received: started by its first bytes, not
   * moved by more bytes of it, stopped when it is complete. It does not run
   * while the server holds reading (that wait is not the client's doing).
   */
  private updateFrameTimer (completed: boolean): void {
    const t = this.front.timers
    const receiving = this.acc !== undefined && this.canRead()
    if (this.frameTimer !== undefined && (completed || !receiving)) {
      t.clearTimeout(this.frameTimer)
      this.frameTimer = undefined
    }
    if (receiving && this.frameTimer === undefined) {
      this.frameTimer = t.setTimeout(() => this.timeout(), this.front.opts.limits.queryDeadlineMs)
    }
  }

  private updateReading (): void {
    if (this.sock.destroyed) return
    const want = this.canRead()
    if (want && this.paused) {
      this.paused = false
      this.sock.resume()
    } else if (!want && !this.paused) {
      this.paused = true
      this.sock.pause()
    }
  }

  /** Some limit may have eased: parse what was held, resume reading. */
  private eased (): void {
    if (this.closing) {
      if (this.inFlight === 0 && !this.sock.destroyed) this.sock.end()
      return
    }
    if (this.paused && this.canRead()) this.parse()
  }

  private onReply (resp: Buffer | undefined): void {
    this.inFlight--
    if (resp !== undefined) this.write(resp)
    this.eased()
  }

  private write (msg: Buffer): void {
    if (this.sock.destroyed || !this.sock.writable) return
    const front = this.front
    const lim = front.opts.limits
    const n = 2 + msg.length
    if (this.queued + n > lim.maxQueuedBytes || front.queuedBytes + n > lim.maxQueuedBytesTotal) {
      front.opts.metrics.tcpSlowReaders++
      this.sock.destroy()
      return
    }
    const len = Buffer.allocUnsafe(2)
    len.writeUInt16BE(msg.length, 0)
    this.queued += n
    front.queuedBytes += n
    if (this.queued > front.peakConnectionQueued) front.peakConnectionQueued = this.queued
    // Two writes in one cork: one syscall, and no copy of a 64 KiB answer.
    this.sock.cork()
    this.sock.write(len)
    this.sock.write(msg, () => {
      if (this.released) return
      this.queued -= n
      front.queuedBytes -= n
      this.guard(() => this.eased())
    })
    this.sock.uncork()
  }

  /** Lifetime or query count reached: answer what was asked, then close. The idle timer still runs. */
  private stopReading (): void {
    if (this.closing) return
    this.closing = true
    this.front.opts.metrics.tcpClosedAtLimit++
    this.updateFrameTimer(false)
    this.updateReading()
    this.eased()
  }

  private timeout (): void {
    if (this.sock.destroyed) return
    this.front.opts.metrics.tcpTimeouts++
    this.sock.destroy()
  }

  /** The socket closed: give back its bytes and stop its timers. */
  release (): void {
    if (this.released) return
    this.released = true
    const t = this.front.timers
    t.clearTimeout(this.idleTimer)
    t.clearTimeout(this.frameTimer)
    t.clearTimeout(this.lifeTimer)
    this.front.queuedBytes -= this.queued
    this.queued = 0
    this.acc = undefined
  }
}
