/**
 * The agent's DNS feed: keeps the DNS server's records and listen addresses in step
 * with what the agent knows, and publishes this host's overlay names cluster-wide.
 *
 * - This host's records come from the driver's networks and endpoints and the names
 *   of their containers (the engine's, learned by the watcher, and those attached
 *   without the engine); a change of either queues one sync (a burst costs one).
 * - Other hosts' overlay names come from the peer sync's vetted, revision-checked view
 *   of the cluster (checked, tied to registered hosts, first claim of an address wins),
 *   never raw from the store, through its one subscription: a pushed change patches
 *   the records of the endpoints it names, "anything may have changed" (a full read)
 *   replaces them all from the view. The feed keeps no copy of the cluster's endpoints.
 * - The names and published ports of this host's overlay endpoints are published
 *   once each time they change (PublishedNames), not on every sync: one command per
 *   endpoint change; other hosts answer SRV for those ports from the record.
 */
import type { Logger } from 'pino'
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import type { ContainerNames } from '../docker/watch.js'
import type { ClusterPort } from '../cluster/types.js'
import type { PeerSync } from '../vxlan/peers.js'
import { EngineWatcher } from '../docker/watch.js'
import type { EngineClient } from '../docker/client.js'
import { toFerryError } from '../errors/errors.js'
import { DnsServer, type UdpMode } from './server.js'
import type { RateLimit } from './ratelimit.js'
import type { CacheOptions } from './cache.js'
import { AgentRecordSource, listenAddresses } from './source.js'
import { PublishedNames } from './published.js'

/** The embedded DNS server on every network's gateway:53 (--dns, --no-dns-server, --dns-cache-size, --dns-ttl…); upstreams from --dns, else resolv.conf. */
/** engineClients: prefixes of the engine's own networks whose containers may ask (--dns-engine-clients); searchDomains: --dns-search (autopath). */
export interface DnsConfig {
  enabled: boolean, upstreams: string[], port?: number, rateLimit?: RateLimit | false, udpHelpers?: number, udp?: UdpMode, cache?: Partial<CacheOptions> | false, ttlSeconds?: number,
  engineClients?: string[], searchDomains?: string[],
}

/** The agent's DNS: the server, its records, and the feed that keeps them (started with `feed.start()`). */
export interface AgentDns { server: DnsServer, records: AgentRecordSource, feed: DnsFeed, close (): Promise<void> }

/** The DNS server of `cfg` and its feed, with the engine watcher that learns the engine's names. */
export function openAgentDns (cfg: DnsConfig, deps: Omit<DnsFeedOptions, 'records' | 'server' | 'watcher' | 'port'> & { dockerHost: string, engine: EngineClient }): AgentDns {
  const records = new AgentRecordSource()
  records.setEngineClients(cfg.engineClients ?? [])
  const server = new DnsServer({
    records,
    clientNetworks: records.clientNetworks,
    upstreams: cfg.upstreams.length > 0 ? { servers: cfg.upstreams } : {},
    rateLimit: cfg.rateLimit,
    udpHelpers: cfg.udpHelpers,
    udp: cfg.udp,
    cache: cfg.cache,
    ttlSeconds: cfg.ttlSeconds,
    ...(cfg.searchDomains !== undefined && cfg.searchDomains.length > 0 ? { searchDomains: cfg.searchDomains } : {}),
    log: deps.log,
  })
  const { dockerHost, engine, ...rest } = deps
  const feed = new DnsFeed({ ...rest, records, server, watcher: new EngineWatcher(dockerHost, engine, deps.log), port: cfg.port ?? 53 })
  return { server, records, feed, close: async () => { feed.stop(); await server.close() } }
}

/** The engine's container names as the watcher learns them (src/docker/watch.ts). */
export interface NameWatcher {
  all (): ContainerNames[]
  on (event: 'change', fn: () => void): unknown
  start (): void
  stop (): void
}

/** What the feed needs of the overlay (src/overlay/service.ts's ClusterOverlay). */
export interface FeedOverlay {
  readonly cluster: { readonly hostId: string }
  readonly peers: Pick<PeerSync, 'onRemoteChange' | 'remoteTables'>
  publish (overlay: string, endpointId: string, ip: string, mac: string, names?: string[], ip6?: string, ports?: ClusterPort[]): Promise<void>
}

export interface DnsFeedOptions {
  records: AgentRecordSource
  server: Pick<DnsServer, 'setAddresses'>
  watcher: NameWatcher
  /** The DNS server's port on every gateway address (53). */
  port: number
  networks (): NetworkRecord[]
  endpoints (): EndpointRecord[]
  /** Names of the containers attached without the engine (src/runtime). */
  localNames (): ContainerNames[]
  overlay?: FeedOverlay
  log: Logger
}

export class DnsFeed {
  private readonly o: DnsFeedOptions
  /** Names published for this host's overlay endpoints; forgets endpoints that are gone. */
  private readonly published = new PublishedNames()
  /** The overlays whose remote records were read from the peer sync's view (then follow its pushes). */
  private readOverlays = new Set<string>()
  private queued = false
  private stopped = false
  private unsubscribe?: () => void

  constructor (o: DnsFeedOptions) { this.o = o }

  /** Follow the watcher and the peer sync, then sync once. */
  async start (): Promise<void> {
    this.o.watcher.on('change', () => this.queueSync())
    this.o.watcher.start()
    const overlay = this.o.overlay
    if (overlay) {
      this.unsubscribe = overlay.peers.onRemoteChange((changes) => {
        if (changes) this.o.records.remoteChanged(changes)
        else this.refreshRemote()
      })
    }
    await this.syncNow()
  }

  stop (): void {
    this.stopped = true
    this.unsubscribe?.()
    this.o.watcher.stop()
  }

  /** Something this host knows changed: one sync soon, however many ask. */
  queueSync (): void {
    if (this.queued || this.stopped) return
    this.queued = true
    setImmediate(() => {
      this.queued = false
      this.syncNow().catch((err: unknown) => this.o.log.error({ err: toFerryError(err) }, 'updating the DNS records failed'))
    })
  }

  /** Replace every remote record from the peer sync's view, for the overlays this host runs. */
  private refreshRemote (): void {
    const overlay = this.o.overlay
    if (!overlay) return
    // The peer sync's tables themselves: the records are read from them, not copied.
    const vetted = overlay.peers.remoteTables()
    const remote = new Map(this.o.networks().flatMap((n) => n.overlay ? [[n.overlay.name, vetted.get(n.overlay.name) ?? []] as const] : []))
    this.readOverlays = new Set(remote.keys())
    this.o.records.setRemote(remote, overlay.cluster.hostId)
  }

  /** Records, listen addresses and the names this host publishes for its overlay endpoints. */
  async syncNow (): Promise<void> {
    if (this.stopped) return
    const { records, overlay, log } = this.o
    const networks = this.o.networks()
    const endpoints = this.o.endpoints()
    // An overlay joined since the last read: read its endpoints once, then follow the pushes.
    if (overlay && networks.some((n) => n.overlay && !this.readOverlays.has(n.overlay.name))) this.refreshRemote()
    const names = [...this.o.watcher.all(), ...this.o.localNames()]
    records.update({ networks, endpoints, names, remote: new Map(), hostId: overlay?.cluster.hostId })
    try {
      await this.o.server.setAddresses(listenAddresses(networks, this.o.port))
    } catch (err) {
      log.warn({ err: toFerryError(err).message }, 'DNS could not listen on every gateway address')
    }
    if (!overlay) return
    for (const { overlay: name, endpoint: ep, names, ports } of this.published.due(endpoints, networks, records.localNames)) {
      if (ep.address === undefined) continue // overlays always have IPv4 (NetworkDriver.checkNetwork refuses --ipv4=false there)
      await overlay.publish(name, ep.id, ep.address, ep.mac, names, ep.address6, ports)
        .catch((err: unknown) => { this.published.failed(ep.id); log.warn({ err: toFerryError(err).message }, 'publishing names failed') })
    }
  }
}
