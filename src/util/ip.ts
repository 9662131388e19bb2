/**
 * The one IP module: address and CIDR parsing, formatting and arithmetic for IPv4 and
 * IPv6, shared by every folder (IPAM, bridge, NAT, overlay, DNS, runtime, CNI, cluster).
 * Parsing of IPv6 text is `ip-num`'s (its validator and IPv6 value); the arithmetic is on
 * `bigint` for both families, so every caller has one code path whatever the family.
 *
 * Conventions:
 * - An address string is canonical when it is what `formatIp` prints: IPv4 as a dotted
 *   quad without leading zeros, IPv6 in RFC 5952 form (lower case, the longest run of two
 *   or more zero groups compressed, the first of equal runs). Parsers accept any valid
 *   spelling (`FD00:0::A`), refuse zone ids (`fe80::1%eth0`) and surrounding spaces.
 * - A "CIDR" is `address/n`; canonical when its host bits are zero. Functions that take a
 *   CIDR accept a non-canonical one and use its network (like Go's net.ParseCIDR).
 * - Parse errors throw a FerryError INVALID_CIDR with a sentence naming the input; the
 *   boolean helpers (`isIp`, `isCidr`) and the `…OrUndefined` parsers never throw.
 */
import { IPv6, Validator } from 'ip-num'
import { ferryError } from '../errors/errors.js'

export type Family = 4 | 6

/** A parsed address. */
export interface Ip {
  family: Family
  value: bigint
}

/** A parsed CIDR: network address (host bits cleared), prefix length and family. */
export interface Cidr {
  family: Family
  network: bigint
  prefix: number
}

/** Address width in bits: 32 or 128. */
export function bitsOf (family: Family): number {
  return family === 4 ? 32 : 128
}

const V6_CHARS = /^[0-9a-fA-F:.]+$/

/**
 * A dotted quad, by hand (no split, no regular expression: it runs for every address a
 * 100,000-endpoint resync reads): four decimal octets of 1 to 3 digits, no leading zero, ≤ 255.
 */
function parseV4 (ip: string): bigint | undefined {
  const len = ip.length
  if (len < 7 || len > 15) return undefined
  let n = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < len; i++) {
    const c = ip.charCodeAt(i)
    if (c === 46) { // '.'
      if (digits === 0 || ++dots > 3) return undefined
      n = n * 256 + octet
      octet = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined // a leading zero
      octet = octet * 10 + (c - 48)
      if (++digits > 3 || octet > 255) return undefined
    } else {
      return undefined
    }
  }
  if (dots !== 3 || digits === 0) return undefined
  return BigInt(n * 256 + octet)
}

function parseV6 (ip: string): bigint | undefined {
  if (ip.length < 2 || ip.length > 45 || !V6_CHARS.test(ip) || !ip.includes(':')) return undefined
  if (!(Validator.isValidIPv6String(ip)[0] ?? false)) return undefined
  try {
    return IPv6.fromString(ip).getValue()
  } catch {
    return undefined // the validator and the parser disagree: treat as invalid
  }
}

/** `10.0.0.1` → { family: 4, value: 167772161n }; `fd00::1` → { family: 6, … }; undefined for anything else. */
export function parseIpOrUndefined (ip: string): Ip | undefined {
  if (typeof ip !== 'string') return undefined
  if (ip.includes(':')) {
    const value = parseV6(ip)
    return value === undefined ? undefined : { family: 6, value }
  }
  const value = parseV4(ip)
  return value === undefined ? undefined : { family: 4, value }
}

/** Parse an address of either family (or of `family` when given). Throws INVALID_CIDR. */
export function parseIp (ip: string, family?: Family): Ip {
  const p = parseIpOrUndefined(ip)
  if (p === undefined || (family !== undefined && p.family !== family)) {
    throw ferryError('INVALID_CIDR', `"${String(ip)}" is not a valid ${familyName(family)} address`)
  }
  return p
}

/** 'IPv4', 'IPv6', or 'IP' when no family is given. */
export function familyName (family?: Family): string {
  return family === undefined ? 'IP' : `IPv${family}`
}

/** The family of an address or CIDR string, or undefined when it is neither. */
export function familyOf (text: string): Family | undefined {
  return parseIpOrUndefined(text)?.family ?? parseCidrOrUndefined(text)?.ip.family
}

/** True when `ip` is an address (of `family` when given). */
export function isIp (ip: string, family?: Family): boolean {
  const p = parseIpOrUndefined(ip)
  return p !== undefined && (family === undefined || p.family === family)
}

/** Canonical text of an address (see the module comment). */
export function formatIp (ip: Ip): string {
  return ipString(ip.family, ip.value)
}

/** Canonical text of the address `value` of `family`. */
export function ipString (family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value)
    return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`
  }
  const groups: number[] = []
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn))
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first of equal runs.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

/** An address's value (either family, or `family` when given). Throws INVALID_CIDR. */
export function ipValue (ip: string, family?: Family): bigint {
  return parseIp(ip, family).value
}

/** Canonical spelling of an address. Throws INVALID_CIDR. */
export function normalizeIp (ip: string, family?: Family): string {
  return formatIp(parseIp(ip, family))
}

/** Address as bytes in network order (4 or 16): what netlink and DNS put on the wire. */
export function ipToBytes (ip: string): Buffer {
  const p = parseIp(ip)
  const len = p.family === 4 ? 4 : 16
  const out = Buffer.alloc(len)
  let v = p.value
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

/** Bytes in network order (4 or 16) → canonical address text; undefined for another length. */
export function ipFromBytes (bytes: Uint8Array): string | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  return ipString(bytes.length === 4 ? 4 : 6, v)
}

/** The netmask of a prefix length as a value (/0 → 0, /24 in IPv4 → 0xffffff00). */
export function maskOf (family: Family, prefix: number): bigint {
  const bits = BigInt(bitsOf(family))
  const all = (1n << bits) - 1n
  return prefix === 0 ? 0n : (all << (bits - BigInt(prefix))) & all
}

/** Parse `address/n` (either family); undefined when it is not one. Host bits are kept in `ip`. */
export function parseCidrOrUndefined (cidr: string): { ip: Ip, prefix: number } | undefined {
  if (typeof cidr !== 'string') return undefined
  const slash = cidr.indexOf('/')
  if (slash < 0) return undefined
  const ip = parseIpOrUndefined(cidr.slice(0, slash))
  const p = cidr.slice(slash + 1)
  if (ip === undefined || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined
  const prefix = Number(p)
  if (prefix > bitsOf(ip.family)) return undefined
  return { ip, prefix }
}

/** True when `cidr` is `address/n` (canonical or not), of `family` when given. */
export function isCidr (cidr: string, family?: Family): boolean {
  const c = parseCidrOrUndefined(cidr)
  return c !== undefined && (family === undefined || c.ip.family === family)
}

/** CIDRs parsed lately (the same few subnets are checked against every address of a resync); cleared when full. */
const parsedCidrs = new Map<string, Cidr>()
const PARSED_CIDRS_MAX = 256

/** Parse a CIDR; the result's network has the host bits cleared. Throws INVALID_CIDR. */
export function parseCidr (cidr: string, family?: Family): Cidr {
  const hit = parsedCidrs.get(cidr)
  if (hit !== undefined && (family === undefined || hit.family === family)) return { ...hit }
  const parsed = parseCidrUncached(cidr, family)
  if (parsedCidrs.size >= PARSED_CIDRS_MAX) parsedCidrs.clear()
  parsedCidrs.set(cidr, parsed)
  return { ...parsed }
}

function parseCidrUncached (cidr: string, family?: Family): Cidr {
  const c = parseCidrOrUndefined(cidr)
  if (c === undefined || (family !== undefined && c.ip.family !== family)) {
    const example = family === 6 ? 'fd00:1::/64, n from 0 to 128' : family === 4 ? 'a.b.c.d/n with n from 0 to 32' : 'a.b.c.d/n or fd00:1::/64'
    throw ferryError('INVALID_CIDR', `"${String(cidr)}" is not a valid ${familyName(family)} CIDR (expected ${example})`)
  }
  const f = c.ip.family
  return { family: f, network: c.ip.value & maskOf(f, c.prefix), prefix: c.prefix }
}

/** Format a parsed CIDR. */
export function formatCidr (c: Cidr): string {
  return `${ipString(c.family, c.network)}/${c.prefix}`
}

/** `10.20.0.5/24` → `10.20.0.0/24`; `FD00:1::5/64` → `fd00:1::/64`. */
export function canonical (cidr: string): string {
  return formatCidr(parseCidr(cidr))
}

/** True when the host bits of `cidr` are zero and it is spelled canonically. Throws INVALID_CIDR. */
export function isCanonical (cidr: string): boolean {
  return canonical(cidr) === cidr
}

export function prefixLen (cidr: string): number {
  return parseCidr(cidr).prefix
}

/** Number of addresses in a block of `prefix` in `family` (2^(bits-prefix)). */
export function blockSize (family: Family, prefix: number): bigint {
  return 1n << BigInt(bitsOf(family) - prefix)
}

/** An inclusive range of address values. */
export interface Range {
  first: bigint
  last: bigint
}

/** First and last address of the block as values (network and broadcast in IPv4). */
export function bounds (cidr: string | Cidr): Range {
  const c = typeof cidr === 'string' ? parseCidr(cidr) : cidr
  return { first: c.network, last: c.network + blockSize(c.family, c.prefix) - 1n }
}

export function networkAddress (cidr: string): string {
  const c = parseCidr(cidr)
  return ipString(c.family, c.network)
}

/** The block's last address (IPv4's broadcast address). */
export function lastAddress (cidr: string): string {
  const c = parseCidr(cidr)
  return ipString(c.family, bounds(c).last)
}

/**
 * First address a host may use: network + 1 (IPv6's network address is the subnet-router
 * anycast address); for IPv4 /31 (RFC 3021) and /32, and IPv6 /127 (RFC 6164) and /128,
 * the block's first address.
 */
export function firstHost (cidr: string): string {
  const c = parseCidr(cidr)
  return ipString(c.family, c.prefix >= bitsOf(c.family) - 1 ? c.network : c.network + 1n)
}

/** Last address a host may use: IPv4's broadcast - 1 (the block's last for /31 and /32); IPv6's last address. */
export function lastHost (cidr: string): string {
  const c = parseCidr(cidr)
  const { last } = bounds(c)
  return ipString(c.family, c.family === 6 || c.prefix >= 31 ? last : last - 1n)
}

/** True when the address `ip` lies inside `cidr` (false when the families differ). */
export function contains (cidr: string, ip: string): boolean {
  const c = parseCidr(cidr)
  const p = parseIp(ip)
  return p.family === c.family && (p.value & maskOf(c.family, c.prefix)) === c.network
}

/** True when every address of `inner` lies inside `outer` (a block contains itself; false across families). */
export function containsCidr (outer: string, inner: string): boolean {
  const o = parseCidr(outer)
  const i = parseCidr(inner)
  return o.family === i.family && i.prefix >= o.prefix && (i.network & maskOf(o.family, o.prefix)) === o.network
}

/** True when the two blocks share at least one address (never across families). */
export function overlaps (a: string, b: string): boolean {
  const ca = parseCidr(a)
  const cb = parseCidr(b)
  return ca.family === cb.family && rangesOverlap(bounds(ca), bounds(cb))
}

/** True when the ranges share at least one address. */
export function rangesOverlap (a: Range, b: Range): boolean {
  return a.first <= b.last && b.first <= a.last
}

/** `('10.0.0.5', 24)` → `10.0.0.5/24`; the address is canonicalised. Throws INVALID_CIDR. */
export function withPrefix (ip: string, prefix: number): string {
  return `${normalizeIp(ip)}/${prefix}`
}

/**
 * Split an address that may carry a prefix: `10.0.0.5` → `{ ip: '10.0.0.5', family: 4 }`,
 * `fd00::5/64` → `{ ip: 'fd00::5', prefix: 64, family: 6 }`. Throws INVALID_CIDR.
 * (The engine sends bare IPs to IPAM but CIDRs to the network driver.)
 */
export function parseAddress (address: string, family?: Family): { ip: string, prefix?: number, family: Family } {
  if (typeof address === 'string' && !address.includes('/')) {
    const p = parseIp(address, family)
    return { ip: formatIp(p), family: p.family }
  }
  const c = parseCidrOrUndefined(address)
  if (c === undefined || (family !== undefined && c.ip.family !== family)) {
    throw ferryError('INVALID_CIDR', `"${String(address)}" is not a valid ${familyName(family)} address`)
  }
  return { ip: formatIp(c.ip), prefix: c.prefix, family: c.ip.family }
}

/** The prefix length of `address/n`, or the full width for a bare address (32 or 128). */
export function prefixOf (cidr: string): number {
  const slash = cidr.indexOf('/')
  if (slash >= 0) return Number(cidr.slice(slash + 1))
  return cidr.includes(':') ? 128 : 32
}

/** The address part of `address/n` (the text itself when there is no prefix). */
export function addrOf (cidr: string): string {
  const slash = cidr.indexOf('/')
  return slash < 0 ? cidr : cidr.slice(0, slash)
}

/** Compare two addresses for sorting: IPv4 before IPv6, then by value. Throws INVALID_CIDR. */
export function compareIps (a: string, b: string): number {
  const pa = parseIp(a)
  const pb = parseIp(b)
  if (pa.family !== pb.family) return pa.family - pb.family
  return pa.value < pb.value ? -1 : pa.value > pb.value ? 1 : 0
}

/** The reverse-lookup name: 10.0.0.2 → 2.0.0.10.in-addr.arpa; fd00::1 → 1.0.0.0.…0.d.f.ip6.arpa. Throws INVALID_CIDR. */
export function reverseName (ip: string): string {
  const p = parseIp(ip)
  if (p.family === 4) return `${formatIp(p).split('.').reverse().join('.')}.in-addr.arpa`
  return `${p.value.toString(16).padStart(32, '0').split('').reverse().join('.')}.ip6.arpa`
}

/**
 * The address a reverse-lookup name stands for, or undefined when the name is not a whole
 * address under in-addr.arpa or ip6.arpa (case-insensitive, with or without the final dot).
 */
export function fromReverseName (name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '')
  if (n.endsWith('.in-addr.arpa')) {
    const labels = n.slice(0, -'.in-addr.arpa'.length).split('.')
    if (labels.length !== 4) return undefined
    const p = parseIpOrUndefined(labels.reverse().join('.'))
    return p === undefined ? undefined : formatIp(p)
  }
  if (n.endsWith('.ip6.arpa')) {
    const labels = n.slice(0, -'.ip6.arpa'.length).split('.')
    if (labels.length !== 32 || !labels.every((l) => /^[0-9a-f]$/.test(l))) return undefined
    return ipString(6, BigInt(`0x${labels.reverse().join('')}`))
  }
  return undefined
}
