/**
 * Validation of everything a host sends to the cluster store, before it gets
 * there: names that become parts of Redis keys, addresses, MACs and VNIs. Pure;
 * throws FerryError with a sentence naming the bad input.
 */
import { FerryError } from '../errors/errors.js'
import { bounds, canonical, contains, intToIp, ipToInt, isIp, parseCidr } from '../ipam/cidr.js'
import { VNI_MAX } from './backend.js'
import type { ClusterEndpoint, OverlayRequest } from './types.js'

/** Overlay names as `-o ferry.overlay` accepts them (never '|' or ':', which key names use). */
export const OVERLAY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/
const HOST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const ENDPOINT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/
/** Overlays need room for a gateway and endpoints: /8 to /30. */
export const MIN_PREFIX = 8
export const MAX_PREFIX = 30

export function checkHostId (hostId: string): string {
  if (!HOST_ID_RE.test(hostId)) {
    throw new FerryError('INVALID_OPTION', `host id "${hostId}" must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`)
  }
  return hostId
}

export function checkOverlayName (name: string): string {
  if (!OVERLAY_NAME_RE.test(name)) {
    throw new FerryError('INVALID_OPTION', `overlay name "${name}" must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit`)
  }
  return name
}

export function checkEndpointId (id: string): string {
  if (!ENDPOINT_ID_RE.test(id)) throw new FerryError('INVALID_REQUEST', `endpoint id "${id}" is not valid`)
  return id
}

export function checkIp (ip: string, what: string): string {
  if (!isIp(ip)) throw new FerryError('INVALID_CIDR', `${what} "${ip}" is not an IPv4 address`)
  return ip
}

/** A unicast MAC in lower case. */
export function checkMac (mac: string): string {
  const m = mac.toLowerCase()
  if (!MAC_RE.test(m) || (parseInt(m.slice(0, 2), 16) & 1) === 1 || m === '00:00:00:00:00:00') {
    throw new FerryError('INVALID_REQUEST', `"${mac}" is not a unicast MAC address`)
  }
  return m
}

export function checkVni (vni: number): number {
  if (!Number.isInteger(vni) || vni < 1 || vni > VNI_MAX) throw new FerryError('INVALID_OPTION', `VNI ${vni} must be a whole number from 1 to ${VNI_MAX}`)
  return vni
}

/** The usable host range of an overlay subnet, as integers. */
export function hostRange (subnet: string): { first: number, last: number } {
  const b = bounds(subnet)
  return { first: b.first + 1, last: b.last - 1 }
}

/** Validate an overlay request; the subnet comes back canonical. */
export function checkOverlayRequest (req: OverlayRequest): OverlayRequest {
  checkOverlayName(req.name)
  const c = parseCidr(req.subnet)
  if (c.prefix < MIN_PREFIX || c.prefix > MAX_PREFIX) {
    throw new FerryError('INVALID_OPTION', `overlay ${req.name}: subnet ${req.subnet} must have a prefix from /${MIN_PREFIX} to /${MAX_PREFIX}`)
  }
  const subnet = canonical(req.subnet)
  checkIp(req.gateway, 'gateway')
  const r = hostRange(subnet)
  const g = ipToInt(req.gateway)
  if (g < r.first || g > r.last) {
    throw new FerryError('INVALID_OPTION', `overlay ${req.name}: gateway ${req.gateway} is not a host address of ${subnet}`)
  }
  const out: OverlayRequest = { name: req.name, subnet, gateway: intToIp(g) }
  if (req.vni !== undefined) out.vni = checkVni(req.vni)
  return out
}

/** An address an overlay may hand out (inside the subnet, not network or broadcast). */
export function checkOverlayAddress (overlay: string, subnet: string, ip: string): string {
  checkIp(ip, 'address')
  const r = hostRange(subnet)
  const n = ipToInt(ip)
  if (!contains(subnet, ip) || n < r.first || n > r.last) {
    throw new FerryError('ADDRESS_OUT_OF_POOL', `address ${ip} is not a host address of overlay ${overlay} (${subnet})`)
  }
  return intToIp(n)
}

const DNS_NAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$/

/** Names published with an endpoint: at most 32, each a plausible DNS name; others are dropped. */
export function checkNames (names: unknown): string[] | undefined {
  if (!Array.isArray(names)) return undefined
  const ok = names.filter((n): n is string => typeof n === 'string' && DNS_NAME_RE.test(n)).slice(0, 32)
  return ok.length > 0 ? ok : undefined
}

export function checkEndpoint (ep: ClusterEndpoint): ClusterEndpoint {
  const out: ClusterEndpoint = {
    endpointId: checkEndpointId(ep.endpointId),
    ip: intToIp(ipToInt(checkIp(ep.ip, 'endpoint address'))),
    mac: checkMac(ep.mac),
    hostId: checkHostId(ep.hostId),
    vtep: checkIp(ep.vtep, 'VTEP address'),
  }
  const names = checkNames(ep.names)
  if (names) out.names = names
  return out
}
