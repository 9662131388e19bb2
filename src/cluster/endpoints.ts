/**
 * A compact table of an overlay's remote endpoints (issue 16: 100,000 endpoints
 * in a bounded agent). One row per endpoint, in columns instead of one object
 * with several strings each:
 *
 * - its addresses as 16 bytes each (IPv4 in the first four) with their family,
 *   in two columns (the endpoint's address and, on a dual-stack overlay, its IPv6
 *   one, a column made with the first row that has one): either family in either
 *   place, so an IPv6 endpoint or VTEP is a row like any other;
 * - its MAC as 6 bytes;
 * - its host as an index into an interned list of (host id, VTEP) pairs: one
 *   string of each per host, however many endpoints it has;
 * - its DNS names as the one string (the common case) or the array as given;
 * - any other field of the record (a newer agent's optional extra, such as
 *   published ports) in a sparse side map, given back as it came.
 *
 * The endpoint id is the only string per row (the key of the id map). Rows are
 * found by id, by address and by MAC through open-addressing indexes over the
 * columns (no key strings): several rows may share an address or a MAC (the
 * planner's duplicates). `get` rebuilds the record as an object (canonical
 * address text, MAC in lower case) for callers that want one; the hot paths read
 * the columns.
 *
 * A record that cannot be packed (an address or MAC that does not parse) is
 * refused by `set` (false): the store's client has checked every record before.
 */
import type { ClusterEndpoint } from './types.js'
import { ipString, parseIpOrUndefined, type Family } from '../util/ip.js'

const ADDR = 16
const MAC = 6
const NO_NAMES: readonly string[] = Object.freeze([])
/** The fields with columns of their own; any other goes to the sparse side map. */
const COLUMNS = new Set(['endpointId', 'ip', 'ip6', 'mac', 'hostId', 'vtep', 'names'])

/** An address parsed into `out` (16 bytes at `at`): its family, or 0 when it does not parse. */
export function packIp (ip: unknown, out: Uint8Array, at: number): Family | 0 {
  if (typeof ip !== 'string') return 0
  const p = parseIpOrUndefined(ip)
  if (p === undefined) return 0
  out.fill(0, at, at + ADDR)
  if (p.family === 4) {
    const n = Number(p.value)
    out[at] = n >>> 24; out[at + 1] = (n >>> 16) & 255; out[at + 2] = (n >>> 8) & 255; out[at + 3] = n & 255
  } else {
    let v = p.value
    for (let i = ADDR - 1; i >= 0; i--) { out[at + i] = Number(v & 0xffn); v >>= 8n }
  }
  return p.family
}

/** The text of each byte in decimal and as two hex digits, made once. */
const DEC = Array.from({ length: 256 }, (_, i) => String(i))
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * Canonical text of the address packed at `at`. Joined, not concatenated: a flat string
 * (V8 makes a chain of one object per `+` of a string of 13 characters or more, several
 * times the size of the text, and 100,000 of them are made at each full plan).
 */
export function unpackIp (family: Family, b: Uint8Array, at: number): string {
  if (family === 4) return [DEC[b[at] ?? 0], DEC[b[at + 1] ?? 0], DEC[b[at + 2] ?? 0], DEC[b[at + 3] ?? 0]].join('.')
  let v = 0n
  for (let i = 0; i < ADDR; i++) v = (v << 8n) | BigInt(b[at + i] ?? 0)
  return ipString(6, v)
}

const HEX = /^[0-9a-fA-F]{2}$/

/** A MAC `aa:bb:cc:dd:ee:ff` (any case) into 6 bytes at `at`; false when it is not one. */
export function packMac (mac: unknown, out: Uint8Array, at: number): boolean {
  if (typeof mac !== 'string' || mac.length !== 17) return false
  for (let i = 0; i < MAC; i++) {
    const h = mac.slice(i * 3, i * 3 + 2)
    if (!HEX.test(h) || (i < 5 && mac[i * 3 + 2] !== ':')) return false
    out[at + i] = parseInt(h, 16)
  }
  return true
}

/** The MAC packed at `at`, in lower case (a flat string: see unpackIp). */
export function unpackMac (b: Uint8Array, at: number): string {
  return [HEX2[b[at] ?? 0], HEX2[b[at + 1] ?? 0], HEX2[b[at + 2] ?? 0], HEX2[b[at + 3] ?? 0], HEX2[b[at + 4] ?? 0], HEX2[b[at + 5] ?? 0]].join(':')
}

/** FNV-1a over `len` bytes at `at`, salted with `salt` (the family). */
function hashBytes (b: Uint8Array, at: number, len: number, salt: number): number {
  let h = (0x811c9dc5 ^ salt) >>> 0
  for (let i = 0; i < len; i++) h = Math.imul(h ^ (b[at + i] ?? 0), 0x01000193) >>> 0
  return h
}

/**
 * A multi-map from a 32-bit hash to values (whole numbers ≥ 0), open addressing with
 * linear probing and backward-shift deletion: 4 bytes a cell and no object per entry
 * (the hash of a value is recomputed from the caller's columns, `hashOf`). The caller
 * tells equal keys apart from hash collisions (`find`'s test).
 */
export class HashSlots {
  private cells = new Int32Array(16).fill(-1)
  private count = 0

  constructor (private readonly hashOf: (value: number) => number) {}

  get size (): number { return this.count }

  add (value: number): void {
    if ((this.count + 1) * 2 > this.cells.length) this.grow()
    this.put(this.hashOf(value), value)
    this.count++
  }

  /** Remove `value` (whose hash must still be what it was when added); false when it is not there. */
  delete (value: number): boolean {
    const mask = this.cells.length - 1
    let i = this.hashOf(value) & mask
    for (;;) {
      const c = this.cells[i] ?? -1
      if (c === -1) return false
      if (c === value) break
      i = (i + 1) & mask
    }
    // Backward shift: move later entries of the run into the hole when their home allows it.
    let j = i
    for (;;) {
      j = (j + 1) & mask
      const c = this.cells[j] ?? -1
      if (c === -1) break
      const home = this.hashOf(c) & mask
      const between = i <= j ? home > i && home <= j : home > i || home <= j
      if (between) continue
      this.cells[i] = c
      i = j
    }
    this.cells[i] = -1
    this.count--
    return true
  }

  /** The first value in `hash`'s run that `test` accepts (-1: none). */
  find (hash: number, test: (value: number) => boolean): number {
    const mask = this.cells.length - 1
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const c = this.cells[i] ?? -1
      if (c === -1) return -1
      if (test(c)) return c
    }
  }

  /** Every value in `hash`'s run that `test` accepts. */
  all (hash: number, test: (value: number) => boolean): number[] {
    const out: number[] = []
    const mask = this.cells.length - 1
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const c = this.cells[i] ?? -1
      if (c === -1) return out
      if (test(c)) out.push(c)
    }
  }

  /** Room for `n` values in all without growing (a grow re-inserts every value into cells twice as many). */
  reserve (n: number): void {
    if (n * 2 <= this.cells.length) return
    let size = this.cells.length
    while (size < n * 2) size *= 2
    this.grow(size)
  }

  private put (hash: number, value: number): void {
    const mask = this.cells.length - 1
    let i = hash & mask
    while (this.cells[i] !== -1) i = (i + 1) & mask
    this.cells[i] = value
  }

  private grow (size = this.cells.length * 2): void {
    const cells = this.cells
    this.cells = new Int32Array(size).fill(-1)
    for (const c of cells) if (c !== -1) this.put(this.hashOf(c), c)
  }
}

/** One (host id, VTEP) pair per host, counted by the rows that use it. */
class Hosts {
  private readonly index = new Map<string, number>()
  readonly hostIds: string[] = []
  readonly vteps: string[] = []
  private readonly uses: number[] = []
  private readonly free: number[] = []

  take (hostId: string, vtep: string): number {
    const key = `${hostId}\n${vtep}`
    let i = this.index.get(key)
    if (i === undefined) {
      i = this.free.pop() ?? this.hostIds.length
      this.index.set(key, i)
      this.hostIds[i] = hostId
      this.vteps[i] = vtep
      this.uses[i] = 0
    }
    this.uses[i] = (this.uses[i] ?? 0) + 1
    return i
  }

  release (i: number): void {
    const n = (this.uses[i] ?? 1) - 1
    this.uses[i] = n
    if (n > 0) return
    this.index.delete(`${this.hostIds[i] ?? ''}\n${this.vteps[i] ?? ''}`)
    this.hostIds[i] = ''
    this.vteps[i] = ''
    this.free.push(i)
  }

  get count (): number { return this.index.size }
}

/** An address key: which row, and which of its two addresses (0: `ip`, 1: `ip6`). */
function addrKey (slot: number, which: 0 | 1): number { return slot * 2 + which }

export class EndpointTable {
  private readonly slotOf = new Map<string, number>()
  private ids: Array<string | undefined> = []
  private names: Array<string | readonly string[] | undefined> = []
  private host = new Uint32Array(0)
  /** The row's `ip`, 16 bytes (an IPv4 address in the first four). */
  private addrs = new Uint8Array(0)
  /** Its `ip6`, 16 bytes: made with the first row that has one (an IPv4-only overlay has none). */
  private addrs6: Uint8Array | undefined
  /** The family of each address (0: none). */
  private fams = new Uint8Array(0)
  private macs = new Uint8Array(0)
  private readonly extra = new Map<number, Record<string, unknown>>()
  private readonly free: number[] = []
  private readonly hosts = new Hosts()
  private readonly byAddr = new HashSlots((k) => this.addrHash(k >> 1, (k & 1) as 0 | 1))
  private readonly byMac = new HashSlots((slot) => hashBytes(this.macs, slot * MAC, MAC, 0))
  /** Scratch space for a looked-up address or MAC. */
  private readonly probe = new Uint8Array(ADDR)

  get size (): number { return this.slotOf.size }

  /** Rows allocated: every row number is below it. */
  get capacity (): number { return this.host.length }

  /** Hosts (host id and VTEP pairs) in use: one string of each per host. */
  get hostCount (): number { return this.hosts.count }

  has (endpointId: string): boolean { return this.slotOf.has(endpointId) }

  /** The row of an endpoint (-1: unknown). */
  slot (endpointId: string): number { return this.slotOf.get(endpointId) ?? -1 }

  /** Add or replace the endpoint's row; false (and nothing changed) when its addresses or MAC do not parse. */
  set (e: ClusterEndpoint): boolean {
    const scratch = new Uint8Array(ADDR * 2 + MAC)
    const f0 = packIp(e.ip, scratch, 0)
    const f1 = e.ip6 === undefined ? 0 : packIp(e.ip6, scratch, ADDR)
    if (f0 === 0 || (e.ip6 !== undefined && f1 === 0) || !packMac(e.mac, scratch, ADDR * 2)) return false
    const slot = this.newRow(e.endpointId, e.hostId, e.vtep)
    this.addrs.set(scratch.subarray(0, ADDR), slot * ADDR)
    if (f1 !== 0) {
      this.addrs6 ??= new Uint8Array(this.host.length * ADDR)
      this.addrs6.set(scratch.subarray(ADDR, ADDR * 2), slot * ADDR)
    }
    this.fams[slot * 2] = f0
    this.fams[slot * 2 + 1] = f1
    this.macs.set(scratch.subarray(ADDR * 2), slot * MAC)
    const names = e.names
    // Written only when there are names (the planner's table has none: no array of them at all).
    if (names !== undefined || slot < this.names.length) this.names[slot] = names === undefined ? undefined : names.length === 0 ? NO_NAMES : names.length === 1 ? names[0] : names
    let more: Record<string, unknown> | undefined
    for (const [k, v] of Object.entries(e)) if (!COLUMNS.has(k) && v !== undefined) (more ??= {})[k] = v
    if (more) this.extra.set(slot, more)
    this.indexRow(slot)
    return true
  }

  /**
   * Add every row of `from` (replacing rows of the same ids) as it is: addresses, MAC and host copied
   * as bytes, nothing parsed or spelled again; names and other fields stay behind. The planner loads a
   * full plan's peers this way (at 100,000, no record made and packed again per peer).
   */
  copyRows (from: EndpointTable): void {
    this.reserve(this.size + from.size, this.byAddr.size + from.byAddr.size)
    for (const s of from.slotOf.values()) {
      const h = from.host[s] ?? 0
      const slot = this.newRow(from.ids[s] ?? '', from.hosts.hostIds[h] ?? '', from.hosts.vteps[h] ?? '')
      const f1 = from.family(s, 1)
      this.addrs.set(from.addrs.subarray(s * ADDR, s * ADDR + ADDR), slot * ADDR)
      if (f1 !== 0 && from.addrs6) {
        this.addrs6 ??= new Uint8Array(this.host.length * ADDR)
        this.addrs6.set(from.addrs6.subarray(s * ADDR, s * ADDR + ADDR), slot * ADDR)
      }
      this.fams[slot * 2] = from.family(s, 0)
      this.fams[slot * 2 + 1] = f1
      this.macs.set(from.macs.subarray(s * MAC, s * MAC + MAC), slot * MAC)
      if (slot < this.names.length) this.names[slot] = undefined
      this.indexRow(slot)
    }
  }

  /** A row for `endpointId` (its previous one gone), with its host; the rest is the caller's to fill, then indexRow. */
  private newRow (endpointId: string, hostId: string, vtep: string): number {
    this.delete(endpointId)
    const slot = this.free.pop() ?? this.ids.length
    if (slot >= this.host.length) this.grow(Math.max(64, this.host.length * 2))
    this.slotOf.set(endpointId, slot)
    this.ids[slot] = endpointId
    this.host[slot] = this.hosts.take(hostId, vtep)
    return slot
  }

  /** A filled row into the address and MAC indexes. */
  private indexRow (slot: number): void {
    this.byAddr.add(addrKey(slot, 0))
    if (this.fams[slot * 2 + 1] !== 0) this.byAddr.add(addrKey(slot, 1))
    this.byMac.add(slot)
  }

  /** Remove the endpoint's row; false when it had none. */
  delete (endpointId: string): boolean {
    const slot = this.slotOf.get(endpointId)
    if (slot === undefined) return false
    this.byAddr.delete(addrKey(slot, 0))
    if (this.fams[slot * 2 + 1] !== 0) this.byAddr.delete(addrKey(slot, 1))
    this.byMac.delete(slot)
    this.hosts.release(this.host[slot] ?? 0)
    this.slotOf.delete(endpointId)
    this.ids[slot] = undefined
    if (slot < this.names.length) this.names[slot] = undefined
    this.extra.delete(slot)
    this.fams[slot * 2] = 0
    this.fams[slot * 2 + 1] = 0
    this.free.push(slot)
    return true
  }

  clear (): void {
    for (const id of [...this.slotOf.keys()]) this.delete(id)
  }

  /** The endpoint as a record (undefined: unknown). */
  get (endpointId: string): ClusterEndpoint | undefined {
    const slot = this.slotOf.get(endpointId)
    return slot === undefined ? undefined : this.row(slot)
  }

  /** The record of a row. */
  row (slot: number): ClusterEndpoint {
    const h = this.host[slot] ?? 0
    const e: ClusterEndpoint = { endpointId: this.ids[slot] ?? '', ip: this.ip(slot), mac: this.mac(slot), hostId: this.hosts.hostIds[h] ?? '', vtep: this.hosts.vteps[h] ?? '' }
    const ip6 = this.ip6(slot)
    if (ip6 !== undefined) e.ip6 = ip6
    const names = this.names[slot]
    if (names !== undefined) e.names = typeof names === 'string' ? [names] : [...names]
    const more = this.extra.get(slot)
    return more ? { ...e, ...more } : e
  }

  /** Every row in use, in no particular order. */
  * slots (): Generator<number> {
    for (const slot of this.slotOf.values()) yield slot
  }

  /** Every endpoint as a record (made one at a time). */
  * values (): Generator<ClusterEndpoint> {
    for (const slot of this.slotOf.values()) yield this.row(slot)
  }

  endpointId (slot: number): string { return this.ids[slot] ?? '' }
  hostId (slot: number): string { return this.hosts.hostIds[this.host[slot] ?? 0] ?? '' }
  vtep (slot: number): string { return this.hosts.vteps[this.host[slot] ?? 0] ?? '' }
  ip (slot: number): string { return unpackIp(this.family(slot, 0) || 4, this.addrs, slot * ADDR) }
  ip6 (slot: number): string | undefined {
    const f = this.family(slot, 1)
    return f === 0 || this.addrs6 === undefined ? undefined : unpackIp(f, this.addrs6, slot * ADDR)
  }

  mac (slot: number): string { return unpackMac(this.macs, slot * MAC) }
  /** Copy row `slot`'s MAC (6 bytes) into `out` at `at`. */
  copyMac (slot: number, out: Uint8Array, at: number): void { out.set(this.macs.subarray(slot * MAC, slot * MAC + MAC), at) }
  /** Copy address `which` of row `slot` into `out` at `at`, in its own length: that length (4 or 16), 0 when the row has none. */
  copyAddr (slot: number, which: 0 | 1, out: Uint8Array, at: number): 0 | 4 | 16 {
    const f = this.family(slot, which)
    if (f === 0) return 0
    const len = f === 4 ? 4 : 16
    out.set(this.addrBytes(which).subarray(slot * ADDR, slot * ADDR + len), at)
    return len
  }

  family (slot: number, which: 0 | 1): Family | 0 { return (this.fams[slot * 2 + which] ?? 0) as Family | 0 }

  /** The rows holding `ip` (as their `ip` or `ip6`). */
  slotsWithIp (ip: string): number[] {
    return this.addrKeysWithIp(ip).map((k) => k >> 1)
  }

  /** The addresses equal to `ip`, each as its row times 2 plus which of the row's two it is (0: `ip`, 1: `ip6`). */
  addrKeysWithIp (ip: string): number[] {
    const f = packIp(ip, this.probe, 0)
    return f === 0 ? [] : this.addrKeysProbed(f)
  }

  /** `addrKeysWithIp` of an address of family `f` packed at the start of `b` (as packIp packs it). */
  addrKeysWithPacked (f: Family, b: Uint8Array): number[] {
    this.probe.set(b.subarray(0, ADDR))
    return this.addrKeysProbed(f)
  }

  private addrKeysProbed (f: Family): number[] {
    return this.byAddr.all(hashBytes(this.probe, 0, ADDR, f), (k) => this.addrEquals(k, f))
  }

  /** A row holding `ip` (-1: none). */
  slotWithIp (ip: string): number {
    const f = packIp(ip, this.probe, 0)
    if (f === 0) return -1
    const k = this.byAddr.find(hashBytes(this.probe, 0, ADDR, f), (k) => this.addrEquals(k, f))
    return k < 0 ? -1 : k >> 1
  }

  /** The rows with this MAC (any case). */
  slotsWithMac (mac: string): number[] {
    if (!packMac(mac, this.probe, 0)) return []
    return this.byMac.all(hashBytes(this.probe, 0, MAC, 0), (s) => this.macEquals(s))
  }

  /** The rows with the same MAC as row `slot` (itself included). */
  slotsWithMacOf (slot: number): number[] {
    this.probe.set(this.macs.subarray(slot * MAC, slot * MAC + MAC))
    return this.byMac.all(hashBytes(this.probe, 0, MAC, 0), (s) => this.macEquals(s))
  }

  /** The rows that share address `which` of row `slot` (itself included). */
  slotsWithIpOf (slot: number, which: 0 | 1): number[] {
    const f = this.family(slot, which)
    if (f === 0) return []
    const at = slot * ADDR
    this.probe.set(this.addrBytes(which).subarray(at, at + ADDR))
    return this.byAddr.all(hashBytes(this.probe, 0, ADDR, f), (k) => this.addrEquals(k, f)).map((k) => k >> 1)
  }

  /** The column of address `which` (0: `ip`, 1: `ip6`). */
  private addrBytes (which: 0 | 1): Uint8Array {
    return which === 0 ? this.addrs : this.addrs6 ?? this.addrs
  }

  private addrHash (slot: number, which: 0 | 1): number {
    return hashBytes(this.addrBytes(which), slot * ADDR, ADDR, this.family(slot, which))
  }

  private addrEquals (k: number, f: number): boolean {
    const slot = k >> 1
    const which = (k & 1) as 0 | 1
    if (this.fams[slot * 2 + which] !== f) return false
    const b = this.addrBytes(which)
    const at = slot * ADDR
    for (let i = 0; i < ADDR; i++) if (b[at + i] !== this.probe[i]) return false
    return true
  }

  private macEquals (slot: number): boolean {
    for (let i = 0; i < MAC; i++) if (this.macs[slot * MAC + i] !== this.probe[i]) return false
    return true
  }

  /**
   * Make room for `rows` rows in all, columns and indexes (a caller that knows how many are coming: no
   * doubling of each on the way, which holds the old and the new copy at once).
   */
  reserve (rows: number, addresses = rows): void {
    if (rows > this.host.length) this.grow(rows)
    this.byAddr.reserve(addresses)
    this.byMac.reserve(rows)
  }

  private grow (rows: number): void {
    const host = new Uint32Array(rows); host.set(this.host); this.host = host
    const addrs = new Uint8Array(rows * ADDR); addrs.set(this.addrs); this.addrs = addrs
    if (this.addrs6) { const addrs6 = new Uint8Array(rows * ADDR); addrs6.set(this.addrs6); this.addrs6 = addrs6 }
    const fams = new Uint8Array(rows * 2); fams.set(this.fams); this.fams = fams
    const macs = new Uint8Array(rows * MAC); macs.set(this.macs); this.macs = macs
  }
}

/**
 * The address claims of a full read, checked against the table its endpoints are packed into as
 * both arrive (the two hashes are read at once, in pages): a claim of an address that a row of the
 * same endpoint holds marks that address of the row at once; any other claim waits, by its
 * canonical address, for a row that takes it. No list or map of every claim is kept (at 100,000
 * endpoints, ~15 MiB during a full read): at the end, a row whose addresses are all marked is
 * claimed by its own endpoint, and the map holds only the claims no row took (addresses claimed by
 * an endpoint that is not in the table, or by another than the row that holds them).
 */
export class ClaimMarks {
  /** Per row: bit 0, its `ip` claimed by its own endpoint; bit 1, its `ip6`. */
  private marks = new Uint8Array(0)
  /** Claims no row took (yet): canonical address → endpoint id. */
  readonly unmatched = new Map<string, string>()
  private readonly scratch = new Uint8Array(ADDR)

  constructor (readonly table: EndpointTable) {}

  /**
   * A claim as read (one that does not parse holds nothing). A claim read twice (HSCAN may return a field
   * again, changed meanwhile) counts for each copy it matched, where the map of before kept the last: the
   * changes made during the read are applied after it (PeerSync), which settles such an address.
   */
  claim (ip: string, endpointId: string): void {
    const t = this.table
    const f = packIp(ip, this.scratch, 0)
    if (f === 0) return
    for (const k of t.addrKeysWithPacked(f, this.scratch)) {
      if (t.endpointId(k >> 1) === endpointId) { this.mark(k >> 1, k & 1); return }
    }
    this.unmatched.set(unpackIp(f, this.scratch, 0), endpointId)
  }

  /**
   * Add or replace the endpoint's row (EndpointTable.set; false: it did not pack); its addresses take
   * the claims waiting for them. The claims a replaced row had taken wait again.
   */
  set (e: ClusterEndpoint): boolean {
    const t = this.table
    const old = t.slot(e.endpointId)
    if (old >= 0) {
      for (const which of [0, 1] as const) if (((this.marks[old] ?? 0) >> which) & 1) this.unmatched.set(this.ipOf(old, which), e.endpointId)
      this.marks[old] = 0
    }
    const ok = t.set(e)
    // Refused, the old row stays: it takes its claims back.
    const slot = t.slot(e.endpointId)
    if (slot >= 0) this.take(slot, ok ? e : undefined)
    return ok
  }

  /** Per row of the table, how many of its addresses its own endpoint's claims cover (0, 1 or 2). */
  counts (): Uint8Array {
    const out = new Uint8Array(this.table.capacity)
    for (const slot of this.table.slots()) { const m = this.marks[slot] ?? 0; out[slot] = (m & 1) + ((m >> 1) & 1) }
    return out
  }

  /** Every claim read: the rows' own (their addresses, canonical) and the ones no row took. */
  * claims (): Generator<{ ip: string, endpointId: string }> {
    const t = this.table
    for (const slot of t.slots()) {
      const m = this.marks[slot] ?? 0
      for (const which of [0, 1] as const) if ((m >> which) & 1) yield { ip: this.ipOf(slot, which), endpointId: t.endpointId(slot) }
    }
    for (const [ip, endpointId] of this.unmatched) yield { ip, endpointId }
  }

  /**
   * The claims waiting for row `slot`'s addresses (its own endpoint's), taken. `e`: the record the row
   * was just set from, whose addresses are the row's text when canonical (as the store's client
   * gives them: it refuses a stored address that is not), so no text is made per row.
   */
  private take (slot: number, e?: ClusterEndpoint): void {
    const t = this.table
    if (slot < this.marks.length) this.marks[slot] = 0
    if (this.unmatched.size === 0) return
    for (const which of [0, 1] as const) {
      if (t.family(slot, which) === 0) continue
      const ip = (which === 0 ? e?.ip : e?.ip6) ?? this.ipOf(slot, which)
      if (this.unmatched.get(ip) !== t.endpointId(slot)) continue
      this.unmatched.delete(ip)
      this.mark(slot, which)
    }
  }

  private ipOf (slot: number, which: 0 | 1): string {
    return which === 0 ? this.table.ip(slot) : this.table.ip6(slot) ?? ''
  }

  private mark (slot: number, which: number): void {
    if (slot >= this.marks.length) { const m = new Uint8Array(this.table.capacity); m.set(this.marks); this.marks = m }
    this.marks[slot] = (this.marks[slot] ?? 0) | (1 << which)
  }
}
