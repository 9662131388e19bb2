/**
 * Objects used as maps keyed by strings from outside (ids, names, option keys, pool
 * ids). A plain `{}` inherits from Object.prototype: `m['constructor']` is a function,
 * `m['__proto__'] = x` replaces the prototype, and a write through a looked-up
 * `m['__proto__']` changes every object of the process. A null-prototype object has
 * none of that: every key is an ordinary key. Prefer `Map` for new code; these are
 * for maps that must stay JSON (the store's state).
 */

/** An empty object with no prototype. */
export function dict<V> (): Record<string, V> {
  return Object.create(null) as Record<string, V>
}

/** A null-prototype copy of `o`'s own enumerable entries (an own `__proto__` key stays an ordinary key). */
export function toDict<V> (o: Readonly<Record<string, V>> | null | undefined): Record<string, V> {
  const out = dict<V>()
  if (o === null || o === undefined) return out
  for (const k of Object.keys(o)) out[k] = o[k] as V
  return out
}

/** `o[key]` when `o` has it as its own property, else undefined (never an inherited member). */
export function own<V> (o: Readonly<Record<string, V>> | null | undefined, key: string): V | undefined {
  return o !== null && o !== undefined && Object.hasOwn(o, key) ? o[key] : undefined
}
