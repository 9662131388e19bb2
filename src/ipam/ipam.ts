/**
 * ferry's IPAM driver: pools and addresses for the Docker IpamDriver protocol,
 * persisted in `store.state.pools` and serialized by one mutex.
 *
 * Every mutation changes the state, then awaits `store.commit()` before it resolves;
 * if the commit fails the change is undone in memory and the STORE error is thrown,
 * so the engine never holds a pool or address that a restart would forget.
 * A new `Ipam` over the same state continues where the old one stopped.
 *
 * Choices, with the Docker behaviour they copy, are listed in pools.ts. In short:
 * non-canonical subnets are masked (10.20.0.5/24 → 10.20.0.0/24); user subnets may
 * overlap host routes but never another ferry pool; auto pools avoid both; dynamic
 * addresses (gateway or endpoint with `Address:""`) come from `--ip-range` when set;
 * a specific address may be anywhere in the subnet except its network/broadcast.
 *
 * Endpoint addresses are handed out serially after the last one handed out (like
 * libnetwork's serial bitmask allocation), so a released IP is not reused at once and
 * peers' stale ARP entries have time to expire. The gateway takes the first free
 * address of the window, as libnetwork does for a request without preference.
 *
 * Only this class may change `store.state.pools` (test/layout/owners.test.ts checks it): it keeps a small in-memory index
 * per pool (allocation count in the window) rebuilt whenever the record object changes.
 */
import { ferryError, toFerryError } from '../errors/errors.js'
import type { AddressUse, PoolRecord } from '../model/types.js'
import type { Store, StorePath } from '../store/store.js'
import { Mutex } from '../util/mutex.js'
import { own, toDict } from '../util/dict.js'
import { bounds, canonical, ipString, ipValue, isCidr, isIp, overlaps, parseAddress, parseCidr, withPrefix, type Family, type Range } from '../util/ip.js'
import {
  DOCKER_DEFAULT_POOLS, RESERVED_BLOCKS, allocationWindow, findFree, formatDefaultPool, parsePoolSpec, pickAutoSubnet, poolIdFor,
  windowSize, withIpv6Default, type DefaultPool, type PoolSpec,
} from './pools.js'

export { DOCKER_DEFAULT_POOLS, derivedIpv6Pool, parseDefaultPool, type DefaultPool } from './pools.js'

/** RequestAddress option key the engine sets on the gateway request… */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType'
/** …and its value. */
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway'

export interface IpamOptions {
  store: Store
  defaultPools?: DefaultPool[]
  /**
   * What the default IPv6 pool is derived from when `defaultPools` has no IPv6 base
   * (pools.ts derivedIpv6Pool): the host's /etc/machine-id, or the agent's host id.
   */
  hostIdentity?: string
  /** CIDRs the host already uses (routes, addresses); auto pools never overlap these. Called at each auto-pool pick. */
  hostNetworks: () => Promise<string[]>
  addressSpaces?: { local: string, global: string }
  now?: () => Date
}

export interface PoolRequest {
  addressSpace: string
  /** '' = pick a free subnet from the default pools. */
  pool: string
  /** `--ip-range`; '' = none. */
  subPool: string
  options: Record<string, string>
  v6: boolean
}

export interface AddressRequest {
  poolId: string
  /** '' = any free address; otherwise a bare IP (a CIDR is accepted, its prefix ignored). */
  address: string
  options: Record<string, string> | null
}


/** Per-pool facts derived from the record, kept to make dynamic allocation O(1) typical. */
interface PoolIndex {
  record: PoolRecord
  window: Range
  /** Allocated addresses inside `window`. */
  inWindow: bigint
  /** Cursor to use when the record has none. */
  fallbackCursor: bigint
}

export class Ipam {
  private readonly store: Store
  private readonly defaultPools: DefaultPool[]
  private readonly hostNetworks: () => Promise<string[]>
  private readonly spaces: { local: string, global: string }
  private readonly now: () => Date
  private readonly mutex = new Mutex()
  private readonly indexes = new Map<string, PoolIndex>()
  private replaying = false
  /** Pools already answered once during the current replay. */
  private readonly replayed = new Set<string>()

  constructor (opts: IpamOptions) {
    this.store = opts.store
    this.defaultPools = withIpv6Default(opts.defaultPools ?? DOCKER_DEFAULT_POOLS, opts.hostIdentity ?? '')
    this.hostNetworks = opts.hostNetworks
    this.spaces = opts.addressSpaces ?? { local: 'FerryLocal', global: 'FerryGlobal' }
    this.now = opts.now ?? (() => new Date())
  }

  capabilities (): { RequiresMACAddress: false, RequiresRequestReplay: true } {
    return { RequiresMACAddress: false, RequiresRequestReplay: true }
  }

  addressSpaces (): { LocalDefaultAddressSpace: string, GlobalDefaultAddressSpace: string } {
    return { LocalDefaultAddressSpace: this.spaces.local, GlobalDefaultAddressSpace: this.spaces.global }
  }

  /*
   * Replay. With RequiresRequestReplay:true, a dockerd that restarts after SIGKILL
   * asks again, for every network it knows, RequestPool with the stored subnet and
   * RequestAddress for the gateway and every endpoint IP (trace §i). ferry kept all of
   * that in its store, so these requests are for things it already holds: outside a
   * replay they would be conflicts (POOL_OVERLAP, ADDRESS_IN_USE). Between
   * beginReplay() and endReplay():
   * - RequestPool for exactly a held pool (same subnet and same range) returns that
   *   pool's id, once per replay: a second request for it is a real conflict (two
   *   networks cannot share a subnet), and a different range is a different pool.
   * - RequestAddress for a specific address already allocated in the pool returns it.
   * Anything not held is allocated normally, so a replay also repairs a store that lost
   * an allocation. After the replay the engine releases what belongs to dead
   * containers, so nothing leaks.
   */

  /** The engine (re)activated us: it may now replay RequestPool/RequestAddress for what we already hold. */
  beginReplay (): void {
    this.replaying = true
    this.replayed.clear()
  }

  /** Replay is over (first CreateNetwork/CreateEndpoint/… or a timeout the caller manages). */
  endReplay (): void {
    this.replaying = false
    this.replayed.clear()
  }

  isReplaying (): boolean {
    return this.replaying
  }

  /** The pool record (live object: read it, do not change it). */
  pool (poolId: string): PoolRecord | undefined {
    return this.store.state.pools[poolId]
  }

  pools (): PoolRecord[] {
    return Object.values(this.store.state.pools)
  }

  /** Pool whose subnet equals cidr (used when CreateNetwork arrives to tie pool and network). */
  poolBySubnet (cidr: string): PoolRecord | undefined {
    const subnet = canonical(cidr)
    return this.pools().find((p) => p.subnet === subnet)
  }

  async requestPool (req: PoolRequest): Promise<{ poolId: string, pool: string, data: Record<string, string> }> {
    if (req.addressSpace === '') throw ferryError('INVALID_REQUEST', 'the pool request has no address space')
    // Only the names GetDefaultAddressSpaces gave: the space is part of the pool id, so nothing else gets in.
    if (req.addressSpace !== this.spaces.local && req.addressSpace !== this.spaces.global) {
      throw ferryError('INVALID_REQUEST',
        `address space ${JSON.stringify(req.addressSpace.slice(0, 64))} is not ferry's: it serves ${this.spaces.local} and ${this.spaces.global} (create the network with --ipam-driver ferry)`)
    }
    if (req.pool === '' && req.subPool !== '') {
      throw ferryError('INVALID_REQUEST', `ip range ${req.subPool} was given without a subnet; give --subnet too`)
    }
    const family: Family = req.v6 ? 6 : 4
    const spec = req.pool === '' ? undefined : parsePoolSpec(req.pool, req.subPool, family)
    return await this.mutex.run(async () => {
      if (spec !== undefined && this.replaying) {
        const held = this.pools().find((p) => p.subnet === spec.subnet && p.range === spec.range)
        if (held !== undefined && !this.replayed.has(held.id)) {
          this.replayed.add(held.id)
          return { poolId: held.id, pool: held.subnet, data: {} }
        }
      }
      const chosen = spec ?? { subnet: await this.pickAutoSubnet(family) }
      if (spec !== undefined) this.checkNoOverlap(spec)
      const record = this.newPool(req, chosen, spec !== undefined)
      this.store.state.pools[record.id] = record
      await this.commit(() => { delete this.store.state.pools[record.id] }, ['pools', record.id])
      return { poolId: record.id, pool: record.subnet, data: {} }
    })
  }

  /** Release a pool and every address in it. Unknown pools are fine (the engine retries and replays): returns false. */
  async releasePool (poolId: string): Promise<boolean> {
    return await this.mutex.run(async () => {
      const record = this.store.state.pools[poolId]
      if (record === undefined) return false
      delete this.store.state.pools[poolId]
      this.indexes.delete(poolId)
      this.replayed.delete(poolId)
      await this.commit(() => { this.store.state.pools[poolId] = record }, ['pools', poolId])
      return true
    })
  }

  async requestAddress (req: AddressRequest): Promise<{ address: string, data: Record<string, string> }> {
    const isGateway = own(req.options, REQUEST_ADDRESS_TYPE) === GATEWAY_ADDRESS_TYPE
    const preferred = req.address === '' ? undefined : parseAddress(req.address).ip
    return await this.mutex.run(async () => {
      const record = this.store.state.pools[req.poolId]
      if (record === undefined) {
        throw ferryError('POOL_NOT_FOUND', `pool ${req.poolId} is not known to ferry (it was never requested or was released)`)
      }
      const { prefix, family } = parseCidr(record.subnet)
      const kind: AddressUse['kind'] = isGateway ? 'gateway' : 'endpoint'
      let ip: bigint
      if (preferred !== undefined) {
        ip = this.checkPreferred(record, preferred)
        if (record.allocated[preferred] !== undefined) {
          if (this.replaying) return { address: withPrefix(preferred, prefix), data: {} }
          throw ferryError('ADDRESS_IN_USE', `${preferred} is already in use in network pool ${record.subnet}`)
        }
      } else {
        ip = this.pickAddress(record, isGateway)
      }
      await this.allocate(record, ip, kind, preferred === undefined && !isGateway)
      return { address: withPrefix(ipString(family, ip), prefix), data: {} }
    })
  }

  /**
   * Mark an address as held without a request: the store lost its allocation (a
   * damaged journal line) while the kernel or the engine shows it in use, so it
   * must never be handed out again. An address outside the pool's hosts, or
   * already held, is left alone. Returns whether it was reserved now.
   */
  async reserve (poolId: string, ip: string, kind: 'endpoint' | 'recovered'): Promise<boolean> {
    return await this.mutex.run(async () => {
      const record = this.store.state.pools[poolId]
      if (record === undefined || !isIp(ip) || record.allocated[ip] !== undefined) return false
      const c = parseCidr(record.subnet)
      const n = ipValue(ip, c.family)
      const b = bounds(c)
      if (n <= b.first || n > b.last || (c.family === 4 && n === b.last)) return false
      await this.allocate(record, n, kind, false)
      return true
    })
  }

  /**
   * Release one address (bare IP or CIDR). Releasing what ferry does not hold, or in a
   * pool it does not know, succeeds and returns false: the engine retries and replays.
   */
  async releaseAddress (poolId: string, address: string): Promise<boolean> {
    const ip = parseAddress(address).ip
    return await this.mutex.run(async () => {
      const record = this.store.state.pools[poolId]
      const use = record?.allocated[ip]
      if (record === undefined || use === undefined) return false
      const idx = this.index(record)
      const n = ipValue(ip)
      const counted = n >= idx.window.first && n <= idx.window.last ? 1n : 0n
      delete record.allocated[ip]
      idx.inWindow -= counted
      await this.commit(() => {
        record.allocated[ip] = use
        idx.inWindow += counted
      }, ['pools', record.id, 'allocated', ip])
      return true
    })
  }

  /**
   * The network's --aux-address entries, which the engine asked for like endpoint
   * addresses (RequestAddress without a type) before CreateNetwork: marked `aux`, so
   * that no endpoint can be created on them. Addresses the pool does not hold are left
   * alone. Returns how many were marked.
   */
  async markAux (poolId: string, ips: readonly string[]): Promise<number> {
    return await this.mutex.run(async () => {
      const record = own(this.store.state.pools, poolId)
      if (record === undefined) return 0
      const marked = ips.filter((ip) => own(record.allocated, ip)?.kind === 'endpoint')
      if (marked.length === 0) return 0
      for (const ip of marked) record.allocated[ip]!.kind = 'aux'
      await this.commit(() => { for (const ip of marked) record.allocated[ip]!.kind = 'endpoint' },
        ...marked.map((ip) => ['pools', record.id, 'allocated', ip]))
      return marked.length
    })
  }

  /**
   * Tie a pool to an overlay (its endpoint addresses come from the cluster from now on), or
   * untie it. Changes memory only and returns the path: the caller commits it with the
   * network record that makes the tie, so that both reach the disk in one write.
   */
  markOverlay (poolId: string, overlay: string): StorePath {
    const record = own(this.store.state.pools, poolId)
    if (record !== undefined) record.overlay = overlay
    return ['pools', poolId, 'overlay']
  }

  unmarkOverlay (poolId: string): StorePath {
    const record = own(this.store.state.pools, poolId)
    if (record !== undefined) delete record.overlay
    return ['pools', poolId, 'overlay']
  }

  private async pickAutoSubnet (family: Family): Promise<string> {
    let host: string[]
    try {
      host = await this.hostNetworks()
    } catch (err) {
      throw toFerryError(err, 'INTERNAL', 'cannot list the host\'s networks to choose a free pool')
    }
    const taken = [...this.pools().map((p) => p.subnet), ...hostBlockers(host), ...RESERVED_BLOCKS.map((b) => b.cidr)]
    const defaults = this.defaultPools.filter((p) => parseCidr(p.base).family === family)
    const subnet = pickAutoSubnet(defaults, taken)
    if (subnet === undefined) {
      const list = defaults.map(formatDefaultPool).join('; ')
      throw ferryError('POOL_EXHAUSTED',
        `no free subnet left in the IPv${family} default address pools (${list === '' ? 'none configured' : list}): ` +
        'each one overlaps a ferry pool or a host network. Add pools with ferry\'s ' +
        '--default-address-pool base=<cidr>,size=<prefix> option, or give the network a --subnet')
    }
    return subnet
  }

  private checkNoOverlap (spec: PoolSpec): void {
    const clash = this.pools().find((p) => overlaps(p.subnet, spec.subnet))
    if (clash !== undefined) {
      throw ferryError('POOL_OVERLAP', `${spec.subnet} overlaps pool ${clash.subnet} already used by ferry`)
    }
  }

  private newPool (req: PoolRequest, spec: PoolSpec, userDefined: boolean): PoolRecord {
    const pools = this.store.state.pools
    const record: PoolRecord = {
      id: poolIdFor(req.addressSpace, spec.subnet, (id) => pools[id] !== undefined),
      addressSpace: req.addressSpace,
      subnet: spec.subnet,
      userDefined,
      allocated: {},
      options: toDict(req.options),
      createdAt: this.now().toISOString(),
    }
    if (spec.range !== undefined) record.range = spec.range
    return record
  }

  /** A preferred address must be a host address of the subnet (the range does not matter). */
  private checkPreferred (record: PoolRecord, ip: string): bigint {
    const c = parseCidr(record.subnet)
    const p = parseAddress(ip)
    if (p.family !== c.family) throw ferryError('ADDRESS_OUT_OF_POOL', `${ip} is not an IPv${c.family} address, as pool ${record.subnet} is`)
    const n = ipValue(p.ip)
    const { first, last } = bounds(c)
    if (n < first || n > last) throw ferryError('ADDRESS_OUT_OF_POOL', `${ip} is outside pool ${record.subnet}`)
    if (n === first) {
      const what = c.family === 4 ? 'network address' : 'subnet-router anycast address'
      throw ferryError('ADDRESS_OUT_OF_POOL', `${ip} is the ${what} of pool ${record.subnet} and cannot be assigned`)
    }
    if (c.family === 4 && n === last) {
      throw ferryError('ADDRESS_OUT_OF_POOL', `${ip} is the broadcast address of pool ${record.subnet} and cannot be assigned`)
    }
    return n
  }

  private pickAddress (record: PoolRecord, isGateway: boolean): bigint {
    const idx = this.index(record)
    const family = parseCidr(record.subnet).family
    const start = isGateway ? idx.window.first : cursorOf(record, idx) + 1n
    const found = idx.inWindow >= windowSize(idx.window)
      ? undefined
      : findFree(idx.window, start, (n) => record.allocated[ipString(family, n)] !== undefined)
    if (found === undefined) {
      const where = record.range === undefined ? `pool ${record.subnet}` : `ip range ${record.range} of pool ${record.subnet}`
      throw ferryError('POOL_EXHAUSTED', `no free address left in ${where}`)
    }
    return found
  }

  private async allocate (record: PoolRecord, ip: bigint, kind: AddressUse['kind'], moveCursor: boolean): Promise<void> {
    const idx = this.index(record)
    const key = ipString(parseCidr(record.subnet).family, ip)
    const counted = ip >= idx.window.first && ip <= idx.window.last ? 1n : 0n
    const cursor = record.cursor
    record.allocated[key] = { kind, at: this.now().toISOString() }
    idx.inWindow += counted
    if (moveCursor) record.cursor = key
    await this.commit(() => {
      delete record.allocated[key]
      idx.inWindow -= counted
      if (cursor === undefined) delete record.cursor
      else record.cursor = cursor
    }, ['pools', record.id, 'allocated', key], ['pools', record.id, 'cursor'])
  }

  private index (record: PoolRecord): PoolIndex {
    const cached = this.indexes.get(record.id)
    if (cached !== undefined && cached.record === record) return cached
    const idx = buildIndex(record)
    this.indexes.set(record.id, idx)
    return idx
  }

  /** Commit what `changed` names (everything when empty); on failure run `undo` and throw a STORE error. */
  private async commit (undo: () => void, ...changed: StorePath[]): Promise<void> {
    try {
      await this.store.commit(...changed)
    } catch (err) {
      undo()
      throw toFerryError(err, 'STORE', 'cannot save the IPAM state')
    }
  }
}

/** The search for the next endpoint address starts after this one. */
function cursorOf (record: PoolRecord, idx: PoolIndex): bigint {
  return record.cursor !== undefined && isIp(record.cursor) ? ipValue(record.cursor) : idx.fallbackCursor
}

/**
 * Index of a pool loaded from the store. The fallback cursor is the most recently
 * allocated endpoint address in the window (latest `at`, the higher address on a
 * tie): close to where a serial allocator stopped, though a later `--ip` counts too.
 */
function buildIndex (record: PoolRecord): PoolIndex {
  const window = allocationWindow(record.subnet, record.range)
  let inWindow = 0n
  let cursor = window.first - 1n
  let cursorAt = ''
  for (const [ip, use] of Object.entries(record.allocated)) {
    const n = ipValue(ip)
    if (n < window.first || n > window.last) continue
    inWindow++
    if (use.kind === 'endpoint' && (use.at > cursorAt || (use.at === cursorAt && n > cursor))) {
      cursor = n
      cursorAt = use.at
    }
  }
  return { record, window, inWindow, fallbackCursor: cursor }
}

/** Host networks that can block an auto pool, both families: default routes (/0) ignored, bare IPs as /32 or /128. */
function hostBlockers (networks: string[]): string[] {
  const out: string[] = []
  for (const net of networks) {
    const cidr = net.includes('/') ? net : `${net}/${net.includes(':') ? 128 : 32}`
    if (!isCidr(cidr)) throw ferryError('INTERNAL', `host network "${net}" is not an IP address or CIDR`)
    if (parseCidr(cidr).prefix === 0) continue
    out.push(cidr)
  }
  return out
}
