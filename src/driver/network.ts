/**
 * ferry's network driver at the level of intent, free of HTTP: it turns the
 * engine's validated requests into store records, kernel links (through the
 * bridge driver, src/bridge/driver.ts: the operations its reconcile plans too)
 * and firewall state (through the FirewallDriver). Every mutation validates
 * first, then applies with an undo stack, then persists.
 * Deletes are idempotent: deleting what is already (half) gone succeeds.
 */
import type { Logger } from 'pino'
import { ErrorList, FerryError, toFerryError } from '../errors/errors.js'
import type { EndpointRecord, ExposedPort, NetworkRecord, PortBinding, PortRequest } from '../model/types.js'
import type { Store } from '../store/store.js'
import type { LinkDriver } from '../kernel/types.js'
import type { FirewallDriver, NatEndpoint, NatNetwork } from '../nat/types.js'
import type { FirewallLimits } from '../nat/disabled.js'
import type { Ipam } from '../ipam/ipam.js'
import { bridgeNameCandidates, macForIp, normalizeMac, pickNames, vethNameCandidates } from '../bridge/names.js'
import { OPT, parseNetworkOptions, type NetworkOptions } from '../bridge/options.js'
import { BridgeDriver } from '../bridge/driver.js'
import { KeyedMutex, RwLock } from '../util/mutex.js'
import { withUndo } from '../util/undo.js'
import { Stopwatch } from '../util/stopwatch.js'
import { addrOf, bounds, familyOf, ipValue, isCidr, isIp, normalizeIp, parseAddress, parseCidr, prefixOf, type Family } from '../util/ip.js'
import { own } from '../util/dict.js'
import { publishedText } from '../util/ports.js'
import type { OverlayService } from '../overlay/service.js'
import { vxlanName } from '../vxlan/plan.js'
import type { LocalClusterState } from '../cluster/types.js'
import { forgetEndpoint, forgetNetwork, markJoined, markLeft, recordEndpoint, recordNetwork, recordsRevision, setPorts } from './records.js'

export interface CreateNetworkInput {
  id: string
  /** IPv4Data[0].Pool and .Gateway; both absent on an IPv6-only network (Docker 28's `--ipv4=false --ipv6`). */
  subnet?: string
  gatewayCidr?: string
  generic: Record<string, unknown>
  internal: boolean
  ipv6: boolean
  /** false: an IPv6-only network (`--ipv4=false`, Docker 28's enable_ipv4); then no IPv4 subnet is given. Absent: true. */
  ipv4?: boolean
  extraIpv4Data: number    // how many IPv4Data entries beyond the first
  /** IPv6Data[0].Pool and .Gateway of a dual-stack or IPv6-only network (--ipv6); both absent on an IPv4-only one. */
  subnet6?: string
  gatewayCidr6?: string
  extraIpv6Data?: number   // how many IPv6Data entries beyond the first
  /** IPv6Data[0].AuxAddresses. */
  auxAddresses6?: string[]
  /** IPv4Data[0].AuxAddresses (--aux-address), CIDRs or bare IPs: no endpoint may take them. */
  auxAddresses?: string[]
}

export interface CreateEndpointInput {
  networkId: string
  endpointId: string
  /** Interface.Address (`10.20.0.2/24`); absent or '' on an IPv6-only network. */
  addressCidr?: string
  /** Interface.AddressIPv6 (`fd00:1::2/64`) on a dual-stack or IPv6-only network; absent or '' otherwise. */
  addressCidr6?: string
  mac: string              // '' = ferry picks
  portRequests: PortRequest[]
  exposed: ExposedPort[]
}

export interface JoinResult { srcName: string, gateway?: string, gateway6?: string, disableGatewayService: boolean }

/** Allocates host ports for an endpoint's publications (src/nat/publisher.ts). */
export interface PortPublisher {
  allocate (ep: EndpointRecord, requests: PortRequest[], others: EndpointRecord[]): Promise<PortBinding[]>
}

export interface NetworkDriverDeps {
  store: Store
  links: LinkDriver
  firewall: FirewallDriver
  /** What the firewall cannot do (--iptables=false: publish ports, enable_icc=false), checked before anything is applied. */
  limits?: FirewallLimits
  ipam: Ipam
  ports: PortPublisher
  /** The multi-host overlay; absent when the agent runs without --cluster. */
  overlay?: OverlayService
  /** Turns IPv6 forwarding on (src/kernel/forwarding.ts); called while a dual-stack network exists. Absent: left alone. */
  ipv6Forwarding?: () => Promise<void>
  /** Called after networks or endpoints changed (DNS records, listen addresses). */
  onChange?: () => void
  /** True while the store is recovered with loss: reconcile then adds and repairs but removes nothing (links, firewall rules). */
  storeLoss?: () => boolean
  log: Logger
  now?: () => Date
}

/**
 * An address of a network's subnet as the engine sends it (`10.20.0.5/24`): an IPv4
 * address with the subnet's prefix, inside it, neither its network nor its broadcast
 * address. `what` starts the sentence ("endpoint address", "gateway").
 */
export function parseSubnetAddress (cidr: string, subnet: string, what: string): { address: string, prefixLen: number } {
  const s = parseCidr(subnet)
  const prefix = s.prefix
  if (!isCidr(cidr, s.family) || parseCidr(cidr).prefix !== prefix) {
    throw new FerryError('INVALID_REQUEST', `${what} ${JSON.stringify(cidr.slice(0, 64))} is not an IPv${s.family} address with the prefix /${prefix} of subnet ${subnet}`)
  }
  const address = parseAddress(cidr).ip
  const n = ipValue(address)
  const { first, last } = bounds(s)
  if (n < first || n > last) throw new FerryError('ADDRESS_OUT_OF_POOL', `${what} ${address} is outside the network's subnet ${subnet}`)
  if (n === first) throw new FerryError('ADDRESS_OUT_OF_POOL', `${what} ${address} is the ${s.family === 4 ? 'network' : 'subnet-router anycast'} address of subnet ${subnet}`)
  if (s.family === 4 && n === last) throw new FerryError('ADDRESS_OUT_OF_POOL', `${what} ${address} is the broadcast address of subnet ${subnet}`)
  return { address, prefixLen: prefix }
}

/** The address CreateEndpoint carries: a host address of the subnet that is not the gateway's. */
export function parseEndpointAddress (cidr: string, net: Pick<NetworkRecord, 'subnet' | 'gateway' | 'id'>): { address: string, prefixLen: number } {
  if (net.subnet === undefined) {
    throw new FerryError('INVALID_REQUEST', `endpoint IPv4 address ${JSON.stringify(cidr.slice(0, 64))} given on network ${net.id.slice(0, 12)}, which is IPv6-only (it was created with --ipv4=false)`)
  }
  const a = parseSubnetAddress(cidr, net.subnet, 'endpoint address')
  if (a.address === net.gateway) throw new FerryError('ADDRESS_IN_USE', `endpoint address ${a.address} is the gateway's address of network ${net.id.slice(0, 12)}`)
  return a
}

/** The IPv6 address CreateEndpoint carries (AddressIPv6): only on a dual-stack or IPv6-only network, in subnet6, not gateway6. */
export function parseEndpointAddress6 (cidr: string, net: Pick<NetworkRecord, 'subnet6' | 'gateway6' | 'id'>): { address: string, prefixLen: number } {
  if (net.subnet6 === undefined || net.gateway6 === undefined) {
    throw new FerryError('INVALID_REQUEST', `endpoint IPv6 address ${JSON.stringify(cidr.slice(0, 64))} given on network ${net.id.slice(0, 12)}, which has no IPv6 subnet (it was created without --ipv6)`)
  }
  const a = parseSubnetAddress(cidr, net.subnet6, 'endpoint IPv6 address')
  if (a.address === net.gateway6) throw new FerryError('ADDRESS_IN_USE', `endpoint IPv6 address ${a.address} is the gateway's address of network ${net.id.slice(0, 12)}`)
  return a
}

/** What the firewall needs of a network: each side (IPv4, IPv6) the network has. */
export function natNetwork (n: NetworkRecord): NatNetwork {
  const outboundAddr = n.options[OPT.hostIpv4]
  const outboundAddr6 = n.options[OPT.hostIpv6]
  return {
    id: n.id, bridge: n.bridge, icc: n.icc, masquerade: n.masquerade, internal: n.internal,
    // An encrypted overlay's MTU is the underlay's less WireGuard's and VXLAN's headers: TCP's MSS is clamped into it.
    ...(n.overlay !== undefined && n.options[OPT.encrypt] === 'wireguard' ? { clampMss: true } : {}),
    ...(n.subnet !== undefined && n.gateway !== undefined ? { subnet: n.subnet, gateway: n.gateway } : {}),
    ...(outboundAddr !== undefined && outboundAddr !== '' ? { outboundAddr } : {}),
    ...(n.subnet6 !== undefined && n.gateway6 !== undefined
      ? {
          subnet6: n.subnet6,
          gateway6: n.gateway6,
          mode6: n.gatewayMode6 ?? 'nat',
          ...(outboundAddr6 !== undefined && outboundAddr6 !== '' ? { outboundAddr6: normalizeIp(outboundAddr6, 6) } : {}),
        }
      : {}),
  }
}

export function natEndpoint (e: EndpointRecord): NatEndpoint {
  return { id: e.id, networkId: e.networkId, ...(e.address !== undefined ? { address: e.address } : {}), ...(e.address6 !== undefined ? { address6: e.address6 } : {}), ports: e.ports }
}

export class NetworkDriver {
  private readonly d: NetworkDriverDeps
  /** One queue per network for network and endpoint changes; a global one for port allocation. */
  private readonly locks = new KeyedMutex()
  /** Requests are readers, reconcile is the writer (see RwLock). */
  private readonly rw = new RwLock()
  /** Kernel names chosen by requests still creating them (not yet in the store). */
  private readonly claimed = new Set<string>()

  /** The bridge data plane: every link and address this driver changes, for requests and the reconcile. */
  private readonly bridge: BridgeDriver

  constructor (deps: NetworkDriverDeps) {
    this.d = deps
    this.bridge = new BridgeDriver(deps.links)
  }

  /** Run `fn` with no request in flight and none starting (as a reconcile does). */
  exclusive<T> (fn: () => Promise<T>): Promise<T> { return this.rw.write(fn) }

  /** A request: beside other requests, never during a reconcile; one at a time per key. */
  private op<T> (key: string, fn: () => Promise<T>): Promise<T> {
    return this.rw.read(() => this.locks.run(key, fn))
  }

  private get state () { return this.d.store.state }
  private now (): string { return (this.d.now?.() ?? new Date()).toISOString() }
  private undoLog = (what: string, err: unknown): void => {
    this.d.log.error({ err, what }, 'rollback step failed')
  }

  networks (): NetworkRecord[] { return Object.values(this.state.networks) }
  endpoints (networkId?: string): EndpointRecord[] {
    const all = Object.values(this.state.endpoints)
    return networkId ? all.filter((e) => e.networkId === networkId) : all
  }

  network (id: string): NetworkRecord {
    const n = this.state.networks[id]
    if (!n) throw new FerryError('NETWORK_NOT_FOUND', `network ${id.slice(0, 12)} is not a ferry network (ferry has no record of it)`)
    return n
  }

  private endpoint (networkId: string, endpointId: string): EndpointRecord {
    const e = this.state.endpoints[endpointId]
    if (!e || e.networkId !== networkId) {
      throw new FerryError('ENDPOINT_NOT_FOUND', `endpoint ${endpointId.slice(0, 12)} of network ${networkId.slice(0, 12)} is not known to ferry`)
    }
    return e
  }

  /**
   * Check a network's flags and -o options without touching anything: what CreateNetwork
   * refuses, refused before the engine allocates a pool (NetworkDriver.GwAllocCheck, Docker 28+).
   */
  checkNetwork (input: Pick<CreateNetworkInput, 'generic' | 'internal' | 'ipv6' | 'ipv4'>): NetworkOptions {
    const opts = parseNetworkOptions(input.generic, input.internal)
    if (input.ipv4 === false && !input.ipv6) {
      throw new FerryError('INVALID_OPTION', 'a network needs at least one address family: --ipv4=false takes --ipv6 (an IPv6-only network)')
    }
    if (input.ipv4 === false && opts.overlay !== undefined) {
      throw new FerryError('UNSUPPORTED', `overlay networks need IPv4: create overlay ${opts.overlay} without --ipv4=false (dual-stack with --ipv6)`)
    }
    if (opts.overlay !== undefined && !this.d.overlay) {
      throw new FerryError('CLUSTER_UNAVAILABLE', `network option ferry.overlay=${opts.overlay} needs a cluster: start the agent with --cluster redis://HOST:PORT --advertise-addr IP`)
    }
    if (opts.overlay === undefined && opts.vni !== undefined) {
      throw new FerryError('INVALID_OPTION', 'option ferry.vni only applies to an overlay network: add -o ferry.overlay=NAME')
    }
    if (opts.overlay === undefined && opts.encrypt !== undefined) {
      throw new FerryError('INVALID_OPTION', 'option ferry.encrypt only applies to an overlay network: add -o ferry.overlay=NAME')
    }
    this.d.limits?.checkNetwork({ icc: opts.icc, ...(opts.encrypt !== undefined ? { encrypt: opts.encrypt } : {}) })
    return opts
  }

  async createNetwork (input: CreateNetworkInput): Promise<void> {
    // The flags and options first: refused as GwAllocCheck refuses them, whatever the pools.
    const opts = this.checkNetwork(input)
    if (input.extraIpv4Data > 0) throw new FerryError('UNSUPPORTED', 'ferry networks take exactly one IPv4 subnet')
    if ((input.extraIpv6Data ?? 0) > 0) throw new FerryError('UNSUPPORTED', 'ferry networks take at most one IPv6 subnet')
    if (input.ipv6 && input.subnet6 === undefined) {
      throw new FerryError('INVALID_REQUEST', 'the engine asked for an IPv6 network but sent no IPv6 pool: create ferry networks with --ipam-driver ferry')
    }
    if (input.ipv4 !== false && input.subnet === undefined) {
      throw new FerryError('INVALID_REQUEST', 'the engine asked for an IPv4 network but sent no IPv4 pool: create ferry networks with --ipam-driver ferry')
    }
    if (input.ipv4 === false && input.subnet !== undefined) {
      throw new FerryError('INVALID_REQUEST', `the engine asked for an IPv6-only network (enable_ipv4 false) but sent the IPv4 pool ${JSON.stringify(input.subnet.slice(0, 64))}`)
    }
    const auxOf = (list: string[] | undefined, family: Family): string[] => (list ?? []).map((a) => {
      if (!isIp(a, family) && !isCidr(a, family)) throw new FerryError('INVALID_REQUEST', `aux address ${JSON.stringify(a.slice(0, 64))} is not an IPv${family} address`)
      return parseAddress(a).ip
    })
    const aux = { v4: auxOf(input.auxAddresses, 4), v6: auxOf(input.auxAddresses6, 6) }
    return this.op(input.id, async () => {
      const existing = this.state.networks[input.id]
      if (existing) {
        if (existing.subnet === input.subnet && existing.subnet6 === input.subnet6) return // the engine retried
        throw new FerryError('NAME_CONFLICT', `network ${input.id.slice(0, 12)} already exists with subnet ${existing.subnet ?? existing.subnet6 ?? '?'}`)
      }
      const pool = input.subnet === undefined ? undefined : this.checkPoolGateway(input.subnet, input.gatewayCidr ?? '', 4)
      const pool6 = input.subnet6 === undefined ? undefined : this.checkPoolGateway(input.subnet6, input.gatewayCidr6 ?? '', 6)
      const pools = { ...(pool === undefined ? {} : { poolId: pool.id }), ...(pool6 === undefined ? {} : { poolId6: pool6.id }) }
      // An overlay has an IPv4 pool (checkNetwork refuses --ipv4=false there).
      if (opts.overlay !== undefined) return this.createOverlayNetwork(input, opts, opts.overlay, { ...pools, poolId: pool?.id ?? '' })
      if (opts.bridgeName !== undefined) return this.createBridgeNetwork(input, opts, pools, opts.bridgeName, aux)
      const { bridge } = await this.pickKernelNames(bridgeNameCandidates(input.id).map((b) => ({ bridge: b })), `network ${input.id.slice(0, 12)}`)
      try {
        return await this.createBridgeNetwork(input, opts, pools, bridge, aux)
      } finally {
        this.claimed.delete(bridge)
      }
    })
  }

  /**
   * The pool of `subnet` (IPv4Data[0] or IPv6Data[0]) must be ferry's, of that family, and the
   * gateway the engine got from RequestAddress (the bridge's address) one of its addresses,
   * allocated as the gateway.
   */
  private checkPoolGateway (subnet: string, gatewayCidr: string, family: Family): { id: string, subnet: string } {
    const pool = isCidr(subnet, family) ? this.d.ipam.poolBySubnet(subnet) : undefined
    if (!pool) {
      throw new FerryError('INVALID_REQUEST', `IPv${family} subnet ${JSON.stringify(subnet.slice(0, 64))} was not allocated by ferry's IPAM: create ferry networks with --ipam-driver ferry`)
    }
    const gw = parseSubnetAddress(gatewayCidr, pool.subnet, family === 4 ? 'gateway' : 'IPv6 gateway').address
    if (own(pool.allocated, gw)?.kind !== 'gateway') {
      throw new FerryError('INVALID_REQUEST', `gateway ${gw} was not allocated by ferry's IPAM as the gateway of pool ${pool.subnet}`)
    }
    return pool
  }

  /** Kernel names that no record, no request in flight and no link in the kernel has; claimed until released. */
  private async pickKernelNames<T extends Record<string, string>> (candidates: T[], what: string): Promise<T> {
    return pickNames(candidates, (name) => this.nameInUse(name), async (name) => (await this.bridge.link(name)) !== undefined,
      (names) => { for (const n of names) this.claimed.add(n) }, what)
  }

  private nameInUse (name: string): boolean {
    return this.claimed.has(name) || this.networks().some((n) => n.bridge === name) ||
      this.endpoints().some((e) => e.hostVeth === name || e.containerVeth === name)
  }

  private async createBridgeNetwork (input: CreateNetworkInput, opts: NetworkOptions, pools: { poolId?: string, poolId6?: string }, bridge: string,
    aux: { v4: string[], v6: string[] }): Promise<void> {
    if (opts.bridgeName !== undefined) {
      // The user's name: taken means refused (a derived name was already checked when it was picked).
      const other = this.networks().find((n) => n.bridge === bridge)
      if (other) throw new FerryError('NAME_CONFLICT', `bridge ${bridge} is already used by ferry network ${other.id.slice(0, 12)}`)
      const link = await this.bridge.link(bridge)
      if (link) {
        throw new FerryError('NAME_CONFLICT', `a ${link.kind ?? 'network'} device named ${bridge} already exists and is not ferry's: choose another com.docker.network.bridge.name or remove it`)
      }
    }
    const net = this.networkRecord(input, opts, pools, { bridge, ownsBridge: true, mtu: opts.mtu })
    await withUndo(async (undo) => {
      // The same operations a reconcile plans for a missing bridge: created (a fixed MAC), IPv6 settings, addresses, up.
      await this.bridge.ensureNetwork(net, undo)
      if (net.subnet6 !== undefined) await this.d.ipv6Forwarding?.()
      undo.push(`remove firewall rules of ${bridge}`, () => this.d.firewall.removeNetwork(net.id))
      await this.d.firewall.addNetwork(natNetwork(net))
      const path = recordNetwork(this.d.store, net)
      undo.push('forget network', async () => { await this.d.store.commit(forgetNetwork(this.d.store, net.id)) })
      await this.d.store.commit(path)
      if (pools.poolId !== undefined) await this.d.ipam.markAux(pools.poolId, aux.v4)
      if (pools.poolId6 !== undefined) await this.d.ipam.markAux(pools.poolId6, aux.v6)
    }, this.undoLog)
    this.d.log.info({ network: net.id, bridge, subnet: net.subnet, subnet6: net.subnet6 }, 'network created')
    this.d.onChange?.()
  }

  /**
   * An overlay network: the same command on every host joins one cluster-wide
   * definition (subnet, gateway, VNI). The bridge and VXLAN device belong to the
   * overlay data plane; the pool is tied to the overlay so that endpoint addresses
   * are allocated cluster-wide from now on.
   */
  private networkRecord (input: CreateNetworkInput, opts: NetworkOptions, pools: { poolId?: string, poolId6?: string },
    link: Pick<NetworkRecord, 'bridge' | 'ownsBridge' | 'mtu' | 'overlay'>): NetworkRecord {
    const v4: Partial<NetworkRecord> = input.subnet === undefined || pools.poolId === undefined
      ? {}
      : { subnet: input.subnet, gateway: addrOf(input.gatewayCidr ?? ''), poolId: pools.poolId }
    const v6: Partial<NetworkRecord> = input.subnet6 === undefined || pools.poolId6 === undefined
      ? {}
      : { subnet6: input.subnet6, gateway6: addrOf(input.gatewayCidr6 ?? ''), poolId6: pools.poolId6, gatewayMode6: opts.gatewayMode6 }
    return {
      id: input.id,
      ...v4,
      ...v6,
      icc: opts.icc,
      masquerade: opts.masquerade,
      internal: opts.internal,
      hostBindingIp: opts.hostBindingIp,
      options: Object.fromEntries(Object.entries(input.generic).map(([k, v]) => [k, String(v)])),
      createdAt: this.now(),
      ...link,
    }
  }

  private async createOverlayNetwork (input: CreateNetworkInput, opts: NetworkOptions, name: string, pools: { poolId: string, poolId6?: string }): Promise<void> {
    const { poolId, poolId6 } = pools
    const overlay = this.d.overlay!
    const taken = this.networks().find((n) => n.overlay?.name === name)
    const subnet = input.subnet ?? ''
    if (taken && taken.subnet !== subnet) {
      throw new FerryError('NAME_CONFLICT', `overlay ${name} already exists with subnet ${taken.subnet ?? '?'} (this host asked for ${subnet})`)
    }
    if (taken) throw new FerryError('NAME_CONFLICT', `overlay ${name} is already joined on this host by network ${taken.id.slice(0, 12)}`)
    const userMtu = Object.hasOwn(input.generic, 'com.docker.network.driver.mtu') ? opts.mtu : undefined
    await withUndo(async (undo) => {
      // A dual-stack overlay (--ipv6): its IPv6 subnet and gateway are part of the cluster-wide definition.
      const v6 = input.subnet6 === undefined || poolId6 === undefined ? {} : { subnet6: input.subnet6, gateway6: addrOf(input.gatewayCidr6 ?? '') }
      const att = await overlay.attach({ name, subnet, gateway: addrOf(input.gatewayCidr ?? ''), vni: opts.vni, mtu: userMtu, encrypt: opts.encrypt, ...v6 })
      undo.push(`leave overlay ${name}`, () => overlay.detach(name))
      const net = this.networkRecord(input, opts, pools, { bridge: att.bridge, ownsBridge: false, mtu: att.mtu, overlay: { name, vni: att.vni } })
      undo.push('remove firewall rules', () => this.d.firewall.removeNetwork(net.id))
      if (net.subnet6 !== undefined) await this.d.ipv6Forwarding?.()
      await this.d.firewall.addNetwork(natNetwork(net))
      // The pools' tie to the overlay reaches the disk with the network's record, in one write.
      const ids = poolId6 === undefined ? [poolId] : [poolId, poolId6]
      const changed = [...ids.map((id) => this.d.ipam.markOverlay(id, name)), recordNetwork(this.d.store, net)]
      undo.push('forget network', async () => { for (const id of ids) this.d.ipam.unmarkOverlay(id); forgetNetwork(this.d.store, net.id); await this.d.store.commit(...changed) })
      await this.d.store.commit(...changed)
      this.d.log.info({ network: net.id, overlay: name, vni: att.vni, bridge: att.bridge }, 'overlay network joined')
      this.d.onChange?.()
    }, this.undoLog)
  }

  /** The overlay a pool belongs to, if any. */
  overlayOfPool (poolId: string): string | undefined {
    return this.d.ipam.pool(poolId)?.overlay
  }

  /** Endpoint addresses of an overlay pool come from the cluster; the answer is a CIDR, as the engine expects. */
  async requestOverlayAddress (poolId: string, overlay: string, preferred: string, reclaim: boolean): Promise<string> {
    const pool = this.d.ipam.pool(poolId)!
    const ip = await this.d.overlay!.allocateAddress(overlay, preferred === '' ? undefined : preferred, reclaim, familyOf(pool.subnet) ?? 4)
    return `${ip}/${prefixOf(pool.subnet)}`
  }

  async releaseOverlayAddress (overlay: string, ip: string): Promise<void> {
    await this.d.overlay?.releaseAddress(overlay, ip)
  }

  /** This host's cluster state, re-asserted in Redis at every (re)connect. */
  localClusterState (): LocalClusterState {
    const nets = this.networks().filter((n) => n.overlay)
    const byId = new Map(nets.map((n) => [n.id, n]))
    const eps = this.endpoints().filter((e) => byId.has(e.networkId))
    return {
      // Overlays always have IPv4 (checkNetwork refuses --ipv4=false there), and so do their endpoints.
      overlays: nets.map((n) => ({ name: n.overlay!.name, subnet: n.subnet!, gateway: n.gateway!, vni: n.overlay!.vni,
        ...(n.options['ferry.encrypt'] === 'wireguard' ? { encrypt: 'wireguard' as const } : {}),
        ...(n.subnet6 !== undefined && n.gateway6 !== undefined ? { subnet6: n.subnet6, gateway6: n.gateway6 } : {}) })),
      addresses: eps.flatMap((e) => (e.address6 === undefined ? [e.address!] : [e.address!, e.address6]).map((ip) => ({ overlay: byId.get(e.networkId)!.overlay!.name, ip }))),
      endpoints: eps.map((e) => ({ overlay: byId.get(e.networkId)!.overlay!.name, endpointId: e.id, ip: e.address!, ...(e.address6 !== undefined ? { ip6: e.address6 } : {}), mac: e.mac })),
    }
  }

  async deleteNetwork (id: string): Promise<void> {
    return this.op(id, async () => {
      const net = this.state.networks[id]
      if (!net) return
      // Best effort: each step runs whatever failed before it, and every failure is reported
      // in one sentence. The record stays while a step failed, so that a retry finishes the job.
      const errors = new ErrorList()
      for (const ep of this.endpoints(id)) await this.removeEndpointNow(ep, errors)
      await errors.run(`removing the firewall rules of network ${id.slice(0, 12)}`, () => this.d.firewall.removeNetwork(id))
      const overlay = net.overlay
      if (overlay) await errors.run(`leaving overlay ${overlay.name}`, () => this.d.overlay?.detach(overlay.name))
      else if (net.ownsBridge) await errors.run(`deleting bridge ${net.bridge}`, () => this.bridge.removeNetwork(net))
      const whole = errors.errors.length === 0
      if (whole) forgetNetwork(this.d.store, id)
      await errors.run('saving the state', () => this.d.store.commit())
      // With no ferry network left, nothing of ferry stays in the firewall.
      if (whole && this.networks().length === 0) await errors.run('removing ferry\'s firewall', () => this.d.firewall.teardown())
      if (whole) this.d.log.info({ network: id, bridge: net.bridge }, 'network deleted')
      this.d.onChange?.()
      errors.throwIfAny(`deleting network ${id.slice(0, 12)} was incomplete`)
    })
  }

  async createEndpoint (input: CreateEndpointInput): Promise<{ mac?: string }> {
    return this.op(input.networkId, async () => {
      const net = this.network(input.networkId)
      // Refused here, not at ProgramExternalConnectivity: nothing of the request is made (an internal network publishes nothing).
      if (!net.internal) this.d.limits?.checkPorts(input.portRequests)
      const given = (cidr: string | undefined): cidr is string => cidr !== undefined && cidr !== ''
      const v4 = given(input.addressCidr) ? parseEndpointAddress(input.addressCidr, net) : undefined
      const v6 = given(input.addressCidr6) ? parseEndpointAddress6(input.addressCidr6, net) : undefined
      // The address of each family the network has (IPv6 on a dual-stack one is optional, as it always was).
      if (v4 === undefined && net.subnet !== undefined) throw new FerryError('INVALID_REQUEST', 'CreateEndpoint carries no IPv4 address: ferry networks need --ipam-driver ferry')
      if (v6 === undefined && net.subnet === undefined) throw new FerryError('INVALID_REQUEST', 'CreateEndpoint carries no IPv6 address on an IPv6-only network: ferry networks need --ipam-driver ferry')
      const existing = this.state.endpoints[input.endpointId]
      if (existing) {
        if (existing.networkId === input.networkId && existing.address === v4?.address && existing.address6 === v6?.address) {
          return input.mac === '' ? { mac: existing.mac } : {}
        }
        throw new FerryError('NAME_CONFLICT', `endpoint ${input.endpointId.slice(0, 12)} already exists on another network or address`)
      }
      if (v4 !== undefined) this.checkAddressAllocated(net, v4.address, 4)
      if (v6 !== undefined) this.checkAddressAllocated(net, v6.address, 6)
      const mac = input.mac === '' ? macForIp(v4?.address ?? v6!.address) : normalizeMac(input.mac)
      const names = await this.pickKernelNames(vethNameCandidates(input.endpointId), `endpoint ${input.endpointId.slice(0, 12)}`)
      try {
        const a = { mac, ...(v4 === undefined ? {} : { address: v4.address, prefixLen: v4.prefixLen }), ...(v6 === undefined ? {} : { address6: v6.address, prefixLen6: v6.prefixLen }) }
        return await this.createEndpointNow(input, net, a, names)
      } finally {
        this.claimed.delete(names.host)
        this.claimed.delete(names.container)
      }
    })
  }

  /** The veth pair (names picked and claimed by the caller), the record, the cluster. */
  private async createEndpointNow (input: CreateEndpointInput, net: NetworkRecord,
    a: { mac: string, address?: string, prefixLen?: number, address6?: string, prefixLen6?: number },
    names: { host: string, container: string }): Promise<{ mac?: string }> {
    const { address, mac } = a
    const ep: EndpointRecord = {
      id: input.endpointId,
      networkId: net.id,
      ...(address === undefined ? {} : { address, prefixLen: a.prefixLen }),
      ...(a.address6 === undefined ? {} : { address6: a.address6, prefixLen6: a.prefixLen6 }),
      mac,
      hostVeth: names.host,
      containerVeth: names.container,
      joined: false,
      portRequests: input.portRequests,
      ports: [],
      exposed: input.exposed,
      createdAt: this.now(),
    }
    await withUndo(async (undo) => {
      // Names no record and no link has (pickKernelNames): nothing to replace. A pair a
      // crash left behind under another name goes at the next reconcile. The pair is deleted
      // again (undo) only once it is ours. The host end of a dual-stack network's port takes no
      // IPv6 address; hairpin on: a container reaches itself through its own published port.
      // On an overlay, the bridge may have learned this MAC on the VXLAN port while the address
      // was a remote container's: forgotten, or frames from the tunnel are dropped.
      await this.bridge.addEndpoint(ep, net, { undo, ...(net.overlay ? { forgetOn: vxlanName(net.overlay.vni) } : {}) })
      const path = recordEndpoint(this.d.store, ep)
      undo.push('forget endpoint', async () => { await this.d.store.commit(forgetEndpoint(this.d.store, ep.id)) })
      await this.d.store.commit(path)
      if (net.overlay && address !== undefined) {
        // Published at create, not at join: remote hosts get a head start on programming it.
        undo.push('withdraw from the cluster', () => this.d.overlay!.withdraw(net.overlay!.name, ep.id))
        await this.d.overlay!.publish(net.overlay.name, ep.id, address, mac, undefined, ep.address6)
      }
    }, this.undoLog)
    this.d.log.info({ network: net.id, endpoint: ep.id, address, address6: ep.address6, veth: names.host }, 'endpoint created')
    this.d.onChange?.()
    return input.mac === '' ? { mac } : {}
  }

  async join (networkId: string, endpointId: string, sandboxKey: string): Promise<JoinResult> {
    return this.op(networkId, async () => {
      const net = this.network(networkId)
      const ep = this.endpoint(networkId, endpointId)
      if (!await this.bridge.upEndpoint(ep)) {
        throw new FerryError('KERNEL', `the host end ${ep.hostVeth} of endpoint ${endpointId.slice(0, 12)} is gone; remove and recreate the container`)
      }
      // Informational only (nothing is rebuilt from it): it reaches the disk with the
      // next commit, which spares every container start a synced write.
      this.d.store.touch(markJoined(ep, sandboxKey))
      // An internal network has no way out: no default route, and no docker_gwbridge either.
      return net.internal
        ? { srcName: ep.containerVeth, disableGatewayService: true }
        : { srcName: ep.containerVeth, ...(net.gateway === undefined ? {} : { gateway: net.gateway }), ...(net.gateway6 === undefined ? {} : { gateway6: net.gateway6 }), disableGatewayService: false }
    })
  }

  async leave (networkId: string, endpointId: string): Promise<void> {
    return this.op(networkId, async () => {
      const ep = this.state.endpoints[endpointId]
      if (!ep || ep.networkId !== networkId) return
      this.d.store.touch(markLeft(ep))
    })
  }

  async deleteEndpoint (networkId: string, endpointId: string): Promise<void> {
    return this.op(networkId, async () => {
      const ep = this.state.endpoints[endpointId]
      // Unknown here: nothing to do. Links are only ever deleted by the names an endpoint's
      // record holds (never derived from an id); what a crash left, reconcile removes.
      if (!ep || ep.networkId !== networkId) return
      // Forget first, then clean: a crash in between leaves only what reconcile (links,
      // rules) and the cluster re-assertion (Redis) remove by themselves. The other order
      // left a record whose DeleteEndpoint the engine retries with an empty body.
      await this.d.store.commit(forgetEndpoint(this.d.store, ep.id))
      const errors = new ErrorList()
      await this.removeEndpointNow(ep, errors)
      this.d.onChange?.()
      errors.throwIfAny(`deleting endpoint ${ep.id.slice(0, 12)} was incomplete`)
    })
  }

  /**
   * Remove an endpoint's kernel, firewall and cluster state, then its record (caller holds the
   * network lock and commits). Best effort: every step runs, failures go to `errors`, and the
   * record stays when one failed.
   */
  private async removeEndpointNow (ep: EndpointRecord, errors: ErrorList): Promise<void> {
    const failed = errors.errors.length
    const overlay = this.state.networks[ep.networkId]?.overlay
    if (overlay) await errors.run(`withdrawing endpoint ${ep.id.slice(0, 12)} from overlay ${overlay.name}`, () => this.d.overlay?.withdraw(overlay.name, ep.id))
    if (ep.ports.length > 0) await errors.run(`removing the published ports of endpoint ${ep.id.slice(0, 12)}`, () => this.d.firewall.removeEndpoint(ep.id))
    await this.bridge.removeEndpoint(ep, errors)
    if (errors.errors.length > failed) return
    forgetEndpoint(this.d.store, ep.id)
    this.d.log.info({ network: ep.networkId, endpoint: ep.id }, 'endpoint deleted')
  }

  /**
   * The engine asks IPAM for the address (RequestAddress), then creates the endpoint
   * with it: the address must be one ferry handed out for an endpoint (the local pool,
   * or the cluster for an overlay) and that no other endpoint holds. Not the gateway's,
   * not an --aux-address. (parseEndpointAddress already placed it in the subnet.)
   */
  private checkAddressAllocated (net: NetworkRecord, ip: string, family: Family): void {
    const taken = this.endpoints(net.id).find((e) => (family === 4 ? e.address : e.address6) === ip)
    if (taken) throw new FerryError('ADDRESS_IN_USE', `endpoint address ${ip} is already used by endpoint ${taken.id.slice(0, 12)} of network ${net.id.slice(0, 12)}`)
    if (net.overlay) {
      // Overlay endpoint addresses are allocated cluster-wide, to this host.
      if (this.d.overlay?.holdsAddress?.(net.overlay.name, ip) === false) {
        throw new FerryError('INVALID_REQUEST', `endpoint address ${ip} was not allocated to this host by the cluster for overlay ${net.overlay.name}: ask IPAM for it first (docker run --ip, or no address at all)`)
      }
      return
    }
    const poolId = (family === 4 ? net.poolId : net.poolId6) ?? ''
    const pool = this.d.ipam.pool(poolId)
    if (!pool) throw new FerryError('INVALID_REQUEST', `the IPv${family} address pool ${poolId} of network ${net.id.slice(0, 12)} was released: no endpoint can be added to it`)
    const use = own(pool.allocated, ip)
    if (use === undefined) {
      throw new FerryError('INVALID_REQUEST', `endpoint address ${ip} was not allocated by ferry's IPAM in pool ${pool.subnet}: ask IPAM for it first (docker run --ip, or no address at all)`)
    }
    if (use.kind === 'gateway') throw new FerryError('ADDRESS_IN_USE', `endpoint address ${ip} is the gateway's address of network ${net.id.slice(0, 12)}`)
    if (use.kind === 'aux') throw new FerryError('ADDRESS_IN_USE', `endpoint address ${ip} is reserved as an auxiliary address (--aux-address) of network ${net.id.slice(0, 12)}`)
  }

  /** Ports are allocated under one global lock: host ports are shared by every network. */
  async programExternalConnectivity (networkId: string, endpointId: string, requests: PortRequest[] | undefined): Promise<void> {
    return this.op(networkId, () => this.locks.run('ports', async () => {
      const net = this.network(networkId)
      const ep = this.endpoint(networkId, endpointId)
      if (net.internal) return
      const wanted = requests ?? ep.portRequests
      this.d.limits?.checkPorts(wanted)
      const others = this.endpoints().filter((e) => e.id !== ep.id)
      const reqs = wanted.map((r) => (r.hostIp === '' && net.hostBindingIp !== '' ? { ...r, hostIp: net.hostBindingIp } : r))
      const t = new Stopwatch()
      const ports = await this.d.ports.allocate(ep, reqs, others)
      t.lap('allocate')
      const before = ep.ports
      await withUndo(async (undo) => {
        this.d.store.touch(setPorts(ep, ports, wanted))
        undo.push('restore ports', async () => { setPorts(ep, before) })
        if (ports.length > 0 || before.length > 0) await this.d.firewall.setEndpoint(natEndpoint(ep))
        t.lap('firewall')
        undo.push('restore firewall', () => before.length > 0 ? this.d.firewall.setEndpoint(natEndpoint({ ...ep, ports: before })) : this.d.firewall.removeEndpoint(ep.id))
        await this.d.store.commit(['endpoints', ep.id])
        t.lap('store')
      }, this.undoLog)
      if (ports.length > 0) this.d.log.info({ endpoint: ep.id, ports: ports.length, ms: t.laps }, 'ports published')
      if (ports.length > 0 || before.length > 0) this.d.onChange?.() // DNS: SRV records of published ports
    }))
  }

  async revokeExternalConnectivity (networkId: string, endpointId: string): Promise<void> {
    return this.op(networkId, () => this.locks.run('ports', async () => {
      const ep = this.state.endpoints[endpointId]
      if (!ep || ep.networkId !== networkId || ep.ports.length === 0) return
      const t = new Stopwatch()
      await this.d.firewall.removeEndpoint(ep.id)
      t.lap('firewall')
      await this.d.store.commit(setPorts(ep, []))
      t.lap('store')
      this.d.log.debug({ endpoint: ep.id, ms: t.laps }, 'ports revoked')
      this.d.onChange?.()
    }))
  }

  operInfo (networkId: string, endpointId: string): Record<string, unknown> {
    const ep = this.state.endpoints[endpointId]
    if (!ep || ep.networkId !== networkId) return {}
    return {
      'com.docker.network.endpoint.macaddress': ep.mac,
      'ferry.host-veth': ep.hostVeth,
      'ferry.ports': ep.ports.map(publishedText),
    }
  }

  /**
   * Bring the kernel back to what the store says: recreate missing bridges and
   * addresses, re-enslave host veths, delete ferry-named links nobody needs, and
   * rewrite the firewall. Returns what it repaired. While the store is recovered
   * with loss (deps.storeLoss) it deletes no link and leaves the firewall alone.
   */
  async reconcile (): Promise<{ links: number, firewall: boolean }> {
    return this.rw.write(async () => {
      const lossy = this.d.storeLoss?.() === true
      const ops = await this.bridge.reconcile(this.networks(), this.endpoints(), { keepUnexplained: lossy }).catch((err: unknown) => {
        throw toFerryError(err, 'KERNEL', 'reconcile of links failed')
      })
      for (const op of ops) this.d.log.warn({ op }, 'reconcile repaired a link')
      if (this.networks().some((n) => n.subnet6 !== undefined)) await this.d.ipv6Forwarding?.()
      let firewall = false
      if (lossy) {
        // Rewriting the chains from a store that lost records would drop the NAT and
        // published ports of the containers it lost: they stay until the loss is handled.
        this.d.log.warn('reconcile leaves the firewall as it is: the store was recovered with loss (ferry doctor)')
      } else if (this.networks().length === 0) {
        await this.d.firewall.teardown()
      } else {
        // The records' revision with them: unchanged, the firewall does not compare them again.
        firewall = await this.d.firewall.reconcile({
          revision: recordsRevision(),
          networks: this.networks().map(natNetwork),
          endpoints: this.endpoints().filter((e) => e.ports.length > 0).map(natEndpoint),
        })
      }
      if (firewall) this.d.log.warn('reconcile repaired the firewall')
      return { links: ops.length, firewall }
    })
  }
}
