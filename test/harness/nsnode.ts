/**
 * Run ferry code inside a network namespace from a test. Node must never switch
 * namespaces itself, so this spawns `ip netns exec <ns> node nsnode-child.mjs
 * <module> [factory]`; the child imports the module from dist/ (build first:
 * `npx tsc -p .`) and answers line-delimited JSON-RPC on stdin/stdout.
 *
 *   const d = await nsDriver(t, ns)
 *   await d.call('createBridge', ['br0', { mtu: 1400 }])
 *
 * Generic: `nsNode(t, ns, { module: 'dist/nat/iptables.js', factory: 'openNatDriver' })`
 * drives any executor whose factory returns an object; without `factory` the
 * module's own exports are called (`nsNode<typeof sysctl>(t, ns, { module: 'dist/kernel/sysctl.js' })`).
 * Arguments and results travel as JSON (an undefined argument arrives as undefined). A failed call rejects with a RemoteError
 * carrying the child's error name, message, code and category. The child is
 * stopped on teardown.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'
import type { LinkDriver } from '../../src/kernel/types.js'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CHILD = fileURLToPath(new URL('./nsnode-child.mjs', import.meta.url))
const START_TIMEOUT_MS = 15_000

export interface TeardownHost { teardown (fn: () => unknown): void }

/** An error raised inside the child, rebuilt on this side. */
export class RemoteError extends Error {
  readonly code?: string
  readonly category?: string
  readonly remoteStack?: string
  constructor (e: RemoteErrorJson) {
    super(e.message, e.cause ? { cause: new RemoteError(e.cause) } : undefined)
    this.name = e.name
    if (e.code !== undefined) this.code = e.code
    if (e.category !== undefined) this.category = e.category
    if (e.stack !== undefined) this.remoteStack = e.stack
  }
}

interface RemoteErrorJson { name: string, message: string, code?: string, category?: string, stack?: string, cause?: RemoteErrorJson }
/** What else happened in the child during a call: CPU ms, involuntary context switches, GC pauses (ms). */
export interface CallCost { cpuMs: number, ivcsw: number, gcMs: number }
interface Reply { id: number | null, result?: unknown, error?: RemoteErrorJson, ms?: number, cost?: CallCost, ready?: boolean }

type Method<T> = { [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T]
type Args<T, K extends keyof T> = T[K] extends (...args: infer A) => unknown ? A : never
type Result<T, K extends keyof T> = T[K] extends (...args: never[]) => infer R ? Awaited<R> : never

export interface NsNode<T> {
  readonly ns: string
  readonly pid: number | undefined
  call<K extends Method<T>> (method: K, args?: Args<T, K>): Promise<Result<T, K>>
  /** Like call, also returning the time spent inside the method (in the child), in ms, and what else the child did meanwhile. */
  timed<K extends Method<T>> (method: K, args?: Args<T, K>): Promise<{ result: Result<T, K>, ms: number, cost?: CallCost }>
  /** Stop the child (also done on teardown). */
  close (): Promise<void>
}

export interface NsNodeOptions {
  /** Module path, relative to the repository root (e.g. 'dist/kernel/netlink.js') or absolute. */
  module: string
  /** Exported (async) factory whose result receives the calls; omit to call the module's exports. */
  factory?: string
  /** PATH of the child (e.g. a directory holding only some programs); default: this process's. */
  path?: string
}

class Child<T> implements NsNode<T> {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (r: Reply) => void, reject: (e: Error) => void }>()
  private stderr = ''
  private exited = false
  private readonly exitedPromise: Promise<void>

  constructor (readonly ns: string, private readonly proc: ChildProcessWithoutNullStreams) {
    proc.stderr.on('data', (b: Buffer) => { this.stderr += b.toString() })
    this.exitedPromise = new Promise((resolve) => proc.on('exit', () => {
      this.exited = true
      for (const p of this.pending.values()) p.reject(new Error(`nsnode child in ${ns} exited: ${this.stderr.trim()}`))
      this.pending.clear()
      resolve()
    }))
  }

  get pid (): number | undefined { return this.proc.pid }

  /** Resolves on {"ready":true}; rejects if the child dies or stays silent. */
  start (): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nsnode child in ${this.ns} did not start: ${this.stderr.trim()}`)), START_TIMEOUT_MS)
      const rl = createInterface({ input: this.proc.stdout })
      rl.on('line', (line) => {
        let reply: Reply
        try { reply = JSON.parse(line) as Reply } catch { this.stderr += `[stdout] ${line}\n`; return }
        if (reply.ready === true) { clearTimeout(timer); resolve(); return }
        if (reply.id === null) return
        const p = this.pending.get(reply.id)
        if (p === undefined) return
        this.pending.delete(reply.id)
        p.resolve(reply)
      })
      void this.exitedPromise.then(() => { clearTimeout(timer); reject(new Error(`nsnode child in ${this.ns} exited: ${this.stderr.trim()}`)) }) // exitedPromise never rejects
    })
  }

  private send (method: string, args: unknown[]): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error(`nsnode child in ${this.ns} is not running: ${this.stderr.trim()}`))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.proc.stdin.write(JSON.stringify({ id, method, args }) + '\n')
    })
  }

  async timed<K extends Method<T>> (method: K, args?: Args<T, K>): Promise<{ result: Result<T, K>, ms: number, cost?: CallCost }> {
    const reply = await this.send(String(method), (args ?? []) as unknown[])
    if (reply.error !== undefined) throw new RemoteError(reply.error)
    return { result: reply.result as Result<T, K>, ms: reply.ms ?? NaN, cost: reply.cost }
  }

  async call<K extends Method<T>> (method: K, args?: Args<T, K>): Promise<Result<T, K>> {
    return (await this.timed(method, args)).result
  }

  async close (): Promise<void> {
    if (this.exited) return
    this.proc.stdin.end()
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 2_000)
    await this.exitedPromise
    clearTimeout(timer)
  }
}

/** Start a child in `ns` that serves calls to the module (or its factory's result). */
export async function nsNode<T = Record<string, (...args: never[]) => unknown>> (t: TeardownHost, ns: string, opts: NsNodeOptions): Promise<NsNode<T>> {
  const modulePath = resolve(REPO_ROOT, opts.module)
  const argv = ['netns', 'exec', ns, ...(opts.path !== undefined ? ['env', `PATH=${opts.path}`] : []), process.execPath, CHILD, modulePath]
  if (opts.factory !== undefined) argv.push(opts.factory)
  const child = new Child<T>(ns, spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] }))
  t.teardown(() => child.close())
  await child.start()
  return child
}

/** The real LinkDriver (dist/kernel/netlink.js) running inside `ns`. */
export function nsDriver (t: TeardownHost, ns: string): Promise<NsNode<LinkDriver>> {
  return nsNode<LinkDriver>(t, ns, { module: 'dist/kernel/netlink.js', factory: 'openLinkDriver' })
}
