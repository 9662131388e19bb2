/**
 * UDP helper processes: more than one core for the DNS hot path.
 *
 * One Node event loop tops out near 85k UDP queries/s on this class of host
 * (measured with a no-op responder), and with 100 queries in flight latency is
 * then at least 100/throughput (Little's law), over 1 ms. So the server may fork
 * helpers and hand each of them every UDP listen socket (Node's public handle
 * passing, `child.send(msg, socket)`; started through src/kernel/process.ts): the kernel gives each datagram to
 * whichever process reads first. A helper answers only the hot path — a query
 * from a known client for one of ferry's names — and passes every other packet
 * to the main process untouched (forwarding, REFUSED for new sources, FORMERR,
 * TCP all stay there). If a helper dies, its share of packets goes to the other
 * readers: nothing is lost but capacity.
 *
 * Helpers hold a copy of the records (sent on every change) and learn client →
 * networks pairs from the main process as it answers the clients' first
 * deferred queries; that table is flushed on every records change, on
 * `DnsServer.clientsChanged()`, and every `clientTtlMs`.
 *
 * Helpers share `node:dgram` sockets, so they run only with `udp: 'dgram'` (or
 * 'auto' when helpers are asked for); the batched addon (batch.ts) answers more
 * in one process than the main process and one helper did (docs/dns.md).
 */
import type { Socket as UdpSocket } from 'node:dgram'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { forkModule, type ChildProcess } from '../kernel/process.js'
import type { DnsMetrics } from './metrics.js'
import type { RateLimit } from './ratelimit.js'
import type { RecordDelta, RecordEntry } from './records.js'

/** Main → helper. */
export type HelperCommand =
  | { t: 'init', ttl: number, rateLimit: RateLimit | false, clientTtlMs: number }
  | { t: 'records', entries: readonly RecordEntry[] }
  | { t: 'search', domains: readonly string[] }
  | { t: 'delta', delta: RecordDelta }
  | { t: 'client', ip: string, networks: readonly string[] }
  | { t: 'flush-clients' }
  | { t: 'listen', key: string }
  | { t: 'unlisten', key: string }

/** Helper → main. */
export type HelperEvent =
  | { t: 'ready' }
  /** `known`: the helper knew the client's networks (so it need not be taught them again). */
  | { t: 'query', key: string, msg: Uint8Array, address: string, port: number, known?: boolean }
  | { t: 'metrics', delta: DnsMetrics }

export const HELPER_FLAG = '--ferry-dns-helper'

export interface HelperPoolOptions {
  count: number
  ttl: number
  rateLimit: RateLimit | false
  clientTtlMs: number
  /** A packet a helper did not answer: handle it as if the main socket had read it. */
  /** `known`: the helper knew the client's networks (it passed the packet on for another reason: not one of ferry's names). */
  onQuery: (key: string, msg: Buffer, address: string, port: number, known: boolean) => void
  metrics: DnsMetrics
  log?: Logger
}

function helperEntry (): string {
  const here = fileURLToPath(import.meta.url)
  return join(dirname(here), here.endsWith('.ts') ? 'helper.ts' : 'helper.js')
}

/** Add a helper's counters into the server's. */
export function addMetrics (into: DnsMetrics, delta: HelperEvent & { t: 'metrics' }): void {
  const d = delta.delta
  for (const k of Object.keys(into) as (keyof DnsMetrics)[]) {
    if (k === 'byType') continue
    const v = d[k]
    if (typeof v === 'number') into[k] += v
  }
  for (const k of ['A', 'AAAA', 'PTR', 'other'] as const) into.byType[k] += d.byType?.[k] ?? 0
}

export class HelperPool {
  private readonly children: ChildProcess[] = []
  /** Helpers that said 'ready'. Sockets are handed over only then: a socket handed
   * earlier is read by the IPC layer before the helper listens, and its packets are lost. */
  private readonly ready = new Set<ChildProcess>()
  private readonly sockets = new Map<string, UdpSocket>()
  /** The records a helper that becomes ready is given (the current ones: deltas sent before it are in them). */
  private entries: () => readonly RecordEntry[] = () => []
  private searchList: readonly string[] = []
  private closed = false
  /** Packets the helpers passed on to the main process (not theirs to answer, or from a client they do not know yet). */
  deferred = 0

  constructor (private readonly opts: HelperPoolOptions) {}

  start (entries: () => readonly RecordEntry[]): void {
    this.entries = entries
    for (let i = 0; i < this.opts.count; i++) this.spawn()
  }

  private spawn (): void {
    const child = forkModule(helperEntry(), [HELPER_FLAG])
    this.children.push(child)
    child.on('message', (m: HelperEvent) => {
      try {
        if (m.t === 'ready') this.onReady(child)
        else if (m.t === 'query') {
          this.deferred++
          this.opts.onQuery(m.key, Buffer.from(m.msg.buffer, m.msg.byteOffset, m.msg.byteLength), m.address, m.port, m.known === true)
        }
        else if (m.t === 'metrics') addMetrics(this.opts.metrics, m)
      } catch (err) {
        this.opts.metrics.internalErrors++
        this.opts.log?.error({ err }, 'dns: helper message failed')
      }
    })
    child.on('error', (err) => this.opts.log?.warn({ err }, 'dns: helper error'))
    child.on('exit', (code, signal) => {
      const i = this.children.indexOf(child)
      if (i >= 0) this.children.splice(i, 1)
      this.ready.delete(child)
      if (!this.closed) this.opts.log?.error({ code, signal }, 'dns: a UDP helper exited; the other readers take its share')
    })
  }

  private onReady (child: ChildProcess): void {
    this.ready.add(child)
    this.send(child, { t: 'init', ttl: this.opts.ttl, rateLimit: this.opts.rateLimit, clientTtlMs: this.opts.clientTtlMs })
    if (this.searchList.length > 0) this.send(child, { t: 'search', domains: this.searchList })
    this.send(child, { t: 'records', entries: this.entries() })
    for (const [key, sock] of this.sockets) this.send(child, { t: 'listen', key }, sock)
  }

  private send (child: ChildProcess, cmd: HelperCommand, handle?: UdpSocket): void {
    if (!child.connected) return
    child.send(cmd, handle, (err) => { if (err) this.opts.log?.warn({ err }, 'dns: cannot reach a helper') })
  }

  private broadcast (cmd: HelperCommand): void {
    for (const c of this.ready) this.send(c, cmd)
  }

  listen (key: string, sock: UdpSocket): void {
    this.sockets.set(key, sock)
    for (const c of this.ready) this.send(c, { t: 'listen', key }, sock)
  }

  /** Helpers started and serving (for tests and status). */
  get readyCount (): number {
    return this.ready.size
  }

  unlisten (key: string): void {
    if (!this.sockets.delete(key)) return
    this.broadcast({ t: 'unlisten', key })
  }

  records (entries: readonly RecordEntry[]): void {
    this.broadcast({ t: 'records', entries })
  }

  /** The search domains the helpers answer expansions of (search.ts). */
  search (domains: readonly string[]): void {
    this.searchList = domains
    this.broadcast({ t: 'search', domains })
  }

  delta (delta: RecordDelta): void {
    this.broadcast({ t: 'delta', delta })
  }

  client (ip: string, networks: readonly string[]): void {
    this.broadcast({ t: 'client', ip, networks })
  }

  flushClients (): void {
    this.broadcast({ t: 'flush-clients' })
  }

  /** Stop the helpers and wait for them to exit. */
  async close (): Promise<void> {
    this.closed = true
    await Promise.all(this.children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) { resolve(); return }
      c.once('exit', () => resolve())
      c.kill('SIGTERM')
    })))
    this.children.length = 0
  }
}
