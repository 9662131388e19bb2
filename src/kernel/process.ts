/**
 * Processes ferry starts and follows beyond one call (a program run to its end goes
 * through exec.ts): `ferry run`'s holder and command, the DNS server's UDP helpers
 * (Node processes with an IPC channel); and what the kernel says about a process
 * (/proc/PID/comm, stat and cmdline, its network namespace, whether it exists) and
 * signals sent to it.
 * Always an argv array, never a shell.
 */
import { fork, spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readdir, readFile, readlink, stat } from 'node:fs/promises'
import { FerryError } from '../errors/errors.js'

export type { ChildProcess }

export interface StartOptions {
  stdio: StdioOptions
  env?: NodeJS.ProcessEnv
  /** In a session (and process group) of its own. */
  detached?: boolean
}

/** Start `argv` (no shell). A failure to start comes as the child's 'error' event (see `started`). */
export function startProcess (argv: readonly string[], opts: StartOptions): ChildProcess {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new FerryError('INTERNAL', 'startProcess needs a program')
  return spawn(cmd, args, { stdio: opts.stdio, env: opts.env ?? process.env, detached: opts.detached === true, shell: false })
}

/**
 * Start a Node module of ferry's as a child with an IPC channel (structured-clone
 * messages, handles passed), run by this Node with this process's loader flags;
 * its stdout and stderr are this process's.
 */
export function forkModule (modulePath: string, args: readonly string[]): ChildProcess {
  return fork(modulePath, [...args], { serialization: 'advanced', execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/** Resolves once the child runs, or with the error that kept it from starting. */
export function started (child: ChildProcess): Promise<Error | undefined> {
  return new Promise((resolve) => {
    if (child.pid !== undefined) { resolve(undefined); return }
    child.once('spawn', () => resolve(undefined))
    child.once('error', (err) => resolve(err))
  })
}

/** Resolves when the child has exited (127 when it never started); never rejects. */
export function exited (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.pid === undefined && child.exitCode !== null) { resolve({ code: 127, signal: null }); return } // Node's exit code here is the errno
    if (child.exitCode !== null || child.signalCode !== null) { resolve({ code: child.exitCode, signal: child.signalCode }); return }
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', () => resolve({ code: 127, signal: null }))
  })
}

/** The command name of a process (/proc/PID/comm); rejects when it is gone. */
export async function processComm (pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim()
}

/** The text of /proc/PID/stat (parsed by src/runtime/netns.ts parseStat); rejects when it is gone. */
export function processStat (pid: number): Promise<string> {
  return readFile(`/proc/${pid}/stat`, 'utf8')
}

/** The network namespace of a process, as /proc/PID/ns/net names it (`net:[4026531840]`); rejects when it is gone. */
export function networkNamespace (pid: number | 'self'): Promise<string> {
  return readlink(`/proc/${pid}/ns/net`)
}

/**
 * The identity of a namespace file (/proc/PID/ns/*, /run/netns/NAME): two paths name the same
 * namespace when their keys are equal. Rejects when the path does not exist.
 */
export async function namespaceKey (path: string): Promise<string> {
  const s = await stat(path)
  return `${s.dev}:${s.ino}`
}

/**
 * Send `sig` to a process (a negative pid: to its process group). False when there
 * is no such process; any other refusal is a KERNEL error.
 */
export function signalProcess (pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw new FerryError('KERNEL', `could not send ${sig} to process ${Math.abs(pid)}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * /proc/PID/stat and /proc/PID/cmdline read at once, synchronously (the agent's lock is
 * taken before anything else runs), or the error code that kept them from being read
 * (ENOENT: no such process, or no /proc).
 */
export function processFactsSync (pid: number): { stat: string, cmdline: string } | { error: string } {
  try {
    return { stat: readFileSync(`/proc/${pid}/stat`, 'utf8'), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8') }
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? 'EIO' }
  }
}

/** Whether a process exists (signal 0); one that is not ours to signal (EPERM) exists too. */
export function processExists (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The processes of this host with their argv (/proc/PID/cmdline), those that can be
 * read (a process may exit while the list is read); `procDir` for tests. Rejects when
 * the directory cannot be listed.
 */
export async function listProcesses (procDir = '/proc'): Promise<Array<{ pid: number, argv: string[] }>> {
  const out: Array<{ pid: number, argv: string[] }> = []
  for (const e of await readdir(procDir)) {
    if (!/^\d+$/.test(e)) continue
    try {
      out.push({ pid: Number(e), argv: (await readFile(`${procDir}/${e}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '') })
    } catch { /* gone meanwhile, or not ours to read: not listed */ }
  }
  return out
}
