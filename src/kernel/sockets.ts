/**
 * The kernel's tables of this network namespace's sockets (/proc/net/tcp, tcp6, udp,
 * udp6, sctp/eps), as text: src/nat/hostports.ts parses them. A table the kernel
 * does not have (no IPv6, no SCTP module) reads as empty.
 */
import { readFile } from 'node:fs/promises'

export interface SocketTables { tcp: string, tcp6: string, udp: string, udp6: string, sctp: string }

const PATHS: Record<keyof SocketTables, string> = {
  tcp: '/proc/net/tcp', tcp6: '/proc/net/tcp6', udp: '/proc/net/udp', udp6: '/proc/net/udp6', sctp: '/proc/net/sctp/eps',
}

async function readOrEmpty (path: string): Promise<string> {
  try { return await readFile(path, 'utf8') } catch { return '' } // a table this kernel lacks holds no socket
}

/** The socket tables of the calling process's network namespace, read now. */
export async function readSocketTables (): Promise<SocketTables> {
  const [tcp, tcp6, udp, udp6, sctp] = await Promise.all([
    readOrEmpty(PATHS.tcp), readOrEmpty(PATHS.tcp6), readOrEmpty(PATHS.udp), readOrEmpty(PATHS.udp6), readOrEmpty(PATHS.sctp),
  ])
  return { tcp, tcp6, udp, udp6, sctp }
}
