/**
 * What the iptables and nftables drivers share: the intent calls recorded in the
 * desired state under one mutex, undone when the kernel refuses them, and what
 * follows a change (route_localnet, conntrack). A backend says how a change
 * reaches the kernel (`commitKernel`), how the kernel is compared with the whole
 * plan (`reconcileKernel`) and how its rules are removed (`teardownKernel`).
 */
import { ErrorList, FerryError, toFerryError } from '../errors/errors.js'
import { execFile, type Runner } from '../kernel/exec.js'
import { Conntrack } from '../kernel/conntrack.js'
import { procSysctl, type SysctlAccess } from '../kernel/sysctl.js'
import { Mutex } from '../util/mutex.js'
import { shortId, validateEndpoint, validateLink, validateNetwork, type PlanOptions } from './plan.js'
import { DesiredState, type Change, type LocalnetPlan } from './desired.js'
import { afterFirewallChange, LocalnetSysctl, UdpConntrack, type NatLogger } from './host-effects.js'
import type { FirewallDriver, FirewallState, LinkFirewall, NatEndpoint, NatLink, NatNetwork } from './types.js'

export interface DriverBaseOptions {
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
  /** The iptables-restore or nft run (ms). */
  restoreMs: number
  /** Lines (rules or elements) in the batch (0 = nothing to do). */
  lines: number
  /** True when the change went through a full reconcile. */
  reconciled: boolean
}

export abstract class FirewallDriverBase<P extends LocalnetPlan> implements FirewallDriver, LinkFirewall {
  protected readonly log: NatLogger | undefined
  protected readonly planOpts: PlanOptions
  protected readonly run: Runner
  protected readonly desired: DesiredState<P>
  protected readonly localnet: LocalnetSysctl
  protected readonly conntrack: UdpConntrack
  protected stats_: ApplyStats = { planMs: 0, restoreMs: 0, lines: 0, reconciled: false }
  private readonly mutex = new Mutex()
  /** Bumped by every change of the desired state (and its undo): equal revisions, the same state. */
  private revision_ = 0
  /** The caller's revision and the driver's at the end of the last reconcile that succeeded. */
  private reconciledAt: { caller: number, own: number } | undefined

  constructor (opts: DriverBaseOptions, planEndpoint: (ep: NatEndpoint, net: NatNetwork | undefined, opts: PlanOptions) => P) {
    this.log = opts.logger
    this.planOpts = opts.plan ?? {}
    this.run = opts.run ?? execFile
    this.desired = new DesiredState((ep, net) => planEndpoint(ep, net, this.planOpts))
    this.localnet = new LocalnetSysctl(opts.sysctl ?? procSysctl)
    this.conntrack = new UdpConntrack(new Conntrack(this.run, opts.conntrack), this.log)
  }

  /** Apply a recorded change to the kernel; throw (the change is then undone) when it cannot be. */
  protected abstract commitKernel (change: Change<P>): Promise<void>
  /** Compare the kernel with the whole plan and repair it; true when something was repaired. */
  protected abstract reconcileKernel (): Promise<boolean>
  /** Remove every rule of ferry's from the kernel (the admin's chain kept when it holds rules). */
  protected abstract teardownKernel (): Promise<void>
  /** Forget what the kernel is known to hold: the next change reconciles first. */
  protected abstract forgetKernel (): void

  /** Timings of the last change. */
  stats (): ApplyStats {
    return { ...this.stats_ }
  }

  /** The plan's options (`ferry trace` plans with the same ones). */
  planOptions (): PlanOptions {
    return { ...this.planOpts }
  }

  /** The desired state's revision: changed by every intent call, reconcile or teardown that changed it. */
  protected get revision (): number {
    return this.revision_
  }

  /** Count `change` when it changed anything (an object set again unchanged is the same object). */
  private count (change: Change<P>): void {
    const moved = (m: Map<string, { before?: unknown, after?: unknown }>): boolean => {
      for (const { before, after } of m.values()) if (before !== after) return true
      return false
    }
    if (moved(change.networks) || moved(change.endpoints) || moved(change.links)) this.revision_++
  }

  /** The desired state as the driver holds it. */
  state (): FirewallState {
    return this.desired.state()
  }

  async addNetwork (net: NatNetwork): Promise<void> {
    validateNetwork(net)
    return this.change((c) => this.desired.addNetwork(c, net))
  }

  async removeNetwork (id: string): Promise<void> {
    return this.change((c) => this.desired.removeNetwork(c, id))
  }

  async setEndpoint (ep: NatEndpoint): Promise<void> {
    validateEndpoint(ep)
    return this.change((c) => {
      if (!this.desired.networks.has(ep.networkId)) {
        throw new FerryError('NETWORK_NOT_FOUND', `the firewall has no network ${shortId(ep.networkId)} for endpoint ${shortId(ep.id)}`)
      }
      this.desired.setEndpoint(c, ep.id, ep)
    })
  }

  async removeEndpoint (id: string): Promise<void> {
    return this.change((c) => { if (this.desired.endpoints.has(id)) this.desired.setEndpoint(c, id, undefined) })
  }

  async allowLink (link: NatLink): Promise<void> {
    validateLink(link)
    return this.change((c) => this.desired.setLink(c, link.id, link))
  }

  async removeLink (id: string): Promise<void> {
    return this.change((c) => { if (this.desired.links.has(id)) this.desired.setLink(c, id, undefined) })
  }

  linkIds (): string[] {
    return [...this.desired.links.keys()]
  }

  /**
   * `state.revision` as the last reconcile's, and no change since: the networks and
   * endpoints are those held, neither validated nor compared again (what keeps the
   * quiet periodic reconcile's cost the same whatever the number of ports).
   */
  async reconcile (state: FirewallState): Promise<boolean> {
    return this.mutex.run(async () => {
      const at = this.reconciledAt
      const same = state.revision !== undefined && at !== undefined && at.caller === state.revision && at.own === this.revision_
      if (!same) {
        for (const n of state.networks) validateNetwork(n)
        for (const ep of state.endpoints) validateEndpoint(ep)
      }
      for (const l of state.links ?? []) validateLink(l)
      const change = this.desired.newChange()
      this.desired.replace(change, state, same)
      this.count(change)
      this.reconciledAt = undefined
      let repaired: boolean
      try {
        repaired = await this.reconcileKernel()
      } catch (err) {
        this.forgetKernel()
        throw err
      }
      if (state.revision !== undefined) this.reconciledAt = { caller: state.revision, own: this.revision_ }
      await afterFirewallChange(change, this.desired, this.localnet, this.conntrack, this.log)
      return repaired
    })
  }

  async teardown (): Promise<void> {
    return this.mutex.run(async () => {
      const errors = new ErrorList()
      const udpTargets = [...this.desired.endpoints.values()].flatMap((e) => e.ep.ports.filter((p) => p.proto === 'udp'))
      await errors.run('removing ferry\'s firewall rules', () => this.teardownKernel())
      await this.localnet.reset(errors)
      await this.conntrack.flushRemoved(udpTargets)
      this.desired.clear()
      this.revision_++
      this.forgetKernel()
      errors.throwIfAny('firewall teardown failed')
    })
  }

  /** Run `fn` under the driver's mutex (kernel work that is not an intent call). */
  protected exclusive<T> (fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(fn)
  }

  /** Record a change to the desired state (under the mutex), then commit it; nothing recorded on a throw. */
  private async change (record: (c: Change<P>) => void): Promise<void> {
    return this.mutex.run(async () => {
      const change = this.desired.newChange()
      try {
        record(change)
      } catch (err) {
        this.desired.undo(change)
        throw err
      }
      if (change.endpoints.size + change.networks.size + change.links.size === 0) return
      this.count(change)
      try {
        await this.commitKernel(change)
      } catch (err) {
        this.desired.undo(change)
        this.revision_++
        this.forgetKernel()
        throw toFerryError(err, 'KERNEL', 'firewall change failed')
      }
      await afterFirewallChange(change, this.desired, this.localnet, this.conntrack, this.log)
    })
  }
}
