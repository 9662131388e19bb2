/**
 * What the host says about its ports in the calling process's network namespace
 * (the agent's): the ephemeral range and the reserved ports (sysctls, through
 * src/kernel/sysctl.ts), and the ports that host sockets hold (TCP listeners, bound
 * UDP sockets, SCTP endpoints, IPv4 and IPv6; the kernel's socket tables, through
 * src/kernel/sockets.ts). The parsers are pure and exported for tests.
 */
import { readSysctl } from '../kernel/sysctl.js'
import { readSocketTables } from '../kernel/sockets.js'
import type { Protocol } from '../model/types.js'
import type { PortRange } from './ports.js'

/** Docker's fallback when the kernel's range cannot be read. */
export const FALLBACK_RANGE: PortRange = { lo: 49153, hi: 65535 }

export interface HostPorts {
  range: PortRange
  reserved: Set<number>
  inUse: (proto: Protocol, port: number) => boolean
}

/** `32768\t60999` → { lo: 32768, hi: 60999 } */
export function parsePortRange (text: string): PortRange | undefined {
  const [lo, hi] = text.trim().split(/\s+/).map(Number)
  if (lo === undefined || hi === undefined || !Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || hi < lo) return undefined
  return { lo, hi }
}

/** `1000,2000-2002` → {1000, 2000, 2001, 2002} */
export function parseReservedPorts (text: string): Set<number> {
  const out = new Set<number>()
  for (const part of text.trim().split(',')) {
    if (part === '') continue
    const [a, b] = part.split('-').map(Number)
    if (a === undefined || !Number.isInteger(a)) continue
    const end = b === undefined || !Number.isInteger(b) ? a : b
    for (let p = a; p <= end && p <= 65535; p++) out.add(p)
  }
  return out
}

const TCP_LISTEN = '0A'

/**
 * Local ports of /proc/net/{tcp,tcp6,udp,udp6}. For TCP only listening sockets
 * count; for UDP every socket bound to a port.
 */
export function parseProcNet (text: string, proto: 'tcp' | 'udp'): Set<number> {
  const out = new Set<number>()
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    const local = cols[1]
    const state = cols[3]
    if (local === undefined || state === undefined) continue
    if (proto === 'tcp' && state !== TCP_LISTEN) continue
    const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16)
    if (Number.isInteger(port) && port > 0) out.add(port)
  }
  return out
}

/** Local ports of /proc/net/sctp/eps (LPORT is the sixth column, decimal). */
export function parseSctpEps (text: string): Set<number> {
  const out = new Set<number>()
  for (const line of text.split('\n').slice(1)) {
    const port = Number(line.trim().split(/\s+/)[5])
    if (Number.isInteger(port) && port > 0) out.add(port)
  }
  return out
}

/** Read the host's port facts now. Missing files (no IPv6, no SCTP module) count as empty. */
export async function readHostPorts (): Promise<HostPorts> {
  const [range, reserved, { tcp, tcp6, udp, udp6, sctp }] = await Promise.all([
    readSysctl('net.ipv4.ip_local_port_range').catch(() => ''),
    readSysctl('net.ipv4.ip_local_reserved_ports').catch(() => ''),
    readSocketTables(),
  ])
  const used: Record<Protocol, Set<number>> = {
    tcp: new Set([...parseProcNet(tcp, 'tcp'), ...parseProcNet(tcp6, 'tcp')]),
    udp: new Set([...parseProcNet(udp, 'udp'), ...parseProcNet(udp6, 'udp')]),
    sctp: parseSctpEps(sctp),
  }
  return {
    range: parsePortRange(range) ?? FALLBACK_RANGE,
    reserved: parseReservedPorts(reserved),
    inUse: (proto, port) => used[proto].has(port),
  }
}
