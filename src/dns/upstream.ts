/**
 * Upstream resolvers and forwarding.
 *
 * The list comes from configuration (`--dns`) or from the host's resolv.conf,
 * re-read when it changes: fs.watch on its folder catches replacements (editors
 * and resolvconf rename a new file into place), and a periodic stat catches what
 * fs.watch misses (a symlink's target changing, e.g. systemd-resolved's
 * stub-resolv.conf, or file systems without inotify). When the file vanishes or
 * cannot be read, the last list is kept.
 *
 * Loopback upstreams (127.0.0.53 of systemd-resolved, a local dnsmasq) are kept:
 * the agent forwards from its own network namespace, the host's, where they
 * listen (Docker has to special-case them only because its resolver sits in the
 * container's namespace). An agent run inside another namespace (tests, the
 * simulated hosts) should be given `--dns` instead.
 *
 * The forwarder relays the client's query bytes (so EDNS options, DO and
 * cookies pass through) with a fresh random id, over the client's transport.
 * Each upstream gets `timeoutMs`; a timeout, an error, SERVFAIL or REFUSED
 * moves to the next one; when none is left the caller answers SERVFAIL. An
 * upstream that failed is tried after the healthy ones for `downMs`.
 *
 * Spoofing: each UDP attempt gets a fresh socket, so a fresh source port the
 * kernel picks at random from the ephemeral range, and the socket is
 * *connected* to the upstream: the kernel drops datagrams from any other
 * address or port, and reports an ICMP port-unreachable as ECONNREFUSED (a dead
 * upstream is skipped at once instead of after the timeout). An off-path forger
 * must now guess the port (~28,000 values) as well as the 16-bit id, instead of
 * only the id (one socket per upstream used to keep its port for the agent's
 * life). What arrives on the socket is checked again here: source address and
 * port, QR, id and question. Anything else counts as `spoofedAnswers`, is
 * ignored, and the query is asked again of the same upstream over TCP, which an
 * off-path forger cannot answer.
 *
 * Cost: a Node UDP handle and socket(), bind(), connect() and close() per
 * forwarded UDP query. Measured here (2-core VM, loopback upstream, 50 in
 * flight): the forwarder alone went from 20–32k to ~10.5k queries/s, about
 * 45 µs more CPU per forwarded query. That is the price of the port entropy:
 * forwarded queries are a small share of a container's DNS traffic and each
 * waits an upstream round trip (100 µs to 100 ms) anyway, while the hot path —
 * ferry's own names, which bench:dns measures — never forwards and is
 * untouched. The open sockets are bounded: one per query in flight, at most
 * `maxPending`.
 */
import { randomFillSync } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { connect, isIP, isIPv6, type Socket as TcpSocket } from 'node:net'
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import type { Logger } from 'pino'
import { ferryError } from '../errors/errors.js'
import { HEADER, rcodeOf, RCODE_REFUSED, RCODE_SERVFAIL, sameQuestion } from './wire.js'

export interface Upstream {
  ip: string
  port: number
}

export function upstreamKey (u: Upstream): string {
  return isIPv6(u.ip) ? `[${u.ip}]:${u.port}` : `${u.ip}:${u.port}`
}

/** `1.1.1.1`, `1.1.1.1:5353`, `::1`, `[::1]:5353` → Upstream; throws INVALID_OPTION. */
export function parseUpstream (spec: string): Upstream {
  const s = spec.trim()
  let ip = s
  let port = 53
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
  if (bracket) {
    ip = bracket[1]!
    if (bracket[2] !== undefined) port = Number(bracket[2])
  } else if (s.split(':').length === 2) {
    const [h, p] = s.split(':')
    ip = h!
    port = Number(p)
  }
  if (isIP(ip.split('%')[0] ?? ip) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw ferryError('INVALID_OPTION', `not a DNS server address: ${JSON.stringify(spec)} (want IP or IP:port)`)
  }
  return { ip, port }
}

/** The `nameserver` lines of a resolv.conf, in order (invalid ones skipped). */
export function parseResolvConf (text: string): Upstream[] {
  const out: Upstream[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim()
    const [kw, addr] = line.split(/\s+/)
    if (kw !== 'nameserver' || addr === undefined) continue
    if (isIP(addr.split('%')[0] ?? addr) === 0) continue
    out.push({ ip: addr, port: 53 })
  }
  return out
}

/** Where the forwarder gets its upstreams. */
export interface UpstreamSource {
  current (): readonly Upstream[]
  close (): void
}

export class StaticUpstreams implements UpstreamSource {
  private readonly list: readonly Upstream[]
  constructor (specs: readonly string[]) {
    this.list = specs.map(parseUpstream)
  }
  current (): readonly Upstream[] { return this.list }
  close (): void {}
}

/** The nameservers of a resolv.conf, kept current. Call `start()` once. */
export class ResolvConfUpstreams implements UpstreamSource {
  private list: readonly Upstream[] = []
  private signature = ''
  private watcher: FSWatcher | undefined
  private poll: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private closed = false
  private unreadable = false

  constructor (readonly path: string, private readonly pollMs: number, private readonly log?: Logger) {}

  current (): readonly Upstream[] { return this.list }

  async start (): Promise<void> {
    await this.check()
    try {
      const base = basename(this.path)
      this.watcher = watch(dirname(this.path), { persistent: false }, (_ev, file) => {
        if (file === null || file === base) this.schedule()
      })
      this.watcher.on('error', () => { this.watcher?.close(); this.watcher = undefined })
    } catch {
      // no inotify on this folder: the periodic check does the job
    }
    this.poll = setInterval(() => { void this.check() }, this.pollMs)
    this.poll.unref()
  }

  /** Re-read the file if its inode, size or mtime changed; true when the list changed. */
  async check (): Promise<boolean> {
    try {
      const st = await stat(this.path)
      const sig = `${st.ino}:${st.size}:${st.mtimeMs}`
      if (sig === this.signature) return false
      const text = await readFile(this.path, 'utf8')
      this.signature = sig
      this.unreadable = false
      const next = parseResolvConf(text)
      if (next.map(upstreamKey).join(',') === this.list.map(upstreamKey).join(',')) return false
      this.list = next
      this.log?.info({ upstreams: next.map(upstreamKey), path: this.path }, 'dns upstreams from resolv.conf')
      return true
    } catch (err) {
      if (!this.unreadable) this.log?.warn({ err, path: this.path }, 'cannot read resolv.conf; keeping the last upstreams')
      this.unreadable = true
      this.signature = ''
      return false
    }
  }

  private schedule (): void {
    if (this.closed) return
    clearTimeout(this.debounce)
    this.debounce = setTimeout(() => { void this.check() }, 50)
    this.debounce.unref()
  }

  close (): void {
    this.closed = true
    this.watcher?.close()
    clearInterval(this.poll)
    clearTimeout(this.debounce)
  }
}

/** Counters the forwarder feeds (part of the server's metrics). */
export interface ForwarderMetrics {
  upstreamTimeouts: number
  upstreamErrors: number
  upstreamRetries: number
  /** UDP answers with the wrong source, id or question (then asked again over TCP). */
  spoofedAnswers: number
}

/** Time and timers; tests pass fake ones. */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

export interface ForwarderOptions {
  upstreams: () => readonly Upstream[]
  timeoutMs: number
  downMs: number
  /** Queries in flight at most, so also UDP sockets open at most. */
  maxPending: number
  metrics: ForwarderMetrics
  clock?: Clock
  log?: Logger
}

/** The answer, its id restored; null when no upstream answered. */
export type ForwardDone = (resp: Buffer | null) => void

type LiteralLookup = (host: string, opts: unknown, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void) => void
/**
 * A `lookup` for sockets whose addresses are literal IPs: it spares each
 * connect or send a round through dns.lookup and a tick.
 */
export const literalLookup: LiteralLookup = (host, _opts, cb) => cb(null, host, host.includes(':') ? 6 : 4)

interface Pending {
  id: number
  origId: number
  query: Buffer
  qEnd: number
  /** Over TCP: the client's transport, or after a suspicious UDP answer. */
  tcp: boolean
  order: Upstream[]
  next: number
  /** The socket of the current UDP attempt (its own source port). */
  udpSock: UdpSocket | undefined
  tcpSock: TcpSocket | undefined
  timer: unknown
  last: Buffer | undefined
  done: ForwardDone
}

/** Random 16-bit ids from a refilled pool of random bytes. */
class IdPool {
  private readonly buf = Buffer.allocUnsafe(2048)
  private off = this.buf.length
  next (): number {
    if (this.off >= this.buf.length) {
      randomFillSync(this.buf)
      this.off = 0
    }
    const id = this.buf.readUInt16BE(this.off)
    this.off += 2
    return id
  }
}

export class Forwarder {
  private readonly pending = new Map<number, Pending>()
  private readonly downUntil = new Map<string, number>()
  private readonly ids = new IdPool()
  private closed = false
  private udpOpen = 0
  private readonly clock: Clock

  constructor (private readonly opts: ForwarderOptions) {
    this.clock = opts.clock ?? realClock
  }

  get inFlight (): number {
    return this.pending.size
  }

  /** UDP sockets open now (one per UDP attempt in flight). */
  get udpSockets (): number {
    return this.udpOpen
  }

  /**
   * Forward `query` (a buffer the forwarder may modify; `qEnd` is the end of its
   * question) and call `done` exactly once, unless the forwarder is closed first.
   */
  forward (query: Buffer, qEnd: number, tcp: boolean, done: ForwardDone): void {
    const list = this.opts.upstreams()
    if (list.length === 0 || this.pending.size >= this.opts.maxPending || this.closed) {
      done(null)
      return
    }
    let id = this.ids.next()
    while (this.pending.has(id)) id = this.ids.next()
    const origId = query.readUInt16BE(0)
    query.writeUInt16BE(id, 0)
    const p: Pending = {
      id, origId, query, qEnd, tcp, order: this.order(list), next: 0,
      udpSock: undefined, tcpSock: undefined, timer: undefined, last: undefined, done,
    }
    this.pending.set(id, p)
    this.send(p)
  }

  /** Healthy upstreams first, in configured order, then those that failed lately. */
  private order (list: readonly Upstream[]): Upstream[] {
    const now = this.clock.now()
    const up: Upstream[] = []
    const down: Upstream[] = []
    for (const u of list) ((this.downUntil.get(upstreamKey(u)) ?? 0) > now ? down : up).push(u)
    return down.length === 0 ? up : [...up, ...down]
  }

  private markDown (u: Upstream): void {
    this.downUntil.set(upstreamKey(u), this.clock.now() + this.opts.downMs)
  }

  private markUp (u: Upstream): void {
    if (this.downUntil.size > 0) this.downUntil.delete(upstreamKey(u))
  }

  private live (p: Pending): boolean {
    return this.pending.get(p.id) === p
  }

  private send (p: Pending): void {
    const u = p.order[p.next]!
    p.timer = this.clock.setTimeout(() => this.onTimeout(p), this.opts.timeoutMs)
    if (p.tcp) this.sendTcp(p, u)
    else this.sendUdp(p, u)
  }

  /** One UDP attempt: a fresh socket (fresh source port) connected to `u`. */
  private sendUdp (p: Pending, u: Upstream): void {
    const sock = createSocket({ type: isIPv6(u.ip) ? 'udp6' : 'udp4', lookup: literalLookup })
    p.udpSock = sock
    this.udpOpen++
    const current = (): boolean => p.udpSock === sock && this.live(p)
    sock.on('message', (msg, rinfo) => {
      try {
        if (current()) this.onUdpMessage(p, sock, msg, rinfo)
      } catch (err) {
        this.opts.log?.error({ err }, 'dns forwarder: response handler failed')
      }
    })
    // A connected UDP socket reports ICMP errors (ECONNREFUSED) here, and a
    // failed bind (EMFILE) too: this query moves on at once.
    sock.on('error', (err) => {
      try {
        if (current()) this.fail(p, err)
      } catch (e) {
        this.opts.log?.error({ err: e }, 'dns forwarder: error handler failed')
      }
    })
    try {
      sock.connect(u.port, u.ip, () => {
        if (!current()) return
        sock.send(p.query, (err) => { if (err && current()) this.fail(p, err) })
      })
    } catch (err) {
      this.fail(p, err)
    }
  }

  /** What came back on `p`'s own socket: its answer, or a forgery (then ask again over TCP). */
  private onUdpMessage (p: Pending, sock: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    // The kernel already drops datagrams from anyone but the connected peer;
    // checked again so that a change there cannot go unnoticed.
    // A datagram can also arrive in the moment between bind and connect.
    let peer: { address: string, port: number } | undefined
    try { peer = sock.remoteAddress() } catch { peer = undefined }
    if (peer !== undefined && rinfo.port === peer.port && rinfo.address === peer.address && this.isAnswerTo(p, msg)) {
      this.onResponse(p, msg)
      return
    }
    this.opts.metrics.spoofedAnswers++
    this.opts.log?.debug({ upstream: upstreamKey(p.order[p.next]!), from: `${rinfo.address}:${rinfo.port}` }, 'dns forwarder: a UDP answer did not match its query; asking again over TCP')
    this.stopAttempt(p)
    p.tcp = true
    this.opts.metrics.upstreamRetries++
    this.send(p)
  }

  private onTimeout (p: Pending): void {
    if (!this.live(p)) return
    this.opts.metrics.upstreamTimeouts++
    const u = p.order[p.next]
    if (u !== undefined) this.markDown(u)
    this.tryNext(p)
  }

  private fail (p: Pending, err: unknown): void {
    this.opts.metrics.upstreamErrors++
    const u = p.order[p.next]
    this.opts.log?.debug({ err, upstream: u && upstreamKey(u) }, 'dns upstream failed')
    if (u !== undefined) this.markDown(u)
    this.tryNext(p)
  }

  private tryNext (p: Pending): void {
    this.stopAttempt(p)
    p.next++
    if (p.next >= p.order.length) {
      this.finish(p, p.last ?? null)
      return
    }
    this.opts.metrics.upstreamRetries++
    this.send(p)
  }

  private stopAttempt (p: Pending): void {
    this.clock.clearTimeout(p.timer)
    p.timer = undefined
    if (p.udpSock !== undefined) {
      const s = p.udpSock
      p.udpSock = undefined
      this.udpOpen--
      try { s.close() } catch { /* already closed */ }
    }
    if (p.tcpSock !== undefined) {
      p.tcpSock.destroy()
      p.tcpSock = undefined
    }
  }

  private finish (p: Pending, resp: Buffer | null): void {
    this.stopAttempt(p)
    this.pending.delete(p.id)
    if (resp !== null) resp.writeUInt16BE(p.origId, 0)
    p.done(resp)
  }

  /** A response from the upstream `p` is waiting on. */
  private onResponse (p: Pending, resp: Buffer): void {
    const u = p.order[p.next]!
    const rcode = rcodeOf(resp)
    if ((rcode === RCODE_SERVFAIL || rcode === RCODE_REFUSED) && p.next + 1 < p.order.length) {
      p.last = resp
      this.tryNext(p)
      return
    }
    this.markUp(u)
    this.finish(p, resp)
  }

  /** A response with `p`'s id and question. */
  private isAnswerTo (p: Pending, resp: Buffer): boolean {
    return resp.length >= HEADER && (resp[2]! & 0x80) !== 0 && resp.readUInt16BE(0) === p.id &&
      sameQuestion(p.query, p.qEnd, resp)
  }

  private sendTcp (p: Pending, u: Upstream): void {
    const sock = connect({ host: u.ip, port: u.port, lookup: literalLookup })
    p.tcpSock = sock
    const current = (): boolean => p.tcpSock === sock && this.live(p)
    const frame = Buffer.allocUnsafe(2 + p.query.length)
    frame.writeUInt16BE(p.query.length, 0)
    p.query.copy(frame, 2)
    sock.setNoDelay(true)
    sock.write(frame)
    // The answer is copied once into a buffer of its announced size (at most
    // 64 KiB); bytes past it are ignored (one query per connection).
    let head: Buffer | undefined
    let resp: Buffer | undefined
    let got = 0
    sock.on('data', (chunk: Buffer) => {
      try {
        if (!current()) return
        if (resp === undefined) {
          head = head === undefined ? chunk : Buffer.concat([head, chunk])
          if (head.length < 2) return
          resp = Buffer.allocUnsafe(head.readUInt16BE(0))
          chunk = head.subarray(2)
          head = undefined
        }
        got += chunk.copy(resp, got)
        if (got < resp.length) return
        if (this.isAnswerTo(p, resp)) this.onResponse(p, resp)
        else this.fail(p, ferryError('INTERNAL', 'upstream answered another question over TCP'))
      } catch (err) {
        this.opts.log?.error({ err }, 'dns forwarder: tcp handler failed')
      }
    })
    sock.on('error', (err) => { if (current()) this.fail(p, err) })
    sock.on('close', () => {
      if (current()) this.fail(p, ferryError('INTERNAL', 'upstream closed the TCP connection'))
    })
  }

  /** Drop every pending query (their callbacks are not called) and close the sockets. */
  async close (): Promise<void> {
    this.closed = true
    for (const p of this.pending.values()) this.stopAttempt(p)
    this.pending.clear()
  }
}
