/**
 * ferry's own validated types, shared by the subsystems. The Docker wire shapes live
 * in src/plugin/wire.ts and are converted into these at the boundary.
 * Addresses are canonical strings of src/util/ip.ts (IPv4 dotted quads, IPv6 in RFC 5952
 * form); subnets are canonical CIDR strings. A network has an IPv4 subnet, an IPv6 one (the
 * `…6` fields), or both (dual-stack); an IPv6-only network (Docker 28's `--ipv4=false --ipv6`)
 * has no IPv4 fields, nor have its endpoints.
 */

export type Protocol = 'tcp' | 'udp' | 'sctp'

/** One requested port publication, as the engine sends it (host port 0 = pick one). */
export interface PortRequest {
  proto: Protocol
  containerPort: number
  /** Last container port of a range; equals containerPort for a single port. */
  containerPortEnd: number
  hostIp: string            // '' = every address of the host
  hostPort: number          // 0 = allocate from the ephemeral range
  hostPortEnd: number       // equals hostPort for a single port (0 when hostPort is 0)
}

/**
 * A publication after host-port allocation: what is programmed in the kernel. Its family
 * is containerIp's: a port published on all addresses of a dual-stack container is two
 * bindings, one per family, with the same host port.
 */
export interface PortBinding {
  proto: Protocol
  hostIp: string            // '' = every address of the host in containerIp's family
  hostPort: number
  hostPortEnd: number
  containerIp: string
  containerPort: number
  containerPortEnd: number
}

export interface ExposedPort { proto: Protocol, port: number }

export interface NetworkRecord {
  id: string                 // Docker NetworkID (64 hex)
  bridge: string             // Linux bridge name
  /** True when ferry created the bridge and may delete it. */
  ownsBridge: boolean
  /** The IPv4 side (absent on an IPv6-only network): subnet e.g. 10.20.0.0/24, gateway e.g. 10.20.0.1. */
  subnet?: string
  gateway?: string
  poolId?: string
  /** The IPv6 subnet of a dual-stack or IPv6-only network (docker network create --ipv6), e.g. fd00:1::/64. */
  subnet6?: string
  /** The IPv6 gateway on the bridge, e.g. fd00:1::1. */
  gateway6?: string
  poolId6?: string
  /**
   * com.docker.network.bridge.gateway_mode_ipv6: 'nat' (default: masquerade and DNAT like IPv4)
   * or 'routed' (no NAT; published ports are only opened in the filter, the host routes the prefix).
   */
  gatewayMode6?: 'nat' | 'routed'
  mtu: number
  icc: boolean
  masquerade: boolean
  internal: boolean
  /** Default host IP for port publications (com.docker.network.bridge.host_binding_ipv4). */
  hostBindingIp: string
  /** The user's -o options, kept for inspect. */
  options: Record<string, string>
  createdAt: string
  /** Set for a multi-host overlay network (-o ferry.overlay=NAME). */
  overlay?: { name: string, vni: number }
}

export interface EndpointRecord {
  id: string                 // Docker EndpointID
  networkId: string
  /** The container's IPv4 address (absent on an IPv6-only network). */
  address?: string
  prefixLen?: number
  /** The container's IPv6 address on a dual-stack or IPv6-only network (CreateEndpoint's AddressIPv6, without prefix). */
  address6?: string
  prefixLen6?: number
  mac: string
  hostVeth: string           // host end, enslaved to the bridge
  containerVeth: string      // handed to the engine in Join
  sandboxKey?: string
  joined: boolean
  /** Publications requested by the engine (kept as requested, for stable re-allocation). */
  portRequests: PortRequest[]
  /** Publications programmed (host ports resolved); empty until ProgramExternalConnectivity. */
  ports: PortBinding[]
  exposed: ExposedPort[]
  createdAt: string
}

/** An IPAM pool as ferry holds it. */
export interface PoolRecord {
  id: string                 // PoolID handed to the engine
  addressSpace: string
  subnet: string             // canonical CIDR
  range?: string             // --ip-range (SubPool), canonical CIDR inside subnet
  /** true when the user gave --subnet, false when ferry picked it. */
  userDefined: boolean
  /** Allocated addresses: ip -> what holds it. */
  allocated: Record<string, AddressUse>
  options: Record<string, string>
  createdAt: string
  /** The last address handed out without a preference (allocation continues after it). */
  cursor?: string
  /** The overlay this pool belongs to: its endpoint addresses are allocated cluster-wide. */
  overlay?: string
}

export interface AddressUse {
  /** recovered: seen in use in the kernel or the engine after the store lost its allocation (never released by ferry on its own). */
  kind: 'gateway' | 'aux' | 'endpoint' | 'recovered'
  at: string                 // ISO time of allocation
}

// ---- containers attached without the engine (src/runtime: ferry run, ferry attach, CNI) ----

/** Who attached a container: decides nothing but is shown. */
export type ContainerOwner = 'run' | 'attach' | 'cni'

/** A container's network mode (src/runtime/types.ts NetMode's kinds). */
export type ContainerMode = 'network' | 'none' | 'container' | 'host'

export interface LinkSpec { name: string, alias: string }

/** A process, with its start time (field 22 of /proc/PID/stat) against pid reuse. */
export interface ProcessRef { pid: number, startTime: string }

/** What the agent keeps for one attached namespace (State.containers, keyed by name). */
export interface ContainerRecord {
  id: string                  // 64 hex, made by ferry
  name: string
  owner: ContainerOwner
  mode: ContainerMode
  /** Path of the network namespace as given (or /proc/PID/ns/net). */
  netns: string
  /** A process of the namespace, when known (for nsenter). */
  pid?: number
  /** The process whose exit detaches. */
  watch?: ProcessRef
  /** ferry run: the command itself, which `ferry stop`/`ferry rm` signal (absent in records of older agents). */
  process?: ProcessRef
  /** ferry run -d: the command runs on its own; the watchdog detaches when it exits. */
  detached?: boolean
  /** ferry run -d: the file that gets the command's stdout and stderr (kept after it exits). */
  log?: string
  /** The variables given with -e/--env-file, KEY=VALUE (absent in records of older agents). */
  env?: string[]
  /** For mode network. */
  networkId?: string
  endpointId?: string
  /** The host end of its veth pair, as the endpoint's record names it (absent in records of older agents). */
  hostVeth?: string
  address?: string
  prefixLen?: number
  gateway?: string
  /** The IPv6 side on a dual-stack network (absent on an IPv4-only one and in records of older agents). */
  address6?: string
  prefixLen6?: number
  gateway6?: string
  mac?: string
  ifname: string
  /** For mode container: the container whose namespace this one shares. */
  sharesWith?: string
  aliases: string[]
  links: LinkSpec[]
  exposed: ExposedPort[]
  hostname: string
  dns: string[]
  dnsSearch: string[]
  /** Where the generated hosts and resolv.conf live, when written. */
  filesDir?: string
  createdAt: string
}

// ---- the admin API as its callers see it (the client is src/api/client.ts) ----

export type ApiMethod = 'GET' | 'POST' | 'DELETE'

/** One call of the agent's admin API: the answer's JSON, or the agent's FerryError. */
export type ApiRequest = <T>(method: ApiMethod, path: string, body?: unknown) => Promise<T>
