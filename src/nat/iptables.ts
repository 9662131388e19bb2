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
 * - Both families: the same plan (src/nat/plan.ts, family a parameter) goes to
 *   iptables-restore for IPv4 and to ip6tables-restore for IPv6, each with its
 *   own last-applied base; a change is one batch per family that it touches.
 * - route_localnet is set per bridge, only where localhost publishing needs it.
 * - Stale UDP conntrack entries are flushed when UDP publications change.
 * Kernel changes are serialized with one mutex.
 */
import { performance } from 'node:perf_hooks'
import { ErrorList, FerryError } from '../errors/errors.js'
import { addEndpointRules, emptyRuleset, planBase, planEndpoint, type EndpointPlan, type Ruleset } from './plan.js'
import { batchSize, diffEndpoint, diffViews, mergeBatch, parseSave, renderBatch, viewOf, type Batch } from './restore.js'
import type { Change } from './desired.js'
import { FirewallDriverBase, type DriverBaseOptions } from './driver-base.js'
import type { Family } from '../util/ip.js'

export type { NatLogger } from './host-effects.js'
export type { Runner } from '../kernel/exec.js'
export type { SysctlAccess } from '../kernel/sysctl.js'
export type { ApplyStats } from './driver-base.js'

export interface IptablesDriverOptions extends DriverBaseOptions {
  iptablesRestore?: string[]
  iptablesSave?: string[]
  ip6tablesRestore?: string[]
  ip6tablesSave?: string[]
}

const DEFAULT_RESTORE = ['iptables-restore', '--noflush', '-w', '5']
const DEFAULT_SAVE = ['iptables-save']
const DEFAULT_RESTORE6 = ['ip6tables-restore', '--noflush', '-w', '5']
const DEFAULT_SAVE6 = ['ip6tables-save']
const FAMILIES: readonly Family[] = [4, 6]
const RESTORE_TIMEOUT_MS = 30_000

export class IptablesDriver extends FirewallDriverBase<EndpointPlan> {
  private readonly restoreArgv: Record<Family, string[]>
  private readonly saveArgv: Record<Family, string[]>
  /** Per family, the network-level plan last applied; undefined = kernel state unknown (reconcile first). */
  private base: Record<Family, Ruleset | undefined> = { 4: undefined, 6: undefined }
  /**
   * True when ip6tables could not be read (not installed, IPv6 disabled) while no network
   * has an IPv6 subnet: IPv4 goes on alone. A network with one makes ip6tables required again.
   */
  private without6 = false

  constructor (opts: IptablesDriverOptions = {}) {
    super(opts, planEndpoint)
    this.restoreArgv = { 4: opts.iptablesRestore ?? DEFAULT_RESTORE, 6: opts.ip6tablesRestore ?? DEFAULT_RESTORE6 }
    this.saveArgv = { 4: opts.iptablesSave ?? DEFAULT_SAVE, 6: opts.ip6tablesSave ?? DEFAULT_SAVE6 }
  }

  /** The full plan of the desired state in one family (what reconcile converges to). */
  plan (family: Family = 4): Ruleset {
    const rs = this.planBaseNow(family)
    for (const e of this.desired.endpoints.values()) addEndpointRules(rs, e.plan)
    return rs
  }

  private planBaseNow (family: Family): Ruleset {
    return planBase([...this.desired.networks.values()], this.desired.localnetBridges(), this.planOpts, [...this.desired.links.values()], family)
  }

  protected forgetKernel (): void {
    this.base = { 4: undefined, 6: undefined }
  }

  /** The families to program: IPv6 left out only while ip6tables is unusable and nothing needs it. */
  private families (): Family[] {
    const needs6 = [...this.desired.networks.values()].some((n) => n.subnet6 !== undefined)
    return this.without6 && !needs6 ? [4] : [4, 6]
  }

  /** ip6tables-save/iptables-save; for IPv6, undefined when unusable and nothing needs it (then IPv4 goes on alone). */
  private async save (family: Family): Promise<string | undefined> {
    try {
      const out = (await this.run(this.saveArgv[family])).stdout
      if (family === 6) this.without6 = false
      return out
    } catch (err) {
      if (family === 4 || [...this.desired.networks.values()].some((n) => n.subnet6 !== undefined)) throw err
      if (!this.without6) this.log?.warn({ err: (err as Error).message }, 'ip6tables-save failed: IPv6 is left out until a network needs it')
      this.without6 = true
      return undefined
    }
  }

  protected async teardownKernel (): Promise<void> {
    // Best effort: one family's rules go even when the other's could not.
    const errors = new ErrorList()
    for (const family of FAMILIES) {
      await errors.run(`removing ferry's IPv${family} rules`, async () => {
        const text = await this.save(family)
        if (text !== undefined) await this.restore(family, diffViews(parseSave(text), emptyRuleset(family)))
      })
    }
    errors.throwIfAny('removing ferry\'s iptables rules was incomplete')
  }

  /** Apply a change incrementally (or by reconcile when the kernel state is unknown). */
  protected async commitKernel (change: Change<EndpointPlan>): Promise<void> {
    const families = this.families()
    if (families.some((f) => this.base[f] === undefined)) {
      await this.reconcileKernel()
      return
    }
    const t0 = performance.now()
    const batches = families.map((family) => {
      const newBase = this.planBaseNow(family)
      const batch = diffViews(viewOf(this.base[family]!), newBase)
      for (const { before, after } of change.endpoints.values()) mergeBatch(batch, diffEndpoint(before?.plan, after?.plan, family))
      return { family, newBase, batch }
    })
    const planMs = performance.now() - t0
    try {
      // iptables-restore and ip6tables-restore at once: a dual-stack change costs one run's time, not two.
      // Both settle before a failure falls back to reconcile, so no run overlaps the reconcile's.
      const runs = await Promise.allSettled(batches.map(async ({ family, newBase, batch }) => {
        const ms = await this.restore(family, batch)
        this.base[family] = newBase
        return ms
      }))
      const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      const times = runs.map((r) => (r.status === 'fulfilled' ? r.value : 0))
      this.stats_ = { planMs, restoreMs: Math.max(0, ...times), lines: batches.reduce((n, b) => n + batchSize(b.batch), 0), reconciled: false }
    } catch (err) {
      this.log?.warn({ err }, 'incremental firewall change failed; reconciling with iptables-save and ip6tables-save')
      await this.reconcileKernel()
    }
  }

  /** Read the kernel, apply what differs from the full plan, both families. Returns true when anything was repaired. */
  protected async reconcileKernel (): Promise<boolean> {
    let planMs = 0
    let restoreMs = 0
    let lines = 0
    for (const family of FAMILIES) {
      const save = await this.save(family)
      if (save === undefined) { this.base[family] = undefined; continue }
      const t0 = performance.now()
      const newBase = this.planBaseNow(family)
      const batch = diffViews(parseSave(save), this.plan(family))
      planMs += performance.now() - t0
      restoreMs += await this.restore(family, batch)
      this.base[family] = newBase
      lines += batchSize(batch)
    }
    this.stats_ = { planMs, restoreMs, lines, reconciled: true }
    const sysctlRepaired = await this.localnet.sync(this.desired.networks.values(), this.desired.localnetBridges(), true)
    return lines > 0 || sysctlRepaired
  }

  /** Run one iptables-restore (ip6tables-restore) batch; returns its duration in ms (0 when empty). */
  private async restore (family: Family, batch: Batch): Promise<number> {
    const text = renderBatch(batch)
    if (text === '') return 0
    const t0 = performance.now()
    const tool = family === 4 ? 'iptables-restore' : 'ip6tables-restore'
    try {
      await this.run(this.restoreArgv[family], { input: text, timeoutMs: RESTORE_TIMEOUT_MS })
    } catch (err) {
      throw new FerryError('KERNEL', `${tool} refused ferry's batch: ${(err as Error).message}`, { cause: err })
    }
    const ms = performance.now() - t0
    const tables = text.split('\n').filter((l) => l.startsWith('*')).map((l) => l.slice(1))
    this.log?.debug({ family, lines: batchSize(batch), tables, ms: Math.round(ms * 100) / 100 }, 'iptables batch applied')
    return ms
  }
}

/** Factory for test/harness/nsnode.ts and the agent: a driver with the default programs. */
export function openIptablesDriver (): IptablesDriver {
  return new IptablesDriver()
}
