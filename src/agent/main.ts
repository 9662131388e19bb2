/** `ferry agent`: build the config from flags, start, and stop cleanly on SIGTERM/SIGINT. */
import path from 'node:path'
import { pino } from 'pino'
import { FerryError, exitCode, toFerryError } from '../errors/errors.js'
import { DEFAULT_DOCKER_HOST } from '../docker/client.js'
import { parseDefaultPool } from '../ipam/ipam.js'
import { Agent } from './agent.js'
import type { AgentConfig } from './config.js'
import { isIp } from '../util/ip.js'
import { checkEndpoint } from '../wireguard/plan.js'
import { metricsConfig } from '../metrics/config.js'
import type { RateLimit } from '../dns/ratelimit.js'
import { engineClientPrefixes } from '../dns/source.js'
import { defaultBridgeConfig, type RuntimeFlags } from '../runtime/flags.js'
import { parseBackend } from '../nat/backend.js'

export interface AgentFlags extends RuntimeFlags {
  pluginName: string
  pluginDir: string
  stateDir: string
  apiSocket?: string
  dockerHost?: string
  defaultAddressPool: string[]
  reconcileInterval: number
  orphanGrace: number
  logLevel: string
  cluster?: string
  /** Once, or twice for a dual-stack host (one IPv4, one IPv6; the first is its primary VTEP). */
  advertiseAddr?: string | readonly string[]
  hostId?: string
  hostTtl?: number
  /** `--cluster-wait SECONDS`: how long a request waits for an unreachable cluster store (default 10). */
  clusterWait?: number
  /** `--cluster-key FILE`: the shared secret that signs cluster entries (src/cluster/key.ts). */
  clusterKey?: string
  /** `--key-rotation-interval SECONDS`: rotate this host's WireGuard key this often (docs/encryption.md). */
  keyRotationInterval?: number
  /** `--wireguard-endpoint IP:PORT`: where peers reach this host's WireGuard, behind NAT (docs/encryption.md). */
  wireguardEndpoint?: string
  dns: string[]
  dnsServer: boolean
  /** `--dns-rate-limit`: queries per second per source, or 'off'. Default: the server's (2000/s). */
  dnsRateLimit?: string
  /** `--dns-udp-helpers`: extra UDP serving processes. Default 0. */
  dnsUdpHelpers?: number
  /** `--dns-udp`: batch (the addon), dgram, or auto (default). */
  dnsUdp?: 'auto' | 'batch' | 'dgram'
  /** `--dns-cache-size` (0: no cache) and `--dns-ttl-cap` seconds. Default: the server's (10000, 3600). */
  dnsCacheSize?: number
  dnsTtlCap?: number
  /** `--dns-ttl SECONDS`: TTL of ferry's own answers, 0–3600. Default: the server's (0). */
  dnsTtl?: string
  /** `--dns-engine-clients CIDR`: containers of the engine's own networks that may ask ferry's DNS (overlay names). */
  dnsEngineClients?: string[]
  /** `--metrics-listen HOST:PORT` and `--metrics-token FILE` (src/metrics/config.ts). */
  metricsListen?: string
  metricsToken?: string
  /** `--iptables[=BOOL]`, as dockerd's: false = ferry never runs iptables. Default true. */
  iptables?: boolean
  /** `--recover-store`: start on a damaged state file, kept aside. */
  recoverStore?: boolean
  /** `--firewall-backend nftables|iptables` (dockerd's flag); default: nftables where it works. */
  firewallBackend?: string
}

/** The exit status of an agent that refuses a damaged store: the unit does not restart it (RestartPreventExitStatus). */
export const EXIT_STORE_DAMAGED = 78

/** `--iptables`, checked against the flags that only iptables can honour (dockerd refuses the same pair). */
export function iptablesEnabled (flags: Pick<AgentFlags, 'iptables' | 'icc'>): boolean {
  const on = flags.iptables ?? true
  if (!on && flags.icc === false) {
    throw new FerryError('INVALID_OPTION', '--icc=false blocks traffic between containers with iptables rules, and --iptables=false turns iptables off: set --icc or --iptables to true')
  }
  return on
}

function clusterConfig (flags: AgentFlags): AgentConfig['cluster'] {
  if (flags.cluster === undefined) {
    if (flags.advertiseAddr !== undefined && flags.advertiseAddr.length > 0) throw new FerryError('INVALID_OPTION', '--advertise-addr only makes sense with --cluster')
    if (flags.clusterKey !== undefined) throw new FerryError('INVALID_OPTION', '--cluster-key only makes sense with --cluster')
    if (flags.clusterWait !== undefined) throw new FerryError('INVALID_OPTION', '--cluster-wait only makes sense with --cluster')
    if (flags.keyRotationInterval !== undefined) throw new FerryError('INVALID_OPTION', '--key-rotation-interval only makes sense with --cluster')
    if (flags.wireguardEndpoint !== undefined) throw new FerryError('INVALID_OPTION', '--wireguard-endpoint only makes sense with --cluster')
    return undefined
  }
  const [advertiseAddr, advertiseAddr2] = advertiseAddrs(flags.advertiseAddr)
  if (flags.hostId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(flags.hostId)) {
    throw new FerryError('INVALID_OPTION', `--host-id "${flags.hostId}" must be letters, digits, '_', '.' or '-' (up to 63)`)
  }
  return {
    url: flags.cluster, advertiseAddr, ...(advertiseAddr2 === undefined ? {} : { advertiseAddr2 }), hostId: flags.hostId, hostTtlMs: flags.hostTtl === undefined ? undefined : flags.hostTtl * 1000, keyFile: flags.clusterKey,
    waitMs: flags.clusterWait === undefined ? undefined : flags.clusterWait * 1000,
    ...(flags.keyRotationInterval === undefined ? {} : { keyRotationMs: keyRotationMs(flags.keyRotationInterval) }),
    ...(flags.wireguardEndpoint === undefined ? {} : { wireguardEndpoint: checkEndpoint(flags.wireguardEndpoint, '--wireguard-endpoint') }),
  }
}

/**
 * `--advertise-addr`, given once or twice: the VTEP addresses, the first the primary (the host record's);
 * a second one must be of the other family (a VXLAN device has sockets of one family: one VTEP per family).
 */
export function advertiseAddrs (given: string | readonly string[] | undefined): [string] | [string, string] {
  const list = given === undefined ? [] : typeof given === 'string' ? [given] : [...given]
  if (list.length === 0) throw new FerryError('INVALID_OPTION', "--cluster needs --advertise-addr IP: this host's underlay address, where other hosts send VXLAN traffic")
  for (const a of list) if (!isIp(a)) throw new FerryError('INVALID_OPTION', `--advertise-addr ${a} is not an IP address`)
  if (list.length > 2) throw new FerryError('INVALID_OPTION', `--advertise-addr is given ${list.length} times: a host advertises at most two addresses, one IPv4 and one IPv6`)
  const [first, second] = list as [string, string | undefined]
  if (second === undefined) return [first]
  if (isIp(first, 4) === isIp(second, 4)) {
    const fam = isIp(first, 4) ? 'IPv4' : 'IPv6'
    throw new FerryError('INVALID_OPTION', `--advertise-addr is given two ${fam} addresses (${first}, ${second}): a host advertises at most one address per family, one IPv4 and one IPv6`)
  }
  return [first, second]
}

/** At least a minute apart (a rotation waits up to 30 s for the peers), at most a year (a timer's range). */
export function keyRotationMs (seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 60 || seconds > 365 * 86400) {
    throw new FerryError('INVALID_OPTION', `--key-rotation-interval ${seconds} must be a whole number of seconds from 60 to ${365 * 86400}`)
  }
  return seconds * 1000
}

function checkUpstream (s: string): string {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d{1,5}))?$/.exec(s)
  if (!m || !isIp(m[1]!, 4) || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
    throw new FerryError('INVALID_OPTION', `--dns "${s}" must be an IPv4 address, optionally with :port`)
  }
  return s
}

/** `--dns-rate-limit n|off` → bursts of twice the rate, or no limit; undefined keeps the server's default. */
export function dnsRateLimit (s: string | undefined): RateLimit | false | undefined {
  if (s === undefined) return undefined
  if (s === 'off') return false
  if (!/^\d+$/.test(s) || Number(s) < 1) throw new FerryError('INVALID_OPTION', `--dns-rate-limit "${s}" must be a positive number of queries per second, or off`)
  return { perSecond: Number(s), burst: 2 * Number(s) }
}

export const MAX_DNS_TTL = 3600

/** `--dns-ttl SECONDS` → a whole number of seconds 0–3600; undefined keeps the server's default (0). */
export function dnsTtl (s: string | undefined): number | undefined {
  if (s === undefined) return undefined
  if (!/^\d{1,5}$/.test(s) || Number(s) > MAX_DNS_TTL) throw new FerryError('INVALID_OPTION', `--dns-ttl "${s}" must be a whole number of seconds from 0 to ${MAX_DNS_TTL}`)
  return Number(s)
}

const PLUGIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

export async function runAgent (flags: AgentFlags): Promise<void> {
  const log = pino({ level: flags.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
  let agent: Agent | undefined
  try {
    if (!PLUGIN_NAME_RE.test(flags.pluginName)) {
      throw new FerryError('INVALID_OPTION', `--plugin-name "${flags.pluginName}" must be letters, digits, '_', '.' or '-' (up to 63)`)
    }
    if (process.getuid?.() !== 0) throw new FerryError('INVALID_OPTION', 'the ferry agent must run as root: it creates bridges, veths and firewall rules')
    agent = new Agent({
      pluginName: flags.pluginName,
      pluginDir: path.resolve(flags.pluginDir),
      stateDir: path.resolve(flags.stateDir),
      apiSocket: path.resolve(flags.apiSocket ?? `/run/ferry/${flags.pluginName}.sock`),
      dockerHost: flags.dockerHost ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST,
      defaultPools: flags.defaultAddressPool.length > 0 ? flags.defaultAddressPool.map(parseDefaultPool) : undefined,
      reconcileIntervalMs: flags.reconcileInterval * 1000,
      orphanGraceMs: flags.orphanGrace * 1000,
      cluster: clusterConfig(flags),
      dns: { enabled: flags.dnsServer, upstreams: flags.dns.map(checkUpstream), rateLimit: dnsRateLimit(flags.dnsRateLimit), udpHelpers: flags.dnsUdpHelpers, udp: flags.dnsUdp, ttlSeconds: dnsTtl(flags.dnsTtl), engineClients: engineClientPrefixes(flags.dnsEngineClients ?? []),
        searchDomains: flags.dnsSearch ?? [],
        cache: flags.dnsCacheSize === 0 ? false : { maxEntries: flags.dnsCacheSize, ttlCap: flags.dnsTtlCap } },
      defaultBridge: defaultBridgeConfig(flags),
      runtime: { dnsSearch: flags.dnsSearch ?? [], dnsOptions: flags.dnsOpt ?? [], watchIntervalMs: (flags.watchInterval ?? 1) * 1000 },
      ipForward: flags.ipForward ?? true,
      iptables: iptablesEnabled(flags),
      firewallBackend: parseBackend(flags.firewallBackend),
      metrics: metricsConfig(flags),
      recoverStore: flags.recoverStore === true,
    }, log)
    await agent.start()
  } catch (err) {
    const ferr = toFerryError(err)
    log.fatal({ code: ferr.code, reason: ferr.message }, 'agent failed to start')
    process.stderr.write(`ferry agent: ${ferr.message}\n`)
    process.exit(ferr.code === 'STORE_DAMAGED' ? EXIT_STORE_DAMAGED : exitCode(ferr.category))
  }
  const running = agent
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    running.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (a bug in ferry)'))
}
