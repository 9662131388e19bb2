/**
 * Preloaded into bench:overlay's scale agent (`node --import …/agent-gc-probe.mjs`), not part of ferry:
 * every GC pause of the agent as a line of its log, `{"probe":"gc","at":UNIX_MS,"ms":DURATION,"kind":N}`
 * (`at` when the pause began, to 0.01 ms; kind as perf_hooks' NODE_PERFORMANCE_GC_*), so the benchmark
 * can tell which changes waited for one. Written synchronously to stderr (the agent's log file).
 */
import { writeSync } from 'node:fs'
import { performance, PerformanceObserver } from 'node:perf_hooks'

new PerformanceObserver((list) => {
  let out = ''
  for (const e of list.getEntries()) {
    const at = Math.round((performance.timeOrigin + e.startTime) * 100) / 100
    out += `{"probe":"gc","at":${at},"ms":${Math.round(e.duration * 100) / 100},"kind":${e.detail?.kind ?? 0}}\n`
  }
  try { writeSync(2, out) } catch { /* the log is gone: nothing to report to */ }
}).observe({ entryTypes: ['gc'] })
