/**
 * One long-running `nft -i` per agent for element deltas, so that a container's
 * change is one transaction in a process that is already there (the `nft`
 * program's own start, ~10 ms idle and far more on a loaded host, is most of the
 * cost of a change otherwise). Each transaction is written as one line (commands
 * joined with `;`: nft runs a line as one atomic batch), followed by a line that
 * is sure to fail with a known echo (`list table inet ferry_sync_N`); everything
 * on stderr before that echo belongs to the transaction, and an `Error:` in it
 * means the kernel refused it (and changed nothing).
 *
 * Anything unexpected (the process died, no answer within the timeout, a line too
 * long) rejects, the session is closed and the next call starts a new one; the
 * driver then falls back to `nft -f -` and a reconcile, so the session is only
 * ever a faster path, never the only one.
 */
import { FerryError } from '../errors/errors.js'
import { spawnInteractive, type InteractiveChild } from '../kernel/exec.js'

/** Longer transactions go through `nft -f -`. */
export const SESSION_MAX_LINE = 8192
const MAX_BUFFER = 1 << 20

interface Pending { marker: string, resolve: () => void, reject: (err: Error) => void, timer: NodeJS.Timeout }

export class NftSession {
  private child: InteractiveChild | undefined
  private buffer = ''
  private pending: Pending | undefined
  private seq = 0

  constructor (private readonly nft: readonly string[], private readonly timeoutMs = 10_000) {}

  /** True when `text` (nft commands, one per line) can go through the session. */
  static fits (text: string): boolean {
    return text.length < SESSION_MAX_LINE && !/[;#\\]/.test(text)
  }

  /** Run one transaction; only one at a time (the driver's mutex serializes callers). */
  run (text: string): Promise<void> {
    if (this.pending !== undefined) return Promise.reject(new FerryError('INTERNAL', 'nft session: one transaction at a time'))
    const child = this.child ?? this.start()
    const marker = `list table inet ferry_sync_${++this.seq}`
    const line = text.split('\n').filter((l) => l.trim() !== '').join('; ')
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new FerryError('KERNEL', `nft session: no answer within ${this.timeoutMs} ms`)), this.timeoutMs)
      this.pending = { marker, resolve, reject, timer }
      child.write(`${line}\n${marker}\n`)
    })
  }

  /**
   * Start the process now when it is not running (the agent's reconcile does, so that the
   * first container's change does not pay for the fork and nft's own start: 5–10 ms).
   */
  warm (): void {
    if (this.child === undefined && this.pending === undefined) this.start()
  }

  close (): void {
    this.fail(new FerryError('KERNEL', 'nft session closed'))
  }

  private start (): InteractiveChild {
    const child = spawnInteractive([...this.nft, '-i'], (chunk) => this.onStderr(chunk))
    this.child = child
    this.buffer = ''
    void child.exited.then(() => { // exited never rejects
      if (this.child === child) this.fail(new FerryError('KERNEL', 'nft session: the nft process exited'))
    })
    return child
  }

  private onStderr (chunk: string): void {
    this.buffer += chunk
    if (this.buffer.length > MAX_BUFFER) {
      this.fail(new FerryError('KERNEL', 'nft session: too much output'))
      return
    }
    const p = this.pending
    if (p === undefined) return
    const echo = this.buffer.indexOf(`\n${p.marker}\n`)
    if (echo < 0) return
    // stderr up to the marker's own "Error:" line is the transaction's.
    const before = this.buffer.slice(0, echo)
    const own = before.slice(0, before.lastIndexOf('Error:'))
    this.buffer = this.buffer.slice(echo + p.marker.length + 2).replace(/^[ ^~]*\n/, '')
    this.pending = undefined
    clearTimeout(p.timer)
    const errors = own.split('\n').filter((l) => l.startsWith('Error:'))
    if (errors.length > 0) p.reject(new FerryError('KERNEL', `nft refused ferry's transaction: ${errors.join('; ')}`))
    else p.resolve()
  }

  private fail (err: Error): void {
    const p = this.pending
    this.pending = undefined
    const child = this.child
    this.child = undefined
    child?.stop()
    this.buffer = ''
    if (p !== undefined) {
      clearTimeout(p.timer)
      p.reject(err)
    }
  }
}
