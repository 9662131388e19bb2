/**
 * The one module that works inside other namespaces, always through child
 * processes (`ip`, `nsenter`, `mount`, `hostname`; argv arrays, never a shell):
 * namespace switching is per thread, so the agent never calls setns itself.
 *
 *   moveLink          ip link set dev fycX netns PATH                  (in the agent's namespace)
 *   configure         nsenter --net=PATH -- ip -batch -                 (rename, address, up, default route)
 *   setupFiles        nsenter --target PID --mount [--net|--uts] -- mount … / hostname …
 *
 * and the processes ferry watches and stops (/proc/PID/stat, kill: src/kernel/process.ts), by pid and
 * start time so that a reused pid is never mistaken for the container's.
 *
 * The `ip -batch` text is planned by the pure `interfaceBatch` from validated values.
 */
import { FerryError } from '../errors/errors.js'
import { execFile } from '../kernel/exec.js'
import { namespaceKey, processStat, signalProcess } from '../kernel/process.js'
import type { ProcessRef } from './types.js'

export interface InterfaceConfig {
  /** The name the veth end has when it arrives in the namespace. */
  dev: string
  /** Its name inside (eth0). */
  ifname: string
  /** IPv4 address with prefix, e.g. 10.20.0.2/24; undefined on an IPv6-only network. */
  cidr?: string
  /** Default route; undefined on an internal network. */
  gateway?: string
  /** The IPv6 address with prefix on a dual-stack or IPv6-only network (usable at once: no DAD), and its default route. */
  cidr6?: string
  gateway6?: string
}

/** The `ip -batch` lines that configure a moved veth end; loopback comes up too. Pure. */
export function interfaceBatch (c: InterfaceConfig): string {
  const lines = ['link set dev lo up']
  if (c.dev !== c.ifname) lines.push(`link set dev ${c.dev} name ${c.ifname}`)
  if (c.cidr !== undefined) lines.push(`addr add ${c.cidr} dev ${c.ifname}`)
  if (c.cidr6 !== undefined) lines.push(`addr add ${c.cidr6} dev ${c.ifname} nodad`)
  lines.push(`link set dev ${c.ifname} up`)
  for (const gw of [c.cidr === undefined ? undefined : c.gateway, c.cidr6 === undefined ? undefined : c.gateway6]) {
    if (gw !== undefined) lines.push(`route add default via ${gw} dev ${c.ifname}`)
  }
  return lines.join('\n') + '\n'
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when the process is gone. Pure on the text. */
export function parseStartTime (stat: string): string | undefined {
  return parseStat(stat)?.startTime
}

/** State (field 3), process group (field 5) and start time (field 22) of /proc/PID/stat. Pure on the text. */
export function parseStat (stat: string): { state: string, pgrp: number, startTime: string } | undefined {
  const end = stat.lastIndexOf(')')
  if (end < 0) return undefined
  const fields = stat.slice(end + 2).split(' ')
  // fields[0] is field 3 (state); field 5 is fields[2]; field 22 is fields[19].
  const [state, pgrp, startTime] = [fields[0], Number(fields[2]), fields[19]]
  if (state === undefined || startTime === undefined || !Number.isInteger(pgrp)) return undefined
  return { state, pgrp, startTime }
}

/** A zombie (Z) or dead (X) process has exited: only its parent has not reaped it yet. */
function exitedState (state: string): boolean {
  return state === 'Z' || state === 'X'
}

export interface NamespaceOps {
  /** The start time of a process, undefined when it does not exist or has exited (a zombie). */
  startTime (pid: number): Promise<string | undefined>
  /**
   * Send a signal to the process, or to its whole process group when it leads one
   * (ferry run -d starts the command in a session of its own). False when that
   * process (pid and start time) is gone.
   */
  signal (proc: ProcessRef, sig: NodeJS.Signals): Promise<boolean>
  /** True when both paths name the same namespace (same inode). */
  sameNamespace (a: string, b: string): Promise<boolean>
  /** Fails with a clear message unless `path` is a network namespace other than the agent's own. */
  checkForeignNetns (path: string): Promise<void>
  moveLink (dev: string, netnsPath: string): Promise<void>
  configure (netnsPath: string, c: InterfaceConfig): Promise<void>
  loopbackUp (netnsPath: string): Promise<void>
  /** Bind-mount hosts and resolv.conf, mount the namespace's sysfs on /sys, set the hostname. */
  setupFiles (pid: number, files: { hosts: string, resolv: string }, hostname: string): Promise<void>
  /** Does `ifname` exist in the namespace? */
  hasLink (netnsPath: string, ifname: string): Promise<boolean>
}

export class ChildProcessNamespaces implements NamespaceOps {
  private async stat (pid: number): Promise<ReturnType<typeof parseStat>> {
    try {
      const st = parseStat(await processStat(pid))
      return st === undefined || exitedState(st.state) ? undefined : st
    } catch {
      return undefined
    }
  }

  async startTime (pid: number): Promise<string | undefined> {
    return (await this.stat(pid))?.startTime
  }

  async signal (proc: ProcessRef, sig: NodeJS.Signals): Promise<boolean> {
    const st = await this.stat(proc.pid)
    if (st === undefined || st.startTime !== proc.startTime) return false
    return signalProcess(st.pgrp === proc.pid ? -proc.pid : proc.pid, sig)
  }

  async sameNamespace (a: string, b: string): Promise<boolean> {
    return (await namespaceKey(a)) === (await namespaceKey(b))
  }

  async checkForeignNetns (path: string): Promise<void> {
    let key: string
    try {
      key = await namespaceKey(path)
    } catch (err) {
      throw new FerryError('INVALID_REQUEST', `network namespace ${path} does not exist (${(err as Error).message})`, { cause: err })
    }
    if (key === await namespaceKey('/proc/self/ns/net')) {
      throw new FerryError('INVALID_REQUEST', `${path} is the agent's own network namespace: ferry configures only namespaces made for containers`)
    }
  }

  async moveLink (dev: string, netnsPath: string): Promise<void> {
    await execFile(['ip', 'link', 'set', 'dev', dev, 'netns', netnsPath], { timeoutMs: 10_000 })
  }

  async configure (netnsPath: string, c: InterfaceConfig): Promise<void> {
    await execFile(['nsenter', `--net=${netnsPath}`, '--', 'ip', '-batch', '-'], { input: interfaceBatch(c), timeoutMs: 10_000 })
  }

  async loopbackUp (netnsPath: string): Promise<void> {
    await execFile(['nsenter', `--net=${netnsPath}`, '--', 'ip', 'link', 'set', 'dev', 'lo', 'up'], { timeoutMs: 10_000 })
  }

  async setupFiles (pid: number, files: { hosts: string, resolv: string }, hostname: string): Promise<void> {
    const enter = (...ns: string[]): string[] => ['nsenter', `--target=${pid}`, ...ns, '--']
    // The mount namespace must be the container's, never the agent's.
    if (await this.sameNamespace(`/proc/${pid}/ns/mnt`, '/proc/self/ns/mnt')) {
      throw new FerryError('INVALID_REQUEST', `process ${pid} shares the agent's mount namespace: ferry mounts /etc/hosts only in a namespace of its own`)
    }
    const opts = { timeoutMs: 10_000 }
    await execFile([...enter('--mount', '--net'), 'mount', '-t', 'sysfs', '-o', 'ro,nosuid,nodev,noexec', 'sysfs', '/sys'], opts)
    await execFile([...enter('--mount'), 'mount', '--bind', files.hosts, '/etc/hosts'], opts)
    await execFile([...enter('--mount'), 'mount', '--bind', files.resolv, '/etc/resolv.conf'], opts)
    await execFile([...enter('--uts'), 'hostname', hostname], opts)
  }

  async hasLink (netnsPath: string, ifname: string): Promise<boolean> {
    const r = await execFile(['nsenter', `--net=${netnsPath}`, '--', 'ip', '-o', 'link', 'show', 'dev', ifname], { allowFailure: true, timeoutMs: 10_000 })
    return r.code === 0
  }
}
