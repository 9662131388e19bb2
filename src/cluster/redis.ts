/**
 * The Redis cluster store: the only module that imports ioredis. Two connections
 * per host: one for commands (every change is one EVALSHA of a script from
 * src/cluster/lua.ts) and one subscribed to the change channel.
 *
 * Connection policy, so that callers never hang while Redis is away: no offline
 * queue, no retry or resend of a command after a disconnection, a command
 * timeout, and reconnection every 100-500 ms forever. The backend reports
 * `ready` only when both connections are up, the scripts are loaded and the
 * subscription is in place, so the client's resync happens after the point from
 * which no change is missed.
 */
import { readFileSync } from 'node:fs'
import { Redis, type RedisOptions } from 'ioredis'
import { ERROR_CODES, FerryError, type ErrorCode } from '../errors/errors.js'
import { parseCidr, type Family } from '../util/ip.js'
import { VNI_AUTO_MIN, VNI_MAX } from './backend.js'
import type { AllocationStep, BackendListener, ClusterBackend, HostKeep, HostRegistration, ClaimPages, EndpointPages, RawEndpoint, RawSnapshot, VniMode } from './backend.js'
import { ClusterClient, type ClusterClientOptions } from './client.js'
import { SCRIPTS, type LuaScript } from './lua.js'
import { parseClusterUrl, parseSwitchMaster, type ClusterUrl, type MasterSwitch } from './url.js'
import { MAX_STORED_JSON, endpointContent } from './validate.js'
import type { ClusterEndpoint, LocalClusterState, OverlayRequest } from './types.js'

export const DEFAULT_PREFIX = 'ferry:'
const DEFAULT_COMMAND_TIMEOUT_MS = 3000
/** How many times a change's WAIT (half the command timeout each) is asked before the change counts as not acknowledged. */
const WAIT_ATTEMPTS = 6
const DEFAULT_CONNECT_TIMEOUT_MS = 2000
/** Entries asked per HSCAN page of a full read (a hint to Redis: each reply holds about this many). */
export const DEFAULT_SCAN_PAGE = 1000
const PREFIX_RE = /^[A-Za-z0-9_.-]{1,32}:$/
/**
 * After a sentinel's `+switch-master`, a connection waiting for its next retry reconnects at once, after a
 * random delay up to this long, so that a thousand agents do not land on the new primary in the same instant.
 */
export const SWITCH_JITTER_MS = 200
/** For this long after a `+switch-master`, a failed reconnection retries from the backoff's first step (50-100 ms), not the 1 s it had reached. */
const SWITCH_FAST_RETRY_MS = 5000

export interface RedisClusterOptions extends ClusterClientOptions {
  /** redis://…, rediss://… or sentinel://… (see src/cluster/url.ts). */
  url: string
  /** Key prefix; everything ferry writes starts with it. Default 'ferry:'. */
  prefix?: string
  commandTimeoutMs?: number
  connectTimeoutMs?: number
  /** Entries per page when reading an overlay's endpoints (tests lower it). Default DEFAULT_SCAN_PAGE. */
  scanPage?: number
}

/**
 * Reconnection delay: 100, 200, 400, 800, then 1000 ms forever, each drawn
 * between half and all of that ("equal jitter"), so that a thousand agents
 * that lost Redis at once do not all come back (and resync) at the same instant.
 */
export function retryDelay (attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(50 * 2 ** Math.min(Math.max(attempt, 1), 5), 1000)
  return Math.round(ceiling / 2 + (ceiling / 2) * Math.min(Math.max(random(), 0), 1))
}

/** The ioredis options for a parsed URL (exported for tests). */
export function redisOptions (url: ClusterUrl, o: { hostId: string, commandTimeoutMs: number, connectTimeoutMs: number }): RedisOptions {
  const opts: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    retryStrategy: (attempt: number) => retryDelay(attempt),
    connectionName: `ferry-${o.hostId}`,
    db: url.db,
  }
  if (url.username !== undefined) opts.username = url.username
  if (url.password !== undefined) opts.password = url.password
  if (url.tls !== undefined) {
    const tls: NonNullable<RedisOptions['tls']> = {}
    if (url.tls.servername !== undefined) tls.servername = url.tls.servername
    if (url.tls.caFile !== undefined) {
      try {
        tls.ca = readFileSync(url.tls.caFile)
      } catch (err) {
        throw new FerryError('INVALID_OPTION', `cannot read the cluster CA file ${url.tls.caFile}: ${(err as Error).message}`, { cause: err })
      }
    }
    opts.tls = tls
  }
  if (url.target.kind === 'standalone') {
    opts.host = url.target.host
    opts.port = url.target.port
  } else {
    opts.sentinels = url.target.sentinels.map((s) => ({ host: s.host, port: s.port }))
    opts.name = url.target.masterName
    opts.sentinelRetryStrategy = (attempt: number) => retryDelay(attempt)
    if (url.password !== undefined) opts.sentinelPassword = url.password
    if (url.username !== undefined) opts.sentinelUsername = url.username
    if (url.tls !== undefined) opts.enableTLSForSentinelMode = true
  }
  return opts
}

/** A Redis error reply or client error, as a FerryError. */
export function mapRedisError (err: unknown, where: string): FerryError {
  if (err instanceof FerryError) return err
  const msg = err instanceof Error ? err.message : String(err)
  const clean = msg.replace(/ script: [0-9a-f]+, on @user_script:\d+\.?$/, '')
  const m = /^([A-Z_]+) (.*)$/s.exec(clean)
  const code = m?.[1]
  if (code !== undefined && code in ERROR_CODES && code !== 'CLUSTER_UNAVAILABLE') {
    return new FerryError(code as ErrorCode, m?.[2] ?? clean, { cause: err })
  }
  if (/^ERR .*(script|Lua|lua)/.test(clean)) return new FerryError('INTERNAL', `cluster script failed: ${clean}`, { cause: err })
  return new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${where} failed: ${clean}`, { cause: err })
}

function str (v: unknown): string {
  return typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v)
}

function num (v: unknown): number {
  const n = typeof v === 'number' ? v : Number(str(v))
  return Number.isFinite(n) ? n : 0
}

/** The eight 16-bit groups of an IPv6 address value, first first (the define script's form of a network). */
function groupsOf (n: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(16 * (7 - i))) & 0xffffn))
}

function list (v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}

/** A definition row as a plain object; types are checked by the client (readOverlayDefinition). */
function toDefinition (row: unknown[]): Record<string, unknown> {
  const d: Record<string, unknown> = { name: str(row[0]), subnet: str(row[1]), gateway: str(row[2]), vni: num(row[3]), createdBy: str(row[4]), createdAt: num(row[5]) }
  if (str(row[6]) !== '') d.sig = str(row[6])
  if (str(row[7]) !== '') d.encrypt = str(row[7])
  if (str(row[8]) !== '') { d.subnet6 = str(row[8]); d.gateway6 = str(row[9]) }
  return d
}

function toHost (row: unknown[]): Record<string, unknown> {
  const h: Record<string, unknown> = { hostId: str(row[0]), vtep: str(row[1]), version: str(row[2]), lastHeartbeat: num(row[3]), expiresAt: num(row[4]), registeredAt: num(row[5]) }
  if (str(row[6]) !== '') h.sig = str(row[6])
  if (str(row[7]) !== '') h.wg = str(row[7])
  if (str(row[8]) !== '') h.features = str(row[8])
  if (str(row[9]) !== '') h.vtep2 = str(row[9])
  return h
}

/** HGETALL pairs as id/value entries. */
function pairs (v: unknown): Array<[string, unknown]> {
  const l = list(v)
  const out: Array<[string, unknown]> = []
  for (let i = 0; i + 1 < l.length; i += 2) out.push([str(l[i]), l[i + 1]])
  return out
}

/** The stored form of an endpoint: its canonical content, with the cluster key's MAC when there is one. */
export function endpointJson (ep: ClusterEndpoint, sig = ''): string {
  const content = endpointContent(ep)
  return sig === '' ? content : `${content.slice(0, -1)},"sig":${JSON.stringify(sig)}}`
}

/** A message from the change channel as JSON, or undefined when it is too long or not JSON (the client checks the rest). */
export function parseChange (message: string): unknown {
  if (message.length > 2 * MAX_STORED_JSON) return { kind: 'oversized message' }
  try {
    return JSON.parse(message) as unknown
  } catch {
    return { kind: 'unparsable message' }
  }
}

/**
 * Connect now a connection that waits for its next retry. ioredis' own retry timer (a private field
 * of ioredis 6.0.0, pinned in package.json) is cleared first: left running, it would connect again
 * later, even a connection closed meanwhile (and then try the sentinels forever).
 */
function reconnectNow (conn: Redis): Promise<void> {
  const pending = conn as unknown as { reconnectTimeout?: NodeJS.Timeout | null }
  if (pending.reconnectTimeout) {
    clearTimeout(pending.reconnectTimeout)
    pending.reconnectTimeout = null
  }
  return conn.connect()
}

export class RedisBackend implements ClusterBackend {
  readonly description: string
  private readonly options: RedisOptions
  private readonly prefix: string
  private readonly channel: string
  /** The second VTEP channel (src/cluster/lua.ts): its messages precede their host-up changes. */
  private readonly vtepChannel: string
  private cmd: Redis | undefined
  private sub: Redis | undefined
  private listener: BackendListener | undefined
  private subscribed = false
  private scriptsLoaded = false
  private announced = false
  private closed = false
  private commands = 0
  private lastError: Error | undefined

  private readonly scanPage: number
  private readonly waitReplicas: number
  private readonly waitMs: number
  private readonly url: ClusterUrl
  private readonly hostId: string
  /** Sentinel mode: one connection per sentinel, subscribed to `+switch-master`. */
  private watchers: Redis[] = []
  /** performance.now() of the last `+switch-master` of this master (-Infinity: none). */
  private switchAt = -Infinity

  constructor (url: ClusterUrl, o: { hostId: string, prefix: string, commandTimeoutMs: number, connectTimeoutMs: number, scanPage: number }) {
    this.description = url.redacted
    this.scanPage = o.scanPage
    this.waitReplicas = url.waitReplicas
    this.waitMs = o.commandTimeoutMs
    this.prefix = o.prefix
    this.channel = `${o.prefix}events`
    this.vtepChannel = `${o.prefix}vteps`
    this.url = url
    this.hostId = o.hostId
    const options = redisOptions(url, o)
    // Right after a failover, retry from the backoff's first step: the new primary is there to be found.
    options.retryStrategy = (attempt: number) => retryDelay(performance.now() - this.switchAt < SWITCH_FAST_RETRY_MS ? 1 : attempt)
    this.options = options
  }

  open (listener: BackendListener): void {
    if (this.cmd) return
    this.listener = listener
    const cmd = new Redis(this.options)
    const sub = new Redis(this.options)
    this.cmd = cmd
    this.sub = sub
    for (const conn of [cmd, sub]) {
      conn.on('error', (err: Error) => { this.lastError = err })
      conn.on('close', () => { this.lost(conn) })
    }
    cmd.on('ready', () => {
      // Load every script once per connection, so that each change is one EVALSHA.
      const pipe = cmd.pipeline()
      for (const sc of Object.values(SCRIPTS)) pipe.script('LOAD', sc.source)
      pipe.exec().then(() => { this.scriptsLoaded = true; this.check() }, (err: Error) => {
        this.lastError = err
        cmd.disconnect(true)
      })
    })
    sub.on('ready', () => {
      sub.subscribe(this.channel, this.vtepChannel).then(() => { this.subscribed = true; this.check() }, (err: Error) => {
        this.lastError = err
        sub.disconnect(true)
      })
    })
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.vtepChannel) this.listener?.hostVtep?.(parseChange(message))
      if (channel !== this.channel) return
      this.listener?.change(parseChange(message))
    })
    cmd.connect().catch((err: Error) => { this.lastError = err })
    sub.connect().catch((err: Error) => { this.lastError = err })
    this.watchSentinels()
  }

  /**
   * Sentinel mode: subscribe to `+switch-master` on every sentinel of the URL. ioredis finds the new
   * primary only at its next retry, up to a second after the promotion (its backoff has grown while
   * the old primary was being called down); a switch announced is a reason to try again at once.
   * Best effort: a sentinel that cannot be reached is retried with the same backoff, and the
   * connections find the new primary without any watcher, only later.
   */
  private watchSentinels (): void {
    const target = this.url.target
    if (target.kind !== 'sentinel') return
    for (const s of target.sentinels) {
      const w = new Redis({
        host: s.host, port: s.port, lazyConnect: true, autoResubscribe: false, maxRetriesPerRequest: 0, enableOfflineQueue: false,
        connectTimeout: this.options.connectTimeout, retryStrategy: (attempt: number) => retryDelay(attempt), connectionName: `ferry-${this.hostId}-switch`,
        ...(this.url.password !== undefined ? { password: this.url.password } : {}), ...(this.url.username !== undefined ? { username: this.url.username } : {}),
      })
      w.on('error', () => undefined) // a sentinel away: its connection retries; the store's own connections report what matters
      w.on('ready', () => { w.subscribe('+switch-master').catch(() => { w.disconnect(true) }) })
      w.on('message', (channel: string, message: string) => {
        if (channel === '+switch-master') this.switched(parseSwitchMaster(message, target.masterName))
      })
      w.connect().catch(() => undefined)
      this.watchers.push(w)
    }
  }

  /**
   * A sentinel announced a new primary: a connection waiting for its next retry reconnects now
   * (after up to SWITCH_JITTER_MS), and one up on the old primary (a failover asked of Sentinel
   * leaves it running, as a replica) is dropped to reconnect. Each asks the sentinels for the
   * primary as always: the message itself names no address that is used. An attempt under way is
   * left alone (ioredis cannot abort one and retry: it would end the connection for good); on a
   * host gone dark it lasts up to the connect timeout.
   */
  private switched (sw: MasterSwitch | undefined): void {
    if (sw === undefined || this.closed) return
    this.switchAt = performance.now()
    for (const conn of [this.cmd, this.sub]) {
      if (conn === undefined) continue
      if (conn.status === 'ready' && conn.stream?.remoteAddress === sw.from.host && conn.stream.remotePort === sw.from.port) {
        conn.disconnect(true)
      } else if (conn.status === 'reconnecting') {
        const timer = setTimeout(() => {
          if (!this.closed && conn.status === 'reconnecting') reconnectNow(conn).catch((err: Error) => { this.lastError = err })
        }, Math.random() * SWITCH_JITTER_MS)
        timer.unref()
      }
    }
  }

  private check (): void {
    if (this.closed || this.announced || !this.isReady()) return
    this.announced = true
    this.listener?.ready()
  }

  private lost (conn: Redis): void {
    if (conn === this.sub) this.subscribed = false
    else this.scriptsLoaded = false
    if (this.closed) return
    const was = this.announced
    this.announced = false
    if (was || this.lastError !== undefined) {
      this.listener?.down(this.lastError ?? new Error('connection closed'))
    }
  }

  async close (): Promise<void> {
    this.closed = true
    for (const w of this.watchers) w.disconnect()
    this.watchers = []
    const conns = [this.cmd, this.sub].filter((c): c is Redis => c !== undefined)
    await Promise.all(conns.map(async (c) => {
      try {
        if (c.status === 'ready') await c.quit()
      } catch { /* disconnected below */ }
      c.disconnect() // also clears a retry still pending, which would otherwise connect again after the close
    }))
  }

  /**
   * A failed command as a FerryError. A command that timed out means the connection may be dead
   * without its socket knowing: a partition drops packets and sends no reset, and TCP keeps
   * retransmitting (its backoff reaching minutes) long after the network is back. So both
   * connections are dropped and made anew (with retryStrategy's backoff, at most 1 s between
   * attempts): the host is back within about a second of its network (test/e2e/partition.test.ts).
   */
  private failed (err: unknown, where: string): FerryError {
    if (err instanceof Error && err.message === 'Command timed out' && !this.closed) {
      this.lastError = err
      for (const c of [this.cmd, this.sub]) c?.disconnect(true)
    }
    return mapRedisError(err, where)
  }

  isReady (): boolean {
    return !this.closed && this.cmd?.status === 'ready' && this.sub?.status === 'ready' && this.subscribed && this.scriptsLoaded
  }

  commandCount (): number { return this.commands }

  /**
   * A change (`?wait=N`): run it, then wait until N replicas have it (Redis
   * WAIT), so that it survives a failover once acknowledged. Fewer in time: the
   * change is not acknowledged (CLUSTER_UNAVAILABLE); what it did on the
   * primary is this host's to redo or prune at its next re-assertion.
   */
  private async change (s: LuaScript, args: Array<string | number>): Promise<unknown> {
    const r = await this.run(s, args)
    if (this.waitReplicas === 0) return r
    const cmd = this.cmd
    if (!cmd) throw new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${this.description} is not reachable`)
    // Right after a failover the new primary's replicas are still re-syncing: the change is on the primary and
    // waiting longer for them is what the caller wants (a short outage stays invisible), so WAIT is asked again,
    // a bounded number of times, before the change counts as not acknowledged.
    let acked: unknown = 0
    for (let attempt = 0; attempt < WAIT_ATTEMPTS && num(acked) < this.waitReplicas; attempt++) {
      this.commands++
      try {
        // The server's WAIT ends at half the client's command timeout: the other half is the answer's margin on a busy host.
        acked = await cmd.call('WAIT', String(this.waitReplicas), String(Math.max(1, Math.floor(this.waitMs / 2))))
      } catch (err) {
        throw this.failed(err, `${this.description} (WAIT)`)
      }
    }
    if (num(acked) < this.waitReplicas) {
      throw new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${this.description} did not replicate ${s.name} to ${this.waitReplicas} replica(s) in time (${num(acked)} did)`)
    }
    return r
  }

  /** One EVALSHA (an EVAL when the server does not know the script yet, e.g. after a restart). */
  private async run (s: LuaScript, args: Array<string | number>): Promise<unknown> {
    const cmd = this.cmd
    if (!cmd || !this.isReady()) {
      throw new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${this.description} is not reachable${this.lastError ? ` (${this.lastError.message})` : ''}`)
    }
    this.commands++
    try {
      return await cmd.evalsha(s.sha, 0, this.prefix, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw this.failed(err, `${this.description} (${s.name})`)
    }
    this.commands++
    try {
      return await cmd.eval(s.source, 0, this.prefix, ...args)
    } catch (err) {
      throw this.failed(err, `${this.description} (${s.name})`)
    }
  }

  async heartbeat (reg: HostRegistration): Promise<{ isNew: boolean, removed: string[] }> {
    const r = list(await this.run(SCRIPTS.heartbeat, [reg.hostId, reg.vtep, reg.version, reg.ttlMs, reg.reap ? '1' : '0', reg.keyTtlMs, reg.sig, reg.wg, reg.features ?? '', reg.vtep2 ?? '']))
    return { isNew: num(r[0]) === 1, removed: list(r[1]).map(str) }
  }

  async define (hostId: string, req: OverlayRequest, mode: VniMode, announce: boolean): Promise<{ definition: Record<string, unknown>, created: boolean }> {
    const c = parseCidr(req.subnet)
    const c6 = req.subnet6 === undefined ? undefined : parseCidr(req.subnet6, 6)
    const v6 = c6 === undefined ? [] : [req.subnet6 ?? '', req.gateway6 ?? '', groupsOf(c6.network).join(','), c6.prefix]
    const r = list(await this.change(SCRIPTS.define, [hostId, req.name, req.subnet, req.gateway, req.vni === undefined ? '' : String(req.vni),
      mode, Number(c.network), c.prefix, VNI_AUTO_MIN, VNI_MAX, announce ? '1' : '0', req.encrypt ?? '', ...v6]))
    return { definition: toDefinition(list(r[0])), created: num(r[1]) === 1 }
  }

  async seal (name: string, def: { subnet: string, gateway: string, subnet6?: string, gateway6?: string, vni: number, encrypt?: 'wireguard' }, sig: string): Promise<boolean> {
    return num(await this.change(SCRIPTS.seal, [name, def.subnet, def.gateway, String(def.vni), sig, def.encrypt ?? '', def.subnet6 ?? '', def.gateway6 ?? ''])) === 1
  }

  async leaveOverlay (hostId: string, name: string): Promise<{ deleted: boolean }> {
    return { deleted: num(await this.change(SCRIPTS.leaveOverlay, [hostId, name])) === 1 }
  }

  async allocate (hostId: string, overlay: string, preferred: string | undefined, reclaim: boolean, scanned: number, limit: number, family: Family = 4): Promise<AllocationStep> {
    const r = list(await this.change(SCRIPTS.allocate, [hostId, overlay, preferred ?? '', reclaim ? '1' : '0', scanned, limit, String(family)]))
    const ip = str(r[0])
    return ip === '' ? { probes: num(r[1]) } : { ip, probes: num(r[1]) }
  }

  async release (hostId: string, overlay: string, ip: string): Promise<boolean> {
    return num(await this.change(SCRIPTS.release, [hostId, overlay, ip])) === 1
  }

  async publish (overlay: string, ep: ClusterEndpoint, sig: string): Promise<number> {
    return num(await this.change(SCRIPTS.publish, [ep.hostId, overlay, ep.endpointId, ep.ip, endpointJson(ep, sig), ep.ip6 ?? '']))
  }

  async withdraw (overlay: string, endpointId: string): Promise<boolean> {
    return num(await this.change(SCRIPTS.withdraw, [overlay, endpointId])) === 1
  }

  async prune (hostId: string, keep: HostKeep): Promise<void> {
    await this.change(SCRIPTS.prune, [hostId, JSON.stringify(keep)])
  }

  async removeHost (hostId: string): Promise<void> {
    await this.change(SCRIPTS.removeHost, [hostId])
  }

  /**
   * Every field of a hash, read in pages of about `scanPage` (HSCAN). A field
   * changed during the read may be missed or seen twice (the last one is kept);
   * the change channel brings what changed after the read started.
   */
  private async scanHash (key: string, onPage?: (page: Array<[string, unknown]>) => void): Promise<Array<[string, unknown]>> {
    const cmd = this.cmd
    const fields = new Map<string, unknown>()
    let cursor = '0'
    do {
      if (!cmd || !this.isReady()) throw new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${this.description} went away during a full read`)
      this.commands++
      let reply: [string, string[]]
      try {
        reply = await cmd.hscan(key, cursor, 'COUNT', this.scanPage)
      } catch (err) {
        throw this.failed(err, `${this.description} (HSCAN)`)
      }
      cursor = str(reply[0])
      // Handed over page by page: the page's text goes as soon as the caller has read it.
      if (onPage) onPage(pairs(reply[1]))
      else for (const [field, value] of pairs(reply[1])) fields.set(field, value)
    } while (cursor !== '0')
    return [...fields]
  }

  private okey (overlay: string): string {
    return `${this.prefix}overlay:${overlay}`
  }

  async snapshot (onPage?: EndpointPages, onClaims?: ClaimPages): Promise<RawSnapshot> {
    const r = list(await this.run(SCRIPTS.snapshot, []))
    const overlays: RawSnapshot['overlays'] = []
    for (const row of list(r[3])) {
      const o = list(row)
      const definition = toDefinition(o)
      const key = this.okey(str(definition.name))
      // The two hashes are paged at once: their HSCANs interleave on the connection (half the round trips' wait).
      const pages = onPage && ((page: Array<[string, unknown]>): void => onPage(definition, page.map(([id, raw]) => ({ id, raw }))))
      // The claims go page by page to the caller, or into one map (the last copy of an address kept), made into the list at the end.
      const claims = new Map<string, string>()
      const claimPage = onClaims
        ? (page: Array<[string, unknown]>): void => onClaims(definition, page)
        : (page: Array<[string, unknown]>): void => { for (const [ip, id] of page) claims.set(ip, str(id)) }
      const [eps] = await Promise.all([this.scanHash(`${key}:eps`, pages), this.scanHash(`${key}:claims`, claimPage)])
      overlays.push({
        definition,
        // The snapshot script appends the hosts after the definition's fields.
        hosts: list(o[o.length - 1]).map(str),
        endpoints: eps.map(([id, raw]) => ({ id, raw })),
        claims: Array.from(claims, ([ip, endpointId]) => ({ ip, endpointId })),
      })
    }
    return { rev: num(r[0]), time: num(r[1]), hosts: list(r[2]).map((h) => toHost(list(h))), overlays }
  }

  async overlay (name: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.run(SCRIPTS.overlay, [name])
    return Array.isArray(r) ? toDefinition(r) : undefined
  }

  async endpoints (overlay: string): Promise<{ definition?: Record<string, unknown>, endpoints: RawEndpoint[] }> {
    const r = list(await this.run(SCRIPTS.endpoints, [overlay]))
    const endpoints = (await this.scanHash(`${this.okey(overlay)}:eps`)).map(([id, raw]) => ({ id, raw }))
    return Array.isArray(r[0]) ? { definition: toDefinition(r[0]), endpoints } : { endpoints }
  }

  async hosts (): Promise<Array<Record<string, unknown>>> {
    return list(await this.run(SCRIPTS.hosts, [])).map((h) => toHost(list(h)))
  }

  async changesSince (since: number, overlap: number): Promise<{ rev: number, changes: unknown[], vteps: Array<{ hostId: string, record: string }> } | undefined> {
    const r = list(await this.run(SCRIPTS.changesSince, [String(since), String(overlap)]))
    if (!Array.isArray(r[1])) return undefined
    const recs = list(r[2])
    const vteps: Array<{ hostId: string, record: string }> = []
    for (let i = 0; i + 1 < recs.length; i += 2) vteps.push({ hostId: str(recs[i]), record: str(recs[i + 1]) })
    return { rev: Number(str(r[0])), changes: r[1].map((m) => parseChange(str(m))), vteps }
  }

  async revision (): Promise<number> {
    const cmd = this.cmd
    if (!cmd || !this.isReady()) throw new FerryError('CLUSTER_UNAVAILABLE', `the cluster store ${this.description} is not reachable`)
    this.commands++
    try {
      const v = await cmd.get(`${this.prefix}rev`)
      return v === null ? 0 : /^\d{1,16}$/.test(v) ? Number(v) : NaN
    } catch (err) {
      throw this.failed(err, this.description)
    }
  }
}

/** The Redis ClusterStore of this host. Construction validates and does no I/O; start() connects. */
export class RedisClusterStore extends ClusterClient {
  constructor (opts: RedisClusterOptions) {
    const prefix = opts.prefix ?? DEFAULT_PREFIX
    if (!PREFIX_RE.test(prefix)) throw new FerryError('INVALID_OPTION', `cluster key prefix "${prefix}" must be letters, digits, '_', '.' or '-' ending with ':'`)
    const backend = new RedisBackend(parseClusterUrl(opts.url), {
      hostId: opts.hostId,
      prefix,
      commandTimeoutMs: opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      scanPage: opts.scanPage ?? DEFAULT_SCAN_PAGE,
    })
    super(backend, opts)
  }
}

/**
 * Create the store, connect, register this host and re-assert `local`.
 * Rejects (and closes the store) with CLUSTER_UNAVAILABLE when Redis cannot be
 * reached within `startTimeoutMs`; use `new RedisClusterStore(opts)` and
 * `start()` to keep a store that goes on connecting in the background.
 */
export async function connectCluster (opts: RedisClusterOptions, local?: LocalClusterState): Promise<RedisClusterStore> {
  const store = new RedisClusterStore(opts)
  try {
    await store.start(local)
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}
