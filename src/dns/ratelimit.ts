/**
 * A token bucket per source address: each source may send `burst` queries at
 * once and `perSecond` on average. The table is bounded: when it holds
 * `maxSources` sources it is emptied (which forgives everyone, never blocks
 * anyone wrongly). The clock is injectable for tests.
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
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number

  constructor (private readonly limit: RateLimit, private readonly now: () => number = () => performance.now(),
    private readonly maxSources = 65_536) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new Error('rate limit needs perSecond > 0 and burst >= 1')
    this.perMs = limit.perSecond / 1000
  }

  /** Take one token for `source`; false when its bucket is empty. */
  take (source: string): boolean {
    const now = this.now()
    let b = this.buckets.get(source)
    if (b === undefined) {
      if (this.buckets.size >= this.maxSources) this.buckets.clear()
      b = { tokens: this.limit.burst, stamp: now }
      this.buckets.set(source, b)
    } else {
      b.tokens = Math.min(this.limit.burst, b.tokens + (now - b.stamp) * this.perMs)
      b.stamp = now
    }
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  get size (): number {
    return this.buckets.size
  }
}
