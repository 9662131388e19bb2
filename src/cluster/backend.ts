/**
 * The seam between the cluster client (src/cluster/client.ts) and the store that
 * does the atomic work. Each method is one atomic step on the server (one Lua
 * script in Redis, one synchronous function in the memory model), so both
 * implementations keep the same semantics; test/harness/cluster-contract.ts runs
 * the same cases against both. Inputs are validated by the client before they
 * get here (src/cluster/validate.ts).
 */
import type {
  ClusterChange, ClusterEndpoint, ClusterSnapshot, HostInfo, OverlayDefinition, OverlayRequest,
} from './types.js'

export interface HostRegistration {
  hostId: string
  vtep: string
  version: string
  ttlMs: number
  /**
   * Also remove hosts whose TTL passed. Off for the heartbeat that re-registers
   * a host after an outage: the other hosts could not heartbeat either and get
   * one period to come back before they are removed.
   */
  reap: boolean
}

/** How defineOverlay treats a requested VNI: a user's must be honoured, a remembered one is a wish. */
export type VniMode = 'require' | 'prefer'

/** What this host keeps (pruning removes the rest of what it holds). Keys are `overlay|ip` and `overlay|endpointId`. */
export interface HostKeep {
  overlays: string[]
  addresses: string[]
  endpoints: string[]
}

export interface BackendListener {
  /** Connected (again) and subscribed to changes. */
  ready (): void
  /** The connection was lost (or could not be made). */
  down (error: Error): void
  change (change: ClusterChange): void
}

/** The lowest VNI the cluster hands out by itself (as Docker's swarm does) and the highest VNI there is. */
export const VNI_AUTO_MIN = 4096
export const VNI_MAX = 16777215

export interface ClusterBackend {
  /** Where the store is (password removed). */
  readonly description: string
  /** Start connecting; the listener is told of every (re)connection, loss and change. */
  open (listener: BackendListener): void
  close (): Promise<void>
  isReady (): boolean
  /** Commands sent so far. */
  commandCount (): number

  /** Register or refresh a host, then (when `reap`) remove every host whose TTL has passed. */
  heartbeat (reg: HostRegistration): Promise<{ isNew: boolean, removed: string[] }>
  define (hostId: string, req: OverlayRequest, mode: VniMode): Promise<OverlayDefinition>
  leaveOverlay (hostId: string, name: string): Promise<{ deleted: boolean }>
  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean): Promise<string>
  release (hostId: string, overlay: string, ip: string): Promise<boolean>
  /** Resolves the revision after the change (the current one when nothing changed). */
  publish (overlay: string, ep: ClusterEndpoint): Promise<number>
  withdraw (overlay: string, endpointId: string): Promise<boolean>
  prune (hostId: string, keep: HostKeep): Promise<void>
  removeHost (hostId: string): Promise<void>

  snapshot (): Promise<ClusterSnapshot>
  overlay (name: string): Promise<OverlayDefinition | undefined>
  endpoints (overlay: string): Promise<ClusterEndpoint[]>
  hosts (): Promise<HostInfo[]>
  revision (): Promise<number>
}
