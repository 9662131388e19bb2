/**
 * Beside an engine with its defaults: a Docker engine left at `--iptables=true`
 * (and ufw, and many admins) sets iptables' filter FORWARD policy to DROP. That
 * base chain runs at the forward hook whatever other nftables tables accept, so
 * without help it drops every packet ferry's nftables table lets through.
 *
 * Why a mark and one rule at the top of FORWARD (and not per-bridge rules in
 * DOCKER-USER): ferry's forward chain (priority filter - 10, before iptables' 0)
 * marks every packet that enters or leaves a ferry bridge with FORWARD_MARK and
 * has already dropped what must be dropped (a drop at any hook is final), so one
 * static rule `-m mark --mark M/M -j ACCEPT` in FORWARD passes exactly what ferry
 * passed, for every bridge name (also com.docker.network.bridge.name ones), with
 * no iptables work per network or container. It goes in FORWARD itself rather
 * than DOCKER-USER so it also works without an engine (ufw, an admin's policy)
 * and before the engine has created DOCKER-USER; the engine's own jumps, which it
 * puts first when it starts, only act on its own bridges.
 *
 * The rule exists only while the policy is DROP: checked at every reconcile (so
 * an engine started after the agent is caught at the next periodic check), put
 * first when missing, removed when the policy is ACCEPT again and at teardown.
 * Whichever `iptables` is installed (nft or legacy backend) is used: that is the
 * one the engine and ufw use. A host without iptables has nothing to do. The same
 * holds for ip6tables (Docker 27+ sets its FORWARD policy to DROP too): the nftables
 * driver keeps one IptablesForwardAccept per program.
 *
 * Which backend the program has (`iptables -V`: "(nf_tables)" or "(legacy)") is
 * read once: with nf_tables, every change of FORWARD (a rule, the policy) is an
 * nf_tables commit and advances the ruleset generation, so the nftables driver's
 * quiet reconcile skips the check when nobody else committed since it was last
 * verified; with legacy iptables, invisible to the generation, it checks every time.
 */
import { toFerryError } from '../errors/errors.js'
import type { NatLogger } from './host-effects.js'
import type { Runner } from '../kernel/exec.js'
import { FORWARD_MARK } from './nft-plan.js'

const COMMENT = 'ferry: accepted by table inet ferry'
const MARK = `0x${FORWARD_MARK.toString(16)}/0x${FORWARD_MARK.toString(16)}`
/** The rule, as argv after the chain name. */
export const ACCEPT_RULE = ['-m', 'mark', '--mark', MARK, '-m', 'comment', '--comment', COMMENT, '-j', 'ACCEPT']

export interface ForwardFacts {
  /** False when there is no iptables program. */
  present: boolean
  policy?: string
  /** How many times ferry's rule is in FORWARD. */
  rules: number
}

/** Read `iptables -S FORWARD`: the policy and ferry's rules. */
export function parseForward (text: string): Omit<ForwardFacts, 'present'> {
  const policy = /^-P FORWARD (\S+)/m.exec(text)?.[1]
  const rules = text.split('\n').filter((l) => l.startsWith('-A FORWARD ') && l.includes(`"${COMMENT}"`)).length
  return { policy, rules }
}

/** What a sync found: nothing to do, a rule put or taken away, or it could not tell (logged). */
export type SyncResult = 'unchanged' | 'changed' | 'failed'

/** The backend in `iptables -V`: 'nf_tables', 'legacy', or undefined when it says neither. */
export function parseBackend (text: string): 'nf_tables' | 'legacy' | undefined {
  const m = /\((nf_tables|legacy)\)/.exec(text)
  return m?.[1] as 'nf_tables' | 'legacy' | undefined
}

export class IptablesForwardAccept {
  /** undefined: not read yet; null: no program, or it says no backend. */
  private backend: 'nf_tables' | 'legacy' | null | undefined

  constructor (private readonly run: Runner, private readonly log: NatLogger | undefined, private readonly iptables: readonly string[] = ['iptables', '-w', '5']) {}

  /**
   * True when the program writes nf_tables (iptables-nft): its changes advance the
   * nf_tables generation. Read once, at the first call (one `-V` run).
   */
  async nfTables (): Promise<boolean> {
    if (this.backend === undefined) {
      try {
        const res = await this.run([...this.iptables, '-V'], { allowFailure: true, timeoutMs: 10_000 })
        this.backend = res.code === 0 ? parseBackend(res.stdout + res.stderr) ?? null : null
      } catch {
        this.backend = null
      }
    }
    return this.backend === 'nf_tables'
  }

  async facts (): Promise<ForwardFacts> {
    let res
    try {
      res = await this.run([...this.iptables, '-t', 'filter', '-S', 'FORWARD'], { allowFailure: true, timeoutMs: 10_000 })
    } catch {
      return { present: false, rules: 0 }
    }
    if (res.code !== 0) return { present: false, rules: 0 }
    return { present: true, ...parseForward(res.stdout) }
  }

  /** Put the rule first while the policy is DROP, take it away otherwise. Never throws. */
  async sync (): Promise<SyncResult> {
    try {
      const f = await this.facts()
      if (!f.present) return 'unchanged'
      if (f.policy === 'DROP' && f.rules === 0) {
        await this.run([...this.iptables, '-t', 'filter', '-I', 'FORWARD', '1', ...ACCEPT_RULE], { timeoutMs: 10_000 })
        this.log?.debug({}, 'iptables FORWARD policy is DROP: ferry\'s marked traffic accepted there')
        return 'changed'
      }
      if (f.policy !== 'DROP' && f.rules > 0) {
        await this.removeAll(f.rules)
        return 'changed'
      }
      return 'unchanged'
    } catch (err) {
      this.log?.warn({ err: toFerryError(err).message }, 'keeping the iptables FORWARD accept for ferry\'s marked traffic failed')
      return 'failed'
    }
  }

  /** Remove every copy of the rule (teardown). */
  async remove (): Promise<void> {
    const f = await this.facts()
    if (f.present && f.rules > 0) await this.removeAll(f.rules)
  }

  private async removeAll (n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.run([...this.iptables, '-t', 'filter', '-D', 'FORWARD', ...ACCEPT_RULE], { timeoutMs: 10_000 })
  }
}
