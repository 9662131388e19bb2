/**
 * A cache of forwarded answers (names that are not ferry's), pure: no sockets,
 * no timers; the time is passed in (milliseconds).
 *
 * What it keeps: the upstream's response bytes, once per key, with the offset
 * of every TTL field, so a hit is one copy of the bytes, the client's id and
 * question written over it (0x20 case kept), and each TTL decremented by the
 * seconds the entry has been held. EDNS options of the response (a server
 * cookie for the first client, padding) are stripped before storing: they
 * belong to one exchange, not to the data.
 *
 * The key: the question name (wire form, lowercased), type and class, and the
 * request bits that change what an upstream sends back: RD (a recursive
 * answer or a referral), CD (checking disabled: data a validating upstream
 * would refuse), EDNS present (a response carries an OPT record only when the
 * request did; RFC 6891 6.1.1) and DO (DNSSEC records included). The EDNS UDP
 * size is not part of it: the server sends a cached answer larger than the
 * client takes as an empty truncated one, the client asks again over TCP.
 *
 * What is cached (RFC 2308): NOERROR with answers, for the smallest TTL of its
 * records; NXDOMAIN and NODATA (NOERROR, no answers) with an SOA in the
 * authority section, for min(SOA TTL, SOA MINIMUM); nothing else (SERVFAIL,
 * REFUSED, truncated answers, referrals, negative answers without SOA). Every
 * TTL is clamped to [floor, cap] (negative ones to [floor, negativeCap]).
 *
 * Bounds: entries and bytes (LRU, one JS Map in use order). An expired entry
 * stays until evicted or `staleSeconds` past its expiry, to be served stale
 * (RFC 8767, TTL 30) when no upstream answers.
 *
 * Prefetch: a hit on an entry asked `prefetchHits` times, in the last
 * `prefetchPercent` of its TTL, tells the caller to refresh it upstream now,
 * once, so a popular name never expires in front of its clients.
 *
 * Scope: only upstream answers are stored, and the server looks in the cache
 * after ferry's own records, so a cached answer never carries a ferry name;
 * `flushName` drops a name the moment ferry starts answering it.
 */
import { ferryError } from '../errors/errors.js'
import { HEADER, type Query, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_OPT } from './wire.js'

export interface CacheOptions {
  /** Entries at most (default 10,000). */
  maxEntries: number
  /** Bytes of answers and keys at most (default 8 MiB). */
  maxBytes: number
  /** TTL cap of positive answers, seconds (default 3600). */
  ttlCap: number
  /** TTL floor, seconds (default 0). */
  ttlFloor: number
  /** TTL cap of negative answers, seconds (default 300). */
  negativeCap: number
  /** How long past expiry an entry may be served stale, seconds (default 86,400; RFC 8767 suggests 1–3 days). */
  staleSeconds: number
  /** Hits before an entry is worth prefetching (default 3). */
  prefetchHits: number
  /** Prefetch in the last this-many percent of the TTL (default 10). */
  prefetchPercent: number
  /** Entries with a shorter TTL are not prefetched, seconds (default 10). */
  prefetchMinTtl: number
}

export const DEFAULT_CACHE: CacheOptions = {
  maxEntries: 10_000,
  maxBytes: 8 << 20,
  ttlCap: 3600,
  ttlFloor: 0,
  negativeCap: 300,
  staleSeconds: 86_400,
  prefetchHits: 3,
  prefetchPercent: 10,
  prefetchMinTtl: 10,
}

/** TTL of a stale answer (RFC 8767 section 4). */
export const STALE_TTL = 30

/** The cache's counters; the server's DnsMetrics holds them (one object, read by the metrics endpoint). */
export interface CacheCounters {
  cacheHits: number
  cacheMisses: number
  cacheEvictions: number
  /** Answers stored (new or refreshed). */
  cacheInserts: number
  /** Responses not stored (SERVFAIL, truncated, negative without SOA, TTL 0). */
  cacheUncacheable: number
  /** Answers served stale (no upstream answered). */
  cacheStale: number
  cachePrefetches: number
  /** Entries held now (a gauge). */
  cacheEntries: number
  /** Bytes held now (a gauge). */
  cacheBytes: number
}

export function newCacheCounters (): CacheCounters {
  return { cacheHits: 0, cacheMisses: 0, cacheEvictions: 0, cacheInserts: 0, cacheUncacheable: 0, cacheStale: 0, cachePrefetches: 0, cacheEntries: 0, cacheBytes: 0 }
}

interface Entry {
  key: string
  /** The wire key of the name (for flushName). */
  name: string
  bytes: Buffer
  qEnd: number
  /** Offsets of the TTL fields, and the TTL stored at each. */
  ttlOffsets: number[]
  ttls: number[]
  storedAt: number
  expires: number
  ttl: number
  negative: boolean
  hits: number
  prefetching: boolean
  size: number
}

/** A hit: the answer for this client, and whether to refresh the entry now. */
export interface CacheHit {
  resp: Buffer
  prefetch: boolean
}

const FLAG_RD = 0x01
const TYPE_SOA = 6
/** Bookkeeping bytes per entry counted against maxBytes, beyond answer and key. */
const ENTRY_OVERHEAD = 160

/** The cache key of a parsed query (see the module comment). */
export function cacheKey (q: Query): string {
  const bits = (q.flags & FLAG_RD) | (q.cd ? 2 : 0) | (q.edns ? 4 : 0) | (q.dnssecOk ? 8 : 0)
  return q.key + String.fromCharCode(0, q.qtype >> 8, q.qtype & 0xff, q.qclass >> 8, q.qclass & 0xff, bits)
}

/** The end offset of a (possibly compressed) name at `off`, or -1. */
function skipName (b: Buffer, off: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (off >= b.length) return -1
    const len = b[off]!
    if (len === 0) return off + 1
    if ((len & 0xc0) === 0xc0) return off + 2 <= b.length ? off + 2 : -1
    if (len > 63) return -1
    off += 1 + len
  }
  return -1
}

interface Parsed {
  bytes: Buffer
  ttlOffsets: number[]
  ttls: number[]
  /** Smallest TTL of the records; for a negative answer, also the SOA MINIMUM. */
  minTtl: number
  negative: boolean
}

/**
 * Walk a response's records: TTL offsets, smallest TTL, SOA, OPT (its options
 * cut out). undefined when the response is not worth caching or malformed.
 */
export function parseForCache (resp: Buffer, qEnd: number): Parsed | undefined {
  if (resp.length < qEnd || qEnd <= HEADER || resp.readUInt16BE(4) !== 1) return undefined
  const b2 = resp[2]!
  if ((b2 & 0x80) === 0 || (b2 & 0x02) !== 0) return undefined // not a response, or truncated
  const rcode = resp[3]! & 0x0f
  if (rcode !== RCODE_NOERROR && rcode !== RCODE_NXDOMAIN) return undefined
  const an = resp.readUInt16BE(6)
  const ns = resp.readUInt16BE(8)
  const ar = resp.readUInt16BE(10)
  const ttlOffsets: number[] = []
  const ttls: number[] = []
  let minTtl = Infinity
  let soaMin = -1
  let optRdata = -1
  let optRdlen = 0
  let off = qEnd
  for (let i = 0; i < an + ns + ar; i++) {
    off = skipName(resp, off)
    if (off < 0 || off + 10 > resp.length) return undefined
    const type = resp.readUInt16BE(off)
    const rdlen = resp.readUInt16BE(off + 8)
    const rdata = off + 10
    if (rdata + rdlen > resp.length) return undefined
    if (type === TYPE_OPT) {
      if (i < an + ns || optRdata >= 0) return undefined
      optRdata = rdata
      optRdlen = rdlen
    } else {
      let ttl = resp.readUInt32BE(off + 4)
      if (ttl > 0x7fffffff) ttl = 0 // RFC 2181 8
      ttlOffsets.push(off + 4)
      ttls.push(ttl)
      if (ttl < minTtl) minTtl = ttl
      if (type === TYPE_SOA && i >= an && i < an + ns && rdlen >= 22) {
        const m = resp.readUInt32BE(rdata + rdlen - 4)
        soaMin = soaMin < 0 ? m : Math.min(soaMin, m)
      }
    }
    off = rdata + rdlen
  }
  const negative = rcode === RCODE_NXDOMAIN || an === 0
  if (negative) {
    if (soaMin < 0) return undefined // RFC 2308 5: no SOA, not cached
    minTtl = Math.min(minTtl, soaMin)
  }
  if (!Number.isFinite(minTtl)) return undefined
  let bytes = resp.subarray(0, off)
  if (optRdata >= 0 && optRdlen > 0) {
    bytes = Buffer.concat([resp.subarray(0, optRdata), resp.subarray(optRdata + optRdlen, off)])
    bytes.writeUInt16BE(0, optRdata - 2)
    for (let i = 0; i < ttlOffsets.length; i++) if (ttlOffsets[i]! > optRdata) ttlOffsets[i] = ttlOffsets[i]! - optRdlen
  } else {
    bytes = Buffer.from(bytes)
  }
  return { bytes, ttlOffsets, ttls, minTtl, negative }
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>()
  /** Wire key of a name → the keys of its entries. */
  private readonly byName = new Map<string, Set<string>>()
  readonly opts: CacheOptions

  /** Options left undefined take their default; a value that is not a non-negative integer throws INVALID_OPTION. */
  constructor (opts: Partial<CacheOptions> = {}, readonly stats: CacheCounters = newCacheCounters()) {
    const o = { ...DEFAULT_CACHE }
    for (const k of Object.keys(DEFAULT_CACHE) as (keyof CacheOptions)[]) {
      const v = opts[k]
      if (v === undefined) continue
      if (!Number.isSafeInteger(v) || v < 0) throw ferryError('INVALID_OPTION', `dns: cache.${k} must be a whole number, not ${String(v)}`)
      o[k] = v
    }
    this.opts = o
  }

  get size (): number {
    return this.entries.size
  }

  /**
   * The cached answer to the query `msg` (parsed into `q`, keyed `key`), its
   * TTLs decremented, or undefined (a miss; expired entries miss too).
   */
  lookup (key: string, msg: Buffer, q: Query, now: number): CacheHit | undefined {
    const e = this.entries.get(key)
    if (e === undefined || now >= e.expires || e.qEnd !== q.qEnd) {
      this.stats.cacheMisses++
      return undefined
    }
    // Most recently used last.
    this.entries.delete(key)
    this.entries.set(key, e)
    this.stats.cacheHits++
    e.hits++
    const elapsed = Math.floor((now - e.storedAt) / 1000)
    const resp = this.render(e, msg, q, (ttl) => ttl - elapsed)
    let prefetch = false
    if (!e.prefetching && e.hits >= this.opts.prefetchHits && e.ttl >= this.opts.prefetchMinTtl &&
        (e.expires - now) * 100 <= e.ttl * 1000 * this.opts.prefetchPercent) {
      e.prefetching = true
      this.stats.cachePrefetches++
      prefetch = true
    }
    return { resp, prefetch }
  }

  /** An expired (or fresh) entry's answer with TTL 30, when no upstream answered (RFC 8767). */
  stale (key: string, msg: Buffer, q: Query, now: number): Buffer | undefined {
    const e = this.entries.get(key)
    if (e === undefined || e.qEnd !== q.qEnd || now >= e.expires + this.opts.staleSeconds * 1000) return undefined
    this.stats.cacheStale++
    return this.render(e, msg, q, () => STALE_TTL)
  }

  /** The prefetch of `key` failed: allow another one. */
  prefetchFailed (key: string): void {
    const e = this.entries.get(key)
    if (e !== undefined) e.prefetching = false
  }

  /**
   * Store an upstream's response to a query keyed `key` for the name `name`
   * (wire key); `qEnd` is the end of its question. Returns whether it was kept.
   */
  store (key: string, name: string, resp: Buffer, qEnd: number, now: number): boolean {
    const p = parseForCache(resp, qEnd)
    const o = this.opts
    if (p === undefined) {
      this.stats.cacheUncacheable++
      return false
    }
    const cap = p.negative ? o.negativeCap : o.ttlCap
    const clamp = (ttl: number): number => Math.min(Math.max(ttl, o.ttlFloor), cap)
    const ttl = clamp(p.minTtl)
    const size = p.bytes.length + key.length * 2 + ENTRY_OVERHEAD
    if (ttl <= 0 || size > o.maxBytes) {
      this.stats.cacheUncacheable++
      return false
    }
    this.delete(key)
    const e: Entry = {
      key, name, bytes: p.bytes, qEnd, ttlOffsets: p.ttlOffsets,
      // A negative answer's records live as long as the negative TTL (RFC 2308 5: the SOA's TTL is min(TTL, MINIMUM)).
      ttls: p.ttls.map((x) => p.negative ? Math.min(clamp(x), ttl) : clamp(x)),
      storedAt: now,
      expires: now + ttl * 1000, ttl, negative: p.negative, hits: 0, prefetching: false, size,
    }
    this.entries.set(key, e)
    let keys = this.byName.get(name)
    if (keys === undefined) {
      keys = new Set()
      this.byName.set(name, keys)
    }
    keys.add(key)
    this.stats.cacheBytes += size
    this.stats.cacheEntries = this.entries.size
    this.stats.cacheInserts++
    while (this.entries.size > o.maxEntries || this.stats.cacheBytes > o.maxBytes) {
      const oldest = this.entries.keys().next()
      if (oldest.done === true) break
      this.delete(oldest.value)
      this.stats.cacheEvictions++
    }
    return true
  }

  /** Names (wire keys) with entries now. */
  names (): IterableIterator<string> {
    return this.byName.keys()
  }

  /** Drop every entry of a name (wire key); returns how many. */
  flushName (name: string): number {
    const keys = this.byName.get(name)
    if (keys === undefined) return 0
    const n = keys.size
    for (const k of [...keys]) this.delete(k)
    return n
  }

  /** Drop everything; returns how many entries. */
  flush (): number {
    const n = this.entries.size
    this.entries.clear()
    this.byName.clear()
    this.stats.cacheBytes = 0
    this.stats.cacheEntries = 0
    return n
  }

  /** Entries for `ferry dns cache --json`-style listings (most recently used last). */
  list (now: number): Array<{ key: string, negative: boolean, ttlLeft: number, hits: number, bytes: number }> {
    return [...this.entries.values()].map((e) => ({
      key: e.key, negative: e.negative, ttlLeft: Math.max(0, Math.ceil((e.expires - now) / 1000)), hits: e.hits, bytes: e.bytes.length,
    }))
  }

  /**
   * The question of a cached entry as a fresh query (id 0), for a prefetch or a
   * background refresh: the entry's question, RD as keyed, an OPT record
   * (1232 bytes, DO as keyed) when keyed with EDNS.
   */
  queryFor (key: string): { msg: Buffer, qEnd: number } | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    const bits = key.charCodeAt(key.length - 1)
    const edns = (bits & 4) !== 0
    const msg = Buffer.alloc(e.qEnd + (edns ? 11 : 0))
    e.bytes.copy(msg, HEADER, HEADER, e.qEnd)
    msg[2] = bits & FLAG_RD
    msg[3] = (bits & 2) !== 0 ? 0x10 : 0
    msg.writeUInt16BE(1, 4)
    if (edns) {
      const o = e.qEnd
      msg.writeUInt16BE(1, 10)
      msg.writeUInt16BE(TYPE_OPT, o + 1)
      msg.writeUInt16BE(1232, o + 3)
      msg[o + 7] = (bits & 8) !== 0 ? 0x80 : 0
    }
    return { msg, qEnd: e.qEnd }
  }

  private render (e: Entry, msg: Buffer, q: Query, ttl: (stored: number) => number): Buffer {
    const out = Buffer.allocUnsafe(e.bytes.length)
    e.bytes.copy(out)
    out.writeUInt16BE(q.id, 0)
    msg.copy(out, HEADER, HEADER, q.qEnd)
    for (let i = 0; i < e.ttlOffsets.length; i++) out.writeUInt32BE(Math.max(0, ttl(e.ttls[i]!)), e.ttlOffsets[i]!)
    return out
  }

  private delete (key: string): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    this.stats.cacheBytes -= e.size
    this.stats.cacheEntries = this.entries.size
    const keys = this.byName.get(e.name)
    if (keys !== undefined) {
      keys.delete(key)
      if (keys.size === 0) this.byName.delete(e.name)
    }
  }
}
