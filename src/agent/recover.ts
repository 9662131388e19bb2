/**
 * After the store lost acknowledged changes (a damaged journal line or state file,
 * src/store/store.ts), rebuild what it can from the kernel and the engine, so that
 * no container loses its network and no address is handed out twice:
 *
 * - an endpoint the engine still has on a ferry bridge network, or that a container
 *   record of `ferry run`/`ferry attach`/CNI names, whose host veth is still in the
 *   kernel, gets its record back (address, IPv6 address on a dual-stack network, MAC
 *   and veth names; its published ports are not recovered: neither the engine's
 *   network view nor the record carries them);
 * - every address in use, of either family, counts as allocated in its pool (the
 *   IPv4 or the IPv6 pool of its network): those of the store's own
 *   endpoints (a lost RequestAddress line), those the engine's endpoints hold, and
 *   those the kernel's neighbour table shows on ferry's bridges (containers of
 *   `ferry run`, `ferry attach` and CNI, which the engine does not know). The last
 *   two are reserved as `recovered`, which ferry never releases on its own.
 *
 * planRecovery is pure; LossRecovery runs it with the driver's requests held off.
 */
import type { Logger } from 'pino'
import type { EngineNames } from '../docker/client.js'
import type { LinkInfo, NeighEntry } from '../kernel/types.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../model/types.js'
import { macForIp, normalizeMac, vethNames } from '../bridge/names.js'
import { contains, isCidr, isIp, parseAddress } from '../util/ip.js'
import type { Ipam } from '../ipam/ipam.js'
import type { NetworkDriver } from '../driver/network.js'
import { recordEndpoint } from '../driver/records.js'
import type { Store } from '../store/store.js'
import type { ContainerRecord } from '../runtime/types.js'
import { toFerryError } from '../errors/errors.js'

export interface RecoveryFacts {
  networks: NetworkRecord[]
  endpoints: EndpointRecord[]
  /** The store's records of containers attached without the engine. */
  containers: ContainerRecord[]
  pool: (poolId: string) => PoolRecord | undefined
  /** undefined: the engine could not be asked (it usually starts after ferry). */
  engine: EngineNames | undefined
  links: LinkInfo[]
  /** Neighbour entries of ferry's bridges. */
  neighbours: NeighEntry[]
  now: string
}

export interface Reservation { poolId: string, ip: string, kind: 'endpoint' | 'recovered', why: string }

export interface RecoveryPlan {
  endpoints: EndpointRecord[]
  reserve: Reservation[]
  /** Engine endpoints that could not be rebuilt, and why (for the log). */
  skipped: string[]
}

/** "10.0.0.5/24" -> its parts, when it is an address with a prefix inside `subnet`. */
function parseEndpointCidr (cidr: string | undefined, subnet: string): { ip: string, prefixLen: number } | undefined {
  const p = cidr !== undefined && isCidr(cidr) ? parseAddress(cidr) : undefined
  if (p?.prefix === undefined || !contains(subnet, p.ip)) return undefined
  return { ip: p.ip, prefixLen: p.prefix }
}

function macOr (mac: string | undefined, ip: string): string {
  try { return mac === undefined ? macForIp(ip) : normalizeMac(mac) } catch { return macForIp(ip) }
}

/** The pool and gateway of the network's side (IPv4 or IPv6) whose subnet holds ip; undefined when neither does. */
function sideOf (net: NetworkRecord, ip: string): { poolId: string, gateway: string | undefined } | undefined {
  if (net.subnet !== undefined && net.poolId !== undefined && contains(net.subnet, ip)) return { poolId: net.poolId, gateway: net.gateway }
  if (net.subnet6 !== undefined && net.poolId6 !== undefined && contains(net.subnet6, ip)) return { poolId: net.poolId6, gateway: net.gateway6 }
  return undefined
}

export function planRecovery (f: RecoveryFacts): RecoveryPlan {
  const plan: RecoveryPlan = { endpoints: [], reserve: [], skipped: [] }
  const bridges = f.networks.filter((n) => !n.overlay)
  const byId = new Map(bridges.map((n) => [n.id, n]))
  const linkNames = new Set(f.links.map((l) => l.name))
  const held = new Map<string, Set<string>>() // poolId -> addresses allocated or planned
  const isHeld = (poolId: string, ip: string): boolean => f.pool(poolId)?.allocated[ip] !== undefined || held.get(poolId)?.has(ip) === true
  const reserve = (net: NetworkRecord, ip: string, kind: Reservation['kind'], why: string): void => {
    const side = sideOf(net, ip)
    if (side === undefined || ip === side.gateway || isHeld(side.poolId, ip) || f.pool(side.poolId) === undefined) return
    const set = held.get(side.poolId) ?? new Set<string>()
    set.add(ip)
    held.set(side.poolId, set)
    plan.reserve.push({ poolId: side.poolId, ip, kind, why })
  }
  const storeAddress = new Map<string, string>() // `${networkId} ${ip}` -> endpoint id
  for (const ep of f.endpoints) {
    const net = byId.get(ep.networkId)
    for (const ip of [ep.address, ep.address6]) {
      if (ip === undefined || ip === '') continue
      storeAddress.set(`${ep.networkId} ${ip}`, ep.id)
      if (net) reserve(net, ip, 'endpoint', `endpoint ${ep.id.slice(0, 12)} holds it`)
    }
  }
  const known = new Set(f.endpoints.map((e) => e.id))
  // Endpoints named by the engine, then by container records: { networkId, cidr, mac }.
  type Named = { networkId?: string, cidr?: string, cidr6?: string, mac?: string }
  const withPrefix = (ip: string | undefined, prefix: number | undefined): string | undefined => (ip === undefined || prefix === undefined ? undefined : `${ip}/${prefix}`)
  const named: Array<[string, Named, string]> = [
    ...[...f.engine?.endpoints ?? []].map(([id, e]) => [id, e, 'the engine'] as [string, Named, string]),
    ...f.containers.filter((c) => c.endpointId !== undefined && c.networkId !== undefined).map((c) => [c.endpointId!, {
      networkId: c.networkId, cidr: withPrefix(c.address, c.prefixLen), cidr6: withPrefix(c.address6, c.prefixLen6), mac: c.mac,
    }, `container ${c.name}`] as [string, Named, string]),
  ]
  for (const [id, e, source] of named) {
    const net = e.networkId === undefined ? undefined : byId.get(e.networkId)
    if (!net || known.has(id)) continue
    const addr = net.subnet === undefined ? undefined : parseEndpointCidr(e.cidr, net.subnet)
    const v6 = net.subnet6 === undefined ? undefined : parseEndpointCidr(e.cidr6, net.subnet6)
    // The address of the network's first family (IPv4, or IPv6 on an IPv6-only network) is required.
    const primary = net.subnet === undefined ? v6 : addr
    if (!primary) { plan.skipped.push(`${id.slice(0, 12)}: ${source} gives no address of ${net.subnet ?? net.subnet6 ?? '?'} for it`); continue }
    const other = storeAddress.get(`${net.id} ${primary.ip}`)
    if (other !== undefined) { plan.skipped.push(`${id.slice(0, 12)}: its address ${primary.ip} is endpoint ${other.slice(0, 12)}'s in the store`); continue }
    // The IPv6 address of a dual-stack network comes back only when it is of its IPv6 subnet and nobody else's.
    const addr6 = v6 !== undefined && (v6 === primary || !storeAddress.has(`${net.id} ${v6.ip}`)) ? v6 : undefined
    const veth = vethNames(id)
    if (!linkNames.has(veth.host)) {
      plan.skipped.push(`${id.slice(0, 12)}: its veth ${veth.host} is gone`)
      for (const a of [addr, addr6]) if (a !== undefined) reserve(net, a.ip, 'recovered', `${source}'s endpoint ${id.slice(0, 12)} holds it`)
      continue
    }
    plan.endpoints.push({
      id, networkId: net.id, ...(addr === undefined ? {} : { address: addr.ip, prefixLen: addr.prefixLen }), ...(addr6 === undefined ? {} : { address6: addr6.ip, prefixLen6: addr6.prefixLen }),
      mac: macOr(e.mac, primary.ip), hostVeth: veth.host, containerVeth: veth.container, joined: true, portRequests: [], ports: [], exposed: [], createdAt: f.now,
    })
    known.add(id)
    for (const a of [addr, addr6]) {
      if (a === undefined) continue
      storeAddress.set(`${net.id} ${a.ip}`, id)
      reserve(net, a.ip, 'endpoint', `endpoint ${id.slice(0, 12)} (rebuilt from ${source}) holds it`)
    }
  }
  for (const [networkId, ips] of f.engine?.addresses ?? []) {
    const net = byId.get(networkId)
    if (net) for (const ip of ips) if (isIp(ip)) reserve(net, ip, 'recovered', 'the engine shows it in use')
  }
  const byBridge = new Map(bridges.map((n) => [n.bridge, n]))
  for (const n of f.neighbours) {
    const net = byBridge.get(n.dev)
    if (net && isIp(n.ip)) reserve(net, n.ip, 'recovered', `the kernel has a neighbour ${n.ip} on ${n.dev}`)
  }
  return plan
}

export interface LossRecoveryDeps {
  store: Store
  driver: NetworkDriver
  ipam: Ipam
  links: { listLinks (): Promise<LinkInfo[]>, listNeigh (dev: string): Promise<NeighEntry[]> }
  /** The engine's view, or undefined when it cannot be asked. */
  engine: () => Promise<EngineNames | undefined>
  log: Logger
  now?: () => Date
}

/** Runs planRecovery until the engine has answered once (the kernel's part runs every time until then). */
export class LossRecovery {
  private done = false
  private running = false

  constructor (private readonly d: LossRecoveryDeps) {}

  async run (): Promise<void> {
    if (this.done || this.running) return
    this.running = true
    try {
      const engine = await this.d.engine()
      await this.d.driver.exclusive(async () => {
        const networks = this.d.driver.networks()
        const neighbours = (await Promise.all(networks.filter((n) => !n.overlay).map((n) => this.d.links.listNeigh(n.bridge).catch(() => [])))).flat()
        const plan = planRecovery({
          networks, endpoints: this.d.driver.endpoints(), containers: Object.values(this.d.store.state.containers ?? {}), pool: (id) => this.d.ipam.pool(id), engine,
          links: await this.d.links.listLinks(), neighbours, now: (this.d.now?.() ?? new Date()).toISOString(),
        })
        for (const ep of plan.endpoints) {
          if (this.d.store.state.endpoints[ep.id] !== undefined) continue
          await this.d.store.commit(recordEndpoint(this.d.store, ep))
        }
        let reserved = 0
        for (const r of plan.reserve) if (await this.d.ipam.reserve(r.poolId, r.ip, r.kind)) reserved++
        if (plan.endpoints.length > 0 || reserved > 0 || plan.skipped.length > 0) {
          this.d.log.warn({ endpoints: plan.endpoints.map((e) => e.id), reserved: plan.reserve.filter((r) => r.kind === 'recovered').map((r) => `${r.ip} (${r.why})`), skipped: plan.skipped },
            `store recovery: ${plan.endpoints.length} endpoint record(s) rebuilt from the engine and the kernel (their published ports are not recovered: reconnect those containers to publish again), ${reserved} address(es) marked in use`)
        }
      })
      this.done = engine !== undefined
    } catch (err) {
      this.d.log.warn({ err: toFerryError(err).message }, 'store recovery from the kernel and the engine failed; it is tried again at the next reconcile')
    } finally {
      this.running = false
    }
  }
}
