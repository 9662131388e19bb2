/**
 * The -o options a user can give `docker network create -d ferry`, parsed and
 * validated into ferry's own types before anything touches the kernel.
 */
import { FerryError } from '../errors/errors.js'
import { validateIfName } from './names.js'
import { isIp, normalizeIp } from '../util/ip.js'

export const OPT = {
  bridgeName: 'com.docker.network.bridge.name',
  mtu: 'com.docker.network.driver.mtu',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  icc: 'com.docker.network.bridge.enable_icc',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  gatewayModeV4: 'com.docker.network.bridge.gateway_mode_ipv4',
  /** nat (default) or routed, for the IPv6 side of a dual-stack network (NetworkRecord.gatewayMode6). */
  gatewayModeV6: 'com.docker.network.bridge.gateway_mode_ipv6',
  /** Outbound address: SNAT to this host address instead of masquerading (Docker's option, netavark's outbound_addr). */
  hostIpv4: 'com.docker.network.host_ipv4',
  /** Outbound IPv6 address of a dual-stack network (Docker's option): SNAT to it instead of masquerading. */
  hostIpv6: 'com.docker.network.host_ipv6',
  overlay: 'ferry.overlay',
  vni: 'ferry.vni',
  encrypt: 'ferry.encrypt',
} as const

/** Options Docker's own bridge driver knows that ferry accepts and ignores (with a reason). */
const IGNORED = new Map<string, string>([
  ['com.docker.network.bridge.default_bridge', 'ferry networks are never the default bridge'],
  ['com.docker.network.container_iface_prefix', 'the engine names the interface'],
])

/**
 * The engine's own flags, which it also leaves among the -o options when they come from
 * `-o` or the daemon's `default-network-opts` (moby daemon/network.go:332-349): the engine
 * has already read them into the top-level flags ferry checks, so here they need only be booleans.
 */
const ENGINE_FLAGS = new Set(['com.docker.network.enable_ipv4', 'com.docker.network.enable_ipv6'])

/**
 * Options of Docker's bridge driver (Docker 27–29) that ferry refuses, each with what ferry
 * does instead: never ignored silently (docs/compatibility.md).
 */
export const REFUSED = new Map<string, string>([
  ['com.docker.network.bridge.trusted_host_interfaces',
    'ferry lets other interfaces reach a container only through its published ports; to let one reach containers directly, accept it in the FERRY-USER chain (iptables -I FERRY-USER -i IFACE -o BRIDGE -j ACCEPT)'],
  ['com.docker.network.bridge.inhibit_ipv4', 'ferry always puts the gateway address on the bridge'],
])

/** Docker's gateway modes (moby drivers/bridge/bridge_linux.go newGwMode) other than nat, and what ferry does instead. */
const GATEWAY_MODES_REFUSED = new Map<string, string>([
  ['nat-unprotected', 'ferry always drops direct access to a container\'s unpublished ports from outside its network (mode nat); accept what you need in the FERRY-USER chain'],
  ['routed', 'ferry has no routed mode: use -o com.docker.network.bridge.enable_ip_masquerade=false for no NAT on the way out, and accept direct access in the FERRY-USER chain'],
  ['isolated', 'ferry always gives the bridge the gateway address: use --internal for a network with no way in or out'],
])

/** What a JSON value is, for a sentence: "an object", "a list", "a number"… */
export function kindOf (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
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
  /** com.docker.network.host_ipv6 (canonical) */
  outboundAddr6?: string
  overlay?: string
  vni?: number
  /** com.docker.network.bridge.gateway_mode_ipv6 (default nat); meaningful on a dual-stack network only. */
  gatewayMode6: 'nat' | 'routed'
  /** ferry.encrypt=wireguard: the overlay travels inside WireGuard (src/wireguard). */
  encrypt?: 'wireguard'
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

const OVERLAY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/**
 * Parse the generic options (`-o k=v`) plus the engine's own flags.
 * Unknown keys are refused so that a typo does not silently do nothing, and so is
 * a value that is not a string (an object, a list, a number, null).
 */
export function parseNetworkOptions (generic: Record<string, unknown>, internal: boolean): NetworkOptions {
  const out: NetworkOptions = { mtu: DEFAULT_MTU, masquerade: true, icc: true, hostBindingIp: '', internal, gatewayMode6: 'nat' }
  for (const [key, raw] of Object.entries(generic)) {
    // The engine's options are map[string]string: anything else did not come from `-o KEY=VALUE`.
    if (typeof raw !== 'string') throw new FerryError('INVALID_OPTION', `option ${key} must be a string (-o ${key}=VALUE), not ${kindOf(raw)}`)
    const v = raw
    switch (key) {
      case OPT.bridgeName: out.bridgeName = validateIfName(v, 'bridge name'); break
      case OPT.mtu: out.mtu = parseIntIn(key, v, 68, 65535); break
      case OPT.masquerade: out.masquerade = parseBool(key, v); break
      case OPT.icc: out.icc = parseBool(key, v); break
      case OPT.hostBinding:
        if (v !== '' && !isIp(v, 4)) throw new FerryError('INVALID_OPTION', `option ${key} must be an IPv4 address, not "${v}"`)
        out.hostBindingIp = v === '0.0.0.0' ? '' : v
        break
      case OPT.hostIpv4:
        if (!isIp(v, 4)) throw new FerryError('INVALID_OPTION', `option ${key} must be an IPv4 address of this host, not "${v}"`)
        out.outboundAddr = v
        break
      case OPT.hostIpv6:
        if (!isIp(v, 6)) throw new FerryError('INVALID_OPTION', `option ${key} must be an IPv6 address of this host, not "${v}"`)
        out.outboundAddr6 = normalizeIp(v)
        break
      case OPT.overlay:
        if (!OVERLAY_NAME_RE.test(v)) throw new FerryError('INVALID_OPTION', `option ${key} must be a name of letters, digits, '_', '.' or '-' (up to 63), not "${v}"`)
        out.overlay = v
        break
      case OPT.vni: out.vni = parseIntIn(key, v, 1, 16777215); break
      case OPT.encrypt:
        if (v !== 'wireguard') throw new FerryError('INVALID_OPTION', `option ${key} must be "wireguard", not "${v}"`)
        out.encrypt = 'wireguard'
        break
      case OPT.gatewayModeV4: {
        // nat is what ferry always does: DNAT for published ports, masquerade out, direct access dropped.
        if (v === 'nat') break
        const why = GATEWAY_MODES_REFUSED.get(v)
        if (why !== undefined) throw new FerryError('UNSUPPORTED', `option ${key}=${v} is not supported: ${why}`)
        throw new FerryError('INVALID_OPTION', `option ${key} must be nat, nat-unprotected, routed or isolated, not "${v}"`)
      }
      case OPT.gatewayModeV6: {
        // routed: no NAT for the IPv6 side, the host routes the prefix (the firewall's business).
        if (v === 'nat' || v === 'routed') { out.gatewayMode6 = v; break }
        const why = GATEWAY_MODES_REFUSED.get(v)
        if (why !== undefined) throw new FerryError('UNSUPPORTED', `option ${key}=${v} is not supported: ferry's IPv6 gateway modes are nat and routed`)
        throw new FerryError('INVALID_OPTION', `option ${key} must be nat or routed, not "${v}"`)
      }
      default: {
        if (IGNORED.has(key)) break
        if (ENGINE_FLAGS.has(key)) { parseBool(key, v); break }
        const why = REFUSED.get(key)
        if (why !== undefined) throw new FerryError('UNSUPPORTED', `option ${key} is not supported: ${why}`)
        throw new FerryError('INVALID_OPTION', `unknown option ${key}; ferry understands ${Object.values(OPT).join(', ')}`)
      }
    }
  }
  return out
}
