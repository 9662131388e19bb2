/** The CLI's client of the agent's admin API (HTTP/JSON over a unix socket). */
import http from 'node:http'
import { ERROR_CODES, FerryError, type ErrorCode } from '../errors/errors.js'

export const DEFAULT_API_SOCKET = '/run/ferry/ferry.sock'

export function apiSocketFrom (flag: string | undefined): string {
  return flag ?? process.env.FERRY_API_SOCKET ?? DEFAULT_API_SOCKET
}

export function apiCall<T> (socketPath: string, method: 'GET' | 'POST', path: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method, timeout: timeoutMs, headers: method === 'POST' ? { 'content-type': 'application/json', 'content-length': '2' } : {} }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        let body: unknown
        try { body = JSON.parse(text) } catch { body = undefined }
        if ((res.statusCode ?? 500) >= 300) {
          const e = (body as { error?: { code?: string, message?: string } } | undefined)?.error
          const code = (e?.code ?? 'INTERNAL') as ErrorCode
          reject(new FerryError(code in ERROR_CODES ? code : 'INTERNAL', e?.message ?? `the agent answered ${res.statusCode}: ${text.trim()}`))
          return
        }
        resolve(body as T)
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new FerryError('AGENT_NOT_RUNNING', `the ferry agent is not running: nothing answers on ${socketPath} (start it with "ferry agent", or point --api-socket / FERRY_API_SOCKET at its socket)`))
      } else if (err.code === 'EACCES') {
        reject(new FerryError('AGENT_NOT_RUNNING', `permission denied on ${socketPath}: the agent's socket is root-only, run the CLI as root`))
      } else {
        reject(new FerryError('AGENT_NOT_RUNNING', `cannot talk to the agent on ${socketPath}: ${err.message}`, { cause: err }))
      }
    })
    req.end(method === 'POST' ? '{}' : undefined)
  })
}
