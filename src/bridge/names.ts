/**
 * Deterministic kernel names and MACs. Everything ferry creates carries the `fy`
 * prefix so that reconcile finds it and never touches what is not ferry's:
 *   bridge         fy-<network id[:12]>   (or the user's com.docker.network.bridge.name)
 *   veth host end  fyh<endpoint id[:12]>
 *   veth peer      fyc<endpoint id[:12]>  (handed to the engine, renamed eth<N> in the container)
 * Two ids may share their first 12 characters (the wire allows any id), so these
 * are only the first choice: when a name is taken (by another record or by a link in
 * the kernel), the next candidate is derived from a hash of the whole id. The name
 * chosen is recorded in the network's or endpoint's store record, and everything
 * later (join, reconcile, delete) uses the recorded name, never a derived one.
 */
import { createHash } from 'node:crypto'
import { ipToBytes } from '../util/ip.js'
import { FerryError } from '../errors/errors.js'

export const BRIDGE_PREFIX = 'fy-'
export const HOST_VETH_PREFIX = 'fyh'
export const CONTAINER_VETH_PREFIX = 'fyc'
export const IFNAME_MAX = 15

export function defaultBridgeName (networkId: string): string {
  return BRIDGE_PREFIX + networkId.slice(0, IFNAME_MAX - BRIDGE_PREFIX.length)
}

export function vethNames (endpointId: string): { host: string, container: string } {
  const id = endpointId.slice(0, IFNAME_MAX - HOST_VETH_PREFIX.length)
  return { host: HOST_VETH_PREFIX + id, container: CONTAINER_VETH_PREFIX + id }
}

/** How many names are tried for one id before giving up (each clash is a coincidence or an attack). */
export const NAME_CANDIDATES = 8

/** The `n`th 12-character stand-in for an id: `id[:12]` first, then hex digits of sha256(id, n). */
function idPart (id: string, n: number): string {
  const len = IFNAME_MAX - BRIDGE_PREFIX.length
  if (n === 0) return id.slice(0, len)
  return createHash('sha256').update(`${n}\u0000${id}`).digest('hex').slice(0, len)
}

/** Bridge names for a network, in the order they are tried. */
export function bridgeNameCandidates (networkId: string): string[] {
  return Array.from({ length: NAME_CANDIDATES }, (_, n) => BRIDGE_PREFIX + idPart(networkId, n))
}

/** Veth pair names for an endpoint, in the order they are tried. */
export function vethNameCandidates (endpointId: string): Array<{ host: string, container: string }> {
  return Array.from({ length: NAME_CANDIDATES }, (_, n) => {
    const part = idPart(endpointId, n)
    return { host: HOST_VETH_PREFIX + part, container: CONTAINER_VETH_PREFIX + part }
  })
}

/**
 * The first candidate none of whose names is taken: `inUse` answers from the store
 * and the names other requests are creating (synchronously), `inKernel` from the
 * kernel; `claim` reserves the chosen names before anything else can run. Throws
 * NAME_CONFLICT when every candidate is taken.
 */
export async function pickNames<T extends Record<string, string>> (
  candidates: readonly T[], inUse: (name: string) => boolean, inKernel: (name: string) => Promise<boolean>,
  claim: (names: string[]) => void, what: string,
): Promise<T> {
  for (const c of candidates) {
    const names = Object.values(c)
    if (names.some(inUse)) continue
    let exists = false
    for (const name of names) if (await inKernel(name)) { exists = true; break }
    // Checked again after the kernel's answers (another request may have taken it
    // meanwhile), and claimed in the same tick.
    if (!exists && !names.some(inUse)) { claim(names); return c }
  }
  throw new FerryError('NAME_CONFLICT', `every kernel name ferry can derive for ${what} is taken (${candidates.map((c) => Object.values(c)[0]).join(', ')}); remove leftover links or run ferry reconcile`)
}

/** Is this a link name ferry creates by itself (and may delete at reconcile)? */
export function isFerryLinkName (name: string): boolean {
  return name.startsWith(BRIDGE_PREFIX) || name.startsWith(HOST_VETH_PREFIX) || name.startsWith(CONTAINER_VETH_PREFIX)
}

const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/

/** Validate an interface name that came from a user. */
export function validateIfName (name: string, what: string): string {
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new FerryError('INVALID_OPTION', `${what} "${name}" is not a valid interface name: use 1 to 15 letters, digits, '_', '.' or '-'`)
  }
  return name
}

/** A locally administered MAC derived from the IPv4 address, as Docker does (02:42:a.b.c.d); from an IPv6 address's last four bytes. */
export function macForIp (ip: string): string {
  const bytes = [...ipToBytes(ip).subarray(-4)].map((x) => x.toString(16).padStart(2, '0'))
  return ['02', '42', ...bytes].join(':')
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/

export function normalizeMac (mac: string): string {
  const m = mac.toLowerCase()
  if (!MAC_RE.test(m)) throw new FerryError('INVALID_OPTION', `"${mac}" is not a MAC address (expected six hex pairs separated by ':')`)
  const first = parseInt(m.slice(0, 2), 16)
  if (first & 1) throw new FerryError('INVALID_OPTION', `${mac} is a multicast MAC address and cannot be used for an interface`)
  return m
}
