/**
 * Port data from the engine (com.docker.network.portmap / .endpoint.exposedports)
 * turned into ferry's PortRequest list. The engine sends one entry per container
 * port — `-p 20000-20999:20000-20999` is 1,000 entries — so consecutive 1:1
 * entries are merged back into one range request, which is what the firewall
 * programs as a single rule.
 */
import { FerryError } from '../errors/errors.js'
import type { ExposedPort, PortRequest, Protocol } from '../model/types.js'
import { isIp, normalizeIp } from '../util/ip.js'
import { PROTO_BY_NUMBER, type ExposedPortWire, type PortMapWire } from './wire.js'

export const PORTMAP_KEY = 'com.docker.network.portmap'
export const EXPOSED_KEY = 'com.docker.network.endpoint.exposedports'
export const MAC_KEY = 'com.docker.network.endpoint.macaddress'
export const IFNAME_KEY = 'com.docker.network.endpoint.ifname'

function proto (n: number): Protocol {
  const p = PROTO_BY_NUMBER[n]
  if (!p) throw new FerryError('INVALID_REQUEST', `unknown port protocol number ${n} (ferry knows 6 tcp, 17 udp, 132 sctp)`)
  return p
}

/**
 * The request's host IP: '' (no address given: every address of both families), '0.0.0.0' (every
 * IPv4 address), '::' (every IPv6 address) or one address, canonical. Which family a publication
 * reaches is decided at allocation (src/nat/ports.ts), from the endpoint's addresses.
 */
function hostIp (ip: string | undefined | null): string {
  if (ip === undefined || ip === null || ip === '') return ''
  if (isIp(ip)) return normalizeIp(ip)
  throw new FerryError('INVALID_REQUEST', `host IP "${ip}" of a port mapping is not an IP address`)
}

export function parseExposed (list: ExposedPortWire[] | null | undefined): ExposedPort[] {
  const seen = new Set<string>()
  const out: ExposedPort[] = []
  for (const e of list ?? []) {
    const p = proto(e.Proto)
    const k = `${p}/${e.Port}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push({ proto: p, port: e.Port })
  }
  return out.sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port)
}

/** Parse and normalize; the result is sorted so that the engine's varying order does not matter. */
export function parsePortMap (list: PortMapWire[] | null | undefined): PortRequest[] {
  const single: PortRequest[] = []
  for (const m of list ?? []) {
    const ip = hostIp(m.HostIP)
    const hostPort = m.HostPort ?? 0
    let hostPortEnd = m.HostPortEnd ?? 0
    if (m.Port < 1) throw new FerryError('INVALID_REQUEST', `container port ${m.Port} is not a valid port (1-65535)`)
    if (hostPort === 0) hostPortEnd = 0
    else if (hostPortEnd === 0) hostPortEnd = hostPort
    if (hostPortEnd < hostPort) throw new FerryError('INVALID_REQUEST', `host port range ${hostPort}-${hostPortEnd} ends before it starts`)
    single.push({ proto: proto(m.Proto), containerPort: m.Port, containerPortEnd: m.Port, hostIp: ip, hostPort, hostPortEnd })
  }
  single.sort((a, b) => a.proto.localeCompare(b.proto) || a.hostIp.localeCompare(b.hostIp) ||
    a.containerPort - b.containerPort || a.hostPort - b.hostPort)
  const out: PortRequest[] = []
  for (const r of single) {
    const last = out[out.length - 1]
    const oneToOne = r.hostPort !== 0 && r.hostPort === r.hostPortEnd
    if (last && oneToOne && last.proto === r.proto && last.hostIp === r.hostIp &&
        last.hostPort !== 0 && last.hostPortEnd - last.hostPort === last.containerPortEnd - last.containerPort &&
        r.containerPort === last.containerPortEnd + 1 && r.hostPort === last.hostPortEnd + 1) {
      last.containerPortEnd = r.containerPort
      last.hostPortEnd = r.hostPort
      continue
    }
    if (last && last.proto === r.proto && last.hostIp === r.hostIp && last.containerPort === r.containerPort &&
        last.containerPortEnd === r.containerPortEnd && last.hostPort === r.hostPort && last.hostPortEnd === r.hostPortEnd) continue
    out.push({ ...r })
  }
  return out
}
