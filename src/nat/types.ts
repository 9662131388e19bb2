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
  /** The IPv4 subnet and gateway; absent on an IPv6-only network. */
  subnet?: string
  gateway?: string
  icc: boolean
  masquerade: boolean
  internal: boolean
  /** `com.docker.network.host_ipv4`: SNAT outbound traffic to this host address instead of masquerading. */
  outboundAddr?: string
  /** The IPv6 subnet of a dual-stack or IPv6-only network (canonical CIDR); absent: IPv4 only. */
  subnet6?: string
  gateway6?: string
  /**
   * How IPv6 leaves the network (`com.docker.network.bridge.gateway_mode_ipv6`): 'nat' (default) masquerades
   * and DNATs published ports as IPv4 does; 'routed' does neither: the host routes the prefix, and the
   * forward filter lets in the container ports that are published, nothing else.
   */
  mode6?: 'nat' | 'routed'
  /** `com.docker.network.host_ipv6`: SNAT outbound IPv6 to this host address instead of masquerading. */
  outboundAddr6?: string
  /**
   * TCP MSS clamping (an encrypted overlay, whose MTU is the underlay's less WireGuard's and VXLAN's
   * headers): the MSS of every TCP SYN and SYN-ACK forwarded into the bridge is lowered to what the
   * route's MTU allows (MTU - 40 for IPv4, - 60 for IPv6), in both families, so that a peer whose own
   * link is larger never sends segments that would have to be fragmented or are lost.
   */
  clampMss?: boolean
}

export interface NatEndpoint {
  id: string
  networkId: string
  /** The container's IPv4 address; absent on an IPv6-only network. */
  address?: string
  /** The container's IPv6 address on a dual-stack network. */
  address6?: string
  /** Each binding's family is its containerIp's (address or address6). */
  ports: PortBinding[]
}

export interface FirewallState {
  networks: NatNetwork[]
  endpoints: NatEndpoint[]
  /** Legacy links (ICC exceptions); undefined = keep the links the driver holds. */
  links?: NatLink[]
  /**
   * The caller's revision of `networks` and `endpoints` (the agent: its store's change
   * counter). A reconcile given the same revision as the last one that succeeded, with no
   * change of the driver's since, takes them as the state it already holds and does not
   * compare them (links, when given, are compared still). Undefined: always compared.
   */
  revision?: number
}

/**
 * A legacy container link (`--link child:alias`) on a network with ICC off (one per family:
 * parentIp and childIp are both IPv4 or both IPv6):
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
