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
import { blockSize, bounds, canonical, containsCidr, formatCidr, isCidr, overlaps, parseCidr, type Range } from '../util/ip.js'

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

/** Smallest pool ferry accepts: a /30 holds a gateway and one container. */
export const MAX_POOL_PREFIX = 30
/** Largest pool ferry accepts: a /8 (wider ones, such as 128.0.0.0/1, would swallow the host's routes). */
export const MIN_POOL_PREFIX = 8

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
]

/** The reserved block `cidr` overlaps, if any. */
export function reservedOverlap (cidr: string): { cidr: string, what: string } | undefined {
  return RESERVED_BLOCKS.find((b) => overlaps(b.cidr, cidr))
}

/**
 * A pool must be /8 to /30 and overlap no reserved block. `what` names it in the
 * sentence ("pool", "default address pool base=…").
 */
export function checkPoolBlock (subnet: string, what: string): void {
  const prefix = parseCidr(subnet).prefix
  if (prefix > MAX_POOL_PREFIX) {
    throw ferryError('INVALID_REQUEST',
      `${what} ${subnet} is too small: a network needs at least a /${MAX_POOL_PREFIX} (network address, gateway, one container, broadcast address)`)
  }
  if (prefix < MIN_POOL_PREFIX) {
    throw ferryError('INVALID_REQUEST', `${what} ${subnet} is wider than a /${MIN_POOL_PREFIX}: ferry takes pools from /${MIN_POOL_PREFIX} to /${MAX_POOL_PREFIX}`)
  }
  const reserved = reservedOverlap(subnet)
  if (reserved !== undefined) {
    throw ferryError('INVALID_REQUEST', `${what} ${subnet} overlaps ${reserved.cidr}, which is ${reserved.what} and cannot be a container network`)
  }
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
  const usage = 'expected base=<IPv4 CIDR>,size=<prefix length>, for example base=10.10.0.0/16,size=24'
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
  if (!isCidr(base, 4)) {
    throw ferryError('INVALID_CIDR', `default address pool "${spec}": base "${base}" is not an IPv4 CIDR (${usage})`)
  }
  const c = parseCidr(base)
  if (!/^[0-9]{1,2}$/.test(sizeText)) {
    throw ferryError('INVALID_REQUEST', `default address pool "${spec}": size "${sizeText}" is not a prefix length (${usage})`)
  }
  const size = Number(sizeText)
  if (size < c.prefix || size > MAX_POOL_PREFIX) {
    throw ferryError('INVALID_REQUEST',
      `default address pool "${spec}": size /${size} must be between the base's /${c.prefix} and /${MAX_POOL_PREFIX}`)
  }
  if (size < MIN_POOL_PREFIX) {
    throw ferryError('INVALID_REQUEST', `default address pool "${spec}": size /${size} is wider than a /${MIN_POOL_PREFIX}: ferry takes pools from /${MIN_POOL_PREFIX} to /${MAX_POOL_PREFIX}`)
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
 * Canonicalizes both (see the module comment); refuses pools outside /8–/30, pools
 * that overlap a reserved block (checkPoolBlock) and a range that is not inside the subnet. A range equal to the subnet is dropped.
 */
export function parsePoolSpec (pool: string, subPool: string): PoolSpec {
  if (!isCidr(pool, 4)) {
    throw ferryError('INVALID_CIDR', `pool "${pool}" is not an IPv4 subnet in CIDR notation (for example 10.20.0.0/24)`)
  }
  const subnet = canonical(pool)
  checkPoolBlock(subnet, 'pool')
  if (subPool === '') return { subnet }
  if (!isCidr(subPool, 4)) {
    throw ferryError('INVALID_CIDR', `ip range "${subPool}" is not an IPv4 subnet in CIDR notation (for example 10.20.0.128/25)`)
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
