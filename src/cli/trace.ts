/**
 * `ferry trace --from CONTAINER|IP --to CONTAINER|IP[:PORT[/PROTO]] [--live] [--format text|json]`:
 * why a packet does or does not get from A to B, from the agent's planned firewall
 * (GET /v1/trace, src/api/trace.ts), and with --live what a real probe hit.
 */
import { Option, InvalidArgumentError, type Command } from 'commander'
import { apiRequester, apiSocketFrom } from '../api/client.js'
import type { TraceView } from '../api/trace.js'
import type { TraceHop } from '../nat/trace.js'
import { isIp } from '../util/ip.js'
import { table } from './table.js'

export interface TraceTarget { target: string, port?: number, proto?: 'tcp' | 'udp' | 'sctp' }

const NAME = /^[A-Za-z0-9_.-]+$/

/** `--to`: a container or address, then `:PORT[/PROTO]`; an IPv6 address with a port in brackets (`[fd00::3]:80/udp`). */
export function parseTarget (text: string, flag = '--to'): TraceTarget {
  let host = text
  let rest: string | undefined
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text)
  if (bracket !== null) {
    host = bracket[1]!
    rest = bracket[2]
    if (!isIp(host) || !host.includes(':')) throw new InvalidArgumentError(`${flag} ${text}: only an IPv6 address goes in brackets`)
  } else if (isIp(text)) {
    return { target: text }
  } else {
    const colon = text.lastIndexOf(':')
    if (colon >= 0) { host = text.slice(0, colon); rest = text.slice(colon + 1) }
  }
  if (!isIp(host) && !NAME.test(host)) throw new InvalidArgumentError(`${flag} ${text}: "${host}" is neither an address nor a container name or id`)
  if (rest === undefined) return { target: host }
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(rest)
  const port = m === null ? NaN : Number(m[1])
  if (m === null || port < 1 || port > 65535) throw new InvalidArgumentError(`${flag} ${text}: the port is a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`)
  return { target: host, port, ...(m[2] === undefined ? {} : { proto: m[2] as 'tcp' | 'udp' | 'sctp' }) }
}

function parseFrom (text: string): string {
  if (!isIp(text) && !NAME.test(text)) throw new InvalidArgumentError(`--from ${text}: give a container name or id, or an address (no port)`)
  return text
}

function hopRow (h: TraceHop): string[] {
  return [h.where, h.verdict.toUpperCase(), h.note, h.rule ?? '']
}

/** The explanation as lines for people. */
export function renderTrace (v: TraceView): string {
  const what = v.packet.proto === 'icmp' ? 'ICMP echo' : `${v.packet.proto} port ${v.packet.port!}`
  const head = `${v.from} (${v.packet.src}) → ${v.to} (${v.packet.dst}), ${what}, IPv${v.family}; ${v.backend} backend`
  const verdict = v.decidedBy === undefined
    ? `${v.verdict.toUpperCase()}: no rule of ferry's drops it`
    : `${v.verdict.toUpperCase()} at ${v.decidedBy.where}: ${v.decidedBy.note}${v.decidedBy.rule === undefined ? '' : `\n  rule: ${v.decidedBy.rule}`}`
  const out = [head, verdict, '', table(['HOP', 'VERDICT', 'WHY', 'RULE'], v.hops.map(hopRow)).trimEnd()]
  if (v.live === undefined) {
    if (v.adminChainUnknown && v.hops.some((h) => h.verdict === 'unknown')) out.push('', 'note: the admin chain is evaluated first; ferry cannot see its verdict without --live')
    return out.join('\n') + '\n'
  }
  const l = v.live
  const answered = l.probe.answered === undefined ? 'sent (UDP: no answer to wait for)' : l.probe.answered ? 'answered' : 'got no answer'
  out.push('', `live: the probe (${l.probe.argv.join(' ')}) ${answered}; nft monitor trace: ${l.verdict === 'unseen' ? 'no trace of the packet came back' : l.verdict}`)
  if (l.droppedBy !== undefined) out.push(`  dropped by ${l.droppedBy.table} ${l.droppedBy.chain}: ${l.droppedBy.rule ?? 'the chain\'s policy'}`)
  if (l.events.length > 0) {
    out.push('', table(['TABLE', 'CHAIN', 'VERDICT', 'RULE'], l.events.map((e) => [e.table, e.chain, e.verdict, e.rule ?? '(policy)'])).trimEnd())
  }
  return out.join('\n') + '\n'
}

export function registerTraceCommand (program: Command): void {
  program.command('trace')
    .description("why a packet does or does not get from A to B: the path and the verdict of each of ferry's rules (--live: a real probe, traced)")
    .requiredOption('--from <container|ip>', 'where the packet starts: a container (name or id), a host address, or another host\'s address', parseFrom)
    .requiredOption('--to <container|ip[:port[/proto]]>', 'where it goes: a container or an address, with a port (tcp unless /udp or /sctp); no port: an ICMP echo', (s: string) => parseTarget(s))
    .option('--live', 'send a real probe from the source (a container or this host) and show the rules it hit (nft monitor trace)')
    .addOption(new Option('--format <format>', 'text or json').choices(['text', 'json']).default('text'))
    .action(async (o: { from: string, to: TraceTarget, live?: boolean, format: 'text' | 'json' }) => {
      const api = apiRequester(apiSocketFrom(program.opts<{ apiSocket?: string }>().apiSocket))
      const q = new URLSearchParams({ from: o.from, to: o.to.target })
      if (o.to.port !== undefined) q.set('port', String(o.to.port))
      if (o.to.proto !== undefined) q.set('proto', o.to.proto)
      if (o.live === true) q.set('live', 'true')
      const v = await api<TraceView>('GET', `/v1/trace?${q.toString()}`)
      process.stdout.write(o.format === 'json' ? JSON.stringify(v, null, 2) + '\n' : renderTrace(v))
    })
}
