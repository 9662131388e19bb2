/**
 * The iptables executor of the FirewallDriver: keeps the desired state in memory,
 * plans with src/nat/plan.ts and applies only the difference, in one
 * `iptables-restore --noflush -w` batch per intent call.
 *
 * - Per-endpoint rules live in unordered chains: adding or removing one endpoint
 *   is a handful of `-A`/`-D` lines, whatever the number of other endpoints.
 * - The first call (or any call after a failure) reads `iptables-save` and
 *   reconciles, so leftovers of a crashed run are repaired, never duplicated.
 * - A batch that fails (someone edited ferry's chains) falls back to a full
 *   reconcile against `iptables-save`.
 * - route_localnet is set per bridge, only where localhost publishing needs it.
 * - Stale UDP conntrack entries are flushed when UDP publications change.
 * Kernel changes are serialized with one mutex.
 */
import { performance } from 'node:perf_hooks'
import { ErrorList, FerryError, toFerryError } from '../errors/errors.js'
import { execFile, type ExecOptions, type ExecResult } from '../kernel/exec.js'
import { readSysctl, writeSysctl } from '../kernel/sysctl.js'
import type { PortBinding } from '../model/types.js'
import { Mutex } from '../util/mutex.js'
import {
  addEndpointRules, emptyRuleset, isWildcard, planBase, planEndpoint, shortId, validateEndpoint, validateLink, validateNetwork,
  type EndpointPlan, type PlanOptions, type Ruleset,
} from './plan.js'
import { batchSize, diffEndpoint, diffViews, emptyBatch, mergeBatch, parseSave, renderBatch, viewOf, type Batch } from './restore.js'
import type { FirewallDriver, FirewallState, LinkFirewall, NatEndpoint, NatLink, NatNetwork } from './types.js'

/** The pino-compatible subset ferry logs through. */
export interface NatLogger {
  debug (obj: object, msg?: string): void
  warn (obj: object, msg?: string): void
}

/** Per-bridge kernel parameters (route_localnet), in the agent's namespace. */
export interface SysctlAccess {
  read (key: readonly string[]): Promise<string>
  write (key: readonly string[], value: string): Promise<void>
}

export type Runner = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>

export interface IptablesDriverOptions {
  iptablesRestore?: string[]
  iptablesSave?: string[]
  conntrack?: string[]
  sysctl?: SysctlAccess
  logger?: NatLogger
  plan?: PlanOptions
  /** Runs programs; defaults to src/kernel/exec.ts. */
  run?: Runner
}

/** Timings of the last kernel change, for benchmarks and the admin API. */
export interface ApplyStats {
  /** Planning, diffing and rendering: ferry's own work (ms). */
  planMs: number
  /** The iptables-restore run (ms). */
  restoreMs: number
  /** Lines in the batch (0 = nothing to do). */
  lines: number
  /** True when the change went through a full reconcile. */
  reconciled: boolean
}

const DEFAULT_RESTORE = ['iptables-restore', '--noflush', '-w', '5']
const DEFAULT_SAVE = ['iptables-save']
const RESTORE_TIMEOUT_MS = 30_000

const defaultSysctl: SysctlAccess = { read: readSysctl, write: writeSysctl }

function localnetKey (bridge: string): string[] {
  return ['net', 'ipv4', 'conf', bridge, 'route_localnet']
}

interface EndpointEntry { ep: NatEndpoint, plan: EndpointPlan }

/** A change to the desired state, kept so that it can be undone if the kernel refuses it. */
interface Change {
  endpoints: Map<string, { before?: EndpointEntry, after?: EndpointEntry }>
  networks: Map<string, { before?: NatNetwork, after?: NatNetwork }>
  links: Map<string, { before?: NatLink }>
}

export class IptablesDriver implements FirewallDriver, LinkFirewall {
  private readonly restoreArgv: string[]
  private readonly saveArgv: string[]
  private readonly conntrackArgv: string[]
  private readonly sysctl: SysctlAccess
  private readonly log: NatLogger | undefined
  private readonly planOpts: PlanOptions
  private readonly run: Runner
  private readonly mutex = new Mutex()

  private readonly networks = new Map<string, NatNetwork>()
  private readonly endpoints = new Map<string, EndpointEntry>()
  /** Legacy links (ICC exceptions); their rules are part of the network-level plan. */
  private readonly links = new Map<string, NatLink>()
  /** Per network id: endpoints that publish on loopback. */
  private readonly localnetCount = new Map<string, number>()
  /** The network-level plan last applied; undefined = kernel state unknown (reconcile first). */
  private base: Ruleset | undefined
  /** route_localnet values ferry wrote, per bridge. */
  private readonly localnetWritten = new Map<string, string>()
  private stats_: ApplyStats = { planMs: 0, restoreMs: 0, lines: 0, reconciled: false }

  constructor (opts: IptablesDriverOptions = {}) {
    this.restoreArgv = opts.iptablesRestore ?? DEFAULT_RESTORE
    this.saveArgv = opts.iptablesSave ?? DEFAULT_SAVE
    this.conntrackArgv = opts.conntrack ?? ['conntrack']
    this.sysctl = opts.sysctl ?? defaultSysctl
    this.log = opts.logger
    this.planOpts = opts.plan ?? {}
    this.run = opts.run ?? execFile
  }

  /** Timings of the last change. */
  stats (): ApplyStats {
    return { ...this.stats_ }
  }

  /** The desired state as the driver holds it. */
  state (): FirewallState {
    return { networks: [...this.networks.values()], endpoints: [...this.endpoints.values()].map((e) => e.ep), links: [...this.links.values()] }
  }

  /** The full plan of the desired state (what reconcile converges to). */
  plan (): Ruleset {
    const rs = this.planBaseNow()
    for (const e of this.endpoints.values()) addEndpointRules(rs, e.plan)
    return rs
  }

  // -------------------------------------------------------------------------
  // Intent calls.

  async addNetwork (net: NatNetwork): Promise<void> {
    validateNetwork(net)
    return this.mutex.run(async () => {
      const change = this.newChange()
      this.setNetwork(change, net.id, net)
      // Endpoints already known on this network follow its bridge and internal flag.
      for (const e of this.endpoints.values()) {
        if (e.ep.networkId === net.id) this.setEndpointEntry(change, e.ep.id, e.ep)
      }
      await this.commit(change)
    })
  }

  async removeNetwork (id: string): Promise<void> {
    return this.mutex.run(async () => {
      const change = this.newChange()
      for (const e of this.endpoints.values()) {
        if (e.ep.networkId === id) this.setEndpointEntry(change, e.ep.id, undefined)
      }
      if (this.networks.has(id)) this.setNetwork(change, id, undefined)
      await this.commit(change)
    })
  }

  async setEndpoint (ep: NatEndpoint): Promise<void> {
    validateEndpoint(ep)
    return this.mutex.run(async () => {
      if (!this.networks.has(ep.networkId)) {
        throw new FerryError('NETWORK_NOT_FOUND', `the firewall has no network ${shortId(ep.networkId)} for endpoint ${shortId(ep.id)}`)
      }
      const change = this.newChange()
      this.setEndpointEntry(change, ep.id, ep)
      await this.commit(change)
    })
  }

  async removeEndpoint (id: string): Promise<void> {
    return this.mutex.run(async () => {
      if (!this.endpoints.has(id)) return
      const change = this.newChange()
      this.setEndpointEntry(change, id, undefined)
      await this.commit(change)
    })
  }

  async allowLink (link: NatLink): Promise<void> {
    validateLink(link)
    return this.mutex.run(async () => {
      const change = this.newChange()
      this.setLink(change, link.id, link)
      await this.commit(change)
    })
  }

  async removeLink (id: string): Promise<void> {
    return this.mutex.run(async () => {
      if (!this.links.has(id)) return
      const change = this.newChange()
      this.setLink(change, id, undefined)
      await this.commit(change)
    })
  }

  linkIds (): string[] {
    return [...this.links.keys()]
  }

  async reconcile (state: FirewallState): Promise<boolean> {
    for (const n of state.networks) validateNetwork(n)
    for (const ep of state.endpoints) validateEndpoint(ep)
    for (const l of state.links ?? []) validateLink(l)
    return this.mutex.run(async () => {
      const change = this.newChange()
      if (state.links !== undefined) {
        const want = new Map(state.links.map((l) => [l.id, l]))
        for (const id of this.links.keys()) if (!want.has(id)) this.setLink(change, id, undefined)
        for (const l of want.values()) this.setLink(change, l.id, l)
      }
      const nets = new Map(state.networks.map((n) => [n.id, n]))
      for (const id of this.networks.keys()) if (!nets.has(id)) this.setNetwork(change, id, undefined)
      for (const n of state.networks) this.setNetwork(change, n.id, n)
      const eps = new Map(state.endpoints.filter((e) => nets.has(e.networkId)).map((e) => [e.id, e]))
      for (const id of this.endpoints.keys()) if (!eps.has(id)) this.setEndpointEntry(change, id, undefined)
      for (const ep of eps.values()) this.setEndpointEntry(change, ep.id, ep)
      let repaired: boolean
      try {
        repaired = await this.reconcileKernel()
      } catch (err) {
        this.base = undefined
        throw err
      }
      await this.afterChange(change)
      return repaired
    })
  }

  async teardown (): Promise<void> {
    return this.mutex.run(async () => {
      const errors = new ErrorList()
      const udpTargets = [...this.endpoints.values()].flatMap((e) => e.ep.ports.filter((p) => p.proto === 'udp'))
      await errors.run('removing ferry\'s iptables chains', async () => {
        const view = parseSave((await this.run(this.saveArgv)).stdout)
        await this.restore(diffViews(view, emptyRuleset()))
      })
      for (const [bridge, value] of this.localnetWritten) {
        if (value === '0') continue
        await errors.run(`resetting route_localnet on ${bridge}`, () => this.writeLocalnet(bridge, '0'))
      }
      this.localnetWritten.clear()
      await this.flushRemovedUdp(udpTargets)
      this.networks.clear()
      this.endpoints.clear()
      this.links.clear()
      this.localnetCount.clear()
      this.base = undefined
      errors.throwIfAny('firewall teardown failed')
    })
  }

  // -------------------------------------------------------------------------
  // Desired state bookkeeping.

  private newChange (): Change {
    return { endpoints: new Map(), networks: new Map(), links: new Map() }
  }

  private setLink (change: Change, id: string, link: NatLink | undefined): void {
    if (!change.links.has(id)) change.links.set(id, { before: this.links.get(id) })
    if (link === undefined) this.links.delete(id)
    else this.links.set(id, link)
  }

  private setNetwork (change: Change, id: string, net: NatNetwork | undefined): void {
    const before = this.networks.get(id)
    if (!change.networks.has(id)) change.networks.set(id, { before, after: net })
    else change.networks.get(id)!.after = net
    if (net === undefined) this.networks.delete(id)
    else this.networks.set(id, net)
  }

  private countLocalnet (entry: EndpointEntry | undefined, delta: number): void {
    if (entry === undefined || !entry.plan.localnet) return
    const id = entry.ep.networkId
    const n = (this.localnetCount.get(id) ?? 0) + delta
    if (n <= 0) this.localnetCount.delete(id)
    else this.localnetCount.set(id, n)
  }

  private setEndpointEntry (change: Change, id: string, ep: NatEndpoint | undefined): void {
    const before = this.endpoints.get(id)
    const after = ep === undefined ? undefined : { ep, plan: planEndpoint(ep, this.networks.get(ep.networkId), this.planOpts) }
    if (!change.endpoints.has(id)) change.endpoints.set(id, { before, after })
    else change.endpoints.get(id)!.after = after
    this.countLocalnet(before, -1)
    this.countLocalnet(after, +1)
    if (after === undefined) this.endpoints.delete(id)
    else this.endpoints.set(id, after)
  }

  /** Put the desired state back as it was before `change`. */
  private undo (change: Change): void {
    for (const [id, { before }] of change.endpoints) {
      this.countLocalnet(this.endpoints.get(id), -1)
      this.countLocalnet(before, +1)
      if (before === undefined) this.endpoints.delete(id)
      else this.endpoints.set(id, before)
    }
    for (const [id, { before }] of change.networks) {
      if (before === undefined) this.networks.delete(id)
      else this.networks.set(id, before)
    }
    for (const [id, { before }] of change.links) {
      if (before === undefined) this.links.delete(id)
      else this.links.set(id, before)
    }
  }

  private localnetBridges (): Set<string> {
    const out = new Set<string>()
    for (const id of this.localnetCount.keys()) {
      const net = this.networks.get(id)
      if (net !== undefined) out.add(net.bridge)
    }
    return out
  }

  private planBaseNow (): Ruleset {
    return planBase([...this.networks.values()], this.localnetBridges(), this.planOpts, [...this.links.values()])
  }

  // -------------------------------------------------------------------------
  // Applying.

  /** Apply a change incrementally (or by reconcile when the kernel state is unknown); undo it on failure. */
  private async commit (change: Change): Promise<void> {
    try {
      if (this.base === undefined) {
        await this.reconcileKernel()
      } else {
        const t0 = performance.now()
        const newBase = this.planBaseNow()
        const batch = diffViews(viewOf(this.base), newBase)
        for (const { before, after } of change.endpoints.values()) mergeBatch(batch, diffEndpoint(before?.plan, after?.plan))
        const planMs = performance.now() - t0
        try {
          const restoreMs = await this.restore(batch)
          this.base = newBase
          this.stats_ = { planMs, restoreMs, lines: batchSize(batch), reconciled: false }
        } catch (err) {
          this.log?.warn({ err }, 'incremental firewall change failed; reconciling with iptables-save')
          await this.reconcileKernel()
        }
      }
    } catch (err) {
      this.undo(change)
      this.base = undefined
      throw toFerryError(err, 'KERNEL', 'firewall change failed')
    }
    await this.afterChange(change)
  }

  /** Read the kernel, apply what differs from the full plan. Returns true when anything was repaired. */
  private async reconcileKernel (): Promise<boolean> {
    const save = await this.run(this.saveArgv)
    const t0 = performance.now()
    const newBase = this.planBaseNow()
    const full = this.plan()
    const batch = diffViews(parseSave(save.stdout), full)
    const planMs = performance.now() - t0
    const restoreMs = await this.restore(batch)
    this.base = newBase
    this.stats_ = { planMs, restoreMs, lines: batchSize(batch), reconciled: true }
    const sysctlRepaired = await this.syncLocalnet(true)
    return batchSize(batch) > 0 || sysctlRepaired
  }

  /** Run one iptables-restore batch; returns its duration in ms (0 when empty). */
  private async restore (batch: Batch): Promise<number> {
    const text = renderBatch(batch)
    if (text === '') return 0
    const t0 = performance.now()
    try {
      await this.run(this.restoreArgv, { input: text, timeoutMs: RESTORE_TIMEOUT_MS })
    } catch (err) {
      throw new FerryError('KERNEL', `iptables-restore refused ferry's batch: ${(err as Error).message}`, { cause: err })
    }
    const ms = performance.now() - t0
    const tables = text.split('\n').filter((l) => l.startsWith('*')).map((l) => l.slice(1))
    this.log?.debug({ lines: batchSize(batch), tables, ms: Math.round(ms * 100) / 100 }, 'iptables batch applied')
    return ms
  }

  /** After the rules: route_localnet, then conntrack. Never fails the change (the rules are in place). */
  private async afterChange (change: Change): Promise<void> {
    try {
      await this.syncLocalnet(false)
    } catch (err) {
      this.log?.warn({ err }, 'setting route_localnet failed')
    }
    const removed: PortBinding[] = []
    const added: PortBinding[] = []
    for (const { before, after } of change.endpoints.values()) {
      const key = (b: PortBinding): string => JSON.stringify(b)
      const old = new Map((before?.ep.ports ?? []).filter((p) => p.proto === 'udp').map((p) => [key(p), p]))
      const next = new Map((after?.ep.ports ?? []).filter((p) => p.proto === 'udp').map((p) => [key(p), p]))
      for (const [k, p] of old) if (!next.has(k)) removed.push(p)
      for (const [k, p] of next) if (!old.has(k)) added.push(p)
    }
    await this.flushRemovedUdp(removed)
    await this.flushStaleUdp(added)
  }

  // -------------------------------------------------------------------------
  // route_localnet.

  private async writeLocalnet (bridge: string, value: string): Promise<void> {
    await this.sysctl.write(localnetKey(bridge), value)
    this.localnetWritten.set(bridge, value)
  }

  /**
   * Make route_localnet match the plan on every bridge of a ferry network:
   * 1 where loopback publications need it, 0 elsewhere (and on bridges ferry set
   * before that are no longer its own). A bridge that does not exist yet is
   * skipped (the next change or reconcile sets it). `check` reads the kernel
   * instead of trusting what ferry wrote. Returns true when a value changed.
   */
  private async syncLocalnet (check: boolean): Promise<boolean> {
    const want = new Map<string, string>()
    const needed = this.localnetBridges()
    for (const n of this.networks.values()) want.set(n.bridge, needed.has(n.bridge) ? '1' : '0')
    for (const [bridge, value] of this.localnetWritten) if (!want.has(bridge) && value !== '0') want.set(bridge, '0')
    let changed = false
    const errors = new ErrorList()
    for (const [bridge, value] of want) {
      if (!check && (this.localnetWritten.get(bridge) ?? '0') === value) continue
      let current: string
      try {
        current = await this.sysctl.read(localnetKey(bridge))
      } catch {
        this.localnetWritten.delete(bridge) // no such bridge (yet): retried later
        continue
      }
      if (current === value) {
        this.localnetWritten.set(bridge, value)
        continue
      }
      await errors.run(`route_localnet=${value} on ${bridge}`, () => this.writeLocalnet(bridge, value))
      changed = true
    }
    errors.throwIfAny('setting route_localnet failed')
    return changed
  }

  // -------------------------------------------------------------------------
  // Conntrack (moby#8795): flows that predate a UDP publication keep going to the
  // host, and flows DNAT'd to a removed publication keep going to the container.

  private async conntrack (args: string[]): Promise<ExecResult | undefined> {
    try {
      const res = await this.run([...this.conntrackArgv, ...args], { allowFailure: true, timeoutMs: 10_000 })
      if (res.code === 0 || /\b0 flow entries\b/.test(res.stderr)) return res
      this.log?.warn({ args, stderr: res.stderr.trim(), code: res.code }, 'conntrack failed')
    } catch (err) {
      this.log?.warn({ err, args }, 'conntrack could not run')
    }
    return undefined
  }

  /** One `conntrack -D --dst-nat <container>` per container address whose UDP publications went away. */
  private async flushRemovedUdp (removed: PortBinding[]): Promise<void> {
    const targets = new Set(removed.map((b) => b.containerIp))
    for (const ip of targets) await this.conntrack(['-D', '-p', 'udp', '--dst-nat', ip])
  }

  /** List UDP flows once; delete those aimed at a newly published host port that are not DNAT'd to it. */
  private async flushStaleUdp (added: PortBinding[]): Promise<void> {
    if (added.length === 0) return
    const res = await this.conntrack(['-L', '-p', 'udp'])
    if (res === undefined) return
    const stale = parseConntrack(res.stdout).filter((f) => added.some((b) =>
      f.dport >= b.hostPort && f.dport <= b.hostPortEnd &&
      (isWildcard(b.hostIp) || f.dst === b.hostIp) &&
      f.replySrc !== b.containerIp))
    for (const f of stale) {
      await this.conntrack(['-D', '-p', 'udp', '-s', f.src, '-d', f.dst, '--sport', String(f.sport), '--dport', String(f.dport)])
    }
  }
}

/** One UDP flow of `conntrack -L -p udp`. */
export interface UdpFlow { src: string, dst: string, sport: number, dport: number, replySrc: string }

/** Parse `conntrack -L` lines (original tuple first, reply tuple second). */
export function parseConntrack (text: string): UdpFlow[] {
  const out: UdpFlow[] = []
  for (const line of text.split('\n')) {
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1] ?? '')
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1] ?? '')
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]))
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]))
    if (src.length < 2 || dst.length < 1 || sport.length < 1 || dport.length < 1) continue
    out.push({ src: src[0]!, dst: dst[0]!, sport: sport[0]!, dport: dport[0]!, replySrc: src[1]! })
  }
  return out
}

/** Factory for test/harness/nsnode.ts and the agent: a driver with the default programs. */
export function openIptablesDriver (): IptablesDriver {
  return new IptablesDriver()
}
