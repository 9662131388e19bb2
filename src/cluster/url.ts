/**
 * Parsing of `--cluster` URLs into ferry's own connection description, with a
 * sentence for every mistake (FerryError INVALID_OPTION). Pure: no I/O.
 *
 *   redis://[[user]:password@]host[:port][/db][?wait=N]
 *   rediss://[[user]:password@]host[:port][/db][?ca=/path/ca.pem][&servername=name][&wait=N]   (TLS)
 *   sentinel://[[user]:password@]host:port[,host:port…]/mastername[?tls=true][&wait=N]
 *
 * `wait=N`: every change waits (Redis WAIT) until N replicas have it, so that
 * an acknowledged allocation survives a failover (docs/cluster.md).
 *
 * The port defaults to 6379 (26379 for sentinels). A sentinel password is used
 * both for the sentinels and for the master.
 */
import { isIP } from 'node:net'
import { FerryError } from '../errors/errors.js'

export interface HostPort { host: string, port: number }

export type ClusterTarget =
  | { kind: 'standalone', host: string, port: number }
  | { kind: 'sentinel', sentinels: HostPort[], masterName: string }

export interface ClusterUrl {
  target: ClusterTarget
  username?: string
  password?: string
  db: number
  tls?: { servername?: string, caFile?: string }
  /** Replicas that must have each change before it is acknowledged (WAIT); 0 = none. */
  waitReplicas: number
  /** The URL with the password replaced by '***', for logs and status. */
  redacted: string
}

const DEFAULT_PORT = 6379
const DEFAULT_SENTINEL_PORT = 26379
const HOST_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/
const MASTER_RE = /^[A-Za-z0-9_.-]{1,128}$/

function bad (url: string, why: string): FerryError {
  return new FerryError('INVALID_OPTION', `invalid cluster URL "${redact(url)}": ${why}`)
}

/** Replace the password part of a URL by *** (for messages). */
export function redact (url: string): string {
  return url.replace(/^([a-z]+:\/\/)([^@/]*?):([^@/]*)@/i, (_m, scheme: string, user: string) => `${scheme}${user}:***@`)
}

function decode (url: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw bad(url, `the ${what} is not valid percent-encoding`)
  }
}

function parsePort (url: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined || raw === '') return dflt
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) throw bad(url, `port "${raw}" must be a number from 1 to 65535`)
  return Number(raw)
}

function parseHostPort (url: string, s: string, dflt: number): HostPort {
  if (!s.startsWith('[') && s.split(':').length > 2) throw bad(url, `an IPv6 address goes in brackets: [${s}] or [ADDRESS]:PORT`)
  const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(s)
  const host = m?.[1] ?? ''
  if (host === '') throw bad(url, 'a host is missing')
  if (!HOST_RE.test(host) || (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6)) throw bad(url, `"${host}" is not a host name or address`)
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port: parsePort(url, m?.[2], dflt) }
}

function parseQuery (url: string, query: string, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  if (query === '') return out
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=')
    const key = eq < 0 ? pair : pair.slice(0, eq)
    const value = eq < 0 ? '' : decode(url, pair.slice(eq + 1), `value of ${key}`)
    if (!allowed.includes(key)) {
      throw bad(url, allowed.length === 0 ? `parameter "${key}" is not understood (none are for this scheme)` : `parameter "${key}" is not understood (use ${allowed.join(', ')})`)
    }
    out.set(key, value)
  }
  return out
}

function parseBool (url: string, key: string, v: string): boolean {
  if (['true', '1', 'yes', ''].includes(v)) return true
  if (['false', '0', 'no'].includes(v)) return false
  throw bad(url, `parameter ${key} must be true or false, not "${v}"`)
}

function parseWait (url: string, params: Map<string, string>): number {
  const v = params.get('wait')
  if (v === undefined) return 0
  if (!/^\d$/.test(v)) throw bad(url, `parameter wait must be a number of replicas from 0 to 9, not "${v}"`)
  return Number(v)
}

/** Parse and validate a `--cluster` URL. */
export function parseClusterUrl (url: string): ClusterUrl {
  const m = /^([a-z]+):\/\/(?:([^@/?]*)@)?([^/?]*)(\/[^?]*)?(?:\?(.*))?$/i.exec(url.trim())
  if (m === null) throw bad(url, 'expected redis://HOST:PORT, rediss://HOST:PORT or sentinel://HOST:PORT[,HOST:PORT]/MASTER')
  const scheme = (m[1] ?? '').toLowerCase()
  const auth = m[2]
  const hosts = m[3] ?? ''
  const path = m[4] ?? ''
  const query = m[5] ?? ''
  const out: { username?: string, password?: string } = {}
  if (auth !== undefined && auth !== '') {
    const colon = auth.indexOf(':')
    const user = colon < 0 ? auth : auth.slice(0, colon)
    const pass = colon < 0 ? undefined : auth.slice(colon + 1)
    if (user !== '') out.username = decode(url, user, 'user name')
    if (pass !== undefined && pass !== '') out.password = decode(url, pass, 'password')
  }
  const base = { ...out, redacted: redact(url.trim()) }
  switch (scheme) {
    case 'redis':
    case 'rediss': {
      if (hosts.includes(',')) throw bad(url, `${scheme}:// takes one host; use sentinel://H1:P1,H2:P2/MASTER for several`)
      const hp = parseHostPort(url, hosts, DEFAULT_PORT)
      const dbRaw = path.replace(/^\//, '')
      if (dbRaw !== '' && (!/^\d{1,2}$/.test(dbRaw) || Number(dbRaw) > 15)) throw bad(url, `database "${dbRaw}" must be a number from 0 to 15`)
      const params = parseQuery(url, query, scheme === 'rediss' ? ['ca', 'servername', 'wait'] : ['wait'])
      const result: ClusterUrl = { ...base, target: { kind: 'standalone', host: hp.host, port: hp.port }, db: dbRaw === '' ? 0 : Number(dbRaw), waitReplicas: parseWait(url, params) }
      if (scheme === 'rediss') {
        const tls: { servername?: string, caFile?: string } = { servername: params.get('servername') ?? hp.host }
        const ca = params.get('ca')
        if (ca !== undefined) {
          if (ca === '') throw bad(url, 'parameter ca needs a file path')
          tls.caFile = ca
        }
        result.tls = tls
      }
      return result
    }
    case 'sentinel': {
      if (hosts === '') throw bad(url, 'at least one sentinel HOST:PORT is needed')
      const sentinels = hosts.split(',').map((s) => parseHostPort(url, s, DEFAULT_SENTINEL_PORT))
      const masterName = decode(url, path.replace(/^\//, ''), 'master name')
      if (masterName === '') throw bad(url, 'the master name is missing (sentinel://HOST:PORT/MASTER)')
      if (!MASTER_RE.test(masterName)) throw bad(url, `master name "${masterName}" may only hold letters, digits, '_', '.' and '-'`)
      const params = parseQuery(url, query, ['tls', 'wait'])
      const result: ClusterUrl = { ...base, target: { kind: 'sentinel', sentinels, masterName }, db: 0, waitReplicas: parseWait(url, params) }
      if (params.has('tls') && parseBool(url, 'tls', params.get('tls') ?? '')) result.tls = {}
      return result
    }
    default:
      throw bad(url, `scheme "${scheme}://" is not supported (use redis://, rediss:// or sentinel://)`)
  }
}

/** A Sentinel's `+switch-master` message: the master `from` which it failed over and the one it promoted `to`. */
export interface MasterSwitch { from: HostPort, to: HostPort }

const SWITCH_ADDR_RE = /^[0-9A-Za-z.:_-]{1,253}$/

/**
 * A `+switch-master` message of master `name` (`<name> <old ip> <old port> <new ip> <new port>`, as
 * Sentinel publishes it), or undefined for another master or anything else. What comes from a
 * sentinel is input like any other: only ever a hint to reconnect, never an address used as such.
 */
export function parseSwitchMaster (message: string, name: string): MasterSwitch | undefined {
  const parts = message.trim().split(/\s+/)
  if (parts.length !== 5 || parts[0] !== name) return undefined
  const hp = (host: string, port: string): HostPort | undefined =>
    SWITCH_ADDR_RE.test(host) && /^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535 ? { host, port: Number(port) } : undefined
  const from = hp(parts[1]!, parts[2]!)
  const to = hp(parts[3]!, parts[4]!)
  return from && to && { from, to }
}
