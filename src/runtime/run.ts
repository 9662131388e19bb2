/**
 * `ferry run`: a command in namespaces ferry prepared, on the CLI's side.
 *
 *   1. A holder process makes the namespaces and keeps them alive:
 *        unshare --net --mount --uts --propagation private -- setpriv --pdeathsig KILL -- sleep infinity
 *   2. The agent attaches it (POST /v1/containers, pid = the holder): veth, address,
 *      routes, ports, links; generated /etc/hosts and /etc/resolv.conf bind-mounted,
 *      the namespace's sysfs on /sys, the hostname set; it watches the holder's pid.
 *   3. The command enters them, dying with this process whatever kills it:
 *        nsenter --target=HOLDER --net --mount --uts --wd=CWD -- setpriv --pdeathsig KILL -- CMD…
 *   4. Signals are passed to the command; when it exits, the container is detached,
 *      the holder killed, and its exit code (128+N for signal N) is returned.
 *
 * `kill -9` of ferry run: the kernel kills the command and the holder (pdeathsig);
 * the namespace goes with them and the agent's watchdog sees the holder gone and detaches.
 * `--net host` runs the command directly; `--net container:NAME` enters NAME's holder.
 * No shell anywhere: every program gets an argv array.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, readlink } from 'node:fs/promises'
import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { FerryError } from '../errors/errors.js'
import type { AttachWire } from './spec.js'
import type { ApiRequest } from './client.js'
import type { AttachResult } from './types.js'

export interface RunRequest {
  name?: string
  net: string
  publish: string[]
  publishAll: boolean
  expose: string[]
  links: string[]
  aliases: string[]
  ip?: string
  dns: string[]
  dnsSearch: string[]
  dnsOptions: string[]
  hostname?: string
  cmd: string[]
}

export interface RunIo {
  warn (msg: string): void
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']

export const HOLDER_ARGV: readonly string[] = [
  'unshare', '--net', '--mount', '--uts', '--propagation', 'private', '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'sleep', 'infinity',
]

/** Where the command runs. */
export type Enter = { kind: 'host' } | { kind: 'pid', pid: number } | { kind: 'netns', path: string }

/** The command's argv. Pure. */
export function commandArgv (enter: Enter, cwd: string, cmd: readonly string[]): string[] {
  const guard = ['setpriv', '--pdeathsig', 'KILL', '--', ...cmd]
  if (enter.kind === 'host') return guard
  if (enter.kind === 'netns') return ['nsenter', `--net=${enter.path}`, '--', ...guard]
  return ['nsenter', `--target=${enter.pid}`, '--net', '--mount', '--uts', `--wd=${cwd}`, '--', ...guard]
}

/** The attach body for a run. Pure. */
export function attachBody (r: RunRequest, name: string, pid: number): AttachWire {
  const body: AttachWire = {
    name, net: r.net, pid, watchPid: pid, owner: 'run',
    publish: r.publish, publishAll: r.publishAll, expose: r.expose, links: r.links, aliases: r.aliases,
    dns: r.dns, dnsSearch: r.dnsSearch, dnsOptions: r.dnsOptions,
    setupFiles: !r.net.startsWith('container:'),
  }
  if (r.ip !== undefined) body.ip = r.ip
  if (r.hostname !== undefined) body.hostname = r.hostname
  return body
}

/** Exit code of a finished child as a shell reports it. */
export function exitStatus (code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))
}

function exited (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve({ code: child.exitCode, signal: child.signalCode }); return }
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', () => resolve({ code: 127, signal: null }))
  })
}

/** Start the holder and wait until it sits in its own namespaces (it has exec'd sleep). */
async function startHolder (): Promise<ChildProcess> {
  const holder = spawn(HOLDER_ARGV[0]!, HOLDER_ARGV.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  holder.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  holder.once('error', () => { /* seen as an exit below */ })
  const pid = holder.pid
  const ownNet = await readlink('/proc/self/ns/net')
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (pid === undefined || holder.exitCode !== null || holder.signalCode !== null) break
    try {
      const [comm, net] = await Promise.all([readFile(`/proc/${pid}/comm`, 'utf8'), readlink(`/proc/${pid}/ns/net`)])
      if (comm.trim() === 'sleep' && net !== ownNet) return holder
    } catch { /* not there yet */ }
    await sleep(5)
  }
  holder.kill('SIGKILL')
  throw new FerryError('KERNEL', `could not make the container's namespaces (${HOLDER_ARGV.join(' ')}): ${stderr.trim() || 'it did not start in time'}`)
}

/** Run the command; resolves with its exit status. */
export async function runContainer (r: RunRequest, api: ApiRequest, io: RunIo): Promise<number> {
  if (r.cmd.length === 0) throw new FerryError('INVALID_OPTION', 'ferry run needs a command: ferry run [OPTIONS] -- CMD [ARG…]')
  const name = r.name ?? `run-${randomBytes(5).toString('hex')}`
  if (r.net === 'host') {
    if (r.links.length > 0) throw new FerryError('INVALID_OPTION', 'conflicting options: host type networking cannot be used with links')
    if (r.hostname !== undefined) throw new FerryError('INVALID_OPTION', 'conflicting options: --hostname and --net host (the host\'s name is used)')
    if (r.publish.length > 0 || r.publishAll) io.warn('WARNING: Published ports are discarded when using host network mode')
    return supervise(commandArgv({ kind: 'host' }, process.cwd(), r.cmd), {}, async () => undefined)
  }

  const own = !r.net.startsWith('container:')
  let holder: ChildProcess | undefined
  let attached = false
  let aborted: NodeJS.Signals | undefined
  const onEarlySignal = (s: NodeJS.Signals): void => { aborted = s; holder?.kill('SIGKILL') }
  for (const s of FORWARDED) process.on(s, onEarlySignal)
  const cleanup = async (): Promise<void> => {
    if (attached) {
      await api('DELETE', `/v1/containers/${encodeURIComponent(name)}`).catch((err: unknown) => io.warn(`ferry run: detaching ${name} failed: ${(err as Error).message}`))
    }
    holder?.kill('SIGKILL')
  }
  let result: AttachResult
  try {
    if (own) holder = await startHolder()
    const pid = holder?.pid ?? process.pid
    result = await api<AttachResult>('POST', '/v1/containers', attachBody(r, name, pid))
    attached = true
    if (aborted !== undefined) throw new FerryError('INTERNAL', `interrupted by ${aborted}`)
  } catch (err) {
    for (const s of FORWARDED) process.off(s, onEarlySignal)
    await cleanup()
    if (aborted !== undefined) return exitStatus(null, aborted)
    throw err
  } finally {
    for (const s of FORWARDED) process.off(s, onEarlySignal)
  }
  for (const w of result.warnings) io.warn(w)
  const enterPid = holder?.pid ?? result.enterPid
  const enter: Enter = enterPid !== undefined ? { kind: 'pid', pid: enterPid } : { kind: 'netns', path: result.container.netns }
  return supervise(commandArgv(enter, process.cwd(), r.cmd), result.env, cleanup)
}

/** Spawn the command, pass signals on, clean up after it, return its status. */
async function supervise (argv: string[], env: Record<string, string>, cleanup: () => Promise<void>): Promise<number> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } })
  let spawnError: Error | undefined
  child.once('error', (err) => { spawnError = err })
  const forward = (s: NodeJS.Signals): void => { child.kill(s) }
  for (const s of FORWARDED) process.on(s, forward)
  const { code, signal } = await exited(child)
  for (const s of FORWARDED) process.off(s, forward)
  await cleanup()
  if (spawnError !== undefined) throw new FerryError('KERNEL', `could not run ${argv[0]!}: ${spawnError.message}`, { cause: spawnError })
  return exitStatus(code, signal)
}
