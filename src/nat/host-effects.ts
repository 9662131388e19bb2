/**
 * What a firewall driver changes besides its rules, shared by the iptables and
 * nftables drivers: route_localnet per bridge (localhost publishing) and the
 * conntrack entries of UDP publications that appear or go away.
 */
import { ErrorList } from '../errors/errors.js'
import type { ExecOptions, ExecResult } from '../kernel/exec.js'
import { readSysctl, writeSysctl } from '../kernel/sysctl.js'
import type { PortBinding } from '../model/types.js'
import { isWildcard } from './plan.js'
import { familyOf, isIp, normalizeIp } from '../util/ip.js'
import type { NatNetwork } from './types.js'
import { udpDelta, type Change, type DesiredState, type LocalnetPlan } from './desired.js'

/** The pino-compatible subset ferry logs through. */
export interface NatLogger {
  debug (obj: object, msg?: string): void
  warn (obj: object, msg?: string): void
}

/** Per-bridge kernel parameters (route_localnet), in the agent's namespace. */
export interface SysctlAccess {
  read (key: readonly string[]): Promise<string>
  write (key: readonly string[], value: string): Promise<void>
}

export type Runner = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>

export const defaultSysctl: SysctlAccess = { read: readSysctl, write: writeSysctl }

function localnetKey (bridge: string): string[] {
  return ['net', 'ipv4', 'conf', bridge, 'route_localnet']
}

/** route_localnet on ferry's bridges: 1 where loopback publications need it, 0 elsewhere. */
export class LocalnetSysctl {
  /** route_localnet values ferry wrote, per bridge. */
  private readonly written = new Map<string, string>()

  constructor (private readonly sysctl: SysctlAccess) {}

  private async write (bridge: string, value: string): Promise<void> {
    await this.sysctl.write(localnetKey(bridge), value)
    this.written.set(bridge, value)
  }

  /**
   * Make route_localnet match: 1 on `needed`, 0 on the other bridges of `networks`
   * (and on bridges ferry set before that are no longer its own). A bridge that does
   * not exist yet is skipped (the next change or reconcile sets it). `check` reads
   * the kernel instead of trusting what ferry wrote. Returns true when a value changed.
   */
  async sync (networks: Iterable<NatNetwork>, needed: ReadonlySet<string>, check: boolean): Promise<boolean> {
    const want = new Map<string, string>()
    for (const n of networks) want.set(n.bridge, needed.has(n.bridge) ? '1' : '0')
    for (const [bridge, value] of this.written) if (!want.has(bridge) && value !== '0') want.set(bridge, '0')
    let changed = false
    const errors = new ErrorList()
    for (const [bridge, value] of want) {
      if (!check && (this.written.get(bridge) ?? '0') === value) continue
      let current: string
      try {
        current = await this.sysctl.read(localnetKey(bridge))
      } catch {
        this.written.delete(bridge) // no such bridge (yet): retried later
        continue
      }
      if (current === value) {
        this.written.set(bridge, value)
        continue
      }
      await errors.run(`route_localnet=${value} on ${bridge}`, () => this.write(bridge, value))
      changed = true
    }
    errors.throwIfAny('setting route_localnet failed')
    return changed
  }

  /** Set back to 0 every bridge ferry set to 1 (teardown); failures go to `errors`. */
  async reset (errors: ErrorList): Promise<void> {
    for (const [bridge, value] of this.written) {
      if (value === '0') continue
      await errors.run(`resetting route_localnet on ${bridge}`, () => this.write(bridge, '0'))
    }
    this.written.clear()
  }
}

/**
 * Conntrack (moby#8795): flows that predate a UDP publication keep going to the
 * host, and flows DNAT'd to a removed publication keep going to the container.
 * Never fails a change (the rules are in place); failures are logged.
 */
export class UdpConntrack {
  constructor (private readonly run: Runner, private readonly argv: readonly string[], private readonly log: NatLogger | undefined) {}

  private async conntrack (args: string[]): Promise<ExecResult | undefined> {
    try {
      const res = await this.run([...this.argv, ...args], { allowFailure: true, timeoutMs: 10_000 })
      if (res.code === 0 || /\b0 flow entries\b/.test(res.stderr)) return res
      this.log?.warn({ args, stderr: res.stderr.trim(), code: res.code }, 'conntrack failed')
    } catch (err) {
      this.log?.warn({ err, args }, 'conntrack could not run')
    }
    return undefined
  }

  /** One `conntrack -D --dst-nat <container>` per container address whose UDP publications went away. */
  async flushRemoved (removed: readonly PortBinding[]): Promise<void> {
    const targets = new Set(removed.map((b) => b.containerIp))
    for (const ip of targets) await this.conntrack(['-D', '-p', 'udp', '--dst-nat', ip])
  }

  /** List UDP flows once per family; delete those aimed at a newly published host port that are not DNAT'd to it. */
  async flushStale (added: readonly PortBinding[]): Promise<void> {
    for (const family of [4, 6] as const) {
      const mine = added.filter((b) => (familyOf(b.containerIp) ?? 4) === family)
      if (mine.length === 0) continue
      // conntrack lists IPv4 unless told otherwise.
      const res = await this.conntrack(['-L', '-p', 'udp', ...(family === 6 ? ['-f', 'ipv6'] : [])])
      if (res === undefined) continue
      const same = (a: string, b: string): boolean => a === b || (isIp(a) && isIp(b) && normalizeIp(a) === normalizeIp(b))
      const stale = parseConntrack(res.stdout).filter((f) => mine.some((b) =>
        f.dport >= b.hostPort && f.dport <= b.hostPortEnd &&
        (isWildcard(b.hostIp) || same(f.dst, b.hostIp)) &&
        !same(f.replySrc, b.containerIp)))
      for (const f of stale) {
        await this.conntrack(['-D', '-p', 'udp', '-s', f.src, '-d', f.dst, '--sport', String(f.sport), '--dport', String(f.dport)])
      }
    }
  }
}

/** One UDP flow of `conntrack -L -p udp`. */
export interface UdpFlow { src: string, dst: string, sport: number, dport: number, replySrc: string }

/** Parse `conntrack -L` lines (original tuple first, reply tuple second). */
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

/** route_localnet, then conntrack, after a change's rules are in place; never throws. */
export async function afterFirewallChange<P extends LocalnetPlan> (
  change: Change<P>, desired: DesiredState<P>, localnet: LocalnetSysctl, conntrack: UdpConntrack, log: NatLogger | undefined,
): Promise<void> {
  try {
    await localnet.sync(desired.networks.values(), desired.localnetBridges(), false)
  } catch (err) {
    log?.warn({ err }, 'setting route_localnet failed')
  }
  const { removed, added } = udpDelta(change)
  await conntrack.flushRemoved(removed)
  await conntrack.flushStale(added)
}
