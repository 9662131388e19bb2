/**
 * The ferry agent: wiring and lifecycle. It opens the store and the kernel drivers,
 * composes the network driver, IPAM, firewall, runtime, overlay and DNS (its feed:
 * src/dns/feed.ts), reconciles the kernel with the store at start and on a timer
 * (with the collection of what the engine left behind: src/driver/collect.ts), then
 * serves the Docker plugin socket and the admin API socket (its views: src/api/views.ts).
 * Its lifecycle is one typed status with one setter.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { FerryError, toFerryError } from '../errors/errors.js'
import { FileStore } from '../store/store.js'
import { openLinkDriver } from '../kernel/netlink.js'
import { writeSysctl } from '../kernel/sysctl.js'
import { enableIpv6Forwarding, kernelForwardingDeps } from '../kernel/forwarding.js'
import type { LinkDriver } from '../kernel/types.js'
import { DisabledFirewall, warnWithoutIptables } from '../nat/disabled.js'
import { chooseBackend, openFirewall, type BackendChoice } from '../nat/backend.js'
import { Ipam } from '../ipam/ipam.js'
import { NetworkDriver } from '../driver/network.js'
import { Collector } from '../driver/collect.js'
import { Reconciler } from '../driver/reconciler.js'
import { HostPortPublisher } from '../nat/publisher.js'
import { buildPluginServer } from '../plugin/server.js'
import { buildApiServer } from '../api/server.js'
import { AgentViews, type AgentInfo } from '../api/views.js'
import { EngineClient, type EngineNames } from '../docker/client.js'
import { claimSocket, lockStateDir } from './lock.js'
import { LossRecovery } from './recover.js'
import { VERSION } from '../version.js'
import { hostname } from 'node:os'
import type { ClusterOverlay } from '../overlay/service.js'
import { openClusterOverlay, overlaysOf } from '../overlay/open.js'
import { resolvConfServers } from '../dns/upstream.js'
import { openAgentDns, type AgentDns } from '../dns/feed.js'
import { FerryMetrics } from '../metrics/registry.js'
import { snapshotAgent } from '../metrics/snapshot.js'
import { startMetricsServer } from '../metrics/server.js'
import type { MetricsConfig } from '../metrics/config.js'
import { DEFAULT_CLUSTER_WAIT_MS, type AgentConfig } from './config.js'
import { RuntimeService } from '../runtime/service.js'
import { ChildProcessNamespaces } from '../runtime/netns.js'
import { withStoredLinks } from '../runtime/firewall.js'

export type AgentStatus = 'starting' | 'running' | 'stopping' | 'stopped'

/** Create a socket with no window in which others may connect (umask 077 while it is made). */
async function rootOnly<T> (fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0o077)
  try { return await fn() } finally { process.umask(old) }
}

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
  private timer?: NodeJS.Timeout
  private overlay?: ClusterOverlay
  private ipam!: Ipam
  private dns?: AgentDns
  private reconciler!: Reconciler
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
      if (disabled) warnWithoutIptables(Object.values(this.store.state.networks), Object.values(this.store.state.endpoints), this.log)
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
      if (this.cfg.cluster) {
        this.overlay = await openClusterOverlay({ ...this.cfg.cluster, waitMs: this.cfg.cluster.waitMs ?? DEFAULT_CLUSTER_WAIT_MS },
          { store: this.store, links: this.links, stateDir: this.cfg.stateDir, version: VERSION, log: this.log })
      }
      this.driver = new NetworkDriver({
        store: this.store, links: this.links, firewall, limits: disabled, ipam, ports: new HostPortPublisher(), overlay: this.overlay, log: this.log.child({ component: 'driver' }),
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
        this.recovery = new LossRecovery({ store: this.store, driver: this.driver, ipam, links: this.links, engine: () => this.engineNamesIfUp(), log: this.log.child({ component: 'recovery' }) })
        await this.recovery.run()
      }
      await this.reconciler.run('start')
      await this.runtime_.ensureDefaultNetwork(this.cfg.defaultBridge)
      await this.runtime_.start(this.cfg.runtime?.watchIntervalMs ?? 1000)
      this.cleanups.push(async () => this.runtime_?.stop())
      if (this.cfg.dns.enabled) await this.startDns()

      this.api = buildApiServer(this.views(), this.log)
      await rootOnly(() => this.api!.listen({ path: this.cfg.apiSocket }))
      await fs.chmod(this.cfg.apiSocket, 0o600)
      const metrics = this.cfg.metrics ? await this.startMetrics(this.cfg.metrics) : undefined
      this.plugin = buildPluginServer({ driver: this.driver, ipam, log: this.log, onCall: metrics?.onCall })
      await rootOnly(() => this.plugin!.listen({ path: this.pluginSocket }))
      await fs.chmod(this.pluginSocket, 0o600)
      if (this.cfg.reconcileIntervalMs > 0) {
        const collector = new Collector({
          driver: this.driver, ipam, graceMs: this.cfg.orphanGraceMs, log: this.log,
          engineNames: () => this.engineNamesIfUp(),
          endpointOwner: (id) => this.runtime_?.endpointOwner(id), heldAddresses: (o) => this.overlay?.cluster.heldAddresses?.(o),
        })
        this.timer = setInterval(() => {
          void this.recovery?.run() // never rejects: it logs a failed recovery and tries again next time
          void this.reconciler.run('periodic').catch(() => undefined) // the reconciler logs and counts its own failure
          void collector.collect().catch((err: unknown) => this.log.warn({ err: toFerryError(err).message }, 'collecting orphaned endpoints failed'))
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

  /** The opt-in Prometheus endpoint; everything but plugin calls is read from the agent on each scrape. */
  private async startMetrics (cfg: MetricsConfig): Promise<FerryMetrics> {
    const overlay = this.overlay
    const metrics = new FerryMetrics(() => snapshotAgent({
      networks: () => this.driver.networks(),
      endpoints: () => this.driver.endpoints(),
      reconcile: this.reconciler.counters,
      store: this.store,
      dns: this.dns?.server,
      cluster: overlay && {
        status: () => overlay.cluster.status(), revision: () => overlay.cluster.revision(), peers: () => overlay.peers.status(), wireguard: () => overlay.peers.wireguardStatus(),
      },
    }))
    const server = await startMetricsServer(cfg, metrics, this.log.child({ component: 'metrics' }))
    this.cleanups.push(() => server.close())
    return metrics
  }

  /** DNS: the server, and the feed of its records (src/dns/feed.ts). */
  private async startDns (): Promise<void> {
    const dns = this.dns = openAgentDns({ ...this.cfg.dns, ...(this.cfg.runtime?.dnsSearch.length ? { searchDomains: this.cfg.runtime.dnsSearch } : {}) }, {
      dockerHost: this.cfg.dockerHost, engine: this.engine, overlay: this.overlay, log: this.log.child({ component: 'dns' }),
      networks: () => this.driver.networks(), endpoints: () => this.driver.endpoints(), localNames: () => this.runtime_?.dnsNames() ?? [],
    })
    this.cleanups.push(() => dns.close())
    await dns.feed.start()
  }

  /** The admin API's views (src/api/views.ts) of this agent. */
  private views (): AgentViews {
    return new AgentViews({
      driver: this.driver, ipam: this.ipam, store: this.store, engineNames: () => this.engineNames(),
      runtimeNames: () => this.runtime_, dns: () => this.dns, overlay: () => this.overlay,
      reconcile: () => this.reconciler.run('requested'),
      runtime: () => {
        if (!this.runtime_) throw new FerryError('AGENT_NOT_RUNNING', 'the agent is still starting')
        return this.runtime_
      },
      info: (): AgentInfo => ({
        version: VERSION,
        status: this.status_,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
        pluginSocket: this.pluginSocket,
        apiSocket: this.cfg.apiSocket,
        stateDir: this.cfg.stateDir,
        reconcile: { ...this.reconciler.counters },
        engine: { dockerHost: this.cfg.dockerHost, lastError: this.engine.lastError },
        firewall: { iptables: this.cfg.iptables !== false, backend: this.firewallChoice?.backend ?? 'disabled', reason: this.firewallChoice?.reason ?? '--iptables=false' },
      }),
    })
  }

  private async engineNames (): Promise<EngineNames> {
    // Admin requests are rare: ask the engine each time, so a container started a moment ago has its name.
    return this.engine.names([this.cfg.pluginName, `${this.cfg.pluginName}:latest`], 0)
  }

  /** The engine's names, or undefined when it cannot be asked (nothing is collected or rebuilt then). */
  private async engineNamesIfUp (): Promise<EngineNames | undefined> {
    const n = await this.engineNames()
    return this.engine.lastError === '' ? n : undefined
  }
}

/** /etc/machine-id (systemd's stable host id), else the agent's host id, else the host name. */
async function hostIdentity (hostId: string | undefined): Promise<string> {
  const id = await fs.readFile('/etc/machine-id', 'utf8').then((t) => t.trim(), () => '')
  return id !== '' ? id : hostId ?? hostname()
}
