/**
 * The cluster control plane as ferry's subsystems see it: membership (hosts and
 * their VTEP with a heartbeat TTL), overlay definitions (subnet, gateway, VNI),
 * cluster-wide address allocation and the published endpoints of every overlay,
 * with a revision and pushed change events.
 *
 * Two implementations share one client (src/cluster/client.ts) and differ only
 * in the backend that does the atomic work: Redis through Lua scripts
 * (src/cluster/redis.ts) and an in-memory model with the same semantics
 * (test/harness/cluster-memory.ts) for unit tests of consumers.
 */
import type { RejectCounter } from './rejects.js'
import type { EndpointTable } from './endpoints.js'
import type { WireGuardInfo } from '../wireguard/plan.js'
import type { Feature } from './features.js'

/** A registered host (agent). Times are milliseconds since the epoch, by the server's clock. */
export interface HostInfo {
  hostId: string
  /** The VTEP (underlay) address other hosts send VXLAN traffic to. */
  vtep: string
  version: string
  lastHeartbeat: number
  /** When the host is removed unless it sends another heartbeat. */
  expiresAt: number
  registeredAt: number
  /** Its WireGuard public key, port and tunnel address (encrypted overlays), when it publishes them. */
  wg?: WireGuardInfo
  /** The record features it understands (src/cluster/features.ts); absent: none signalled (an older version). */
  features?: Feature[]
  /**
   * A dual-stack host's second VTEP, of the other family than `vtep` (a second `--advertise-addr`).
   * Stored and pushed apart from the host record, which older versions read (src/cluster/validate.ts readHostVtep).
   */
  vtep2?: string
}

/** What a host asks for when it creates an overlay network (the same on every host). */
export interface OverlayRequest {
  name: string
  /** Canonical IPv4 CIDR, e.g. 10.30.0.0/16. */
  subnet: string
  /** The gateway address, the same on every host (each host's bridge holds it). */
  gateway: string
  /** A user-given VNI (-o ferry.vni); absent = the cluster allocates one from 4096 up. */
  vni?: number
  /** -o ferry.encrypt=wireguard; joining with another value is refused (NAME_CONFLICT). */
  encrypt?: 'wireguard'
  /** A dual-stack overlay (--ipv6): its canonical IPv6 subnet and gateway, both or neither. */
  subnet6?: string
  gateway6?: string
}

/** The cluster-wide definition of an overlay. */
export interface OverlayDefinition {
  name: string
  subnet: string
  gateway: string
  /** The IPv6 side of a dual-stack overlay (both or neither). */
  subnet6?: string
  gateway6?: string
  vni: number
  /** -o ferry.encrypt=wireguard: part of the definition (and of its MAC); absent = plain. */
  encrypt?: 'wireguard'
  /** The host that defined it first. */
  createdBy: string
  createdAt: number
}

/**
 * A port an overlay endpoint publishes on its host (`docker run -p`), as its host
 * bound it: every host answers SRV for it (`_<port>._<proto>.<name>`, the
 * container's port on its overlay address). Ranges come expanded.
 */
export interface ClusterPort {
  proto: 'tcp' | 'udp'
  /** The container's port. */
  port: number
  /** The port on the endpoint's host. */
  hostPort: number
  /** The host address it is bound to; absent: every address of the host. */
  hostIp?: string
}

/** An endpoint (container interface) on an overlay, as published in the cluster. */
export interface ClusterEndpoint {
  endpointId: string
  ip: string
  /** Its IPv6 address on a dual-stack overlay. */
  ip6?: string
  mac: string
  hostId: string
  vtep: string
  /** DNS names of the endpoint (container name first, then aliases), for ferry's DNS on every host. */
  names?: string[]
  /** Its published ports (at most MAX_PORTS); absent when it publishes none, and in records of older versions. */
  ports?: ClusterPort[]
}

/** What a host publishes: hostId and vtep default to the publishing host's. */
export interface EndpointPublication {
  overlay: string
  endpointId: string
  ip: string
  ip6?: string
  mac: string
  /** Undefined: not known (CreateEndpoint, a restart): names this host already published for it are kept. [] clears them. */
  names?: string[]
  /** Undefined: not known (as names): the ports this host already published for it are kept. [] clears them. */
  ports?: ClusterPort[]
}

export interface OverlaySnapshot {
  definition: OverlayDefinition
  /** Hosts that use the overlay (the definition goes when the last one leaves). */
  hosts: string[]
  endpoints: ClusterEndpoint[]
  /**
   * The same endpoints packed as the store's client read them (src/cluster/endpoints.ts), when
   * it did: `endpoints` is then made from the table only if read. A reader that takes the table
   * (PeerSync: its vetted view) owns it.
   */
  packed?: EndpointTable
  /**
   * The store's claim records: which endpoint published each address first
   * (set atomically by the publish script, which refuses a second claimant).
   * An endpoint whose address is claimed by another one is not used.
   */
  claims: Array<{ ip: string, endpointId: string }>
  /**
   * With `packed`, when the store's client checked the claims against it as it read them: per row,
   * how many of its addresses its own endpoint's claims cover (`claims` is then made only if read).
   */
  claimed?: Uint8Array
}

/** A consistent read of everything, with the revision it reflects. */
export interface ClusterSnapshot {
  rev: number
  /** The server's clock at the read (ms). */
  time: number
  hosts: HostInfo[]
  overlays: OverlaySnapshot[]
}

/** A change, pushed to every host; `rev` is the global revision after it. */
export type ClusterChange =
  | { kind: 'host-up', rev: number, host: Pick<HostInfo, 'hostId' | 'vtep' | 'version' | 'wg' | 'vtep2'> }
  | { kind: 'host-removed', rev: number, hostId: string }
  | { kind: 'overlay-defined', rev: number, overlay: OverlayDefinition }
  | { kind: 'overlay-removed', rev: number, name: string }
  | { kind: 'endpoint-published', rev: number, overlay: string, endpoint: ClusterEndpoint }
  | { kind: 'endpoint-withdrawn', rev: number, overlay: string, endpointId: string, hostId: string }

/**
 * What subscribers receive. `resync` comes after every (re)connection, once this
 * host's own state has been re-asserted: pushed changes may have been missed, so
 * the subscriber must read a full snapshot. `resumed` comes instead when the store
 * came back with the history this host followed (src/cluster/trail.ts): the changes
 * missed while away were handed on just before it, in order, and a subscriber whose
 * revision is now `rev` is up to date (any other reads in full). `down` says the store is unreachable
 * (calls fail with CLUSTER_UNAVAILABLE until the next `resync` or `resumed`). `error` reports a
 * failure of background work (heartbeat, re-assertion) that no caller awaits.
 */
export type ClusterEvent =
  | ClusterChange
  | { kind: 'resync' }
  | { kind: 'resumed', rev: number }
  | { kind: 'down', error: Error }
  | { kind: 'error', error: Error }

export type ClusterHandler = (event: ClusterEvent) => void

/** This host's own cluster state, kept in the agent's store and re-asserted after every reconnect. */
export interface LocalClusterState {
  overlays: OverlayRequest[]
  addresses: Array<{ overlay: string, ip: string }>
  endpoints: EndpointPublication[]
}

export type ClusterState = 'idle' | 'connecting' | 'ready' | 'down' | 'closed'

export interface ClusterStatus {
  state: ClusterState
  /** The store's address with any password removed. */
  url: string
  hostId: string
  vtep: string
  /** This host's second VTEP (the other family), when it advertises two. */
  vtep2?: string
  /** Commands sent to the store so far (a benchmark metric: commands per change). */
  commands: number
  lastError?: string
  /** Entries and messages signed and checked with a shared --cluster-key. */
  clusterKey: boolean
  /** What was refused from the store (invalid, wrongly signed, inconsistent), by kind and reason. */
  rejected: Array<{ kind: string, reason: string, count: number }>
  /** Mixed versions: the record features held back because a live host does not understand them, those hosts, and one sentence. */
  compat?: { heldBack: string[], olderHosts: Array<{ hostId: string, version: string, features: string[] }>, sentence: string }
}

export interface ClusterStore {
  readonly hostId: string
  readonly vtep: string
  /** This host's second VTEP (of the other family), when it advertises two. */
  readonly vtep2?: string
  /**
   * Connect, register this host and re-assert `local` (this host's own overlays,
   * addresses and endpoints; entries this host holds in the cluster that are not
   * in `local` are removed). Resolves once registered; rejects CLUSTER_UNAVAILABLE
   * when the store cannot be reached in time, but keeps connecting in the
   * background (subscribers then get `resync`). Without `local`, nothing is pruned.
   */
  start (local?: LocalClusterState): Promise<void>
  /** Publish new WireGuard information of this host (a rotated key) with its registration, at once. */
  setWireGuard? (info: WireGuardInfo): Promise<void>
  /** Send a heartbeat now (it also removes hosts whose TTL has passed). */
  heartbeat (): Promise<void>
  hosts (): Promise<HostInfo[]>
  /**
   * Define the overlay or join the existing definition. The same subnet and
   * gateway get the existing definition; another subnet, gateway or a user VNI
   * that differs is refused (NAME_CONFLICT), as is a subnet overlapping another
   * overlay (POOL_OVERLAP) and a user VNI used by another overlay (NAME_CONFLICT).
   */
  defineOverlay (req: OverlayRequest): Promise<OverlayDefinition>
  overlay (name: string): Promise<OverlayDefinition | undefined>
  /**
   * This host no longer uses the overlay: its endpoints and addresses there are
   * removed, and the definition is deleted when no host uses it any more.
   */
  removeOverlayHost (name: string): Promise<{ deleted: boolean }>
  /**
   * A free address of the overlay (serially after the last one handed out), or
   * `preferred`. ADDRESS_IN_USE when preferred is held (unless `reclaim` and this
   * host holds it), ADDRESS_OUT_OF_POOL outside the subnet, POOL_EXHAUSTED when full. `family` 6 (or an
   * IPv6 `preferred`): from the IPv6 subnet of a dual-stack overlay, with the same guarantees.
   */
  allocateAddress (overlay: string, preferred?: string, opts?: { reclaim?: boolean, family?: 4 | 6 }): Promise<string>
  /** Release an address this host holds; false when it did not hold it. */
  releaseAddress (overlay: string, ip: string): Promise<boolean>
  /** The addresses of the overlay this host holds (its own record, kept through store outages). */
  heldAddresses? (overlay: string): string[]
  /** Publish (or update) an endpoint of this host: one command. Resolves the revision. */
  publishEndpoint (ep: EndpointPublication): Promise<number>
  /** Withdraw an endpoint; false when it was not published. */
  withdrawEndpoint (overlay: string, endpointId: string): Promise<boolean>
  endpoints (overlay: string): Promise<ClusterEndpoint[]>
  /** This host's own request for an overlay (what it defined or joined), if it uses it. */
  localOverlay? (name: string): OverlayRequest | undefined
  /** Where refusals of what the store holds are counted (shared with PeerSync). */
  readonly rejects?: RejectCounter
  snapshot (): Promise<ClusterSnapshot>
  revision (): Promise<number>
  /** Receive changes; a `resync` is delivered at once when the store is ready. Returns the unsubscribe. */
  subscribe (handler: ClusterHandler): () => void
  status (): ClusterStatus
  /** Deregister this host and remove everything it holds (a graceful, permanent leave). */
  leave (): Promise<void>
  /** Stop heartbeats and disconnect. The host stays registered until its TTL passes. */
  close (): Promise<void>
}
