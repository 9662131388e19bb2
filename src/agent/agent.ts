/**
 * The ferry agent: opens the store and the kernel drivers, reconciles the kernel
 * with the store, then serves the Docker plugin socket and the admin API socket.
 * Its lifecycle is one typed status with one setter.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { FerryError, toFerryError } from '../errors/errors.js'
import { FileStore, keepHostId, lossView } from '../store/store.js'
import { openLinkDriver } from '../kernel/netlink.js'
import { writeSysctl } from '../kernel/sysctl.js'
import { enableIpv6Forwarding, kernelForwardingDeps } from '../kernel/forwarding.js'
import type { LinkDriver } from '../kernel/types.js'
import { DisabledFirewall } from '../nat/disabled.js'
import { chooseBackend, openFirewall, type BackendChoice, type FirewallBackend } from '../nat/backend.js'
import { Ipam, type DefaultPool } from '../ipam/ipam.js'
import { NetworkDriver } from '../driver/network.js'
import { HostPortPublisher } from '../nat/publisher.js'
import { buildPluginServer } from '../plugin/server.js'
import { buildApiServer, type AgentView, type EndpointView, type NetworkView } from '../api/server.js'
import { EngineClient, type EngineNames } from '../docker/client.js'
import type { NetworkRecord, PoolRecord } from '../model/types.js'
import { claimSocket, lockStateDir } from './lock.js'
import { LossRecovery } from './recover.js'
import { VERSION } from '../version.js'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { RedisClusterStore } from '../cluster/redis.js'
import { readClusterKey } from '../cluster/key.js'
import { openOverlayDataPlane } from '../vxlan/apply.js'
import { PeerSync } from '../vxlan/peers.js'
import { openWireGuardMesh } from '../wireguard/open.js'
import { ClusterOverlay } from '../overlay/service.js'
import { PublishedNames } from '../overlay/names.js'
import { DnsServer } from '../dns/server.js'
import { resolvConfServers } from '../dns/upstream.js'
import type { RateLimit } from '../dns/ratelimit.js'
import type { CacheOptions } from '../dns/cache.js'
import { AgentRecordSource, listenAddresses, scopeOf } from '../dns/source.js'
import { EngineWatcher } from '../docker/watch.js'
import type { ClusterEndpoint } from '../cluster/types.js'
import { FerryMetrics } from '../metrics/registry.js'
import { snapshotAgent } from '../metrics/snapshot.js'
import { startMetricsServer } from '../metrics/server.js'
import type { MetricsConfig } from '../metrics/config.js'
import { RuntimeService, type DefaultBridgeConfig } from '../runtime/service.js'
import { ChildProcessNamespaces } from '../runtime/netns.js'
import { withStoredLinks } from '../runtime/firewall.js'
import type { RuntimeApi } from '../api/runtime.js'

/** A plugin request waits this long for a cluster store that is reconnecting (a restart, a failover) before it fails. */
export const DEFAULT_CLUSTER_WAIT_MS = 10_000

export interface AgentConfig {
  pluginName: string
  pluginDir: string
  stateDir: string
  apiSocket: string
  dockerHost: string
  defaultPools?: DefaultPool[]
  /** How often the agent checks the kernel against its store (ms); 0 = never. */
  reconcileIntervalMs: number
  /** An endpoint of an engine network that the engine has not known for this long is deleted (ms). */
  orphanGraceMs?: number
  /** Multi-host overlay: the Redis control plane and this host's underlay address. */
  /** waitMs: how long a request waits for an unreachable cluster store (--cluster-wait; default 10 s). */
  cluster?: { url: string, advertiseAddr: string, hostId?: string, hostTtlMs?: number, keyFile?: string, waitMs?: number, wireguardPort?: number }
  /** The embedded DNS server on every network's gateway:53; upstreams from --dns, else resolv.conf. */
  dns: { enabled: boolean, upstreams: string[], port?: number, rateLimit?: RateLimit | false, udpHelpers?: number, cache?: Partial<CacheOptions> | false, ttlSeconds?: number, engineClients?: string[] }
  /** The docker0-style default network (dockerd's --bridge/--bip/--icc/--ip-masq/--mtu); undefined = none. */
  defaultBridge?: DefaultBridgeConfig
  /** Containers attached without the engine: resolv.conf search domains, and how often dead ones are looked for (ms). */
  runtime?: { dnsSearch: string[], dnsOptions: string[], watchIntervalMs: number }
  /** Turn on net.ipv4.ip_forward at start (dockerd's --ip-forward); default true. */
  ipForward?: boolean
  /** Program NAT, publications and isolation with iptables (dockerd's --iptables); false: never run iptables. Default true. */
  iptables?: boolean
  /** `--firewall-backend` (dockerd's flag); undefined = nftables where it works, else iptables (src/nat/backend.ts). */
  firewallBackend?: FirewallBackend
  /** The opt-in Prometheus endpoint (--metrics-listen); undefined = no listener. */
  metrics?: MetricsConfig
  /** --recover-store: start even on a damaged state file, kept aside (src/store/store.ts). */
  recoverStore?: boolean
}

export type AgentStatus = 'starting' | 'running' | 'stopping' | 'stopped'

/** Create a socket with no window in which others may connect (umask 077 while it is made). */
async function rootOnly<T> (fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0o077)
  try { return await fn() } finally { process.umask(old) }
}

/** An address no endpoint holds (see leakedAddresses); `id` keys its grace period; `poolId` set for an IPv6 address (the network's IPv6 pool). */
interface LeakedAddress { id: string, net: NetworkRecord, ip: string, poolId?: string }

export class Agent implements AgentView {
  private status_: AgentStatus = 'starting'
  private readonly cfg: AgentConfig
  private readonly log: Logger
  private readonly startedAt = Date.now()
  private readonly cleanups: Array<() => Promise<void>> = []
  private store!: FileStore
  private links!: LinkDriver
  private driver!: NetworkDriver
  private plugin?: FastifyInstance
  private api?: FastifyInstance
  private engine: EngineClient
  private timer?: NodeJS.Timeout
  private overlay?: ClusterOverlay
  private ipam!: Ipam
  /** Endpoints the engine does not know, and since when (see collectOrphans). */
  private orphanSince = new Map<string, number>()
  private dns?: DnsServer
  private records = new AgentRecordSource()
  private watcher?: EngineWatcher
  private remote = new Map<string, ClusterEndpoint[]>()
  /** Names published for this host's overlay endpoints; forgets endpoints that are gone. */
  private published = new PublishedNames()
  private syncQueued = false
  private reconciles = { runs: 0, repairs: 0, lastError: '' as string, lastAt: '' as string }
  private runtime_?: RuntimeService
  /** Set while the store is recovered with loss: rebuilds from the kernel and the engine (src/agent/recover.ts). */
  private recovery?: LossRecovery
  private firewallChoice?: BackendChoice

  constructor (cfg: AgentConfig, log: Logger) {
    this.cfg = cfg
    this.log = log
    this.engine = new EngineClient(cfg.dockerHost)
  }

  get pluginSocket (): string { return path.join(this.cfg.pluginDir, `${this.cfg.pluginName}.sock`) }

  private setStatus (s: AgentStatus): void {
    this.log.info({ from: this.status_, to: s }, 'agent status')
    this.status_ = s
  }

  async start (): Promise<void> {
    try {
      this.cleanups.push(await lockStateDir(this.cfg.stateDir))
      await claimSocket(this.pluginSocket, 'plugin')
      await claimSocket(this.cfg.apiSocket, 'API')
      this.store = await FileStore.open(this.cfg.stateDir, { recover: this.cfg.recoverStore })
      for (const note of this.store.notes) this.log.warn(note)
      if (this.store.loss?.report) this.log.error({ kept: this.store.loss.kept.map((k) => k.path), keys: this.store.loss.keys }, this.store.loss.report)
      else if (this.store.loss) this.log.warn({ kept: this.store.loss.kept.map((k) => k.path) }, 'the store was recovered with loss at an earlier start: ferry keeps links it cannot explain until the damaged files are moved out of the state directory (ferry doctor)')
      this.links = await openLinkDriver()
      this.cleanups.push(async () => this.links.close())
      if (this.cfg.ipForward !== false) await writeSysctl('net.ipv4.ip_forward', '1')
      const disabled = this.cfg.iptables === false ? new DisabledFirewall() : undefined
      const firewall = disabled ?? withStoredLinks(await this.openFirewall(), () => this.runtime_?.desiredLinks() ?? [])
      if (disabled) this.warnWithoutIptables()
      const ipam = this.ipam = new Ipam({
        store: this.store,
        defaultPools: this.cfg.defaultPools,
        // The default IPv6 pool's ULA prefix comes from the host's identity (pools.ts derivedIpv6Pool).
        hostIdentity: await hostIdentity(this.store.state.hostId),
        hostNetworks: async () => {
          const [routes, addrs] = await Promise.all([this.links.listRoutes(), this.links.listAddresses()])
          return [...routes.filter((r) => r.dst !== '0.0.0.0/0').map((r) => r.dst), ...addrs.map((a) => a.cidr)]
        },
      })
      if (this.cfg.cluster) this.overlay = await this.openCluster(this.cfg.cluster)
      this.driver = new NetworkDriver({
        store: this.store, links: this.links, firewall, limits: disabled, ipam, ports: new HostPortPublisher(), overlay: this.overlay, log: this.log.child({ component: 'driver' }),
        onChange: () => this.queueSync(), storeLoss: () => this.store.loss !== undefined,
        ...(this.cfg.ipForward === false ? {} : { ipv6Forwarding: async () => { await enableIpv6Forwarding(kernelForwardingDeps((o, m) => this.log.warn(o, m))) } }),
      })
      this.runtime_ = new RuntimeService({
        store: this.store, driver: this.driver, ipam, links: this.links, firewall, ns: new ChildProcessNamespaces(),
        filesDir: path.join(this.cfg.stateDir, 'containers'), log: this.log.child({ component: 'runtime' }),
        dns: {
          servers: resolvConfServers(this.cfg.dns.upstreams),
          search: this.cfg.runtime?.dnsSearch ?? [],
          options: this.cfg.runtime?.dnsOptions ?? [],
        },
        embeddedDns: this.cfg.dns.enabled,
        onChange: () => this.queueSync(),
      })
      if (this.overlay) {
        const overlays = this.driver.networks().filter((n) => n.overlay).map((n) => ({
          name: n.overlay!.name, subnet: n.subnet, gateway: n.gateway, vni: n.overlay!.vni,
          mtu: n.options['com.docker.network.driver.mtu'] !== undefined ? n.mtu : undefined,
          ...(n.options['ferry.encrypt'] === 'wireguard' ? { encrypt: 'wireguard' as const } : {}),
        }))
        await this.overlay.start(this.driver.localClusterState(), overlays)
        this.cleanups.push(() => this.overlay!.stop())
      }
      if (this.store.loss) {
        const engineNames = async () => { const n = await this.engineNames(); return this.engine.lastError === '' ? n : undefined }
        this.recovery = new LossRecovery({ store: this.store, driver: this.driver, ipam, links: this.links, engine: engineNames, log: this.log.child({ component: 'recovery' }) })
        await this.recovery.run()
      }
      await this.reconcileNow('start')
      await this.runtime_.ensureDefaultNetwork(this.cfg.defaultBridge)
      await this.runtime_.start(this.cfg.runtime?.watchIntervalMs ?? 1000)
      this.cleanups.push(async () => this.runtime_?.stop())
      if (this.cfg.dns.enabled) await this.startDns()

      this.api = buildApiServer(this, this.log)
      await rootOnly(() => this.api!.listen({ path: this.cfg.apiSocket }))
      await fs.chmod(this.cfg.apiSocket, 0o600)
      const metrics = this.cfg.metrics ? await this.startMetrics(this.cfg.metrics) : undefined
      this.plugin = buildPluginServer({ driver: this.driver, ipam, log: this.log, onCall: metrics?.onCall })
      await rootOnly(() => this.plugin!.listen({ path: this.pluginSocket }))
      await fs.chmod(this.pluginSocket, 0o600)
      if (this.cfg.reconcileIntervalMs > 0) {
        this.timer = setInterval(() => {
          void this.recovery?.run() // never rejects: it logs a failed recovery and tries again next time
          void this.reconcileNow('periodic').catch(() => undefined) // reconcileNow logs and counts its own failure
          void this.collectOrphans().catch((err: unknown) => this.log.warn({ err: toFerryError(err).message }, 'collecting orphaned endpoints failed'))
        }, this.cfg.reconcileIntervalMs)
        this.timer.unref()
      }
      this.setStatus('running')
      this.log.info({ plugin: this.pluginSocket, api: this.cfg.apiSocket, stateDir: this.cfg.stateDir, version: VERSION }, 'ferry agent ready')
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    if (this.status_ === 'stopping' || this.status_ === 'stopped') return
    this.setStatus('stopping')
    if (this.timer) clearInterval(this.timer)
    // Stop taking requests; the kernel state stays so containers keep their network.
    await this.plugin?.close().catch((err: unknown) => this.log.error({ err }, 'closing the plugin server failed'))
    await this.api?.close().catch((err: unknown) => this.log.error({ err }, 'closing the API server failed'))
    if (this.plugin) await fs.rm(this.pluginSocket, { force: true })
    if (this.api) await fs.rm(this.cfg.apiSocket, { force: true })
    while (this.cleanups.length > 0) {
      await this.cleanups.pop()!().catch((err: unknown) => this.log.error({ err }, 'cleanup failed'))
    }
    this.setStatus('stopped')
  }

  /** The firewall backend (--firewall-backend, or the default), with every trace of the other one removed. */
  private async openFirewall (): Promise<ReturnType<typeof openFirewall>['driver']> {
    const choice = this.firewallChoice = await chooseBackend(this.cfg.firewallBackend)
    this.log.info(choice, 'firewall backend')
    const opened = openFirewall(choice.backend, { logger: this.log.child({ component: 'nat' }) })
    await opened.removeOther()
    const stopWatch = opened.watch()
    this.cleanups.push(async () => stopWatch())
    return opened.driver
  }

  /**
   * --iptables=false: what the store holds that the firewall no longer provides.
   * Rules of an earlier run stay untouched (as with dockerd); ferry doctor reports them.
   */
  private warnWithoutIptables (): void {
    this.log.warn('iptables is off (--iptables=false): no outbound NAT, no published ports, no isolation between networks; rules left by an earlier run stay as they are')
    for (const n of Object.values(this.store.state.networks)) {
      if (!n.icc) this.log.warn({ network: n.id, bridge: n.bridge }, 'this network has enable_icc=false, but without iptables nothing blocks traffic between its containers')
    }
    const published = Object.values(this.store.state.endpoints).filter((e) => e.ports.length > 0)
    if (published.length > 0) this.log.warn({ endpoints: published.map((e) => e.id) }, 'these endpoints published ports with iptables on: ferry no longer maintains their rules')
  }

  /** The opt-in Prometheus endpoint; everything but plugin calls is read from the agent on each scrape. */
  private async startMetrics (cfg: MetricsConfig): Promise<FerryMetrics> {
    const overlay = this.overlay
    const metrics = new FerryMetrics(() => snapshotAgent({
      networks: () => this.driver.networks(),
      endpoints: () => this.driver.endpoints(),
      reconcile: this.reconciles,
      store: this.store,
      dns: this.dns,
      cluster: overlay && { status: () => overlay.cluster.status(), revision: () => overlay.cluster.revision(), peers: () => overlay.peers.status() },
    }))
    const server = await startMetricsServer(cfg, metrics, this.log.child({ component: 'metrics' }))
    this.cleanups.push(() => server.close())
    return metrics
  }

  /** DNS: the server, the engine watcher that learns names, and the cluster feed of remote names. */
  private async startDns (): Promise<void> {
    const log = this.log.child({ component: 'dns' })
    this.records.setEngineClients(this.cfg.dns.engineClients ?? [])
    this.dns = new DnsServer({
      records: this.records,
      clientNetworks: this.records.clientNetworks,
      upstreams: this.cfg.dns.upstreams.length > 0 ? { servers: this.cfg.dns.upstreams } : {},
      rateLimit: this.cfg.dns.rateLimit,
      udpHelpers: this.cfg.dns.udpHelpers,
      cache: this.cfg.dns.cache,
      ttlSeconds: this.cfg.dns.ttlSeconds,
      ...(this.cfg.runtime?.dnsSearch.length ? { searchDomains: this.cfg.runtime.dnsSearch } : {}),
      log,
    })
    this.cleanups.push(() => this.dns!.close())
    this.watcher = new EngineWatcher(this.cfg.dockerHost, this.engine, log)
    this.watcher.on('change', () => this.queueSync())
    this.watcher.start()
    this.cleanups.push(async () => this.watcher?.stop())
    if (this.overlay) {
      // Remote names come from PeerSync's vetted view of the cluster (checked,
      // tied to registered hosts, first claim of an address wins), never raw from Redis.
      // A pushed change patches the records of the endpoints it names; a full read replaces them all.
      const unsubscribe = this.overlay.peers.onRemoteChange((changes) => {
        if (changes) this.records.remoteChanged(changes)
        else void this.refreshRemote() // no await inside: it only reads PeerSync's view
      })
      this.cleanups.push(async () => unsubscribe())
    }
    await this.syncNow()
  }

  private async refreshRemote (): Promise<void> {
    if (!this.overlay) return
    const vetted = this.overlay.peers.remoteEndpoints()
    for (const n of this.driver.networks()) if (n.overlay) this.remote.set(n.overlay.name, vetted.get(n.overlay.name) ?? [])
    this.records.setRemote(this.remote, this.overlay.cluster.hostId)
  }

  private queueSync (): void {
    if (this.syncQueued || !this.dns) return
    this.syncQueued = true
    setImmediate(() => { this.syncQueued = false; void this.syncNow().catch((err: unknown) => this.log.warn({ err: toFerryError(err).message }, 'DNS sync failed')) })
  }

  /** Records, listen addresses and the names this host publishes for its overlay endpoints. */
  private async syncNow (): Promise<void> {
    if (!this.dns) return
    const networks = this.driver.networks()
    const endpoints = this.driver.endpoints()
    // An overlay joined since the last read: read its endpoints once, then follow the pushes.
    if (this.overlay && networks.some((n) => n.overlay && !this.remote.has(n.overlay.name))) void this.refreshRemote() // only reads PeerSync's view
    const names = [...(this.watcher?.all() ?? []), ...(this.runtime_?.dnsNames() ?? [])]
    this.records.update({ networks, endpoints, names, remote: new Map(), hostId: this.overlay?.cluster.hostId })
    const gateways = listenAddresses(networks, this.cfg.dns.port ?? 53)
    try {
      await this.dns.setAddresses(gateways)
    } catch (err) {
      this.log.warn({ err: toFerryError(err).message }, 'DNS could not listen on every gateway address')
    }
    if (!this.overlay) return
    for (const { overlay, endpoint: ep, names } of this.published.due(endpoints, networks, this.records.localNames)) {
      await this.overlay.publish(overlay, ep.id, ep.address, ep.mac, names)
        .catch((err: unknown) => { this.published.failed(ep.id); this.log.warn({ err: toFerryError(err).message }, 'publishing names failed') })
    }
  }

  // ---- DNS views, for the admin API ----
  private scopeFor (network: string): string {
    const n = this.driver.networks().find((x) => x.id === network || x.id.startsWith(network) || x.overlay?.name === network)
    return n ? scopeOf(n) : network
  }

  async dnsRecords (network?: string): Promise<unknown[]> {
    if (!this.dns) throw new FerryError('UNSUPPORTED', 'the DNS server is off (--no-dns-server)')
    const names = await this.engineNames()
    const byName = new Map([...names.networks].map(([id, name]) => [name, id]))
    const scope = network === undefined ? undefined : this.scopeFor(byName.get(network) ?? network)
    return this.records.records().filter((r) => scope === undefined || r.network === scope).map((r) => ({
      network: r.network.startsWith('overlay:') ? r.network : (names.networks.get(r.network) ?? r.network.slice(0, 12)),
      name: r.name, aliases: r.aliases, ip: r.ip, ...(r.ip6 !== undefined ? { ip6: r.ip6 } : {}),
    }))
  }

  async dnsQuery (name: string, type: 'A' | 'PTR' | 'AAAA', network: string): Promise<Record<string, unknown>> {
    if (!this.dns) throw new FerryError('UNSUPPORTED', 'the DNS server is off (--no-dns-server)')
    const names = await this.engineNames()
    const byName = new Map([...names.networks].map(([id, n]) => [n, id]))
    const scope = this.scopeFor(byName.get(network) ?? network)
    const res = await this.dns.query(name, type, [scope]) as unknown as { rcode?: string, answers?: Array<{ name: string, type: string, ttl?: number, data?: unknown }> }
    return { rcode: res.rcode ?? 'NOERROR', answers: (res.answers ?? []).map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, data: a.data })) }
  }

  async dnsCache (flush: boolean): Promise<Record<string, unknown>> {
    if (!this.dns) throw new FerryError('UNSUPPORTED', 'the DNS server is off (--no-dns-server)')
    const flushed = flush ? this.dns.cacheFlush() : 0
    const stats = this.dns.cacheStats()
    if (stats === undefined) throw new FerryError('UNSUPPORTED', 'the DNS cache is off')
    return { ...stats, flushed, upstreams: this.dns.upstreamHealth() }
  }

  private async openCluster (c: NonNullable<AgentConfig['cluster']>): Promise<ClusterOverlay> {
    const hostId = c.hostId !== undefined && c.hostId !== '' ? c.hostId
      : await keepHostId(this.store, () => `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`)
    const log = this.log.child({ component: 'cluster' })
    const key = c.keyFile === undefined ? undefined : await readClusterKey(c.keyFile)
    const wireguard = await openWireGuardMesh({ links: this.links, hostId, stateDir: this.cfg.stateDir, port: c.wireguardPort, log: this.log.child({ component: 'wireguard' }) })
    const cluster = new RedisClusterStore({ url: c.url, hostId, advertiseAddr: c.advertiseAddr, version: VERSION, hostTtlMs: c.hostTtlMs, log, key,
      unavailableWaitMs: c.waitMs ?? DEFAULT_CLUSTER_WAIT_MS, wireguard: wireguard?.info() })
    const peers = new PeerSync({ store: cluster, dataPlane: await openOverlayDataPlane(this.links), log: this.log.child({ component: 'peers' }), wireguard })
    return new ClusterOverlay(cluster, peers, log)
  }

  // ---- cluster views, for the admin API ----
  async clusterStatus (): Promise<Record<string, unknown>> {
    if (!this.overlay) throw new FerryError('CLUSTER_UNAVAILABLE', 'this agent runs without a cluster: start it with --cluster redis://HOST:PORT --advertise-addr IP')
    const { cluster, peers } = this.overlay
    const status = cluster.status()
    const [hosts, revision] = await Promise.all([
      cluster.hosts().catch(() => undefined),
      cluster.revision().catch(() => undefined),
    ])
    return { ...status, revision, hosts, peers: peers.status(), wireguard: await peers.wireguardStatus() }
  }

  async peers (network?: string): Promise<unknown[]> {
    if (!this.overlay) throw new FerryError('CLUSTER_UNAVAILABLE', 'this agent runs without a cluster: start it with --cluster redis://HOST:PORT --advertise-addr IP')
    const names = await this.engineNames()
    let nets = this.driver.networks().filter((n) => n.overlay)
    if (network) {
      nets = nets.filter((n) => n.overlay!.name === network || n.id.startsWith(network) || names.networks.get(n.id) === network)
      if (nets.length === 0) throw new FerryError('NETWORK_NOT_FOUND', `no overlay network "${network}" on this host`)
    }
    return Promise.all(nets.map(async (n) => ({ network: names.networks.get(n.id) ?? n.id.slice(0, 12), ...(await this.overlay!.peers.report(n.overlay!.name)) })))
  }

  /**
   * The engine calls DeleteEndpoint for every endpoint it made, except when it dies
   * between CreateEndpoint and Join (observed in the soak): such an endpoint holds
   * its address, its veth and, on an overlay, a peer on every host forever. An
   * endpoint of a network the engine knows, that no container of the engine has
   * had for the grace period, is deleted and its address released. Nothing is
   * collected while the engine cannot be asked.
   */
  private async collectOrphans (): Promise<void> {
    const names = await this.engine.names([this.cfg.pluginName, `${this.cfg.pluginName}:latest`], 0)
    if (this.engine.lastError !== '') return
    const now = Date.now()
    const grace = this.cfg.orphanGraceMs ?? 60_000
    const seen = new Set<string>()
    /** True once `id` has been an orphan for the grace period (counted from the first time it is seen as one). */
    const due = (id: string): boolean => {
      seen.add(id)
      const since = this.orphanSince.get(id) ?? now
      this.orphanSince.set(id, since)
      return now - since >= grace
    }
    for (const ep of this.driver.endpoints()) {
      if (names.endpoints.has(ep.id) || !names.networks.has(ep.networkId) || this.runtime_?.endpointOwner(ep.id) !== undefined) continue
      if (!due(ep.id)) continue
      const net = this.driver.network(ep.networkId)
      this.log.warn({ endpoint: ep.id, network: ep.networkId, address: ep.address }, 'deleting an endpoint the engine no longer knows')
      await this.driver.deleteEndpoint(ep.networkId, ep.id)
      await this.releaseAddressOf(net, ep.address)
      if (ep.address6 !== undefined && net.poolId6 !== undefined) await this.ipam.releaseAddress(net.poolId6, ep.address6)
    }
    for (const leak of this.leakedAddresses(names)) {
      if (!due(leak.id)) continue
      this.log.warn({ network: leak.net.id, address: leak.ip }, 'releasing an address no endpoint holds (the engine lost track of it)')
      if (leak.poolId !== undefined) await this.ipam.releaseAddress(leak.poolId, leak.ip)
      else await this.releaseAddressOf(leak.net, leak.ip)
    }
    // Orphans that came back (or went) start their grace period afresh.
    for (const id of [...this.orphanSince.keys()]) if (!seen.has(id)) this.orphanSince.delete(id)
  }

  /** Give an endpoint address back where it came from: the cluster for an overlay, the local pool otherwise. */
  private async releaseAddressOf (net: NetworkRecord, ip: string): Promise<void> {
    if (net.overlay) await this.driver.releaseOverlayAddress(net.overlay.name, ip)
    else await this.ipam.releaseAddress(net.poolId, ip)
  }

  /**
   * Endpoint addresses of ferry's networks that neither a ferry endpoint nor one of
   * the engine's holds: the engine asked for them and then lost track (an agent
   * killed between RequestAddress and its answer makes the engine ask again; a
   * ReleaseAddress re-sent with an empty body after an agent restart is refused).
   * On a bridge network they are the local pool's; on an overlay, the cluster-wide
   * addresses this host holds. Networks the engine does not know (ferry's own) are
   * left alone; the caller waits the grace period before releasing, which also
   * covers an address between RequestAddress and CreateEndpoint.
   */
  private leakedAddresses (names: EngineNames): LeakedAddress[] {
    const out: LeakedAddress[] = []
    for (const net of this.driver.networks()) {
      const engineHeld = names.addresses.get(net.id)
      if (engineHeld === undefined) continue
      const held = new Set(this.driver.endpoints(net.id).flatMap((e) => e.address6 === undefined ? [e.address] : [e.address, e.address6]))
      const endpointIps = (poolId: string | undefined): string[] => poolId === undefined
        ? []
        : Object.entries(this.ipam.pool(poolId)?.allocated ?? {}).filter(([, use]) => use.kind === 'endpoint').map(([ip]) => ip)
      const candidates = net.overlay ? this.overlay?.cluster.heldAddresses?.(net.overlay.name) ?? [] : endpointIps(net.poolId)
      for (const ip of candidates) {
        if (held.has(ip) || engineHeld.has(ip) || ip === net.gateway) continue
        out.push({ id: `address ${net.id} ${ip}`, net, ip })
      }
      for (const ip of endpointIps(net.poolId6)) {
        if (held.has(ip) || engineHeld.has(ip)) continue
        out.push({ id: `address ${net.id} ${ip}`, net, ip, poolId: net.poolId6 })
      }
    }
    return out
  }

  private async reconcileNow (why: string): Promise<Record<string, unknown>> {
    try {
      if (await this.store.recheckLoss()) this.log.warn('the damaged store files are gone from the state directory: reconcile removes what nothing needs again')
      const r = await this.driver.reconcile()
      this.reconciles.runs++
      this.reconciles.lastAt = new Date().toISOString()
      this.reconciles.lastError = ''
      if (r.links > 0 || r.firewall) {
        this.reconciles.repairs++
        this.log.warn({ why, ...r }, 'reconcile repaired the kernel state')
      }
      return { ...r }
    } catch (err) {
      const ferr = toFerryError(err, 'KERNEL', 'reconcile failed')
      this.reconciles.lastError = ferr.message
      this.log.error({ err: ferr, why }, 'reconcile failed')
      throw ferr
    }
  }

  // ---- AgentView, for the admin API ----
  async reconcile (): Promise<Record<string, unknown>> { return this.reconcileNow('requested') }

  runtime (): RuntimeApi {
    if (!this.runtime_) throw new FerryError('AGENT_NOT_RUNNING', 'the agent is still starting')
    return this.runtime_
  }

  async status (): Promise<Record<string, unknown>> {
    return {
      version: VERSION,
      status: this.status_,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      pluginSocket: this.pluginSocket,
      apiSocket: this.cfg.apiSocket,
      stateDir: this.cfg.stateDir,
      networks: Object.keys(this.store.state.networks).length,
      endpoints: Object.keys(this.store.state.endpoints).length,
      pools: Object.keys(this.store.state.pools).length,
      publishedPorts: Object.values(this.store.state.endpoints).reduce((n, e) => n + e.ports.length, 0),
      store: {
        healthy: true,
        writes: this.store.writes,
        journalWrites: this.store.journalWrites,
        snapshots: this.store.snapshots,
        lastWriteMs: Math.round(this.store.lastWriteMs * 100) / 100,
        loss: lossView(this.store.loss),
      },
      reconcile: { ...this.reconciles },
      engine: { dockerHost: this.cfg.dockerHost, lastError: this.engine.lastError },
      // --iptables=false: ferry runs no iptables at all (no NAT, no publications, no isolation).
      firewall: { iptables: this.cfg.iptables !== false, backend: this.firewallChoice?.backend ?? 'disabled', reason: this.firewallChoice?.reason ?? '--iptables=false' },
      ...(this.overlay ? { cluster: { clusterKey: this.overlay.cluster.status().clusterKey } } : {}),
    }
  }

  private async engineNames (): Promise<Awaited<ReturnType<EngineClient['names']>>> {
    // Admin requests are rare: ask the engine each time, so a container started a moment ago has its name.
    return this.engine.names([this.cfg.pluginName, `${this.cfg.pluginName}:latest`], 0)
  }

  pool (poolId: string): PoolRecord | undefined {
    return this.ipam.pool(poolId)
  }

  async networks (): Promise<NetworkView[]> {
    const names = await this.engineNames()
    const eps = this.driver.endpoints()
    return this.driver.networks().map((n) => ({
      ...n, name: names.networks.get(n.id) ?? this.runtime_?.networkName(n.id) ?? n.id.slice(0, 12), endpoints: eps.filter((e) => e.networkId === n.id).length,
    }))
  }

  async endpoints (): Promise<EndpointView[]> {
    const names = await this.engineNames()
    return this.driver.endpoints().map((e) => {
      const c = names.endpoints.get(e.id)
      return {
        ...e,
        container: c?.containerName.replace(/^\//, '') ?? this.runtime_?.endpointOwner(e.id) ?? '',
        containerId: c?.containerId ?? '',
        networkName: names.networks.get(e.networkId) ?? this.runtime_?.networkName(e.networkId) ?? e.networkId.slice(0, 12),
      }
    })
  }
}

/** /etc/machine-id (systemd's stable host id), else the agent's host id, else the host name. */
async function hostIdentity (hostId: string | undefined): Promise<string> {
  const id = await fs.readFile('/etc/machine-id', 'utf8').then((t) => t.trim(), () => '')
  return id !== '' ? id : hostId ?? hostname()
}
