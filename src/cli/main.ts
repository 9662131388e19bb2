/**
 * bin/ferry: the one entry point, for the agent (`ferry agent`) and for admins
 * (`ferry network ls`, …). Commands parse their input, call the agent's API and
 * print an aligned table or --json. Errors print one sentence and exit non-zero.
 */
import { Command, Option, InvalidArgumentError } from 'commander'
import { exitCode, FerryError, toFerryError } from '../errors/errors.js'
import { parseBool } from '../runtime/flags.js'
import { VERSION } from '../version.js'
import { apiCall, apiSocketFrom } from '../api/client.js'
import { registerRuntimeCommands } from './runtime.js'
import { registerOpsCommands } from './ops.js'
import { registerGraphCommand } from './graph.js'
import { registerTraceCommand } from './trace.js'
import { duration, table } from './table.js'
import type { EndpointView, NetworkView } from '../api/server.js'
import type { PortBinding } from '../model/types.js'
import { familyOf } from '../util/ip.js'
import { checkContainerKey, checkNetworkKey } from '../util/resolve.js'

interface GlobalOpts { apiSocket?: string }
interface JsonOpt { json?: boolean }

function out (text: string): void { process.stdout.write(text) }
function json (v: unknown): void { out(JSON.stringify(v, null, 2) + '\n') }

function short (id: string): string { return id.slice(0, 12) }

/** `ip:port[-end]`: an IPv6 address in brackets; no host address is 0.0.0.0 or [::], by the binding's family (its container address's). */
function sideText (p: PortBinding, side: 'host' | 'container'): string {
  const [ip, lo, hi] = side === 'host' ? [p.hostIp, p.hostPort, p.hostPortEnd] : [p.containerIp, p.containerPort, p.containerPortEnd]
  const v6 = familyOf(p.containerIp) === 6
  const addr = ip === '' ? (v6 ? '::' : '0.0.0.0') : ip
  return `${v6 ? `[${addr}]` : addr}:${lo === hi ? `${lo}` : `${lo}-${hi}`}`
}

function portText (p: PortBinding): string {
  return `${sideText(p, 'host')}->${sideText(p, 'container')}/${p.proto}`
}

function collect (value: string, prev: string[] = []): string[] { return [...prev, value] }

/** `?network=KEY` for a network name, id or id prefix, checked where it enters (src/util/resolve.ts); '' without one. */
function networkQuery (network: string | undefined): string {
  return network === undefined ? '' : `?network=${encodeURIComponent(checkNetworkKey(network))}`
}

/** Whether cluster entries are signed; an agent older than the field shows '-'. */
function clusterKeyText (key: boolean | undefined): string {
  return key === undefined ? '-' : key ? 'in use (entries and messages are signed and checked)' : 'none (entries and messages are not authenticated)'
}

/** `recovered with loss: …; ` when the agent's store lost acknowledged changes (src/store/store.ts lossView), else ''. */
function storeLoss (store: Record<string, unknown>): string {
  const loss = store.loss as { summary?: unknown } | undefined
  return typeof loss?.summary === 'string' ? `${loss.summary}; ` : ''
}

/** The status line of the firewall; an agent older than the field shows '-'. */
export function firewallText (f: { iptables: boolean, backend?: string, reason?: string } | undefined): string {
  if (f === undefined) return '-'
  if (!f.iptables) return 'disabled (--iptables=false): no NAT, no published ports, no isolation'
  if (f.backend === 'nftables') return `nftables (table inet ferry; ${f.reason ?? ''})`
  return `iptables (FERRY-* chains${f.reason !== undefined ? `; ${f.reason}` : ''})`
}

/** dockerd's boolean flags: `--flag` alone is true, `--flag=false` (or 0, no, off) false. */
function boolArg (v: string | undefined): boolean {
  if (v === undefined) return true
  try { return parseBool(v) } catch (err) { throw new InvalidArgumentError((err as Error).message) }
}

function positiveInt (v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number')
  return Number(v)
}

export function buildCli (): Command {
  const program = new Command('ferry')
    .description('ferry: container networking agent (Docker network + IPAM driver)')
    .version(VERSION)
    .option('--api-socket <path>', "the agent's API socket (default: $FERRY_API_SOCKET or /run/ferry/ferry.sock)")
    .showHelpAfterError()
  const api = <T>(method: 'GET' | 'POST' | 'DELETE', path: string, timeoutMs?: number): Promise<T> =>
    apiCall<T>(apiSocketFrom(program.opts<GlobalOpts>().apiSocket), method, path, undefined, timeoutMs)

  program.command('agent')
    .description('run the agent (as root): serves the Docker plugin socket and the admin API')
    .option('--plugin-name <name>', 'plugin name: the engine finds it as /run/docker/plugins/<name>.sock', 'ferry')
    .option('--plugin-dir <dir>', 'where the engine looks for plugin sockets', '/run/docker/plugins')
    .option('--state-dir <dir>', 'where the agent keeps its state', '/var/lib/ferry')
    .option('--api-socket <path>', "the CLI's socket (default /run/ferry/<plugin-name>.sock)")
    .option('--docker-host <url>', "the engine's API, for names (default $DOCKER_HOST or unix:///var/run/docker.sock)")
    .option('--default-address-pool <spec>', 'base=CIDR,size=N for automatic pools (repeatable; Docker\'s defaults otherwise)', collect, [])
    .option('--reconcile-interval <seconds>', 'check the kernel against the store every N seconds (0 = only at start)', positiveInt, 5)
    .option('--orphan-grace <seconds>', 'delete an endpoint the engine has not known for this long (it died between CreateEndpoint and Join)', positiveInt, 60)
    .option('--cluster <url>', 'Redis for multi-host overlays: redis://[:password@]host:port, rediss://… (TLS) or sentinel://[:password@]host:port[,host:port]/master')
    .option('--advertise-addr <ip>', "this host's underlay address (the VXLAN tunnel endpoint); needed with --cluster; given twice (one IPv4, one IPv6), a dual-stack host", collect)
    .option('--host-id <id>', 'this host\'s id in the cluster (default: made once and kept in the state dir)')
    .option('--host-ttl <seconds>', 'a host whose heartbeat stops is removed after this long', positiveInt)
    .option('--wireguard-endpoint <ip:port>', 'where other hosts reach this host\'s WireGuard when it is behind NAT (the NAT forwards this port and the one above it to 51820 and 51821)')
    .option('--key-rotation-interval <seconds>', 'rotate this host\'s WireGuard key every N seconds (at least 60), as `ferry cluster rotate-key` does', positiveInt)
    .option('--cluster-wait <seconds>', 'a request that needs the cluster store while it is unreachable waits this long for it to come back (0 = fail at once; default 10)', positiveInt)
    .option('--cluster-key <file>', 'sign and check every cluster entry and message with the shared secret in FILE (mode 600, root, at least 32 bytes; the same on every host)')
    .option('--dns <ip>', 'upstream resolver for names ferry does not know (repeatable; default: the host\'s resolv.conf)', collect, [])
    .option('--no-dns-server', 'do not serve DNS on the networks\' gateway addresses')
    .option('--dns-rate-limit <n|off>', 'DNS queries per second per source (bursts of twice that), or off (default 2000)')
    .option('--dns-udp-helpers <n>', 'extra processes serving DNS over UDP (1 doubles the throughput on a 2-core host)', positiveInt, 0)
    .addOption(new Option('--dns-udp <mode>', 'how DNS over UDP is read and answered: batch (the native addon, many datagrams per recvmmsg/sendmmsg), dgram (node:dgram), ' +
      'auto (batch when the addon loads and no UDP helper is asked for)').choices(['auto', 'batch', 'dgram']).default('auto'))
    .option('--dns-cache-size <n>', 'answers of upstreams cached at most, 0: no cache (default 10000)', positiveInt)
    .option('--dns-ttl <seconds>', 'TTL of ferry\'s own answers, 0 to 3600 (default 0: clients never hold a moved container\'s old address)')
    .option('--dns-engine-clients <cidr>', 'containers of the engine\'s own networks (e.g. 172.17.0.0/16) whose resolver, the engine\'s --dns, is ferry: they see every overlay\'s names (repeatable)', collect, [])
    .option('--dns-ttl-cap <seconds>', 'cached answers are kept at most this long, whatever their TTL (default 3600)', positiveInt)
    .option('--metrics-listen <ip:port>', 'serve Prometheus metrics on GET /metrics there (off by default; a non-loopback address needs --metrics-token)')
    .option('--metrics-token <file>', 'require Authorization: Bearer <the first line of FILE> for /metrics (the file must be mode 600)')
    .addOption(new Option('--iptables [bool]', 'program NAT, published ports and isolation with iptables (default true); =false: ferry never runs iptables, ' +
      'and refuses to publish ports').argParser(boolArg))
    .option('--recover-store', 'start even if the state file is damaged: keep it aside as state.json.damaged-<time> and start from what is readable plus the journal')
    .addOption(new Option('--firewall-backend <backend>', 'nftables (table inet ferry) or iptables (FERRY-* chains); default: nftables when nft and the kernel support it')
      .choices(['nftables', 'iptables']))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'))
    .action(async (opts: {
      pluginName: string, pluginDir: string, stateDir: string, apiSocket?: string, dockerHost?: string,
      defaultAddressPool: string[], reconcileInterval: number, orphanGrace: number, logLevel: string, cluster?: string, advertiseAddr?: string[], hostId?: string, hostTtl?: number, clusterWait?: number, clusterKey?: string, keyRotationInterval?: number, wireguardEndpoint?: string, dns: string[], dnsServer: boolean,
      dnsRateLimit?: string, dnsUdpHelpers: number, dnsUdp?: 'auto' | 'batch' | 'dgram', dnsCacheSize?: number, dnsTtlCap?: number, dnsTtl?: string, dnsEngineClients: string[], metricsListen?: string, metricsToken?: string, iptables?: boolean, recoverStore?: boolean, firewallBackend?: string
    }, cmd: Command) => {
      const { runAgent } = await import('../agent/main.js')
      const globalSocket = cmd.parent?.opts<GlobalOpts>().apiSocket
      await runAgent({ ...opts, apiSocket: opts.apiSocket ?? globalSocket })
    })

  const network = program.command('network').description('inspect ferry networks')
  network.command('ls').description('list networks').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const nets = await api<NetworkView[]>('GET', '/v1/networks')
      if (o.json) { json(nets); return }
      out(table(['NETWORK ID', 'NAME', 'BRIDGE', 'SUBNET', 'GATEWAY', 'ENDPOINTS', 'FLAGS'],
        nets.map((n) => [short(n.id), n.name, n.bridge, n.subnet ?? n.subnet6 ?? '-', n.gateway ?? n.gateway6 ?? '-', String(n.endpoints),
          [n.internal ? 'internal' : '', n.icc ? '' : 'no-icc', n.masquerade ? '' : 'no-masq', n.mtu !== 1500 ? `mtu=${n.mtu}` : ''].filter(Boolean).join(',') || '-'])))
    })
  network.command('inspect').description('show one network as JSON').argument('<network>', 'name, id or id prefix')
    .action(async (name: string) => { json(await api('GET', `/v1/networks/${encodeURIComponent(checkNetworkKey(name))}`)) })

  program.command('endpoint').description('inspect endpoints').command('ls').description('list endpoints')
    .option('--network <network>', 'only this network (name, id or id prefix)').option('--json', 'print JSON')
    .action(async (o: JsonOpt & { network?: string }) => {
      const q = networkQuery(o.network)
      const eps = await api<EndpointView[]>('GET', `/v1/endpoints${q}`)
      if (o.json) { json(eps); return }
      out(table(['ENDPOINT ID', 'CONTAINER', 'NETWORK', 'ADDRESS', 'MAC', 'VETH', 'STATE', 'PORTS'],
        eps.map((e) => [short(e.id), e.container || (e.containerId ? short(e.containerId) : '-'), e.networkName, `${e.address}/${e.prefixLen}`, e.mac,
          e.hostVeth, e.joined ? 'joined' : 'created', e.ports.map(portText).join(', ') || '-'])))
    })

  program.command('port').description('published ports').command('ls').description('list published ports')
    .argument('[target]', 'container name, id or id prefix, or endpoint id or id prefix').option('--json', 'print JSON')
    .action(async (target: string | undefined, o: JsonOpt) => {
      const q = target !== undefined ? `?target=${encodeURIComponent(checkContainerKey(target))}` : ''
      const ports = await api<Array<PortBinding & { endpoint: string, container: string, network: string }>>('GET', `/v1/ports${q}`)
      if (o.json) { json(ports); return }
      out(table(['CONTAINER', 'ENDPOINT', 'NETWORK', 'PROTO', 'HOST', 'CONTAINER PORT'],
        ports.map((p) => [p.container || '-', short(p.endpoint), p.network, p.proto,
          sideText(p, 'host'), sideText(p, 'container')])))
    })

  interface WireGuardView {
    mode: string, device: string, active: boolean, tunnel: string, port: number,
    peers: Array<{ hostId: string, endpoint: string, tunnel: string, handshakeAgeS?: number, rxBytes: number, txBytes: number, encrypted: boolean }>
  }
  const handshakeText = (age: number | undefined): string => (age === undefined ? 'never' : `${age}s ago`)
  const wireGuardText = (w: WireGuardView): string =>
    `\nwireguard: ${w.mode} (wireguard-go), device ${w.device} ${w.active ? 'up' : 'down: no encrypted overlay on this host'}, tunnel ${w.tunnel}, port ${w.port}\n` +
    table(['PEER', 'ENDPOINT', 'TUNNEL', 'LAST HANDSHAKE', 'RX BYTES', 'TX BYTES', 'ENCRYPTED'], w.peers.map((p) => [
      p.hostId, p.endpoint, p.tunnel, handshakeText(p.handshakeAgeS), String(p.rxBytes), String(p.txBytes), p.encrypted ? 'yes' : 'no (no session)']))
  const cluster = program.command('cluster').description('the multi-host cluster')
  cluster.command('status').description('hosts, VTEPs, last heartbeat, revision').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const s = await api<{ state: string, url: string, hostId: string, vtep: string, vtep2?: string, revision?: number, lastError?: string, clusterKey?: boolean,
        rejected?: Array<{ kind: string, reason: string, count: number }>, hosts?: Array<{ hostId: string, vtep: string, vtep2?: string, version: string, lastHeartbeat: number, features?: string[] }>,
        wireguard?: WireGuardView, compat?: { sentence: string }, peers?: { unreachableHosts?: Array<{ hostId: string, detail: string }> } }>('GET', '/v1/cluster')
      if (o.json) { json(s); return }
      out(`cluster:  ${s.url} (${s.state}${s.lastError ? `: ${s.lastError}` : ''})\nthis host: ${s.hostId} vtep ${s.vtep}${s.vtep2 !== undefined ? `, ${s.vtep2}` : ''}\nrevision: ${s.revision ?? '-'}\n`)
      out(`cluster key: ${clusterKeyText(s.clusterKey)}\nrefused:  ${(s.rejected ?? []).map((r) => `${r.kind} ${r.reason} ${r.count}`).join(', ') || 'nothing'}\n`)
      out(`versions: ${s.compat?.sentence ?? 'not known'}\n\n`)
      out(table(['HOST', 'VTEP', 'VERSION', 'FEATURES', 'LAST HEARTBEAT'], (s.hosts ?? []).map((h) => [
        h.hostId + (h.hostId === s.hostId ? ' (this host)' : ''), h.vtep2 === undefined ? h.vtep : `${h.vtep}, ${h.vtep2}`, h.version,
        h.features === undefined ? '- (older)' : h.features.join(',') || '-', `${((Date.now() - h.lastHeartbeat) / 1000).toFixed(1)}s ago`])))
      for (const u of s.peers?.unreachableHosts ?? []) out(`not reachable: ${u.detail}\n`)
      if (s.wireguard) out(wireGuardText(s.wireguard))
    })
  cluster.command('rotate-key').description('a new WireGuard key for this host; running connections keep flowing (docs/encryption.md)').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const r = await api<{ publicKey: string, device: string, port: number, switched: string[], late: string[], overlapMs: number }>('POST', '/v1/cluster/rotate-key', 120_000)
      if (o.json) { json(r); return }
      out(`new public key ${r.publicKey} on ${r.device}, port ${r.port}\n` +
        `peers on the new key: ${r.switched.join(', ') || 'none'}${r.late.length > 0 ? `; not yet (they switch when they program it): ${r.late.join(', ')}` : ''}\n` +
        `both keys accepted for ${r.overlapMs} ms\n`)
    })
  program.command('peers').description('remote endpoints of the overlays, as programmed in the kernel and as known in Redis')
    .option('--network <network>', 'only this overlay network (name, id or id prefix)').option('--json', 'print JSON')
    .action(async (o: JsonOpt & { network?: string }) => {
      const q = networkQuery(o.network)
      const reports = await api<Array<{ network: string, overlay: string, vni: number, differences: number, encrypted: boolean, unreachable?: string[],
        rows: Array<{ ip: string, mac: string, vtep?: string, hostId?: string, status: string, detail?: string,
          wireguard?: { handshakeAgeS?: number, rxBytes: number, txBytes: number, encrypted: boolean } }> }>>('GET', `/v1/peers${q}`)
      if (o.json) { json(reports); return }
      for (const r of reports) {
        out(`${r.network} (overlay ${r.overlay}, vni ${r.vni}, ${r.encrypted ? 'encrypted: WireGuard' : 'plain'}): ${r.differences === 0 ? 'kernel matches Redis' : `${r.differences} difference(s)`}\n`)
        out(table(['IP', 'MAC', 'HOST', 'VTEP', 'STATUS', 'ENCRYPTED', 'LAST HANDSHAKE', 'RX BYTES', 'TX BYTES'], r.rows.map((p) => {
          const w = p.wireguard
          const enc = !r.encrypted ? 'no (plain overlay)' : w?.encrypted === true ? 'yes' : 'no session'
          return [p.ip, p.mac, p.hostId ?? '-', p.vtep ?? '-', p.status + (p.detail ? ` (${p.detail})` : ''), enc,
            w ? handshakeText(w.handshakeAgeS) : '-', w ? String(w.rxBytes) : '-', w ? String(w.txBytes) : '-']
        })))
        // A mixed-family cluster: hosts with endpoints here that this host shares no underlay family with.
        for (const u of r.unreachable ?? []) out(`not reachable: ${u}\n`)
      }
    })

  const dns = program.command('dns').description("ferry's DNS records")
  dns.command('ls').description('list the records').option('--network <network>', 'only this network (name, id or id prefix)').option('--json', 'print JSON')
    .action(async (o: JsonOpt & { network?: string }) => {
      const q = networkQuery(o.network)
      const recs = await api<Array<{ network: string, name: string, aliases: string[], ip: string, ip6?: string }>>('GET', `/v1/dns/records${q}`)
      if (o.json) { json(recs); return }
      out(table(['NETWORK', 'NAME', 'ADDRESS', 'ALIASES'], recs.map((r) => [r.network, r.name, [r.ip, r.ip6].filter((a) => a !== undefined && a !== '').join(', '), r.aliases.join(', ') || '-'])))
    })
  dns.command('query').description('what a container on NETWORK would get for NAME').argument('<name>')
    .requiredOption('--network <network>', 'the asking container\'s network')
    .addOption(new Option('--type <type>', 'record type').choices(['A', 'AAAA', 'PTR']).default('A'))
    .option('--json', 'print JSON')
    .action(async (name: string, o: JsonOpt & { network: string, type: string }) => {
      const r = await api<{ rcode: string, answers: Array<{ name: string, type: string, data: unknown }> }>('GET',
        `/v1/dns/query?name=${encodeURIComponent(name)}&type=${o.type}&network=${encodeURIComponent(checkNetworkKey(o.network))}`)
      if (o.json) { json(r); return }
      if (r.answers.length === 0) { out(`${name}: no ferry record (${r.rcode}); a container would get the upstream's answer\n`); return }
      out(r.answers.map((a) => `${a.name}\t${a.type}\t${String(a.data)}`).join('\n') + '\n')
    })

  dns.command('cache').description('the cache of forwarded answers: size, hits, misses; --flush empties it')
    .option('--flush', 'empty the cache first').option('--json', 'print JSON')
    .action(async (o: JsonOpt & { flush?: boolean }) => {
      const c = await api<{ entries: number, bytes: number, hits: number, misses: number, evictions: number, stale: number, prefetches: number, maxEntries: number, maxBytes: number, flushed: number,
        upstreams?: Array<{ upstream: string, srttMs?: number, misses: number, downUntil: number }> }>(
        o.flush === true ? 'DELETE' : 'GET', '/v1/dns/cache')
      if (o.json) { json(c); return }
      const asked = c.hits + c.misses
      if (o.flush === true) out(`flushed ${c.flushed} entries\n`)
      out(`${c.entries}/${c.maxEntries} entries, ${(c.bytes / 1024).toFixed(1)}/${(c.maxBytes / 1024).toFixed(0)} KiB; ` +
        `${c.hits} hits, ${c.misses} misses (${asked === 0 ? '-' : `${(100 * c.hits / asked).toFixed(1)}%`} hit rate), ` +
        `${c.evictions} evictions, ${c.prefetches} prefetches, ${c.stale} served stale\n`)
      if (c.upstreams !== undefined && c.upstreams.length > 0) {
        out(table(['UPSTREAM', 'SRTT', 'STATE'], c.upstreams.map((u) => [u.upstream, u.srttMs === undefined ? '-' : `${u.srttMs.toFixed(1)} ms`,
          u.downUntil > 0 ? `down until ${new Date(u.downUntil).toISOString()}` : u.misses > 0 ? `${u.misses} missed` : 'up'])))
      }
    })

  program.command('status').description("the agent's version, uptime, counts and store health").option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const s = await api<Record<string, unknown> & { uptimeSeconds: number, store: Record<string, unknown>, reconcile: Record<string, unknown>, firewall?: { iptables: boolean, backend?: string, reason?: string } }>('GET', '/v1/status')
      if (o.json) { json(s); return }
      const rows: Array<[string, string]> = [
        ['version', String(s.version)], ['status', String(s.status)], ['pid', String(s.pid)], ['uptime', duration(s.uptimeSeconds)],
        ['plugin socket', String(s.pluginSocket)], ['api socket', String(s.apiSocket)], ['state dir', String(s.stateDir)],
        ['networks', String(s.networks)], ['endpoints', String(s.endpoints)], ['pools', String(s.pools)], ['published ports', String(s.publishedPorts)],
        ['store', `${storeLoss(s.store)}${s.store.healthy ? 'healthy' : 'UNHEALTHY'}, ${String(s.store.writes)} writes (${String(s.store.journalWrites ?? 0)} journaled, ${String(s.store.snapshots ?? 0)} snapshots), last ${String(s.store.lastWriteMs)} ms`],
        ['reconcile', `${String(s.reconcile.runs)} runs, ${String(s.reconcile.repairs)} repairs${s.reconcile.lastError ? `, last error: ${String(s.reconcile.lastError)}` : ''}`],
        ['firewall', firewallText(s.firewall)],
        ...(s.cluster !== undefined ? [['cluster key', clusterKeyText((s.cluster as { clusterKey?: boolean }).clusterKey)] as [string, string]] : []),
      ]
      out(rows.map(([k, v]) => `${(k + ':').padEnd(17)}${v}`).join('\n') + '\n')
    })

  program.command('reconcile').description('check the kernel against the store now and repair it').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const r = await api<{ links: number, firewall: boolean }>('POST', '/v1/reconcile')
      if (o.json) { json(r); return }
      out(r.links === 0 && !r.firewall ? 'nothing to repair\n' : `repaired ${r.links} link operation(s)${r.firewall ? ' and the firewall' : ''}\n`)
    })
  registerRuntimeCommands(program)
  registerOpsCommands(program)
  registerGraphCommand(program)
  registerTraceCommand(program)
  return program
}

export async function main (argv: string[]): Promise<void> {
  const program = buildCli()
  program.exitOverride()
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) })
  try {
    await program.parseAsync(argv)
  } catch (err) {
    const e = err as { code?: string, exitCode?: number }
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      process.exitCode = e.exitCode ?? 2
      return
    }
    const ferr = toFerryError(err)
    process.stderr.write(`ferry: ${ferr.message}\n`)
    process.exitCode = exitCode(ferr.category)
    if (process.env.FERRY_DEBUG && !(err instanceof FerryError)) console.error(err)
  }
}
