/**
 * The firewall's desired state as a driver holds it (networks, endpoints with their
 * per-backend plan, links), with changes recorded so that one the kernel refuses is
 * undone. Shared by the iptables and nftables drivers; pure bookkeeping, no I/O.
 * An object set again with an equal value keeps its entry (an endpoint's plan is not
 * made again; the change records the same object before and after), so a reconcile
 * with nothing changed costs comparisons only.
 */
import { isDeepStrictEqual } from 'node:util'
import type { PortBinding } from '../model/types.js'
import type { FirewallState, NatEndpoint, NatLink, NatNetwork } from './types.js'

/** An endpoint, its plan, and the network object the plan was made with. */
export interface EndpointEntry<P> { ep: NatEndpoint, plan: P, net?: NatNetwork }

/** A change to the desired state: each object's value before it, and after. */
export interface Change<P> {
  endpoints: Map<string, { before?: EndpointEntry<P>, after?: EndpointEntry<P> }>
  networks: Map<string, { before?: NatNetwork, after?: NatNetwork }>
  links: Map<string, { before?: NatLink, after?: NatLink }>
}

/** What an endpoint's plan must say: whether one of its publications is on loopback. */
export interface LocalnetPlan { localnet: boolean }

export class DesiredState<P extends LocalnetPlan> {
  readonly networks = new Map<string, NatNetwork>()
  readonly endpoints = new Map<string, EndpointEntry<P>>()
  readonly links = new Map<string, NatLink>()
  /** Per network id: endpoints that publish on loopback. */
  private readonly localnetCount = new Map<string, number>()

  constructor (private readonly planEndpoint: (ep: NatEndpoint, net: NatNetwork | undefined) => P) {}

  state (): FirewallState {
    return { networks: [...this.networks.values()], endpoints: [...this.endpoints.values()].map((e) => e.ep), links: [...this.links.values()] }
  }

  newChange (): Change<P> {
    return { endpoints: new Map(), networks: new Map(), links: new Map() }
  }

  setLink (change: Change<P>, id: string, value: NatLink | undefined): void {
    const before = this.links.get(id)
    const link = before !== undefined && isDeepStrictEqual(before, value) ? before : value
    const c = change.links.get(id)
    if (c === undefined) change.links.set(id, { before, after: link })
    else c.after = link
    if (link === undefined) this.links.delete(id)
    else this.links.set(id, link)
  }

  setNetwork (change: Change<P>, id: string, value: NatNetwork | undefined): void {
    const before = this.networks.get(id)
    // An equal value keeps the object: the plans made with it stay valid (setEndpoint).
    const net = before !== undefined && isDeepStrictEqual(before, value) ? before : value
    const c = change.networks.get(id)
    if (c === undefined) change.networks.set(id, { before, after: net })
    else c.after = net
    if (net === undefined) this.networks.delete(id)
    else this.networks.set(id, net)
  }

  private countLocalnet (entry: EndpointEntry<P> | undefined, delta: number): void {
    if (entry === undefined || !entry.plan.localnet) return
    const id = entry.ep.networkId
    const n = (this.localnetCount.get(id) ?? 0) + delta
    if (n <= 0) this.localnetCount.delete(id)
    else this.localnetCount.set(id, n)
  }

  setEndpoint (change: Change<P>, id: string, ep: NatEndpoint | undefined): void {
    const before = this.endpoints.get(id)
    const net = ep === undefined ? undefined : this.networks.get(ep.networkId)
    const same = before !== undefined && ep !== undefined && before.net === net && isDeepStrictEqual(before.ep, ep)
    const after = ep === undefined ? undefined : same ? before : { ep, plan: this.planEndpoint(ep, net), net }
    const c = change.endpoints.get(id)
    if (c === undefined) change.endpoints.set(id, { before, after })
    else c.after = after
    this.countLocalnet(before, -1)
    this.countLocalnet(after, +1)
    if (after === undefined) this.endpoints.delete(id)
    else this.endpoints.set(id, after)
  }

  /** A network and, re-planned, the endpoints already known on it (they follow its bridge and internal flag). */
  addNetwork (change: Change<P>, net: NatNetwork): void {
    this.setNetwork(change, net.id, net)
    for (const e of this.endpoints.values()) if (e.ep.networkId === net.id) this.setEndpoint(change, e.ep.id, e.ep)
  }

  /** A network and its endpoints. */
  removeNetwork (change: Change<P>, id: string): void {
    for (const e of this.endpoints.values()) if (e.ep.networkId === id) this.setEndpoint(change, e.ep.id, undefined)
    if (this.networks.has(id)) this.setNetwork(change, id, undefined)
  }

  /**
   * Make the desired state `state` (links kept when it names none; endpoints of unknown networks dropped).
   * `linksOnly`: the networks and endpoints are known to be those held (not walked).
   */
  replace (change: Change<P>, state: FirewallState, linksOnly = false): void {
    if (state.links !== undefined) {
      const want = new Map(state.links.map((l) => [l.id, l]))
      for (const id of [...this.links.keys()]) if (!want.has(id)) this.setLink(change, id, undefined)
      for (const l of want.values()) this.setLink(change, l.id, l)
    }
    if (linksOnly) return
    const nets = new Map(state.networks.map((n) => [n.id, n]))
    for (const id of [...this.networks.keys()]) if (!nets.has(id)) this.setNetwork(change, id, undefined)
    for (const n of state.networks) this.setNetwork(change, n.id, n)
    const eps = new Map(state.endpoints.filter((e) => nets.has(e.networkId)).map((e) => [e.id, e]))
    for (const id of [...this.endpoints.keys()]) if (!eps.has(id)) this.setEndpoint(change, id, undefined)
    for (const ep of eps.values()) this.setEndpoint(change, ep.id, ep)
  }

  /** Put the desired state back as it was before `change`. */
  undo (change: Change<P>): void {
    for (const [id, { before }] of change.endpoints) {
      this.countLocalnet(this.endpoints.get(id), -1)
      this.countLocalnet(before, +1)
      if (before === undefined) this.endpoints.delete(id)
      else this.endpoints.set(id, before)
    }
    for (const [id, { before }] of change.networks) {
      if (before === undefined) this.networks.delete(id)
      else this.networks.set(id, before)
    }
    for (const [id, { before }] of change.links) {
      if (before === undefined) this.links.delete(id)
      else this.links.set(id, before)
    }
  }

  /** Bridges whose endpoints publish on loopback. */
  localnetBridges (): Set<string> {
    const out = new Set<string>()
    for (const id of this.localnetCount.keys()) {
      const net = this.networks.get(id)
      if (net !== undefined) out.add(net.bridge)
    }
    return out
  }

  clear (): void {
    this.networks.clear()
    this.endpoints.clear()
    this.links.clear()
    this.localnetCount.clear()
  }
}

/** UDP publications a change removed and added (for conntrack). */
export function udpDelta<P> (change: Change<P>): { removed: PortBinding[], added: PortBinding[] } {
  const removed: PortBinding[] = []
  const added: PortBinding[] = []
  const key = (b: PortBinding): string => JSON.stringify(b)
  for (const { before, after } of change.endpoints.values()) {
    const old = new Map((before?.ep.ports ?? []).filter((p) => p.proto === 'udp').map((p) => [key(p), p]))
    const next = new Map((after?.ep.ports ?? []).filter((p) => p.proto === 'udp').map((p) => [key(p), p]))
    for (const [k, p] of old) if (!next.has(k)) removed.push(p)
    for (const [k, p] of next) if (!old.has(k)) added.push(p)
  }
  return { removed, added }
}
