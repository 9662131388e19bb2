/**
 * A recording overlay data plane for unit tests at scale: peer entries in maps
 * (constant time per operation, unlike the fake kernel's lists), every peer
 * operation and every kernel read counted.
 */
import type { OverlayDataPlane } from '../../src/vxlan/apply.js'
import { applyOpsToTable, type OverlayDevices, type PeerOp, type PeerTable, type Underlay } from '../../src/vxlan/plan.js'

export class RecordingDataPlane implements OverlayDataPlane {
  readonly fdb = new Map<string, string | undefined>()
  readonly neigh = new Map<string, string>()
  /** Every operation applied, in order. */
  ops: PeerOp[] = []
  reads = 0
  constructor (private readonly vtep: string) {}

  async ensureDevices (_d: OverlayDevices): Promise<void> {}
  async removeDevices (_d: Pick<OverlayDevices, 'bridge' | 'vxlan'>): Promise<void> { this.fdb.clear(); this.neigh.clear() }

  async readPeers (vxlan: string): Promise<PeerTable> {
    this.reads++
    return {
      fdb: [...this.fdb].map(([mac, dst]) => (dst === undefined ? { dev: vxlan, mac } : { dev: vxlan, mac, dst })),
      neigh: [...this.neigh].map(([ip, mac]) => ({ dev: vxlan, ip, mac })),
    }
  }

  async applyPeerOps (ops: readonly PeerOp[]): Promise<void> {
    for (const o of ops) {
      this.ops.push(o)
      switch (o.op) {
        case 'addFdb': this.fdb.set(o.entry.mac, o.entry.dst); break
        case 'deleteFdb': this.fdb.delete(o.entry.mac); break
        case 'addNeigh': this.neigh.set(o.entry.ip, o.entry.mac); break
        case 'deleteNeigh': this.neigh.delete(o.entry.ip); break
      }
    }
  }

  async underlay (vtep: string): Promise<Underlay> { return { vtep: vtep === '' ? this.vtep : vtep, mtu: 1500, dev: 'eth0' } }
  close (): void {}

  /** The table as the kernel would list it (for comparisons with a plan). */
  table (dev: string): PeerTable {
    return applyOpsToTable({ fdb: [], neigh: [] }, this.ops.filter((o) => o.entry.dev === dev))
  }
}

/** A data plane whose kernel reads can be held: a full reconcile stops there until `release()`. */
export class GatedDataPlane extends RecordingDataPlane {
  private gate: Promise<void> | undefined
  private open: (() => void) | undefined
  private entered: (() => void) | undefined
  private stale = false
  /**
   * The next kernel read waits; resolves when a full reconcile has reached it. `stale`: the read is taken
   * at once and handed back when released (a read older than the changes made meanwhile).
   */
  hold (opts: { stale?: boolean } = {}): Promise<void> {
    this.stale = opts.stale === true
    this.gate = new Promise((resolve) => { this.open = resolve })
    return new Promise((resolve) => { this.entered = resolve })
  }

  release (): void { this.gate = undefined; this.open?.() }

  override async readPeers (vxlan: string): ReturnType<RecordingDataPlane['readPeers']> {
    const taken = this.stale ? await super.readPeers(vxlan) : undefined
    const gate = this.gate
    this.entered?.()
    this.entered = undefined
    await gate
    return taken ?? await super.readPeers(vxlan)
  }
}
