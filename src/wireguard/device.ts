/**
 * The WireGuard executor: one interface over the device of this host, two
 * implementations, chosen at start by detection (`detectWireGuard`): the
 * kernel module where its generic netlink family resolves (a link of kind
 * "wireguard" made over rtnetlink, configured over generic netlink:
 * src/kernel/wireguard-genl.ts), else the userspace one (Debian's
 * `wireguard-go`, through TUN, configured over its UAPI unix socket
 * `/var/run/wireguard/<dev>.sock`). The mesh does not know which.
 *
 * wireguard-go is started as `wireguard-go <dev>` (an argv array): it creates
 * the TUN device in the agent's network namespace, forks itself to the
 * background and serves the socket; it lives as long as the link, so deleting
 * the link stops it and removes its socket (as with the kernel module, the
 * device outlives an agent restart).
 */
import { promises as fs } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { FerryError } from '../errors/errors.js'
import { execFile } from '../kernel/exec.js'
import { uapiRequest } from '../kernel/wireguard-uapi.js'
import { writeSysctl } from '../kernel/sysctl.js'
import { parseCidr } from '../util/ip.js'
import type { LinkDriver } from '../kernel/types.js'
import { probeWireGuardModule, type WgDeviceGet, type WgSetDevice } from '../kernel/wireguard-genl.js'
import { genlSet, parseUapiGet, parseUapiSet, stateOfGenl, uapiSet, type WgDeviceState, type WgPeer } from './plan.js'

export const UAPI_DIR = '/var/run/wireguard'
const DEV_RE = /^[A-Za-z0-9_.-]{1,15}$/

export type WireGuardMode = 'kernel' | 'userspace'

export interface WireGuardConfig {
  privateKey: string
  listenPort: number
  /** The tunnel address with its prefix, e.g. 100.64.3.7/16. */
  addressCidr: string
  mtu: number
  /**
   * false: the address without its prefix route (`noprefixroute`), for the second
   * device of a key rotation, which must not take the tunnel range's route
   * before the switch (default true).
   */
  prefixRoute?: boolean
}

/** The WireGuard device of this host (one executor per implementation). */
export interface WireGuardDriver {
  readonly mode: WireGuardMode
  /** Create (or keep) the device with this key, port, address and MTU, up. Idempotent. */
  ensure (dev: string, cfg: WireGuardConfig): Promise<void>
  /** Make the device's peers exactly `peers` (existing sessions kept). */
  setPeers (dev: string, peers: readonly WgPeer[]): Promise<void>
  /** The device's state; undefined when it does not exist. */
  read (dev: string): Promise<WgDeviceState | undefined>
  /** Delete the device (gone already is fine). */
  remove (dev: string): Promise<void>
  /** Route the tunnel range through `dev` (replacing the route of another device): one atomic change. */
  routeRange (dev: string, range: string): Promise<void>
  /** Copy every packet sent through `from` to `to` as well (a key rotation; gone with `from`). */
  mirror (from: string, to: string): Promise<void>
}

export interface Detection {
  /** The kernel has the WireGuard module (its generic netlink family resolves). */
  kernelModule: boolean
  /** wireguard-go's path, when it is on PATH. */
  userspace: string | undefined
  /** What ferry uses: the kernel module where it exists, else wireguard-go; undefined = neither. */
  mode: WireGuardMode | undefined
}

export interface DetectOptions {
  /** Whether the kernel module is there (default: the generic netlink family "wireguard" resolves). */
  probeKernel?: () => Promise<boolean>
  /** wireguard-go's path or undefined (default: `which wireguard-go`). */
  findUserspace?: () => Promise<string | undefined>
}

/** Which implementation this host uses: the kernel module where it exists, else wireguard-go on PATH. */
export async function detectWireGuard (opts: DetectOptions = {}): Promise<Detection> {
  const [kernelModule, userspace] = await Promise.all([
    (opts.probeKernel ?? probeWireGuardModule)().catch(() => false),
    (opts.findUserspace ?? (() => which('wireguard-go')))().catch(() => undefined),
  ])
  return { kernelModule, userspace, mode: kernelModule ? 'kernel' : userspace !== undefined ? 'userspace' : undefined }
}

async function which (program: string): Promise<string | undefined> {
  const r = await execFile(['which', program], { allowFailure: true })
  return r.code === 0 ? r.stdout.trim() : undefined
}

function checkDev (dev: string): string {
  if (!DEV_RE.test(dev)) throw new FerryError('INTERNAL', `refusing WireGuard device name "${dev}"`)
  return dev
}

/**
 * What both implementations share: the device's address, MTU, reverse-path
 * setting and state, the tunnel range's route and the key rotation's mirror.
 * Each implementation creates the device, changes its key and port, programs
 * its peers and reads it back its own way.
 */
abstract class WireGuardDevice implements WireGuardDriver {
  abstract readonly mode: WireGuardMode
  constructor (protected readonly links: LinkDriver) {}

  /** Make the device exist, ready to be configured. */
  protected abstract create (dev: string): Promise<void>
  /** Change the key and/or the port. */
  protected abstract configure (dev: string, change: { privateKey?: string, listenPort?: number }): Promise<void>
  abstract setPeers (dev: string, peers: readonly WgPeer[]): Promise<void>
  abstract read (dev: string): Promise<WgDeviceState | undefined>
  abstract remove (dev: string): Promise<void>

  async ensure (dev: string, cfg: WireGuardConfig): Promise<void> {
    await this.create(checkDev(dev))
    // Set again only what differs: a new listen port rebinds the socket.
    const now = await this.read(dev)
    const change: { privateKey?: string, listenPort?: number } = {}
    if (now?.privateKey !== cfg.privateKey) change.privateKey = cfg.privateKey
    if (now?.listenPort !== cfg.listenPort) change.listenPort = cfg.listenPort
    if (Object.keys(change).length > 0) await this.configure(dev, change)
    const link = await this.links.getLink(dev)
    if (link?.mtu !== cfg.mtu) await this.links.setMtu(dev, cfg.mtu)
    for (const a of await this.links.listAddresses()) {
      if (a.ifname === dev && a.cidr !== cfg.addressCidr) await this.links.deleteAddress(dev, a.cidr)
    }
    if (cfg.prefixRoute === false) await ip(['address', 'replace', checked(cfg.addressCidr), 'dev', dev, 'noprefixroute'])
    else await this.links.addAddress(dev, cfg.addressCidr)
    // During a key rotation both devices receive from the peers while the tunnel range routes through one:
    // loose reverse-path filtering (2 wins over a strict 1 in net.ipv4.conf.all) lets the other device take them.
    await writeSysctl(['net', 'ipv4', 'conf', dev, 'rp_filter'], '2')
    await this.links.setUp(dev, true)
  }

  async routeRange (dev: string, range: string): Promise<void> {
    await ip(['route', 'replace', checked(range), 'dev', checkDev(dev)])
  }

  async mirror (from: string, to: string): Promise<void> {
    checkDev(from)
    checkDev(to)
    // clsact on the old device; one u32 match-all filter whose action mirrors each packet to the new device.
    await ip(['qdisc', 'replace', 'dev', from, 'clsact'], 'tc')
    await ip(['filter', 'replace', 'dev', from, 'egress', 'pref', '1', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0',
      'action', 'mirred', 'egress', 'mirror', 'dev', to], 'tc')
  }
}

export interface UserspaceOptions {
  links: LinkDriver
  /** The program (default `wireguard-go` on PATH). */
  program?: string
  /** Where wireguard-go puts its sockets (it is fixed in wireguard-go: only tests change it). */
  socketDir?: string
}

export class UserspaceWireGuard extends WireGuardDevice {
  readonly mode = 'userspace' as const
  private readonly program: string
  private readonly dir: string

  constructor (opts: UserspaceOptions) {
    super(opts.links)
    this.program = opts.program ?? 'wireguard-go'
    this.dir = opts.socketDir ?? UAPI_DIR
  }

  socket (dev: string): string { return `${this.dir}/${checkDev(dev)}.sock` }

  private async alive (dev: string): Promise<boolean> {
    if ((await this.links.getLink(dev)) === undefined) return false
    return await uapiRequest(this.socket(dev), 'get=1\n\n', 1000).then(() => true, () => false)
  }

  protected async create (dev: string): Promise<void> {
    if (await this.alive(dev)) return
    const stale = await this.links.getLink(dev)
    if (stale) {
      if (stale.kind !== 'tun' && stale.kind !== undefined) throw new FerryError('NAME_CONFLICT', `cannot create the WireGuard device ${dev}: it exists as a ${stale.kind} device`)
      await this.links.deleteLink(dev)
    }
    const r = await execFile([this.program, dev], { allowFailure: true, timeoutMs: 10_000, env: quietEnv() })
    if (r.code !== 0) throw new FerryError('KERNEL', `cannot start ${this.program} for ${dev}: ${(r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).split('\n').slice(-3).join(' ')}`)
    // The daemon serves the socket once the device is up; wait for it (bounded).
    let ok = false
    for (let i = 0; i < 50 && !ok; i++) { ok = await this.alive(dev); if (!ok) await sleep(100) }
    if (!ok) {
      await this.links.deleteLink(dev).catch(() => undefined)
      throw new FerryError('KERNEL', `${this.program} started but ${this.socket(dev)} does not answer`)
    }
  }

  protected async configure (dev: string, change: { privateKey?: string, listenPort?: number }): Promise<void> {
    parseUapiSet(await uapiRequest(this.socket(dev), uapiSet(change, [], [])))
  }

  async setPeers (dev: string, peers: readonly WgPeer[]): Promise<void> {
    const current = await this.read(dev)
    if (!current) throw new FerryError('KERNEL', `the WireGuard device ${dev} does not exist`)
    parseUapiSet(await uapiRequest(this.socket(dev), uapiSet({}, peers, current.peers)))
  }

  async read (dev: string): Promise<WgDeviceState | undefined> {
    if ((await this.links.getLink(checkDev(dev))) === undefined) return undefined
    return parseUapiGet(await uapiRequest(this.socket(dev), 'get=1\n\n'))
  }

  async remove (dev: string): Promise<void> {
    await this.links.deleteLink(checkDev(dev))
    // wireguard-go exits when its TUN device goes, and removes its socket; a socket left by a killed one goes too.
    for (let i = 0; i < 30; i++) {
      if (!(await fs.stat(this.socket(dev)).then(() => true, () => false))) return
      await sleep(100)
    }
    await fs.rm(this.socket(dev), { force: true })
  }
}

/** The configuration socket of the kernel module (src/kernel/wireguard-genl.ts' WireGuardGenl, or a fake in tests). */
export interface GenlDevices {
  setDevice (req: WgSetDevice): Promise<void>
  getDevice (ifname: string): Promise<WgDeviceGet | undefined>
}

/**
 * The kernel module: the device is an rtnetlink link of kind "wireguard"; its
 * key, port and peers go over generic netlink. Nothing runs beside it.
 */
export class KernelWireGuard extends WireGuardDevice {
  readonly mode = 'kernel' as const
  constructor (links: LinkDriver, private readonly genl: GenlDevices) { super(links) }

  protected async create (dev: string): Promise<void> {
    const link = await this.links.getLink(dev)
    if (link !== undefined && link.kind === 'wireguard') return
    // A TUN device of the name is wireguard-go's (this host used the userspace implementation before): replace it.
    if (link !== undefined && link.kind !== 'tun' && link.kind !== undefined) throw new FerryError('NAME_CONFLICT', `cannot create the WireGuard device ${dev}: it exists as a ${link.kind} device`)
    if (link !== undefined) await this.links.deleteLink(dev)
    await this.links.createWireGuard(dev)
  }

  protected async configure (dev: string, change: { privateKey?: string, listenPort?: number }): Promise<void> {
    await this.genl.setDevice(genlSet(dev, change, [], []))
  }

  async setPeers (dev: string, peers: readonly WgPeer[]): Promise<void> {
    const current = await this.read(dev)
    if (!current) throw new FerryError('KERNEL', `the WireGuard device ${dev} does not exist`)
    await this.genl.setDevice(genlSet(dev, {}, peers, current.peers))
  }

  async read (dev: string): Promise<WgDeviceState | undefined> {
    const link = await this.links.getLink(checkDev(dev))
    if (link?.kind !== 'wireguard') return undefined
    const d = await this.genl.getDevice(dev)
    return d === undefined ? undefined : stateOfGenl(d)
  }

  async remove (dev: string): Promise<void> {
    await this.links.deleteLink(checkDev(dev))
  }
}

/** An IPv4 CIDR checked before it goes into an argv. */
function checked (cidr: string): string {
  parseCidr(cidr, 4)
  return cidr
}

/** One `ip` (or `tc`) command as an argv array; a failure is a KERNEL error with its stderr. */
async function ip (args: readonly string[], program: 'ip' | 'tc' = 'ip'): Promise<void> {
  const r = await execFile([program, ...args], { allowFailure: true, timeoutMs: 10_000 })
  if (r.code !== 0) throw new FerryError('KERNEL', `${program} ${args.join(' ')} failed: ${(r.stderr.trim() || `exit ${r.code}`).split('\n')[0] ?? ''}`)
}

/** wireguard-go daemonizes with its output to /dev/null only when LOG_LEVEL is unset (else it would hold our pipes). */
function quietEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.LOG_LEVEL
  delete env.WG_PROCESS_FOREGROUND
  return env
}
