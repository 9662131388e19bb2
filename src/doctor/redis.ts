/**
 * `ferry doctor --cluster URL`: one short-lived Redis connection (ioredis, with
 * the agent's own URL parsing and TLS/sentinel options from src/cluster) that
 * reads the server version, the PING round trip and the server clock. Never
 * retries: a doctor reports, it does not wait.
 */
import { Redis } from 'ioredis'
import { parseClusterUrl } from '../cluster/url.js'
import { redisOptions } from '../cluster/redis.js'
import { clockOffset, type RedisFacts } from './checks.js'

export interface RedisProbe extends RedisFacts {
  /** This host's clock minus Redis' (ms), from TIME; undefined when not read. */
  offsetMs?: number
  /** Round trip of the TIME call (ms), the offset's uncertainty is half of it. */
  timeRttMs?: number
}

const PINGS = 9

export function redisVersion (info: string): string | undefined {
  return /^redis_version:(\S+)/m.exec(info)?.[1]
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? 0
}

export async function probeRedis (url: string, timeoutMs = 3000): Promise<RedisProbe> {
  let parsed
  try {
    parsed = parseClusterUrl(url)
  } catch (err) {
    return { url, error: (err as Error).message }
  }
  const facts: RedisProbe = { url: parsed.redacted }
  let client: Redis | undefined
  try {
    const opts = redisOptions(parsed, { hostId: 'doctor', commandTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs })
    client = new Redis({ ...opts, retryStrategy: () => null, sentinelRetryStrategy: () => null, connectionName: 'ferry-doctor' })
    client.on('error', () => { /* reported by the awaited calls */ })
    await client.connect()
    facts.version = redisVersion(await client.info('server')) ?? 'unknown'
    const rtts: number[] = []
    for (let i = 0; i < PINGS; i++) {
      const t0 = performance.now()
      await client.ping()
      rtts.push(performance.now() - t0)
    }
    facts.latencyMs = median(rtts)
    const sent = Date.now()
    const t0 = performance.now()
    const [sec, usec] = await client.time()
    facts.timeRttMs = performance.now() - t0
    const received = Date.now()
    facts.offsetMs = clockOffset(Number(sec) * 1000 + Number(usec) / 1000, sent, received)
  } catch (err) {
    facts.error = (err as Error).message
  } finally {
    client?.disconnect()
  }
  return facts
}
