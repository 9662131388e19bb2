/**
 * conntrack(8): the one place ferry lists and deletes connection-tracking entries,
 * in the calling process's network namespace, through exec.ts (argv, never a shell).
 * What to delete is the caller's business (src/nat/host-effects.ts); this module
 * knows the program's arguments and its output.
 */
import { FerryError } from '../errors/errors.js'
import type { Family } from '../util/ip.js'
import { execFile, type ExecResult, type Runner } from './exec.js'

const TIMEOUT_MS = 10_000

/** One UDP flow of `conntrack -L -p udp`: its original tuple, and the source of its reply tuple. */
export interface UdpFlow { src: string, dst: string, sport: number, dport: number, replySrc: string }

/** Parse `conntrack -L` lines (original tuple first, reply tuple second); lines that are not a flow are skipped. */
export function parseConntrack (text: string): UdpFlow[] {
  const out: UdpFlow[] = []
  for (const line of text.split('\n')) {
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1] ?? '')
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1] ?? '')
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]))
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]))
    if (src.length < 2 || dst.length < 1 || sport.length < 1 || dport.length < 1) continue
    out.push({ src: src[0]!, dst: dst[0]!, sport: sport[0]!, dport: dport[0]!, replySrc: src[1]! })
  }
  return out
}

export class Conntrack {
  /** `run`: how programs start (exec.ts; a recording fake in unit tests); `argv`: the program. */
  constructor (private readonly run: Runner = execFile, private readonly argv: readonly string[] = ['conntrack']) {}

  /** Run it; a delete that found nothing ("0 flow entries") succeeds. Throws FerryError KERNEL otherwise. */
  private async exec (args: readonly string[]): Promise<ExecResult> {
    const res = await this.run([...this.argv, ...args], { allowFailure: true, timeoutMs: TIMEOUT_MS })
    if (res.code === 0 || /\b0 flow entries\b/.test(res.stderr)) return res
    throw new FerryError('KERNEL', `conntrack ${args.join(' ')} failed (exit ${res.code}): ${res.stderr.trim()}`)
  }

  /** The UDP flows of one family (conntrack lists IPv4 unless told otherwise). */
  async listUdp (family: Family): Promise<UdpFlow[]> {
    return parseConntrack((await this.exec(['-L', '-p', 'udp', ...(family === 6 ? ['-f', 'ipv6'] : [])])).stdout)
  }

  /** Delete every UDP flow DNAT'd to `ip` (`--dst-nat`). */
  async deleteUdpDstNat (ip: string): Promise<void> {
    await this.exec(['-D', '-p', 'udp', '--dst-nat', ip])
  }

  /** Delete one UDP flow by its original tuple. */
  async deleteUdpFlow (f: Pick<UdpFlow, 'src' | 'dst' | 'sport' | 'dport'>): Promise<void> {
    await this.exec(['-D', '-p', 'udp', '-s', f.src, '-d', f.dst, '--sport', String(f.sport), '--dport', String(f.dport)])
  }
}
