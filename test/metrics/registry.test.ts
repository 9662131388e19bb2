import t from 'tap'
import { FerryMetrics, methodLabel, type AgentSnapshot } from '../../src/metrics/registry.js'
import { newMetrics } from '../../src/dns/metrics.js'
import { FerryError } from '../../src/errors/errors.js'

function base (over: Partial<AgentSnapshot> = {}): AgentSnapshot {
  return {
    networks: { bridge: 2, overlay: 1 },
    endpoints: { created: 1, joined: 3 },
    publishedPorts: { tcp: 5, udp: 1, sctp: 0 },
    reconcile: { runs: 7, repairs: 2, failing: false },
    store: { writes: 11, lastWriteMs: 2.5 },
    ...over,
  }
}

/** The value of one sample line `name{labels} value`. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

t.test('method labels are bounded to ferry\'s routes', async (t) => {
  t.equal(methodLabel('NetworkDriver.Join'), 'NetworkDriver.Join')
  t.equal(methodLabel('/IpamDriver.RequestAddress'), 'IpamDriver.RequestAddress')
  t.equal(methodLabel('/IpamDriver.RequestAddress?x=1'), 'IpamDriver.RequestAddress')
  t.equal(methodLabel('/../../etc/passwd'), 'other')
  t.equal(methodLabel('NetworkDriver.' + 'A'.repeat(500)), 'other')
})

t.test('plugin calls: latency histogram on success, error counter by code', async (t) => {
  const m = new FerryMetrics()
  m.onCall('NetworkDriver.Join', 3)
  m.onCall('NetworkDriver.Join', 40)
  m.onCall('/IpamDriver.RequestPool', 0, new FerryError('POOL_OVERLAP', 'x'))
  m.onCall('/Nope.Nope', 0, new FerryError('INVALID_REQUEST', 'x'))
  const text = await m.render()
  t.equal(sample(text, 'ferry_plugin_request_duration_seconds_count{method="NetworkDriver.Join"}'), 2)
  t.equal(sample(text, 'ferry_plugin_request_duration_seconds_bucket{le="0.005",method="NetworkDriver.Join"}'), 1)
  t.equal(sample(text, 'ferry_plugin_request_duration_seconds_bucket{le="0.05",method="NetworkDriver.Join"}'), 2)
  t.equal(sample(text, 'ferry_plugin_errors_total{method="IpamDriver.RequestPool",code="POOL_OVERLAP"}'), 1)
  t.equal(sample(text, 'ferry_plugin_errors_total{method="other",code="INVALID_REQUEST"}'), 1)
  t.match(text, /ferry_build_info\{version="[^"]+"\} 1/)
})

t.test('scrape-time metrics come from the snapshot, read once per scrape', async (t) => {
  let snap = base()
  let reads = 0
  const m = new FerryMetrics(async () => { reads++; return snap })
  let text = await m.render()
  t.equal(reads, 1)
  t.equal(sample(text, 'ferry_networks{driver="bridge"}'), 2)
  t.equal(sample(text, 'ferry_networks{driver="overlay"}'), 1)
  t.equal(sample(text, 'ferry_endpoints{state="joined"}'), 3)
  t.equal(sample(text, 'ferry_published_ports{proto="tcp"}'), 5)
  t.equal(sample(text, 'ferry_reconcile_runs_total'), 7)
  t.equal(sample(text, 'ferry_reconcile_repairs_total'), 2)
  t.equal(sample(text, 'ferry_reconcile_failing'), 0)
  t.equal(sample(text, 'ferry_store_writes_total'), 11)
  t.equal(sample(text, 'ferry_store_last_write_seconds'), 0.0025)
  t.equal(sample(text, 'ferry_store_damaged_files'), 0, 'no loss')
  const lossy = new FerryMetrics(() => base({ store: { writes: 1, lastWriteMs: 1, damagedFiles: 2 } }))
  t.equal(sample(await lossy.render(), 'ferry_store_damaged_files'), 2, 'a store recovered with loss shows its kept files')
  t.match(text, '# TYPE ferry_reconcile_runs_total counter')
  t.notMatch(text, 'ferry_dns_', 'no DNS families while DNS is off')
  t.notMatch(text, 'ferry_cluster_', 'no cluster families without --cluster')

  snap = base({ reconcile: { runs: 9, repairs: 2, failing: true } })
  text = await m.render()
  t.equal(sample(text, 'ferry_reconcile_runs_total'), 9, 'mirrored counters follow the source')
  t.equal(sample(text, 'ferry_reconcile_failing'), 1)
})

t.test('DNS counters by type and failure reason', async (t) => {
  const dns = newMetrics()
  Object.assign(dns, { queries: 12, udp: 10, tcp: 2, answered: 6, forwarded: 4, upstreamAnswers: 3, servfail: 1, upstreamTimeouts: 1, refused: 2, rateLimited: 5, truncated: 1 })
  dns.byType = { A: 7, AAAA: 3, PTR: 1, other: 1 }
  const m = new FerryMetrics(async () => base({ dns }))
  const text = await m.render()
  t.equal(sample(text, 'ferry_dns_queries_total{transport="udp"}'), 10)
  t.equal(sample(text, 'ferry_dns_questions_total{type="AAAA"}'), 3)
  t.equal(sample(text, 'ferry_dns_answers_total{source="local"}'), 6)
  t.equal(sample(text, 'ferry_dns_answers_total{source="upstream"}'), 3)
  t.equal(sample(text, 'ferry_dns_forwarded_total'), 4)
  t.equal(sample(text, 'ferry_dns_failures_total{reason="servfail"}'), 1)
  t.equal(sample(text, 'ferry_dns_failures_total{reason="upstream_timeout"}'), 1)
  t.equal(sample(text, 'ferry_dns_failures_total{reason="refused"}'), 2)
  t.equal(sample(text, 'ferry_dns_failures_total{reason="rate_limited"}'), 5)
  t.equal(sample(text, 'ferry_dns_truncated_total'), 1)
})

t.test('DNS cache: hits, misses, evictions, entries', async (t) => {
  const dns = newMetrics()
  Object.assign(dns, { cacheHits: 40, cacheMisses: 9, cacheEvictions: 2, cacheEntries: 7, cacheStale: 1 })
  const text = await new FerryMetrics(async () => base({ dns })).render()
  t.equal(sample(text, 'ferry_dns_cache_hits_total'), 40)
  t.equal(sample(text, 'ferry_dns_cache_misses_total'), 9)
  t.equal(sample(text, 'ferry_dns_cache_evictions_total'), 2)
  t.equal(sample(text, 'ferry_dns_cache_entries'), 7)
  t.equal(sample(text, 'ferry_dns_answers_total{source="cache"}'), 40)
  t.equal(sample(text, 'ferry_dns_answers_total{source="stale"}'), 1)
})

t.test('overlay: peers, revision, lag; revision absent when Redis does not answer', async (t) => {
  let snap = base({ cluster: { connected: true, commands: 120, revision: 42, applied: 40, synced: false, overlays: [{ name: 'ov1', peers: 3 }, { name: 'ov2', peers: 0 }],
    clusterKey: true, rejected: [{ kind: 'endpoint', reason: 'unregistered-host', count: 3 }], unreachableHosts: 1 } })
  const m = new FerryMetrics(async () => snap)
  let text = await m.render()
  t.equal(sample(text, 'ferry_cluster_connected'), 1)
  t.equal(sample(text, 'ferry_cluster_commands_total'), 120)
  t.equal(sample(text, 'ferry_cluster_revision'), 42)
  t.equal(sample(text, 'ferry_overlay_sync_revision'), 40)
  t.equal(sample(text, 'ferry_overlay_sync_lag_revisions'), 2)
  t.equal(sample(text, 'ferry_overlay_synced'), 0)
  t.equal(sample(text, 'ferry_overlay_peers{overlay="ov1"}'), 3)
  t.equal(sample(text, 'ferry_overlay_peers{overlay="ov2"}'), 0)
  t.equal(sample(text, 'ferry_cluster_key'), 1)
  t.equal(sample(text, 'ferry_cluster_rejected_total{kind="endpoint",reason="unregistered-host"}'), 3)
  t.equal(sample(text, 'ferry_overlay_unreachable_hosts'), 1, 'a host sharing no underlay family with this one')

  snap = base({ cluster: { connected: false, commands: 130, applied: 40, synced: false, overlays: [{ name: 'ov1', peers: 3 }], clusterKey: false, rejected: [] } })
  text = await m.render()
  t.equal(sample(text, 'ferry_cluster_connected'), 0)
  t.notMatch(text, 'ferry_cluster_revision', 'unknown revision: no sample rather than a wrong 0')
  t.notMatch(text, 'ferry_overlay_sync_lag_revisions')
  t.equal(sample(text, 'ferry_overlay_peers{overlay="ov2"}'), undefined, 'a removed overlay disappears')

  snap = base()
  text = await m.render()
  t.notMatch(text, 'ferry_overlay_', 'cluster gone: families gone')
})

t.test('concurrent scrapes each get a whole snapshot', async (t) => {
  let n = 0
  const m = new FerryMetrics(async () => { n++; await new Promise((r) => setTimeout(r, 5)); return base({ reconcile: { runs: n, repairs: 0, failing: false } }) })
  const texts = await Promise.all([m.render(), m.render(), m.render()])
  t.same(texts.map((x) => sample(x, 'ferry_reconcile_runs_total')), [1, 2, 3])
})

t.test('WireGuard metrics: per peer host its last handshake, bytes and encryption; absent without wireguard-go', async (t) => {
  const cluster = { connected: true, commands: 1, applied: 1, synced: true, overlays: [], clusterKey: false, rejected: [] }
  let snap = base({
    cluster: {
      ...cluster,
      wireguard: {
        active: true, lastRotation: 1_700_000_000_000,
        peers: [{ hostId: 'h2', lastHandshake: 1_700_000_100_000, rxBytes: 1000, txBytes: 2000, encrypted: true }, { hostId: 'h3', rxBytes: 0, txBytes: 0, encrypted: false }],
      },
    },
  })
  const m = new FerryMetrics(async () => snap)
  let text = await m.render()
  t.equal(sample(text, 'ferry_wireguard_active'), 1)
  t.equal(sample(text, 'ferry_wireguard_last_key_rotation_timestamp_seconds'), 1_700_000_000)
  t.equal(sample(text, 'ferry_wireguard_peer_last_handshake_timestamp_seconds{peer="h2"}'), 1_700_000_100)
  t.equal(sample(text, 'ferry_wireguard_peer_last_handshake_timestamp_seconds{peer="h3"}'), undefined, 'never: no sample')
  t.equal(sample(text, 'ferry_wireguard_peer_receive_bytes_total{peer="h2"}'), 1000)
  t.equal(sample(text, 'ferry_wireguard_peer_transmit_bytes_total{peer="h2"}'), 2000)
  t.equal(sample(text, 'ferry_wireguard_peer_encrypted{peer="h2"}'), 1)
  t.equal(sample(text, 'ferry_wireguard_peer_encrypted{peer="h3"}'), 0)
  snap = base({ cluster: { ...cluster, wireguard: { active: false, peers: [] } } })
  text = await m.render()
  t.equal(sample(text, 'ferry_wireguard_active'), 0)
  t.notMatch(text, 'ferry_wireguard_peer_encrypted{', 'a peer gone: its series gone')
  t.notMatch(text, 'ferry_wireguard_last_key_rotation', 'no rotation: no sample')
  snap = base({ cluster })
  t.notMatch(await m.render(), 'ferry_wireguard_', 'no wireguard-go: families gone')
})
