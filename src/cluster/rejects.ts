/**
 * What the agent refused from the cluster store: entries and messages that fail
 * validation, a cluster-key check, or a consistency rule (an endpoint whose host
 * is not registered, an address claimed by another endpoint, a changed overlay
 * definition). Each one is counted by kind and reason (the metric
 * `ferry_cluster_rejected_total{kind,reason}`) and logged in one sentence, once
 * per offending item (a forged entry is read again at every resync). Bounded:
 * a fixed set of kinds and reasons, and at most LOGGED_MAX remembered items.
 */
import type { Logger } from 'pino'

export type RejectKind = 'host' | 'overlay' | 'endpoint' | 'message' | 'claim' | 'allocation'
export type RejectReason =
  | 'invalid' | 'too-large' | 'bad-mac' | 'missing-mac' | 'unregistered-host' | 'vtep-mismatch'
  | 'address-claimed' | 'outside-subnet' | 'changed-definition' | 'revision' | 'unknown-overlay'

const LOGGED_MAX = 1024

export class RejectCounter {
  private readonly counts = new Map<string, { kind: RejectKind, reason: RejectReason, count: number }>()
  private readonly logged = new Set<string>()

  constructor (private readonly log?: Logger) {}

  /** Count one refused item; `what` names it (for the log, at most once per item and reason). */
  reject (kind: RejectKind, reason: RejectReason, what: string, detail?: string): void {
    const k = `${kind}|${reason}`
    const c = this.counts.get(k)
    if (c) c.count++
    else this.counts.set(k, { kind, reason, count: 1 })
    const once = `${k}|${what}`
    if (this.logged.has(once)) return
    if (this.logged.size >= LOGGED_MAX) this.logged.clear()
    this.logged.add(once)
    this.log?.warn({ kind, reason, item: what.slice(0, 200) }, `refused ${kind} ${what.slice(0, 200)} read from the cluster store: ${detail ?? reason}`)
  }

  total (): number {
    let n = 0
    for (const c of this.counts.values()) n += c.count
    return n
  }

  /** Counts by kind and reason, sorted. */
  list (): Array<{ kind: RejectKind, reason: RejectReason, count: number }> {
    return [...this.counts.values()].map((c) => ({ ...c })).sort((a, b) => `${a.kind}|${a.reason}` < `${b.kind}|${b.reason}` ? -1 : 1)
  }
}
