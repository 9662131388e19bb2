/**
 * IPv4 address and CIDR arithmetic on unsigned 32-bit integers, shared by IPAM,
 * bridge and overlay code. Everything here is pure. Parsing is strict (four decimal
 * octets, no leading zeros, prefix 0-32) and throws a FerryError INVALID_CIDR with
 * a sentence naming the bad input; the boolean helpers (`isIp`, `isCidr`) never throw.
 *
 * Conventions: a "CIDR" is `a.b.c.d/n`; "canonical" means the host bits are zero
 * (`10.20.0.0/24`, not `10.20.0.5/24`). Functions that take a CIDR accept a
 * non-canonical one and use its network (like Go's net.ParseCIDR).
 */
import { ferryError } from '../errors/errors.js'

/** A parsed CIDR: network address (host bits cleared) and prefix length. */
export interface Cidr {
  network: number
  prefix: number
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/

/** `10.0.0.1` → 167772161, or undefined for anything but a dotted quad. */
export function parseIpOrUndefined (ip: string): number | undefined {
  const parts = ip.split('.')
  if (parts.length !== 4) return undefined
  let n = 0
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined
    const v = Number(part)
    if (v > 255) return undefined
    n = n * 256 + v
  }
  return n
}

/** True when `ip` is a dotted-quad IPv4 address. */
export function isIp (ip: string): boolean {
  return parseIpOrUndefined(ip) !== undefined
}

/** `10.0.0.1` → 167772161. Throws INVALID_CIDR on anything but a dotted quad. */
export function ipToInt (ip: string): number {
  const n = parseIpOrUndefined(ip)
  if (n === undefined) throw ferryError('INVALID_CIDR', `"${ip}" is not a valid IPv4 address`)
  return n
}

/** 167772161 → `10.0.0.1`. */
export function intToIp (n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** The netmask of a prefix length as an unsigned integer (/0 → 0, /24 → 0xffffff00). */
export function maskOf (prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

function parseCidrOrUndefined (cidr: string): { ip: number, prefix: number } | undefined {
  const slash = cidr.indexOf('/')
  if (slash < 0) return undefined
  const ip = parseIpOrUndefined(cidr.slice(0, slash))
  const p = cidr.slice(slash + 1)
  if (ip === undefined || !/^(0|[1-9][0-9]?)$/.test(p)) return undefined
  const prefix = Number(p)
  if (prefix > 32) return undefined
  return { ip, prefix }
}

/** True when `cidr` is `a.b.c.d/n` (canonical or not). */
export function isCidr (cidr: string): boolean {
  return parseCidrOrUndefined(cidr) !== undefined
}

/** Parse `a.b.c.d/n`; the result's network has the host bits cleared. Throws INVALID_CIDR. */
export function parseCidr (cidr: string): Cidr {
  const c = parseCidrOrUndefined(cidr)
  if (c === undefined) throw ferryError('INVALID_CIDR', `"${cidr}" is not a valid IPv4 CIDR (expected a.b.c.d/n with n from 0 to 32)`)
  return { network: (c.ip & maskOf(c.prefix)) >>> 0, prefix: c.prefix }
}

/** Format a parsed CIDR. */
export function formatCidr (c: Cidr): string {
  return `${intToIp(c.network)}/${c.prefix}`
}

/** `10.20.0.5/24` → `10.20.0.0/24`. */
export function canonical (cidr: string): string {
  return formatCidr(parseCidr(cidr))
}

/** True when the host bits of `cidr` are zero. Throws INVALID_CIDR if it is not a CIDR. */
export function isCanonical (cidr: string): boolean {
  return canonical(cidr) === cidr
}

export function prefixLen (cidr: string): number {
  return parseCidr(cidr).prefix
}

/** Number of addresses in the block (2^(32-prefix)). */
export function blockSize (prefix: number): number {
  return 2 ** (32 - prefix)
}

/** First and last address of the block as integers (network and broadcast for prefix < 31). */
export function bounds (cidr: string | Cidr): { first: number, last: number } {
  const c = typeof cidr === 'string' ? parseCidr(cidr) : cidr
  return { first: c.network, last: c.network + blockSize(c.prefix) - 1 }
}

export function networkAddress (cidr: string): string {
  return intToIp(parseCidr(cidr).network)
}

export function broadcastAddress (cidr: string): string {
  return intToIp(bounds(cidr).last)
}

/**
 * First address a host may use: network + 1; for /31 (RFC 3021) and /32 the block's
 * first address, since those have no network or broadcast address.
 */
export function firstHost (cidr: string): string {
  const c = parseCidr(cidr)
  return intToIp(c.prefix >= 31 ? c.network : c.network + 1)
}

/** Last address a host may use: broadcast - 1; for /31 and /32 the block's last address. */
export function lastHost (cidr: string): string {
  const c = parseCidr(cidr)
  const { last } = bounds(c)
  return intToIp(c.prefix >= 31 ? last : last - 1)
}

/** True when the IPv4 address `ip` lies inside `cidr`. */
export function contains (cidr: string, ip: string): boolean {
  const c = parseCidr(cidr)
  return ((ipToInt(ip) & maskOf(c.prefix)) >>> 0) === c.network
}

/** True when every address of `inner` lies inside `outer` (a block contains itself). */
export function containsCidr (outer: string, inner: string): boolean {
  const o = parseCidr(outer)
  const i = parseCidr(inner)
  return i.prefix >= o.prefix && ((i.network & maskOf(o.prefix)) >>> 0) === o.network
}

/** True when the two blocks share at least one address. */
export function overlaps (a: string, b: string): boolean {
  return rangesOverlap(bounds(a), bounds(b))
}

/** True when the integer ranges share at least one address. */
export function rangesOverlap (a: { first: number, last: number }, b: { first: number, last: number }): boolean {
  return a.first <= b.last && b.first <= a.last
}

/** `('10.0.0.5', 24)` → `10.0.0.5/24`, the form IPAM answers and the engine puts on interfaces. */
export function withPrefix (ip: string, prefix: number): string {
  return `${intToIp(ipToInt(ip))}/${prefix}`
}

/**
 * Split an address that may carry a prefix: `10.0.0.5` → `{ ip: '10.0.0.5' }`,
 * `10.0.0.5/24` → `{ ip: '10.0.0.5', prefix: 24 }`. Throws INVALID_CIDR.
 * (The engine sends bare IPs to IPAM but CIDRs to the network driver.)
 */
export function parseAddress (address: string): { ip: string, prefix?: number } {
  if (!address.includes('/')) return { ip: intToIp(ipToInt(address)) }
  const c = parseCidrOrUndefined(address)
  if (c === undefined) throw ferryError('INVALID_CIDR', `"${address}" is not a valid IPv4 address`)
  return { ip: intToIp(c.ip), prefix: c.prefix }
}
