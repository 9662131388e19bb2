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
 *   without persistence loses everything. An endpoint's DNS names are never
 *   taken away by a publication that does not know them: the names already in
 *   the intent are kept, and after a restart (the agent's store keeps no names)
 *   the names the store's record has;
 * - the heartbeat timer (which also reaps hosts whose TTL passed);
 * - short outages hidden: a call made while the store is unreachable (a
 *   restart, a failover) waits up to `unavailableWaitMs` for the connection to
 *   come back and this host to be re-asserted, then runs; past that (or at
 *   once with 0, the default) it rejects with CLUSTER_UNAVAILABLE, and removals
 *   are remembered and replayed later;
 * - fan-out of changes to subscribers, with `resync` after each re-assertion;
 * - distrust of what comes back: every entry and message read from the store is
 *   checked with the write path's schemas (and the cluster key's MAC when one is
 *   in use); what fails is counted, logged once and skipped, never thrown at the
 *   reader, so one bad entry does not stop the rest.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { FerryError, toFerryError } from '../errors/errors.js'
import { VERSION } from '../version.js'
import { ALLOCATION_SCAN_LIMIT, type BackendListener, type ClusterBackend, type HostKeep, type HostRegistration, type RawEndpoint } from './backend.js'
import type { ClusterKey } from './key.js'
import { RejectCounter, type RejectKind } from './rejects.js'
import { ClaimMarks, EndpointTable } from './endpoints.js'
import { ChangeTrail, TRAIL_LENGTH } from './trail.js'
import type {
  ClusterEndpoint, ClusterEvent, ClusterHandler, ClusterSnapshot, ClusterState, ClusterStatus, ClusterStore,
  EndpointPublication, HostInfo, LocalClusterState, OverlayDefinition, OverlayRequest, OverlaySnapshot,
} from './types.js'
import {
  checkAnyIp, checkEndpoint, checkEndpointId, checkHostId, checkIp, checkOverlayAddress, checkOverlayName, checkOverlayRequest,
  endpointContent, endpointKeyName, hostContent, overlayContent, readChange, readEndpoint, readHost, readOverlayDefinition, type Read,
  checkSecondVtep, hostVtepContent, hostVtepKeyName, readHostVtep,
} from './validate.js'
import { checkWireGuardInfo, wireGuardContent, type WireGuardInfo } from '../wireguard/plan.js'
import { FEATURES, compatSentence, featuresEntry, heldBack, olderHosts, readFeatures, withoutHeldBack, type Feature } from './features.js'
import { familyOf, type Family } from '../util/ip.js'

export interface ClusterClientOptions {
  hostId: string
  /** This host's VTEP address (`--advertise-addr`). */
  advertiseAddr: string
  /** A dual-stack host's second VTEP, of the other family (a second `--advertise-addr`). */
  advertiseAddr2?: string
  version?: string
  /** Heartbeat period; 0 = no timer (call heartbeat() yourself, as unit tests do). Default 2000. */
  heartbeatMs?: number
  /** A host is removed this long after its last heartbeat. Default 10000. */
  hostTtlMs?: number
  /** How long start() waits for the first registration. Default 5000. */
  startTimeoutMs?: number
  log?: Logger
  /** The shared --cluster-key: sign what this host writes, refuse what is not signed with it. */
  key?: ClusterKey
  /** Where refusals are counted; default a new counter. */
  rejects?: RejectCounter
  /** Removals remembered while the store is away, at most (then a full prune is due instead). Default 10000. */
  maxTombstones?: number
  /** Addresses one allocation call may look at (tests lower it). Default ALLOCATION_SCAN_LIMIT. */
  allocationScanLimit?: number
  /** How long a call waits for an unreachable store to come back before it fails (the agent's --cluster-wait). Default 0: fail at once. */
  unavailableWaitMs?: number
  /** This host's WireGuard public key, port and tunnel address, published with its registration. */
  wireguard?: WireGuardInfo
  /** The record features this host advertises (src/cluster/features.ts). Default FEATURES; [] advertises none, as an older version (tests). */
  features?: readonly Feature[]
}

type Tombstone =
  | { kind: 'withdraw', overlay: string, endpointId: string }
  | { kind: 'release', overlay: string, ip: string }
  | { kind: 'leave', overlay: string }

const DEFAULT_HEARTBEAT_MS = 2000
const DEFAULT_TTL_MS = 10_000
const DEFAULT_START_TIMEOUT_MS = 5000
const RETRY_ASSERT_MS = 1000
const DEFAULT_MAX_TOMBSTONES = 10_000
/** Host keys outlive the TTL this many times over (a reaper may be late), then expire on their own. */
const HOST_KEY_TTLS = 3
/** After a host-up or host-removed, what the hosts understand is read once this much later (however many came meanwhile). */
const FEATURE_CHECK_DELAY_MS = 250
/** And every this many heartbeats anyway (a host that went back to an older version in place announces nothing). */
const FEATURE_CHECK_HEARTBEATS = 15
/** Re-publications when what is held back changes: this many, then a pause (one command at a time in between). */
const REPUBLISH_BATCH = 64
const REPUBLISH_PAUSE_MS = 20

function tombKey (t: Tombstone): string {
  switch (t.kind) {
    case 'withdraw': return `w|${t.overlay}|${t.endpointId}`
    case 'release': return `r|${t.overlay}|${t.ip}`
    case 'leave': return `l|${t.overlay}`
  }
}

/** A short, printable description of something refused, for the log. */
function describe (raw: unknown): string {
  let text: string
  try { text = typeof raw === 'string' ? raw : JSON.stringify(raw) ?? String(raw) } catch { text = String(raw) }
  return text.slice(0, 120).replace(/[^\x20-\x7e]/g, '?')
}

/** How long a call that failed as unavailable while the store still looked up waits for it to notice the drop. */
const DROP_NOTICE_MS = 1000
const DROP_POLL_MS = 25

export function isUnavailable (err: unknown): boolean {
  return err instanceof FerryError && err.code === 'CLUSTER_UNAVAILABLE'
}

function epKey (overlay: string, endpointId: string): string {
  return `${overlay}|${endpointId}`
}

/** The publication of a checked endpoint (its canonical addresses and MAC; its names and ports, [] when given as none, undefined when not given). */
function publicationOf (overlay: string, e: ClusterEndpoint, given: Pick<EndpointPublication, 'names' | 'ports'>): EndpointPublication {
  return {
    overlay, endpointId: e.endpointId, ip: e.ip, ...(e.ip6 !== undefined ? { ip6: e.ip6 } : {}), mac: e.mac,
    names: given.names === undefined ? undefined : e.names ?? [], ...(given.ports !== undefined ? { ports: e.ports ?? [] } : {}),
  }
}

/**
 * A publication without names (`names` undefined: not known, as at CreateEndpoint or
 * after a restart) keeps the names `known` has for the same endpoint, address and MAC;
 * names given (even none, []) replace them. The same for its published ports.
 */
function withKnownNames (ep: EndpointPublication, known: Pick<EndpointPublication, 'endpointId' | 'ip' | 'ip6' | 'mac' | 'names' | 'ports'> | undefined): EndpointPublication {
  const names = ep.names === undefined && known?.names !== undefined
  const ports = ep.ports === undefined && known?.ports !== undefined
  if (!names && !ports) return ep
  if (known!.endpointId !== ep.endpointId || known!.ip !== ep.ip || known!.ip6 !== ep.ip6 || known!.mac.toLowerCase() !== ep.mac.toLowerCase()) return ep
  return { ...ep, ...(names ? { names: [...known!.names!] } : {}), ...(ports ? { ports: [...known!.ports!] } : {}) }
}

/**
 * An overlay of a snapshot whose endpoints are the packed table as read, its claims checked
 * against it as they were read: `endpoints` (sorted by id) and `claims` are made from them only
 * when a reader asks for them; PeerSync takes `packed` and `claimed` themselves.
 */
function packedOverlay (o: Omit<OverlaySnapshot, 'endpoints' | 'packed' | 'claims' | 'claimed'>, marks: ClaimMarks): OverlaySnapshot {
  const packed = marks.table
  const out = { ...o, packed, claimed: marks.counts() } as OverlaySnapshot
  Object.defineProperty(out, 'endpoints', { enumerable: true, configurable: true, get: () => [...packed.values()].sort(byEndpointId) })
  Object.defineProperty(out, 'claims', { enumerable: true, configurable: true, get: () => [...marks.claims()] })
  return out
}

function byEndpointId (a: ClusterEndpoint, b: ClusterEndpoint): number {
  return a.endpointId < b.endpointId ? -1 : a.endpointId > b.endpointId ? 1 : 0
}

export class ClusterClient implements ClusterStore {
  readonly hostId: string
  readonly vtep: string
  readonly vtep2: string | undefined
  private wg: WireGuardInfo | undefined
  private readonly version: string
  private readonly heartbeatMs: number
  private readonly ttlMs: number
  private readonly startTimeoutMs: number
  private readonly log: Logger | undefined
  private readonly backend: ClusterBackend
  private readonly key: ClusterKey | undefined
  readonly rejects: RejectCounter
  private readonly maxTombstones: number
  private readonly scanLimit: number
  private readonly waitMs: number

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
  /** What came through the change channel: after a reconnection, only what was missed is handed on when the store's history is the same. */
  private readonly trail = new ChangeTrail()
  /**
   * The second VTEP records of other hosts (vetted, MAC checked), as their channel (or a catch-up)
   * gave them: a host-up change takes its host's from here. A full read replaces them.
   */
  private readonly vtep2s = new Map<string, string>()

  // This host's intent.
  private readonly overlays = new Map<string, OverlayRequest>()
  private readonly addresses = new Map<string, Set<string>>()
  private readonly ownEndpoints = new Map<string, EndpointPublication>()
  /** Removals that could not reach the store, coalesced by what they remove (bounded). */
  private tombstones = new Map<string, Tombstone>()
  /** Too many removals piled up while away: the next re-assertion prunes everything not in the intent instead. */
  private tombstonesOverflowed = false
  /** True once the full local state is known (start(local)): entries not in it are pruned. */
  private pruneOnAssert = false
  /**
   * Own endpoints loaded from the local state without names (the agent's store keeps none:
   * the engine's names are learned after a restart). The next re-assertion keeps the names
   * their records already have in the store instead of publishing them nameless.
   */
  private namesUnknown = new Set<string>()

  // Mixed versions (src/cluster/features.ts).
  private readonly features: readonly Feature[]
  /** Features held back from this host's records: all until the hosts were first read. */
  private held: Feature[] = [...FEATURES]
  /** The hosts that hold a feature back, as last read (undefined: not read yet). */
  private older: Array<{ hostId: string, version: string, features: Feature[] }> | undefined
  private featureTimer: NodeJS.Timeout | undefined
  private beats = 0
  private republishing: Promise<void> | undefined
  private republishAgain = false

  constructor (backend: ClusterBackend, opts: ClusterClientOptions) {
    this.backend = backend
    this.hostId = checkHostId(opts.hostId)
    this.vtep = checkAnyIp(opts.advertiseAddr, 'advertise address')
    this.vtep2 = opts.advertiseAddr2 === undefined ? undefined : checkSecondVtep(this.vtep, opts.advertiseAddr2)
    this.wg = opts.wireguard === undefined ? undefined : checkWireGuardInfo(opts.wireguard, undefined)
    this.version = opts.version ?? VERSION
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
    this.ttlMs = opts.hostTtlMs ?? DEFAULT_TTL_MS
    this.startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
    this.log = opts.log
    this.key = opts.key
    this.rejects = opts.rejects ?? new RejectCounter(opts.log)
    this.maxTombstones = opts.maxTombstones ?? DEFAULT_MAX_TOMBSTONES
    this.scanLimit = opts.allocationScanLimit ?? ALLOCATION_SCAN_LIMIT
    this.waitMs = opts.unavailableWaitMs ?? 0
    this.features = [...(opts.features ?? FEATURES)]
    if (!Number.isFinite(this.waitMs) || this.waitMs < 0) throw new FerryError('INVALID_OPTION', `the cluster wait (${this.waitMs} ms) must be 0 or more`)
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
    const done = this.whenReady(this.startTimeoutMs, () => `could not register with the cluster store ${this.backend.description} within ${this.startTimeoutMs} ms` +
      `${this.lastError ? ` (${this.lastError})` : ''}; still trying in the background`)
    if (!this.opened) {
      this.opened = true
      this.state = 'connecting'
      this.backend.open(this.listener)
      if (this.heartbeatMs > 0) {
        this.timer = setInterval(() => { void this.tick() }, this.heartbeatMs) // tick never rejects: it reports a failed heartbeat
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
    if (this.featureTimer) clearTimeout(this.featureTimer)
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
    this.namesUnknown.clear()
    this.tombstones.clear()
    this.tombstonesOverflowed = false
  }

  status (): ClusterStatus {
    const s: ClusterStatus = {
      state: this.state, url: this.backend.description, hostId: this.hostId, vtep: this.vtep, ...(this.vtep2 !== undefined ? { vtep2: this.vtep2 } : {}), commands: this.backend.commandCount(),
      clusterKey: this.key !== undefined, rejected: this.rejects.list(),
      compat: {
        heldBack: [...this.held], olderHosts: (this.older ?? []).map((h) => ({ ...h, features: [...h.features] })),
        sentence: this.older === undefined ? `${this.held.join(', ')} held back until the hosts are read` : compatSentence(this.held, this.older),
      },
    }
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
      this.trail.hold()
      this.lastError = error.message
      const was = this.state
      this.state = 'down'
      if (was !== 'down') this.emit({ kind: 'down', error })
    },
    change: (raw) => {
      if (this.state === 'closed' || !this.trail.received(raw)) return
      this.handOn(raw)
    },
    hostVtep: (raw) => {
      if (this.state === 'closed') return
      const m = typeof raw === 'object' && raw !== null ? raw as Record<string, unknown> : {}
      if (typeof m.hostId !== 'string' || typeof m.record !== 'string') { this.rejects.reject('host', 'invalid', describe(raw), 'a second VTEP message is not {hostId, record}'); return }
      this.keepVtep2(m.hostId, m.record)
    },
  }

  /** A host's second VTEP record as its channel or a catch-up gives it ('' = none): kept when valid, for its host-up change. */
  private keepVtep2 (hostId: string, record: string): void {
    this.vtep2s.delete(hostId)
    if (record === '') return
    const r = this.accept('host', hostVtepKeyName(hostId.slice(0, 64)), readHostVtep(record, { hostId }, this.key), record)
    if (r) this.vtep2s.set(r.hostId, r.vtep)
  }

  /** A change message, checked, to every subscriber; a host-up with its host's second VTEP when one of the other family is known. */
  private handOn (raw: unknown): void {
    const r = readChange(raw, this.key)
    if (!r.ok) { this.rejects.reject('message', r.reason, describe(raw), r.detail); return }
    const ev = r.value
    if (ev.kind === 'host-up' || ev.kind === 'host-removed') this.scheduleFeatureCheck()
    if (ev.kind === 'host-removed') this.vtep2s.delete(ev.hostId)
    if (ev.kind === 'host-up') {
      const v2 = this.vtep2s.get(ev.host.hostId)
      if (v2 !== undefined) {
        try {
          ev.host.vtep2 = checkSecondVtep(ev.host.vtep, v2)
        } catch (err) {
          this.rejects.reject('host', 'invalid', hostVtepKeyName(ev.host.hostId), err instanceof Error ? err.message : String(err))
        }
      }
    }
    this.emit(ev)
  }

  /**
   * After a reconnection, the changes missed while away when the store still has the history this
   * host followed (src/cluster/trail.ts); undefined when a full read is due (another history, a log
   * that does not reach back, a backend without one, or not a reconnection).
   */
  private async catchUp (): Promise<unknown[] | undefined> {
    const since = this.trail.last
    let logged: { rev: number, changes: unknown[], vteps?: Array<{ hostId: string, record: string }> } | undefined
    if (this.trail.holding && since !== undefined && this.backend.changesSince !== undefined) {
      try {
        logged = await this.backend.changesSince(since, TRAIL_LENGTH - 1)
        for (const v of logged?.vteps ?? []) this.keepVtep2(v.hostId, v.record)
      } catch (err) {
        if (isUnavailable(err)) throw err
        this.log?.warn({ err }, 'cannot read the cluster store\'s change log: reading in full')
      }
    }
    const missed = this.trail.release(logged)
    if (since !== undefined) {
      this.log?.info({ since, rev: logged?.rev, missed: missed?.length }, missed === undefined
        ? 'the cluster store is back without the history this host followed (or its log does not reach back): reading in full'
        : 'the cluster store is back with the history this host followed: handing on the changes missed')
    }
    return missed
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

  /** Resolves at the next successful (re-)registration; rejects with `why` after `ms`, or when the client closes. */
  /** Whether `up` turns false within `ms` (looked at every 25 ms). */
  private async goesDown (up: () => boolean, ms: number): Promise<boolean> {
    for (let waited = 0; waited < ms; waited += DROP_POLL_MS) {
      await sleep(DROP_POLL_MS)
      if (!up()) return true
    }
    return false
  }

  private whenReady (ms: number, why: () => string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== ok)
        reject(this.unavailable(why()))
      }, ms)
      const ok = (): void => { clearTimeout(timer); resolve() }
      this.waiters.push({ resolve: ok, reject: (e) => { clearTimeout(timer); reject(e) } })
    })
  }

  /**
   * Run a backend call. While the store is unreachable (or this host is being
   * re-asserted after a reconnection) the call waits, up to `unavailableWaitMs`,
   * for it to be back; then it fails with CLUSTER_UNAVAILABLE.
   */
  private async call<T> (fn: () => Promise<T>): Promise<T> {
    if (this.state === 'closed') throw this.unavailable('the cluster client is closed')
    if (!this.opened) throw this.unavailable('the cluster client is not started')
    const wait = this.waitMs > 0 && !this.left
    const up = (): boolean => this.backend.isReady() && this.state === 'ready'
    if (this.backend.isReady() && (this.state === 'ready' || !wait)) {
      try {
        return await fn()
      } catch (err) {
        // The connection dropped under the command (a restart, a failover): once the store is
        // back, run it once more. Every change is idempotent, and an allocation that got through
        // before the drop is not in this host's intent, so the re-assertion that comes first prunes it.
        if (!wait || !isUnavailable(err)) throw err
        // A command written to a connection that has just died fails before the client sees the
        // connection close ("Stream isn't writeable", right after a Sentinel failover's kill): the
        // store still looks up. Give it a moment to say so, then wait as below.
        if (up() && !(await this.goesDown(up, Math.min(DROP_NOTICE_MS, this.waitMs)))) throw err
      }
    }
    const why = (): string => `the cluster store ${this.backend.description} is not reachable${this.lastError ? ` (${this.lastError})` : ''}` +
      `${wait ? ` and did not come back within ${(this.waitMs / 1000).toFixed(1)} s` : ''}; retrying in the background`
    if (!wait) throw this.unavailable(why())
    try {
      await this.whenReady(this.waitMs, why)
    } catch (err) {
      // Connected but still re-asserting this host when the wait ran out: go ahead.
      if (!this.backend.isReady()) throw err
    }
    if (!this.backend.isReady()) throw this.unavailable(why())
    return await fn()
  }

  // -------------------------------------------------------------------------
  // Re-assertion

  private loadIntent (local: LocalClusterState): void {
    const before = new Map(this.ownEndpoints)
    this.overlays.clear()
    this.addresses.clear()
    this.ownEndpoints.clear()
    this.namesUnknown.clear()
    for (const o of local.overlays) this.overlays.set(o.name, checkOverlayRequest(o))
    for (const a of local.addresses) this.holdAddress(checkOverlayName(a.overlay), checkAnyIp(a.ip, 'address'))
    for (const e of local.endpoints) {
      const key = epKey(e.overlay, e.endpointId)
      const pub = withKnownNames({ ...e }, before.get(key))
      this.ownEndpoints.set(key, pub)
      if (pub.names === undefined) this.namesUnknown.add(key)
    }
    this.pruneOnAssert = true
  }

  /**
   * Before re-publishing endpoints whose names this host does not know (see namesUnknown):
   * the names their records hold in the store, when the record is this host's and has the
   * same address and MAC. Read once per overlay, checked as any read; what cannot be read
   * is published as it is.
   */
  private async keepStoredNames (): Promise<void> {
    const overlays = new Set([...this.namesUnknown].map((k) => this.ownEndpoints.get(k)?.overlay).filter((o) => o !== undefined))
    for (const overlay of overlays) {
      const r = await this.backend.endpoints(overlay)
      const def = r.definition === undefined ? undefined : this.accept('overlay', overlay, readOverlayDefinition(r.definition, this.key), r.definition)
      for (const stored of def ? this.readEndpoints(overlay, def, r.endpoints) : []) {
        const key = epKey(overlay, stored.endpointId)
        const own = this.ownEndpoints.get(key)
        if (!this.namesUnknown.has(key) || own === undefined || stored.hostId !== this.hostId) continue
        this.ownEndpoints.set(key, withKnownNames(own, stored))
      }
      for (const key of this.namesUnknown) if (this.ownEndpoints.get(key)?.overlay === overlay) this.namesUnknown.delete(key)
    }
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
          const missed = await this.catchUp()
          this.state = 'ready'
          this.registered = true
          this.lastError = undefined
          const waiters = this.waiters
          this.waiters = []
          for (const w of waiters) w.resolve()
          if (missed === undefined) {
            this.emit({ kind: 'resync' })
          } else {
            for (const raw of missed) this.handOn(raw)
            this.emit({ kind: 'resumed', rev: this.trail.last ?? 0 })
          }
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
    return {
      hostId: this.hostId, vtep: this.vtep, version: this.version, ttlMs: this.ttlMs, keyTtlMs: HOST_KEY_TTLS * this.ttlMs, sig: this.registrationSig(), reap,
      wg: this.wg ? wireGuardContent(this.wg) : '', features: featuresEntry(this.hostId, this.features, this.key), vtep2: this.vtep2Record(),
    }
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
    // Before this host's records are written again: with or without the features some host does not understand.
    await item('cannot read what the cluster\'s hosts understand', () => this.checkFeatures())
    for (const [k, t] of [...this.tombstones]) {
      await item(`cannot replay ${t.kind} of ${t.overlay}`, async () => {
        switch (t.kind) {
          case 'withdraw': await this.backend.withdraw(t.overlay, t.endpointId); break
          case 'release': await this.backend.release(this.hostId, t.overlay, t.ip); break
          case 'leave': await this.backend.leaveOverlay(this.hostId, t.overlay); break
        }
      })
      this.tombstones.delete(k)
    }
    for (const o of [...this.overlays.values()]) {
      await item(`cannot re-define overlay ${o.name}`, async () => {
        const def = await this.defineChecked(o, 'prefer')
        if (def.vni !== o.vni) {
          this.log?.warn({ overlay: o.name, was: o.vni, now: def.vni }, 'the cluster gave this overlay another VNI when this host re-defined it')
          this.overlays.set(o.name, { ...o, vni: def.vni })
        }
      })
    }
    for (const [overlay, ips] of [...this.addresses]) {
      for (const ip of [...ips]) {
        await item(`cannot reclaim address ${ip} of overlay ${overlay}`, () => this.allocateSteps(overlay, ip, true, familyOf(ip) ?? 4),
          () => { ips.delete(ip) })
      }
    }
    if (this.namesUnknown.size > 0) await item('cannot read the names of this host\'s endpoints', () => this.keepStoredNames())
    for (const ep of [...this.ownEndpoints.values()]) {
      await item(`cannot re-publish endpoint ${ep.endpointId.slice(0, 12)} of overlay ${ep.overlay}`,
        () => this.sendEndpoint(ep.overlay, this.fullEndpoint(ep)))
    }
    if (this.pruneOnAssert || this.tombstonesOverflowed) {
      const keep: HostKeep = {
        overlays: [...this.overlays.keys()],
        addresses: [...this.addresses].flatMap(([o, ips]) => [...ips].map((ip) => `${o}|${ip}`)),
        endpoints: [...this.ownEndpoints.keys()],
      }
      await this.backend.prune(this.hostId, keep)
      this.tombstonesOverflowed = false
    }
  }

  private sendEndpoint (overlay: string, record: ClusterEndpoint): Promise<number> {
    const full = withoutHeldBack(record, this.held)
    const sig = this.key?.sign('endpoint', endpointKeyName(overlay, full.endpointId), endpointContent(full)) ?? ''
    return this.backend.publish(overlay, full, sig)
  }

  /**
   * Define or join through the backend, then check the answer as any read: its
   * schema and MAC, and that it is the overlay asked for (same subnet and
   * gateway, the VNI asked for when one is required). A definition this call
   * created is signed and announced (seal) when a key is in use.
   */
  private async defineChecked (r: OverlayRequest, mode: 'require' | 'prefer'): Promise<OverlayDefinition> {
    const { definition, created } = await this.backend.define(this.hostId, r, mode, this.key === undefined)
    let raw: Record<string, unknown> = definition
    if (this.key !== undefined && (created || (raw.createdBy === this.hostId && (raw.sig === undefined || raw.sig === '')))) {
      // Only this host knows the new VNI before anyone reads it: sign it now.
      const unsigned = readOverlayDefinition(raw)
      if (unsigned.ok) {
        const sig = this.key.sign('overlay', unsigned.value.name, overlayContent(unsigned.value))
        if (await this.backend.seal(r.name, unsigned.value, sig)) raw = { ...raw, sig }
      }
    }
    const def = this.accept('overlay', r.name, readOverlayDefinition(raw, this.key), raw)
    if (def === undefined) {
      throw new FerryError('CLUSTER_REFUSED', `the cluster store's definition of overlay ${r.name} was refused (see the log); this host does not use it`)
    }
    const mismatch = def.name !== r.name ? `name ${def.name}` : def.subnet !== r.subnet ? `subnet ${def.subnet}` : def.gateway !== r.gateway ? `gateway ${def.gateway}`
      : def.subnet6 !== r.subnet6 || def.gateway6 !== r.gateway6 ? (def.subnet6 === undefined ? 'no IPv6 subnet' : `IPv6 subnet ${def.subnet6} gateway ${def.gateway6 ?? '?'}`)
        : mode === 'require' && r.vni !== undefined && def.vni !== r.vni ? `VNI ${def.vni}`
          : def.encrypt !== r.encrypt ? (def.encrypt === undefined ? 'a plain definition' : `encryption ${def.encrypt}`) : undefined
    if (mismatch !== undefined) {
      this.rejects.reject('overlay', 'changed-definition', r.name, `the store answered with ${mismatch}`)
      throw new FerryError('CLUSTER_REFUSED', `the cluster store answered overlay ${r.name} with ${mismatch}, which this host did not ask for: refused`)
    }
    return def
  }

  /** The value of a read, or undefined after counting and logging its refusal. */
  private accept<T> (kind: RejectKind, what: string, r: Read<T>, raw?: unknown): T | undefined {
    if (r.ok) return r.value
    this.rejects.reject(kind, r.reason, raw === undefined ? what : `${what} ${describe(raw)}`, r.detail)
    return undefined
  }

  /** The valid endpoints of an overlay, read as stored; `def` (when valid) bounds their addresses. */
  private readEndpoints (overlay: string, def: OverlayDefinition | undefined, raws: RawEndpoint[], sort = true): ClusterEndpoint[] {
    const out: ClusterEndpoint[] = []
    for (const e of raws) {
      const ctx = def ? { overlay, subnet: def.subnet, gateway: def.gateway, subnet6: def.subnet6, gateway6: def.gateway6, id: e.id } : { overlay, id: e.id }
      const ep = this.accept('endpoint', endpointKeyName(overlay, e.id.slice(0, 64)), readEndpoint(e.raw, ctx, this.key), e.raw)
      if (ep) out.push(ep)
    }
    return sort ? out.sort(byEndpointId) : out
  }

  private readHosts (rows: Array<Record<string, unknown>>): HostInfo[] {
    const out: HostInfo[] = []
    this.vtep2s.clear()
    for (const row of rows) {
      const { vtep2, ...rest } = row
      const h = this.accept('host', String(row.hostId).slice(0, 64), readHost(rest, this.key), row)
      if (!h) continue
      if (vtep2 !== undefined && vtep2 !== '') {
        // A refused second VTEP takes only itself: the host stays, with its first.
        const v = this.accept('host', hostVtepKeyName(h.hostId), readHostVtep(vtep2, { hostId: h.hostId, primary: h.vtep }, this.key), vtep2)
        if (v) { h.vtep2 = v.vtep; this.vtep2s.set(h.hostId, v.vtep) }
      }
      // A features entry that cannot be read counts as none (the host then holds the features back), not as a refused host.
      const f = this.accept('host', `${h.hostId} (its features)`, readFeatures(row.features, h, this.key), row.features)
      out.push(f === undefined ? h : { ...h, features: f })
    }
    return out.sort((a, b) => (a.hostId < b.hostId ? -1 : 1))
  }

  private registrationSig (): string {
    return this.key?.sign('host', this.hostId, hostContent({ hostId: this.hostId, vtep: this.vtep, wg: this.wg })) ?? ''
  }

  /** This host's second VTEP record as stored ('' = none): its canonical content and, with a key, its MAC. */
  private vtep2Record (): string {
    if (this.vtep2 === undefined) return ''
    const rec = { hostId: this.hostId, vtep: this.vtep2 }
    const sig = this.key?.sign('host', hostVtepKeyName(this.hostId), hostVtepContent(rec))
    return JSON.stringify({ ...rec, ...(sig !== undefined ? { sig } : {}) })
  }

  private fullEndpoint (ep: EndpointPublication): ClusterEndpoint {
    return checkEndpoint({
      endpointId: ep.endpointId, ip: ep.ip, ...(ep.ip6 !== undefined ? { ip6: ep.ip6 } : {}), mac: ep.mac, hostId: this.hostId, vtep: this.vtep, names: ep.names,
      ...(ep.ports !== undefined ? { ports: ep.ports } : {}),
    })
  }

  /** This host's WireGuard information. */
  get wireguard (): WireGuardInfo | undefined { return this.wg }

  /** New WireGuard information (a rotated key): registered at once, so every host gets it in a host-up change. */
  async setWireGuard (info: WireGuardInfo): Promise<void> {
    this.wg = checkWireGuardInfo(info, undefined)
    await this.heartbeat()
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
    if (++this.beats % FEATURE_CHECK_HEARTBEATS === 0) this.scheduleFeatureCheck()
  }

  // -------------------------------------------------------------------------
  // Mixed versions: which record features every live host understands

  /** Read what the hosts understand once, soon (a host came, went or changed). */
  private scheduleFeatureCheck (): void {
    if (this.featureTimer !== undefined || this.state === 'closed') return
    this.featureTimer = setTimeout(() => {
      this.featureTimer = undefined
      if (this.state !== 'ready' || this.left) return
      this.call(() => this.checkFeatures()).then((changed) => { if (changed) this.requestRepublish() }, (err: unknown) => {
        if (!isUnavailable(err)) this.reportError(err, 'cannot read what the cluster\'s hosts understand')
      })
    }, FEATURE_CHECK_DELAY_MS)
    this.featureTimer.unref()
  }

  /** Read the hosts (one command) and decide what is held back; true when that changed. */
  private async checkFeatures (): Promise<boolean> {
    const rows = await this.backend.hosts()
    const hosts = this.readHosts(rows)
    const held = heldBack(hosts, rows.length - hosts.length)
    const older = olderHosts(hosts)
    this.older = older
    if (held.join() === this.held.join()) return false
    this.log?.info({ heldBack: held, olderHosts: older.map((h) => h.hostId) }, compatSentence(held, older))
    this.held = held
    return true
  }

  /**
   * What is held back changed: write this host's records that have such a field again, with or without
   * it, one command each, one at a time, pausing every REPUBLISH_BATCH. A record whose intent changed
   * meanwhile (withdrawn, published again) is left to that change. A pass under way starts over when it
   * changes again; an unreachable store ends it (the re-assertion that follows writes every record).
   */
  private requestRepublish (): void {
    if (this.republishing) { this.republishAgain = true; return }
    this.republishing = (async () => {
      do {
        this.republishAgain = false
        let sent = 0
        for (const [key, ep] of [...this.ownEndpoints]) {
          if (this.republishAgain || this.state !== 'ready') break
          if (ep.ports === undefined || ep.ports.length === 0) continue
          try {
            await this.call(() => this.ownEndpoints.get(key) === ep ? this.sendEndpoint(ep.overlay, this.fullEndpoint(ep)) : Promise.resolve(0))
          } catch (err) {
            if (isUnavailable(err)) return
            this.reportError(err, `cannot re-publish endpoint ${ep.endpointId.slice(0, 12)} of overlay ${ep.overlay}`)
          }
          if (++sent % REPUBLISH_BATCH === 0) await sleep(REPUBLISH_PAUSE_MS)
        }
      } while (this.republishAgain && this.state === 'ready')
    })().finally(() => { this.republishing = undefined })
  }

  /** The re-publication under way, if any (tests). */
  async republished (): Promise<void> {
    await this.republishing
  }

  // -------------------------------------------------------------------------
  // Reads

  async hosts (): Promise<HostInfo[]> {
    return this.readHosts(await this.call(() => this.backend.hosts()))
  }

  /** Everything, checked: a refused definition takes its overlay's endpoints with it; a refused entry only itself. */
  async snapshot (): Promise<ClusterSnapshot> {
    // Endpoints are checked page by page as the backend reads them (their stored text goes at once)
    // and packed into a compact table (src/cluster/endpoints.ts: no object per endpoint is kept),
    // each definition once (its refusal counted once) however many pages it has.
    let defs = new Map<Record<string, unknown>, OverlayDefinition | undefined>()
    let read = new Map<Record<string, unknown>, ClaimMarks>()
    const definition = (raw: Record<string, unknown>): OverlayDefinition | undefined => {
      if (!defs.has(raw)) defs.set(raw, this.accept('overlay', String(raw.name).slice(0, 64), readOverlayDefinition(raw, this.key), raw))
      return defs.get(raw)
    }
    const marksOf = (raw: Record<string, unknown>): ClaimMarks => {
      let m = read.get(raw)
      if (!m) { m = new ClaimMarks(new EndpointTable()); read.set(raw, m) }
      return m
    }
    const onPage = (raw: Record<string, unknown>, page: RawEndpoint[]): void => {
      const def = definition(raw)
      if (!def) return
      const m = marksOf(raw)
      // A page that repeats an endpoint has the newer copy.
      for (const e of this.readEndpoints(def.name, def, page, false)) m.set(e)
    }
    // The claims are checked against the table as they come (ClaimMarks): no list of them.
    const onClaims = (raw: Record<string, unknown>, page: Array<[string, unknown]>): void => {
      if (!definition(raw)) return
      const m = marksOf(raw)
      for (const [ip, id] of page) if (typeof ip === 'string' && typeof id === 'string') m.claim(ip, id)
    }
    const raw = await this.call(() => { defs = new Map(); read = new Map(); return this.backend.snapshot(onPage, onClaims) })
    const snap: ClusterSnapshot = { rev: raw.rev, time: raw.time, hosts: this.readHosts(raw.hosts), overlays: [] }
    for (const o of raw.overlays) {
      const def = definition(o.definition)
      if (!def) continue
      const marks = marksOf(o.definition)
      read.delete(o.definition)
      // What a backend did not hand over page by page: its endpoints first, then its claims.
      for (const e of this.readEndpoints(def.name, def, o.endpoints, false)) marks.set(e)
      for (const c of o.claims) if (typeof c.ip === 'string' && typeof c.endpointId === 'string') marks.claim(c.ip, c.endpointId)
      snap.overlays.push(packedOverlay({ definition: def, hosts: o.hosts.filter((h) => typeof h === 'string').sort() }, marks))
    }
    return snap
  }

  async revision (): Promise<number> {
    const rev = await this.call(() => this.backend.revision())
    if (!Number.isSafeInteger(rev) || rev < 0) {
      this.rejects.reject('message', 'revision', 'the revision counter', `it is ${String(rev).slice(0, 40)}`)
      throw new FerryError('CLUSTER_REFUSED', 'the cluster store\'s revision counter is not a safe whole number')
    }
    return rev
  }

  async overlay (name: string): Promise<OverlayDefinition | undefined> {
    checkOverlayName(name)
    const raw = await this.call(() => this.backend.overlay(name))
    return raw === undefined ? undefined : this.accept('overlay', name, readOverlayDefinition(raw, this.key), raw)
  }

  async endpoints (overlay: string): Promise<ClusterEndpoint[]> {
    checkOverlayName(overlay)
    const r = await this.call(() => this.backend.endpoints(overlay))
    const def = r.definition === undefined ? undefined : this.accept('overlay', overlay, readOverlayDefinition(r.definition, this.key), r.definition)
    return def ? this.readEndpoints(overlay, def, r.endpoints) : []
  }

  localOverlay (name: string): OverlayRequest | undefined {
    const o = this.overlays.get(name)
    return o ? { ...o } : undefined
  }

  // -------------------------------------------------------------------------
  // Changes

  async defineOverlay (req: OverlayRequest): Promise<OverlayDefinition> {
    const r = checkOverlayRequest(req)
    const def = await this.call(() => this.defineChecked(r, 'require'))
    this.overlays.set(r.name, { ...r, vni: def.vni })
    this.tombstones.delete(tombKey({ kind: 'leave', overlay: r.name }))
    return def
  }

  async removeOverlayHost (name: string): Promise<{ deleted: boolean }> {
    checkOverlayName(name)
    this.overlays.delete(name)
    this.addresses.delete(name)
    for (const [k, e] of this.ownEndpoints) if (e.overlay === name) { this.ownEndpoints.delete(k); this.namesUnknown.delete(k) }
    for (const [k, t] of this.tombstones) if (t.overlay === name) this.tombstones.delete(k)
    return await this.remembering({ kind: 'leave', overlay: name }, () => this.backend.leaveOverlay(this.hostId, name))
  }

  async allocateAddress (overlay: string, preferred?: string, opts: { reclaim?: boolean, family?: Family } = {}): Promise<string> {
    checkOverlayName(overlay)
    const family = opts.family ?? (preferred !== undefined && preferred !== '' ? familyOf(preferred) ?? 4 : 4)
    let want = preferred === '' ? undefined : preferred
    if (want !== undefined) {
      checkIp(want, 'requested address', family)
      // The store checks an IPv4 address against the subnet itself; an IPv6 one is checked here (and made canonical).
      const sub = family === 6 ? this.overlays.get(overlay)?.subnet6 : undefined
      want = sub === undefined ? checkAnyIp(want, 'requested address') : checkOverlayAddress(overlay, sub, want)
    }
    const ip = this.checkAllocated(overlay, want, family, await this.call(() => this.allocateSteps(overlay, want, opts.reclaim === true, family)))
    this.holdAddress(overlay, ip)
    this.tombstones.delete(tombKey({ kind: 'release', overlay, ip }))
    return ip
  }

  /** Bounded steps until an address is found (each step looks at no more than the scan limit). */
  private async allocateSteps (overlay: string, want: string | undefined, reclaim: boolean, family: Family): Promise<string> {
    let scanned = 0
    // A /8 has 2^24 addresses: even a store that never answers "exhausted" cannot keep this loop forever.
    for (let steps = 0; steps <= 2 ** 24 / this.scanLimit + 1; steps++) {
      const r = await this.backend.allocate(this.hostId, overlay, want, reclaim, scanned, this.scanLimit, family)
      if (r.ip !== undefined) return r.ip
      if (!Number.isSafeInteger(r.probes) || r.probes < 1) break
      scanned += r.probes
    }
    throw new FerryError('POOL_EXHAUSTED', `no free address was found in overlay ${overlay}`)
  }

  /** The store's answer must be an address of the overlay (the one asked for, if any), never its gateway. */
  private checkAllocated (overlay: string, want: string | undefined, family: Family, ip: string): string {
    const o = this.overlays.get(overlay)
    try {
      checkIp(ip, 'allocated address', family)
      if (want !== undefined && ip !== want) throw new FerryError('INVALID_REQUEST', `this host asked for ${want}`)
      const side = o && (family === 4 ? { subnet: o.subnet, gateway: o.gateway } : { subnet: o.subnet6, gateway: o.gateway6 })
      if (side !== undefined) {
        if (side.subnet === undefined) throw new FerryError('INVALID_REQUEST', 'this host uses the overlay without IPv6')
        if (checkOverlayAddress(overlay, side.subnet, ip) !== ip) throw new FerryError('INVALID_REQUEST', 'it is not canonical')
        if (ip === side.gateway) throw new FerryError('INVALID_REQUEST', 'it is the gateway')
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err)
      this.rejects.reject('allocation', 'invalid', `${overlay} ${describe(ip)}`, why)
      throw new FerryError('CLUSTER_REFUSED', `the cluster store allocated ${describe(ip)} in overlay ${overlay}, which is refused: ${why}`)
    }
    return ip
  }

  heldAddresses (overlay: string): string[] {
    return [...(this.addresses.get(overlay) ?? [])]
  }

  async releaseAddress (overlay: string, ip: string): Promise<boolean> {
    checkOverlayName(overlay)
    checkAnyIp(ip, 'address')
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
    const checked = this.fullEndpoint(ep)
    const key = epKey(ep.overlay, checked.endpointId)
    const before = this.ownEndpoints.get(key)
    // A publication without names (or ports) keeps those this host already published for the same endpoint ([] clears them).
    const given = publicationOf(ep.overlay, checked, ep)
    const pub = withKnownNames(given, before)
    const full = pub === given ? checked : this.fullEndpoint(pub)
    if (ep.names !== undefined) this.namesUnknown.delete(key)
    this.ownEndpoints.set(key, pub)
    this.tombstones.delete(tombKey({ kind: 'withdraw', overlay: ep.overlay, endpointId: full.endpointId }))
    try {
      return await this.call(() => this.sendEndpoint(ep.overlay, full))
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
    this.namesUnknown.delete(epKey(overlay, endpointId))
    return await this.remembering({ kind: 'withdraw', overlay, endpointId }, () => this.backend.withdraw(overlay, endpointId))
  }

  /** Run a removal; when the store is unreachable, remember it for the next re-assertion and rethrow. */
  private async remembering<T> (t: Tombstone, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.call(fn)
    } catch (err) {
      if (isUnavailable(err)) this.remember(t)
      throw err
    }
  }

  /**
   * Keep a removal for the next re-assertion, coalesced by what it removes.
   * Past the cap nothing more is kept: the re-assertion prunes everything this
   * host holds that is not in its intent, which covers every removal.
   */
  private remember (t: Tombstone): void {
    if (this.tombstonesOverflowed) return
    const k = tombKey(t)
    this.tombstones.delete(k)
    if (this.tombstones.size >= this.maxTombstones) {
      this.log?.warn({ max: this.maxTombstones }, 'too many removals while the cluster store is away: the next reconnection prunes instead')
      this.tombstones.clear()
      this.tombstonesOverflowed = true
      return
    }
    this.tombstones.set(k, t)
  }

  /** Removals waiting for the store (for status and tests). */
  pendingRemovals (): { count: number, overflowed: boolean } {
    return { count: this.tombstones.size, overflowed: this.tombstonesOverflowed }
  }
}
