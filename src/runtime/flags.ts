/**
 * The agent's dockerd-style flags for the default network and for containers
 * attached without the engine, checked and turned into config. Pure.
 *
 *   -b, --bridge NAME     the default network's bridge; absent or "none" = no default network
 *   --bip CIDR            its gateway address and prefix (172.17.0.1/16)
 *   --icc[=BOOL]          traffic between its containers (default true)
 *   --ip-masq[=BOOL]      outbound NAT (default true)
 *   --mtu N               its MTU
 *   --ipv6[=BOOL]         dual-stack default network (dockerd's flag)
 *   --fixed-cidr-v6 CIDR  its IPv6 subnet (default: a /64 of the default IPv6 pool); needs --ipv6, as in dockerd
 *   --ip-forward[=BOOL]   turn on net.ipv4.ip_forward (default true)
 *   --dns-search, --dns-opt   defaults for containers' resolv.conf
 */
import { FerryError } from '../errors/errors.js'
import { isCidr, parseCidr, bounds, ipValue, canonical } from '../util/ip.js'
import { validateIfName } from '../bridge/names.js'
import type { DefaultBridgeConfig } from './service.js'

export interface RuntimeFlags {
  bridge?: string
  bip?: string
  icc?: boolean
  ipMasq?: boolean
  mtu?: number
  ipv6?: boolean
  fixedCidrV6?: string
  ipForward?: boolean
  dnsSearch?: string[]
  dnsOpt?: string[]
  watchInterval?: number
}

/** dockerd's boolean flag values: true/false, 1/0, yes/no. */
export function parseBool (v: string): boolean {
  const s = v.toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(s)) return true
  if (['false', '0', 'no', 'off'].includes(s)) return false
  throw new FerryError('INVALID_OPTION', `"${v}" is not a boolean (true or false)`)
}

export function defaultBridgeConfig (f: RuntimeFlags): DefaultBridgeConfig | undefined {
  if (f.bridge === undefined || f.bridge === 'none') {
    const given = ([['--bip', f.bip], ['--mtu', f.mtu], ['--fixed-cidr-v6', f.fixedCidrV6], ['--ipv6', f.ipv6 === true ? true : undefined]] as const)
      .filter(([, v]) => v !== undefined).map(([k]) => k)
    if (given.length > 0) throw new FerryError('INVALID_OPTION', `${given.join(' and ')} configure the default network: give --bridge NAME too`)
    return undefined
  }
  const cfg: DefaultBridgeConfig = { bridge: validateIfName(f.bridge, '--bridge'), icc: f.icc ?? true, masquerade: f.ipMasq ?? true }
  if (f.bip !== undefined) {
    if (!isCidr(f.bip, 4)) throw new FerryError('INVALID_CIDR', `--bip ${f.bip}: expected the bridge's address with a prefix, e.g. 172.17.0.1/16`)
    const c = parseCidr(f.bip)
    const b = bounds(f.bip)
    const n = ipValue(f.bip.split('/')[0]!)
    if (c.prefix > 30 || n === b.first || n === b.last) throw new FerryError('INVALID_CIDR', `--bip ${f.bip}: the address must be a host address of a /30 or larger subnet`)
    cfg.bip = f.bip
  }
  if (f.fixedCidrV6 !== undefined) {
    if (f.ipv6 !== true) throw new FerryError('INVALID_OPTION', `--fixed-cidr-v6 ${f.fixedCidrV6}: give --ipv6 too (the default network is IPv4-only without it)`)
    if (!isCidr(f.fixedCidrV6, 6)) throw new FerryError('INVALID_CIDR', `--fixed-cidr-v6 ${f.fixedCidrV6}: expected an IPv6 subnet, e.g. fd00:1::/64`)
    const prefix = parseCidr(f.fixedCidrV6).prefix
    if (prefix < 48 || prefix > 120) throw new FerryError('INVALID_CIDR', `--fixed-cidr-v6 ${f.fixedCidrV6}: the prefix must be /48 to /120`)
    cfg.fixedCidr6 = canonical(f.fixedCidrV6)
  }
  if (f.ipv6 === true) cfg.ipv6 = true
  if (f.mtu !== undefined) {
    if (!Number.isInteger(f.mtu) || f.mtu < 68 || f.mtu > 65535) throw new FerryError('INVALID_OPTION', `--mtu ${f.mtu}: expected 68-65535`)
    cfg.mtu = f.mtu
  }
  return cfg
}
