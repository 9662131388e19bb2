/**
 * iproute2 in batch mode: the one place ferry renders and runs `ip -batch` and
 * `bridge -batch` lines (through exec.ts, argv only, the lines on stdin). Used
 * for many FDB and neighbour entries at once: one process for thousands of
 * entries is ~10x faster than one netlink round trip per entry. Every value is
 * checked before it is rendered into a line, never passed through.
 */
import { FerryError } from '../errors/errors.js'
import { isIp } from '../util/ip.js'
import { execFile } from './exec.js'
import type { NeighFdbOp } from './types.js'

export type BatchTool = 'ip' | 'bridge'

/** Runs batch lines through `ip` or `bridge`; resolves the failures' text ('' when all lines succeeded). */
export type BatchRunner = (tool: BatchTool, lines: readonly string[]) => Promise<string>

/** A neighbour or FDB change, as one batch line renders it (the type lives in types.ts). */
export type { NeighFdbOp }

const BATCH_TIMEOUT_MS = 120_000
const DEV_RE = /^[A-Za-z0-9_.-]{1,15}$/
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/
const ZERO_MAC = '00:00:00:00:00:00'

/**
 * `bridge -force -batch -` / `ip -force -batch -` with the lines on stdin, in the calling
 * process's network namespace. With -force every line is tried; a failure is reported,
 * not thrown (the caller checks the kernel for what is really missing).
 */
export const runBatch: BatchRunner = async (tool, lines) => {
  const r = await execFile([tool, '-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFailure: true, timeoutMs: BATCH_TIMEOUT_MS })
  return r.code === 0 ? '' : (r.stderr.trim() || `${tool} -batch exited ${r.code}`)
}

function safe (value: string | undefined, re: RegExp | ((s: string) => boolean), what: string): string {
  const ok = value !== undefined && (typeof re === 'function' ? re(value) : re.test(value))
  if (!ok) throw new FerryError('INTERNAL', `refusing to render ${what} "${String(value)}" into a batch line`)
  return value
}

/** One `ip -batch` or `bridge -batch` line for an operation (values are checked, never passed through). */
export function batchLine (o: NeighFdbOp): { tool: BatchTool, line: string } {
  const dev = safe(o.entry.dev, DEV_RE, 'device')
  const mac = safe(o.entry.mac.toLowerCase(), MAC_RE, 'MAC')
  switch (o.op) {
    case 'addNeigh': return { tool: 'ip', line: `neigh replace ${safe(o.entry.ip, isIp, 'IP')} lladdr ${mac} dev ${dev} nud permanent` }
    case 'deleteNeigh': return { tool: 'ip', line: `neigh del ${safe(o.entry.ip, isIp, 'IP')} dev ${dev}` }
    case 'addFdb': {
      const dst = o.entry.dst === undefined ? '' : ` dst ${safe(o.entry.dst, isIp, 'IP')}`
      return { tool: 'bridge', line: `fdb ${mac === ZERO_MAC ? 'append' : 'replace'} ${mac} dev ${dev}${dst} self permanent` }
    }
    case 'deleteFdb': {
      const dst = o.entry.dst === undefined ? '' : ` dst ${safe(o.entry.dst, isIp, 'IP')}`
      return { tool: 'bridge', line: `fdb del ${mac} dev ${dev}${dst} self` }
    }
  }
}

/** Split ops into consecutive runs of the same tool, keeping their order. */
export function batchRuns (ops: readonly NeighFdbOp[]): Array<{ tool: BatchTool, lines: string[] }> {
  const runs: Array<{ tool: BatchTool, lines: string[] }> = []
  for (const o of ops) {
    const { tool, line } = batchLine(o)
    const last = runs[runs.length - 1]
    if (last && last.tool === tool) last.lines.push(line)
    else runs.push({ tool, lines: [line] })
  }
  return runs
}
