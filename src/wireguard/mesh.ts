/**
 * This host's WireGuard mesh: its key pair and published information, and its
 * device while at least one encrypted overlay is attached. PeerSync hands it
 * the registered hosts (after every full read and every host change); it plans
 * the peers (plan.ts) and applies them through the driver (device.ts), one
 * change at a time.
 */
import type { Logger } from 'pino'
import { toFerryError } from '../errors/errors.js'
import { Mutex } from '../util/mutex.js'
import { prefixLen } from '../util/ip.js'
import type { WireGuardDriver } from './device.js'
import type { KeyPair } from './keys.js'
import {
  DEFAULT_KEEPALIVE, DEFAULT_TUNNEL_RANGE, WG_OVERHEAD, planMesh, tunnelsOf, wgDeviceName,
  type MeshHost, type MeshPlan, type WgSkip, type WireGuardInfo,
} from './plan.js'

export interface MeshOptions {
  hostId: string
  keys: KeyPair
  port: number
  tunnel: string
  range?: string
  keepalive?: number
  driver: WireGuardDriver
  log?: Logger
}

/** One row of `ferry peers` / `ferry cluster status` for WireGuard. */
export interface MeshPeerStatus {
  hostId: string
  endpoint: string
  tunnel: string
  /** Seconds since the last handshake; undefined = never. */
  handshakeAgeS?: number
  rxBytes: number
  txBytes: number
}

export interface MeshStatus {
  mode: WireGuardDriver['mode']
  device: string
  active: boolean
  publicKey: string
  tunnel: string
  port: number
  peers: MeshPeerStatus[]
  skipped: WgSkip[]
  lastError?: string
}

export class WireGuardMesh {
  readonly device: string
  private readonly lock = new Mutex()
  private hosts: MeshHost[] = []
  private plan: MeshPlan = { peers: [], skipped: [] }
  private active = false
  private lastError: string | undefined
  private readonly range: string

  constructor (private readonly opts: MeshOptions) {
    this.device = wgDeviceName(opts.hostId)
    this.range = opts.range ?? DEFAULT_TUNNEL_RANGE
    this.replan()
  }

  /** What this host publishes beside its registration. */
  info (): WireGuardInfo {
    return { publicKey: this.opts.keys.publicKey, port: this.opts.port, tunnel: this.opts.tunnel }
  }

  get isActive (): boolean { return this.active }

  private replan (): void {
    this.plan = planMesh({ hostId: this.opts.hostId, wg: this.info() }, this.hosts, this.range, this.opts.keepalive ?? DEFAULT_KEEPALIVE)
  }

  /** The tunnel address of every peer host (by host id). */
  tunnels (): Map<string, string> { return tunnelsOf(this.plan) }

  /** The registered hosts changed: re-plan, and re-program the device when it is up. */
  async setHosts (hosts: Iterable<MeshHost>): Promise<void> {
    // Planned at once (tunnels() answers from the new plan), applied in turn.
    this.hosts = [...hosts]
    this.replan()
    await this.lock.run(async () => { if (this.active) await this.apply() })
  }

  /** Bring the device up (key, port, tunnel address, MTU) with every peer. Resolves the tunnel side of the VXLAN. */
  async activate (underlayMtu: number): Promise<{ local: string, mtu: number, dev: string }> {
    const mtu = underlayMtu - WG_OVERHEAD
    await this.lock.run(async () => {
      await this.opts.driver.ensure(this.device, { privateKey: this.opts.keys.privateKey, listenPort: this.opts.port, addressCidr: `${this.opts.tunnel}/${prefixLen(this.range)}`, mtu })
      this.active = true
      await this.apply()
    })
    return { local: this.opts.tunnel, mtu, dev: this.device }
  }

  /** No encrypted overlay left: the device goes (with wireguard-go's process and socket). */
  async deactivate (): Promise<void> {
    await this.lock.run(async () => {
      this.active = false
      await this.opts.driver.remove(this.device)
    })
  }

  private async apply (): Promise<void> {
    try {
      await this.opts.driver.setPeers(this.device, this.plan.peers)
      this.lastError = undefined
    } catch (err) {
      const e = toFerryError(err, 'KERNEL', `cannot program the WireGuard peers of ${this.device}`)
      this.lastError = e.message
      throw e
    }
  }

  async status (now = Date.now()): Promise<MeshStatus> {
    const s: MeshStatus = {
      mode: this.opts.driver.mode, device: this.device, active: this.active, publicKey: this.opts.keys.publicKey,
      tunnel: this.opts.tunnel, port: this.opts.port, peers: [], skipped: this.plan.skipped,
    }
    const state = this.active ? await this.opts.driver.read(this.device).catch(() => undefined) : undefined
    const byKey = new Map((state?.peers ?? []).map((p) => [p.publicKey, p]))
    for (const p of this.plan.peers) {
      const k = byKey.get(p.publicKey)
      const row: MeshPeerStatus = { hostId: p.hostId, endpoint: p.endpoint, tunnel: (p.allowedIps[0] ?? '').split('/')[0] ?? '', rxBytes: k?.rxBytes ?? 0, txBytes: k?.txBytes ?? 0 }
      if (k !== undefined && k.lastHandshake > 0) row.handshakeAgeS = Math.max(0, Math.round((now - k.lastHandshake) / 1000))
      s.peers.push(row)
    }
    if (this.lastError !== undefined) s.lastError = this.lastError
    return s
  }
}
