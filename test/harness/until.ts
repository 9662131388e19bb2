// The one polling helper of the tests: wait until a condition holds (or a value appears), then let the
// caller assert on what it observes. A timeout is a failure with the condition's name, never a pass.
import { setTimeout as sleep } from 'node:timers/promises'

export interface UntilOptions {
  /** Give up after this long (default 5 s). */
  timeoutMs?: number
  /** Pause between checks (default 10 ms); 0 yields to pending I/O and promise callbacks only (setImmediate). */
  everyMs?: number
}

const yieldOnce = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Check `fn` until it returns something other than `undefined`, `null` or `false`, and return that. */
export async function untilValue<T> (what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, opts: UntilOptions | number = {}): Promise<T> {
  const { timeoutMs = 5000, everyMs = 10 } = typeof opts === 'number' ? { timeoutMs: opts } : opts
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== null && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await (everyMs > 0 ? sleep(everyMs) : yieldOnce())
  }
}

/** Check `check` until it is true. */
export async function until (what: string, check: () => boolean | Promise<boolean>, opts: UntilOptions | number = {}): Promise<void> {
  await untilValue(what, async () => (await check()) || undefined, opts)
}

/**
 * Check `fn` until `done` holds for its value or the time is up, and return the last value either way: for a
 * wait followed by an assertion on what was last seen (whose diff then says what was wrong).
 */
export async function observe<T> (fn: () => T | Promise<T>, done: (v: T) => boolean, opts: UntilOptions | number = {}): Promise<T> {
  const { timeoutMs = 5000, everyMs = 10 } = typeof opts === 'number' ? { timeoutMs: opts } : opts
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (done(v) || Date.now() > deadline) return v
    await (everyMs > 0 ? sleep(everyMs) : yieldOnce())
  }
}
