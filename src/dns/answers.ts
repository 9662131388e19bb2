/**
 * Precomputed answers: for each scope (the set of networks a client is on) and
 * each name asked in it, the encoded resource records of every type, built on
 * the first query and reused until the records change (then the whole cache is
 * dropped: it is rebuilt lazily, name by name).
 *
 * Scopes are found by the identity of the networks array the client callback
 * returns (a WeakMap: no allocation when the agent hands out the same array while
 * membership is unchanged), else by its joined content.
 *
 * A name that is not ferry's but a search expansion of one of its names in the
 * scope (`web.<search domain>`, search.ts) gets that name's records, under the
 * name asked (owner names point at the question).
 */
import type { RecordSet } from './records.js'
import { SearchDomains } from './search.js'
import { EMPTY_RRSET, encodeRRSet, keyToName, type RRSet, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR, TYPE_SRV } from './wire.js'

/** Encoded records of one name in one scope. */
export interface EncodedName {
  a: RRSet
  aaaa: RRSet
  ptr: RRSet
  /** With the targets' addresses as additional records. */
  srv: RRSet
  any: RRSet
}

/** The records for a query type; other types get none (NODATA). */
export function rrsFor (e: EncodedName, qtype: number): RRSet {
  switch (qtype) {
    case TYPE_A: return e.a
    case TYPE_AAAA: return e.aaaa
    case TYPE_PTR: return e.ptr
    case TYPE_SRV: return e.srv
    case TYPE_ANY: return e.any
    default: return EMPTY_RRSET
  }
}

/** Names not in the scope are remembered too (up to this many), as null. */
const MAX_NEGATIVE = 10_000
const MAX_SCOPES = 1024

export class ScopeView {
  private readonly names = new Map<string, EncodedName | null>()
  private negatives = 0

  constructor (
    private readonly records: RecordSet, private readonly networks: readonly string[], private readonly ttl: number,
    private readonly search: SearchDomains = SearchDomains.none,
  ) {}

  /**
   * The encoded records for a wire key — ferry's name in this scope, else the
   * name it is a search expansion of — or undefined when neither is ferry's here.
   */
  get (key: string): EncodedName | undefined {
    const hit = this.names.get(key)
    if (hit !== undefined) return hit ?? undefined
    let e = this.own(key)
    for (const k of e === undefined ? this.search.stripped(key) : []) {
      e = this.own(k)
      if (e !== undefined) break
    }
    if (e === undefined) {
      if (this.negatives < MAX_NEGATIVE) {
        this.names.set(key, null)
        this.negatives++
      }
      return undefined
    }
    this.names.set(key, e)
    return e
  }

  /** The records of the name of `key` itself in this scope, encoded (not remembered). */
  private own (key: string): EncodedName | undefined {
    const recs = this.records.lookup(keyToName(key), this.networks)
    if (recs === undefined) return undefined
    const a = encodeRRSet(TYPE_A, this.ttl, recs.a)
    const aaaa = encodeRRSet(TYPE_AAAA, this.ttl, recs.aaaa)
    const ptr = encodeRRSet(TYPE_PTR, this.ttl, recs.ptr)
    const srv = this.encodeSrv(recs.srv)
    const any = { bytes: Buffer.concat([a.bytes, aaaa.bytes, ptr.bytes, srv.bytes]), count: a.count + aaaa.count + ptr.count + srv.count }
    return { a, aaaa, ptr, srv, any }
  }

  /**
   * Whether a wire key that is not ferry's in this scope is `_<x>._tcp|_udp.NAME`
   * with NAME ferry's here: ferry holds every SRV record of its names, so such a
   * query is NXDOMAIN, not a question for the upstreams.
   */
  unknownService (key: string): boolean {
    if (key.charCodeAt(1) !== 0x5f) return false // '_'
    const second = 1 + key.charCodeAt(0)
    if (key.charCodeAt(second) !== 4) return false
    const proto = key.slice(second + 1, second + 5)
    if (proto !== '_tcp' && proto !== '_udp') return false
    const rest = key.slice(second + 5)
    return rest !== '' && this.get(rest) !== undefined
  }

  /** SRV records ("<port> <target>"), each target's A and AAAA records of this scope as additional records. */
  private encodeSrv (datas: readonly string[]): RRSet {
    const srv = encodeRRSet(TYPE_SRV, this.ttl, datas)
    if (srv.count === 0) return srv
    const extra: RRSet[] = []
    for (const target of new Set(datas.map((d) => d.slice(d.indexOf(' ') + 1)))) {
      const t = this.records.lookup(target, this.networks)
      if (t === undefined) continue
      extra.push(encodeRRSet(TYPE_A, this.ttl, t.a, target), encodeRRSet(TYPE_AAAA, this.ttl, t.aaaa, target))
    }
    srv.extra = { bytes: Buffer.concat(extra.map((x) => x.bytes)), count: extra.reduce((n, x) => n + x.count, 0) }
    return srv
  }
}

export class AnswerCache {
  private readonly byArray = new WeakMap<readonly string[], ScopeView>()
  private readonly byKey = new Map<string, ScopeView>()

  constructor (readonly records: RecordSet, private readonly ttl: number, readonly search: SearchDomains = SearchDomains.none) {}

  view (networks: readonly string[]): ScopeView {
    const known = this.byArray.get(networks)
    if (known !== undefined) return known
    const key = networks.length === 1 ? networks[0]! : [...networks].sort().join('\0')
    let v = this.byKey.get(key)
    if (v === undefined) {
      if (this.byKey.size >= MAX_SCOPES) this.byKey.clear()
      v = new ScopeView(this.records, [...networks], this.ttl, this.search)
      this.byKey.set(key, v)
    }
    this.byArray.set(networks, v)
    return v
  }
}
