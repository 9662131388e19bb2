/**
 * Pure helpers of bench:overlay's Sentinel phase (bench/overlay.ts): reading a
 * sentinel's +switch-master message, when each writer wrote again after a kill,
 * and which acknowledged endpoints a Redis no longer has.
 */
import { parseSwitchMaster as switchOf } from '../src/cluster/url.js'

/** A sentinel's `+switch-master` payload as `ip:port` text (src/cluster/url.ts reads it). */
export interface SwitchMaster { name: string, from: string, to: string }

/** The switch in one line of `redis-cli subscribe +switch-master` (each element on its own line), or undefined. */
export function parseSwitchMaster (line: string, name: string): SwitchMaster | undefined {
  const sw = switchOf(line, name)
  return sw && { name, from: `${sw.from.host}:${sw.from.port}`, to: `${sw.to.host}:${sw.to.port}` }
}

/** One change a writer made: when its call began and when it was acknowledged (unix ms; ackAt undefined when it failed). */
export interface WriteOp { writer: string, endpointId: string, ip: string, startAt: number, ackAt?: number }

/**
 * Per writer, ms from `killAt` to the acknowledgement of its first change begun at or after
 * `killAt` (NaN when it made none that was acknowledged), in writer order.
 */
export function writesAgainAfter (ops: readonly WriteOp[], killAt: number, writers: readonly string[]): number[] {
  return writers.map((w) => {
    const first = ops.filter((o) => o.writer === w && o.startAt >= killAt).sort((a, b) => a.startAt - b.startAt)[0]
    return first?.ackAt === undefined ? NaN : first.ackAt - killAt
  })
}

/** The acknowledged changes whose endpoint id is not among `present` (a Redis' endpoint ids). */
export function lostEndpoints (ops: readonly WriteOp[], present: ReadonlySet<string>): WriteOp[] {
  return ops.filter((o) => o.ackAt !== undefined && !present.has(o.endpointId))
}

/** One message of `redis-cli psubscribe '*'` on a sentinel: its channel (the event's name), payload and arrival. */
export interface SentinelEvent { name: string, payload: string, at: number }

/**
 * Reads the lines of `redis-cli psubscribe '*'` (each message as four lines: `pmessage`, the pattern,
 * the channel, the payload) into events; `onEvent` gets each one as its payload line arrives.
 */
export function sentinelEventReader (onEvent: (e: SentinelEvent) => void): (line: string, at: number) => void {
  let pending: string[] | undefined
  return (line, at) => {
    const l = line.replace(/\r$/, '')
    if (pending === undefined) { if (l === 'pmessage') pending = []; return }
    pending.push(l)
    if (pending.length < 3) return
    const [, name, payload] = pending as [string, string, string]
    pending = undefined
    onEvent({ name, payload, at })
  }
}

/** The first time of each event name at or after `from`, in order of time, as ms after `from` (the hello channel left out). */
export function firstEvents (events: readonly SentinelEvent[], from: number): Array<{ name: string, ms: number }> {
  const first = new Map<string, number>()
  for (const e of events) {
    if (e.at < from || e.name.startsWith('__sentinel__')) continue
    if (!first.has(e.name) || e.at < first.get(e.name)!) first.set(e.name, e.at)
  }
  return [...first].sort((a, b) => a[1] - b[1]).map(([name, at]) => ({ name, ms: at - from }))
}
