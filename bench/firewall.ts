/**
 * `npm run bench:firewall`: the cost of one container's publications for both
 * firewall backends side by side, as more and more ports are already published.
 *
 * The FirewallDriver is driven directly (not through the plugin API or the
 * engine): each backend runs in a child process inside a fresh network namespace
 * (test/harness/nsnode.ts), exactly the driver the agent uses. For 0, 1,000 and
 * 10,000 ports already published (by 1 endpoint per 10 ports), it times
 * setEndpoint/removeEndpoint of one endpoint publishing 1 TCP port and of one
 * publishing a 200-port TCP range (`--samples` each, default 50), inside the
 * child (ferry's planning + the iptables-restore or nft run), and reports p50/p99.
 * Then the packet path: TCP connections per second through a published port from
 * another namespace, at 0 and at 10,000 published ports, and the driver
 * process's RSS, and the agent's reconcile with nothing to repair (quiet, and right after someone else's
 * nftables commit).
 * The anchor, in the same run (`--docker-samples 0` skips it): Docker's built-in
 * bridge driver (the test engine, Debian's 20.10 with iptables, `--userland-proxy=false`)
 * publishing the same 1 port and 200-port range at the same sizes, the existing ports
 * made as its own rules (the lines it writes for a real `-p`, read back with
 * iptables-save, repeated for made-up containers on the network's subnet, one
 * iptables-restore per size), timed from the engine's events net of a container
 * without `-p`: bench/firewall-docker.ts says what exactly, and why. Fewer samples
 * (`--docker-samples 10`, the range in `--docker-range-samples 3,3,0` of them, one
 * count per size, the last repeated: the engine runs iptables processes for every
 * port of the range, each way, about 12 s and 26 s at 1,000 ports and some minutes
 * at 10,000, so not there by default); `--docker-sizes` (default: `--sizes`). Then
 * the ratio ferry nftables / Docker per cell.
 * Last, dual-stack (`--dual-mb 0` skips it): publish/unpublish of one port on an
 * IPv4-only endpoint against the same port on a dual-stack one (a binding per
 * family), and the throughput of one published port over IPv6 against IPv4 in
 * the same run (interleaved rounds, from an outside namespace, `--dual-mb` MiB each).
 *
 *   npm run bench:firewall [-- --samples 50 --sizes 0,1000,10000 --backends nftables,iptables --connections 2000 --dual-mb 256 --dual-reps 5 --watch 1
 *                              --docker-samples 10 --docker-range-samples 3,3,0 --docker-sizes 0,1000,10000]
 *
 * `--watch 0`: the nftables driver without its watcher of nftables events (the agent runs it).
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { STREAM_CLIENT, STREAM_SERVER, argInt, argStr, load, median, ms, quantile, runBench, section, table, rssKiB, type Teardowns } from './lib.js'
import { NODE } from '../test/harness/agent.js'
import { execFile } from '../src/kernel/exec.js'
import { link, netns, nsExec, sh } from '../test/harness/netns.js'
import { nsNode, type CallCost, type NsNode } from '../test/harness/nsnode.js'
import { FAM, addBridges, container, dualContainer, dualEndpoint, dualHost, dualNet, dualOutside, waitListening } from '../test/harness/firewall.js'
import type { FirewallDriver, FirewallState, NatEndpoint, NatNetwork } from '../src/nat/types.js'
import type { PortBinding } from '../src/model/types.js'
import { benchDocker, net } from './firewall-docker.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

type Backend = 'nftables' | 'iptables'
type Driver = NsNode<FirewallDriver & { stats (): { planMs: number, restoreMs: number, lines: number, reconciled: boolean }, state (): FirewallState }>
/** The nftables driver's watcher of nftables events (in its process), which the agent runs. */
type Watching = NsNode<{ startWatch (): void }>

const NET: NatNetwork = { id: 'bench'.padEnd(64, '0'), bridge: 'fy-bench', subnet: '10.64.0.0/16', gateway: '10.64.0.1', icc: true, masquerade: true, internal: false }
const SERVER_IP = '10.64.255.2'

function tcp (hostPort: number, ip: string, containerPort: number, len = 1): PortBinding {
  return { proto: 'tcp', hostIp: '', hostPort, hostPortEnd: hostPort + len - 1, containerIp: ip, containerPort, containerPortEnd: containerPort + len - 1 }
}

/** `ports` published by endpoints of ten ports each, host ports from 10000 up (sparse: every other port). */
function existing (ports: number): NatEndpoint[] {
  const out: NatEndpoint[] = []
  for (let i = 0; i < ports / 10; i++) {
    const address = `10.64.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`
    out.push({ id: `x${String(i).padStart(6, '0')}`.padEnd(64, '0'), networkId: NET.id, address, ports: Array.from({ length: 10 }, (_, j) => tcp(10000 + 2 * (10 * i + j), address, 80 + j)) })
  }
  return out
}

const ONE: NatEndpoint = { id: 'one'.padEnd(64, '0'), networkId: NET.id, address: '10.64.200.2', ports: [tcp(9000, '10.64.200.2', 80)] }
const RANGE: NatEndpoint = { id: 'range'.padEnd(64, '0'), networkId: NET.id, address: '10.64.200.3', ports: [tcp(40000, '10.64.200.3', 40000, 200)] }
const SERVED: NatEndpoint = { id: 'served'.padEnd(64, '0'), networkId: NET.id, address: SERVER_IP, ports: [tcp(8080, SERVER_IP, 80)] }

/** One timed change: total ms in the driver's process, ferry's planning, the nft/iptables run, and what else the process did meanwhile. */
interface Timing { ms: number, planMs: number, restoreMs: number, cost?: CallCost, sched?: Sched }

/** Scheduler time of the driver process and of its `nft -i` child during one change: ms run and ms waited for a CPU. */
interface Sched { selfWaitMs: number, nftRunMs: number, nftWaitMs: number }

/** /proc/<pid>/schedstat: ns on a CPU, ns runnable but waiting for one; undefined when gone. */
function schedstat (pid: number | undefined): [number, number] | undefined {
  if (pid === undefined) return undefined
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number)
    return [run!, wait!]
  } catch { return undefined }
}

/** The driver process's `nft` child (its long-running `nft -i` session), if any. */
function nftChild (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (c !== '' && readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'nft') return Number(c)
    }
  } catch { /* gone */ }
  return undefined
}

async function sample (d: Driver, ep: NatEndpoint, n: number): Promise<{ add: number[], rm: number[], plan: number[], lines: number, timings: Timing[] }> {
  const add: number[] = []
  const rm: number[] = []
  const plan: number[] = []
  const timings: Timing[] = []
  let lines = 0
  let nft: number | undefined
  const once = async (call: () => Promise<{ ms: number, cost?: CallCost }>): Promise<number> => {
    nft ??= nftChild(d.pid)
    const [self0, nft0] = [schedstat(d.pid), schedstat(nft)]
    const r = await call()
    const [self1, nft1] = [schedstat(d.pid), schedstat(nft)]
    const sched = self0 && self1 && nft0 && nft1
      ? { selfWaitMs: (self1[1] - self0[1]) / 1e6, nftRunMs: (nft1[0] - nft0[0]) / 1e6, nftWaitMs: (nft1[1] - nft0[1]) / 1e6 }
      : undefined
    if (nft !== undefined && nft1 === undefined) nft = undefined // a new session: found again next time
    const s = await d.call('stats')
    plan.push(s.planMs)
    timings.push({ ms: r.ms, planMs: s.planMs, restoreMs: s.restoreMs, cost: r.cost, sched })
    lines = s.lines
    return r.ms
  }
  for (let i = 0; i < n; i++) {
    add.push(await once(() => d.timed('setEndpoint', [ep])))
    const l = lines
    rm.push(await once(() => d.timed('removeEndpoint', [ep.id])))
    lines = l
  }
  return { add, rm, plan, lines, timings }
}

/** The changes above `limitMs`, each as total = planning + nft run + the rest, with the process's CPU, preemptions and GC meanwhile. */
function outliers (timings: readonly Timing[], limitMs: number): string {
  const over = timings.filter((x) => x.ms > limitMs).sort((a, b) => b.ms - a.ms)
  if (over.length === 0) return 'none'
  return `${over.length} of ${timings.length}: ` + over.slice(0, 8).map((x) =>
    `${x.ms.toFixed(1)} = plan ${x.planMs.toFixed(1)} + nft ${x.restoreMs.toFixed(1)} + rest ${(x.ms - x.planMs - x.restoreMs).toFixed(1)}` +
    (x.cost === undefined ? '' : ` (cpu ${x.cost.cpuMs.toFixed(1)}, preempted ${x.cost.ivcsw}×, gc ${x.cost.gcMs.toFixed(1)}`) +
    (x.sched === undefined ? '' : `, waited for a CPU ${x.sched.selfWaitMs.toFixed(1)}; nft ran ${x.sched.nftRunMs.toFixed(1)}, waited ${x.sched.nftWaitMs.toFixed(1)}`) +
    (x.cost === undefined ? '' : ')')).join('; ')
}

/**
 * Median ms of the agent's reconcile with nothing to repair (every interval): when nothing was committed
 * since (nftables: the generation unchanged, the table not read), and right after someone else's commit
 * (a table of theirs added or deleted: nftables must read its table back; iptables always reads its chains).
 */
async function reconcileMs (d: Driver, ns: string, n = 10): Promise<{ quiet: number, other: number, quietGc: number }> {
  // With a revision, as the agent's (its records' revision): the same state is not compared again.
  const state: FirewallState = { ...await d.call('state'), revision: 1 }
  await d.call('reconcile', [state]) // the first with this revision compares
  // The quiet ones in a row, as the agent's periodic checks come when nobody else commits (each right after a
  // full read would pay for the garbage of that read's parse: GC pauses of several ms at 10,000 ports).
  const quiet: number[] = []
  const quietGc: number[] = []
  for (let i = 0; i < n; i++) {
    const r = await d.timed('reconcile', [state])
    quiet.push(r.ms)
    quietGc.push(r.cost?.gcMs ?? NaN)
  }
  const other: number[] = []
  for (let i = 0; i < n; i++) {
    nsExec(ns, ['nft', i % 2 === 0 ? 'add' : 'delete', 'table', 'inet', 'bench_other'])
    other.push((await d.timed('reconcile', [state])).ms)
  }
  if (n % 2 === 1) nsExec(ns, ['nft', 'delete', 'table', 'inet', 'bench_other'])
  return { quiet: median(quiet), other: median(other), quietGc: Math.max(...quietGc) }
}

/** Sequential TCP connections from `ns` to ip:port for a fixed count; connections per second. */
function connectionRate (ns: string, ip: string, port: number, count: number): number {
  const code = `const net=require('net');let n=0;const t0=process.hrtime.bigint();const go=()=>{const s=net.connect(${port},'${ip}');s.on('data',()=>{});s.on('error',(e)=>{console.error(e.message);process.exit(1)});s.on('close',()=>{if(++n<${count})go();else{console.log(String(${count}/(Number(process.hrtime.bigint()-t0)/1e9)))}})};go()`
  return Number(nsExec(ns, ['env', '-u', 'NODE_OPTIONS', process.execPath, '-e', code], { timeoutMs: 300_000 }).trim())
}

/** Per size, the samples of one port and of the range (add and remove, ms): for the ratio to the anchor. */
type Cells = Map<number, { one: { add: number[], rm: number[] }, range: { add: number[], rm: number[] } }>

async function benchBackend (t: Teardowns, backend: Backend, sizes: number[], samples: number, connections: number, watch: boolean, cells: Cells): Promise<string[][]> {
  const scope = t.scope()
  const host = netns(scope, 'fyfb')
  nsExec(host, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  addBridges(host, [{ name: NET.bridge, cidr: '10.64.0.1/16' }])
  const outside = netns(scope, 'fyfo')
  link({ ns: host, ifname: 'uplink', cidr: '198.51.100.1/24' }, { ns: outside, ifname: 'eth0', cidr: '198.51.100.2/24' })
  const server = container(scope, host, NET.bridge, `${SERVER_IP}/16`, '10.64.0.1', 'fyhsrv')
  const srv = spawn('ip', ['netns', 'exec', server, 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e',
    "require('net').createServer((s)=>s.end('x')).listen(80)"], { stdio: 'ignore' })
  scope.teardown(() => { srv.kill('SIGKILL') })
  await waitListening(server, 80)

  const d = await nsNode(scope, host, backend === 'nftables'
    ? { module: 'dist/nat/nftables.js', factory: 'openNftablesDriver' }
    : { module: 'dist/nat/iptables.js', factory: 'openIptablesDriver' }) as Driver
  if (backend === 'nftables' && watch) await (d as unknown as Watching).call('startWatch')
  await d.call('addNetwork', [NET])
  const rows: string[][] = []
  for (const size of sizes) {
    const t0 = Date.now()
    await d.call('reconcile', [{ networks: [NET], endpoints: [...existing(size), SERVED] }])
    const setupMs = Date.now() - t0
    const one = await sample(d, ONE, samples)
    const range = await sample(d, RANGE, samples)
    cells.set(size, { one, range })
    let rate = '-'
    if (connections > 0 && (size === sizes[0] || size === sizes[sizes.length - 1])) {
      rate = connectionRate(outside, '198.51.100.1', 8080, connections).toFixed(0)
    }
    const check = await reconcileMs(d, host)
    const rss = d.pid === undefined ? '-' : `${(childRss(d.pid) / 1024).toFixed(0)} MiB`
    rows.push([backend, size.toLocaleString('en'), ms(quantile(one.add, 0.5)), ms(quantile(one.add, 0.99)), ms(quantile(one.rm, 0.5)), ms(quantile(one.rm, 0.99)),
      ms(quantile(range.add, 0.5)), ms(quantile(range.add, 0.99)), ms(quantile(range.rm, 0.5)), ms(quantile(range.rm, 0.99)),
      `${range.lines}`, ms(quantile([...one.plan, ...range.plan], 0.99)), ms(check.quiet), ms(check.other), rate, rss, `${(setupMs / 1000).toFixed(1)} s`])
    console.log(`  ${backend} with ${size} ports published: done (${load()}); quiet reconciles' longest GC pause ${check.quietGc.toFixed(1)} ms; ` +
      `changes over 5 ms: ${outliers([...one.timings, ...range.timings], 5)}`)
  }
  await d.call('teardown')
  await scope.run()
  return rows
}

/** RSS of the node child under `ip netns exec` (the pid given is the `ip` process, which execs node). */
function childRss (pid: number): number {
  try { return rssKiB(pid) } catch { return NaN }
}

// ---- dual-stack ------------------------------------------------------------------------------

/** MiB/s of one transfer of `mb` MiB from `ns` to ip:port. */
async function transfer (ns: string, ip: string, port: number, mb: number): Promise<number> {
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, '-e', STREAM_CLIENT, ip, String(port), '60000'], { timeoutMs: 70_000 })
  const out = JSON.parse(r.stdout) as { bytes: number, ms: number, err?: string }
  if (out.bytes !== mb * 1024 * 1024) throw new Error(`transfer to ${ip}:${port} got ${out.bytes} bytes (${out.err ?? 'short'})`)
  return out.bytes / 1024 / 1024 / (out.ms / 1000)
}

async function benchDual (t: Teardowns, backend: Backend, samples: number, mb: number, reps: number): Promise<string[]> {
  const scope = t.scope()
  const host = dualHost(scope, [1], 'fyfd')
  const outside = dualOutside(scope, host)
  const server = dualContainer(scope, host, 1, 2, 'fyhsrv')
  const srv = spawn('ip', ['netns', 'exec', server, ...NODE, '-e', STREAM_SERVER, String(mb * 1024 * 1024), '9000', '::'], { stdio: 'ignore' })
  scope.teardown(() => { srv.kill('SIGKILL') })
  await waitListening(server, 9000)
  const d = await nsNode(scope, host, backend === 'nftables'
    ? { module: 'dist/nat/nftables.js', factory: 'openNftablesDriver' }
    : { module: 'dist/nat/iptables.js', factory: 'openIptablesDriver' }) as Driver
  const n1 = dualNet(1)
  await d.call('addNetwork', [n1])
  const one = (f: 4 | 6, ip: string): PortBinding[] => [tcp(9100, ip, 80)]
  const v4only = { ...dualEndpoint('one4', n1, 1, 3, (f, ip) => (f === 4 ? one(f, ip) : [])), address6: undefined }
  const dual = dualEndpoint('one46', n1, 1, 4, one)
  const s4 = await sample(d, v4only, samples)
  const s46 = await sample(d, dual, samples)
  await d.call('setEndpoint', [dualEndpoint('served', n1, 1, 2, (_f, ip) => [tcp(8080, ip, 9000)])])
  const runs: Record<4 | 6, number[]> = { 4: [], 6: [] }
  if (mb > 0) {
    for (const f of [4, 6] as const) await transfer(outside, FAM[f].up(1), 8080, mb) // warm-up
    for (let i = 0; i < reps; i++) for (const f of [4, 6] as const) runs[f].push(await transfer(outside, FAM[f].up(1), 8080, mb))
  }
  await d.call('teardown')
  await scope.run()
  const [t4, t6] = [median(runs[4]), median(runs[6])]
  console.log(`  ${backend} dual-stack: done (${load()}); MiB/s per round, IPv4: ${runs[4].map((x) => x.toFixed(0)).join(' ')}; IPv6: ${runs[6].map((x) => x.toFixed(0)).join(' ')}`)
  return [backend, ms(quantile(s4.add, 0.5)), ms(quantile(s4.rm, 0.5)), ms(quantile(s46.add, 0.5)), ms(quantile(s46.rm, 0.5)), `${s46.lines}`,
    mb > 0 ? t4.toFixed(0) : '-', mb > 0 ? t6.toFixed(0) : '-', mb > 0 ? (t6 / t4).toFixed(3) : '-']
}

await runBench(async (t) => {
  if (process.getuid?.() !== 0) throw new Error('bench:firewall must run as root (namespaces)')
  sh(['nft', '--version'])
  const samples = argInt('samples', 50)
  const connections = argInt('connections', 2000)
  const sizes = (argStr('sizes') ?? '0,1000,10000').split(',').map(Number)
  const backends = (argStr('backends') ?? 'nftables,iptables').split(',') as Backend[]
  section(`firewall: one container's publications among already published ports (${samples} samples each; ${load()})`)
  console.log('the FirewallDriver driven directly in a namespace (not through the plugin API); times inside the driver process: planning + one iptables-restore or nft run')
  const rows: string[][] = [['backend', 'published', '1 port add p50', 'p99', 'rm p50', 'p99', '200-range add p50', 'p99', 'rm p50', 'p99', 'lines', 'ferry p99', 'reconcile', 'after other', 'conn/s', 'RSS', 'setup']]
  const watch = argInt('watch', 1) === 1
  const nft: Cells = new Map()
  for (const b of backends) rows.push(...await benchBackend(t, b, sizes, samples, connections, watch, b === 'nftables' ? nft : new Map()))
  console.log(table(rows))
  console.log('lines: rules (iptables) or elements (nftables) the 200-port range adds; ferry p99: ferry\'s own planning and rendering of every change above ' +
    '(the rest is the iptables-restore or nft process); reconcile: median of 10 reconciles with nothing to repair, as the agent runs every ' +
    '--reconcile-interval, when nothing was committed since (nftables: generation unchanged, table not read; iptables: chains read back); ' +
    'after other: the same right after someone else\'s nftables commit (another table added or deleted: nftables reads its table back); conn/s: sequential TCP connections through a published port from another namespace')
  const dockerSamples = argInt('docker-samples', 10)
  if (dockerSamples > 0) {
    const rangeSamples = (argStr('docker-range-samples') ?? '3,3,0').split(',').map(Number)
    const dockerSizes = (argStr('docker-sizes') ?? sizes.join(',')).split(',').map(Number)
    section(`the anchor: Docker's built-in driver (proxy off), the engine's own events, net of the same container without -p (${dockerSamples} rounds, the range in ${rangeSamples.join(' / ')} of them; ${load()})`)
    const cells = await benchDocker(t, dockerSizes, dockerSamples, (size) => rangeSamples[dockerSizes.indexOf(size)] ?? rangeSamples[rangeSamples.length - 1]!)
    const drows: string[][] = [['published', '1 port add p50', 'p99', 'rm p50', 'p99', '200-range add p50', 'p99', 'rm p50', 'p99', 'rules', 'CLI run -d: none / 1 / range', 'CLI rm -f: none / 1 / range']]
    const rrows: string[][] = [['published', '1 port add p50', 'p99', 'rm p50', 'p99', '200-range add p50', 'p99', 'rm p50', 'p99']]
    const cli = (c: typeof cells[number], k: 'cliRun' | 'cliRm'): string => [c.plain, c.one, c.range].map((v) => v[k].length > 0 ? ms(median(v[k])) : '-').join(' / ')
    for (const c of cells) {
      const figs = [net(c.one.add, c.plain.add), net(c.one.rm, c.plain.rm), net(c.range.add, c.plain.add), net(c.range.rm, c.plain.rm)]
      drows.push([c.size.toLocaleString('en'), ...figs.flatMap((f) => [ms(f.p50), ms(f.p99)]), String(c.rangeRules), cli(c, 'cliRun'), cli(c, 'cliRm')])
      const f = nft.get(c.size)
      if (f === undefined) continue
      const ours = [f.one.add, f.one.rm, f.range.add, f.range.rm]
      rrows.push([c.size.toLocaleString('en'), ...figs.flatMap((d, k) => [quantile(ours[k]!, 0.5) / d.p50, quantile(ours[k]!, 0.99) / d.p99].map((x) => Number.isFinite(x) ? x.toPrecision(2) : '-'))])
    }
    console.log(table(drows))
    console.log('Docker: ms from the container\'s create event to its network connect event (publishing) and from die to network disconnect (removal), ' +
      'minus the median of the same for a container without -p in the same rounds (p99 minus that median too); rules: iptables rules the range adds; ' +
      'CLI: medians of the docker CLI\'s wall time, not net of anything')
    if (rrows.length > 1) {
      section('ratio ferry nftables / Docker, per cell (p50 to p50, p99 to p99; below 1: ferry faster)')
      console.log(table(rrows))
    }
  }
  const dualMb = argInt('dual-mb', 256)
  const dualReps = argInt('dual-reps', 5)
  section(`dual-stack: one port on an IPv4-only endpoint vs on a dual-stack one (${samples} samples), and throughput over IPv6 vs IPv4 (MiB/s, median of ${dualReps} interleaved rounds × ${dualMb} MiB)`)
  const dual: string[][] = [['backend', 'v4 add p50', 'rm p50', 'dual add p50', 'rm p50', 'dual lines', 'IPv4 MiB/s', 'IPv6 MiB/s', 'IPv6/IPv4']]
  for (const b of backends) dual.push(await benchDual(t, b, samples, dualMb, dualReps))
  console.log(table(dual))
  console.log('dual lines: rules (iptables + ip6tables) or elements (nftables) the dual-stack port adds; throughput: node client in an outside namespace to the host\'s uplink address, DNAT to a node server in the container')
})
