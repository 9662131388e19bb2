/**
 * The agent's admin API for the CLI: JSON over a root-only unix socket. Every
 * route validates its parameters; errors answer {"error": {"code", "message"}}.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { fastifyOptions } from '../util/http.js'
import { ERROR_CODES, FerryError, httpStatus, toFerryError } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../model/types.js'
import { registerRuntimeRoutes, type RuntimeApi } from './runtime.js'
import { MAX_KEY_LENGTH, resolveEndpoints, resolveNetwork } from '../util/resolve.js'
import { registerTraceRoute } from './trace.js'
import type { TraceFirewall } from '../nat/trace-live.js'

export interface NetworkView extends NetworkRecord { name: string, endpoints: number }
export interface EndpointView extends EndpointRecord { container: string, containerId: string, networkName: string }

/** What the API needs from the agent. */
export interface AgentView {
  status (): Promise<Record<string, unknown>>
  networks (): Promise<NetworkView[]>
  endpoints (): Promise<EndpointView[]>
  reconcile (): Promise<Record<string, unknown>>
  clusterStatus (): Promise<Record<string, unknown>>
  /** A new WireGuard key for this host, with no gap for running connections (`ferry cluster rotate-key`). */
  rotateKey? (): Promise<Record<string, unknown>>
  peers (network?: string): Promise<unknown[]>
  dnsRecords (network?: string): Promise<unknown[]>
  dnsQuery (name: string, type: 'A' | 'AAAA' | 'PTR', network: string): Promise<Record<string, unknown>>
  /** The forwarded-answer cache's size and counters, emptied first with `flush` (`ferry dns cache`). */
  dnsCache? (flush: boolean): Promise<Record<string, unknown>>
  /** attach/detach/run and networks made without the engine (src/api/runtime.ts). */
  runtime (): RuntimeApi
  /** The IPAM pool of a network: its subnet and every allocated address (for `ferry network inspect`). */
  pool? (poolId: string): PoolRecord | undefined
  /** The firewall as `ferry trace` sees it (src/api/trace.ts); undefined with --iptables=false. */
  tracer? (): TraceFirewall | undefined
}

const idOrName = { type: 'string', minLength: 1, maxLength: MAX_KEY_LENGTH } as const

export function buildApiServer (agent: AgentView, log: Logger): FastifyInstance {
  // A name or id in the path may be as long as the schemas allow (src/util/resolve.ts MAX_KEY_LENGTH), not the router's default 100.
  const app = Fastify({ ...fastifyOptions(log, 'api'), routerOptions: { maxParamLength: 1024 } })
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const ferr = error.validation
      ? new FerryError('INVALID_REQUEST', `invalid request: ${error.message}`, { cause: error })
      : toFerryError(error)
    if (ferr.category === 'internal') request.log.error({ err: ferr }, 'api call failed')
    return reply.code(httpStatus(ferr.category)).send({ error: { code: ferr.code, category: ferr.category, message: ferr.message } })
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: { code: 'UNKNOWN_METHOD', category: ERROR_CODES.UNKNOWN_METHOD.category, message: `no such API route ${request.method} ${request.url}` } })
  })

  const findNetwork = async (key: string): Promise<NetworkView> => resolveNetwork(key, await agent.networks())

  app.get('/v1/status', async () => agent.status())
  app.get('/v1/networks', async () => agent.networks())
  app.get<{ Params: { id: string } }>('/v1/networks/:id', { schema: { params: { type: 'object', properties: { id: idOrName }, required: ['id'] } } },
    async (req) => {
      const net = await findNetwork(req.params.id)
      const eps = (await agent.endpoints()).filter((e) => e.networkId === net.id)
      const pool6 = net.poolId6 === undefined ? undefined : agent.pool?.(net.poolId6)
      return { ...net, endpointList: eps, ...(net.poolId === undefined ? {} : { pool: agent.pool?.(net.poolId) }), ...(pool6 === undefined ? {} : { pool6 }) }
    })
  app.get<{ Querystring: { network?: string } }>('/v1/endpoints', { schema: { querystring: { type: 'object', properties: { network: idOrName } } } },
    async (req) => {
      const eps = await agent.endpoints()
      if (!req.query.network) return eps
      const net = await findNetwork(req.query.network)
      return eps.filter((e) => e.networkId === net.id)
    })
  app.get<{ Querystring: { target?: string } }>('/v1/ports', { schema: { querystring: { type: 'object', properties: { target: idOrName } } } },
    async (req) => {
      let eps = await agent.endpoints()
      const target = req.query.target
      if (target) {
        eps = resolveEndpoints(target, eps)
        if (eps.length === 0) throw new FerryError('ENDPOINT_NOT_FOUND', `no container or endpoint is named "${target}" or has that id (ferry endpoint ls lists them)`)
      }
      return eps.flatMap((e) => e.ports.map((p) => ({ ...p, endpoint: e.id, container: e.container, network: e.networkName })))
    })
  app.post('/v1/reconcile', async () => agent.reconcile())
  app.get('/v1/cluster', async () => agent.clusterStatus())
  app.post('/v1/cluster/rotate-key', async () => {
    if (agent.rotateKey === undefined) throw new FerryError('UNSUPPORTED', 'this agent cannot rotate its WireGuard key')
    return await agent.rotateKey()
  })
  app.get<{ Querystring: { network?: string } }>('/v1/dns/records', { schema: { querystring: { type: 'object', properties: { network: idOrName } } } },
    async (req) => agent.dnsRecords(req.query.network))
  app.get<{ Querystring: { name: string, type: 'A' | 'AAAA' | 'PTR', network: string } }>('/v1/dns/query', {
    schema: {
      querystring: {
        type: 'object',
        required: ['name', 'network'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 253 }, network: idOrName, type: { type: 'string', enum: ['A', 'AAAA', 'PTR'], default: 'A' } },
      },
    },
  }, async (req) => agent.dnsQuery(req.query.name, req.query.type, req.query.network))
  const dnsCache = async (flush: boolean): Promise<Record<string, unknown>> => {
    if (agent.dnsCache === undefined) throw new FerryError('UNSUPPORTED', 'this agent has no DNS cache')
    return await agent.dnsCache(flush)
  }
  app.get('/v1/dns/cache', async () => dnsCache(false))
  app.delete('/v1/dns/cache', async () => dnsCache(true))
  app.get<{ Querystring: { network?: string } }>('/v1/peers', { schema: { querystring: { type: 'object', properties: { network: idOrName } } } },
    async (req) => agent.peers(req.query.network))
  registerRuntimeRoutes(app, () => agent.runtime())
  registerTraceRoute(app, () => agent)
  return app
}
