/**
 * Lap timings for debug logs: `lap('firewall')` records the milliseconds since
 * the previous lap (or the start), rounded to 0.01 ms.
 */
import { performance } from 'node:perf_hooks'

export class Stopwatch {
  readonly laps: Record<string, number> = {}
  private last = performance.now()

  lap (name: string): void {
    const now = performance.now()
    this.laps[name] = Math.round((now - this.last) * 100) / 100
    this.last = now
  }
}
