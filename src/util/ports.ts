/**
 * A published port as text, the way `docker ps` writes it: `0.0.0.0:8080->80/tcp` and
 * `[::]:8080->80/tcp`. A binding with no host address listens on every address of its family
 * (its container address's), so the two bindings of a port published on all addresses read
 * apart; an IPv6 host address goes in brackets. Pure.
 */
import type { PortBinding } from '../model/types.js'
import { familyOf } from './ip.js'

function range (lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}-${hi}`
}

/** `0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:8080-8081`, `[::1]:8080`. */
export function hostSideText (p: PortBinding): string {
  const v6 = p.hostIp === '' ? familyOf(p.containerIp) === 6 : p.hostIp.includes(':')
  const addr = p.hostIp === '' ? (v6 ? '::' : '0.0.0.0') : p.hostIp
  return `${v6 ? `[${addr}]` : addr}:${range(p.hostPort, p.hostPortEnd)}`
}

/** `0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`. */
export function publishedText (p: PortBinding): string {
  return `${hostSideText(p)}->${range(p.containerPort, p.containerPortEnd)}/${p.proto}`
}
