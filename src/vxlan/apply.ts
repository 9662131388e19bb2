/**
 * The thin executor of the overlay plan: the VXLAN driver of STYLE.md
 * (ensure VTEP devices, add and remove peers), over the LinkDriver.
 *
 * - Devices: a bridge (deterministic MAC, the gateway address, the overlay MTU)
 *   and a VXLAN device (learning off, proxy ARP on, source = the VTEP address,
 *   outer UDP checksums on, VXLAN_OFFLOADS on) enslaved to it; undone on failure,
 *   idempotent.
 * - Peers: any number of operations go to the LinkDriver's batch
 *   (`applyNeighFdb`: packed netlink messages, answered only on failure; a
 *   delta's two entries are one datagram), which names every entry the kernel
 *   refused; the others took effect. Given a BatchRunner instead (or over a
 *   LinkDriver without batches), a few go through the LinkDriver one by one
 *   (one request each) and many to `bridge -batch` / `ip -batch`
 *   (src/kernel/iproute.ts) with -force; when some lines fail, the result is
 *   checked against the kernel and only what is really missing is an error.
 * - It runs over the agent's own LinkDriver (one rtnetlink socket per agent).
 */
import { ErrorList, FerryError, toFerryError } from '../errors/errors.js'
import { batchRuns, runBatch, type BatchRunner, type BatchTool } from '../kernel/iproute.js'
import { openLinkDriver } from '../kernel/netlink.js'
import type { LinkDriver, LinkInfo, NeighFdbFailure } from '../kernel/types.js'
import { withUndo, type UndoStack } from '../util/undo.js'
import { addrOf, contains, familyOf } from '../util/ip.js'
import { BRIDGE_IPV6_CONF } from '../bridge/plan.js'
import {
  DEFAULT_UNDERLAY_MTU, VXLAN_OFFLOADS, VXLAN_PREFIX, applyOpsToTable, diffPeers, overlayMac, vxlanDevices,
  packPeers, type OverlayDevices, type PackedPeers, type PeerOp, type PeerTable, type Underlay,
} from './plan.js'

/** The overlay data plane of one host (network namespace). */
export interface OverlayDataPlane {
  /** Create or repair the overlay's bridge and VXLAN device. Idempotent; on failure, what it created is removed. */
  ensureDevices (d: OverlayDevices): Promise<void>
  /** Delete the overlay's devices, the second VXLAN device of a dual-stack host too (gone already is fine). */
  removeDevices (d: Pick<OverlayDevices, 'bridge' | 'vxlan' | 'second'>): Promise<void>
  /** The permanent FDB and neighbour entries of a VXLAN device ([] when it does not exist). */
  readPeers (vxlan: string): Promise<PeerTable>
  /** `readPeers`' entries packed (no object per entry); absent: the caller packs `readPeers`' (`packPeers`). */
  readPeersPacked? (vxlan: string): Promise<PackedPeers>
  /** Run peer operations in order (batched when there are many). */
  applyPeerOps (ops: readonly PeerOp[]): Promise<void>
  /** The device that holds the VTEP address, and its MTU. */
  underlay (vtep: string): Promise<Underlay>
  close (): void
}

export interface DataPlaneOptions {
  /**
   * null = never batch (every operation through the LinkDriver). Default: the LinkDriver's own
   * batch (applyNeighFdb) when it has one, else src/kernel/iproute.ts runBatch.
   */
  batch?: BatchRunner | null
  /** Without the LinkDriver's batch: tool batches when a call has more operations than this. Default 16. */
  batchThreshold?: number
  /** Close the LinkDriver on close(). */
  ownsLinks?: boolean
}

const DEFAULT_BATCH_THRESHOLD = 16
/** Refused entries named in a batch's error (the count says how many more). */
const MAX_FAILURES_SHOWN = 5

export class KernelOverlayDataPlane implements OverlayDataPlane {
  private readonly batch: BatchRunner | null
  private readonly threshold: number

  constructor (private readonly links: LinkDriver, private readonly opts: DataPlaneOptions = {}) {
    this.batch = opts.batch === undefined ? runBatch : opts.batch
    this.threshold = opts.batchThreshold ?? DEFAULT_BATCH_THRESHOLD
  }

  async ensureDevices (d: OverlayDevices): Promise<void> {
    const links = await this.links.listLinks()
    for (const [name, kind] of [[d.bridge, 'bridge'], ...vxlanDevices(d).map((v) => [v, 'vxlan'] as const)] as const) {
      const l = links.find((x) => x.name === name)
      if (l && l.kind !== kind) throw new FerryError('NAME_CONFLICT', `cannot create overlay ${d.overlay}: ${name} exists as a ${l.kind ?? 'plain'} device`)
    }
    const undoErrors: string[] = []
    try {
      await withUndo((undo) => this.buildDevices(d, links, undo), (what, err) => {
        undoErrors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`)
      })
    } catch (err) {
      if (undoErrors.length === 0) throw err
      const e = toFerryError(err, 'KERNEL')
      throw new FerryError(e.code, `${e.message} (and the rollback failed: ${undoErrors.join('; ')})`, { cause: err })
    }
  }

  private async buildDevices (d: OverlayDevices, links: LinkInfo[], undo: UndoStack): Promise<void> {
    const br = links.find((l) => l.name === d.bridge)
    const vx = links.find((l) => l.name === d.vxlan)
    if (!br) {
      undo.push(`delete bridge ${d.bridge}`, () => this.links.deleteLink(d.bridge))
      await this.links.createBridge(d.bridge, { mtu: d.mtu, mac: overlayMac(d.gateway) })
    } else if (br.mtu !== d.mtu) {
      await this.links.setMtu(d.bridge, d.mtu)
    }
    // A dual-stack overlay's bridge: IPv6 settings set explicitly (as a dual-stack bridge network's), before its address.
    if (d.gatewayCidr6 !== undefined) for (const [key, value] of BRIDGE_IPV6_CONF) await this.links.setIpv6Conf(d.bridge, key, value)
    const want = d.gatewayCidr6 === undefined ? [d.gatewayCidr] : [d.gatewayCidr, d.gatewayCidr6]
    const families = new Set(want.map(familyOf))
    for (const a of await this.links.listAddresses()) {
      if (a.ifname === d.bridge && !want.includes(a.cidr) && families.has(familyOf(a.cidr)) && !contains('fe80::/10', addrOf(a.cidr))) {
        await this.links.deleteAddress(d.bridge, a.cidr)
      }
    }
    for (const cidr of want) await this.links.addAddress(d.bridge, cidr)
    // A VXLAN device of another VNI on this bridge (the overlay was defined again), or a second one this host no longer has, goes.
    const mine = vxlanDevices(d)
    for (const l of links) {
      if (br && l.master === br.index && l.kind === 'vxlan' && l.name.startsWith(VXLAN_PREFIX) && !mine.includes(l.name)) await this.links.deleteLink(l.name)
    }
    await this.buildVxlan(d, { vxlan: d.vxlan, local: d.local, ...(d.dev === undefined ? {} : { dev: d.dev }) }, vx, undo)
    if (d.second) await this.buildVxlan(d, d.second, links.find((l) => l.name === d.second?.vxlan), undo)
    await this.links.setUp(d.bridge, true)
  }

  /**
   * One VXLAN device of the overlay, enslaved to its bridge. A dual-stack host has two (one per
   * underlay family: a VXLAN device without collect_md has sockets of one family only), both
   * isolated ports of the bridge, so that no frame goes from one family's tunnel to the other's
   * (no loop, no relaying between hosts that share no family); containers reach both.
   */
  private async buildVxlan (d: OverlayDevices, v: { vxlan: string, local: string, dev?: string }, existing: LinkInfo | undefined, undo: UndoStack): Promise<void> {
    if (!existing) {
      undo.push(`delete vxlan ${v.vxlan}`, () => this.links.deleteLink(v.vxlan))
      await this.links.createVxlan(v.vxlan, {
        vni: d.vni, port: d.port, local: v.local, learning: false, proxy: true, udpCsum: true, mtu: d.mtu, ...(v.dev === undefined ? {} : { dev: v.dev }),
      })
      await this.setOffloads(v.vxlan)
    } else if (existing.mtu !== d.mtu) {
      await this.links.setMtu(v.vxlan, d.mtu)
    }
    // Proxy NDP answers from the device's IPv6 neighbour table, which needs IPv6 on (the kernel refuses
    // IPv6 neighbours on a device with disable_ipv6=1): the bridge's explicit settings, no RA, no SLAAC.
    if (d.gatewayCidr6 !== undefined) for (const [key, value] of BRIDGE_IPV6_CONF) await this.links.setIpv6Conf(v.vxlan, key, value)
    await this.links.setMaster(v.vxlan, d.bridge)
    const isolated = d.second !== undefined
    if (isolated || existing?.isolated === true) await this.links.setIsolated(v.vxlan, isolated)
    await this.links.setUp(v.vxlan, true)
  }

  /** VXLAN_OFFLOADS on a new device; a kernel without ethtool netlink (before 5.6) keeps its defaults, which are the same. */
  private async setOffloads (vxlan: string): Promise<void> {
    try {
      await this.links.setFeatures(vxlan, VXLAN_OFFLOADS)
    } catch (err) {
      if (err instanceof FerryError && err.code === 'UNSUPPORTED') return
      throw err
    }
  }

  async removeDevices (d: Pick<OverlayDevices, 'bridge' | 'vxlan' | 'second'>): Promise<void> {
    const errors = new ErrorList()
    for (const v of vxlanDevices(d)) await errors.run(`delete ${v}`, () => this.links.deleteLink(v))
    await errors.run(`delete ${d.bridge}`, () => this.links.deleteLink(d.bridge))
    errors.throwIfAny(`cannot remove the devices ${d.bridge} and ${vxlanDevices(d).join(', ')}`)
  }

  async readPeers (vxlan: string): Promise<PeerTable> {
    const fdb = await this.links.listFdb(vxlan)
    const neigh = await this.links.listNeigh(vxlan)
    return { fdb, neigh }
  }

  async readPeersPacked (vxlan: string): Promise<PackedPeers> {
    if (this.links.listFdbPacked === undefined || this.links.listNeighPacked === undefined) return packPeers(vxlan, await this.readPeers(vxlan))
    const fdb = await this.links.listFdbPacked(vxlan)
    const neigh = await this.links.listNeighPacked(vxlan)
    return { dev: vxlan, fdb, neigh }
  }

  async applyPeerOps (ops: readonly PeerOp[]): Promise<void> {
    if (ops.length === 0) return
    // The LinkDriver's own batch takes a delta's few entries too: one link lookup and one datagram for them
    // all, where one by one each entry costs a lookup and a change, two round trips (bench:overlay).
    if (this.opts.batch === undefined && this.links.applyNeighFdb !== undefined) {
      await this.kernelBatch(ops, this.links.applyNeighFdb.bind(this.links))
      return
    }
    if (this.batch === null || ops.length <= this.threshold) {
      await this.oneByOne(ops)
      return
    }
    await this.toolBatches(ops, this.batch)
  }

  private async oneByOne (ops: readonly PeerOp[]): Promise<void> {
    for (const o of ops) {
      switch (o.op) {
        case 'addFdb': await this.links.addFdb(o.entry); break
        case 'deleteFdb': await this.links.deleteFdb(o.entry); break
        case 'addNeigh': await this.links.addNeigh(o.entry); break
        case 'deleteNeigh': await this.links.deleteNeigh(o.entry); break
      }
    }
  }

  /** The LinkDriver's batch: every refused entry is named; the others took effect. */
  private async kernelBatch (ops: readonly PeerOp[], apply: (ops: readonly PeerOp[]) => Promise<NeighFdbFailure[]>): Promise<void> {
    const failures = await apply(ops)
    if (failures.length === 0) return
    const shown = failures.slice(0, MAX_FAILURES_SHOWN).map((f) => f.message).join('; ')
    const more = failures.length > MAX_FAILURES_SHOWN ? ` (and ${failures.length - MAX_FAILURES_SHOWN} more)` : ''
    throw new FerryError('KERNEL', `cannot program ${failures.length} of ${ops.length} peer entries: ${shown}${more}`)
  }

  private async toolBatches (ops: readonly PeerOp[], batch: BatchRunner): Promise<void> {
    const failures: string[] = []
    for (const stage of batchStages(ops)) {
      // The runs of one stage (additions only, one per tool) go at once: `bridge` and `ip` in parallel.
      for (const failed of await Promise.all(stage.map((run) => batch(run.tool, run.lines)))) if (failed !== '') failures.push(failed)
    }
    if (failures.length > 0) await this.verify(ops, failures)
  }

  /** After a partly failed batch: error only for what the kernel really lacks (deleting what is gone is fine). */
  private async verify (ops: readonly PeerOp[], failures: string[]): Promise<void> {
    const devs = [...new Set(ops.map((o) => o.entry.dev))]
    let missing = 0
    for (const dev of devs) {
      const mine = ops.filter((o) => o.entry.dev === dev)
      const actual = await this.readPeers(dev)
      // Replaying the ops on what the kernel has changes nothing when they all took effect.
      missing += diffPeers(applyOpsToTable(actual, mine), actual).length
    }
    if (missing > 0) {
      const detail = failures.join('; ').split('\n').slice(0, 6).join(' | ')
      throw new FerryError('KERNEL', `cannot program ${missing} of ${ops.length} peer entries: ${detail}`)
    }
  }

  async underlay (vtep: string): Promise<Underlay> {
    const addrs = await this.links.listAddresses()
    const a = addrs.find((x) => addrOf(x.cidr) === vtep)
    if (!a) throw new FerryError('INVALID_OPTION', `the advertise address ${vtep} is not an address of this host`)
    const link = await this.links.getLink(a.ifname)
    const u: Underlay = { vtep, mtu: link?.mtu ?? DEFAULT_UNDERLAY_MTU }
    if (a.ifname !== '') u.dev = a.ifname
    return u
  }

  close (): void {
    if (this.opts.ownsLinks === true) this.links.close()
  }
}

/**
 * The batch runs of `ops` (src/kernel/iproute.ts batchRuns) in stages that run one
 * after the other. Consecutive runs that only add entries make one stage, their lines
 * merged per tool (at most an FDB and a neighbour batch, run at once: additions are
 * replaces, so their order across tools does not matter to the result, only for the
 * milliseconds between them); a run that deletes anything is a stage alone, so every
 * removal keeps its place before or after the additions around it.
 */
export function batchStages (ops: readonly PeerOp[]): Array<Array<{ tool: BatchTool, lines: string[] }>> {
  const stages: Array<Array<{ tool: BatchTool, lines: string[] }>> = []
  let additions: Array<{ tool: BatchTool, lines: string[] }> | undefined
  let i = 0
  for (const run of batchRuns(ops)) {
    const addsOnly = ops.slice(i, i + run.lines.length).every((o) => o.op === 'addFdb' || o.op === 'addNeigh')
    i += run.lines.length
    if (!addsOnly) { additions = undefined; stages.push([run]); continue }
    if (!additions) { additions = []; stages.push(additions) }
    const same = additions.find((r) => r.tool === run.tool)
    if (same) for (const line of run.lines) same.lines.push(line)
    else additions.push(run)
  }
  return stages
}

/**
 * The real data plane over `links` (the agent passes its own LinkDriver: one rtnetlink socket).
 * Without one (a test's child in a namespace) it opens a LinkDriver of its own and closes it on close().
 */
export async function openOverlayDataPlane (links?: LinkDriver): Promise<OverlayDataPlane> {
  return links === undefined ? new KernelOverlayDataPlane(await openLinkDriver(), { ownsLinks: true }) : new KernelOverlayDataPlane(links)
}
