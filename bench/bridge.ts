/**
 * Bridge-network benchmark (issue 2), not a test:
 *
 *   npm run bench:bridge [-- --rounds 30 --samples 200 --agent-log FILE --state-tmpfs --reconcile-interval 0
 *                            --engine-root DIR --runs-only]
 *
 * In one "host" network namespace with one dockerd and one ferry agent:
 *
 * 1. `docker run --rm bb true` wall time on a ferry network, on a dual-stack ferry
 *    network (`--ipv6`), on networks of Docker's built-in bridge driver (IPv4-only and
 *    dual-stack) and with `--net none`, interleaved (each round runs the five in a rotated
 *    order), after a warm-up: p50, p90, the ratio ferry/built-in (goal ≤ 1.05) and the
 *    ratio dual-stack/IPv4-only (issue #15's goal ≤ 1.10), for ferry and for the built-in
 *    driver (what the engine itself adds for IPv6). The agent's own handler times for the
 *    calls of those runs come from its debug log.
 *    The same without the engine: `ferry run --net N -- true` on an IPv4-only and on a
 *    dual-stack network made with `ferry network create`, interleaved: ferry's own
 *    dual-stack cost, apart from the engine's (Docker 20.10 re-executes dockerd for
 *    each IPv6 sysctl of a sandbox: README, Benchmarks).
 * 2. The agent's latency for CreateEndpoint+Join, driving the plugin socket
 *    exactly as dockerd does (RequestAddress → CreateEndpoint → Join →
 *    ProgramExternalConnectivity → EndpointOperInfo ×2, then
 *    RevokeExternalConnectivity → Leave → DeleteEndpoint → ReleaseAddress) on a
 *    network created through the engine: p50/p99 over `--samples` (goal p50 ≤ 5 ms).
 *
 * `--engine-root DIR`: another Docker engine instead of the host's, the one in DIR/.ferry-engine/bin
 * (scripts/engine-root.sh builds DIR once: Debian 13's docker.io 26.1 and containerd 1.7); run the
 * benchmark once with it and once without, back to back, to compare engines. `--runs-only` stops
 * after part 1's `docker run` rounds (parts 1b and 2 do not depend on the engine).
 *
 * `--agent-log FILE` keeps the agent's debug log; `--state-tmpfs` puts its
 * state directory on /dev/shm (to see what the store's fsync costs);
 * `--reconcile-interval N` sets the agent's periodic check (default here: 0,
 * see benchAgentArgs in bench/lib.ts).
 *
 * Run as root, after `npm run build` (the agent runs from dist/; the npm script
 * builds first). Everything lives in namespaces removed at the end, on failure
 * and on Ctrl-C.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startDockerd } from '../test/harness/dockerd.js'
import { ensureBusyboxImage } from '../test/harness/image.js'
import { startAgent } from '../test/harness/agent.js'
import { ferry, type CliCtx } from '../test/harness/ferry-cli.js'
import { netns } from '../test/harness/netns.js'
import {
  PluginClient, argFlag, argInt, argStr, benchAgentArgs, benchStateDir, keepAgentLog, load, mean, median, ms, pluginCalls, quantile, runBench, section, setupEndpoint, table, teardownEndpoint, timed,
  type LoggedCall, type SetupTimes, type TeardownTimes,
} from './lib.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const ROUNDS = argInt('rounds', 30)
const SAMPLES = argInt('samples', 200)
const WARMUP = 3
const RUNS_ONLY = argFlag('runs-only')

/** `--engine-root DIR`: the directory of the other engine's programs (scripts/engine-root.sh). */
function engineBinDir (): string | undefined {
  const root = argStr('engine-root')
  if (root === undefined) return undefined
  const bin = join(root, '.ferry-engine', 'bin')
  if (!existsSync(join(bin, 'dockerd'))) throw new Error(`--engine-root ${root}: no ${join(bin, 'dockerd')} (build the root with scripts/engine-root.sh)`)
  return bin
}

interface Variant { name: string, net: string }

/** One line of figures for a list of samples. */
function row (name: string, xs: readonly number[]): string[] {
  return [name, String(xs.length), ms(quantile(xs, 0.5)), ms(quantile(xs, 0.9)), ms(quantile(xs, 0.99)), ms(mean(xs)), ms(Math.min(...xs)), ms(Math.max(...xs))]
}
const HEADER = ['', 'n', 'p50', 'p90', 'p99', 'mean', 'min', 'max']

/** Sum of the logged handler times per method, divided by `per` (e.g. per container). */
function perMethod (calls: readonly LoggedCall[], per: number): string[][] {
  const sums = new Map<string, number>()
  for (const c of calls) sums.set(c.method, (sums.get(c.method) ?? 0) + c.ms)
  return [...sums].sort((a, b) => b[1] - a[1]).map(([m, total]) => [m, ms(total / per)])
}

await runBench(async (t) => {
  const started = Date.now()
  console.log(`ferry bridge benchmark: ${ROUNDS} interleaved rounds of docker run --rm, ${SAMPLES} plugin-socket samples${argFlag('state-tmpfs') ? ', agent state on tmpfs' : ''}; agent ${benchAgentArgs().join(' ')}; ${load()}`)
  const host = netns(t, 'fybbh')
  const binDir = engineBinDir()
  const d = await startDockerd(t, { ns: host, ...(binDir !== undefined ? { binDir } : {}) })
  await ensureBusyboxImage(d)
  const engine = `Docker ${(await d.dockerOk(['version', '--format', '{{.Server.Version}}'])).trim()}${binDir !== undefined ? ` (${binDir})` : ' (the host\'s)'}`
  console.log(`engine: ${engine}`)
  const plugin = `fybb${process.pid}`
  const stateDir = benchStateDir(t)
  const agent = await startAgent(t, { ns: host, pluginName: plugin, dockerd: d, args: benchAgentArgs(), ...(stateDir !== undefined ? { stateDir } : {}) })
  keepAgentLog(t, agent)
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.77.0.0/24', 'fnet'])
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', '--subnet', '10.76.0.0/24', '--subnet', 'fd00:76::/64', 'fnet6'])
  await d.dockerOk(['network', 'create', '-d', 'bridge', '--subnet', '10.78.0.0/24', 'bnet'])
  await d.dockerOk(['network', 'create', '-d', 'bridge', '--ipv6', '--subnet', '10.75.0.0/24', '--subnet', 'fd00:75::/64', 'bnet6'])

  // ---- 1. docker run --rm latency ----
  section('docker run --rm bb true (wall time of the docker CLI, ms)')
  const variants: Variant[] = [{ name: 'ferry', net: 'fnet' }, { name: 'ferry dual-stack', net: 'fnet6' }, { name: 'builtin bridge', net: 'bnet' }, { name: 'builtin dual-stack', net: 'bnet6' }, { name: '--net none', net: 'none' }]
  const runOnce = async (v: Variant): Promise<number> => {
    const r = await timed(() => d.docker(['run', '--rm', '--net', v.net, 'bb', 'true']))
    if (r.value.code !== 0) throw new Error(`docker run --net ${v.net} failed: ${r.value.stderr}`)
    return r.ms
  }
  for (let i = 0; i < WARMUP; i++) for (const v of variants) await runOnce(v)
  const logStart = agent.logs().length
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(round + k) % variants.length]!
      samples.get(v.name)!.push(await runOnce(v))
    }
  }
  // Per ferry container: the IPv4-only and the dual-stack runs both go through the agent.
  const runCalls = pluginCalls(agent.logs().slice(logStart))
  const ferryRuns = 2 * ROUNDS
  console.log(table([HEADER, ...variants.map((v) => row(v.name, samples.get(v.name)!))]))
  const p50 = (name: string): number => median(samples.get(name)!)
  const ratio = p50('ferry') / p50('builtin bridge')
  const dualRatio = p50('ferry dual-stack') / p50('ferry')
  const builtinDualRatio = p50('builtin dual-stack') / p50('builtin bridge')
  console.log(`network cost over --net none (p50): ferry ${ms(p50('ferry') - p50('--net none'))} ms, builtin ${ms(p50('builtin bridge') - p50('--net none'))} ms`)
  console.log('the agent\'s handler time per ferry container (from its debug log, ms):')
  console.log(table([['method', 'ms/container'], ...perMethod(runCalls, ferryRuns)]))
  const agentPerRun = runCalls.reduce((s, c) => s + c.ms, 0) / ferryRuns
  const goal = (ok: boolean): string => ok ? 'goal met' : 'goal MISSED'
  const dualSummary = (): void => {
    console.log(`engine: ${engine}`)
    console.log(`docker run ratio dual-stack/IPv4-only ferry (p50): ${dualRatio.toFixed(3)} (${ms(p50('ferry dual-stack'))} vs ${ms(p50('ferry'))} ms; goal ≤ 1.10: ${goal(dualRatio <= 1.10)}); p90 ratio ${(quantile(samples.get('ferry dual-stack')!, 0.9) / quantile(samples.get('ferry')!, 0.9)).toFixed(3)}`)
    console.log(`the same for Docker's built-in bridge driver: ${builtinDualRatio.toFixed(3)} (${ms(p50('builtin dual-stack'))} vs ${ms(p50('builtin bridge'))} ms): the engine's own IPv6 cost; ferry dual-stack/builtin dual-stack ${(p50('ferry dual-stack') / p50('builtin dual-stack')).toFixed(3)}`)
    console.log(`docker run ratio ferry/builtin (p50): ${ratio.toFixed(3)} (${ms(p50('ferry'))} vs ${ms(p50('builtin bridge'))} ms, --net none ${ms(p50('--net none'))} ms; goal ≤ 1.05: ${goal(ratio <= 1.05)})`)
    console.log(`agent handler time per docker run (all plugin calls): ${ms(agentPerRun)} ms`)
  }
  if (RUNS_ONLY) {
    section('summary (--runs-only)')
    dualSummary()
    console.log(`benchmark time: ${((Date.now() - started) / 1000).toFixed(0)} s (plus cleanup); ${load()}`)
    return
  }

  // ---- 1b. the same without the engine: ferry's own share of the dual-stack cost ----
  section('ferry run --net N -- true, without the engine (wall time of the ferry CLI, ms)')
  const cli: CliCtx = { host, agent }
  for (const args of [['rnet', '--subnet', '10.73.0.0/24'], ['rnet6', '--ipv6', '--subnet', '10.72.0.0/24', '--subnet', 'fd00:72::/64']]) {
    const r = await ferry(cli, ['network', 'create', ...args])
    if (r.code !== 0) throw new Error(`ferry network create ${args[0]!} failed: ${r.stderr}`)
  }
  const runVariants: Variant[] = [{ name: 'ferry run', net: 'rnet' }, { name: 'ferry run dual-stack', net: 'rnet6' }]
  const ferryRunOnce = async (v: Variant): Promise<number> => {
    const r = await timed(() => ferry(cli, ['run', '--net', v.net, '--', 'true']))
    if (r.value.code !== 0) throw new Error(`ferry run --net ${v.net} failed: ${r.value.stderr}`)
    return r.ms
  }
  for (let i = 0; i < WARMUP; i++) for (const v of runVariants) await ferryRunOnce(v)
  const runSamples = new Map<string, number[]>(runVariants.map((v) => [v.name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < runVariants.length; k++) {
      const v = runVariants[(round + k) % runVariants.length]!
      runSamples.get(v.name)!.push(await ferryRunOnce(v))
    }
  }
  console.log(table([HEADER, ...runVariants.map((v) => row(v.name, runSamples.get(v.name)!))]))
  const runP50 = (name: string): number => median(runSamples.get(name)!)

  // ---- 2. the agent's own latency, through the plugin socket ----
  section(`plugin socket, as dockerd drives it (${SAMPLES} endpoints, one at a time, ms, client side)`)
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.79.0.0/20', 'micro'])
  const networkId = (await d.dockerOk(['network', 'inspect', '-f', '{{.Id}}', 'micro'])).trim()
  const inspect = await agent.cli(['network', 'inspect', 'micro'])
  if (inspect.code !== 0) throw new Error(`ferry network inspect micro failed: ${inspect.stderr}`)
  const poolId = (JSON.parse(inspect.stdout) as { poolId: string }).poolId
  const client = new PluginClient(agent.pluginSocket)
  t.teardown(() => client.close())
  for (let i = 0; i < 10; i++) {
    const { ep } = await setupEndpoint(client, networkId, poolId)
    await teardownEndpoint(client, ep)
  }
  const setups: SetupTimes[] = []
  const teardowns: TeardownTimes[] = []
  const microStart = agent.logs().length
  for (let i = 0; i < SAMPLES; i++) {
    const s = await setupEndpoint(client, networkId, poolId)
    setups.push(s.times)
    teardowns.push(await teardownEndpoint(client, s.ep))
  }
  const logged = pluginCalls(agent.logs().slice(microStart))
  const server = (method: string): number[] => logged.filter((c) => c.method === method).map((c) => c.ms)
  const pairs = (a: number[], b: number[]): number[] => a.map((x, i) => x + (b[i] ?? NaN))
  const ceJoin = setups.map((s) => s.createEndpoint + s.join)
  const fullSetup = setups.map((s) => s.requestAddress + s.createEndpoint + s.join + s.program + s.operInfo)
  const leaveDelete = teardowns.map((x) => x.leave + x.deleteEndpoint)
  const fullTeardown = teardowns.map((x) => x.revoke + x.leave + x.deleteEndpoint + x.releaseAddress)
  const serverCeJoin = pairs(server('NetworkDriver.CreateEndpoint'), server('NetworkDriver.Join'))
  const serverLeaveDelete = pairs(server('NetworkDriver.Leave'), server('NetworkDriver.DeleteEndpoint'))
  console.log(table([
    HEADER,
    row('CreateEndpoint+Join', ceJoin),
    row('  CreateEndpoint', setups.map((s) => s.createEndpoint)),
    row('  Join', setups.map((s) => s.join)),
    row('full setup (6 calls)', fullSetup),
    row('Leave+DeleteEndpoint', leaveDelete),
    row('full teardown (4 calls)', fullTeardown),
    row('agent handler CE+Join', serverCeJoin),
    row('agent handler Leave+Del', serverLeaveDelete),
  ]))
  const status = await agent.cli(['status', '--json'])
  if (status.code === 0) {
    const st = JSON.parse(status.stdout) as { store?: { writes?: number, journalWrites?: number, snapshots?: number, lastWriteMs?: number } }
    console.log(`store: ${st.store?.writes ?? '?'} writes in this run (${st.store?.journalWrites ?? '?'} journal lines, ${st.store?.snapshots ?? '?'} snapshots), last write ${st.store?.lastWriteMs ?? '?'} ms`)
  }

  section('summary')
  console.log(`docker run --rm p50: ferry ${ms(p50('ferry'))} ms, builtin ${ms(p50('builtin bridge'))} ms, --net none ${ms(p50('--net none'))} ms (${ROUNDS} interleaved runs each)`)
  console.log(`docker run ratio ferry/builtin (p50): ${ratio.toFixed(3)} (goal ≤ 1.05: ${goal(ratio <= 1.05)}); p90 ratio ${(quantile(samples.get('ferry')!, 0.9) / quantile(samples.get('builtin bridge')!, 0.9)).toFixed(3)}`)
  dualSummary()
  console.log(`without the engine, ferry run dual-stack/IPv4-only (p50): ${(runP50('ferry run dual-stack') / runP50('ferry run')).toFixed(3)} ` +
    `(${ms(runP50('ferry run dual-stack'))} vs ${ms(runP50('ferry run'))} ms, +${ms(runP50('ferry run dual-stack') - runP50('ferry run'))} ms): ferry's own dual-stack cost`)
  console.log(`agent CreateEndpoint+Join: p50 ${ms(median(ceJoin))} ms, p99 ${ms(quantile(ceJoin, 0.99))} ms over ${SAMPLES} (goal p50 ≤ 5 ms: ${goal(median(ceJoin) <= 5)})`)
  console.log(`agent full setup p50 ${ms(median(fullSetup))} ms, teardown (Leave+DeleteEndpoint) p50 ${ms(median(leaveDelete))} ms p99 ${ms(quantile(leaveDelete, 0.99))} ms, full teardown p50 ${ms(median(fullTeardown))} ms`)
  console.log(`benchmark time: ${((Date.now() - started) / 1000).toFixed(0)} s (plus cleanup); ${load()}`)
})
