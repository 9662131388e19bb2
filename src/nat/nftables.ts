/**
 * The nftables executor of the FirewallDriver: ferry's own table `inet ferry`
 * (planned by src/nat/nft-plan.ts), every change one `nft -f -` transaction fed
 * through stdin.
 *
 * - The chains never change after creation: a network, an endpoint or a link
 *   is elements of sets and maps, so a change is `delete element` / `add element`
 *   lines for the objects it touches, whatever the number of others.
 * - Elements are reference-counted (two links may allow the same port), so one
 *   object's removal never takes away what another still needs.
 * - The first call (or any call after a failure) lists the table and rewrites it
 *   in one transaction when it differs from the plan (the admin's `user` chain
 *   kept); a transaction the kernel refuses (someone deleted an element) falls
 *   back to that. nft transactions are atomic: a refused one changes nothing.
 * - A reconcile reads the table only when the nf_tables generation says someone
 *   else may have changed it (see `reconcileKernel`).
 * - route_localnet and conntrack as the iptables driver (src/nat/host-effects.ts).
 * Kernel changes are serialized with one mutex.
 */
import { performance } from 'node:perf_hooks'
import { ErrorList, FerryError } from '../errors/errors.js'
import {
  addElements, elementLines, endpointElements, linkElements, networkElements, planSkeleton, renderRewrite, renderTeardown, sameTable,
  NFT_FAMILY, NFT_TABLE, USER_CHAIN, type NftElement, type NftEndpointPlan, type NftKernelTable, type NftTablePlan,
} from './nft-plan.js'
import { parseNftTable } from './nft-parse.js'
import type { Change } from './desired.js'
import { FirewallDriverBase, type DriverBaseOptions } from './driver-base.js'
import { IptablesForwardAccept } from './iptables-accept.js'
import { NftSession } from './nft-session.js'
import type { NatLink, NatNetwork } from './types.js'
import { NftDeletionEvents, NftGeneration, advanceGeneration } from '../kernel/nft-netlink.js'

/** Reads the nf_tables ruleset generation (src/kernel/nft-netlink.ts). */
export interface GenerationReader { read (): Promise<number>, close (): void }

export interface NftablesDriverOptions extends DriverBaseOptions {
  /** The nft program (argv prefix); default ['nft']. */
  nft?: string[]
  /** The iptables program for the FORWARD accept (src/nat/iptables-accept.ts); default ['iptables', '-w', '5']. */
  iptables?: string[]
  /** The same for IPv6 (an engine's ip6tables FORWARD policy DROP); default ['ip6tables', '-w', '5']. */
  ip6tables?: string[]
  /** Element deltas through one long-running `nft -i` (src/nat/nft-session.ts); default true. */
  session?: boolean
  /**
   * The nf_tables generation, which lets a reconcile skip reading the table when
   * nobody else committed since ferry last knew it. Default: read over netlink,
   * unless `run` is given (tests with a fake nft); false: always read the table.
   */
  generation?: boolean | GenerationReader
}

/** What ferry knows of the generation: the table was verified at `verified`, and ferry committed `own` transactions since. */
interface KnownGeneration { verified: number, own: number }

const NFT_TIMEOUT_MS = 30_000
/** The `inet` family in nf_tables messages (NFPROTO_INET). */
const NFPROTO_INET = 1

function elementId (e: NftElement): string {
  return `${e.set}\0${e.key}`
}

/** An element the kernel holds, and how many of ferry's objects need it. */
interface Held { e: NftElement, n: number }

/** The same elements with the same values (reference counts aside): the same table. */
function sameElements (a: ReadonlyMap<string, Held>, b: ReadonlyMap<string, Held>): boolean {
  if (a.size !== b.size) return false
  for (const [id, h] of a) if (b.get(id)?.e.value !== h.e.value) return false
  return true
}

export class NftablesDriver extends FirewallDriverBase<NftEndpointPlan> {
  private readonly nft: string[]
  /** Elements in the kernel, by set and key; undefined = kernel state unknown (reconcile first). */
  private held: Map<string, Held> | undefined
  /** The FORWARD accept of marked traffic, in iptables and in ip6tables. */
  private readonly forwardAccept: IptablesForwardAccept[]
  private watcher: NftDeletionEvents | undefined
  private restoreTimer: NodeJS.Timeout | undefined
  private restores = 0
  /** Events that were ferry's own commits' (for tests). */
  private ownEvents = 0
  private readonly session: NftSession | undefined
  private readonly generation: GenerationReader | undefined
  /** undefined = the table must be read at the next reconcile. */
  private known: KnownGeneration | undefined
  private tableReads = 0
  private skippedReads = 0
  /** The desired state's revision at which `held` was last found (or made) equal to its elements. */
  private heldAt: number | undefined
  /** True when the FORWARD accepts were found right (and left alone) since the generation ferry knows. */
  private forwardVerified = false
  private forwardChecks = 0

  constructor (opts: NftablesDriverOptions = {}) {
    super(opts, endpointElements)
    this.nft = opts.nft ?? ['nft']
    this.forwardAccept = [
      new IptablesForwardAccept(this.run, this.log, opts.iptables),
      new IptablesForwardAccept(this.run, this.log, opts.ip6tables ?? ['ip6tables', '-w', '5']),
    ]
    this.session = opts.session === false ? undefined : new NftSession(this.nft)
    const gen = opts.generation ?? opts.run === undefined
    this.generation = gen === true ? new NftGeneration() : gen === false ? undefined : gen
  }

  /** The full plan of the desired state (what reconcile converges to). */
  plan (): NftTablePlan {
    const table = planSkeleton(this.planOpts)
    addElements(table, [...this.neededElements().values()].map((h) => h.e))
    for (const s of table.sets) s.elements.sort()
    return table
  }

  protected forgetKernel (): void {
    this.held = undefined
    this.heldAt = undefined
    this.known = undefined
    this.forwardVerified = false
  }

  /**
   * Remove the table. When the administrator's `user` chain holds rules, it stays
   * (in an otherwise empty table, or with ferry's sets emptied when its rules name
   * them), as FERRY-USER does with iptables.
   */
  protected async teardownKernel (): Promise<void> {
    // Best effort: the FORWARD accepts go even when the table could not.
    const errors = new ErrorList()
    await errors.run('removing table inet ferry', async () => {
      const kernel = await this.listTable()
      const text = renderTeardown(kernel)
      if (text === '') return
      try {
        await this.apply(text)
      } catch (err) {
        // The admin's user chain names one of ferry's sets: keep the sets, emptied.
        this.log?.warn({ err: (err as Error).message }, 'table inet ferry: the user chain uses ferry\'s sets; they stay, empty')
        await this.apply(renderTeardown(kernel, { keepSets: true }))
      }
    })
    for (const a of this.forwardAccept) await errors.run('removing the FORWARD accept of ferry\'s marked traffic', () => a.remove())
    errors.throwIfAny('removing ferry\'s nftables rules was incomplete')
  }

  // -------------------------------------------------------------------------
  // Elements.

  private linkOwnElements (link: NatLink | undefined, net: NatNetwork | undefined): NftElement[] {
    return link === undefined ? [] : linkElements(link, net)
  }

  /** Every element the desired state needs, with reference counts. */
  private neededElements (): Map<string, Held> {
    const out = new Map<string, Held>()
    const add = (elements: readonly NftElement[]): void => {
      for (const e of elements) {
        const h = out.get(elementId(e))
        if (h === undefined) out.set(elementId(e), { e, n: 1 })
        else h.n++
      }
    }
    for (const n of this.desired.networks.values()) add(networkElements(n, this.planOpts))
    for (const e of this.desired.endpoints.values()) add(e.plan.elements)
    for (const l of this.desired.links.values()) add(this.linkOwnElements(l, this.desired.networks.get(l.networkId)))
    return out
  }

  /** The elements a change takes away and brings, for the objects it changed only (set again unchanged: the same object). */
  private changeElements (change: Change<NftEndpointPlan>): { removed: NftElement[], added: NftElement[] } {
    const removed: NftElement[] = []
    const added: NftElement[] = []
    for (const { before, after } of change.networks.values()) {
      if (before === after) continue
      if (before !== undefined) removed.push(...networkElements(before, this.planOpts))
      if (after !== undefined) added.push(...networkElements(after, this.planOpts))
    }
    for (const { before, after } of change.endpoints.values()) {
      if (before === after) continue
      if (before !== undefined) removed.push(...before.plan.elements)
      if (after !== undefined) added.push(...after.plan.elements)
    }
    // A link's elements depend on its network (bridge, ICC): links of changed networks are re-planned too.
    const netBefore = (id: string): NatNetwork | undefined => {
      const c = change.networks.get(id)
      return c !== undefined ? c.before : this.desired.networks.get(id)
    }
    const links = new Map<string, { before?: NatLink, after?: NatLink }>(change.links)
    for (const l of this.desired.links.values()) {
      if (change.networks.has(l.networkId) && !links.has(l.id)) links.set(l.id, { before: l, after: l })
    }
    for (const { before, after } of links.values()) {
      if (before !== undefined) removed.push(...this.linkOwnElements(before, netBefore(before.networkId)))
      if (after !== undefined) added.push(...this.linkOwnElements(after, this.desired.networks.get(after.networkId)))
    }
    return { removed, added }
  }

  /** The delta of reference counts, and the element lines it takes. */
  private delta (held: Map<string, Held>, removed: readonly NftElement[], added: readonly NftElement[]): {
    next: Map<string, Held | undefined>, del: NftElement[], add: NftElement[]
  } {
    const next = new Map<string, Held | undefined>()
    const count = (e: NftElement, by: number): void => {
      const id = elementId(e)
      const cur = next.has(id) ? next.get(id) : held.get(id)
      const n = (cur?.n ?? 0) + by
      next.set(id, n > 0 ? { e: by > 0 ? e : (cur?.e ?? e), n } : undefined)
    }
    for (const e of removed) count(e, -1)
    for (const e of added) count(e, +1)
    const del: NftElement[] = []
    const add: NftElement[] = []
    for (const [id, after] of next) {
      const before = held.get(id)
      if (before !== undefined && (after === undefined || after.e.value !== before.e.value)) del.push(before.e)
      if (after !== undefined && (before === undefined || after.e.value !== before.e.value)) add.push(after.e)
    }
    return { next, del, add }
  }

  // -------------------------------------------------------------------------
  // Applying.

  /** Apply a change as element deltas (or by reconcile when the kernel state is unknown). */
  protected async commitKernel (change: Change<NftEndpointPlan>): Promise<void> {
    const held = this.held
    if (held === undefined) {
      await this.reconcileKernel()
      return
    }
    const t0 = performance.now()
    const { removed, added } = this.changeElements(change)
    const { next, del, add } = this.delta(held, removed, added)
    // `create`, not `add`: an element that exists already (someone else added it) refuses the
    // transaction instead of committing nothing, so every delta ferry commits is one generation.
    const lines = [...elementLines('delete', del), ...elementLines('create', add)]
    const planMs = performance.now() - t0
    try {
      const restoreMs = lines.length === 0 ? 0 : await this.applyDelta(lines.join('\n') + '\n')
      if (lines.length > 0 && this.known !== undefined) this.known.own++
      for (const [id, h] of next) {
        if (h === undefined) held.delete(id)
        else held.set(id, h)
      }
      this.stats_ = { planMs, restoreMs, lines: del.length + add.length, reconciled: false }
    } catch (err) {
      this.log?.warn({ err }, 'incremental nftables change failed; reconciling with the table as the kernel lists it')
      await this.reconcileKernel()
    }
  }

  /** `nft list table inet ferry`, parsed; undefined when there is no such table. */
  async listTable (): Promise<NftKernelTable | undefined> {
    this.tableReads++
    const res = await this.run([...this.nft, 'list', 'table', NFT_FAMILY, NFT_TABLE], { allowFailure: true, timeoutMs: NFT_TIMEOUT_MS })
    if (res.code !== 0) {
      if (/No such file or directory/.test(res.stderr)) return undefined
      throw new FerryError('KERNEL', `nft could not list table ${NFT_FAMILY} ${NFT_TABLE}: ${res.stderr.trim() || `exit ${res.code}`}`)
    }
    return parseNftTable(res.stdout)
  }

  /**
   * Read the kernel; rewrite the table in one transaction when it differs from the plan. True when repaired.
   *
   * The table is not read when the nf_tables generation is the one ferry verified the table at,
   * advanced by ferry's own commits since, and the plan's elements are those ferry holds: every
   * change of any nftables table is a commit and advances the generation by one, each of ferry's
   * deltas is one commit that changes something (`create element`), so nobody else committed and the
   * table is what ferry left. Any other generation (someone else's commit, also one that did not
   * touch ferry's table) means a full read, after which the generation is known again.
   *
   * What stays the same whatever the number of ports, when nobody else committed: the plan's
   * elements are compared with those held only when the desired state changed since they last
   * were (its revision), and the FORWARD accepts are not read again when their program is
   * iptables-nft (its changes are commits too) and they were found right since the generation
   * ferry knows; with legacy iptables they are read at every reconcile.
   */
  protected async reconcileKernel (): Promise<boolean> {
    const t0 = performance.now()
    const g0 = await this.readGeneration()
    const known = this.known
    const quiet = g0 !== undefined && known !== undefined && this.held !== undefined && g0 === advanceGeneration(known.verified, known.own)
    let repaired = false
    if (quiet && this.heldAt === this.revision) {
      this.skippedReads++
      this.known = { verified: g0, own: 0 }
      this.stats_ = { planMs: performance.now() - t0, restoreMs: 0, lines: 0, reconciled: true }
    } else {
      const needed = this.neededElements()
      if (quiet && this.held !== undefined && sameElements(this.held, needed)) {
        this.skippedReads++
        this.known = { verified: g0, own: 0 }
        this.held = needed
        this.stats_ = { planMs: performance.now() - t0, restoreMs: 0, lines: 0, reconciled: true }
      } else {
        repaired = await this.rewriteIfDifferent(needed, g0)
      }
      this.heldAt = this.revision
    }
    const sysctlRepaired = await this.localnet.sync(this.desired.networks.values(), this.desired.localnetBridges(), true)
    const acceptRepaired = await this.syncForwardAccepts(quiet)
    // The next change's process, started here rather than on that change's path.
    if (this.desired.networks.size > 0) this.session?.warm()
    return repaired || sysctlRepaired || acceptRepaired
  }

  /**
   * The FORWARD accepts (src/nat/iptables-accept.ts), read unless `quiet` (nobody else committed since
   * the generation ferry knows) and they were found right since, with iptables-nft programs only.
   * True when one was put or taken away.
   */
  private async syncForwardAccepts (quiet: boolean): Promise<boolean> {
    if (quiet && this.forwardVerified && this.known !== undefined) {
      let visible = true
      for (const a of this.forwardAccept) visible = (await a.nfTables()) && visible
      if (visible) return false
    }
    this.forwardChecks++
    let changed = false
    let failed = false
    for (const a of this.forwardAccept) {
      const r = await a.sync()
      changed ||= r === 'changed'
      failed ||= r === 'failed'
    }
    // Checked after the generation ferry knows was read: right from then on until someone else commits.
    // A rule ferry put or took away is a commit not counted as ferry's own: the table is read next time.
    if (changed) this.known = undefined
    this.forwardVerified = !changed && !failed && this.known !== undefined
    return changed
  }

  /** The full check: list the table, rewrite it when it differs; the generation known again when nobody else committed meanwhile. */
  private async rewriteIfDifferent (needed: Map<string, Held>, g0: number | undefined): Promise<boolean> {
    this.known = undefined
    const kernel = await this.listTable()
    const t0 = performance.now()
    const table = planSkeleton(this.planOpts)
    addElements(table, [...needed.values()].map((h) => h.e))
    const same = sameTable(kernel, table)
    const text = same ? '' : renderRewrite(kernel, table)
    const planMs = performance.now() - t0
    const restoreMs = same ? 0 : await this.apply(text)
    this.held = needed
    this.heldAt = this.revision
    this.stats_ = { planMs, restoreMs, lines: same ? 0 : text.split('\n').length - 1, reconciled: true }
    // Read at g0 and (when rewritten) one commit of ferry's since: verified at g1 unless someone else committed in between.
    const g1 = g0 === undefined ? undefined : await this.readGeneration()
    if (g0 !== undefined && g1 !== undefined && g1 === advanceGeneration(g0, same ? 0 : 1)) this.known = { verified: g1, own: 0 }
    if (!same) this.log?.debug({ existed: kernel !== undefined }, 'nftables table rewritten')
    return !same
  }

  /** The generation; undefined (the table is then read) when there is no reader or it failed. */
  private async readGeneration (): Promise<number | undefined> {
    if (this.generation === undefined) return undefined
    try {
      return await this.generation.read()
    } catch (err) {
      this.log?.debug({ err: (err as Error).message }, 'nftables generation unknown: the table is read')
      return undefined
    }
  }

  /** How many reconciles read the table and how many could skip it, and how many read the FORWARD accepts (for tests and benchmarks). */
  readStats (): { tableReads: number, skippedReads: number, forwardChecks: number } {
    return { tableReads: this.tableReads, skippedReads: this.skippedReads, forwardChecks: this.forwardChecks }
  }

  /** An element delta: through the long-running session when it fits, else `nft -f -`. Returns ms. */
  private async applyDelta (text: string): Promise<number> {
    if (this.session === undefined || !NftSession.fits(text)) return this.apply(text)
    const t0 = performance.now()
    await this.session.run(text)
    return performance.now() - t0
  }

  /** Run one `nft -f -` transaction; returns its duration in ms. */
  private async apply (text: string): Promise<number> {
    const t0 = performance.now()
    try {
      await this.run([...this.nft, '-f', '-'], { input: text, timeoutMs: NFT_TIMEOUT_MS })
    } catch (err) {
      throw new FerryError('KERNEL', `nft refused ferry's transaction: ${(err as Error).message}`, { cause: err })
    }
    return performance.now() - t0
  }

  // -------------------------------------------------------------------------
  // Restore after someone else's flush: nftables events, not only the periodic reconcile.

  /**
   * Watch nftables events in this process (src/kernel/nft-netlink.ts: no nft child)
   * and rewrite the table as soon as someone deletes a table, chain, rule or set of
   * ferry's (`nft flush ruleset`, a firewalld reload, `nft delete table inet ferry`, a
   * flushed chain). Element deletions are not events of that kind: ferry makes those
   * itself at every removal; someone else's are found by the periodic reconcile.
   * Events lost to an overflow of the socket make a check too (which reads the table
   * only when someone else committed). Idempotent.
   */
  startWatch (): void {
    if (this.watcher !== undefined) return
    const watcher = new NftDeletionEvents(NFPROTO_INET, NFT_TABLE, () => this.scheduleRestore(), (err) => {
      this.log?.debug({ err: err.message }, 'nftables events may have been lost: checking table inet ferry')
      this.scheduleRestore()
    })
    try {
      watcher.open()
      this.watcher = watcher
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'cannot watch nftables events: a removed table comes back at the next periodic reconcile only')
    }
  }

  stopWatch (): void {
    this.watcher?.close()
    this.watcher = undefined
    if (this.restoreTimer !== undefined) clearTimeout(this.restoreTimer)
    this.restoreTimer = undefined
  }

  /** How many times the watcher rewrote the table (for tests and status). */
  watchStats (): { watching: boolean, restores: number, ownEvents: number } {
    return { watching: this.watcher !== undefined, restores: this.restores, ownEvents: this.ownEvents }
  }

  /** Called when stdin of the nsnode harness closes, and by the agent at stop. */
  close (): void {
    this.stopWatch()
    this.session?.close()
    this.generation?.close()
  }

  /** A burst of events (a flush deletes many rules) makes one restore, 50 ms after the first. */
  private scheduleRestore (): void {
    if (this.restoreTimer !== undefined) return
    this.restoreTimer = setTimeout(() => {
      this.restoreTimer = undefined
      void this.restoreNow() // never rejects: a failed restore is logged
    }, 50)
  }

  private async restoreNow (): Promise<void> {
    await this.exclusive(async () => {
      // Nothing to restore when ferry has no network (its own teardown deletes the table too).
      if (this.desired.networks.size === 0) return
      try {
        // The events of ferry's own rewrite (it flushes its chains) or a lost burst of its own element
        // events: nobody else committed, nothing to check (not even the FORWARD accept and sysctls,
        // which would hold the mutex, and the next change, for two iptables runs).
        const g = await this.readGeneration()
        if (g !== undefined && this.known !== undefined && g === advanceGeneration(this.known.verified, this.known.own)) {
          this.ownEvents++
          return
        }
        if (await this.reconcileKernel()) {
          this.restores++
          this.log?.warn({}, 'someone removed part of table inet ferry: rewritten')
        }
      } catch (err) {
        this.forgetKernel()
        this.log?.warn({ err: (err as Error).message }, 'restoring table inet ferry failed; the next change or reconcile tries again')
      }
    })
  }

  /** True when the administrator's chain exists and holds rules (for status and tests). */
  async userChainRules (): Promise<string[]> {
    return (await this.listTable())?.chains.get(USER_CHAIN)?.rules ?? []
  }
}

/** Factory for test/harness/nsnode.ts and the agent: a driver with the default programs. */
export function openNftablesDriver (): NftablesDriver {
  return new NftablesDriver()
}
