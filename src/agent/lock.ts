/**
 * One agent per state directory and per socket. The state directory holds a pid
 * file created exclusively; a pid file whose process is gone is stale and taken
 * over. "Gone" includes a zombie not yet reaped (a killed agent whose parent is
 * slow to reap it) and a pid the kernel has since given to a process that is not
 * a ferry agent (pids repeat: after a reboot, or within minutes on a busy host
 * with the default pid_max of 32768). A socket that still answers belongs to a
 * live process; one that refuses is stale and removed.
 */
import { promises as fs } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { FerryError } from '../errors/errors.js'
import { processExists, processFactsSync } from '../kernel/process.js'

/** State letter of `/proc/<pid>/stat` (after the parenthesized command, which may contain spaces). */
export function procState (stat: string): string {
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
}

/** A live, non-zombie process that runs a ferry agent. Without /proc, any existing process counts. */
export function isLiveAgent (pid: number): boolean {
  const facts = processFactsSync(pid)
  if ('error' in facts) return facts.error === 'ENOENT' ? processExists(pid) : true
  const { stat, cmdline } = facts
  if (procState(stat) === 'Z' || procState(stat) === 'X') return false
  // `… bin/ferry agent …`: pids wrap (32768 by default), so a recycled one is often someone else's.
  const argv = cmdline.split('\0')
  return argv.includes('agent') && argv.some((a) => a.includes('ferry'))
}

export async function lockStateDir (dir: string): Promise<() => Promise<void>> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const file = path.join(dir, 'agent.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await fs.open(file, 'wx', 0o600)
      await fh.writeFile(`${process.pid}\n`)
      await fh.close()
      return async () => {
        const text = await fs.readFile(file, 'utf8').catch(() => '')
        if (Number(text.trim()) === process.pid) await fs.rm(file, { force: true })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new FerryError('STORE', `cannot create ${file}: ${(err as Error).message}`, { cause: err })
      }
      const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim())
      if (pid > 0 && pid !== process.pid && isLiveAgent(pid)) {
        throw new FerryError('ALREADY_RUNNING', `another ferry agent (pid ${pid}) is already using the state directory ${dir}; stop it first or pass another --state-dir`)
      }
      await fs.rm(file, { force: true })
    }
  }
  throw new FerryError('ALREADY_RUNNING', `could not take the lock ${file}; is another agent starting at the same time?`)
}

function answers (socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** Make sure nobody serves `socketPath`, removing a stale socket file. */
export async function claimSocket (socketPath: string, what: string): Promise<void> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 })
  if (await answers(socketPath)) {
    throw new FerryError('ALREADY_RUNNING', `the ${what} socket ${socketPath} is already served by another process (another ferry agent?); stop it or choose another path`)
  }
  await fs.rm(socketPath, { force: true })
}

/**
 * Serve `server` on the unix socket `socketPath`, for root alone: made while the umask
 * is 077 (no window in which others may connect), then mode 0600.
 */
export async function listenRootOnly (server: { listen (opts: { path: string }): Promise<unknown> }, socketPath: string): Promise<void> {
  const old = process.umask(0o077)
  try { await server.listen({ path: socketPath }) } finally { process.umask(old) }
  await fs.chmod(socketPath, 0o600)
}
