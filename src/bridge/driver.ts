/**
 * The bridge data plane at the level of intent: ensure a network's bridge, add and
 * remove an endpoint's veth pair, bring the kernel back to the store (reconcile).
 * Every change is planned by plan.ts (the same per-object planners for a request and
 * for the reconcile) and run by the one executor (apply.ts), so a request and a
 * reconcile reach the same kernel state by the same operations. The network driver
 * (src/driver/network.ts) calls it for requests and for the reconcile alike.
 */
import { ErrorList } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { LinkDriver, LinkInfo } from '../kernel/types.js'
import type { UndoStack } from '../util/undo.js'
import { applyLinkOps } from './apply.js'
import { IPV6_CONF_KEYS, desiredBridge, planBridge, planReconcile, planVeth, type Ipv6ConfKey, type LinkOp } from './plan.js'

export class BridgeDriver {
  constructor (private readonly links: LinkDriver) {}

  /** The link of that name, if any (kernel names are picked among those no link has). */
  link (name: string): Promise<LinkInfo | undefined> {
    return this.links.getLink(name)
  }

  /**
   * Make the bridge of a network ferry owns as the plan says: created with every setting when
   * it has no link (the common case: its name was just picked), otherwise repaired. A bridge it
   * creates is deleted through `undo` when a later step of the caller fails.
   */
  async ensureNetwork (net: NetworkRecord, undo?: UndoStack): Promise<void> {
    const b = desiredBridge(net)
    const link = await this.links.getLink(b.name)
    const has = link === undefined
      ? { link, addresses: [] }
      : {
          link,
          addresses: (await this.links.listAddresses()).filter((a) => a.ifname === b.name).map((a) => a.cidr),
          ipv6Conf: net.subnet6 === undefined ? undefined : await this.readIpv6Conf(b.name),
        }
    await applyLinkOps(this.links, planBridge(b, has), undo)
  }

  /** Delete a network's bridge when it is ferry's own (not an overlay's, which src/vxlan owns). Gone already is fine. */
  async removeNetwork (net: Pick<NetworkRecord, 'bridge' | 'ownsBridge' | 'overlay'>): Promise<void> {
    if (net.overlay !== undefined || !net.ownsBridge) return
    await applyLinkOps(this.links, [{ op: 'deleteLink', name: net.bridge, why: 'its network was deleted' }])
  }

  /**
   * Create an endpoint's veth pair (names no link has: picked by the caller), a port of its
   * network's bridge, up. `forgetOn`: a port of the bridge on which the endpoint's MAC may
   * have been learned while it was someone else's (an overlay's VXLAN device): forgotten there.
   * The pair is deleted through `undo` when a later step of the caller fails.
   */
  async addEndpoint (ep: EndpointRecord, net: NetworkRecord, opts: { undo?: UndoStack, forgetOn?: string } = {}): Promise<void> {
    const ops = planVeth(ep, net, undefined)
    if (opts.forgetOn !== undefined) ops.push({ op: 'forgetMac', dev: opts.forgetOn, mac: ep.mac })
    await applyLinkOps(this.links, ops, opts.undo)
  }

  /** Bring an endpoint's host end up (join); false when it is gone. */
  async upEndpoint (ep: Pick<EndpointRecord, 'hostVeth'>): Promise<boolean> {
    const host = await this.links.getLink(ep.hostVeth)
    if (!host) return false
    if (!host.up) await applyLinkOps(this.links, [{ op: 'setUp', name: ep.hostVeth }])
    return true
  }

  /**
   * Delete an endpoint's veth pair by the names its record holds (gone already is fine). Best
   * effort: both ends are tried; failures go to `errors` when given, else are thrown together.
   */
  async removeEndpoint (ep: Pick<EndpointRecord, 'hostVeth' | 'containerVeth'>, errors?: ErrorList): Promise<void> {
    const list = errors ?? new ErrorList()
    for (const name of [ep.hostVeth, ep.containerVeth]) {
      await list.run(`deleting veth ${name}`, () => applyLinkOps(this.links, [{ op: 'deleteLink', name, why: 'its endpoint was deleted' }]))
    }
    if (errors === undefined) list.throwIfAny(`deleting the veth pair ${ep.hostVeth} failed`)
  }

  /**
   * Bring the kernel's links and addresses back to what the networks and endpoints say
   * (planReconcile); returns the operations it ran. `keepUnexplained`: delete no link.
   */
  async reconcile (networks: NetworkRecord[], endpoints: EndpointRecord[], opts: { keepUnexplained?: boolean } = {}): Promise<LinkOp[]> {
    const [links, addrs] = await Promise.all([this.links.listLinks(), this.links.listAddresses()])
    const present = new Set(links.map((l) => l.name))
    const ipv6Conf = new Map<string, Map<Ipv6ConfKey, string>>()
    for (const net of networks) {
      if (net.subnet6 === undefined || net.overlay || !present.has(net.bridge)) continue
      ipv6Conf.set(net.bridge, await this.readIpv6Conf(net.bridge))
    }
    const ops = planReconcile(networks, endpoints, links, addrs, { keepUnexplained: opts.keepUnexplained === true, ipv6Conf })
    await applyLinkOps(this.links, ops)
    return ops
  }

  /** The IPv6 settings of a dual-stack bridge that exists (a key the kernel does not show is left out). */
  private async readIpv6Conf (bridge: string): Promise<Map<Ipv6ConfKey, string>> {
    const conf = new Map<Ipv6ConfKey, string>()
    for (const key of IPV6_CONF_KEYS) {
      const v = await this.links.getIpv6Conf(bridge, key)
      if (v !== undefined) conf.set(key, v)
    }
    return conf
  }
}
