/**
 * Pure planning of the bridge data plane: from the networks and endpoints ferry
 * holds, the links and addresses that must exist; and from what the kernel
 * reports, the operations that make it so. The executor (apply.ts) runs them.
 */
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { AddressInfo, LinkInfo } from '../kernel/types.js'
import { isFerryLinkName, macForIp } from './names.js'
import { prefixOf } from '../util/ip.js'

export interface DesiredBridge { name: string, mtu: number, address: string, mac: string }
export interface DesiredVeth { host: string, container: string, mtu: number, mac: string, master: string }

export type LinkOp =
  | { op: 'createBridge', name: string, mtu: number, mac: string }
  | { op: 'setMtu', name: string, mtu: number }
  | { op: 'addAddress', name: string, cidr: string }
  | { op: 'setUp', name: string }
  | { op: 'setMaster', name: string, master: string }
  | { op: 'setHairpin', name: string }
  | { op: 'deleteLink', name: string, why: string }

export function desiredBridge (net: NetworkRecord): DesiredBridge {
  return { name: net.bridge, mtu: net.mtu, address: `${net.gateway}/${prefixOf(net.subnet)}`, mac: macForIp(net.gateway) }
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
  opts: { keepUnexplained?: boolean } = {},
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
    if (!addrs.some((a) => a.ifname === b.name && a.cidr === b.address)) ops.push({ op: 'addAddress', name: b.name, cidr: b.address })
    if (!link?.up) ops.push({ op: 'setUp', name: b.name })
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
