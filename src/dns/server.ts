/**
 * ferry's DNS server: UDP and TCP on each listen address (the gateway address
 * of every ferry network, port 53), answering the names of a `RecordSource`
 * scoped by the asking client's networks, forwarding everything else upstream.
 *
 * A question `NAME.<search domain>` with NAME one of ferry's names in the
 * client's scope is answered at once too (search.ts), so the search path a stub
 * resolver walks for a short name never goes upstream.
 *
 * Safe by default: a source that is no ferry network's client gets REFUSED (no
 * open resolver) over UDP and is closed at accept over TCP; each source is
 * rate-limited (excess is dropped silently: a reply would serve a reflection
 * attack); a malformed query gets FORMERR when its header can be read and is
 * dropped otherwise; every handler is wrapped, so a packet never crashes the
 * process (a throw counts as `internalErrors`). TCP connections are bounded in
 * number, time and queued bytes (tcp.ts); forwarded queries leave from a fresh
 * source port each and their answers are checked (upstream.ts).
 *
 * TTL: ferry's answers default to TTL 0, as aardvark-dns does. Answers come from
 * a local map in microseconds, so a cache in the container saves nothing, while
 * any TTL keeps a removed or recreated container's old address alive in caches
 * (Docker's 600 s is a known pain). Callers that want some caching set `ttlSeconds`.
 *
 * Hot path (UDP): by default the batched addon (batch.ts: up to 64 datagrams per
 * `recvmmsg`, their answers in one `sendmmsg`; `udp: 'dgram'` or a missing addon:
 * `node:dgram`'s 'message' event, one datagram at a time) → `udpAnswer`, the same
 * for both → hand parse (wire.ts) → Map lookup of precomputed records
 * (answers.ts) → one Buffer allocated → into the batch's output (or sent).
 * dgram-as-promised binds and closes the sockets, but packets are taken from the
 * underlying socket's 'message' event: its `recv()` loop costs a promise and
 * three listener changes per packet (measured here with dnsperf at 100 in
 * flight: 40–58k q/s against 60–61k for the event, no loss either way). The
 * sockets get a synchronous `lookup` (listen and client addresses are literal
 * IPs), which spares each `send` a round through dns.lookup and a tick.
 */
import { createServer, isIPv6, type Server as TcpServer, type Socket as TcpSocket } from 'node:net'
import type { RemoteInfo } from 'node:dgram'
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised'
import dnsPacket, { type DecodedPacket, type RecordType } from 'dns-packet'
import type { Logger } from 'pino'
import { ErrorList, toFerryError } from '../errors/errors.js'
import { AnswerCache, rrsFor } from './answers.js'
import { type BatchBinding, BatchSocket, loadBatch } from './batch.js'
import { cacheKey, type CacheOptions, DnsCache } from './cache.js'
import { HelperPool } from './helpers.js'
import { type DnsMetrics, newMetrics } from './metrics.js'
import { RateLimiter, rateKey, type RateLimit } from './ratelimit.js'
import { RecordSet, type RecordDelta, type RecordSource } from './records.js'
import { SearchDomains } from './search.js'
import { TcpFront, tcpLimits, type TcpLimits, type TcpStats, type TcpTimers } from './tcp.js'
import { type Clock, Forwarder, literalLookup, realClock, ResolvConfUpstreams, StaticUpstreams, type Upstream, type UpstreamHealth, type UpstreamSource, upstreamKey } from './upstream.js'
import {
  buildAnswer, buildEmpty, CLASS_IN, isTruncated, keyToName, Parse, parseQuery, Query, rcodeOf,
  RCODE_BADVERS, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, setEdns,
  TYPE_A, TYPE_AAAA, TYPE_PTR,
} from './wire.js'

export interface ListenAddress {
  ip: string
  /** 53 in production; 0 picks a free port (the same for UDP and TCP). */
  port: number
}

export interface UpstreamConfig {
  /** `--dns`: `IP` or `IP:port` or `[IPv6]:port`. When given, resolv.conf is not read. */
  servers?: readonly string[]
  /** Default /etc/resolv.conf (re-read when it changes). */
  resolvConf?: string
  /** Per upstream, default 2000 ms. */
  timeoutMs?: number
  /** Period of the resolv.conf stat check, default 5000 ms. */
  pollMs?: number
  /** How long a failed upstream is tried after the others, default 30 s. */
  downMs?: number
  /** Forwarded queries in flight at most (more get SERVFAIL), default 1024. */
  maxPending?: number
}

export interface DnsServerOptions {
  records: RecordSource
  /**
   * The networks whose names the client at `srcIp` may see: those it has an
   * endpoint on. [] means not a ferry client: REFUSED. Called per query, so it
   * should be a map lookup; returning the same array while membership is
   * unchanged lets the server find its precomputed answers without allocating.
   */
  clientNetworks: (srcIp: string) => readonly string[]
  upstreams?: UpstreamConfig
  /** TTL of ferry's own answers, default 0 (see the module comment). */
  ttlSeconds?: number
  /** Per source address; default 2000/s with bursts of 4000. false: no limit (benchmarks). */
  rateLimit?: RateLimit | false
  /** Limits of DNS over TCP; see tcp.ts for each one and its default (`DEFAULT_TCP_LIMITS`). */
  tcp?: Partial<TcpLimits>
  /** Timers of the TCP limits (tests pass fake ones); default the real ones. */
  tcpTimers?: TcpTimers
  /**
   * UDP helper processes sharing the listen sockets (see helpers.ts), default 0.
   * One doubles the throughput on a 2-core host; each costs a Node process
   * (~40 MB). Rate limits then apply per process.
   */
  udpHelpers?: number
  /**
   * How UDP is read and answered: 'batch' — the native addon (batch.ts:
   * `recvmmsg`/`sendmmsg`, many datagrams per wake-up of the event loop);
   * 'dgram' — `node:dgram`, one datagram per event. Default 'auto': 'batch' when
   * the addon loads and no UDP helper is asked for (helpers share `node:dgram`
   * sockets), else 'dgram' (and a log line says why).
   */
  udp?: UdpMode
  /** How long a helper trusts what it learnt of a client's networks, default 1000 ms. */
  helperClientTtlMs?: number
  /**
   * The search domains containers are given (search.ts): `NAME.<domain>` with
   * NAME one of ferry's names in the client's scope is answered at once. Default:
   * the `search` line of the host's resolv.conf (`upstreams.resolvConf`), as the
   * engine gives containers, re-read when it changes.
   */
  searchDomains?: readonly string[]
  /** The cache of forwarded answers (cache.ts; defaults there); false: none. */
  cache?: Partial<CacheOptions> | false
  /** Time and timers of the cache and the forwarder (tests pass fake ones); default the real ones. */
  clock?: Clock
  log?: Logger
}

export type UdpMode = 'auto' | 'batch' | 'dgram'
export const UDP_MODES: readonly UdpMode[] = ['auto', 'batch', 'dgram']

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 2000, burst: 4000 }
const MAX_TCP_MESSAGE = 65535

interface Listener {
  key: string
  addr: ListenAddress
  /** One of the two: `node:dgram` (dgram mode) or the addon's socket (batch mode). */
  udp: SocketAsPromised | undefined
  batch: BatchSocket | undefined
  tcp: TcpServer
  conns: Set<TcpSocket>
}

/** What `handle` decided: a response to send, nothing, or "forward it". */
const FORWARD = Symbol('forward')
type Outcome = Buffer | undefined | typeof FORWARD

function listenKey (a: ListenAddress): string {
  return upstreamKey(a)
}

function listenTcp (server: TcpServer, ip: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen({ host: ip, port, exclusive: true, ipv6Only: isIPv6(ip) }, () => {
      server.off('error', onError)
      const a = server.address()
      resolve(typeof a === 'object' && a !== null ? a.port : port)
    })
  })
}

function closeTcp (server: TcpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

export class DnsServer {
  readonly metrics: DnsMetrics = newMetrics()
  private readonly listeners = new Map<string, Listener>()
  private readonly q = new Query()
  private readonly limiter: RateLimiter | undefined
  private readonly upstreamSource: UpstreamSource
  /** The host's resolv.conf, when its nameservers or its search list are used. */
  private readonly resolv: ResolvConfUpstreams | undefined
  private readonly fixedSearch: SearchDomains | undefined
  private readonly forwarder: Forwarder
  private readonly clock: Clock
  /** Forwarded answers (main process only: helpers pass every miss of theirs here). */
  private readonly fwdCache: DnsCache | undefined
  private readonly ttl: number
  private readonly log: Logger | undefined
  private cache: AnswerCache
  private dirty = true
  private started: Promise<void> | undefined
  private closed = false
  private readonly tcp: TcpFront
  private upstreamView: { from: readonly Upstream[], listeners: number, list: readonly Upstream[] } | undefined
  private listenerVersion = 0
  private helpers: HelperPool | undefined
  /** The addon when UDP is served in batches (batch.ts); undefined: `node:dgram`. */
  private readonly batchLib: BatchBinding | undefined
  /** The search list the helpers were given last. */
  private helperSearch: SearchDomains | undefined
  private helperPush: NodeJS.Immediate | undefined
  private readonly onChange = (): void => {
    this.dirty = true
    if (this.helpers !== undefined && this.helperPush === undefined) {
      this.helperPush = setImmediate(() => {
        this.helperPush = undefined
        this.helpers?.records(this.opts.records.records())
      })
    }
  }

  /** A few entries changed: patch the index in place (no rebuild); the answers are re-encoded lazily. */
  private readonly onDelta = (d: RecordDelta): void => {
    if (!this.dirty) {
      this.cache.records.apply(d)
      this.cache = new AnswerCache(this.cache.records, this.ttl, this.searchDomains())
    }
    // A full push already queued reads the records after this delta.
    if (this.helpers !== undefined && this.helperPush === undefined) this.helpers.delta(d)
  }

  private readonly isClient = (src: string): boolean => this.opts.clientNetworks(src).length > 0

  constructor (private readonly opts: DnsServerOptions) {
    this.log = opts.log
    this.ttl = opts.ttlSeconds ?? 0
    this.clock = opts.clock ?? realClock
    this.fwdCache = opts.cache === false ? undefined : new DnsCache(opts.cache ?? {}, this.metrics)
    const rl = opts.rateLimit ?? DEFAULT_RATE_LIMIT
    this.limiter = rl === false ? undefined : new RateLimiter(rl)
    const up = opts.upstreams ?? {}
    this.fixedSearch = opts.searchDomains === undefined ? undefined : new SearchDomains(opts.searchDomains)
    this.resolv = up.servers === undefined || this.fixedSearch === undefined
      ? new ResolvConfUpstreams(up.resolvConf ?? '/etc/resolv.conf', up.pollMs ?? 5000, up.servers === undefined ? opts.log : undefined)
      : undefined
    this.upstreamSource = up.servers !== undefined ? new StaticUpstreams(up.servers) : this.resolv!
    this.forwarder = new Forwarder({
      upstreams: () => this.upstreams(),
      timeoutMs: up.timeoutMs ?? 2000,
      downMs: up.downMs ?? 30_000,
      maxPending: up.maxPending ?? 1024,
      metrics: this.metrics,
      clock: this.clock,
      log: opts.log,
    })
    this.tcp = new TcpFront({
      limits: tcpLimits(opts.tcp),
      metrics: this.metrics,
      isClient: this.isClient,
      onQuery: (src, msg, reply) => this.onTcpMessage(src, msg, reply),
      onError: (err) => this.internalError(err),
      timers: opts.tcpTimers,
    })
    this.cache = new AnswerCache(RecordSet.empty(), this.ttl, this.searchDomains())
    this.batchLib = this.chooseUdp(opts.udp ?? 'auto', opts.udpHelpers ?? 0)
    opts.records.on('change', this.onChange)
    opts.records.on('delta', this.onDelta)
  }

  /** The addon when batches are wanted and it loads; else undefined (`node:dgram`), said in the log. */
  private chooseUdp (mode: UdpMode, helpers: number): BatchBinding | undefined {
    if (mode === 'dgram') return undefined
    if (mode === 'auto' && helpers > 0) {
      this.log?.info('dns: UDP through node:dgram (the UDP helpers share its sockets)')
      return undefined
    }
    const lib = loadBatch()
    if (lib instanceof Error) {
      this.log?.warn({ err: lib }, `dns: ${lib.message}`)
      return undefined
    }
    if (helpers > 0) this.log?.warn('dns: --dns-udp batch serves UDP without helpers; --dns-udp-helpers is ignored')
    return lib
  }

  /** How UDP is served: 'batch' (the addon) or 'dgram'. */
  get udpMode (): 'batch' | 'dgram' {
    return this.batchLib === undefined ? 'dgram' : 'batch'
  }

  /** The records as the server sees them now (for `ferry dns ls`). */
  records (): RecordSet {
    return this.answers().records
  }

  /** The upstreams queries go to: configured or from resolv.conf, less ferry's own listen addresses. */
  upstreams (): readonly Upstream[] {
    const from = this.upstreamSource.current()
    const v = this.upstreamView
    if (v !== undefined && v.from === from && v.listeners === this.listenerVersion) return v.list
    const own = new Set(this.listeners.keys())
    const list = from.filter((u) => !own.has(upstreamKey(u)))
    this.upstreamView = { from, listeners: this.listenerVersion, list }
    return list
  }

  /**
   * Tell the server that some client's networks changed (a container joined or
   * left a network). Only UDP helpers cache that; without helpers this is a no-op.
   */
  clientsChanged (): void {
    this.helpers?.flushClients()
  }

  /** The forwarded-answer cache's size and counters; undefined when it is off. */
  cacheStats (): { entries: number, bytes: number, hits: number, misses: number, evictions: number, stale: number, prefetches: number, maxEntries: number, maxBytes: number } | undefined {
    const c = this.fwdCache
    if (c === undefined) return undefined
    const m = this.metrics
    return {
      entries: m.cacheEntries, bytes: m.cacheBytes, hits: m.cacheHits, misses: m.cacheMisses, evictions: m.cacheEvictions,
      stale: m.cacheStale, prefetches: m.cachePrefetches, maxEntries: c.opts.maxEntries, maxBytes: c.opts.maxBytes,
    }
  }

  /** Each upstream's smoothed round trip and state (for `ferry dns cache`). */
  upstreamHealth (): UpstreamHealth[] {
    return this.forwarder.upstreamHealth()
  }

  /** Empty the forwarded-answer cache; returns how many entries went. */
  cacheFlush (): number {
    return this.fwdCache?.flush() ?? 0
  }

  /** TCP connections and the answer bytes they hold now. */
  tcpStats (): TcpStats {
    return this.tcp.stats
  }

  /** UDP sockets open now towards upstreams (one per forwarded UDP query in flight). */
  get upstreamSockets (): number {
    return this.forwarder.udpSockets
  }

  /** Packets the UDP helpers passed to this process so far (0 without helpers). */
  helperDeferred (): number {
    return this.helpers?.deferred ?? 0
  }

  /** UDP helper processes serving now (0 without helpers, or while they start). */
  helpersReady (): number {
    return this.helpers?.readyCount ?? 0
  }

  /** Addresses listened on now. */
  addresses (): ListenAddress[] {
    return [...this.listeners.values()].map((l) => ({ ...l.addr }))
  }

  /**
   * Listen on each address (UDP and TCP) not yet listened on. The address must
   * exist on the host (the network's gateway address is configured first).
   * Returns the addresses with their ports; throws one error naming every address
   * that failed (the others stay open).
   */
  async listen (addrs: readonly ListenAddress[]): Promise<ListenAddress[]> {
    await this.start()
    const errors = new ErrorList()
    const out: ListenAddress[] = []
    for (const a of addrs) {
      const known = this.listeners.get(listenKey(a))
      if (known !== undefined) {
        out.push({ ...known.addr })
        continue
      }
      await errors.run(`dns: cannot listen on ${listenKey(a)}`, async () => {
        const l = await this.bind(a)
        this.listeners.set(l.key, l)
        this.listenerVersion++
        if (l.udp !== undefined) this.helpers?.listen(l.key, l.udp.socket)
        out.push({ ...l.addr })
      })
    }
    errors.throwIfAny('dns: cannot listen')
    return out
  }

  /** Stop listening on these addresses (unknown ones are ignored). */
  async unlisten (addrs: readonly ListenAddress[]): Promise<void> {
    for (const a of addrs) {
      const l = this.listeners.get(listenKey(a))
      if (l === undefined) continue
      this.listeners.delete(l.key)
      this.listenerVersion++
      await this.closeListener(l)
    }
  }

  /** Listen on exactly these addresses: open the missing ones, close the others. */
  async setAddresses (addrs: readonly ListenAddress[]): Promise<ListenAddress[]> {
    const want = new Set(addrs.map(listenKey))
    const stale = [...this.listeners.values()].filter((l) => !want.has(l.key))
    await this.unlisten(stale.map((l) => l.addr))
    return await this.listen(addrs)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.tcp.closed = true
    this.opts.records.off('change', this.onChange)
    this.opts.records.off('delta', this.onDelta)
    this.upstreamSource.close()
    this.resolv?.close()
    clearImmediate(this.helperPush)
    await this.helpers?.close()
    const ls = [...this.listeners.values()]
    this.listeners.clear()
    await Promise.all(ls.map((l) => this.closeListener(l)))
    await this.forwarder.close()
  }

  /**
   * Resolve a name as a client on `networks` would (for `ferry dns query`):
   * ferry's records, else the upstreams. Not rate-limited.
   */
  async query (name: string, type: RecordType, networks: readonly string[]): Promise<DecodedPacket> {
    const msg = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] })
    const out = this.handle(msg, '', networks, true)
    if (out === undefined) throw toFerryError(new Error('query was dropped'), 'INVALID_REQUEST', `dns query ${name}`)
    if (out !== FORWARD) return dnsPacket.decode(out)
    const resp = await new Promise<Buffer>((resolve) => this.forward(msg, this.q.clone(), true, resolve))
    return dnsPacket.decode(resp)
  }

  private start (): Promise<void> {
    if (this.started === undefined) {
      this.started = this.resolv?.start() ?? Promise.resolve()
      const n = this.batchLib === undefined ? this.opts.udpHelpers ?? 0 : 0
      if (n > 0) {
        this.helpers = new HelperPool({
          count: n,
          ttl: this.ttl,
          rateLimit: this.opts.rateLimit ?? DEFAULT_RATE_LIMIT,
          clientTtlMs: this.opts.helperClientTtlMs ?? 1000,
          onQuery: (key, msg, address, port, known) => this.onHelperQuery(key, msg, address, port, known),
          metrics: this.metrics,
          log: this.log,
        })
        this.helpers.start(() => this.opts.records.records())
      }
    }
    return this.started
  }

  /**
   * A packet a helper passed on: handle it as read here, and teach the helpers the client's networks when
   * this one did not know them (an external name from a known client is passed on without costing a second
   * message back, which halved the q/s of cached external names with one helper).
   */
  private onHelperQuery (key: string, msg: Buffer, address: string, port: number, known: boolean): void {
    const l = this.listeners.get(key)
    if (l === undefined) return
    this.onUdp(l, msg, { address, port, family: isIPv6(address) ? 'IPv6' : 'IPv4', size: msg.length })
    if (!known) this.helpers?.client(address, this.opts.clientNetworks(address))
  }

  /** The search domains now (the same object while they do not change). */
  searchDomains (): SearchDomains {
    return this.fixedSearch ?? this.resolv?.search ?? SearchDomains.none
  }

  private answers (): AnswerCache {
    const search = this.searchDomains()
    if (this.dirty) {
      this.dirty = false
      // The old index goes before the new one is built (only the cached names it knew are kept), and the
      // entries come one at a time: at 100,000 remote endpoints neither a second index nor a list of them.
      const knewBefore = this.cachedNamesKnown(this.cache.records)
      this.cache = new AnswerCache(RecordSet.empty(), this.ttl, search)
      const src = this.opts.records
      this.cache = new AnswerCache(RecordSet.from(src.each?.() ?? src.records()), this.ttl, search)
      this.flushNewNames(knewBefore, this.cache.records)
    } else if (this.cache.search !== search) {
      this.cache = new AnswerCache(this.cache.records, this.ttl, search)
      this.flushNewNames(undefined, this.cache.records)
    }
    // Helpers learn the search list from here: what they cannot answer comes here first.
    if (this.helpers !== undefined && this.helperSearch !== search) {
      this.helperSearch = search
      this.helpers.search(search.domains)
    }
    return this.cache
  }

  /**
   * Drop cached upstream answers for names ferry starts answering (known in
   * some network now, in none before: not in `knewBefore`), itself or as a search
   * expansion (with `knewBefore` undefined, the search list changed: every name
   * ferry answers through it). Clients of that network get ferry's answer anyway
   * (its records come first); this keeps the cache from holding what no one
   * should be told any more.
   */
  private flushNewNames (knewBefore: ReadonlySet<string> | undefined, after: RecordSet): void {
    const c = this.fwdCache
    if (c === undefined || c.size === 0) return
    const known = this.cachedNamesKnown(after)
    for (const key of known) if (knewBefore === undefined || !knewBefore.has(key)) c.flushName(key)
  }

  /** The names of the forward cache that `rs` answers, itself or as a search expansion (none when the cache is empty). */
  private cachedNamesKnown (rs: RecordSet): Set<string> {
    const c = this.fwdCache
    const known = new Set<string>()
    if (c === undefined || c.size === 0) return known
    const nets = rs.networks()
    const search = this.searchDomains()
    const answers = (key: string): boolean => rs.lookup(keyToName(key), nets) !== undefined
    for (const key of c.names()) if (answers(key) || search.stripped(key).some(answers)) known.add(key)
    return known
  }

  /** Ask the upstreams for a cached entry's question again and store the answer (prefetch). */
  private refresh (key: string): void {
    const c = this.fwdCache
    const fresh = c?.queryFor(key)
    if (c === undefined || fresh === undefined) return
    const name = key.slice(0, -6) // the wire name; cacheKey appends six characters
    this.forwarder.forward(fresh.msg, fresh.qEnd, false, (resp) => {
      if (resp === null || !c.store(key, name, resp, fresh.qEnd, this.clock.now())) c.prefetchFailed(key)
    })
  }

  /**
   * One query, any transport. `src` is the client's address ('' with `networks`
   * given, for `query`). Synchronous: a forward is started by the caller.
   */
  private handle (msg: Buffer, src: string, networks: readonly string[] | undefined, tcp: boolean): Outcome {
    const m = this.metrics
    m.queries++
    if (this.limiter !== undefined && networks === undefined && !this.limiter.take(rateKey(src, this.isClient))) {
      m.rateLimited++
      return undefined
    }
    const q = this.q
    let st = parseQuery(msg, q)
    if (st === Parse.Unusual) st = this.validate(msg, q)
    if (st !== Parse.Ok) {
      if (st === Parse.Drop) {
        m.dropped++
        return undefined
      }
      if (st === Parse.NotImp) {
        m.notimp++
        return buildEmpty(msg, q, RCODE_NOTIMP)
      }
      m.formerr++
      return buildEmpty(msg, q, RCODE_FORMERR)
    }
    const t = q.qtype
    if (t === TYPE_A) m.byType.A++
    else if (t === TYPE_AAAA) m.byType.AAAA++
    else if (t === TYPE_PTR) m.byType.PTR++
    else m.byType.other++
    if (q.edns && q.ednsVersion !== 0) {
      m.badvers++
      return buildEmpty(msg, q, RCODE_BADVERS)
    }
    const nets = networks ?? this.opts.clientNetworks(src)
    if (nets.length === 0) {
      m.refused++
      return buildEmpty(msg, q, RCODE_REFUSED)
    }
    if (q.qclass === CLASS_IN) {
      const view = this.answers().view(nets)
      const e = view.get(q.key)
      if (e !== undefined) {
        const rrs = rrsFor(e, t)
        m.answered++
        if (rrs.count === 0) m.nodata++
        const out = buildAnswer(msg, q, rrs, tcp ? MAX_TCP_MESSAGE : q.udpLimit())
        if (isTruncated(out)) m.truncated++
        return out
      }
      if (view.unknownService(q.key)) {
        m.answered++
        return buildEmpty(msg, q, RCODE_NXDOMAIN, false, true)
      }
    }
    // Not ferry's in this scope: the cache, then the upstreams.
    if (this.fwdCache !== undefined) {
      const key = cacheKey(q)
      const hit = this.fwdCache.lookup(key, msg, q, this.clock.now())
      if (hit !== undefined) {
        if (hit.prefetch) this.refresh(key)
        return this.fitted(msg, q, hit.resp, tcp)
      }
    }
    return FORWARD
  }

  /** A query with more than a question and an OPT record: dns-packet checks the rest. */
  private validate (msg: Buffer, q: Query): Parse {
    let p: DecodedPacket
    try {
      p = dnsPacket.decode(msg)
    } catch {
      return Parse.FormErr
    }
    const opts = (p.additionals ?? []).filter((a) => a.type === 'OPT')
    if (opts.length > 1) return Parse.FormErr
    const opt = opts[0]
    if (opt !== undefined && opt.type === 'OPT') setEdns(q, opt.udpPayloadSize, opt.ednsVersion, opt.flags)
    return Parse.Ok
  }

  /** `resp` as this client takes it: over UDP, larger than its limit → empty with TC (it asks again over TCP). */
  private fitted (msg: Buffer, q: Query, resp: Buffer, tcp: boolean): Buffer {
    if (tcp || resp.length <= q.udpLimit()) return resp
    this.metrics.truncated++
    return buildEmpty(msg, q, rcodeOf(resp) & 0x0f, true)
  }

  /**
   * Forward `msg` (the client's query, parsed into `q`) and reply with the
   * upstream's answer (cached on the way), else a stale cached one, else SERVFAIL.
   */
  private forward (msg: Buffer, q: Query, tcp: boolean, reply: (resp: Buffer) => void): void {
    const m = this.metrics
    m.forwarded++
    const c = this.fwdCache
    const key = c === undefined ? '' : cacheKey(q)
    if (c !== undefined && this.forwarder.allDown()) {
      // Every upstream failed lately: a stale answer now (RFC 8767), and the
      // query goes on in the background (it probes them, and refreshes the entry).
      const stale = c.stale(key, msg, q, this.clock.now())
      if (stale !== undefined) {
        reply(this.fitted(msg, q, stale, tcp))
        this.forwarder.forward(Buffer.from(msg), q.qEnd, tcp, (resp) => {
          if (resp !== null) c.store(key, q.key, resp, q.qEnd, this.clock.now())
        })
        return
      }
    }
    this.forwarder.forward(Buffer.from(msg), q.qEnd, tcp, (resp) => {
      try {
        if (resp === null) {
          const stale = c?.stale(key, msg, q, this.clock.now())
          if (stale !== undefined) {
            reply(this.fitted(msg, q, stale, tcp))
            return
          }
          m.servfail++
          reply(buildEmpty(msg, q, RCODE_SERVFAIL))
          return
        }
        m.upstreamAnswers++
        c?.store(key, q.key, resp, q.qEnd, this.clock.now())
        reply(this.fitted(msg, q, resp, tcp))
      } catch (err) {
        this.internalError(err)
      }
    })
  }

  private internalError (err: unknown): void {
    this.metrics.internalErrors++
    this.log?.error({ err }, 'dns: handler failed')
  }

  /**
   * One UDP query, either transport: the answer to send now, or undefined
   * (dropped, or forwarded: the upstream's answer is sent when it comes).
   * `copy`: `msg` is a view of a buffer that is reused after this call (batch).
   */
  private udpAnswer (l: Listener, msg: Buffer, address: string, port: number, copy: boolean): Buffer | undefined {
    this.metrics.udp++
    const out = this.handle(msg, address, undefined, false)
    if (out !== FORWARD) return out
    this.forward(copy ? Buffer.from(msg) : msg, this.q.clone(), false, (resp) => {
      if (this.listeners.get(l.key) === l) this.udpSend(l, resp, port, address)
    })
    return undefined
  }

  private udpSend (l: Listener, buf: Buffer, port: number, address: string): void {
    if (l.batch !== undefined) l.batch.sendTo(buf, port, address)
    else l.udp?.socket.send(buf, port, address)
  }

  private onUdp (l: Listener, msg: Buffer, rinfo: RemoteInfo): void {
    try {
      const out = this.udpAnswer(l, msg, rinfo.address, rinfo.port, false)
      if (out !== undefined) l.udp?.socket.send(out, rinfo.port, rinfo.address)
    } catch (err) {
      this.internalError(err)
    }
  }

  /** A query read from a TCP connection (see tcp.ts); `reply` is called once. */
  private onTcpMessage (src: string, msg: Buffer, reply: (resp: Buffer | undefined) => void): void {
    this.metrics.tcp++
    const out = this.handle(msg, src, undefined, true)
    if (out !== FORWARD) {
      reply(out)
      return
    }
    this.forward(Buffer.from(msg), this.q.clone(), true, reply)
  }

  private async bind (a: ListenAddress): Promise<Listener> {
    const six = isIPv6(a.ip)
    const tries = a.port === 0 ? 20 : 1
    let lastErr: unknown
    for (let i = 0; i < tries; i++) {
      let udp: SocketAsPromised | undefined
      let batch: BatchSocket | undefined
      let port: number
      if (this.batchLib !== undefined) {
        batch = new BatchSocket(this.batchLib, six ? 6 : 4, a.ip, a.port)
        port = batch.port
      } else {
        udp = DgramAsPromised.createSocket({ type: six ? 'udp6' : 'udp4', lookup: literalLookup, ipv6Only: six })
        port = (await udp.bind({ port: a.port, address: a.ip, exclusive: true })).port
      }
      const addr: ListenAddress = { ip: a.ip, port }
      const tcp = createServer()
      try {
        await listenTcp(tcp, a.ip, port)
      } catch (err) {
        lastErr = err
        batch?.close()
        await udp?.close().catch(() => undefined)
        if (a.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue
        throw err
      }
      const l: Listener = { key: listenKey(addr), addr, udp, batch, tcp, conns: new Set() }
      if (batch !== undefined) {
        batch.start((msg, address, p) => this.udpAnswer(l, msg, address, p, true), (err) => this.internalError(err), () => { this.metrics.dropped++ })
      } else if (udp !== undefined) {
        try { udp.socket.setRecvBufferSize(1 << 20) } catch { /* capped by net.core.rmem_max */ }
        udp.socket.on('message', (msg, rinfo) => this.onUdp(l, msg, rinfo))
        udp.socket.on('error', (err) => {
          this.metrics.dropped++
          this.log?.debug({ err, listen: l.key }, 'dns: udp socket error')
        })
      }
      tcp.on('connection', (sock) => this.tcp.accept(sock, l.conns))
      tcp.on('error', (err) => this.log?.warn({ err, listen: l.key }, 'dns: tcp server error'))
      return l
    }
    throw lastErr
  }

  private async closeListener (l: Listener): Promise<void> {
    this.helpers?.unlisten(l.key)
    for (const c of l.conns) c.destroy()
    l.conns.clear()
    l.batch?.close()
    await Promise.all([l.udp?.close().catch(() => undefined), closeTcp(l.tcp)])
  }
}
