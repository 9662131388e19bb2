/**
 * bench:overlay's accounting of single changes (pure helpers, tested in test/bench/changes.test.ts):
 * where each change's time went, from the publisher's call to the peer seen in the agent's kernel.
 *
 * From the agent's debug log: its 'overlay peers programmed' line of a delta (when the change reached
 * it, the ms its listeners took — the DNS records —, the wait for its reconcile, planning, the kernel's
 * answer: src/vxlan/peers.ts) and the GC pauses that bench/agent-gc-probe.mjs writes there. From the
 * publisher: when its call began and was acknowledged, and the agent's /proc/PID/schedstat (ns run,
 * ns waited for a CPU) at the start of each change's window (the agent is idle between changes).
 * All times are unix ms of the one clock of this machine.
 */
import { median } from './lib.js'

/** The agent's account of one delta (its debug line). */
export interface DeltaLine { receivedAt: number, listenersMs: number, queuedMs: number, planMs: number, kernelMs: number, ops: number }
/** One GC pause of the agent: when it began (unix ms) and how long it took. */
export interface GcPause { at: number, ms: number }
/** ns run, ns waited for a CPU (/proc/PID/schedstat). */
export type Sched = [number, number]

/** One change as the publisher and the kernel's watcher saw it (unix ms; `seenAt` NaN when never seen). */
export interface ChangeWindow {
  startAt: number
  ackAt: number
  seenAt: number
  /** The agent's schedstat at this window's start and at the next one's. */
  sched0?: Sched
  sched1?: Sched
}

export interface ChangeAccount {
  /** The call's start to the peer seen in the kernel. */
  totalMs: number
  /** The publisher's own round trip (EVALSHA). */
  ackMs: number
  /** The call's start to the change reaching the agent's peer sync: Redis, pubsub delivery, the agent's wake-up and parsing. */
  deliveryMs: number
  /** Of the agent's time before its reconcile began: its listeners (the DNS records), then the wait for its turn. */
  listenersMs: number
  waitMs: number
  planMs: number
  kernelMs: number
  /** The call's start to the kernel's answer to the agent's netlink request (the entry is in): the change in the kernel as the agent knows it. */
  answeredMs: number
  /** The kernel's answer to the watcher (`ip monitor` reading the event): not the agent's. */
  watcherMs: number
  /** GC pauses of the agent inside the change, ms. */
  gcMs: number
  /** The agent's main thread over the change's whole window: ms on a CPU, ms runnable but waiting for one. */
  runMs: number
  cpuWaitMs: number
  /** False when no delta line of the agent fell in the window (then only total, ack, GC and CPU are known). */
  matched: boolean
  /** A full reconcile of the agent that ran during the change (its ms, its kernel read's), which the change waited behind. */
  behind?: { ms: number, readMs: number }
  /** A periodic repair of the agent that ran during the change (outside the lock: the change need not wait for it, but shares the thread). */
  during?: { ms: number, readMs: number }
}

/** A full reconcile of the agent (its debug line): when it ended (unix ms) and its parts, ms. */
export interface FullLine { endAt: number, ms: number, readMs: number }

/** The agent's delta lines, full reconciles, periodic repairs and GC pauses in `log` (its lines are JSON; others are skipped). */
export function parseAgentLog (log: string): { deltas: DeltaLine[], gcs: GcPause[], fulls: FullLine[], repairs: FullLine[] } {
  const deltas: DeltaLine[] = []
  const gcs: GcPause[] = []
  const fulls: FullLine[] = []
  const repairs: FullLine[] = []
  for (const line of log.split('\n')) {
    const full = line.includes('"overlay full reconcile"')
    if (full || line.includes('"overlay repair"')) {
      const span = spanOf(line, full ? ['readMs', 'planMs', 'diffMs', 'applyMs'] : ['readMs', 'diffMs', 'lockWaitMs', 'lockedMs'])
      if (span) (full ? fulls : repairs).push(span)
      continue
    }
    if (line.startsWith('{"probe":"gc"')) {
      try {
        const o = JSON.parse(line) as { at: number, ms: number }
        gcs.push({ at: o.at, ms: o.ms })
      } catch { /* a torn line: skipped */ }
      continue
    }
    if (!line.includes('"overlay peers programmed"') || !line.includes('"receivedAt"')) continue
    try {
      const o = JSON.parse(line) as DeltaLine
      deltas.push({ receivedAt: o.receivedAt, listenersMs: o.listenersMs, queuedMs: o.queuedMs, planMs: o.planMs, kernelMs: o.kernelMs, ops: o.ops })
    } catch { /* not JSON */ }
  }
  return { deltas, gcs, fulls, repairs }
}

/** A full reconcile's or a repair's debug line: when it ended (its time), the sum of its `parts` and its kernel read, ms. */
function spanOf (line: string, parts: readonly string[]): FullLine | undefined {
  try {
    const o = JSON.parse(line) as Record<string, unknown>
    return { endAt: Date.parse(String(o.time)), ms: parts.reduce((sum, k) => sum + Number(o[k]), 0), readMs: Number(o.readMs) }
  } catch {
    return undefined // not JSON
  }
}

/** The overlap in ms of [a0, a1] and [b0, b1]. */
function overlap (a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0))
}

/** The GC pauses inside [from, to] (unix ms): their ms there, how many, the longest. */
export function gcIn (gcs: readonly GcPause[], from: number, to: number): { ms: number, count: number, longest: number } {
  let ms = 0
  let count = 0
  let longest = 0
  for (const g of gcs) {
    const o = overlap(g.at, g.at + g.ms, from, to)
    if (o <= 0) continue
    ms += o
    count++
    longest = Math.max(longest, g.ms)
  }
  return { ms, count, longest }
}

/**
 * Each change's account, in order: its delta is the agent's first not taken by an earlier change that the change
 * reached after its call began (and before it was seen); a change coalesced into a later change's delta has none.
 */
export function accountChanges (ws: readonly ChangeWindow[], deltas: readonly DeltaLine[], gcs: readonly GcPause[], fulls: readonly FullLine[] = [], repairs: readonly FullLine[] = []): ChangeAccount[] {
  let next = 0
  return ws.map((w) => {
    const end = Number.isFinite(w.seenAt) ? w.seenAt : w.startAt + 1000
    while (next < deltas.length && deltas[next]!.receivedAt < w.startAt) next++
    const d = next < deltas.length && deltas[next]!.receivedAt <= end ? deltas[next++] : undefined
    return accountChange(w, d, gcs, fulls, repairs)
  })
}

/** One change's account, given its delta line (undefined: none). */
export function accountChange (w: ChangeWindow, d: DeltaLine | undefined, gcs: readonly GcPause[], fulls: readonly FullLine[] = [], repairs: readonly FullLine[] = []): ChangeAccount {
  const end = Number.isFinite(w.seenAt) ? w.seenAt : w.startAt + 1000
  const gcMs = gcIn(gcs, w.startAt, end).ms
  const [runMs, cpuWaitMs] = w.sched0 && w.sched1 ? [(w.sched1[0] - w.sched0[0]) / 1e6, (w.sched1[1] - w.sched0[1]) / 1e6] : [NaN, NaN]
  const span = (f: FullLine): boolean => overlap(f.endAt - f.ms, f.endAt, w.startAt, end) > 0
  const full = fulls.find(span)
  const repair = repairs.find(span)
  const base = {
    totalMs: w.seenAt - w.startAt, ackMs: w.ackAt - w.startAt, gcMs, runMs, cpuWaitMs,
    ...(full ? { behind: { ms: full.ms, readMs: full.readMs } } : {}), ...(repair ? { during: { ms: repair.ms, readMs: repair.readMs } } : {}),
  }
  if (!d) return { ...base, deliveryMs: NaN, listenersMs: NaN, waitMs: NaN, planMs: NaN, kernelMs: NaN, answeredMs: NaN, watcherMs: NaN, matched: false }
  const kernelDone = d.receivedAt + d.queuedMs + d.planMs + d.kernelMs
  return {
    ...base,
    deliveryMs: d.receivedAt - w.startAt,
    listenersMs: d.listenersMs,
    waitMs: d.queuedMs - d.listenersMs,
    planMs: d.planMs,
    kernelMs: d.kernelMs,
    answeredMs: kernelDone - w.startAt,
    watcherMs: w.seenAt - kernelDone,
    matched: true,
  }
}

const f1 = (x: number): string => Number.isFinite(x) ? x.toFixed(1) : '?'

/** "23.1 ms = Redis+pubsub 2.0 + DNS 0.1 + wait 0.0 + plan 0.0 + kernel 1.2 + watcher 19.8 (GC 0.0; agent ran 1.9, waited for a CPU 0.3 ms in its window)". */
export function accountText (a: ChangeAccount): string {
  const parts = a.matched
    ? `Redis+pubsub ${f1(a.deliveryMs)} (ack ${f1(a.ackMs)}) + DNS ${f1(a.listenersMs)} + wait ${f1(a.waitMs)} + plan ${f1(a.planMs)} + kernel ${f1(a.kernelMs)} + watcher ${f1(a.watcherMs)}`
    : `no delta line of its own (coalesced with a later change, or folded into a full reconcile; ack ${f1(a.ackMs)})`
  const behind = a.behind ? `; behind a full reconcile of ${f1(a.behind.ms)} ms (kernel read ${f1(a.behind.readMs)})` : ''
  const during = a.during ? `; during a periodic repair of ${f1(a.during.ms)} ms (kernel read ${f1(a.during.readMs)})` : ''
  return `${f1(a.totalMs)} ms = ${parts} (GC ${f1(a.gcMs)}; agent ran ${f1(a.runMs)}, waited for a CPU ${f1(a.cpuWaitMs)} ms in its window${behind}${during})`
}

/** The median of each part over the changes matched. */
export function medianAccount (accounts: readonly ChangeAccount[]): ChangeAccount | undefined {
  const ok = accounts.filter((a) => a.matched)
  if (ok.length === 0) return undefined
  const med = (f: (a: ChangeAccount) => number): number => median(ok.map(f).filter(Number.isFinite))
  return {
    totalMs: med((a) => a.totalMs), ackMs: med((a) => a.ackMs), deliveryMs: med((a) => a.deliveryMs), listenersMs: med((a) => a.listenersMs),
    waitMs: med((a) => a.waitMs), planMs: med((a) => a.planMs), kernelMs: med((a) => a.kernelMs), answeredMs: med((a) => a.answeredMs), watcherMs: med((a) => a.watcherMs),
    gcMs: med((a) => a.gcMs), runMs: med((a) => a.runMs), cpuWaitMs: med((a) => a.cpuWaitMs), matched: true,
  }
}

/**
 * A line of `ip -ts monitor`: `[2026-12-07T11:46:40.383060] 10.9.9.9 dev d0 …` → the event's text and when `ip`
 * read it (unix ms, to the µs; the stamp is local time, as `ip` prints it), which leaves out the pipe and this
 * benchmark's own event loop. A line without a stamp is returned as it is.
 */
export function monitorStamp (line: string): { text: string, unixMs?: number } {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{1,9})\] /.exec(line)
  if (!m) return { text: line }
  const s = Date.parse(m[1]!)
  if (!Number.isFinite(s)) return { text: line }
  return { text: line.slice(m[0].length), unixMs: s + Number(`0.${m[2]!}`) * 1000 }
}
