/**
 * A real Docker engine for end-to-end tests, inside a test network namespace.
 *
 * Each engine gets its own directory (data-root, exec-root, pidfile, socket,
 * daemon.json, key.json, CLI config), its own containerd (started by dockerd
 * under the exec-root), a unique cgroup parent, and its own mount namespace.
 * That mount namespace is held by a placeholder process started with
 * `ip netns exec NS sh dockerd-in-netns.sh sleep infinity` (which re-mounts the
 * cgroup hierarchies that `ip netns exec` hides); dockerd is started inside it
 * with `nsenter`, so a restart finds the mounts of the previous run, as on a
 * real host. The `SandboxKey` paths dockerd sends resolve only in there:
 * `enterArgv()` runs a program inside. The data-root is a tmpfs private to that
 * namespace (vfs copies the image per container: `docker run` takes ~0.3 s
 * instead of ~0.9 s on this disk); it survives restarts, not destroy().
 *
 * Teardown (registered on `t`) kills every process of the engine — dockerd,
 * containerd, shims, containers (found by mount namespace and cgroup, so
 * orphans are found too) — removes the cgroups and the directory, and fails the
 * test process (exit code 1, message on stderr) if anything is left over.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, rmdirSync, writeFileSync, writeSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile, type ExecResult } from '../../src/kernel/exec.js'
import { ErrorList, ferryError } from '../../src/errors/errors.js'
import { uniqueName, type TeardownHost } from './netns.js'
import { until } from './until.js'

export type { ExecResult } from '../../src/kernel/exec.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const NETNS_SCRIPT = join(HERE, 'dockerd-in-netns.sh')

/** Docker's default bridge (docker0) and pools: RFC 2544 benchmark space, used by nothing else. */
export const DOCKER_BIP = '198.18.0.1/24'
export const DOCKER_POOL = 'base=198.19.0.0/16,size=24'

/** The docker client; `FERRY_E2E_DOCKER` picks another one (for example /usr/bin/docker). */
const DOCKER_BIN = process.env.FERRY_E2E_DOCKER ?? 'docker'
const DOCKERD_BIN = process.env.FERRY_E2E_DOCKERD ?? 'dockerd'
/** `FERRY_E2E_KEEP=1` keeps the engine directories (logs, state) after teardown, for debugging. */
const KEEP_DIRS = process.env.FERRY_E2E_KEEP === '1'

export interface DockerdOptions {
  /** Network namespace to run in (from `netns(t)`). */
  ns: string
  /** Unique name; also names the cgroup parent. Default: generated. */
  name?: string
  /** `--dns` for containers. Default: docker0's own address, where nothing answers (no query leaves the namespace). */
  dns?: string
  /** `--userland-proxy`. Default true, as Docker's. */
  userlandProxy?: boolean
  /** Appended after the harness's flags; a repeated flag overrides ours (for example `--bip`). */
  extraArgs?: string[]
  /** How long to wait for `/_ping`. Default 60 s. */
  startTimeoutMs?: number
  /**
   * Another engine: a directory with its `dockerd`, `containerd`, `containerd-shim-runc-v2`, `runc`,
   * `docker-proxy` and `docker` (scripts/engine-root.sh makes one, ROOT/.ferry-engine/bin). dockerd
   * and the CLI come from there and it goes first in the engine's PATH. Default: PATH's (or
   * `FERRY_E2E_DOCKERD` / `FERRY_E2E_DOCKER`).
   */
  binDir?: string
}

export interface DockerCallOptions { input?: string, timeoutMs?: number }

export interface ApiResponse<T = unknown> { status: number, body: T }

export interface Dockerd {
  readonly name: string
  readonly ns: string
  /** Everything of this engine lives under this directory. */
  readonly dir: string
  readonly dataRoot: string
  readonly execRoot: string
  readonly socket: string
  /** `unix://…`, for DOCKER_HOST. */
  readonly host: string
  /** Environment for the docker CLI (DOCKER_HOST, a private DOCKER_CONFIG). */
  readonly env: NodeJS.ProcessEnv
  /** `--cgroup-parent` given to dockerd, e.g. `/ferry-e2e-fyd12341`. */
  readonly cgroupParent: string
  /** Current dockerd process id, undefined while it is not running. */
  pid (): number | undefined
  /** Run the docker CLI (argv, no shell). Never throws on a non-zero exit. */
  docker (args: string[], opts?: DockerCallOptions): Promise<ExecResult>
  /** Run the docker CLI; throws with its stderr on a non-zero exit; returns stdout. */
  dockerOk (args: string[], opts?: DockerCallOptions): Promise<string>
  /** JSON over the engine socket. `path` is sent as given (`/containers/json`, `/v1.41/info`). */
  api<T = unknown> (method: string, path: string, body?: unknown): Promise<ApiResponse<T>>
  /** Host pid of a running container's init process (works with `nsenter -t PID -n` from anywhere). */
  pidOf (container: string): Promise<number>
  /** argv prefix that runs a program in this engine's network and mount namespaces. */
  enterArgv (): string[]
  /** SIGTERM dockerd, wait up to `timeoutMs` (default 30 s), then SIGKILL; kill what is left of its shims and containers. Dirs stay. */
  stop (timeoutMs?: number): Promise<void>
  /** SIGKILL dockerd alone (containerd follows it; shims and containers keep running). */
  kill (): Promise<void>
  /**
   * Start again on the same directories and mount namespace. A running dockerd
   * is stop()ped first; after kill() the surviving shims and containers are left
   * for the new dockerd to find (without live-restore it stops them).
   */
  restart (): Promise<void>
  /** dockerd's output of every start so far. */
  logs (): string
  /** Kill everything, remove cgroups and directories. Idempotent; teardown calls it. */
  destroy (): Promise<void>
  /** What this engine left on the host: live processes, cgroups, mounts, its directory. Empty after destroy(). */
  leftovers (): string[]
}

/** Start a Docker engine in `opts.ns` and wait until it answers `/_ping`. */
export async function startDockerd (t: TeardownHost, opts: DockerdOptions): Promise<Dockerd> {
  const d = new EngineProcess(opts)
  t.teardown(() => d.destroyForTeardown())
  await d.start()
  return d
}

/** dockerd's argv (without the program) for a set of options; pure. */
export function dockerdArgs (dir: string, o: { dns: string, userlandProxy: boolean, cgroupParent: string, extraArgs: readonly string[] }): string[] {
  return [
    '--config-file', join(dir, 'daemon.json'),
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'run'),
    '--pidfile', join(dir, 'dockerd.pid'),
    '-H', `unix://${join(dir, 'docker.sock')}`,
    '--storage-driver', 'vfs',
    '--bip', DOCKER_BIP,
    '--default-address-pool', DOCKER_POOL,
    '--dns', o.dns,
    '--iptables=true',
    `--userland-proxy=${o.userlandProxy}`,
    '--cgroup-parent', o.cgroupParent,
    ...o.extraArgs,
  ]
}

/**
 * daemon.json: our own, so the host's /etc/docker/daemon.json is never read.
 * The engine key goes to the engine's directory instead of /etc/docker/key.json
 * (this setting has no command-line flag in 20.10).
 */
export function daemonJson (dir: string): string {
  return JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }, null, 2) + '\n'
}

class EngineProcess implements Dockerd {
  readonly name: string
  readonly ns: string
  readonly dir: string
  readonly dataRoot: string
  readonly execRoot: string
  readonly socket: string
  readonly host: string
  readonly env: NodeJS.ProcessEnv
  readonly cgroupParent: string
  readonly #args: string[]
  readonly #dockerd: string
  readonly #dockerCli: string
  readonly #spawnEnv: NodeJS.ProcessEnv | undefined
  readonly #startTimeoutMs: number
  readonly #logFile: string
  #holder: ChildProcess | undefined
  #holderStderr = ''
  #mntNs: string | undefined
  #daemon: { proc: ChildProcess, exited: Promise<void> } | undefined
  #starts = 0
  #destroyed = false
  readonly #onExit = (): void => { this.#killAllSync() }

  constructor (opts: DockerdOptions) {
    this.ns = opts.ns
    this.name = opts.name ?? uniqueName('fyd')
    // Short path: containerd and libnetwork put unix sockets under the exec-root (108-byte limit).
    this.dir = mkdtempSync(join(tmpdir(), 'fyd-'))
    this.dataRoot = join(this.dir, 'data')
    this.execRoot = join(this.dir, 'run')
    this.socket = join(this.dir, 'docker.sock')
    this.host = `unix://${this.socket}`
    this.cgroupParent = `/ferry-e2e-${this.name}`
    this.#logFile = join(this.dir, 'dockerd.log')
    this.#startTimeoutMs = opts.startTimeoutMs ?? 60_000
    this.#dockerd = opts.binDir !== undefined ? join(opts.binDir, 'dockerd') : DOCKERD_BIN
    this.#dockerCli = opts.binDir !== undefined && existsSync(join(opts.binDir, 'docker')) ? join(opts.binDir, 'docker') : DOCKER_BIN
    this.#spawnEnv = opts.binDir !== undefined ? { ...process.env, PATH: `${opts.binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` } : undefined
    this.env = dockerEnv(this.host, join(this.dir, 'cli'))
    this.#args = dockerdArgs(this.dir, {
      dns: opts.dns ?? DOCKER_BIP.split('/')[0]!,
      userlandProxy: opts.userlandProxy ?? true,
      cgroupParent: this.cgroupParent,
      extraArgs: opts.extraArgs ?? [],
    })
    writeFileSync(join(this.dir, 'daemon.json'), daemonJson(this.dir))
    process.on('exit', this.#onExit)
  }

  pid (): number | undefined {
    return this.#daemon?.proc.exitCode === null && this.#daemon.proc.signalCode === null ? this.#daemon.proc.pid : undefined
  }

  async start (): Promise<void> {
    if (this.#destroyed) throw ferryError('INTERNAL', `dockerd ${this.name} was destroyed`)
    if (this.pid() !== undefined) return
    if (this.#holder === undefined) await this.#startHolder()
    const holderPid = this.#holder?.pid
    if (holderPid === undefined || !isAlive(holderPid)) {
      throw ferryError('INTERNAL', `the mount namespace holder of dockerd ${this.name} is gone (was the namespace ${this.ns} removed?)`)
    }
    clearStaleContainerdPid(this.#containerdPidFile())
    this.#starts++
    const argv = [...this.enterArgv(), this.#dockerd, ...this.#args]
    const log = openSync(this.#logFile, 'a')
    writeSync(log, `--- harness: start ${this.#starts}: ${argv.join(' ')}\n`)
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log], cwd: '/', ...(this.#spawnEnv !== undefined ? { env: this.#spawnEnv } : {}) })
    closeSync(log)
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.once('error', () => { /* reported as an exit before /_ping */ })
    this.#daemon = { proc, exited }
    try {
      await this.#waitReady(exited)
    } catch (err) {
      proc.kill('SIGKILL')
      await exited
      throw err
    }
  }

  async #startHolder (): Promise<void> {
    const holder = spawn('ip', ['netns', 'exec', this.ns, 'sh', NETNS_SCRIPT, '--tmpfs', this.dataRoot, 'sleep', 'infinity'],
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: '/' })
    this.#holder = holder
    holder.stderr?.on('data', (b: Buffer) => { this.#holderStderr += b.toString() })
    holder.once('error', () => { /* seen below as an exit */ })
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const pid = holder.pid
      if (holder.exitCode !== null || holder.signalCode !== null || pid === undefined) break
      if (procComm(pid) === 'sleep') {
        this.#mntNs = readLink(`/proc/${pid}/ns/mnt`)
        return
      }
      await sleep(10)
    }
    throw ferryError('INTERNAL', `could not prepare a mount namespace for dockerd in ${this.ns}: ${this.#holderStderr.trim() || 'timed out'}`)
  }

  async #waitReady (exited: Promise<void>): Promise<void> {
    const deadline = Date.now() + this.#startTimeoutMs
    let gone = false
    void exited.then(() => { gone = true }) // exited never rejects
    let last = ''
    while (Date.now() < deadline) {
      if (gone) break
      try {
        const r = await unixHttp({ socketPath: this.socket, method: 'GET', path: '/_ping', timeoutMs: 2000 })
        if (r.status === 200) return
        last = `/_ping answered ${r.status}`
      } catch (err) {
        last = (err as Error).message
      }
      await sleep(50)
    }
    const why = gone ? 'dockerd exited' : `no /_ping within ${this.#startTimeoutMs} ms (${last})`
    throw ferryError('ENGINE_UNAVAILABLE', `dockerd ${this.name} in ${this.ns} did not start: ${why}\n--- dockerd log (tail) ---\n${tail(this.logs(), 40)}`)
  }

  enterArgv (): string[] {
    const pid = this.#holder?.pid
    if (pid === undefined) throw ferryError('INTERNAL', `dockerd ${this.name} has no mount namespace yet`)
    return ['nsenter', `--target=${pid}`, '--mount', '--net', '--']
  }

  docker (args: string[], opts: DockerCallOptions = {}): Promise<ExecResult> {
    return execFile([this.#dockerCli, ...args], { env: this.env, allowFailure: true, input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000 })
  }

  async dockerOk (args: string[], opts: DockerCallOptions = {}): Promise<string> {
    const r = await this.docker(args, opts)
    if (r.code !== 0) {
      throw ferryError('INTERNAL', `docker ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    }
    return r.stdout
  }

  async api<T = unknown> (method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const r = await unixHttp({ socketPath: this.socket, method, path, body: body === undefined ? undefined : JSON.stringify(body), timeoutMs: 60_000 })
    const isJson = (r.headers['content-type'] ?? '').includes('json') && r.body.trim() !== ''
    return { status: r.status, body: (isJson ? JSON.parse(r.body) : r.body) as T }
  }

  async pidOf (container: string): Promise<number> {
    const r = await this.api<{ State?: { Pid?: number, Running?: boolean } }>('GET', `/containers/${encodeURIComponent(container)}/json`)
    const pid = r.status === 200 ? r.body.State?.Pid ?? 0 : 0
    if (pid <= 0) throw ferryError('INTERNAL', `container ${container} is not running (status ${r.status}: ${JSON.stringify(r.body)})`)
    return pid
  }

  async stop (timeoutMs = 30_000): Promise<void> {
    const daemon = this.#daemon
    if (daemon !== undefined && this.pid() !== undefined) {
      daemon.proc.kill('SIGTERM')
      if (!await within(daemon.exited, timeoutMs)) {
        daemon.proc.kill('SIGKILL')
        await daemon.exited
      }
    }
    const holder = this.#holder?.pid
    await killAndWait(this.#processes().filter((p) => p !== holder), 10_000)
  }

  async kill (): Promise<void> {
    const daemon = this.#daemon
    if (daemon === undefined || this.pid() === undefined) return
    daemon.proc.kill('SIGKILL')
    await daemon.exited
    // Its containerd follows through the parent-death signal; wait for that, so
    // a start() right after does not find it half dead (see clearStaleContainerdPid).
    const containerd = readPid(this.#containerdPidFile())
    const deadline = Date.now() + 5000
    while (containerd !== undefined && isAlive(containerd) && Date.now() < deadline) await sleep(20)
  }

  #containerdPidFile (): string {
    return join(this.execRoot, 'containerd', 'containerd.pid')
  }

  async restart (): Promise<void> {
    // After kill() the shims and containers are still there, as after a crash: keep them.
    if (this.pid() !== undefined) await this.stop()
    await this.start()
  }

  logs (): string {
    try { return readFileSync(this.#logFile, 'utf8') } catch { return '' }
  }

  async destroy (): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    process.off('exit', this.#onExit)
    const errors = new ErrorList()
    await errors.run('kill the engine\'s processes', async () => {
      // Processes can appear while others die (a shim reaping, runc): scan until none is left.
      for (let round = 0; round < 5; round++) {
        const pids = this.#processes()
        if (pids.length === 0) break
        await killAndWait(pids, 10_000)
      }
      if (this.#daemon) await within(this.#daemon.exited, 5000)
    })
    await errors.run('remove the engine\'s cgroups', () => removeCgroups(this.cgroupParent))
    await errors.run('remove the engine\'s directory', () => {
      const mounted = mountsUnder(this.dir)
      if (mounted.length > 0) throw new Error(`mounts left under ${this.dir}: ${mounted.join(', ')}`)
      if (!KEEP_DIRS) rmSync(this.dir, { recursive: true, force: true })
    })
    await errors.run('check for leftovers', async () => {
      // A runc init that was starting a container when the engine died can surface
      // after the last scan: kill what turns up, a few times, before calling it a leak.
      for (let round = 0; round < 5; round++) {
        const pids = this.#processes()
        if (pids.length === 0) break
        await killAndWait(pids, 5_000)
        await removeCgroups(this.cgroupParent)
      }
      const left = this.leftovers().filter((l) => !(KEEP_DIRS && l.startsWith('directory ')))
      if (left.length > 0) throw new Error(left.join('; '))
    })
    errors.throwIfAny(`teardown of dockerd ${this.name} in ${this.ns} was incomplete`)
  }

  /**
   * tap drops the remaining teardowns of a test when one throws, and the
   * namespace's own teardown must still run: report instead, and fail the run.
   */
  async destroyForTeardown (): Promise<void> {
    try {
      await this.destroy()
    } catch (err) {
      process.exitCode = 1
      console.error(err)
    }
  }

  leftovers (): string[] {
    const left: string[] = this.#processes().map((pid) => `process ${pid} (${procComm(pid) ?? '?'})`)
    for (const dir of cgroupDirs(this.cgroupParent)) left.push(`cgroup ${dir}`)
    for (const m of mountsUnder(this.dir)) left.push(`mount ${m}`)
    if (existsSync(this.dir)) left.push(`directory ${this.dir}`)
    return left
  }

  /** Every live process of this engine: its mount namespace's members and its containers' cgroups. */
  #processes (): number[] {
    const pids = new Set<number>()
    const daemonPid = this.pid()
    if (daemonPid !== undefined) pids.add(daemonPid)
    const holder = this.#holder?.pid
    if (holder !== undefined && isAlive(holder)) pids.add(holder)
    if (this.#mntNs !== undefined) for (const p of pidsInMountNs(this.#mntNs)) pids.add(p)
    for (const p of pidsInCgroups(this.cgroupParent)) pids.add(p)
    return [...pids].filter((p) => p !== process.pid && isAlive(p))
  }

  /** Last resort when the test process exits without teardown: kill, synchronously. */
  #killAllSync (): void {
    for (const pid of this.#processes()) {
      try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    }
  }
}

/** Environment for the docker CLI against one engine, with a private config dir. */
function dockerEnv (host: string, configDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false' }
  for (const k of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION']) delete env[k]
  return env
}

/**
 * dockerd reuses the containerd named in this pidfile if `kill(pid, 0)` works,
 * which is true of a zombie too. After dockerd is SIGKILLed its containerd dies
 * (parent-death signal) and is re-parented to PID 1, which on these machines is
 * slow to reap: dockerd would then wait for a dead containerd and fail. On a
 * real host init reaps it; removing the pidfile of a dead or zombie process
 * gives the same outcome.
 */
function clearStaleContainerdPid (pidFile: string): void {
  const pid = readPid(pidFile)
  if (pid === undefined || isAlive(pid)) return
  rmSync(pidFile, { force: true })
}

function readPid (pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

// ---- HTTP over a unix socket -------------------------------------------------

export interface UnixHttpRequest {
  socketPath: string
  method: string
  path: string
  body?: string
  headers?: Record<string, string>
  timeoutMs?: number
}

export interface UnixHttpResponse { status: number, headers: http.IncomingHttpHeaders, body: string }

/** One HTTP/1.1 request over a unix socket. Rejects on connection errors and timeouts. */
export function unixHttp (req: UnixHttpRequest): Promise<UnixHttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...req.headers }
    if (req.body !== undefined) {
      // An empty body goes without Content-Type, as dockerd sends its plugin calls.
      if (req.body !== '') headers['Content-Type'] ??= 'application/json'
      headers['Content-Length'] = Buffer.byteLength(req.body)
    }
    const r = http.request({ socketPath: req.socketPath, method: req.method, path: req.path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (b: Buffer) => chunks.push(b))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    r.setTimeout(req.timeoutMs ?? 10_000, () => r.destroy(new Error(`${req.method} ${req.path} on ${req.socketPath} timed out`)))
    r.on('error', reject)
    r.end(req.body)
  })
}

// ---- processes ---------------------------------------------------------------

/** True while the process exists and is not a zombie. */
export function isAlive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

function procComm (pid: number): string | undefined {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() } catch { return undefined }
}

function readLink (path: string): string | undefined {
  try { return readlinkSync(path) } catch { return undefined }
}

function allPids (): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number)
}

function pidsInMountNs (mntNs: string): number[] {
  return allPids().filter((pid) => readLink(`/proc/${pid}/ns/mnt`) === mntNs)
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
export async function within (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([p.then(() => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** SIGKILL every pid and wait until none is alive. */
export async function killAndWait (pids: readonly number[], timeoutMs: number): Promise<void> {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
  }
  await until(`processes ${pids.join(' ')} to die after SIGKILL`, () => !pids.some(isAlive), { timeoutMs, everyMs: 20 })
}

// ---- cgroups and mounts --------------------------------------------------------

interface MountEntry { mountPoint: string, fsType: string }

/** Parse /proc/self/mountinfo (host view of this test process). */
function mounts (): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => {
    const fields = line.split(' ')
    const sep = fields.indexOf('-')
    return { mountPoint: unescapeMount(fields[4] ?? ''), fsType: fields[sep + 1] ?? '' }
  })
}

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

function mountsUnder (dir: string): string[] {
  return mounts().map((m) => m.mountPoint).filter((p) => p === dir || p.startsWith(dir + '/'))
}

/** The engine's cgroup directory in every hierarchy, deepest first. */
function cgroupDirs (parent: string): string[] {
  const roots = mounts().filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2').map((m) => m.mountPoint)
  const out: string[] = []
  const walk = (dir: string): void => {
    let entries
    try { entries = readdirSync(dir, { withFileTypes: true }) } catch { return }
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name))
    out.push(dir)
  }
  for (const root of roots) walk(join(root, parent))
  return out
}

function pidsInCgroups (parent: string): number[] {
  const pids: number[] = []
  for (const dir of cgroupDirs(parent)) {
    try {
      for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l !== '') pids.push(Number(l))
    } catch { /* removed meanwhile */ }
  }
  return pids
}

async function removeCgroups (parent: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const failed: string[] = []
    for (const dir of cgroupDirs(parent)) {
      try { rmdirSync(dir) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failed.push(`${dir}: ${(err as Error).message}`) }
    }
    if (failed.length === 0) return
    if (attempt >= 20) throw new Error(`cgroups not removed: ${failed.join('; ')}`)
    await sleep(50)
  }
}

function tail (text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n')
}
