/**
 * The schemas of everything stored in or published through the cluster store,
 * shared by the write path (a host checks what it sends: the `check*`
 * functions throw FerryError with a sentence naming the bad input) and the read
 * path (the `read*` functions run the same checks on what comes back from the
 * store, plus the cluster key's MAC when one is in use, and answer a refusal
 * with a reason instead of throwing). Pure.
 */
import { FerryError } from '../errors/errors.js'
import { bounds, canonical, contains, familyName, ipString, ipValue, isIp, parseCidr, type Family, type Range } from '../util/ip.js'
import { VNI_MAX } from './backend.js'
import type { ClusterChange, ClusterEndpoint, ClusterPort, HostInfo, OverlayDefinition, OverlayRequest } from './types.js'
import type { ClusterKey, SignedKind } from './key.js'
import type { RejectReason } from './rejects.js'
import { readWireGuardContent, wireGuardContent, type WireGuardInfo } from '../wireguard/plan.js'

/** Overlay names as `-o ferry.overlay` accepts them (never '|' or ':', which key names use). */
export const OVERLAY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/
const HOST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const ENDPOINT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/
/** Overlays need room for a gateway and endpoints: /8 to /30, and /48 to /120 for the IPv6 side of a dual-stack one. */
export const MIN_PREFIX = 8
export const MAX_PREFIX = 30
export const MIN_PREFIX6 = 48
export const MAX_PREFIX6 = 120

export function checkHostId (hostId: string): string {
  if (!HOST_ID_RE.test(hostId)) {
    throw new FerryError('INVALID_OPTION', `host id "${hostId}" must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`)
  }
  return hostId
}

export function checkOverlayName (name: string): string {
  if (!OVERLAY_NAME_RE.test(name)) {
    throw new FerryError('INVALID_OPTION', `overlay name "${name}" must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit`)
  }
  return name
}

export function checkEndpointId (id: string): string {
  if (!ENDPOINT_ID_RE.test(id)) throw new FerryError('INVALID_REQUEST', `endpoint id "${id}" is not valid`)
  return id
}

export function checkIp (ip: string, what: string, family: Family = 4): string {
  if (!isIp(ip, family)) throw new FerryError('INVALID_CIDR', `${what} "${ip}" is not an ${familyName(family)} address`)
  return ip
}

/** An address of either family, canonical. */
export function checkAnyIp (ip: string, what: string): string {
  if (!isIp(ip)) throw new FerryError('INVALID_CIDR', `${what} "${ip}" is not an IP address`)
  return ipString(isIp(ip, 4) ? 4 : 6, ipValue(ip))
}

/** A unicast MAC in lower case. */
export function checkMac (mac: string): string {
  const m = mac.toLowerCase()
  if (!MAC_RE.test(m) || (parseInt(m.slice(0, 2), 16) & 1) === 1 || m === '00:00:00:00:00:00') {
    throw new FerryError('INVALID_REQUEST', `"${mac}" is not a unicast MAC address`)
  }
  return m
}

export function checkVni (vni: number): number {
  if (!Number.isInteger(vni) || vni < 1 || vni > VNI_MAX) throw new FerryError('INVALID_OPTION', `VNI ${vni} must be a whole number from 1 to ${VNI_MAX}`)
  return vni
}

/**
 * The usable host range of an overlay subnet, as values: IPv4 without the network and broadcast
 * addresses, IPv6 without the subnet-router anycast address (the first), as Docker's IPAM.
 */
export function hostRange (subnet: string): Range {
  const b = bounds(subnet)
  return { first: b.first + 1n, last: parseCidr(subnet).family === 4 ? b.last - 1n : b.last }
}

/** One side (family) of an overlay request: its subnet and gateway, canonical. */
function checkSide (name: string, family: Family, subnet: string, gateway: string): { subnet: string, gateway: string } {
  const [min, max] = family === 4 ? [MIN_PREFIX, MAX_PREFIX] : [MIN_PREFIX6, MAX_PREFIX6]
  const c = parseCidr(subnet, family)
  if (c.prefix < min || c.prefix > max) {
    throw new FerryError('INVALID_OPTION', `overlay ${name}: ${family === 6 ? 'IPv6 ' : ''}subnet ${subnet} must have a prefix from /${min} to /${max}`)
  }
  const canon = canonical(subnet)
  checkIp(gateway, family === 4 ? 'gateway' : 'IPv6 gateway', family)
  const r = hostRange(canon)
  const g = ipValue(gateway, family)
  if (g < r.first || g > r.last) {
    throw new FerryError('INVALID_OPTION', `overlay ${name}: ${family === 6 ? 'IPv6 ' : ''}gateway ${gateway} is not a host address of ${canon}`)
  }
  return { subnet: canon, gateway: ipString(family, g) }
}

/** Validate an overlay request; the subnets come back canonical. */
export function checkOverlayRequest (req: OverlayRequest): OverlayRequest {
  checkOverlayName(req.name)
  const v4 = checkSide(req.name, 4, req.subnet, req.gateway)
  const out: OverlayRequest = { name: req.name, subnet: v4.subnet, gateway: v4.gateway }
  if ((req.subnet6 === undefined) !== (req.gateway6 === undefined)) {
    throw new FerryError('INVALID_OPTION', `overlay ${req.name}: a dual-stack overlay needs both an IPv6 subnet and an IPv6 gateway`)
  }
  if (req.subnet6 !== undefined && req.gateway6 !== undefined) {
    const v6 = checkSide(req.name, 6, req.subnet6, req.gateway6)
    out.subnet6 = v6.subnet
    out.gateway6 = v6.gateway
  }
  if (req.vni !== undefined) out.vni = checkVni(req.vni)
  if (req.encrypt !== undefined) {
    if (req.encrypt !== 'wireguard') throw new FerryError('INVALID_OPTION', `overlay ${req.name}: encryption must be "wireguard"`)
    out.encrypt = req.encrypt
  }
  return out
}

/** An address an overlay may hand out (inside the subnet, of its family; not network or broadcast). */
export function checkOverlayAddress (overlay: string, subnet: string, ip: string): string {
  const family = parseCidr(subnet).family
  checkIp(ip, 'address', family)
  const r = hostRange(subnet)
  const n = ipValue(ip, family)
  if (!contains(subnet, ip) || n < r.first || n > r.last) {
    throw new FerryError('ADDRESS_OUT_OF_POOL', `address ${ip} is not a host address of overlay ${overlay} (${subnet})`)
  }
  return ipString(family, n)
}

/** One DNS label: letters, digits, '_' and '-' (not first or last), 1 to 63 bytes. */
const DNS_LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/
export const MAX_NAMES = 32

/** A DNS name made of valid labels, at most 253 bytes. */
export function isDnsName (n: unknown): n is string {
  return typeof n === 'string' && n.length > 0 && n.length <= 253 && n.split('.').every((l) => DNS_LABEL_RE.test(l))
}

/** Names a host publishes with an endpoint: the valid DNS names among its own, at most 32 (others are dropped). */
export function checkNames (names: unknown): string[] | undefined {
  if (!Array.isArray(names)) return undefined
  const ok = names.filter(isDnsName).slice(0, MAX_NAMES)
  return ok.length > 0 ? ok : undefined
}

/** Names read from the store: an array of at most 32 valid DNS names, or the entry is refused. */
function strictNames (names: unknown): string[] | undefined {
  if (names === undefined) return undefined
  if (!Array.isArray(names) || names.length === 0 || names.length > MAX_NAMES || !names.every(isDnsName)) {
    throw new FerryError('INVALID_REQUEST', `names must be an array of 1 to ${MAX_NAMES} DNS names`)
  }
  return [...names]
}

/** Published ports per endpoint at most (as many as SRV names per entry: src/dns/records.ts MAX_SRV_PORTS). */
export const MAX_PORTS = 64

function portNumber (v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw new FerryError('INVALID_REQUEST', `${what} must be a whole number from 1 to 65535`)
  return v
}

const PORT_KEYS = ['proto', 'port', 'hostPort', 'hostIp']

/**
 * One published port: its protocol, container and host port, canonical host address. Without `extra` (the
 * write path) no other field; with it (the read path) a newer version's fields, bounded, are put in `extra[i]`.
 */
function checkPort (raw: unknown, i: number, extra?: Array<Array<[string, unknown]>>): ClusterPort {
  const what = `published port ${i + 1}`
  if (!isRecord(raw)) throw new FerryError('INVALID_REQUEST', `${what} is not an object`)
  if (extra === undefined) onlyKeys(raw, PORT_KEYS, what)
  else extra[i] = extraFields(raw, PORT_KEYS, what)
  if (raw.proto !== 'tcp' && raw.proto !== 'udp') throw new FerryError('INVALID_REQUEST', `${what}: its protocol must be "tcp" or "udp"`)
  const out: ClusterPort = { proto: raw.proto, port: portNumber(raw.port, `${what}: its container port`), hostPort: portNumber(raw.hostPort, `${what}: its host port`) }
  if (raw.hostIp !== undefined) {
    const ip = str(raw.hostIp, `${what}: its host address`)
    if (checkAnyIp(ip, `${what}: its host address`) !== ip) throw new FerryError('INVALID_REQUEST', `${what}: its host address ${ip} is not canonical`)
    out.hostIp = ip
  }
  return out
}

/**
 * Published ports, as a host sends them and as they are read from the store:
 * absent, or an array of 1 to MAX_PORTS valid ports; anything else throws a
 * FerryError naming the bad one. `extra` (the read path): each port's unknown fields, bounded, instead of refused.
 */
export function checkPorts (ports: unknown, extra?: Array<Array<[string, unknown]>>): ClusterPort[] | undefined {
  if (ports === undefined) return undefined
  if (!Array.isArray(ports) || ports.length === 0 || ports.length > MAX_PORTS) {
    throw new FerryError('INVALID_REQUEST', `published ports must be an array of 1 to ${MAX_PORTS} ports`)
  }
  return ports.map((p, i) => checkPort(p, i, extra))
}

export function checkEndpoint (ep: ClusterEndpoint): ClusterEndpoint {
  const out: ClusterEndpoint = {
    endpointId: checkEndpointId(ep.endpointId),
    ip: ipString(4, ipValue(checkIp(ep.ip, 'endpoint address'), 4)),
    mac: checkMac(ep.mac),
    hostId: checkHostId(ep.hostId),
    vtep: checkAnyIp(ep.vtep, 'VTEP address'),
  }
  if (ep.ip6 !== undefined) out.ip6 = ipString(6, ipValue(checkIp(ep.ip6, 'endpoint IPv6 address', 6), 6))
  const names = checkNames(ep.names)
  if (names) out.names = names
  // [] publishes none: the record then has no field, as an older version's.
  const ports = ep.ports === undefined || ep.ports.length === 0 ? undefined : checkPorts(ep.ports)
  if (ports) out.ports = ports
  return out
}

// ---------------------------------------------------------------------------
// Canonical forms (what the cluster key's MAC covers)

/**
 * The stored form of an endpoint without its MAC: fixed key order, so that equal endpoints are equal strings.
 * `extra`: fields of a newer version this one does not know (readEndpoint), after the known ones in the
 * order they were read — a newer version appends its new fields after every field an older one knows, so
 * the MAC it made over its record is the MAC of this content.
 */
export function endpointContent (ep: ClusterEndpoint, extra: ReadonlyArray<[string, unknown]> = [], portExtra: ReadonlyArray<ReadonlyArray<[string, unknown]> | undefined> = []): string {
  const known = {
    endpointId: ep.endpointId, ip: ep.ip, ...(ep.ip6 !== undefined ? { ip6: ep.ip6 } : {}), mac: ep.mac, hostId: ep.hostId, vtep: ep.vtep,
    ...(ep.names ? { names: ep.names } : {}),
    ...(ep.ports ? { ports: ep.ports.map((p, i) => portContent(p, portExtra[i])) } : {}),
  }
  return JSON.stringify(withExtra(known, extra))
}

/** A published port in its stored form: fixed key order, then a newer version's fields as read (the same rule as the record's). */
function portContent (p: ClusterPort, extra?: ReadonlyArray<[string, unknown]>): Record<string, unknown> {
  return withExtra({ proto: p.proto, port: p.port, hostPort: p.hostPort, ...(p.hostIp !== undefined ? { hostIp: p.hostIp } : {}) }, extra)
}

function withExtra (known: Record<string, unknown>, extra: ReadonlyArray<[string, unknown]> | undefined): Record<string, unknown> {
  return extra === undefined || extra.length === 0 ? known : { ...known, ...Object.fromEntries(extra) }
}

export function hostContent (h: { hostId: string, vtep: string, wg?: WireGuardInfo }): string {
  return JSON.stringify({ hostId: h.hostId, vtep: h.vtep, ...(h.wg ? { wg: wireGuardContent(h.wg) } : {}) })
}

export function overlayContent (d: { name: string, subnet: string, gateway: string, subnet6?: string, gateway6?: string, vni: number, encrypt?: 'wireguard' }): string {
  return JSON.stringify({
    name: d.name, subnet: d.subnet, gateway: d.gateway, vni: d.vni,
    ...(d.subnet6 !== undefined ? { subnet6: d.subnet6, gateway6: d.gateway6 } : {}),
    ...(d.encrypt !== undefined ? { encrypt: d.encrypt } : {}),
  })
}

export function endpointKeyName (overlay: string, endpointId: string): string {
  return `${overlay}|${endpointId}`
}

// ---------------------------------------------------------------------------
// The read path

/** An entry read from the store: accepted (normalized), or refused with a reason. */
export type Read<T> = { ok: true, value: T } | { ok: false, reason: RejectReason, detail: string }

/** Stored JSON (an endpoint or a message) longer than this is refused unparsed. */
export const MAX_STORED_JSON = 16 * 1024

function refused<T> (reason: RejectReason, detail: string): Read<T> {
  return { ok: false, reason, detail }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function str (v: unknown, what: string): string {
  if (typeof v !== 'string') throw new FerryError('INVALID_REQUEST', `${what} is not a string`)
  return v
}

function safeInt (v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new FerryError('INVALID_REQUEST', `${what} is not a whole number`)
  return v
}

function onlyKeys (o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new FerryError('INVALID_REQUEST', `${what} has an unknown field "${k.slice(0, 40)}"`)
}

/** Unknown fields a record may have (a newer version's optional fields, ignored): at most this many, each at most MAX_EXTRA_FIELD_JSON bytes as JSON. */
export const MAX_EXTRA_FIELDS = 8
export const MAX_EXTRA_FIELD_JSON = 4096
/** How ferry names record fields: a lower-case letter, then letters and digits. */
const FIELD_NAME_RE = /^[a-z][A-Za-z0-9]{0,31}$/

/**
 * The fields of `o` not in `known`, in their order: forward compatibility (docs/cluster.md, "Versions
 * that interoperate"). A reader ignores them, but refuses the record when they are not bounded: a
 * name ferry would not give a field, more than MAX_EXTRA_FIELDS of them, or one longer than
 * MAX_EXTRA_FIELD_JSON as JSON.
 */
function extraFields (o: Record<string, unknown>, known: readonly string[], what: string): Array<[string, unknown]> {
  const extra: Array<[string, unknown]> = []
  for (const [k, v] of Object.entries(o)) {
    if (known.includes(k)) continue
    if (!FIELD_NAME_RE.test(k)) throw new FerryError('INVALID_REQUEST', `${what} has an unknown field with a name ferry does not give fields ("${k.slice(0, 40)}")`)
    if (extra.length >= MAX_EXTRA_FIELDS) throw new FerryError('INVALID_REQUEST', `${what} has more than ${MAX_EXTRA_FIELDS} unknown fields`)
    const json = JSON.stringify(v) as string | undefined
    if (json === undefined || json.length > MAX_EXTRA_FIELD_JSON) throw new FerryError('INVALID_REQUEST', `${what}'s unknown field "${k}" is longer than ${MAX_EXTRA_FIELD_JSON} bytes`)
    extra.push([k, v])
  }
  return extra
}

/** Run schema checks; a thrown error becomes an `invalid` refusal. */
function schema<T> (fn: () => T): Read<T> {
  try {
    return { ok: true, value: fn() }
  } catch (err) {
    return refused('invalid', err instanceof Error ? err.message : String(err))
  }
}

/** With a key, the MAC must be there and right; without one, MACs are ignored. */
function macCheck<T> (value: T, key: ClusterKey | undefined, kind: SignedKind, name: string, content: string | (() => string), sig: unknown): Read<T> {
  if (key === undefined) return { ok: true, value }
  if (sig === undefined || sig === '') return refused('missing-mac', 'it carries no MAC of the cluster key')
  if (!key.verify(kind, name, typeof content === 'string' ? content : content(), sig)) return refused('bad-mac', 'its MAC does not match the cluster key')
  return { ok: true, value }
}

function checkCanonicalIp (ip: string, what: string, family: Family = 4): string {
  if (ipString(family, ipValue(checkIp(ip, what, family), family)) !== ip) throw new FerryError('INVALID_REQUEST', `${what} ${ip} is not canonical`)
  return ip
}

/** A VTEP: an underlay address of either family (an IPv6 underlay), canonical. */
function checkCanonicalVtep (ip: string): string {
  if (checkAnyIp(ip, 'VTEP address') !== ip) throw new FerryError('INVALID_REQUEST', `VTEP address ${ip} is not canonical`)
  return ip
}

/** A host as read from the store (a row of the hosts set, or a host-up message without times). */
export function readHost (raw: unknown, key?: ClusterKey, opts: { times?: boolean } = {}): Read<HostInfo> {
  const r = schema(() => {
    if (!isRecord(raw)) throw new FerryError('INVALID_REQUEST', 'a host is not an object')
    // A newer version's fields are ignored; the MAC covers hostId, vtep and wg only (a later host field is signed apart, as features).
    if (opts.times === false) extraFields(raw, ['hostId', 'vtep', 'version', 'wg', 'sig'], 'the host')
    const version = str(raw.version ?? '', 'version')
    if (version.length > 64 || !/^[\x20-\x7e]*$/.test(version)) throw new FerryError('INVALID_REQUEST', 'version is not short printable text')
    const times = opts.times !== false
    return {
      hostId: checkHostId(str(raw.hostId, 'host id')),
      vtep: checkCanonicalVtep(str(raw.vtep, 'VTEP')),
      version,
      lastHeartbeat: times ? safeInt(raw.lastHeartbeat, 'lastHeartbeat') : 0,
      expiresAt: times ? safeInt(raw.expiresAt, 'expiresAt') : 0,
      registeredAt: times ? safeInt(raw.registeredAt, 'registeredAt') : 0,
      // Stored and pushed as its canonical JSON text (what the MAC covers).
      ...(raw.wg === undefined || raw.wg === '' ? {} : { wg: readWireGuardContent(raw.wg) }),
    }
  })
  if (!r.ok || !isRecord(raw)) return r
  return macCheck(r.value, key, 'host', r.value.hostId, hostContent(r.value), raw.sig)
}

/**
 * A dual-stack host's second VTEP (a second `--advertise-addr`): its own record, apart from the host
 * record (older versions refuse unknown fields there), stored as its JSON text under the host's keys
 * and pushed on a channel of its own, both by the registration script. The cluster key's MAC covers
 * it as a host entry named `<host id>|vtep2`.
 */
export interface HostVtepRecord { hostId: string, vtep: string }

/** A second VTEP record's stored text is refused unparsed past this length. */
export const MAX_VTEP_RECORD = 512

/** The name the cluster key's MAC gives a host's second VTEP record (a host id never holds '|'). */
export function hostVtepKeyName (hostId: string): string {
  return `${hostId}|vtep2`
}

/** The stored form of a second VTEP without its MAC: fixed key order. */
export function hostVtepContent (r: HostVtepRecord): string {
  return JSON.stringify({ hostId: r.hostId, vtep: r.vtep })
}

/** A second VTEP for a host whose first one is `primary`: an address of the other family (one VTEP per family), canonical. */
export function checkSecondVtep (primary: string, second: string): string {
  const v = checkAnyIp(second, 'second VTEP address')
  if (isIp(v, 4) === isIp(primary, 4)) {
    throw new FerryError('INVALID_OPTION', `the second VTEP address ${v} is ${isIp(v, 4) ? 'IPv4' : 'IPv6'} like the first (${primary}): a host advertises at most one address per family`)
  }
  return v
}

/**
 * A host's second VTEP record as read from the store or its channel: JSON of {hostId, vtep, sig?}
 * and nothing else, at most MAX_VTEP_RECORD bytes, filed under `hostId` when given, its VTEP
 * canonical and of the other family than `primary` when that is known, and its MAC.
 */
export function readHostVtep (raw: unknown, ctx: { hostId?: string, primary?: string }, key?: ClusterKey): Read<HostVtepRecord> {
  if (typeof raw !== 'string') return refused('invalid', 'a second VTEP record is not text')
  if (raw.length > MAX_VTEP_RECORD) return refused('too-large', `its second VTEP record is ${raw.length} bytes long`)
  let parsed: unknown
  try { parsed = JSON.parse(raw) as unknown } catch { return refused('invalid', 'its second VTEP record is not JSON') }
  const r = schema(() => {
    if (!isRecord(parsed)) throw new FerryError('INVALID_REQUEST', 'a second VTEP record is not an object')
    onlyKeys(parsed, ['hostId', 'vtep', 'sig'], 'the second VTEP record')
    const hostId = checkHostId(str(parsed.hostId, 'host id'))
    if (ctx.hostId !== undefined && ctx.hostId !== hostId) throw new FerryError('INVALID_REQUEST', `its second VTEP record names another host (${hostId})`)
    const vtep = checkCanonicalVtep(str(parsed.vtep, 'second VTEP'))
    if (ctx.primary !== undefined) checkSecondVtep(ctx.primary, vtep)
    return { hostId, vtep }
  })
  if (!r.ok) return r
  return macCheck(r.value, key, 'host', hostVtepKeyName(r.value.hostId), hostVtepContent(r.value), isRecord(parsed) ? parsed.sig : undefined)
}

/** An overlay definition as read from the store, checked as a request is and signed when a key is in use. */
export function readOverlayDefinition (raw: unknown, key?: ClusterKey): Read<OverlayDefinition> {
  const r = schema(() => {
    if (!isRecord(raw)) throw new FerryError('INVALID_REQUEST', 'an overlay definition is not an object')
    onlyKeys(raw, ['name', 'subnet', 'gateway', 'subnet6', 'gateway6', 'vni', 'encrypt', 'createdBy', 'createdAt', 'sig'], 'the overlay definition')
    const vni = checkVni(safeInt(raw.vni, 'vni'))
    const v6 = raw.subnet6 === undefined && raw.gateway6 === undefined ? {} : { subnet6: str(raw.subnet6, 'subnet6'), gateway6: str(raw.gateway6, 'gateway6') }
    // Stored as '' or absent for a plain overlay; anything else must be an encryption ferry knows.
    const encrypt = raw.encrypt === undefined || raw.encrypt === '' ? undefined : str(raw.encrypt, 'encrypt') as OverlayRequest['encrypt']
    const req = checkOverlayRequest({ name: str(raw.name, 'name'), subnet: str(raw.subnet, 'subnet'), gateway: str(raw.gateway, 'gateway'), vni, ...v6, ...(encrypt !== undefined ? { encrypt } : {}) })
    if (req.subnet !== raw.subnet || req.gateway !== raw.gateway || req.subnet6 !== raw.subnet6 || req.gateway6 !== raw.gateway6) {
      throw new FerryError('INVALID_REQUEST', 'its subnet or gateway is not canonical')
    }
    return {
      name: req.name, subnet: req.subnet, gateway: req.gateway, ...(req.subnet6 !== undefined ? { subnet6: req.subnet6, gateway6: req.gateway6 } : {}),
      vni, ...(req.encrypt !== undefined ? { encrypt: req.encrypt } : {}),
      createdBy: checkHostId(str(raw.createdBy, 'createdBy')), createdAt: safeInt(raw.createdAt, 'createdAt'),
    }
  })
  if (!r.ok || !isRecord(raw)) return r
  return macCheck(r.value, key, 'overlay', r.value.name, overlayContent(r.value), raw.sig)
}

/** Where an endpoint was read: its overlay (and subnet and gateway when known), and its field in the store. */
export interface EndpointContext {
  overlay: string
  subnet?: string
  gateway?: string
  /** The IPv6 side when known; with `subnet` known and no `subnet6`, an IPv6 address is refused. */
  subnet6?: string
  gateway6?: string
  /** The id the store files it under (the hash field): it must be the entry's own. */
  id?: string
}

/**
 * An endpoint as read from the store: the write path's checks, strict names and ports (absent in older
 * records), unknown fields of a newer version bounded and ignored (but covered by the MAC), its MAC.
 */
export function readEndpoint (raw: unknown, ctx: EndpointContext, key?: ClusterKey): Read<ClusterEndpoint> {
  if (typeof raw === 'string') {
    if (raw.length > MAX_STORED_JSON) return refused('too-large', `it is ${raw.length} bytes long`)
    try {
      raw = JSON.parse(raw) as unknown
    } catch {
      return refused('invalid', 'it is not JSON')
    }
  }
  let outside = false
  let extra: Array<[string, unknown]> = []
  const portExtra: Array<Array<[string, unknown]>> = []
  const r = schema(() => {
    if (!isRecord(raw)) throw new FerryError('INVALID_REQUEST', 'an endpoint is not an object')
    extra = extraFields(raw, ['endpointId', 'ip', 'ip6', 'mac', 'hostId', 'vtep', 'names', 'ports', 'sig'], 'the endpoint')
    const ep: ClusterEndpoint = {
      endpointId: checkEndpointId(str(raw.endpointId, 'endpoint id')),
      ip: checkCanonicalIp(str(raw.ip, 'ip'), 'endpoint address'),
      mac: str(raw.mac, 'mac'),
      hostId: checkHostId(str(raw.hostId, 'host id')),
      vtep: checkCanonicalVtep(str(raw.vtep, 'VTEP')),
    }
    if (raw.ip6 !== undefined) ep.ip6 = checkCanonicalIp(str(raw.ip6, 'ip6'), 'endpoint IPv6 address', 6)
    if (checkMac(ep.mac) !== ep.mac) throw new FerryError('INVALID_REQUEST', 'its MAC address is not in lower case')
    if (ctx.id !== undefined && ctx.id !== ep.endpointId) throw new FerryError('INVALID_REQUEST', `it is filed under another id (${ctx.id.slice(0, 64)})`)
    if (ctx.subnet !== undefined) {
      outside = true
      checkOverlayAddress(ctx.overlay, ctx.subnet, ep.ip)
      if (ep.ip === ctx.gateway) throw new FerryError('INVALID_REQUEST', `it claims the gateway address ${ep.ip}`)
      if (ep.ip6 !== undefined) {
        if (ctx.subnet6 === undefined) throw new FerryError('INVALID_REQUEST', `it has an IPv6 address (${ep.ip6}) on an IPv4-only overlay`)
        checkOverlayAddress(ctx.overlay, ctx.subnet6, ep.ip6)
        if (ep.ip6 === ctx.gateway6) throw new FerryError('INVALID_REQUEST', `it claims the IPv6 gateway address ${ep.ip6}`)
      }
      outside = false
    }
    const names = strictNames(raw.names)
    if (names) ep.names = names
    const ports = checkPorts(raw.ports, portExtra)
    if (ports) ep.ports = ports
    return ep
  })
  if (!r.ok) return outside ? refused('outside-subnet', r.detail) : r
  return macCheck(r.value, key, 'endpoint', endpointKeyName(ctx.overlay, r.value.endpointId), () => endpointContent(r.value, extra, portExtra), isRecord(raw) ? raw.sig : undefined)
}

const CHANGE_KINDS: ReadonlySet<string> = new Set(['host-up', 'host-removed', 'overlay-defined', 'overlay-removed', 'endpoint-published', 'endpoint-withdrawn'])

/** A pushed change message (parsed from JSON): its kind, a safe revision, its fields' schemas and MACs. */
export function readChange (raw: unknown, key?: ClusterKey): Read<ClusterChange> {
  if (!isRecord(raw)) return refused('invalid', 'a message is not an object')
  const kind = raw.kind
  const rev = raw.rev
  if (typeof kind !== 'string' || !CHANGE_KINDS.has(kind)) return refused('invalid', 'its kind is not one ferry publishes')
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 1) return refused('revision', 'its revision is not a safe positive whole number')
  const fields = (names: readonly string[]): Read<true> => schema(() => { onlyKeys(raw, ['kind', 'rev', ...names], `a ${String(kind).slice(0, 40)} message`); return true as const })
  switch (kind) {
    case 'host-up': {
      const f = fields(['host'])
      if (!f.ok) return f
      const h = readHost(raw.host, key, { times: false })
      if (!h.ok) return h
      return { ok: true, value: { kind, rev, host: { hostId: h.value.hostId, vtep: h.value.vtep, version: h.value.version, ...(h.value.wg ? { wg: h.value.wg } : {}) } } }
    }
    case 'host-removed': {
      const f = fields(['hostId'])
      if (!f.ok) return f
      return schema(() => ({ kind, rev, hostId: checkHostId(str(raw.hostId, 'host id')) }))
    }
    case 'overlay-defined': {
      const f = fields(['overlay'])
      if (!f.ok) return f
      const d = readOverlayDefinition(raw.overlay, key)
      if (!d.ok) return d
      return { ok: true, value: { kind, rev, overlay: d.value } }
    }
    case 'overlay-removed': {
      const f = fields(['name'])
      if (!f.ok) return f
      return schema(() => ({ kind, rev, name: checkOverlayName(str(raw.name, 'name')) }))
    }
    case 'endpoint-published': {
      const f = fields(['overlay', 'endpoint'])
      if (!f.ok) return f
      const o = schema(() => checkOverlayName(str(raw.overlay, 'overlay')))
      if (!o.ok) return o
      const e = readEndpoint(raw.endpoint, { overlay: o.value }, key)
      if (!e.ok) return e
      return { ok: true, value: { kind, rev, overlay: o.value, endpoint: e.value } }
    }
    case 'endpoint-withdrawn': {
      const f = fields(['overlay', 'endpointId', 'hostId'])
      if (!f.ok) return f
      return schema(() => ({
        kind, rev, overlay: checkOverlayName(str(raw.overlay, 'overlay')), endpointId: checkEndpointId(str(raw.endpointId, 'endpoint id')),
        hostId: checkHostId(str(raw.hostId, 'host id')),
      }))
    }
    default:
      return refused('invalid', 'its kind is not one ferry publishes')
  }
}
