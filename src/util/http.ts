/** Fastify options shared by ferry's two HTTP servers (plugin and admin API). */
import { LogController, type FastifyBaseLogger } from 'fastify'
import type { Logger } from 'pino'

export function fastifyOptions (log: Logger, component: string, bodyLimit = 1024 * 1024) {
  return {
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    // ferry logs each call itself; no per-request info lines.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    // Types are checked, never coerced: "Pool": 42 is an error, not "42".
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }
}
