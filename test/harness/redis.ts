/**
 * A real redis-server for tests, on a free loopback port, without persistence
 * (`--save '' --appendonly no`), killed on teardown. `kill()` + `start()` (or
 * `restart()`) simulate a crash that loses every key, on the same port.
 * `cli(args)` runs redis-cli against it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { sh, type TeardownHost } from './netns.js'
import { until } from './until.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Start (again) on the same port; resolves once it answers PING. */
  start (): Promise<void>
  /** SIGKILL the server (all data is lost); resolves once it has exited. */
  kill (): Promise<void>
  restart (): Promise<void>
  /** redis-cli against the server; returns stdout. */
  cli (args: string[]): string
  /** Every key matching the pattern (SCAN). */
  keys (pattern: string): string[]
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

class Server implements RedisServer {
  private proc: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  constructor (readonly port: number, readonly host = '127.0.0.1', readonly ns?: string, private readonly args: readonly string[] = []) {}

  get url (): string { return `redis://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}` }

  /** argv prefix that runs a program where the server lives. */
  private get where (): string[] { return this.ns === undefined ? [] : ['ip', 'netns', 'exec', this.ns] }

  async start (): Promise<void> {
    if (this.proc) return
    const argv = [...this.where, 'redis-server', '--port', String(this.port), '--bind', this.host, '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning', ...this.args]
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
    this.proc = proc
    this.exited = new Promise((resolve) => proc.once('exit', () => { if (this.proc === proc) this.proc = undefined; resolve() }))
    await until(`redis-server on port ${this.port} to answer`, () => {
      if (sh([...this.where, 'redis-cli', '-h', this.host, '-p', String(this.port), 'ping'], { allowFailure: true }).trim() === 'PONG') return true
      if (!this.proc) throw new Error(`redis-server on port ${this.port} exited at start`)
      return false
    }, { everyMs: 50 })
  }

  async kill (): Promise<void> {
    const p = this.proc
    if (!p) return
    p.kill('SIGKILL')
    await this.exited
  }

  async restart (): Promise<void> {
    await this.kill()
    await this.start()
  }

  cli (args: string[]): string {
    return sh([...this.where, 'redis-cli', '-h', this.host, '-p', String(this.port), ...args])
  }

  keys (pattern: string): string[] {
    return sh([...this.where, 'redis-cli', '-h', this.host, '-p', String(this.port), '--scan', '--pattern', pattern]).split('\n').filter(Boolean).sort()
  }
}

/**
 * Start a redis-server for the test; it is killed on teardown. By default on a free
 * loopback port; with `ns` and `host`, inside that namespace on that address.
 */
export async function redisServer (t: TeardownHost, where: { ns?: string, host?: string, port?: number, args?: string[] } = {}): Promise<RedisServer> {
  const s = new Server(where.port ?? await freePort(), where.host, where.ns, where.args)
  t.teardown(() => s.kill())
  await s.start()
  return s
}
