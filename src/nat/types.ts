/**
 * The firewall/NAT driver, at the level of intent: networks and port
 * publications, not rules. The real implementation (src/nat/iptables.ts) plans
 * iptables rules as data (src/nat/plan.ts, pure) and applies the difference in
 * one `iptables-restore --noflush -w` batch.
 */
import type { ExposedPort, PortBinding } from '../model/types.js'

export interface NatNetwork {
  id: string
  bridge: string
  subnet: string
  gateway: string
  icc: boolean
  masquerade: boolean
  internal: boolean
  /** `com.docker.network.host_ipv4`: SNAT outbound traffic to this host address instead of masquerading. */
  outboundAddr?: string
}

export interface NatEndpoint {
  id: string
  networkId: string
  address: string
  ports: PortBinding[]
}

export interface FirewallState {
  networks: NatNetwork[]
  endpoints: NatEndpoint[]
  /** Legacy links (ICC exceptions); undefined = keep the links the driver holds. */
  links?: NatLink[]
}

/**
 * A legacy container link (`--link child:alias`) on a network with ICC off:
 * the parent may open connections to the child's exposed ports, and the child
 * answers from them, as Docker's link rules allow. Nothing on an ICC network.
 */
export interface NatLink {
  id: string
  networkId: string
  /** The container that declared the link. */
  parentIp: string
  /** The linked container. */
  childIp: string
  /** The child's exposed ports. */
  ports: ExposedPort[]
}

/** The firewall intent of links, kept apart from FirewallDriver so that its fakes need not change. */
export interface LinkFirewall {
  /** Allow (or replace) one link's traffic. */
  allowLink (link: NatLink): Promise<void>
  /** Forget one link; unknown ids are fine. */
  removeLink (id: string): Promise<void>
  /** Ids of the links the driver holds. */
  linkIds (): string[]
}

export interface FirewallDriver {
  /** Make the kernel match `state` exactly (ferry's chains only); returns true when something had to be repaired. */
  reconcile (state: FirewallState): Promise<boolean>
  addNetwork (net: NatNetwork): Promise<void>
  removeNetwork (id: string): Promise<void>
  /** Program (or replace) the publications of one endpoint. */
  setEndpoint (ep: NatEndpoint): Promise<void>
  removeEndpoint (id: string): Promise<void>
  /** Remove every trace of ferry from the firewall (jumps and chains), FERRY-USER included only when empty. */
  teardown (): Promise<void>
}
