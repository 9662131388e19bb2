/**
 * Admin API routes of the runtime front end (`ferry attach`/`detach`/`run`/`ps`,
 * `ferry network create`/`rm`, the CNI plugin). Bodies are validated by JSON
 * schema, then parsed into ferry's types by src/runtime/spec.ts.
 *
 *   POST   /v1/containers          attach (AttachWire)         -> AttachReply
 *   GET    /v1/containers          list                        -> ContainerView[]
 *   GET    /v1/containers/:name    one                         -> ContainerView
 *   DELETE /v1/containers/:name    detach (idempotent)         -> { removed }
 *   POST   /v1/containers/:name/process   ferry run's command started: { pid } -> ContainerView
 *   POST   /v1/containers/:name/stop  ferry stop/rm: { timeout?, removeLog? } -> { name }
 *   POST   /v1/networks            create (NetworkCreateSpec)  -> network record with its name
 *   DELETE /v1/networks/:name      remove                      -> { removed: true }
 */
import type { FastifyInstance } from 'fastify'
import type { NetworkRecord } from '../model/types.js'
import { parseAttach, type AttachWire } from '../runtime/spec.js'
import { DEFAULT_STOP_GRACE_MS, type AttachResult, type AttachSpec, type ContainerRecord, type NetworkCreateSpec, type StopOptions } from '../runtime/types.js'
import type { ResolvConf } from '../runtime/files.js'

/** What the routes need from the agent (src/runtime/service.ts implements it). */
export interface RuntimeApi {
  attach (spec: AttachSpec): Promise<AttachResult>
  detach (name: string): Promise<boolean>
  containers (): ContainerRecord[]
  container (name: string): ContainerRecord
  createNetwork (spec: NetworkCreateSpec): Promise<NetworkRecord>
  removeNetwork (key: string): Promise<void>
  networkName (id: string): string | undefined
  setProcess (name: string, pid: number): Promise<ContainerRecord>
  stopContainer (name: string, opts: StopOptions): Promise<string>
  /** ferry's part of a container's DNS settings (see ContainerView.resolver); optional for older implementations. */
  resolverOf? (c: ContainerRecord): ResolvConf
}

export interface ContainerView extends ContainerRecord {
  networkName: string
  /**
   * ferry's part of the container's DNS settings, for runtimes that write resolv.conf
   * themselves (the CNI plugin puts it in its result): nameservers = ferry's DNS server on
   * the network's gateway when the agent runs it (none with --no-dns-server), search and
   * options = the agent's --dns-search and --dns-opt. Absent from agents before it existed.
   */
  resolver?: ResolvConf
}

/** The answer to POST /v1/containers. */
export interface AttachReply extends AttachResult { container: ContainerView }

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
    ip6: str,
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
    env: { type: 'array', maxItems: 4096, items: { type: 'string', minLength: 2, maxLength: 131072 } },
    detached: { type: 'boolean' },
  },
} as const

const processBody = {
  type: 'object', additionalProperties: false, required: ['pid'], properties: { pid: { type: 'integer', minimum: 1 } },
} as const

const stopBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** Seconds between SIGTERM and SIGKILL (0: SIGKILL at once); Docker's 10 by default. */
    timeout: { type: 'integer', minimum: 0, maximum: 3600 },
    removeLog: { type: 'boolean' },
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
    ipv4: { type: 'boolean' },
    ipv6: { type: 'boolean' },
    subnet6: str,
    gateway6: str,
    ipRange6: str,
    internal: { type: 'boolean' },
    options: { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 } },
  },
} as const

export function registerRuntimeRoutes (app: FastifyInstance, runtime: () => RuntimeApi): void {
  const view = (c: ContainerRecord): ContainerView => {
    const rt = runtime()
    const owner = c.sharesWith !== undefined ? rt.containers().find((o) => o.name === c.sharesWith) : c
    const netId = owner?.networkId
    const networkName = c.mode === 'none' || c.mode === 'host' ? c.mode : c.mode === 'container' ? `container:${c.sharesWith ?? ''}` : netId === undefined ? '' : (rt.networkName(netId) ?? netId.slice(0, 12))
    const resolver = rt.resolverOf?.(c)
    return resolver === undefined ? { ...c, networkName } : { ...c, networkName, resolver }
  }

  app.post<{ Body: AttachWire }>('/v1/containers', { schema: { body: attachBody } }, async (req, reply) => {
    const result = await runtime().attach(parseAttach(req.body))
    const out: AttachReply = { ...result, container: view(result.container) }
    return reply.code(201).send(out)
  })
  app.get('/v1/containers', async () => runtime().containers().map(view))
  app.get<{ Params: { name: string } }>('/v1/containers/:name', { schema: { params: nameParam } },
    async (req) => view(runtime().container(req.params.name)))
  app.delete<{ Params: { name: string } }>('/v1/containers/:name', { schema: { params: nameParam } },
    async (req) => ({ removed: await runtime().detach(req.params.name) }))
  app.post<{ Params: { name: string }, Body: { pid: number } }>('/v1/containers/:name/process', { schema: { params: nameParam, body: processBody } },
    async (req) => view(await runtime().setProcess(req.params.name, req.body.pid)))
  app.post<{ Params: { name: string }, Body: { timeout?: number, removeLog?: boolean } }>('/v1/containers/:name/stop', { schema: { params: nameParam, body: stopBody } },
    async (req) => {
      const graceMs = req.body.timeout === undefined ? DEFAULT_STOP_GRACE_MS : req.body.timeout * 1000
      return { name: await runtime().stopContainer(req.params.name, { graceMs, removeLog: req.body.removeLog === true }) }
    })

  app.post<{ Body: { name: string, subnet?: string, gateway?: string, ipRange?: string, ipv4?: boolean, ipv6?: boolean, subnet6?: string, gateway6?: string, ipRange6?: string, internal?: boolean, options?: Record<string, string> } }>(
    '/v1/networks', { schema: { body: networkBody } }, async (req, reply) => {
      const b = req.body
      const spec: NetworkCreateSpec = { name: b.name, internal: b.internal === true, options: b.options ?? {} }
      for (const k of ['subnet', 'gateway', 'ipRange', 'subnet6', 'gateway6', 'ipRange6'] as const) {
        const v = b[k]
        if (v !== undefined) spec[k] = v
      }
      if (b.ipv6 === true) spec.ipv6 = true
      if (b.ipv4 === false) spec.ipv4 = false
      const net = await runtime().createNetwork(spec)
      return reply.code(201).send({ ...net, name: b.name })
    })
  app.delete<{ Params: { name: string } }>('/v1/networks/:name', { schema: { params: nameParam } }, async (req) => {
    await runtime().removeNetwork(req.params.name)
    return { removed: true }
  })
}
