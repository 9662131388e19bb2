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
import { FileStore } from '../store/store.js'
import { openLinkDriver } from '../kernel/netlink.js'
import { writeSysctl } from '../kernel/sysctl.js'
import type { LinkDriver } from '../kernel/types.js'
import { IptablesDriver } from '../nat/iptables.js'
import { Ipam, type DefaultPool } from '../ipam/ipam.js'
import { NetworkDriver } from '../driver/network.js'
import { HostPortPublisher } from '../nat/publisher.js'
import { buildPluginServer } from '../plugin/server.js'
import { buildApiServer, type AgentView, type EndpointView, type NetworkView } from '../api/server.js'
import { EngineClient } from '../docker/client.js'
import { claimSocket, lockStateDir } from './lock.js'
import { VERSION } from '../version.js'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { RedisClusterStore } from '../cluster/redis.js'
import { openOverlayDataPlane } from '../vxlan/apply.js'
import { PeerSync } from '../vxlan/peers.js'
import { ClusterOverlay } from '../overlay/service.js'

export interface AgentConfig {
  pluginName: string
  pluginDir: string
  stateDir: string
  apiSocket: string
  dockerHost: string
  defaultPools?: DefaultPool[]
  /** How often the agent checks the kernel against its store (ms); 0 = never. */
  reconcileIntervalMs: number
  /** Multi-host overlay: the Redis control plane and this host's underlay address. */
  cluster?: { url: string, advertiseAddr: string, hostId?: string, hostTtlMs?: number }
}

export type AgentStatus = 'starting' | 'running' | 'stopping' | 'stopped'

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
  private reconciles = { runs: 0, repairs: 0, lastError: '' as string, lastAt: '' as string }

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
      this.store = await FileStore.open(this.cfg.stateDir)
      this.links = await openLinkDriver()
      this.cleanups.push(async () => this.links.close())
      await writeSysctl('net.ipv4.ip_forward', '1')
      const firewall = new IptablesDriver({ logger: this.log.child({ component: 'nat' }) })
      const ipam = new Ipam({
        store: this.store,
        defaultPools: this.cfg.defaultPools,
        hostNetworks: async () => {
          const [routes, addrs] = await Promise.all([this.links.listRoutes(), this.links.listAddresses()])
          return [...routes.filter((r) => r.dst !== '0.0.0.0/0').map((r) => r.dst), ...addrs.map((a) => a.cidr)]
        },
      })
      if (this.cfg.cluster) this.overlay = await this.openCluster(this.cfg.cluster)
      this.driver = new NetworkDriver({
        store: this.store, links: this.links, firewall, ipam, ports: new HostPortPublisher(), overlay: this.overlay, log: this.log.child({ component: 'driver' }),
      })
      if (this.overlay) {
        const overlays = this.driver.networks().filter((n) => n.overlay).map((n) => ({
          name: n.overlay!.name, subnet: n.subnet, gateway: n.gateway, vni: n.overlay!.vni,
          mtu: n.options['com.docker.network.driver.mtu'] !== undefined ? n.mtu : undefined,
        }))
        await this.overlay.start(this.driver.localClusterState(), overlays)
        this.cleanups.push(() => this.overlay!.stop())
      }
      await this.reconcileNow('start')

      this.api = buildApiServer(this, this.log)
      await this.api.listen({ path: this.cfg.apiSocket })
      await fs.chmod(this.cfg.apiSocket, 0o600)
      this.plugin = buildPluginServer({ driver: this.driver, ipam, log: this.log })
      await this.plugin.listen({ path: this.pluginSocket })
      await fs.chmod(this.pluginSocket, 0o600)
      if (this.cfg.reconcileIntervalMs > 0) {
        this.timer = setInterval(() => { void this.reconcileNow('periodic').catch(() => undefined) }, this.cfg.reconcileIntervalMs)
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

  private async openCluster (c: NonNullable<AgentConfig['cluster']>): Promise<ClusterOverlay> {
    let hostId = c.hostId ?? this.store.state.hostId
    if (!hostId) {
      hostId = `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`
      this.store.state.hostId = hostId
      await this.store.commit()
    }
    const log = this.log.child({ component: 'cluster' })
    const cluster = new RedisClusterStore({ url: c.url, hostId, advertiseAddr: c.advertiseAddr, version: VERSION, hostTtlMs: c.hostTtlMs, log })
    const peers = new PeerSync({ store: cluster, dataPlane: await openOverlayDataPlane(), log: this.log.child({ component: 'peers' }) })
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
    return { ...status, revision, hosts, peers: peers.status() }
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

  private async reconcileNow (why: string): Promise<Record<string, unknown>> {
    try {
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
      store: { healthy: true, writes: this.store.writes, lastWriteMs: Math.round(this.store.lastWriteMs * 100) / 100 },
      reconcile: { ...this.reconciles },
      engine: { dockerHost: this.cfg.dockerHost, lastError: this.engine.lastError },
    }
  }

  private async engineNames (): Promise<Awaited<ReturnType<EngineClient['names']>>> {
    // Admin requests are rare: ask the engine each time, so a container started a moment ago has its name.
    return this.engine.names([this.cfg.pluginName, `${this.cfg.pluginName}:latest`], 0)
  }

  async networks (): Promise<NetworkView[]> {
    const names = await this.engineNames()
    const eps = this.driver.endpoints()
    return this.driver.networks().map((n) => ({
      ...n, name: names.networks.get(n.id) ?? n.id.slice(0, 12), endpoints: eps.filter((e) => e.networkId === n.id).length,
    }))
  }

  async endpoints (): Promise<EndpointView[]> {
    const names = await this.engineNames()
    return this.driver.endpoints().map((e) => {
      const c = names.endpoints.get(e.id)
      return {
        ...e,
        container: c?.containerName.replace(/^\//, '') ?? '',
        containerId: c?.containerId ?? '',
        networkName: names.networks.get(e.networkId) ?? e.networkId.slice(0, 12),
      }
    })
  }
}

