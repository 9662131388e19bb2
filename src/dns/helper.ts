/**
 * The entry point of a UDP helper process (see helpers.ts): it reads the listen
 * sockets it is handed, answers queries from known clients for ferry's names,
 * and passes every other packet back to the main process. It exits when the
 * main process goes away (the IPC channel closes).
 */
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram'
import { AnswerCache, rrsFor } from './answers.js'
import { type DnsMetrics, newMetrics } from './metrics.js'
import { RateLimiter, rateKey } from './ratelimit.js'
import { RecordSet } from './records.js'
import { SearchDomains } from './search.js'
import { HELPER_FLAG, type HelperCommand, type HelperEvent } from './helpers.js'
import { buildAnswer, buildEmpty, CLASS_IN, isTruncated, Parse, parseQuery, Query, RCODE_REFUSED, TYPE_A, TYPE_AAAA, TYPE_PTR } from './wire.js'

const MAX_CLIENTS = 65_536
/** Packets on their way to the main process at most; more are dropped (main is overloaded). */
const MAX_DEFERRED = 2048

class Helper {
  private cache = new AnswerCache(RecordSet.empty(), 0)
  private ttl = 0
  private search = SearchDomains.none
  private limiter: RateLimiter | undefined
  private readonly clients = new Map<string, readonly string[]>()
  private readonly sockets = new Map<string, UdpSocket>()
  private readonly q = new Query()
  private metrics: DnsMetrics = newMetrics()
  private deferred = 0
  private flushTimer: NodeJS.Timeout | undefined

  constructor (private readonly send: (ev: HelperEvent, cb: (err: Error | null) => void) => boolean) {
    const report = setInterval(() => this.report(), 1000)
    report.unref()
  }

  command (cmd: HelperCommand, handle: unknown): void {
    switch (cmd.t) {
      case 'init':
        this.ttl = cmd.ttl
        this.limiter = cmd.rateLimit === false ? undefined : new RateLimiter(cmd.rateLimit)
        clearInterval(this.flushTimer)
        this.flushTimer = setInterval(() => this.clients.clear(), cmd.clientTtlMs)
        this.flushTimer.unref()
        return
      case 'records':
        this.cache = new AnswerCache(RecordSet.from(cmd.entries), this.ttl, this.search)
        this.clients.clear()
        return
      case 'search':
        this.search = new SearchDomains(cmd.domains)
        this.cache = new AnswerCache(this.cache.records, this.ttl, this.search)
        return
      case 'delta':
        this.cache.records.apply(cmd.delta)
        this.cache = new AnswerCache(this.cache.records, this.ttl, this.search)
        return
      case 'client':
        if (this.clients.size >= MAX_CLIENTS) this.clients.clear()
        this.clients.set(cmd.ip, cmd.networks)
        return
      case 'flush-clients':
        this.clients.clear()
        return
      case 'listen': {
        const sock = handle as UdpSocket | undefined
        if (sock === undefined) return
        this.sockets.get(cmd.key)?.close()
        this.sockets.set(cmd.key, sock)
        sock.on('message', (msg, rinfo) => this.onMessage(cmd.key, sock, msg, rinfo))
        sock.on('error', () => { this.metrics.dropped++ })
        return
      }
      case 'unlisten':
        this.sockets.get(cmd.key)?.close()
        this.sockets.delete(cmd.key)
    }
  }

  private onMessage (key: string, sock: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    try {
      const nets = this.clients.get(rinfo.address)
      const q = this.q
      if (nets === undefined || parseQuery(msg, q) !== Parse.Ok || q.qclass !== CLASS_IN || (q.edns && q.ednsVersion !== 0)) {
        this.defer(key, msg, rinfo, nets !== undefined)
        return
      }
      const m = this.metrics
      if (nets.length === 0) {
        if (!this.take(rateKey(rinfo.address, () => false))) return
        m.queries++
        m.udp++
        m.refused++
        sock.send(buildEmpty(msg, q, RCODE_REFUSED), rinfo.port, rinfo.address)
        return
      }
      const e = this.cache.view(nets).get(q.key)
      if (e === undefined) {
        this.defer(key, msg, rinfo, true)
        return
      }
      if (!this.take(rinfo.address)) return
      m.queries++
      m.udp++
      const t = q.qtype
      if (t === TYPE_A) m.byType.A++
      else if (t === TYPE_AAAA) m.byType.AAAA++
      else if (t === TYPE_PTR) m.byType.PTR++
      else m.byType.other++
      const rrs = rrsFor(e, t)
      m.answered++
      if (rrs.count === 0) m.nodata++
      const out = buildAnswer(msg, q, rrs, q.udpLimit())
      if (isTruncated(out)) m.truncated++
      sock.send(out, rinfo.port, rinfo.address)
    } catch {
      this.metrics.internalErrors++
    }
  }

  private take (ip: string): boolean {
    if (this.limiter === undefined || this.limiter.take(ip)) return true
    this.metrics.queries++
    this.metrics.rateLimited++
    return false
  }

  /** Pass a packet to the main process; `known`: this helper knows the client's networks (main need not send them). */
  private defer (key: string, msg: Buffer, rinfo: RemoteInfo, known: boolean): void {
    if (this.deferred >= MAX_DEFERRED) {
      this.metrics.queries++
      this.metrics.dropped++
      return
    }
    this.deferred++
    this.send({ t: 'query', key, msg, address: rinfo.address, port: rinfo.port, ...(known ? { known } : {}) }, () => { this.deferred-- })
  }

  /** Send the counters gathered since the last report, if any. */
  private report (): void {
    const m = this.metrics
    if (m.queries === 0 && m.internalErrors === 0 && m.dropped === 0) return
    this.metrics = newMetrics()
    this.send({ t: 'metrics', delta: m }, () => undefined)
  }

  close (): void {
    this.report()
    for (const s of this.sockets.values()) s.close()
    this.sockets.clear()
  }
}

if (process.argv.includes(HELPER_FLAG) && process.send !== undefined) {
  const send = process.send.bind(process)
  const helper = new Helper((ev, cb) => send(ev, undefined, undefined, cb))
  process.on('message', (cmd: HelperCommand, handle: unknown) => helper.command(cmd, handle))
  send({ t: 'ready' }, () => undefined)
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => {
    helper.close()
    setTimeout(() => process.exit(0), 50).unref()
  })
}
