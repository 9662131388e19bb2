/**
 * The admin API's `GET /v1/trace` (`ferry trace`): the two ends resolved (a container
 * name or id, an endpoint id, or an address), the packet explained from the firewall's
 * desired state (src/nat/trace.ts) and, with `live=true`, a real probe traced
 * (src/nat/trace-live.ts).
 */
import { networkInterfaces } from 'node:os'
import type { FastifyInstance } from 'fastify'
import { FerryError } from '../errors/errors.js'
import { resolveEndpoints } from '../util/resolve.js'
import { contains, familyOf, isIp, normalizeIp, type Family } from '../util/ip.js'
import { tracePacket, type TraceIngress, type TraceProto, type TraceResult } from '../nat/trace.js'
import type { LiveResult, TraceFirewall } from '../nat/trace-live.js'
import type { EndpointView, NetworkView } from './server.js'

export interface TraceSource {
  endpoints (): Promise<EndpointView[]>
  networks (): Promise<NetworkView[]>
  tracer? (): TraceFirewall | undefined
}

export interface TraceQuery { from: string, to: string, port?: number, proto?: 'tcp' | 'udp' | 'sctp', live?: boolean }

/** The query string as it comes (types are checked, never coerced: src/util/http.ts). */
interface TraceQueryText { from: string, to: string, port?: string, proto?: 'tcp' | 'udp' | 'sctp', live?: 'true' | 'false' }

export interface TraceView extends TraceResult {
  backend: string
  from: string
  to: string
  live?: LiveResult
}

/** The host's own addresses, as the agent's namespace has them. */
function hostAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address)).filter((a) => isIp(a))
}

interface End { addr?: string, endpoints: EndpointView[], text: string }

/** A container (name, id or id prefix), an endpoint id (or prefix), or an address. */
function resolveEnd (key: string, eps: readonly EndpointView[], which: '--from' | '--to'): End {
  if (isIp(key)) return { addr: normalizeIp(key), endpoints: eps.filter((e) => [e.address, e.address6].some((a) => a !== undefined && normalizeIp(a) === normalizeIp(key))), text: key }
  let found: EndpointView[]
  try {
    found = resolveEndpoints(key, eps)
  } catch (err) {
    throw new FerryError(err instanceof FerryError ? err.code : 'INVALID_REQUEST', `${which} ${err instanceof Error ? err.message : String(err)}`)
  }
  if (found.length === 0) throw new FerryError('ENDPOINT_NOT_FOUND', `${which} ${key}: no container or endpoint of a ferry network on this host has that name or id (give an address for anything else)`)
  return { endpoints: found, text: key }
}

function addrOf (e: EndpointView, family: Family): string | undefined {
  const a = family === 4 ? e.address : e.address6
  return a === undefined ? undefined : normalizeIp(a)
}

/** The pair of addresses to trace: one family, on one network when both ends are containers that share one (IPv4 first). */
function pickAddresses (from: End, to: End): { src: string, dst: string, srcEp?: EndpointView } {
  const families: Family[] = from.addr !== undefined ? [familyOf(from.addr)!] : to.addr !== undefined ? [familyOf(to.addr)!] : [4, 6]
  const candidates: Array<{ src: string, dst: string, srcEp?: EndpointView, shared: boolean }> = []
  for (const family of families) {
    const srcs = from.addr !== undefined ? [{ a: from.addr, ep: from.endpoints[0] }] : from.endpoints.map((ep) => ({ a: addrOf(ep, family), ep }))
    const dsts = to.addr !== undefined ? [{ a: to.addr, ep: to.endpoints[0] }] : to.endpoints.map((ep) => ({ a: addrOf(ep, family), ep }))
    for (const s of srcs) {
      for (const d of dsts) {
        if (s.a === undefined || d.a === undefined || familyOf(s.a) !== familyOf(d.a)) continue
        candidates.push({ src: s.a, dst: d.a, ...(s.ep === undefined ? {} : { srcEp: s.ep }), shared: s.ep !== undefined && s.ep.networkId === d.ep?.networkId })
      }
    }
  }
  const best = candidates.find((c) => c.shared) ?? candidates[0]
  if (best === undefined) throw new FerryError('INVALID_REQUEST', `${from.text} and ${to.text} have no addresses of one family: a packet cannot go from one to the other`)
  return best
}

const end = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_.:/-]+$' } as const

export function registerTraceRoute (app: FastifyInstance, source: () => TraceSource): void {
  app.get<{ Querystring: TraceQueryText }>('/v1/trace', {
    schema: {
      querystring: {
        type: 'object',
        required: ['from', 'to'],
        additionalProperties: false,
        properties: {
          from: end, to: end,
          port: { type: 'string', pattern: '^[1-9][0-9]{0,4}$' },
          proto: { type: 'string', enum: ['tcp', 'udp', 'sctp'] },
          live: { type: 'string', enum: ['true', 'false'] },
        },
      },
    },
  }, async (req) => {
    const { port, live, ...rest } = req.query
    const n = port === undefined ? undefined : Number(port)
    if (n !== undefined && n > 65535) throw new FerryError('INVALID_REQUEST', `port ${port} is not from 1 to 65535`)
    return traceView(source(), { ...rest, ...(n === undefined ? {} : { port: n }), live: live === 'true' })
  })
}

/** Resolve, explain and (live) probe. */
export async function traceView (s: TraceSource, q: TraceQuery, hostAddrs: () => string[] = hostAddresses): Promise<TraceView> {
  const fw = s.tracer?.()
  if (fw === undefined) throw new FerryError('UNSUPPORTED', 'the agent runs with --iptables=false: ferry has no firewall rules to explain')
  if (q.proto !== undefined && q.port === undefined) throw new FerryError('INVALID_REQUEST', `${q.proto} needs a port (--to ADDRESS:PORT/${q.proto})`)
  const [eps, nets] = await Promise.all([s.endpoints(), s.networks()])
  const from = resolveEnd(q.from, eps, '--from')
  const to = resolveEnd(q.to, eps, '--to')
  const { src, dst, srcEp } = pickAddresses(from, to)
  const hosts = hostAddrs()
  const local = (a: string): boolean => hosts.some((h) => normalizeIp(h) === a) || (familyOf(a) === 4 && contains('127.0.0.0/8', a)) || a === '::1' ||
    nets.some((n) => [n.gateway, n.gateway6].some((g) => g !== undefined && normalizeIp(g) === a))
  const ingress: TraceIngress = srcEp !== undefined ? 'container' : local(src) ? 'host' : 'remote'
  const proto: TraceProto = q.port === undefined ? 'icmp' : (q.proto ?? 'tcp')
  const packet = { src, dst, proto, ingress, ...(q.port === undefined ? {} : { port: q.port }) }
  const names = {
    endpoints: new Map(eps.map((e) => [e.id, e.container || e.id.slice(0, 12)])),
    networks: new Map(nets.map((n) => [n.id, n.name])),
    overlays: new Set(nets.filter((n) => n.overlay !== undefined).map((n) => n.id)),
  }
  // The firewall holds the endpoints that publish ports; the others are there for the path (they add nothing to the plan).
  const state = fw.state()
  const known = new Set(state.endpoints.map((e) => e.id))
  const quiet = eps.filter((e) => !known.has(e.id)).map((e) => ({
    id: e.id, networkId: e.networkId, ports: [], ...(e.address === undefined ? {} : { address: e.address }), ...(e.address6 === undefined ? {} : { address6: e.address6 }),
  }))
  const result = tracePacket({ state: { ...state, endpoints: [...state.endpoints, ...quiet] }, opts: fw.opts, hostAddrs: hosts, names }, packet)
  const view: TraceView = { ...result, backend: fw.backend, from: q.from, to: q.to }
  if (q.live !== true) return view
  if (ingress === 'remote') throw new FerryError('UNSUPPORTED', `--live sends its probe from a container or from this host; ${src} is another host's address`)
  if (ingress === 'container' && srcEp?.sandboxKey === undefined) throw new FerryError('UNSUPPORTED', `--live: ${q.from} has no network namespace ferry knows of (not joined yet)`)
  const live = await fw.live({ src, dst, proto, ...(q.port === undefined ? {} : { port: q.port }), ...(ingress === 'container' ? { netns: srcEp!.sandboxKey! } : {}) })
  return { ...view, live, adminChainUnknown: false }
}
