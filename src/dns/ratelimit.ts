/**
 * A token bucket per source (an address, or an unknown IPv6 source's /64: see
 * rateKey): each source may send `burst` queries at once and `perSecond` on average. The clock is injectable for tests.
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
import { formatCidr, maskOf, parseIpOrUndefined } from '../util/ip.js'

/**
 * The bucket a source's queries take from. IPv4 sources and known clients (an
 * address ferry gave to an endpoint: `isClient`) have one each. An IPv6 source
 * that is no client shares one bucket with its whole /64: a container that adds
 * addresses to its interface (any of the 2^64 of its network's prefix) would
 * otherwise get a fresh bucket per address and could flood at will; per /64, the
 * addresses it invents draw from one bucket, while every real client keeps its
 * own (keying real clients per /64 would put all containers of a /64 network in
 * one bucket, and one busy container would starve the others). A zone (`%eth0`)
 * is left out; an unreadable source is its own key.
 */
export function rateKey (src: string, isClient: (src: string) => boolean): string {
  if (!src.includes(':') || isClient(src)) return src
  const zone = src.indexOf('%')
  const p = parseIpOrUndefined(zone < 0 ? src : src.slice(0, zone))
  if (p === undefined || p.family !== 6) return src
  return formatCidr({ family: 6, network: p.value & maskOf(6, 64), prefix: 64 })
}

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
