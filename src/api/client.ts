/**
 * The one client of the agent's admin API (HTTP/JSON over a unix socket), used by
 * the CLI, the runtime commands, `ferry doctor` and the CNI plugin. Errors come back as the
 * agent's FerryError (code and sentence); an agent that is not there is
 * AGENT_NOT_RUNNING with a sentence that says how to start it.
 */
import { ERROR_CODES, FerryError, type ErrorCode } from '../errors/errors.js'
import type { ApiMethod as Method, ApiRequest } from '../model/types.js'
import { exchange } from '../util/exchange.js'

export const DEFAULT_API_SOCKET = '/run/ferry/ferry.sock'

export type { ApiRequest, Method }

export function apiSocketFrom (flag: string | undefined): string {
  return flag ?? process.env.FERRY_API_SOCKET ?? DEFAULT_API_SOCKET
}

export function apiRequester (socketPath: string, timeoutMs = 60_000): ApiRequest {
  return <T>(method: Method, path: string, body?: unknown) => apiCall<T>(socketPath, method, path, body, timeoutMs)
}

export function apiCall<T> (socketPath: string, method: Method, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  // fastify wants a JSON body with a JSON content type: a POST without one sends {}.
  const payload = body === undefined ? (method === 'POST' ? '{}' : undefined) : JSON.stringify(body)
  const headers: Record<string, string> = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }
  return exchange({ socketPath, method, path, headers, body: payload, timeoutMs }).then(({ status, text }) => {
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch { parsed = undefined }
    if (status >= 300) {
      const e = (parsed as { error?: { code?: string, message?: string } } | undefined)?.error
      const code = (e?.code ?? 'INTERNAL') as ErrorCode
      throw new FerryError(code in ERROR_CODES ? code : 'INTERNAL', e?.message ?? `the agent answered ${status}: ${text.trim()}`)
    }
    return parsed as T
  }, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      throw new FerryError('AGENT_NOT_RUNNING', `the ferry agent is not running: nothing answers on ${socketPath} (start it with "ferry agent", or point --api-socket / FERRY_API_SOCKET at its socket)`)
    } else if (err.code === 'EACCES') {
      throw new FerryError('AGENT_NOT_RUNNING', `permission denied on ${socketPath}: the agent's socket is root-only, run the CLI as root`)
    }
    throw new FerryError('AGENT_NOT_RUNNING', `cannot talk to the agent on ${socketPath}: ${err.message}`, { cause: err })
  })
}
