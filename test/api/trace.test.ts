/**
 * GET /v1/trace (src/api/trace.ts) over a fake agent: the ends resolved from container
 * names, ids and addresses (one family, a shared network first), the ingress told from
 * the host's addresses, endpoints that publish nothing still on the path, every query
 * checked, and --live handed the probe (or refused from another host).
 */
import t from 'tap'
import { buildApiServer, type AgentView, type EndpointView, type NetworkView } from '../../src/api/server.js'
import { traceView, type TraceView } from '../../src/api/trace.js'
import type { LiveProbe, TraceFirewall } from '../../src/nat/trace-live.js'
import { silentLog } from '../harness/fakes.js'

const net = (n: number, over: Partial<NetworkView> = {}): NetworkView => ({
  id: `${n}`.repeat(64), name: `net${n}`, bridge: `fy-net${n}`, subnet: `10.2${n}.0.0/24`, gateway: `10.2${n}.0.1`, subnet6: `fd00:${n}::/64`, gateway6: `fd00:${n}::1`,
  endpoints: 0, options: {}, icc: true, ...over,
} as unknown as NetworkView)
const ep = (name: string, n: number, host: number, over: Partial<EndpointView> = {}): EndpointView => ({
  id: `${name}`.padEnd(64, 'e'), networkId: `${n}`.repeat(64), address: `10.2${n}.0.${host}`, address6: `fd00:${n}::${host}`, ports: [], container: name,
  containerId: `${name}`.padEnd(64, 'c'), networkName: `net${n}`, sandboxKey: `/run/netns/${name}`, ...over,
} as unknown as EndpointView)

const n1 = net(1)
const n2 = net(2, { icc: false } as Partial<NetworkView>)
const web = ep('web', 1, 3, { ports: [{ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.21.0.3', containerPort: 80, containerPortEnd: 80 }] })
const cli1 = ep('cli', 1, 2)
const cli2 = ep('cli', 2, 2)
const other = ep('other', 2, 3)
const natNet = (n: NetworkView): { id: string, bridge: string, subnet?: string, gateway?: string, subnet6?: string, gateway6?: string, icc: boolean, masquerade: boolean, internal: boolean } =>
  ({ id: n.id, bridge: n.bridge, subnet: n.subnet!, gateway: n.gateway!, subnet6: n.subnet6!, gateway6: n.gateway6!, icc: (n as unknown as { icc: boolean }).icc, masquerade: true, internal: false })

function source (probes: LiveProbe[] = []): { endpoints: () => Promise<EndpointView[]>, networks: () => Promise<NetworkView[]>, tracer: () => TraceFirewall } {
  return {
    endpoints: async () => [web, cli1, cli2, other],
    networks: async () => [n1, n2],
    tracer: () => ({
      backend: 'nftables',
      opts: {},
      // The firewall holds the endpoints that publish ports only.
      state: () => ({ networks: [natNet(n1), natNet(n2)], endpoints: [{ id: web.id, networkId: web.networkId, address: web.address!, address6: web.address6!, ports: web.ports }], links: [] }),
      live: async (p) => { probes.push(p); return { events: [], verdict: 'passed', probe: { argv: ['nc'], exitCode: 0, answered: true, output: '' } } },
    }),
  }
}
const HOST = (): string[] => ['192.0.2.1']

t.test('ends by name, id or address; a shared network first', async (t) => {
  const byName = await traceView(source(), { from: 'cli', to: 'web', port: 80 }, HOST)
  t.match(byName, { verdict: 'delivered', packet: { src: '10.21.0.2', dst: '10.21.0.3', proto: 'tcp', port: 80, ingress: 'container' }, backend: 'nftables' })
  const byId = await traceView(source(), { from: cli2.containerId.slice(0, 12), to: 'other', port: 80 }, HOST)
  t.match(byId, { verdict: 'dropped', packet: { src: '10.22.0.2', dst: '10.22.0.3' }, decidedBy: { note: /enable_icc=false/ } })
  const six = await traceView(source(), { from: 'cli', to: 'fd00:1::3', port: 80 }, HOST)
  t.match(six, { family: 6, packet: { src: 'fd00:1::2' } })
  const ping = await traceView(source(), { from: 'cli', to: 'web' }, HOST)
  t.equal(ping.packet.proto, 'icmp')
  const udp = await traceView(source(), { from: 'cli', to: 'web', port: 53, proto: 'udp' }, HOST)
  t.equal(udp.packet.proto, 'udp')
})

t.test('the ingress: this host, or another one', async (t) => {
  const fromHost = await traceView(source(), { from: '192.0.2.1', to: 'web', port: 80 }, HOST)
  t.equal(fromHost.packet.ingress, 'host')
  const fromGateway = await traceView(source(), { from: '10.21.0.1', to: 'web', port: 80 }, HOST)
  t.equal(fromGateway.packet.ingress, 'host')
  const remote = await traceView(source(), { from: '198.51.100.9', to: '192.0.2.1', port: 8080 }, HOST)
  t.match(remote, { verdict: 'delivered', packet: { ingress: 'remote' } })
  t.match(remote.hops.find((h) => h.verdict === 'nat'), { note: /→ 10\.21\.0\.3:80/ })
  await t.rejects(traceView(source(), { from: '198.51.100.9', to: 'web', port: 80, live: true }, HOST), /--live sends its probe from a container or from this host/)
})

t.test('--live hands the probe over', async (t) => {
  const probes: LiveProbe[] = []
  const v = await traceView(source(probes), { from: 'cli', to: 'web', port: 80, live: true }, HOST)
  t.same(probes, [{ src: '10.21.0.2', dst: '10.21.0.3', proto: 'tcp', port: 80, netns: '/run/netns/cli' }])
  t.equal(v.adminChainUnknown, false)
  t.equal(v.live?.verdict, 'passed')
  await traceView(source(probes), { from: '127.0.0.1', to: '10.21.0.3', live: true }, HOST)
  t.same(probes[1], { src: '127.0.0.1', dst: '10.21.0.3', proto: 'icmp' }, 'from the host: no namespace')
  const unjoined = { ...source(probes), endpoints: async () => [{ ...cli1, sandboxKey: undefined }, web] as unknown as EndpointView[] }
  await t.rejects(traceView(unjoined, { from: 'cli', to: 'web', port: 80, live: true }, HOST), /no network namespace ferry knows of/)
})

t.test('what cannot be traced', async (t) => {
  await t.rejects(traceView({ ...source(), tracer: () => undefined }, { from: 'cli', to: 'web' }, HOST), /--iptables=false/)
  await t.rejects(traceView(source(), { from: 'nosuch', to: 'web' }, HOST), /--from nosuch: no container or endpoint/)
  await t.rejects(traceView(source(), { from: 'cli', to: 'web', proto: 'udp' }, HOST), /udp needs a port/)
  await t.rejects(traceView(source(), { from: '10.21.0.2', to: 'fd00:1::3' }, HOST), /no addresses of one family/)
  const twins = { ...source(), endpoints: async () => [web, { ...other, container: 'x', containerId: 'abcd1'.padEnd(64, '1') }, { ...cli1, container: 'y', containerId: 'abcd2'.padEnd(64, '2') }] }
  await t.rejects(traceView(twins, { from: 'abcd', to: 'web' }, HOST), /--from "abcd" names 2 containers/)
  const v4only = { ...source(), endpoints: async () => [web, { ...cli1, address6: undefined }] as unknown as EndpointView[] }
  await t.rejects(traceView(v4only, { from: 'cli', to: 'fd00:1::3' }, HOST), /no addresses of one family/)
})

t.test('the route checks its query', async (t) => {
  const agent = { ...source(), tracer: source().tracer } as unknown as AgentView
  const app = buildApiServer(agent, silentLog)
  t.teardown(() => app.close())
  const ok = await app.inject({ method: 'GET', url: '/v1/trace?from=cli&to=web&port=80&proto=tcp' })
  t.equal(ok.statusCode, 200, ok.body)
  t.equal((ok.json() as TraceView).verdict, 'delivered')
  for (const [q, why] of [
    ['from=cli', /must have required property 'to'/],
    ['from=cli&to=web&port=0', /port/],
    ['from=cli&to=web&port=65536', /port 65536 is not from 1 to 65535/],
    ['from=cli&to=web&port=80&proto=icmp', /proto/],
    ['from=cli;rm&to=web', /from/],
    ['from=cli&to=web&live=yes', /live/],
    ['from=cli&to=web&extra=1', /additional/],
  ] as const) {
    const r = await app.inject({ method: 'GET', url: `/v1/trace?${q}` })
    t.equal(r.statusCode, 400, q)
    t.match(r.json(), { error: { code: 'INVALID_REQUEST', message: why } }, q)
  }
})
