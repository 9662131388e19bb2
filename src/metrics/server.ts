/**
 * The opt-in Prometheus endpoint: `GET /metrics` on the address of
 * `--metrics-listen`, nothing else. With a token (`--metrics-token FILE`) every
 * request must carry `Authorization: Bearer <token>` (compared in constant
 * time); without one the address is loopback (checked in config.ts).
 */
import http from 'node:http'
import { timingSafeEqual, createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { FerryError } from '../errors/errors.js'
import { readTokenFile, type MetricsConfig, type MetricsListen } from './config.js'
import { FerryMetrics } from './registry.js'
import { snapshotAgent, type SnapshotParts } from './snapshot.js'

export interface MetricsServer {
  /** The bound address (the port is the real one when 0 was asked). */
  readonly address: MetricsListen
  close (): Promise<void>
}

function digest (s: string): Buffer { return createHash('sha256').update(s).digest() }

/** Whether an Authorization header carries the token (constant-time over equal-length digests). */
export function authorized (header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  if (!m) return false
  return timingSafeEqual(digest(m[1]!), digest(token))
}

/** Status and body for a request, before rendering (pure). */
export function route (method: string | undefined, url: string | undefined, authOk: boolean): { status: number, text?: string } {
  const path = (url ?? '').split('?')[0]
  if (path !== '/metrics') return { status: 404, text: 'ferry serves only GET /metrics here\n' }
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, text: 'only GET /metrics\n' }
  if (!authOk) return { status: 401, text: 'missing or wrong bearer token\n' }
  return { status: 200 }
}

export async function startMetricsServer (cfg: MetricsConfig, metrics: FerryMetrics, log: Logger): Promise<MetricsServer> {
  const token = cfg.tokenFile === undefined ? undefined : await readTokenFile(cfg.tokenFile)
  const server = http.createServer((req, res) => {
    const r = route(req.method, req.url, authorized(req.headers.authorization, token))
    if (r.status !== 200) {
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain; charset=utf-8' }
      if (r.status === 401) headers['www-authenticate'] = 'Bearer realm="ferry"'
      if (r.status === 405) headers.allow = 'GET, HEAD'
      res.writeHead(r.status, headers).end(r.text)
      return
    }
    metrics.render().then((text) => {
      res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text)
    }, (err: unknown) => {
      log.error({ err }, 'rendering metrics failed')
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('rendering metrics failed\n')
    })
  })
  server.requestTimeout = 10_000
  server.headersTimeout = 5_000
  server.maxHeadersCount = 50
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new FerryError('INVALID_OPTION', `cannot serve metrics on ${cfg.listen.host}:${cfg.listen.port}: ${err.message}`, { cause: err }))
    })
    server.listen({ host: cfg.listen.host, port: cfg.listen.port }, () => resolve())
  })
  server.on('error', (err) => log.error({ err }, 'metrics server error'))
  const a = server.address() as AddressInfo
  const address = { host: a.address, port: a.port }
  log.info({ address: `${address.host}:${address.port}`, token: token !== undefined }, 'serving Prometheus metrics on /metrics')
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** The agent's endpoint: a registry that reads `parts` on each scrape (src/metrics/snapshot.ts), served as `cfg` says. */
export async function serveAgentMetrics (cfg: MetricsConfig, parts: SnapshotParts, log: Logger): Promise<{ metrics: FerryMetrics, server: MetricsServer }> {
  const metrics = new FerryMetrics(() => snapshotAgent(parts))
  const server = await startMetricsServer(cfg, metrics, log.child({ component: 'metrics' }))
  return { metrics, server }
}
