/**
 * The ferry agent: wiring and lifecycle. It opens the store and the kernel drivers,
 * composes the network driver, IPAM, firewall (src/nat/backend.ts), runtime, overlay
 * and DNS (its feed: src/dns/feed.ts), reconciles the kernel with the store at start
 * and every interval (the periodic round: src/driver/reconciler.ts), then serves the
 * Docker plugin socket and the admin API socket (its views: src/api/views.ts). What
 * decides or composes lives beside its subsystem; this file only connects them.
 * Its lifecycle is one typed status with one setter.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { FerryError } from '../errors/errors.js'
import { FileStore, openingMessages } from '../store/store.js'
import { openLinkDriver } from '../kernel/netlink.js'
import { writeSysctl } from '../kernel/sysctl.js'
import { enableIpv6Forwarding, kernelForwardingDeps } from '../kernel/forwarding.js'
import type { LinkDriver } from '../kernel/types.js'
import { openAgentFirewall, type AgentFirewall } from '../nat/backend.js'
import { traceFirewallSource } from '../nat/trace-live.js'
import { Ipam } from '../ipam/ipam.js'
import { hostIdentity, hostNetworks } from '../ipam/host.js'
import { NetworkDriver } from '../driver/network.js'
import { Collector } from '../driver/collect.js'
import { Reconciler, startPeriodic } from '../driver/reconciler.js'
import { HostPortPublisher } from '../nat/publisher.js'
import { buildPluginServer } from '../plugin/server.js'
import { buildApiServer } from '../api/server.js'
import { agentInfo, AgentViews } from '../api/views.js'
import { EngineClient, ownDrivers, type OwnNetworks } from '../docker/client.js'
import { claimSocket, listenRootOnly, lockStateDir } from './lock.js'
import { LossRecovery } from './recover.js'
import { VERSION } from '../version.js'
import type { ClusterOverlay } from '../overlay/service.js'
import { openClusterOverlay, overlaysOf } from '../overlay/open.js'
import { resolvConfServers } from '../dns/upstream.js'
import { openAgentDns, type AgentDns } from '../dns/feed.js'
import type { FerryMetrics } from '../metrics/registry.js'
import { serveAgentMetrics } from '../metrics/server.js'
import type { MetricsConfig } from '../metrics/config.js'
import { DEFAULT_CLUSTER_WAIT_MS, type AgentConfig } from './config.js'
import { RuntimeService } from '../runtime/service.js'
import { ChildProcessNamespaces } from '../runtime/netns.js'
import { withStoredLinks } from '../runtime/firewall.js'

export type AgentStatus = 'starting' | 'running' | 'stopping' | 'stopped'

export class Agent {
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
  /** How ferry's networks are told among the engine's (src/docker/client.ts OwnNetworks). */
  private readonly ownNetworks: OwnNetworks
  private overlay?: ClusterOverlay
  private ipam!: Ipam
  private dns?: AgentDns
  private reconciler!: Reconciler
  private runtime_?: RuntimeService
  /** Set while the store is recovered with loss: rebuilds from the kernel and the engine (src/agent/recover.ts). */
  private recovery?: LossRecovery
  private firewall?: AgentFirewall
  private stopPeriodic?: () => void

  constructor (cfg: AgentConfig, log: Logger) {
    this.cfg = cfg
    this.log = log
    this.engine = new EngineClient(cfg.dockerHost)
    this.ownNetworks = { ...ownDrivers(cfg.pluginName), ids: () => this.driver.networks().map((n) => n.id) }
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
      for (const m of openingMessages(this.store)) this.log[m.level](m.fields ?? {}, m.msg)
      this.links = await openLinkDriver()
      this.cleanups.push(async () => this.links.close())
      if (this.cfg.ipForward !== false) await writeSysctl('net.ipv4.ip_forward', '1')
      const fw = this.firewall = await openAgentFirewall({
        iptables: this.cfg.iptables, backend: this.cfg.firewallBackend, log: this.log,
        networks: Object.values(this.store.state.networks), endpoints: Object.values(this.store.state.endpoints),
      })
      this.cleanups.push(async () => fw.close())
      const firewall = fw.limits ? fw.driver : withStoredLinks(fw.driver, () => this.runtime_?.desiredLinks() ?? [])
      const ipam = this.ipam = new Ipam({
        store: this.store,
        defaultPools: this.cfg.defaultPools,
        hostIdentity: await hostIdentity(this.store.state.hostId),
        hostNetworks: () => hostNetworks(this.links),
      })
      if (this.cfg.cluster) {
        this.overlay = await openClusterOverlay({ ...this.cfg.cluster, waitMs: this.cfg.cluster.waitMs ?? DEFAULT_CLUSTER_WAIT_MS },
          { store: this.store, links: this.links, stateDir: this.cfg.stateDir, version: VERSION, log: this.log })
      }
      this.driver = new NetworkDriver({
        store: this.store, links: this.links, firewall, limits: fw.limits, ipam, ports: new HostPortPublisher(), overlay: this.overlay, log: this.log.child({ component: 'driver' }),
        onChange: () => this.dns?.feed.queueSync(), storeLoss: () => this.store.loss !== undefined,
        ...(this.cfg.ipForward === false ? {} : { ipv6Forwarding: async () => { await enableIpv6Forwarding(kernelForwardingDeps((o, m) => this.log.warn(o, m))) } }),
      })
      this.reconciler = new Reconciler({ driver: this.driver, store: this.store, log: this.log })
      this.runtime_ = new RuntimeService({
        store: this.store, driver: this.driver, ipam, links: this.links, firewall, ns: new ChildProcessNamespaces(),
        filesDir: path.join(this.cfg.stateDir, 'containers'), log: this.log.child({ component: 'runtime' }),
        dns: {
          servers: resolvConfServers(this.cfg.dns.upstreams),
          search: this.cfg.runtime?.dnsSearch ?? [],
          options: this.cfg.runtime?.dnsOptions ?? [],
        },
        embeddedDns: this.cfg.dns.enabled,
        onChange: () => this.dns?.feed.queueSync(),
      })
      if (this.overlay) {
        await this.overlay.start(this.driver.localClusterState(), overlaysOf(this.driver.networks()))
        this.cleanups.push(() => this.overlay!.stop())
      }
      if (this.store.loss) {
        this.recovery = new LossRecovery({ store: this.store, driver: this.driver, ipam, links: this.links, engine: () => this.engine.namesIfUp(this.ownNetworks), log: this.log.child({ component: 'recovery' }) })
        await this.recovery.run()
      }
      await this.reconciler.run('start')
      await this.runtime_.ensureDefaultNetwork(this.cfg.defaultBridge)
      await this.runtime_.start(this.cfg.runtime?.watchIntervalMs ?? 1000)
      this.cleanups.push(async () => this.runtime_?.stop())
      if (this.cfg.dns.enabled) await this.startDns()

      this.api = buildApiServer(this.views(), this.log)
      await listenRootOnly(this.api, this.cfg.apiSocket)
      const metrics = this.cfg.metrics ? await this.startMetrics(this.cfg.metrics) : undefined
      this.plugin = buildPluginServer({ driver: this.driver, ipam, log: this.log, onCall: metrics?.onCall })
      await listenRootOnly(this.plugin, this.pluginSocket)
      if (this.cfg.reconcileIntervalMs > 0) {
        const collector = new Collector({
          driver: this.driver, ipam, graceMs: this.cfg.orphanGraceMs, log: this.log, engineNames: () => this.engine.namesIfUp(this.ownNetworks),
          endpointOwner: (id) => this.runtime_?.endpointOwner(id), heldAddresses: (o) => this.overlay?.cluster.heldAddresses?.(o),
        })
        this.stopPeriodic = startPeriodic(this.cfg.reconcileIntervalMs, { recovery: () => this.recovery, reconciler: this.reconciler, collector, log: this.log })
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
    this.stopPeriodic?.()
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

  /** The opt-in Prometheus endpoint; everything but plugin calls is read from the agent on each scrape. */
  private async startMetrics (cfg: MetricsConfig): Promise<FerryMetrics> {
    const overlay = this.overlay
    const { metrics, server } = await serveAgentMetrics(cfg, {
      networks: () => this.driver.networks(), endpoints: () => this.driver.endpoints(), reconcile: this.reconciler.counters, store: this.store, dns: this.dns?.server,
      cluster: overlay && {
        status: () => overlay.cluster.status(), revision: () => overlay.cluster.revision(), peers: () => overlay.peers.status(), wireguard: () => overlay.peers.wireguardStatus(),
      },
    }, this.log)
    this.cleanups.push(() => server.close())
    return metrics
  }

  /** DNS: the server, and the feed of its records (src/dns/feed.ts). */
  private async startDns (): Promise<void> {
    const dns = this.dns = openAgentDns(this.cfg.dns, {
      dockerHost: this.cfg.dockerHost, engine: this.engine, overlay: this.overlay, log: this.log.child({ component: 'dns' }),
      networks: () => this.driver.networks(), endpoints: () => this.driver.endpoints(), localNames: () => this.runtime_?.dnsNames() ?? [],
    })
    this.cleanups.push(() => dns.close())
    await dns.feed.start()
  }

  /** The admin API's views (src/api/views.ts) of this agent. */
  private views (): AgentViews {
    return new AgentViews({
      driver: this.driver, ipam: this.ipam, store: this.store, runtimeNames: () => this.runtime_, dns: () => this.dns, overlay: () => this.overlay,
      tracer: traceFirewallSource(() => this.firewall),
      // Admin requests are rare: the engine is asked each time, so a container started a moment ago has its name.
      engineNames: () => this.engine.names(this.ownNetworks, 0),
      reconcile: () => this.reconciler.run('requested'),
      runtime: () => {
        if (!this.runtime_) throw new FerryError('AGENT_NOT_RUNNING', 'the agent is still starting')
        return this.runtime_
      },
      info: () => agentInfo({
        version: VERSION, status: this.status_, startedAt: this.startedAt, pluginSocket: this.pluginSocket, apiSocket: this.cfg.apiSocket, stateDir: this.cfg.stateDir,
        reconcile: this.reconciler.counters, engine: { dockerHost: this.cfg.dockerHost, lastError: this.engine.lastError }, firewall: this.firewall?.choice,
      }),
    })
  }
}
