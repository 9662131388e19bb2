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
 */
import { FerryError } from '../errors/errors.js'
import type { PortBinding, PortRequest, Protocol } from '../model/types.js'

/** A publication that already holds host ports. */
export interface PortUse {
  endpointId: string
  binding: PortBinding
}

export interface PortRange { lo: number, hi: number }

export interface AllocateOptions {
  /** The container address the bindings point to. */
  containerIp: string
  /** The endpoint's earlier bindings: an ephemeral request keeps its old port when it is still free. */
  previous?: readonly PortBinding[]
}

function wildcard (ip: string): boolean {
  return ip === '' || ip === '0.0.0.0'
}

function hostIpText (ip: string): string {
  return wildcard(ip) ? '0.0.0.0' : ip
}

function portText (lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}-${hi}`
}

function validPort (n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535
}

/** The first publication in `used` that a block would collide with, if any. */
export function findConflict (used: readonly PortUse[], proto: Protocol, hostIp: string, lo: number, hi: number): PortUse | undefined {
  return used.find(({ binding: b }) =>
    b.proto === proto &&
    b.hostPort <= hi && lo <= b.hostPortEnd &&
    (wildcard(hostIp) || wildcard(b.hostIp) || hostIp === b.hostIp))
}

const SELF = ''

function conflictError (proto: Protocol, hostIp: string, lo: number, hi: number, u: PortUse): FerryError {
  const b = u.binding
  const what = lo === hi ? `host port ${lo}/${proto} on ${hostIpText(hostIp)} is` : `host ports ${lo}-${hi}/${proto} on ${hostIpText(hostIp)} are`
  const who = u.endpointId === SELF ? 'another publication of the same endpoint' : `endpoint ${u.endpointId.slice(0, 8)}`
  return new FerryError('PORT_CONFLICT', `${what} already published by ${who} (${b.containerIp}:${portText(b.containerPort, b.containerPortEnd)})`)
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

/** Host-port intervals of `used` that a block on (proto, hostIp) must avoid, merged and sorted. */
function blockedIntervals (used: readonly PortUse[], proto: Protocol, hostIp: string): Array<[number, number]> {
  const iv = used
    .filter(({ binding: b }) => b.proto === proto && (wildcard(hostIp) || wildcard(b.hostIp) || hostIp === b.hostIp))
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
  proto: Protocol, hostIp: string, size: number, range: PortRange, used: readonly PortUse[],
  reserved: ReadonlySet<number>, inUse: (proto: Protocol, port: number) => boolean,
): number | undefined {
  const blocked = blockedIntervals(used, proto, hostIp)
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

function binding (r: PortRequest, hostIp: string, hostPort: number, containerIp: string): PortBinding {
  const len = r.containerPortEnd - r.containerPort
  return {
    proto: r.proto,
    hostIp,
    hostPort,
    hostPortEnd: hostPort + len,
    containerIp,
    containerPort: r.containerPort,
    containerPortEnd: r.containerPortEnd,
  }
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
  const claim = (b: PortBinding): void => {
    out.push(b)
    taken.push({ endpointId: SELF, binding: b })
  }
  for (const r of requests) validate(r)
  for (const r of requests) {
    const hostIp = wildcard(r.hostIp) ? '' : r.hostIp
    const size = r.containerPortEnd - r.containerPort + 1
    if (r.hostPort !== 0 && r.hostPortEnd - r.hostPort + 1 === size) {
      const c = findConflict(taken, r.proto, hostIp, r.hostPort, r.hostPortEnd)
      if (c !== undefined) throw conflictError(r.proto, hostIp, r.hostPort, r.hostPortEnd, c)
      claim(binding(r, hostIp, r.hostPort, opts.containerIp))
      continue
    }
    if (r.hostPort !== 0) {
      // A host range onto one container port: the first free port of the range.
      let picked: number | undefined
      for (let p = r.hostPort; p <= r.hostPortEnd && picked === undefined; p++) {
        if (findConflict(taken, r.proto, hostIp, p, p) === undefined && !reserved.has(p) && !inUse(r.proto, p)) picked = p
      }
      if (picked === undefined) {
        const c = findConflict(taken, r.proto, hostIp, r.hostPort, r.hostPortEnd)
        if (c !== undefined) throw conflictError(r.proto, hostIp, r.hostPort, r.hostPortEnd, c)
        throw new FerryError('NO_FREE_PORT', `no free host port in ${r.hostPort}-${r.hostPortEnd}/${r.proto} on ${hostIpText(hostIp)}`)
      }
      claim(binding(r, hostIp, picked, opts.containerIp))
      continue
    }
    const prev = opts.previous?.find((b) => b.proto === r.proto && b.containerPort === r.containerPort &&
      b.containerPortEnd === r.containerPortEnd && (wildcard(b.hostIp) ? '' : b.hostIp) === hostIp &&
      b.hostPort >= range.lo && b.hostPortEnd <= range.hi)
    if (prev !== undefined && findConflict(taken, r.proto, hostIp, prev.hostPort, prev.hostPortEnd) === undefined &&
        hostFree(r.proto, prev.hostPort, prev.hostPortEnd, reserved, inUse)) {
      claim(binding(r, hostIp, prev.hostPort, opts.containerIp))
      continue
    }
    const lo = findFreeBlock(r.proto, hostIp, size, range, taken, reserved, inUse)
    if (lo === undefined) {
      throw new FerryError('NO_FREE_PORT',
        `no free ${size === 1 ? 'host port' : `block of ${size} host ports`} for ${r.proto} on ${hostIpText(hostIp)} in the ephemeral range ${range.lo}-${range.hi}`)
    }
    claim(binding(r, hostIp, lo, opts.containerIp))
  }
  return out
}
