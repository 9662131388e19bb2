/**
 * Host-port allocation and conflict checks for published ports. Pure: the
 * ephemeral range, the reserved ports and the host's bound sockets come in as
 * arguments (src/nat/hostports.ts reads them from /proc).
 *
 * Rules, as Docker's port allocator has them:
 * - two publications conflict when they share protocol, overlap in host ports,
 *   and their host IPs are equal or either is the wildcard ('' = every address);
 * - a host range onto one container port (`-p 8000-8010:80`) takes the first free port of the range;
 * - equal-length host and container ranges map one to one, as one block;
 * - host port 0 takes the first free port (or contiguous block) of the ephemeral
 *   range, skipping reserved ports and ports a host socket uses.
 *
 * Families: a binding's family is its container address's, and ports are kept per
 * family (0.0.0.0:8080 and [::]:8080 are different sockets). A request without a host
 * address on a dual-stack endpoint is one binding per family with the same host port,
 * picked free in both; 0.0.0.0 means IPv4 only and :: IPv6 only (Docker 27's meaning);
 * a request of a family the endpoint has no address in publishes nothing. The same
 * binding asked twice (`-p 8080:8080 -p [::]:8080:8080`, netavark#1338) is kept once.
 */
import { FerryError } from '../errors/errors.js'
import type { PortBinding, PortRequest, Protocol } from '../model/types.js'
import { familyOf, normalizeIp, type Family } from '../util/ip.js'
import { unpublishableHostIp } from './plan.js'

/** A publication that already holds host ports. */
export interface PortUse {
  endpointId: string
  binding: PortBinding
}

export interface PortRange { lo: number, hi: number }

export interface AllocateOptions {
  /** The container's IPv4 address the bindings point to (absent on an IPv6-only network). */
  containerIp?: string
  /** The container's IPv6 address, on a dual-stack or IPv6-only network. */
  containerIp6?: string
  /** The endpoint's earlier bindings: an ephemeral request keeps its old port when it is still free. */
  previous?: readonly PortBinding[]
}

function wildcard (ip: string): boolean {
  return ip === '' || ip === '0.0.0.0' || ip === '::'
}

/** One family's side of a request: the binding's host IP ('' = every address of the family) and container IP. */
export interface Target { family: Family, hostIp: string, containerIp: string }

function bindingFamily (b: PortBinding): Family {
  return familyOf(b.containerIp) ?? 4
}

function hostIpText (ip: string, family: Family = 4): string {
  return wildcard(ip) ? (family === 4 ? '0.0.0.0' : '::') : ip
}

function portText (lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}-${hi}`
}

function validPort (n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535
}

/** True when a binding and a target share a socket space: protocol, family, and equal host IPs or a wildcard. */
function sameSpace (b: PortBinding, proto: Protocol, t: Target): boolean {
  return b.proto === proto && bindingFamily(b) === t.family && (wildcard(t.hostIp) || wildcard(b.hostIp) || t.hostIp === normalizeIp(b.hostIp))
}

/** The first publication in `used` that a block on any of `targets` would collide with, if any. */
export function findConflict (used: readonly PortUse[], proto: Protocol, targets: readonly Target[], lo: number, hi: number): PortUse | undefined {
  return used.find(({ binding: b }) => b.hostPort <= hi && lo <= b.hostPortEnd && targets.some((t) => sameSpace(b, proto, t)))
}

/** The targets of a request: one per family it reaches that the endpoint has an address in. */
export function targetsOf (r: PortRequest, opts: AllocateOptions): Target[] {
  const addr: Record<Family, string | undefined> = { 4: opts.containerIp, 6: opts.containerIp6 }
  const families: Family[] = r.hostIp === '' ? [4, 6] : r.hostIp === '0.0.0.0' ? [4] : r.hostIp === '::' ? [6] : [familyOf(r.hostIp) ?? 4]
  const out: Target[] = []
  for (const family of families) {
    const containerIp = addr[family]
    if (containerIp === undefined || containerIp === '') continue
    // Only where it would be programmed: an IPv4-only endpoint ignores [::1] as it ignores every IPv6 address.
    const refused = unpublishableHostIp(r.hostIp)
    if (refused !== undefined) throw new FerryError('INVALID_REQUEST', refused)
    out.push({ family, hostIp: wildcard(r.hostIp) ? '' : r.hostIp, containerIp })
  }
  return out
}

const SELF = ''

function conflictError (proto: Protocol, targets: readonly Target[], lo: number, hi: number, u: PortUse): FerryError {
  const b = u.binding
  const t = targets.find((x) => sameSpace(b, proto, x)) ?? targets[0]
  const on = hostIpText(t?.hostIp ?? '', t?.family)
  const what = lo === hi ? `host port ${lo}/${proto} on ${on} is` : `host ports ${lo}-${hi}/${proto} on ${on} are`
  const who = u.endpointId === SELF ? 'another publication of the same endpoint' : `endpoint ${u.endpointId.slice(0, 8)}`
  return new FerryError('PORT_CONFLICT', `${what} already published by ${who} (${bindingFamily(b) === 6 ? `[${b.containerIp}]` : b.containerIp}:${portText(b.containerPort, b.containerPortEnd)})`)
}

function validate (r: PortRequest): void {
  const ctrLen = r.containerPortEnd - r.containerPort
  if (!validPort(r.containerPort) || !validPort(r.containerPortEnd) || ctrLen < 0) {
    throw new FerryError('INVALID_REQUEST', `container ports ${r.containerPort}-${r.containerPortEnd} are not a valid range of 1-65535`)
  }
  if (r.hostPort === 0) return
  const hostLen = r.hostPortEnd - r.hostPort
  if (!validPort(r.hostPort) || !validPort(r.hostPortEnd) || hostLen < 0) {
    throw new FerryError('INVALID_REQUEST', `host ports ${r.hostPort}-${r.hostPortEnd} are not a valid range of 1-65535`)
  }
  if (ctrLen > 0 && hostLen !== ctrLen) {
    throw new FerryError('INVALID_REQUEST',
      `host ports ${portText(r.hostPort, r.hostPortEnd)} and container ports ${portText(r.containerPort, r.containerPortEnd)} differ in length`)
  }
}

/** True when no port of lo..hi is reserved or used by a host socket. */
function hostFree (proto: Protocol, lo: number, hi: number, reserved: ReadonlySet<number>, inUse: (proto: Protocol, port: number) => boolean): boolean {
  for (let p = lo; p <= hi; p++) if (reserved.has(p) || inUse(proto, p)) return false
  return true
}

/** Host-port intervals of `used` that a block on (proto, targets) must avoid, merged and sorted. */
function blockedIntervals (used: readonly PortUse[], proto: Protocol, targets: readonly Target[]): Array<[number, number]> {
  const iv = used
    .filter(({ binding: b }) => targets.some((t) => sameSpace(b, proto, t)))
    .map(({ binding: b }): [number, number] => [b.hostPort, b.hostPortEnd])
    .sort((a, b) => a[0] - b[0])
  const merged: Array<[number, number]> = []
  for (const [lo, hi] of iv) {
    const last = merged[merged.length - 1]
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi)
    else merged.push([lo, hi])
  }
  return merged
}

/**
 * First free block of `size` ports in `range`, or undefined. Walks the merged
 * publications once, so picking past thousands of publications stays cheap.
 */
function findFreeBlock (
  proto: Protocol, targets: readonly Target[], size: number, range: PortRange, used: readonly PortUse[],
  reserved: ReadonlySet<number>, inUse: (proto: Protocol, port: number) => boolean,
): number | undefined {
  const blocked = blockedIntervals(used, proto, targets)
  let i = 0
  let lo = range.lo
  while (lo + size - 1 <= range.hi) {
    const hi = lo + size - 1
    while (i < blocked.length && blocked[i]![1] < lo) i++
    const next = blocked[i]
    if (next !== undefined && next[0] <= hi) { lo = next[1] + 1; continue }
    let hostBlocked = -1
    for (let p = hi; p >= lo; p--) {
      if (reserved.has(p) || inUse(proto, p)) { hostBlocked = p; break }
    }
    if (hostBlocked < 0) return lo
    lo = hostBlocked + 1
  }
  return undefined
}

function binding (r: PortRequest, t: Target, hostPort: number): PortBinding {
  const len = r.containerPortEnd - r.containerPort
  return {
    proto: r.proto,
    hostIp: t.hostIp,
    hostPort,
    hostPortEnd: hostPort + len,
    containerIp: t.containerIp,
    containerPort: r.containerPort,
    containerPortEnd: r.containerPortEnd,
  }
}

function sameBinding (a: PortBinding, b: PortBinding): boolean {
  return a.proto === b.proto && a.hostIp === b.hostIp && a.hostPort === b.hostPort && a.hostPortEnd === b.hostPortEnd &&
    a.containerIp === b.containerIp && a.containerPort === b.containerPort && a.containerPortEnd === b.containerPortEnd
}

/**
 * Resolve requests into bindings, checking them against `used` and against each
 * other. Throws PORT_CONFLICT when an explicit host port is taken and NO_FREE_PORT
 * when the ephemeral range (or a requested host range) has no room.
 */
export function allocatePorts (
  requests: readonly PortRequest[],
  used: readonly PortUse[],
  range: PortRange,
  reserved: ReadonlySet<number>,
  inUse: (proto: Protocol, port: number) => boolean,
  opts: AllocateOptions,
): PortBinding[] {
  const taken: PortUse[] = [...used]
  const out: PortBinding[] = []
  const claim = (r: PortRequest, targets: readonly Target[], hostPort: number): void => {
    for (const t of targets) {
      const b = binding(r, t, hostPort)
      out.push(b)
      taken.push({ endpointId: SELF, binding: b })
    }
  }
  for (const r of requests) validate(r)
  for (const r of requests) {
    const all = targetsOf(r, opts)
    // A binding this endpoint already asked for (the same publication twice, netavark#1338) is kept once.
    const fixed = r.hostPort !== 0 && r.hostPortEnd - r.hostPort === r.containerPortEnd - r.containerPort
    const targets = fixed ? all.filter((t) => !out.some((b) => sameBinding(b, binding(r, t, r.hostPort)))) : all
    if (targets.length === 0) continue
    const size = r.containerPortEnd - r.containerPort + 1
    if (fixed) {
      const c = findConflict(taken, r.proto, targets, r.hostPort, r.hostPortEnd)
      if (c !== undefined) throw conflictError(r.proto, targets, r.hostPort, r.hostPortEnd, c)
      claim(r, targets, r.hostPort)
      continue
    }
    const where = hostIpText(targets[0]!.hostIp, targets.length === 1 ? targets[0]!.family : 4) + (targets.length > 1 ? ' and ::' : '')
    if (r.hostPort !== 0) {
      // A host range onto one container port: the first free port of the range.
      let picked: number | undefined
      for (let p = r.hostPort; p <= r.hostPortEnd && picked === undefined; p++) {
        if (findConflict(taken, r.proto, targets, p, p) === undefined && !reserved.has(p) && !inUse(r.proto, p)) picked = p
      }
      if (picked === undefined) {
        const c = findConflict(taken, r.proto, targets, r.hostPort, r.hostPortEnd)
        if (c !== undefined) throw conflictError(r.proto, targets, r.hostPort, r.hostPortEnd, c)
        throw new FerryError('NO_FREE_PORT', `no free host port in ${r.hostPort}-${r.hostPortEnd}/${r.proto} on ${where}`)
      }
      claim(r, targets, picked)
      continue
    }
    const prev = opts.previous?.find((b) => b.proto === r.proto && b.containerPort === r.containerPort &&
      b.containerPortEnd === r.containerPortEnd && targets.some((t) => t.containerIp === b.containerIp && (wildcard(b.hostIp) ? '' : b.hostIp) === t.hostIp) &&
      b.hostPort >= range.lo && b.hostPortEnd <= range.hi)
    if (prev !== undefined && findConflict(taken, r.proto, targets, prev.hostPort, prev.hostPortEnd) === undefined &&
        hostFree(r.proto, prev.hostPort, prev.hostPortEnd, reserved, inUse)) {
      claim(r, targets, prev.hostPort)
      continue
    }
    const lo = findFreeBlock(r.proto, targets, size, range, taken, reserved, inUse)
    if (lo === undefined) {
      throw new FerryError('NO_FREE_PORT',
        `no free ${size === 1 ? 'host port' : `block of ${size} host ports`} for ${r.proto} on ${where} in the ephemeral range ${range.lo}-${range.hi}`)
    }
    claim(r, targets, lo)
  }
  return out
}
