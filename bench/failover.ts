/**
 * Pure helpers of bench:overlay's Sentinel phase (bench/overlay.ts): reading a
 * sentinel's +switch-master message, when each writer wrote again after a kill,
 * and which acknowledged endpoints a Redis no longer has.
 */

/** A sentinel's `+switch-master` payload: `<name> <old ip> <old port> <new ip> <new port>`. */
export interface SwitchMaster { name: string, from: string, to: string }

/** The switch in one line of `redis-cli subscribe +switch-master` (each element on its own line), or undefined. */
export function parseSwitchMaster (line: string, name: string): SwitchMaster | undefined {
  const parts = line.trim().split(/\s+/)
  if (parts.length !== 5 || parts[0] !== name || !/^\d+$/.test(parts[2]!) || !/^\d+$/.test(parts[4]!)) return undefined
  return { name, from: `${parts[1]}:${parts[2]}`, to: `${parts[3]}:${parts[4]}` }
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
