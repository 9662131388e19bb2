/**
 * The firewall/NAT driver, at the level of intent: networks and port
 * publications, not rules. The real implementation (src/nat/iptables.ts) plans
 * iptables rules as data (src/nat/plan.ts, pure) and applies the difference in
 * one `iptables-restore --noflush -w` batch.
 */
import type { PortBinding } from '../model/types.js'

export interface NatNetwork {
  id: string
  bridge: string
  subnet: string
  gateway: string
  icc: boolean
  masquerade: boolean
  internal: boolean
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
