/**
 * Pure planning of the bridge data plane: from the networks and endpoints ferry
 * holds, the links and addresses that must exist; and from what the kernel
 * reports, the operations that make it so. The executor (apply.ts) runs them.
 */
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { AddressInfo, Ipv6ConfKey, LinkInfo } from '../kernel/types.js'
import { isFerryLinkName, macForIp } from './names.js'
import { prefixOf } from '../util/ip.js'

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
  /** The IPv4 gateway with the subnet's prefix (`10.20.0.1/24`). */
  address: string
  /** Every address of the bridge: the IPv4 gateway, then the IPv6 one on a dual-stack network (`fd00:1::1/64`). */
  addresses: string[]
  /** The IPv6 settings it must have: BRIDGE_IPV6_CONF on a dual-stack network, none otherwise (left as the kernel has them). */
  ipv6Conf: ReadonlyArray<[Ipv6ConfKey, string]>
  mac: string
}
export interface DesiredVeth { host: string, container: string, mtu: number, mac: string, master: string }

export type LinkOp =
  | { op: 'createBridge', name: string, mtu: number, mac: string }
  | { op: 'setMtu', name: string, mtu: number }
  | { op: 'addAddress', name: string, cidr: string }
  | { op: 'setUp', name: string }
  | { op: 'setMaster', name: string, master: string }
  | { op: 'setHairpin', name: string }
  | { op: 'setIpv6Conf', name: string, key: Ipv6ConfKey, value: string }
  | { op: 'deleteLink', name: string, why: string }

export function desiredBridge (net: NetworkRecord): DesiredBridge {
  const address = `${net.gateway}/${prefixOf(net.subnet)}`
  const dual = net.subnet6 !== undefined && net.gateway6 !== undefined
  return {
    name: net.bridge,
    mtu: net.mtu,
    address,
    addresses: dual ? [address, `${net.gateway6}/${prefixOf(net.subnet6!)}`] : [address],
    ipv6Conf: dual ? BRIDGE_IPV6_CONF : [],
    mac: macForIp(net.gateway),
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
  for (const net of networks) {
    // An overlay's bridge and VXLAN device belong to the overlay data plane (src/vxlan).
    if (net.overlay) continue
    const b = desiredBridge(net)
    wanted.add(b.name)
    const link = byName.get(b.name)
    if (!link) {
      ops.push({ op: 'createBridge', name: b.name, mtu: b.mtu, mac: b.mac })
    } else if (link.mtu !== b.mtu) {
      ops.push({ op: 'setMtu', name: b.name, mtu: b.mtu })
    }
    const conf = link ? opts.ipv6Conf?.get(b.name) : undefined
    const setup = bridgeSetupOps(b).filter((op) => {
      switch (op.op) {
        // A bridge just created (no link yet) gets every setting; an existing one those that differ.
        case 'setIpv6Conf': return conf?.get(op.key) !== op.value
        case 'addAddress': return !addrs.some((a) => a.ifname === b.name && a.cidr === op.cidr)
        case 'setUp': return !link?.up
        default: return true
      }
    })
    ops.push(...setup)
  }
  for (const ep of endpoints) {
    const net = netById.get(ep.networkId)
    if (!net) continue
    const v = desiredVeth(ep, net)
    wanted.add(v.host)
    wanted.add(v.container)
    const host = byName.get(v.host)
    if (!host) continue
    const master = host.master === undefined ? undefined : byIndex.get(host.master)?.name
    if (master !== v.master) ops.push({ op: 'setMaster', name: v.host, master: v.master })
    // A port (re-)enslaved to another bridge starts with hairpin off; an unreported mode is left alone.
    if (master !== v.master || host.hairpin === false) ops.push({ op: 'setHairpin', name: v.host })
    if (!host.up) ops.push({ op: 'setUp', name: v.host })
  }
  for (const l of links) {
    if (opts.keepUnexplained === true || !isFerryLinkName(l.name) || wanted.has(l.name)) continue
    ops.push({ op: 'deleteLink', name: l.name, why: 'ferry owns it but no network or endpoint needs it' })
  }
  return ops
}
