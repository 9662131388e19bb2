/**
 * What a firewall driver changes besides its rules, shared by the iptables and
 * nftables drivers: route_localnet per bridge (localhost publishing) and the
 * conntrack entries of UDP publications that appear or go away.
 */
import { ErrorList } from '../errors/errors.js'
import type { Conntrack, UdpFlow } from '../kernel/conntrack.js'
import type { SysctlAccess } from '../kernel/sysctl.js'
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
 * Never fails a change (the rules are in place); failures are logged. The program
 * itself runs through src/kernel/conntrack.ts.
 */
export class UdpConntrack {
  constructor (private readonly conntrack: Conntrack, private readonly log: NatLogger | undefined) {}

  /** Run one conntrack call; a failure is logged, and answered by undefined. */
  private async attempt<T> (what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn()
    } catch (err) {
      this.log?.warn({ err, what }, 'conntrack failed')
      return undefined
    }
  }

  /** One `conntrack -D --dst-nat <container>` per container address whose UDP publications went away. */
  async flushRemoved (removed: readonly PortBinding[]): Promise<void> {
    const targets = new Set(removed.map((b) => b.containerIp))
    for (const ip of targets) await this.attempt(`delete flows DNAT'd to ${ip}`, () => this.conntrack.deleteUdpDstNat(ip))
  }

  /** List UDP flows once per family; delete those aimed at a newly published host port that are not DNAT'd to it. */
  async flushStale (added: readonly PortBinding[]): Promise<void> {
    for (const family of [4, 6] as const) {
      const mine = added.filter((b) => (familyOf(b.containerIp) ?? 4) === family)
      if (mine.length === 0) continue
      const flows: UdpFlow[] | undefined = await this.attempt(`list IPv${family} UDP flows`, () => this.conntrack.listUdp(family))
      if (flows === undefined) continue
      const same = (a: string, b: string): boolean => a === b || (isIp(a) && isIp(b) && normalizeIp(a) === normalizeIp(b))
      const stale = flows.filter((f) => mine.some((b) =>
        f.dport >= b.hostPort && f.dport <= b.hostPortEnd &&
        (isWildcard(b.hostIp) || same(f.dst, b.hostIp)) &&
        !same(f.replySrc, b.containerIp)))
      for (const f of stale) await this.attempt(`delete flow ${f.src}:${f.sport} -> ${f.dst}:${f.dport}`, () => this.conntrack.deleteUdpFlow(f))
    }
  }
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
