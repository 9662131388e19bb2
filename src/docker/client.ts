/**
 * A small client of the Docker engine API, used only to put names on what the
 * driver protocol identifies by id (the protocol carries no names). It follows
 * Docker's DOCKER_HOST convention (unix:// or tcp://) and never blocks ferry: a
 * call that fails or takes longer than the timeout yields no names, and callers
 * fall back to ids.
 */
import { exchange } from '../util/exchange.js'
import { FerryError } from '../errors/errors.js'
import { formatIp, parseIpOrUndefined } from '../util/ip.js'

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'

export interface EngineNames {
  /** network id -> name */
  networks: Map<string, string>
  /** endpoint id -> container (network, address and MAC for ferry's networks, when the engine gave them) */
  endpoints: Map<string, { containerId: string, containerName: string, networkId?: string, cidr?: string, cidr6?: string, mac?: string }>
  /** network id -> the IPv4 and IPv6 addresses (no prefix, canonical) the engine's endpoints hold, for ferry's networks only. */
  addresses: Map<string, Set<string>>
}

interface Target { socketPath?: string, host?: string, port?: number }

/**
 * Which of the engine's networks are ferry's. The engine's network list names each network's
 * driver as the user typed it (`-d ferry`, `-d ferry:latest`, `-d localhost:5000/ferry:2`,
 * `-d myferry`): a managed plugin is reached under the name it was installed as, which the
 * plugin itself is never told. So a network is ferry's when its driver is one of `driverNames`,
 * or the name (with or without `:latest`) of a managed plugin of ferry's that serves
 * `pluginSocket` (src/docker/client.ts managedPluginNames), or when its id is one the agent holds.
 */
export interface OwnNetworks {
  driverNames: readonly string[]
  /** The socket file name in the plugin's config.json (`ferry.sock`). */
  pluginSocket: string
  /** Ids of the networks the agent holds (created through its driver). */
  ids (): Iterable<string>
}

/** The driver names and plugin socket of an agent run as `pluginName` (the name, with and without `:latest`). */
export function ownDrivers (pluginName: string): Pick<OwnNetworks, 'driverNames' | 'pluginSocket'> {
  return { driverNames: [pluginName, `${pluginName}:latest`], pluginSocket: `${pluginName}.sock` }
}

/** ferry's drivers as the engine names them: `own`'s names, and those its managed plugins are installed under (`GET /plugins`). */
export function driverNamesOf (own: Pick<OwnNetworks, 'driverNames' | 'pluginSocket'>, plugins: unknown): Set<string> {
  return new Set([...own.driverNames, ...managedPluginNames(plugins, own.pluginSocket)])
}

/** The entrypoint of ferry's managed plugin (scripts/package-plugin.mjs), by which its config is recognised. */
export const PLUGIN_ENTRYPOINT = '/usr/local/bin/ferry-plugin'

/**
 * Names the engine knows ferry's managed plugins by, from its `GET /plugins` answer: each plugin
 * whose config has ferry's entrypoint and serves `socket` as a network driver, under its name
 * (`myferry:latest`, `localhost:5000/ferry:2`) and, for a `:latest` one, the name without the tag.
 * The answer is the engine's, checked field by field: anything else is skipped.
 */
export function managedPluginNames (plugins: unknown, socket: string): string[] {
  if (!Array.isArray(plugins)) return []
  const out: string[] = []
  for (const p of plugins as unknown[]) {
    const name = field(p, 'Name')
    const config = field(p, 'Config')
    const iface = field(config, 'Interface')
    const types = field(iface, 'Types')
    const entrypoint = field(config, 'Entrypoint')
    if (typeof name !== 'string' || name === '' || field(iface, 'Socket') !== socket) continue
    if (!Array.isArray(entrypoint) || entrypoint[0] !== PLUGIN_ENTRYPOINT) continue
    if (!Array.isArray(types) || !types.some((x) => x === 'docker.networkdriver/1.0' || (isRecord(x) && x.Prefix === 'docker' && x.Capability === 'networkdriver'))) continue
    out.push(name)
    if (name.endsWith(':latest')) out.push(name.slice(0, -':latest'.length))
  }
  return out
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
function field (v: unknown, key: string): unknown {
  return isRecord(v) ? v[key] : undefined
}

export function parseDockerHost (spec: string): Target {
  if (spec.startsWith('unix://')) return { socketPath: spec.slice('unix://'.length) }
  const m = /^tcp:\/\/([^:/]+)(?::(\d+))?\/?$/.exec(spec)
  if (m) return { host: m[1], port: m[2] ? Number(m[2]) : 2375 }
  throw new FerryError('INVALID_OPTION', `DOCKER_HOST "${spec}" is not unix:///path or tcp://host:port`)
}

export class EngineClient {
  private readonly target: Target
  private readonly timeoutMs: number
  private cache: { at: number, names: EngineNames } | undefined
  /** Why the last lookup failed ('' after a success), for `ferry status`. */
  lastError = ''

  constructor (dockerHost: string = process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST, timeoutMs = 1500) {
    this.target = parseDockerHost(dockerHost)
    this.timeoutMs = timeoutMs
  }

  async get<T> (path: string): Promise<T> {
    let answer: { status: number, text: string }
    try {
      answer = await exchange({ ...this.target, method: 'GET', path: `/v1.41${path}`, timeoutMs: this.timeoutMs })
    } catch (err) {
      throw new FerryError('ENGINE_UNAVAILABLE', `cannot reach the Docker engine: ${(err as Error).message}`, { cause: err })
    }
    if (answer.status >= 300) throw new FerryError('ENGINE_UNAVAILABLE', `engine answered ${answer.status} for ${path}: ${answer.text.trim()}`)
    try { return JSON.parse(answer.text) as T } catch (err) { throw new FerryError('ENGINE_UNAVAILABLE', `engine sent invalid JSON for ${path}`, { cause: err }) }
  }

  /** The names, or undefined when the engine could not be asked (nothing is collected or rebuilt from a failed read). */
  async namesIfUp (own: OwnNetworks, maxAgeMs = 1000): Promise<EngineNames | undefined> {
    const n = await this.names(own, maxAgeMs)
    return this.lastError === '' ? n : undefined
  }

  /** Names of ferry's networks and their containers; cached for a second. Never throws. */
  async names (own: OwnNetworks, maxAgeMs = 1000): Promise<EngineNames> {
    if (this.cache && Date.now() - this.cache.at < maxAgeMs) return this.cache.names
    const names: EngineNames = { networks: new Map(), endpoints: new Map(), addresses: new Map() }
    try {
      const [nets, plugins] = await Promise.all([
        this.get<Array<{ Id: string, Name: string, Driver: string }>>('/networks'),
        // An engine without the plugin API (or a proxy refusing it) still names the networks ferry holds.
        this.get<unknown>('/plugins').catch(() => []),
      ])
      const drivers = driverNamesOf(own, plugins)
      const ids = new Set(own.ids())
      const ours = nets.filter((n) => drivers.has(n.Driver) || ids.has(n.Id))
      for (const n of nets) names.networks.set(n.Id, n.Name)
      type Detail = { Containers?: Record<string, { Name: string, EndpointID: string, IPv4Address?: string, IPv6Address?: string, MacAddress?: string }> }
      // A network whose details cannot be read has no address set: callers must not take it for "holds none".
      const details = await Promise.all(ours.map((n) =>
        this.get<Detail>(`/networks/${n.Id}`).then((d) => ({ id: n.Id, d }), () => undefined)))
      for (const x of details) {
        if (x === undefined) continue
        const held = new Set<string>()
        for (const [cid, c] of Object.entries(x.d.Containers ?? {})) {
          names.endpoints.set(c.EndpointID, {
            containerId: cid, containerName: c.Name, networkId: x.id,
            ...(typeof c.IPv4Address === 'string' && c.IPv4Address !== '' ? { cidr: c.IPv4Address } : {}),
            ...(typeof c.IPv6Address === 'string' && c.IPv6Address !== '' ? { cidr6: c.IPv6Address } : {}),
            ...(typeof c.MacAddress === 'string' && c.MacAddress !== '' ? { mac: c.MacAddress } : {}),
          })
          if (c.IPv4Address) held.add(c.IPv4Address.split('/')[0]!)
          const v6 = typeof c.IPv6Address === 'string' ? parseIpOrUndefined(c.IPv6Address.split('/')[0]!) : undefined
          if (v6 !== undefined) held.add(formatIp(v6))
        }
        names.addresses.set(x.id, held)
      }
      this.cache = { at: Date.now(), names }
      this.lastError = ''
    } catch (err) {
      // The engine is optional for naming: fall back to ids.
      this.lastError = (err as Error).message
    }
    return names
  }
}
