/**
 * The WireGuard executor: one thin interface over the device of this host,
 * chosen by detection. This slice has the userspace executor (Debian's
 * `wireguard-go`, through TUN, configured over its UAPI unix socket
 * `/var/run/wireguard/<dev>.sock`); `detectWireGuard` says whether the
 * kernel's module is there (`/sys/module/wireguard`), and ferry uses
 * wireguard-go either way until the kernel executor (genetlink) lands.
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
import { parseUapiGet, parseUapiSet, uapiSet, type WgDeviceState, type WgPeer } from './plan.js'

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

export interface Detection { kernelModule: boolean, userspace: string | undefined, mode: WireGuardMode | undefined }

/** Which implementation this host can use: the kernel module, or wireguard-go on PATH. */
export async function detectWireGuard (wireguardGo = 'wireguard-go'): Promise<Detection> {
  const kernelModule = await fs.stat('/sys/module/wireguard').then(() => true, () => false)
  const r = await execFile(['which', wireguardGo], { allowFailure: true }).catch(() => undefined)
  const userspace = r !== undefined && r.code === 0 ? r.stdout.trim() : undefined
  return { kernelModule, userspace, mode: userspace !== undefined ? 'userspace' : kernelModule ? 'kernel' : undefined }
}

function checkDev (dev: string): string {
  if (!DEV_RE.test(dev)) throw new FerryError('INTERNAL', `refusing WireGuard device name "${dev}"`)
  return dev
}

export interface UserspaceOptions {
  links: LinkDriver
  /** The program (default `wireguard-go` on PATH). */
  program?: string
  /** Where wireguard-go puts its sockets (it is fixed in wireguard-go: only tests change it). */
  socketDir?: string
}

export class UserspaceWireGuard implements WireGuardDriver {
  readonly mode = 'userspace' as const
  private readonly links: LinkDriver
  private readonly program: string
  private readonly dir: string

  constructor (opts: UserspaceOptions) {
    this.links = opts.links
    this.program = opts.program ?? 'wireguard-go'
    this.dir = opts.socketDir ?? UAPI_DIR
  }

  socket (dev: string): string { return `${this.dir}/${checkDev(dev)}.sock` }

  private async alive (dev: string): Promise<boolean> {
    if ((await this.links.getLink(dev)) === undefined) return false
    return await uapiRequest(this.socket(dev), 'get=1\n\n', 1000).then(() => true, () => false)
  }

  async ensure (dev: string, cfg: WireGuardConfig): Promise<void> {
    checkDev(dev)
    if (!(await this.alive(dev))) {
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
    // Set again only what differs: a new listen port rebinds the socket.
    const now = await this.read(dev)
    const change: { privateKey?: string, listenPort?: number } = {}
    if (now?.privateKey !== cfg.privateKey) change.privateKey = cfg.privateKey
    if (now?.listenPort !== cfg.listenPort) change.listenPort = cfg.listenPort
    if (Object.keys(change).length > 0) parseUapiSet(await uapiRequest(this.socket(dev), uapiSet(change, [], [])))
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
