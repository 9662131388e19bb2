/**
 * Admin API routes of the runtime front end (`ferry attach`/`detach`/`run`/`ps`,
 * `ferry network create`/`rm`, the CNI plugin). Bodies are validated by JSON
 * schema, then parsed into ferry's types by src/runtime/spec.ts.
 *
 *   POST   /v1/containers          attach (AttachWire)         -> AttachResult
 *   GET    /v1/containers          list                        -> ContainerView[]
 *   GET    /v1/containers/:name    one                         -> ContainerView
 *   DELETE /v1/containers/:name    detach (idempotent)         -> { removed }
 *   POST   /v1/networks            create (NetworkCreateSpec)  -> network record with its name
 *   DELETE /v1/networks/:name      remove                      -> { removed: true }
 */
import type { FastifyInstance } from 'fastify'
import type { NetworkRecord } from '../model/types.js'
import { parseAttach, type AttachWire } from '../runtime/spec.js'
import type { AttachResult, AttachSpec, ContainerRecord, NetworkCreateSpec } from '../runtime/types.js'

/** What the routes need from the agent (src/runtime/service.ts implements it). */
export interface RuntimeApi {
  attach (spec: AttachSpec): Promise<AttachResult>
  detach (name: string): Promise<boolean>
  containers (): ContainerRecord[]
  container (name: string): ContainerRecord
  createNetwork (spec: NetworkCreateSpec): Promise<NetworkRecord>
  removeNetwork (key: string): Promise<void>
  networkName (id: string): string | undefined
}

export interface ContainerView extends ContainerRecord { networkName: string }

const str = { type: 'string', minLength: 1, maxLength: 4096 } as const
const strList = { type: 'array', maxItems: 1024, items: str } as const
const nameParam = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 256 } }, required: ['name'] } as const

const attachBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'net'],
  properties: {
    name: str,
    netns: str,
    pid: { type: 'integer', minimum: 1 },
    net: str,
    ifname: str,
    ip: str,
    publish: strList,
    publishAll: { type: 'boolean' },
    expose: strList,
    aliases: strList,
    links: strList,
    dns: strList,
    dnsSearch: strList,
    dnsOptions: strList,
    hostname: { type: 'string', maxLength: 253 },
    setupFiles: { type: 'boolean' },
    owner: { type: 'string', enum: ['run', 'attach', 'cni'] },
    watchPid: { type: 'integer', minimum: 1 },
  },
} as const

const networkBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: str,
    subnet: str,
    gateway: str,
    ipRange: str,
    internal: { type: 'boolean' },
    options: { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 } },
  },
} as const

export function registerRuntimeRoutes (app: FastifyInstance, runtime: () => RuntimeApi): void {
  const view = (c: ContainerRecord): ContainerView => {
    const rt = runtime()
    const owner = c.sharesWith !== undefined ? rt.containers().find((o) => o.name === c.sharesWith) : c
    const netId = owner?.networkId
    const networkName = c.mode === 'none' ? 'none' : c.mode === 'container' ? `container:${c.sharesWith ?? ''}` : netId === undefined ? '' : (rt.networkName(netId) ?? netId.slice(0, 12))
    return { ...c, networkName }
  }

  app.post<{ Body: AttachWire }>('/v1/containers', { schema: { body: attachBody } }, async (req, reply) => {
    const result = await runtime().attach(parseAttach(req.body))
    return reply.code(201).send({ ...result, container: view(result.container) })
  })
  app.get('/v1/containers', async () => runtime().containers().map(view))
  app.get<{ Params: { name: string } }>('/v1/containers/:name', { schema: { params: nameParam } },
    async (req) => view(runtime().container(req.params.name)))
  app.delete<{ Params: { name: string } }>('/v1/containers/:name', { schema: { params: nameParam } },
    async (req) => ({ removed: await runtime().detach(req.params.name) }))

  app.post<{ Body: { name: string, subnet?: string, gateway?: string, ipRange?: string, internal?: boolean, options?: Record<string, string> } }>(
    '/v1/networks', { schema: { body: networkBody } }, async (req, reply) => {
      const b = req.body
      const spec: NetworkCreateSpec = { name: b.name, internal: b.internal === true, options: b.options ?? {} }
      if (b.subnet !== undefined) spec.subnet = b.subnet
      if (b.gateway !== undefined) spec.gateway = b.gateway
      if (b.ipRange !== undefined) spec.ipRange = b.ipRange
      const net = await runtime().createNetwork(spec)
      return reply.code(201).send({ ...net, name: b.name })
    })
  app.delete<{ Params: { name: string } }>('/v1/networks/:name', { schema: { params: nameParam } }, async (req) => {
    await runtime().removeNetwork(req.params.name)
    return { removed: true }
  })
}
