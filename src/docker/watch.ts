/**
 * Learns container names, network aliases and links from the engine, since the
 * driver protocol carries none: a full read at start and after every reconnect,
 * then the engine's event stream (container start/die/destroy/rename, network
 * connect/disconnect) drives re-inspection of just that container. Emits
 * 'change' when what it knows changes. Never throws: without the engine, it
 * knows nothing and keeps retrying, with a growing delay (Backoff). One worker
 * does every inspection, one at a time: a reconnect or an event that arrives
 * while it works queues one follow-up instead of a second concurrent pass.
 */
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { Logger } from 'pino'
import { EngineClient, parseDockerHost } from './client.js'

export interface ContainerNames {
  containerId: string
  /** Without the leading slash. */
  name: string
  /** Per endpoint id: the network aliases on that network (short id included). */
  endpoints: Map<string, { networkId: string, aliases: string[] }>
  /** --link targets: container name -> alias. */
  links: Array<{ target: string, alias: string }>
}

interface InspectWire {
  Id: string
  Name: string
  HostConfig?: { Links?: string[] | null }
  NetworkSettings?: { Networks?: Record<string, { NetworkID?: string, EndpointID?: string, Aliases?: string[] | null }> | null }
}

/** "/db:/web/database" -> { target: 'db', alias: 'database' } */
export function parseLink (spec: string): { target: string, alias: string } | undefined {
  const m = /^\/?([^:]+):\/?(?:[^/]+\/)?([^/]+)$/.exec(spec)
  return m ? { target: m[1]!, alias: m[2]! } : undefined
}

export function namesFromInspect (c: InspectWire): ContainerNames {
  const endpoints = new Map<string, { networkId: string, aliases: string[] }>()
  for (const n of Object.values(c.NetworkSettings?.Networks ?? {})) {
    if (!n.EndpointID || !n.NetworkID) continue
    const aliases = new Set([...(n.Aliases ?? []), c.Id.slice(0, 12)])
    endpoints.set(n.EndpointID, { networkId: n.NetworkID, aliases: [...aliases] })
  }
  const links = (c.HostConfig?.Links ?? []).map(parseLink).filter((l): l is { target: string, alias: string } => l !== undefined)
  return { containerId: c.Id, name: c.Name.replace(/^\//, ''), endpoints, links }
}

/** Reconnect delays: from `initialMs` doubling to `maxMs`, each with jitter; `reset` after a healthy period. */
export interface BackoffOptions {
  initialMs?: number
  maxMs?: number
  /** A stream that stayed up this long was healthy: the next delay starts from initialMs again. */
  healthyMs?: number
  /** In [0, 1): the jitter's source (Math.random by default; tests pass a fixed one). */
  random?: () => number
}

/**
 * Exponential backoff with "equal jitter": the n-th delay is between half and all
 * of min(maxMs, initialMs * 2^n), so agents that lost the same engine at the same
 * moment do not come back in step.
 */
export class Backoff {
  private attempt = 0
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly random: () => number

  constructor (o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 1000
    this.maxMs = o.maxMs ?? 30_000
    this.random = o.random ?? Math.random
  }

  next (): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30))
    this.attempt++
    return Math.round(base / 2 + (base / 2) * this.random())
  }

  reset (): void { this.attempt = 0 }
}

/** The timers the watcher uses (tests pass fakes). */
export interface WatchTimers {
  set (fn: () => void, ms: number): unknown
  clear (handle: unknown): void
  now (): number
}

const REAL_TIMERS: WatchTimers = {
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
}

/** An event line longer than this is not the engine's: the stream is dropped and read again. */
const MAX_EVENT_LINE = 1 << 20

export interface WatcherOptions {
  backoff?: BackoffOptions
  timers?: WatchTimers
}

export class EngineWatcher extends EventEmitter {
  private readonly containers = new Map<string, ContainerNames>()
  private req: http.ClientRequest | undefined
  private retry: unknown
  private stopped = false
  private readonly backoff: Backoff
  private readonly healthyMs: number
  private readonly timers: WatchTimers
  /** When the current stream was answered (undefined: not connected). */
  private connectedAt: number | undefined
  /** Refresh work: a full read and/or containers to inspect, done by one worker at a time. */
  private pendingFull = false
  private readonly pendingIds = new Set<string>()
  private draining = false
  /** Counters for tests and status: full reads and single inspections done. */
  readonly counts = { connects: 0, fullReads: 0, inspections: 0 }

  constructor (private readonly dockerHost: string, private readonly engine: EngineClient, private readonly log: Logger, opts: WatcherOptions = {}) {
    super()
    this.backoff = new Backoff(opts.backoff)
    this.healthyMs = opts.backoff?.healthyMs ?? 60_000
    this.timers = opts.timers ?? REAL_TIMERS
  }

  start (): void { this.connect() }

  stop (): void {
    this.stopped = true
    if (this.retry !== undefined) this.timers.clear(this.retry)
    this.retry = undefined
    this.req?.destroy()
  }

  all (): ContainerNames[] { return [...this.containers.values()] }

  /** Re-read every container (at start and after a reconnect); resolves when the worker is idle. */
  refreshAll (): Promise<void> {
    this.pendingFull = true
    return this.kick()
  }

  /** Re-inspect one container (an event named it); resolves when the worker is idle. */
  refresh (id: string): Promise<void> {
    this.pendingIds.add(id)
    return this.kick()
  }

  private idle: Promise<void> = Promise.resolve()

  /**
   * At most one inspection in flight: requests that arrive while the worker runs
   * are queued (a full read once, each container once) and done after it.
   */
  private kick (): Promise<void> {
    if (!this.draining) {
      this.draining = true
      this.idle = this.drain()
    }
    return this.idle
  }

  private async drain (): Promise<void> {
    try {
      while (!this.stopped && (this.pendingFull || this.pendingIds.size > 0)) {
        if (this.pendingFull) {
          // A full read covers every container asked for so far.
          this.pendingFull = false
          this.pendingIds.clear()
          await this.readAll().catch((err: unknown) => this.log.debug({ err }, 'reading containers failed'))
        } else {
          const id = this.pendingIds.values().next().value as string
          this.pendingIds.delete(id)
          await this.inspect(id)
        }
        this.emit('change')
      }
    } finally {
      // No await between the loop's last check and this: a request that came in
      // the meantime was either seen by the loop or starts a new worker.
      this.draining = false
    }
  }

  private async readAll (): Promise<void> {
    this.counts.fullReads++
    const list = await this.engine.get<Array<{ Id: string }>>('/containers/json')
    const seen = new Set<string>()
    for (const c of list) {
      if (this.stopped) return
      seen.add(c.Id)
      await this.inspect(c.Id)
    }
    for (const id of [...this.containers.keys()]) if (!seen.has(id)) this.containers.delete(id)
  }

  private async inspect (id: string): Promise<void> {
    this.counts.inspections++
    try {
      const c = await this.engine.get<InspectWire>(`/containers/${encodeURIComponent(id)}/json`)
      this.containers.set(c.Id, namesFromInspect(c))
    } catch {
      this.containers.delete(id)
    }
  }

  private connect (): void {
    if (this.stopped) return
    this.counts.connects++
    const target = parseDockerHost(this.dockerHost)
    const filters = encodeURIComponent(JSON.stringify({ type: ['container', 'network'] }))
    // One reconnect per stream, whichever of its events reports the loss first.
    let done = false
    const lost = (err: Error): void => { if (!done) { done = true; this.again(err) } }
    const req = http.request({ ...target, path: `/v1.41/events?filters=${filters}`, method: 'GET' }, (res) => {
      if (res.statusCode !== 200) { res.resume(); lost(new Error(`engine answered ${res.statusCode}`)); return }
      this.connectedAt = this.timers.now()
      void this.refreshAll() // never rejects: a failed read is logged, a failed inspection forgets the container
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (line.trim() !== '') this.onEvent(line)
        }
        if (buf.length > MAX_EVENT_LINE) res.destroy(new Error(`an event line of more than ${MAX_EVENT_LINE} bytes`))
      })
      res.on('end', () => lost(new Error('the event stream ended')))
      res.on('error', (err) => lost(err))
      res.on('close', () => lost(new Error('the event stream closed')))
    })
    req.on('error', (err) => lost(err))
    req.end()
    this.req = req
  }

  /** Reconnect after a delay that grows while the engine keeps failing (once per lost stream). */
  private again (err: Error): void {
    if (this.stopped || this.retry !== undefined) return
    const wasUp = this.connectedAt
    this.connectedAt = undefined
    if (wasUp !== undefined && this.timers.now() - wasUp >= this.healthyMs) this.backoff.reset()
    const delay = this.backoff.next()
    this.log.debug({ err: err.message, retryInMs: delay }, 'engine event stream lost; retrying')
    this.retry = this.timers.set(() => { this.retry = undefined; this.connect() }, delay)
  }

  private onEvent (line: string): void {
    let ev: { Type?: string, Action?: string, Actor?: { ID?: string, Attributes?: Record<string, string> } }
    try { ev = JSON.parse(line) } catch { return }
    const id = ev.Type === 'network' ? ev.Actor?.Attributes?.container : ev.Actor?.ID
    if (typeof id !== 'string' || id === '') return
    const action = ev.Action ?? ''
    if (ev.Type === 'container' && !['start', 'die', 'destroy', 'rename', 'restart'].includes(action)) return
    if (ev.Type === 'network' && !['connect', 'disconnect'].includes(action)) return
    if (action === 'destroy') {
      // Gone now; an inspection in flight may still put it back, so it is asked once more.
      this.containers.delete(id)
      this.emit('change')
    }
    void this.refresh(id) // never rejects (see refreshAll)
  }
}
