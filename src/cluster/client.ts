/**
 * The cluster client: ferry's ClusterStore over a ClusterBackend (Redis or the
 * in-memory model). The backend does the atomic work; this class adds what is
 * the same for both:
 *
 * - validation of every input before it reaches the store;
 * - this host's own intent (overlays it uses, addresses and endpoints it holds,
 *   and removals that could not reach the store), re-asserted after every
 *   (re)connection and after the host finds it was removed for a missed TTL —
 *   pub/sub loses what happens while a host is away, and a store restarted
 *   without persistence loses everything;
 * - the heartbeat timer (which also reaps hosts whose TTL passed);
 * - fail-fast: while the store is unreachable every call rejects at once with
 *   CLUSTER_UNAVAILABLE, and removals are remembered and replayed later;
 * - fan-out of changes to subscribers, with `resync` after each re-assertion.
 */
import type { Logger } from 'pino'
import { FerryError, toFerryError } from '../errors/errors.js'
import { VERSION } from '../version.js'
import type { BackendListener, ClusterBackend, HostKeep, HostRegistration } from './backend.js'
import type {
  ClusterEndpoint, ClusterEvent, ClusterHandler, ClusterSnapshot, ClusterState, ClusterStatus, ClusterStore,
  EndpointPublication, HostInfo, LocalClusterState, OverlayDefinition, OverlayRequest,
} from './types.js'
import {
  checkEndpoint, checkEndpointId, checkHostId, checkIp, checkOverlayName, checkOverlayRequest,
} from './validate.js'

export interface ClusterClientOptions {
  hostId: string
  /** This host's VTEP address (`--advertise-addr`). */
  advertiseAddr: string
  version?: string
  /** Heartbeat period; 0 = no timer (call heartbeat() yourself, as unit tests do). Default 2000. */
  heartbeatMs?: number
  /** A host is removed this long after its last heartbeat. Default 10000. */
  hostTtlMs?: number
  /** How long start() waits for the first registration. Default 5000. */
  startTimeoutMs?: number
  log?: Logger
}

type Tombstone =
  | { kind: 'withdraw', overlay: string, endpointId: string }
  | { kind: 'release', overlay: string, ip: string }
  | { kind: 'leave', overlay: string }

const DEFAULT_HEARTBEAT_MS = 2000
const DEFAULT_TTL_MS = 10_000
const DEFAULT_START_TIMEOUT_MS = 5000
const RETRY_ASSERT_MS = 1000

export function isUnavailable (err: unknown): boolean {
  return err instanceof FerryError && err.code === 'CLUSTER_UNAVAILABLE'
}

function epKey (overlay: string, endpointId: string): string {
  return `${overlay}|${endpointId}`
}

export class ClusterClient implements ClusterStore {
  readonly hostId: string
  readonly vtep: string
  private readonly version: string
  private readonly heartbeatMs: number
  private readonly ttlMs: number
  private readonly startTimeoutMs: number
  private readonly log: Logger | undefined
  private readonly backend: ClusterBackend

  private state: ClusterState = 'idle'
  private lastError: string | undefined
  private readonly handlers = new Set<ClusterHandler>()
  private timer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private opened = false
  private registered = false
  /** leave() was called: no heartbeats until the next start(). */
  private left = false
  /** Running re-assertion, and whether another was asked for meanwhile. */
  private asserting: Promise<void> | undefined
  private assertAgain = false
  private waiters: Array<{ resolve: () => void, reject: (e: Error) => void }> = []

  // This host's intent.
  private readonly overlays = new Map<string, OverlayRequest>()
  private readonly addresses = new Map<string, Set<string>>()
  private readonly ownEndpoints = new Map<string, EndpointPublication>()
  private tombstones: Tombstone[] = []
  /** True once the full local state is known (start(local)): entries not in it are pruned. */
  private pruneOnAssert = false

  constructor (backend: ClusterBackend, opts: ClusterClientOptions) {
    this.backend = backend
    this.hostId = checkHostId(opts.hostId)
    this.vtep = checkIp(opts.advertiseAddr, 'advertise address')
    this.version = opts.version ?? VERSION
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
    this.ttlMs = opts.hostTtlMs ?? DEFAULT_TTL_MS
    this.startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
    this.log = opts.log
    if (this.heartbeatMs > 0 && this.ttlMs <= this.heartbeatMs) {
      throw new FerryError('INVALID_OPTION', `the host TTL (${this.ttlMs} ms) must be longer than the heartbeat period (${this.heartbeatMs} ms)`)
    }
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  start (local?: LocalClusterState): Promise<void> {
    if (this.state === 'closed') return Promise.reject(this.unavailable('the cluster client is closed'))
    if (local !== undefined) this.loadIntent(local)
    this.left = false
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== ok)
        reject(this.unavailable(`could not register with the cluster store ${this.backend.description} within ${this.startTimeoutMs} ms` +
          `${this.lastError ? ` (${this.lastError})` : ''}; still trying in the background`))
      }, this.startTimeoutMs)
      const ok = (): void => { clearTimeout(timer); resolve() }
      this.waiters.push({ resolve: ok, reject: (e) => { clearTimeout(timer); reject(e) } })
    })
    if (!this.opened) {
      this.opened = true
      this.state = 'connecting'
      this.backend.open(this.listener)
      if (this.heartbeatMs > 0) {
        this.timer = setInterval(() => { void this.tick() }, this.heartbeatMs)
        this.timer.unref()
      }
    } else if (this.state === 'ready') {
      this.requestAssert()
    }
    return done
  }

  async close (): Promise<void> {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.timer) clearInterval(this.timer)
    if (this.retryTimer) clearTimeout(this.retryTimer)
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w.reject(this.unavailable('the cluster client was closed'))
    await this.backend.close()
  }

  async leave (): Promise<void> {
    await this.call(() => this.backend.removeHost(this.hostId))
    this.left = true
    this.registered = false
    this.overlays.clear()
    this.addresses.clear()
    this.ownEndpoints.clear()
    this.tombstones = []
  }

  status (): ClusterStatus {
    const s: ClusterStatus = { state: this.state, url: this.backend.description, hostId: this.hostId, vtep: this.vtep, commands: this.backend.commandCount() }
    if (this.lastError !== undefined) s.lastError = this.lastError
    return s
  }

  subscribe (handler: ClusterHandler): () => void {
    this.handlers.add(handler)
    if (this.state === 'ready') {
      queueMicrotask(() => { if (this.handlers.has(handler)) this.deliver(handler, { kind: 'resync' }) })
    }
    return () => { this.handlers.delete(handler) }
  }

  private readonly listener: BackendListener = {
    ready: () => { this.requestAssert() },
    down: (error) => {
      if (this.state === 'closed') return
      this.lastError = error.message
      const was = this.state
      this.state = 'down'
      if (was !== 'down') this.emit({ kind: 'down', error })
    },
    change: (change) => { if (this.state !== 'closed') this.emit(change) },
  }

  private emit (ev: ClusterEvent): void {
    for (const h of [...this.handlers]) this.deliver(h, ev)
  }

  private deliver (h: ClusterHandler, ev: ClusterEvent): void {
    try {
      h(ev)
    } catch (err) {
      this.log?.error({ err, event: ev.kind }, 'cluster event handler failed')
    }
  }

  private reportError (err: unknown, what: string): void {
    const e = toFerryError(err, 'INTERNAL', what)
    this.log?.warn({ err: e }, what)
    this.emit({ kind: 'error', error: e })
  }

  private unavailable (why: string): FerryError {
    return new FerryError('CLUSTER_UNAVAILABLE', why)
  }

  /** Run a backend call, failing fast while the store is unreachable. */
  private async call<T> (fn: () => Promise<T>): Promise<T> {
    if (this.state === 'closed') throw this.unavailable('the cluster client is closed')
    if (!this.opened) throw this.unavailable('the cluster client is not started')
    if (!this.backend.isReady()) {
      throw this.unavailable(`the cluster store ${this.backend.description} is not reachable${this.lastError ? ` (${this.lastError})` : ''}; retrying in the background`)
    }
    return await fn()
  }

  // -------------------------------------------------------------------------
  // Re-assertion

  private loadIntent (local: LocalClusterState): void {
    this.overlays.clear()
    this.addresses.clear()
    this.ownEndpoints.clear()
    for (const o of local.overlays) this.overlays.set(o.name, checkOverlayRequest(o))
    for (const a of local.addresses) this.holdAddress(checkOverlayName(a.overlay), checkIp(a.ip, 'address'))
    for (const e of local.endpoints) this.ownEndpoints.set(epKey(e.overlay, e.endpointId), { ...e })
    this.pruneOnAssert = true
  }

  private holdAddress (overlay: string, ip: string): void {
    let set = this.addresses.get(overlay)
    if (!set) { set = new Set(); this.addresses.set(overlay, set) }
    set.add(ip)
  }

  private requestAssert (): void {
    if (this.state === 'closed' || this.left) return
    if (this.asserting) { this.assertAgain = true; return }
    this.asserting = (async () => {
      do {
        this.assertAgain = false
        try {
          await this.assertLocal()
          this.state = 'ready'
          this.registered = true
          this.lastError = undefined
          const waiters = this.waiters
          this.waiters = []
          for (const w of waiters) w.resolve()
          this.emit({ kind: 'resync' })
        } catch (err) {
          this.lastError = err instanceof Error ? err.message : String(err)
          if (!isUnavailable(err)) this.reportError(err, 'cannot re-assert this host in the cluster')
          // Still connected (a timeout, a refused script): try again shortly.
          if (this.backend.isReady() && !this.retryTimer) {
            this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.requestAssert() }, RETRY_ASSERT_MS)
            this.retryTimer.unref()
          }
        }
      } while (this.assertAgain && this.state !== 'closed')
      this.asserting = undefined
    })()
  }

  private registration (reap: boolean): HostRegistration {
    return { hostId: this.hostId, vtep: this.vtep, version: this.version, ttlMs: this.ttlMs, reap }
  }

  /**
   * Register, replay removals made while away, then re-assert every overlay,
   * address and endpoint of this host. A store error other than unavailability
   * affects one item only: it is reported and the rest goes on.
   */
  private async assertLocal (): Promise<void> {
    await this.backend.heartbeat(this.registration(false))
    const item = async (what: string, fn: () => Promise<unknown>, onRefused?: () => void): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        if (isUnavailable(err)) throw err
        onRefused?.()
        this.reportError(err, what)
      }
    }
    const tombs = this.tombstones
    this.tombstones = []
    for (const t of tombs) {
      await item(`cannot replay ${t.kind} of ${t.overlay}`, async () => {
        switch (t.kind) {
          case 'withdraw': await this.backend.withdraw(t.overlay, t.endpointId); break
          case 'release': await this.backend.release(this.hostId, t.overlay, t.ip); break
          case 'leave': await this.backend.leaveOverlay(this.hostId, t.overlay); break
        }
      }).catch((err) => { this.tombstones.push(...tombs.slice(tombs.indexOf(t))); throw err })
    }
    for (const o of [...this.overlays.values()]) {
      await item(`cannot re-define overlay ${o.name}`, async () => {
        const def = await this.backend.define(this.hostId, o, 'prefer')
        if (def.vni !== o.vni) this.overlays.set(o.name, { ...o, vni: def.vni })
      })
    }
    for (const [overlay, ips] of [...this.addresses]) {
      for (const ip of [...ips]) {
        await item(`cannot reclaim address ${ip} of overlay ${overlay}`, () => this.backend.allocate(this.hostId, overlay, ip, true),
          () => { ips.delete(ip) })
      }
    }
    for (const ep of [...this.ownEndpoints.values()]) {
      await item(`cannot re-publish endpoint ${ep.endpointId.slice(0, 12)} of overlay ${ep.overlay}`,
        () => this.backend.publish(ep.overlay, this.fullEndpoint(ep)))
    }
    if (this.pruneOnAssert) {
      const keep: HostKeep = {
        overlays: [...this.overlays.keys()],
        addresses: [...this.addresses].flatMap(([o, ips]) => [...ips].map((ip) => `${o}|${ip}`)),
        endpoints: [...this.ownEndpoints.keys()],
      }
      await this.backend.prune(this.hostId, keep)
    }
  }

  private fullEndpoint (ep: EndpointPublication): ClusterEndpoint {
    return checkEndpoint({ endpointId: ep.endpointId, ip: ep.ip, mac: ep.mac, hostId: this.hostId, vtep: this.vtep, names: ep.names })
  }

  /** One heartbeat; a host that finds it was removed (missed its TTL) re-asserts everything. */
  async heartbeat (): Promise<void> {
    const r = await this.call(() => this.backend.heartbeat(this.registration(true)))
    if (r.removed.length > 0) this.log?.info({ hosts: r.removed }, 'removed hosts whose heartbeat stopped')
    if (r.isNew && this.registered) {
      this.log?.warn('this host had been removed from the cluster (missed heartbeats): re-asserting its state')
      this.requestAssert()
    }
  }

  private async tick (): Promise<void> {
    if (this.state !== 'ready' || this.left || !this.backend.isReady()) return
    try {
      await this.heartbeat()
    } catch (err) {
      if (!isUnavailable(err)) this.reportError(err, 'heartbeat failed')
    }
  }

  // -------------------------------------------------------------------------
  // Reads

  hosts (): Promise<HostInfo[]> { return this.call(() => this.backend.hosts()) }
  snapshot (): Promise<ClusterSnapshot> { return this.call(() => this.backend.snapshot()) }
  revision (): Promise<number> { return this.call(() => this.backend.revision()) }
  overlay (name: string): Promise<OverlayDefinition | undefined> {
    checkOverlayName(name)
    return this.call(() => this.backend.overlay(name))
  }

  endpoints (overlay: string): Promise<ClusterEndpoint[]> {
    checkOverlayName(overlay)
    return this.call(() => this.backend.endpoints(overlay))
  }

  // -------------------------------------------------------------------------
  // Changes

  async defineOverlay (req: OverlayRequest): Promise<OverlayDefinition> {
    const r = checkOverlayRequest(req)
    const def = await this.call(() => this.backend.define(this.hostId, r, 'require'))
    this.overlays.set(r.name, { ...r, vni: def.vni })
    this.tombstones = this.tombstones.filter((t) => !(t.kind === 'leave' && t.overlay === r.name))
    return def
  }

  async removeOverlayHost (name: string): Promise<{ deleted: boolean }> {
    checkOverlayName(name)
    this.overlays.delete(name)
    this.addresses.delete(name)
    for (const [k, e] of this.ownEndpoints) if (e.overlay === name) this.ownEndpoints.delete(k)
    this.tombstones = this.tombstones.filter((t) => t.overlay !== name)
    return await this.remembering({ kind: 'leave', overlay: name }, () => this.backend.leaveOverlay(this.hostId, name))
  }

  async allocateAddress (overlay: string, preferred?: string, opts: { reclaim?: boolean } = {}): Promise<string> {
    checkOverlayName(overlay)
    if (preferred !== undefined && preferred !== '') checkIp(preferred, 'requested address')
    const want = preferred === '' ? undefined : preferred
    const ip = await this.call(() => this.backend.allocate(this.hostId, overlay, want, opts.reclaim === true))
    this.holdAddress(overlay, ip)
    this.tombstones = this.tombstones.filter((t) => !(t.kind === 'release' && t.overlay === overlay && t.ip === ip))
    return ip
  }

  heldAddresses (overlay: string): string[] {
    return [...(this.addresses.get(overlay) ?? [])]
  }

  async releaseAddress (overlay: string, ip: string): Promise<boolean> {
    checkOverlayName(overlay)
    checkIp(ip, 'address')
    this.addresses.get(overlay)?.delete(ip)
    return await this.remembering({ kind: 'release', overlay, ip }, () => this.backend.release(this.hostId, overlay, ip))
  }

  /**
   * Publish an endpoint of this host. It is kept in this host's intent even when
   * the store is unreachable (the call then rejects CLUSTER_UNAVAILABLE), and
   * published at the next re-assertion.
   */
  async publishEndpoint (ep: EndpointPublication): Promise<number> {
    checkOverlayName(ep.overlay)
    const full = this.fullEndpoint(ep)
    const key = epKey(ep.overlay, full.endpointId)
    const pub: EndpointPublication = { overlay: ep.overlay, endpointId: full.endpointId, ip: full.ip, mac: full.mac, names: full.names }
    const before = this.ownEndpoints.get(key)
    this.ownEndpoints.set(key, pub)
    this.tombstones = this.tombstones.filter((t) => !(t.kind === 'withdraw' && t.overlay === ep.overlay && t.endpointId === full.endpointId))
    try {
      return await this.call(() => this.backend.publish(ep.overlay, full))
    } catch (err) {
      if (!isUnavailable(err)) {
        if (before) this.ownEndpoints.set(key, before)
        else this.ownEndpoints.delete(key)
      }
      throw err
    }
  }

  async withdrawEndpoint (overlay: string, endpointId: string): Promise<boolean> {
    checkOverlayName(overlay)
    checkEndpointId(endpointId)
    this.ownEndpoints.delete(epKey(overlay, endpointId))
    return await this.remembering({ kind: 'withdraw', overlay, endpointId }, () => this.backend.withdraw(overlay, endpointId))
  }

  /** Run a removal; when the store is unreachable, remember it for the next re-assertion and rethrow. */
  private async remembering<T> (t: Tombstone, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.call(fn)
    } catch (err) {
      if (isUnavailable(err)) this.tombstones.push(t)
      throw err
    }
  }
}
