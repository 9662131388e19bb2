/**
 * What the IPAM asks of the host: the networks it already uses (its routes and
 * addresses, which an automatic pool must not overlap) and its identity (the seed
 * of the default IPv6 pool's unique-local prefix: src/ipam/pools.ts derivedIpv6Pool).
 */
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { LinkDriver } from '../kernel/types.js'

/** The prefixes of the host's routes (but the default route) and of its addresses. */
export async function hostNetworks (links: Pick<LinkDriver, 'listRoutes' | 'listAddresses'>): Promise<string[]> {
  const [routes, addrs] = await Promise.all([links.listRoutes(), links.listAddresses()])
  return [...routes.filter((r) => r.dst !== '0.0.0.0/0').map((r) => r.dst), ...addrs.map((a) => a.cidr)]
}

/** /etc/machine-id (systemd's stable host id), else the agent's host id, else the host name. */
export async function hostIdentity (hostId: string | undefined, machineIdFile = '/etc/machine-id'): Promise<string> {
  const id = await readFile(machineIdFile, 'utf8').then((t) => t.trim(), () => '')
  return id !== '' ? id : hostId ?? hostname()
}
