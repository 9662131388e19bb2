/**
 * `ferry graph`: the cluster at a glance. `buildGraph` turns the admin API's answers
 * (networks, endpoints, cluster status, peer reports: the agent's own view and Redis')
 * into a graph model of plain data — hosts, VTEPs, networks, endpoints, tunnels — with
 * what differs between the two views marked; `renderDot` and `renderJson` draw it, and
 * `renderSvg` hands the DOT text to Graphviz's `dot` (argv, no shell).
 *
 * Names come from outside (the engine, Redis): in DOT they only ever appear inside
 * escaped, quoted labels; node ids are made here from counters.
 */
import { hostname } from 'node:os'
import { type Command, Option } from 'commander'
import { FerryError } from '../errors/errors.js'
import { apiRequester, apiSocketFrom, type ApiRequest } from '../api/client.js'
import { execFile } from '../kernel/exec.js'
import { compareIps, prefixLen } from '../util/ip.js'
import { resolveNetwork } from '../util/resolve.js'
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import { publishedText } from '../util/ports.js'
import type { ClusterStatus, HostInfo } from '../cluster/types.js'
import type { PeerReport, PeerReportRow } from '../vxlan/peers.js'

// ---------------------------------------------------------------------------
// What the admin API answers (only the fields the graph reads)

/** GET /v1/networks: a network record with its name (the fields below are the record's, so the two cannot drift apart). */
export type GraphNetworkInput = Pick<NetworkRecord, 'id' | 'bridge' | 'subnet' | 'gateway' | 'subnet6' | 'gateway6' | 'internal' | 'icc' | 'overlay'> & { name: string }

/** GET /v1/endpoints: an endpoint record with its container's name and id ('' when unknown). */
export type GraphEndpointInput = Pick<EndpointRecord, 'id' | 'networkId' | 'address' | 'prefixLen' | 'address6' | 'prefixLen6' | 'joined' | 'ports'> &
{ container: string, containerId: string }

export type GraphHostInput = Pick<HostInfo, 'hostId' | 'vtep' | 'version' | 'lastHeartbeat' | 'expiresAt'>

/** GET /v1/cluster: the store's status, its revision and hosts (absent when the store could not be read). */
export type GraphClusterInput = Pick<ClusterStatus, 'state' | 'url' | 'hostId' | 'vtep' | 'lastError'> & { revision?: number, hosts?: GraphHostInput[] }

export type GraphPeerRowInput = Pick<PeerReportRow, 'ip' | 'mac' | 'endpointId' | 'hostId' | 'vtep' | 'kernelVtep' | 'status' | 'detail'>

/** GET /v1/peers: one report per overlay, named. */
export type GraphPeerReportInput = Pick<PeerReport, 'overlay' | 'vni' | 'vxlan' | 'source' | 'cluster'> & { network: string, rows: GraphPeerRowInput[] }

export interface GraphInput {
  /** This host's name when the agent runs without a cluster (it has no host id then). */
  hostname: string
  networks: GraphNetworkInput[]
  endpoints: GraphEndpointInput[]
  /** GET /v1/cluster; absent when the agent runs without a cluster. */
  cluster?: GraphClusterInput
  /** GET /v1/peers; empty without a cluster. */
  peers: GraphPeerReportInput[]
  /** The clock heartbeats are compared with (ms since the epoch). */
  now: number
  /** Only this network (name, id, id prefix, bridge or overlay name). */
  network?: string
}

// ---------------------------------------------------------------------------
// The model

/** late: no heartbeat for more than half its TTL; expired: past it, not yet removed; unknown: a VTEP the kernel sends to that no host claims. */
export type HostState = 'this host' | 'ok' | 'late' | 'expired' | 'unknown'

export interface GraphHost {
  id: string
  self: boolean
  vtep?: string
  version?: string
  heartbeatAgeS?: number
  state: HostState
}

/** `bridge` is the one on this host. */
export interface GraphNetwork extends Pick<GraphNetworkInput, 'id' | 'name' | 'bridge' | 'subnet' | 'gateway' | 'subnet6' | 'gateway6'> {
  overlay?: { name: string, vni: number, vxlan?: string }
  flags: string[]
  /** Hosts the network is seen on: this one, and for an overlay the hosts with endpoints in it. */
  hosts: string[]
}

/**
 * ok: as planned; created: not joined yet; missing, mismatch, conflict: known in Redis but
 * not (rightly) programmed here; stale: programmed here but unknown to Redis.
 */
export type EndpointState = 'ok' | 'created' | 'missing' | 'mismatch' | 'conflict' | 'stale'

export interface GraphEndpoint {
  id: string
  host: string
  network: string
  name: string
  addresses: string[]
  ports: string[]
  /** Where this endpoint is known from: the agent's store, Redis, or only the kernel's FDB/neighbour table. */
  source: 'agent' | 'cluster' | 'kernel'
  state: EndpointState
  detail?: string
}

export interface GraphTunnel {
  network: string
  overlay: string
  vni: number
  from: string
  to: string
  /** kernel: programmed by this agent and checked; cluster: between two other hosts, as Redis tells. */
  view: 'kernel' | 'cluster'
  /** Peers behind `to` that are not as Redis says (kernel view only). */
  differences: number
}

export interface GraphModel {
  self: string
  cluster?: { url: string, state: string, revision?: number }
  hosts: GraphHost[]
  networks: GraphNetwork[]
  endpoints: GraphEndpoint[]
  tunnels: GraphTunnel[]
  /** One sentence per difference between the views, or per host whose heartbeat is late. */
  differences: string[]
}

// ---------------------------------------------------------------------------
// Building


function hostState (h: GraphHostInput, now: number): { state: HostState, ageS: number } {
  const age = now - h.lastHeartbeat
  const ttl = h.expiresAt - h.lastHeartbeat
  const state: HostState = now >= h.expiresAt ? 'expired' : age > ttl / 2 ? 'late' : 'ok'
  return { state, ageS: Math.max(0, Math.round(age / 100) / 10) }
}

function byName<T extends { name: string, id: string }> (a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** The graph of what this agent and Redis know, for all networks or the one `input.network` names. */
export function buildGraph (input: GraphInput): GraphModel {
  let nets = input.networks
  if (input.network !== undefined) {
    nets = [resolveNetwork(input.network, nets)]
  }
  nets = [...nets].sort(byName)
  const c = input.cluster
  const self = c?.hostId ?? input.hostname
  const differences: string[] = []
  const hosts = new Map<string, GraphHost>()
  hosts.set(self, { id: self, self: true, ...(c ? { vtep: c.vtep } : {}), state: 'this host' })
  const registered = new Map<string, GraphHost>()
  for (const h of c?.hosts ?? []) {
    const { state, ageS } = hostState(h, input.now)
    if (h.hostId === self) { Object.assign(hosts.get(self)!, { version: h.version, heartbeatAgeS: ageS }); continue }
    registered.set(h.hostId, { id: h.hostId, self: false, vtep: h.vtep, version: h.version, heartbeatAgeS: ageS, state })
  }
  const byVtep = new Map([...registered.values(), hosts.get(self)!].flatMap((h) => (h.vtep === undefined ? [] : [[h.vtep, h.id] as const])))
  // Every registered host when the whole cluster is drawn; with --network, those that take part in it.
  if (input.network === undefined) for (const h of registered.values()) hosts.set(h.id, h)
  const useHost = (id: string, vtep?: string): string => {
    if (!hosts.has(id)) hosts.set(id, registered.get(id) ?? { id, self: false, ...(vtep !== undefined ? { vtep } : {}), state: 'unknown' })
    return id
  }

  const netIds = new Set(nets.map((n) => n.id))
  const endpoints: GraphEndpoint[] = input.endpoints.filter((e) => netIds.has(e.networkId)).map((e) => ({
    id: e.id,
    host: self,
    network: e.networkId,
    name: e.container !== '' ? e.container : e.containerId !== '' ? e.containerId.slice(0, 12) : `endpoint ${e.id.slice(0, 12)}`,
    addresses: [`${e.address}/${e.prefixLen}`, ...(e.address6 !== undefined && e.address6 !== '' ? [`${e.address6}/${e.prefixLen6 ?? 64}`] : [])],
    ports: e.ports.map(publishedText),
    source: 'agent',
    state: e.joined ? 'ok' : 'created',
  }))

  const networks: GraphNetwork[] = []
  const tunnels: GraphTunnel[] = []
  for (const n of nets) {
    const report = n.overlay === undefined ? undefined : input.peers.find((p) => p.overlay === n.overlay!.name)
    const onHosts = new Set([self])
    if (n.overlay !== undefined && report !== undefined) {
      if (report.source === 'cache') differences.push(`${n.name}: Redis could not be read; its side is the agent's last known state`)
      const rowsById = new Map(report.rows.flatMap((r) => (r.endpointId === undefined ? [] : [[r.endpointId, r] as const])))
      const hostsOfOverlay = new Map<string, number>()
      const prefix = prefixLen(n.subnet ?? n.subnet6 ?? '')
      for (const e of report.cluster) {
        const host = useHost(e.hostId, e.vtep)
        onHosts.add(host)
        const row = rowsById.get(e.endpointId)
        const state: EndpointState = row === undefined || row.status === 'stale' ? 'missing' : row.status
        const name = e.names?.[0] ?? `endpoint ${e.endpointId.slice(0, 12)}`
        const ep: GraphEndpoint = { id: e.endpointId, host, network: n.id, name, addresses: [`${e.ip}/${prefix}`], ports: [], source: 'cluster', state }
        if (state !== 'ok') {
          ep.detail = row?.detail ?? 'not in the plan'
          differences.push(`${n.name}: ${e.ip} (${name} on ${host}) is in Redis but ${state === 'mismatch' ? 'programmed differently' : 'not programmed'}: ${ep.detail}`)
        }
        hostsOfOverlay.set(host, (hostsOfOverlay.get(host) ?? 0) + (state === 'ok' ? 0 : 1))
        endpoints.push(ep)
      }
      for (const r of report.rows) {
        if (r.status !== 'stale') continue
        const vtep = r.kernelVtep
        const host = vtep === undefined ? useHost('unknown VTEP') : useHost(byVtep.get(vtep) ?? `unknown VTEP ${vtep}`, vtep)
        onHosts.add(host)
        const what = r.ip !== '' ? r.ip : r.mac
        endpoints.push({ id: `kernel ${what}`, host, network: n.id, name: r.ip !== '' && r.mac !== '' ? `MAC ${r.mac}` : what, addresses: r.ip !== '' ? [`${r.ip}/${prefix}`] : [], ports: [], source: 'kernel', state: 'stale', detail: r.detail ?? 'not in Redis' })
        differences.push(`${n.name}: ${what} is programmed here (to ${vtep ?? 'no VTEP'}) but not in Redis`)
        hostsOfOverlay.set(host, (hostsOfOverlay.get(host) ?? 0) + 1)
      }
      const remote = [...hostsOfOverlay.keys()].filter((h) => h !== self).sort()
      for (const to of remote) {
        tunnels.push({ network: n.id, overlay: n.overlay.name, vni: n.overlay.vni, from: self, to, view: 'kernel', differences: hostsOfOverlay.get(to) ?? 0 })
      }
      // Between two other hosts of the overlay (as Redis tells: a VTEP only the kernel knows is no host of it).
      const inRedis = new Set(report.cluster.map((e) => e.hostId))
      for (const [i, from] of remote.entries()) {
        if (!inRedis.has(from)) continue
        for (const to of remote.slice(i + 1).filter((h) => inRedis.has(h))) tunnels.push({ network: n.id, overlay: n.overlay.name, vni: n.overlay.vni, from, to, view: 'cluster', differences: 0 })
      }
    }
    const flags = [n.internal ? 'internal' : '', n.icc ? '' : 'no-icc'].filter((f) => f !== '')
    networks.push({
      id: n.id, name: n.name, bridge: n.bridge, subnet: n.subnet, gateway: n.gateway,
      ...(n.subnet6 !== undefined ? { subnet6: n.subnet6 } : {}), ...(n.gateway6 !== undefined ? { gateway6: n.gateway6 } : {}),
      ...(n.overlay !== undefined ? { overlay: { ...n.overlay, ...(report !== undefined ? { vxlan: report.vxlan } : {}) } } : {}),
      flags, hosts: [...onHosts].sort((a, b) => (a === self ? -1 : b === self ? 1 : a < b ? -1 : a > b ? 1 : 0)),
    })
  }

  const hostList = [...hosts.values()].sort((a, b) => (a.self ? -1 : b.self ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  differences.unshift(...hostList.filter((h) => h.state === 'late' || h.state === 'expired').map((h) =>
    `host ${h.id}: last heartbeat ${h.heartbeatAgeS ?? '?'} s ago (${h.state === 'late' ? 'late' : 'past its TTL, about to be removed'})`))
  if (c !== undefined && c.state !== 'ready') differences.unshift(`cluster: ${c.state}${c.lastError !== undefined ? ` (${c.lastError})` : ''}`)
  if (c !== undefined && c.hosts === undefined) differences.unshift('cluster: the list of hosts could not be read from Redis')

  const hostOrder = new Map(hostList.map((h, i) => [h.id, i]))
  const netOrder = new Map(nets.map((n) => n.id).map((id, i) => [id, i]))
  endpoints.sort((a, b) => (hostOrder.get(a.host)! - hostOrder.get(b.host)!) || (netOrder.get(a.network)! - netOrder.get(b.network)!) ||
    compareAddress(a, b) || byName(a, b))
  return {
    self,
    ...(c !== undefined ? { cluster: { url: c.url, state: c.state, ...(c.revision !== undefined ? { revision: c.revision } : {}) } } : {}),
    hosts: hostList,
    networks,
    endpoints,
    tunnels,
    differences,
  }
}

function compareAddress (a: GraphEndpoint, b: GraphEndpoint): number {
  const x = a.addresses[0]?.split('/')[0]
  const y = b.addresses[0]?.split('/')[0]
  if (x === undefined || y === undefined) return (x === undefined ? 1 : 0) - (y === undefined ? 1 : 0)
  try { return compareIps(x, y) } catch { return x < y ? -1 : x > y ? 1 : 0 }
}

// ---------------------------------------------------------------------------
// Rendering

export function renderJson (g: GraphModel): string {
  return JSON.stringify(g, null, 2) + '\n'
}

const MAX_LABEL = 80

/**
 * One line of a DOT label, safe inside a quoted string: backslashes and quotes escaped
 * (so no `\N`, `\G`, `\l` escapes of Graphviz and no end of the string), control
 * characters shown as `\xNN`, long names cut.
 */
export function dotText (s: string): string {
  const cut = [...s].length > MAX_LABEL ? [...s].slice(0, MAX_LABEL - 1).join('') + '…' : s
  return cut.replace(/[\\"]/g, (ch) => `\\${ch}`).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** A quoted DOT label of several lines. */
function label (...lines: string[]): string {
  return `"${lines.map(dotText).join('\\n')}"`
}

const RED = '#c0392b'
const ORANGE = '#d68910'

function attrs (a: Record<string, string | undefined>): string {
  return `[${Object.entries(a).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])).join(', ')}]`
}

/** The graph in Graphviz's DOT language: a cluster per host, a box per bridge, an ellipse per endpoint, tunnels between VTEPs. */
export function renderDot (g: GraphModel): string {
  const out: string[] = []
  const summary = [`ferry graph of ${g.self}`]
  if (g.cluster) summary.push(`cluster ${g.cluster.url} (${g.cluster.state}${g.cluster.revision !== undefined ? `, revision ${g.cluster.revision}` : ''})`)
  summary.push(g.differences.length === 0 ? 'the agent matches Redis' : `${g.differences.length} difference(s), in red`)
  out.push('graph ferry {')
  out.push(`  graph ${attrs({ rankdir: 'LR', fontname: '"Helvetica"', labelloc: 't', label: label(...summary) })};`)
  out.push(`  node ${attrs({ fontname: '"Helvetica"', fontsize: '10' })};`)
  out.push(`  edge ${attrs({ fontname: '"Helvetica"', fontsize: '9' })};`)
  const hostIds = new Map(g.hosts.map((h, i) => [h.id, `h${i}`]))
  const netIds = new Map(g.networks.map((n, i) => [n.id, `n${i}`]))
  const vtepNode = (host: string): string => `${hostIds.get(host)!}_vtep`
  const bridgeNode = (host: string, net: string): string => `${hostIds.get(host)!}_${netIds.get(net)!}`
  let ep = 0
  for (const h of g.hosts) {
    const hid = hostIds.get(h.id)!
    const late = h.state === 'late' || h.state === 'expired' || h.state === 'unknown'
    const hostLines = [`host ${h.id}${h.self ? ' (this host)' : ''}`]
    if (h.version !== undefined) hostLines.push(`ferry ${h.version}`)
    if (h.heartbeatAgeS !== undefined) hostLines.push(`heartbeat ${h.heartbeatAgeS} s ago${late ? ` (${h.state.toUpperCase()})` : ''}`)
    if (h.state === 'unknown') hostLines.push('not registered in Redis (UNKNOWN)')
    out.push(`  subgraph cluster_${hid} {`)
    out.push(`    graph ${attrs({ label: label(...hostLines), style: '"rounded"', color: late ? `"${ORANGE}"` : '"gray40"', penwidth: late ? '2' : undefined })};`)
    if (h.vtep !== undefined) out.push(`    ${vtepNode(h.id)} ${attrs({ shape: 'diamond', label: label('VTEP', h.vtep) })};`)
    for (const n of g.networks.filter((x) => x.hosts.includes(h.id))) {
      const bid = bridgeNode(h.id, n.id)
      const lines = [`network ${n.name}`]
      if (h.self) lines.push(`bridge ${n.bridge}`)
      if (n.subnet !== undefined) lines.push(`${n.subnet} gw ${n.gateway ?? '?'}`)
      if (n.subnet6 !== undefined) lines.push(`${n.subnet6}${n.gateway6 !== undefined ? ` gw ${n.gateway6}` : ''}`)
      if (n.overlay) lines.push(`overlay ${n.overlay.name} vni ${n.overlay.vni}`)
      if (n.flags.length > 0) lines.push(n.flags.join(', '))
      out.push(`    ${bid} ${attrs({ shape: 'box', style: '"rounded"', label: label(...lines) })};`)
      for (const e of g.endpoints.filter((x) => x.host === h.id && x.network === n.id)) {
        const eid = `e${ep++}`
        const bad = e.state !== 'ok' && e.state !== 'created'
        const elines = [e.name, ...e.addresses, ...e.ports]
        if (e.source !== 'agent') elines.push(`(${e.source === 'cluster' ? 'from Redis' : 'only in the kernel'})`)
        if (bad) elines.push(`${e.state.toUpperCase()}${e.detail !== undefined ? `: ${e.detail}` : ''}`)
        out.push(`    ${eid} ${attrs({ shape: 'ellipse', label: label(...elines), color: bad ? `"${RED}"` : undefined, fontcolor: bad ? `"${RED}"` : undefined, style: e.state === 'stale' || e.state === 'created' ? '"dashed"' : undefined })};`)
        out.push(`    ${eid} -- ${bid}${bad ? ` ${attrs({ color: `"${RED}"` })}` : ''};`)
      }
      if (n.overlay !== undefined && h.vtep !== undefined) {
        out.push(`    ${bid} -- ${vtepNode(h.id)}${h.self && n.overlay.vxlan !== undefined ? ` ${attrs({ label: label(n.overlay.vxlan) })}` : ''};`)
      }
    }
    out.push('  }')
  }
  for (const t of g.tunnels) {
    const from = g.hosts.find((h) => h.id === t.from)
    const to = g.hosts.find((h) => h.id === t.to)
    if (from?.vtep === undefined || to?.vtep === undefined) continue
    const lines = [`${t.overlay} vni ${t.vni}`]
    if (t.differences > 0) lines.push(`${t.differences} difference(s)`)
    if (t.view === 'cluster') lines.push('(from Redis)')
    out.push(`  ${vtepNode(t.from)} -- ${vtepNode(t.to)} ${attrs({
      label: label(...lines), penwidth: '2', style: t.view === 'cluster' ? '"dashed"' : undefined,
      color: t.differences > 0 ? `"${RED}"` : '"#2471a3"', fontcolor: t.differences > 0 ? `"${RED}"` : undefined,
    })};`)
  }
  if (g.differences.length > 0) {
    out.push(`  differences ${attrs({ shape: 'note', color: `"${RED}"`, fontcolor: `"${RED}"`, label: label('differences:', ...g.differences) })};`)
  }
  out.push('}')
  return out.join('\n') + '\n'
}

/** SVG from `dot -Tsvg`; undefined when Graphviz is not installed. */
export async function renderSvg (dot: string, program = 'dot'): Promise<string | undefined> {
  try {
    return (await execFile([program, '-Tsvg'], { input: dot, timeoutMs: 60_000 })).stdout
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return undefined
    throw err
  }
}

// ---------------------------------------------------------------------------
// The command

export type GraphFormat = 'dot' | 'svg' | 'json'

/** Everything `buildGraph` needs, read from the agent's API; a missing cluster is a graph of this host alone. */
export async function readGraphInput (api: ApiRequest, now: number, network?: string): Promise<GraphInput> {
  const [networks, endpoints] = await Promise.all([
    api<GraphNetworkInput[]>('GET', '/v1/networks'),
    api<GraphEndpointInput[]>('GET', '/v1/endpoints'),
  ])
  let cluster: GraphClusterInput | undefined
  try {
    cluster = await api<GraphClusterInput>('GET', '/v1/cluster')
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'CLUSTER_UNAVAILABLE')) throw err
  }
  const peers = cluster === undefined ? [] : await api<GraphPeerReportInput[]>('GET', '/v1/peers')
  return { hostname: hostname(), networks, endpoints, ...(cluster !== undefined ? { cluster } : {}), peers, now, ...(network !== undefined ? { network } : {}) }
}

export const NO_GRAPHVIZ = "ferry: Graphviz's dot is not installed (apt-get install graphviz), so this is the graph in DOT instead of SVG\n"

export function registerGraphCommand (program: Command): void {
  program.command('graph')
    .description("hosts, VTEPs, networks, bridges, endpoints and tunnels, from the agent's view and Redis', with what differs in red")
    .option('--network <network>', 'only this network (name, id or overlay name)')
    .addOption(new Option('--format <format>', 'dot (Graphviz), svg (runs dot -Tsvg) or json').choices(['dot', 'svg', 'json']).default('dot'))
    .action(async (o: { network?: string, format: GraphFormat }) => {
      const api = apiRequester(apiSocketFrom(program.opts<{ apiSocket?: string }>().apiSocket))
      const graph = buildGraph(await readGraphInput(api, Date.now(), o.network))
      if (o.format === 'json') { process.stdout.write(renderJson(graph)); return }
      const dot = renderDot(graph)
      if (o.format === 'dot') { process.stdout.write(dot); return }
      const svg = await renderSvg(dot)
      if (svg === undefined) process.stderr.write(NO_GRAPHVIZ)
      process.stdout.write(svg ?? dot)
    })
}
