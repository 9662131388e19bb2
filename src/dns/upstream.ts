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
 * Failover (see `Forwarder`): the next upstream is asked too once the current
 * one has been silent for an adaptive timeout (3 × its smoothed round trip,
 * 100–800 ms), at once on an error, SERVFAIL or REFUSED; each attempt gives up
 * after `timeoutMs`; when none is left the caller answers SERVFAIL (or stale).
 * An upstream that failed is tried after the healthy ones for `downMs`, and
 * probed in the background meanwhile.
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
import { isIp, normalizeIp } from '../util/ip.js'
import { parseResolvSearch, SearchDomains } from './search.js'
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
  const canon = upstreamIp(ip)
  if (canon === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw ferryError('INVALID_OPTION', `not a DNS server address: ${JSON.stringify(spec)} (want IP or IP:port)`)
  }
  return { ip: canon, port }
}

/**
 * A name server's address in canonical text (`FD00:1::0001` → `fd00:1::1`, so that
 * ferry's own IPv6 listen addresses are recognised however they are spelt), a
 * link-local one with its zone kept as given; undefined when it is no address.
 */
function upstreamIp (text: string): string | undefined {
  const zone = text.indexOf('%')
  if (zone >= 0) return isIP(text.slice(0, zone)) === 6 && zone < text.length - 1 ? text : undefined
  return isIp(text) ? normalizeIp(text) : undefined
}

/**
 * The `--dns` upstreams a container's resolv.conf can name: those on port 53 (resolv.conf
 * has no port), IPv4 and IPv6, in canonical text, each once; invalid specs are left out.
 */
export function resolvConfServers (specs: readonly string[]): string[] {
  const out = new Set<string>()
  for (const spec of specs) {
    let u: Upstream
    try { u = parseUpstream(spec) } catch { continue }
    if (u.port === 53) out.add(u.ip)
  }
  return [...out]
}

/** The `nameserver` lines of a resolv.conf, in order (invalid ones skipped). */
export function parseResolvConf (text: string): Upstream[] {
  const out: Upstream[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim()
    const [kw, addr] = line.split(/\s+/)
    if (kw !== 'nameserver' || addr === undefined) continue
    const ip = upstreamIp(addr)
    if (ip === undefined) continue
    out.push({ ip, port: 53 })
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

/** The nameservers of a resolv.conf, and its search list (search.ts), kept current. Call `start()` once. */
export class ResolvConfUpstreams implements UpstreamSource {
  private list: readonly Upstream[] = []
  /** The file's search list; a new object only when it changes. */
  search = SearchDomains.none
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
    this.poll = setInterval(() => { void this.check() }, this.pollMs) // check never rejects: it logs an unreadable file
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
      const search = new SearchDomains(parseResolvSearch(text))
      if (!search.same(this.search)) this.search = search
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
    this.debounce = setTimeout(() => { void this.check() }, 50) // never rejects
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
  /** How long one attempt may wait for its answer at most (the hard timeout), ms. */
  timeoutMs: number
  /** How long a failed upstream is tried after the others, unless an answer of its own comes first, ms. */
  downMs: number
  /** Queries in flight at most, so also UDP sockets open at most. */
  maxPending: number
  metrics: ForwarderMetrics
  /** Bounds of the adaptive timeout after which the next upstream is asked too, ms (default 100 and 800). */
  hedgeMinMs?: number
  hedgeMaxMs?: number
  /** How often a failed upstream gets a background probe, ms (default 1000). */
  probeMs?: number
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

/** What the forwarder knows of one upstream. */
export interface UpstreamHealth {
  upstream: string
  /** Smoothed round-trip time (EWMA, 1/8), ms; undefined before its first answer. */
  srttMs: number | undefined
  /** Attempts in a row that got no answer within their adaptive timeout. */
  misses: number
  /** Asked after the others until then (epoch ms), unless an answer comes first. 0: healthy. */
  downUntil: number
}

interface Health {
  srtt: number | undefined
  misses: number
  downUntil: number
  nextProbe: number
}

/** Assumed round trip of an upstream that never answered yet, ms. */
const INITIAL_SRTT_MS = 100
/** Consecutive misses (no answer within the adaptive timeout) that mark an upstream down. */
const MISSES_DOWN = 3

/** One upstream asked for one query: its own socket (own source port). */
interface Attempt {
  u: Upstream
  tcp: boolean
  sentAt: number
  udpSock: UdpSocket | undefined
  tcpSock: TcpSocket | undefined
  timer: unknown
}

interface Pending {
  id: number
  origId: number
  query: Buffer
  qEnd: number
  /** Over TCP: the client's transport. */
  tcp: boolean
  order: Upstream[]
  /** The next upstream of `order` to ask. */
  next: number
  attempts: Set<Attempt>
  /** When it fires, the next upstream is asked too (the ones asked keep their chance). */
  hedge: unknown
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

/**
 * Failover: the first upstream (healthy ones first, in configured order) is
 * asked; if it has not answered after an adaptive timeout — 3 × its smoothed
 * round trip, within [hedgeMinMs, hedgeMaxMs] — the next one is asked too,
 * and the first answer from either wins. An error (ICMP refused) moves on at
 * once; each attempt gives up after `timeoutMs`. An upstream that misses its
 * timeout 3 times in a row, errs or times out is down: asked after the healthy
 * ones for `downMs`, and meanwhile sent a copy of a live query every `probeMs`
 * in the background (nobody waits for it), whose answer brings it back at once.
 */
export class Forwarder {
  private readonly pending = new Map<number, Pending>()
  private readonly health = new Map<string, Health>()
  private readonly ids = new IdPool()
  private closed = false
  private udpOpen = 0
  private readonly clock: Clock
  private readonly hedgeMin: number
  private readonly hedgeMax: number
  private readonly probeMs: number

  constructor (private readonly opts: ForwarderOptions) {
    this.clock = opts.clock ?? realClock
    this.hedgeMin = opts.hedgeMinMs ?? 100
    this.hedgeMax = Math.max(this.hedgeMin, Math.min(opts.hedgeMaxMs ?? 800, opts.timeoutMs))
    this.probeMs = opts.probeMs ?? 1000
  }

  get inFlight (): number {
    return this.pending.size
  }

  /** UDP sockets open now (one per UDP attempt in flight). */
  get udpSockets (): number {
    return this.udpOpen
  }

  /** What is known of each configured upstream (for status and tests). */
  upstreamHealth (): UpstreamHealth[] {
    const now = this.clock.now()
    return this.opts.upstreams().map((u) => {
      const h = this.health.get(upstreamKey(u))
      return { upstream: upstreamKey(u), srttMs: h?.srtt, misses: h?.misses ?? 0, downUntil: h !== undefined && h.downUntil > now ? h.downUntil : 0 }
    })
  }

  /** Whether every upstream failed lately (none, too): the server then serves stale answers without waiting. */
  allDown (): boolean {
    const now = this.clock.now()
    return this.opts.upstreams().every((u) => this.isDown(upstreamKey(u), now))
  }

  /** The adaptive timeout of `u`: how long to wait for it before asking the next one too. */
  hedgeMs (u: Upstream): number {
    const srtt = this.health.get(upstreamKey(u))?.srtt ?? INITIAL_SRTT_MS
    return Math.min(this.hedgeMax, Math.max(this.hedgeMin, Math.ceil(3 * srtt)))
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
    const order = this.order(list)
    this.probeDown(order, query, qEnd, tcp)
    this.start(query, qEnd, tcp, order, done)
  }

  private start (query: Buffer, qEnd: number, tcp: boolean, order: Upstream[], done: ForwardDone): void {
    let id = this.ids.next()
    while (this.pending.has(id)) id = this.ids.next()
    const origId = query.readUInt16BE(0)
    query.writeUInt16BE(id, 0)
    const p: Pending = { id, origId, query, qEnd, tcp, order, next: 0, attempts: new Set(), hedge: undefined, last: undefined, done }
    this.pending.set(id, p)
    this.askNext(p)
  }

  /**
   * A copy of this query to each down upstream whose probe is due, except the
   * first asked (then the query itself is the probe). Its answer counts only
   * for the upstream's health.
   */
  private probeDown (order: readonly Upstream[], query: Buffer, qEnd: number, tcp: boolean): void {
    const now = this.clock.now()
    for (let i = 1; i < order.length; i++) {
      const u = order[i]!
      const key = upstreamKey(u)
      if (!this.isDown(key, now)) continue
      const h = this.healthOf(key)
      if (h.nextProbe > now || this.pending.size >= this.opts.maxPending) continue
      h.nextProbe = now + this.probeMs
      this.start(Buffer.from(query), qEnd, tcp, [u], () => undefined)
    }
  }

  /** Healthy upstreams first, in configured order, then those that failed lately. */
  private order (list: readonly Upstream[]): Upstream[] {
    const now = this.clock.now()
    const up: Upstream[] = []
    const down: Upstream[] = []
    for (const u of list) (this.isDown(upstreamKey(u), now) ? down : up).push(u)
    return down.length === 0 ? up : [...up, ...down]
  }

  private healthOf (key: string): Health {
    let h = this.health.get(key)
    if (h === undefined) {
      if (this.health.size > 256) this.health.clear() // upstreams come and go with resolv.conf
      h = { srtt: undefined, misses: 0, downUntil: 0, nextProbe: 0 }
      this.health.set(key, h)
    }
    return h
  }

  private isDown (key: string, now: number): boolean {
    const h = this.health.get(key)
    return h !== undefined && h.downUntil > now
  }

  private markDown (u: Upstream): void {
    const h = this.healthOf(upstreamKey(u))
    const now = this.clock.now()
    if (h.downUntil <= now) h.nextProbe = now + this.probeMs
    h.downUntil = now + this.opts.downMs
  }

  /** An answer from `u` after `rtt` ms: it is up, and its round trip is learnt. */
  private answered (u: Upstream, rtt: number): void {
    const h = this.healthOf(upstreamKey(u))
    h.srtt = h.srtt === undefined ? rtt : h.srtt + (rtt - h.srtt) / 8
    h.misses = 0
    h.downUntil = 0
  }

  private live (p: Pending): boolean {
    return this.pending.get(p.id) === p
  }

  /** Ask the next upstream of `p`'s order, and arm the hedge towards the one after. */
  private askNext (p: Pending): void {
    this.clock.clearTimeout(p.hedge)
    p.hedge = undefined
    const u = p.order[p.next]
    if (u === undefined) return
    if (p.next > 0) this.opts.metrics.upstreamRetries++
    p.next++
    this.attempt(p, u, p.tcp)
    if (p.next < p.order.length) {
      p.hedge = this.clock.setTimeout(() => this.onHedge(p, u), this.hedgeMs(u))
    }
  }

  /** `u` did not answer within its adaptive timeout: ask the next upstream too. */
  private onHedge (p: Pending, u: Upstream): void {
    p.hedge = undefined
    if (!this.live(p)) return
    this.opts.metrics.upstreamTimeouts++
    const h = this.healthOf(upstreamKey(u))
    if (++h.misses >= MISSES_DOWN) this.markDown(u)
    this.askNext(p)
  }

  private attempt (p: Pending, u: Upstream, tcp: boolean): void {
    const a: Attempt = { u, tcp, sentAt: this.clock.now(), udpSock: undefined, tcpSock: undefined, timer: undefined }
    p.attempts.add(a)
    a.timer = this.clock.setTimeout(() => this.onTimeout(p, a), this.opts.timeoutMs)
    if (tcp) this.sendTcp(p, a)
    else this.sendUdp(p, a)
  }

  private current (p: Pending, a: Attempt): boolean {
    return p.attempts.has(a) && this.live(p)
  }

  /** One UDP attempt: a fresh socket (fresh source port) connected to its upstream. */
  private sendUdp (p: Pending, a: Attempt): void {
    const u = a.u
    const sock = createSocket({ type: isIPv6(u.ip) ? 'udp6' : 'udp4', lookup: literalLookup })
    a.udpSock = sock
    this.udpOpen++
    const current = (): boolean => a.udpSock === sock && this.current(p, a)
    sock.on('message', (msg, rinfo) => {
      try {
        if (current()) this.onUdpMessage(p, a, sock, msg, rinfo)
      } catch (err) {
        this.opts.log?.error({ err }, 'dns forwarder: response handler failed')
      }
    })
    // A connected UDP socket reports ICMP errors (ECONNREFUSED) here, and a
    // failed bind (EMFILE) too: this attempt ends at once.
    sock.on('error', (err) => {
      try {
        if (current()) this.fail(p, a, err)
      } catch (e) {
        this.opts.log?.error({ err: e }, 'dns forwarder: error handler failed')
      }
    })
    try {
      sock.connect(u.port, u.ip, () => {
        if (!current()) return
        sock.send(p.query, (err) => { if (err && current()) this.fail(p, a, err) })
      })
    } catch (err) {
      this.fail(p, a, err)
    }
  }

  /** What came back on an attempt's own socket: its answer, or a forgery (then ask again over TCP). */
  private onUdpMessage (p: Pending, a: Attempt, sock: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    // The kernel already drops datagrams from anyone but the connected peer;
    // checked again so that a change there cannot go unnoticed.
    // A datagram can also arrive in the moment between bind and connect.
    let peer: { address: string, port: number } | undefined
    try { peer = sock.remoteAddress() } catch { peer = undefined }
    if (peer !== undefined && rinfo.port === peer.port && rinfo.address === peer.address && this.isAnswerTo(p, msg)) {
      this.onResponse(p, a, msg)
      return
    }
    this.opts.metrics.spoofedAnswers++
    this.opts.log?.debug({ upstream: upstreamKey(a.u), from: `${rinfo.address}:${rinfo.port}` }, 'dns forwarder: a UDP answer did not match its query; asking again over TCP')
    this.stopAttempt(p, a)
    this.opts.metrics.upstreamRetries++
    this.attempt(p, a.u, true)
  }

  private onTimeout (p: Pending, a: Attempt): void {
    if (!this.current(p, a)) return
    this.opts.metrics.upstreamTimeouts++
    this.markDown(a.u)
    this.attemptEnded(p, a)
  }

  private fail (p: Pending, a: Attempt, err: unknown): void {
    this.opts.metrics.upstreamErrors++
    this.opts.log?.debug({ err, upstream: upstreamKey(a.u) }, 'dns upstream failed')
    this.markDown(a.u)
    this.attemptEnded(p, a)
  }

  /** An attempt ended without an answer to give: wait for the others, else ask the next, else give up. */
  private attemptEnded (p: Pending, a: Attempt): void {
    this.stopAttempt(p, a)
    if (p.attempts.size > 0) return
    if (p.next < p.order.length) {
      this.askNext(p)
      return
    }
    this.finish(p, p.last ?? null)
  }

  private stopAttempt (p: Pending, a: Attempt): void {
    p.attempts.delete(a)
    this.clock.clearTimeout(a.timer)
    a.timer = undefined
    if (a.udpSock !== undefined) {
      const s = a.udpSock
      a.udpSock = undefined
      this.udpOpen--
      try { s.close() } catch { /* already closed */ }
    }
    if (a.tcpSock !== undefined) {
      a.tcpSock.destroy()
      a.tcpSock = undefined
    }
  }

  private finish (p: Pending, resp: Buffer | null): void {
    for (const a of [...p.attempts]) this.stopAttempt(p, a)
    this.clock.clearTimeout(p.hedge)
    p.hedge = undefined
    this.pending.delete(p.id)
    if (resp !== null) resp.writeUInt16BE(p.origId, 0)
    p.done(resp)
  }

  /** A response from the upstream of attempt `a`. */
  private onResponse (p: Pending, a: Attempt, resp: Buffer): void {
    this.answered(a.u, this.clock.now() - a.sentAt)
    const rcode = rcodeOf(resp)
    if (rcode === RCODE_SERVFAIL || rcode === RCODE_REFUSED) {
      p.last = resp
      this.attemptEnded(p, a)
      return
    }
    this.finish(p, resp)
  }

  /** A response with `p`'s id and question. */
  private isAnswerTo (p: Pending, resp: Buffer): boolean {
    return resp.length >= HEADER && (resp[2]! & 0x80) !== 0 && resp.readUInt16BE(0) === p.id &&
      sameQuestion(p.query, p.qEnd, resp)
  }

  private sendTcp (p: Pending, a: Attempt): void {
    const u = a.u
    const sock = connect({ host: u.ip, port: u.port, lookup: literalLookup })
    a.tcpSock = sock
    const current = (): boolean => a.tcpSock === sock && this.current(p, a)
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
        if (this.isAnswerTo(p, resp)) this.onResponse(p, a, resp)
        else this.fail(p, a, ferryError('INTERNAL', 'upstream answered another question over TCP'))
      } catch (err) {
        this.opts.log?.error({ err }, 'dns forwarder: tcp handler failed')
      }
    })
    sock.on('error', (err) => { if (current()) this.fail(p, a, err) })
    sock.on('close', () => {
      if (current()) this.fail(p, a, ferryError('INTERNAL', 'upstream closed the TCP connection'))
    })
  }

  /** Drop every pending query (their callbacks are not called) and close the sockets. */
  async close (): Promise<void> {
    this.closed = true
    for (const p of this.pending.values()) {
      for (const a of [...p.attempts]) this.stopAttempt(p, a)
      this.clock.clearTimeout(p.hedge)
    }
    this.pending.clear()
  }
}
