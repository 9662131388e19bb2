/**
 * `ferry doctor`'s verdicts, as pure functions of the facts the probes gathered
 * (src/doctor/probes.ts): each returns one result, printed as one line
 *
 *   ok|warn|fail <check>: <what> — <how to fix>
 *
 * `fail` means ferry cannot work as asked; `warn` means a feature is degraded
 * or a setting is risky. The exit code is 1 when any check fails.
 */
import type { MtuProbeResult } from './mtu.js'

export type CheckStatus = 'ok' | 'warn' | 'fail'

export interface CheckResult {
  status: CheckStatus
  /** Stable dotted name, e.g. `kernel.vxlan`, `engine.reachable`. */
  check: string
  what: string
  /** How to fix it (warn/fail), or a hint. */
  fix?: string
}

export function ok (check: string, what: string, fix?: string): CheckResult { return fix === undefined ? { status: 'ok', check, what } : { status: 'ok', check, what, fix } }
export function warn (check: string, what: string, fix: string): CheckResult { return { status: 'warn', check, what, fix } }
export function fail (check: string, what: string, fix: string): CheckResult { return { status: 'fail', check, what, fix } }

/** One line, without a newline; messages are made single-line. */
export function formatResult (r: CheckResult): string {
  const one = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim()
  return `${r.status.padEnd(4)} ${r.check}: ${one(r.what)}${r.fix === undefined ? '' : ` — ${one(r.fix)}`}`
}

export function summarize (results: readonly CheckResult[]): { ok: number, warn: number, fail: number } {
  const n = { ok: 0, warn: 0, fail: 0 }
  for (const r of results) n[r.status]++
  return n
}

export function formatReport (results: readonly CheckResult[]): string {
  const n = summarize(results)
  return [...results.map(formatResult), '', `${n.ok} ok, ${n.warn} warnings, ${n.fail} failures`].join('\n') + '\n'
}

export function doctorExitCode (results: readonly CheckResult[]): 0 | 1 {
  return results.some((r) => r.status === 'fail') ? 1 : 0
}

// ---- kernel ----

/** The kernel module behind each link kind the agent creates. */
const LINK_MODULES = { bridge: 'bridge', veth: 'veth', vxlan: 'vxlan' } as const
export type ProbedLink = keyof typeof LINK_MODULES

/** `error` is the failure of creating a throwaway device of that kind in a scratch namespace. */
export function judgeLinkKind (kind: ProbedLink, error: string | undefined): CheckResult {
  const check = `kernel.${kind}`
  if (error === undefined) return ok(check, `can create ${kind} devices`)
  const needed = kind === 'vxlan' ? ' (needed for ferry.overlay networks only)' : ''
  return fail(check, `cannot create a ${kind} device${needed}: ${error}`,
    `load the module (modprobe ${LINK_MODULES[kind]}) and list it in /etc/modules-load.d/ferry.conf; a kernel without CONFIG_${kind.toUpperCase()} cannot run ferry`)
}

export function judgeBrNetfilter (present: boolean): CheckResult {
  if (present) return ok('kernel.br_netfilter', 'loaded (/proc/sys/net/bridge exists)')
  return warn('kernel.br_netfilter', 'not loaded: iptables does not see traffic between containers of one bridge, so networks with enable_icc=false cannot block it',
    'modprobe br_netfilter, and add br_netfilter to /etc/modules-load.d/ferry.conf')
}

// ---- sysctls ----

export function judgeIpForward (value: string | undefined): CheckResult {
  const check = 'sysctl.ip_forward'
  if (value === '1') return ok(check, 'net.ipv4.ip_forward = 1')
  return warn(check, `net.ipv4.ip_forward = ${value ?? 'unreadable'}: containers cannot reach other networks or the outside`,
    'the agent sets it to 1 when it starts; if it is running, something reset it: find the sysctl.d file or service that writes 0, then restart the agent')
}

/**
 * With IPv6 forwarding on (ferry turns it on with the first dual-stack network), interfaces with
 * accept_ra=1 ignore router advertisements (docs/ipv6.md). `forwarding` undefined: no IPv6 in the kernel.
 */
export function judgeIpv6AcceptRa (forwarding: string | undefined, affected: readonly string[]): CheckResult {
  const check = 'sysctl.accept_ra'
  if (forwarding === undefined) return ok(check, 'no IPv6 in this kernel')
  if (forwarding !== '1') return ok(check, 'net.ipv6.conf.all.forwarding = 0: router advertisements are accepted as configured')
  if (affected.length === 0) return ok(check, 'IPv6 forwarding on; no interface with accept_ra=1')
  return warn(check, `IPv6 forwarding is on, so ${affected.join(', ')} (accept_ra=1) ignore router advertisements: an address or route they take from RAs is lost when it expires`,
    'set net.ipv6.conf.<interface>.accept_ra=2 on those that need RAs, in /etc/sysctl.d/90-ferry.conf (docs/ipv6.md)')
}

/** Only asked when br_netfilter is loaded. */
export function judgeBridgeNfCall (value: string | undefined): CheckResult {
  const check = 'sysctl.bridge-nf-call-iptables'
  if (value === '1') return ok(check, 'net.bridge.bridge-nf-call-iptables = 1')
  return warn(check, `net.bridge.bridge-nf-call-iptables = ${value ?? 'unreadable'}: enable_icc=false does not block traffic inside a network`,
    'sysctl -w net.bridge.bridge-nf-call-iptables=1 and persist it in /etc/sysctl.d/90-ferry.conf')
}

// ---- iptables ----

export interface IptablesFacts {
  /** `iptables --version` output; undefined when iptables is missing. */
  version?: string
  /** Rule counts (`-A` lines) per backend; undefined when that backend's save tool is missing. */
  rules: { nft?: number, legacy?: number }
  /** Lines of ferry (its chains, the jumps into them, its rules) in either backend; undefined when none could be read. */
  ferryLines?: number
  /** The filter table's FORWARD policy (ACCEPT, DROP); undefined when it could not be read. */
  forwardPolicy?: string
}

export function iptablesBackend (version: string): 'nft' | 'legacy' | 'unknown' {
  if (/\(nf_tables\)/.test(version)) return 'nft'
  if (/\(legacy\)/.test(version)) return 'legacy'
  return 'unknown'
}

/** `agentIptables`: the agent's --iptables, when it answered; an agent with iptables off does not need the program. */
export function judgeIptables (f: IptablesFacts, agentIptables?: boolean): CheckResult[] {
  if (f.version === undefined && agentIptables === false) {
    return [ok('iptables.backend', 'iptables is not installed, and the agent runs with --iptables=false: it does not use it')]
  }
  if (f.version === undefined) {
    return [fail('iptables.backend', 'iptables is not installed: ferry programs NAT and isolation with iptables-restore', 'apt-get install iptables (or your distribution\'s package)')]
  }
  const backend = iptablesBackend(f.version)
  const out: CheckResult[] = [backend === 'unknown'
    ? warn('iptables.backend', `cannot tell the backend from "${f.version.trim()}"`, 'use iptables 1.8 or later, which prints (nf_tables) or (legacy)')
    : ok('iptables.backend', `${f.version.trim()}`)]
  const other = backend === 'nft' ? 'legacy' : backend === 'legacy' ? 'nft' : undefined
  const otherRules = other === undefined ? undefined : f.rules[other]
  if (other !== undefined && otherRules !== undefined && otherRules > 0) {
    out.push(fail('iptables.mixed', `the ${other} backend also holds ${otherRules} rule(s) while iptables uses ${backend}: the kernel evaluates both, and a DROP in either drops ferry's traffic`,
      `make Docker and every other firewall tool use the ${backend} backend (update-alternatives --config iptables), then clear the ${other} tables (iptables-${other}-save shows them)`))
  } else {
    out.push(ok('iptables.mixed', `only the ${backend} backend has rules`))
  }
  return out
}

// ---- the Docker engine ----

export interface EngineFacts {
  dockerHost: string
  /** Why /version failed; undefined when it answered. */
  error?: string
  version?: string
  apiVersion?: string
  liveRestore?: boolean
  /** Whether a DOCKER-USER or DOCKER chain exists in the filter table (the engine runs with --iptables=true). */
  managesIptables?: boolean
  /** The engine's networks of ferry's driver: name, the driver name they were created with (`ferry`, or a managed plugin's `myferry:latest`), and their IPAM driver. */
  networks?: Array<{ name: string, driver?: string, ipamDriver: string }>
}

export function judgeEngine (f: EngineFacts, pluginName: string): CheckResult[] {
  if (f.error !== undefined || f.version === undefined) {
    return [fail('engine.reachable', `no Docker engine answers at ${f.dockerHost}: ${f.error ?? 'no version'}`,
      'start it (systemctl start docker), or point DOCKER_HOST / --docker-host at it')]
  }
  const out: CheckResult[] = [ok('engine.reachable', `Docker ${f.version} (API ${f.apiVersion ?? '?'}) at ${f.dockerHost}`)]
  if (f.managesIptables !== undefined) {
    out.push(ok('engine.iptables', f.managesIptables
      ? 'the engine manages iptables (--iptables=true): its FORWARD policy is DROP and ferry accepts its own networks\' traffic in FERRY-FORWARD'
      : 'the engine runs with --iptables=false: ferry still programs its own networks; the engine\'s bridge networks get no NAT'))
  }
  if (f.liveRestore !== undefined) {
    out.push(f.liveRestore
      ? ok('engine.live-restore', 'on: containers keep running (and keep their ferry network) while the engine restarts')
      : ok('engine.live-restore', 'off: containers stop when the engine restarts', 'set "live-restore": true in /etc/docker/daemon.json to keep them running'))
  }
  if (f.networks !== undefined) {
    const ours = (name: string, n: { driver?: string }): boolean => name === pluginName || name === `${pluginName}:latest` || name === n.driver
    const wrong = f.networks.filter((n) => !ours(n.ipamDriver, n))
    if (wrong.length > 0) {
      out.push(fail('engine.networks', `${wrong.map((n) => n.name).join(', ')}: created with the ${pluginName} driver but IPAM ${wrong.map((n) => n.ipamDriver).join(', ')}, so containers on them cannot start`,
        `recreate them with --ipam-driver ${pluginName}`))
    } else if (f.networks.length === 0) {
      out.push(ok('engine.networks', `no ${pluginName} network yet`, `docker network create -d ${pluginName} --ipam-driver ${pluginName} NAME`))
    } else {
      out.push(ok('engine.networks', `${f.networks.length} ${pluginName} network(s): ${f.networks.map((n) => n.name).join(', ')}`))
    }
  }
  return out
}

/** The engine's own `--dns` (the name servers its containers forward to): where it is set, and what it says. */
export interface EngineDnsFacts {
  /** dockerd's process, when one serving `dockerHost` was found. */
  pid?: number
  /** The daemon.json read (dockerd's --config-file, default /etc/docker/daemon.json). */
  configFile?: string
  /** `--dns` on dockerd's command line, then `"dns"` of its daemon.json. */
  servers: string[]
  /** What could not be read (missing files are not errors: they set nothing). */
  errors: string[]
}

/** What ferry's DNS listens on, as its agent says: undefined `enabled` when it could not be asked. */
export interface FerryDnsFacts {
  enabled?: boolean
  /** Gateway addresses of ferry's networks (where the server listens, port 53), overlays' first. */
  addresses: string[]
  overlays: number
}

/**
 * Whether the engine's containers forward what its resolver does not know to ferry (its `--dns` is one of
 * ferry's listen addresses): needed for names of other hosts' overlay containers, and for any overlay name
 * from a container on one of the engine's own networks (docs/dns.md).
 */
export function judgeEngineDns (engine: EngineDnsFacts, ferry: FerryDnsFacts): CheckResult {
  const check = 'engine.dns'
  if (ferry.enabled === false) return ok(check, 'the agent runs with --no-dns-server: the engine has no ferry resolver to point at')
  if (ferry.enabled === undefined || ferry.addresses.length === 0) return ok(check, 'ferry\'s DNS listens on no address yet (no ferry network)')
  const mine = engine.servers.filter((s) => ferry.addresses.includes(s))
  const where = engine.pid === undefined ? 'the engine' : `dockerd (pid ${engine.pid}${engine.configFile === undefined ? '' : `, ${engine.configFile}`})`
  const cannot = engine.errors.length > 0 ? ` (could not read everything: ${engine.errors.join('; ')})` : ''
  const how = `add "dns": ["${ferry.addresses[0]!}"] to the engine's daemon.json (or dockerd --dns ${ferry.addresses[0]!}) and restart it; ` +
    'give the agent --dns-engine-clients with the subnets of the engine\'s own networks whose containers should see overlay names (docs/dns.md)'
  if (mine.length > 0) {
    return ok(check, `${where} forwards its containers' other names to ferry (${mine.join(', ')}): names of other hosts' overlay containers resolve through it`,
      'containers on the engine\'s own networks are answered only from the prefixes given to the agent\'s --dns-engine-clients')
  }
  const what = engine.servers.length > 0
    ? `${where} forwards its containers' other names to ${engine.servers.join(', ')}, none of ferry's addresses (${ferry.addresses.join(', ')})${cannot}`
    : `${where} sets no --dns: its containers forward to the host's resolvers, not to ferry${cannot}`
  if (ferry.overlays === 0) return ok(check, `${what}; no overlay network here, so nothing is missed`, how)
  return warn(check, `${what}: names of other hosts' overlay containers do not resolve from Docker containers`, how)
}

// ---- the agent ----

export interface SocketFacts {
  path: string
  /** Why it could not be examined (missing…); undefined when stat worked. */
  error?: string
  isSocket?: boolean
  mode?: number
  uid?: number
}

/** A socket the agent serves must exist and be root-only (0600, owned by root). */
export function judgeSocket (check: string, what: string, s: SocketFacts): CheckResult {
  if (s.error !== undefined) return fail(check, `${what} ${s.path}: ${s.error}`, 'start the agent (systemctl start ferry), or give the paths it uses (--plugin-name/--plugin-dir, --api-socket)')
  if (s.isSocket !== true) return fail(check, `${s.path} is not a socket`, `remove it and restart the agent (systemctl restart ferry)`)
  const mode = (s.mode ?? 0) & 0o777
  if ((mode & 0o077) !== 0 || s.uid !== 0) {
    return fail(check, `${what} ${s.path} has mode ${mode.toString(8)} and owner uid ${s.uid ?? '?'}: anyone with access can change the host's networking`,
      'restart the agent (it makes its sockets 0600, root-owned); never chmod them open: give admins sudo instead')
  }
  return ok(check, `${what} ${s.path} is root-only (0600)`)
}

export interface AgentFacts {
  apiSocket: string
  error?: string
  status?: {
    version?: unknown, status?: unknown, uptimeSeconds?: unknown, networks?: unknown, endpoints?: unknown, reconcile?: { lastError?: unknown },
    firewall?: { iptables?: unknown, backend?: unknown, reason?: unknown }, store?: { loss?: { summary?: unknown, kept?: unknown, keys?: unknown } }
  }
}

/** `iptables`: what iptables holds (IptablesFacts), judged only when the agent runs with --iptables=false. */
export function judgeAgent (f: AgentFacts, iptables: Pick<IptablesFacts, 'ferryLines' | 'forwardPolicy'> = {}): CheckResult[] {
  if (f.error !== undefined || f.status === undefined) {
    return [fail('agent.api', `no agent answers on ${f.apiSocket}: ${f.error ?? 'no status'}`, 'start it (systemctl start ferry, or ferry agent), or point --api-socket / FERRY_API_SOCKET at its socket')]
  }
  const s = f.status
  const out = [ok('agent.api', `ferry ${String(s.version)} ${String(s.status)}, up ${String(s.uptimeSeconds)} s, ${String(s.networks)} network(s), ${String(s.endpoints)} endpoint(s)`)]
  const err = s.reconcile?.lastError
  if (typeof err === 'string' && err !== '') {
    out.push(warn('agent.reconcile', `the last reconcile failed: ${err}`, 'read the agent log (journalctl -u ferry), fix the cause, then ferry reconcile'))
  }
  const loss = judgeStoreLoss(s.store?.loss)
  if (loss) out.push(loss)
  if (s.firewall?.iptables !== false && typeof s.firewall?.backend === 'string') {
    const where = s.firewall.backend === 'nftables' ? 'table inet ferry' : 'FERRY-* chains'
    out.push(ok('agent.firewall', `firewall backend ${s.firewall.backend} (${where}): ${String(s.firewall.reason ?? '')}`))
  }
  if (s.firewall?.iptables === false) {
    out.push(judgeNoIptables(iptables.ferryLines ?? 0))
    if (iptables.forwardPolicy === 'DROP') out.push(forwardDropsWithoutIptables())
  }
  return out
}

/**
 * The agent's store lost acknowledged changes (a damaged journal line or state
 * file, kept aside): some containers may have lost their record, their published
 * ports or their DNS names. Reconcile keeps what it cannot explain meanwhile.
 */
export function judgeStoreLoss (loss: { summary?: unknown, kept?: unknown, keys?: unknown } | undefined): CheckResult | undefined {
  if (loss === undefined || typeof loss.summary !== 'string') return undefined
  const kept = Array.isArray(loss.kept) ? loss.kept.filter((k): k is string => typeof k === 'string') : []
  const keys = Array.isArray(loss.keys) ? loss.keys.filter((k): k is string => typeof k === 'string') : []
  return warn('agent.store', `the store was ${loss.summary}` + (keys.length > 0 ? ` (the lost changes touched ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', …' : ''})` : ''),
    'find the cause first (dmesg for disk or filesystem errors, the agent log for the damaged lines); check the containers of the networks above with ' +
    'ferry endpoint ls and docker network inspect, restart or reconnect the ones whose network is missing, then ferry reconcile; ' +
    `while the damaged file is in the state directory the agent keeps ferry links it cannot explain and leaves the firewall as it is, so move it elsewhere (${kept.join(', ') || 'the state directory'}) once all is well`)
}

/**
 * A FORWARD policy of DROP (the engine's --iptables=true sets it) with an agent that accepts nothing:
 * with br_netfilter even containers of one network cannot talk (seen in test/e2e/no-iptables.test.ts).
 */
export function forwardDropsWithoutIptables (): CheckResult {
  return warn('agent.forward', 'the FORWARD policy is DROP (the engine\'s --iptables=true sets it), and the agent, with --iptables=false, accepts nothing: ' +
    'containers of ferry networks cannot reach each other or the outside',
  'accept the traffic of ferry\'s bridges yourself, e.g. iptables -I DOCKER-USER -i fy-+ -j ACCEPT and -o fy-+ -j ACCEPT ' +
    '(bridges named with com.docker.network.bridge.name need their own rules), or run the engine with --iptables=false too')
}

/** An agent with --iptables=false leaves an earlier run's rules alone (as dockerd does): they still act, and nothing keeps them right. */
export function judgeNoIptables (ferryLines: number): CheckResult {
  const check = 'agent.firewall'
  if (ferryLines === 0) return ok(check, 'the agent runs with --iptables=false: no NAT, no published ports and no isolation from ferry, and iptables holds nothing of ferry')
  return warn(check, `the agent runs with --iptables=false, but iptables still holds ${ferryLines} line(s) of ferry from a run with iptables on: ` +
    'they still translate and filter traffic, and nothing updates them as containers come and go',
  'remove them by hand: iptables-save | grep -i ferry lists them; delete the rules that jump to FERRY-* chains (iptables -t TABLE -D CHAIN …), ' +
    'then flush and delete the FERRY-* chains (iptables -t TABLE -F NAME; iptables -t TABLE -X NAME); FERRY-USER holds your own rules')
}

/** The plugin socket must answer the way the engine asks (NetworkDriver.GetCapabilities). */
export function judgePluginAnswer (path: string, error: string | undefined): CheckResult {
  if (error === undefined) return ok('agent.plugin', `${path} answers the engine's NetworkDriver.GetCapabilities`)
  return fail('agent.plugin', `${path} does not answer the engine: ${error}`,
    'the engine finds plugins by this path: run the agent with the same --plugin-dir and --plugin-name, and before docker.service (ferry install)')
}

// ---- Redis and clocks ----

export interface RedisFacts {
  url: string
  error?: string
  version?: string
  /** Median PING round trip (ms). */
  latencyMs?: number
}

function versionAtLeast (v: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = v.split('.').map(Number)
  return a > major || (a === major && b >= minor)
}

export function judgeRedis (f: RedisFacts): CheckResult[] {
  if (f.error !== undefined || f.version === undefined) {
    return [fail('redis.reachable', `cannot reach ${f.url}: ${f.error ?? 'no version'}`, 'check the address, the password (redis://:PASSWORD@host:port), TLS (rediss://) and the firewall between the hosts')]
  }
  const out: CheckResult[] = []
  if (!versionAtLeast(f.version, 5, 0)) {
    out.push(fail('redis.version', `Redis ${f.version} at ${f.url}: ferry's scripts need Redis 5.0 or later (effects replication)`, 'upgrade Redis'))
  } else if (!versionAtLeast(f.version, 7, 0)) {
    out.push(warn('redis.version', `Redis ${f.version} at ${f.url}: ferry is tested with Redis 7`, 'upgrade to Redis 7 when you can'))
  } else {
    out.push(ok('redis.version', `Redis ${f.version} at ${f.url}`))
  }
  const ms = f.latencyMs ?? 0
  const lat = `round trip ${ms.toFixed(2)} ms`
  if (ms > 100) out.push(fail('redis.latency', `${lat}: every network and container change waits for Redis`, 'run Redis close to the hosts (same site), or fix the network path'))
  else if (ms > 10) out.push(warn('redis.latency', `${lat}: container starts on overlays are slowed`, 'run Redis closer to the hosts'))
  else out.push(ok('redis.latency', lat))
  return out
}

/**
 * Offset of this host's clock from Redis' (ms, positive = this host is ahead).
 * ferry's heartbeats and TTLs use Redis' clock, so skew does not break
 * membership; it breaks TLS certificate checks and the reading of logs.
 */
export function judgeClockSkew (offsetMs: number | undefined, rttMs: number): CheckResult {
  const check = 'clock.skew'
  if (offsetMs === undefined) return warn(check, 'could not compare this host\'s clock with Redis\'', 'check that Redis answers TIME')
  const s = Math.abs(offsetMs) / 1000
  const what = `this host's clock is ${s.toFixed(3)} s ${offsetMs >= 0 ? 'ahead of' : 'behind'} Redis' (±${(rttMs / 2000).toFixed(3)} s)`
  if (s > 60) return fail(check, `${what}: TLS certificate checks and the order of events in logs go wrong`, 'run an NTP client on every host and on Redis (systemd-timesyncd, chrony)')
  if (s > 1) return warn(check, `${what}: logs of different hosts no longer line up`, 'run an NTP client on every host and on Redis (systemd-timesyncd, chrony)')
  return ok(check, what)
}

/** Offset of the local clock from a remote TIME read between `sentMs` and `receivedMs`, assuming a symmetric path. */
export function clockOffset (remoteMs: number, sentMs: number, receivedMs: number): number {
  return (sentMs + receivedMs) / 2 - remoteMs
}

/** Which WireGuard implementation encrypted overlays (-o ferry.encrypt=wireguard) use, and what that costs. */
export function judgeWireGuard (f: { kernelModule: boolean, userspace: string | undefined }): CheckResult {
  if (f.kernelModule) {
    return ok('wireguard', `encrypted overlays use the kernel's WireGuard module (configured over generic netlink)${f.userspace !== undefined ? `; ${f.userspace} is installed but not needed` : ''}`)
  }
  if (f.userspace !== undefined) {
    return ok('wireguard', `encrypted overlays use userspace WireGuard (${f.userspace}): the kernel has no WireGuard module`,
      'userspace WireGuard copies every packet through a TUN device and across a context switch, and encrypts on one core per device: ' +
      'expect a fraction of the kernel module\'s throughput and a higher CPU cost per byte (docs/encryption.md, Figures); load the module (modprobe wireguard) where the kernel has it and restart the agent')
  }
  return warn('wireguard', 'no WireGuard kernel module and no wireguard-go: encrypted overlays are refused',
    'modprobe wireguard (where the kernel has the module), or apt-get install wireguard-go')
}

/**
 * A mixed-family cluster (hosts with IPv4-only, IPv6-only and both VTEPs): the hosts this host shares
 * no underlay family with, whose containers this host's overlays cannot reach (the agent's own list).
 */
export function judgeFamilies (unreachable: ReadonlyArray<{ hostId: string, detail: string }>): CheckResult {
  if (unreachable.length === 0) return ok('overlay.families', 'every other host of the cluster shares an underlay address family with this one')
  return warn('overlay.families', `${unreachable.map((u) => u.detail).join('; ')}: overlay containers here and there cannot reach each other`,
    'give one of the two hosts a VTEP of the other\'s family (--advertise-addr given twice: one IPv4, one IPv6)')
}

/** One verdict per peer host and path of the full-size probes (src/doctor/mtu.ts). */
export function judgeFullSize (results: readonly MtuProbeResult[]): CheckResult[] {
  return results.map((r) => {
    const check = r.path === 'underlay' ? 'overlay.mtu' : 'wireguard.mtu'
    const via = r.path === 'underlay' ? `over the underlay to ${r.target}` : `through WireGuard to its tunnel address ${r.target}`
    const overlay = r.path === 'underlay' ? 'plain overlays\'' : 'encrypted overlays\''
    if (r.error !== undefined) return warn(check, `cannot send full-size packets to host ${r.hostId}: ${r.error}`, 'apt-get install iputils-ping')
    if (!r.reachable) {
      return warn(check, `host ${r.hostId} does not answer ping ${via}: the path's MTU could not be checked`,
        r.path === 'underlay' ? 'let ICMP echo through between the hosts' : 'check `ferry cluster status`: the peer needs a WireGuard handshake')
    }
    if (r.passed) return ok(check, `full-size packets (${r.size} bytes, DF set) reach host ${r.hostId} ${via}: the ${overlay} ${r.overlayMtu}-byte packets get through`)
    const seen = r.reportedMtu !== undefined ? ` (the path reported an MTU of ${r.reportedMtu})` : ' (no error came back: they are dropped silently)'
    return fail(check, `packets of ${r.size} bytes with DF set are lost ${via} of host ${r.hostId} while small ones pass${seen}: ` +
      `the ${overlay} largest packets to that host are blackholed, so its connections stall once they send a full segment`,
    `give every link between the hosts an MTU of at least ${r.underlayMtu}, ` +
      'or lower the MTU of this host\'s underlay interface to the path\'s (the overlays follow it: plain = underlay - 50, encrypted = underlay - 110, on IPv4)')
  })
}

/** Whether `tc` can copy packets to a second device (clsact + mirred), which a WireGuard key rotation needs. */
export function judgeTc (error: string | undefined): CheckResult {
  if (error === undefined) return ok('wireguard.tc', 'tc can add a clsact qdisc and a mirred mirror action (a key rotation copies what the old WireGuard device sends to the new one)')
  return warn('wireguard.tc', `tc cannot mirror packets (${error}): a WireGuard key rotation (ferry cluster rotate-key, --key-rotation-interval) fails and the old key stays`,
    'apt-get install iproute2, and a kernel with sch_ingress (clsact), cls_u32 and act_mirred')
}
