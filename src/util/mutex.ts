/** A promise-chain mutex, and a keyed variant (one queue per key). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()
  run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => undefined)
    return result
  }
}

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>()
  run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve()
    const result = prev.then(fn, fn)
    const tail = result.catch(() => undefined)
    this.tails.set(key, tail)
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key) }) // tail never rejects
    return result
  }
}

/**
 * Many readers or one writer. ferry's request handlers are readers (they may run
 * side by side, each under its own keyed lock); reconcile is the writer: it must
 * never see a half-made endpoint (a veth created but not yet recorded) and take
 * it for a leftover. A waiting writer holds back new readers, so it cannot starve.
 */
export class RwLock {
  private readers = 0
  private idle: Array<() => void> = []
  private gate: Promise<void> = Promise.resolve()
  private readonly writers = new Mutex()

  async read<T> (fn: () => Promise<T>): Promise<T> {
    let g: Promise<void>
    do { g = this.gate; await g } while (g !== this.gate)
    this.readers++
    try {
      return await fn()
    } finally {
      if (--this.readers === 0) for (const wake of this.idle.splice(0)) wake()
    }
  }

  write<T> (fn: () => Promise<T>): Promise<T> {
    return this.writers.run(async () => {
      let open!: () => void
      this.gate = new Promise((resolve) => { open = resolve })
      try {
        while (this.readers > 0) await new Promise<void>((resolve) => this.idle.push(resolve))
        return await fn()
      } finally {
        open()
      }
    })
  }
}
