/**
 * A token bucket per source address: each source may send `burst` queries at
 * once and `perSecond` on average. The clock is injectable for tests.
 *
 * The table is bounded (`maxSources`, default 65,536) by two generations: new
 * and refreshed sources go into the current map; when it holds half the bound,
 * it becomes the old map and the previous old one is dropped. A source seen in
 * the old map moves back to the current one. So only sources not seen while
 * `maxSources / 2` other sources arrived are forgotten (forgetting forgives: a
 * forgotten source starts again with a full bucket). A busy source — the one a
 * limit is there to slow down — is always recent, so a flood of spoofed source
 * addresses no longer resets its limit (it used to: the table was emptied at
 * once when full). Each `take` is O(1) with no scan.
 */
export interface RateLimit {
  perSecond: number
  burst: number
}

interface Bucket {
  tokens: number
  stamp: number
}

export class RateLimiter {
  private cur = new Map<string, Bucket>()
  private old = new Map<string, Bucket>()
  private readonly perMs: number
  private readonly generation: number

  constructor (private readonly limit: RateLimit, private readonly now: () => number = () => performance.now(),
    maxSources = 65_536) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new Error('rate limit needs perSecond > 0 and burst >= 1')
    if (!(maxSources >= 2)) throw new Error('rate limit needs maxSources >= 2')
    this.perMs = limit.perSecond / 1000
    this.generation = Math.floor(maxSources / 2)
  }

  /** Take one token for `source`; false when its bucket is empty. */
  take (source: string): boolean {
    const now = this.now()
    let b = this.cur.get(source)
    if (b === undefined) {
      b = this.old.get(source)
      if (b !== undefined) this.old.delete(source)
      else b = { tokens: this.limit.burst, stamp: now }
      if (this.cur.size >= this.generation) {
        this.old = this.cur
        this.cur = new Map()
      }
      this.cur.set(source, b)
    }
    b.tokens = Math.min(this.limit.burst, b.tokens + (now - b.stamp) * this.perMs)
    b.stamp = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** Sources remembered now (at most `maxSources`). */
  get size (): number {
    return this.cur.size + this.old.size
  }
}
