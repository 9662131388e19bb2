/**
 * `ferry trace --live`: one real probe packet, marked with the firewall's trace
 * facility (`meta nftrace set 1`), and the rules it actually hit as `nft monitor
 * trace` reports them.
 *
 * The mark is set by one rule per hook (prerouting for a packet that comes in, output
 * for one the host sends) in a table of its own, `inet ferry-trace`, at priority raw - 20
 * (before ferry's raw-prerouting): not in `inet ferry`, whose chains the reconcile compares
 * rule by rule with the plan and would rewrite under a trace. The rule matches the probe
 * tightly (addresses, protocol, port, ICMP echo requests only); the table is added in one
 * transaction (after removing one a crashed trace may have left) before `nft monitor trace`
 * starts (the monitor names only the rules it read at its start; a later one is `unknown rule
 * handle N`), and deleted in one, even when the probe fails. The iptables backend is traced
 * the same way where iptables is iptables-nft (its rules are nftables rules and show in the same trace, as
 * `xtables-monitor --trace` would show them); with iptables-legacy nothing of ferry's
 * would show, and `--live` is refused.
 *
 * The probe is sent from the source container's network namespace (`nsenter
 * --net=<its namespace path>`, argv only) or from the host itself: `nc -z` for TCP, `nc -u`
 * for UDP (sent; UDP has no answer to wait for), `ping -c 1` for ICMP (busybox's when
 * there is no ping). nft 1.0.6's `monitor trace` has been reliable here (the segfault seen
 * with a full `nft monitor` beside dockerd was in the ruleset listing, which trace does
 * not print); it is still read with a bound on time and lines, and a trace that shows
 * nothing says so rather than guessing.
 */
import { FerryError, toFerryError } from '../errors/errors.js'
import { execFile, spawnLines, type LineChild, type Runner } from '../kernel/exec.js'
import { familyOf, isIp, normalizeIp, type Family } from '../util/ip.js'
import { Mutex } from '../util/mutex.js'
import type { TraceProto } from './trace.js'
import { FirewallDriverBase } from './driver-base.js'
import type { PlanOptions } from './plan.js'
import type { FirewallState } from './types.js'

export const TRACE_TABLE = 'ferry-trace'
const TABLE_REF = `inet ${TRACE_TABLE}`
/** Most monitor lines read for one probe. */
const MAX_LINES = 2000

export interface LiveProbe {
  src: string
  dst: string
  proto: TraceProto
  port?: number
  /** The source container's network namespace (a path); undefined: the host itself sends it. */
  netns?: string
}

/** One rule (or policy) the probe hit, as the trace reported it. */
export interface LiveEvent {
  /** `inet ferry`, `ip filter`, … */
  table: string
  chain: string
  /** The rule as nft prints it; undefined for a chain's policy. */
  rule?: string
  /** accept, drop, continue, jump user, return … */
  verdict: string
}

export interface LiveResult {
  /** Every rule of every table the first probe packet hit, in order (the trace table's own rule left out). */
  events: LiveEvent[]
  /** dropped: a rule dropped it; passed: the trace ends without a drop; unseen: no trace of it came back. */
  verdict: 'passed' | 'dropped' | 'unseen'
  droppedBy?: LiveEvent
  probe: { argv: string[], exitCode: number, answered?: boolean, output: string }
}

function ipWord (family: Family): 'ip' | 'ip6' {
  return family === 4 ? 'ip' : 'ip6'
}

function validateProbe (p: LiveProbe): Family {
  const family = familyOf(p.src)
  if (!isIp(p.src) || !isIp(p.dst) || family === undefined || familyOf(p.dst) !== family) {
    throw new FerryError('INVALID_REQUEST', `--live: ${p.src} and ${p.dst} must be addresses of one family`)
  }
  if (p.proto === 'sctp') throw new FerryError('UNSUPPORTED', '--live probes TCP, UDP and ICMP only: nc cannot send SCTP')
  if (p.proto !== 'icmp' && (p.port === undefined || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535)) {
    throw new FerryError('INVALID_REQUEST', `--live: ${p.proto} needs a port from 1 to 65535`)
  }
  if (p.netns !== undefined && (!p.netns.startsWith('/') || /[\0\n]/.test(p.netns))) {
    throw new FerryError('INVALID_REQUEST', `--live: "${p.netns}" is not a network namespace path`)
  }
  return family
}

/** The match of the probe's first packet: addresses, protocol, port (or an echo request). */
export function probeMatch (p: LiveProbe, hook: 'prerouting' | 'output'): string {
  const family = validateProbe(p)
  const ip = ipWord(family)
  // From the host itself the kernel picks the source address: only the destination is matched.
  const parts = hook === 'output' ? [`${ip} daddr ${normalizeIp(p.dst)}`] : [`${ip} saddr ${normalizeIp(p.src)}`, `${ip} daddr ${normalizeIp(p.dst)}`]
  if (p.proto === 'icmp') parts.push(family === 4 ? 'icmp type echo-request' : 'icmpv6 type echo-request')
  else parts.push(`${p.proto} dport ${p.port!}`)
  return parts.join(' ')
}

/** One transaction: the trace table (a stale one replaced), its chain on the probe's hook, the marking rule. */
export function renderTraceAdd (p: LiveProbe): string {
  const hook = p.netns === undefined ? 'output' : 'prerouting'
  return [
    `add table ${TABLE_REF}`,
    `delete table ${TABLE_REF}`,
    `add table ${TABLE_REF}`,
    `add chain ${TABLE_REF} ${hook} { type filter hook ${hook} priority raw - 20; policy accept; }`,
    `add rule ${TABLE_REF} ${hook} ${probeMatch(p, hook)} meta nftrace set 1`,
  ].join('\n') + '\n'
}

export function renderTraceDelete (): string {
  return `delete table ${TABLE_REF}\n`
}

/** The probe's argv: nc or ping, inside the container's namespace when there is one. */
export function probeArgv (p: LiveProbe, ping: readonly string[] = ['ping']): string[] {
  validateProbe(p)
  const enter = p.netns === undefined ? [] : ['nsenter', `--net=${p.netns}`, '--']
  const dst = normalizeIp(p.dst)
  switch (p.proto) {
    case 'icmp': return [...enter, ...ping, '-c', '1', '-W', '2', dst]
    case 'tcp': return [...enter, 'nc', '-n', '-z', '-w', '2', dst, String(p.port)]
    case 'udp': return [...enter, 'nc', '-n', '-u', '-z', '-w', '1', dst, String(p.port)]
    case 'sctp': throw new FerryError('UNSUPPORTED', '--live probes TCP, UDP and ICMP only')
  }
}

const LINE = /^trace id ([0-9a-f]+) (\S+) (\S+) (\S+) (.*)$/

/** One line of `nft monitor trace`: its trace id and event, or undefined (a packet dump, or not a trace line). */
export function parseTraceLine (line: string): { id: string, event: LiveEvent } | undefined {
  const m = LINE.exec(line.trim())
  if (m === null) return undefined
  const [, id, family, table, chain, rest] = m as unknown as [string, string, string, string, string, string]
  const at = { table: `${family} ${table}`, chain }
  const rule = /^rule (.*) \(verdict ([^)]+)\)$/.exec(rest)
  if (rule !== null) return { id, event: { ...at, rule: rule[1]!, verdict: rule[2]! } }
  // A rule added after the monitor read the ruleset: nft knows its handle only.
  const unknown = /^unknown rule handle (\d+) \(verdict ([^)]+)\)$/.exec(rest)
  if (unknown !== null) return { id, event: { ...at, rule: `(a rule added since the trace began, handle ${unknown[1]!})`, verdict: unknown[2]! } }
  const policy = /^policy (\S+)/.exec(rest)
  if (policy !== null) return { id, event: { ...at, verdict: policy[1]! } }
  return undefined
}

/**
 * The events of the first traced packet, without the trace table's own. A packet's trace
 * id is not stable along its path (the kernel derives it from the skb, whose hash can be
 * set after routing: a routed packet's forward events came with another id than its
 * prerouting ones), so the first packet is told apart by the marking rule instead: its
 * events run from the first hit of that rule to the next one (a retransmission, or the
 * connection's next packet), in the order the kernel reported them.
 */
export function liveVerdict (lines: readonly string[]): Pick<LiveResult, 'events' | 'verdict' | 'droppedBy'> {
  const all = lines.map(parseTraceLine).filter((x) => x !== undefined).map((x) => x.event)
  const marks = (e: LiveEvent): boolean => e.table === TABLE_REF && e.rule !== undefined
  const start = all.findIndex(marks)
  if (start < 0) return { events: [], verdict: 'unseen' }
  const next = all.findIndex((e, i) => i > start && marks(e))
  const events = all.slice(start, next < 0 ? undefined : next).filter((e) => e.table !== TABLE_REF)
  const droppedBy = events.find((e) => e.verdict === 'drop')
  return droppedBy === undefined ? { events, verdict: 'passed' } : { events, verdict: 'dropped', droppedBy }
}

export interface LiveTracerOptions {
  nft?: string[]
  run?: Runner
  monitor?: (argv: readonly string[], onLine: (line: string) => void, opts: { onError: (err: FerryError) => void }) => LineChild
  /** How long the monitor is given to subscribe before the probe, and the trace to arrive after it (ms). */
  settleMs?: number
  /** The longest wait for trace lines after the probe (ms). */
  timeoutMs?: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs live traces, one at a time (they share the trace table). */
export class LiveTracer {
  private readonly mutex = new Mutex()
  private readonly nft: string[]
  private readonly run: Runner
  private readonly monitor: NonNullable<LiveTracerOptions['monitor']>

  constructor (private readonly opts: LiveTracerOptions = {}) {
    this.nft = opts.nft ?? ['nft']
    this.run = opts.run ?? execFile
    this.monitor = opts.monitor ?? spawnLines
  }

  trace (p: LiveProbe): Promise<LiveResult> {
    return this.mutex.run(() => this.traceNow(p))
  }

  private async sendProbe (p: LiveProbe): Promise<LiveResult['probe']> {
    let argv = probeArgv(p)
    let r
    try {
      r = await this.run(argv, { allowFailure: true, timeoutMs: 5000 })
    } catch (err) {
      // No ping on this host: busybox's.
      if (p.proto !== 'icmp') throw err
      argv = probeArgv(p, ['busybox', 'ping'])
      r = await this.run(argv, { allowFailure: true, timeoutMs: 5000 })
    }
    const output = `${r.stdout}${r.stderr}`.trim().slice(0, 2000)
    return { argv, exitCode: r.code, ...(p.proto === 'udp' ? {} : { answered: r.code === 0 }), output }
  }

  private async traceNow (p: LiveProbe): Promise<LiveResult> {
    const addText = renderTraceAdd(p)
    const lines: string[] = []
    let monitorError: FerryError | undefined
    const settle = this.opts.settleMs ?? 300
    let probe: LiveResult['probe'] | undefined
    let failure: unknown
    let child: LineChild | undefined
    try {
      // The table first: the monitor reads the ruleset when it starts, and names only the rules it read then.
      await this.run([...this.nft, '-f', '-'], { input: addText })
      try {
        child = this.monitor([...this.nft, 'monitor', 'trace'], (line) => { if (lines.length < MAX_LINES) lines.push(line) }, { onError: (e) => { monitorError = e } })
        await sleep(settle)
        if (monitorError !== undefined) throw monitorError
        probe = await this.sendProbe(p)
        // The trace arrives after the packet: wait until lines stop coming (bounded).
        const deadline = Date.now() + (this.opts.timeoutMs ?? 3000)
        let seen = -1
        while (Date.now() < deadline && (lines.length === 0 || lines.length !== seen)) {
          seen = lines.length
          await sleep(settle)
        }
      } finally {
        await this.run([...this.nft, '-f', '-'], { input: renderTraceDelete() }).catch((err: unknown) => {
          failure = new FerryError('KERNEL', `the trace table could not be removed (remove it with: nft delete table ${TABLE_REF}): ${toFerryError(err).message}`, { cause: err })
        })
      }
    } finally {
      child?.stop()
    }
    if (failure !== undefined) throw failure as FerryError
    return { ...liveVerdict(lines), probe: probe! }
  }
}

/**
 * Whether `--live` can show the backend's rules: nftables always; iptables only as
 * iptables-nft (its rules are nftables rules, traced alike), never iptables-legacy.
 */
export async function checkLiveBackend (backend: string, run: Runner = execFile): Promise<void> {
  if (backend === 'nftables') return
  const r = await run(['iptables', '-V'], { allowFailure: true }).catch(() => undefined)
  if (r === undefined || !r.stdout.includes('nf_tables')) {
    throw new FerryError('UNSUPPORTED', `--live needs iptables-nft on the iptables backend (its rules show in nft's trace); this host's iptables is ${r?.stdout.trim() || 'not runnable'}: trace without --live, or run the agent with --firewall-backend nftables`)
  }
}

/** What `ferry trace` needs of the agent's firewall (src/api/trace.ts). */
export interface TraceFirewall {
  backend: string
  /** The desired state the driver applies. */
  state (): FirewallState
  opts: PlanOptions
  /** Send and trace a probe; refused where the backend's rules cannot be traced. */
  live (probe: LiveProbe): Promise<LiveResult>
}

/**
 * The agent's firewall as `ferry trace` sees it, asked at each request (undefined with
 * --iptables=false or while starting); one LiveTracer for all requests.
 */
export function traceFirewallSource (firewall: () => { driver: unknown, choice?: { backend: string } } | undefined, tracer = new LiveTracer(), run: Runner = execFile): () => TraceFirewall | undefined {
  return () => {
    const fw = firewall()
    if (fw?.choice === undefined || !(fw.driver instanceof FirewallDriverBase)) return undefined
    const driver = fw.driver as FirewallDriverBase<never>
    const backend = fw.choice.backend
    return {
      backend,
      state: () => driver.state(),
      opts: driver.planOptions(),
      live: async (probe) => {
        await checkLiveBackend(backend, run)
        return tracer.trace(probe)
      },
    }
  }
}
