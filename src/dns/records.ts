/**
 * The DNS record model, pure: what names ferry answers, on which networks.
 *
 * An entry is one endpoint of one container on one network: its container name,
 * its other names there (network aliases, link aliases, the short container id)
 * and its addresses. A `RecordSet` indexes entries per network, and every lookup
 * is scoped by the networks of the asking client: a container sees the names of
 * the networks it is attached to and no others. Names are case-insensitive, may
 * carry a trailing dot, and need no search domain ("web", "web.").
 *
 * SRV: each published port of an entry gives `_<containerPort>._<proto>.<name>`
 * for its name and every alias (priority 0, weight 0, port the container port,
 * target the container name), in the same scope as its A records. Docker's
 * resolver has SRV only for swarm services (`_<port name>._<proto>.<service>`);
 * ports here have no names, so the number stands for it (`_80._tcp.web`).
 *
 * Link aliases are published like network aliases (visible to every container of
 * the network), not only to the container that declared the link as Docker does.
 *
 * The agent implements `RecordSource` (it learns names from the engine); tests
 * use `StaticRecordSource`.
 */
import { EventEmitter } from 'node:events'
import { fromReverseName, isIp, normalizeIp, reverseName } from '../util/ip.js'

export interface RecordEntry {
  /** The network the endpoint is on (the id the client→networks callback returns). */
  network: string
  /** Container name: answers A/AAAA, and is the target of the PTR record. */
  name: string
  /** Network aliases, link aliases, short container id: answer A/AAAA only. */
  aliases: readonly string[]
  /** The endpoint's address on the network: IPv4, or IPv6 for an IPv6-only endpoint. */
  ip: string
  /** The IPv6 address of a dual-stack endpoint. */
  ip6?: string
  /** Published container ports (SRV records); at most MAX_SRV_PORTS are used. */
  ports?: readonly ServicePort[]
}

export interface ServicePort {
  proto: 'tcp' | 'udp'
  port: number
}

/** SRV names per entry at most (a published range of 10,000 ports gives the first 64). */
export const MAX_SRV_PORTS = 64

/** Entries that went and came: `records()` after it is `records()` before it, less `remove`, plus `add`. */
export interface RecordDelta {
  remove: readonly RecordEntry[]
  add: readonly RecordEntry[]
}

/**
 * Where a RecordSet comes from; emits 'change' whenever `records()` would
 * differ (read them all again), or 'delta' with only what changed (a remote
 * overlay endpoint published or withdrawn: no rebuild).
 */
export interface RecordSource {
  records (): readonly RecordEntry[]
  /** The same entries one at a time, when the source can give them without making the list (an index build). */
  each? (): Iterable<RecordEntry>
  on (event: 'change', listener: () => void): unknown
  off (event: 'change', listener: () => void): unknown
  on (event: 'delta', listener: (d: RecordDelta) => void): unknown
  off (event: 'delta', listener: (d: RecordDelta) => void): unknown
}

/** The data ferry holds for one name in one scope. Empty arrays for types it lacks. */
export interface NameRecords {
  a: string[]
  aaaa: string[]
  ptr: string[]
  /** `"<port> <target>"` of each SRV record. */
  srv: string[]
}

export type LocalRecordType = 'A' | 'AAAA' | 'PTR' | 'SRV'

export interface LocalAnswer {
  name: string
  type: LocalRecordType
  data: string
}

export interface ListedRecord extends LocalAnswer {
  network: string
}

const MAX_NAME = 253
const MAX_LABEL = 63

/** `Web.Example.` → `web.example`; the root is ''. */
export function normalizeName (name: string): string {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

/** Whether a (normalized) name fits in the DNS wire format. */
export function isEncodableName (name: string): boolean {
  if (name === '' || name.length > MAX_NAME) return false
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL) return false
    if (/[^\x21-\x7e]/.test(label)) return false
  }
  return true
}

/**
 * Each datum with the number of entries that give it (two entries may give one
 * name the same address): one value held once is the string itself, the
 * common case, so that 100,000 names cost no Map each.
 */
type Counted = string | Map<string, number>

function countedValues (c: Counted | undefined): string[] {
  return c === undefined ? [] : typeof c === 'string' ? [c] : [...c.keys()]
}

function countedAdd (c: Counted | undefined, v: string): Counted {
  if (c === undefined) return v
  if (typeof c === 'string') return new Map(c === v ? [[v, 2]] : [[c, 1], [v, 1]])
  c.set(v, (c.get(v) ?? 0) + 1)
  return c
}

function countedRemove (c: Counted | undefined, v: string): Counted | undefined {
  if (c === undefined || typeof c === 'string') return c === v ? undefined : c
  const n = (c.get(v) ?? 0) - 1
  if (n > 0) c.set(v, n)
  else c.delete(v)
  if (c.size === 0) return undefined
  const [only] = c
  return c.size === 1 && only !== undefined && only[1] === 1 ? only[0] : c
}

interface NameData {
  a?: Counted
  aaaa?: Counted
  srv?: Counted
}

/**
 * One network's records. A name whose only datum is one address held once (a remote
 * overlay endpoint's name: 100,000 of them) is that address's string itself, not an
 * object. PTR records are held by address (its canonical text, the entry's own string),
 * not by reverse name: `lookup` turns an in-addr.arpa / ip6.arpa name back into the
 * address, `list` the address into the name.
 */
interface NetworkIndex {
  names: Map<string, NameData | string>
  ptr: Map<string, Counted>
}

function dataOf (d: NameData | string | undefined): NameData | undefined {
  return typeof d === 'string' ? (d.includes(':') ? { aaaa: d } : { a: d }) : d
}

/** The compact form of a name's data: one address alone is its string. */
function compact (d: NameData): NameData | string | undefined {
  if (d.srv === undefined && (d.a === undefined) !== (d.aaaa === undefined)) {
    const only = d.a ?? d.aaaa
    if (typeof only === 'string') return only
  }
  return d.a === undefined && d.aaaa === undefined && d.srv === undefined ? undefined : d
}

function bump (index: NetworkIndex, name: string, kind: keyof NameData, value: string, by: 1 | -1): void {
  const had = index.names.get(name)
  if (had === undefined && by < 0) return
  // A copy: the stored object may be shared with nobody, but a string stands for it.
  const d: NameData = { ...dataOf(had) }
  const next = by > 0 ? countedAdd(d[kind], value) : countedRemove(d[kind], value)
  if (next === undefined) delete d[kind]
  else d[kind] = next
  const c = compact(d)
  if (c === undefined) index.names.delete(name)
  else index.names.set(name, c)
}

function bumpPtr (index: NetworkIndex, ip: string, primary: string, by: 1 | -1): void {
  const next = by > 0 ? countedAdd(index.ptr.get(ip), primary) : countedRemove(index.ptr.get(ip), primary)
  if (next === undefined) index.ptr.delete(ip)
  else index.ptr.set(ip, next)
}

function countAddress (index: NetworkIndex, names: string[], ip: string, primary: string, by: 1 | -1): void {
  if (!isIp(ip)) return
  const v4 = isIp(ip, 4)
  for (const n of names) bump(index, n, v4 ? 'a' : 'aaaa', ip, by)
  // The canonical text is the PTR key (what a reverse name gives back); the entry's own string when it is canonical.
  const canonical = normalizeIp(ip)
  bumpPtr(index, canonical === ip ? ip : canonical, primary, by)
}

/** A name that does not fit in DNS (a 64+ character container name) is left out; its aliases still count, and the first one answers PTR queries. */
function countEntry (index: NetworkIndex, e: RecordEntry, by: 1 | -1): void {
  const names = [e.name, ...e.aliases].map(normalizeName).filter(isEncodableName)
  const primary = names[0]
  if (primary === undefined) return
  countAddress(index, names, e.ip, primary, by)
  if (e.ip6 !== undefined) countAddress(index, names, e.ip6, primary, by)
  for (const p of srvPorts(e.ports)) {
    for (const n of names) {
      const owner = `_${p.port}._${p.proto}.${n}`
      if (isEncodableName(owner)) bump(index, owner, 'srv', `${p.port} ${primary}`, by)
    }
  }
}

/** The valid ports of an entry, each once, at most MAX_SRV_PORTS. */
function srvPorts (ports: readonly ServicePort[] | undefined): ServicePort[] {
  if (ports === undefined || ports.length === 0) return []
  const seen = new Set<string>()
  const out: ServicePort[] = []
  for (const p of ports) {
    if ((p.proto !== 'tcp' && p.proto !== 'udp') || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) continue
    const k = `${p.proto}/${p.port}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(p)
    if (out.length >= MAX_SRV_PORTS) break
  }
  return out
}

/**
 * An index of entries by network and name. Built from a list, then changed
 * entry by entry (`add`, `remove`: the cost of one entry, whatever the size).
 */
export class RecordSet {
  private constructor (private readonly byNetwork: Map<string, NetworkIndex>) {}

  /** What `net` holds for `name` (a normalized name): its addresses and SRV data, and PTR data for a reverse name. */
  private data (net: string, name: string): { a?: Counted, aaaa?: Counted, ptr?: Counted, srv?: Counted } | undefined {
    const index = this.byNetwork.get(net)
    if (index === undefined) return undefined
    const d = dataOf(index.names.get(name))
    const ip = name.endsWith('.arpa') ? fromReverseName(name) : undefined
    const ptr = ip === undefined ? undefined : index.ptr.get(ip)
    return ptr === undefined ? d : { ...d, ptr }
  }

  static from (entries: Iterable<RecordEntry>): RecordSet {
    const set = new RecordSet(new Map())
    for (const e of entries) set.add(e)
    return set
  }

  add (e: RecordEntry): void {
    let index = this.byNetwork.get(e.network)
    if (index === undefined) {
      index = { names: new Map(), ptr: new Map() }
      this.byNetwork.set(e.network, index)
    }
    countEntry(index, e, 1)
  }

  /** Remove an entry added before (the same content); one never added changes nothing. */
  remove (e: RecordEntry): void {
    const index = this.byNetwork.get(e.network)
    if (index === undefined) return
    countEntry(index, e, -1)
    if (index.names.size === 0 && index.ptr.size === 0) this.byNetwork.delete(e.network)
  }

  apply (d: RecordDelta): void {
    for (const e of d.remove) this.remove(e)
    for (const e of d.add) this.add(e)
  }

  static empty (): RecordSet {
    return RecordSet.from([])
  }

  /** Networks that have at least one record. */
  networks (): string[] {
    return [...this.byNetwork.keys()].sort()
  }

  /**
   * Everything ferry holds for `qname` as seen from `networks` (merged, each
   * address once), or undefined when no network of the scope knows the name:
   * such a name is not ferry's and is forwarded upstream.
   */
  lookup (qname: string, networks: readonly string[]): NameRecords | undefined {
    const name = normalizeName(qname)
    let found: NameRecords | undefined
    for (const net of networks) {
      const d = this.data(net, name)
      if (d === undefined) continue
      const here = { a: countedValues(d.a), aaaa: countedValues(d.aaaa), ptr: countedValues(d.ptr), srv: countedValues(d.srv) }
      if (found === undefined) {
        found = here
      } else {
        // Merged scopes: each address once.
        const f = found
        f.a = [...new Set([...f.a, ...here.a])]
        f.aaaa = [...new Set([...f.aaaa, ...here.aaaa])]
        f.ptr = [...new Set([...f.ptr, ...here.ptr])]
        f.srv = [...new Set([...f.srv, ...here.srv])]
      }
    }
    return found
  }

  /**
   * Answers of type `qtype` for `qname` in the scope. undefined: the name is not
   * ferry's (forward it); []: the name is ferry's but has no such data (NODATA).
   * `ANY` gives every type ferry holds.
   */
  resolve (qname: string, qtype: string, networks: readonly string[]): LocalAnswer[] | undefined {
    const recs = this.lookup(qname, networks)
    if (recs === undefined) return undefined
    const name = normalizeName(qname)
    const out: LocalAnswer[] = []
    const want = qtype.toUpperCase()
    if (want === 'A' || want === 'ANY') for (const data of recs.a) out.push({ name, type: 'A', data })
    if (want === 'AAAA' || want === 'ANY') for (const data of recs.aaaa) out.push({ name, type: 'AAAA', data })
    if (want === 'PTR' || want === 'ANY') for (const data of recs.ptr) out.push({ name, type: 'PTR', data })
    if (want === 'SRV' || want === 'ANY') for (const data of recs.srv) out.push({ name, type: 'SRV', data })
    return out
  }

  /** Every record, optionally of one network, sorted (for `ferry dns ls`). */
  list (network?: string): ListedRecord[] {
    const out: ListedRecord[] = []
    for (const [net, index] of this.byNetwork) {
      if (network !== undefined && net !== network) continue
      for (const [name, held] of index.names) {
        const d = dataOf(held) ?? {}
        for (const data of countedValues(d.a)) out.push({ network: net, name, type: 'A', data })
        for (const data of countedValues(d.aaaa)) out.push({ network: net, name, type: 'AAAA', data })
        for (const data of countedValues(d.srv)) out.push({ network: net, name, type: 'SRV', data })
      }
      for (const [ip, c] of index.ptr) for (const data of countedValues(c)) out.push({ network: net, name: reverseName(ip), type: 'PTR', data })
    }
    return out.sort((x, y) => x.network.localeCompare(y.network) || x.name.localeCompare(y.name) ||
      x.type.localeCompare(y.type) || x.data.localeCompare(y.data))
  }
}

/** A RecordSource holding a list given by hand (tests, `ferry dns` fixtures). */
export class StaticRecordSource extends EventEmitter implements RecordSource {
  private entries: RecordEntry[]

  constructor (entries: readonly RecordEntry[] = []) {
    super()
    this.entries = [...entries]
  }

  records (): readonly RecordEntry[] {
    return this.entries
  }

  set (entries: readonly RecordEntry[]): void {
    this.entries = [...entries]
    this.emit('change')
  }

  add (...entries: RecordEntry[]): void {
    this.set([...this.entries, ...entries])
  }

  /** Remove every entry `match` accepts. */
  remove (match: (e: RecordEntry) => boolean): void {
    this.set(this.entries.filter((e) => !match(e)))
  }

  /** Change a few entries and say only that ('delta'), as the agent does for remote overlay endpoints. */
  delta (d: RecordDelta): void {
    for (const r of d.remove) {
      const i = this.entries.findIndex((e) => JSON.stringify(e) === JSON.stringify(r))
      if (i >= 0) this.entries.splice(i, 1)
    }
    this.entries.push(...d.add)
    this.emit('delta', d)
  }
}
