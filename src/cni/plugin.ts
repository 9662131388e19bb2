/**
 * The CNI plugin's logic (CNI spec 1.0), pure apart from the agent calls it is
 * handed: parse the environment and the network configuration, turn ADD / DEL /
 * CHECK into the agent's attach API, and build the spec's result and error JSON.
 *
 * Network configuration (one plugin of a conflist):
 *   { "cniVersion": "1.0.0", "name": "back", "type": "ferry-cni",
 *     "network": "back",              optional: the ferry network (default: "name"; "bridge" = the default network)
 *     "apiSocket": "/run/ferry/ferry.sock",   optional (else $FERRY_API_SOCKET, else the default)
 *     "dns": { "nameservers": [], "domain": "", "search": [], "options": [] },   optional, the spec's
 *     "capabilities": { "portMappings": true, "aliases": true, "dns": true } }
 * with from the runtime (CNI conventions): runtimeConfig.portMappings [{ hostPort, containerPort,
 * protocol, hostIP }], runtimeConfig.aliases { <network name>: [alias…] } (names in ferry's DNS),
 * runtimeConfig.dns { servers, searches, options } (this container's DNS settings).
 *
 * The result's `dns` (resultDns): ferry's DNS server on the gateway when the agent runs it,
 * plus the configuration's `dns`; the runtime's `dns` replaces a field it gives.
 *
 * The attached container is named `cni-<ifname>-<container id>` (shortened past 63
 * characters: containerName), so DEL and CHECK find it from the same environment.
 */
import { createHash } from 'node:crypto'
import { familyOf, formatCidr, isIp, withPrefix, type Family } from '../util/ip.js'
import { FerryError } from '../errors/errors.js'
import { vethNames } from '../bridge/names.js'
import type { AttachWire } from '../runtime/spec.js'
import type { AttachResult, ContainerRecord } from '../runtime/types.js'
import type { ResolvConf } from '../runtime/files.js'
import { own } from '../util/dict.js'

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

/** DNS settings in the spec's shape: the network configuration's `dns` and the result's. */
export interface CniDns { nameservers?: string[], domain?: string, search?: string[], options?: string[] }

/** The `dns` capability's runtimeConfig (CNI conventions): the runtime's settings for this container. */
export interface RuntimeDns { servers?: string[], searches?: string[], options?: string[] }

export interface CniConfig {
  cniVersion: string
  name: string
  type: string
  network?: string
  apiSocket?: string
  dns?: CniDns
  runtimeConfig?: { portMappings?: PortMapping[], aliases?: Record<string, string[]>, dns?: RuntimeDns }
  prevResult?: unknown
}

/**
 * A container as the agent's API shows it; `resolver` is missing from agents that predate it.
 * `address6`, `prefixLen6` and `gateway6` are its IPv6 side when it is dual-stack (agents
 * that attach IPv4 only leave them out); an IPv6-only container's address may be `address`.
 */
export type AgentContainer = ContainerRecord & { resolver?: ResolvConf, address6?: string, prefixLen6?: number, gateway6?: string }

/** One address of the container's interface, of either family. */
export interface CniAddress {
  family: Family
  address: string
  prefixLen: number
  gateway?: string
}

/** The container's addresses, IPv4 first (what ADD reports and CHECK looks for); anything that is no address is left out. Pure. */
export function containerAddresses (c: AgentContainer): CniAddress[] {
  const out: CniAddress[] = []
  const sides: Array<[string | undefined, number | undefined, string | undefined]> = [[c.address, c.prefixLen, c.gateway], [c.address6, c.prefixLen6, c.gateway6]]
  for (const [address, prefixLen, gateway] of sides) {
    const family = address !== undefined && isIp(address) ? familyOf(address) : undefined
    if (address === undefined || family === undefined) continue
    out.push({ family, address, prefixLen: prefixLen ?? (family === 4 ? 32 : 128), ...(gateway !== undefined && isIp(gateway, family) ? { gateway } : {}) })
  }
  return out
}
export type AgentAttach = AttachResult & { container: AgentContainer }

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
  const rc: unknown = c.runtimeConfig
  if (rc !== undefined && (rc === null || typeof rc !== 'object')) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'runtimeConfig must be an object')
  const pm = c.runtimeConfig?.portMappings
  if (pm !== undefined && !Array.isArray(pm)) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'runtimeConfig.portMappings must be a list')
  checkDns(c.dns, '"dns"', { nameservers: 'ips', search: 'names', options: 'names', domain: 'name' })
  checkDns(c.runtimeConfig?.dns, 'runtimeConfig.dns', { servers: 'ips', searches: 'names', options: 'names' })
  checkAliases(c.runtimeConfig?.aliases)
  return c as CniConfig
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Words that go into resolv.conf as they are: no spaces, no line breaks. */
const WORD_RE = /^[^\s#;]{1,253}$/

function isStringList (v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string' && WORD_RE.test(x))
}

/** A `dns` object: each known field a list of IP addresses, a list of words, or one word; other fields are left alone. */
function checkDns (v: unknown, what: string, fields: Record<string, 'ips' | 'names' | 'name'>): void {
  if (v === undefined) return
  if (!isObject(v)) throw new CniError(CNI_ERROR.INVALID_CONFIG, `${what} must be an object`)
  for (const [key, kind] of Object.entries(fields)) {
    const f = v[key]
    if (f === undefined) continue
    if (kind === 'name') {
      if (typeof f !== 'string' || (f !== '' && !WORD_RE.test(f))) throw new CniError(CNI_ERROR.INVALID_CONFIG, `${what}.${key} must be one word`)
    } else if (!isStringList(f)) {
      throw new CniError(CNI_ERROR.INVALID_CONFIG, `${what}.${key} must be a list of words (no spaces, '#' or ';')`)
    } else if (kind === 'ips') {
      const bad = f.find((ip) => !isIp(ip))
      if (bad !== undefined) throw new CniError(CNI_ERROR.INVALID_CONFIG, `${what}.${key}: "${bad}" is not an IP address`)
    }
  }
}

function checkAliases (v: unknown): void {
  if (v === undefined) return
  if (!isObject(v) || !Object.values(v).every(isStringList)) {
    throw new CniError(CNI_ERROR.INVALID_CONFIG, 'runtimeConfig.aliases must map network names to lists of names')
  }
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/
/** The longest DNS label: ferry's DNS server leaves out a container whose name is longer, aliases and all. */
const DNS_LABEL_MAX = 63

function hashOf (containerId: string, ifname: string): string {
  return createHash('sha256').update(`${containerId}/${ifname}`).digest('hex')
}

/**
 * The agent's container name for (container id, ifname); deterministic. `cni-<ifname>-<id>`,
 * or, longer than a DNS label (a 64-hex id), `cni-<ifname>-<id's first 12>-<8 hex of a hash>`.
 */
export function containerName (containerId: string, ifname: string): string {
  const plain = `cni-${ifname}-${containerId}`
  if (plain.length <= DNS_LABEL_MAX && NAME_RE.test(plain)) return plain
  const short = `cni-${ifname}-${containerId.slice(0, 12)}-${hashOf(containerId, ifname).slice(0, 8)}`
  return NAME_RE.test(short) ? short : `cni-${hashOf(containerId, ifname).slice(0, 40)}`
}

/** The name earlier versions of the plugin gave (up to 128 characters): DEL and CHECK still find those attachments. */
export function legacyContainerName (containerId: string, ifname: string): string {
  const plain = `cni-${ifname}-${containerId}`
  if (plain.length <= 128 && NAME_RE.test(plain)) return plain
  return `cni-${hashOf(containerId, ifname).slice(0, 40)}`
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
  const body: AttachWire = {
    name: containerName(env.containerId, env.ifname),
    netns: env.netns,
    net: cfg.network ?? cfg.name,
    ifname: env.ifname,
    publish: publishOf(cfg.runtimeConfig?.portMappings ?? []),
    owner: 'cni',
  }
  // The aliases capability is keyed by the runtime's network name: the configuration's name.
  const aliases = own(cfg.runtimeConfig?.aliases, cfg.name) ?? []
  if (aliases.length > 0) body.aliases = [...new Set(aliases)]
  return body
}

function unique (list: readonly string[]): string[] {
  return [...new Set(list)]
}

/**
 * The result's `dns`. Field by field (nameservers, search, options): the runtime's `dns`
 * capability when it gives that field (it speaks for this one container, as --dns does for
 * `ferry run`), else ferry's part (its DNS server on the gateway, the agent's --dns-search and
 * --dns-opt) followed by the configuration's `dns`, without repeats. `domain` is the
 * configuration's. Empty fields are left out. Pure.
 */
export function resultDns (ferry: ResolvConf | undefined, conf: CniDns | undefined, runtime: RuntimeDns | undefined): CniDns {
  const pick = (rt: string[] | undefined, own: string[] | undefined, cf: string[] | undefined): string[] =>
    rt !== undefined && rt.length > 0 ? unique(rt) : unique([...(own ?? []), ...(cf ?? [])])
  const out: CniDns = {}
  const nameservers = pick(runtime?.servers, ferry?.nameservers, conf?.nameservers)
  if (nameservers.length > 0) out.nameservers = nameservers
  if (conf?.domain !== undefined && conf.domain !== '') out.domain = conf.domain
  const search = pick(runtime?.searches, ferry?.search, conf?.search)
  if (search.length > 0) out.search = search
  const options = pick(runtime?.options, ferry?.options, conf?.options)
  if (options.length > 0) out.options = options
  return out
}

/**
 * The spec's success result for ADD: one `ips` entry per address of the container (IPv4
 * first; a dual-stack one has two), each with its gateway and a default route of its
 * family through it (`0.0.0.0/0`, `::/0`).
 */
export function addResult (cniVersion: string, c: AgentContainer, dns: CniDns = {}): Record<string, unknown> {
  const interfaces: Array<Record<string, string>> = []
  const ips: Array<Record<string, unknown>> = []
  const routes: Array<Record<string, string>> = []
  const addrs = containerAddresses(c)
  if (c.endpointId !== undefined && addrs.length > 0) {
    interfaces.push({ name: c.hostVeth ?? vethNames(c.endpointId).host }, { name: c.ifname, mac: c.mac ?? '', sandbox: c.netns })
    for (const a of addrs) {
      const ip: Record<string, unknown> = { address: `${a.address}/${a.prefixLen}`, interface: 1 }
      if (cniVersion.startsWith('0.3')) ip.version = String(a.family)
      if (a.gateway !== undefined) {
        ip.gateway = a.gateway
        routes.push({ dst: formatCidr({ family: a.family, network: 0n, prefix: 0 }), gw: a.gateway })
      }
      ips.push(ip)
    }
  }
  return { cniVersion, interfaces, ips, routes, dns }
}

/** The nameservers of a previous result, when it has any. */
function prevNameservers (prevResult: unknown): string[] {
  if (!isObject(prevResult) || !isObject(prevResult.dns)) return []
  const ns = prevResult.dns.nameservers
  return Array.isArray(ns) ? ns.filter((x): x is string => typeof x === 'string') : []
}

/**
 * CHECK's part for DNS: a name server the runtime was given (prevResult) that is ferry's DNS
 * server must still be served. It is ferry's when it is the network's gateway and ferry would
 * not put it in the result now: the agent was restarted with --no-dns-server, or the network
 * changed. Returns the problem, or undefined. Pure.
 */
export function dnsProblem (cfg: CniConfig, c: AgentContainer): string | undefined {
  if (c.resolver === undefined) return undefined
  const now = resultDns(c.resolver, cfg.dns, cfg.runtimeConfig?.dns).nameservers ?? []
  const gateways = new Set(containerAddresses(c).map((a) => a.gateway))
  const gone = prevNameservers(cfg.prevResult).filter((ns) => gateways.has(ns) && !now.includes(ns))
  if (gone.length === 0) return undefined
  return `the container was given ferry's DNS server ${gone.join(', ')} as name server, but the agent no longer serves DNS there (started with --no-dns-server?)`
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
  attach (body: AttachWire): Promise<AgentAttach>
  detach (name: string): Promise<void>
  get (name: string): Promise<AgentContainer | undefined>
  /** The addresses (CIDR, both families) of `ifname` inside the namespace; undefined when the interface is missing. */
  addressesIn (netns: string, ifname: string): Promise<string[] | undefined>
}

/** `FD00::2/64` → `fd00::2/64` (the address in canonical text, the prefix kept); as given when it is no address. */
function canonicalAddress (cidr: string): string {
  const slash = cidr.indexOf('/')
  const ip = cidr.slice(0, slash)
  return slash > 0 && isIp(ip) ? withPrefix(ip, Number(cidr.slice(slash + 1))) : cidr
}

/** Run one CNI command; returns the JSON to print on stdout ('' for DEL and CHECK). */
export async function runCni (env: CniEnv, stdin: string, deps: CniDeps): Promise<string> {
  if (env.command === 'VERSION') return JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS })
  const cfg = parseConfig(stdin)
  const name = containerName(env.containerId, env.ifname)
  const legacy = legacyContainerName(env.containerId, env.ifname)
  if (env.command === 'ADD') {
    const r = await deps.attach(attachBody(env, cfg))
    return JSON.stringify(addResult(cfg.cniVersion, r.container, resultDns(r.container.resolver, cfg.dns, cfg.runtimeConfig?.dns)))
  }
  if (env.command === 'DEL') {
    await deps.detach(name)
    if (legacy !== name) await deps.detach(legacy)
    return ''
  }
  const c = await deps.get(name) ?? (legacy !== name ? await deps.get(legacy) : undefined)
  if (c === undefined) throw new CniError(CNI_ERROR.UNKNOWN_CONTAINER, `ferry has no attachment of container ${env.containerId} on ${env.ifname}`)
  if (c.netns !== env.netns) throw new CniError(CNI_ERROR.AGENT, `container ${env.containerId} is attached in ${c.netns}, not ${env.netns}`)
  const addrs = await deps.addressesIn(env.netns, env.ifname)
  if (addrs === undefined) throw new CniError(CNI_ERROR.AGENT, `interface ${env.ifname} is missing in ${env.netns}`)
  const have = new Set(addrs.map(canonicalAddress))
  for (const a of containerAddresses(c)) {
    const want = withPrefix(a.address, a.prefixLen)
    if (!have.has(want)) throw new CniError(CNI_ERROR.AGENT, `interface ${env.ifname} in ${env.netns} lacks ${want} (has ${addrs.join(', ') || 'none'})`)
  }
  const dns = dnsProblem(cfg, c)
  if (dns !== undefined) throw new CniError(CNI_ERROR.AGENT, dns)
  return ''
}
