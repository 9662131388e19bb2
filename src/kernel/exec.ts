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

/** How programs start: execFile, or a recording fake in unit tests. */
export type Runner = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>

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

/** A long-running child whose stdout is read line by line. */
export interface LineChild {
  /** Resolves when the child has exited (for any reason). */
  readonly exited: Promise<void>
  stop (): void
}

/**
 * Start a long-running program (argv, no shell) and hand each line of its stdout
 * to `onLine`. Lines longer than `maxLine` characters are cut there (the rest of
 * the line is dropped), so a misbehaving child never grows a buffer without bound.
 * stderr is ignored. `onError` hears a failure to start.
 */
export function spawnLines (argv: readonly string[], onLine: (line: string) => void, opts: { maxLine?: number, onError?: (err: FerryError) => void } = {}): LineChild {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new FerryError('INTERNAL', 'spawnLines needs a program')
  const max = opts.maxLine ?? 4096
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  let partial = ''
  let skipping = false
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf('\n', start)
      const piece = chunk.slice(start, nl < 0 ? undefined : nl)
      if (!skipping) {
        partial += piece.slice(0, Math.max(0, max - partial.length))
        if (partial.length >= max && nl < 0) skipping = true
      }
      if (nl < 0) break
      const line = partial
      partial = ''
      skipping = false
      onLine(line)
      start = nl + 1
    }
  })
  const exited = new Promise<void>((resolve) => {
    child.on('error', (e) => {
      opts.onError?.(new FerryError('KERNEL', `could not run ${cmd}: ${e.message}`, { cause: e }))
      resolve()
    })
    child.on('close', () => resolve())
  })
  return { exited, stop: () => { child.kill('SIGTERM') } }
}

/** A long-running child fed through stdin, whose stderr is handed over as it comes. */
export interface InteractiveChild {
  write (text: string): void
  readonly exited: Promise<void>
  stop (): void
}

/** Start a long-running program (argv, no shell) to talk to through stdin; stdout is ignored. */
export function spawnInteractive (argv: readonly string[], onStderr: (chunk: string) => void): InteractiveChild {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new FerryError('INTERNAL', 'spawnInteractive needs a program')
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', onStderr)
  child.stdin.on('error', () => { /* seen as the exit */ })
  const exited = new Promise<void>((resolve) => {
    child.on('error', () => resolve())
    child.on('close', () => resolve())
  })
  return { write: (text) => { child.stdin.write(text) }, exited, stop: () => { child.kill('SIGTERM') } }
}
