/**
 * One error type for all of ferry. Every error carries a stable code, a category
 * (which decides the HTTP status, the Docker answer and the CLI exit code) and a
 * sentence a person understands. The original error is kept as `cause`.
 */
export type ErrorCategory = 'bad-request' | 'not-found' | 'conflict' | 'unavailable' | 'internal'

/** Every code ferry can raise, with its category and what it means. */
export const ERROR_CODES = {
  INVALID_REQUEST: { category: 'bad-request', doc: 'A request body or argument failed validation.' },
  INVALID_OPTION: { category: 'bad-request', doc: 'A network or endpoint option has a value ferry cannot use.' },
  INVALID_CIDR: { category: 'bad-request', doc: 'A subnet, range or address is not valid IPv4 CIDR notation.' },
  UNSUPPORTED: { category: 'bad-request', doc: 'The request asks for something ferry does not support (for example IPv6 pools).' },
  POOL_OVERLAP: { category: 'conflict', doc: 'The requested subnet overlaps a pool ferry already holds or a route of the host.' },
  POOL_EXHAUSTED: { category: 'conflict', doc: 'No free address is left in the pool, or no free pool is left in the default address pools.' },
  ADDRESS_IN_USE: { category: 'conflict', doc: 'The requested address is already allocated.' },
  ADDRESS_OUT_OF_POOL: { category: 'bad-request', doc: 'The requested address is outside the pool or its range.' },
  NAME_CONFLICT: { category: 'conflict', doc: 'A kernel object of that name exists and is not ferry\'s, or is used by another network.' },
  PORT_CONFLICT: { category: 'conflict', doc: 'A host port is already published by another endpoint.' },
  NO_FREE_PORT: { category: 'conflict', doc: 'No free host port is left in the ephemeral range.' },
  POOL_NOT_FOUND: { category: 'not-found', doc: 'The pool id is not known to ferry.' },
  NETWORK_NOT_FOUND: { category: 'not-found', doc: 'The network id or name is not known to ferry.' },
  ENDPOINT_NOT_FOUND: { category: 'not-found', doc: 'The endpoint id is not known to ferry.' },
  UNKNOWN_METHOD: { category: 'not-found', doc: 'The plugin method or API route does not exist.' },
  AGENT_NOT_RUNNING: { category: 'unavailable', doc: 'The CLI could not reach the agent\'s API socket.' },
  ALREADY_RUNNING: { category: 'conflict', doc: 'Another agent already uses this state directory or socket.' },
  ENGINE_UNAVAILABLE: { category: 'unavailable', doc: 'The Docker engine API could not be reached.' },
  CLUSTER_UNAVAILABLE: { category: 'unavailable', doc: 'The cluster store (Redis) is not configured or not reachable.' },
  CLUSTER_REFUSED: { category: 'conflict', doc: 'Something read from the cluster store failed validation or the --cluster-key check, or is not what this host asked for, and was refused.' },
  KERNEL: { category: 'internal', doc: 'The kernel refused a change (netlink, sysctl or iptables).' },
  STORE: { category: 'internal', doc: 'The local state store could not be read or written.' },
  STORE_DAMAGED: { category: 'internal', doc: 'The state file is damaged (not JSON, or records of the wrong shape): the agent refuses to start on it until it is recovered (ferry agent --recover-store).' },
  INTERNAL: { category: 'internal', doc: 'An unexpected error inside ferry.' },
} as const satisfies Record<string, { category: ErrorCategory; doc: string }>

export type ErrorCode = keyof typeof ERROR_CODES

export class FerryError extends Error {
  readonly code: ErrorCode
  readonly category: ErrorCategory
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FerryError'
    this.code = code
    this.category = ERROR_CODES[code].category
  }
}

export function ferryError (code: ErrorCode, message: string, cause?: unknown): FerryError {
  return new FerryError(code, message, cause === undefined ? undefined : { cause })
}

/** Wrap anything thrown into a FerryError, keeping the original as cause. */
export function toFerryError (err: unknown, code: ErrorCode = 'INTERNAL', prefix?: string): FerryError {
  if (err instanceof FerryError) return err
  const msg = err instanceof Error ? err.message : String(err)
  return new FerryError(code, prefix ? `${prefix}: ${msg}` : msg, { cause: err })
}

const HTTP_STATUS: Record<ErrorCategory, number> = {
  'bad-request': 400,
  'not-found': 404,
  conflict: 409,
  unavailable: 503,
  internal: 500,
}

export function httpStatus (category: ErrorCategory): number {
  return HTTP_STATUS[category]
}

const EXIT_CODE: Record<ErrorCategory, number> = {
  'bad-request': 2,
  'not-found': 3,
  conflict: 4,
  unavailable: 5,
  internal: 1,
}

export function exitCode (category: ErrorCategory): number {
  return EXIT_CODE[category]
}

/** Collects failures of a best-effort teardown so none is lost. */
export class ErrorList {
  readonly errors: unknown[] = []
  async run (what: string, fn: () => Promise<unknown> | unknown): Promise<void> {
    try { await fn() } catch (err) { this.errors.push(toFerryError(err, 'INTERNAL', what)) }
  }
  throwIfAny (message: string): void {
    if (this.errors.length === 0) return
    if (this.errors.length === 1) throw this.errors[0]
    throw new FerryError('INTERNAL', `${message}: ${this.errors.map((e) => (e as Error).message).join('; ')}`,
      { cause: new AggregateError(this.errors) })
  }
}
