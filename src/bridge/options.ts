/**
 * The -o options a user can give `docker network create -d ferry`, parsed and
 * validated into ferry's own types before anything touches the kernel.
 */
import { FerryError } from '../errors/errors.js'
import { validateIfName } from './names.js'

export const OPT = {
  bridgeName: 'com.docker.network.bridge.name',
  mtu: 'com.docker.network.driver.mtu',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  icc: 'com.docker.network.bridge.enable_icc',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  /** Outbound address: SNAT to this host address instead of masquerading (Docker's option, netavark's outbound_addr). */
  hostIpv4: 'com.docker.network.host_ipv4',
  overlay: 'ferry.overlay',
  vni: 'ferry.vni',
} as const

/** Options Docker's own bridge driver knows that ferry accepts and ignores (with a reason). */
const IGNORED: Record<string, string> = {
  'com.docker.network.bridge.default_bridge': 'ferry networks are never the default bridge',
  'com.docker.network.container_iface_prefix': 'the engine names the interface',
}

export interface NetworkOptions {
  bridgeName?: string
  mtu: number
  masquerade: boolean
  icc: boolean
  hostBindingIp: string
  internal: boolean
  /** com.docker.network.host_ipv4 */
  outboundAddr?: string
  overlay?: string
  vni?: number
}

export const DEFAULT_MTU = 1500

function parseBool (key: string, v: string): boolean {
  const s = v.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(s)) return true
  if (['false', '0', 'no', 'off'].includes(s)) return false
  throw new FerryError('INVALID_OPTION', `option ${key} must be true or false, not "${v}"`)
}

function parseIntIn (key: string, v: string, lo: number, hi: number): number {
  if (!/^\d+$/.test(v.trim())) throw new FerryError('INVALID_OPTION', `option ${key} must be a whole number from ${lo} to ${hi}, not "${v}"`)
  const n = Number(v.trim())
  if (n < lo || n > hi) throw new FerryError('INVALID_OPTION', `option ${key} must be from ${lo} to ${hi}, not ${n}`)
  return n
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

export function isIpv4 (s: string): boolean { return IPV4_RE.test(s) }

const OVERLAY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/**
 * Parse the generic options (`-o k=v`) plus the engine's own flags.
 * Unknown keys are refused so that a typo does not silently do nothing.
 */
export function parseNetworkOptions (generic: Record<string, unknown>, internal: boolean): NetworkOptions {
  const out: NetworkOptions = { mtu: DEFAULT_MTU, masquerade: true, icc: true, hostBindingIp: '', internal }
  for (const [key, raw] of Object.entries(generic)) {
    const v = typeof raw === 'string' ? raw : String(raw)
    switch (key) {
      case OPT.bridgeName: out.bridgeName = validateIfName(v, 'bridge name'); break
      case OPT.mtu: out.mtu = parseIntIn(key, v, 68, 65535); break
      case OPT.masquerade: out.masquerade = parseBool(key, v); break
      case OPT.icc: out.icc = parseBool(key, v); break
      case OPT.hostBinding:
        if (v !== '' && !isIpv4(v)) throw new FerryError('INVALID_OPTION', `option ${key} must be an IPv4 address, not "${v}"`)
        out.hostBindingIp = v === '0.0.0.0' ? '' : v
        break
      case OPT.hostIpv4:
        if (!isIpv4(v)) throw new FerryError('INVALID_OPTION', `option ${key} must be an IPv4 address of this host, not "${v}"`)
        out.outboundAddr = v
        break
      case OPT.overlay:
        if (!OVERLAY_NAME_RE.test(v)) throw new FerryError('INVALID_OPTION', `option ${key} must be a name of letters, digits, '_', '.' or '-' (up to 63), not "${v}"`)
        out.overlay = v
        break
      case OPT.vni: out.vni = parseIntIn(key, v, 1, 16777215); break
      default:
        if (key in IGNORED) break
        throw new FerryError('INVALID_OPTION', `unknown option ${key}; ferry understands ${Object.values(OPT).join(', ')}`)
    }
  }
  return out
}
