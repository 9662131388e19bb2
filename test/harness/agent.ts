/**
 * A ferry agent for end-to-end tests, inside a test network namespace:
 *
 *   ip netns exec NS node bin/ferry agent --plugin-name NAME --state-dir DIR
 *     --api-socket SOCK --log-level debug [args…]      (DOCKER_HOST set)
 *
 * With `dockerd`, the agent runs in that engine's network AND mount namespace
 * (through `nsenter`), as on a real host, so the `SandboxKey` paths the engine
 * sends resolve. Ready means `/run/docker/plugins/NAME.sock` answers
 * `POST /Plugin.Activate` the way dockerd asks it. Plugin discovery goes by
 * that path, which every namespace shares: each agent needs a unique name.
 *
 * Teardown (registered on `t`): SIGTERM, bounded wait, SIGKILL; the plugin
 * socket and the agent's temporary directory are removed. A failure is written
 * to stderr and fails the test process instead of throwing, so the teardowns
 * registered before it (the namespace) still run.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile, type ExecResult } from '../../src/kernel/exec.js'
import { ErrorList, ferryError } from '../../src/errors/errors.js'
import { unixHttp, within, type Dockerd } from './dockerd.js'
import type { TeardownHost } from './netns.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const PLUGIN_DIR = '/run/docker/plugins'
const KEEP_DIRS = process.env.FERRY_E2E_KEEP === '1'

/**
 * Node without the test runner's loader hooks. tap's process tracker re-adds its
 * --import to NODE_OPTIONS of every child it sees spawned, so it is removed by
 * `env -u` right before node starts: the compiled agent runs as a user runs it.
 */
export const NODE = ['env', '-u', 'NODE_OPTIONS', process.execPath]

/** The test runner's environment without NODE_OPTIONS. */
export function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

export interface AgentOptions {
  ns: string
  /** Unique per agent: the plugin socket is /run/docker/plugins/<pluginName>.sock. */
  pluginName: string
  /** Default: a fresh directory, removed on teardown. */
  stateDir?: string
  /** Default: api.sock in the agent's temporary directory. */
  apiSocket?: string
  /** DOCKER_HOST for the agent. Default: `dockerd.host`, else unset. */
  dockerHost?: string
  /** Run inside this engine's network and mount namespaces (must be in `ns`). */
  dockerd?: Dockerd
  /** Appended to the agent's command line. */
  args?: string[]
  /** The entry script. Default: <repo>/bin/ferry. */
  entry?: string
  /** Options for node itself, before the entry script (a benchmark's `--cpu-prof`). */
  nodeArgs?: string[]
  /** How long to wait for Plugin.Activate. Default 30 s. */
  readyTimeoutMs?: number
}

export interface AgentExit { code: number | null, signal: NodeJS.Signals | null }

export interface Agent {
  readonly pluginName: string
  readonly pluginSocket: string
  readonly stateDir: string
  readonly apiSocket: string
  /** Current agent process id, undefined while it is not running. */
  pid (): number | undefined
  /** Send a signal and return at once (SIGHUP and the like). */
  signal (sig: NodeJS.Signals): void
  /** Send a signal (default SIGTERM) and wait for the agent to exit (bounded; SIGKILL after). */
  kill (sig?: NodeJS.Signals, timeoutMs?: number): Promise<AgentExit>
  /**
   * Stop it if running, then start it again with the same options and wait until ready;
   * `args`, when given, replace the appended arguments for this start and the later ones.
   */
  restart (opts?: { args?: string[] }): Promise<void>
  /** The agent's stdout and stderr of every start so far. */
  logs (): string
  /** `node bin/ferry <args>` with FERRY_API_SOCKET set (host namespaces, argv, no shell). Never throws on a non-zero exit. */
  cli (args: string[], opts?: { input?: string, timeoutMs?: number }): Promise<ExecResult>
  /** Stop the agent, remove its socket and directory. Idempotent; teardown calls it. */
  destroy (): Promise<void>
}

/** Start a ferry agent in `opts.ns` and wait until its plugin socket answers Plugin.Activate. */
export async function startAgent (t: TeardownHost, opts: AgentOptions): Promise<Agent> {
  if (opts.dockerd !== undefined && opts.dockerd.ns !== opts.ns) {
    throw ferryError('INVALID_REQUEST', `the agent's namespace ${opts.ns} is not the engine's (${opts.dockerd.ns})`)
  }
  const a = new AgentProcess(opts)
  t.teardown(() => a.destroyForTeardown())
  await a.start()
  return a
}

/** The agent's command line (without the node program); pure. */
export function agentArgs (o: { entry: string, pluginName: string, stateDir: string, apiSocket: string, args: readonly string[] }): string[] {
  // No DNS query may leave the machine: unless the test names its own upstream, ferry's
  // DNS forwards to a closed loopback port (refused at once) instead of the host's resolv.conf.
  const dns = o.args.includes('--dns') ? [] : ['--dns', '127.0.0.1:1']
  // Suites that look at iptables rules run on iptables unless they name a backend
  // (test/e2e/ports.test.ts and bridge.test.ts run once per backend).
  const backend = o.args.includes('--firewall-backend') ? [] : ['--firewall-backend', 'iptables']
  return [o.entry, 'agent', '--plugin-name', o.pluginName, '--state-dir', o.stateDir, '--api-socket', o.apiSocket, '--log-level', 'debug', ...dns, ...backend, ...o.args]
}

class AgentProcess implements Agent {
  readonly pluginName: string
  readonly pluginSocket: string
  readonly stateDir: string
  readonly apiSocket: string
  #opts: AgentOptions
  readonly #dir: string
  readonly #logFile: string
  readonly #entry: string
  #proc: { child: ChildProcess, exited: Promise<AgentExit> } | undefined
  #starts = 0
  #destroyed = false
  readonly #onExit = (): void => { this.#proc?.child.kill('SIGKILL') }

  constructor (opts: AgentOptions) {
    this.#opts = opts
    this.pluginName = opts.pluginName
    this.pluginSocket = join(PLUGIN_DIR, `${opts.pluginName}.sock`)
    this.#dir = mkdtempSync(join(tmpdir(), 'fya-'))
    this.stateDir = opts.stateDir ?? join(this.#dir, 'state')
    this.apiSocket = opts.apiSocket ?? join(this.#dir, 'api.sock')
    this.#logFile = join(this.#dir, 'agent.log')
    this.#entry = opts.entry ?? join(REPO, 'bin', 'ferry')
    process.on('exit', this.#onExit)
  }

  pid (): number | undefined {
    const c = this.#proc?.child
    return c !== undefined && c.exitCode === null && c.signalCode === null ? c.pid : undefined
  }

  async start (): Promise<void> {
    if (this.#destroyed) throw ferryError('INTERNAL', `agent ${this.pluginName} was destroyed`)
    if (this.pid() !== undefined) return
    const enter = this.#opts.dockerd?.enterArgv() ?? ['ip', 'netns', 'exec', this.#opts.ns]
    const argv = [...enter, ...NODE, ...(this.#opts.nodeArgs ?? []), ...agentArgs({
      entry: this.#entry,
      pluginName: this.pluginName,
      stateDir: this.stateDir,
      apiSocket: this.apiSocket,
      args: this.#opts.args ?? [],
    })]
    const env = cleanEnv()
    const dockerHost = this.#opts.dockerHost ?? this.#opts.dockerd?.host
    if (dockerHost === undefined) delete env.DOCKER_HOST
    else env.DOCKER_HOST = dockerHost

    this.#starts++
    const log = openSync(this.#logFile, 'a')
    writeSync(log, `--- harness: start ${this.#starts}: ${argv.join(' ')}\n`)
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log], env, cwd: REPO })
    closeSync(log)
    const exited = new Promise<AgentExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    child.once('error', () => { /* seen as an exit */ })
    this.#proc = { child, exited }
    try {
      await this.#waitReady(exited)
    } catch (err) {
      child.kill('SIGKILL')
      await exited
      throw err
    }
  }

  async #waitReady (exited: Promise<AgentExit>): Promise<void> {
    const timeoutMs = this.#opts.readyTimeoutMs ?? 30_000
    const deadline = Date.now() + timeoutMs
    let exit: AgentExit | undefined
    void exited.then((e) => { exit = e }) // exited never rejects
    let last = ''
    while (Date.now() < deadline && exit === undefined) {
      try {
        const r = await activate(this.pluginSocket)
        if (r.ok) return
        last = r.why
      } catch (err) {
        last = (err as Error).message
      }
      await sleep(50)
    }
    const why = exit !== undefined
      ? `it exited (code ${exit.code}, signal ${exit.signal})`
      : `${this.pluginSocket} did not answer NetworkDriver.GetCapabilities within ${timeoutMs} ms (${last})`
    throw ferryError('INTERNAL', `ferry agent ${this.pluginName} in ${this.#opts.ns} did not start: ${why}\n--- agent log (tail) ---\n${this.logs().split('\n').slice(-40).join('\n')}`)
  }

  signal (sig: NodeJS.Signals): void {
    this.#proc?.child.kill(sig)
  }

  async kill (sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<AgentExit> {
    const proc = this.#proc
    if (proc === undefined) return { code: null, signal: null }
    if (this.pid() !== undefined) proc.child.kill(sig)
    if (!await within(proc.exited, timeoutMs)) proc.child.kill('SIGKILL')
    return await proc.exited
  }

  async restart (opts: { args?: string[] } = {}): Promise<void> {
    await this.kill('SIGTERM')
    if (opts.args !== undefined) this.#opts = { ...this.#opts, args: [...opts.args] }
    await this.start()
  }

  logs (): string {
    try { return readFileSync(this.#logFile, 'utf8') } catch { return '' }
  }

  cli (args: string[], opts: { input?: string, timeoutMs?: number } = {}): Promise<ExecResult> {
    return execFile([...NODE, this.#entry, ...args], {
      env: { ...cleanEnv(), FERRY_API_SOCKET: this.apiSocket },
      allowFailure: true,
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 60_000,
    })
  }

  async destroy (): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    process.off('exit', this.#onExit)
    const errors = new ErrorList()
    await errors.run(`stop agent ${this.pluginName}`, () => this.kill('SIGTERM'))
    await errors.run('remove the plugin socket', () => rmSync(this.pluginSocket, { force: true }))
    if (!KEEP_DIRS) await errors.run('remove the agent directory', () => rmSync(this.#dir, { recursive: true, force: true }))
    errors.throwIfAny(`teardown of agent ${this.pluginName} was incomplete`)
  }

  async destroyForTeardown (): Promise<void> {
    try {
      await this.destroy()
    } catch (err) {
      process.exitCode = 1
      console.error(err)
    }
  }
}

/**
 * POST /NetworkDriver.GetCapabilities exactly as dockerd sends it: empty body, no
 * Content-Type. Not Plugin.Activate: to ferry that means "a new engine process",
 * which opens the IPAM replay window.
 */
async function activate (socketPath: string): Promise<{ ok: boolean, why: string }> {
  const r = await unixHttp({
    socketPath,
    method: 'POST',
    path: '/NetworkDriver.GetCapabilities',
    body: '',
    headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' },
    timeoutMs: 2000,
  })
  if (r.status !== 200) return { ok: false, why: `GetCapabilities answered ${r.status}: ${r.body}` }
  try {
    const body = JSON.parse(r.body) as { Scope?: unknown }
    if (typeof body.Scope === 'string') return { ok: true, why: '' }
  } catch { /* reported below */ }
  return { ok: false, why: `GetCapabilities answered ${r.body}` }
}
