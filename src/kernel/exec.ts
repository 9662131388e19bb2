/**
 * The one place ferry starts other programs. Always an argv array, never a shell
 * string; input goes through stdin. Errors become FerryError KERNEL with the
 * program's stderr in the message.
 */
import { spawn } from 'node:child_process'
import { FerryError } from '../errors/errors.js'

export interface ExecResult { stdout: string, stderr: string, code: number }

export interface ExecOptions {
  input?: string
  timeoutMs?: number
  /** Do not throw on a non-zero exit; return the result instead. */
  allowFailure?: boolean
  env?: NodeJS.ProcessEnv
}

export function execFile (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new FerryError('INTERNAL', 'execFile needs a program')
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
    }
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      if (timer) clearTimeout(timer)
      reject(new FerryError('KERNEL', `could not run ${cmd}: ${e.message}`, { cause: e }))
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      const res = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? -1 }
      if (res.code !== 0 && !opts.allowFailure) {
        const why = signal ? `killed by ${signal}` : `exit ${res.code}`
        reject(new FerryError('KERNEL', `${cmd} failed (${why}): ${res.stderr.trim() || res.stdout.trim()}`))
        return
      }
      resolve(res)
    })
    child.stdin.on('error', () => { /* reported through close */ })
    child.stdin.end(opts.input ?? '')
  })
}
