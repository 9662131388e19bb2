/**
 * The seam between the cluster client (src/cluster/client.ts) and the store that
 * does the atomic work. Each method is one atomic step on the server (one Lua
 * script in Redis, one synchronous function in the memory model), so both
 * implementations keep the same semantics; test/harness/cluster-contract.ts runs
 * the same cases against both. Inputs are validated by the client before they
 * get here (src/cluster/validate.ts).
 */
import type { ClusterEndpoint, OverlayRequest } from './types.js'
import type { Family } from '../util/ip.js'

export interface HostRegistration {
  hostId: string
  vtep: string
  version: string
  ttlMs: number
  /** The host's keys expire this long after its last heartbeat (a few TTLs), should nobody reap it. */
  keyTtlMs: number
  /** The cluster key's MAC over hostId, vtep and wg (empty without a key). */
  sig: string
  /** The host's WireGuard information as canonical JSON text ('' = none). */
  wg: string
  /** The record features it understands, as their entry (src/cluster/features.ts featuresEntry; '' = none, as an older version). */
  features?: string
  /** A dual-stack host's second VTEP record as JSON text with its MAC ('' or absent = none): src/cluster/validate.ts readHostVtep. */
  vtep2?: string
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
  /** A message from the change channel, parsed from JSON but not validated (the client does that). */
  change (raw: unknown): void
  /** A message of the second VTEP channel ({hostId, record}), parsed from JSON but not validated; it precedes the host's host-up change. */
  hostVtep? (raw: unknown): void
}

/**
 * What the store holds, as read, before validation: the client checks every
 * entry (src/cluster/validate.ts) and refuses what fails. Definitions and hosts
 * are plain objects whose fields may have any type; endpoints are their stored
 * JSON (or objects) filed under `id`.
 */
export interface RawEndpoint { id: string, raw: unknown }
export interface RawOverlay { definition: Record<string, unknown>, hosts: string[], endpoints: RawEndpoint[], claims: Array<{ ip: string, endpointId: string }> }
export interface RawSnapshot { rev: number, time: number, hosts: Array<Record<string, unknown>>, overlays: RawOverlay[] }
/** Receives one page of an overlay's endpoints during a snapshot (ClusterBackend.snapshot). */
export type EndpointPages = (definition: Record<string, unknown>, page: RawEndpoint[]) => void
/** Receives one page of an overlay's address claims, [address, endpoint id] as read, during a snapshot (ClusterBackend.snapshot). */
export type ClaimPages = (definition: Record<string, unknown>, page: Array<[string, unknown]>) => void

/** An allocation step: an address, or none yet after `probes` addresses looked at (call again). */
export interface AllocationStep { ip?: string, probes: number }

/** Addresses one allocation call looks at, at most: a nearly full /8 never blocks the store. */
export const ALLOCATION_SCAN_LIMIT = 4096

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
  /**
   * Define or join. `created` says this call made the definition; `announce`
   * false leaves the overlay-defined message to `seal` (a cluster key's MAC
   * can only be made once the VNI is known).
   */
  define (hostId: string, req: OverlayRequest, mode: VniMode, announce: boolean): Promise<{ definition: Record<string, unknown>, created: boolean }>
  /** Store the MAC of a definition (when it still has those subnets, gateways, VNI and encryption) and announce it. */
  seal (name: string, def: { subnet: string, gateway: string, subnet6?: string, gateway6?: string, vni: number, encrypt?: 'wireguard' }, sig: string): Promise<boolean>
  leaveOverlay (hostId: string, name: string): Promise<{ deleted: boolean }>
  /**
   * One bounded step of an allocation: looks at no more than `limit` addresses
   * from the overlay's cursor. `scanned` is how many earlier steps of the same
   * allocation looked at; POOL_EXHAUSTED once every address has been. `family` 6 allocates from the
   * IPv6 subnet of a dual-stack overlay (from its first 2^32 addresses; a preferred one anywhere in it).
   */
  allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean, scanned: number, limit: number, family?: Family): Promise<AllocationStep>
  release (hostId: string, overlay: string, ip: string): Promise<boolean>
  /**
   * Publish an endpoint of `ep.hostId` with its MAC (empty without a key).
   * Refused (ADDRESS_IN_USE) unless the address is allocated to that host and
   * not claimed by another endpoint of the overlay. Resolves the revision after
   * the change (the current one when nothing changed).
   */
  publish (overlay: string, ep: ClusterEndpoint, sig: string): Promise<number>
  withdraw (overlay: string, endpointId: string): Promise<boolean>
  prune (hostId: string, keep: HostKeep): Promise<void>
  removeHost (hostId: string): Promise<void>

  /**
   * Everything. With `onPage`, a backend that reads an overlay's endpoints in pages hands
   * each page to it as it arrives (with the overlay's definition as read) and keeps none of
   * them (its `endpoints` are then the ones it did not hand over): the caller checks a page
   * and lets its raw text go, instead of holding every endpoint's text until the end. A
   * page may repeat an endpoint an earlier one had (the later one is the newer). With
   * `onClaims` too, the same for the overlay's address claims (its `claims` are then the ones
   * it did not hand over).
   */
  snapshot (onPage?: EndpointPages, onClaims?: ClaimPages): Promise<RawSnapshot>
  overlay (name: string): Promise<Record<string, unknown> | undefined>
  /** The overlay's definition (to check addresses against) and its endpoints. */
  endpoints (overlay: string): Promise<{ definition?: Record<string, unknown>, endpoints: RawEndpoint[] }>
  hosts (): Promise<Array<Record<string, unknown>>>
  revision (): Promise<number>
  /**
   * The change messages of revisions `since - overlap` to the current one, oldest first, parsed
   * from JSON but not validated, and the current revision; undefined when the store no longer
   * has them all (its log is shorter) or is behind `since` (it lost changes); `vteps`: the second VTEP
   * records ('' = none) of the hosts those changes bring up, as they are now. Optional: without
   * it, every reconnection is followed by a full read.
   */
  changesSince? (since: number, overlap: number): Promise<{ rev: number, changes: unknown[], vteps?: Array<{ hostId: string, record: string }> } | undefined>
}
