/**
 * ferry's Prometheus metrics, with prom-client (the standard client; no
 * hand-written exposition). One registry per agent, no globals.
 *
 * Two kinds of metric:
 * - observed as they happen: plugin call latency and errors (`onCall`, wired to
 *   the plugin server's hook);
 * - read on scrape from an `AgentSnapshot` (networks, endpoints, ports,
 *   reconcile, store, DNS, overlay): `render()` asks the source once per scrape
 *   and sets every such metric from it. Counters kept elsewhere as plain
 *   cumulative numbers (the DNS server's, the reconcile loop's) are mirrored:
 *   reset and set to the source's value, so they stay monotonic as long as the
 *   source's are.
 */
import { Counter, Gauge, Histogram, Registry, type CounterConfiguration, type GaugeConfiguration, type LabelValues, type Metric } from 'prom-client'
import type { FerryError } from '../errors/errors.js'
import type { DnsMetrics } from '../dns/metrics.js'
import { Mutex } from '../util/mutex.js'
import { VERSION } from '../version.js'

/** What the agent reports on each scrape: ferry's own types, no wire shapes. */
export interface AgentSnapshot {
  networks: { bridge: number, overlay: number }
  endpoints: { created: number, joined: number }
  /** Published host ports (a range counts each port), by protocol. */
  publishedPorts: { tcp: number, udp: number, sctp: number }
  reconcile: { runs: number, repairs: number, failing: boolean }
  /** damagedFiles: damaged journal or state files kept in the state directory (a loss to look at). */
  store: { writes: number, lastWriteMs: number, damagedFiles?: number }
  /** Absent when the DNS server is off. */
  dns?: DnsMetrics
  /** Absent without --cluster. */
  cluster?: ClusterSnapshot
}

export interface ClusterSnapshot {
  connected: boolean
  /** Commands sent to Redis so far. */
  commands: number
  /** The cluster's revision in Redis; undefined when Redis did not answer. */
  revision?: number
  /** The revision this host's peer tables reflect (-1 before the first sync). */
  applied: number
  synced: boolean
  /** Remote peers programmed in the kernel, per overlay. */
  overlays: Array<{ name: string, peers: number }>
  /** Registered hosts that share no underlay family with this host (a mixed-family cluster): reachable over no overlay. */
  unreachableHosts?: number
  /** Entries and messages signed and checked with --cluster-key. */
  clusterKey: boolean
  /** What was refused from the store, by kind and reason (cumulative). */
  rejected: Array<{ kind: string, reason: string, count: number }>
  /** This host's WireGuard device and its peers (absent without wireguard-go). */
  wireguard?: WireGuardSnapshot
}

export interface WireGuardSnapshot {
  /** The device is up (an encrypted overlay is attached here). */
  active: boolean
  /** When this host's key was last rotated (ms since the epoch), since the agent started. */
  lastRotation?: number
  peers: Array<{ hostId: string, lastHandshake?: number, rxBytes: number, txBytes: number, encrypted: boolean }>
}

export type SnapshotSource = () => Promise<AgentSnapshot>

/** The plugin methods ferry serves; any other name is counted as "other" (bounded label values). */
export const PLUGIN_METHODS: ReadonlySet<string> = new Set([
  'Plugin.Activate',
  'NetworkDriver.GetCapabilities', 'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork',
  'NetworkDriver.CreateEndpoint', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.DiscoverNew', 'NetworkDriver.DiscoverDelete',
  'NetworkDriver.AllocateNetwork', 'NetworkDriver.FreeNetwork', 'NetworkDriver.GwAllocCheck',
  'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces', 'IpamDriver.RequestPool',
  'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress',
])

/** A method label from what the plugin hook reports (a route name or a raw URL path). */
export function methodLabel (raw: string): string {
  const name = raw.replace(/^\//, '').split('?')[0] ?? ''
  return PLUGIN_METHODS.has(name) ? name : 'other'
}

/** DnsMetrics fields that count failures, with their `reason` label. */
const DNS_FAILURES: ReadonlyArray<[keyof DnsMetrics, string]> = [
  ['servfail', 'servfail'], ['refused', 'refused'], ['formerr', 'formerr'], ['notimp', 'notimp'], ['badvers', 'badvers'],
  ['dropped', 'dropped'], ['rateLimited', 'rate_limited'], ['upstreamTimeouts', 'upstream_timeout'],
  ['upstreamErrors', 'upstream_error'], ['tcpRejected', 'tcp_rejected'], ['tcpRejectedNonClient', 'tcp_rejected_non_client'],
  ['tcpRejectedPerSource', 'tcp_rejected_per_source'], ['tcpSlowReaders', 'tcp_slow_reader'], ['tcpTimeouts', 'tcp_timeout'],
  ['spoofedAnswers', 'upstream_spoofed'], ['internalErrors', 'internal_error'],
]

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** Set a mirrored counter to `value` (reset, then increase from 0). */
function mirror<T extends string> (c: Counter<T>, value: number, labels?: LabelValues<T>): void {
  const v = Number.isFinite(value) && value > 0 ? value : 0
  if (labels === undefined) c.inc(v)
  else c.inc(labels, v)
}

export class FerryMetrics {
  readonly registry = new Registry()
  private readonly source: SnapshotSource | undefined
  private readonly lock = new Mutex()

  private readonly pluginLatency: Histogram<'method'>
  private readonly pluginErrors: Counter<'method' | 'code'>

  private readonly networks: Gauge<'driver'>
  private readonly endpoints: Gauge<'state'>
  private readonly ports: Gauge<'proto'>
  private readonly reconcileRuns: Counter
  private readonly reconcileRepairs: Counter
  private readonly reconcileFailing: Gauge
  private readonly storeWrites: Counter
  private readonly storeLastWrite: Gauge
  private readonly storeDamaged: Gauge

  private readonly dnsQueries: Counter<'transport'>
  private readonly dnsByType: Counter<'type'>
  private readonly dnsAnswers: Counter<'source'>
  private readonly dnsForwarded: Counter
  private readonly dnsFailures: Counter<'reason'>
  private readonly dnsTruncated: Counter
  private readonly dnsCacheHits: Counter
  private readonly dnsCacheMisses: Counter
  private readonly dnsCacheEvictions: Counter
  private readonly dnsCacheEntries: Gauge

  private readonly clusterConnected: Gauge
  private readonly clusterCommands: Counter
  private readonly clusterRevision: Gauge
  private readonly syncRevision: Gauge
  private readonly syncLag: Gauge
  private readonly synced: Gauge
  private readonly peers: Gauge<'overlay'>
  private readonly unreachable: Gauge
  private readonly clusterKey: Gauge
  private readonly clusterRejected: Counter<'kind' | 'reason'>
  private readonly wgActive: Gauge
  private readonly wgRotation: Gauge
  private readonly wgHandshake: Gauge<'peer'>
  private readonly wgEncrypted: Gauge<'peer'>
  private readonly wgRx: Counter<'peer'>
  private readonly wgTx: Counter<'peer'>

  /** Metrics shown only while their part of the agent runs (DNS, cluster): name by metric. */
  private readonly optional = new Map<Metric, string>()

  constructor (source?: SnapshotSource) {
    this.source = source
    const registers = [this.registry]
    new Gauge({ name: 'ferry_build_info', help: 'ferry version (value 1)', labelNames: ['version'], registers }).set({ version: VERSION }, 1)

    this.pluginLatency = new Histogram({
      name: 'ferry_plugin_request_duration_seconds', help: 'Duration of successful Docker plugin calls, by method', labelNames: ['method'], buckets: LATENCY_BUCKETS, registers,
    })
    this.pluginErrors = new Counter({ name: 'ferry_plugin_errors_total', help: 'Docker plugin calls answered with an error, by method and ferry error code', labelNames: ['method', 'code'], registers })

    this.networks = new Gauge({ name: 'ferry_networks', help: 'ferry networks on this host', labelNames: ['driver'], registers })
    this.endpoints = new Gauge({ name: 'ferry_endpoints', help: 'Endpoints on this host, by state (created, joined)', labelNames: ['state'], registers })
    this.ports = new Gauge({ name: 'ferry_published_ports', help: 'Published host ports, by protocol', labelNames: ['proto'], registers })
    this.reconcileRuns = new Counter({ name: 'ferry_reconcile_runs_total', help: 'Completed reconciles of the kernel against the store', registers })
    this.reconcileRepairs = new Counter({ name: 'ferry_reconcile_repairs_total', help: 'Reconciles that had to repair the kernel state', registers })
    this.reconcileFailing = new Gauge({ name: 'ferry_reconcile_failing', help: '1 when the last reconcile failed', registers })
    this.storeWrites = new Counter({ name: 'ferry_store_writes_total', help: 'Durable writes of the local state file', registers })
    this.storeLastWrite = new Gauge({ name: 'ferry_store_last_write_seconds', help: 'Duration of the last state file write (write, fsync, rename, fsync of the directory)', registers })
    this.storeDamaged = new Gauge({ name: 'ferry_store_damaged_files', help: 'Damaged journal or state files kept in the state directory: the store was recovered with loss (ferry doctor says what to do)', registers })

    this.dnsQueries = this.optionalCounter({ name: 'ferry_dns_queries_total', help: 'DNS packets received, by transport', labelNames: ['transport'] })
    this.dnsByType = this.optionalCounter({ name: 'ferry_dns_questions_total', help: 'Parsed DNS queries, by question type', labelNames: ['type'] })
    this.dnsAnswers = this.optionalCounter({ name: 'ferry_dns_answers_total', help: 'DNS answers, by source (local: ferry records; upstream: a forwarded answer)', labelNames: ['source'] })
    this.dnsForwarded = this.optionalCounter({ name: 'ferry_dns_forwarded_total', help: 'DNS queries sent to an upstream resolver' })
    this.dnsFailures = this.optionalCounter({ name: 'ferry_dns_failures_total', help: 'DNS failures, by reason', labelNames: ['reason'] })
    this.dnsTruncated = this.optionalCounter({ name: 'ferry_dns_truncated_total', help: 'UDP answers sent truncated (TC)' })
    this.dnsCacheHits = this.optionalCounter({ name: 'ferry_dns_cache_hits_total', help: 'Queries for names not ferry\'s answered from the cache of forwarded answers' })
    this.dnsCacheMisses = this.optionalCounter({ name: 'ferry_dns_cache_misses_total', help: 'Queries for names not ferry\'s that the cache could not answer (then forwarded)' })
    this.dnsCacheEvictions = this.optionalCounter({ name: 'ferry_dns_cache_evictions_total', help: 'Cached answers dropped to stay within the entry and byte bounds' })
    this.dnsCacheEntries = this.optionalGauge({ name: 'ferry_dns_cache_entries', help: 'Answers in the cache of forwarded answers' })

    this.clusterConnected = this.optionalGauge({ name: 'ferry_cluster_connected', help: '1 when the cluster store (Redis) is connected and ready' })
    this.clusterCommands = this.optionalCounter({ name: 'ferry_cluster_commands_total', help: 'Commands sent to the cluster store' })
    this.clusterRevision = this.optionalGauge({ name: 'ferry_cluster_revision', help: "The cluster's revision in Redis (absent when Redis does not answer)" })
    this.syncRevision = this.optionalGauge({ name: 'ferry_overlay_sync_revision', help: "The cluster revision this host's peer tables reflect" })
    this.syncLag = this.optionalGauge({ name: 'ferry_overlay_sync_lag_revisions', help: 'Cluster revision minus the revision this host applied' })
    this.synced = this.optionalGauge({ name: 'ferry_overlay_synced', help: '1 when the peer tables are in sync with the cluster' })
    this.peers = this.optionalGauge({ name: 'ferry_overlay_peers', help: 'Remote peers programmed in the kernel, by overlay', labelNames: ['overlay'] })
    this.unreachable = this.optionalGauge({
      name: 'ferry_overlay_unreachable_hosts', help: 'Registered hosts that share no underlay address family with this host (IPv4-only and IPv6-only VTEPs): their endpoints are not programmed',
    })
    this.clusterKey = this.optionalGauge({ name: 'ferry_cluster_key', help: '1 when cluster entries and messages are signed and checked with --cluster-key' })
    this.clusterRejected = this.optionalCounter({
      name: 'ferry_cluster_rejected_total', help: 'Entries and messages read from the cluster store and refused (invalid, wrongly signed, inconsistent), by kind and reason', labelNames: ['kind', 'reason'],
    })
    this.wgActive = this.optionalGauge({ name: 'ferry_wireguard_active', help: "1 when this host's WireGuard device is up (an encrypted overlay is attached here)" })
    this.wgRotation = this.optionalGauge({ name: 'ferry_wireguard_last_key_rotation_timestamp_seconds', help: "When this host's WireGuard key was last rotated (absent when not since the agent started)" })
    this.wgHandshake = this.optionalGauge({
      name: 'ferry_wireguard_peer_last_handshake_timestamp_seconds', help: 'Last WireGuard handshake with a peer host (absent: never); the handshake age is time() minus this', labelNames: ['peer'],
    })
    this.wgEncrypted = this.optionalGauge({ name: 'ferry_wireguard_peer_encrypted', help: '1 when traffic to the peer host goes encrypted now (a WireGuard session younger than 180 s)', labelNames: ['peer'] })
    this.wgRx = this.optionalCounter({ name: 'ferry_wireguard_peer_receive_bytes_total', help: 'Bytes received from the peer host through WireGuard (restarts at a key rotation)', labelNames: ['peer'] })
    this.wgTx = this.optionalCounter({ name: 'ferry_wireguard_peer_transmit_bytes_total', help: 'Bytes sent to the peer host through WireGuard (restarts at a key rotation)', labelNames: ['peer'] })
  }

  private optionalCounter<T extends string> (cfg: CounterConfiguration<T>): Counter<T> {
    const m = new Counter<T>({ ...cfg, registers: [] })
    this.optional.set(m, cfg.name)
    return m
  }

  private optionalGauge<T extends string> (cfg: GaugeConfiguration<T>): Gauge<T> {
    const m = new Gauge<T>({ ...cfg, registers: [] })
    this.optional.set(m, cfg.name)
    return m
  }

  /** Register or unregister optional metrics. */
  private show (metrics: Metric[], on: boolean): void {
    for (const m of metrics) {
      const name = this.optional.get(m)!
      const registered = this.registry.getSingleMetric(name) !== undefined
      if (on && !registered) this.registry.registerMetric(m)
      if (!on && registered) this.registry.removeSingleMetric(name)
    }
  }

  /** The plugin server's `onCall` hook. Bound, so it can be passed as is. */
  readonly onCall = (method: string, ms: number, error?: FerryError): void => {
    const label = methodLabel(method)
    if (error !== undefined) this.pluginErrors.inc({ method: label, code: error.code })
    else this.pluginLatency.observe({ method: label }, ms / 1000)
  }

  /** Set every scrape-time metric from a snapshot. */
  apply (s: AgentSnapshot): void {
    this.networks.set({ driver: 'bridge' }, s.networks.bridge)
    this.networks.set({ driver: 'overlay' }, s.networks.overlay)
    this.endpoints.set({ state: 'created' }, s.endpoints.created)
    this.endpoints.set({ state: 'joined' }, s.endpoints.joined)
    this.ports.set({ proto: 'tcp' }, s.publishedPorts.tcp)
    this.ports.set({ proto: 'udp' }, s.publishedPorts.udp)
    this.ports.set({ proto: 'sctp' }, s.publishedPorts.sctp)
    for (const c of [this.reconcileRuns, this.reconcileRepairs, this.storeWrites]) c.reset()
    mirror(this.reconcileRuns, s.reconcile.runs)
    mirror(this.reconcileRepairs, s.reconcile.repairs)
    this.reconcileFailing.set(s.reconcile.failing ? 1 : 0)
    mirror(this.storeWrites, s.store.writes)
    this.storeLastWrite.set(s.store.lastWriteMs / 1000)
    this.storeDamaged.set(s.store.damagedFiles ?? 0)
    this.applyDns(s.dns)
    this.applyCluster(s.cluster)
    this.applyWireGuard(s.cluster?.wireguard)
  }

  private applyDns (d: DnsMetrics | undefined): void {
    const all = [this.dnsQueries, this.dnsByType, this.dnsAnswers, this.dnsForwarded, this.dnsFailures, this.dnsTruncated, this.dnsCacheHits, this.dnsCacheMisses, this.dnsCacheEvictions]
    for (const c of all) c.reset()
    this.dnsCacheEntries.reset()
    this.show([...all, this.dnsCacheEntries], d !== undefined)
    if (d === undefined) return
    mirror(this.dnsCacheHits, d.cacheHits)
    mirror(this.dnsCacheMisses, d.cacheMisses)
    mirror(this.dnsCacheEvictions, d.cacheEvictions)
    this.dnsCacheEntries.set(d.cacheEntries)
    mirror(this.dnsAnswers, d.cacheHits, { source: 'cache' })
    mirror(this.dnsAnswers, d.cacheStale, { source: 'stale' })
    mirror(this.dnsQueries, d.udp, { transport: 'udp' })
    mirror(this.dnsQueries, d.tcp, { transport: 'tcp' })
    for (const type of ['A', 'AAAA', 'PTR', 'other'] as const) mirror(this.dnsByType, d.byType[type], { type })
    mirror(this.dnsAnswers, d.answered, { source: 'local' })
    mirror(this.dnsAnswers, d.upstreamAnswers, { source: 'upstream' })
    mirror(this.dnsForwarded, d.forwarded)
    for (const [field, reason] of DNS_FAILURES) mirror(this.dnsFailures, d[field] as number, { reason })
    mirror(this.dnsTruncated, d.truncated)
  }

  private applyCluster (c: ClusterSnapshot | undefined): void {
    this.clusterCommands.reset()
    this.clusterRejected.reset()
    const gauges = [this.clusterConnected, this.clusterRevision, this.syncRevision, this.syncLag, this.synced, this.peers, this.clusterKey, this.unreachable]
    for (const g of gauges) g.reset()
    this.show([this.clusterCommands, this.clusterRejected, ...gauges], c !== undefined)
    this.show([this.clusterRevision, this.syncLag], c?.revision !== undefined)
    if (c === undefined) return
    this.clusterConnected.set(c.connected ? 1 : 0)
    this.clusterKey.set(c.clusterKey ? 1 : 0)
    mirror(this.clusterCommands, c.commands)
    for (const r of c.rejected) mirror(this.clusterRejected, r.count, { kind: r.kind, reason: r.reason })
    this.syncRevision.set(c.applied)
    this.synced.set(c.synced ? 1 : 0)
    if (c.revision !== undefined) {
      this.clusterRevision.set(c.revision)
      this.syncLag.set(Math.max(0, c.revision - Math.max(c.applied, 0)))
    }
    for (const o of c.overlays) this.peers.set({ overlay: o.name }, o.peers)
    this.unreachable.set(c.unreachableHosts ?? 0)
  }

  private applyWireGuard (w: WireGuardSnapshot | undefined): void {
    const counters = [this.wgRx, this.wgTx]
    const gauges = [this.wgActive, this.wgRotation, this.wgHandshake, this.wgEncrypted]
    for (const m of [...counters, ...gauges]) m.reset()
    this.show([...counters, ...gauges], w !== undefined)
    this.show([this.wgRotation], w?.lastRotation !== undefined)
    if (w === undefined) return
    this.wgActive.set(w.active ? 1 : 0)
    if (w.lastRotation !== undefined) this.wgRotation.set(w.lastRotation / 1000)
    for (const p of w.peers) {
      const peer = { peer: p.hostId }
      if (p.lastHandshake !== undefined) this.wgHandshake.set(peer, p.lastHandshake / 1000)
      this.wgEncrypted.set(peer, p.encrypted ? 1 : 0)
      mirror(this.wgRx, p.rxBytes, peer)
      mirror(this.wgTx, p.txBytes, peer)
    }
  }

  get contentType (): string { return this.registry.contentType }

  /** The exposition text: one snapshot per scrape, scrapes one at a time. */
  render (): Promise<string> {
    return this.lock.run(async () => {
      if (this.source !== undefined) this.apply(await this.source())
      return this.registry.metrics()
    })
  }
}
