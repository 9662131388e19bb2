/**
 * The CNI plugin's logic (CNI spec 1.0), pure apart from the agent calls it is
 * handed: parse the environment and the network configuration, turn ADD / DEL /
 * CHECK into the agent's attach API, and build the spec's result and error JSON.
 *
 * Network configuration (one plugin of a conflist):
 *   { "cniVersion": "1.0.0", "name": "back", "type": "ferry-cni",
 *     "network": "back",              optional: the ferry network (default: "name"; "bridge" = the default network)
 *     "apiSocket": "/run/ferry/ferry.sock",   optional (else $FERRY_API_SOCKET, else the default)
 *     "capabilities": { "portMappings": true } }
 * with runtimeConfig.portMappings [{ hostPort, containerPort, protocol, hostIP }] from the runtime.
 *
 * The attached container is named `cni-<ifname>-<container id>` (hashed when long),
 * so DEL and CHECK find it from the same environment.
 */
import { createHash } from 'node:crypto'
import { FerryError } from '../errors/errors.js'
import { vethNames } from '../bridge/names.js'
import type { AttachWire } from '../runtime/spec.js'
import type { AttachResult, ContainerRecord } from '../runtime/types.js'

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const

/** Well-known CNI error codes (spec section "Error"). */
export const CNI_ERROR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** ferry-specific: the agent refused or failed the request. */
  AGENT: 100,
} as const

export class CniError extends Error {
  readonly code: number
  readonly details: string
  constructor (code: number, msg: string, details = '') {
    super(msg)
    this.code = code
    this.details = details
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION'

export interface CniEnv {
  command: CniCommand
  containerId: string
  netns: string
  ifname: string
}

export interface PortMapping { hostPort: number, containerPort: number, protocol?: string, hostIP?: string }

export interface CniConfig {
  cniVersion: string
  name: string
  type: string
  network?: string
  apiSocket?: string
  runtimeConfig?: { portMappings?: PortMapping[] }
  prevResult?: unknown
}

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/

export function parseEnv (env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK' && command !== 'VERSION') {
    throw new CniError(CNI_ERROR.INVALID_ENV, `CNI_COMMAND "${command ?? ''}" is not ADD, DEL, CHECK or VERSION`)
  }
  const out: CniEnv = { command, containerId: env.CNI_CONTAINERID ?? '', netns: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME ?? '' }
  if (command === 'VERSION') return out
  if (!CONTAINER_ID_RE.test(out.containerId)) throw new CniError(CNI_ERROR.INVALID_ENV, `CNI_CONTAINERID "${out.containerId}" is missing or not alphanumeric`)
  if (out.ifname === '') throw new CniError(CNI_ERROR.INVALID_ENV, 'CNI_IFNAME is missing')
  if (!IFNAME_RE.test(out.ifname)) throw new CniError(CNI_ERROR.INVALID_ENV, `CNI_IFNAME "${out.ifname}" is not a valid interface name (1 to 15 letters, digits, '_', '.' or '-')`)
  if (command !== 'DEL' && !out.netns.startsWith('/')) throw new CniError(CNI_ERROR.INVALID_ENV, `CNI_NETNS "${out.netns}" is missing or not an absolute path`)
  return out
}

export function parseConfig (text: string): CniConfig {
  let raw: unknown
  try { raw = JSON.parse(text) } catch (err) {
    throw new CniError(CNI_ERROR.DECODE_FAILURE, 'the network configuration on stdin is not JSON', (err as Error).message)
  }
  const c = raw as Partial<CniConfig> | null
  if (c === null || typeof c !== 'object') throw new CniError(CNI_ERROR.DECODE_FAILURE, 'the network configuration is not a JSON object')
  if (typeof c.cniVersion !== 'string' || typeof c.name !== 'string' || c.name === '') {
    throw new CniError(CNI_ERROR.INVALID_CONFIG, 'the network configuration needs "cniVersion" and "name"')
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(c.cniVersion)) {
    throw new CniError(CNI_ERROR.INCOMPATIBLE_VERSION, `ferry-cni does not support CNI version ${c.cniVersion}`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`)
  }
  if (c.network !== undefined && typeof c.network !== 'string') throw new CniError(CNI_ERROR.INVALID_CONFIG, '"network" must be a string')
  if (c.apiSocket !== undefined && typeof c.apiSocket !== 'string') throw new CniError(CNI_ERROR.INVALID_CONFIG, '"apiSocket" must be a string')
  const pm = c.runtimeConfig?.portMappings
  if (pm !== undefined && !Array.isArray(pm)) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'runtimeConfig.portMappings must be a list')
  return c as CniConfig
}

/** The agent's container name for (container id, ifname); deterministic. */
export function containerName (containerId: string, ifname: string): string {
  const plain = `cni-${ifname}-${containerId}`
  if (plain.length <= 128 && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(plain)) return plain
  return `cni-${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 40)}`
}

/** runtimeConfig.portMappings as Docker's -p strings. */
export function publishOf (mappings: readonly PortMapping[]): string[] {
  return mappings.map((m) => {
    if (!Number.isInteger(m.hostPort) || !Number.isInteger(m.containerPort)) {
      throw new CniError(CNI_ERROR.INVALID_CONFIG, `port mapping ${JSON.stringify(m)} needs whole hostPort and containerPort`)
    }
    const proto = (m.protocol ?? 'tcp').toLowerCase()
    const ip = m.hostIP === undefined || m.hostIP === '' ? '' : `${m.hostIP}:`
    if (ip.includes('::') || (m.hostIP ?? '').includes(':')) return undefined
    return `${ip}${m.hostPort}:${m.containerPort}/${proto}`
  }).filter((p): p is string => p !== undefined)
}

export function attachBody (env: CniEnv, cfg: CniConfig): AttachWire {
  return {
    name: containerName(env.containerId, env.ifname),
    netns: env.netns,
    net: cfg.network ?? cfg.name,
    ifname: env.ifname,
    publish: publishOf(cfg.runtimeConfig?.portMappings ?? []),
    owner: 'cni',
  }
}

/** The spec's success result for ADD. */
export function addResult (cniVersion: string, c: ContainerRecord): Record<string, unknown> {
  const interfaces: Array<Record<string, string>> = []
  const ips: Array<Record<string, unknown>> = []
  const routes: Array<Record<string, string>> = []
  if (c.endpointId !== undefined && c.address !== undefined) {
    interfaces.push({ name: vethNames(c.endpointId).host }, { name: c.ifname, mac: c.mac ?? '', sandbox: c.netns })
    const ip: Record<string, unknown> = { address: `${c.address}/${c.prefixLen ?? 32}`, interface: 1 }
    if (cniVersion.startsWith('0.3')) ip.version = '4'
    if (c.gateway !== undefined) {
      ip.gateway = c.gateway
      routes.push({ dst: '0.0.0.0/0', gw: c.gateway })
    }
    ips.push(ip)
  }
  return { cniVersion, interfaces, ips, routes, dns: {} }
}

export function errorResult (cniVersion: string, err: unknown): { code: number, json: Record<string, unknown> } {
  if (err instanceof CniError) return { code: err.code, json: { cniVersion, code: err.code, msg: err.message, details: err.details } }
  if (err instanceof FerryError) {
    const code = err.code === 'AGENT_NOT_RUNNING' ? CNI_ERROR.TRY_AGAIN_LATER : err.code === 'ENDPOINT_NOT_FOUND' ? CNI_ERROR.UNKNOWN_CONTAINER : CNI_ERROR.AGENT
    return { code, json: { cniVersion, code, msg: err.message, details: err.code } }
  }
  const msg = err instanceof Error ? err.message : String(err)
  return { code: CNI_ERROR.AGENT, json: { cniVersion, code: CNI_ERROR.AGENT, msg, details: '' } }
}

/** What the plugin needs from the outside world. */
export interface CniDeps {
  attach (body: AttachWire): Promise<AttachResult>
  detach (name: string): Promise<void>
  get (name: string): Promise<ContainerRecord | undefined>
  /** The IPv4 addresses (CIDR) of `ifname` inside the namespace; undefined when the interface is missing. */
  addressesIn (netns: string, ifname: string): Promise<string[] | undefined>
}

/** Run one CNI command; returns the JSON to print on stdout ('' for DEL and CHECK). */
export async function runCni (env: CniEnv, stdin: string, deps: CniDeps): Promise<string> {
  if (env.command === 'VERSION') return JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS })
  const cfg = parseConfig(stdin)
  const name = containerName(env.containerId, env.ifname)
  if (env.command === 'ADD') {
    const r = await deps.attach(attachBody(env, cfg))
    return JSON.stringify(addResult(cfg.cniVersion, r.container))
  }
  if (env.command === 'DEL') {
    await deps.detach(name)
    return ''
  }
  const c = await deps.get(name)
  if (c === undefined) throw new CniError(CNI_ERROR.UNKNOWN_CONTAINER, `ferry has no attachment of container ${env.containerId} on ${env.ifname}`)
  if (c.netns !== env.netns) throw new CniError(CNI_ERROR.AGENT, `container ${env.containerId} is attached in ${c.netns}, not ${env.netns}`)
  const addrs = await deps.addressesIn(env.netns, env.ifname)
  if (addrs === undefined) throw new CniError(CNI_ERROR.AGENT, `interface ${env.ifname} is missing in ${env.netns}`)
  const want = `${c.address ?? ''}/${c.prefixLen ?? 32}`
  if (c.address !== undefined && !addrs.includes(want)) throw new CniError(CNI_ERROR.AGENT, `interface ${env.ifname} in ${env.netns} lacks ${want} (has ${addrs.join(', ') || 'none'})`)
  return ''
}
