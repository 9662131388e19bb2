/**
 * ferry's networking for runtimes other than the Docker engine, and for plain
 * processes: attach a network namespace to a ferry network (or to none, or to
 * another container's namespace), detach it, and watch for namespaces whose
 * process died. It reuses the Docker path's pieces exactly as the engine drives
 * them: IPAM for addresses, NetworkDriver.createEndpoint / join /
 * programExternalConnectivity for the veth and the ports, and the firewall's
 * link intent for `--link` on ICC-off networks. Work inside namespaces goes
 * through NamespaceOps (child processes only).
 *
 * Also here: networks made without the engine (`ferry network create`, names kept
 * in the store), the docker0-style default network of the agent's --bridge flags,
 * `--net host` containers (registered by name, nothing configured), and the
 * processes of `ferry run` (-d included): which one the watchdog follows, and
 * `ferry stop`/`ferry rm` (SIGTERM, SIGKILL after a grace period, detach).
 *
 * Every mutation is serialized by one mutex, validates first, applies with an
 * undo stack and persists; detach is idempotent and keeps going past failures.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { hostname as osHostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { ErrorList, FerryError } from '../errors/errors.js'
import type { NetworkRecord } from '../model/types.js'
import type { Store } from '../store/store.js'
import type { LinkDriver } from '../kernel/types.js'
import type { LinkFirewall, NatLink } from '../nat/types.js'
import type { NetworkDriver } from '../driver/network.js'
import { GATEWAY_ADDRESS_TYPE, REQUEST_ADDRESS_TYPE, type Ipam } from '../ipam/ipam.js'
import { canonical, isCidr } from '../util/ip.js'
import { Mutex } from '../util/mutex.js'
import { withUndo, type UndoStack } from '../util/undo.js'
import { addrOf, prefixOf } from '../util/ip.js'
import { containerResolvConf, linkEnv, parseResolvConf, renderHosts, renderResolvConf, type ResolvConf } from './files.js'
import type { NamespaceOps } from './netns.js'
import { validateName, validateNetworkName } from './spec.js'
import type { AttachResult, AttachSpec, ContainerRecord, NetworkCreateSpec, ProcessRef, StopOptions } from './types.js'
import type { ContainerNames } from '../docker/watch.js'
import { dict } from '../util/dict.js'
import { checkContainerKey, listCandidates, matchKey, resolveNetwork } from '../util/resolve.js'

/** The name of the default network, as in Docker. */
export const DEFAULT_NETWORK = 'bridge'
/** The shortest id prefix detach, stop, rm and network rm take (Docker's short id, as ferry ps and network ls show it). */
export const RUNTIME_MIN_PREFIX = 12

/** The agent's dockerd-style flags for the default network. */
export interface DefaultBridgeConfig {
  bridge: string
  /** Gateway address with prefix (dockerd's --bip); undefined = a pool from the default address pools. */
  bip?: string
  icc: boolean
  masquerade: boolean
  mtu?: number
  /** dockerd's --ipv6: the default network is dual-stack, its IPv6 subnet --fixed-cidr-v6 or a /64 of the default IPv6 pool. */
  ipv6?: boolean
  fixedCidr6?: string
}

export interface RuntimeDeps {
  store: Store
  driver: NetworkDriver
  ipam: Ipam
  links: LinkDriver
  firewall: LinkFirewall
  ns: NamespaceOps
  /** Where generated hosts and resolv.conf files go (<dir>/<container id>/). */
  filesDir: string
  log: Logger
  /** The agent's --dns, --dns-search, --dns-opt: defaults for every container. */
  dns?: { servers: string[], search: string[], options: string[] }
  /** The agent serves DNS on every gateway: containers on a network use it unless --dns says otherwise. */
  embeddedDns?: boolean
  /** Called after every attach and detach (the DNS records follow). */
  onChange?: () => void
  /** The host's resolv.conf text (default: /etc/resolv.conf). */
  hostResolvConf?: () => Promise<string>
  now?: () => Date
  /** Where ferry run -d commands write their output (<dir>/<name>.log); default: `logs` beside filesDir. */
  logsDir?: string
  /** The host's name, for --net host containers (default: os.hostname()). */
  hostname?: () => string
}
/** How long a SIGKILLed process may take to be gone before stop reports a failure. */
const KILL_WAIT_MS = 5_000

function newId (): string {
  return randomBytes(32).toString('hex')
}

export class RuntimeService {
  private readonly d: RuntimeDeps
  private readonly mutex = new Mutex()
  private timer?: NodeJS.Timeout
  private watching = false

  constructor (deps: RuntimeDeps) { this.d = deps }

  private get state () { return this.d.store.state }
  private get records (): Record<string, ContainerRecord> { return (this.state.containers ??= dict()) }
  private get names (): Record<string, string> { return (this.state.networkNames ??= dict()) }
  private now (): string { return (this.d.now?.() ?? new Date()).toISOString() }
  private undoLog = (what: string, err: unknown): void => { this.d.log.error({ err, what }, 'rollback step failed') }

  // ---------------------------------------------------------------- queries

  containers (): ContainerRecord[] { return Object.values(this.records) }

  /**
   * The container `key` names (src/util/resolve.ts): its name, its full id or an id prefix of at least
   * RUNTIME_MIN_PREFIX characters (the ID column of ferry ps), so a name that is gone is never taken for
   * a short prefix of another container's id by detach, stop or rm. undefined when it names none.
   */
  private find (key: string): ContainerRecord | undefined {
    const found = matchKey(key, this.containers().map((c) => ({ id: c.id, names: [c.name], rec: c })), RUNTIME_MIN_PREFIX)
    if (found.length > 1) throw new FerryError('INVALID_REQUEST', `"${key}" names ${found.length} containers: ${listCandidates(found)}; give more of the id`)
    return found[0]?.rec
  }

  container (key: string): ContainerRecord {
    const c = this.find(checkContainerKey(key))
    if (!c) throw new FerryError('ENDPOINT_NOT_FOUND', `no container "${key}" is attached through ferry (by name, id or an id prefix of ${RUNTIME_MIN_PREFIX}+ characters; ferry ps lists them)`)
    return c
  }

  /** The container attached with this endpoint, if any. */
  endpointOwner (endpointId: string): string | undefined {
    return this.containers().find((c) => c.endpointId === endpointId)?.name
  }

  /** The id of the container attached with this endpoint, if any. */
  endpointOwnerId (endpointId: string): string | undefined {
    return this.containers().find((c) => c.endpointId === endpointId)?.id
  }

  /**
   * Names for the DNS server, in the engine watcher's shape: each container on a
   * network answers to its name, its network aliases, its short id and the names
   * of the containers that share its namespace; its links give aliases too.
   */
  dnsNames (): ContainerNames[] {
    const all = this.containers()
    return all.filter((c) => c.mode === 'network' && c.endpointId !== undefined && c.networkId !== undefined).map((c) => {
      const sharers = all.filter((o) => o.mode === 'container' && this.owner(o) === c).map((o) => o.name)
      return {
        containerId: c.id,
        name: c.name,
        endpoints: new Map([[c.endpointId!, { networkId: c.networkId!, aliases: [...c.aliases, c.id.slice(0, 12), ...sharers] }]]),
        links: c.links.map((l) => ({ target: l.name, alias: l.alias })),
      }
    })
  }

  /** The name ferry gave a network it created itself. */
  networkName (id: string): string | undefined { return this.names[id] }

  /**
   * ferry's part of a container's DNS settings, for runtimes that write resolv.conf
   * themselves (the CNI result): its DNS server on the network's gateway when the agent
   * runs one, the agent's --dns-search and --dns-opt. No upstreams, nothing of the host's.
   */
  resolverOf (rec: ContainerRecord): ResolvConf {
    return { nameservers: this.dnsServersOf(this.owner(rec)), search: [...(this.d.dns?.search ?? [])], options: [...(this.d.dns?.options ?? [])] }
  }

  /**
   * On a network, ferry's own DNS server answers on the gateway (and forwards the rest)
   * unless the agent runs without it: the gateway of each family the container has an
   * address in (IPv4 first; the IPv6 gateway of a dual-stack network when its endpoint
   * has an IPv6 address). [] when there is none.
   */
  private dnsServersOf (rec: Pick<ContainerRecord, 'networkId' | 'endpointId'>): string[] {
    const net = rec.networkId === undefined ? undefined : this.state.networks[rec.networkId]
    if (net === undefined || this.d.embeddedDns !== true) return []
    const ep = rec.endpointId === undefined ? undefined : this.state.endpoints[rec.endpointId]
    const has = (ip: string | undefined): boolean => ip !== undefined && ip !== ''
    const v4 = ep === undefined ? net.gateway !== undefined : has(ep.address)
    const v6 = ep !== undefined && has(ep.address6)
    return [v4 ? net.gateway : undefined, v6 ? net.gateway6 : undefined].filter((ip): ip is string => ip !== undefined)
  }

  /** A network by ferry name, id or unique id prefix (src/util/resolve.ts); 'bridge' is the default network. */
  network (key: string, minPrefix = 1): NetworkRecord {
    const cands = this.d.driver.networks().map((n) => ({ id: n.id, name: this.names[n.id] ?? '', net: n }))
    if (key === DEFAULT_NETWORK && !cands.some((c) => c.name === key)) {
      throw new FerryError('NETWORK_NOT_FOUND', 'the agent has no default network: start it with --bridge NAME (and --bip CIDR), or give --net NETWORK')
    }
    return resolveNetwork(key, cands, minPrefix).net
  }

  /** A container's record after following `--net container:` to the one that owns the namespace. */
  private owner (c: ContainerRecord): ContainerRecord {
    let cur = c
    for (let i = 0; i < 16 && cur.sharesWith !== undefined; i++) {
      const next = this.records[cur.sharesWith]
      if (!next) break
      cur = next
    }
    return cur
  }

  /**
   * The links the firewall must allow (ICC exceptions), derived from the records:
   * one per family both containers have an address in. The IPv6 one's id is the IPv4
   * one's behind `6-`, which no IPv4 id starts with (those start with 12 hex digits).
   */
  desiredLinks (): NatLink[] {
    const out: NatLink[] = []
    for (const parent of this.containers()) {
      if (parent.mode !== 'network') continue
      for (const l of parent.links) {
        const named = this.records[l.name]
        if (!named) continue
        const child = this.owner(named)
        if (child.networkId !== parent.networkId) continue
        const ports = [...child.exposed, ...(named === child ? [] : named.exposed)]
        const id = `${parent.id.slice(0, 12)}-${l.alias}`.slice(0, 126)
        if (parent.address !== undefined && child.address !== undefined) {
          out.push({ id, networkId: parent.networkId!, parentIp: parent.address, childIp: child.address, ports })
        }
        if (parent.address6 !== undefined && child.address6 !== undefined) {
          out.push({ id: `6-${id}`, networkId: parent.networkId!, parentIp: parent.address6, childIp: child.address6, ports })
        }
      }
    }
    return out
  }

  // ---------------------------------------------------------------- attach

  async attach (spec: AttachSpec): Promise<AttachResult> {
    return this.mutex.run(async () => {
      const existing = this.records[spec.name]
      if (existing) return this.reattach(existing, spec)
      const warnings: string[] = []
      const id = newId()
      const netnsPath = spec.target.kind === 'pid' ? `/proc/${spec.target.pid}/ns/net` : spec.target.path
      const rec: ContainerRecord = {
        id,
        name: spec.name,
        owner: spec.owner,
        mode: spec.mode.kind,
        netns: netnsPath,
        ifname: spec.ifname,
        aliases: spec.aliases,
        links: spec.links,
        exposed: spec.exposed,
        hostname: spec.hostname !== '' ? spec.hostname : id.slice(0, 12),
        dns: spec.dns,
        dnsSearch: spec.dnsSearch,
        createdAt: this.now(),
      }
      if (spec.env.length > 0) rec.env = spec.env
      if (spec.detached) rec.detached = true
      if (spec.target.kind === 'pid') rec.pid = spec.target.pid
      const watchPid = spec.watchPid
      if (watchPid !== undefined) {
        const startTime = await this.d.ns.startTime(watchPid)
        if (startTime === undefined) throw new FerryError('INVALID_REQUEST', `process ${watchPid} does not exist`)
        rec.watch = { pid: watchPid, startTime }
      }
      let enterPid: number | undefined
      await withUndo(async (undo) => {
        if (spec.mode.kind === 'container') {
          const target = this.owner(this.container(spec.mode.container))
          if (target.mode === 'container') throw new FerryError('INVALID_REQUEST', `container ${target.name} has no namespace of its own`)
          rec.sharesWith = target.name
          rec.netns = target.netns
          rec.hostname = target.hostname
          enterPid = target.pid
          if (target.pid !== undefined) rec.pid = target.pid
          else delete rec.pid
        } else if (spec.mode.kind === 'host') {
          rec.hostname = (this.d.hostname ?? osHostname)()
          if (spec.ports.length > 0) warnings.push('WARNING: Published ports are discarded when using host network mode')
        } else {
          await this.d.ns.checkForeignNetns(netnsPath)
          if (spec.mode.kind === 'none') await this.d.ns.loopbackUp(netnsPath)
          else await this.connect(rec, spec, netnsPath, undo)
        }
        const linked = this.resolveLinks(rec)
        if (rec.mode !== 'container' && rec.mode !== 'host') {
          rec.filesDir = path.join(this.d.filesDir, id)
          undo.push('remove generated files', () => fs.rm(rec.filesDir!, { recursive: true, force: true }))
          const files = await this.writeFiles(rec, spec, linked)
          if (spec.setupFiles) await this.d.ns.setupFiles(rec.pid!, files, rec.hostname)
        }
        if (spec.detached) {
          const log = rec.log = path.join(this.logsDir(), `${rec.name}.log`)
          await fs.mkdir(path.dirname(log), { recursive: true, mode: 0o700 })
          await fs.writeFile(log, '', { mode: 0o600 })
          undo.push('remove the log', () => fs.rm(log, { force: true }))
        }
        this.records[rec.name] = rec
        const changed = ['containers', rec.name]
        undo.push('forget container', async () => { delete this.records[rec.name]; await this.d.store.commit(changed) })
        await this.d.store.commit(changed)
        await this.syncLinks()
      }, this.undoLog)
      this.d.onChange?.()
      this.d.log.info({ container: rec.name, mode: rec.mode, network: rec.networkId, address: rec.address, netns: rec.netns }, 'container attached')
      return this.result(rec, warnings, enterPid)
    })
  }

  /** The same name again: the same request is answered from the record (idempotent); anything else is a conflict. */
  private reattach (rec: ContainerRecord, spec: AttachSpec): AttachResult {
    const netns = spec.target.kind === 'pid' ? `/proc/${spec.target.pid}/ns/net` : spec.target.path
    const sameNetwork = (): boolean => {
      if (spec.mode.kind !== 'network') return true
      try { return this.network(spec.mode.network).id === rec.networkId } catch { return false }
    }
    const same = rec.mode === spec.mode.kind && (rec.mode === 'container' || rec.netns === netns) && sameNetwork()
    if (!same) throw new FerryError('NAME_CONFLICT', `the name "${rec.name}" is already used by container ${rec.id.slice(0, 12)}: detach it first (ferry detach ${rec.name})`)
    return this.result(rec, [], this.owner(rec).pid)
  }

  private result (rec: ContainerRecord, warnings: string[], enterPid?: number): AttachResult {
    const env: Record<string, string> = { HOSTNAME: rec.hostname }
    for (const l of this.resolveLinks(rec)) Object.assign(env, linkEnv(rec.name, l.alias, l.address, l.exposed, l.env))
    const out: AttachResult = { container: rec, env, warnings }
    if (enterPid !== undefined) out.enterPid = enterPid
    return out
  }

  /** Address, endpoint, veth into the namespace, ports. */
  private async connect (rec: ContainerRecord, spec: AttachSpec, netnsPath: string, undo: UndoStack): Promise<void> {
    const net = this.network(spec.mode.kind === 'network' ? spec.mode.network : DEFAULT_NETWORK)
    const cidr = await this.allocateAddress4(net, spec.ip)
    if (cidr !== undefined) undo.push(`release ${cidr}`, () => this.releaseAddress(net.poolId!, addrOf(cidr)))
    const cidr6 = await this.allocateAddress6(net, spec.ip6)
    if (cidr6 !== undefined) undo.push(`release ${cidr6}`, () => this.releaseAddress(net.poolId6!, addrOf(cidr6)))
    const endpointId = newId()
    await this.d.driver.createEndpoint({
      networkId: net.id, endpointId, ...(cidr === undefined ? {} : { addressCidr: cidr }), ...(cidr6 === undefined ? {} : { addressCidr6: cidr6 }), mac: '', portRequests: spec.ports, exposed: spec.exposed,
    })
    undo.push('delete endpoint', () => this.d.driver.deleteEndpoint(net.id, endpointId))
    const ep = this.state.endpoints[endpointId]!
    const join = await this.d.driver.join(net.id, endpointId, netnsPath)
    await this.d.ns.moveLink(ep.containerVeth, netnsPath)
    await this.d.ns.configure(netnsPath, {
      dev: join.srcName, ifname: spec.ifname, ...(cidr === undefined ? {} : { cidr, gateway: join.gateway }), ...(cidr6 === undefined ? {} : { cidr6, gateway6: join.gateway6 }),
    })
    if (spec.ports.length > 0) await this.d.driver.programExternalConnectivity(net.id, endpointId, spec.ports)
    rec.networkId = net.id
    rec.endpointId = endpointId
    if (cidr !== undefined) {
      rec.address = addrOf(cidr)
      rec.prefixLen = prefixOf(cidr)
      if (join.gateway !== undefined) rec.gateway = join.gateway
    }
    if (cidr6 !== undefined) {
      rec.address6 = addrOf(cidr6)
      rec.prefixLen6 = prefixOf(cidr6)
      if (join.gateway6 !== undefined) rec.gateway6 = join.gateway6
    }
    rec.mac = ep.mac
    rec.hostVeth = ep.hostVeth
  }

  /** The endpoint's IPv4 address (with prefix); undefined on an IPv6-only network, where --ip is refused. */
  private async allocateAddress4 (net: NetworkRecord, ip: string | undefined): Promise<string | undefined> {
    if (net.poolId === undefined) {
      if (ip !== undefined) throw new FerryError('INVALID_REQUEST', `--ip ${ip}: network ${this.names[net.id] ?? net.id.slice(0, 12)} is IPv6-only (created with --ipv4=false): give --ip6`)
      return undefined
    }
    return await this.allocateAddress(net.poolId, ip)
  }

  /** An address of the pool (either family): from the cluster when the pool is an overlay's, else from ferry's IPAM. */
  private async allocateAddress (poolId: string, ip: string | undefined): Promise<string> {
    const overlay = this.d.driver.overlayOfPool(poolId)
    if (overlay !== undefined) return this.d.driver.requestOverlayAddress(poolId, overlay, ip ?? '', false)
    const r = await this.d.ipam.requestAddress({ poolId, address: ip ?? '', options: null })
    return r.address
  }

  /** The endpoint's IPv6 address (with prefix) on a dual-stack or IPv6-only network; undefined on an IPv4-only one, where --ip6 is refused. */
  private async allocateAddress6 (net: NetworkRecord, ip6: string | undefined): Promise<string | undefined> {
    if (net.poolId6 === undefined) {
      if (ip6 !== undefined) throw new FerryError('INVALID_REQUEST', `--ip6 ${ip6}: network ${this.names[net.id] ?? net.id.slice(0, 12)} has no IPv6 subnet (create it with --ipv6)`)
      return undefined
    }
    return await this.allocateAddress(net.poolId6, ip6)
  }

  private async releaseAddress (poolId: string, ip: string): Promise<void> {
    const overlay = this.d.driver.overlayOfPool(poolId)
    if (overlay !== undefined) await this.d.driver.releaseOverlayAddress(overlay, ip)
    await this.d.ipam.releaseAddress(poolId, ip)
  }

  /** The linked containers, checked: each must be attached, on the same network. */
  private resolveLinks (rec: ContainerRecord): Array<{ alias: string, name: string, id: string, address: string, exposed: ContainerRecord['exposed'], env: string[] }> {
    return rec.links.map((l) => {
      const named = this.records[l.name]
      if (!named) throw new FerryError('ENDPOINT_NOT_FOUND', `--link ${l.name}:${l.alias}: no container "${l.name}" is attached through ferry`)
      const child = this.owner(named)
      // Its IPv4 address, or its IPv6 one on an IPv6-only network.
      const address = child.address ?? child.address6
      if (rec.mode !== 'network' || child.networkId !== rec.networkId || address === undefined) {
        throw new FerryError('INVALID_REQUEST', `--link ${l.name}:${l.alias}: container ${l.name} is not on the same network as ${rec.name}`)
      }
      return {
        alias: l.alias, name: named.name, id: named.id, address,
        exposed: [...child.exposed, ...(named === child ? [] : named.exposed)], env: named.env ?? [],
      }
    })
  }

  private async writeFiles (rec: ContainerRecord, spec: AttachSpec, linked: ReturnType<RuntimeService['resolveLinks']>): Promise<{ hosts: string, resolv: string }> {
    const dir = rec.filesDir!
    await fs.mkdir(dir, { recursive: true, mode: 0o755 })
    const hosts = path.join(dir, 'hosts')
    const resolv = path.join(dir, 'resolv.conf')
    await fs.writeFile(hosts, renderHosts({ hostname: rec.hostname, address: rec.address, ...(rec.address6 === undefined ? {} : { address6: rec.address6 }), links: linked }), { mode: 0o644 })
    let hostText = ''
    try { hostText = await (this.d.hostResolvConf ?? (() => fs.readFile('/etc/resolv.conf', 'utf8')))() } catch { /* none: fallback servers */ }
    const defaults = this.d.dns ?? { servers: [], search: [], options: [] }
    const gateways = this.dnsServersOf(rec)
    const conf = containerResolvConf(parseResolvConf(hostText), {
      nameservers: spec.dns.length > 0 ? spec.dns : gateways.length > 0 ? gateways : defaults.servers,
      search: spec.dnsSearch.length > 0 ? spec.dnsSearch : defaults.search,
      options: spec.dnsOptions.length > 0 ? spec.dnsOptions : defaults.options,
    })
    await fs.writeFile(resolv, renderResolvConf(conf), { mode: 0o644 })
    return { hosts, resolv }
  }

  /** Bring the firewall's links in line with the records. */
  private async syncLinks (): Promise<void> {
    const want = this.desiredLinks()
    const ids = new Set(want.map((l) => l.id))
    for (const id of this.d.firewall.linkIds()) if (!ids.has(id)) await this.d.firewall.removeLink(id)
    for (const l of want) await this.d.firewall.allowLink(l)
  }

  private logsDir (): string {
    return this.d.logsDir ?? path.join(path.dirname(this.d.filesDir), 'logs')
  }

  // ---------------------------------------------------------------- processes

  /**
   * ferry run reports the command it started. `ferry stop`/`rm` signal it from now
   * on; for a detached command the watchdog follows it too, and the container's
   * namespaces are entered through it (the holder that made them exits with
   * ferry run -d). The process must be in the container's network namespace.
   */
  async setProcess (name: string, pid: number): Promise<ContainerRecord> {
    return this.mutex.run(async () => {
      const rec = this.records[name]
      if (!rec) throw new FerryError('ENDPOINT_NOT_FOUND', `no container "${name}" is attached through ferry`)
      if (rec.owner !== 'run') throw new FerryError('INVALID_REQUEST', `container ${name} was not started by ferry run`)
      const startTime = await this.d.ns.startTime(pid)
      if (startTime === undefined) throw new FerryError('INVALID_REQUEST', `process ${pid} does not exist (it exited)`)
      const inside = await this.d.ns.sameNamespace(`/proc/${pid}/ns/net`, rec.netns).catch(() => false)
      if (!inside) throw new FerryError('INVALID_REQUEST', `process ${pid} is not in the network namespace of ${name}`)
      rec.process = { pid, startTime }
      if (rec.detached === true) {
        rec.watch = { pid, startTime }
        if (rec.mode !== 'container') {
          rec.pid = pid
          rec.netns = `/proc/${pid}/ns/net`
        }
      }
      await this.d.store.commit(['containers', name])
      this.d.log.info({ container: name, pid, detached: rec.detached === true }, 'container process started')
      return rec
    })
  }

  /**
   * `ferry stop` / `ferry rm` of a ferry run container: SIGTERM to its command (to
   * its process group when detached), SIGKILL once the grace period is over (at
   * once with graceMs 0), then detach. `removeLog` deletes a detached command's log.
   * Containers of ferry attach and of CNI runtimes are refused: their runtime owns
   * the processes. A container already gone whose log is left: `removeLog` deletes
   * it. Returns the container's name.
   */
  async stopContainer (key: string, opts: StopOptions): Promise<string> {
    let rec: ContainerRecord
    try {
      rec = this.container(key)
    } catch (err) {
      if (opts.removeLog && await this.removeLeftLog(key)) return key
      throw err
    }
    if (rec.owner !== 'run') {
      throw new FerryError('INVALID_REQUEST', `${rec.name} was attached by ${rec.owner === 'cni' ? 'a CNI runtime' : 'ferry attach'}, which owns its processes: ferry detach ${rec.name} takes its network away`)
    }
    if (rec.process !== undefined) await this.terminate(rec.name, rec.process, opts.graceMs)
    await this.detach(rec.name, opts.graceMs === 0 ? 'killed' : 'stopped')
    if (opts.removeLog && rec.log !== undefined) await fs.rm(rec.log, { force: true })
    return rec.name
  }

  /** SIGTERM, wait, SIGKILL, wait; a process already gone is fine. */
  private async terminate (name: string, proc: ProcessRef, graceMs: number): Promise<void> {
    if (graceMs > 0) {
      if (!await this.d.ns.signal(proc, 'SIGTERM')) return
      if (await this.exitedWithin(proc, graceMs)) return
    }
    if (!await this.d.ns.signal(proc, 'SIGKILL')) return
    if (await this.exitedWithin(proc, KILL_WAIT_MS)) return
    throw new FerryError('KERNEL', `process ${proc.pid} of ${name} is still there ${KILL_WAIT_MS / 1000} s after SIGKILL`)
  }

  private async exitedWithin (proc: ProcessRef, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    for (;;) {
      if (await this.d.ns.startTime(proc.pid) !== proc.startTime) return true
      if (Date.now() >= deadline) return false
      await sleep(Math.min(50, Math.max(1, deadline - Date.now())))
    }
  }

  /** The log a detached command left when it exited by itself, deleted; false when there is none. */
  private async removeLeftLog (name: string): Promise<boolean> {
    try {
      await fs.rm(path.join(this.logsDir(), `${validateName(name)}.log`))
      return true
    } catch {
      return false
    }
  }

  // ---------------------------------------------------------------- detach

  /** Undo an attach. Unknown names succeed (false). Keeps going past failures and reports them together. */
  async detach (key: string, why = 'requested'): Promise<boolean> {
    return this.mutex.run(async () => {
      const rec = this.records[key] ?? this.find(key)
      return rec === undefined ? false : this.detachNow(rec.name, why)
    })
  }

  private async detachNow (name: string, why: string): Promise<boolean> {
    const rec = this.records[name]
    if (!rec) return false
    const errors = new ErrorList()
    if (rec.networkId !== undefined && rec.endpointId !== undefined) {
      const net = this.state.networks[rec.networkId]
      const networkId = rec.networkId
      const endpointId = rec.endpointId
      await errors.run('delete the endpoint', () => this.d.driver.deleteEndpoint(networkId, endpointId))
      const pool4 = net?.poolId
      if (pool4 !== undefined && rec.address !== undefined) await errors.run(`release ${rec.address}`, () => this.releaseAddress(pool4, rec.address!))
      const pool6 = net?.poolId6
      if (pool6 !== undefined && rec.address6 !== undefined) await errors.run(`release ${rec.address6}`, () => this.releaseAddress(pool6, rec.address6!))
    }
    delete this.records[name]
    await errors.run('save the state', () => this.d.store.commit(['containers', name]))
    await errors.run('update link rules', () => this.syncLinks())
    if (rec.filesDir !== undefined) await errors.run('remove generated files', () => fs.rm(rec.filesDir!, { recursive: true, force: true }))
    this.d.log.info({ container: name, why }, 'container detached')
    this.d.onChange?.()
    errors.throwIfAny(`detach of ${name} was incomplete`)
    return true
  }

  // ---------------------------------------------------------------- watch

  /**
   * One pass of the watchdog: detach containers whose watched process exited
   * (or was replaced by another with the same pid), and those whose veth is
   * gone (their namespace was destroyed). Returns the names detached.
   */
  async watchOnce (): Promise<string[]> {
    const gone: Array<{ name: string, why: string }> = []
    if (this.containers().length === 0) return []
    const linkNames = new Set((await this.d.links.listLinks()).map((l) => l.name))
    for (const rec of this.containers()) {
      if (rec.watch !== undefined) {
        const st = await this.d.ns.startTime(rec.watch.pid)
        if (st !== rec.watch.startTime) { gone.push({ name: rec.name, why: `process ${rec.watch.pid} exited` }); continue }
      }
      if (rec.endpointId !== undefined) {
        const ep = this.state.endpoints[rec.endpointId]
        if (!ep) gone.push({ name: rec.name, why: 'its endpoint was deleted' })
        else if (!linkNames.has(ep.hostVeth)) gone.push({ name: rec.name, why: 'its network namespace is gone' })
      }
    }
    for (const g of gone) {
      try {
        await this.detach(g.name, g.why)
      } catch (err) {
        this.d.log.error({ err, container: g.name }, 'detach by the watchdog failed')
      }
    }
    return gone.map((g) => g.name)
  }

  /** Run a pass now, then every intervalMs. */
  async start (intervalMs: number): Promise<void> {
    await this.watchOnce()
    if (intervalMs <= 0) return
    this.timer = setInterval(() => {
      if (this.watching) return
      this.watching = true
      void this.watchOnce().catch((err: unknown) => this.d.log.error({ err }, 'watchdog pass failed')).finally(() => { this.watching = false })
    }, intervalMs)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer) clearInterval(this.timer)
  }

  // ---------------------------------------------------------------- networks

  async createNetwork (spec: NetworkCreateSpec): Promise<NetworkRecord> {
    validateNetworkName(spec.name)
    if (spec.name === DEFAULT_NETWORK) throw new FerryError('INVALID_OPTION', `"${DEFAULT_NETWORK}" is the default network: the agent makes it from its --bridge flags`)
    return this.mutex.run(() => this.createNetworkNow(spec))
  }

  private async createNetworkNow (spec: NetworkCreateSpec): Promise<NetworkRecord> {
    if (Object.values(this.names).includes(spec.name)) throw new FerryError('NAME_CONFLICT', `a ferry network named ${spec.name} already exists`)
    checkNetworkSpec(spec)
    const ipam = this.d.ipam
    return withUndo(async (undo) => {
      const side = async (v6: boolean, subnet = '', ipRange = '', gateway = ''): Promise<{ pool: string, gateway: string }> => {
        const pool = await ipam.requestPool({ addressSpace: ipam.addressSpaces().LocalDefaultAddressSpace, pool: subnet, subPool: ipRange, options: {}, v6 })
        undo.push(`release pool ${pool.pool}`, () => ipam.releasePool(pool.poolId))
        const gw = await ipam.requestAddress({ poolId: pool.poolId, address: gateway, options: { [REQUEST_ADDRESS_TYPE]: GATEWAY_ADDRESS_TYPE } })
        undo.push(`release gateway ${gw.address}`, () => ipam.releaseAddress(pool.poolId, gw.address))
        return { pool: pool.pool, gateway: gw.address }
      }
      const v4 = spec.ipv4 === false ? undefined : await side(false, spec.subnet, spec.ipRange, spec.gateway)
      const v6 = spec.ipv6 === true ? await side(true, spec.subnet6, spec.ipRange6, spec.gateway6) : undefined
      const id = newId()
      // Touched now: the driver's own commit carries it (and the store's verify mode sees it named).
      this.names[id] = spec.name
      this.d.store.touch(['networkNames', id])
      undo.push('forget the name', async () => { delete this.names[id]; await this.d.store.commit(['networkNames', id]) })
      await this.d.driver.createNetwork({
        id, generic: spec.options, internal: spec.internal, extraIpv4Data: 0,
        ...(v4 === undefined ? { ipv4: false } : { subnet: v4.pool, gatewayCidr: v4.gateway }),
        ...(v6 === undefined ? { ipv6: false } : { ipv6: true, subnet6: v6.pool, gatewayCidr6: v6.gateway }),
      })
      await this.d.store.commit(['networkNames', id])
      this.d.log.info({ network: id, name: spec.name, subnet: v4?.pool, subnet6: v6?.pool }, 'network created by ferry')
      return this.d.driver.network(id)
    }, this.undoLog)
  }

  async removeNetwork (key: string): Promise<void> {
    return this.mutex.run(() => this.removeNetworkNow(this.network(key, RUNTIME_MIN_PREFIX)))
  }

  private async removeNetworkNow (net: NetworkRecord): Promise<void> {
    const name = this.names[net.id]
    if (name === undefined) throw new FerryError('INVALID_REQUEST', `network ${net.id.slice(0, 12)} was created by the Docker engine: remove it with docker network rm`)
    const users = this.containers().filter((c) => c.networkId === net.id).map((c) => c.name)
    const others = this.d.driver.endpoints(net.id).length - users.length
    if (users.length > 0 || others > 0) {
      throw new FerryError('NAME_CONFLICT', `network ${name} has active endpoints${users.length > 0 ? ` (${users.join(', ')})` : ''}: detach them first`)
    }
    await this.d.driver.deleteNetwork(net.id)
    const errors = new ErrorList()
    const pool = net.poolId
    if (pool !== undefined) {
      if (net.gateway !== undefined) await errors.run('release the gateway', () => this.d.ipam.releaseAddress(pool, net.gateway!))
      await errors.run('release the pool', () => this.d.ipam.releasePool(pool))
    }
    const pool6 = net.poolId6
    if (pool6 !== undefined) {
      if (net.gateway6 !== undefined) await errors.run('release the IPv6 gateway', () => this.d.ipam.releaseAddress(pool6, net.gateway6!))
      await errors.run('release the IPv6 pool', () => this.d.ipam.releasePool(pool6))
    }
    delete this.names[net.id]
    await errors.run('save the state', () => this.d.store.commit(['networkNames', net.id]))
    this.d.log.info({ network: net.id, name }, 'network removed')
    errors.throwIfAny(`removal of network ${name} was incomplete`)
  }

  /**
   * The default network from the agent's flags. Absent flags (or --bridge none):
   * ferry has no default network, and removes the one it made earlier if nothing
   * uses it. A device of that name that is not ferry's is never taken over.
   */
  async ensureDefaultNetwork (cfg: DefaultBridgeConfig | undefined): Promise<void> {
    return this.mutex.run(async () => {
      const id = Object.entries(this.names).find(([, n]) => n === DEFAULT_NETWORK)?.[0]
      const existing = id === undefined ? undefined : this.state.networks[id]
      if (id !== undefined && !existing) {
        delete this.names[id]
        this.d.store.touch(['networkNames', id])
      }
      if (existing && (cfg === undefined || !matchesDefault(existing, cfg))) {
        if (this.d.driver.endpoints(existing.id).length > 0) {
          if (cfg === undefined) {
            this.d.log.warn({ bridge: existing.bridge }, 'the default network is in use: it stays until its containers are detached')
            return
          }
          throw new FerryError('INVALID_OPTION', `the default network (bridge ${existing.bridge}, ${existing.subnet ?? existing.subnet6 ?? '?'}) has containers attached and differs from the flags: detach them, or start the agent with the flags it was made with`)
        }
        await this.removeNetworkNow(existing)
      } else if (existing) {
        return
      }
      if (cfg === undefined) return
      const link = await this.d.links.getLink(cfg.bridge)
      if (link) {
        throw new FerryError('NAME_CONFLICT', `a ${link.kind ?? 'network'} device named ${cfg.bridge} already exists and is not ferry's (dockerd's default bridge?): ` +
          'ferry will not take it over. Remove it or stop what owns it, give the agent another --bridge NAME, or leave --bridge out (--bridge none)')
      }
      const options: Record<string, string> = {
        'com.docker.network.bridge.name': cfg.bridge,
        'com.docker.network.bridge.enable_icc': String(cfg.icc),
        'com.docker.network.bridge.enable_ip_masquerade': String(cfg.masquerade),
      }
      if (cfg.mtu !== undefined) options['com.docker.network.driver.mtu'] = String(cfg.mtu)
      const spec: NetworkCreateSpec = { name: DEFAULT_NETWORK, internal: false, options }
      if (cfg.bip !== undefined) {
        spec.subnet = canonical(cfg.bip)
        spec.gateway = addrOf(cfg.bip)
      }
      if (cfg.ipv6 === true) {
        spec.ipv6 = true
        if (cfg.fixedCidr6 !== undefined) spec.subnet6 = canonical(cfg.fixedCidr6)
      }
      await this.createNetworkNow(spec)
    })
  }
}

function matchesDefault (n: NetworkRecord, cfg: DefaultBridgeConfig): boolean {
  return n.bridge === cfg.bridge && n.icc === cfg.icc && n.masquerade === cfg.masquerade &&
    (cfg.mtu === undefined || n.mtu === cfg.mtu) &&
    (cfg.bip === undefined || (n.subnet === canonical(cfg.bip) && n.gateway === addrOf(cfg.bip))) &&
    (cfg.ipv6 === true) === (n.subnet6 !== undefined) &&
    (cfg.fixedCidr6 === undefined || n.subnet6 === canonical(cfg.fixedCidr6))
}

/** The address options of `ferry network create`, each of its family; the IPv6 ones only with --ipv6. */
function checkNetworkSpec (spec: NetworkCreateSpec): void {
  const fields = [['--subnet', spec.subnet, 4], ['--ip-range', spec.ipRange, 4], ['--subnet', spec.subnet6, 6], ['--ip-range', spec.ipRange6, 6]] as const
  for (const [what, v, family] of fields) {
    if (v !== undefined && !isCidr(v, family)) throw new FerryError('INVALID_CIDR', `${what} ${v} is not IPv${family} CIDR notation`)
  }
  const v6Given = [spec.subnet6, spec.ipRange6, spec.gateway6].find((v) => v !== undefined)
  if (v6Given !== undefined && spec.ipv6 !== true) {
    throw new FerryError('INVALID_OPTION', `${v6Given} is an IPv6 setting but the network is not dual-stack: add --ipv6`)
  }
  if (spec.ipv4 === false && spec.ipv6 !== true) {
    throw new FerryError('INVALID_OPTION', 'a network needs at least one address family: --ipv4=false takes --ipv6 (an IPv6-only network)')
  }
  const v4Given = [spec.subnet, spec.ipRange, spec.gateway].find((v) => v !== undefined)
  if (v4Given !== undefined && spec.ipv4 === false) {
    throw new FerryError('INVALID_OPTION', `${v4Given} is an IPv4 setting but the network is IPv6-only (--ipv4=false)`)
  }
}
