/**
 * PeerSync keeps the kernel's VXLAN peers of every overlay this host runs in
 * step with the cluster.
 *
 * - It holds the cluster's endpoints (all overlays) with the revision they
 *   reflect. A `resync` from the store (every (re)connection), an unknown
 *   revision or a gap in revisions triggers a full read (snapshot); changes that
 *   arrive meanwhile are buffered and replayed after it. Otherwise each change
 *   is applied as it comes (revision = previous + 1; older ones are ignored).
 * - Each attached overlay keeps its plan (PeerPlanner, plan.ts). A pushed change
 *   of an endpoint is planned and applied as a delta: the FDB and neighbour
 *   entries of that endpoint only, with no kernel read, so its cost does not
 *   depend on the number of peers. The full plan, diffed against what the
 *   kernel reports, runs at attach, after an error and on `reconcileAll`; after a
 *   resync (every reconnection or revision gap) the full plan is diffed against
 *   the plan as programmed instead (reading back 100,000 peers from the kernel
 *   takes seconds; drift is the periodic repair's). The periodic repair (every
 *   `fullReconcileMs`, `repairAll`) reads the kernel outside the overlay's lock
 *   and diffs the plan as it stands against it, so changes are not held up by
 *   the read. Reconciles are serialized per overlay and coalesced (a
 *   burst of changes costs one run). Listeners (the DNS records) get the
 *   changed endpoints too, or "everything" after a full read.
 * - Nothing from the store is trusted (the client has checked each entry's
 *   schema and MAC already; what follows needs the whole picture): an endpoint
 *   is used only while its host is registered with the VTEP it names, inside
 *   its overlay's subnet, and holding its address's claim (the store's record
 *   of the first endpoint to publish it; a later claimant is ignored). A
 *   definition that changes the VNI, subnet or gateway under an overlay this
 *   host runs is refused unless this host's own define/join answered it. A
 *   message whose revision another message already took with other content,
 *   or a revision ahead of the store's counter, triggers a full read. What is
 *   refused is logged once, counted (ferry_cluster_rejected_total) and skipped.
 * - Changes buffered during a full read are coalesced by what they change (the
 *   latest per endpoint, host or overlay), at most `maxBuffered`; past that,
 *   another full read replaces them.
 * - While the store is down nothing is removed from the kernel: remote peers
 *   stay programmed (stale at worst) until the next resync says otherwise.
 * - `report(overlay)` gives both views, the cluster's (fresh from the store,
 *   or the cached one when it is down) and the kernel's, and their differences.
 */
import type { Logger } from 'pino'
import { setImmediate as setImmediatePromise } from 'node:timers/promises'
import { ErrorList, FerryError, toFerryError } from '../errors/errors.js'
import { KeyedMutex } from '../util/mutex.js'
import { compareIps, isIp } from '../util/ip.js'
import type { ClusterChange, ClusterEndpoint, ClusterEvent, ClusterSnapshot, ClusterStore, OverlayDefinition } from '../cluster/types.js'
import { RejectCounter } from '../cluster/rejects.js'
import { EndpointTable } from '../cluster/endpoints.js'
import { checkOverlayAddress, endpointKeyName } from '../cluster/validate.js'
import type { OverlayDataPlane } from './apply.js'
import type { MeshStatus, RotationResult, WireGuardMesh } from '../wireguard/mesh.js'
import { ENCRYPTED_VXLAN_PORT, type WireGuardInfo } from '../wireguard/plan.js'
import {
  PeerPlanner, chooseVtep, diffPeers, indexPacked, noCommonFamily, packPeers, overlayDevices, peerOpKey, planPeers, vxlanDevices,
  type LocalOverlay, type PackedIndex, type PackedPeers, type OverlayDevices, type PeerConflict, type PeerOp, type PeerPlan, type PeerTable, type Underlay,
} from './plan.js'

export interface PeerSyncOptions {
  store: ClusterStore
  dataPlane: OverlayDataPlane
  log?: Logger
  /** Program all-zeros flood entries too (see plan.ts). Default false. */
  flood?: boolean
  /** Re-read the kernel and repair drift this often; 0 = never. Default 60000. */
  fullReconcileMs?: number
  /** Delay before retrying a failed reconcile. Default 1000. */
  retryMs?: number
  /** Where refusals are counted; default the store's counter. */
  rejects?: RejectCounter
  /** Changes kept while a full read runs, at most (then another full read). Default 10000. */
  maxBuffered?: number
  /** This host's WireGuard mesh: needed for encrypted overlays (`encrypt: 'wireguard'`). */
  wireguard?: WireGuardMesh
  /** The full reconcile after a resync reads the kernel too (as a repair does). Default false: it diffs against the plan as programmed. */
  readKernelOnResync?: boolean
}

interface Attached {
  local: LocalOverlay
  devices: OverlayDevices
  /** The plan as programmed, kept up to date change by change (undefined until the first full reconcile). */
  planner?: PeerPlanner
  /** The next reconcile plans every peer (attach, resync, error, periodic repair). */
  full: boolean
  /** That full plan is diffed against what the kernel reports (attach, error, repair), not against the plan as programmed (resync). */
  readKernel: boolean
  /** Endpoints changed since the last reconcile: only their entries are planned and applied. */
  pending: Set<string>
  scheduled: boolean
  retry?: NodeJS.Timeout
  lastError?: string
  lastReconcile?: number
  /** For the debug log of a delta: when the oldest pending change reached this agent (performance.now()), and the ms its listeners (DNS) took. */
  changedAt?: number
  listenersMs: number
  /** While a periodic repair runs: the kernel entries (peerOpKey) the changes applied meanwhile touched. */
  touched?: Set<string>
}

export type PeerStatus = 'ok' | 'missing' | 'mismatch' | 'stale' | 'conflict'

/** One line of `ferry peers`. */
export interface PeerReportRow {
  ip: string
  mac: string
  endpointId?: string
  hostId?: string
  /** The VTEP the cluster says. */
  vtep?: string
  /** What the kernel has: the FDB destination of the MAC and the neighbour MAC of the IP. */
  kernelVtep?: string
  kernelMac?: string
  status: PeerStatus
  detail?: string
}

export interface PeerReport {
  overlay: string
  vni: number
  bridge: string
  vxlan: string
  /** 'cluster': read from the store now; 'cache': the store is unreachable, this is the last known state. */
  source: 'cluster' | 'cache'
  revision: number
  /** Remote endpoints as known in the cluster. */
  cluster: ClusterEndpoint[]
  /** Entries as programmed in the kernel. */
  kernel: PeerTable
  rows: PeerReportRow[]
  /** Rows that are not ok: missing, mismatch or stale (conflicts are counted apart). */
  differences: number
  conflicts: number
  /** Hosts with endpoints here that share no underlay family with this host (not programmed), one sentence each. */
  unreachable: string[]
}

/** One remote endpoint that changed: `endpoint` is its vetted record, absent when it is gone; `previous` what it was (absent: new). */
export interface RemoteChange {
  overlay: string
  endpointId: string
  endpoint?: ClusterEndpoint
  previous?: ClusterEndpoint
}

/** Told of remote endpoint changes; `undefined` means anything may have changed (read `remoteTables()`). */
export type RemoteListener = (changes?: readonly RemoteChange[]) => void

/** Kernel work done so far (for tests and benchmarks: a delta must not cost a full plan). */
export interface PeerSyncCounters {
  fullReconciles: number
  deltaReconciles: number
  /** Periodic repairs that diffed the plan as it stood against a kernel read made outside the lock. */
  repairs: number
  kernelOps: number
}

export interface PeerSyncStatus {
  revision: number
  synced: boolean
  lastError?: string
  /** Registered hosts that share no underlay family with this host (a mixed-family cluster): not reachable over any overlay. */
  unreachableHosts?: Array<{ hostId: string, detail: string }>
  overlays: Array<{ name: string, vni: number, bridge: string, vxlan: string, peers: number, skipped: number, lastError?: string, lastReconcile?: number }>
}

const DEFAULT_FULL_RECONCILE_MS = 60_000
const DEFAULT_RETRY_MS = 1000
const DEFAULT_MAX_BUFFERED = 10_000
/**
 * The agent's memory now (MiB), for the debug log of full reads and reconciles (bench:overlay reads it):
 * resident, the JS heap as reserved and as used, and the memory outside it (buffers).
 */
function memoryMiB (): { rssMiB: number, heapMiB: number, usedMiB: number, extMiB: number } {
  const m = process.memoryUsage()
  const mib = (n: number): number => Math.round(n / 2 ** 20)
  return { rssMiB: mib(m.rss), heapMiB: mib(m.heapTotal), usedMiB: mib(m.heapUsed), extMiB: mib(m.external) }
}

/** Milliseconds to 0.01 ms, for the debug log. */
const round2 = (ms: number): number => Math.round(ms * 100) / 100

/** Operations of a full reconcile handed to the data plane at once, at most (a chunk is made only when the previous one is applied). */
const APPLY_CHUNK = 8192
/** The periodic repair indexes and diffs outside the lock in slices of this many entries (a turn of the event loop every two). */
const REPAIR_SLICE = 2048

/** Up to `max` next values of `it` (fewer at its end; none when it is done). */
function nextChunk<T> (it: Iterator<T>, max: number): T[] {
  const out: T[] = []
  for (let r = it.next(); r.done !== true; r = it.next()) {
    out.push(r.value)
    if (out.length >= max) break
  }
  return out
}

/** Revisions remembered with their content, to notice a second message claiming one. */
const SEEN_REVISIONS = 256

/** What a change is about: the latest change per key is all a replay needs. */
function changeKey (ev: ClusterChange): string {
  switch (ev.kind) {
    case 'endpoint-published': return `e|${ev.overlay}|${ev.endpoint.endpointId}`
    case 'endpoint-withdrawn': return `e|${ev.overlay}|${ev.endpointId}`
    case 'host-up': return `h|${ev.host.hostId}`
    case 'host-removed': return `h|${ev.hostId}`
    case 'overlay-defined': return `o|${ev.overlay.name}`
    case 'overlay-removed': return `o|${ev.name}`
  }
}

type DefinitionFields = Pick<OverlayDefinition, 'subnet' | 'gateway' | 'subnet6' | 'gateway6' | 'encrypt'> & { vni?: number }

/** Encryption is part of the definition: a plain definition never replaces an encrypted one, nor the reverse. */
function sameDefinition (a: DefinitionFields, b: DefinitionFields): boolean {
  return a.vni === b.vni && a.subnet === b.subnet && a.gateway === b.gateway && a.subnet6 === b.subnet6 && a.gateway6 === b.gateway6 && a.encrypt === b.encrypt
}

/** An endpoint's addresses, one per family it has: each is claimed apart in the store. */
function endpointIps (e: ClusterEndpoint): string[] {
  return e.ip6 === undefined ? [e.ip] : [e.ip, e.ip6]
}

function byIp (a: { ip: string }, b: { ip: string }): number {
  return compareIps(a.ip, b.ip)
}

export class PeerSync {
  private readonly store: ClusterStore
  private readonly dp: OverlayDataPlane
  private readonly log: Logger | undefined
  private readonly flood: boolean
  private readonly fullReconcileMs: number
  private readonly retryMs: number
  private readonly locks = new KeyedMutex()
  private readonly attached = new Map<string, Attached>()
  /**
   * overlay -> its vetted endpoints, for every overlay of the cluster, in a compact table
   * (src/cluster/endpoints.ts) whose address index also stands for the claims: an endpoint
   * is kept only while it holds the claim of each of its addresses, so the claim of an
   * address is the known endpoint that holds it.
   */
  private known = new Map<string, EndpointTable>()
  private defs = new Map<string, OverlayDefinition>()
  /** hostId -> VTEP of every registered host. */
  private hosts = new Map<string, string>()
  /** hostId -> second VTEP (the other family) of every registered dual-stack host. */
  private hostVtep2 = new Map<string, string>()
  /** hostId -> the VTEP this host reaches it by (chooseVtep), for the VTEPs it was chosen from. */
  private readonly vtepChoice = new Map<string, { vtep: string, vtep2: string | undefined, to: string | undefined }>()
  /** hostId -> WireGuard information of every registered host that publishes it. */
  private hostWg = new Map<string, WireGuardInfo>()
  private readonly wg: WireGuardMesh | undefined
  private readonly readKernelOnResync: boolean
  private rev = -1
  private syncing: Promise<void> | undefined
  private syncAgain = false
  /** Changes that arrived during a full read: the latest per key, and every revision seen. */
  private buffer = new Map<string, ClusterChange>()
  private bufferRevs = new Set<number>()
  private bufferOverflow = false
  private readonly maxBuffered: number
  /** rev -> content of recently applied changes. */
  private readonly seen = new Map<number, string>()
  readonly rejects: RejectCounter
  private readonly remoteListeners = new Set<RemoteListener>()
  readonly counters: PeerSyncCounters = { fullReconciles: 0, deltaReconciles: 0, repairs: 0, kernelOps: 0 }
  private lastError: string | undefined
  /** False from a `down` until the next successful full read. */
  private online = false
  private underlayCache: Underlay | undefined
  private unsubscribe: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (opts: PeerSyncOptions) {
    this.store = opts.store
    this.dp = opts.dataPlane
    this.log = opts.log
    this.flood = opts.flood ?? false
    this.fullReconcileMs = opts.fullReconcileMs ?? DEFAULT_FULL_RECONCILE_MS
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS
    this.rejects = opts.rejects ?? opts.store.rejects ?? new RejectCounter(opts.log)
    this.maxBuffered = opts.maxBuffered ?? DEFAULT_MAX_BUFFERED
    this.wg = opts.wireguard
    this.readKernelOnResync = opts.readKernelOnResync ?? false
  }

  /** The vetted endpoints of every overlay, as records (made now, one object each: `remoteTables` reads them in place). */
  remoteEndpoints (): Map<string, ClusterEndpoint[]> {
    return new Map([...this.known].map(([name, m]) => [name, [...m.values()]]))
  }

  /** The vetted endpoints of every overlay, the tables themselves (read only: the DNS records are read from them). */
  remoteTables (): ReadonlyMap<string, EndpointTable> {
    return this.known
  }

  /**
   * Call `fn` whenever the vetted endpoints change: with the endpoints that
   * changed, or with nothing when anything may have (a resync, an overlay
   * defined or removed). Returns the unsubscribe.
   */
  onRemoteChange (fn: RemoteListener): () => void {
    this.remoteListeners.add(fn)
    return () => { this.remoteListeners.delete(fn) }
  }

  private remoteChanged (changes?: readonly RemoteChange[]): void {
    for (const fn of [...this.remoteListeners]) {
      try { fn(changes) } catch (err) { this.log?.error({ err }, 'a remote endpoint listener failed') }
    }
  }

  /** Buffered changes (for status and tests). */
  buffered (): { changes: number, revisions: number, overflowed: boolean } {
    return { changes: this.buffer.size, revisions: this.bufferRevs.size, overflowed: this.bufferOverflow }
  }

  /** Subscribe to the store (a ready store answers with `resync` at once). */
  start (): void {
    if (this.unsubscribe) return
    this.stopped = false
    this.unsubscribe = this.store.subscribe((ev) => { this.onEvent(ev) })
    if (this.fullReconcileMs > 0) {
      this.timer = setInterval(() => {
        void this.repairAll()
        void this.checkRevision() // never rejects: a failed read answers false
      }, this.fullReconcileMs)
      this.timer.unref()
    }
  }

  /** Stop listening. Kernel state is left as it is (live traffic keeps flowing). */
  stop (): void {
    this.stopped = true
    this.wg?.rotateEvery(undefined)
    this.unsubscribe?.()
    this.unsubscribe = undefined
    if (this.timer) clearInterval(this.timer)
    for (const a of this.attached.values()) if (a.retry) clearTimeout(a.retry)
  }

  /**
   * This host runs the overlay: build (or repair) its devices and program the
   * peers known so far. Resolves the devices (the bridge takes the endpoints' veths).
   */
  async attach (local: LocalOverlay): Promise<OverlayDevices> {
    return await this.locks.run(local.name, async () => {
      const devices = overlayDevices(this.localFor(local), await this.underlayFor(local))
      await this.dp.ensureDevices(devices)
      const prev = this.attached.get(local.name)
      if (prev?.retry) clearTimeout(prev.retry)
      this.attached.set(local.name, { local: { ...local }, devices, full: true, readKernel: true, pending: new Set(), scheduled: false, listenersMs: 0 })
      await this.reconcile(local.name)
      return devices
    })
  }

  /** This host no longer runs the overlay: its devices go (with every peer entry). */
  async detach (name: string): Promise<void> {
    await this.locks.run(name, async () => {
      const a = this.attached.get(name)
      if (!a) return
      if (a.retry) clearTimeout(a.retry)
      this.attached.delete(name)
      // Best effort: the tunnel goes with the last encrypted overlay even when the devices could not.
      const errors = new ErrorList()
      await errors.run(`removing ${a.devices.bridge} and ${a.devices.vxlan}`, () => this.dp.removeDevices(a.devices))
      const wg = this.wg
      if (a.local.encrypt !== undefined && wg?.isActive === true && ![...this.attached.values()].some((x) => x.local.encrypt !== undefined)) {
        await errors.run('stopping the WireGuard tunnel', () => wg.deactivate())
      }
      errors.throwIfAny(`detaching overlay ${name} was incomplete`)
    })
  }

  /** An encrypted overlay's VXLAN uses its own port (see src/wireguard/plan.ts). */
  private localFor (local: LocalOverlay): LocalOverlay {
    return local.encrypt === undefined || local.port !== undefined ? local : { ...local, port: ENCRYPTED_VXLAN_PORT }
  }

  /** The underlay of an overlay: the host's VTEP, or for an encrypted one its WireGuard tunnel address. */
  private async underlayFor (local: LocalOverlay): Promise<Underlay> {
    const u = await this.underlay()
    if (local.encrypt === undefined) return u
    if (u.second !== undefined) {
      throw new FerryError('UNSUPPORTED', `overlay ${local.name} is encrypted (ferry.encrypt=wireguard), whose tunnels run over one underlay family, and this host advertises two (${u.vtep}, ${u.second.vtep}): ` +
        'give encrypted overlays hosts with one --advertise-addr, all of the same family')
    }
    if (!this.wg) throw new FerryError('UNSUPPORTED', `overlay ${local.name} asks for WireGuard encryption, which this agent has not set up`)
    const t = await this.wg.activate(u)
    return { vtep: t.local, mtu: t.mtu }
  }

  /**
   * An endpoint as an overlay programs it: for an encrypted one, its host's tunnel address as the VTEP (none: not programmed);
   * for a plain one, the VTEP of its host this host reaches it by (chooseVtep: its primary one, or its second one when this host
   * has only that family; sharing none, the primary stays, which the planner leaves out as of the other family).
   */
  private peerView (a: Attached, e: ClusterEndpoint | undefined): ClusterEndpoint | undefined {
    if (e === undefined) return e
    if (a.local.encrypt === undefined) {
      if (this.hostVtep2.size === 0 && this.store.vtep2 === undefined) return e
      // Chosen once per host and its VTEPs (a full plan asks for every endpoint of every host).
      const v2 = this.hostVtep2.get(e.hostId)
      let c = this.vtepChoice.get(e.hostId)
      if (c?.vtep !== e.vtep || c.vtep2 !== v2) {
        c = { vtep: e.vtep, vtep2: v2, to: chooseVtep(this.selfVteps(), this.hostVteps(e.hostId, e.vtep)) }
        this.vtepChoice.set(e.hostId, c)
      }
      return c.to === undefined || c.to === e.vtep ? e : { ...e, vtep: c.to }
    }
    const tunnel = this.wg?.tunnels().get(e.hostId)
    return tunnel === undefined ? undefined : { ...e, vtep: tunnel }
  }

  /** Hosts changed: re-plan the WireGuard peers, and every encrypted overlay (its VTEPs are the tunnels). */
  private hostsChanged (): void {
    if (!this.wg) return
    const hosts = [...this.hosts].map(([hostId, vtep]) => {
      const wg = this.hostWg.get(hostId)
      return wg ? { hostId, vtep, wg } : { hostId, vtep }
    })
    this.wg.setHosts(hosts).catch((err: unknown) => { this.log?.error({ err }, 'cannot program the WireGuard peers') })
    for (const [name, a] of this.attached) if (a.local.encrypt !== undefined) this.schedule(name, true)
  }

  /** `ferry cluster rotate-key`: a new WireGuard key for this host (src/wireguard/mesh.ts). */
  async rotateWireGuardKey (): Promise<RotationResult> {
    if (!this.wg) throw new FerryError('UNSUPPORTED', 'this agent has no WireGuard (wireguard-go is not installed): there is no key to rotate')
    return await this.wg.rotateKey()
  }

  /** This host's WireGuard mesh: mode, device, peers with handshake age and bytes (undefined without one). */
  async wireguardStatus (): Promise<MeshStatus | undefined> {
    return await this.wg?.status()
  }

  devices (name: string): OverlayDevices | undefined {
    return this.attached.get(name)?.devices
  }

  /** Re-read the kernel for every attached overlay and repair it; resolves when done. */
  async reconcileAll (): Promise<void> {
    await Promise.all([...this.attached.keys()].map((name) => this.locks.run(name, async () => {
      const a = this.attached.get(name)
      if (a) { a.full = true; a.readKernel = true }
      await this.reconcile(name)
    })))
  }

  /**
   * The periodic repair of every attached overlay (what the --full-reconcile timer runs); resolves when done, never rejects.
   * At 100,000 peers the kernel read takes more than a second and the diff a few hundred ms: both are made outside the
   * overlay's lock, in slices with turns of the event loop between them, so changes keep reaching the kernel meanwhile
   * and the agent keeps serving. The diff reads the plan as it stands at each step; the changes applied meanwhile note
   * the entries they touched, and under the lock the repair applies its operations except those of touched entries (the
   * change's own operations are newer), and only if the plan is still the one it diffed (a full reconcile in between
   * replaces it: that one stands). A read older than the changes applied after it costs only redundant operations, each
   * toward the plan. Large drift (more than a chunk of operations) is left to the full reconcile with a kernel read.
   */
  async repairAll (): Promise<void> {
    await Promise.all([...this.attached.keys()].map((name) => this.repair(name)))
  }

  private async repair (name: string): Promise<void> {
    const a = this.attached.get(name)
    if (!a || this.stopped || a.touched !== undefined) return
    const touched = new Set<string>()
    a.touched = touched
    try {
      const devices = a.devices
      const planner = a.planner
      if (a.full || planner === undefined || planner.devices !== devices) { this.schedule(name, true, true); return }
      const t0 = performance.now()
      let index: PackedIndex
      try {
        index = await indexPacked(await this.readKernelPacked(devices), REPAIR_SLICE, setImmediatePromise)
      } catch {
        this.schedule(name, true, true) // the full reconcile reads again, and records and retries what fails
        return
      }
      const t1 = performance.now()
      const ops: PeerOp[] = []
      let slices = 0
      for (const o of planner.opsFromPackedSteps(index, REPAIR_SLICE)) {
        if (o !== null) {
          ops.push(o)
          if (ops.length > APPLY_CHUNK) { this.schedule(name, true, true); return }
        } else if (++slices % 2 === 0) {
          await setImmediatePromise()
          if (this.attached.get(name) !== a || a.planner !== planner || this.stopped) return
        }
      }
      const t2 = performance.now()
      await this.locks.run(name, async () => {
        // A full reconcile ran or is pending: its plan, not the one diffed, stands.
        if (this.attached.get(name) !== a || this.stopped || a.full || a.planner !== planner || a.devices !== devices) return
        const fresh = ops.filter((o) => !touched.has(peerOpKey(o)))
        const t3 = performance.now()
        try {
          await this.dp.applyPeerOps(fresh)
        } catch (err) {
          // What the kernel has is no longer known: the full reconcile reads it again (and retries).
          a.lastError = toFerryError(err, 'KERNEL', `cannot repair the peers of overlay ${name}`).message
          this.schedule(name, true, true)
          return
        }
        this.counters.repairs++
        this.counters.kernelOps += fresh.length
        a.lastReconcile = Date.now()
        this.log?.debug({
          overlay: name, readMs: Math.round(t1 - t0), diffMs: Math.round(t2 - t1), lockWaitMs: Math.round(t3 - t2), lockedMs: Math.round(performance.now() - t3),
          ops: fresh.length, dropped: ops.length - fresh.length, ...memoryMiB(),
        }, 'overlay repair')
      })
    } finally {
      a.touched = undefined
    }
  }

  /** Resolves when no resync or reconcile is pending (for tests and benchmarks). */
  async settled (): Promise<void> {
    for (;;) {
      if (this.syncing) await this.syncing
      await Promise.all([...this.attached.keys()].map((name) => this.locks.run(name, async () => {})))
      if (!this.syncing && [...this.attached.values()].every((a) => !a.scheduled)) return
    }
  }

  status (): PeerSyncStatus {
    const s: PeerSyncStatus = {
      revision: this.rev,
      synced: this.online && this.rev >= 0 && !this.syncing,
      unreachableHosts: this.unreachableHosts(),
      overlays: [...this.attached.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, a]) => {
        const o: PeerSyncStatus['overlays'][number] = {
          name, vni: a.devices.vni, bridge: a.devices.bridge, vxlan: a.devices.vxlan,
          peers: a.planner?.size().programmed ?? 0, skipped: a.planner?.size().skipped ?? 0,
        }
        if (a.lastError !== undefined) o.lastError = a.lastError
        if (a.lastReconcile !== undefined) o.lastReconcile = a.lastReconcile
        return o
      }),
    }
    if (this.lastError !== undefined) s.lastError = this.lastError
    return s
  }

  // -------------------------------------------------------------------------
  // Cluster side

  private onEvent (ev: ClusterEvent): void {
    if (this.stopped) return
    switch (ev.kind) {
      case 'resync': void this.resync(); return // resync never rejects: it logs a failed read
      case 'resumed': this.resumed(ev.rev); return
      case 'down': this.online = false; this.lastError = ev.error.message; return
      case 'error': return
      default: break // a change: applied below, in revision order
    }
    if (this.syncing) { this.bufferChange(ev); return }
    if (this.rev < 0) {
      this.bufferChange(ev)
      // Before the first full read the store's `resync` is on its way (it follows every connection, once this
      // host is re-asserted): reading now would read twice (at 100,000 endpoints, 2.5 s and ~85 MiB more).
      // After a failed read, a change is what starts the next one.
      if (this.lastError !== undefined) void this.resync() // never rejects
      return
    }
    const fp = JSON.stringify(ev)
    const before = this.seen.get(ev.rev)
    if (before !== undefined) {
      if (before !== fp) {
        // Two messages claim one revision: at least one is forged. Only the store's entries can tell.
        this.rejects.reject('message', 'revision', `revision ${ev.rev}`, 'another message already had this revision; re-reading the store')
        void this.resync() // never rejects
      }
      return
    }
    if (ev.rev <= this.rev) return
    if (ev.rev !== this.rev + 1) {
      this.log?.info({ have: this.rev, got: ev.rev }, 'cluster revision gap: full resync')
      void this.resync() // never rejects
      return
    }
    this.apply(ev, true, fp)
  }

  private bufferChange (ev: ClusterChange): void {
    if (this.bufferOverflow) return
    this.bufferRevs.add(ev.rev)
    const k = changeKey(ev)
    const had = this.buffer.get(k)
    if (!had || had.rev < ev.rev) this.buffer.set(k, ev)
    if (this.bufferRevs.size > this.maxBuffered) {
      this.log?.warn({ max: this.maxBuffered }, 'too many cluster changes during a full read: reading again instead of buffering')
      this.clearBuffer()
      this.bufferOverflow = true
      this.syncAgain = true
    }
  }

  private clearBuffer (): void {
    this.buffer.clear()
    this.bufferRevs.clear()
    this.bufferOverflow = false
  }

  private remember (rev: number, fp: string): void {
    this.seen.set(rev, fp)
    if (this.seen.size > SEEN_REVISIONS) this.seen.delete(this.seen.keys().next().value as number)
  }

  /**
   * Compare the revision applied here with the store's counter: ahead of it means
   * a forged message took a revision nobody made; re-read. Runs with the full
   * reconciles; resolves whether a resync was started.
   */
  async checkRevision (): Promise<boolean> {
    if (this.syncing || this.rev < 0) return false
    let stored: number
    try { stored = await this.store.revision() } catch { return false }
    if (this.rev <= stored) return false
    this.rejects.reject('message', 'revision', `revision ${this.rev}`, `it is ahead of the store's counter (${stored}); re-reading the store`)
    void this.resync() // never rejects
    return true
  }

  /**
   * The store came back with the history followed here and handed on what was missed (applied as
   * changes just before): up to date when at its revision (no full read: at 100,000 endpoints that
   * is 2.5 s saved); otherwise a full read. A read under way ends up to date by itself.
   */
  private resumed (rev: number): void {
    if (this.syncing) return
    if (this.rev !== rev) { void this.resync(); return } // never rejects
    this.online = true
    this.lastError = undefined
    this.log?.debug({ rev, ...memoryMiB() }, 'cluster caught up')
  }

  /** Full read from the store; changes that arrive meanwhile are replayed after it. Never rejects: a failed read is logged and kept in lastError. */
  private resync (): Promise<void> {
    if (this.syncing) { this.syncAgain = true; return this.syncing }
    this.syncing = (async () => {
      do {
        this.syncAgain = false
        try {
          const t0 = performance.now()
          const snap = await this.store.snapshot()
          const t1 = performance.now()
          this.load(snap)
          this.log?.debug({ readMs: Math.round(t1 - t0), loadMs: Math.round(performance.now() - t1), ...memoryMiB() }, 'cluster read in full')
          this.online = true
          this.lastError = undefined
          this.replayBuffer()
        } catch (err) {
          // The store went away again: keep what is programmed; its next `resync` retries.
          this.rev = -1
          this.lastError = err instanceof Error ? err.message : String(err)
          this.log?.warn({ err }, 'cluster resync failed')
        }
      } while (this.syncAgain && !this.stopped)
      this.syncing = undefined
      if (this.rev >= 0) {
        this.hostsChanged()
        for (const name of this.attached.keys()) this.schedule(name, true, this.readKernelOnResync)
        this.remoteChanged()
      }
    })()
    return this.syncing
  }

  /** A full read replaces everything known: hosts, definitions, claims, and the endpoints that pass. */
  private load (snap: ClusterSnapshot): void {
    const prev = this.defs
    this.hosts = new Map(snap.hosts.map((h) => [h.hostId, h.vtep]))
    this.hostVtep2 = new Map(snap.hosts.flatMap((h) => (h.vtep2 !== undefined ? [[h.hostId, h.vtep2] as const] : [])))
    this.hostWg = new Map(snap.hosts.flatMap((h) => (h.wg ? [[h.hostId, h.wg] as const] : [])))
    this.defs = new Map()
    this.known = new Map()
    this.seen.clear()
    for (const o of snap.overlays) {
      // A refused definition does not take the overlay's endpoints away: the one in use stays.
      const def = this.acceptDefinition(o.definition, false) ?? prev.get(o.definition.name) ?? this.attachedDefinition(o.definition.name)
      if (!def) continue
      const name = def.name
      this.defs.set(name, def)
      // The table the store's client packed the endpoints into as it read them is taken as it is, less
      // the endpoints refused here (each made into a record one at a time): no second copy, no array.
      const m = o.packed ?? new EndpointTable()
      if (!o.packed) for (const e of o.endpoints) m.set(e)
      // The claims are counted per row (no map of 100,000 addresses): a row holds as many claims as it has addresses
      // (counted by the store's client as it read them, when it packed the table).
      const held = o.packed && o.claimed ? o.claimed : new Uint8Array(m.capacity)
      if (held !== o.claimed) for (const c of o.claims) for (const slot of m.slotsWithIp(c.ip)) if (m.endpointId(slot) === c.endpointId) held[slot] = (held[slot] ?? 0) + 1
      let claims: Map<string, string> | undefined
      const gone: string[] = []
      for (const slot of m.slots()) {
        const e = m.row(slot)
        if (!this.inSubnet(def, e) || !this.tiedToHost(name, e)) { gone.push(e.endpointId); continue }
        if (held[slot] === endpointIps(e).length) continue
        // Refused: who holds the address (a map of the claims, made once, only when something is refused).
        claims ??= new Map(o.claims.map((c) => [c.ip, c.endpointId]))
        const unclaimed = endpointIps(e).find((ip) => claims?.get(ip) !== e.endpointId) ?? e.ip
        const holder = claims.get(unclaimed)
        this.rejectEndpoint(name, e, 'address-claimed', `address ${unclaimed} is claimed by ${holder !== undefined ? `endpoint ${holder.slice(0, 12)}` : 'no endpoint'}`)
        gone.push(e.endpointId)
      }
      for (const id of gone) m.delete(id)
      // Only the claims of the endpoints kept matter later (a claim whose holder is not known, or no longer
      // holds the address, refuses nobody): the table's address index stands for them.
      this.known.set(name, m)
    }
    this.rev = snap.rev
  }

  /** Changes that came during the full read, after it; another read when some revision is missing. */
  private replayBuffer (): void {
    const pending = [...this.buffer.values()].filter((ev) => ev.rev > this.rev).sort((a, b) => a.rev - b.rev)
    let max = this.rev
    let count = 0
    for (const r of this.bufferRevs) if (r > this.rev) { count++; if (r > max) max = r }
    const complete = !this.bufferOverflow && count === max - this.rev
    this.clearBuffer()
    if (!complete) { this.syncAgain = true; return }
    for (const ev of pending) this.apply(ev, false)
    this.rev = max
  }

  private rejectEndpoint (overlay: string, e: ClusterEndpoint, reason: 'unregistered-host' | 'vtep-mismatch' | 'address-claimed' | 'outside-subnet' | 'unknown-overlay', detail: string): void {
    this.rejects.reject('endpoint', reason, `${endpointKeyName(overlay, e.endpointId.slice(0, 64))} (${e.ip} on ${e.hostId}/${e.vtep})`, detail)
  }

  private attachedDefinition (name: string): OverlayDefinition | undefined {
    const a = this.attached.get(name)
    const d = a?.devices
    return d && {
      name, subnet: d.subnet, gateway: d.gateway, ...(d.subnet6 !== undefined ? { subnet6: d.subnet6, gateway6: d.gateway6 } : {}), vni: d.vni,
      ...(a.local.encrypt !== undefined ? { encrypt: a.local.encrypt } : {}), createdBy: '', createdAt: 0,
    }
  }

  /** A host address of the overlay's subnet, not its gateway (and the same for an IPv6 address on a dual-stack overlay). */
  private inSubnet (def: OverlayDefinition, e: ClusterEndpoint): boolean {
    try {
      checkOverlayAddress(def.name, def.subnet, e.ip)
      if (e.ip === def.gateway) throw new FerryError('INVALID_REQUEST', `${e.ip} is the gateway`)
      if (e.ip6 !== undefined) {
        if (def.subnet6 === undefined) throw new FerryError('INVALID_REQUEST', `${e.ip6} is an IPv6 address on an IPv4-only overlay`)
        checkOverlayAddress(def.name, def.subnet6, e.ip6)
        if (e.ip6 === def.gateway6) throw new FerryError('INVALID_REQUEST', `${e.ip6} is the IPv6 gateway`)
      }
      return true
    } catch (err) {
      this.rejectEndpoint(def.name, e, 'outside-subnet', err instanceof Error ? err.message : String(err))
      return false
    }
  }

  /** The endpoint's host is registered with the VTEP the endpoint names. */
  private tiedToHost (overlay: string, e: ClusterEndpoint): boolean {
    const vtep = this.hosts.get(e.hostId)
    if (vtep === undefined) { this.rejectEndpoint(overlay, e, 'unregistered-host', `host ${e.hostId} is not registered`); return false }
    if (vtep !== e.vtep) { this.rejectEndpoint(overlay, e, 'vtep-mismatch', `host ${e.hostId} is registered with VTEP ${vtep}`); return false }
    return true
  }

  /**
   * A definition is taken unless it changes the VNI, subnet or gateway under an
   * overlay this host runs (or, for a pushed change, under one it knows), and
   * this host's own define/join did not answer that definition.
   */
  private acceptDefinition (def: OverlayDefinition, pushed: boolean): OverlayDefinition | undefined {
    const a = this.attached.get(def.name)
    const before: DefinitionFields | undefined = a
      ? { vni: a.devices.vni, subnet: a.devices.subnet, gateway: a.devices.gateway, subnet6: a.devices.subnet6, gateway6: a.devices.gateway6, encrypt: a.local.encrypt }
      : pushed ? this.defs.get(def.name) : undefined
    if (!before || sameDefinition(before, def)) return def
    const own = this.store.localOverlay?.(def.name)
    if (own && sameDefinition(own, def)) return def
    this.rejects.reject('overlay', 'changed-definition', def.name,
      `it changes VNI ${before.vni ?? '?'} ${before.subnet} gw ${before.gateway} ${before.encrypt ?? 'plain'} to VNI ${def.vni} ${def.subnet} gw ${def.gateway} ${def.encrypt ?? 'plain'}, which this host did not define`)
    return undefined
  }

  /** A pushed endpoint: tied to its host, inside its overlay, and not taking another endpoint's address. */
  private acceptPublished (overlay: string, e: ClusterEndpoint): boolean {
    const def = this.defs.get(overlay)
    if (!def) { this.rejectEndpoint(overlay, e, 'unknown-overlay', `overlay ${overlay} is not defined`); return false }
    if (!this.inSubnet(def, e) || !this.tiedToHost(overlay, e)) return false
    const known = this.known.get(overlay)
    for (const ip of endpointIps(e)) {
      const slot = known?.slotWithIp(ip) ?? -1
      const holder = slot < 0 ? undefined : known?.endpointId(slot)
      if (holder !== undefined && holder !== e.endpointId) {
        this.rejectEndpoint(overlay, e, 'address-claimed', `address ${ip} is claimed by endpoint ${holder.slice(0, 12)}, which published it first`)
        return false
      }
    }
    return true
  }

  /** `fp`: the change as JSON, when the caller has made it already (once per change). */
  private apply (ev: ClusterChange, schedule = true, fp = JSON.stringify(ev)): void {
    const receivedAt = performance.now()
    this.rev = ev.rev
    this.remember(ev.rev, fp)
    /** Overlays whose every endpoint may have changed, and single endpoints that did. */
    const whole = new Set<string>()
    const changed: RemoteChange[] = []
    /** Record the change of one endpoint: what it is now (from the table) and what it was. */
    const endpointChanged = (overlay: string, endpointId: string, previous: ClusterEndpoint | undefined): void => {
      if (!schedule) return
      const e = this.known.get(overlay)?.get(endpointId)
      changed.push({ overlay, endpointId, ...(e ? { endpoint: e } : {}), ...(previous ? { previous } : {}) })
    }
    const dropHost = (hostId: string, keep?: string): void => {
      for (const [name, m] of this.known) {
        const gone: number[] = []
        for (const slot of m.slots()) if (m.hostId(slot) === hostId && m.vtep(slot) !== keep) gone.push(slot)
        for (const slot of gone) {
          const previous = schedule ? m.row(slot) : undefined
          const id = m.endpointId(slot)
          m.delete(id)
          endpointChanged(name, id, previous)
        }
      }
    }
    switch (ev.kind) {
      case 'endpoint-published': {
        if (!this.acceptPublished(ev.overlay, ev.endpoint)) break
        let m = this.known.get(ev.overlay)
        if (!m) { m = new EndpointTable(); this.known.set(ev.overlay, m) }
        const previous = schedule ? m.get(ev.endpoint.endpointId) : undefined
        // The client has checked the record (addresses, MAC): it packs.
        if (!m.set(ev.endpoint)) break
        endpointChanged(ev.overlay, ev.endpoint.endpointId, previous)
        break
      }
      case 'endpoint-withdrawn': {
        const m = this.known.get(ev.overlay)
        const previous = m?.get(ev.endpointId)
        if (!m || !previous) break
        m.delete(ev.endpointId)
        endpointChanged(ev.overlay, ev.endpointId, previous)
        break
      }
      case 'host-removed':
        this.hosts.delete(ev.hostId)
        this.hostWg.delete(ev.hostId)
        this.hostVtep2.delete(ev.hostId)
        this.vtepChoice.delete(ev.hostId)
        dropHost(ev.hostId)
        if (schedule) this.hostsChanged()
        break
      case 'host-up':
        // A host that comes back with another VTEP re-publishes its endpoints; the old ones no longer match.
        this.hosts.set(ev.host.hostId, ev.host.vtep)
        if (ev.host.wg) this.hostWg.set(ev.host.hostId, ev.host.wg)
        else this.hostWg.delete(ev.host.hostId)
        dropHost(ev.host.hostId, ev.host.vtep)
        if (this.hostVtep2.get(ev.host.hostId) !== ev.host.vtep2) {
          if (ev.host.vtep2 !== undefined) this.hostVtep2.set(ev.host.hostId, ev.host.vtep2)
          else this.hostVtep2.delete(ev.host.hostId)
          // The VTEP this host reaches that host's endpoints by may change: those endpoints are planned again.
          if (schedule) for (const [name, m] of this.known) for (const slot of m.slots()) if (m.hostId(slot) === ev.host.hostId) this.scheduleEndpoint(name, m.endpointId(slot), receivedAt)
        }
        if (schedule) this.hostsChanged()
        break
      case 'overlay-defined': {
        const before = this.defs.get(ev.overlay.name)
        const def = this.acceptDefinition(ev.overlay, true)
        if (!def) break
        this.defs.set(def.name, def)
        // Its table now, empty: the DNS records read it from the start (rather than a copy of their own).
        if (!this.known.has(def.name)) this.known.set(def.name, new EndpointTable())
        // A host joining (the same definition again) changes nothing here.
        if (!before || !sameDefinition(before, def)) whole.add(def.name)
        break
      }
      case 'overlay-removed':
        this.defs.delete(ev.name)
        this.known.delete(ev.name)
        whole.add(ev.name)
        break
    }
    if (!schedule) return
    for (const name of whole) this.schedule(name, true)
    for (const c of changed) if (!whole.has(c.overlay)) this.scheduleEndpoint(c.overlay, c.endpointId, receivedAt)
    if (whole.size > 0) { this.remoteChanged(); return }
    if (changed.length === 0) return
    const t0 = performance.now()
    this.remoteChanged(changed)
    const listenersMs = performance.now() - t0
    for (const c of changed) { const a = this.attached.get(c.overlay); if (a) a.listenersMs += listenersMs }
  }

  // -------------------------------------------------------------------------
  // Kernel side

  private async underlay (): Promise<Underlay> {
    if (!this.underlayCache) {
      const u = await this.dp.underlay(this.store.vtep)
      if (this.store.vtep2 !== undefined) u.second = await this.dp.underlay(this.store.vtep2)
      this.underlayCache = u
    }
    return this.underlayCache
  }

  /** This host's VTEPs. */
  private selfVteps (): { vtep: string, vtep2?: string } {
    return this.store.vtep2 === undefined ? { vtep: this.store.vtep } : { vtep: this.store.vtep, vtep2: this.store.vtep2 }
  }

  /** A registered host's VTEPs (its primary as `vtep`). */
  private hostVteps (hostId: string, vtep: string): { vtep: string, vtep2?: string } {
    const v2 = this.hostVtep2.get(hostId)
    return v2 === undefined ? { vtep } : { vtep, vtep2: v2 }
  }

  /** Registered hosts that share no underlay family with this host, with the sentence that says so. */
  unreachableHosts (): Array<{ hostId: string, detail: string }> {
    const self = this.selfVteps()
    const out: Array<{ hostId: string, detail: string }> = []
    for (const [hostId, vtep] of this.hosts) {
      if (hostId === this.store.hostId) continue
      const theirs = this.hostVteps(hostId, vtep)
      if (chooseVtep(self, theirs) === undefined) out.push({ hostId, detail: noCommonFamily(hostId, theirs, self) })
    }
    return out.sort((a, b) => (a.hostId < b.hostId ? -1 : 1))
  }

  /** Program the change of one endpoint soon (coalesced with the others); `at`: when the change reached this agent. */
  private scheduleEndpoint (name: string, endpointId: string, at: number): void {
    const a = this.attached.get(name)
    if (!a || this.stopped) return
    if (!a.full) { a.pending.add(endpointId); a.changedAt ??= at }
    this.schedule(name, false)
  }

  /** Reconcile `name` soon (coalesced); `full` plans every peer, `readKernel` diffs that against what the kernel reports. */
  private schedule (name: string, full: boolean, readKernel = false): void {
    const a = this.attached.get(name)
    if (!a || this.stopped) return
    if (full) { a.full = true; a.pending.clear() }
    if (readKernel) a.readKernel = true
    if (a.scheduled) return
    a.scheduled = true
    void this.locks.run(name, async () => { // never rejects: reconcile records its errors and retries
      a.scheduled = false
      if (this.attached.get(name) !== a) return
      await this.reconcile(name)
    })
  }

  /** The peers of an overlay as it programs them, made one at a time (the planner packs them as they come). */
  private * remotePeers (name: string): Generator<ClusterEndpoint> {
    const a = this.attached.get(name)
    for (const e of this.known.get(name)?.values() ?? []) {
      const v = a ? this.peerView(a, e) : e
      if (v) yield v
    }
  }

  /**
   * One reconcile of an attached overlay; runs under its lock. Full: every peer
   * planned and compared with what the kernel reports. Otherwise only the
   * endpoints changed since the last run, against the plan as programmed.
   * Errors are recorded and retried (in full).
   */
  private async reconcile (name: string): Promise<void> {
    const a = this.attached.get(name)
    if (!a) return
    const ops: PeerOp[] = []
    let count = 0
    let delta: Record<string, number> | undefined
    // The request is taken now, before any await: a full reconcile asked for while this one
    // runs (a resync that ends meanwhile) runs after it, and an endpoint that changes meanwhile
    // stays pending for the next run instead of being folded into a plan already made.
    let full = a.full
    a.full = false
    let readKernel = a.readKernel
    a.readKernel = false
    // For the debug line of a delta: the changes that arrive while this runs are the next run's.
    const changedAt = a.changedAt
    const listenersMs = a.listenersMs
    a.changedAt = undefined
    a.listenersMs = 0
    try {
      const def = this.defs.get(name)
      if (def && def.vni !== a.devices.vni) {
        this.log?.warn({ overlay: name, was: a.devices.vni, now: def.vni }, 'the overlay\'s VNI changed in the cluster: rebuilding its VXLAN device')
        a.local = { ...a.local, vni: def.vni }
        a.devices = overlayDevices(this.localFor(a.local), await this.underlayFor(a.local))
        await this.dp.ensureDevices(a.devices)
        full = true
        readKernel = true
      }
      if (full || !a.planner || a.planner.devices !== a.devices) {
        // Everything pending so far is in the endpoints planned here; what changes from now on is not.
        a.pending.clear()
        const t0 = performance.now()
        // After a resync, the plan as programmed (the previous planner) stands for the kernel: no table of it is built.
        const programmed = readKernel || !a.planner || a.planner.devices !== a.devices ? undefined : a.planner
        const planner = new PeerPlanner(a.devices, { hostId: this.store.hostId, vtep: a.devices.local }, { flood: this.flood })
        // A plain overlay programs its endpoints as they are: the planner copies their packed rows.
        const known = this.known.get(name)
        if (a.local.encrypt === undefined && known) planner.loadTable(known)
        else planner.load(this.remotePeers(name))
        a.planner = planner
        const t1 = performance.now()
        const kernel = programmed ? undefined : await this.readKernel(a.devices)
        const t2 = performance.now()
        // The plan's operations, applied in chunks as they are made (in their order: deletes, then
        // FDB adds, then neighbour adds): never an array of all of them (at 100,000 peers, 200,000).
        const each = kernel ? planner.opsFromEach(kernel) : programmed ? planner.opsFromPlannerEach(programmed) : undefined
        let diffMs = 0
        let applyMs = 0
        for (;;) {
          const t3 = performance.now()
          const chunk = each ? nextChunk(each, APPLY_CHUNK) : []
          const t4 = performance.now()
          diffMs += t4 - t3
          if (chunk.length === 0) break
          await this.dp.applyPeerOps(chunk)
          applyMs += performance.now() - t4
          count += chunk.length
        }
        this.log?.debug({
          overlay: name, planMs: Math.round(t1 - t0), readMs: Math.round(t2 - t1), diffMs: Math.round(diffMs), applyMs: Math.round(applyMs), ops: count, ...memoryMiB(),
        }, 'overlay full reconcile')
        this.counters.fullReconciles++
      } else {
        const planner = a.planner
        const m = this.known.get(name)
        const ids = [...a.pending]
        a.pending.clear()
        const t0 = performance.now()
        for (const id of ids) {
          const e = this.peerView(a, m?.get(id))
          for (const o of e ? planner.upsert(e) : planner.remove(id)) ops.push(o)
        }
        const t1 = performance.now()
        if (a.touched) for (const o of ops) a.touched.add(peerOpKey(o))
        await this.dp.applyPeerOps(ops)
        count = ops.length
        this.counters.deltaReconciles++
        // Where a delta's time went (bench:overlay accounts for each change from these): from the change's arrival
        // to this run (its listeners, the DNS records, ran first), planning, the kernel's answer.
        if (count > 0 && this.log?.isLevelEnabled('debug') === true) {
          delta = {
            receivedAt: Math.round((performance.timeOrigin + (changedAt ?? t0)) * 100) / 100, listenersMs: round2(listenersMs),
            queuedMs: round2(t0 - (changedAt ?? t0)), planMs: round2(t1 - t0), kernelMs: round2(performance.now() - t1),
          }
        }
      }
      this.counters.kernelOps += count
      a.lastReconcile = Date.now()
      delete a.lastError
      if (count > 0) this.log?.debug({ overlay: name, ops: count, peers: a.planner.size().programmed, ...delta }, 'overlay peers programmed')
    } catch (err) {
      // What the kernel has is no longer known: the retry reads it.
      a.full = true
      a.readKernel = true
      const e = toFerryError(err, 'KERNEL', `cannot program the peers of overlay ${name}`)
      a.lastError = e.message
      this.log?.error({ err: e, overlay: name }, 'overlay reconcile failed; retrying')
      if (!a.retry && !this.stopped) {
        a.retry = setTimeout(() => { delete a.retry; this.schedule(name, true, true) }, this.retryMs)
        a.retry.unref()
      }
    }
  }

  // -------------------------------------------------------------------------
  // Inspection

  /** The cluster's and the kernel's view of an attached overlay's remote peers, and their differences. */
  async report (name: string): Promise<PeerReport> {
    const a = this.attached.get(name)
    if (!a) throw new FerryError('NETWORK_NOT_FOUND', `overlay ${name} is not attached on this host`)
    let source: PeerReport['source'] = 'cluster'
    let endpoints: ClusterEndpoint[]
    let revision = this.rev
    try {
      ;[endpoints, revision] = await Promise.all([this.store.endpoints(name), this.store.revision()])
      endpoints = endpoints.flatMap((e) => { const v = this.peerView(a, e); return v ? [v] : [] })
    } catch {
      source = 'cache'
      endpoints = [...this.remotePeers(name)]
    }
    const self = { hostId: this.store.hostId, vtep: a.devices.local }
    const plan = planPeers(a.devices, self, endpoints, { flood: this.flood })
    const kernel = await this.readKernel(a.devices)
    const withEndpoints = new Set(endpoints.map((e) => e.hostId))
    const unreachable = a.local.encrypt === undefined ? this.unreachableHosts().filter((h) => withEndpoints.has(h.hostId)).map((h) => h.detail) : []
    return { overlay: name, vni: a.devices.vni, bridge: a.devices.bridge, vxlan: a.devices.vxlan, source, revision,
      cluster: endpoints.filter((e) => e.hostId !== self.hostId && e.vtep !== self.vtep), kernel, ...compare(plan, kernel), unreachable }
  }

  /** `readKernel`'s entries packed, one table per device (the periodic repair: no object per entry). */
  private async readKernelPacked (d: OverlayDevices): Promise<PackedPeers[]> {
    const dp = this.dp
    return await Promise.all(vxlanDevices(d).map(async (dev) => dp.readPeersPacked ? await dp.readPeersPacked(dev) : packPeers(dev, await dp.readPeers(dev))))
  }

  /** The permanent entries of every VXLAN device of an overlay (the second one's too, on a dual-stack host). */
  private async readKernel (d: OverlayDevices): Promise<PeerTable> {
    const tables = await Promise.all(vxlanDevices(d).map((dev) => this.dp.readPeers(dev)))
    return { fdb: tables.flatMap((t) => t.fdb), neigh: tables.flatMap((t) => t.neigh) }
  }
}

/** Rows of the report: every planned peer against the kernel, conflicts, and kernel entries nobody wants. */
export function compare (plan: PeerPlan, kernel: PeerTable): { rows: PeerReportRow[], differences: number, conflicts: number } {
  const fdbByMac = new Map(kernel.fdb.filter((e) => e.mac !== '00:00:00:00:00:00').map((e) => [e.mac.toLowerCase(), e]))
  const neighByIp = new Map(kernel.neigh.map((e) => [e.ip, e]))
  const usedMacs = new Set<string>()
  const usedIps = new Set<string>()
  const rows: PeerReportRow[] = []
  for (const p of plan.peers) {
    const f = fdbByMac.get(p.mac)
    const n = neighByIp.get(p.ip)
    usedMacs.add(p.mac)
    usedIps.add(p.ip)
    const row: PeerReportRow = { ip: p.ip, mac: p.mac, endpointId: p.endpointId, hostId: p.hostId, vtep: p.vtep, status: 'ok' }
    if (f?.dst !== undefined) row.kernelVtep = f.dst
    if (n) row.kernelMac = n.mac.toLowerCase()
    if (!f || !n) {
      row.status = 'missing'
      row.detail = !f && !n ? 'no FDB or neighbour entry' : !f ? 'no FDB entry' : 'no neighbour entry'
    } else if (f.dst !== p.vtep || n.mac.toLowerCase() !== p.mac) {
      row.status = 'mismatch'
      row.detail = f.dst !== p.vtep ? `FDB sends ${p.mac} to ${f.dst ?? '?'}` : `neighbour ${p.ip} is ${n.mac}`
    }
    rows.push(row)
  }
  for (const s of plan.skipped) {
    if (s.reason === 'local') continue
    const row: PeerReportRow = { ip: s.ip, mac: '', endpointId: s.endpointId, status: 'conflict', detail: conflictText(s) }
    rows.push(row)
  }
  for (const n of kernel.neigh) {
    if (usedIps.has(n.ip)) continue
    const f = fdbByMac.get(n.mac.toLowerCase())
    const row: PeerReportRow = { ip: n.ip, mac: n.mac.toLowerCase(), kernelMac: n.mac.toLowerCase(), status: 'stale', detail: 'in the kernel, not in the cluster' }
    if (f?.dst !== undefined) row.kernelVtep = f.dst
    usedMacs.add(n.mac.toLowerCase())
    rows.push(row)
  }
  for (const f of fdbByMac.values()) {
    if (usedMacs.has(f.mac.toLowerCase())) continue
    const row: PeerReportRow = { ip: '', mac: f.mac.toLowerCase(), status: 'stale', detail: 'FDB entry in the kernel, not in the cluster' }
    if (f.dst !== undefined) row.kernelVtep = f.dst
    rows.push(row)
  }
  rows.sort((a, b) => (a.ip === '' || b.ip === '' ? (a.ip === '' ? 1 : -1) : byIp(a, b)))
  return {
    rows,
    differences: rows.filter((r) => r.status === 'missing' || r.status === 'mismatch' || r.status === 'stale').length,
    conflicts: rows.filter((r) => r.status === 'conflict').length,
  }
}

function conflictText (s: PeerConflict): string {
  switch (s.reason) {
    case 'duplicate-ip': return `address also claimed by endpoint ${s.keptEndpointId?.slice(0, 12) ?? '?'}, which wins`
    case 'duplicate-mac': return `MAC also used by endpoint ${s.keptEndpointId?.slice(0, 12) ?? '?'}, which wins`
    case 'invalid': return 'invalid record in the cluster'
    case 'outside-subnet': return 'address outside the overlay subnet'
    case 'gateway': return 'endpoint claims the gateway address'
    case 'local': return 'on this host'
    case 'vtep-family': return 'its host shares no underlay address family with this host (see the unreachable hosts)'
  }
}
