/**
 * `ferry graph` against real agents: two simulated hosts (namespaces with a ferry agent each, no engine) on
 * an underlay with one redis-server, an overlay made with `ferry network create`, a command run on one host.
 * The other host's graph shows both hosts, the remote endpoint by name and the tunnel, all as in its kernel;
 * once the kernel loses that peer's FDB entry, the graph marks it as known in Redis but not programmed.
 */
import t from 'tap'
import { execFile } from '../../src/kernel/exec.js'
import type { GraphModel } from '../../src/cli/graph.js'
import { runtimeHosts } from '../harness/runtime-hosts.js'
import { ferry, ferryBg, requireBuild, type CliCtx } from '../harness/ferry-cli.js'
import { observe } from '../harness/until.js'

const graphOf = async (h: CliCtx): Promise<GraphModel> => JSON.parse((await ferry(h, ['graph', '--format', 'json'])).stdout || '{}') as GraphModel

await t.test('ferry graph of a two-host overlay', async (t) => {
  requireBuild(t)
  const { hosts: sims } = await runtimeHosts(t, { prefix: 'fyg', count: 2, hostId: (i) => `g${i}` })
  const hosts: CliCtx[] = sims.map((h) => ({ host: h.ns, agent: h.agent }))
  const [h1, h2] = hosts as [CliCtx, CliCtx]

  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ov', '--subnet', '10.47.0.0/24', '-o', 'ferry.overlay=ov'])
    t.equal(r.code, 0, r.stderr)
  }
  const server = ferryBg(t, h1, ['run', '--name', 'far', '--net', 'ov', '--', 'busybox', 'sleep', '600'])
  const seen = await observe(() => graphOf(h2), (g) => g.endpoints?.some((e) => e.name === 'far' && e.state === 'ok') === true, { timeoutMs: 40_000, everyMs: 200 })
  const far = seen?.endpoints.find((e) => e.name === 'far')
  t.match(far, { host: 'g1', source: 'cluster', state: 'ok', addresses: [/^10\.47\.0\.\d+\/24$/] }, "the remote endpoint by its name, from Redis, programmed")
  t.same(seen?.hosts.map((h) => [h.id, h.self, h.vtep]), [['g2', true, '192.0.2.22'], ['g1', false, '192.0.2.21']])
  t.same(seen?.tunnels.map((x) => [x.from, x.to, x.overlay, x.view, x.differences]), [['g2', 'g1', 'ov', 'kernel', 0]])
  t.same(seen?.differences, [], 'the agent matches Redis')

  const dot = await ferry(h2, ['graph'])
  t.equal(dot.code, 0, dot.stderr)
  t.match(dot.stdout, /^graph ferry \{\n/)
  const svg = await ferry(h2, ['graph', '--format', 'svg'])
  t.equal(svg.code, 0, svg.stderr)
  const hasDot = (await execFile(['dot', '-V'], { allowFailure: true }).catch(() => undefined)) !== undefined
  if (hasDot) t.match(svg.stdout, /<svg /, 'SVG through Graphviz')
  else t.match(svg.stderr, /Graphviz's dot is not installed/, 'DOT, and why')

  // The kernel loses the peer: the graph says Redis knows it and this host does not have it.
  const report = JSON.parse((await ferry(h2, ['peers', '--json'])).stdout) as Array<{ vxlan: string, rows: Array<{ ip: string, mac: string, vtep?: string }> }>
  const row = report[0]?.rows.find((r) => `${r.ip}/24` === far?.addresses[0])
  t.ok(row, 'the peer in ferry peers')
  const del = await execFile(['ip', 'netns', 'exec', h2.host, 'bridge', 'fdb', 'del', row!.mac, 'dev', report[0]!.vxlan, 'dst', row!.vtep!, 'self'], { allowFailure: true })
  t.equal(del.code, 0, del.stderr)
  const after = await graphOf(h2)
  t.match(after.endpoints.find((e) => e.name === 'far'), { state: 'missing', detail: 'no FDB entry' })
  t.same(after.differences, [`ov: ${row!.ip} (far on g1) is in Redis but not programmed: no FDB entry`])
  t.match(after.tunnels, [{ from: 'g2', to: 'g1', differences: 1 }])
  t.match((await ferry(h2, ['graph'])).stdout, /MISSING: no FDB entry/)

  server.kill('SIGTERM')
  await server.done
  for (const h of hosts) t.equal((await ferry(h, ['network', 'rm', 'ov'])).code, 0)
})
