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
import { FerryError } from '../errors/errors.js'
import { addEndpointRules, emptyRuleset, planBase, planEndpoint, type EndpointPlan, type Ruleset } from './plan.js'
import { batchSize, diffEndpoint, diffViews, mergeBatch, parseSave, renderBatch, viewOf, type Batch } from './restore.js'
import type { Change } from './desired.js'
import { FirewallDriverBase, type DriverBaseOptions } from './driver-base.js'

export { parseConntrack, type NatLogger, type Runner, type SysctlAccess, type UdpFlow } from './host-effects.js'
export type { ApplyStats } from './driver-base.js'

export interface IptablesDriverOptions extends DriverBaseOptions {
  iptablesRestore?: string[]
  iptablesSave?: string[]
}

const DEFAULT_RESTORE = ['iptables-restore', '--noflush', '-w', '5']
const DEFAULT_SAVE = ['iptables-save']
const RESTORE_TIMEOUT_MS = 30_000

export class IptablesDriver extends FirewallDriverBase<EndpointPlan> {
  private readonly restoreArgv: string[]
  private readonly saveArgv: string[]
  /** The network-level plan last applied; undefined = kernel state unknown (reconcile first). */
  private base: Ruleset | undefined

  constructor (opts: IptablesDriverOptions = {}) {
    super(opts, planEndpoint)
    this.restoreArgv = opts.iptablesRestore ?? DEFAULT_RESTORE
    this.saveArgv = opts.iptablesSave ?? DEFAULT_SAVE
  }

  /** The full plan of the desired state (what reconcile converges to). */
  plan (): Ruleset {
    const rs = this.planBaseNow()
    for (const e of this.desired.endpoints.values()) addEndpointRules(rs, e.plan)
    return rs
  }

  private planBaseNow (): Ruleset {
    return planBase([...this.desired.networks.values()], this.desired.localnetBridges(), this.planOpts, [...this.desired.links.values()])
  }

  protected forgetKernel (): void {
    this.base = undefined
  }

  protected async teardownKernel (): Promise<void> {
    const view = parseSave((await this.run(this.saveArgv)).stdout)
    await this.restore(diffViews(view, emptyRuleset()))
  }

  /** Apply a change incrementally (or by reconcile when the kernel state is unknown). */
  protected async commitKernel (change: Change<EndpointPlan>): Promise<void> {
    if (this.base === undefined) {
      await this.reconcileKernel()
      return
    }
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

  /** Read the kernel, apply what differs from the full plan. Returns true when anything was repaired. */
  protected async reconcileKernel (): Promise<boolean> {
    const save = await this.run(this.saveArgv)
    const t0 = performance.now()
    const newBase = this.planBaseNow()
    const full = this.plan()
    const batch = diffViews(parseSave(save.stdout), full)
    const planMs = performance.now() - t0
    const restoreMs = await this.restore(batch)
    this.base = newBase
    this.stats_ = { planMs, restoreMs, lines: batchSize(batch), reconciled: true }
    const sysctlRepaired = await this.localnet.sync(this.desired.networks.values(), this.desired.localnetBridges(), true)
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
}

/** Factory for test/harness/nsnode.ts and the agent: a driver with the default programs. */
export function openIptablesDriver (): IptablesDriver {
  return new IptablesDriver()
}
