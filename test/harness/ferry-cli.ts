/**
 * Driving the ferry CLI from tests, the way an admin would: every command runs in
 * the agent's test namespace (`ip netns exec <host> node -- bin/ferry …`) against
 * its API socket, from dist/ (build first). Used by the runtime e2e tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { untilValue } from './until.js'
import { execFile, type ExecResult } from '../../src/kernel/exec.js'
import { ipJson, netns, type TeardownHost } from './netns.js'
import { NODE, cleanEnv, startAgent, type Agent } from './agent.js'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const ENTRY = join(REPO, 'bin', 'ferry')
/** An engine address nothing answers at: the agent runs without Docker. */
export const NO_ENGINE = 'unix:///nonexistent/ferry-test-docker.sock'

export interface CliCtx { host: string, agent: Agent }

/** `extra` adds variables; an undefined value removes one. */
function cliEnv (c: CliCtx, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), FERRY_API_SOCKET: c.agent.apiSocket, ...extra }
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k]
  return env
}

/** argv of a ferry command; `--` as bin/ferry's shebang has it (Node 20 would read a `--env-file` meant for ferry run). */
function argv (c: CliCtx, args: string[]): string[] {
  return ['ip', 'netns', 'exec', c.host, ...NODE, '--', ENTRY, ...args]
}

/** A ferry command; never throws on a non-zero exit. */
export function ferry (c: CliCtx, args: string[], opts: { env?: Record<string, string | undefined>, timeoutMs?: number } = {}): Promise<ExecResult> {
  return execFile(argv(c, args), { env: cliEnv(c, opts.env), allowFailure: true, timeoutMs: opts.timeoutMs ?? 30_000 })
}

/** A ferry command left running (ferry run of a server); killed on teardown. */
export function ferryBg (tt: { teardown (fn: () => unknown): void }, c: CliCtx, args: string[]): ChildProcess & { output: () => string, done: Promise<number | null> } {
  const [cmd, ...rest] = argv(c, args)
  const child = spawn(cmd!, rest, { env: cliEnv(c), stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout.on('data', (b: Buffer) => { text += b.toString() })
  child.stderr.on('data', (b: Buffer) => { text += b.toString() })
  const done = new Promise<number | null>((res) => child.once('exit', (code) => res(code)))
  tt.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await done } })
  return Object.assign(child, { output: () => text, done })
}

/** `ferry ps --json`. */
export async function ps<T extends { name: string }> (c: CliCtx): Promise<T[]> {
  const r = await ferry(c, ['ps', '--json'])
  if (r.code !== 0) throw new Error(`ferry ps failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as T[]
}

/** Checks `fn` every 100 ms for up to `timeoutMs` until it gives a value (the harness's `untilValue`). */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  return untilValue(what, fn, { timeoutMs, everyMs: 100 })
}

/** The container's `ferry ps` entry, once it is attached. */
export async function running<T extends { name: string }> (c: CliCtx, name: string): Promise<T> {
  return waitFor(`${name} to be attached`, async () => (await ps<T>(c)).find((p) => p.name === name))
}

/** ferry's host-side veths in the agent's namespace. */
export function hostVeths (c: CliCtx): string[] {
  return ipJson<Array<{ ifname: string }>>(c.host, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fyh'))
}

/** A process that exists and is not a zombie waiting to be reaped. */
export function alive (pid: number): boolean {
  try {
    return !/^\S+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** The CLI and the agent run from dist/: fail early and clearly when it was never built. */
export function requireBuild (t: { fail (msg: string): void }): void {
  if (!existsSync(join(REPO, 'dist', 'cli', 'runtime.js'))) t.fail('dist/ is missing or old: run `npm run build` first')
}

/**
 * An agent without the engine in a new test namespace, with the default bridge on
 * `bip` (ICC off, watchdog every second, no periodic reconcile); its log is printed
 * when the test fails.
 */
export async function startCliAgent (t: TeardownHost & { passing (): boolean, comment (msg: string): void }, name: string, bip: string, extra: string[] = []): Promise<CliCtx> {
  const host = netns(t, `${name}h`)
  const agent = await startAgent(t, {
    ns: host, pluginName: `${name}t${process.pid}`, dockerHost: NO_ENGINE,
    args: ['--bridge', 'docker0', '--bip', bip, '--icc=false', '--watch-interval', '1', '--reconcile-interval', '0', ...extra],
  })
  t.teardown(() => { if (!t.passing()) t.comment(`agent log:\n${agent.logs().split('\n').filter((l) => !l.includes('"component":"dns"')).slice(-80).join('\n')}`) })
  return { host, agent }
}
