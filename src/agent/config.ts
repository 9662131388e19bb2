/**
 * The agent's configuration, as `ferry agent`'s flags give it (src/agent/main.ts).
 */
import type { DefaultPool } from '../ipam/ipam.js'
import type { DnsConfig } from '../dns/feed.js'
import type { DefaultBridgeConfig } from '../runtime/service.js'
import type { FirewallBackend } from '../nat/backend.js'
import type { MetricsConfig } from '../metrics/config.js'

/** A plugin request waits this long for a cluster store that is reconnecting (a restart, a failover) before it fails. */
export const DEFAULT_CLUSTER_WAIT_MS = 10_000

export interface AgentConfig {
  pluginName: string
  pluginDir: string
  stateDir: string
  apiSocket: string
  dockerHost: string
  defaultPools?: DefaultPool[]
  /** How often the agent checks the kernel against its store (ms); 0 = never. */
  reconcileIntervalMs: number
  /** An endpoint of an engine network that the engine has not known for this long is deleted (ms). */
  orphanGraceMs?: number
  /** Multi-host overlay: the Redis control plane and this host's underlay address. */
  /** waitMs: how long a request waits for an unreachable cluster store (--cluster-wait; default 10 s). */
  cluster?: { url: string, advertiseAddr: string, advertiseAddr2?: string, hostId?: string, hostTtlMs?: number, keyFile?: string, waitMs?: number, wireguardPort?: number, keyRotationMs?: number, wireguardEndpoint?: string }
  /** The embedded DNS server (src/dns/feed.ts). */
  dns: DnsConfig
  /** The docker0-style default network (dockerd's --bridge/--bip/--icc/--ip-masq/--mtu); undefined = none. */
  defaultBridge?: DefaultBridgeConfig
  /** Containers attached without the engine: resolv.conf search domains, and how often dead ones are looked for (ms). */
  runtime?: { dnsSearch: string[], dnsOptions: string[], watchIntervalMs: number }
  /** Turn on net.ipv4.ip_forward at start (dockerd's --ip-forward); default true. */
  ipForward?: boolean
  /** Program NAT, publications and isolation with iptables (dockerd's --iptables); false: never run iptables. Default true. */
  iptables?: boolean
  /** `--firewall-backend` (dockerd's flag); undefined = nftables where it works, else iptables (src/nat/backend.ts). */
  firewallBackend?: FirewallBackend
  /** The opt-in Prometheus endpoint (--metrics-listen); undefined = no listener. */
  metrics?: MetricsConfig
  /** --recover-store: start even on a damaged state file, kept aside (src/store/store.ts). */
  recoverStore?: boolean
}
