/**
 * The agent's reconciles of the kernel with the store (at start, on a timer, on
 * `ferry reconcile`), counted for `ferry status` and the metrics: runs, repairs,
 * the last error and when the last one ran. Before each, the store looks again for
 * damaged files the operator has moved out (normal cleanup resumes then). And the
 * agent's periodic round (startPeriodic): recovery, reconcile, collection.
 */
import type { Logger } from 'pino'
import { toFerryError } from '../errors/errors.js'
import type { FileStore } from '../store/store.js'
import type { NetworkDriver } from './network.js'
import type { Collector } from './collect.js'

export interface ReconcileCounters { runs: number, repairs: number, lastError: string, lastAt: string }

export class Reconciler {
  readonly counters: ReconcileCounters = { runs: 0, repairs: 0, lastError: '', lastAt: '' }

  constructor (private readonly d: { driver: Pick<NetworkDriver, 'reconcile'>, store: Pick<FileStore, 'recheckLoss'>, log: Logger, now?: () => Date }) {}

  /** One reconcile; `why` is logged ('start', 'periodic', 'requested'). A failure is counted, logged and thrown. */
  async run (why: string): Promise<Record<string, unknown>> {
    try {
      if (await this.d.store.recheckLoss()) this.d.log.warn('the damaged store files are gone from the state directory: reconcile removes what nothing needs again')
      const r = await this.d.driver.reconcile()
      this.counters.runs++
      this.counters.lastAt = (this.d.now?.() ?? new Date()).toISOString()
      this.counters.lastError = ''
      if (r.links > 0 || r.firewall) {
        this.counters.repairs++
        this.d.log.warn({ why, ...r }, 'reconcile repaired the kernel state')
      }
      return { ...r }
    } catch (err) {
      const ferr = toFerryError(err, 'KERNEL', 'reconcile failed')
      this.counters.lastError = ferr.message
      this.d.log.error({ err: ferr, why }, 'reconcile failed')
      throw ferr
    }
  }
}

/** What the agent does every --reconcile-interval. */
export interface PeriodicWork {
  /** The rebuild of what a damaged store lost (src/agent/recover.ts), while there is one; logs its own failure, never rejects. */
  recovery?: () => { run (): Promise<void> } | undefined
  /** Logs and counts its own failure. */
  reconciler: Pick<Reconciler, 'run'>
  /** Orphaned endpoints and leaked addresses (src/driver/collect.ts). */
  collector: Pick<Collector, 'collect'>
  log: Pick<Logger, 'warn'>
}

/** One round: the three at once, each failure logged (once), none thrown. */
export async function periodicRound (w: PeriodicWork): Promise<void> {
  await Promise.all([
    w.recovery?.()?.run(),
    w.reconciler.run('periodic').catch(() => undefined), // logged and counted by the reconciler
    w.collector.collect().catch((err: unknown) => { w.log.warn({ err: toFerryError(err).message }, 'collecting orphaned endpoints failed') }),
  ])
}

/** A round every `ms` (the timer does not keep the process alive); returns how to stop. */
export function startPeriodic (ms: number, w: PeriodicWork): () => void {
  const timer = setInterval(() => { void periodicRound(w) }, ms) // a round never rejects
  timer.unref()
  return () => { clearInterval(timer) }
}
