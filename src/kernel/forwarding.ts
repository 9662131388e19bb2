/**
 * IPv6 forwarding for dual-stack networks (net.ipv6.conf.all.forwarding=1), the IPv6 twin
 * of net.ipv4.ip_forward, turned on once, when the first dual-stack network exists (not at
 * start: a host that never uses IPv6 networks keeps its settings). In the agent's own network
 * namespace only (/proc/sys shows the calling process's namespace).
 *
 * With forwarding on, the kernel ignores router advertisements on every interface whose
 * accept_ra is 1 (only 2 accepts them on a router), so a host that takes its IPv6 address or
 * default route from RAs loses them when they expire. Those interfaces are named in a warning
 * (Docker 27 warns the same way); `accept_ra=2` on them keeps them working (docs/ipv6.md).
 */
import { readdir } from 'node:fs/promises'
import { readSysctl, writeSysctl, type SysctlKey } from './sysctl.js'

export interface ForwardingDeps {
  read (key: SysctlKey): Promise<string>
  write (key: SysctlKey, value: string): Promise<void>
  /** The interfaces under net.ipv6.conf (with `all` and `default`); throws when the kernel has no IPv6. */
  interfaces (): Promise<string[]>
  warn (obj: object, msg: string): void
}

export const kernelForwardingDeps = (warn: ForwardingDeps['warn']): ForwardingDeps => ({
  read: readSysctl,
  write: writeSysctl,
  interfaces: async () => await readdir('/proc/sys/net/ipv6/conf'),
  warn,
})

/** Interfaces that stop accepting router advertisements once forwarding is on (accept_ra=1). */
export async function raAffected (deps: Pick<ForwardingDeps, 'read' | 'interfaces'>): Promise<string[]> {
  const out: string[] = []
  for (const name of await deps.interfaces()) {
    if (name === 'all' || name === 'default' || name === 'lo') continue
    const v = await deps.read(['net', 'ipv6', 'conf', name, 'accept_ra']).catch(() => undefined)
    if (v === '1') out.push(name)
  }
  return out.sort()
}

/** Turn IPv6 forwarding on (if it is off), warning about the interfaces that then ignore RAs. Returns whether it wrote. */
export async function enableIpv6Forwarding (deps: ForwardingDeps): Promise<boolean> {
  const key = 'net.ipv6.conf.all.forwarding'
  if (await deps.read(key) === '1') return false
  const affected = await raAffected(deps)
  if (affected.length > 0) {
    deps.warn({ interfaces: affected },
      `turning on ${key} for dual-stack networks: ${affected.join(', ')} had accept_ra=1 and now ignore router advertisements; ` +
      'set net.ipv6.conf.<interface>.accept_ra=2 on those that take their address or route from RAs')
  }
  await deps.write(key, '1')
  return true
}
