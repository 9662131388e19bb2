/**
 * `ferry graph`: the model built from fixture API answers of a three-host overlay (pure, no kernel),
 * its JSON and DOT (golden), labels that no name can break out of, and SVG through Graphviz when
 * `dot` is installed.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { execFile as exec } from '../../src/kernel/exec.js'
import { FerryError } from '../../src/errors/errors.js'
import { NO_GRAPHVIZ, buildGraph, dotText, readGraphInput, renderDot, renderJson, renderSvg, type GraphInput } from '../../src/cli/graph.js'
import type { ApiRequest } from '../../src/model/types.js'
import { threeHosts } from '../fixtures/graph-three-hosts.js'

const run = promisify(execFile)

async function hasDot (): Promise<boolean> {
  try { await run('dot', ['-V']); return true } catch { return false }
}

t.test('three hosts: the model marks what differs', async (t) => {
  const g = buildGraph(threeHosts)
  t.equal(g.self, 'host-a')
  t.same(g.hosts.map((h) => [h.id, h.state, h.vtep]), [
    ['host-a', 'this host', '10.0.0.11'], ['host-b', 'ok', '10.0.0.12'], ['host-c', 'late', '10.0.0.13'], ['unknown VTEP 10.0.0.99', 'unknown', '10.0.0.99'],
  ])
  t.same(g.endpoints.map((e) => [e.host, e.name, e.state, e.source]), [
    ['host-a', 'web', 'ok', 'agent'], ['host-a', 'c2c2c2c2c2c2', 'created', 'agent'], ['host-a', 'api', 'ok', 'agent'],
    ['host-b', 'cache', 'ok', 'cluster'], ['host-b', 'worker', 'missing', 'cluster'],
    ['host-c', 'batch', 'ok', 'cluster'],
    ['unknown VTEP 10.0.0.99', 'MAC 02:42:0a:1e:00:09', 'stale', 'kernel'],
  ])
  t.same(g.hosts[0], { id: 'host-a', self: true, vtep: '10.0.0.11', state: 'this host', version: '0.9.0', heartbeatAgeS: 1 })
  t.same(g.endpoints[0]!.addresses, ['10.20.0.2/24', 'fd00:1::2/64'], 'both families')
  t.same(g.endpoints[0]!.ports, ['0.0.0.0:8080->80/tcp', '[::1]:5353-5354->53-54/udp'])
  t.same(g.tunnels.map((x) => [x.from, x.to, x.view, x.differences]), [
    ['host-a', 'host-b', 'kernel', 1], ['host-a', 'host-c', 'kernel', 0], ['host-a', 'unknown VTEP 10.0.0.99', 'kernel', 1],
    ['host-b', 'host-c', 'cluster', 0],
  ], 'between other hosts only as Redis tells: not to a VTEP only the kernel knows')
  t.same(g.differences, [
    'host-c: last heartbeat 7.2 s ago (late)'.replace(/^/, 'host '),
    'ov1: 10.30.0.4 (worker on host-b) is in Redis but not programmed: no FDB entry',
    'ov1: 10.30.0.9 is programmed here (to 10.0.0.99) but not in Redis',
  ])
  t.same(g.networks.map((n) => [n.name, n.hosts]), [['front', ['host-a']], ['ov1', ['host-a', 'host-b', 'host-c', 'unknown VTEP 10.0.0.99']]])
})

t.test('a host past its TTL is expired, one past half of it late, listed in host order', async (t) => {
  const now = threeHosts.now
  const hosts = threeHosts.cluster!.hosts!.map((h) => (h.hostId === 'host-b' ? { ...h, lastHeartbeat: now - 11_000, expiresAt: now - 1000 } : h))
  const g = buildGraph({ ...threeHosts, cluster: { ...threeHosts.cluster!, hosts } })
  t.same(g.hosts.map((h) => h.state), ['this host', 'expired', 'late', 'unknown'])
  t.same(g.differences.slice(0, 2), ['host host-b: last heartbeat 11 s ago (past its TTL, about to be removed)', 'host host-c: last heartbeat 7.2 s ago (late)'])
  t.match(renderDot(g), /heartbeat 11 s ago \(EXPIRED\)/)
})

t.test('three hosts: golden JSON and DOT', async (t) => {
  const g = buildGraph(threeHosts)
  t.same(JSON.parse(renderJson(g)), g, 'the JSON is the model')
  t.matchSnapshot(renderJson(g), 'json')
  t.matchSnapshot(renderDot(g), 'dot')
})

t.test('--network picks one network and the hosts it spans', async (t) => {
  const front = buildGraph({ ...threeHosts, network: 'front' })
  t.same(front.hosts.map((h) => h.id), ['host-a'], 'other hosts take no part in a local network')
  t.same(front.tunnels, [])
  t.same(front.differences, [], "a late host elsewhere is not this network's difference")
  t.matchSnapshot(renderDot(front), 'dot of front')
  const ov = buildGraph({ ...threeHosts, network: 'a1a1' })
  t.same(ov.networks.map((n) => n.name), ['ov1'], 'an id prefix')
  t.same(ov.hosts.map((h) => h.id), ['host-a', 'host-b', 'host-c', 'unknown VTEP 10.0.0.99'])
  t.throws(() => buildGraph({ ...threeHosts, network: 'nope' }), { code: 'NETWORK_NOT_FOUND', message: /^no ferry network is named "nope" or has that id; known: / })
})

t.test('an agent without a cluster: one host, named after the machine', async (t) => {
  const { cluster: _cluster, ...rest } = threeHosts
  const g = buildGraph({ ...rest, hostname: 'solo', peers: [] })
  t.same(g.hosts, [{ id: 'solo', self: true, state: 'this host' }])
  t.same(g.tunnels, [])
  t.equal(g.cluster, undefined)
  t.same(g.differences, [])
  t.notMatch(renderDot(g), 'VTEP', 'no VTEP without a cluster')
})

t.test('Redis down: the cluster state, hosts unread and cached peers are differences', async (t) => {
  const { hosts: _hosts, ...cluster } = threeHosts.cluster!
  const g = buildGraph({ ...threeHosts, cluster: { ...cluster, state: 'down', lastError: 'connect ECONNREFUSED' }, peers: threeHosts.peers.map((p) => ({ ...p, source: 'cache' as const })) })
  t.same(g.differences.slice(0, 3), [
    'cluster: the list of hosts could not be read from Redis',
    'cluster: down (connect ECONNREFUSED)',
    "ov1: Redis could not be read; its side is the agent's last known state",
  ])
  t.same(g.hosts.find((h) => h.id === 'host-b'), { id: 'host-b', self: false, vtep: '10.0.0.12', state: 'unknown' }, 'a host known only from its endpoints')
})

t.test('readGraphInput asks the API and draws one host when the agent has no cluster', async (t) => {
  const asked: string[] = []
  const api: ApiRequest = async <T>(method: string, path: string): Promise<T> => {
    asked.push(`${method} ${path}`)
    if (path === '/v1/cluster') throw new FerryError('CLUSTER_UNAVAILABLE', 'this agent runs without a cluster')
    return [] as T
  }
  const input = await readGraphInput(api, 5, 'front')
  t.same(asked, ['GET /v1/networks', 'GET /v1/endpoints', 'GET /v1/cluster'], 'no /v1/peers without a cluster')
  t.same({ ...input, hostname: '' }, { hostname: '', networks: [], endpoints: [], peers: [], now: 5, network: 'front' })
  const failing: ApiRequest = async <T>(_m: string, path: string): Promise<T> => {
    if (path === '/v1/cluster') throw new FerryError('AGENT_NOT_RUNNING', 'the ferry agent is not running')
    return [] as T
  }
  await t.rejects(readGraphInput(failing, 5), { code: 'AGENT_NOT_RUNNING' }, 'other errors are not swallowed')
})

const HOSTILE = [
  'web"]; evil [label="pwned',
  'a\\N\\G\\l\\',
  'two\nlines\r\u0000}',
  '} subgraph cluster_x { x -- y',
  '<b>html</b> & \u2028',
]

function hostileInput (): GraphInput {
  const base = threeHosts
  return {
    ...base,
    endpoints: base.endpoints.map((e, i) => ({ ...e, container: HOSTILE[i % HOSTILE.length]! })),
    peers: base.peers.map((p) => ({ ...p, cluster: p.cluster.map((e, i) => ({ ...e, names: [HOSTILE[(i + 3) % HOSTILE.length]!] })) })),
    networks: base.networks.map((n) => (n.name === 'front' ? { ...n, name: HOSTILE[0]! } : n)),
  }
}

/** Every statement of the DOT ferry writes: ids it made, attribute lists of quoted strings or plain words. */
const STRING = '"(?:[^"\\\\\\n]|\\\\[^\\n])*"'
const VALUE = `(?:${STRING}|[A-Za-z0-9.]+)`
const ATTRS = `\\[(?:[a-z]+=${VALUE})(?:, [a-z]+=${VALUE})*\\]`
const ID = '[a-z][a-z0-9_]*'
const STATEMENT = new RegExp(`^(?:graph ferry \\{|\\s+(?:graph|node|edge) ${ATTRS};|\\s+subgraph cluster_${ID} \\{|\\s+\\}|\\}|\\s+${ID}(?: -- ${ID})?(?: ${ATTRS})?;)$`)

t.test('hostile names stay inside their labels', async (t) => {
  const dot = renderDot(buildGraph(hostileInput()))
  const bad = dot.split('\n').filter((l) => l !== '' && !STATEMENT.test(l))
  t.same(bad, [], 'every line is a statement ferry writes')
  t.equal(dotText('a"b\\c'), 'a\\"b\\\\c')
  t.equal(dotText('x\ny\u0000'), 'x\\\\x0ay\\\\x00', 'control characters shown, not kept')
  t.equal(dotText('n'.repeat(200)).length, 80, 'long names cut')
  t.notMatch(renderJson(buildGraph(hostileInput())), /\n[^ \]}]/, 'JSON escapes newlines')
  if (!(await hasDot())) { t.comment('Graphviz is not installed: the DOT was checked by its grammar only'); return }
  // What Graphviz makes of it: as many nodes as ferry drew, each name shown whole on its own line.
  const model = buildGraph(hostileInput())
  const parsed = JSON.parse((await exec(['dot', '-Tjson'], { input: dot, timeoutMs: 60_000 })).stdout) as {
    _subgraph_cnt: number, objects: Array<{ name: string, _ldraw_?: Array<{ text?: string }> }>
  }
  const nodes = parsed.objects.slice(parsed._subgraph_cnt)
  const drawn = model.hosts.filter((h) => h.vtep !== undefined).length + model.networks.reduce((n, x) => n + x.hosts.length, 0) + model.endpoints.length + 1
  t.equal(nodes.length, drawn, 'no node more or less than ferry drew')
  t.same(parsed.objects.slice(0, parsed._subgraph_cnt).map((o) => o.name).filter((n) => !/^cluster_h\d+$/.test(n)), [], 'no injected subgraph')
  const shown = (name: string): string => name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)
  const firstLines = nodes.map((o) => o._ldraw_?.find((d) => d.text !== undefined)?.text)
  for (const name of new Set(model.endpoints.map((e) => e.name))) {
    t.ok(firstLines.includes(shown(name)), `${JSON.stringify(name).replace(/[\u2028\u2029]/g, '?')} is shown as it is`) // U+2028 would end the TAP line
  }
})

t.test('SVG through Graphviz, and the sentence when it is not installed', async (t) => {
  const dot = renderDot(buildGraph(threeHosts))
  t.equal(await renderSvg(dot, 'ferry-test-no-such-graphviz'), undefined, 'no dot: undefined, the CLI prints DOT and says why')
  t.match(NO_GRAPHVIZ, /^ferry: Graphviz's dot is not installed \(apt-get install graphviz\), so this is the graph in DOT instead of SVG\n$/)
  if (!(await hasDot())) { t.comment('Graphviz is not installed (apt-get install graphviz): SVG not checked'); return }
  const svg = await renderSvg(dot)
  if (svg === undefined) { t.fail('dot -V runs but dot -Tsvg was not found'); return }
  t.match(svg, /<svg /)
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&quot;/g, '"').replace(/&amp;/g, '&'))
  for (const text of ['host host-c', 'heartbeat 7.2 s ago (LATE)', 'worker', 'MISSING: no FDB entry', 'ov1 vni 4096', '0.0.0.0:8080->80/tcp', 'fd00:1::2/64']) {
    t.ok(texts.includes(text), `the SVG shows ${text}`)
  }
  t.match(svg, /stroke="#c0392b"/, 'differences in red')
})
