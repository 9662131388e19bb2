/**
 * The owner of the store's network and endpoint records (`state.networks`,
 * `state.endpoints`): the only module that writes them (test/layout/owners.test.ts
 * checks it); everyone else reads them, and changes them through these operations.
 *
 * Each operation changes the state in memory and returns the path it changed; the
 * caller commits it (or touches it, for an informational field) together with what
 * else its step changed, so that one step is one write, as before.
 *
 * Every operation bumps one revision counter (`recordsRevision`): a reader that
 * saw the same revision twice saw the same records (the firewall's quiet reconcile
 * skips comparing them then).
 */
import type { EndpointRecord, NetworkRecord, PortBinding, PortRequest } from '../model/types.js'
import type { State, Store, StorePath } from '../store/store.js'

export const endpointPath = (id: string): StorePath => ['endpoints', id]

type Section = 'networks' | 'endpoints'

/** Bumped by every operation below (of any store: only ever a false "changed"). */
let revision = 0

/** The records' revision: unchanged, so are the network and endpoint records. */
export function recordsRevision (): number {
  return revision
}

function put<S extends Section> (store: Store, section: S, rec: State[S][string]): StorePath {
  revision++
  (store.state[section] as Record<string, State[S][string]>)[rec.id] = rec
  return [section, rec.id]
}

function drop (store: Store, section: Section, id: string): StorePath {
  revision++
  delete store.state[section][id]
  return [section, id]
}

/** A network the driver made (or joined): in the state from now on. */
export const recordNetwork = (store: Store, net: NetworkRecord): StorePath => put(store, 'networks', net)
/** A network removed (or whose creation is undone): gone from the state. */
export const forgetNetwork = (store: Store, id: string): StorePath => drop(store, 'networks', id)
/** An endpoint the driver made, or one rebuilt from the kernel and the engine after a loss. */
export const recordEndpoint = (store: Store, ep: EndpointRecord): StorePath => put(store, 'endpoints', ep)
export const forgetEndpoint = (store: Store, id: string): StorePath => drop(store, 'endpoints', id)

/** Join: the endpoint is in a sandbox (informational: nothing is rebuilt from it). */
export function markJoined (ep: EndpointRecord, sandboxKey: string): StorePath {
  revision++
  ep.joined = true
  ep.sandboxKey = sandboxKey
  return endpointPath(ep.id)
}

/** Leave: the endpoint is in no sandbox. */
export function markLeft (ep: EndpointRecord): StorePath {
  revision++
  ep.joined = false
  delete ep.sandboxKey
  return endpointPath(ep.id)
}

/** The endpoint's published ports (and, when given, the requests they answer). */
export function setPorts (ep: EndpointRecord, ports: PortBinding[], requests?: PortRequest[]): StorePath {
  revision++
  if (requests !== undefined) ep.portRequests = requests
  ep.ports = ports
  return endpointPath(ep.id)
}
