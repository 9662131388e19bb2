/**
 * The one HTTP exchange of ferry's clients (unix socket or TCP), answer read whole: the admin API's
 * client (src/api/client.ts), the engine's (src/docker/client.ts) and the plugin-socket probe of
 * `ferry doctor` and `ferry wait-ready`. The answer is bounded; nothing here parses it.
 */
import http from 'node:http'

export interface ExchangeOptions {
  socketPath?: string
  host?: string
  port?: number
  method: string
  path: string
  headers?: Record<string, string>
  body?: string
  timeoutMs: number
  /** An answer longer than this is an error, never an unbounded buffer (default 16 MiB). */
  maxBytes?: number
}

export interface Exchange { status: number, text: string }

export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024

/**
 * Send one request and read its answer. Rejects with the socket's own error (its `code`, e.g. ENOENT or
 * ECONNREFUSED, kept for the caller's sentence), `no answer within N ms`, or an answer over `maxBytes`.
 */
export function exchange (o: ExchangeOptions): Promise<Exchange> {
  const max = o.maxBytes ?? DEFAULT_MAX_ANSWER_BYTES
  return new Promise((resolve, reject) => {
    const target = o.socketPath !== undefined ? { socketPath: o.socketPath } : { host: o.host, port: o.port }
    const req = http.request({ ...target, method: o.method, path: o.path, timeout: o.timeoutMs, headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > max) {
          reject(new Error(`the answer to ${o.method} ${o.path} is larger than ${max} bytes`))
          res.removeAllListeners('data')
          req.destroy()
          return
        }
        chunks.push(c)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 500, text: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)))
    req.on('error', reject)
    req.end(o.body)
  })
}
