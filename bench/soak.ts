/**
 * Fault-injection soak (issue 7, point 4): a bounded script, not a tap test.
 *
 *   npm run soak [-- --minutes 3 --seed 1234 --settle 30]
 *
 * Three simulated hosts as in test/e2e/overlay.test.ts: namespaces on an
 * underlay bridge, each with its own dockerd (`--dns` = the overlay gateway, so
 * names resolve through Docker's resolver and ferry) and a ferry agent with
 * `--cluster`; one redis-server on the underlay. On every host one overlay
 * `ov1` and one local ferry bridge network `lb` (published ports).
 *
 * For `--minutes` (default 3), on every host, concurrent loops `docker run -d`,
 * `docker rm -f` and `docker exec` checks (ping and nslookup across the
 * overlay, HTTP to another host's published port), while a fault injector
 * (seeded PRNG; the seed is printed, `--seed` replays the same choices) at
 * random moments: kills an agent with SIGKILL and restarts it after a random
 * delay; restarts Redis (all keys lost); flushes FERRY-DNAT and/or
 * FERRY-FORWARD on a host, as an admin would; kills dockerd with SIGKILL and
 * restarts it (its containers die: no live-restore).
 *
 * An operation that fails while a fault touching its host or its target is in
 * progress, or within GRACE_MS of its recovery, counts as "failed during a
 * fault"; a failure outside every window is explained from the model (target
 * removed meanwhile, target too young to have propagated, container killed by
 * an engine restart) or reported as unexplained, with its error.
 *
 * Then a bounded settle phase (`--settle` seconds) and the checks, printed as
 * figures and asserted (exit code 1 when any fails): every live container
 * reachable by address and by name from a container on every other host, every
 * published port from another host; no duplicate address; `ferry peers` kernel
 * = Redis everywhere; nothing leaked while running (ferry endpoints, local IPAM
 * addresses, published ports, cluster addresses and endpoints without a live
 * container, allowing the agents' --orphan-grace, 5 s here); after removing every container and network: no `fy*` link, no
 * iptables line of ferry, no neighbour/FDB entry, nothing in ferry's state, no
 * Redis key beyond host registration. Every failed check is printed with a
 * diagnosis (peer rows, state, relevant agent log lines).
 *
 * Run as root; the npm script builds dist/ first. Agent and engine logs, the
 * operation log and the fault timeline are kept in /tmp/ferry-soak-<pid>/.
 * Everything else lives in namespaces removed at the end, on failure and on
 * Ctrl-C; a watchdog ends the run if it overstays its bound.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { randomInt } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ipJson, nsExec } from '../test/harness/netns.js'
import type { RedisServer } from '../test/harness/redis.js'
import { startCluster, type SimHost } from '../test/harness/cluster.js'
import { execFile, type ExecResult } from '../src/kernel/exec.js'
import { argInt, runBench, section, table, type Teardowns } from './lib.js'
import { mulberry32 } from '../test/harness/random.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const MINUTES = argInt('minutes', 3)
const SEED = argInt('seed', randomInt(1, 2 ** 31 - 1))
const SETTLE_S = argInt('settle', 30)

const OVERLAY_SUBNET = '10.40.0.0/16'
const OVERLAY_GATEWAY = '10.40.0.1'
const BRIDGE_SUBNET = '10.50.0.0/24'
const BRIDGE_GATEWAY = '10.50.0.1'
const HOST_TTL_S = 5
/**
 * The agents' --orphan-grace: what the engine loses track of across an agent kill
 * (an endpoint or an address whose DeleteEndpoint/ReleaseAddress it re-sends with an
 * empty body) is collected after this long; the leak checks allow it, plus two
 * reconcile intervals (5 s each).
 */
const ORPHAN_GRACE_S = 5
const LEAK_WAIT_MS = (ORPHAN_GRACE_S + 2 * 5 + 2) * 1000
/** Failures this long after a fault's recovery still count as caused by it (host TTL, reconcile interval, re-publication). */
const GRACE_MS = 10_000
/** A container this young may not have reached the other hosts yet. */
const PROPAGATION_MS = 3_000
const PORT_BASE = 20_000
const PORTS_PER_HOST = 16
const DOCKER_TIMEOUT_MS = 90_000
const LOOPS = { overlay: 2, bridge: 1 }
const POPULATION = { ov1: { min: 1, max: 4 }, lb: { min: 1, max: 3 } }
const FAULT_GAP_MS = { min: 8_000, max: 18_000 }
const PROBE = (i: number): string => `soakprobe${i}`
const SERVE = (text: string): string => `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`
const HTTP_GET = (ip: string, port: number): string => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port}`

// ---- seeded randomness -------------------------------------------------------------

export { mulberry32 }

/** A PRNG per actor (loop or injector), derived from the seed and the actor's name. */
export class Rng {
  readonly #next: () => number
  constructor (seed: number, stream: string) {
    let h = seed >>> 0
    for (const c of stream) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0
    this.#next = mulberry32(h)
  }

  next (): number { return this.#next() }
  /** An integer in [lo, hi]. */
  int (lo: number, hi: number): number { return lo + Math.floor(this.#next() * (hi - lo + 1)) }
  pick<T> (xs: readonly T[]): T | undefined { return xs.length === 0 ? undefined : xs[Math.floor(this.#next() * xs.length)] }
}

// ---- the model -------------------------------------------------------------------------

type NetName = 'ov1' | 'lb'

interface Host extends SimHost {
  /** Bumped after each engine restart: loops then look for their dead containers. */
  engineEpoch: number
  /** Host port -> the container (live or being removed) that holds it. */
  ports: Map<number, string>
  /** Containers to remove as soon as the engine answers (a failed run or rm). */
  doomed: Set<string>
}

interface Ctr {
  name: string
  host: Host
  net: NetName
  port?: number
  ip?: string
  createdAt: number
  removedAt?: number
  diedAt?: number
}

type OpKind = 'run-overlay' | 'run-bridge' | 'rm' | 'exec-ping' | 'exec-nslookup' | 'exec-http'
interface Op {
  kind: OpKind
  host: string
  start: number
  end: number
  ok: boolean
  container?: string
  target?: string
  targetHost?: string
  error?: string
  /** Set right after a failure when the kernel shows a known ferry bug ("FERRY BUG: …"). */
  diag?: string
}

type FaultKind = 'agent-kill' | 'redis-restart' | 'admin-flush' | 'engine-restart'
interface Fault {
  id: number
  kind: FaultKind
  /** undefined: every host (Redis). */
  host?: string
  detail: string
  start: number
  recovered?: number
  /** Why the recovery was not clean (a finding), empty when it was. */
  problem: string
}

interface Soak {
  hosts: Host[]
  redis: RedisServer
  started: number
  stopAt: number
  live: Map<string, Ctr>
  gone: Map<string, Ctr>
  ops: Op[]
  faults: Fault[]
  counter: number
  out: string
}

// ---- small helpers ----------------------------------------------------------------------

function firstLine (s: string, max = 240): string {
  const line = s.trim().split('\n').find((l) => l.trim() !== '') ?? ''
  return line.length > max ? line.slice(0, max) + '…' : line
}

function secs (msDur: number): string { return `${(msDur / 1000).toFixed(1)} s` }

function at (s: Soak, t: number): string { return `t+${((t - s.started) / 1000).toFixed(1)}s` }

function log (s: Soak, line: string): void {
  appendFileSync(join(s.out, 'timeline.log'), `${at(s, Date.now())} ${line}\n`)
}

async function until (fn: () => Promise<boolean> | boolean, ms: number, everyMs = 500): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return true
    if (Date.now() >= end) return false
    await sleep(everyMs)
  }
}

function docker (h: Host, args: string[], timeoutMs = DOCKER_TIMEOUT_MS): Promise<ExecResult> {
  return h.d.docker(args, { timeoutMs }).catch((err: unknown) => ({ stdout: '', stderr: String((err as Error).message), code: -1 }))
}

function noSuchContainer (r: ExecResult): boolean { return /No such container/i.test(r.stderr) }

async function ferryJson<T> (h: Host, args: string[]): Promise<T> {
  const r = await h.agent.cli([...args, '--json'], { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} on ${h.name} failed: ${firstLine(r.stderr || r.stdout)}`)
  return JSON.parse(r.stdout) as T
}

/** Lines of an agent log (pino JSON) that mention any needle, the last `max`, shortened. */
export function logLinesAbout (text: string, needles: readonly string[], max = 6): string[] {
  const hits = text.split('\n').filter((l) => needles.some((n) => n !== '' && l.includes(n)))
  return hits.slice(-max).map((l) => (l.length > 400 ? l.slice(0, 400) + '…' : l))
}

/** Agent log lines of at least `minLevel` (pino: 40 warn, 50 error) logged between two times (ms). */
export function logLinesBetween (text: string, from: number, to: number, minLevel = 50, max = 4): string[] {
  const hits: string[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const o = JSON.parse(line) as { level?: number, time?: string | number }
      const t = typeof o.time === 'number' ? o.time : Date.parse(o.time ?? '')
      if ((o.level ?? 0) >= minLevel && t >= from && t <= to) hits.push(line.length > 400 ? line.slice(0, 400) + '…' : line)
    } catch { /* not JSON */ }
  }
  return hits.slice(0, max)
}

/** Warnings and errors of an agent log grouped by message: [message, count]. */
export function problemsInLog (text: string): Array<[string, number]> {
  const counts = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const o = JSON.parse(line) as { level?: number, msg?: string, err?: unknown }
      if ((o.level ?? 0) < 40) continue
      const err = typeof o.err === 'string' ? o.err : (o.err as { message?: string } | undefined)?.message ?? ''
      const key = `${o.level === 40 ? 'warn' : 'error'}: ${o.msg ?? ''}${err ? ` (${firstLine(err, 120)})` : ''}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    } catch { /* not JSON */ }
  }
  return [...counts].sort((a, b) => b[1] - a[1])
}

// ---- classification of failures (pure) --------------------------------------------------------

/** Does fault `f` (with its grace period) overlap operation `op` on a host it touches? */
export function faultCovers (f: Fault, op: Pick<Op, 'start' | 'end' | 'host' | 'targetHost'>, graceMs: number, now: number): boolean {
  const hostMatch = f.host === undefined || f.host === op.host || f.host === op.targetHost
  const end = (f.recovered ?? now) + graceMs
  return hostMatch && op.start <= end && op.end >= f.start
}

/** What a docker error message means, in a few words. */
export function explainError (text: string): string {
  const rules: Array<[RegExp, string]> = [
    [/(NetworkDriver|IpamDriver)\.\w+: /, 'ferry plugin error'],
    [/Cannot connect to the Docker daemon|docker\.sock.*(connection refused|no such file)|error during connect/i, 'engine down'],
    [/plugins?\/.*\.sock.*(connection refused|no such file)|legacy plugin|plugin .* not found|failed to find plugin|not found in plugin/i, 'agent down'],
    [/CLUSTER_UNAVAILABLE|cluster store|redis/i, 'cluster store unavailable'],
    [/is not running|No such container|container .* is restarting|has been removed|is marked for removal/i, 'container gone'],
    [/port is already allocated|address already in use|already allocated|ADDRESS_IN_USE|PORT_IN_USE/i, 'address or port in use'],
    [/No address|exhausted|no available/i, 'no address'],
    [/ping|packets? (transmitted|loss)|100% packet loss/i, 'no reply'],
    [/can't resolve|NXDOMAIN|server can't find|no answer|timed out|connection timed out/i, 'not resolved / timed out'],
    [/killed by SIGKILL|exit -1/i, 'timed out (harness)'],
  ]
  return rules.find(([re]) => re.test(text))?.[1] ?? 'other'
}

export type Verdict = 'ok' | 'ferry-bug' | 'during-fault' | 'workload' | 'unexplained'

/** The verdict on one operation, and a reason for failures. */
export function judge (op: Op, faults: readonly Fault[], ctrs: ReadonlyMap<string, Ctr>, now: number): { verdict: Verdict, reason: string } {
  if (op.ok) return { verdict: 'ok', reason: '' }
  if (op.diag !== undefined) return { verdict: 'ferry-bug', reason: op.diag }
  const f = faults.find((x) => faultCovers(x, op, GRACE_MS, now))
  if (f) return { verdict: 'during-fault', reason: `fault #${f.id} ${f.kind}${f.host ? ` on ${f.host}` : ''}` }
  for (const name of [op.container, op.target]) {
    const c = name === undefined ? undefined : ctrs.get(name)
    if (c === undefined) continue
    if (c.removedAt !== undefined && c.removedAt <= op.end) return { verdict: 'workload', reason: `${name} was being removed by its loop` }
    if (c.diedAt !== undefined && c.diedAt <= op.end + GRACE_MS) return { verdict: 'workload', reason: `${name} died with an engine restart` }
  }
  const t = op.target === undefined ? undefined : ctrs.get(op.target)
  if (t && op.start - t.createdAt < PROPAGATION_MS) return { verdict: 'workload', reason: `${op.target} was ${secs(op.start - t.createdAt)} old (propagation)` }
  return { verdict: 'unexplained', reason: explainError(op.error ?? '') }
}

/** Values that occur more than once, with who holds them. */
export function duplicates (pairs: ReadonlyArray<readonly [string, string]>): Map<string, string[]> {
  const by = new Map<string, string[]>()
  for (const [value, who] of pairs) by.set(value, [...(by.get(value) ?? []), who])
  return new Map([...by].filter(([, who]) => who.length > 1))
}

/** Redis keys that are more than host registration (and the global counters). */
export function leakedKeys (keys: readonly string[]): string[] {
  return keys.filter((k) => !/^ferry:(hosts|rev|vnicursor|host:[^:]+)$/.test(k))
}

// ---- setup -------------------------------------------------------------------------------------

async function setUp (t: Teardowns, out: string): Promise<{ hosts: Host[], redis: RedisServer }> {
  const cluster = await startCluster(t, { prefix: 'fys', dns: OVERLAY_GATEWAY, hostTtlS: HOST_TTL_S, agentArgs: ['--orphan-grace', String(ORPHAN_GRACE_S)] })
  const hosts: Host[] = cluster.hosts.map((h) => ({ ...h, engineEpoch: 0, ports: new Map(), doomed: new Set() }))
  const redis = cluster.redis
  for (const h of hosts) {
    // Registered after the agent's and engine's own teardowns, so it runs before them: keep the logs.
    t.teardown(() => {
      writeFileSync(join(out, `${h.name}-agent.log`), h.agent.logs())
      writeFileSync(join(out, `${h.name}-dockerd.log`), h.d.logs())
    })
  }
  for (const h of hosts) {
    await h.d.dockerOk(['network', 'create', '-d', h.plugin, '--ipam-driver', h.plugin, '--subnet', OVERLAY_SUBNET, '-o', 'ferry.overlay=ov1', 'ov1'])
    await h.d.dockerOk(['network', 'create', '-d', h.plugin, '--ipam-driver', h.plugin, '--subnet', BRIDGE_SUBNET, 'lb'])
  }
  return { hosts, redis }
}

// ---- the workload --------------------------------------------------------------------------------

/**
 * Run one operation and record it. `diagnose` runs right after a failure, before
 * anything can heal the state it looks at; its answer names a known ferry bug.
 */
async function record (s: Soak, op: Omit<Op, 'start' | 'end' | 'ok' | 'error'>, fn: () => Promise<ExecResult>,
  okIf?: (r: ExecResult) => boolean, diagnose?: () => Promise<string | undefined>): Promise<ExecResult> {
  const start = Date.now()
  const r = await fn()
  const ok = okIf ? okIf(r) : r.code === 0
  const done: Op = { ...op, start, end: Date.now(), ok, error: ok ? undefined : firstLine(r.stderr || r.stdout || `exit ${r.code}`) }
  if (!ok && diagnose) done.diag = await diagnose().catch(() => undefined)
  s.ops.push(done)
  appendFileSync(join(s.out, 'ops.jsonl'), JSON.stringify({ ...done, start: at(s, start) }) + '\n')
  if (done.diag) log(s, `${done.kind} ${done.host} ${done.container ?? ''} -> ${done.target ?? ''}: ${done.diag}`)
  return r
}

/** MAC addresses of ferry's bridges (fy-*, fyo-*) in a host namespace. */
function bridgeMacs (h: Host): Map<string, string> {
  const links = ipJson<Array<{ ifname: string, address?: string, linkinfo?: { info_kind?: string } }>>(h.ns, ['-d', 'link'])
  return new Map(links.filter((l) => l.linkinfo?.info_kind === 'bridge' && l.ifname.startsWith('fy')).map((l) => [l.ifname, l.address ?? '']))
}

/**
 * A container whose ARP entry for its gateway is no MAC of any ferry bridge: the
 * bridge's MAC changed under it (a bridge without a fixed MAC takes the lowest
 * MAC of its ports), so its routed traffic is bridged and lost until the entry expires.
 */
async function staleGatewayMac (h: Host, container: string, gateway: string): Promise<string | undefined> {
  const r = await docker(h, ['exec', container, 'ip', 'neigh', 'show', gateway], 10_000)
  const lladdr = /lladdr ([0-9a-f:]{17})/.exec(r.stdout)?.[1]
  if (r.code !== 0 || lladdr === undefined) return undefined
  const macs = bridgeMacs(h)
  if ([...macs.values()].includes(lladdr)) return undefined
  return `FERRY BUG: ${container} on ${h.name} has gateway ${gateway} at ${lladdr}, but the bridges are now ${[...macs].map(([n, m]) => `${n}=${m}`).join(' ')}: the bridge MAC changed (no fixed MAC); its routed traffic is lost until the ARP entry expires`
}

async function ipOf (h: Host, name: string, net: NetName): Promise<string | undefined> {
  const r = await docker(h, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name], 30_000)
  const ip = r.stdout.trim()
  return r.code === 0 && /^\d+\.\d+\.\d+\.\d+$/.test(ip) ? ip : undefined
}

function freePort (h: Host, rng: Rng): number | undefined {
  const free = Array.from({ length: PORTS_PER_HOST }, (_, k) => PORT_BASE + k).filter((p) => !h.ports.has(p))
  return rng.pick(free)
}

function releasePort (h: Host, name: string): void {
  for (const [p, who] of h.ports) if (who === name) h.ports.delete(p)
}

async function runOne (s: Soak, h: Host, net: NetName, loop: string, mine: Ctr[], rng: Rng): Promise<void> {
  const name = `s${h.idx}${loop}n${++s.counter}`
  const port = net === 'lb' ? freePort(h, rng) : undefined
  if (net === 'lb' && port === undefined) return
  if (port !== undefined) h.ports.set(port, name)
  const args = ['run', '-d', '--stop-timeout', '1', '--net', net, '--name', name,
    ...(port !== undefined ? ['-p', `${port}:80`, 'bb', 'sh', '-c', SERVE(name)] : ['bb', 'sleep', '3600'])]
  const r = await record(s, { kind: net === 'ov1' ? 'run-overlay' : 'run-bridge', host: h.name, container: name }, () => docker(h, args))
  if (r.code !== 0) { h.doomed.add(name); return }
  const c: Ctr = { name, host: h, net, port, createdAt: Date.now() }
  c.ip = await ipOf(h, name, net)
  mine.push(c)
  s.live.set(name, c)
}

function forget (s: Soak, mine: Ctr[], c: Ctr): void {
  mine.splice(mine.indexOf(c), 1)
  s.live.delete(c.name)
  s.gone.set(c.name, c)
}

async function removeOne (s: Soak, h: Host, mine: Ctr[], rng: Rng): Promise<void> {
  const c = rng.pick(mine)
  if (!c) return
  c.removedAt = Date.now()
  forget(s, mine, c)
  const r = await record(s, { kind: 'rm', host: h.name, container: c.name }, () => docker(h, ['rm', '-f', c.name]), (x) => x.code === 0 || noSuchContainer(x))
  if (r.code === 0 || noSuchContainer(r)) releasePort(h, c.name)
  else h.doomed.add(c.name)
}

/** Remove what earlier failures left; quietly (the engine may still be down). */
async function removeDoomed (h: Host): Promise<void> {
  for (const name of [...h.doomed]) {
    const r = await docker(h, ['rm', '-f', name], 30_000)
    if (r.code === 0 || noSuchContainer(r)) { h.doomed.delete(name); releasePort(h, name) }
  }
}

/** After an engine restart: containers of `mine` that are no longer running leave the model and are removed. Returns false when the engine did not answer. */
async function reapDead (s: Soak, h: Host, mine: Ctr[]): Promise<boolean> {
  if (mine.length === 0) return true
  const r = await docker(h, ['ps', '-a', '--format', '{{.Names}}\t{{.State}}'], 30_000)
  if (r.code !== 0) return false
  const state = new Map(r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('\t') as [string, string]))
  for (const c of [...mine]) {
    if (state.get(c.name) === 'running') continue
    c.diedAt = Date.now()
    forget(s, mine, c)
    h.doomed.add(c.name)
    log(s, `${h.name}: ${c.name} is ${state.get(c.name) ?? 'gone'} after an engine restart`)
  }
  return true
}

async function checkOne (s: Soak, h: Host, net: NetName, mine: Ctr[], rng: Rng): Promise<void> {
  const src = rng.pick(mine)
  if (!src) return
  const others = [...s.live.values()].filter((c) => c.net === net && c.host !== h && c.ip !== undefined)
  const target = rng.pick(others)
  if (!target?.ip) return
  const base = { host: h.name, container: src.name, target: target.name, targetHost: target.host.name }
  if (net === 'lb' && target.port !== undefined) {
    const port = target.port
    await record(s, { kind: 'exec-http', ...base }, () => docker(h, ['exec', src.name, 'sh', '-c', HTTP_GET(target.host.ip, port)], 30_000),
      (r) => r.stdout.includes(target.name), () => staleGatewayMac(h, src.name, BRIDGE_GATEWAY))
  } else if (rng.next() < 0.5) {
    await record(s, { kind: 'exec-ping', ...base }, () => docker(h, ['exec', src.name, 'ping', '-c', '1', '-W', '2', target.ip!], 30_000), undefined,
      async () => {
        const stale = staleLearnedEntry(fdbLines(target.host.ns, macOf(target.ip!)))
        return stale ? `FERRY BUG: ${target.host.name}'s overlay bridge has ${macOf(target.ip!)} learned on the VXLAN port (${stale.trim()}) although ${target.name} is local` : undefined
      })
  } else {
    await record(s, { kind: 'exec-nslookup', ...base }, () => docker(h, ['exec', src.name, 'nslookup', target.name], 30_000),
      (r) => r.code === 0 && r.stdout.includes(target.ip!))
  }
}

async function workloadLoop (s: Soak, h: Host, net: NetName, loop: string): Promise<void> {
  const rng = new Rng(SEED, `loop-${h.name}-${loop}`)
  const mine: Ctr[] = []
  const { min, max } = POPULATION[net]
  let epoch = h.engineEpoch
  while (Date.now() < s.stopAt) {
    await sleep(rng.int(100, 700))
    if (h.engineEpoch !== epoch && await reapDead(s, h, mine)) epoch = h.engineEpoch
    await removeDoomed(h)
    const r = rng.next()
    if (mine.length < min || (mine.length < max && r < 0.4)) await runOne(s, h, net, loop, mine, rng)
    else if (r < 0.65) await removeOne(s, h, mine, rng)
    else await checkOne(s, h, net, mine, rng)
  }
}

// ---- the fault injector -------------------------------------------------------------------------------

function clusterHosts (s: Soak): string[] {
  try { return s.redis.cli(['zrange', 'ferry:hosts', '0', '-1']).split('\n').filter(Boolean).sort() } catch { return [] }
}

async function killAgent (s: Soak, f: Fault, h: Host, rng: Rng): Promise<void> {
  const down = rng.int(500, 8000)
  f.detail = `kill -9 of the agent, down ${secs(down)}`
  await h.agent.kill('SIGKILL')
  await sleep(down)
  for (let attempt = 1; attempt <= 3; attempt++) {
    try { await h.agent.restart(); return } catch (err) {
      f.problem += `restart ${attempt} failed: ${firstLine((err as Error).message)}; `
      await sleep(2000)
    }
  }
  throw new Error(`the agent of ${h.name} did not come back after kill -9: ${f.problem}`)
}

async function restartRedis (s: Soak, f: Fault): Promise<void> {
  f.detail = 'Redis SIGKILL and start, all keys lost'
  await s.redis.restart()
  const back = await until(() => clusterHosts(s).length === s.hosts.length, 30_000)
  if (!back) f.problem += `only ${clusterHosts(s).join(',') || 'no host'} re-registered within 30 s; `
}

/** Is a flushed rule still wanted: network rules always, endpoint rules while their endpoint exists. */
export function stillWanted (rule: string, endpoints: ReadonlySet<string>): boolean {
  const ep = /ferry:ep ([0-9a-f]{12})/.exec(rule)?.[1]
  return ep === undefined || endpoints.has(ep)
}

/**
 * An admin flushes ferry's chains. Recovered when every flushed rule is back,
 * except those of endpoints removed meanwhile (whether the periodic reconcile or
 * the fallback of a failed incremental change put them back).
 */
async function adminFlush (s: Soak, f: Fault, h: Host, rng: Rng): Promise<void> {
  const which = rng.pick([['nat', 'FERRY-DNAT'], ['filter', 'FERRY-FORWARD'], ['both', '']] as const)!
  const chains: Array<[string, string]> = which[0] === 'both' ? [['nat', 'FERRY-DNAT'], ['filter', 'FERRY-FORWARD']] : [[which[0], which[1]]]
  f.detail = `iptables ${chains.map(([tb, c]) => `-t ${tb} -F ${c}`).join(' and ')}`
  const rulesOf = (tb: string, c: string): string[] => nsExec(h.ns, ['iptables', '-t', tb, '-S', c], { allowFailure: true }).split('\n').filter((l) => l.startsWith('-A '))
  const before = chains.map(([tb, c]) => ({ tb, c, rules: rulesOf(tb, c) }))
  for (const [tb, c] of chains) nsExec(h.ns, ['iptables', '-t', tb, '-F', c], { allowFailure: true })
  const flushed = before.reduce((n, b) => n + b.rules.length, 0)
  f.detail += ` (${flushed} rule(s))`
  if (flushed === 0) return
  let missing: string[] = []
  const restored = await until(async () => {
    const eps = await ferryJson<Array<{ id: string }>>(h, ['endpoint', 'ls']).catch(() => undefined)
    if (eps === undefined) return false
    const ids = new Set(eps.map((e) => e.id.slice(0, 12)))
    missing = before.flatMap((b) => { const now = new Set(rulesOf(b.tb, b.c)); return b.rules.filter((r) => !now.has(r) && stillWanted(r, ids)) })
    return missing.length === 0
  }, 20_000, 1000)
  if (!restored) f.problem += `${missing.length} flushed rule(s) not restored within 20 s: ${missing.slice(0, 3).join(' | ')}; `
}

async function restartEngine (s: Soak, f: Fault, h: Host, rng: Rng): Promise<void> {
  const down = rng.int(500, 3000)
  f.detail = `SIGKILL of dockerd, down ${secs(down)}`
  await h.d.kill()
  await sleep(down)
  try {
    await h.d.restart()
  } catch (err) {
    f.problem += `restart failed: ${firstLine((err as Error).message)}; `
    await h.d.restart()
  } finally {
    h.engineEpoch++
  }
}

async function injectFaults (s: Soak): Promise<void> {
  const rng = new Rng(SEED, 'faults')
  const kinds: FaultKind[] = ['agent-kill', 'redis-restart', 'admin-flush', 'engine-restart']
  for (;;) {
    const gap = rng.int(FAULT_GAP_MS.min, FAULT_GAP_MS.max)
    if (Date.now() + gap >= s.stopAt) return
    await sleep(gap)
    const kind = rng.pick(kinds)!
    const h = rng.pick(s.hosts)!
    const f: Fault = { id: s.faults.length + 1, kind, host: kind === 'redis-restart' ? undefined : h.name, detail: '', start: Date.now(), problem: '' }
    s.faults.push(f)
    log(s, `fault #${f.id} ${kind}${f.host ? ` on ${f.host}` : ''} begins`)
    if (kind === 'agent-kill') await killAgent(s, f, h, rng)
    else if (kind === 'redis-restart') await restartRedis(s, f)
    else if (kind === 'admin-flush') await adminFlush(s, f, h, rng)
    else await restartEngine(s, f, h, rng)
    f.recovered = Date.now()
    log(s, `fault #${f.id} recovered after ${secs(f.recovered - f.start)}: ${f.detail}${f.problem ? ` PROBLEM ${f.problem}` : ''}`)
  }
}

// ---- settle and the checks ----------------------------------------------------------------------------

/** One asserted figure; `info` ones are printed but never fail the run. */
interface Check { name: string, figure: string, pass: boolean, why: string[], info?: boolean }

interface LiveCtr { host: Host, name: string, net: NetName, ip: string, endpoint: string, port?: number }

interface Inspected { Name: string, State: { Running: boolean }, NetworkSettings: { Networks: Record<string, { IPAddress: string, EndpointID: string }> }, HostConfig: { PortBindings?: Record<string, Array<{ HostPort: string }>> | null } }

/** Every soak container and probe on every host as the engines report them; not running ones are listed apart. */
async function inventory (s: Soak): Promise<{ live: LiveCtr[], dead: string[] }> {
  const live: LiveCtr[] = []
  const dead: string[] = []
  for (const h of s.hosts) {
    const names = (await h.d.dockerOk(['ps', '-a', '--format', '{{.Names}}'])).split('\n').filter(Boolean)
    if (names.length === 0) continue
    const all = JSON.parse(await h.d.dockerOk(['inspect', ...names])) as Inspected[]
    for (const c of all) {
      const name = c.Name.replace(/^\//, '')
      if (!c.State.Running) { dead.push(`${h.name}/${name}`); continue }
      for (const [net, n] of Object.entries(c.NetworkSettings.Networks)) {
        if (net !== 'ov1' && net !== 'lb') continue
        const hp = Object.values(c.HostConfig.PortBindings ?? {})[0]?.[0]?.HostPort
        live.push({ host: h, name, net, ip: n.IPAddress, endpoint: n.EndpointID, port: hp ? Number(hp) : undefined })
      }
    }
  }
  return { live, dead }
}

async function peerDifferences (h: Host): Promise<{ differences: number, bad: string[] }> {
  const reports = await ferryJson<Array<{ network: string, differences: number, rows: Array<{ ip: string, status: string, hostId?: string, detail?: string }> }>>(h, ['peers'])
  return {
    differences: reports.reduce((n, r) => n + r.differences, 0),
    bad: reports.flatMap((r) => r.rows.filter((x) => x.status !== 'ok').map((x) => `${h.name} ${r.network} ${x.ip} ${x.status}${x.hostId ? ` (${x.hostId})` : ''}${x.detail ? `: ${x.detail}` : ''}`)),
  }
}

/** Bring back anything a last fault left down, clear what failures left, wait for the peers to converge. */
async function settle (s: Soak): Promise<{ ms: number, converged: boolean }> {
  const t0 = Date.now()
  for (const h of s.hosts) {
    if (h.d.pid() === undefined) { await h.d.restart(); h.engineEpoch++ }
    if (h.agent.pid() === undefined) await h.agent.restart()
  }
  const dead = new Map(s.hosts.map((h) => [h, [...s.live.values()].filter((c) => c.host === h)]))
  const converged = await until(async () => {
    let clean = true
    for (const h of s.hosts) {
      await reapDead(s, h, dead.get(h)!)
      await removeDoomed(h)
      if (h.doomed.size > 0) clean = false
    }
    if (!clean || clusterHosts(s).length !== s.hosts.length) return false
    for (const h of s.hosts) if ((await peerDifferences(h).catch(() => ({ differences: 1 }))).differences > 0) return false
    return true
  }, SETTLE_S * 1000, 1000)
  return { ms: Date.now() - t0, converged }
}

async function execRetry (h: Host, args: string[], ok: (r: ExecResult) => boolean, tries = 3): Promise<ExecResult> {
  let r: ExecResult = { stdout: '', stderr: '', code: -1 }
  for (let i = 0; i < tries; i++) {
    r = await docker(h, args, 30_000)
    if (ok(r)) return r
    await sleep(1000)
  }
  return r
}

/** Docker's (and ferry's) MAC of an overlay address: 02:42 and the four bytes. */
export function macOf (ip: string): string {
  return ['02', '42', ...ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0'))].join(':')
}

/** `bridge fdb show` lines of a namespace about one MAC. */
function fdbLines (ns: string, mac: string): string[] {
  return nsExec(ns, ['bridge', 'fdb', 'show'], { allowFailure: true }).split('\n').filter((l) => l.startsWith(mac + ' '))
}

/**
 * A bridge FDB entry that sends a local endpoint's MAC to the VXLAN port: learned
 * while the address belonged to another host (the MAC follows the address).
 * Frames from the tunnel for it are then dropped until the container sends a frame.
 */
export function staleLearnedEntry (lines: readonly string[]): string | undefined {
  return lines.find((l) => / dev fyv-\S+ master /.test(l) && !/ dst /.test(l))
}

/** Why `target` is not reachable from `from`: the views of ferry on both sides, the kernel's FDB, and their logs. */
async function diagnose (s: Soak, from: Host, target: LiveCtr): Promise<string[]> {
  const lines: string[] = []
  const mac = macOf(target.ip)
  const there = fdbLines(target.host.ns, mac)
  lines.push(`  ${target.host.name} (its host) bridge fdb for ${mac}: ${there.join(' | ') || 'none'}`)
  lines.push(`  ${from.name} bridge fdb for ${mac}: ${fdbLines(from.ns, mac).join(' | ') || 'none'}`)
  const stale = staleLearnedEntry(there)
  if (stale) lines.push(`  FERRY BUG: ${target.host.name}'s overlay bridge learned ${mac} on the VXLAN port (${stale.trim()}) although the endpoint is local: frames from the tunnel are dropped until the container sends one (address reused after it lived on another host)`)
  const peers = await ferryJson<Array<{ rows: Array<{ ip: string, status: string, hostId?: string, detail?: string }> }>>(from, ['peers', '--network', 'ov1']).catch((e: Error) => e)
  if (peers instanceof Error) lines.push(`  ${from.name} peers: ${peers.message}`)
  else {
    const row = peers.flatMap((p) => p.rows).find((r) => r.ip === target.ip)
    lines.push(`  ${from.name} peers row for ${target.ip}: ${row ? `${row.status}${row.detail ? ` (${row.detail})` : ''} host ${row.hostId ?? '-'}` : 'none (not in Redis nor in the kernel)'}`)
  }
  try {
    const ep = s.redis.cli(['hget', 'ferry:overlay:ov1:eps', target.endpoint]).trim()
    lines.push(`  Redis ferry:overlay:ov1:eps[${target.endpoint.slice(0, 12)}]: ${ep || '(missing)'}`)
    lines.push(`  Redis ferry:overlay:ov1:addrs[${target.ip}]: ${s.redis.cli(['hget', 'ferry:overlay:ov1:addrs', target.ip]).trim() || '(missing)'}`)
  } catch (err) { lines.push(`  Redis: ${(err as Error).message}`) }
  const local = await docker(target.host, ['exec', PROBE(target.host.idx), 'ping', '-c', '1', '-W', '2', target.ip], 30_000)
  lines.push(`  from the probe on its own host ${target.host.name}: ${local.code === 0 ? 'reachable (the fault is between the hosts)' : 'NOT reachable either (the fault is on its host)'}`)
  for (const h of [target.host, from]) {
    for (const l of logLinesAbout(h.agent.logs(), [target.endpoint.slice(0, 12), `"${target.ip}"`], 4)) lines.push(`  ${h.name} log: ${l}`)
  }
  return lines
}

async function reachabilityChecks (s: Soak, live: LiveCtr[]): Promise<Check[]> {
  const targets = live.filter((c) => c.net === 'ov1' && !c.name.startsWith('soakprobe'))
  let byAddr = 0
  let byName = 0
  const whyAddr: string[] = []
  const whyName: string[] = []
  await Promise.all(s.hosts.map(async (from) => {
    for (const c of targets.filter((x) => x.host !== from)) {
      const ping = await execRetry(from, ['exec', PROBE(from.idx), 'ping', '-c', '1', '-W', '2', c.ip], (r) => r.code === 0)
      if (ping.code === 0) byAddr++
      else whyAddr.push(`${c.host.name}/${c.name} ${c.ip} not reachable from ${from.name}: ${firstLine(ping.stdout + ping.stderr)}`, ...await diagnose(s, from, c))
      const ns = await execRetry(from, ['exec', PROBE(from.idx), 'nslookup', c.name], (r) => r.code === 0 && r.stdout.includes(c.ip))
      if (ns.code === 0 && ns.stdout.includes(c.ip)) byName++
      else {
        const rec = await ferryJson<{ rcode: string, answers: Array<{ data: unknown }> }>(from, ['dns', 'query', c.name, '--network', 'ov1']).catch((e: Error) => e)
        whyName.push(`${c.host.name}/${c.name} (${c.ip}) not resolved on ${from.name}: ${firstLine((ns.stdout + ns.stderr).replace(/\s+/g, ' '), 200)}`,
          `  ferry dns query on ${from.name}: ${rec instanceof Error ? rec.message : `${rec.rcode} ${rec.answers.map((a) => String(a.data)).join(',') || '(no answer)'}`}`)
      }
    }
  }))
  const pairs = targets.length * (s.hosts.length - 1)
  const web = live.filter((c) => c.net === 'lb' && c.port !== undefined)
  let http = 0
  const whyHttp: string[] = []
  for (const c of web) {
    const from = s.hosts.find((h) => h !== c.host)!
    let body = ''
    for (let i = 0; i < 3 && !body.includes(c.name); i++) {
      body = (await execFile(['ip', 'netns', 'exec', from.ns, 'curl', '-s', '-m', '3', `http://${c.host.ip}:${c.port}/`], { allowFailure: true, timeoutMs: 10_000 })).stdout
      if (!body.includes(c.name)) await sleep(1000)
    }
    if (body.includes(c.name)) { http++; continue }
    const dnat = nsExec(c.host.ns, ['iptables-save', '-t', 'nat']).split('\n').filter((l) => l.includes(`--dport ${c.port} `))
    whyHttp.push(`${c.host.name}:${c.port} -> ${c.name} (${c.ip}) not reachable from ${from.name}; DNAT rules: ${dnat.join(' | ') || 'none'}`,
      ...logLinesAbout(c.host.agent.logs(), [c.endpoint.slice(0, 12)], 4).map((l) => `  ${c.host.name} log: ${l}`))
  }
  return [
    { name: 'live overlay containers reachable by address from every other host', figure: `${byAddr}/${pairs}`, pass: byAddr === pairs, why: whyAddr },
    { name: 'live overlay containers resolvable by name from every other host', figure: `${byName}/${pairs}`, pass: byName === pairs, why: whyName },
    { name: 'published ports reachable from another host', figure: `${http}/${web.length}`, pass: http === web.length, why: whyHttp },
  ]
}

function duplicateCheck (live: LiveCtr[]): Check {
  const ov = duplicates(live.filter((c) => c.net === 'ov1').map((c) => [c.ip, `${c.host.name}/${c.name}`] as const))
  const lb = duplicates(live.filter((c) => c.net === 'lb').map((c) => [`${c.host.name} ${c.ip}`, c.name] as const))
  const why = [...ov, ...lb].map(([ip, who]) => `${ip} held by ${who.join(', ')}`)
  return { name: 'duplicate addresses (overlay across hosts, bridge per host)', figure: String(why.length), pass: why.length === 0, why }
}

async function peersCheck (s: Soak): Promise<Check> {
  let total = 0
  const why: string[] = []
  for (const h of s.hosts) {
    const r = await peerDifferences(h).catch((e: Error) => ({ differences: 1, bad: [`${h.name}: ${e.message}`] }))
    total += r.differences
    why.push(...r.bad)
  }
  return { name: 'ferry peers: kernel differences from Redis, all hosts', figure: String(total), pass: total === 0, why }
}

interface PoolView { subnet: string, allocated: Record<string, { kind: string }> }

/** When the agent logged "endpoint created" for an endpoint id (prefix), in ms; undefined if not found. */
export function endpointCreatedAt (log: string, id: string): number | undefined {
  const line = log.split('\n').find((l) => l.includes('"endpoint created"') && l.includes(id))
  const time = line === undefined ? undefined : /"time":"([^"]+)"/.exec(line)?.[1]
  return time === undefined ? undefined : Date.parse(time)
}

/** The fault on `host` (or global) closest to time `t`, as "N s after fault #k kind" text. */
function nearestFault (s: Soak, host: string, t: number): string {
  const near = s.faults.filter((f) => f.host === undefined || f.host === host)
    .map((f) => ({ f, d: t - f.start })).sort((a, b) => Math.abs(a.d) - Math.abs(b.d))[0]
  if (!near) return 'no fault on this host'
  return `${secs(Math.abs(near.d))} ${near.d >= 0 ? 'after' : 'before'} the start of fault #${near.f.id} ${near.f.kind}${near.f.host ? ` on ${near.f.host}` : ''} (${near.f.detail})`
}

/** What ferry holds while running that no live container accounts for. */
async function runningLeakChecks (s: Soak, live: LiveCtr[]): Promise<Check[]> {
  const liveEps = new Set(live.map((c) => c.endpoint))
  const leakedEps: string[] = []
  const leakedAddrs: string[] = []
  const leakedPorts: string[] = []
  for (const h of s.hosts) {
    const eps = await ferryJson<Array<{ id: string, address: string, networkName: string, container: string, ports: Array<{ hostPort: number }> }>>(h, ['endpoint', 'ls'])
    for (const e of eps.filter((x) => !liveEps.has(x.id))) {
      const born = endpointCreatedAt(h.agent.logs(), e.id)
      leakedEps.push(`${h.name} endpoint ${e.id.slice(0, 12)} ${e.networkName} ${e.address} (container "${e.container}"), created ${born === undefined ? '(not in the log)' : `${at(s, born)}, ${nearestFault(s, h.name, born)}`}`,
        ...logLinesAbout(h.agent.logs(), [e.id.slice(0, 12)], 3).map((l) => `  ${h.name} log: ${l}`))
    }
    const mineLive = new Set(live.filter((c) => c.host === h).map((c) => c.ip))
    // The pools as the agent holds them (its state.json is only the last snapshot: changes since are in its journal).
    const nets = await ferryJson<Array<{ id: string }>>(h, ['network', 'ls'])
    const pools = await Promise.all(nets.map(async (n) => {
      const r = await h.agent.cli(['network', 'inspect', n.id], { timeoutMs: 30_000 })
      if (r.code !== 0) throw new Error(`ferry network inspect on ${h.name} failed: ${firstLine(r.stderr || r.stdout)}`)
      return (JSON.parse(r.stdout) as { pool?: PoolView }).pool
    }))
    for (const pool of pools) {
      if (pool === undefined) continue
      for (const [ip, use] of Object.entries(pool.allocated)) {
        if (use.kind === 'endpoint' && !mineLive.has(ip)) leakedAddrs.push(`${h.name} local IPAM ${pool.subnet}: ${ip} allocated, no live container`)
      }
    }
    const livePorts = new Set(live.filter((c) => c.host === h && c.port !== undefined).map((c) => c.port))
    for (const e of eps) for (const p of e.ports) if (!livePorts.has(p.hostPort)) leakedPorts.push(`${h.name} host port ${p.hostPort} (endpoint ${e.id.slice(0, 12)})`)
  }
  const ovIps = new Set(live.filter((c) => c.net === 'ov1').map((c) => c.ip))
  const addrs = s.redis.cli(['hgetall', 'ferry:overlay:ov1:addrs']).split('\n').filter(Boolean)
  for (let i = 0; i + 1 < addrs.length; i += 2) {
    const [ip, owner] = [addrs[i]!, addrs[i + 1]!]
    if (owner !== '@gateway' && !ovIps.has(ip)) leakedAddrs.push(`Redis ferry:overlay:ov1:addrs ${ip} owned by ${owner}, no live container`)
  }
  const ceps = s.redis.cli(['hkeys', 'ferry:overlay:ov1:eps']).split('\n').filter(Boolean)
  for (const id of ceps.filter((x) => !liveEps.has(x))) leakedEps.push(`Redis ferry:overlay:ov1:eps ${id.slice(0, 12)}: ${s.redis.cli(['hget', 'ferry:overlay:ov1:eps', id]).trim()}`)
  const liveOverlay = live.filter((c) => c.net === 'ov1').length
  const missing = liveOverlay - ceps.filter((x) => liveEps.has(x)).length
  return [
    { name: 'endpoints without a live container (ferry state and Redis), while running', figure: String(leakedEps.filter((l) => !l.startsWith(' ')).length), pass: leakedEps.length === 0, why: leakedEps },
    { name: 'addresses without a live container (local IPAM and Redis), while running', figure: String(leakedAddrs.length), pass: leakedAddrs.length === 0, why: leakedAddrs },
    { name: 'published ports without a live container, while running', figure: String(leakedPorts.length), pass: leakedPorts.length === 0, why: leakedPorts },
    { name: 'live overlay endpoints missing from Redis', figure: `${missing}`, pass: missing === 0, why: [] },
  ]
}

/** The leak checks, repeated until they pass or `ms` have gone by (orphans are collected after the grace period). */
async function leakChecksWithin (s: Soak, live: LiveCtr[], ms: number): Promise<Check[]> {
  const deadline = Date.now() + ms
  for (;;) {
    const checks = await runningLeakChecks(s, live)
    if (checks.every((c) => c.pass) || Date.now() > deadline) return checks
    await sleep(1000)
  }
}

/** Remove every container and network on every host, then count what is left. */
async function teardownChecks (s: Soak): Promise<Check[]> {
  const why: string[] = []
  for (const h of s.hosts) {
    const ids = (await h.d.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean)
    if (ids.length > 0) {
      const r = await docker(h, ['rm', '-f', ...ids])
      if (r.code !== 0) why.push(`${h.name}: docker rm -f failed: ${firstLine(r.stderr)}`)
    }
    for (const net of ['lb', 'ov1']) {
      const r = await docker(h, ['network', 'rm', net])
      if (r.code !== 0) why.push(`${h.name}: docker network rm ${net} failed: ${firstLine(r.stderr)}`)
    }
  }
  const measure = async (): Promise<{ links: string[], rules: string[], kernel: string[], state: string[], keys: string[] }> => {
    const m = { links: [] as string[], rules: [] as string[], kernel: [] as string[], state: [] as string[], keys: leakedKeys(s.redis.keys('ferry:*')) }
    for (const h of s.hosts) {
      m.links.push(...ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fy')).map((n) => `${h.name} ${n}`))
      m.rules.push(...nsExec(h.ns, ['iptables-save']).split('\n').filter((l) => /ferry/i.test(l)).map((l) => `${h.name} ${l}`))
      m.kernel.push(...nsExec(h.ns, ['ip', 'neigh', 'show']).split('\n').filter((l) => l.startsWith('10.40.')).map((l) => `${h.name} neigh ${l}`))
      m.kernel.push(...nsExec(h.ns, ['bridge', 'fdb', 'show']).split('\n').filter((l) => /dst 192\.0\.2\./.test(l)).map((l) => `${h.name} fdb ${l}`))
      const st = await ferryJson<Record<string, number>>(h, ['status']).catch((e: Error) => e)
      if (st instanceof Error) m.state.push(`${h.name}: ${st.message}`)
      else for (const k of ['networks', 'endpoints', 'pools', 'publishedPorts']) if ((st[k] ?? 0) !== 0) m.state.push(`${h.name} ${k}=${st[k]}`)
    }
    return m
  }
  let m = await measure()
  await until(async () => { m = await measure(); return Object.values(m).every((xs) => xs.length === 0) }, 15_000, 1000)
  const count = (xs: string[]): string => String(xs.length)
  return [
    { name: 'removing every container and network succeeded', figure: why.length === 0 ? 'yes' : 'no', pass: why.length === 0, why },
    { name: 'leaked links (fy* in the host namespaces)', figure: count(m.links), pass: m.links.length === 0, why: m.links },
    { name: 'leaked iptables lines mentioning ferry', figure: count(m.rules), pass: m.rules.length === 0, why: m.rules },
    { name: 'leaked overlay neighbour/FDB entries', figure: count(m.kernel), pass: m.kernel.length === 0, why: m.kernel },
    { name: "leftovers in ferry's state (networks/endpoints/pools/published ports)", figure: count(m.state), pass: m.state.length === 0, why: m.state },
    { name: 'leaked Redis keys ferry:* beyond host registration', figure: count(m.keys), pass: m.keys.length === 0, why: m.keys },
  ]
}

// ---- the report ----------------------------------------------------------------------------------------

function operationFigures (s: Soak, now: number): { rows: string[][], unexplained: Array<{ op: Op, reason: string }> } {
  const kinds: OpKind[] = ['run-overlay', 'run-bridge', 'rm', 'exec-ping', 'exec-nslookup', 'exec-http']
  const ctrs = new Map([...s.gone, ...s.live])
  const unexplained: Array<{ op: Op, reason: string }> = []
  const tally = new Map(kinds.map((k) => [k, { n: 0, ok: 0, bug: 0, fault: 0, workload: 0, bad: 0 }]))
  for (const op of s.ops) {
    const t = tally.get(op.kind)!
    const j = judge(op, s.faults, ctrs, now)
    t.n++
    if (j.verdict === 'ok') t.ok++
    else if (j.verdict === 'ferry-bug') { t.bug++; unexplained.push({ op, reason: j.reason }) }
    else if (j.verdict === 'during-fault') t.fault++
    else if (j.verdict === 'workload') t.workload++
    else { t.bad++; unexplained.push({ op, reason: j.reason }) }
  }
  const sum = [...tally.values()].reduce((a, t) => ({ n: a.n + t.n, ok: a.ok + t.ok, bug: a.bug + t.bug, fault: a.fault + t.fault, workload: a.workload + t.workload, bad: a.bad + t.bad }),
    { n: 0, ok: 0, bug: 0, fault: 0, workload: 0, bad: 0 })
  const row = (name: string, t: typeof sum): string[] => [name, String(t.n), String(t.ok), String(t.bug), String(t.fault), String(t.workload), String(t.bad)]
  return {
    rows: [['operation', 'done', 'ok', 'failed: ferry bug (diagnosed)', 'failed during a fault', 'failed: workload race', 'failed: unexplained'],
      ...kinds.map((k) => row(k, tally.get(k)!)), row('all', sum)],
    unexplained,
  }
}

function faultFigures (s: Soak): string[][] {
  const kinds: FaultKind[] = ['agent-kill', 'redis-restart', 'admin-flush', 'engine-restart']
  return [['fault', 'injected', 'recovery p50', 'recovery max', 'with problems'], ...kinds.map((k) => {
    const fs = s.faults.filter((f) => f.kind === k)
    const rec = fs.map((f) => (f.recovered ?? f.start) - f.start).sort((a, b) => a - b)
    return [k, String(fs.length), rec.length ? secs(rec[Math.floor((rec.length - 1) / 2)]!) : '-', rec.length ? secs(rec[rec.length - 1]!) : '-', String(fs.filter((f) => f.problem).length)]
  })]
}

function printCheck (c: Check): void {
  console.log(`${c.info ? 'INFO' : c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.figure}`)
  for (const w of c.why.slice(0, 40)) console.log(`        ${w}`)
  if (c.why.length > 40) console.log(`        … ${c.why.length - 40} more`)
}

// ---- main ------------------------------------------------------------------------------------------------

await runBench(async (t) => {
  const out = join(tmpdir(), `ferry-soak-${process.pid}`)
  mkdirSync(out, { recursive: true })
  const hardLimitMs = (MINUTES * 60 + SETTLE_S + 15 * 60) * 1000
  const watchdog = setTimeout(() => { console.error(`soak: over its bound of ${secs(hardLimitMs)}, stopping`); process.kill(process.pid, 'SIGTERM') }, hardLimitMs)
  watchdog.unref()
  t.teardown(() => clearTimeout(watchdog))
  console.log(`ferry soak: seed ${SEED} (replay with --seed ${SEED}), ${MINUTES} min, 3 hosts, settle ≤ ${SETTLE_S} s; logs in ${out}`)
  const { hosts, redis } = await setUp(t, out)
  const started = Date.now()
  const s: Soak = { hosts, redis, started, stopAt: started + MINUTES * 60_000, live: new Map(), gone: new Map(), ops: [], faults: [], counter: 0, out }

  section('workload and faults')
  const loops = hosts.flatMap((h) => [
    ...Array.from({ length: LOOPS.overlay }, (_, k) => workloadLoop(s, h, 'ov1', `o${k}`)),
    ...Array.from({ length: LOOPS.bridge }, (_, k) => workloadLoop(s, h, 'lb', `b${k}`)),
  ])
  const progress = setInterval(() => {
    console.log(`${at(s, Date.now())}: ${s.ops.length} operations, ${s.ops.filter((o) => !o.ok).length} failed, ${s.faults.length} faults, ${s.live.size} live containers`)
  }, 30_000)
  try {
    // A fault that cannot be recovered from ends the workload at once (the error says why).
    await Promise.all([injectFaults(s).catch((err: unknown) => { s.stopAt = 0; throw err }), ...loops])
  } finally {
    clearInterval(progress)
  }
  const workEnd = Date.now()
  for (const f of s.faults) console.log(`  fault #${f.id} ${at(s, f.start)} ${f.kind}${f.host ? ` on ${f.host}` : ''}: ${f.detail}; recovered in ${secs((f.recovered ?? workEnd) - f.start)}${f.problem ? `; PROBLEM: ${f.problem}` : ''}`)

  section('settle')
  const st = await settle(s)
  console.log(`settled in ${secs(st.ms)}${st.converged ? '' : ' (NOT converged within the bound: checks run anyway)'}`)
  for (const h of hosts) await h.d.dockerOk(['run', '-d', '--net', 'ov1', '--name', PROBE(h.idx), 'bb', 'sleep', '900'])
  const inv = await inventory(s)
  const soakLive = inv.live.filter((c) => !c.name.startsWith('soakprobe'))

  section('checks')
  const checks: Check[] = []
  checks.push({ name: 'faults recovered cleanly', figure: `${s.faults.filter((f) => !f.problem).length}/${s.faults.length}`,
    pass: s.faults.every((f) => !f.problem), why: s.faults.filter((f) => f.problem).map((f) => `fault #${f.id} ${f.kind} ${f.host ?? ''}: ${f.detail}: ${f.problem}`) })
  checks.push({ name: 'converged within the settle bound', figure: secs(st.ms), pass: st.converged, why: [] })
  checks.push({ name: 'containers not running after the settle phase', figure: String(inv.dead.length), pass: inv.dead.length === 0, why: inv.dead })
  checks.push(...await reachabilityChecks(s, inv.live))
  checks.push(duplicateCheck(inv.live))
  checks.push(await peersCheck(s))
  checks.push(...await leakChecksWithin(s, inv.live, LEAK_WAIT_MS))
  const agentLogs = new Map(hosts.map((h) => [h, h.agent.logs()]))
  const problems = hosts.map((h) => [h, problemsInLog(agentLogs.get(h)!)] as const)
  checks.push(...await teardownChecks(s))

  section('figures')
  const opf = operationFigures(s, workEnd)
  console.log(`seed ${SEED}; ran ${secs(workEnd - started)} of workload; settle ${secs(st.ms)}`)
  console.log(table(opf.rows))
  console.log('')
  console.log(table(faultFigures(s)))
  console.log(`\nfaults injected: ${s.faults.length}; live containers at the end: ${soakLive.length} (${soakLive.filter((c) => c.net === 'ov1').length} overlay, ${soakLive.filter((c) => c.net === 'lb').length} bridge with a published port)`)
  if (opf.unexplained.length > 0) {
    console.log(`\nfailures diagnosed as ferry bugs, and failures outside every fault window not explained by the workload (${opf.unexplained.length}):`)
    const groups = new Map<string, Op[]>()
    for (const u of opf.unexplained) groups.set(`${u.op.kind} [${u.reason}] ${u.op.error ?? ''}`, [...(groups.get(`${u.op.kind} [${u.reason}] ${u.op.error ?? ''}`) ?? []), u.op])
    for (const [k, ops] of groups) {
      const first = ops[0]!
      console.log(`  ${ops.length}× ${k}  (first ${at(s, first.start)} on ${first.host}${first.target ? ` -> ${first.target}` : ''})`)
      const h = hosts.find((x) => x.name === first.host)!
      for (const l of logLinesBetween(agentLogs.get(h) ?? '', first.start - 1000, first.end + 1000)) console.log(`      ${h.name} log: ${l}`)
    }
  }
  console.log('\nagent warnings and errors:')
  for (const [h, ps] of problems) {
    console.log(`  ${h.name}: ${ps.length === 0 ? 'none' : ''}`)
    for (const [msg, n] of ps.slice(0, 8)) console.log(`    ${n}× ${msg}`)
  }

  section('assertions')
  // Outside every fault window, an error that ferry itself returned to the engine is a ferry bug; so is a failure diagnosed as one.
  const diagnosed = opf.unexplained.filter((u) => u.reason.startsWith('FERRY BUG'))
  checks.push({ name: 'operations that failed through a diagnosed ferry bug', figure: String(diagnosed.length), pass: diagnosed.length === 0,
    why: diagnosed.slice(0, 10).map((u) => `${at(s, u.op.start)} ${u.op.host} ${u.op.kind} ${u.op.container ?? ''} -> ${u.op.target ?? ''}: ${u.reason}`) })
  const pluginErrors = opf.unexplained.filter((u) => u.reason === 'ferry plugin error')
  checks.push({ name: 'ferry plugin errors outside fault windows', figure: String(pluginErrors.length), pass: pluginErrors.length === 0,
    why: pluginErrors.map((u) => `${at(s, u.op.start)} ${u.op.host} ${u.op.kind} ${u.op.container ?? ''}: ${u.op.error ?? ''}`) })
  checks.push({ name: 'other operation failures outside fault windows, not explained by the workload (listed above)', figure: String(opf.unexplained.length - pluginErrors.length - diagnosed.length), pass: true, why: [], info: true })
  for (const c of checks) printCheck(c)
  const failed = checks.filter((c) => !c.pass)
  console.log(`\nsoak: ${checks.filter((c) => !c.info).length - failed.length} passed, ${failed.length} failed`)
  writeFileSync(join(out, 'faults.json'), JSON.stringify(s.faults, null, 2))
  if (failed.length > 0) process.exitCode = 1
})
