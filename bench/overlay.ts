/**
 * Multi-host overlay benchmark (issue 4), not a test:
 *
 *   npm run bench:overlay [-- --containers 50 --sizes 10,1000,10000,100000 --churn-cycles 20 --seconds 3 --reps 3 --rounds 15 --round-seconds 2 --phases scale,cluster|throughput --cpu-prof DIR --agent-node-args '--max-semi-space-size=2' --hold 65]
 *
 * Simulated hosts are network namespaces joined by an underlay bridge (in its
 * own namespace, with redis-server on it), as in test/e2e/overlay.test.ts.
 *
 * 1. Scale, once per `--sizes` (remote endpoints): up to 1,000 fake hosts with
 *    100 endpoints each (fewer for small sizes) are written to
 *    a fresh Redis through ferry's own ClusterStore (a child process in the
 *    underlay namespace; fake VTEPs are underlay addresses where nothing
 *    listens, and no traffic is sent to them). Then a FRESH agent (no engine;
 *    the overlay is created through its plugin socket, as dockerd would):
 *    a. join: CreateNetwork → every peer's FDB and neighbour entry in its kernel;
 *    b. rebuild: the agent is killed, its overlay devices deleted (a reboot),
 *       and it starts again with the overlay in its store → every peer programmed;
 *    c. single changes at that scale: a fake host publishes one endpoint and
 *       withdraws it, 20 times (`--churn-cycles N`); the Redis commands each change
 *       costs (redis MONITOR, by client and script, inside-script commands apart),
 *       and how long the fresh agent's kernel takes to get it (p50, p99), with the
 *       agent as configured by default (its DNS on): seen by `ip -ts monitor`, and
 *       answered to the agent (its debug log). Where each change's time went
 *       (bench/changes.ts; every change over 20 ms one by one): Redis and pubsub to
 *       the agent, its DNS records, planning, the kernel's answer, the watcher; the
 *       agent's GC pauses (bench/agent-gc-probe.mjs, preloaded) and its CPU run and
 *       wait time (/proc/PID/schedstat) in the change's window, and whether the agent's
 *       periodic repair ran meanwhile (its debug line). Also the cost of the
 *       planner the agent runs per change (PeerPlanner.upsert among N peers);
 *    d. the agent's RSS (VmRSS, and its peak VmHWM) with every peer programmed,
 *       and Redis' memory per endpoint (INFO used_memory before and after the seed);
 *       the agent runs node with its shipped flags (src/install/node-flags.ts), or
 *       with `--agent-node-args '…'` ('' for V8's defaults);
 *    e. a Redis restart that keeps the data (SAVE, kill -9, start from the dump):
 *       from the kill to the agent's full reconcile after its full read (its
 *       debug log), and every peer still programmed; then, `--hold S` seconds
 *       later (0 by default; 65 takes in a periodic full reconcile, which reads
 *       the kernel's entries back), the agent's RSS and its peak over its run.
 *    The kernel is watched with `ip monitor neigh` / `bridge monitor fdb` in the
 *    agent's namespace. Those drop events in a burst of thousands, so the end
 *    of a bulk programming is taken from the agent's own debug log line
 *    ('overlay peers programmed') once a dump confirms every entry is there.
 * 2. Convergence. Two hosts with a dockerd and an agent each, and two overlays
 *    side by side: a plain one and an encrypted one (`-o ferry.encrypt=wireguard`,
 *    docs/encryption.md; wireguard-go). For each overlay in turn, a probe container
 *    runs on host 2; for each of `--containers` containers, `docker run -d --ip X`
 *    on host 1, and from `docker run` returning to the first echo reply that the
 *    probe gets from X. The probe is a busybox ping at 10 ms intervals started
 *    before the run, inside the probe's namespace (`nsenter -t PID -n`), with the
 *    probe's ARP retransmit time set to 10 ms in that namespace (the kernel's 1 s
 *    default would make the probe, not ferry, the resolution). `docker exec` is
 *    not used for probing: its own cost is printed for comparison. Host 2's
 *    kernel is watched too (`ip monitor neigh`): when the peer got programmed.
 *    Negative times: reachable before `docker run` returned.
 * 3. Throughput and latency, over three paths: between the two host namespaces
 *    over the underlay alone, and between containers on the two hosts over the
 *    plain overlay and over the encrypted one (ratios against the plain overlay,
 *    the anchor). Throughput: a bounded TCP bulk transfer (node server and client,
 *    `--round-seconds` each, `--rounds` rounds; in each round every path once, the order
 *    rotated and reversed from round to round (A B, B A, B A, A B …), so that a burst of
 *    other load on this shared machine hits every path alike). Figures: the median of each
 *    path, and the median and interquartile range of the per-round ratios, with the load
 *    average. Latency: 2,000 TCP round trips of 64 bytes on one connection (p50, p99).
 *    `--phases throughput` (instead of `cluster`): this part alone, the underlay and the
 *    plain overlay only, with the overlay/underlay ratio, and what h1's VXLAN device has
 *    (outer UDP checksums, the offloads ferry sets; read back).
 * 4. Key-rotation gap. On the encrypted overlay, a TCP stream of 64-byte
 *    requests every 10 ms, each echoed, for 8 s; host 1 rotates its key
 *    (`ferry cluster rotate-key`) at 1.5 s and host 2 1.5 s after that. The
 *    figure is the longest time between two echoes arriving (the stall), against
 *    the same stream without a rotation; the stream must end without an error.
 *
 * 5. Sentinel failover (`--phases sentinel`, not run by default; `--sentinel-endpoints N`,
 *    10,000 by default; `--down-after MS`, 500 by default). Three redis-server (a
 *    primary and two replicas) and three `redis-server --sentinel` (quorum 2) on
 *    random free ports in the underlay namespace; N endpoints of fake hosts written
 *    to the primary; a fresh agent following `sentinel://…?wait=1` programs them all.
 *    Three writers (ClusterStores in a child process, through the same URL) allocate
 *    and publish an endpoint every 50 ms. Then the primary gets SIGKILL, and: when
 *    the first sentinel announced +switch-master (and every other sentinel event
 *    before it: where that time goes); when each writer's first change
 *    begun after the kill was acknowledged, and the agent's (an address asked on its
 *    plugin socket right after the kill); when the agent was up to date again:
 *    caught up from Redis' change log, or read the cluster in full and re-checked its
 *    kernel (its debug log, as for the Redis restart of the scale phase, whose figure
 *    at the same size is printed beside it when `scale` ran too); the agent's kernel against the new primary once the writers
 *    stopped; and the acknowledged endpoints the new primary does not have (at
 *    once, and after its owner re-asserted it, up to 15 s).
 *
 * Run as root; the npm script builds dist/ first (the agent runs from it).
 * Namespaces, engines, agents and Redis are removed at the end, on failure and
 * on Ctrl-C. Traffic stays inside the namespaces made here.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join as joinPath, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { ipJson, netns, nsExec, sh } from '../test/harness/netns.js'
import { startDockerd, type Dockerd } from '../test/harness/dockerd.js'
import { ensureBusyboxImage } from '../test/harness/image.js'
import { NODE, startAgent, type Agent } from '../test/harness/agent.js'
import { freePort, redisServer, type RedisServer } from '../test/harness/redis.js'
import { execFile } from '../src/kernel/exec.js'
import { SCRIPTS } from '../src/cluster/lua.js'
import { RedisClusterStore } from '../src/cluster/redis.js'
import { AGENT_NODE_FLAGS } from '../src/install/node-flags.js'
import { PeerPlanner, VXLAN_OFFLOADS, overlayDevices, type RemotePeer } from '../src/vxlan/plan.js'
import { firstEvents, lostEndpoints, parseSwitchMaster, sentinelEventReader, writesAgainAfter, type SentinelEvent, type WriteOp } from './failover.js'
import { PluginClient, argInt, engineId, load, median, ms, pairedRatio, pairedText, quantile, roundOrder, runBench, section, table, timed, type Teardowns } from './lib.js'
import { accountChanges, accountText, gcIn, medianAccount, monitorStamp, parseAgentLog, type ChangeWindow, type Sched } from './changes.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SELF = fileURLToPath(import.meta.url)
/** Preloaded into the scale phase's agent: its GC pauses as lines of its log (bench/changes.ts reads them). */
const GC_PROBE = pathToFileURL(joinPath(dirname(SELF), 'agent-gc-probe.mjs')).href

const CONTAINERS = argInt('containers', 50)
const SIZES = (argValue('sizes') ?? '10,1000,10000,100000').split(',').map(Number)
/**
 * `--agent-node-args "--max-semi-space-size=2 …"`: V8 flags for the scale phase's agent (space-separated; '' for V8's
 * defaults). By default the agent's shipped ones (src/install/node-flags.ts): the harness starts `node bin/ferry`, which
 * does not read bin/ferry's `#!` line.
 */
const AGENT_NODE_ARGS = (argValue('agent-node-args') ?? AGENT_NODE_FLAGS.join(' ')).split(' ').filter((a) => a !== '')
/** `--hold S`: seconds the scale phase's agent is left to run after the Redis restart before its last memory reading (its periodic full reconcile comes every 60 s). */
const HOLD_S = argInt('hold', 0)
/** Endpoints per fake host, and at most this many fake hosts. */
const PER_HOST_MAX = 100
const HOSTS_MAX = 1000
const SECONDS = argInt('seconds', 3)
const REPS = argInt('reps', 3)
const WARMUP = 3
/** `--cpu-prof DIR`: the fresh agent of the scale phase writes V8 CPU profiles there (on a clean exit). */
const CPU_PROF = argValue('cpu-prof')
const PHASES = new Set((argValue('phases') ?? 'scale,cluster').split(','))
/** Interleaved rounds of the throughput measurement and the seconds of each transfer. */
const TP_ROUNDS = argInt('rounds', 15)
const TP_SECONDS = argInt('round-seconds', 2)
/** `--sentinel-endpoints N`: remote endpoints of the Sentinel phase; `--down-after MS`: the sentinels' down-after-milliseconds. */
const SENTINEL_ENDPOINTS = argInt('sentinel-endpoints', 10_000)
const DOWN_AFTER_MS = argInt('down-after', 500)

const REDIS_IP = '192.0.2.5'
const FRESH_IP = '192.0.2.20'
const SCALE_OVERLAY = 'ovscale'
/** A /14: room for 100,000 endpoints (10.60.0.0 to 10.63.255.255). */
const SCALE_SUBNET = '10.60.0.0/14'
const SCALE_GATEWAY = '10.60.0.1'
const SCALE_PREFIX = '10.6'
const CHURN_IP = '10.63.250.1'
/** The two overlays of the cluster phase: plain (the anchor) and encrypted. */
const OVERLAYS = [
  { label: 'plain overlay', net: 'ov1', subnet: '10.40.0.0/16', prefix: '10.40', opts: [] as string[] },
  { label: 'encrypted overlay', net: 'ove1', subnet: '10.41.0.0/16', prefix: '10.41', opts: ['-o', 'ferry.encrypt=wireguard'] },
] as const
type Overlay = typeof OVERLAYS[number]
const TP_PORT = 5201
const LAT_PORT = 5202
/** Round trips of the latency measure, and the stall stream's request interval and length. */
const LAT_TRIPS = 2000
const STALL_EVERY_MS = 10
const STALL_SECONDS = 8
const PROBE_MS = 10

/** `--name VALUE` from the command line. */
function argValue (name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

// ---- processes whose output is read line by line ---------------------------------------------

/** A long-running program whose stdout lines go to `onLine` (with the time they arrived); killed on teardown. */
function streamLines (t: Teardowns, argv: string[], onLine: (line: string, at: number) => void): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], cwd: REPO })
  let rest = ''
  child.stdout!.on('data', (b: Buffer) => {
    const at = performance.now()
    const lines = (rest + b.toString()).split('\n')
    rest = lines.pop() ?? ''
    for (const l of lines) onLine(l, at)
  })
  child.once('error', () => { /* seen as an exit */ })
  t.teardown(() => { child.kill('SIGKILL') })
  return child
}

/** This file in another mode (--seed, --churn), inside namespace `ns`; resolves its last stdout line as JSON. */
async function runSelf<T> (ns: string, mode: string, spec: unknown, timeoutMs: number): Promise<T> {
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, ...process.execArgv, SELF, mode, JSON.stringify(spec)], { timeoutMs, allowFailure: true })
  const last = r.stdout.trim().split('\n').pop() ?? ''
  if (r.code !== 0 || !last.startsWith('{')) throw new Error(`${mode} failed (${r.code}): ${r.stderr.slice(-2000)}`)
  return JSON.parse(last) as T
}

// ---- child modes: write the fake cluster, and one change ----------------------------------------

interface SeedSpec { url: string, hosts: number, perHost: number }
interface SeedResult { ms: number, endpoints: number, commands: number }
/** `agentPid`: the agent whose scheduler times (/proc/PID/schedstat) are read at each change's start. */
interface ChurnSpec { url: string, cycles: number, gapMs: number, agentPid?: number }
/**
 * One publish + withdraw of the same endpoint: unix ms (to 0.01 ms) when each call began and when the store
 * acknowledged it, and the agent's schedstat (ns run, ns waited for a CPU) at each call's start.
 */
interface ChurnCycle { publishAt: number, publishedAt: number, withdrawAt: number, withdrawnAt: number, publishSched?: Sched, withdrawSched?: Sched }
/** The cycles, when the last window ends (and the agent's schedstat then), and the publisher's own command count per change. */
interface ChurnResult { cycles: ChurnCycle[], endAt: number, endSched?: Sched, commandsPerChange: number }

function schedstat (pid: number | undefined): Sched | undefined {
  if (pid === undefined) return undefined
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number)
    return [run!, wait!]
  } catch { return undefined }
}

/** Unix ms to 0.01 ms (Date.now() has whole ms; every process here shares the clock). */
const unixNow = (): number => performance.timeOrigin + performance.now()

const fakeHostId = (h: number): string => `fake${h}`
/** Fake VTEPs in 198.18.0.0/15 (benchmarking addresses; no route, nothing is ever sent there). */
const fakeVtep = (h: number): string => `198.18.${(h + 1) >> 8}.${(h + 1) & 255}`
const macOf = (ip: string): string => ['02', '42', ...ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0'))].join(':')

async function openFakeHost (url: string, h: number): Promise<RedisClusterStore> {
  // No heartbeat timer, and a TTL longer than the run: the fake hosts stay registered.
  const store = new RedisClusterStore({ url, hostId: fakeHostId(h), advertiseAddr: fakeVtep(h), heartbeatMs: 0, hostTtlMs: 3_600_000 })
  await store.start()
  await store.defineOverlay({ name: SCALE_OVERLAY, subnet: SCALE_SUBNET, gateway: SCALE_GATEWAY })
  return store
}

async function seed (spec: SeedSpec): Promise<SeedResult> {
  const t0 = performance.now()
  let commands = 0
  const oneHost = async (h: number): Promise<void> => {
    const store = await openFakeHost(spec.url, h)
    try {
      const ips = await Promise.all(Array.from({ length: spec.perHost }, () => store.allocateAddress(SCALE_OVERLAY)))
      await Promise.all(ips.map((ip, k) => store.publishEndpoint({ overlay: SCALE_OVERLAY, endpointId: `f${h}e${k}`, ip, mac: macOf(ip), names: [`f${h}e${k}`] })))
      commands += store.status().commands
    } finally {
      await store.close()
    }
  }
  for (let h = 0; h < spec.hosts; h += 10) {
    await Promise.all(Array.from({ length: Math.min(10, spec.hosts - h) }, (_, i) => oneHost(h + i)))
  }
  return { ms: performance.now() - t0, endpoints: spec.hosts * spec.perHost, commands }
}

async function churn (spec: ChurnSpec): Promise<ChurnResult> {
  const store = await openFakeHost(spec.url, 0)
  try {
    const ip = await store.allocateAddress(SCALE_OVERLAY, CHURN_IP, { reclaim: true })
    await sleep(spec.gapMs) // let the re-assertion after connecting settle
    const c0 = store.status().commands
    const cycles: ChurnCycle[] = []
    const sched = (): Sched | undefined => schedstat(spec.agentPid)
    for (let i = 0; i < spec.cycles; i++) {
      const publishSched = sched()
      const publishAt = unixNow()
      await store.publishEndpoint({ overlay: SCALE_OVERLAY, endpointId: 'churn1', ip, mac: macOf(ip), names: ['churn1'] })
      const publishedAt = unixNow()
      await sleep(spec.gapMs)
      const withdrawSched = sched()
      const withdrawAt = unixNow()
      await store.withdrawEndpoint(SCALE_OVERLAY, 'churn1')
      const withdrawnAt = unixNow()
      await sleep(spec.gapMs)
      cycles.push({ publishAt, publishedAt, withdrawAt, withdrawnAt, ...(publishSched ? { publishSched } : {}), ...(withdrawSched ? { withdrawSched } : {}) })
    }
    const endSched = sched()
    return { cycles, endAt: unixNow(), ...(endSched ? { endSched } : {}), commandsPerChange: (store.status().commands - c0) / (2 * spec.cycles) }
  } finally {
    await store.close()
  }
}

interface WritersSpec { url: string, writers: number, gapMs: number, durationMs: number }
/** Every change each writer made (unix ms), and the error of each one refused. */
interface WritersResult { ops: WriteOp[], errors: string[] }

const writerId = (i: number): string => `writer${i}`

/**
 * `spec.writers` hosts (ClusterStores through `spec.url`, which follow a Sentinel failover and re-assert what
 * they published), each allocating an address and publishing an endpoint on it every `gapMs` for `durationMs`.
 */
async function writers (spec: WritersSpec): Promise<WritersResult> {
  const ops: WriteOp[] = []
  const errors: string[] = []
  const endAt = Date.now() + spec.durationMs
  const one = async (i: number): Promise<void> => {
    const store = new RedisClusterStore({ url: spec.url, hostId: writerId(i), advertiseAddr: fakeVtep(HOSTS_MAX + i), heartbeatMs: 0, hostTtlMs: 3_600_000, unavailableWaitMs: 30_000, startTimeoutMs: 20_000 })
    await store.start()
    try {
      for (let k = 0; Date.now() < endAt; k++) {
        const op: WriteOp = { writer: writerId(i), endpointId: `w${i}e${k}`, ip: '', startAt: Date.now() }
        ops.push(op)
        try {
          op.ip = await store.allocateAddress(SCALE_OVERLAY)
          await store.publishEndpoint({ overlay: SCALE_OVERLAY, endpointId: op.endpointId, ip: op.ip, mac: macOf(op.ip), names: [op.endpointId] })
          op.ackAt = Date.now()
        } catch (err) {
          errors.push(`${op.writer} ${op.endpointId}: ${(err as Error).message}`)
        }
        await sleep(spec.gapMs)
      }
    } finally {
      await store.close()
    }
  }
  await Promise.all(Array.from({ length: spec.writers }, (_, i) => one(i)))
  return { ops, errors }
}

// ---- the underlay -------------------------------------------------------------------------------

interface Underlay { ns: string, attach (ns: string, ip: string): void }

/** A namespace with the underlay bridge (REDIS_IP on it); `attach` plugs a host namespace in as eth0. */
function underlay (t: Teardowns): Underlay {
  const ns = netns(t, 'fyoul')
  nsExec(ns, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge'])
  nsExec(ns, ['ip', 'addr', 'add', `${REDIS_IP}/24`, 'dev', 'ulbr'])
  nsExec(ns, ['ip', 'link', 'set', 'ulbr', 'up'])
  let n = 0
  return {
    ns,
    attach (host: string, ip: string): void {
      const v = `vh${++n}`
      sh(['ip', '-n', ns, 'link', 'add', v, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host])
      sh(['ip', '-n', ns, 'link', 'set', v, 'master', 'ulbr', 'up'])
      sh(['ip', '-n', host, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
      sh(['ip', '-n', host, 'link', 'set', 'eth0', 'up'])
    },
  }
}

// ---- watching a kernel's peer entries -----------------------------------------------------------

/** Where a completion time came from. */
type Source = 'monitor' | 'agent log' | 'dump'

/**
 * Permanent neighbour entries (by IP) and FDB entries with a `dst` (by MAC) of
 * namespace `ns`, as `ip monitor` and `bridge monitor` report them, each with
 * the time it was first seen, and every neighbour addition and deletion in
 * order. Monitors drop events under a burst (the netlink socket's buffer is
 * capped by the root namespace's rmem_max), so bulk counts are confirmed by a dump.
 */
class KernelWatch {
  readonly neigh = new Map<string, number>()
  readonly fdb = new Map<string, number>()
  readonly history: Array<{ ip: string, add: boolean, at: number }> = []

  constructor (t: Teardowns, readonly ns: string, private readonly ipPrefix: string) {
    // `-ts`: each event stamped when `ip` read it, not when this process got to the line.
    streamLines(t, ['ip', '-n', ns, '-ts', 'monitor', 'neigh'], (stamped, arrived) => {
      const { text: line, unixMs } = monitorStamp(stamped)
      const at = unixMs === undefined ? arrived : perfOf(unixMs)
      const add = !line.startsWith('Deleted ')
      const text = add ? line : line.slice('Deleted '.length)
      // A deleted permanent entry is reported FAILED first, then "Deleted … FAILED".
      if (!text.startsWith(ipPrefix) || (add && !text.includes('PERMANENT'))) return
      const ip = text.split(' ')[0]!
      this.history.push({ ip, add, at })
      if (add && !this.neigh.has(ip)) this.neigh.set(ip, at)
    })
    streamLines(t, ['bridge', '-n', ns, 'monitor', 'fdb'], (line, at) => {
      if (line.startsWith('Deleted') || !line.includes(' dst ')) return
      const mac = line.split(' ')[0]!
      if (!this.fdb.has(mac)) this.fdb.set(mac, at)
    })
  }

  reset (): void { this.neigh.clear(); this.fdb.clear() }

  /** The latest first-seen time (0 when none): a loop, since 100,000 values overflow Math.max's arguments. */
  private latest (): number {
    let max = 0
    for (const m of [this.neigh, this.fdb]) for (const at of m.values()) if (at > max) max = at
    return max
  }

  /** The first addition (or deletion) of `ip` at or after `from` (performance.now() ms). */
  next (ip: string, add: boolean, from: number): number | undefined {
    return this.history.find((e) => e.ip === ip && e.add === add && e.at >= from)?.at
  }

  /** Counts of the kernel's own dump (permanent neighbours under the prefix, FDB entries with a dst). */
  dumpCounts (): { neigh: number, fdb: number } {
    const neigh = sh(['ip', '-n', this.ns, 'neigh', 'show', 'nud', 'permanent']).split('\n').filter((l) => l.startsWith(this.ipPrefix)).length
    const fdb = sh(['bridge', '-n', this.ns, 'fdb', 'show']).split('\n').filter((l) => l.includes(' dst ')).length
    return { neigh, fdb }
  }

  /**
   * Resolves when `n` neighbour and `n` FDB entries are there, with the time the
   * last one got in: from the monitors when they saw them all; else from the
   * agent's own "programmed" log line (`logAt`) once a dump confirms the counts;
   * else the time a dump (every 500 ms once events pause) found them all.
   */
  async waitFor (n: number, timeoutMs: number, logAt: () => number | undefined): Promise<{ at: number, source: Source }> {
    const end = performance.now() + timeoutMs
    let lastDump = 0
    while (performance.now() < end) {
      if (this.neigh.size >= n && this.fdb.size >= n) {
        return { at: this.latest(), source: 'monitor' }
      }
      const logged = logAt()
      const quiet = performance.now() - this.latest()
      if ((logged !== undefined || quiet > 300) && performance.now() - lastDump > (logged !== undefined ? 20 : 500)) {
        lastDump = performance.now()
        const c = this.dumpCounts()
        if (c.neigh >= n && c.fdb >= n) return logged !== undefined ? { at: logged, source: 'agent log' } : { at: lastDump, source: 'dump' }
      }
      await sleep(5)
    }
    const c = this.dumpCounts()
    throw new Error(`${this.ns}: ${c.neigh} neighbour and ${c.fdb} FDB entries after ${timeoutMs} ms (expected ${n} each)`)
  }
}

/** performance.now() of a unix-ms time (same clock for every process here). */
const perfOf = (unixMs: number): number => unixMs - performance.timeOrigin

/**
 * When the agent logged (debug, 'overlay peers programmed') that it had applied
 * a plan of at least `n` peers, in its log after `offset` characters.
 */
function programmedAt (agent: Agent, offset: number, n: number): number | undefined {
  for (const line of agent.logs().slice(offset).split('\n')) {
    if (!line.includes('"overlay peers programmed"')) continue
    try {
      const o = JSON.parse(line) as { time?: string, peers?: number }
      if (o.time !== undefined && (o.peers ?? 0) >= n) return perfOf(Date.parse(o.time))
    } catch { /* not JSON */ }
  }
  return undefined
}

// ---- Redis MONITOR ------------------------------------------------------------------------------

interface MonitorLine { at: number, client: string, command: string }

const SCRIPT_BY_SHA = new Map(Object.values(SCRIPTS).map((s) => [s.sha, s.name]))

/** `redis-cli monitor` lines, commands named as `evalsha:<script>`; `at` in unix ms. */
function redisMonitor (t: Teardowns, ns: string, port: number): MonitorLine[] {
  const lines: MonitorLine[] = []
  const re = /^(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/
  streamLines(t, ['ip', 'netns', 'exec', ns, 'redis-cli', '-h', REDIS_IP, '-p', String(port), 'monitor'], (line) => {
    const m = re.exec(line)
    if (!m) return
    let command = m[3]!.toLowerCase()
    if (command === 'evalsha') command = `evalsha:${SCRIPT_BY_SHA.get(m[4] ?? '') ?? m[4]}`
    lines.push({ at: Number(m[1]) * 1000, client: m[2]!, command })
  })
  return lines
}

interface ChangeCost { byRole: Map<string, number>, inScripts: number, heartbeats: number, total: number }

/**
 * Commands in [from, to): top-level ones by role and command (heartbeats apart),
 * and commands run inside scripts (those of heartbeats not counted).
 */
function changeCost (lines: readonly MonitorLine[], from: number, to: number, roleOf: (client: string) => string): ChangeCost {
  const byRole = new Map<string, number>()
  let inScripts = 0
  let heartbeats = 0
  let inHeartbeat = false
  for (const l of lines) {
    if (l.at < from || l.at >= to) continue
    if (l.client === 'lua') {
      if (!inHeartbeat) inScripts++
      continue
    }
    inHeartbeat = l.command === 'evalsha:heartbeat'
    if (inHeartbeat) { heartbeats++; continue }
    const key = `${roleOf(l.client)} ${l.command}`
    byRole.set(key, (byRole.get(key) ?? 0) + 1)
  }
  const total = [...byRole.values()].reduce((s, x) => s + x, 0)
  return { byRole, inScripts, heartbeats, total }
}

/** The mean of several windows' costs. */
function meanCost (costs: readonly ChangeCost[]): ChangeCost {
  const byRole = new Map<string, number>()
  for (const c of costs) for (const [k, n] of c.byRole) byRole.set(k, (byRole.get(k) ?? 0) + n / costs.length)
  const avg = (f: (c: ChangeCost) => number): number => costs.reduce((s, c) => s + f(c), 0) / costs.length
  return { byRole, inScripts: avg((c) => c.inScripts), heartbeats: costs.reduce((s, c) => s + c.heartbeats, 0), total: avg((c) => c.total) }
}

function costText (c: ChangeCost): string {
  const num = (x: number): string => Number.isInteger(x) ? String(x) : x.toFixed(1)
  const parts = [...c.byRole].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${num(n)}× ${k}`)
  return `${num(c.total)} top-level [${parts.join(', ')}] + ${num(c.inScripts)} inside scripts` +
    (c.heartbeats > 0 ? ` (${c.heartbeats} heartbeat(s) left out)` : '')
}

// ---- the plugin socket ----------------------------------------------------------------------------

/** RequestPool → RequestAddress (gateway) → CreateNetwork with -o ferry.overlay, as `docker network create` sends them; times CreateNetwork. */
async function createOverlayThroughPlugin (c: PluginClient, overlay: string, subnet: string): Promise<{ networkId: string, poolId: string, sentAt: number, repliedAt: number }> {
  const spaces = await c.call('IpamDriver.GetDefaultAddressSpaces', {})
  const space = String(spaces.body.LocalDefaultAddressSpace ?? 'LocalDefault')
  const pool = await c.call('IpamDriver.RequestPool', { AddressSpace: space, Pool: subnet, SubPool: '', Options: {}, V6: false })
  const poolId = String(pool.body.PoolID)
  const gw = await c.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  const networkId = engineId()
  const sentAt = performance.now()
  await c.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'ferry.overlay': overlay } },
    IPv4Data: [{ AddressSpace: space, Pool: subnet, Gateway: String(gw.body.Address) }],
    IPv6Data: [],
  })
  return { networkId, poolId, sentAt, repliedAt: performance.now() }
}

async function waitSynced (agent: Agent, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const r = await agent.cli(['cluster', 'status', '--json'])
    if (r.code === 0 && (JSON.parse(r.stdout) as { peers?: { synced?: boolean } }).peers?.synced === true) return
    await sleep(100)
  }
  throw new Error(`agent ${agent.pluginName} did not sync with the cluster within ${timeoutMs} ms`)
}

/**
 * What the agent computes for every single change: one PeerPlanner upsert (or
 * removal) among `n` peers; µs per change, median of 7 runs of 100, in this process.
 */
function plannerCostUs (n: number): number {
  const devices = overlayDevices({ name: SCALE_OVERLAY, vni: 4096, subnet: SCALE_SUBNET, gateway: SCALE_GATEWAY }, { vtep: FRESH_IP, mtu: 1500 })
  const ipOf = (i: number): string => `10.${60 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`
  const peer = (i: number, h = i % HOSTS_MAX): RemotePeer => ({ endpointId: `f${h}e${i}`, hostId: fakeHostId(h), ip: ipOf(i), mac: macOf(ipOf(i)), vtep: fakeVtep(h) })
  const planner = new PeerPlanner(devices, { hostId: 'fresh', vtep: FRESH_IP })
  planner.reset(Array.from({ length: n }, (_, i) => peer(i)))
  const runs: number[] = []
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now()
    for (let k = 0; k < 50; k++) { planner.upsert(peer(n + k)); planner.remove(peer(n + k).endpointId) }
    runs.push((performance.now() - t0) * 1000 / 100)
  }
  return median(runs)
}

// ---- phase 1: scale -------------------------------------------------------------------------------

interface ChangeResult {
  label: string
  publish: ChangeCost
  withdraw: ChangeCost
  /** ms from each publish call to the peer in the fresh agent's kernel, and from each withdraw to its removal. */
  added: number[]
  removed: number[]
  /** ms from each change's call to the kernel's answer to the agent (its debug log), every change; NaN where unmatched. */
  answered: number[]
  publisherCommands: number
}

interface ScaleResult {
  peers: number
  hosts: number
  /** The agent with every peer programmed: VmRSS and VmHWM (KiB). */
  rssKiB: number
  hwmKiB: number
  /** Redis used_memory added by the seed, per endpoint (bytes). */
  redisBytesPerEndpoint: number
  seedMs: number
  joinReplyMs: number
  join: { ms: number, source: Source }
  rebuildReadyMs: number
  rebuild: { ms: number, source: Source }
  /** From killing Redis (restarted with its data) to the agent's next full reconcile after its full read. */
  redisRestartMs: number
  changes: ChangeResult[]
  /** Size of one full read of the overlay's endpoints (what every agent's DNS does per change). */
  endpointsReadBytes: number
  plannerUs: number
}

/** `--churn-cycles N`: publish/withdraw cycles of the single-change measure (2 N changes; p99 of 40 is their maximum). */
const CHURN_CYCLES = argInt('churn-cycles', 20)
const CHURN_GAP_MS = 300
/** A change over this is accounted for one by one (the goal: ≤ 20 ms p99 at 100,000 endpoints). */
const CHANGE_GOAL_MS = 20

/**
 * CHURN_CYCLES publish/withdraw cycles by a fake host: Redis commands per change (MONITOR) and the fresh agent's kernel;
 * where each change's time went (bench/changes.ts), from the agent's log after `offset` and its schedstat.
 */
async function measureChanges (t: Teardowns, label: string, ulNs: string, port: number, watch: KernelWatch, agent: Agent): Promise<ChangeResult> {
  const scope = t.scope()
  try {
    const monitor = redisMonitor(scope, ulNs, port)
    await sleep(300)
    const offset = agent.logs().length
    const spec: ChurnSpec = { url: `redis://${REDIS_IP}:${port}`, cycles: CHURN_CYCLES, gapMs: CHURN_GAP_MS, ...(agent.pid() === undefined ? {} : { agentPid: agent.pid() }) }
    const c = await runSelf<ChurnResult>(ulNs, '--churn', spec, 60_000 + 2 * CHURN_CYCLES * CHURN_GAP_MS)
    await sleep(200)
    const roleOf = (client: string): string => client.startsWith(`${FRESH_IP}:`) ? 'agent' : client.startsWith(`${REDIS_IP}:`) ? 'publisher' : client
    const publishes = c.cycles.map((x) => changeCost(monitor, x.publishAt, x.withdrawAt, roleOf))
    const withdraws = c.cycles.map((x, i) => changeCost(monitor, x.withdrawAt, c.cycles[i + 1]?.publishAt ?? c.endAt, roleOf))
    const added = c.cycles.map((x) => (watch.next(CHURN_IP, true, perfOf(x.publishAt)) ?? NaN) - perfOf(x.publishAt))
    const removed = c.cycles.map((x) => (watch.next(CHURN_IP, false, perfOf(x.withdrawAt)) ?? NaN) - perfOf(x.withdrawAt))
    // Where each change's time went.
    const { deltas, gcs, fulls, repairs } = parseAgentLog(agent.logs().slice(offset))
    const windows: ChangeWindow[] = c.cycles.flatMap((x, i) => [
      { startAt: x.publishAt, ackAt: x.publishedAt, seenAt: x.publishAt + (added[i] ?? NaN), ...sched(x.publishSched, x.withdrawSched) },
      { startAt: x.withdrawAt, ackAt: x.withdrawnAt, seenAt: x.withdrawAt + (removed[i] ?? NaN), ...sched(x.withdrawSched, c.cycles[i + 1]?.publishSched ?? c.endSched) },
    ])
    const accounts = accountChanges(windows, deltas, gcs, fulls, repairs)
    const answered = accounts.map((a) => a.answeredMs)
    const result = { label, publish: meanCost(publishes), withdraw: meanCost(withdraws), added, removed, answered, publisherCommands: c.commandsPerChange }
    console.log(`${label}: publish = ${costText(result.publish)}; withdraw = ${costText(result.withdraw)} (means over ${CHURN_CYCLES}); ` +
      `in the kernel after the publish call p50 ${ms(median(added))} ms (max ${ms(Math.max(...added))}), removed after the withdraw p50 ${ms(median(removed))} ms (max ${ms(Math.max(...removed))})`)
    const ok = answered.filter(Number.isFinite)
    console.log(`  the kernel's answer to the agent (the entry in), from each call: p50 ${ms(quantile(ok, 0.5))} ms, p99 ${ms(quantile(ok, 0.99))} ms, max ${ms(Math.max(...ok))} (${ok.length} of ${answered.length} changes matched in its log)`)
    const med = medianAccount(accounts)
    if (med) console.log(`  per change, medians of ${accounts.filter((a) => a.matched).length} of ${accounts.length}: ${accountText(med)}`)
    const over = accounts.filter((a) => !(a.totalMs <= CHANGE_GOAL_MS)).sort((a, b) => b.totalMs - a.totalMs)
    console.log(`  changes over ${CHANGE_GOAL_MS} ms: ${over.length} of ${accounts.length}${over.length === 0 ? '' : `; the slowest ${Math.min(10, over.length)}:`}`)
    for (const a of over.slice(0, 10)) console.log(`    ${accountText(a)}`)
    const behind = accounts.filter((a) => a.behind !== undefined)
    if (repairs.length > 0) {
      console.log(`  periodic repairs of the agent during the changes (every 60 s: its kernel read in a worker thread, index and diff outside the lock): ${repairs.length}, ` +
        `${repairs.map((r) => `${ms(r.ms)} ms (kernel read ${ms(r.readMs)})`).join(', ')}; ${accounts.filter((a) => a.during !== undefined).length} change(s) during one`)
    }
    if (fulls.length > 0) {
      console.log(`  full reconciles of the agent during the changes (its periodic repair, every 60 s: the kernel read back, a full plan and diff, under the overlay's lock): ${fulls.length}, ` +
        `${fulls.map((f) => `${ms(f.ms)} ms (kernel read ${ms(f.readMs)})`).join(', ')}; ${behind.length} change(s) ran into one, ` +
        `p99 without them ${ms(quantile(accounts.filter((a) => a.behind === undefined).map((a) => a.totalMs).filter(Number.isFinite), 0.99))} ms`)
    }
    const slowest = [...accounts].sort((a, b) => b.totalMs - a.totalMs).slice(0, 3)
    if (over.length === 0) for (const a of slowest) console.log(`    (slowest) ${accountText(a)}`)
    console.log(`  GC pauses of the agent during the changes: ${gcs.filter((g) => g.at >= (c.cycles[0]?.publishAt ?? 0) && g.at <= c.endAt).length}, ` +
      `the longest ${ms(Math.max(0, ...gcs.filter((g) => g.at >= (c.cycles[0]?.publishAt ?? 0) && g.at <= c.endAt).map((g) => g.ms)))} ms`)
    return result
  } finally {
    await scope.run()
  }
}

/** A window's schedstat pair, when both ends were read. */
function sched (s0: Sched | undefined, s1: Sched | undefined): { sched0?: Sched, sched1?: Sched } {
  return s0 && s1 ? { sched0: s0, sched1: s1 } : {}
}

/**
 * Where a bulk programming's time and memory went: the agent's debug lines of its full reads
 * ('cluster read in full') and full reconciles ('overlay full reconcile'), after `offset`.
 */
function printStages (agent: Agent, offset: number, label: string): void {
  const keep = ['readMs', 'loadMs', 'planMs', 'diffMs', 'applyMs', 'lockWaitMs', 'lockedMs', 'ops', 'dropped', 'missed', 'rssMiB', 'heapMiB', 'usedMiB', 'extMiB']
  for (const line of agent.logs().slice(offset).split('\n')) {
    if (!['"cluster read in full"', '"overlay full reconcile"', '"overlay repair"', '"cluster caught up"', 'the cluster store is back'].some((m) => line.includes(m))) continue
    try {
      const o = JSON.parse(line) as Record<string, unknown>
      console.log(`  ${label}: ${String(o.msg)} ${keep.filter((k) => o[k] !== undefined).map((k) => `${k} ${String(o[k])}`).join(', ')}`)
    } catch { /* not JSON */ }
  }
}

/**
 * What else the agent's full programming met, from `from` to `to` (performance.now() ms): its GC pauses (the probe's
 * lines after `offset`) and its main thread's time on a CPU and waiting for one (schedstat now, less `s0`; the agent is
 * idle once programmed, so the dumps that confirmed the end add nothing).
 */
function printProgrammingCost (agent: Agent, offset: number, s0: Sched | undefined, from: number, to: number, label: string): void {
  const s1 = schedstat(agent.pid())
  const gc = gcIn(parseAgentLog(agent.logs().slice(offset)).gcs, from + performance.timeOrigin, to + performance.timeOrigin)
  const cpu = s0 && s1 ? `ran ${ms((s1[0] - s0[0]) / 1e6)} ms, waited for a CPU ${ms((s1[1] - s0[1]) / 1e6)} ms` : 'CPU not read'
  console.log(`  ${label}: in ${ms(to - from)} ms the agent's main thread ${cpu}; GC ${ms(gc.ms)} ms in ${gc.count} pauses (longest ${ms(gc.longest)} ms)`)
}

/** VmRSS and VmHWM of a process, KiB (NaN when gone). */
function memoryOf (pid: number | undefined): { rss: number, hwm: number } {
  if (pid === undefined) return { rss: NaN, hwm: NaN }
  const status = sh(['cat', `/proc/${pid}/status`], { allowFailure: true })
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: field('VmRSS'), hwm: field('VmHWM') }
}

function redisUsedMemory (ns: string, port: number): number {
  const info = sh(['ip', 'netns', 'exec', ns, 'redis-cli', '-h', REDIS_IP, '-p', String(port), 'info', 'memory'])
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN)
}

/** When the agent logged (debug) a full reconcile that followed a full read, in its log after `offset` characters. */
function resyncedAt (agent: Agent, offset: number): number | undefined {
  let read = false
  for (const line of agent.logs().slice(offset).split('\n')) {
    if (line.includes('"cluster caught up"')) {
      // Back with the same history: the changes missed were applied as deltas, no full read (src/cluster/trail.ts).
      try { return perfOf(Date.parse((JSON.parse(line) as { time: string }).time)) } catch { /* not JSON */ }
    }
    if (line.includes('"cluster read in full"')) read = true
    else if (read && line.includes('"overlay full reconcile"')) {
      try { return perfOf(Date.parse((JSON.parse(line) as { time: string }).time)) } catch { /* not JSON */ }
    }
  }
  return undefined
}

/** SAVE, kill -9 and start Redis again from its dump; until the agent has read everything again and re-checked its kernel. */
async function redisRestart (agent: Agent, redis: RedisServer, watch: KernelWatch, peers: number): Promise<{ redisMs: number, resyncedMs: number, entries: number }> {
  redis.cli(['save'])
  const offset = agent.logs().length
  const t0 = performance.now()
  await redis.restart()
  const redisMs = performance.now() - t0
  const end = performance.now() + 120_000
  let at: number | undefined
  while ((at = resyncedAt(agent, offset)) === undefined) {
    if (performance.now() > end) throw new Error('the agent did not resync within 120 s of a Redis restart')
    await sleep(20)
  }
  const c = watch.dumpCounts()
  if (c.neigh < peers || c.fdb < peers) throw new Error(`after the Redis restart: ${c.neigh} neighbour and ${c.fdb} FDB entries (expected ${peers} each)`)
  return { redisMs, resyncedMs: at - t0, entries: Math.min(c.neigh, c.fdb) }
}

async function scalePhase (t: Teardowns, ul: Underlay, size: number): Promise<ScaleResult> {
  const hosts = Math.min(HOSTS_MAX, Math.max(1, Math.ceil(size / PER_HOST_MAX)))
  const perHost = Math.ceil(size / hosts)
  const peers = hosts * perHost
  const port = 6380
  const url = `redis://${REDIS_IP}:${port}`
  // Its dump goes to a directory of its own: the Redis restart below keeps the data (SAVE, kill -9, start from the dump).
  const redisDir = mkdtempSync(joinPath(tmpdir(), 'fyosc-redis-'))
  t.teardown(() => rmSync(redisDir, { recursive: true, force: true }))
  const redis = await redisServer(t, { ns: ul.ns, host: REDIS_IP, port, args: ['--dir', redisDir] })
  section(`scale: ${hosts} fake hosts × ${perHost} endpoints written to Redis, then a fresh agent`)
  const memBefore = redisUsedMemory(ul.ns, port)
  const seeded = await runSelf<SeedResult>(ul.ns, '--seed', { url, hosts, perHost } satisfies SeedSpec, 900_000)
  const redisBytesPerEndpoint = (redisUsedMemory(ul.ns, port) - memBefore) / peers
  const sumLengths = "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do n = n + #v end return n"
  const endpointsReadBytes = Number(sh(['ip', 'netns', 'exec', ul.ns, 'redis-cli', '-h', REDIS_IP, '-p', String(port), 'eval', sumLengths, '1', `ferry:overlay:${SCALE_OVERLAY}:eps`]).trim())
  console.log(`seeded ${seeded.endpoints} endpoints in ${ms(seeded.ms)} ms through the ClusterStore (${seeded.commands} commands, ${(seeded.commands / seeded.endpoints).toFixed(2)} per endpoint incl. address allocation)`)

  const ns = netns(t, 'fyosc')
  ul.attach(ns, FRESH_IP)
  const watch = new KernelWatch(t, ns, SCALE_PREFIX)
  // The state directory outlives each agent process, so the same host can start again with other flags.
  const stateDir = mkdtempSync(joinPath(tmpdir(), 'fyosc-state-'))
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }))
  const fresh = (extra: string[]): Promise<Agent> => startAgent(t, {
    ns,
    pluginName: `fyosc${process.pid}`,
    stateDir,
    dockerHost: 'unix:///run/ferry-bench-no-engine.sock',
    args: ['--cluster', url, '--advertise-addr', FRESH_IP, '--host-id', 'fresh', ...extra],
    nodeArgs: ['--import', GC_PROBE, ...AGENT_NODE_ARGS, ...(CPU_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(CPU_PROF)])],
  })
  let agent = await fresh([])
  await waitSynced(agent, 30_000)
  const client = new PluginClient(agent.pluginSocket)
  t.teardown(() => client.close())

  // a. join
  let offset = agent.logs().length
  const joinSched = schedstat(agent.pid())
  const join = await createOverlayThroughPlugin(client, SCALE_OVERLAY, SCALE_SUBNET)
  const joined = await watch.waitFor(peers, 300_000, () => programmedAt(agent, offset, peers))
  const joinReplyMs = join.repliedAt - join.sentAt
  console.log(`join: CreateNetwork answered in ${ms(joinReplyMs)} ms; ${peers} peers in the kernel ${ms(joined.at - join.sentAt)} ms after it was sent (end seen by: ${joined.source})`)
  printStages(agent, 0, 'start and join')
  printProgrammingCost(agent, offset, joinSched, join.sentAt, joined.at, 'join')

  // b. rebuild after a "reboot": kill -9, delete the overlay's devices, start again
  await agent.kill('SIGKILL')
  const devices = ipJson<Array<{ ifname: string, linkinfo?: { info_kind?: string } }>>(ns, ['-d', 'link'])
    .filter((l) => l.ifname.startsWith('fy') && ['vxlan', 'bridge'].includes(l.linkinfo?.info_kind ?? ''))
  for (const d of devices) sh(['ip', '-n', ns, 'link', 'del', d.ifname])
  if (watch.dumpCounts().neigh !== 0) throw new Error('peer entries left after deleting the overlay devices')
  watch.reset()
  offset = agent.logs().length
  const restartAt = performance.now()
  await agent.restart()
  const readyAt = performance.now()
  const rebuilt = await watch.waitFor(peers, 300_000, () => programmedAt(agent, offset, peers))
  console.log(`rebuild: agent started (plugin socket answering) in ${ms(readyAt - restartAt)} ms; ${peers} peers in the kernel ${ms(rebuilt.at - restartAt)} ms after the start (end seen by: ${rebuilt.source})`)
  printStages(agent, offset, 'rebuild')
  printProgrammingCost(agent, offset, [0, 0], restartAt, rebuilt.at, 'rebuild (from the agent\'s start)')
  await waitSynced(agent, 60_000)

  // c. single changes at this scale, with the agent as configured by default (its DNS on)
  const changes = [await measureChanges(t, 'one change (agent as configured by default)', ul.ns, port, watch, agent)]
  const st = JSON.parse((await agent.cli(['cluster', 'status', '--json'])).stdout) as { commands?: number }
  console.log(`the fresh agent's own command counter (ferry cluster status --json → commands): ${st.commands ?? '?'} since its last start`)
  // d. memory, with every peer programmed and its names in the DNS records
  const mem = memoryOf(agent.pid())
  console.log(`agent memory with ${peers} remote endpoints: VmRSS ${(mem.rss / 1024).toFixed(0)} MiB (peak ${(mem.hwm / 1024).toFixed(0)} MiB); ` +
    `Redis ${redisBytesPerEndpoint.toFixed(0)} bytes per endpoint`)
  // e. a Redis restart that keeps its data: the agent reconnects, reads the cluster in full again and re-checks its kernel
  const restartOffset = agent.logs().length
  const restart = await redisRestart(agent, redis, watch, peers)
  printStages(agent, restartOffset, 'Redis restart')
  console.log(`Redis restart (data kept): answering again ${ms(restart.redisMs)} ms after the kill; the agent had re-read ${peers} endpoints and ` +
    `re-checked its kernel ${ms(restart.resyncedMs)} ms after the kill (${restart.entries} entries still programmed)`)
  // The agent's peak over its whole run (its periodic full reconcile reads 2 entries per peer back from its kernel: `--hold`)
  const holdOffset = agent.logs().length
  if (HOLD_S > 0) await sleep(HOLD_S * 1000)
  printStages(agent, holdOffset, 'hold')
  const end = memoryOf(agent.pid())
  console.log(`agent memory at the end (${((performance.now() - restartAt) / 1000).toFixed(0)} s after its start, ${HOLD_S} s after the Redis restart's resync): ` +
    `VmRSS ${(end.rss / 1024).toFixed(0)} MiB (peak ${(end.hwm / 1024).toFixed(0)} MiB)`)

  await agent.destroy()
  return {
    peers, hosts, rssKiB: mem.rss, hwmKiB: mem.hwm, redisBytesPerEndpoint,
    seedMs: seeded.ms, joinReplyMs, join: { ms: joined.at - join.sentAt, source: joined.source },
    rebuildReadyMs: readyAt - restartAt, rebuild: { ms: rebuilt.at - restartAt, source: rebuilt.source }, redisRestartMs: restart.resyncedMs, changes, endpointsReadBytes,
    plannerUs: plannerCostUs(peers),
  }
}

// ---- phase 5: a Sentinel failover ------------------------------------------------------------------

const SENTINEL_IP = '192.0.2.21'
const SENTINEL_MASTER = 'fy'
const WRITERS = 3
const WRITE_GAP_MS = 50

interface SentinelLab { servers: RedisServer[], sentinels: number[], url: string }

/** Three redis-server (a primary, two replicas) and three sentinels on free ports in namespace `ns`, all killed and their files removed on teardown. */
async function sentinelLab (t: Teardowns, ns: string): Promise<SentinelLab> {
  const dir = mkdtempSync(joinPath(tmpdir(), 'fyose-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Each server keeps its replication dump in the scratch directory, never where a later redis-server would load it.
  const own = (name: string): string[] => ['--dir', dir, '--dbfilename', `${name}.rdb`]
  const primary = await redisServer(t, { ns, host: REDIS_IP, port: await freePort(), args: own('primary') })
  const servers = [primary]
  for (const name of ['replica1', 'replica2']) {
    servers.push(await redisServer(t, { ns, host: REDIS_IP, port: await freePort(), args: [...own(name), '--replicaof', REDIS_IP, String(primary.port)] }))
  }
  const cli = (port: number, args: string[]): string => sh(['ip', 'netns', 'exec', ns, 'redis-cli', '-h', REDIS_IP, '-p', String(port), ...args], { allowFailure: true })
  await until('both replicas in sync', () => /connected_slaves:2/.test(primary.cli(['info', 'replication'])))
  const sentinels: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const conf = joinPath(dir, `sentinel${i}.conf`)
    writeFileSync(conf, `port ${port}\nbind ${REDIS_IP}\nprotected-mode no\ndir ${dir}\nsentinel monitor ${SENTINEL_MASTER} ${REDIS_IP} ${primary.port} 2\n` +
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${DOWN_AFTER_MS}\nsentinel failover-timeout ${SENTINEL_MASTER} 3000\nsentinel parallel-syncs ${SENTINEL_MASTER} 2\n`)
    // `ip netns exec` execs redis-server itself: the child is the sentinel.
    const proc = spawn('ip', ['netns', 'exec', ns, 'redis-server', conf, '--sentinel'], { stdio: 'ignore' })
    t.teardown(() => { proc.kill('SIGKILL') })
    await until(`sentinel ${i} to answer`, () => {
      if (proc.exitCode !== null) throw new Error(`sentinel ${i} exited (${proc.exitCode})`)
      return cli(port, ['ping']).trim() === 'PONG'
    })
    sentinels.push(port)
  }
  await until('the sentinels to know each other', () => sentinels.every((p) => /num-other-sentinels\n2\n/.test(cli(p, ['sentinel', 'master', SENTINEL_MASTER]))))
  return { servers, sentinels, url: `sentinel://${sentinels.map((p) => `${REDIS_IP}:${p}`).join(',')}/${SENTINEL_MASTER}?wait=1` }
}

/** Poll `check` every 50 ms up to 40 s (a thrown error ends the wait). */
async function until (what: string, check: () => boolean): Promise<void> {
  const end = performance.now() + 40_000
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

interface SentinelResult {
  /** The first of each sentinel event after the kill (ms after it), up to just after +switch-master. */
  events: Array<{ name: string, ms: number }>
  peers: number
  /** ms from the SIGKILL of the primary. */
  switchMs: number
  writersMs: number[]
  agentWriteMs: number
  /** The plugin's error when the agent's request right after the kill was refused. */
  agentWriteError?: string
  resyncedMs: number
  acked: number
  failed: number
  lostAtOnce: number
  lostAfter: number
  kernel: { entries: number, expected: number }
}

async function sentinelPhase (t: Teardowns, ul: Underlay): Promise<SentinelResult> {
  const peers = SENTINEL_ENDPOINTS
  const hosts = Math.min(HOSTS_MAX, Math.max(1, Math.ceil(peers / PER_HOST_MAX)))
  const perHost = Math.ceil(peers / hosts)
  section(`Sentinel failover: 3 redis-server + 3 sentinels (down-after ${DOWN_AFTER_MS} ms), ${hosts * perHost} endpoints, a fresh agent and ${WRITERS} writers through sentinel://…?wait=1`)
  const lab = await sentinelLab(t, ul.ns)
  const [primary] = lab.servers as [RedisServer, ...RedisServer[]]
  const seeded = await runSelf<SeedResult>(ul.ns, '--seed', { url: `redis://${REDIS_IP}:${primary.port}`, hosts, perHost } satisfies SeedSpec, 900_000)
  primary.cli(['wait', '2', '60000'])
  console.log(`seeded ${seeded.endpoints} endpoints in ${ms(seeded.ms)} ms on the primary (port ${primary.port}); replicas on ${lab.servers.slice(1).map((s) => s.port).join(', ')}, sentinels on ${lab.sentinels.join(', ')}`)

  const ns = netns(t, 'fyose')
  ul.attach(ns, SENTINEL_IP)
  const watch = new KernelWatch(t, ns, SCALE_PREFIX)
  const stateDir = mkdtempSync(joinPath(tmpdir(), 'fyose-state-'))
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }))
  const agent = await startAgent(t, {
    ns, pluginName: `fyose${process.pid}`, stateDir, dockerHost: 'unix:///run/ferry-bench-no-engine.sock',
    args: ['--cluster', lab.url, '--advertise-addr', SENTINEL_IP, '--host-id', 'sentinelagent'],
  })
  await waitSynced(agent, 60_000)
  const client = new PluginClient(agent.pluginSocket)
  t.teardown(() => client.close())
  const offset0 = agent.logs().length
  const join = await createOverlayThroughPlugin(client, SCALE_OVERLAY, SCALE_SUBNET)
  const joined = await watch.waitFor(seeded.endpoints, 300_000, () => programmedAt(agent, offset0, seeded.endpoints))
  console.log(`the agent programmed ${seeded.endpoints} peers ${ms(joined.at - join.sentAt)} ms after CreateNetwork (end seen by: ${joined.source})`)

  // Every sentinel's events as they arrive (where the time to +switch-master goes), the first +switch-master among them.
  let switchAt: number | undefined
  let switchedTo = ''
  const events: SentinelEvent[] = []
  for (const port of lab.sentinels) {
    streamLines(t, ['ip', 'netns', 'exec', ul.ns, 'redis-cli', '-h', REDIS_IP, '-p', String(port), 'psubscribe', '*'], sentinelEventReader((e) => {
      events.push(e)
      const sw = e.name === '+switch-master' ? parseSwitchMaster(e.payload, SENTINEL_MASTER) : undefined
      if (sw !== undefined && switchAt === undefined) { switchAt = e.at; switchedTo = sw.to }
    }))
  }
  const epsKey = `ferry:overlay:${SCALE_OVERLAY}:eps`
  const writing = runSelf<WritersResult>(ul.ns, '--writers', { url: lab.url, writers: WRITERS, gapMs: WRITE_GAP_MS, durationMs: 20_000 } satisfies WritersSpec, 120_000)
  writing.catch(() => undefined) // awaited below; a failure before that is this phase's own
  // Kill once every writer has published (its first endpoint is on the primary).
  await until('the writers to publish', () => Array.from({ length: WRITERS }, (_, i) => `w${i}e0`).every((id) => primary.cli(['hexists', epsKey, id]).trim() === '1'))
  await sleep(500)

  const offset = agent.logs().length
  const killAt = performance.now()
  const killUnix = Date.now()
  await primary.kill()
  // A refusal is a figure too (the engine would have reported it): its time and its error, not the end of the phase.
  let agentWriteError: string | undefined
  const agentWrite = client.call('IpamDriver.RequestAddress', { PoolID: join.poolId, Address: '', Options: {} })
    .then(() => performance.now() - killAt, (err: unknown) => { agentWriteError = (err as Error).message; return performance.now() - killAt })
  let resyncAt: number | undefined
  const end = performance.now() + 120_000
  while ((resyncAt = resyncedAt(agent, offset)) === undefined) {
    if (performance.now() > end) throw new Error('the agent did not resync within 120 s of the failover')
    await sleep(20)
  }
  const agentWriteMs = await agentWrite
  const w = await writing
  if (switchAt === undefined) throw new Error('no sentinel announced +switch-master')
  const [newIp, newPort] = switchedTo.split(':') as [string, string]
  const onNew = (args: string[]): string => sh(['ip', 'netns', 'exec', ul.ns, 'redis-cli', '-h', newIp, '-p', newPort, ...args])
  const present = (): Set<string> => new Set(onNew(['hkeys', epsKey]).split('\n').filter(Boolean))
  const acked = w.ops.filter((o) => o.ackAt !== undefined)
  const lostAtOnce = lostEndpoints(w.ops, present()).length
  let lostAfter = lostAtOnce
  for (const stop = performance.now() + 15_000; lostAfter > 0 && performance.now() < stop; await sleep(200)) lostAfter = lostEndpoints(w.ops, present()).length
  // The kernel against the new primary, once the writers stopped: every endpoint there, no other.
  const expected = present().size
  let entries = 0
  for (const stop = performance.now() + 30_000; performance.now() < stop; await sleep(200)) {
    const c = watch.dumpCounts()
    entries = Math.min(c.neigh, c.fdb)
    if (c.neigh === expected && c.fdb === expected) break
  }
  printStages(agent, offset, 'Sentinel failover')
  const sentinelEvents = firstEvents(events, killAt).filter((e) => e.ms <= switchAt! - killAt + 500)
  const result: SentinelResult = {
    events: sentinelEvents,
    peers: seeded.endpoints, switchMs: switchAt - killAt, writersMs: writesAgainAfter(w.ops, killUnix, Array.from({ length: WRITERS }, (_, i) => writerId(i))),
    agentWriteMs, agentWriteError, resyncedMs: resyncAt - killAt, acked: acked.length, failed: w.errors.length, lostAtOnce, lostAfter, kernel: { entries, expected },
  }
  for (const e of w.errors.slice(0, 5)) console.log(`  refused: ${e}`)
  console.log(`failover: +switch-master to ${switchedTo} ${ms(result.switchMs)} ms after the SIGKILL; writers wrote again after ${result.writersMs.map(ms).join(', ')} ms, ` +
    `the agent (RequestAddress) ${agentWriteError === undefined ? 'after' : `REFUSED (${agentWriteError}) after`} ${ms(agentWriteMs)} ms; the agent resynced ${ms(result.resyncedMs)} ms after the kill`)
  await agent.destroy()
  return result
}

function sentinelSummary (s: SentinelResult, rows: readonly ScaleResult[]): string[] {
  const restart = rows.find((r) => r.peers === s.peers)
  return [
    `Sentinel failover at ${s.peers} endpoints (down-after ${DOWN_AFTER_MS} ms), from the SIGKILL of the primary: +switch-master ${ms(s.switchMs)} ms; ` +
      `every writer's next change acknowledged ${ms(Math.max(...s.writersMs))} ms (${s.writersMs.map(ms).join(', ')}), the agent's ${s.agentWriteError === undefined ? '' : 'REFUSED: '}${ms(s.agentWriteMs)} ms; ` +
      `the agent up to date again (caught up from the change log, or a full read + full reconcile) ${ms(s.resyncedMs)} ms (goal ≤ 2 s: ${goal(s.resyncedMs <= 2000)}); ` +
      `its kernel ${s.kernel.entries === s.kernel.expected ? 'matches' : 'does NOT match'} the new primary (${s.kernel.entries} of ${s.kernel.expected} endpoints)`,
    `Sentinel failover: ${s.acked} changes acknowledged by ${WRITERS} writers (${s.failed} refused); acknowledged endpoints missing on the new primary: ${s.lostAtOnce} at once, ${s.lostAfter} after re-assertion`,
    `Sentinel failover: sentinel events after the kill: ${s.events.map((e) => `${e.name} ${ms(e.ms)}`).join(', ')}`,
    restart === undefined
      ? `(no Redis-restart figure at ${s.peers} endpoints in this run: add --phases scale --sizes ${s.peers})`
      : `against a Redis restart that keeps its data, same run and size: the agent resynced ${ms(restart.redisRestartMs)} ms after the kill`,
  ]
}

// ---- phase 2: two hosts with engines ----------------------------------------------------------------

interface Host { name: string, ns: string, ip: string, d: Dockerd, agent: Agent, plugin: string }

async function startHost (t: Teardowns, ul: Underlay, i: number, url: string, overlays: readonly Overlay[] = OVERLAYS): Promise<Host> {
  const ns = netns(t, `fyoh${i}`)
  const ip = `192.0.2.1${i}`
  ul.attach(ns, ip)
  const d = await startDockerd(t, { ns })
  await ensureBusyboxImage(d)
  const plugin = `fyob${i}x${process.pid}`
  const agent = await startAgent(t, { ns, pluginName: plugin, dockerd: d, args: ['--cluster', url, '--advertise-addr', ip, '--host-id', `h${i}`] })
  for (const ov of overlays) await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', ov.subnet, '-o', `ferry.overlay=${ov.net}`, ...ov.opts, ov.net])
  return { name: `h${i}`, ns, ip, d, agent, plugin }
}

interface Probe { replyAt: Promise<number>, stop (): void }

/**
 * Ping `ip` every PROBE_MS from the probe's namespace until the first echo reply
 * (resolves its arrival time) or `timeoutMs`. busybox ping is restarted if it exits.
 */
function probe (t: Teardowns, pid: number, ip: string, timeoutMs: number): Probe {
  let stopped = false
  let child: ChildProcess | undefined
  const replyAt = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { stopped = true; child?.kill('SIGKILL'); reject(new Error(`no echo reply from ${ip} within ${timeoutMs} ms`)) }, timeoutMs)
    const start = (): void => {
      if (stopped) return
      child = streamLines(t, ['nsenter', '-t', String(pid), '-n', 'busybox', 'ping', '-i', String(PROBE_MS / 1000), '-W', '1', ip], (line, at) => {
        if (!line.includes('bytes from')) return
        clearTimeout(timer)
        stopped = true
        child?.kill('SIGKILL')
        resolve(at)
      })
      child.once('exit', () => { if (!stopped) setTimeout(start, PROBE_MS) })
    }
    start()
  })
  return { replyAt, stop: () => { stopped = true; child?.kill('SIGKILL') } }
}

interface ConvergenceResult { reply: number[], kernel: number[], run: number[], execMs: number }

async function convergence (t: Teardowns, h1: Host, h2: Host, ov: Overlay): Promise<ConvergenceResult> {
  section(`convergence, ${ov.label}: docker run -d on ${h1.name} → first echo reply on ${h2.name} (${CONTAINERS} containers after ${WARMUP} warm-up)`)
  const probeName = `probe-${ov.net}`
  await h2.d.dockerOk(['run', '-d', '--net', ov.net, '--name', probeName, 'bb', 'sleep', '3600'])
  const pid = await h2.d.pidOf(probeName)
  // The probe's own ARP retries: 10 ms instead of 1 s (inside the probe container's namespace only).
  sh(['nsenter', '-t', String(pid), '-n', 'sysctl', '-q', '-w', 'net.ipv4.neigh.eth0.retrans_time_ms=10'])
  const execRuns: number[] = []
  for (let i = 0; i < 5; i++) execRuns.push((await timed(() => h2.d.dockerOk(['exec', probeName, 'true']))).ms)

  const watch = new KernelWatch(t, h2.ns, `${ov.prefix}.`)
  const reply: number[] = []
  const kernel: number[] = []
  const run: number[] = []
  for (let i = 0; i < WARMUP + CONTAINERS; i++) {
    const ip = `${ov.prefix}.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`
    const p = probe(t, pid, ip, 15_000)
    const t0 = performance.now()
    const r = await h1.d.docker(['run', '-d', '--net', ov.net, '--ip', ip, '--name', `cv-${ov.net}-${i}`, 'bb', 'sleep', '3600'])
    const returnedAt = performance.now()
    if (r.code !== 0) { p.stop(); throw new Error(`docker run cv-${ov.net}-${i} on ${h1.name} failed: ${r.stderr}`) }
    const at = await p.replyAt
    if (i < WARMUP) continue
    run.push(returnedAt - t0)
    reply.push(at - returnedAt)
    const k = watch.neigh.get(ip)
    kernel.push(k === undefined ? NaN : k - returnedAt)
  }
  return { reply, kernel, run, execMs: median(execRuns) }
}

// ---- phase 3: throughput ---------------------------------------------------------------------------

/** Counts the bytes of each connection; answers the count when the client ends; exits after 120 s in any case. */
const TP_SERVER = `
const net = require('net'); const [host, port] = [process.argv[1], Number(process.argv[2])];
setTimeout(() => process.exit(0), 120000).unref();
const srv = net.createServer((s) => { let n = 0; s.on('data', (b) => { n += b.length }); s.on('end', () => s.end(String(n))); s.on('error', () => {}) });
srv.listen(port, host, () => console.log('ready'));`

/** Sends for N seconds, then ends; prints {bytes, ms} once the server confirmed the count (bounded by a timeout). */
const TP_CLIENT = `
const net = require('net'); const [host, port, secs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const buf = Buffer.alloc(256 * 1024, 97); let sent = 0; let stop = false; const t0 = process.hrtime.bigint();
const s = net.connect(port, host, () => { const pump = () => { while (!stop) { sent += buf.length; if (!s.write(buf)) { s.once('drain', pump); return } } }; pump() });
setTimeout(() => { stop = true; s.end() }, secs * 1000);
let reply = ''; s.on('data', (b) => { reply += b });
s.on('end', () => { console.log(JSON.stringify({ bytes: Number(reply), sent, ms: Number(process.hrtime.bigint() - t0) / 1e6 })); process.exit(0) });
s.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1) });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(1) }, secs * 1000 + 20000).unref();`

/** Start the counting server with `enter` (argv prefix into a namespace); resolves when it listens. */
async function tpServer (t: Teardowns, enter: string[], host: string): Promise<void> {
  await startServer(t, enter, TP_SERVER, host, TP_PORT)
}

/** Mbit/s of one bounded transfer from the client namespace to host:TP_PORT. */
async function tpTransfer (enter: string[], host: string, seconds: number): Promise<number> {
  const r = await execFile([...enter, ...NODE, '-e', TP_CLIENT, host, String(TP_PORT), String(seconds)], { timeoutMs: seconds * 1000 + 30_000, allowFailure: true })
  const out = JSON.parse(r.stdout.trim() || '{}') as { bytes?: number, ms?: number, error?: string }
  if (out.bytes === undefined || out.ms === undefined || out.error !== undefined) throw new Error(`transfer to ${host} failed: ${out.error ?? r.stderr}`)
  return out.bytes * 8 / 1e6 / (out.ms / 1000)
}

/** Echoes everything on port argv[2] (address argv[1]); exits after 5 minutes in any case. */
const ECHO_SERVER = `
const net = require('net');
setTimeout(() => process.exit(0), 300000).unref();
net.createServer((s) => { s.setNoDelay(true); s.on('error', () => {}); s.pipe(s) }).listen(Number(process.argv[2]), process.argv[1], () => console.log('ready'));`

/** argv[3] round trips of 64 bytes, one at a time, after 50 unmeasured; prints {us: [...]}, or {error}. */
const LAT_CLIENT = `
const net = require('net'); const [host, port, n] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const msg = Buffer.alloc(64, 98); const us = []; let i = -50; let got = 0; let t0 = 0n;
const s = net.connect(port, host, () => { s.setNoDelay(true); t0 = process.hrtime.bigint(); s.write(msg) });
s.on('data', (b) => { got += b.length; if (got < 64) return; got -= 64;
  if (i >= 0) us.push(Number(process.hrtime.bigint() - t0) / 1000);
  if (++i >= n) { console.log(JSON.stringify({ us })); process.exit(0) }
  t0 = process.hrtime.bigint(); s.write(msg) });
s.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1) });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(1) }, 60000).unref();`

/**
 * 64 bytes every argv[3] ms for argv[4] s, each echoed; prints the longest time between two arrivals of echoed
 * data ({maxGapMs, echoes, sent, error?}): a stall of the stream. Ends with an error on a reset.
 */
const STALL_CLIENT = `
const net = require('net'); const [host, port, every, secs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const msg = Buffer.alloc(64, 99); let sent = 0; let bytes = 0; let last = 0; let maxGap = 0; let timer;
const done = (error) => { clearInterval(timer); console.log(JSON.stringify({ maxGapMs: maxGap, echoes: Math.floor(bytes / 64), sent, error })); process.exit(error ? 1 : 0) };
const s = net.connect(port, host, () => { s.setNoDelay(true); last = performance.now(); timer = setInterval(() => { s.write(msg); sent++ }, every);
  setTimeout(() => { clearInterval(timer); setTimeout(() => done(bytes >= sent * 64 ? undefined : 'echoes missing'), 3000) }, secs * 1000) });
s.on('data', (b) => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; bytes += b.length });
s.on('error', (e) => done(String(e)));`

/** Start node code `code` (argv: host, port) with `enter` (argv prefix into a namespace); resolves when it prints 'ready'. */
async function startServer (t: Teardowns, enter: string[], code: string, host: string, port: number): Promise<void> {
  const child = spawn(enter[0]!, [...enter.slice(1), ...NODE, '-e', code, host, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server on ${host}:${port} did not start`)), 15_000)
    child.stdout.on('data', (b: Buffer) => { if (b.toString().includes('ready')) { clearTimeout(timer); resolve() } })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the server on ${host}:${port} exited (${code})`)) })
  })
}

/** Run node client code in a namespace; its stdout's JSON, or an error with what it said. */
async function runClient<T extends { error?: string }> (enter: string[], code: string, args: Array<string | number>, timeoutMs: number): Promise<T> {
  const r = await execFile([...enter, ...NODE, '-e', code, ...args.map(String)], { timeoutMs, allowFailure: true })
  const out = JSON.parse(r.stdout.trim() || '{}') as T
  if (out.error !== undefined || r.code !== 0) throw new Error(`${args.slice(0, 2).join(':')}: ${out.error ?? r.stderr}`)
  return out
}

/** One path of the throughput and latency phase: how to enter the server's and the client's namespaces, and the server's address. */
interface Path { label: string, inSrv: string[], inCli: string[], srvIp: string, mtu: number }

interface PathResult { label: string, mbit: number[], latUs: number[], mtu: number }

/** The paths: the underlay (host namespaces), then each overlay between two containers made for it. */
async function paths (h1: Host, h2: Host, overlays: readonly Overlay[]): Promise<Path[]> {
  const out: Path[] = [{ label: 'underlay (host ns → host ns)', inSrv: ['ip', 'netns', 'exec', h1.ns], inCli: ['ip', 'netns', 'exec', h2.ns], srvIp: h1.ip, mtu: NaN }]
  for (const ov of overlays) {
    await h1.d.dockerOk(['run', '-d', '--net', ov.net, '--name', `tpsrv-${ov.net}`, 'bb', 'sleep', '3600'])
    await h2.d.dockerOk(['run', '-d', '--net', ov.net, '--name', `tpcli-${ov.net}`, 'bb', 'sleep', '3600'])
    const srvIp = (await h1.d.dockerOk(['inspect', '-f', `{{.NetworkSettings.Networks.${ov.net}.IPAddress}}`, `tpsrv-${ov.net}`])).trim()
    const inSrv = ['nsenter', '-t', String(await h1.d.pidOf(`tpsrv-${ov.net}`)), '-n']
    const inCli = ['nsenter', '-t', String(await h2.d.pidOf(`tpcli-${ov.net}`)), '-n']
    const mtu = (JSON.parse(sh([...inSrv, 'ip', '-j', 'link', 'show', 'eth0'])) as Array<{ mtu?: number }>)[0]?.mtu ?? NaN
    out.push({ label: `${ov.label} (container → container)`, inSrv, inCli, srvIp, mtu })
  }
  return out
}

async function throughput (t: Teardowns, h1: Host, h2: Host, overlays: readonly Overlay[] = OVERLAYS): Promise<PathResult[]> {
  section(`throughput and latency: ${TP_ROUNDS} interleaved rounds of a ${TP_SECONDS} s TCP bulk transfer per path and ${LAT_TRIPS} round trips of 64 bytes, ${h2.name} → ${h1.name}; ${load()}`)
  const ps = await paths(h1, h2, overlays)
  for (const p of ps) {
    await tpServer(t, p.inSrv, p.srvIp)
    await startServer(t, p.inSrv, ECHO_SERVER, p.srvIp, LAT_PORT)
    await tpTransfer(p.inCli, p.srvIp, 1) // warm-up: ARP, JIT, the WireGuard handshake
  }
  const res: PathResult[] = ps.map((p) => ({ label: p.label, mbit: [], latUs: [], mtu: p.mtu }))
  for (let i = 0; i < TP_ROUNDS; i++) {
    for (const j of roundOrder(ps.length, i)) res[j]!.mbit.push(await tpTransfer(ps[j]!.inCli, ps[j]!.srvIp, TP_SECONDS))
  }
  console.log(`after the rounds: ${load()}`)
  for (const [j, p] of ps.entries()) res[j]!.latUs = (await runClient<{ us: number[], error?: string }>(p.inCli, LAT_CLIENT, [p.srvIp, LAT_PORT, LAT_TRIPS], 70_000)).us
  return res
}

interface RotationGap { baselineMs: number[], rotationMs: number[], overlapMs: number[] }

/** The longest stall of an echoed stream on the encrypted overlay, without and with a key rotation of each host (see the module comment). */
async function rotationGap (h1: Host, h2: Host): Promise<RotationGap> {
  const ov = OVERLAYS[1]
  section(`key-rotation gap: ${ov.label}, 64 bytes echoed every ${STALL_EVERY_MS} ms for ${STALL_SECONDS} s, ${h2.name} → ${h1.name}; ${REPS}× without and with a rotation of each host`)
  const srvIp = (await h1.d.dockerOk(['inspect', '-f', `{{.NetworkSettings.Networks.${ov.net}.IPAddress}}`, `tpsrv-${ov.net}`])).trim()
  const inCli = ['nsenter', '-t', String(await h2.d.pidOf(`tpcli-${ov.net}`)), '-n']
  const stream = (): Promise<{ maxGapMs: number, error?: string }> => runClient(inCli, STALL_CLIENT, [srvIp, LAT_PORT, STALL_EVERY_MS, STALL_SECONDS], STALL_SECONDS * 1000 + 30_000)
  const out: RotationGap = { baselineMs: [], rotationMs: [], overlapMs: [] }
  for (let i = 0; i < REPS; i++) {
    out.baselineMs.push((await stream()).maxGapMs)
    const running = stream()
    for (const h of [h1, h2]) {
      await sleep(1500)
      const r = await h.agent.cli(['cluster', 'rotate-key', '--json'])
      if (r.code !== 0) throw new Error(`ferry cluster rotate-key on ${h.name} failed: ${r.stderr}`)
      const rot = JSON.parse(r.stdout) as { overlapMs: number, late: string[] }
      if (rot.late.length > 0) throw new Error(`${h.name}'s rotation retired the old key before ${rot.late.join(', ')} switched`)
      out.overlapMs.push(rot.overlapMs)
    }
    out.rotationMs.push((await running).maxGapMs)
  }
  return out
}

// ---- main ----------------------------------------------------------------------------------------------

/** Milliseconds that may be negative (before the reference point). */
const sms = (x: number): string => (x < 0 ? '-' : '') + ms(Math.abs(x))

function distRow (name: string, xs: readonly number[]): string[] {
  const ok = xs.filter(Number.isFinite)
  return [name, String(ok.length), sms(quantile(ok, 0.5)), sms(quantile(ok, 0.9)), sms(quantile(ok, 0.99)), sms(Math.min(...ok)), sms(Math.max(...ok))]
}

const goal = (ok: boolean): string => ok ? 'goal met' : 'goal MISSED'

function scaleSummary (s: ScaleResult): string[] {
  const [dflt] = s.changes
  const change = (c: ChangeResult | undefined): string => c === undefined
    ? ''
    : `${c.label}: publish ${costText(c.publish)}; withdraw ${costText(c.withdraw)}; the publisher itself sent ${c.publisherCommands} per change`
  return [
    `scale ${s.peers}: ${s.peers} peers (${s.hosts} hosts) programmed by a fresh agent ${ms(s.join.ms)} ms after CreateNetwork was sent; ` +
      `CreateNetwork answered in ${ms(s.joinReplyMs)} ms (end seen by: ${s.join.source}); rebuild after a reboot ${ms(s.rebuild.ms)} ms ` +
      `(plugin socket answering at ${ms(s.rebuildReadyMs)} ms; end seen by: ${s.rebuild.source})`,
    `scale ${s.peers}: Redis commands per endpoint change, ${change(dflt)}`,
    `scale ${s.peers}: per change, each agent plans that endpoint alone (PeerPlanner: ${s.plannerUs.toFixed(1)} µs in this process) and patches ` +
      `its DNS records (the overlay's endpoints, ${(s.endpointsReadBytes / 1024).toFixed(0)} KiB in Redis, are read only at a resync, in pages)`,
  ]
}

/** One row per size: the figures of the README's table. */
function scaleTable (rows: readonly ScaleResult[]): string {
  const kernel = (r: ScaleResult): number[] => [...(r.changes[0]?.added ?? []), ...(r.changes[0]?.removed ?? [])].filter(Number.isFinite)
  const answered = (r: ScaleResult): number[] => (r.changes[0]?.answered ?? []).filter(Number.isFinite)
  return table([['remote endpoints', 'hosts', 'change→kernel p50 ms', 'p99 ms', 'change→kernel answer p50 ms', 'p99 ms', 'full programming ms', 'rebuild ms', 'Redis restart → resynced ms', 'agent RSS MiB (peak)', 'Redis B/endpoint', 'planner µs/change'],
    ...rows.map((r) => [String(r.peers), String(r.hosts), sms(quantile(kernel(r), 0.5)), sms(quantile(kernel(r), 0.99)),
      sms(quantile(answered(r), 0.5)), sms(quantile(answered(r), 0.99)), ms(r.join.ms), ms(r.rebuild.ms), ms(r.redisRestartMs),
      `${(r.rssKiB / 1024).toFixed(0)} (${(r.hwmKiB / 1024).toFixed(0)})`, r.redisBytesPerEndpoint.toFixed(0), r.plannerUs.toFixed(1)])])
}

interface ClusterResult { conv: ConvergenceResult[], tp: PathResult[], gap: RotationGap }

const ratio = (x: number, anchor: number): string => (x / anchor).toFixed(2)

async function clusterPhase (t: Teardowns, ul: Underlay): Promise<ClusterResult> {
  const url = `redis://${REDIS_IP}:6379`
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const h1 = await startHost(t, ul, 1, url)
  const h2 = await startHost(t, ul, 2, url)
  const conv: ConvergenceResult[] = []
  for (const ov of OVERLAYS) {
    const c = await convergence(t, h1, h2, ov)
    conv.push(c)
    console.log(table([['ms', 'n', 'p50', 'p90', 'p99', 'min', 'max'],
      distRow('first echo reply on h2, after docker run returned', c.reply),
      distRow('peer in h2\'s kernel, after docker run returned', c.kernel),
      distRow('peer in h2\'s kernel, after docker run started', c.kernel.map((k, i) => k + c.run[i]!)),
      distRow('docker run -d on h1 (wall time)', c.run)]))
    console.log(`probe: busybox ping every ${PROBE_MS} ms via nsenter (\`docker exec\` alone takes ${ms(c.execMs)} ms, p50 of 5); negative: before docker run returned`)
  }
  const tp = await throughput(t, h1, h2)
  printThroughput(tp)
  const gap = await rotationGap(h1, h2)
  console.log(table([['longest stall ms', ...gap.baselineMs.map((_, i) => `run ${i + 1}`), 'max'],
    ['no rotation', ...gap.baselineMs.map(ms), ms(Math.max(...gap.baselineMs))],
    ['h1 then h2 rotate their keys', ...gap.rotationMs.map(ms), ms(Math.max(...gap.rotationMs))]]))
  console.log(`both keys accepted during each rotation: ${gap.overlapMs.map(ms).join(', ')} ms`)
  return { conv, tp, gap }
}

/**
 * `--phases throughput`: the throughput and latency part alone (instead of `cluster`), underlay and plain
 * overlay only; also what the kernel has on h1's VXLAN device (outer UDP checksums, offloads: read back).
 */
async function throughputPhase (t: Teardowns, ul: Underlay): Promise<PathResult[]> {
  const url = `redis://${REDIS_IP}:6379`
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const plain = [OVERLAYS[0]]
  const h1 = await startHost(t, ul, 1, url, plain)
  const h2 = await startHost(t, ul, 2, url, plain)
  const tp = await throughput(t, h1, h2, plain)
  printThroughput(tp)
  const vx = ipJson<Array<{ ifname: string, linkinfo?: { info_kind?: string, info_data?: { udp_csum?: boolean } } }>>(h1.ns, ['-d', 'link']).find((l) => l.linkinfo?.info_kind === 'vxlan')
  const links = await vxlanFeaturesIn(h1.ns)
  console.log(`h1's VXLAN device ${vx?.ifname ?? '?'}: outer UDP checksums ${vx?.linkinfo?.info_data?.udp_csum === true ? 'on' : 'OFF'}; ` +
    `offloads ferry sets: ${Object.keys(VXLAN_OFFLOADS).map((f) => `${f} ${links.includes(f) ? 'on' : 'OFF'}`).join(', ')}`)
  return tp
}

/** The active offload features of h1's VXLAN device, read in its namespace through ferry's own driver (dist/). */
async function vxlanFeaturesIn (ns: string): Promise<string[]> {
  const code = `import(${JSON.stringify(joinPath(REPO, 'dist/kernel/netlink.js'))}).then(async (m) => { const d = await m.openLinkDriver();
    const l = (await d.listLinks()).find((x) => x.kind === 'vxlan'); console.log(JSON.stringify(l ? await d.getFeatures(l.name) : [])); d.close(); process.exit(0) })`
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, '-e', code], { timeoutMs: 30_000 })
  return JSON.parse(r.stdout.trim()) as string[]
}

/** The throughput table: each path's median and quartiles, median per-round ratio to the plain overlay; latency p50, p99. */
function printThroughput (tp: readonly PathResult[]): void {
  const anchor = tp[1]!
  console.log(table([['Mbit/s', 'q1', 'median', 'q3', '/ plain overlay (per round)', 'latency p50 µs', 'p99 µs', '/ plain overlay (p50)', 'MTU'],
    ...tp.map((p) => [p.label, quantile(p.mbit, 0.25).toFixed(0), median(p.mbit).toFixed(0), quantile(p.mbit, 0.75).toFixed(0), pairedText(pairedRatio(anchor.mbit, p.mbit)),
      median(p.latUs).toFixed(0), quantile(p.latUs, 0.99).toFixed(0), ratio(median(p.latUs), median(anchor.latUs)), Number.isFinite(p.mtu) ? String(p.mtu) : '1500 (underlay)'])]))
}

/** Overlay / underlay throughput: the median of the per-round ratios (each round has both paths back to back) with its spread, against the 0.9 goal. */
function overlayRatioLine (tp: readonly PathResult[]): string {
  const [under, plain] = tp as [PathResult, PathResult]
  const r = pairedRatio(under.mbit, plain.mbit)
  return `overlay / underlay TCP throughput: ${pairedText(r)}; path medians ${median(plain.mbit).toFixed(0)} / ${median(under.mbit).toFixed(0)} Mbit/s; ` +
    `${load()} (goal ≥ 0.9: ${goal(r.median >= 0.9)})`
}

function clusterSummary ({ conv, tp, gap }: ClusterResult): string[] {
  const lines = conv.map((c, i) => {
    const p99 = quantile(c.reply, 0.99)
    const kernel = c.kernel.filter(Number.isFinite)
    return `convergence, ${OVERLAYS[i]!.label} (docker run -d returned on h1 → first ping reply on h2): p50 ${sms(median(c.reply))} ms, p99 ${sms(p99)} ms over ${c.reply.length} (goal p99 < 200 ms: ${goal(p99 < 200)}); ` +
      `peer in h2's kernel p50 ${sms(median(kernel))} ms, p99 ${sms(quantile(kernel, 0.99))} ms (docker run -d itself p50 ${ms(median(c.run))} ms; negative = before it returned)`
  })
  const [under, plain, enc] = tp as [PathResult, PathResult, PathResult]
  const mb = (p: PathResult): number => median(p.mbit)
  const lat = (p: PathResult): number => median(p.latUs)
  return [
    ...lines,
    `throughput (anchor: the plain overlay, ${mb(plain).toFixed(0)} Mbit/s, MTU ${plain.mtu}): underlay ${mb(under).toFixed(0)} Mbit/s (${ratio(mb(under), mb(plain))}), ` +
      `encrypted overlay ${mb(enc).toFixed(0)} Mbit/s (${ratio(mb(enc), mb(plain))}, MTU ${enc.mtu}; userspace wireguard-go)`,
    overlayRatioLine(tp),
    `latency p50 (anchor: the plain overlay, ${lat(plain).toFixed(0)} µs): underlay ${lat(under).toFixed(0)} µs (${ratio(lat(under), lat(plain))}), encrypted overlay ${lat(enc).toFixed(0)} µs (${ratio(lat(enc), lat(plain))}); ` +
      `p99 ${quantile(under.latUs, 0.99).toFixed(0)} / ${quantile(plain.latUs, 0.99).toFixed(0)} / ${quantile(enc.latUs, 0.99).toFixed(0)} µs`,
    `key-rotation gap: longest stall of an echoed stream (64 B every ${STALL_EVERY_MS} ms) ${ms(Math.max(...gap.rotationMs))} ms while both hosts rotated (median of runs ${ms(median(gap.rotationMs))}), ` +
      `${ms(Math.max(...gap.baselineMs))} ms without a rotation; both keys accepted ${ms(median(gap.overlapMs))} ms per rotation (median)`,
  ]
}

async function main (t: Teardowns): Promise<void> {
  const started = performance.now()
  if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 200_000)) throw new Error('--sizes must be whole numbers from 1 to 200,000 (the /14 of the scale overlay)')
  const what = [...(PHASES.has('scale') ? [`${SIZES.join(', ')} peers at scale`] : []), ...(PHASES.has('sentinel') ? [`a Sentinel failover at ${SENTINEL_ENDPOINTS} endpoints`] : []), ...(PHASES.has('cluster') ? [`${CONTAINERS} containers for convergence per overlay (plain, encrypted), ${TP_ROUNDS}×${TP_SECONDS} s transfers`] : PHASES.has('throughput') ? [`${TP_ROUNDS}×${TP_SECONDS} s transfers, underlay and plain overlay`] : [])]
  console.log(`ferry overlay benchmark (${[...PHASES].join(', ')}): ${what.join(', ')}`)
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 cores: other work on the machine skews every figure)`)
  const ul = underlay(t)
  const summary: string[] = []
  const rows: ScaleResult[] = []
  if (PHASES.has('scale')) {
    for (const size of SIZES) {
      const scope = t.scope()
      const scale = await scalePhase(scope, ul, size)
      await scope.run()
      rows.push(scale)
      summary.push(...scaleSummary(scale), `seeding Redis with ${scale.peers} took ${ms(scale.seedMs)} ms`)
    }
    summary.push(scaleTable(rows))
  }
  if (PHASES.has('sentinel')) {
    const scope = t.scope()
    const s = await sentinelPhase(scope, ul)
    await scope.run()
    summary.push(...sentinelSummary(s, rows))
  }
  if (PHASES.has('cluster')) summary.push(...clusterSummary(await clusterPhase(t, ul)))
  else if (PHASES.has('throughput')) summary.push(overlayRatioLine(await throughputPhase(t, ul)))
  section('summary')
  for (const line of summary) console.log(line)
  console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; benchmark time: ${((performance.now() - started) / 1000).toFixed(0)} s (plus cleanup)`)
}

const mode = process.argv[2]
if (mode === '--seed') {
  console.log(JSON.stringify(await seed(JSON.parse(process.argv[3]!) as SeedSpec)))
  process.exit(0)
} else if (mode === '--writers') {
  console.log(JSON.stringify(await writers(JSON.parse(process.argv[3]!) as WritersSpec)))
  process.exit(0)
} else if (mode === '--churn') {
  console.log(JSON.stringify(await churn(JSON.parse(process.argv[3]!) as ChurnSpec)))
  process.exit(0)
} else {
  await runBench(main)
}
