/**
 * An in-memory LinkDriver for unit tests of planners and executors. It models
 * one network namespace (links with kind, master, hairpin, up, MTU, MAC, veth
 * peers and vxlan specs; IPv4 addresses; connected routes; FDB and neighbour
 * entries) with the same idempotency and error wording as the real driver (src/kernel/netlink.ts),
 * records every call in `calls`, and can be told to fail the Nth call of an
 * operation (`failOn`) so that rollback paths can be tested.
 */
import { bitsOf, canonical, isCidr, parseCidr, parseIp } from '../../src/util/ip.js'
import { FerryError } from '../../src/errors/errors.js'
import type { AddressInfo, FdbEntry, Ipv6ConfKey, LinkDriver, LinkInfo, NeighEntry, RouteInfo, VxlanSpec } from '../../src/kernel/types.js'

/** The name of a LinkDriver method. */
export type LinkOp = { [K in keyof LinkDriver]: LinkDriver[K] extends (...args: never[]) => unknown ? K : never }[keyof LinkDriver]

export interface FakeCall {
  op: LinkOp
  args: unknown[]
  /** Set when the call failed (injected or modelled kernel error). */
  error?: Error
}

/** A link to start with (e.g. the host's underlay 'eth0'). */
export interface FakeLinkSeed { name: string, kind?: string, mtu?: number, mac?: string, up?: boolean }

interface FakeLink {
  index: number
  name: string
  kind?: string
  mtu: number
  mac: string
  up: boolean
  master?: string
  /** Bridge port hairpin mode; meaningful only while `master` is set. */
  hairpin?: boolean
  /** Bridge port isolated flag; meaningful only while `master` is set. */
  isolated?: boolean
  peer?: string
  vxlan?: VxlanSpec
  /** net.ipv6.conf.<name>.* values set (the kernel's defaults otherwise: IPV6_CONF_DEFAULTS). */
  ipv6Conf?: Map<Ipv6ConfKey, string>
  /** Active offload features (ethtool names); a fresh link has none. */
  features?: Set<string>
}

/** A fresh interface's IPv6 settings in a namespace with the kernel defaults. */
export const IPV6_CONF_DEFAULTS: Readonly<Record<Ipv6ConfKey, string>> = { disable_ipv6: '0', accept_ra: '1', autoconf: '1' }

interface Failure { op: LinkOp, at: number, error: Error }

const READ_OPS: ReadonlySet<LinkOp> = new Set<LinkOp>(['listLinks', 'getLink', 'listAddresses', 'listRoutes', 'listFdb', 'listNeigh', 'getIpv6Conf', 'getFeatures'])
const ZERO_MAC = '00:00:00:00:00:00'
const MAIN_TABLE = 254

function kernel (what: string, reason: string): FerryError {
  return new FerryError('KERNEL', `${what}: ${reason}`)
}

function checkIfname (name: string): void {
  if (name.length === 0 || Buffer.byteLength(name) > 15 || /[/:\s]/.test(name)) {
    throw new FerryError('INVALID_REQUEST', `invalid interface name "${name}"`)
  }
}

function normMac (mac: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new FerryError('INVALID_REQUEST', `invalid MAC address "${mac}"`)
  return mac.toLowerCase()
}

function isUnicastMac (mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 && mac !== ZERO_MAC
}

/** As src/kernel/netlink.ts: `address/n` of either family, or INVALID_CIDR with the same sentence. */
function checkCidr (cidr: string): ReturnType<typeof parseCidr> {
  if (!isCidr(cidr)) throw new FerryError('INVALID_CIDR', `invalid CIDR "${cidr}"`)
  return parseCidr(cidr)
}

function checkIp (ip: string): string {
  parseIp(ip)
  return ip
}

export class FakeLinkDriver implements LinkDriver {
  /** Every call, in order, with its arguments (deep-copied). */
  readonly calls: FakeCall[] = []
  /** Routes besides the connected ones (which follow addresses on up links). */
  readonly routes: RouteInfo[]
  closed = false

  private readonly links = new Map<string, FakeLink>()
  private addresses: Array<{ ifname: string, cidr: string }> = []
  private fdb: FdbEntry[] = []
  private neigh: NeighEntry[] = []
  private nextIndex = 1
  private readonly counts = new Map<LinkOp, number>()
  private failures: Failure[] = []

  constructor (opts: { links?: FakeLinkSeed[], routes?: RouteInfo[] } = {}) {
    this.addLink({ name: 'lo', mtu: 65536, mac: ZERO_MAC, up: true })
    for (const seed of opts.links ?? []) this.addLink(seed)
    this.routes = (opts.routes ?? []).map((r) => ({ ...r }))
  }

  /**
   * Make the `n`th call of `op` from now on (1 = the next one) fail with `error`
   * (default: FerryError KERNEL "injected failure of <op>"), without changing state.
   */
  failOn (op: LinkOp, n = 1, error?: Error): void {
    const at = (this.counts.get(op) ?? 0) + n
    this.failures.push({ op, at, error: error ?? new FerryError('KERNEL', `injected failure of ${op}`) })
  }

  /** Calls that change state (everything but get/list). */
  get mutations (): FakeCall[] {
    return this.calls.filter((c) => !READ_OPS.has(c.op))
  }

  /** Calls of one operation. */
  callsOf (op: LinkOp): FakeCall[] {
    return this.calls.filter((c) => c.op === op)
  }

  clearCalls (): void {
    this.calls.length = 0
  }

  /** The spec a vxlan link was created with. */
  vxlanOf (name: string): VxlanSpec | undefined {
    const spec = this.links.get(name)?.vxlan
    return spec === undefined ? undefined : { ...spec }
  }

  // -------------------------------------------------------------------------

  /** Record the call, apply an injected failure if one is due, run `fn`. */
  private async op<T> (op: LinkOp, args: unknown[], fn: () => T): Promise<T> {
    const call: FakeCall = { op, args: structuredClone(args) }
    this.calls.push(call)
    const count = (this.counts.get(op) ?? 0) + 1
    this.counts.set(op, count)
    const failure = this.failures.find((f) => f.op === op && f.at === count)
    try {
      if (this.closed) throw new FerryError('KERNEL', 'link driver is closed')
      if (failure !== undefined) {
        this.failures = this.failures.filter((f) => f !== failure)
        throw failure.error
      }
      return fn()
    } catch (err) {
      call.error = err as Error
      throw err
    }
  }

  private addLink (seed: FakeLinkSeed & { peer?: string, vxlan?: VxlanSpec }): FakeLink {
    const index = this.nextIndex++
    const link: FakeLink = {
      index,
      name: seed.name,
      mtu: seed.mtu ?? 1500,
      mac: seed.mac === undefined ? `02:fe:00:00:${(index >> 8).toString(16).padStart(2, '0')}:${(index & 0xff).toString(16).padStart(2, '0')}` : normMac(seed.mac),
      up: seed.up ?? false,
    }
    if (seed.kind !== undefined) link.kind = seed.kind
    if (seed.peer !== undefined) link.peer = seed.peer
    if (seed.vxlan !== undefined) link.vxlan = { ...seed.vxlan }
    this.links.set(link.name, link)
    return link
  }

  private info (link: FakeLink): LinkInfo {
    const out: LinkInfo = { index: link.index, name: link.name, mtu: link.mtu, mac: link.mac, up: link.up }
    if (link.kind !== undefined) out.kind = link.kind
    const master = link.master === undefined ? undefined : this.links.get(link.master)
    if (master !== undefined) {
      out.master = master.index
      out.hairpin = link.hairpin === true
      if (link.isolated === true) out.isolated = true
    }
    const peer = link.peer === undefined ? undefined : this.links.get(link.peer)
    if (peer !== undefined) out.peerIndex = peer.index
    return out
  }

  private need (what: string, name: string): FakeLink {
    const link = this.links.get(name)
    if (link === undefined) throw kernel(what, `no such device ${name}`)
    return link
  }

  /** Shared create logic: same-kind existing link succeeds, other kinds conflict. */
  private create (what: string, name: string, kind: string, make: () => void, same: (l: FakeLink) => boolean = () => true): void {
    checkIfname(name)
    const existing = this.links.get(name)
    if (existing === undefined) { make(); return }
    if (existing.kind !== kind) throw new FerryError('NAME_CONFLICT', `${what}: ${name} exists as a ${existing.kind ?? 'plain'} device`)
    if (!same(existing)) throw new FerryError('NAME_CONFLICT', `${what}: ${name} exists with another peer`)
  }

  // -------------------------------------------------------------------------

  listLinks (): Promise<LinkInfo[]> {
    return this.op('listLinks', [], () => [...this.links.values()].sort((a, b) => a.index - b.index).map((l) => this.info(l)))
  }

  getLink (name: string): Promise<LinkInfo | undefined> {
    return this.op('getLink', [name], () => {
      checkIfname(name)
      const link = this.links.get(name)
      return link === undefined ? undefined : this.info(link)
    })
  }

  createBridge (name: string, opts: { mtu?: number, mac?: string } = {}): Promise<void> {
    return this.op('createBridge', [name, opts], () => {
      this.create(`cannot create bridge ${name}`, name, 'bridge', () => {
        this.addLink({ name, kind: 'bridge', ...opts })
      })
    })
  }

  createVeth (name: string, peer: string, opts: { mtu?: number, mac?: string, peerMac?: string } = {}): Promise<void> {
    return this.op('createVeth', [name, peer, opts], () => {
      checkIfname(peer)
      const what = `cannot create veth ${name} (peer ${peer})`
      this.create(what, name, 'veth', () => {
        if (this.links.has(peer) || name === peer) throw kernel(what, 'File exists')
        const a: FakeLinkSeed & { peer: string } = { name, kind: 'veth', peer }
        const b: FakeLinkSeed & { peer: string } = { name: peer, kind: 'veth', peer: name }
        if (opts.mtu !== undefined) { a.mtu = opts.mtu; b.mtu = opts.mtu }
        if (opts.mac !== undefined) a.mac = opts.mac
        if (opts.peerMac !== undefined) b.mac = opts.peerMac
        this.addLink(b)
        this.addLink(a)
      }, (existing) => existing.peer === peer)
    })
  }

  createVxlan (name: string, spec: VxlanSpec): Promise<void> {
    return this.op('createVxlan', [name, spec], () => {
      const what = `cannot create vxlan ${name}`
      this.create(what, name, 'vxlan', () => {
        if (spec.dev !== undefined) this.need(what, spec.dev)
        if (spec.local !== undefined) checkIp(spec.local)
        const clash = [...this.links.values()].some((l) => l.vxlan !== undefined && l.vxlan.vni === spec.vni &&
          l.vxlan.port === spec.port && l.vxlan.local === spec.local)
        if (clash) throw kernel(what, 'File exists')
        const seed: FakeLinkSeed & { vxlan: VxlanSpec } = { name, kind: 'vxlan', vxlan: spec }
        if (spec.mtu !== undefined) seed.mtu = spec.mtu
        if (spec.mac !== undefined) seed.mac = spec.mac
        this.addLink(seed)
      })
    })
  }

  createWireGuard (name: string): Promise<void> {
    return this.op('createWireGuard', [name], () => {
      this.create(`cannot create WireGuard device ${name}`, name, 'wireguard', () => { this.addLink({ name, kind: 'wireguard' }) })
    })
  }

  setMaster (name: string, master: string | undefined): Promise<void> {
    return this.op('setMaster', [name, master], () => {
      const what = master === undefined ? `cannot release ${name} from its bridge` : `cannot enslave ${name} to ${master}`
      if (master === undefined) {
        const link = this.links.get(name)
        if (link === undefined) throw kernel(what, 'No such device')
        this.release(link)
        return
      }
      const bridge = this.need(what, master)
      const link = this.links.get(name)
      if (link === undefined) throw kernel(what, 'No such device')
      if (bridge.kind !== 'bridge') throw kernel(what, 'Operation not supported')
      if (link === bridge) throw kernel(what, 'Too many levels of symbolic links')
      if (link.master !== master) this.release(link)
      link.master = master
    })
  }

  /** Leaving a bridge drops the port and its options, as the kernel frees the port. */
  private release (link: FakeLink): void {
    delete link.master
    delete link.hairpin
    delete link.isolated
  }

  setIsolated (name: string, on: boolean): Promise<void> {
    return this.portFlag('setIsolated', 'isolated', name, on)
  }

  setHairpin (name: string, on: boolean): Promise<void> {
    return this.portFlag('setHairpin', 'hairpin', name, on)
  }

  /** A bridge port's flag, as the kernel sets it: not a port is 'Operation not supported'. */
  private portFlag (op: 'setHairpin' | 'setIsolated', flag: 'hairpin' | 'isolated', name: string, on: boolean): Promise<void> {
    return this.op(op, [name, on], () => {
      checkIfname(name)
      const what = `cannot set ${flag} ${on ? 'on' : 'off'} on ${name}`
      const link = this.need(what, name)
      if (link.master === undefined) throw kernel(what, 'Operation not supported')
      link[flag] = on
    })
  }

  setUp (name: string, up: boolean): Promise<void> {
    return this.op('setUp', [name, up], () => {
      const link = this.links.get(name)
      if (link === undefined) throw kernel(`cannot set ${name} ${up ? 'up' : 'down'}`, 'No such device')
      link.up = up
    })
  }

  setFeatures (name: string, wanted: Readonly<Record<string, boolean>>): Promise<void> {
    return this.op('setFeatures', [name, wanted], () => {
      const link = this.links.get(name)
      if (link === undefined) throw kernel(`cannot set the offload features of ${name}`, 'no such device')
      link.features ??= new Set()
      for (const [f, on] of Object.entries(wanted)) { if (on) link.features.add(f); else link.features.delete(f) }
    })
  }

  getFeatures (name: string): Promise<string[]> {
    return this.op('getFeatures', [name], () => {
      const link = this.links.get(name)
      if (link === undefined) throw kernel(`cannot read the offload features of ${name}`, 'no such device')
      return [...link.features ?? []].sort()
    })
  }

  setMtu (name: string, mtu: number): Promise<void> {
    return this.op('setMtu', [name, mtu], () => {
      const what = `cannot set MTU ${mtu} on ${name}`
      const link = this.links.get(name)
      if (link === undefined) throw kernel(what, 'No such device')
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw kernel(what, 'Invalid argument')
      link.mtu = mtu
    })
  }

  deleteLink (name: string): Promise<void> {
    return this.op('deleteLink', [name], () => {
      checkIfname(name)
      const link = this.links.get(name)
      if (link === undefined) return
      const gone = new Set([name])
      if (link.peer !== undefined) gone.add(link.peer)
      for (const n of gone) this.links.delete(n)
      for (const l of this.links.values()) if (l.master !== undefined && gone.has(l.master)) this.release(l)
      this.addresses = this.addresses.filter((a) => !gone.has(a.ifname))
      this.fdb = this.fdb.filter((e) => !gone.has(e.dev))
      this.neigh = this.neigh.filter((e) => !gone.has(e.dev))
    })
  }

  setIpv6Conf (name: string, key: Ipv6ConfKey, value: string): Promise<void> {
    return this.op('setIpv6Conf', [name, key, value], () => {
      const link = this.need(`cannot write sysctl net/ipv6/conf/${name}/${key}=${value}`, name)
      link.ipv6Conf ??= new Map()
      link.ipv6Conf.set(key, value)
    })
  }

  getIpv6Conf (name: string, key: Ipv6ConfKey): Promise<string | undefined> {
    return this.op('getIpv6Conf', [name, key], () => {
      const link = this.links.get(name)
      return link === undefined ? undefined : link.ipv6Conf?.get(key) ?? IPV6_CONF_DEFAULTS[key]
    })
  }

  addAddress (name: string, cidr: string): Promise<void> {
    return this.op('addAddress', [name, cidr], () => {
      const c = checkCidr(cidr)
      const link = this.need(`cannot add address ${cidr} to ${name}`, name)
      // As the kernel: no IPv6 address on an interface with IPv6 disabled.
      if (c.family === 6 && link.ipv6Conf?.get('disable_ipv6') === '1') throw kernel(`cannot add address ${cidr} to ${name}`, 'Permission denied')
      if (!this.addresses.some((a) => a.ifname === name && a.cidr === cidr)) this.addresses.push({ ifname: name, cidr })
    })
  }

  deleteAddress (name: string, cidr: string): Promise<void> {
    return this.op('deleteAddress', [name, cidr], () => {
      checkCidr(cidr)
      this.addresses = this.addresses.filter((a) => !(a.ifname === name && a.cidr === cidr))
    })
  }

  listAddresses (): Promise<AddressInfo[]> {
    return this.op('listAddresses', [], () => this.addresses
      .map((a) => ({ ifname: a.ifname, index: this.links.get(a.ifname)?.index ?? 0, cidr: a.cidr }))
      .sort((a, b) => a.index - b.index))
  }

  /** The extra `routes` plus a connected route for each address on an up link (as the kernel adds). */
  listRoutes (): Promise<RouteInfo[]> {
    return this.op('listRoutes', [], () => {
      const connected: RouteInfo[] = this.addresses
        .filter((a) => this.links.get(a.ifname)?.up === true && a.ifname !== 'lo' && parseCidr(a.cidr).prefix < bitsOf(parseCidr(a.cidr).family))
        .map((a) => ({ dst: canonical(a.cidr), dev: a.ifname, table: MAIN_TABLE }))
      return [...this.routes.map((r) => ({ ...r })), ...connected]
    })
  }

  /** Unicast MACs replace; the all-zeros and multicast MACs append a destination. */
  addFdb (entry: FdbEntry): Promise<void> {
    return this.op('addFdb', [entry], () => {
      const mac = normMac(entry.mac)
      const dst = entry.dst === undefined ? undefined : checkIp(entry.dst)
      this.need(`cannot add FDB entry ${mac}${dst ? ` dst ${dst}` : ''} on ${entry.dev}`, entry.dev)
      const stored: FdbEntry = dst === undefined ? { dev: entry.dev, mac } : { dev: entry.dev, mac, dst }
      if (isUnicastMac(mac)) {
        this.fdb = this.fdb.filter((e) => !(e.dev === entry.dev && e.mac === mac))
      } else if (this.fdb.some((e) => e.dev === entry.dev && e.mac === mac && e.dst === dst)) {
        return
      }
      this.fdb.push(stored)
    })
  }

  /** With `dst`, removes that destination only; without, every entry of the MAC. */
  deleteFdb (entry: FdbEntry): Promise<void> {
    return this.op('deleteFdb', [entry], () => {
      const mac = normMac(entry.mac)
      this.fdb = this.fdb.filter((e) => !(e.dev === entry.dev && e.mac === mac && (entry.dst === undefined || e.dst === entry.dst)))
    })
  }

  listFdb (dev: string): Promise<FdbEntry[]> {
    return this.op('listFdb', [dev], () => this.fdb.filter((e) => e.dev === dev).map((e) => ({ ...e })))
  }

  addNeigh (entry: NeighEntry): Promise<void> {
    return this.op('addNeigh', [entry], () => {
      const mac = normMac(entry.mac)
      checkIp(entry.ip)
      this.need(`cannot add neighbour ${entry.ip} lladdr ${mac} on ${entry.dev}`, entry.dev)
      this.neigh = this.neigh.filter((e) => !(e.dev === entry.dev && e.ip === entry.ip))
      this.neigh.push({ dev: entry.dev, ip: entry.ip, mac })
    })
  }

  deleteNeigh (entry: NeighEntry): Promise<void> {
    return this.op('deleteNeigh', [entry], () => {
      this.neigh = this.neigh.filter((e) => !(e.dev === entry.dev && e.ip === entry.ip))
    })
  }

  listNeigh (dev: string): Promise<NeighEntry[]> {
    return this.op('listNeigh', [dev], () => this.neigh.filter((e) => e.dev === dev).map((e) => ({ ...e })))
  }

  close (): void {
    this.calls.push({ op: 'close', args: [] })
    this.closed = true
  }
}
