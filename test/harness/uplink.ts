/**
 * The end-to-end suites' "host" and "outside" namespaces joined by an uplink that
 * carries both address families in every variant, and what a test needs to know
 * of one family (issue #15: every e2e test of ports, ICC, isolation, internal
 * networks, hairpin and loopback runs in both, parameterised, not copied). The
 * IPv6 variant uses dual-stack networks: Docker 20.10 wants an IPv4 subnet too.
 */
import { isIp } from '../../src/util/ip.js'
import { link, nsExec } from './netns.js'
import { addAddr, type Fam } from './firewall.js'
import type { Dockerd } from './dockerd.js'

export interface Family {
  /** The host's and the outside's addresses on the uplink. */
  host: string
  outside: string
  /** `docker network create` arguments for network n (IPv4 10.n.0.0/24; IPv6 adds --ipv6 fd00:n::/64). */
  netArgs: (n: number) => string[]
  /** Network n's subnet of this family (to route it from outside). */
  subnet: (n: number) => string
  /** The container's address of this family in `docker inspect`'s network settings. */
  addrKey: 'IPAddress' | 'GlobalIPv6Address'
  udp: 'udp4' | 'udp6'
  /** `ping` of this family (busybox). */
  ping: string[]
  /** `ip` of this family. */
  ip: string[]
}

export const UPLINK = {
  4: { host: '203.0.113.1', outside: '203.0.113.2', plen: 24 },
  6: { host: '2001:db8:1::1', outside: '2001:db8:1::2', plen: 64 },
} as const

export const FAMILY: Record<Fam, Family> = {
  4: {
    ...UPLINK[4],
    netArgs: (n) => ['--subnet', `10.${n}.0.0/24`],
    subnet: (n) => `10.${n}.0.0/24`,
    addrKey: 'IPAddress',
    udp: 'udp4',
    ping: ['ping'],
    ip: ['ip'],
  },
  6: {
    ...UPLINK[6],
    netArgs: (n) => ['--ipv6', '--subnet', `10.${n}.0.0/24`, '--subnet', `fd00:${n}::/64`],
    subnet: (n) => `fd00:${n}::/64`,
    addrKey: 'GlobalIPv6Address',
    udp: 'udp6',
    ping: ['ping', '-6'],
    ip: ['ip', '-6'],
  },
}

/** `ip:port` for a URL (an IPv6 address in brackets). */
export const hostPort = (ip: string, port: number): string => ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
export const url = (ip: string, port: number): string => `http://${hostPort(ip, port)}/`

/** Join `host` and `outside` with an uplink holding both families' addresses; the host's default routes go outside. */
export function dualUplink (host: string, outside: string): void {
  link({ ns: host, ifname: 'uplink', cidr: `${UPLINK[4].host}/${UPLINK[4].plen}` }, { ns: outside, ifname: 'eth0', cidr: `${UPLINK[4].outside}/${UPLINK[4].plen}` })
  addAddr(host, 'uplink', `${UPLINK[6].host}/${UPLINK[6].plen}`)
  addAddr(outside, 'eth0', `${UPLINK[6].outside}/${UPLINK[6].plen}`)
  nsExec(host, ['ip', 'route', 'add', 'default', 'via', UPLINK[4].outside])
  nsExec(host, ['ip', '-6', 'route', 'add', 'default', 'via', UPLINK[6].outside])
}

/** A container's address of family `fam` on `network`, as the engine reports it; throws when it has none. */
export async function containerAddr (d: Dockerd, fam: Fam, ctr: string, network: string): Promise<string> {
  const ip = (await d.dockerOk(['inspect', '-f', `{{.NetworkSettings.Networks.${network}.${FAMILY[fam].addrKey}}}`, ctr])).trim()
  if (!isIp(ip, fam)) throw new Error(`${ctr} has no IPv${fam} address on ${network}: "${ip}"`)
  return ip
}
