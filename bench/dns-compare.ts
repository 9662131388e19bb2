/**
 * DNS comparison benchmark (issue 5), not a test:
 *
 *   npm run bench:dns [-- --seconds 5 --rounds 4 --containers 10 --ferry 0,0d,1 --only rate|external|ferry]
 *
 * One "host" namespace with a dockerd and a ferry agent; a ferry network with
 * `--containers` named containers (web0, web1, …) and a `client` container.
 * From inside the client's network namespace (`nsenter -t PID -n`), dnsperf asks
 * `web7 A` for `--seconds` per run, with 100 queries in flight and with 1, against:
 *
 * - ferry's DNS on the network's gateway (port 53), started with
 *   `--dns-rate-limit off` (the default 2000/s per source would be the figure)
 *   and `--dns-udp-helpers 0`, then again with `--dns-udp-helpers 1`;
 * - Docker's embedded resolver, 127.0.0.11 inside the same container (the
 *   engine answers the names of containers on the network);
 * - aardvark-dns (Podman's) on the same gateway address, port 5353, configured
 *   with the same containers and addresses (it answers only clients it knows).
 *
 * `--ferry` lists how ferry's agent is run, HELPERS[d][:RECONCILE_SECONDS] each
 * (default `0,0d,1`: no UDP helper (UDP through the batched addon, `--dns-udp auto`),
 * no helper with `d` (`--dns-udp dgram`: node:dgram, as before the addon), then one
 * helper (which means node:dgram); `0:0`: no helper and no periodic
 * reconcile, the agent's default being every 5 s), each optionally followed by
 * `@` and node flags for the agent (its UDP helpers inherit them), `+`-separated
 * (`1@--max-semi-space-size=2`; `1@` none; without `@`, none either: the harness
 * runs `node bin/ferry`); the agent restarts on the
 * same state between them. `--only ferry`: the ferry variants alone, at 100 in flight
 * and at the fixed rate (the cost of a setting of ferry's, without the other servers). At 100 in flight: `--rounds` rounds; each runs every
 * server (and every ferry variant) once, in rotated order, so that drift in the
 * machine's load hits everyone alike; medians are compared. Then each server once at 1 in flight (latencies only: dnsperf -q 1
 * paces itself at 30–60 q/s against any fast server, a Python UDP echo on loopback included).
 * Then the issue's fixed offered rate, `--rate` q/s (dnsperf -Q, default 20,000) with up to 200
 * in flight, `--rounds` rounds in rotated order: the latency distribution under a given load,
 * and how the slow answers lie in time (windows of 1,000 answers holding one slower than
 * 2 ms: a few such windows are pauses of the server; many, a tail spread over the run).
 * `--only rate`: that part alone.
 *
 * External names (`--only external`: that part alone): an upstream resolver
 * inside the namespace (test/fixtures/dns-responder.mjs on UPSTREAM, answering
 * `EXTERNAL A` with a one-hour TTL) is every server's upstream: the engine's
 * `--dns` (Docker's resolver forwards from the container's namespace), ferry's
 * `--dns`, and aardvark-dns's resolv.conf (bind-mounted in a mount namespace of
 * its own, so the host's /etc is not touched). dnsperf asks EXTERNAL at 100 in
 * flight, `--rounds` rounds in rotated order: ferry answers it from its cache,
 * Docker's resolver (no cache) and aardvark-dns forward every query.
 * `--upstream-delay MS` (default 0): the upstream answers that much later, the
 * round trip to a real resolver (a loopback one is the best case for a server
 * without a cache).
 * Every answer is checked once before the runs. dnsperf's `-v` prints each
 * query's latency, from which p50 and p99 are taken; q/s and losses come from
 * its summary. Needs `apt-get install dnsperf aardvark-dns` (aardvark-dns is
 * optional: without it that row is skipped). Run as root; the npm script builds
 * dist/ first. Everything lives in a namespace removed at the end, on failure
 * and on Ctrl-C; queries go only to addresses inside it.
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { netns, sh } from '../test/harness/netns.js'
import { startDockerd, type Dockerd } from '../test/harness/dockerd.js'
import { ensureBusyboxImage } from '../test/harness/image.js'
import { NODE, startAgent, type Agent } from '../test/harness/agent.js'
import { execFile } from '../src/kernel/exec.js'
import { argInt, argStr, ms, quantile, runBench, section, table, type Teardowns } from './lib.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SECONDS = argInt('seconds', 5)
const ROUNDS = Math.max(2, argInt('rounds', 4))
const CONTAINERS = Math.max(8, argInt('containers', 10))
const SUBNET = '10.89.0.0/24'
const GATEWAY = '10.89.0.1'
const QUERY = 'web7'
/** The upstream resolver inside the namespace (an address on its lo), and the external name it answers (192.0.2.99). */
const UPSTREAM = '10.88.53.53'
const EXTERNAL = 'ext.example.test'
const EXTERNAL_IP = '192.0.2.99'
const UPSTREAM_DELAY_MS = argInt('upstream-delay', 0)
const WINDOWS = [100, 1]
/** The issue's fixed offered rate (dnsperf -Q) and the queries allowed in flight under it. */
const RATE = argInt('rate', 20_000)
const RATE_INFLIGHT = 200
const AARDVARK = '/usr/lib/podman/aardvark-dns'
const AARDVARK_PORT = 5353

interface Target { label: string, ip: string, port: number }

interface Run {
  label: string
  inflight: number
  qps: number
  p50: number
  p99: number
  /** dnsperf's own average, ms. */
  avg: number
  completed: number
  lost: number
  /** Answers other than NOERROR. */
  errors: number
  p999: number
  /** The slowest answer, ms. */
  max: number
  /** Windows of 1,000 answers in a row (50 ms at 20,000 q/s) holding an answer slower than 2 ms: a stall, versus a spread tail. */
  slowWindows: number
  windows: number
}

// ---- one query, to check each server's answer ----------------------------------------------------

/** Sends one A query from the current namespace and prints {rcode, answers} (dns-packet from the repo's node_modules). */
const ASK = `
const dgram = require('dgram'); const p = require(process.argv[4]); const s = dgram.createSocket('udp4');
s.on('message', (m) => { const r = p.decode(m); console.log(JSON.stringify({ rcode: r.rcode, answers: (r.answers || []).map((a) => a.data) })); process.exit(0) });
setTimeout(() => { console.log(JSON.stringify({ rcode: 'TIMEOUT', answers: [] })); process.exit(0) }, 3000);
s.send(p.encode({ type: 'query', id: 7, flags: p.RECURSION_DESIRED, questions: [{ type: 'A', name: process.argv[1] }] }), Number(process.argv[3]), process.argv[2]);`

async function ask (pid: number, target: Target, name: string): Promise<{ rcode: string, answers: string[] }> {
  const r = await execFile(['nsenter', '-t', String(pid), '-n', ...NODE, '-e', ASK, name, target.ip, String(target.port), join(REPO, 'node_modules', 'dns-packet')], { timeoutMs: 20_000 })
  return JSON.parse(r.stdout.trim()) as { rcode: string, answers: string[] }
}

async function expectAnswer (pid: number, target: Target, ip: string, name = QUERY): Promise<void> {
  const got = await ask(pid, target, name)
  if (!got.answers.includes(ip)) throw new Error(`${target.label} answered ${name} with ${got.rcode} ${got.answers.join(',') || '(nothing)'}, expected ${ip}`)
}

// ---- dnsperf ------------------------------------------------------------------------------------------

/** Parse dnsperf's output: per-query latencies (-v lines "> RCODE name type seconds") and the summary. */
function parseDnsperf (text: string): { latencies: number[], errors: number, qps: number, avg: number, completed: number, lost: number } {
  const latencies: number[] = []
  let errors = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith('> ')) continue
    const parts = line.split(' ')
    if (parts[1] !== 'NOERROR') errors++
    latencies.push(Number(parts[parts.length - 1]) * 1000)
  }
  const pick = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN)
  return {
    latencies,
    errors,
    qps: pick(/Queries per second:\s+([\d.]+)/),
    avg: pick(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    completed: pick(/Queries completed:\s+(\d+)/),
    lost: pick(/Queries lost:\s+(\d+)/),
  }
}

/**
 * dnsperf prints answers in the order they arrive: cut them into windows of
 * 1,000 and count those with an answer slower than 2 ms. A tail made by a few
 * pauses of the server (GC, a periodic job) shows in a few windows; one spread
 * over the run (the scheduler, the client) in many.
 */
function slowWindows (latencies: readonly number[]): { slowWindows: number, windows: number } {
  let slow = 0
  for (let i = 0; i < latencies.length; i += 1000) {
    if (latencies.slice(i, i + 1000).some((x) => x > 2)) slow++
  }
  return { slowWindows: slow, windows: Math.ceil(latencies.length / 1000) }
}

/** dnsperf from the client's namespace (asking `query`, QUERY unless told); its output goes to a file (a pipe would slow it down). */
async function dnsperf (t: Teardowns, dir: string, pid: number, target: Target, inflight: number, seconds: number, o: { rate?: number, query?: string } = {}): Promise<Run> {
  const { rate, query = QUERY } = o
  const data = join(dir, 'queries')
  writeFileSync(data, `${query} A\n`)
  const outFile = join(dir, `dnsperf-${target.port}-${inflight}.txt`)
  const fd = openSync(outFile, 'w')
  const argv = ['nsenter', '-t', String(pid), '-n', 'dnsperf', '-s', target.ip, '-p', String(target.port), '-d', data,
    '-c', '1', '-T', '1', '-q', String(inflight), '-l', String(seconds), '-t', '2', '-v', ...(rate === undefined ? [] : ['-Q', String(rate)])]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, 'pipe'] })
  closeSync(fd)
  // It lives in the container's namespace, which the engine's teardown does not search: stop it on an interrupt.
  t.teardown(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000)
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)))
  clearTimeout(timer)
  const text = readFileSync(outFile, 'utf8')
  rmSync(outFile, { force: true })
  if (code !== 0) throw new Error(`dnsperf against ${target.label} exited ${code}: ${stderr}${text.slice(-500)}`)
  const p = parseDnsperf(text)
  return {
    label: target.label, inflight, qps: p.qps, avg: p.avg, completed: p.completed, lost: p.lost, errors: p.errors,
    p50: quantile(p.latencies, 0.5), p99: quantile(p.latencies, 0.99), p999: quantile(p.latencies, 0.999),
    max: p.latencies.reduce((a, x) => Math.max(a, x), 0), ...slowWindows(p.latencies),
  }
}

/** A 1 s warm-up, then each window. */
async function measure (t: Teardowns, dir: string, pid: number, target: Target, windows: readonly number[] = WINDOWS, query = QUERY): Promise<Run[]> {
  await dnsperf(t, dir, pid, target, 10, 1, { query })
  const runs: Run[] = []
  for (const n of windows) {
    const r = await dnsperf(t, dir, pid, target, n, SECONDS, { query })
    console.log(`${target.label}, ${n} in flight: ${r.qps.toFixed(0)} q/s, p50 ${ms(r.p50)} ms, p99 ${ms(r.p99)} ms, avg ${ms(r.avg)} ms, lost ${r.lost}, errors ${r.errors}`)
    runs.push(r)
  }
  return runs
}

// ---- the servers ------------------------------------------------------------------------------------

/**
 * How ferry's agent is run: `helpers` UDP helpers, and `--reconcile-interval`
 * (undefined: the agent's default, 5 s), `dgram`: `--dns-udp dgram`. `--ferry 0,1,0:0` on the command line:
 * HELPERS[d][:RECONCILE_SECONDS] each (default `0,0d,1`).
 */
interface Variant { helpers: number, dgram: boolean, reconcile?: number, node: string[] }

function variants (): Variant[] {
  return (argStr('ferry') ?? '0,0d,1').split(',').map((spec) => {
    const [run = '', flags = ''] = spec.split('@')
    const [h, r] = run.split(':')
    const node = flags.split('+').filter((f) => f !== '')
    const dgram = h?.endsWith('d') === true
    const v: Variant = { helpers: Number(dgram ? h!.slice(0, -1) : h), dgram, ...(r === undefined ? {} : { reconcile: Number(r) }), node }
    if (!Number.isInteger(v.helpers) || v.helpers < 0 || (v.reconcile !== undefined && !(v.reconcile >= 0)) ||
      node.some((f) => !/^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/.test(f))) throw new Error(`--ferry ${spec}: HELPERS[d][:RECONCILE_SECONDS][@NODE_FLAG+…] expected`)
    return v
  })
}

function variantLabel (v: Variant): string {
  const r = v.reconcile === undefined ? '' : v.reconcile === 0 ? ', no periodic reconcile' : `, reconcile every ${v.reconcile} s`
  const udp = v.dgram || v.helpers > 0 ? 'node:dgram' : 'batched UDP'
  return `ferry, ${udp}, ${v.helpers} UDP helper${v.helpers === 1 ? '' : 's'}${r}${v.node.length === 0 ? '' : `, node ${v.node.join(' ')}`}`
}

const sameVariant = (a: Variant, b: Variant): boolean => variantLabel(a) === variantLabel(b)

/** A ferry agent with the rate limit off, run as `v` says; ready once it answers for QUERY. */
async function startFerry (t: Teardowns, d: Dockerd, stateDir: string, plugin: string, v: Variant): Promise<Agent> {
  const reconcile = v.reconcile === undefined ? [] : ['--reconcile-interval', String(v.reconcile)]
  return await startAgent(t, { ns: d.ns, pluginName: plugin, dockerd: d, stateDir, nodeArgs: v.node, args: ['--dns-rate-limit', 'off', '--dns-udp-helpers', String(v.helpers), ...(v.dgram ? ['--dns-udp', 'dgram'] : []), '--dns', UPSTREAM, ...reconcile] })
}

/** Wait until ferry has learnt the containers' names from the engine. */
async function waitForRecord (agent: Agent, ip: string): Promise<void> {
  const end = Date.now() + 30_000
  while (Date.now() < end) {
    const r = await agent.cli(['dns', 'query', QUERY, '--network', 'fnet', '--json'])
    if (r.code === 0 && (JSON.parse(r.stdout) as { answers: Array<{ data: unknown }> }).answers.some((a) => a.data === ip)) return
    await sleep(200)
  }
  throw new Error(`ferry did not learn ${QUERY} within 30 s`)
}

/**
 * The upstream resolver of every server: on UPSTREAM (an address on the namespace's lo), answering EXTERNAL
 * with a one-hour TTL, in a process of its own inside the namespace.
 */
function startUpstream (t: Teardowns, ns: string): void {
  sh(['ip', '-n', ns, 'addr', 'add', `${UPSTREAM}/32`, 'dev', 'lo'])
  const child = spawn('ip', ['netns', 'exec', ns, ...NODE, join(REPO, 'test', 'fixtures', 'dns-responder.mjs'), UPSTREAM, '53', '3600', String(UPSTREAM_DELAY_MS)], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
}

/**
 * aardvark-dns on GATEWAY:AARDVARK_PORT with the containers' names (its config format: aardvark-dns's docs/configuration.md),
 * forwarding to UPSTREAM: aardvark-dns 1.4 takes its upstreams from /etc/resolv.conf, so it runs in a mount namespace of
 * its own where a file naming UPSTREAM is bind-mounted there.
 */
function startAardvark (t: Teardowns, ns: string, dir: string, containers: ReadonlyArray<{ id: string, ip: string, name: string }>): void {
  const conf = join(dir, 'aardvark')
  mkdirSync(conf)
  const resolv = join(dir, 'aardvark-resolv.conf')
  writeFileSync(resolv, `nameserver ${UPSTREAM}\n`)
  // First line: the listen (gateway) address; then "<id> <ipv4> <ipv6> <names>", the IPv6 column empty.
  writeFileSync(join(conf, 'fnet'), [GATEWAY, ...containers.map((c) => `${c.id} ${c.ip}  ${c.name}`)].join('\n') + '\n')
  t.teardown(() => {
    const pidFile = join(conf, 'aardvark.pid')
    if (!existsSync(pidFile)) return
    try { process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL') } catch { /* gone */ }
  })
  // `run` forks: the server stays in the namespace (and dies with it at the latest), and in the private mount namespace.
  sh(['ip', 'netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && exec "$2" --config "$3" -p "$4" run',
    'sh', resolv, AARDVARK, conf, String(AARDVARK_PORT)])
}

// ---- main ----------------------------------------------------------------------------------------------

/** The median, the two middle values averaged for an even count (servers have 2 or 4 runs). */
function mid (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const h = Math.floor(s.length / 2)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2
}

/** Median figures of one server over its runs at one window. */
interface Summary { label: string, inflight: number, runs: number, qps: number, qpsMin: number, qpsMax: number, p50: number, p99: number, avg: number, lost: number, errors: number }

function summarize (runs: readonly Run[]): Summary[] {
  const keys = [...new Set(runs.map((r) => `${r.inflight}\t${r.label}`))]
  return keys.map((k) => {
    const [n, label] = k.split('\t') as [string, string]
    const rs = runs.filter((r) => r.label === label && r.inflight === Number(n))
    const med = (f: (r: Run) => number): number => mid(rs.map(f))
    return {
      label, inflight: Number(n), runs: rs.length, qps: med((r) => r.qps), qpsMin: Math.min(...rs.map((r) => r.qps)), qpsMax: Math.max(...rs.map((r) => r.qps)),
      p50: med((r) => r.p50), p99: med((r) => r.p99), avg: med((r) => r.avg), lost: rs.reduce((x, r) => x + r.lost, 0), errors: rs.reduce((x, r) => x + r.errors, 0),
    }
  })
}

function rows (sums: readonly Summary[]): string[][] {
  return sums.map((r) => [r.label, String(r.inflight), String(r.runs), r.qps.toFixed(0), `${r.qpsMin.toFixed(0)}–${r.qpsMax.toFixed(0)}`,
    ms(r.p50), ms(r.p99), ms(r.avg), String(r.lost), String(r.errors)])
}

function verdicts (sums: readonly Summary[], ferryLabels: readonly string[]): string[] {
  const at = (label: string, n: number): Summary | undefined => sums.find((r) => r.label === label && r.inflight === n)
  const others = [...new Set(sums.map((r) => r.label))].filter((l) => !ferryLabels.includes(l))
  const best = (n: number, f: (r: Summary) => number, pick: (...xs: number[]) => number): number =>
    pick(...others.map((l) => at(l, n)).filter((r): r is Summary => r !== undefined).map(f))
  const goal = (ok: boolean): string => ok ? 'met' : 'MISSED'
  return ferryLabels.map((l) => {
    const hi = at(l, 100)
    const lo = at(l, 1)
    if (!hi || !lo) return `${l}: no figures`
    const bestQps = best(100, (r) => r.qps, Math.max)
    const bestP50 = best(1, (r) => r.p50, Math.min)
    const bestAvg = best(1, (r) => r.avg, Math.min)
    return `${l}: ${hi.qps.toFixed(0)} q/s at 100 in flight vs best other ${bestQps.toFixed(0)} (${goal(hi.qps >= bestQps)}); ` +
      `p99 ${ms(hi.p99)} ms at 100 in flight (< 1 ms: ${goal(hi.p99 < 1)}; best other ${ms(best(100, (r) => r.p99, Math.min))}); ` +
      `at 1 in flight p50 ${ms(lo.p50)} ms vs best other ${ms(bestP50)}, avg ${ms(lo.avg)} vs ${ms(bestAvg)} (${goal(lo.p50 <= bestP50 && lo.avg <= bestAvg)})`
  })
}

await runBench(async (t) => {
  const started = performance.now()
  if (sh(['sh', '-c', 'command -v dnsperf || true']).trim() === '') throw new Error('dnsperf is not installed: apt-get install dnsperf aardvark-dns')
  console.log(`ferry DNS comparison: ${QUERY} A from a container; ${ROUNDS} rounds of ${SECONDS} s at 100 in flight, then ${SECONDS} s at 1 in flight (dnsperf -c 1 -T 1)`)
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 cores: dnsperf, the server and anything else share them)`)
  const dir = mkdtempSync(join(tmpdir(), 'fydns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ns = netns(t, 'fydns')
  const d = await startDockerd(t, { ns, dns: UPSTREAM })
  await ensureBusyboxImage(d)
  const plugin = `fydns${process.pid}`
  const stateDir = join(dir, 'state')
  const vs = variants()
  const only = argStr('only')
  if (only !== undefined && only !== 'rate' && only !== 'external' && only !== 'ferry') throw new Error(`--only ${only}: rate, external or ferry expected`)
  startUpstream(t, ns)
  let current = vs[0]!
  let agent = await startFerry(t, d, stateDir, plugin, current)
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', SUBNET, 'fnet'])
  const names = [...Array.from({ length: CONTAINERS }, (_, i) => `web${i}`), 'client']
  const containers: Array<{ id: string, ip: string, name: string }> = []
  for (const name of names) {
    const id = (await d.dockerOk(['run', '-d', '--net', 'fnet', '--name', name, 'bb', 'sleep', '3600'])).trim()
    const ip = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.fnet.IPAddress}}', name])).trim()
    containers.push({ id, ip, name })
  }
  const webIp = containers.find((c) => c.name === QUERY)!.ip
  const pid = await d.pidOf('client')
  await waitForRecord(agent, webIp)

  const ferry = (v: Variant): Target => ({ label: variantLabel(v), ip: GATEWAY, port: 53 })
  const docker: Target = { label: 'Docker 127.0.0.11', ip: '127.0.0.11', port: 53 }
  const aardvark: Target = { label: 'aardvark-dns', ip: GATEWAY, port: AARDVARK_PORT }
  const haveAardvark = existsSync(AARDVARK)
  if (haveAardvark) startAardvark(t, ns, dir, containers)
  else console.log(`${AARDVARK} is missing (apt-get install aardvark-dns): skipped`)
  const others = only === 'ferry' ? [] : [docker, ...(haveAardvark ? [aardvark] : [])]

  /** The same agent (same state) again, run as `v` says, answering. */
  const use = async (v: Variant): Promise<void> => {
    if (sameVariant(v, current)) return
    await agent.destroy()
    agent = await startFerry(t, d, stateDir, plugin, v)
    current = v
    await waitForRecord(agent, webIp)
    await sleep(1000) // helpers start after the server listens
    await expectAnswer(pid, ferry(v), webIp)
  }
  /** `target`, or ferry run as `v` (restarted when it runs otherwise now). */
  type Subject = Target | Variant
  const targetOf = async (s: Subject): Promise<Target> => {
    if ('ip' in s) return s
    await use(s)
    return ferry(s)
  }

  section('answers')
  for (const target of [ferry(current), ...others]) {
    await expectAnswer(pid, target, webIp)
    await expectAnswer(pid, target, EXTERNAL_IP, EXTERNAL)
    console.log(`${target.label} (${target.ip}:${target.port}) answers ${QUERY} = ${webIp} and ${EXTERNAL} = ${EXTERNAL_IP} (from the upstream ${UPSTREAM})`)
  }
  const runs: Run[] = []
  const subjects: Subject[] = [...vs, ...others]
  if (only === undefined || only === 'ferry') {
    section(`100 in flight: ${ROUNDS} rounds, every server in each (ferry as ${vs.map(variantLabel).join('; ')}), in rotated order`)
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < subjects.length; k++) runs.push(...await measure(t, dir, pid, await targetOf(subjects[(round + k) % subjects.length]!), [100]))
    }
  }
  if (only === undefined) {
    section('1 in flight')
    for (const s of subjects) runs.push(...await measure(t, dir, pid, await targetOf(s), [1]))
  }

  const external: Run[] = []
  if (only === undefined || only === 'external') {
    section(`external name ${EXTERNAL} at 100 in flight (upstream ${UPSTREAM}, answering ${UPSTREAM_DELAY_MS} ms late): ${ROUNDS} rounds, every server in each, in rotated order`)
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < subjects.length; k++) external.push(...await measure(t, dir, pid, await targetOf(subjects[(round + k) % subjects.length]!), [100], EXTERNAL))
    }
  }

  if (only !== 'external') section(`fixed offered rate: ${RATE} q/s (dnsperf -Q ${RATE}, up to ${RATE_INFLIGHT} in flight), ${SECONDS} s each, ${ROUNDS} rounds in rotated order`)
  const fixed: Run[] = []
  for (let round = 0; round < (only === 'external' ? 0 : ROUNDS); round++) {
    for (let k = 0; k < subjects.length; k++) {
      const target = await targetOf(subjects[(round + k) % subjects.length]!)
      const r = await dnsperf(t, dir, pid, target, RATE_INFLIGHT, SECONDS, { rate: RATE })
      console.log(`${target.label} at ${RATE} q/s: ${r.qps.toFixed(0)} q/s done, p50 ${ms(r.p50)} ms, p99 ${ms(r.p99)} ms, p99.9 ${ms(r.p999)} ms, max ${ms(r.max)} ms, ` +
        `windows of 1,000 answers with one > 2 ms: ${r.slowWindows}/${r.windows}, lost ${r.lost}, errors ${r.errors}, load ${loadavg()[0]!.toFixed(2)}`)
      fixed.push(r)
    }
  }

  section('summary (medians over the runs; latencies in ms, from dnsperf -v per query)')
  if (only === 'ferry') console.log(table([['server', 'in flight', 'runs', 'q/s', 'q/s range', 'p50', 'p99', 'avg', 'lost', 'errors'], ...rows(summarize(runs))]))
  if (only === undefined) {
    const sums = summarize(runs).sort((a, b) => b.inflight - a.inflight || a.label.localeCompare(b.label))
    console.log(table([['server', 'in flight', 'runs', 'q/s', 'q/s range', 'p50', 'p99', 'avg', 'lost', 'errors'], ...rows(sums)]))
    console.log('at 1 in flight dnsperf idles between queries, so its q/s there measures dnsperf, not the server: compare latencies')
    console.log('(dnsperf -q 1 paces itself at 30–60 q/s against any server that answers fast, a 6-line Python UDP echo on loopback as well; with -q 2 the same echo does ~3,700 q/s)')
    console.log('with 100 in flight, mean latency = 100 / throughput (Little\'s law): p99 < 1 ms needs well over 100k q/s')
    console.log('goals: at least the best other server\'s q/s at 100 in flight, p99 < 1 ms at 100 in flight, no slower than the others at 1 in flight')
    for (const v of verdicts(sums, vs.map(variantLabel))) console.log(v)
  }
  if (external.length > 0) {
    const ext = summarize(external).sort((a, b) => a.label.localeCompare(b.label))
    console.log(`\nexternal name ${EXTERNAL} at 100 in flight (medians over the runs; ferry from its cache, the others forward every query to ${UPSTREAM}, which answers ${UPSTREAM_DELAY_MS} ms late):`)
    console.log(table([['server', 'in flight', 'runs', 'q/s', 'q/s range', 'p50', 'p99', 'avg', 'lost', 'errors'], ...rows(ext)]))
    const peers = ext.filter((r) => !r.label.startsWith('ferry'))
    const best = peers.reduce<Summary | undefined>((b, r) => (b === undefined || r.qps > b.qps ? r : b), undefined)
    for (const f of ext.filter((r) => r.label.startsWith('ferry'))) {
      const ratios = peers.map((p) => `${(f.qps / p.qps).toFixed(2)}× ${p.label}`).join(', ')
      console.log(`${f.label}: ${ratios}; against the best peer (${best?.label ?? 'none'}) ${best ? (f.qps / best.qps).toFixed(2) : '?'}× (goal 5×: ${best !== undefined && f.qps >= 5 * best.qps ? 'met' : 'MISSED'})`)
    }
  }
  const fixedSums = summarize(fixed).sort((a, b) => a.label.localeCompare(b.label))
  if (fixed.length > 0) console.log(`\nat a fixed ${RATE} q/s (medians over the runs):`)
  if (fixed.length > 0) console.log(table([['server', 'in flight ≤', 'runs', 'q/s done', 'q/s range', 'p50', 'p99', 'avg', 'lost', 'errors'], ...rows(fixedSums)]))
  for (const f of only === 'ferry' ? [] : fixedSums.filter((r) => r.label.startsWith('ferry'))) {
    console.log(`${f.label}: p99 ${ms(f.p99)} ms at ${RATE} q/s (goal ≤ 1 ms: ${f.p99 <= 1 ? 'met' : 'MISSED'}; best other ${ms(Math.min(...fixedSums.filter((r) => !r.label.startsWith('ferry')).map((r) => r.p99)))} ms)`)
  }
  console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; benchmark time: ${((performance.now() - started) / 1000).toFixed(0)} s (plus cleanup)`)
})
