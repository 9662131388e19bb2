/**
 * wireguard-go's UAPI socket (`/var/run/wireguard/<dev>.sock`, the cross-platform
 * userspace API of wireguard.com/xplatform): one request, one bounded answer.
 * The text of requests and the parsing of answers are src/wireguard/plan.ts'.
 */
import { connect } from 'node:net'
import { FerryError } from '../errors/errors.js'

const UAPI_TIMEOUT_MS = 5000
const MAX_ANSWER = 16 * 1024 * 1024

/** One request on the UAPI socket; resolves the answer (the device closes after `errno=` and a blank line). */
export function uapiRequest (socket: string, request: string, timeoutMs = UAPI_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket)
    const chunks: Buffer[] = []
    let size = 0
    const timer = setTimeout(() => { s.destroy(); reject(new FerryError('KERNEL', `the WireGuard socket ${socket} did not answer within ${timeoutMs} ms`)) }, timeoutMs)
    const done = (err?: Error): void => {
      clearTimeout(timer)
      s.destroy()
      if (err) reject(err)
      else resolve(Buffer.concat(chunks).toString('utf8'))
    }
    s.on('connect', () => s.write(request))
    s.on('data', (b: Buffer) => {
      chunks.push(b)
      size += b.length
      if (size > MAX_ANSWER) { done(new FerryError('KERNEL', `the WireGuard socket ${socket} answered more than ${MAX_ANSWER} bytes`)); return }
      // An answer ends with "errno=N\n\n".
      const text = Buffer.concat(chunks).toString('utf8')
      if (/(^|\n)errno=-?\d+\n\n$/.test(text)) done()
    })
    s.on('end', () => done())
    s.on('error', (e) => done(new FerryError('KERNEL', `cannot reach the WireGuard socket ${socket}: ${e.message}`, { cause: e })))
  })
}
