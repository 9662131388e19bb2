/**
 * Pure planning of the bridge data plane: from the networks and endpoints ferry
 * holds, the links and addresses that must exist; and from what the kernel
 * reports, the operations that make it so. One planner per object (planBridge,
 * planVeth), used alike by a request (driver.ts: the object does not exist yet)
 * and by the reconcile (planReconcile: every object against a dump of the kernel).
 * The executor (apply.ts) runs them.
 */
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { AddressInfo, Ipv6ConfKey, LinkInfo } from '../kernel/types.js'
import { isFerryLinkName, macForIp } from './names.js'
import { prefixOf } from '../util/ip.js'
import { FerryError } from '../errors/errors.js'

export type { Ipv6ConfKey } from '../kernel/types.js'

/**
 * The per-interface IPv6 settings (net.ipv6.conf.<bridge>.*) of a dual-stack bridge, set
 * explicitly so that nothing depends on the namespace's defaults: IPv6 on, no router
 * advertisements accepted (the bridge is a router for its containers, and with forwarding
 * on the kernel would ignore them anyway), no SLAAC address of its own.
 */
export const BRIDGE_IPV6_CONF: ReadonlyArray<[Ipv6ConfKey, string]> = [['disable_ipv6', '0'], ['accept_ra', '0'], ['autoconf', '0']]
export const IPV6_CONF_KEYS: readonly Ipv6ConfKey[] = BRIDGE_IPV6_CONF.map(([k]) => k)

export interface DesiredBridge {
  name: string
  mtu: number
  /**
   * Every address of the bridge: the IPv4 gateway with the subnet's prefix (`10.20.0.1/24`), then the
   * IPv6 one (`fd00:1::1/64`) on a dual-stack network; the IPv6 one alone on an IPv6-only network.
   */
  addresses: string[]
  /** The IPv6 settings it must have: BRIDGE_IPV6_CONF on a dual-stack network, none otherwise (left as the kernel has them). */
  ipv6Conf: ReadonlyArray<[Ipv6ConfKey, string]>
  mac: string
}
export interface DesiredVeth { host: string, container: string, mtu: number, mac: string, master: string }

export type LinkOp =
  | { op: 'createBridge', name: string, mtu: number, mac: string }
  /** A veth pair; the MAC is the container end's (`peer`). */
  | { op: 'createVeth', name: string, peer: string, mtu: number, peerMac: string }
  | { op: 'setMtu', name: string, mtu: number }
  | { op: 'addAddress', name: string, cidr: string }
  | { op: 'setUp', name: string }
  | { op: 'setMaster', name: string, master: string }
  | { op: 'setHairpin', name: string }
  | { op: 'setIpv6Conf', name: string, key: Ipv6ConfKey, value: string }
  /** Forget a MAC the bridge learned on its port `dev` (an FDB entry of the master, NTF_MASTER). */
  | { op: 'forgetMac', dev: string, mac: string }
  | { op: 'deleteLink', name: string, why: string }

export function desiredBridge (net: NetworkRecord): DesiredBridge {
  const sides = [[net.gateway, net.subnet], [net.gateway6, net.subnet6]] as const
  const addresses = sides.flatMap(([gw, subnet]) => gw === undefined || subnet === undefined ? [] : [`${gw}/${prefixOf(subnet)}`])
  const v6 = net.subnet6 !== undefined && net.gateway6 !== undefined
  const gateway = net.gateway ?? net.gateway6
  if (gateway === undefined) throw new FerryError('INTERNAL', `network ${net.id.slice(0, 12)} has no gateway in either family`)
  return {
    name: net.bridge,
    mtu: net.mtu,
    addresses,
    ipv6Conf: v6 ? BRIDGE_IPV6_CONF : [],
    // The IPv4 gateway's bytes (02:42:a.b.c.d), or the last four of the IPv6 one's on an IPv6-only network.
    mac: macForIp(gateway),
  }
}

/**
 * What a bridge just created needs, in order: IPv6 settings (before the IPv6 address,
 * which needs disable_ipv6=0, and before it is up, so it never solicits or accepts an
 * RA), addresses, up. The reconcile plans the same operations for what is missing.
 */
export function bridgeSetupOps (b: DesiredBridge): LinkOp[] {
  return [
    ...b.ipv6Conf.map(([key, value]): LinkOp => ({ op: 'setIpv6Conf', name: b.name, key, value })),
    ...b.addresses.map((cidr): LinkOp => ({ op: 'addAddress', name: b.name, cidr })),
    { op: 'setUp', name: b.name },
  ]
}

/**
 * The host end of a veth on a dual-stack network is only a bridge port: IPv6 off on it, so it
 * takes no link-local or SLAAC address and sends no router solicitation. (The container end
 * loses its settings when the engine moves it into the container's namespace.) On an IPv4-only
 * network nothing is set: IPv6 may be missing from the kernel altogether.
 */
export function hostVethOps (host: string, net: Pick<NetworkRecord, 'subnet6'>): LinkOp[] {
  return net.subnet6 === undefined ? [] : [{ op: 'setIpv6Conf', name: host, key: 'disable_ipv6', value: '1' }]
}

export function desiredVeth (ep: EndpointRecord, net: NetworkRecord): DesiredVeth {
  return { host: ep.hostVeth, container: ep.containerVeth, mtu: net.mtu, mac: ep.mac, master: net.bridge }
}

/** What the kernel shows of a bridge: its link (undefined: none), its addresses, its IPv6 settings (undefined: not read). */
export interface BridgeState {
  link: LinkInfo | undefined
  addresses: readonly string[]
  ipv6Conf?: ReadonlyMap<Ipv6ConfKey, string>
}

/**
 * The operations that make one bridge as `b` says: created when it has no link (then every
 * setting: IPv6 settings, addresses, up), otherwise only what differs (MTU, a setting, a
 * missing address, down).
 */
export function planBridge (b: DesiredBridge, has: BridgeState): LinkOp[] {
  const { link } = has
  const ops: LinkOp[] = []
  if (!link) {
    ops.push({ op: 'createBridge', name: b.name, mtu: b.mtu, mac: b.mac })
  } else if (link.mtu !== b.mtu) {
    ops.push({ op: 'setMtu', name: b.name, mtu: b.mtu })
  }
  const conf = link ? has.ipv6Conf : undefined
  const setup = bridgeSetupOps(b).filter((op) => {
    switch (op.op) {
      case 'setIpv6Conf': return conf?.get(op.key) !== op.value
      case 'addAddress': return !has.addresses.includes(op.cidr)
      case 'setUp': return !link?.up
      default: return true
    }
  })
  return [...ops, ...setup]
}

/** What the kernel shows of an endpoint's host end: up, the name of its master, its hairpin mode (undefined: not reported). */
export interface HostEndState { up: boolean, master?: string, hairpin?: boolean }

/**
 * The operations for one endpoint's veth pair. `host` undefined: there is no pair yet (a
 * request: the pair, the host end's IPv6 settings, then it is enslaved, hairpin on and up);
 * otherwise what the host end lacks of that (the reconcile): its master, hairpin (a port
 * (re-)enslaved to another bridge starts with hairpin off; an unreported mode is left alone), up.
 */
export function planVeth (ep: EndpointRecord, net: NetworkRecord, host: HostEndState | undefined): LinkOp[] {
  const v = desiredVeth(ep, net)
  const ops: LinkOp[] = host !== undefined
    ? []
    : [{ op: 'createVeth', name: v.host, peer: v.container, mtu: v.mtu, peerMac: v.mac }, ...hostVethOps(v.host, net)]
  const h = host ?? { up: false }
  if (h.master !== v.master) ops.push({ op: 'setMaster', name: v.host, master: v.master })
  if (h.master !== v.master || h.hairpin === false) ops.push({ op: 'setHairpin', name: v.host })
  if (!h.up) ops.push({ op: 'setUp', name: v.host })
  return ops
}

/**
 * Operations that bring the kernel (links, addresses) to the desired state.
 * Endpoints whose host veth is gone are not recreated: their container side
 * went with the container, and the engine will delete the endpoint.
 * `keepUnexplained`: the store lost acknowledged changes (src/store/store.ts),
 * so a ferry-named link nothing in it needs may be a container's it forgot: it stays.
 */
export function planReconcile (
  networks: NetworkRecord[], endpoints: EndpointRecord[], links: LinkInfo[], addrs: AddressInfo[],
  opts: { keepUnexplained?: boolean, ipv6Conf?: ReadonlyMap<string, ReadonlyMap<Ipv6ConfKey, string>> } = {},
): LinkOp[] {
  const ops: LinkOp[] = []
  const byName = new Map(links.map((l) => [l.name, l]))
  const byIndex = new Map(links.map((l) => [l.index, l]))
  const netById = new Map(networks.map((n) => [n.id, n]))
  const wanted = new Set<string>()
  const addrsOf = new Map<string, string[]>()
  for (const a of addrs) {
    const list = addrsOf.get(a.ifname)
    if (list) list.push(a.cidr)
    else addrsOf.set(a.ifname, [a.cidr])
  }
  for (const net of networks) {
    // An overlay's bridge and VXLAN device belong to the overlay data plane (src/vxlan).
    if (net.overlay) continue
    const b = desiredBridge(net)
    wanted.add(b.name)
    ops.push(...planBridge(b, { link: byName.get(b.name), addresses: addrsOf.get(b.name) ?? [], ipv6Conf: opts.ipv6Conf?.get(b.name) }))
  }
  for (const ep of endpoints) {
    const net = netById.get(ep.networkId)
    if (!net) continue
    wanted.add(ep.hostVeth)
    wanted.add(ep.containerVeth)
    const host = byName.get(ep.hostVeth)
    if (!host) continue
    const master = host.master === undefined ? undefined : byIndex.get(host.master)?.name
    ops.push(...planVeth(ep, net, { up: host.up, master, hairpin: host.hairpin }))
  }
  for (const l of links) {
    if (opts.keepUnexplained === true || !isFerryLinkName(l.name) || wanted.has(l.name)) continue
    ops.push({ op: 'deleteLink', name: l.name, why: 'ferry owns it but no network or endpoint needs it' })
  }
  return ops
}
