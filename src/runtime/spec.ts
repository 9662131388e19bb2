/**
 * Pure parsing of runtime requests: Docker's option syntax (`-p`, `--expose`,
 * `--link`, `--net`, `-e`, `--env-file`) and the admin API's attach body, into
 * ferry's validated AttachSpec. Every error is a FerryError with a sentence that
 * names the option.
 */
import { FerryError } from '../errors/errors.js'
import { isIp } from '../util/ip.js'
import type { ExposedPort, PortRequest, Protocol } from '../model/types.js'
import { validateIfName } from '../bridge/names.js'
import type { AttachSpec, LinkSpec, NetMode, NetnsTarget } from './types.js'

/** The attach body of the admin API (POST /v1/containers), as JSON. */
export interface AttachWire {
  name: string
  netns?: string
  pid?: number
  /** 'bridge' (default network), 'none', 'container:NAME' or a ferry network. */
  net: string
  ifname?: string
  ip?: string
  /** --ip6: the IPv6 address on a dual-stack network. */
  ip6?: string
  /** Docker's -p syntax: [ip:][hostPort[-end]:]containerPort[-end][/proto]. */
  publish?: string[]
  publishAll?: boolean
  /** Docker's --expose syntax: port[-end][/proto]. */
  expose?: string[]
  aliases?: string[]
  /** NAME:ALIAS or NAME. */
  links?: string[]
  dns?: string[]
  dnsSearch?: string[]
  dnsOptions?: string[]
  hostname?: string
  setupFiles?: boolean
  owner?: 'run' | 'attach' | 'cni'
  watchPid?: number
  /** The command's variables, KEY=VALUE (ferry run -e): kept for the *_ENV_* variables of links to it. */
  env?: string[]
  /** ferry run -d: the agent names a log file for the command's output. */
  detached?: boolean
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/
const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/
const DNS_NAME_RE = /^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,252})$/
const RESERVED = new Set(['host', 'none', 'default'])

function bad (msg: string): FerryError {
  return new FerryError('INVALID_OPTION', msg)
}

/** A container name as Docker accepts it. */
export function validateName (name: string, what = 'container name'): string {
  if (!NAME_RE.test(name)) throw bad(`${what} "${name}" is not valid: use letters, digits, '_', '.' or '-', starting with a letter or digit`)
  return name
}

/** A ferry network name: like a container name, and not one of Docker's mode words. */
export function validateNetworkName (name: string): string {
  validateName(name, 'network name')
  if (RESERVED.has(name) || name.startsWith('container:')) throw bad(`"${name}" is a network mode, not a name a network can have`)
  return name
}

function parseProto (s: string | undefined, what: string): Protocol {
  const p = (s ?? 'tcp').toLowerCase()
  if (p !== 'tcp' && p !== 'udp' && p !== 'sctp') throw bad(`${what}: protocol "${s ?? ''}" is not tcp, udp or sctp`)
  return p
}

function parsePort (s: string, what: string): number {
  if (!/^\d{1,5}$/.test(s)) throw bad(`${what}: "${s}" is not a port number`)
  const n = Number(s)
  if (n < 1 || n > 65535) throw bad(`${what}: port ${n} is outside 1-65535`)
  return n
}

function parseRange (s: string, what: string): [number, number] {
  const [a, b, ...rest] = s.split('-')
  if (a === undefined || rest.length > 0) throw bad(`${what}: "${s}" is not a port or a range of ports`)
  const lo = parsePort(a, what)
  const hi = b === undefined ? lo : parsePort(b, what)
  if (hi < lo) throw bad(`${what}: the range ${s} ends before it starts`)
  return [lo, hi]
}

/** `--expose 5432`, `--expose 7000-7002/udp`: one entry per port, sorted. */
export function parseExpose (spec: string): ExposedPort[] {
  const what = `--expose ${spec}`
  const [ports, proto, ...rest] = spec.split('/')
  if (ports === undefined || rest.length > 0) throw bad(`${what}: expected PORT[-END][/PROTO]`)
  const p = parseProto(proto, what)
  const [lo, hi] = parseRange(ports, what)
  if (hi - lo >= 10000) throw bad(`${what}: at most 10000 ports in one range`)
  const out: ExposedPort[] = []
  for (let n = lo; n <= hi; n++) out.push({ proto: p, port: n })
  return out
}

/**
 * `-p` as Docker reads it: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
 * `8000-8010:80`, `8000-8001:80-81/udp`. Host port 0 = ferry picks one.
 */
export function parsePublish (spec: string): PortRequest {
  const what = `-p ${spec}`
  const slash = spec.lastIndexOf('/')
  const body = slash < 0 ? spec : spec.slice(0, slash)
  const proto = parseProto(slash < 0 ? undefined : spec.slice(slash + 1), what)
  const parts = body.split(':')
  let hostIp = ''
  let hostPart = ''
  let ctrPart: string
  if (parts.length === 1) {
    ctrPart = parts[0]!
  } else if (parts.length === 2) {
    hostPart = parts[0]!
    ctrPart = parts[1]!
  } else if (parts.length === 3) {
    hostIp = parts[0]!
    hostPart = parts[1]!
    ctrPart = parts[2]!
  } else {
    throw bad(`${what}: expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO] (IPv6 host addresses are not supported)`)
  }
  if (hostIp !== '' && !isIp(hostIp, 4)) throw bad(`${what}: "${hostIp}" is not an IPv4 address`)
  if (hostIp === '0.0.0.0') hostIp = ''
  const [cLo, cHi] = parseRange(ctrPart, what)
  if (hostPart === '') return { proto, containerPort: cLo, containerPortEnd: cHi, hostIp, hostPort: 0, hostPortEnd: 0 }
  const [hLo, hHi] = parseRange(hostPart, what)
  if (cHi !== cLo && hHi - hLo !== cHi - cLo) throw bad(`${what}: host and container port ranges differ in length`)
  return { proto, containerPort: cLo, containerPortEnd: cHi, hostIp, hostPort: hLo, hostPortEnd: hHi }
}

/** `--link db:database` or `--link db` (the alias is the name). */
export function parseLink (spec: string): LinkSpec {
  const [name, alias, ...rest] = spec.split(':')
  if (name === undefined || name === '' || rest.length > 0 || alias === '') throw bad(`--link ${spec}: expected NAME[:ALIAS]`)
  validateName(name, `--link ${spec}: container name`)
  const a = alias ?? name
  if (!DNS_NAME_RE.test(a)) throw bad(`--link ${spec}: alias "${a}" is not a valid host name`)
  return { name, alias: a }
}

/** `--net` / `--network` of attach and run. */
export function parseNetMode (net: string): NetMode {
  if (net === 'none') return { kind: 'none' }
  if (net === 'host') return { kind: 'host' }
  if (net.startsWith('container:')) {
    const container = net.slice('container:'.length)
    validateName(container, `--net ${net}: container name`)
    return { kind: 'container', container }
  }
  if (net === 'default' || net === '') return { kind: 'network', network: 'bridge' }
  validateName(net, 'network')
  return { kind: 'network', network: net }
}

function uniqueSorted (ports: ExposedPort[]): ExposedPort[] {
  const seen = new Map<string, ExposedPort>()
  for (const p of ports) seen.set(`${p.proto}/${p.port}`, p)
  return [...seen.values()].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port)
}

/** The ports a container exposes: --expose plus every published container port (as Docker counts them). */
export function exposedPorts (expose: ExposedPort[], publish: PortRequest[]): ExposedPort[] {
  const fromPublish = publish.flatMap((r) => {
    const out: ExposedPort[] = []
    for (let n = r.containerPort; n <= r.containerPortEnd; n++) out.push({ proto: r.proto, port: n })
    return out
  })
  return uniqueSorted([...expose, ...fromPublish])
}

function ipList (list: string[] | undefined, what: string): string[] {
  for (const ip of list ?? []) if (!isIp(ip, 4)) throw bad(`${what} ${ip}: not an IPv4 address`)
  return [...(list ?? [])]
}

function target (w: AttachWire): NetnsTarget {
  if ((w.netns === undefined) === (w.pid === undefined)) throw bad('give exactly one of --netns PATH and --pid PID')
  if (w.pid !== undefined) {
    if (!Number.isInteger(w.pid) || w.pid < 1) throw bad(`--pid ${w.pid}: not a process id`)
    return { kind: 'pid', pid: w.pid }
  }
  const path = w.netns!
  if (!path.startsWith('/') || path.includes('\0')) throw bad(`--netns ${path}: give an absolute path`)
  return { kind: 'path', path }
}

/** One variable of the command: a value, or undefined to leave it out of the command's environment. */
export interface EnvEntry { key: string, value: string | undefined }

export type EnvLookup = (key: string) => string | undefined

/**
 * `-e KEY=VALUE` or `-e KEY`, as `docker run -e` reads it: KEY alone takes the
 * value ferry run itself has; when it has none, KEY is left out of the command's
 * environment (even a value the agent gives, such as HOSTNAME).
 */
export function parseEnvOption (spec: string, lookup: EnvLookup): EnvEntry {
  const eq = spec.indexOf('=')
  const key = eq < 0 ? spec : spec.slice(0, eq)
  if (key === '') throw bad(`-e ${spec}: expected KEY=VALUE or KEY (the variable name is empty)`)
  if (spec.includes('\0')) throw bad(`-e ${key}: a variable cannot contain a NUL byte`)
  return { key, value: eq < 0 ? lookup(key) : spec.slice(eq + 1) }
}

/**
 * An `--env-file`, by Docker's rules: one KEY=VALUE per line, taken literally (no
 * quotes, no expansion, trailing spaces kept); leading white space, blank lines and
 * lines starting with # are skipped; KEY alone takes ferry run's own value and is
 * left out when it has none; a KEY with white space is an error.
 */
export function parseEnvFile (text: string, file: string, lookup: EnvLookup): EnvEntry[] {
  const out: EnvEntry[] = []
  const lines = text.replace(/^\uFEFF/, '').split('\n')
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').replace(/^\s+/, '')
    if (line === '' || line.startsWith('#')) return
    const where = `--env-file ${file}, line ${i + 1}`
    const eq = line.indexOf('=')
    const key = eq < 0 ? line : line.slice(0, eq)
    if (key === '') throw bad(`${where}: no variable name`)
    if (/\s/.test(key)) throw bad(`${where}: variable "${key}" contains white space`)
    if (line.includes('\0')) throw bad(`${where}: a variable cannot contain a NUL byte`)
    const value = eq >= 0 ? line.slice(eq + 1) : lookup(key)
    if (value !== undefined) out.push({ key, value })
  })
  return out
}

/**
 * Entries in order (env files first, then -e, as Docker reads them), later ones
 * winning: the KEY=VALUE list (first position of each key kept) and the keys to
 * leave out.
 */
export function mergeEnv (entries: readonly EnvEntry[]): { set: string[], unset: string[] } {
  const last = new Map<string, string | undefined>()
  for (const e of entries) last.set(e.key, e.value)
  const set: string[] = []
  const unset: string[] = []
  for (const [key, value] of last) {
    if (value === undefined) unset.push(key)
    else set.push(`${key}=${value}`)
  }
  return { set, unset }
}

/** The env list of an attach body: KEY=VALUE each, a key once (the last value, the first position). */
function envList (list: string[] | undefined): string[] {
  const entries = (list ?? []).map((kv): EnvEntry => {
    const eq = kv.indexOf('=')
    if (eq <= 0) throw bad(`env "${kv.slice(0, 64)}": expected KEY=VALUE`)
    if (kv.includes('\0')) throw bad(`env ${kv.slice(0, eq)}: a variable cannot contain a NUL byte`)
    return { key: kv.slice(0, eq), value: kv.slice(eq + 1) }
  })
  return mergeEnv(entries).set
}

/** --net host: only for ferry run, which gives its own process; nothing of a network applies. */
function checkHostMode (w: AttachWire, spec: AttachSpec): void {
  if (spec.owner !== 'run' || spec.target.kind !== 'pid') throw bad('--net host is for ferry run only: there is no namespace to attach')
  if (spec.links.length > 0) throw bad('conflicting options: host type networking cannot be used with links')
  if (spec.hostname !== '') throw bad('conflicting options: --hostname and --net host (the host\'s name is used)')
  if (spec.ip !== undefined || spec.ip6 !== undefined) throw bad(`--net ${w.net}: --ip${spec.ip === undefined ? '6' : ''} needs a network`)
  if (spec.aliases.length > 0) throw bad(`--net ${w.net}: --network-alias needs a network`)
  if (spec.setupFiles) throw bad('--net host uses the host\'s /etc/hosts and host name: there are no files to set up')
}

/** Validate an attach body into an AttachSpec. Pure. */
export function parseAttach (w: AttachWire): AttachSpec {
  validateName(w.name)
  const mode = parseNetMode(w.net)
  const publish = (w.publish ?? []).map(parsePublish)
  const expose = uniqueSorted((w.expose ?? []).flatMap(parseExpose))
  const ports = w.publishAll === true
    ? [...publish, ...expose.filter((e) => !publish.some((p) => p.proto === e.proto && e.port >= p.containerPort && e.port <= p.containerPortEnd))
        .map((e): PortRequest => ({ proto: e.proto, containerPort: e.port, containerPortEnd: e.port, hostIp: '', hostPort: 0, hostPortEnd: 0 }))]
    : publish
  const hostname = w.hostname ?? ''
  if (hostname !== '' && !HOSTNAME_RE.test(hostname)) throw bad(`-h ${hostname}: not a valid host name`)
  for (const a of w.aliases ?? []) if (!DNS_NAME_RE.test(a)) throw bad(`--network-alias ${a}: not a valid host name`)
  for (const s of w.dnsSearch ?? []) if (!DNS_NAME_RE.test(s)) throw bad(`--dns-search ${s}: not a valid domain`)
  for (const o of w.dnsOptions ?? []) if (!/^[a-zA-Z0-9_:.-]{1,64}$/.test(o)) throw bad(`--dns-option ${o}: not a resolv.conf option`)
  if (w.ip !== undefined && !isIp(w.ip, 4)) throw bad(`--ip ${w.ip}: not an IPv4 address`)
  if (w.ip6 !== undefined && !isIp(w.ip6, 6)) throw bad(`--ip6 ${w.ip6}: not an IPv6 address`)
  const spec: AttachSpec = {
    name: w.name,
    target: target(w),
    mode,
    ifname: validateIfName(w.ifname ?? 'eth0', 'interface name'),
    ports,
    exposed: exposedPorts(expose, ports),
    aliases: [...new Set(w.aliases ?? [])],
    links: (w.links ?? []).map(parseLink),
    dns: ipList(w.dns, '--dns'),
    dnsSearch: [...(w.dnsSearch ?? [])],
    dnsOptions: [...(w.dnsOptions ?? [])],
    hostname,
    setupFiles: w.setupFiles === true,
    owner: w.owner ?? 'attach',
    env: envList(w.env),
    detached: w.detached === true,
  }
  if (w.ip !== undefined) spec.ip = w.ip
  if (w.ip6 !== undefined) spec.ip6 = w.ip6
  if (w.watchPid !== undefined) {
    if (!Number.isInteger(w.watchPid) || w.watchPid < 1) throw bad(`watch pid ${w.watchPid}: not a process id`)
    spec.watchPid = w.watchPid
  }
  if (spec.detached && spec.owner !== 'run') throw bad('only ferry run starts detached commands')
  if (mode.kind === 'host') {
    checkHostMode(w, spec)
    return spec
  }
  if (mode.kind !== 'network') {
    if (ports.length > 0) throw bad(`--net ${w.net}: published ports need a network (Docker refuses them too)`)
    if (spec.ip !== undefined || spec.ip6 !== undefined) throw bad(`--net ${w.net}: --ip${spec.ip === undefined ? '6' : ''} needs a network`)
    if (spec.aliases.length > 0) throw bad(`--net ${w.net}: --network-alias needs a network`)
  }
  if (mode.kind === 'container') {
    if (spec.links.length > 0) throw bad(`--net ${w.net}: links cannot be used with a shared network namespace`)
    if (hostname !== '') throw bad(`--net ${w.net}: the hostname comes from the container whose namespace is shared`)
  }
  if (spec.setupFiles && spec.target.kind !== 'pid') throw bad('setting up /etc/hosts and the hostname needs a process (--pid)')
  return spec
}
