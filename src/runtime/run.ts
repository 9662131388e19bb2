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
 *      and is reported to the agent (POST /v1/containers/NAME/process), for `ferry stop`.
 *   4. Signals are passed to the command; when it exits, the container is detached,
 *      the holder killed, and its exit code (128+N for signal N) is returned.
 *
 * `kill -9` of ferry run: the kernel kills the command and the holder (pdeathsig);
 * the namespace goes with them and the agent's watchdog sees the holder gone and detaches.
 *
 * `-d`: step 3 without the parent-death signal, in a session of its own, its output
 * appended to the log file the agent named (<state-dir>/logs/NAME.log). Once the
 * agent follows the command instead of the holder, the holder is killed: the
 * command alone holds the namespaces, and when it exits the watchdog detaches.
 * ferry run prints the name and returns 0.
 *
 * `--net host` runs the command directly (registered by name, for `ferry ps` and
 * `--net container:`); `--net container:NAME` enters NAME's process.
 * No shell anywhere: every program gets an argv array.
 */
import { randomBytes } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { FerryError } from '../errors/errors.js'
import { mergeEnv, parseEnvFile, parseEnvOption, type AttachWire, type EnvEntry, type EnvLookup } from './spec.js'
import type { ApiRequest } from '../model/types.js'
import { parseStat } from './netns.js'
import { exited, networkNamespace, processComm, processStat, signalProcess, startProcess, started, type ChildProcess } from '../kernel/process.js'
import type { AttachResult } from './types.js'

/** The command's own variables: to set (KEY=VALUE, later ones win) and to leave out. */
export interface RunEnv { set: string[], unset: string[] }

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
  /** -e and --env-file, resolved (loadEnv). */
  env: RunEnv
  /** -d: start the command in the background, print the name, return. */
  detach: boolean
  cmd: string[]
}

export interface RunIo {
  warn (msg: string): void
  /** A line on stdout (the name, with -d). */
  print (line: string): void
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']
/** Signals that abort ferry run while it sets a container up. */
const ABORTING: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']

export const HOLDER_ARGV: readonly string[] = [
  'unshare', '--net', '--mount', '--uts', '--propagation', 'private', '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'sleep', 'infinity',
]

/** How long ferry run -d waits to see nsenter replaced by the command. */
const EXEC_WAIT_MS = 2_000

/** Where the command runs. */
export type Enter = { kind: 'host' } | { kind: 'pid', pid: number } | { kind: 'netns', path: string }

/**
 * The command's argv. Pure. `dieWithFerry`: the kernel kills the command when
 * ferry run dies (foreground); a detached command outlives it.
 */
export function commandArgv (enter: Enter, cwd: string, cmd: readonly string[], opts: { dieWithFerry: boolean } = { dieWithFerry: true }): string[] {
  const guarded = opts.dieWithFerry ? ['setpriv', '--pdeathsig', 'KILL', '--', ...cmd] : [...cmd]
  if (enter.kind === 'host') return guarded
  if (enter.kind === 'netns') return ['nsenter', `--net=${enter.path}`, '--', ...guarded]
  return ['nsenter', `--target=${enter.pid}`, '--net', '--mount', '--uts', `--wd=${cwd}`, '--', ...guarded]
}

/** The attach body for a run. Pure. */
export function attachBody (r: RunRequest, name: string, pid: number): AttachWire {
  const body: AttachWire = {
    name, net: r.net, pid, watchPid: pid, owner: 'run',
    publish: r.publish, publishAll: r.publishAll, expose: r.expose, links: r.links, aliases: r.aliases,
    dns: r.dns, dnsSearch: r.dnsSearch, dnsOptions: r.dnsOptions,
    setupFiles: r.net !== 'host' && !r.net.startsWith('container:'),
  }
  if (r.ip !== undefined) body.ip = r.ip
  if (r.hostname !== undefined) body.hostname = r.hostname
  if (r.env.set.length > 0) body.env = r.env.set
  if (r.detach) body.detached = true
  return body
}

/**
 * The command's environment, as Docker builds it: ferry run's own, then what the
 * agent gives (HOSTNAME, link variables), then -e/--env-file; `-e KEY` of a KEY
 * ferry run does not have removes it. Pure.
 */
export function commandEnv (base: NodeJS.ProcessEnv, fromAgent: Record<string, string>, own: RunEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, ...fromAgent }
  for (const kv of own.set) {
    const eq = kv.indexOf('=')
    env[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  for (const key of own.unset) delete env[key]
  return env
}

/** -e and --env-file as `docker run` reads them: the files first, in order, then each -e; later ones win. */
export async function loadEnv (options: readonly string[], files: readonly string[], lookup: EnvLookup): Promise<RunEnv> {
  const entries: EnvEntry[] = []
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      throw new FerryError('INVALID_OPTION', `--env-file ${file}: ${(err as Error).message}`, { cause: err })
    }
    entries.push(...parseEnvFile(text, file, lookup))
  }
  for (const o of options) entries.push(parseEnvOption(o, lookup))
  return mergeEnv(entries)
}

/** Exit code of a finished child as a shell reports it. */
export function exitStatus (code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))
}

/** Start the holder and wait until it sits in its own namespaces (it has exec'd sleep). */
async function startHolder (): Promise<ChildProcess> {
  const holder = startProcess(HOLDER_ARGV, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  holder.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  holder.once('error', () => { /* seen as an exit below */ })
  const pid = holder.pid
  const ownNet = await networkNamespace('self')
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (pid === undefined || holder.exitCode !== null || holder.signalCode !== null) break
    try {
      const [comm, net] = await Promise.all([processComm(pid), networkNamespace(pid)])
      if (comm === 'sleep' && net !== ownNet) return holder
    } catch { /* not there yet */ }
    await sleep(5)
  }
  holder.kill('SIGKILL')
  throw new FerryError('KERNEL', `could not make the container's namespaces (${HOLDER_ARGV.join(' ')}): ${stderr.trim() || 'it did not start in time'}`)
}

/** Signals that arrive while a container is being set up: remembered, and `onAbort` runs at once. */
class AbortWatch {
  signal?: NodeJS.Signals
  private readonly handler = (s: NodeJS.Signals): void => { this.signal ??= s; this.onAbort() }
  constructor (private readonly onAbort: () => void) { for (const s of ABORTING) process.on(s, this.handler) }
  release (): void { for (const s of ABORTING) process.off(s, this.handler) }
}

function containerPath (name: string, sub = ''): string {
  return `/v1/containers/${encodeURIComponent(name)}${sub}`
}

/** Run the command; resolves with its exit status (0 once a detached command runs). */
export async function runContainer (r: RunRequest, api: ApiRequest, io: RunIo): Promise<number> {
  if (r.cmd.length === 0) throw new FerryError('INVALID_OPTION', 'ferry run needs a command: ferry run [OPTIONS] -- CMD [ARG…]')
  const name = r.name ?? `run-${randomBytes(5).toString('hex')}`
  const own = r.net !== 'host' && !r.net.startsWith('container:')

  let holder: ChildProcess | undefined
  let attached = false
  const detach = async (): Promise<void> => {
    if (!attached) return
    attached = false
    await api('DELETE', containerPath(name)).catch((err: unknown) => io.warn(`ferry run: detaching ${name} failed: ${(err as Error).message}`))
  }
  const cleanup = async (): Promise<void> => {
    await detach()
    holder?.kill('SIGKILL')
  }
  const abort = new AbortWatch(() => { holder?.kill('SIGKILL') })
  let result: AttachResult
  try {
    if (own) holder = await startHolder()
    const pid = holder?.pid ?? process.pid
    result = await api<AttachResult>('POST', '/v1/containers', attachBody(r, name, pid))
    attached = true
    if (abort.signal !== undefined) throw new FerryError('INTERNAL', `interrupted by ${abort.signal}`)
  } catch (err) {
    abort.release()
    await cleanup()
    if (abort.signal !== undefined) return exitStatus(null, abort.signal)
    throw err
  }
  for (const w of result.warnings) io.warn(w)
  const enterPid = holder?.pid ?? result.enterPid
  const enter: Enter = r.net === 'host'
    ? { kind: 'host' }
    : enterPid !== undefined ? { kind: 'pid', pid: enterPid } : { kind: 'netns', path: result.container.netns }
  const argv = commandArgv(enter, process.cwd(), r.cmd, { dieWithFerry: !r.detach })
  const env = commandEnv(process.env, result.env, r.env)
  if (r.detach) {
    try {
      return await startDetached({ name, argv, env, log: result.container.log, viaNsenter: enter.kind !== 'host', api, io, abort, cleanup })
    } finally {
      abort.release()
      holder?.kill('SIGKILL')
    }
  }
  abort.release()
  const report = (pid: number): Promise<void> => api('POST', containerPath(name, '/process'), { pid }).then(() => undefined, () => undefined)
  return supervise(argv, env, enter.kind !== 'host', cleanup, report)
}

/** Spawn the command, report it, pass signals on, clean up after it, return its status. */
async function supervise (argv: string[], env: NodeJS.ProcessEnv, viaNsenter: boolean, cleanup: () => Promise<void>, report: (pid: number) => Promise<void>): Promise<number> {
  const child = startProcess(argv, { stdio: 'inherit', env })
  let spawnError: Error | undefined
  child.once('error', (err) => { spawnError = err })
  const forward = (s: NodeJS.Signals): void => { child.kill(s) }
  for (const s of FORWARDED) process.on(s, forward)
  // Best effort: ferry stop/rm signal the command once the agent knows it (the
  // agent checks it is in the container's namespace: nsenter must have entered).
  const reported = (async () => {
    if ((await started(child)) !== undefined) return
    if (!viaNsenter || await execOrExit(child) === undefined) await report(child.pid!)
  })()
  const { code, signal } = await exited(child)
  for (const s of FORWARDED) process.off(s, forward)
  await reported
  await cleanup()
  if (spawnError !== undefined) throw new FerryError('KERNEL', `could not run ${argv[0]!}: ${spawnError.message}`, { cause: spawnError })
  return exitStatus(code, signal)
}

interface DetachedStart {
  name: string
  argv: string[]
  env: NodeJS.ProcessEnv
  /** The log file the agent named. */
  log: string | undefined
  /** The argv starts with nsenter, which execs the command (or fails to: 126, 127). */
  viaNsenter: boolean
  api: ApiRequest
  io: RunIo
  abort: AbortWatch
  cleanup: () => Promise<void>
}

/**
 * ferry run -d: the command in a session of its own, output to the log; the agent
 * told to follow it. Any failure before that kills it and detaches. Returns 0 once
 * it runs, or the exit status of a command that could not be executed.
 */
async function startDetached (d: DetachedStart): Promise<number> {
  if (d.log === undefined) {
    await d.cleanup()
    throw new FerryError('INTERNAL', 'the agent named no log file for the detached command (is it older than ferry run -d?)')
  }
  const fh = await open(d.log, 'a')
  let child: ChildProcess
  try {
    child = startProcess(d.argv, { detached: true, stdio: ['ignore', fh.fd, fh.fd], env: d.env })
  } finally {
    await fh.close()
  }
  const failed = await started(child)
  if (failed !== undefined) {
    await d.cleanup()
    throw new FerryError('KERNEL', `could not run ${d.argv[0]!}: ${failed.message}`, { cause: failed })
  }
  const pid = child.pid!
  child.unref()
  // nsenter must have entered the namespaces (and exec'd the command) before the
  // agent checks the process, and before the holder goes.
  const early = d.viaNsenter ? await execOrExit(child) : undefined
  if (early === 126 || early === 127) {
    await d.cleanup()
    const tail = (await readFile(d.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n')
    d.io.warn(`ferry run: ${d.argv.slice(d.argv.indexOf('--') + 1).join(' ')} could not be executed${tail !== '' ? `: ${tail}` : ''}`)
    return early
  }
  try {
    await d.api('POST', containerPath(d.name, '/process'), { pid })
    if (d.abort.signal !== undefined) throw new FerryError('INTERNAL', `interrupted by ${d.abort.signal}`)
  } catch (err) {
    const finished = await hasExited(child)
    if (!finished) try { signalProcess(-pid, 'SIGKILL') } catch { /* it is ours: nothing but ESRCH (handled) can refuse; the cleanup must run */ }
    await d.cleanup()
    if (d.abort.signal !== undefined) return exitStatus(null, d.abort.signal)
    if (!finished) throw err
    // It ran and is already over (docker run -d of a short command): the agent let it go.
  }
  d.io.print(d.name)
  return 0
}

/** Exited, even if Node has not reaped it yet (a zombie). */
async function hasExited (child: ChildProcess): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  try {
    const st = parseStat(await processStat(child.pid!))
    return st === undefined || st.state === 'Z' || st.state === 'X'
  } catch {
    return true
  }
}

/**
 * Wait until nsenter has been replaced by the command (its comm changes), or
 * exited: undefined once the command runs, else the exit status.
 */
async function execOrExit (child: ChildProcess): Promise<number | undefined> {
  let status: number | undefined
  void exited(child).then(({ code, signal }) => { status = exitStatus(code, signal) }) // exited never rejects
  const deadline = Date.now() + EXEC_WAIT_MS
  while (Date.now() < deadline) {
    if (status !== undefined) return status
    try {
      const comm = await processComm(child.pid!)
      if (comm !== 'nsenter') return undefined
    } catch { /* exiting: the exit event tells */ }
    await sleep(5)
  }
  return status
}
