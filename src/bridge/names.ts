/**
 * Deterministic kernel names and MACs. Everything ferry creates carries the `fy`
 * prefix so that reconcile finds it and never touches what is not ferry's:
 *   bridge         fy-<network id[:12]>   (or the user's com.docker.network.bridge.name)
 *   veth host end  fyh<endpoint id[:12]>
 *   veth peer      fyc<endpoint id[:12]>  (handed to the engine, renamed eth<N> in the container)
 */
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

/** A locally administered MAC derived from the IPv4 address, as Docker does (02:42:a.b.c.d). */
export function macForIp (ip: string): string {
  const bytes = ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0'))
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
