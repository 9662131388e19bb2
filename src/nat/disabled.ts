/**
 * The firewall of an agent started with `--iptables=false`, as dockerd's: ferry
 * never runs iptables, iptables-restore or iptables-save. Networks, endpoints,
 * links and reconciles plan nothing; rules an earlier run left stay as they are
 * (`ferry doctor` reports them). Outbound NAT and isolation are the admin's.
 *
 * Publishing a port needs iptables in ferry (there is no userland proxy), so
 * every request that publishes is refused with one sentence, before anything of
 * it is made (FirewallLimits, checked by the network driver while validating).
 * A network with enable_icc=false is refused the same way: nothing would block
 * the traffic it asks to block; so is an encrypted overlay: nothing would keep
 * plain VXLAN from the underlay out of it (docs/encryption.md: injection).
 */
import type { Logger } from 'pino'
import { FerryError } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord, PortRequest } from '../model/types.js'
import type { FirewallDriver, LinkFirewall, NatEndpoint, NatNetwork } from './types.js'

/** What a firewall cannot do, checked before anything of a request is applied. */
export interface FirewallLimits {
  /** Throws when these ports cannot be published. */
  checkPorts (requests: readonly PortRequest[]): void
  /** Throws when the network asks for what this firewall cannot do. */
  checkNetwork (net: Pick<NatNetwork, 'icc'> & { encrypt?: string }): void
}

/**
 * At start with --iptables=false: what the store holds that the firewall no longer provides.
 * Rules of an earlier run stay untouched (as with dockerd); ferry doctor reports them.
 */
export function warnWithoutIptables (networks: readonly NetworkRecord[], endpoints: readonly EndpointRecord[], log: Pick<Logger, 'warn'>): void {
  log.warn('iptables is off (--iptables=false): no outbound NAT, no published ports, no isolation between networks; rules left by an earlier run stay as they are')
  for (const n of networks) {
    if (!n.icc) log.warn({ network: n.id, bridge: n.bridge }, 'this network has enable_icc=false, but without iptables nothing blocks traffic between its containers')
  }
  const published = endpoints.filter((e) => e.ports.length > 0)
  if (published.length > 0) log.warn({ endpoints: published.map((e) => e.id) }, 'these endpoints published ports with iptables on: ferry no longer maintains their rules')
}

/** The refusal of a request that publishes ports while the agent runs with --iptables=false. */
export function portsRefused (): FerryError {
  return new FerryError('UNSUPPORTED', 'cannot publish ports: the ferry agent runs with --iptables=false and ferry publishes ports only through iptables ' +
    '(it has no userland proxy); publish no ports and reach the container at its own address, or restart the agent without --iptables=false')
}

/** The refusal of a network with enable_icc=false while the agent runs with --iptables=false. */
export function iccRefused (): FerryError {
  return new FerryError('UNSUPPORTED', 'com.docker.network.bridge.enable_icc=false needs iptables to block traffic between containers, and the ferry agent ' +
    'runs with --iptables=false: leave the option out, or restart the agent without --iptables=false')
}

/** The refusal of an encrypted overlay while the agent runs with --iptables=false. */
export function encryptRefused (): FerryError {
  return new FerryError('UNSUPPORTED', 'ferry.encrypt=wireguard needs ferry\'s firewall to drop plain VXLAN (UDP 4799) arriving from the underlay, and the ' +
    'ferry agent runs with --iptables=false: restart the agent without --iptables=false, or use a plain overlay')
}

export class DisabledFirewall implements FirewallDriver, LinkFirewall, FirewallLimits {
  checkPorts (requests: readonly PortRequest[]): void {
    if (requests.length > 0) throw portsRefused()
  }

  checkNetwork (net: Pick<NatNetwork, 'icc'> & { encrypt?: string }): void {
    if (!net.icc) throw iccRefused()
    if (net.encrypt !== undefined) throw encryptRefused()
  }

  /** Nothing to compare: the kernel's rules are not ferry's business in this mode. */
  async reconcile (): Promise<boolean> { return false }
  async addNetwork (): Promise<void> {}
  async removeNetwork (): Promise<void> {}
  /** Reached only past the driver's checks; refused again so that no publication is ever recorded as programmed. */
  async setEndpoint (ep: NatEndpoint): Promise<void> {
    if (ep.ports.length > 0) throw portsRefused()
  }

  async removeEndpoint (): Promise<void> {}
  /** Leaves an earlier run's rules alone, as dockerd --iptables=false does. */
  async teardown (): Promise<void> {}
  async allowLink (): Promise<void> {}
  async removeLink (): Promise<void> {}
  linkIds (): string[] { return [] }
}
