/**
 * The one resolver of what a user types for a network or a container (`ferry network
 * inspect`, `endpoint ls --network`, `port ls`, `peers --network`, `dns … --network`,
 * `graph --network`, `detach`/`stop`/`rm`, `run --net`): a name, a full id or a unique id
 * prefix, as Docker takes them. Pure: callers hand it the candidates (the agent's records
 * named by the engine or by ferry's runtime), so the API, the runtime and the CLI agree.
 *
 * Order, as Docker's: a full id, then an exact name, then an id prefix. Two candidates
 * that answer at the same step are ambiguous: one sentence names them (at most
 * MAX_LISTED). An unknown key lists what is known (bounded too).
 */
import { FerryError, type ErrorCode } from '../errors/errors.js'

/** Something a key can name: its id and the names it answers to (the first one is shown). */
export interface Candidate {
  id: string
  names: readonly string[]
}

export const MAX_LISTED = 5
export const MAX_KEY_LENGTH = 256

/** Docker's container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, a leading `/` as the engine prints them); ids and endpoint ids fit too. */
const CONTAINER_KEY = /^\/?[A-Za-z0-9][A-Za-z0-9_.-]*$/
/** Network names are freer (Docker 20.10 takes spaces; overlay and bridge names too): anything printable. */
const NETWORK_KEY = /^[^\u0000-\u001f\u007f]+$/u

function quote (key: string): string {
  return JSON.stringify(key)
}

function checkLength (key: string, what: string): void {
  if (key.length === 0) throw new FerryError('INVALID_REQUEST', `a ${what} name or id is needed, not an empty string`)
  if (key.length > MAX_KEY_LENGTH) throw new FerryError('INVALID_REQUEST', `a ${what} name or id is at most ${MAX_KEY_LENGTH} characters (${key.length} given)`)
}

/** A container (or endpoint) name, id or id prefix as the CLI and the API take it; else a FerryError sentence. */
export function checkContainerKey (key: string): string {
  checkLength(key, 'container')
  if (!CONTAINER_KEY.test(key)) {
    throw new FerryError('INVALID_REQUEST', `${quote(key)} is not a container name or id: names are letters, digits, '_', '.' and '-', starting with a letter or digit`)
  }
  return key
}

/** A network name, id or id prefix as the CLI and the API take it; else a FerryError sentence. */
export function checkNetworkKey (key: string): string {
  checkLength(key, 'network')
  if (!NETWORK_KEY.test(key)) throw new FerryError('INVALID_REQUEST', `${quote(key)} is not a network name or id: it holds control characters`)
  return key
}

/** An id made up for a container the engine named without an id (resolveEndpoints); never shown. */
const NAME_ONLY = 'name:'

/** `front (3f2a9c1d0e4b), back (…)`, at most MAX_LISTED, then `and N more`. */
export function listCandidates (cands: readonly Candidate[]): string {
  const shown = cands.slice(0, MAX_LISTED).map((c) => {
    const short = c.id.startsWith(NAME_ONLY) ? '' : c.id.slice(0, 12)
    const name = c.names.find((n) => n !== '' && n !== short)
    return name === undefined ? short : short === '' ? name : `${name} (${short})`
  })
  const more = cands.length - shown.length
  return shown.join(', ') + (more > 0 ? ` and ${more} more` : '')
}

export interface ResolveSpec {
  /** `network`, `container`: what the sentences call a candidate. */
  what: string
  /** The code of "unknown" (NETWORK_NOT_FOUND, ENDPOINT_NOT_FOUND). */
  notFound: ErrorCode
  /** Where the user finds the list (`ferry network ls`). */
  listedBy?: string
  /** Shortest id prefix taken (default 1, as Docker). */
  minPrefix?: number
}

/** Candidates of one step, one per id. */
function distinct<T extends Candidate> (cands: readonly T[]): T[] {
  const seen = new Set<string>()
  return cands.filter((c) => (seen.has(c.id) ? false : (seen.add(c.id), true)))
}

/**
 * The candidates `key` names at the first step that names any (full id, exact name,
 * id prefix), one per id; [] when none. Does not throw on ambiguity: see resolveOne.
 */
export function matchKey<T extends Candidate> (key: string, cands: readonly T[], minPrefix = 1): T[] {
  const byId = distinct(cands.filter((c) => c.id === key))
  if (byId.length > 0) return byId
  const name = key.startsWith('/') ? key.slice(1) : key
  const byName = distinct(cands.filter((c) => c.names.includes(name) || c.names.includes(key)))
  if (byName.length > 0) return byName
  if (key.length < minPrefix) return []
  return distinct(cands.filter((c) => c.id.startsWith(key)))
}

/** The one candidate `key` names; a FerryError sentence when it names none or several. */
export function resolveOne<T extends Candidate> (key: string, cands: readonly T[], spec: ResolveSpec): T {
  const found = matchKey(key, cands, spec.minPrefix)
  if (found.length === 1) return found[0]!
  const listed = spec.listedBy === undefined ? '' : ` (${spec.listedBy} lists them)`
  if (found.length > 1) {
    throw new FerryError('INVALID_REQUEST', `${quote(key)} names ${found.length} ${spec.what}s: ${listCandidates(found)}; give more of the id${listed}`)
  }
  const known = distinct(cands)
  const tail = known.length === 0 ? `; there is none` : `; known: ${listCandidates(known)}`
  throw new FerryError(spec.notFound, `no ${spec.what} is named ${quote(key)} or has that id${tail}${listed}`)
}

// ---------------------------------------------------------------------------
// Networks and containers as the admin API sees them

/** A network as the views show it: its id and every name it answers to. */
export interface NetworkKeys {
  id: string
  /** The engine's or ferry's name ('' when unknown). */
  name: string
  bridge?: string
  overlay?: { name: string }
}

export const NETWORK_SPEC: ResolveSpec = { what: 'ferry network', notFound: 'NETWORK_NOT_FOUND', listedBy: 'ferry network ls' }

/** The network `key` names: its full id, its name (the engine's or ferry's), its bridge, its overlay's name, or a unique id prefix. */
export function resolveNetwork<T extends NetworkKeys> (key: string, nets: readonly T[], minPrefix = 1): T {
  checkNetworkKey(key)
  const cands = nets.map((n) => ({ id: n.id, names: [n.name, n.bridge ?? '', n.overlay?.name ?? ''].filter((x) => x !== ''), net: n }))
  return resolveOne(key, cands, { ...NETWORK_SPEC, minPrefix }).net
}

/** An endpoint as the views show it: its id, its container's name and id ('' when unknown). */
export interface EndpointKeys {
  id: string
  container: string
  containerId: string
}

/**
 * The endpoints `key` names: every endpoint of the container it names (by name, full id or
 * id prefix: one per network it is on), or the one endpoint it names (full id or prefix).
 * [] when `key` names nothing; a FerryError sentence when it is ambiguous.
 */
export function resolveEndpoints<T extends EndpointKeys> (key: string, eps: readonly T[]): T[] {
  checkContainerKey(key)
  const name = key.startsWith('/') ? key.slice(1) : key
  // One candidate per container (keyed by its id, or by its name when the engine did not give one) and one per endpoint.
  const containers = new Map<string, { id: string, names: string[], eps: T[] }>()
  for (const e of eps) {
    const c = e.container.replace(/^\//, '')
    if (e.containerId === '' && c === '') continue
    const k = e.containerId !== '' ? e.containerId : `${NAME_ONLY}${c}`
    const entry = containers.get(k) ?? { id: e.containerId !== '' ? e.containerId : k, names: c === '' ? [] : [c], eps: [] }
    entry.eps.push(e)
    containers.set(k, entry)
  }
  const cands = [...containers.values(), ...eps.map((e) => ({ id: e.id, names: [] as string[], eps: [e] }))]
  const found = matchKey(name, cands)
  if (found.length > 1) {
    throw new FerryError('INVALID_REQUEST', `${quote(key)} names ${found.length} containers or endpoints: ${listCandidates(found)}; give more of the id`)
  }
  return found[0]?.eps ?? []
}
