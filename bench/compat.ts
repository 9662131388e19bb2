/**
 * Mixed versions (docs/cluster.md, "Versions that interoperate"): what an older host's join and
 * departure cost the others, and what the capability signal costs each heartbeat. Not a test:
 *   npm run bench:compat [-- --endpoints 1000 --reps 3 --beats 500]
 *
 * A redis-server on a free loopback port (no root, no kernel); host h1 publishes `--endpoints` endpoints,
 * each with one published port; host h2 follows the changes. Each rep: an "older" host (one with no
 * features entry, as a version before the signal) joins, timed from its start() resolving until h2 has
 * received every record of h1 again without its ports (h1 reads the hosts 250 ms after the host-up, then
 * re-publishes one command per endpoint, paced); then it leaves, timed until h2 has every record with its
 * ports again; with the commands h1 sent for each. Then the heartbeat's round trip (median and p99 of
 * `--beats`) of a host that advertises its features and of one that does not. Prints the load average.
 */
import { helpAndExit } from './usage.js'
import { RedisClusterStore } from '../src/cluster/redis.js'
import type { ClusterEvent } from '../src/cluster/types.js'
import { redisServer } from '../test/harness/redis.js'
import { argInt, load, median, ms, quantile, runBench, section, table } from './lib.js'

helpAndExit(import.meta.url)

const N = argInt('endpoints', 1000)
const REPS = argInt('reps', 3)
const BEATS = argInt('beats', 500)
const OV = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }

await runBench(async (t) => {
  const server = await redisServer(t)
  const store = (hostId: string, n: number, features?: []): RedisClusterStore => {
    const s = new RedisClusterStore({ url: server.url, hostId, advertiseAddr: `192.168.50.${n}`, heartbeatMs: 0, ...(features ? { features } : {}) })
    t.teardown(() => s.close())
    return s
  }
  const h1 = store('h1', 1)
  const h2 = store('h2', 2)
  await h1.start()
  await h2.start()
  await h1.defineOverlay(OV)
  await h2.defineOverlay(OV)
  for (let i = 0; i < N; i++) {
    const ip = await h1.allocateAddress('ov1')
    await h1.publishEndpoint({ overlay: 'ov1', endpointId: `e${i}`, ip, mac: '02:42:0a:1e:00:02', names: [`c${i}`], ports: [{ proto: 'tcp', port: 80, hostPort: 20000 + i }] })
  }
  // What h2 last received for each of h1's endpoints: with ports or not.
  const withPorts = new Map<string, boolean>()
  h2.subscribe((e: ClusterEvent) => { if (e.kind === 'endpoint-published') withPorts.set(e.endpoint.endpointId, e.endpoint.ports !== undefined) })
  const all = async (want: boolean): Promise<number> => {
    const t0 = performance.now()
    while (withPorts.size < N || [...withPorts.values()].some((v) => v !== want)) {
      if (performance.now() - t0 > 60_000) throw new Error(`not every record ${want ? 'with' : 'without'} ports within 60 s`)
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    return performance.now() - t0
  }
  for (const e of await h2.endpoints('ov1')) withPorts.set(e.endpointId, e.ports !== undefined)

  section(`an older host joins and leaves; h1 owns ${N} endpoints with published ports (${load()})`)
  const rows = [['rep', 'join: records without ports', 'h1 commands', 'leave: records with ports', 'h1 commands']]
  for (let r = 1; r <= REPS; r++) {
    const old = store(`old${r}`, 9, [])
    let c0 = h1.status().commands
    await old.start()
    const join = await all(false)
    await h1.republished()
    const joinCmds = h1.status().commands - c0
    c0 = h1.status().commands
    await old.leave()
    const leave = await all(true)
    await h1.republished()
    rows.push([String(r), `${ms(join)} ms`, String(joinCmds), `${ms(leave)} ms`, String(h1.status().commands - c0)])
    await old.close()
  }
  console.log(table(rows))

  section(`heartbeat round trip, ${BEATS} each, alternating (${load()})`)
  const newer = store('beat-new', 20)
  const older = store('beat-old', 21, [])
  await newer.start()
  await older.start()
  const times: Record<'newer' | 'older', number[]> = { newer: [], older: [] }
  for (let i = 0; i < BEATS; i++) {
    for (const [k, s] of [['newer', newer], ['older', older]] as const) {
      const t0 = performance.now()
      await s.heartbeat()
      times[k].push(performance.now() - t0)
    }
  }
  console.log(table([['host', 'p50', 'p99'],
    ['with its features entry', `${ms(median(times.newer))} ms`, `${ms(quantile(times.newer, 0.99))} ms`],
    ['without (as an older version)', `${ms(median(times.older))} ms`, `${ms(quantile(times.older, 0.99))} ms`]]))
  console.log(`\n${load()}`)
})
