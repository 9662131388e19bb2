/**
 * Port-publishing benchmark (issue 3), not a test:
 *
 *   npm run bench:ports [-- --range 1000 --containers 1000 --mb 512 --reps 15 --range-reps 7 --ferry-only --ipv6-only --agent-log FILE --state-tmpfs
 *                           --reconcile-interval 0 --firewall-backend nftables|iptables]
 *
 * Two engines, each in its own "host" namespace (the second with the ferry
 * agent beside it) linked to its own "outside" namespace that stands for
 * another host; the first stays up, idle, while the second is measured:
 *
 * - built-in bridge driver, userland proxy OFF;
 * - built-in bridge driver, userland proxy ON (Docker's default), and ferry on
 *   the same engine (a remote driver gets no proxy whatever the setting).
 *
 * For each: wall time of `docker run -d` and `docker rm -f` of a container
 * publishing `-p 20000-20999:20000-20999`; processes added to the host namespace,
 * docker-proxy count and memory (sum of RSS and of PSS), DNAT rules; for ferry
 * the agent's RSS and its own handler time for ProgramExternalConnectivity and
 * RevokeExternalConnectivity (its debug log), with the number of
 * iptables-restore runs. Then the throughput of one published port, from the
 * outside namespace and from the host's 127.0.0.1, as a ratio to the built-in
 * driver, the three set-ups taking turns: a node server inside the container's
 * namespace streams `--mb` MiB per connection, a node client counts them
 * (bounded in size and time; addresses are the namespaces' own). In each of the `--reps` rounds every target
 * once, the order rotated and reversed from round to round (A B, B A, B A, A B …): a burst of other load on this
 * shared machine hits every target alike, and ratios are taken per round (median and interquartile range).
 * On ferry also a dual-stack network (`--ipv6`): one container measured from outside over IPv4 and one over
 * IPv6, in the same rounds (issue #15's goal: IPv6 at least 0.95 of IPv4; IPv6 has no localhost publishing,
 * see README), and from the host to each container's own address without NAT (what the kernel does for each
 * family anyway). `--ipv6-only`: that dual-stack comparison alone (no range, no built-in driver, no scaling). Last, on ferry only: 1,000 endpoints publishing one
 * port each, created through the plugin socket as dockerd would, timing the
 * publish of each, then one more; and the removal of one with nothing else
 * published and with 1,000 others (the rest goes with the namespace).
 * `--ferry-only` skips the built-in driver; `--agent-log FILE` keeps the agent's
 * debug log; `--state-tmpfs` puts its state on /dev/shm; `--reconcile-interval N`
 * sets the agent's periodic check (default here: 0, see benchAgentArgs in bench/lib.ts).
 *
 * Run as root; the npm script builds dist/ first. Namespaces and processes are
 * removed at the end, on failure and on Ctrl-C.
 */
import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { startDockerd, type Dockerd } from '../test/harness/dockerd.js'
import { ensureBusyboxImage } from '../test/harness/image.js'
import { NODE, startAgent, type Agent } from '../test/harness/agent.js'
import { link, netns, nsExec, sh } from '../test/harness/netns.js'
import { execFile } from '../src/kernel/exec.js'
import {
  PluginClient, STREAM_CLIENT, STREAM_SERVER, argFlag, argInt, argStr, benchAgentArgs, benchStateDir, comm, keepAgentLog, countLogged, load, median, mib, ms, pairedRatio, pairedText, pluginCalls, processesIn,
  pssKiB, roundOrder, rssKiB, runBench, section, setupEndpoint, table, teardownEndpoint, timed, type EndpointHandle, type Teardowns,
} from './lib.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const RANGE = argInt('range', 1000)
const CONTAINERS = argInt('containers', 1000)
const MB = argInt('mb', 512)
const REPS = argInt('reps', 15)
/** Runs of the 1,000-port container on ferry whose handler times give the median (`--range-reps`). */
const RANGE_REPS = argInt('range-reps', 7)
const FIRST_PORT = 20000
const HOST_IP = '203.0.113.1'
const OUTSIDE_IP = '203.0.113.2'
const HOST_IP6 = '2001:db8:71::1'
const OUTSIDE_IP6 = '2001:db8:71::2'
const TP_PORT = 18080
const TRANSFER_TIMEOUT_MS = 30_000
/** `--ferry-only`: skip the built-in driver (its 1,000-port range alone takes about four minutes). */
const FERRY_ONLY = argFlag('ferry-only')
/** `--ipv6-only`: only the dual-stack network's IPv6 / IPv4 throughput. */
const IPV6_ONLY = argFlag('ipv6-only')
const FERRY = 'ferry'
const FERRY_DUAL4 = 'ferry dual-stack, over IPv4'
const FERRY_DUAL6 = 'ferry dual-stack, over IPv6'
const ON = 'builtin, proxy on'
const OFF = 'builtin, proxy off'

// ---- the range: docker run -d / docker rm -f ----------------------------------------------------

interface RangeResult {
  runMs: number
  rmMs: number
  processesAdded: number
  proxies: number
  proxyRssKiB: number
  proxyPssKiB: number
  proxiesAfterRm: number
  dnatRules: number
  dockerdRssKiB: [number, number]
  agent?: {
    rssKiB: [number, number, number], programMs: number, revokeMs: number, restoreRuns: [number, number], allCallsMs: number
    /** Handler times of RANGE_REPS more runs of the same container (the first included): one sample is noise on a busy host. */
    programAll: number[], revokeAll: number[]
  }
}

function dnatRulesFor (ns: string, first: number, last: number): number {
  const lines = nsExec(ns, ['iptables-save', '-t', 'nat']).split('\n').filter((l) => l.includes('DNAT'))
  return lines.filter((l) => {
    const m = /--dport (\d+)(?::(\d+))?/.exec(l)
    if (!m) return false
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    return hi >= first && lo <= last
  }).length
}

const sumBy = (pids: number[], f: (pid: number) => number): number => pids.reduce((s, p) => s + f(p), 0)
const nsProcessCount = (ns: string): number => sh(['ip', 'netns', 'pids', ns], { allowFailure: true }).split(/\s+/).filter(Boolean).length

/** Publish and remove a small range first, so the measured run finds warm code paths (JIT, caches) as a busy host would. */
async function warmUp (d: Dockerd, net: string): Promise<void> {
  await d.dockerOk(['run', '-d', '--net', net, '--name', 'warm', '-p', '19000-19009:19000-19009', 'bb', 'sleep', '900'])
  await d.dockerOk(['rm', '-f', 'warm'])
}

async function rangeRun (d: Dockerd, net: string, name: string, agent?: Agent): Promise<RangeResult> {
  const last = FIRST_PORT + RANGE - 1
  await warmUp(d, net)
  const agentPid = agent?.pid() ?? 0
  const agentRss0 = rssKiB(agentPid)
  const dockerdRss0 = rssKiB(d.pid() ?? 0)
  const procs0 = nsProcessCount(d.ns)
  const log0 = agent?.logs().length ?? 0
  const run = await timed(() => d.docker(['run', '-d', '--net', net, '--name', name, '-p', `${FIRST_PORT}-${last}:${FIRST_PORT}-${last}`, 'bb', 'sleep', '900'], { timeoutMs: 600_000 }))
  if (run.value.code !== 0) throw new Error(`docker run with ${RANGE} ports on ${net} failed: ${run.value.stderr}`)
  const proxies = processesIn(d.ns, 'docker-proxy')
  const result: RangeResult = {
    runMs: run.ms,
    rmMs: 0,
    processesAdded: nsProcessCount(d.ns) - procs0,
    proxies: proxies.length,
    proxyRssKiB: sumBy(proxies, rssKiB),
    proxyPssKiB: sumBy(proxies, pssKiB),
    proxiesAfterRm: 0,
    dnatRules: dnatRulesFor(d.ns, FIRST_PORT, last),
    dockerdRssKiB: [dockerdRss0, rssKiB(d.pid() ?? 0)],
  }
  const agentRss1 = rssKiB(agentPid)
  const log1 = agent?.logs().length ?? 0
  const rm = await timed(() => d.docker(['rm', '-f', name], { timeoutMs: 600_000 }))
  if (rm.value.code !== 0) throw new Error(`docker rm -f ${name} failed: ${rm.value.stderr}`)
  result.rmMs = rm.ms
  result.proxiesAfterRm = processesIn(d.ns, 'docker-proxy').length
  if (agent) {
    const log = agent.logs()
    const during = (from: number, to: number, method: string): number =>
      pluginCalls(log.slice(from, to)).filter((c) => c.method === method).reduce((s, c) => s + c.ms, 0)
    result.agent = {
      rssKiB: [agentRss0, agentRss1, rssKiB(agentPid)],
      programMs: during(log0, log1, 'NetworkDriver.ProgramExternalConnectivity'),
      revokeMs: during(log1, log.length, 'NetworkDriver.RevokeExternalConnectivity'),
      restoreRuns: [countLogged(log.slice(log0, log1), 'iptables batch applied'), countLogged(log.slice(log1), 'iptables batch applied')],
      allCallsMs: pluginCalls(log.slice(log0)).reduce((s, c) => s + c.ms, 0),
      programAll: [],
      revokeAll: [],
    }
    const a = result.agent
    a.programAll.push(a.programMs)
    a.revokeAll.push(a.revokeMs)
    for (let k = 1; k < RANGE_REPS; k++) {
      const l0 = agent.logs().length
      await d.dockerOk(['run', '-d', '--net', net, '--name', `${name}-${k}`, '-p', `${FIRST_PORT}-${last}:${FIRST_PORT}-${last}`, 'bb', 'sleep', '900'])
      const l1 = agent.logs().length
      await d.dockerOk(['rm', '-f', `${name}-${k}`])
      const lg = agent.logs()
      const sum = (from: number, to: number, method: string): number =>
        pluginCalls(lg.slice(from, to)).filter((c) => c.method === method).reduce((acc, c) => acc + c.ms, 0)
      a.programAll.push(sum(l0, l1, 'NetworkDriver.ProgramExternalConnectivity'))
      a.revokeAll.push(sum(l1, lg.length, 'NetworkDriver.RevokeExternalConnectivity'))
    }
  }
  return result
}

// ---- the floor: one iptables-restore run ------------------------------------------------------------

/**
 * What one `iptables-restore --noflush` costs in the host namespace, spawned
 * from node as the agent spawns it: adding and deleting one DNAT rule in a
 * scratch chain (BENCH-PROBE, not FERRY-*: ferry owns those), 10 times each.
 * The floor under the agent's publish and removal times.
 */
const PROBE = `
const { spawnSync } = require('child_process'); const { performance } = require('perf_hooks');
const run = (text) => { const t0 = performance.now(); const r = spawnSync('iptables-restore', ['--noflush', '-w', '5'], { input: text });
  if (r.status !== 0) throw new Error(String(r.stderr)); return performance.now() - t0 };
const rule = (op, i) => '*nat\\n' + op + ' BENCH-PROBE -d 203.0.113.1/32 -p tcp -m tcp --dport ' + (40000 + i) + ' -j DNAT --to-destination 10.89.0.250:80\\nCOMMIT\\n';
run('*nat\\n:BENCH-PROBE - [0:0]\\nCOMMIT\\n');
const add = [], del = [];
try { for (let i = 0; i < 10; i++) { add.push(run(rule('-A', i))); del.push(run(rule('-D', i))) } }
finally { run('*nat\\n-F BENCH-PROBE\\n-X BENCH-PROBE\\nCOMMIT\\n') }
console.log(JSON.stringify({ add, del }));`

interface Probe { add: number, del: number }

async function restoreProbe (ns: string): Promise<Probe> {
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, '-e', PROBE], { timeoutMs: 60_000 })
  const out = JSON.parse(r.stdout) as { add: number[], del: number[] }
  return { add: median(out.add), del: median(out.del) }
}

// ---- throughput through a published port --------------------------------------------------------

/**
 * MiB/s; localhost undefined where it is not measured (IPv6: nothing is published on ::1); direct: from the host
 * to the container's own address, no NAT (the dual-stack targets: what the kernel does for each family anyway).
 */
interface Throughput { outside: number, localhost: number | undefined, direct: number | undefined, runs: Runs }

/** MiB/s per round (empty where not measured). */
interface Runs { outside: number[], localhost: number[], direct: number[] }

/** Start a server in the container's network namespace (on `::` for IPv6 and IPv4, else 0.0.0.0); resolves when it listens. */
async function startServer (t: Teardowns, pid: number, port: number, ip6 = false): Promise<void> {
  const child = spawn('nsenter', ['-t', String(pid), '-n', ...NODE, '-e', STREAM_SERVER, String(MB * 1024 * 1024), String(port), ip6 ? '::' : '0.0.0.0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the throughput server did not start')), 10_000)
    child.stdout.on('data', (b: Buffer) => { if (b.toString().includes('ready')) { clearTimeout(timer); resolve() } })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the throughput server exited (${code})`)) })
  })
}

/** MiB/s of one transfer from `ns` to ip:port; throws unless every byte arrived. */
async function transfer (ns: string, ip: string, port: number): Promise<number> {
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, '-e', STREAM_CLIENT, ip, String(port), String(TRANSFER_TIMEOUT_MS)], { timeoutMs: TRANSFER_TIMEOUT_MS + 10_000 })
  const out = JSON.parse(r.stdout) as { bytes: number, ms: number, err?: string }
  if (out.bytes !== MB * 1024 * 1024) throw new Error(`transfer from ${ns} to ${ip}:${port} got ${out.bytes} bytes (${out.err ?? 'short'})`)
  return out.bytes / 1024 / 1024 / (out.ms / 1000)
}

/** `ip6`: reach the port over IPv6 from outside, and skip localhost; `direct`: also from the host to the container's address of that family. */
interface TputTarget { name: string, d: Dockerd, outside: string, net: string, ip6?: boolean, direct?: boolean }

/**
 * One container per target publishing TP_PORT with a streaming server inside;
 * then REPS rounds, each target in turn (so a burst of other load on the
 * machine hits every target alike), from the outside namespace and from the
 * host's 127.0.0.1. The containers go when `t` tears down.
 */
async function throughput (t: Teardowns, targets: readonly TputTarget[]): Promise<Map<string, Throughput>> {
  // Each target its own host port: two of them may share an engine and namespace.
  const port = (k: number): number => TP_PORT + k
  const directIp: string[] = []
  for (const [k, x] of targets.entries()) {
    const name = `tp${k}`
    await x.d.dockerOk(['run', '-d', '--net', x.net, '--name', name, '-p', `${port(k)}:9000`, 'bb', 'sleep', '900'])
    t.teardown(() => x.d.docker(['rm', '-f', name]))
    await startServer(t, await x.d.pidOf(name), 9000, x.ip6 === true)
    await transfer(x.outside, x.ip6 === true ? HOST_IP6 : HOST_IP, port(k)) // warm-up
    directIp.push((await x.d.dockerOk(['inspect', '-f', `{{range .NetworkSettings.Networks}}{{.${x.ip6 === true ? 'GlobalIPv6Address' : 'IPAddress'}}}{{end}}`, name])).trim())
  }
  const runs: Runs[] = targets.map(() => ({ outside: [], localhost: [], direct: [] }))
  for (let i = 0; i < REPS; i++) {
    for (const k of roundOrder(targets.length, i)) {
      const x = targets[k]!
      runs[k]!.outside.push(await transfer(x.outside, x.ip6 === true ? HOST_IP6 : HOST_IP, port(k)))
      if (x.ip6 !== true) runs[k]!.localhost.push(await transfer(x.d.ns, '127.0.0.1', port(k)))
      if (x.direct === true) runs[k]!.direct.push(await transfer(x.d.ns, directIp[k]!, 9000))
    }
  }
  const med = (xs: number[]): number | undefined => xs.length === 0 ? undefined : median(xs)
  for (const [k, x] of targets.entries()) console.log(`  ${x.name}: MiB/s from outside per round ${runs[k]!.outside.map((v) => v.toFixed(0)).join(' ')}`)
  return new Map(targets.map((x, k) => [x.name, { outside: median(runs[k]!.outside), localhost: med(runs[k]!.localhost), direct: med(runs[k]!.direct), runs: runs[k]! }]))
}

// ---- publishing with 1,000 endpoints already publishing -------------------------------------------

interface Scaling {
  /** Per endpoint, in creation order (index CONTAINERS is "one more"): client-side ProgramExternalConnectivity and CreateEndpoint+Join. */
  program: number[]
  ceJoin: number[]
  /** The agent's own ProgramExternalConnectivity handler time, same order. */
  agentProgram: number[]
  /** RevokeExternalConnectivity (client, agent) with nothing else published, and with CONTAINERS others publishing. */
  revokeAlone: number[]
  agentRevokeAlone: number[]
  revokeFull: number[]
  agentRevokeFull: number[]
  /** At the end: the store's last write (ms), its snapshot and journal sizes, its write counts, iptables-save lines in the host namespace. */
  storeWriteMs: number
  storeBytes: number
  journalBytes: number
  storeWrites: string
  iptablesLines: number
  /** One iptables-restore run with CONTAINERS + 1 endpoints' rules in place. */
  probeFull: Probe
}

const REVOKE_SAMPLES = 25

function revokeTimes (log: string): number[] {
  return pluginCalls(log).filter((c) => c.method === 'NetworkDriver.RevokeExternalConnectivity').map((c) => c.ms)
}

/**
 * Endpoints with one published port each, through the plugin socket: first a
 * few created and removed alone (removal with nothing else published), then
 * CONTAINERS + 1 kept, then REVOKE_SAMPLES of them removed (removal with
 * CONTAINERS others publishing). The rest goes with the namespace at teardown.
 */
async function scaling (t: Teardowns, d: Dockerd, agent: Agent, plugin: string): Promise<Scaling> {
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.90.0.0/20', 'scale'])
  const networkId = (await d.dockerOk(['network', 'inspect', '-f', '{{.Id}}', 'scale'])).trim()
  const inspect = await agent.cli(['network', 'inspect', 'scale'])
  if (inspect.code !== 0) throw new Error(`ferry network inspect scale failed: ${inspect.stderr}`)
  const poolId = (JSON.parse(inspect.stdout) as { poolId: string }).poolId
  const client = new PluginClient(agent.pluginSocket)
  t.teardown(() => client.close())
  const portmap = (port: number) => [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: port, HostPortEnd: port }]

  const revokeAlone: number[] = []
  const log0 = agent.logs().length
  for (let i = 0; i < 10; i++) {
    const s = await setupEndpoint(client, networkId, poolId, portmap(29000 + i))
    revokeAlone.push((await teardownEndpoint(client, s.ep)).revoke)
  }
  const log1 = agent.logs().length
  const program: number[] = []
  const ceJoin: number[] = []
  const eps: EndpointHandle[] = []
  for (let i = 0; i <= CONTAINERS; i++) {
    const s = await setupEndpoint(client, networkId, poolId, portmap(30000 + i))
    eps.push(s.ep)
    program.push(s.times.program)
    ceJoin.push(s.times.createEndpoint + s.times.join)
    if (i % 250 === 0 && i > 0) process.stdout.write(`  ${i} endpoints publishing…\n`)
  }
  const log2 = agent.logs().length
  const status = JSON.parse((await agent.cli(['status', '--json'])).stdout) as { store?: { lastWriteMs?: number, writes?: number, journalWrites?: number, snapshots?: number } }
  const storeBytes = statSync(join(agent.stateDir, 'state.json')).size
  const journalBytes = statSync(join(agent.stateDir, 'state.journal')).size
  const iptablesLines = nsExec(d.ns, ['iptables-save']).split('\n').length
  const probeFull = await restoreProbe(d.ns)
  const revokeFull: number[] = []
  for (const ep of eps.slice(0, REVOKE_SAMPLES)) revokeFull.push((await teardownEndpoint(client, ep)).revoke)
  const log = agent.logs()
  return {
    program,
    ceJoin,
    agentProgram: pluginCalls(log.slice(log1, log2)).filter((c) => c.method === 'NetworkDriver.ProgramExternalConnectivity').map((c) => c.ms),
    revokeAlone,
    agentRevokeAlone: revokeTimes(log.slice(log0, log1)),
    revokeFull,
    agentRevokeFull: revokeTimes(log.slice(log2)),
    storeWriteMs: status.store?.lastWriteMs ?? NaN,
    storeBytes,
    journalBytes,
    storeWrites: `${String(status.store?.writes)} writes, ${String(status.store?.journalWrites)} journaled, ${String(status.store?.snapshots)} snapshots`,
    iptablesLines,
    probeFull,
  }
}

/** Median of the (up to) 11 samples centred on index i: one figure per checkpoint, less noisy than one call. */
function around (xs: readonly number[], i: number): number {
  return median(xs.slice(Math.max(0, i - 5), Math.min(i + 6, CONTAINERS)))
}

// ---- phases ---------------------------------------------------------------------------------

interface Phase { d: Dockerd, host: string, outside: string }

async function phase (t: Teardowns, prefix: string, userlandProxy: boolean): Promise<Phase> {
  const host = netns(t, `${prefix}h`)
  const outside = netns(t, `${prefix}o`)
  link({ ns: host, ifname: 'uplink', cidr: `${HOST_IP}/24` }, { ns: outside, ifname: 'eth0', cidr: `${OUTSIDE_IP}/24` })
  nsExec(host, ['ip', 'route', 'add', 'default', 'via', OUTSIDE_IP])
  // IPv6 on the same link (no DAD: usable at once), for the dual-stack network's IPv6 throughput.
  nsExec(host, ['ip', '-6', 'addr', 'add', `${HOST_IP6}/64`, 'dev', 'uplink', 'nodad'])
  nsExec(outside, ['ip', '-6', 'addr', 'add', `${OUTSIDE_IP6}/64`, 'dev', 'eth0', 'nodad'])
  nsExec(host, ['ip', '-6', 'route', 'add', 'default', 'via', OUTSIDE_IP6])
  const d = await startDockerd(t, { ns: host, userlandProxy })
  await ensureBusyboxImage(d)
  await d.dockerOk(['network', 'create', '-d', 'bridge', '--subnet', '10.88.0.0/24', 'bnet'])
  return { d, host, outside }
}

function rangeRow (name: string, r: RangeResult): string[] {
  return [name, ms(r.runMs), ms(r.rmMs), String(r.processesAdded), String(r.proxies), mib(r.proxyRssKiB), mib(r.proxyPssKiB), String(r.dnatRules),
    `${mib(r.dockerdRssKiB[0])} → ${mib(r.dockerdRssKiB[1])}`]
}

const ratio = (a: number | undefined, b: number | undefined): string => a === undefined || b === undefined ? '-' : (a / b).toFixed(2)
const goal = (ok: boolean): string => ok ? 'goal met' : 'goal MISSED'

/** The dual-stack network's targets: one container reached over IPv4, one over IPv6, both also without NAT from the host. */
async function dualStackTargets (p: Phase, plugin: string): Promise<TputTarget[]> {
  await p.d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', '--subnet', '10.87.0.0/24', '--subnet', 'fd00:87::/64', 'fnet6'])
  return [{ name: FERRY_DUAL4, d: p.d, outside: p.outside, net: 'fnet6', direct: true }, { name: FERRY_DUAL6, d: p.d, outside: p.outside, net: 'fnet6', ip6: true, direct: true }]
}

/** IPv6 / IPv4 through a published port of the dual-stack network, per round (median, spread), and the kernel's own ratio without NAT in the same rounds. */
function dualStackLine (tput: ReadonlyMap<string, Throughput>): string {
  const [d4, d6] = [tput.get(FERRY_DUAL4)!, tput.get(FERRY_DUAL6)!]
  const nat = pairedRatio(d4.runs.outside, d6.runs.outside)
  const direct = pairedRatio(d4.runs.direct, d6.runs.direct)
  const v4only = tput.get(FERRY)
  return `throughput over IPv6 / over IPv4 through a published port of a dual-stack ferry network, from outside: ${pairedText(nat)} ` +
    `(medians ${d6.outside.toFixed(0)} vs ${d4.outside.toFixed(0)} MiB/s; goal ≥ 0.95: ${goal(nat.median >= 0.95)})` +
    `${v4only === undefined ? '' : `; IPv4-only ferry network ${v4only.outside.toFixed(0)} MiB/s`}; ` +
    `the kernel's own ratio without NAT (host to the container's address), same rounds: ${pairedText(direct)} (${d6.direct?.toFixed(0) ?? '-'} vs ${d4.direct?.toFixed(0) ?? '-'} MiB/s); ` +
    `firewall backend ${argStr('firewall-backend') ?? 'iptables (the harness default)'}; ${load()}`
}

/** `--ipv6-only`: one engine with the agent, the dual-stack network, its two targets measured in interleaved rounds. */
async function ipv6Only (t: Teardowns): Promise<void> {
  const p = await phase(t, 'fypb1', false)
  const plugin = `fypb${process.pid}`
  await startAgent(t, { ns: p.host, pluginName: plugin, dockerd: p.d, args: benchAgentArgs() })
  const tput = await throughput(t, await dualStackTargets(p, plugin))
  section('summary')
  console.log(dualStackLine(tput))
}
const times = (slow: number | undefined, fast: number): string => slow === undefined ? '-' : `×${(slow / fast).toFixed(1)}`

await runBench(async (t) => {
  const started = Date.now()
  console.log(`ferry port-publishing benchmark: ${IPV6_ONLY ? 'IPv6 / IPv4 through a published port of a dual-stack network only' : `a ${RANGE}-port range, ${CONTAINERS} endpoints with one port each`}, ${MB} MiB transfers ×${REPS}${FERRY_ONLY ? ', ferry only' : ''}${argFlag('state-tmpfs') ? ', agent state on tmpfs' : ''}; agent ${benchAgentArgs().join(' ')}; ${load()}`)
  const ranges = new Map<string, RangeResult>()
  const stamp = (what: string): void => console.log(`  [${((Date.now() - started) / 1000).toFixed(0)} s] ${what}`)
  if (IPV6_ONLY) {
    await ipv6Only(t)
    console.log(`benchmark time: ${((Date.now() - started) / 1000).toFixed(0)} s`)
    return
  }

  const targets: TputTarget[] = []
  if (!FERRY_ONLY) {
    section('phase 1: built-in bridge driver, userland proxy off')
    const p = await phase(t, 'fypb0', false)
    ranges.set(OFF, await rangeRun(p.d, 'bnet', 'range-b0'))
    stamp('range done')
    targets.push({ name: OFF, d: p.d, outside: p.outside, net: 'bnet' })
  }

  section(FERRY_ONLY ? 'ferry' : 'phase 2: built-in bridge driver with the userland proxy on, and ferry on the same engine (the first engine stays, idle)')
  const scope = t.scope()
  const p = await phase(scope, 'fypb1', true)
  const plugin = `fypb${process.pid}`
  const stateDir = benchStateDir(scope)
  const agent = await startAgent(scope, { ns: p.host, pluginName: plugin, dockerd: p.d, args: benchAgentArgs(), ...(stateDir !== undefined ? { stateDir } : {}) })
  keepAgentLog(scope, agent)
  if (comm(agent.pid() ?? 0) !== 'node') console.log(`  note: the agent's pid runs ${comm(agent.pid() ?? 0)}, not node: its RSS figures are not the agent's`)
  await p.d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.89.0.0/24', 'fnet'])
  ranges.set(FERRY, await rangeRun(p.d, 'fnet', 'range-f', agent))
  const probe0 = await restoreProbe(p.host)
  stamp('ferry range done')
  if (!FERRY_ONLY) {
    ranges.set(ON, await rangeRun(p.d, 'bnet', 'range-b1'))
    stamp('builtin range done')
    targets.push({ name: ON, d: p.d, outside: p.outside, net: 'bnet' })
  }
  targets.push({ name: FERRY, d: p.d, outside: p.outside, net: 'fnet' }, ...await dualStackTargets(p, plugin))
  const tput = await throughput(scope, targets)
  stamp('throughput done')
  const sc = await scaling(scope, p.d, agent, plugin)
  stamp('scaling done')
  await scope.run()
  stamp('cleaned up')

  // ---- report ----
  section(`a container publishing ${RANGE} ports (-p ${FIRST_PORT}-${FIRST_PORT + RANGE - 1}:${FIRST_PORT}-${FIRST_PORT + RANGE - 1})`)
  console.log(table([
    ['', 'run -d ms', 'rm -f ms', '+procs', 'proxies', 'proxy RSS', 'proxy PSS', 'DNAT rules', 'dockerd RSS'],
    ...[...ranges].map(([name, r]) => rangeRow(name, r)),
  ]))
  console.log('(+procs: processes added to the host namespace by docker run, the container\'s shim included; RSS counts shared pages in every process, PSS divides them)')
  const f = ranges.get(FERRY)!
  const on = ranges.get(ON)
  const off = ranges.get(OFF)
  const a = f.agent!
  const spread = (xs: number[]): string => `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}`
  const programMed = median(a.programAll)
  const revokeMed = median(a.revokeAll)
  console.log(`ferry agent: ProgramExternalConnectivity median ${ms(programMed)} ms (${spread(a.programAll)}), RevokeExternalConnectivity median ${ms(revokeMed)} ms (${spread(a.revokeAll)}) ` +
    `over ${a.programAll.length} runs of the container (its own handler time); first run ${ms(a.programMs)} / ${ms(a.revokeMs)} ms; ` +
    `iptables-restore runs: ${a.restoreRuns[0]} to publish, ${a.restoreRuns[1]} to remove; all its plugin calls for the container: ${ms(a.allCallsMs)} ms`)
  console.log(`ferry agent RSS: ${mib(a.rssKiB[0])} before, ${mib(a.rssKiB[1])} published, ${mib(a.rssKiB[2])} removed`)
  console.log(`the floor: one iptables-restore run spawned from node in that namespace (nft backend), adding one rule ${ms(probe0.add)} ms, deleting one ${ms(probe0.del)} ms (p50 of 10)`)

  section(`throughput of one published port (MiB/s, median of ${REPS} interleaved rounds × ${MB} MiB; node server in the container, node client)`)
  console.log(table([['', 'from outside', 'from 127.0.0.1', 'host to container, no NAT'], ...[...tput].map(([n, x]) => [n, x.outside.toFixed(0), x.localhost?.toFixed(0) ?? '-', x.direct?.toFixed(0) ?? '-'])]))

  section(`publishing one port while N endpoints publish one each (ms; median of the 11 calls around N, single call for "one more")`)
  const checkpoints = [0, 99, 499, CONTAINERS - 1].filter((i, k, all) => i >= 0 && i < CONTAINERS && all.indexOf(i) === k)
  console.log(table([
    ['', 'ProgramExtConn (client)', 'ProgramExtConn (agent)', 'CreateEndpoint+Join (client)'],
    ...checkpoints.map((i) => [`#${i + 1} (N=${i})`, ms(around(sc.program, i)), ms(around(sc.agentProgram, i)), ms(around(sc.ceJoin, i))]),
    [`one more (N=${CONTAINERS})`, ms(sc.program[CONTAINERS]!), ms(sc.agentProgram[CONTAINERS]!), ms(sc.ceJoin[CONTAINERS]!)],
  ]))
  console.log(table([
    ['RevokeExternalConnectivity', 'client p50', 'agent p50', 'n'],
    ['nothing else published', ms(median(sc.revokeAlone)), ms(median(sc.agentRevokeAlone)), String(sc.revokeAlone.length)],
    [`${CONTAINERS} others publishing`, ms(median(sc.revokeFull)), ms(median(sc.agentRevokeFull)), String(sc.revokeFull.length)],
  ]))
  console.log(`at N=${CONTAINERS + 1}: store snapshot ${(sc.storeBytes / 1024).toFixed(0)} KiB + journal ${(sc.journalBytes / 1024).toFixed(0)} KiB (${sc.storeWrites}), last write ${ms(sc.storeWriteMs)} ms; iptables-save of the host namespace: ${sc.iptablesLines} lines; ` +
    `one iptables-restore run: add ${ms(sc.probeFull.add)} ms, delete ${ms(sc.probeFull.del)} ms (at N=0: ${ms(probe0.add)}, ${ms(probe0.del)})`)
  const head = (xs: number[]): number => median(xs.slice(0, 50))
  const tail = (xs: number[]): number => median(xs.slice(CONTAINERS - 50, CONTAINERS))

  section('summary')
  const onOk = on === undefined ? '' : `; goal ≥ 20: ${goal(on.runMs / f.runMs >= 20)}`
  console.log(`docker run -d with ${RANGE} ports: ferry ${ms(f.runMs)} ms, builtin proxy on ${ms(on?.runMs ?? NaN)} ms (${times(on?.runMs, f.runMs)} faster${onOk}), proxy off ${ms(off?.runMs ?? NaN)} ms (${times(off?.runMs, f.runMs)})`)
  console.log(`docker rm -f of it: ferry ${ms(f.rmMs)} ms, builtin proxy on ${ms(on?.rmMs ?? NaN)} ms (${times(on?.rmMs, f.rmMs)}), proxy off ${ms(off?.rmMs ?? NaN)} ms (${times(off?.rmMs, f.rmMs)})`)
  console.log(`agent's own time for the range (median of ${a.programAll.length} runs): publish ${ms(programMed)} ms (goal ≤ 20: ${goal(programMed <= 20)}), remove ${ms(revokeMed)} ms (goal ≤ 20: ${goal(revokeMed <= 20)}); ` +
    `${a.restoreRuns[0]}+${a.restoreRuns[1]} iptables-restore runs (one alone: ${ms(probe0.add)} ms to add a rule, ${ms(probe0.del)} ms to delete one), ${f.proxies} proxies, ${f.dnatRules} DNAT rule(s), ${f.processesAdded} process(es) added`)
  if (on !== undefined) console.log(`memory: builtin proxy on ${on.proxies} docker-proxy processes, RSS ${mib(on.proxyRssKiB)} (PSS ${mib(on.proxyPssKiB)}); ferry agent RSS +${mib(a.rssKiB[1] - a.rssKiB[0])}`)
  const tf = tput.get(FERRY)!
  console.log(`throughput ratio ferry/builtin proxy on: outside ${ratio(tf.outside, tput.get(ON)?.outside)}, localhost ${ratio(tf.localhost, tput.get(ON)?.localhost)}; ` +
    `ferry/builtin proxy off: outside ${ratio(tf.outside, tput.get(OFF)?.outside)}, localhost ${ratio(tf.localhost, tput.get(OFF)?.localhost)}`)
  console.log(dualStackLine(tput))
  console.log(`one more port with ${CONTAINERS} publishing: ${ms(sc.program[CONTAINERS]!)} ms client, ${ms(sc.agentProgram[CONTAINERS]!)} ms agent; ` +
    `publish median of the first 50 ${ms(head(sc.program))} ms, of the last 50 ${ms(tail(sc.program))} ms (agent ${ms(head(sc.agentProgram))} → ${ms(tail(sc.agentProgram))} ms); ` +
    `remove ${ms(median(sc.revokeAlone))} → ${ms(median(sc.revokeFull))} ms`)
  console.log(`benchmark time: ${((Date.now() - started) / 1000).toFixed(0)} s; ${load()}`)
})
