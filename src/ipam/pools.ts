/**
 * Pure IPAM helpers: default address pools (`--default-address-pool`), validation of
 * a pool request, choosing a free auto subnet, and finding a free address in an
 * allocation window. No state, no I/O: `Ipam` (ipam.ts) wires these to the store.
 *
 * Docker behaviour these follow (moby/libnetwork ipam/allocator.go, 20.10 and master):
 * - A pool with host bits set (`10.20.0.5/24`) is masked to its network (`10.20.0.0/24`);
 *   the allocator parses it with net.ParseCIDR / Prefix.Masked() and does not refuse it.
 *   ferry does the same and answers with the canonical pool, which the engine then uses.
 * - The network and broadcast addresses of the *subnet* are reserved; nothing else is.
 *   With `--ip-range 10.243.3.0/24` in a /16, 10.243.3.0 is a valid, allocatable address.
 * - Dynamic requests (endpoint or gateway with `Address:""`) are served from the SubPool
 *   (`--ip-range`) when there is one, else from the subnet. The gateway is therefore the
 *   first free address of the range, as libnetwork's SetAnyInRange/AddAnyInRange gives.
 * - A preferred address (`--ip`, `--gateway`, `--aux-address`) only has to lie inside the
 *   subnet, not the range (libnetwork checks `p.Pool.Contains(prefAddress)` on the subnet).
 */
import { ferryError } from '../errors/errors.js'
import { createHash } from 'node:crypto'
import { blockSize, bounds, canonical, containsCidr, formatCidr, isCidr, overlaps, parseCidr, type Family, type Range } from '../util/ip.js'

/** One `--default-address-pool`: split `base` into subnets of prefix length `size`. */
export interface DefaultPool {
  base: string
  size: number
}

/** dockerd's local-scope defaults (libnetwork ipamutils), in the order it tries them. */
export const DOCKER_DEFAULT_POOLS: DefaultPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
]

/** Smallest IPv4 pool ferry accepts: a /30 holds a gateway and one container. */
export const MAX_POOL_PREFIX = 30
/** Largest IPv4 pool ferry accepts: a /8 (wider ones, such as 128.0.0.0/1, would swallow the host's routes). */
export const MIN_POOL_PREFIX = 8

/**
 * Pool sizes per family, widest (min prefix) to smallest (max prefix). IPv6: a /48 is a
 * whole site's allocation (RFC 6177), so a wider pool would take a provider's prefix and
 * shadow the host's routes; a /120 (256 addresses, as a /24) is the smallest kept, since
 * anything smaller saves nothing in a 2^64 space and only invites exhaustion. /64 is the
 * normal size (SLAAC-sized, what Docker's default pools hand out).
 */
export const POOL_LIMITS: Readonly<Record<Family, { min: number, max: number }>> = {
  4: { min: MIN_POOL_PREFIX, max: MAX_POOL_PREFIX },
  6: { min: 48, max: 120 },
}

/**
 * Blocks that can never be a container network (RFC 6890): the kernel treats them
 * specially, or routing them to a bridge would cut the host off. A pool that overlaps
 * one of them is refused, and an auto pool never lands in one.
 */
export const RESERVED_BLOCKS: ReadonlyArray<{ cidr: string, what: string }> = [
  { cidr: '0.0.0.0/8', what: '"this network" (RFC 1122)' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved (RFC 1112), with the limited broadcast address 255.255.255.255' },
  { cidr: '::/128', what: 'the unspecified address' },
  { cidr: '::1/128', what: 'loopback' },
  { cidr: '::ffff:0:0/96', what: 'IPv4-mapped (RFC 4291)' },
  { cidr: 'fe80::/10', what: 'link-local' },
  { cidr: 'ff00::/8', what: 'multicast' },
]

/** The reserved block `cidr` overlaps, if any. */
export function reservedOverlap (cidr: string): { cidr: string, what: string } | undefined {
  return RESERVED_BLOCKS.find((b) => overlaps(b.cidr, cidr))
}

/**
 * A pool must lie within its family's POOL_LIMITS (/8–/30, /48–/120) and overlap no
 * reserved block. `what` names it in the sentence ("pool", "default address pool base=…").
 */
export function checkPoolBlock (subnet: string, what: string): void {
  const { prefix, family } = parseCidr(subnet)
  const { min, max } = POOL_LIMITS[family]
  if (prefix > max) {
    throw ferryError('INVALID_REQUEST', family === 4
      ? `${what} ${subnet} is too small: a network needs at least a /${max} (network address, gateway, one container, broadcast address)`
      : `${what} ${subnet} is too small: ferry takes IPv6 pools from /${min} to /${max} (a /64 is usual)`)
  }
  if (prefix < min) {
    throw ferryError('INVALID_REQUEST', `${what} ${subnet} is wider than a /${min}: ferry takes ${family === 4 ? '' : 'IPv6 '}pools from /${min} to /${max}`)
  }
  const reserved = reservedOverlap(subnet)
  if (reserved !== undefined) {
    throw ferryError('INVALID_REQUEST', `${what} ${subnet} overlaps ${reserved.cidr}, which is ${reserved.what} and cannot be a container network`)
  }
}

/**
 * The default IPv6 pool when none is configured: a unique-local /48 (RFC 4193) whose
 * 40-bit global id is taken from a hash of the host's identity (/etc/machine-id), so it
 * is stable across restarts and differs between hosts, split into /64s. Docker 27+ does
 * the same from its engine id (moby daemon/config deriveULABaseNetwork).
 */
export function derivedIpv6Pool (hostIdentity: string): DefaultPool {
  const h = createHash('sha256').update(`ferry-ula:${hostIdentity}`).digest()
  const hex = (i: number): string => h.subarray(i, i + 2).toString('hex')
  return { base: canonical(`fd${h.subarray(0, 1).toString('hex')}:${hex(1)}:${hex(3)}::/48`), size: 64 }
}

/** The default pools with a derived IPv6 one added when none of them is IPv6. */
export function withIpv6Default (pools: readonly DefaultPool[], hostIdentity: string): DefaultPool[] {
  return pools.some((p) => parseCidr(p.base).family === 6) ? [...pools] : [...pools, derivedIpv6Pool(hostIdentity)]
}

/** `{ base: '10.10.0.0/16', size: 24 }` → `base=10.10.0.0/16,size=24`. */
export function formatDefaultPool (p: DefaultPool): string {
  return `base=${p.base},size=${p.size}`
}

/**
 * Parse `base=10.10.0.0/16,size=24` (keys in any order, spaces around items ignored).
 * The base is canonicalized; size must lie between the base prefix and /30.
 */
export function parseDefaultPool (spec: string): DefaultPool {
  const usage = 'expected base=<CIDR>,size=<prefix length>, for example base=10.10.0.0/16,size=24 or base=fd00:1::/48,size=64'
  const fields = new Map<string, string>()
  for (const item of spec.split(',')) {
    const eq = item.indexOf('=')
    const key = (eq < 0 ? item : item.slice(0, eq)).trim()
    if (eq < 0 || (key !== 'base' && key !== 'size') || fields.has(key)) {
      throw ferryError('INVALID_REQUEST', `default address pool "${spec}" is not valid: ${usage}`)
    }
    fields.set(key, item.slice(eq + 1).trim())
  }
  const base = fields.get('base')
  const sizeText = fields.get('size')
  if (base === undefined || sizeText === undefined) {
    throw ferryError('INVALID_REQUEST', `default address pool "${spec}" is not valid: ${usage}`)
  }
  if (!isCidr(base)) {
    throw ferryError('INVALID_CIDR', `default address pool "${spec}": base "${base}" is not a CIDR (${usage})`)
  }
  const c = parseCidr(base)
  const { min, max } = POOL_LIMITS[c.family]
  if (!/^[0-9]{1,3}$/.test(sizeText)) {
    throw ferryError('INVALID_REQUEST', `default address pool "${spec}": size "${sizeText}" is not a prefix length (${usage})`)
  }
  const size = Number(sizeText)
  if (size < c.prefix || size > max) {
    throw ferryError('INVALID_REQUEST',
      `default address pool "${spec}": size /${size} must be between the base's /${c.prefix} and /${max}`)
  }
  if (size < min) {
    throw ferryError('INVALID_REQUEST', `default address pool "${spec}": size /${size} is wider than a /${min}: ferry takes ${c.family === 4 ? '' : 'IPv6 '}pools from /${min} to /${max}`)
  }
  return { base: formatCidr(c), size }
}

/** A pool request after validation: canonical subnet, and the range if it narrows the subnet. */
export interface PoolSpec {
  subnet: string
  range?: string
}

/**
 * Validate an explicit pool (`--subnet`) and optional SubPool (`--ip-range`).
 * Canonicalizes both (see the module comment); refuses pools outside POOL_LIMITS, pools
 * that overlap a reserved block (checkPoolBlock) and a range that is not inside the subnet. A range equal to the subnet is dropped.
 */
export function parsePoolSpec (pool: string, subPool: string, family: Family = 4): PoolSpec {
  const example = family === 4 ? '10.20.0.0/24' : 'fd00:1::/64'
  if (!isCidr(pool, family)) {
    const other = isCidr(pool, family === 4 ? 6 : 4)
      ? ` (the engine asked for an IPv${family} pool${family === 4 ? '' : ' for --ipv6'}: give --subnet an IPv${family} subnet${family === 4 ? ' first, and the IPv6 one with --ipv6' : ''})`
      : ''
    throw ferryError('INVALID_CIDR', `pool "${pool}" is not an IPv${family} subnet in CIDR notation (for example ${example})${other}`)
  }
  const subnet = canonical(pool)
  checkPoolBlock(subnet, 'pool')
  if (subPool === '') return { subnet }
  if (!isCidr(subPool, family)) {
    throw ferryError('INVALID_CIDR', `ip range "${subPool}" is not an IPv${family} subnet in CIDR notation (for example ${family === 4 ? '10.20.0.128/25' : 'fd00:1::/80'})`)
  }
  const range = canonical(subPool)
  if (!containsCidr(subnet, range)) {
    throw ferryError('INVALID_REQUEST', `ip range ${range} is not inside pool ${subnet}`)
  }
  return range === subnet ? { subnet } : { subnet, range }
}

/**
 * The first subnet of the default pools, in order, that overlaps none of `taken`
 * (ferry's pools and the host's networks). The blockers are merged into sorted
 * disjoint intervals and swept once per default pool, jumping past each blocker,
 * so a /8 split into /24s costs O(blockers · log blockers), not O(candidates).
 */
export function pickAutoSubnet (defaults: readonly DefaultPool[], taken: readonly string[]): string | undefined {
  for (const dp of defaults) {
    const family = parseCidr(dp.base).family
    // Blockers of the other family never overlap; each default pool sweeps its own family's.
    const blockers = mergeIntervals(taken.filter((cidr) => parseCidr(cidr).family === family).map((cidr) => bounds(cidr)))
    const base = bounds(dp.base)
    const step = blockSize(family, dp.size)
    let i = 0
    let candidate = base.first
    while (candidate + step - 1n <= base.last) {
      const last = candidate + step - 1n
      while (i < blockers.length && (blockers[i] as Range).last < candidate) i++
      const hit = blockers[i]
      if (hit === undefined || hit.first > last) return formatCidr({ family, network: candidate, prefix: dp.size })
      // Next aligned candidate after the blocker (base is aligned to step since size >= base prefix).
      candidate = ((hit.last + 1n + step - 1n) / step) * step
    }
  }
  return undefined
}

/** Sort and merge overlapping or adjacent ranges. */
function mergeIntervals (list: Range[]): Range[] {
  const sorted = [...list].sort((a, b) => a.first < b.first ? -1 : a.first > b.first ? 1 : 0)
  const out: Range[] = []
  for (const iv of sorted) {
    const prev = out[out.length - 1]
    if (prev !== undefined && iv.first <= prev.last + 1n) prev.last = iv.last > prev.last ? iv.last : prev.last
    else out.push({ ...iv })
  }
  return out
}

/**
 * Integer window that dynamic requests are served from: the range (or the subnet),
 * minus the subnet's network and broadcast addresses.
 */
export function allocationWindow (subnet: string, range?: string): Range {
  const c = parseCidr(subnet)
  const s = bounds(c)
  const r = range === undefined ? s : bounds(range)
  // IPv6 has no broadcast address: only the subnet-router anycast address (the first) is kept out.
  const sLast = c.family === 6 ? s.last : s.last - 1n
  return { first: r.first > s.first + 1n ? r.first : s.first + 1n, last: r.last < sLast ? r.last : sLast }
}

/** Number of addresses in a window (0 if empty). */
export function windowSize (w: Range): bigint {
  return w.last >= w.first ? w.last - w.first + 1n : 0n
}

/**
 * First address in `window`, starting at `start` and wrapping around once, for which
 * `used` is false. Returns undefined when every address is used. Cost is the number
 * of used addresses skipped, so a serial cursor makes it O(1) on typical pools.
 */
export function findFree (window: Range, start: bigint, used: (ip: bigint) => boolean): bigint | undefined {
  const size = windowSize(window)
  if (size === 0n) return undefined
  let ip = start < window.first || start > window.last ? window.first : start
  for (let i = 0n; i < size; i++) {
    if (!used(ip)) return ip
    ip = ip === window.last ? window.first : ip + 1n
  }
  return undefined
}

/** `FerryLocal` + `10.20.0.0/24` → `FerryLocal/10.20.0.0/24`, with `#2`, `#3`… if that id is taken. */
export function poolIdFor (addressSpace: string, subnet: string, isTaken: (id: string) => boolean): string {
  const base = `${addressSpace}/${subnet}`
  if (!isTaken(base)) return base
  for (let n = 2; ; n++) {
    const id = `${base}#${n}`
    if (!isTaken(id)) return id
  }
}
