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
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key) })
    return result
  }
}
