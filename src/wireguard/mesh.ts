/**
 * This host's WireGuard mesh: its key pair and published information, and its
 * device while at least one encrypted overlay is attached. PeerSync hands it
 * the registered hosts (after every full read and every host change); it plans
 * the peers (plan.ts) and applies them through the driver (device.ts), one
 * change at a time.
 *
 * Key rotation (docs/encryption.md): the new key comes up on a second device
 * (the other slot's name and port) with the same peers and tunnel address but
 * no route, and everything the old device sends is mirrored to it. The new
 * public key and port are published; each peer replaces the old key by the new
 * one in one change and handshakes with the new device at once. Until then it
 * takes the old device's copy of each packet, afterwards the new device's: both
 * keys are accepted, per peer, with no gap but one handshake (packets wait for
 * it in the peer's queue). When every peer has a handshake with the new device
 * (or after a bound), the tunnel range is routed through it and the old device
 * is deleted.
 */
import type { Logger } from 'pino'
import { setTimeout as sleep } from 'node:timers/promises'
import { FerryError, toFerryError } from '../errors/errors.js'
import { Mutex } from '../util/mutex.js'
import { prefixLen } from '../util/ip.js'
import type { WireGuardDriver } from './device.js'
import { generateKeyPair, type KeyPair } from './keys.js'
import {
  DEFAULT_KEEPALIVE, DEFAULT_TUNNEL_RANGE, planMesh, slotEndpoint, tunnelsOf, WG_OVERHEAD, wgDeviceName, wgFamily, wgOverhead, wgSlotPort,
  type MeshHost, type MeshPlan, type WgSkip, type WireGuardInfo,
} from './plan.js'

export interface MeshOptions {
  hostId: string
  keys: KeyPair
  port: number
  tunnel: string
  /** --wireguard-endpoint: where peers reach this host (behind NAT), for slot 0; slot 1 uses the port above. */
  endpoint?: string
  range?: string
  keepalive?: number
  driver: WireGuardDriver
  log?: Logger
  /** Keep a new private key (the state directory's key file); called before the new key is published. */
  saveKey?: (privateKey: string) => Promise<void>
  /** How long a rotation waits for every peer's handshake with the new key before it retires the old one (ms). */
  rotationWaitMs?: number
}

/** What `ferry cluster rotate-key` answers. */
export interface RotationResult {
  publicKey: string
  device: string
  port: number
  /** Peers that made a handshake with the new key before the old one was retired. */
  switched: string[]
  /** Peers that had not (unreachable, or not yet told): they reach this host again once they program the new key. */
  late: string[]
  /** How long the old and the new key were both accepted (ms). */
  overlapMs: number
}

/** One row of `ferry peers` / `ferry cluster status` for WireGuard. */
export interface MeshPeerStatus {
  hostId: string
  endpoint: string
  tunnel: string
  /** Seconds since the last handshake; undefined = never. */
  handshakeAgeS?: number
  /** The last handshake (ms since the epoch); undefined = never. */
  lastHandshake?: number
  rxBytes: number
  txBytes: number
  /** A session younger than WireGuard's reject-after time (180 s): what goes to this peer is encrypted now. */
  encrypted: boolean
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
  /** The old device while a key rotation is under way. */
  retiring?: string
  /** When this host's key was last rotated (ms since the epoch), since the agent started. */
  lastRotation?: number
}

const DEFAULT_ROTATION_WAIT_MS = 30_000
/** WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing. */
export const SESSION_LIFETIME_S = 180
const ROTATION_POLL_MS = 50

export class WireGuardMesh {
  private readonly lock = new Mutex()
  private hosts: MeshHost[] = []
  private plan: MeshPlan = { peers: [], skipped: [] }
  private active = false
  private lastError: string | undefined
  private readonly range: string
  private slot: 0 | 1 = 0
  private keys: KeyPair
  /** The old device of a rotation under way: it still carries what this host sends. */
  private retiring: string | undefined
  private lastRotation: number | undefined
  private publisher: ((info: WireGuardInfo) => Promise<void>) | undefined

  constructor (private readonly opts: MeshOptions) {
    this.range = opts.range ?? DEFAULT_TUNNEL_RANGE
    this.keys = opts.keys
    this.replan()
  }

  /** This host's device (the current slot's). */
  get device (): string { return wgDeviceName(this.opts.hostId, this.slot) }

  /** What this host publishes beside its registration. */
  info (): WireGuardInfo {
    const endpoint = slotEndpoint(this.opts.endpoint, this.slot)
    return { publicKey: this.keys.publicKey, port: wgSlotPort(this.opts.port, this.slot), tunnel: this.opts.tunnel, ...(endpoint !== undefined ? { endpoint } : {}) }
  }

  /** Where a new key is published (the cluster client's registration); set once the client exists. */
  setPublisher (fn: (info: WireGuardInfo) => Promise<void>): void { this.publisher = fn }

  /**
   * At start: the device a rotation left on slot 1 is this host's device when it
   * holds this host's key (so is its port). A device of the other slot that is
   * left over (an agent stopped during a rotation) goes when the device is activated.
   */
  async adopt (): Promise<void> {
    const other = wgDeviceName(this.opts.hostId, 1)
    const state = await this.opts.driver.read(other).catch(() => undefined)
    if (state?.privateKey === this.keys.privateKey) this.slot = 1
    this.replan()
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

  /**
   * Bring the device up (key, port, tunnel address, MTU) with every peer. Resolves the tunnel side of the VXLAN.
   * `underlay`: this host's VTEP and its device's MTU; WireGuard's overhead follows its family (or the published
   * endpoint's, behind NAT): 60 over IPv4, 80 over IPv6 (src/vxlan/plan.ts overlayMtu).
   */
  async activate (underlay: { vtep: string, mtu: number }): Promise<{ local: string, mtu: number, dev: string }> {
    this.wgMtu = underlay.mtu - wgOverhead(wgFamily(underlay.vtep, this.opts.endpoint))
    const mtu = this.wgMtu
    await this.lock.run(async () => {
      if (this.retiring === undefined) {
        await this.opts.driver.ensure(this.device, this.config(this.keys, this.slot, true))
        await this.opts.driver.routeRange(this.device, this.range)
        // The other slot's device, left by an agent stopped during a rotation, is not this host's any more.
        await this.opts.driver.remove(wgDeviceName(this.opts.hostId, this.slot === 0 ? 1 : 0))
      }
      this.active = true
      await this.apply()
    })
    return { local: this.opts.tunnel, mtu, dev: this.device }
  }

  private config (keys: KeyPair, slot: 0 | 1, prefixRoute: boolean): Parameters<WireGuardDriver['ensure']>[1] {
    return {
      privateKey: keys.privateKey, listenPort: wgSlotPort(this.opts.port, slot), addressCidr: `${this.opts.tunnel}/${prefixLen(this.range)}`,
      mtu: this.wgMtu, prefixRoute,
    }
  }

  /** The WireGuard device's MTU (set by activate). */
  private wgMtu = 1500 - WG_OVERHEAD

  /** No encrypted overlay left: the device goes (with wireguard-go's process and socket). */
  async deactivate (): Promise<void> {
    await this.lock.run(async () => {
      this.active = false
      if (this.retiring !== undefined) await this.opts.driver.remove(this.retiring)
      this.retiring = undefined
      await this.opts.driver.remove(this.device)
    })
  }

  /**
   * A new key pair for this host, with no gap for running connections (see the
   * module comment). Without an encrypted overlay here there is no device: the
   * key is replaced and published at once.
   */
  async rotateKey (): Promise<RotationResult> {
    if (this.rotating) throw new FerryError('NAME_CONFLICT', 'a key rotation of this host is already under way (its second WireGuard device is in use)')
    this.rotating = true
    try {
      return await this.rotate()
    } finally {
      this.rotating = false
    }
  }

  private rotating = false

  private async rotate (): Promise<RotationResult> {
    const next = generateKeyPair()
    const started = Date.now()
    const before = { keys: this.keys, slot: this.slot }
    const to: 0 | 1 = this.slot === 0 ? 1 : 0
    const dev = wgDeviceName(this.opts.hostId, to)
    const unstage = (): Promise<void> => this.lock.run(async () => {
      this.retiring = undefined
      await this.opts.driver.remove(dev)
    })
    const staged = await this.lock.run(async () => {
      if (!this.active) return false
      try {
        await this.opts.driver.ensure(dev, this.config(next, to, false))
        await this.opts.driver.setPeers(dev, this.plan.peers)
        await this.opts.driver.mirror(this.device, dev)
      } catch (err) {
        await this.opts.driver.remove(dev).catch(() => undefined)
        throw toFerryError(err, 'KERNEL', `cannot bring the new WireGuard key up on ${dev}`)
      }
      this.retiring = this.device
      return true
    })
    try {
      // From here a restart comes back with the new key (and finds its device by it).
      await this.opts.saveKey?.(next.privateKey)
    } catch (err) {
      if (staged) await unstage()
      throw toFerryError(err, 'INTERNAL', 'cannot keep the new WireGuard key')
    }
    this.keys = next
    if (staged) this.slot = to
    this.replan()
    try {
      await this.publisher?.(this.info())
    } catch (err) {
      // The peers were not told: back to the old key (kept again, and registered again when the store answers).
      this.keys = before.keys
      this.slot = before.slot
      this.replan()
      if (staged) await unstage()
      await this.opts.saveKey?.(before.keys.privateKey)
      await this.publisher?.(this.info()).catch(() => undefined)
      throw toFerryError(err, 'CLUSTER_UNAVAILABLE', 'cannot publish the new WireGuard key: the old one stays')
    }
    const switched = staged ? await this.waitForHandshakes(started) : []
    if (staged) {
      await this.lock.run(async () => {
        const old = this.retiring
        this.retiring = undefined
        if (!this.active || old === undefined) return
        await this.opts.driver.routeRange(this.device, this.range)
        await this.opts.driver.remove(old)
      })
    }
    this.lastRotation = Date.now()
    const late = this.plan.peers.map((p) => p.hostId).filter((h) => !switched.includes(h))
    this.opts.log?.info({ device: this.device, switched, late, overlapMs: this.lastRotation - started }, 'WireGuard key rotated')
    return { publicKey: next.publicKey, device: this.device, port: wgSlotPort(this.opts.port, this.slot), switched, late, overlapMs: staged ? this.lastRotation - started : 0 }
  }

  private rotationTimer: NodeJS.Timeout | undefined

  /** Rotate the key every `ms` (--key-rotation-interval); undefined stops it. A failed rotation is logged and tried at the next turn. */
  rotateEvery (ms: number | undefined): void {
    if (this.rotationTimer) clearInterval(this.rotationTimer)
    this.rotationTimer = undefined
    if (ms === undefined) return
    this.rotationTimer = setInterval(() => {
      this.rotateKey().catch((err: unknown) => { this.opts.log?.error({ err }, 'the periodic WireGuard key rotation failed') })
    }, ms)
    this.rotationTimer.unref()
  }

  /** The peers with a handshake on the new device since the rotation began, once all have one or the wait is over. */
  private async waitForHandshakes (since: number): Promise<string[]> {
    const deadline = Date.now() + (this.opts.rotationWaitMs ?? DEFAULT_ROTATION_WAIT_MS)
    for (;;) {
      const state = await this.opts.driver.read(this.device).catch(() => undefined)
      const shook = new Set((state?.peers ?? []).filter((p) => p.lastHandshake >= since - 1000).map((p) => p.publicKey))
      const done = this.plan.peers.filter((p) => shook.has(p.publicKey)).map((p) => p.hostId)
      if (done.length === this.plan.peers.length || Date.now() >= deadline || !this.active) return done
      await sleep(ROTATION_POLL_MS)
    }
  }

  private async apply (): Promise<void> {
    try {
      await this.opts.driver.setPeers(this.device, this.plan.peers)
      if (this.retiring !== undefined) await this.opts.driver.setPeers(this.retiring, this.plan.peers)
      this.lastError = undefined
    } catch (err) {
      const e = toFerryError(err, 'KERNEL', `cannot program the WireGuard peers of ${this.device}`)
      this.lastError = e.message
      throw e
    }
  }

  async status (now = Date.now()): Promise<MeshStatus> {
    const s: MeshStatus = {
      mode: this.opts.driver.mode, device: this.device, active: this.active, publicKey: this.keys.publicKey,
      tunnel: this.opts.tunnel, port: wgSlotPort(this.opts.port, this.slot), peers: [], skipped: this.plan.skipped,
      ...(this.retiring !== undefined ? { retiring: this.retiring } : {}), ...(this.lastRotation !== undefined ? { lastRotation: this.lastRotation } : {}),
    }
    const state = this.active ? await this.opts.driver.read(this.device).catch(() => undefined) : undefined
    const byKey = new Map((state?.peers ?? []).map((p) => [p.publicKey, p]))
    for (const p of this.plan.peers) {
      const k = byKey.get(p.publicKey)
      const row: MeshPeerStatus = {
        hostId: p.hostId, endpoint: p.endpoint, tunnel: (p.allowedIps[0] ?? '').split('/')[0] ?? '', rxBytes: k?.rxBytes ?? 0, txBytes: k?.txBytes ?? 0, encrypted: false,
      }
      if (k !== undefined && k.lastHandshake > 0) {
        row.handshakeAgeS = Math.max(0, Math.round((now - k.lastHandshake) / 1000))
        row.lastHandshake = k.lastHandshake
        row.encrypted = (now - k.lastHandshake) / 1000 < SESSION_LIFETIME_S
      }
      s.peers.push(row)
    }
    if (this.lastError !== undefined) s.lastError = this.lastError
    return s
  }
}
