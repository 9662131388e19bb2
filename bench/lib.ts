/**
 * What the engine benchmarks share (bench/bridge.ts, bench/ports.ts):
 *
 * - `runBench(main)`: a TeardownHost for the test harness (namespaces, dockerd,
 *   agent) whose teardowns run in reverse at the end, on failure and on
 *   Ctrl-C/SIGTERM; `Teardowns.scope()` for a phase that cleans up early.
 * - `PluginClient`: the ferry plugin socket driven over HTTP exactly as dockerd
 *   drives it (keep-alive, no Content-Type, the engine's Accept header), each
 *   call timed on the client side.
 * - `pluginCalls(log)`: the agent's own handler times, from its debug log.
 * - Small statistics and formatting helpers, and /proc readers (RSS, PSS,
 *   processes of a namespace).
 *
 * Benchmarks are not tests: they print figures and assert nothing, but a step
 * that fails (a container that does not start) stops the run with its error.
 */
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { sh } from '../test/harness/netns.js'
import type { TeardownHost } from '../test/harness/netns.js'

// ---- teardown ----------------------------------------------------------------

/** Collects teardown functions; `run()` calls them once, last registered first, and reports every failure. */
export class Teardowns implements TeardownHost {
  #fns: Array<() => unknown> = []
  #ran = false

  teardown (fn: () => unknown): void {
    if (this.#ran) throw new Error('teardown registered after the teardowns ran')
    this.#fns.push(fn)
  }

  /** A child whose teardowns run when it is closed, or with this one if it never is. */
  scope (): Teardowns {
    const child = new Teardowns()
    this.teardown(() => child.run())
    return child
  }

  /** Run every teardown in reverse; returns how many failed (each is printed). */
  async run (): Promise<number> {
    if (this.#ran) return 0
    this.#ran = true
    let failed = 0
    while (this.#fns.length > 0) {
      const fn = this.#fns.pop()!
      try {
        await fn()
      } catch (err) {
        failed++
        console.error('teardown step failed:', err)
      }
    }
    return failed
  }
}

/**
 * Run a benchmark with teardowns that always run: at the end, when `main`
 * throws, and on SIGINT/SIGTERM (a second signal while cleaning up is ignored,
 * so a double Ctrl-C still leaves nothing behind). The harness's teardowns set
 * `process.exitCode` when something was left over.
 */
export async function runBench (main: (t: Teardowns) => Promise<void>): Promise<void> {
  const t = new Teardowns()
  let cleaning: Promise<number> | undefined
  const cleanup = (): Promise<number> => { cleaning ??= t.run(); return cleaning }
  const onSignal = (sig: NodeJS.Signals): void => {
    if (cleaning !== undefined) { console.error(`\n${sig}: still cleaning up, please wait`); return }
    console.error(`\n${sig}: interrupted, cleaning up (namespaces, dockerd, agent)…`)
    void cleanup().then((failed) => process.exit(failed > 0 ? 1 : 130)) // never rejects: it counts and prints failed steps
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  try {
    await main(t)
  } catch (err) {
    process.exitCode = 1
    if (cleaning === undefined) console.error('benchmark failed:', err)
  } finally {
    const failed = await cleanup()
    if (failed > 0) process.exitCode = 1
  }
}

// ---- arguments -----------------------------------------------------------------

/** `--name N` from the command line, else `dflt`. */
export function argInt (name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a number`)
  return v
}

/** `--name` present on the command line. */
export function argFlag (name: string): boolean {
  return process.argv.includes(`--${name}`)
}

/** `--name VALUE` from the command line, else undefined. */
export function argStr (name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

// ---- agent options shared by the benchmarks ------------------------------------------

/**
 * `--state-tmpfs`: a state directory under /dev/shm (removed at the end), to see
 * how much of the agent's latency is the store's fsync. Undefined otherwise
 * (the harness's default: a temporary directory on disk).
 */
export function benchStateDir (t: TeardownHost): string | undefined {
  if (!argFlag('state-tmpfs')) return undefined
  const dir = mkdtempSync('/dev/shm/ferry-bench-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'state')
}

/**
 * The agent's `--reconcile-interval`: `--reconcile-interval N` on the bench's
 * command line, else 0 (only at start). The periodic check currently races with
 * CreateEndpoint (it can delete a veth created a moment before its endpoint is
 * recorded: "reconcile repaired a link … deleteLink fyh…", then Join or setUp
 * fails), which 1,000 back-to-back endpoints on a loaded machine hit; it would
 * also put its own iptables-save into the per-call timings.
 */
export function benchAgentArgs (): string[] {
  // `--firewall-backend nftables|iptables`: the agent's backend (the test harness's default is iptables).
  const backend = argStr('firewall-backend')
  return ['--reconcile-interval', String(argInt('reconcile-interval', 0)), ...(backend === undefined ? [] : ['--firewall-backend', backend])]
}

/** `--agent-log FILE`: copy the agent's debug log there before the agent is torn down. */
export function keepAgentLog (t: TeardownHost, agent: { logs (): string }): void {
  const file = argStr('agent-log')
  if (file === undefined) return
  t.teardown(() => { writeFileSync(file, agent.logs()); console.log(`agent log written to ${file}`) })
}

// ---- statistics and formatting ---------------------------------------------------

/** Nearest-rank quantile of `xs` (0 < q ≤ 1); NaN for an empty list. */
export function quantile (xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5)
export const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length

/** Per-round ratios b[i] / a[i] of two series measured in interleaved rounds: their median and interquartile range. */
export interface PairedRatio { n: number, median: number, q1: number, q3: number, min: number, max: number }

export function pairedRatio (a: readonly number[], b: readonly number[]): PairedRatio {
  const r = a.map((x, i) => b[i]! / x).filter(Number.isFinite)
  return { n: r.length, median: median(r), q1: quantile(r, 0.25), q3: quantile(r, 0.75), min: Math.min(...r), max: Math.max(...r) }
}

/** "0.84 (IQR 0.78–0.90, 15 rounds)". */
export const pairedText = (p: PairedRatio): string => `${p.median.toFixed(2)} (IQR ${p.q1.toFixed(2)}–${p.q3.toFixed(2)}, range ${p.min.toFixed(2)}–${p.max.toFixed(2)}, ${p.n} rounds)`

/**
 * The order of `n` targets in round `i` of an interleaved measurement: rotated by one every two rounds and reversed in
 * odd rounds (A B, B A, B A, A B … for two), so that no target always runs first or right after the same other one.
 */
export function roundOrder (n: number, i: number): number[] {
  const order = Array.from({ length: n }, (_, k) => (k + Math.floor(i / 2)) % n)
  return i % 2 === 1 ? order.reverse() : order
}

/** Milliseconds with a sensible number of digits. */
export function ms (x: number): string {
  if (!Number.isFinite(x)) return '-'
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

export function mib (kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`
}

/** An aligned text table; the first row is the header. */
export function table (rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)))
  return rows.map((r) => r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join('  ')).join('\n')
}

/** Time an async step in milliseconds. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ ms: number, value: T }> {
  const t0 = performance.now()
  const value = await fn()
  return { ms: performance.now() - t0, value }
}

/** The machine's load, printed with the figures: other work on 2 cores makes them noisy. */
export function load (): string {
  return `load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`
}

export function section (title: string): void {
  console.log(`\n== ${title}`)
}

// ---- the plugin socket, as dockerd drives it -------------------------------------------

export interface PluginReply { status: number, body: Record<string, unknown>, ms: number }

/**
 * HTTP/1.1 over the plugin's unix socket with the headers dockerd sends (no
 * Content-Type, `Accept: application/vnd.docker.plugins.v1.2+json`), one
 * keep-alive connection as Go's client keeps one. A non-2xx answer or an `Err`
 * throws.
 */
export class PluginClient {
  readonly #socketPath: string
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

  constructor (socketPath: string) { this.#socketPath = socketPath }

  call (method: string, body: unknown): Promise<PluginReply> {
    const payload = body === undefined ? '' : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const t0 = performance.now()
      const req = http.request({
        socketPath: this.#socketPath,
        agent: this.#agent,
        method: 'POST',
        path: `/${method}`,
        headers: {
          Host: '',
          'User-Agent': 'Go-http-client/1.1',
          'Content-Length': Buffer.byteLength(payload),
          Accept: 'application/vnd.docker.plugins.v1.2+json',
        },
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (b: Buffer) => chunks.push(b))
        res.on('error', reject)
        res.on('end', () => {
          const elapsed = performance.now() - t0
          const text = Buffer.concat(chunks).toString()
          let parsed: Record<string, unknown>
          try { parsed = JSON.parse(text) as Record<string, unknown> } catch { parsed = { Err: text } }
          const status = res.statusCode ?? 0
          const err = parsed.Err ?? parsed.Error
          if (status >= 300 || (typeof err === 'string' && err !== '')) {
            reject(new Error(`${method} answered ${status}: ${text}`))
          } else {
            resolve({ status, body: parsed, ms: elapsed })
          }
        })
      })
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} timed out`)))
      req.on('error', reject)
      req.end(payload)
    })
  }

  close (): void { this.#agent.destroy() }
}

/** A 64-hex-digit id, as the engine makes for networks and endpoints. */
export function engineId (): string {
  return randomBytes(32).toString('hex')
}

export interface PortMapEntry { Proto: number, IP: string, Port: number, HostIP: string, HostPort: number, HostPortEnd: number }

/** The endpoint Options dockerd sends with CreateEndpoint, Join and ProgramExternalConnectivity. */
export function endpointOptions (portmap: readonly PortMapEntry[]): Record<string, unknown> {
  return {
    'com.docker.network.endpoint.exposedports': portmap.map((p) => ({ Proto: p.Proto, Port: p.Port })),
    'com.docker.network.portmap': portmap,
  }
}

export interface EndpointHandle { networkId: string, endpointId: string, poolId: string, address: string }

/** Timings of one endpoint's setup, in the order dockerd calls. */
export interface SetupTimes { requestAddress: number, createEndpoint: number, join: number, program: number, operInfo: number }
export interface TeardownTimes { revoke: number, leave: number, deleteEndpoint: number, releaseAddress: number }

/** RequestAddress → CreateEndpoint → Join → ProgramExternalConnectivity → EndpointOperInfo ×2, as `docker run` does. */
export async function setupEndpoint (c: PluginClient, networkId: string, poolId: string, portmap: readonly PortMapEntry[] = []): Promise<{ ep: EndpointHandle, times: SetupTimes }> {
  const endpointId = engineId()
  const opts = endpointOptions(portmap)
  const ra = await c.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })
  const address = String(ra.body.Address)
  const ce = await c.call('NetworkDriver.CreateEndpoint', {
    NetworkID: networkId, EndpointID: endpointId, Interface: { Address: address, AddressIPv6: '', MacAddress: '' }, Options: opts,
  })
  const join = await c.call('NetworkDriver.Join', {
    NetworkID: networkId, EndpointID: endpointId, SandboxKey: `/var/run/docker/netns/${endpointId.slice(0, 12)}`, Options: opts,
  })
  const prog = await c.call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: networkId, EndpointID: endpointId, Options: opts })
  const oi1 = await c.call('NetworkDriver.EndpointOperInfo', { NetworkID: networkId, EndpointID: endpointId })
  const oi2 = await c.call('NetworkDriver.EndpointOperInfo', { NetworkID: networkId, EndpointID: endpointId })
  return {
    ep: { networkId, endpointId, poolId, address: address.split('/')[0]! },
    times: { requestAddress: ra.ms, createEndpoint: ce.ms, join: join.ms, program: prog.ms, operInfo: oi1.ms + oi2.ms },
  }
}

/** RevokeExternalConnectivity → Leave → DeleteEndpoint → ReleaseAddress, as removing a container does. */
export async function teardownEndpoint (c: PluginClient, ep: EndpointHandle): Promise<TeardownTimes> {
  const ids = { NetworkID: ep.networkId, EndpointID: ep.endpointId }
  const revoke = await c.call('NetworkDriver.RevokeExternalConnectivity', ids)
  const leave = await c.call('NetworkDriver.Leave', ids)
  const del = await c.call('NetworkDriver.DeleteEndpoint', ids)
  const rel = await c.call('IpamDriver.ReleaseAddress', { PoolID: ep.poolId, Address: ep.address })
  return { revoke: revoke.ms, leave: leave.ms, deleteEndpoint: del.ms, releaseAddress: rel.ms }
}

// ---- the agent's debug log ---------------------------------------------------------

export interface LoggedCall { method: string, ms: number }

/** The agent's `plugin call` debug lines (pino JSON) in `log`, in order. */
export function pluginCalls (log: string): LoggedCall[] {
  const out: LoggedCall[] = []
  for (const line of log.split('\n')) {
    if (!line.includes('"plugin call"')) continue
    try {
      const o = JSON.parse(line) as { msg?: string, method?: string, ms?: number }
      if (o.msg === 'plugin call' && typeof o.method === 'string' && typeof o.ms === 'number') out.push({ method: o.method, ms: o.ms })
    } catch { /* a line that is not JSON */ }
  }
  return out
}

/** How many lines of the agent's log carry `msg`. */
export function countLogged (log: string, msg: string): number {
  return log.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length
}

// ---- processes -------------------------------------------------------------------------

function statusField (pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** Resident set size in KiB (0 when the process is gone). */
export function rssKiB (pid: number): number {
  return statusField(pid, 'VmRSS')
}

/** Proportional set size in KiB: shared pages divided among their users (0 when gone). */
export function pssKiB (pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

export function comm (pid: number): string {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() } catch { return '' }
}

/** Processes of network namespace `ns` whose command is `name`. */
export function processesIn (ns: string, name: string): number[] {
  return sh(['ip', 'netns', 'pids', ns], { allowFailure: true }).split(/\s+/).filter(Boolean).map(Number).filter((p) => comm(p) === name)
}

// ---- throughput: a streaming server and a counting client (node -e code, run in a namespace) ----

/** Streams argv[1] bytes to every connection on port argv[2] (address argv[3], default 0.0.0.0); exits by itself after 5 minutes. */
export const STREAM_SERVER = `
const net = require('net'); const size = Number(process.argv[1]); const port = Number(process.argv[2]);
const buf = Buffer.alloc(1 << 20, 120);
net.createServer((s) => {
  let left = size; s.on('error', () => {});
  const pump = () => { while (left > 0) { const n = Math.min(left, buf.length); left -= n; if (!s.write(n === buf.length ? buf : buf.subarray(0, n))) { s.once('drain', pump); return } } s.end() };
  pump();
}).listen(port, process.argv[3] || '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(0), 300000);`

/** Connects to argv[1]:argv[2], counts bytes to the end; prints {bytes, ms}; gives up after argv[3] ms. */
export const STREAM_CLIENT = `
const net = require('net'); const t0 = process.hrtime.bigint(); let bytes = 0;
const done = (err) => { console.log(JSON.stringify({ bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6, err })); process.exit(0) };
const s = net.connect(Number(process.argv[2]), process.argv[1]);
s.on('data', (b) => { bytes += b.length }); s.on('end', () => done()); s.on('error', (e) => done(e.message));
setTimeout(() => { s.destroy(); done('timeout') }, Number(process.argv[3]));`
