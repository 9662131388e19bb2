/**
 * The admin API's views of a running agent (`ferry status`, `network ls/inspect`,
 * `endpoint ls`, `port`, `dns records/query/cache`, `cluster status`, `peers`):
 * the driver's records named as the engine (or ferry's runtime) names them, the
 * store's counters, the DNS server's and the cluster's state. Read-only; the engine
 * is asked on each request (admin requests are rare), so a container started a
 * moment ago has its name.
 */
import { FerryError } from '../errors/errors.js'
import { resolveNetwork } from '../util/resolve.js'
import { lossView, type FileStore } from '../store/store.js'
import type { EngineNames } from '../docker/client.js'
import type { Ipam } from '../ipam/ipam.js'
import type { NetworkDriver } from '../driver/network.js'
import type { ClusterOverlay } from '../overlay/service.js'
import type { DnsServer } from '../dns/server.js'
import { scopeOf, type AgentRecordSource } from '../dns/source.js'
import type { NetworkRecord, PoolRecord } from '../model/types.js'
import type { AgentView, EndpointView, NetworkView } from './server.js'
import type { RuntimeApi } from './runtime.js'
import type { TraceFirewall } from '../nat/trace-live.js'

/** The agent's own part of `ferry status`: everything but the store's and the cluster's. */
export interface AgentInfo {
  version: string
  status: string
  pid: number
  uptimeSeconds: number
  pluginSocket: string
  apiSocket: string
  stateDir: string
  reconcile: Record<string, unknown>
  engine: { dockerHost: string, lastError: string }
  firewall: { iptables: boolean, backend: string, reason: string }
}

/** What the agent knows of itself, for agentInfo. */
export interface AgentFacts {
  version: string
  status: string
  /** Date.now() at start. */
  startedAt: number
  pluginSocket: string
  apiSocket: string
  stateDir: string
  /** The reconcile counters (src/driver/reconciler.ts). */
  reconcile: object
  engine: { dockerHost: string, lastError: string }
  /** The firewall backend and why; undefined with --iptables=false. */
  firewall: { backend: string, reason: string } | undefined
}

/** The agent's own part of `ferry status`, as of `now`. */
export function agentInfo (f: AgentFacts, now = Date.now(), pid = process.pid): AgentInfo {
  return {
    version: f.version,
    status: f.status,
    pid,
    uptimeSeconds: Math.round((now - f.startedAt) / 1000),
    pluginSocket: f.pluginSocket,
    apiSocket: f.apiSocket,
    stateDir: f.stateDir,
    reconcile: { ...f.reconcile },
    engine: { ...f.engine },
    firewall: f.firewall === undefined
      ? { iptables: false, backend: 'disabled', reason: '--iptables=false' }
      : { iptables: true, backend: f.firewall.backend, reason: f.firewall.reason },
  }
}

export interface ViewSources {
  driver: Pick<NetworkDriver, 'networks' | 'endpoints'>
  ipam: Pick<Ipam, 'pool'>
  store: Pick<FileStore, 'state' | 'writes' | 'journalWrites' | 'snapshots' | 'lastWriteMs' | 'loss'>
  engineNames (): Promise<EngineNames>
  /** Names ferry gave what it made without the engine (src/runtime); undefined while starting. */
  runtimeNames (): { networkName (id: string): string | undefined, endpointOwner (id: string): string | undefined, endpointOwnerId? (id: string): string | undefined } | undefined
  /** The DNS server and its records; undefined with --no-dns-server. */
  dns (): { server: Pick<DnsServer, 'query' | 'cacheFlush' | 'cacheStats' | 'upstreamHealth'>, records: Pick<AgentRecordSource, 'records'> } | undefined
  /** undefined without --cluster. */
  overlay (): Pick<ClusterOverlay, 'cluster' | 'peers'> | undefined
  info (): AgentInfo
  /** The firewall as `ferry trace` sees it (src/nat/trace-live.ts traceFirewallSource). */
  tracer?: () => TraceFirewall | undefined
  reconcile (): Promise<Record<string, unknown>>
  runtime (): RuntimeApi
}

const NO_DNS = 'the DNS server is off (--no-dns-server)'
/** An overlay network carried inside WireGuard (-o ferry.encrypt=wireguard). */
function encrypted (n: NetworkRecord): boolean {
  return n.options['ferry.encrypt'] === 'wireguard'
}

const NO_CLUSTER = 'this agent runs without a cluster: start it with --cluster redis://HOST:PORT --advertise-addr IP'

export class AgentViews implements AgentView {
  constructor (private readonly s: ViewSources) {}

  async reconcile (): Promise<Record<string, unknown>> { return this.s.reconcile() }

  runtime (): RuntimeApi { return this.s.runtime() }

  tracer (): TraceFirewall | undefined { return this.s.tracer?.() }

  pool (poolId: string): PoolRecord | undefined { return this.s.ipam.pool(poolId) }

  async status (): Promise<Record<string, unknown>> {
    const { reconcile, engine, firewall, ...head } = this.s.info()
    const store = this.s.store
    const state = store.state
    const overlay = this.s.overlay()
    return {
      ...head,
      networks: Object.keys(state.networks).length,
      endpoints: Object.keys(state.endpoints).length,
      pools: Object.keys(state.pools).length,
      publishedPorts: Object.values(state.endpoints).reduce((n, e) => n + e.ports.length, 0),
      store: {
        healthy: true,
        writes: store.writes,
        journalWrites: store.journalWrites,
        snapshots: store.snapshots,
        lastWriteMs: Math.round(store.lastWriteMs * 100) / 100,
        loss: lossView(store.loss),
      },
      reconcile,
      engine,
      // --iptables=false: ferry runs no iptables at all (no NAT, no publications, no isolation).
      firewall,
      ...(overlay ? { cluster: { clusterKey: overlay.cluster.status().clusterKey } } : {}),
    }
  }

  async networks (): Promise<NetworkView[]> {
    const names = await this.s.engineNames()
    const eps = this.s.driver.endpoints()
    const runtime = this.s.runtimeNames()
    return this.s.driver.networks().map((n) => ({
      ...n, name: names.networks.get(n.id) ?? runtime?.networkName(n.id) ?? n.id.slice(0, 12), endpoints: eps.filter((e) => e.networkId === n.id).length,
    }))
  }

  async endpoints (): Promise<EndpointView[]> {
    const names = await this.s.engineNames()
    const runtime = this.s.runtimeNames()
    return this.s.driver.endpoints().map((e) => {
      const c = names.endpoints.get(e.id)
      return {
        ...e,
        container: c?.containerName.replace(/^\//, '') ?? runtime?.endpointOwner(e.id) ?? '',
        containerId: c?.containerId ?? runtime?.endpointOwnerId?.(e.id) ?? '',
        networkName: names.networks.get(e.networkId) ?? runtime?.networkName(e.networkId) ?? e.networkId.slice(0, 12),
      }
    })
  }

  /** The DNS scope of the network `network` names (src/util/resolve.ts: name, id, id prefix, bridge or overlay name). */
  private async scopeNamed (network: string): Promise<string> {
    return scopeOf(resolveNetwork(network, await this.networks()))
  }

  async dnsRecords (network?: string): Promise<unknown[]> {
    const dns = this.s.dns()
    if (!dns) throw new FerryError('UNSUPPORTED', NO_DNS)
    const names = await this.s.engineNames()
    const scope = network === undefined ? undefined : await this.scopeNamed(network)
    return dns.records.records().filter((r) => scope === undefined || r.network === scope).map((r) => ({
      network: r.network.startsWith('overlay:') ? r.network : (names.networks.get(r.network) ?? r.network.slice(0, 12)),
      name: r.name, aliases: r.aliases, ip: r.ip, ...(r.ip6 !== undefined ? { ip6: r.ip6 } : {}),
      ...(r.ports !== undefined && r.ports.length > 0 ? { ports: r.ports } : {}),
    }))
  }

  async dnsQuery (name: string, type: 'A' | 'PTR' | 'AAAA', network: string): Promise<Record<string, unknown>> {
    const dns = this.s.dns()
    if (!dns) throw new FerryError('UNSUPPORTED', NO_DNS)
    const scope = await this.scopeNamed(network)
    const res = await dns.server.query(name, type, [scope]) as unknown as { rcode?: string, answers?: Array<{ name: string, type: string, ttl?: number, data?: unknown }> }
    return { rcode: res.rcode ?? 'NOERROR', answers: (res.answers ?? []).map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, data: a.data })) }
  }

  async dnsCache (flush: boolean): Promise<Record<string, unknown>> {
    const dns = this.s.dns()
    if (!dns) throw new FerryError('UNSUPPORTED', NO_DNS)
    const flushed = flush ? dns.server.cacheFlush() : 0
    const stats = dns.server.cacheStats()
    if (stats === undefined) throw new FerryError('UNSUPPORTED', 'the DNS cache is off')
    return { ...stats, flushed, upstreams: dns.server.upstreamHealth() }
  }

  async clusterStatus (): Promise<Record<string, unknown>> {
    const overlay = this.s.overlay()
    if (!overlay) throw new FerryError('CLUSTER_UNAVAILABLE', NO_CLUSTER)
    const { cluster, peers } = overlay
    const status = cluster.status()
    const [hosts, revision] = await Promise.all([
      cluster.hosts().catch(() => undefined),
      cluster.revision().catch(() => undefined),
    ])
    return { ...status, revision, hosts, peers: peers.status(), wireguard: await peers.wireguardStatus() }
  }

  async rotateKey (): Promise<Record<string, unknown>> {
    const overlay = this.s.overlay()
    if (!overlay) throw new FerryError('CLUSTER_UNAVAILABLE', NO_CLUSTER)
    return { ...await overlay.peers.rotateWireGuardKey() }
  }

  async peers (network?: string): Promise<unknown[]> {
    const overlay = this.s.overlay()
    if (!overlay) throw new FerryError('CLUSTER_UNAVAILABLE', NO_CLUSTER)
    const names = await this.s.engineNames()
    let nets = this.s.driver.networks().filter((n) => n.overlay)
    if (network) {
      const named = resolveNetwork(network, await this.networks())
      nets = nets.filter((n) => n.id === named.id)
      if (nets.length === 0) throw new FerryError('NETWORK_NOT_FOUND', `no overlay network "${network}" on this host (${named.name} is a bridge network)`)
    }
    // Per remote host of an encrypted overlay: its WireGuard handshake, bytes and whether traffic to it is encrypted now.
    const wg = nets.some(encrypted) ? await overlay.peers.wireguardStatus().catch(() => undefined) : undefined
    const byHost = new Map((wg?.peers ?? []).map((p) => [p.hostId, p]))
    return Promise.all(nets.map(async (n) => {
      const r = await overlay.peers.report(n.overlay!.name)
      const head = { network: names.networks.get(n.id) ?? n.id.slice(0, 12), encrypted: encrypted(n) }
      if (!encrypted(n)) return { ...head, ...r }
      return {
        ...head, ...r,
        rows: r.rows.map((row) => {
          const p = row.hostId === undefined ? undefined : byHost.get(row.hostId)
          return p === undefined ? row : { ...row, wireguard: { handshakeAgeS: p.handshakeAgeS, rxBytes: p.rxBytes, txBytes: p.txBytes, encrypted: p.encrypted } }
        }),
      }
    }))
  }
}
