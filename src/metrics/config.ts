/**
 * Validation of `--metrics-listen HOST:PORT` and `--metrics-token FILE`. Pure
 * except for `readTokenFile`. The endpoint is opt-in: no flag, no listener. A
 * loopback address may be served without a token; any other address only with
 * one (the issue: "no TCP listener unless asked for, and then only with TLS or a
 * token").
 */
import { promises as fs } from 'node:fs'
import { isIp, parseIpOrUndefined } from '../util/ip.js'
import { FerryError } from '../errors/errors.js'

export interface MetricsListen { host: string, port: number }

export interface MetricsConfig {
  listen: MetricsListen
  /** A file holding the bearer token; required unless `listen.host` is loopback. */
  tokenFile?: string
}

/** `127.0.0.1:9323`, `[::1]:9323`, `0.0.0.0:9323`, `localhost:9323`. */
export function parseMetricsListen (spec: string): MetricsListen {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+|localhost)):(\d{1,5})$/.exec(spec)
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (m === null || host === undefined || !(host === 'localhost' || isIp(host)) || port < 1 || port > 65535) {
    throw new FerryError('INVALID_OPTION', `--metrics-listen "${spec}" must be IP:PORT (for example 127.0.0.1:9323, or [::1]:9323)`)
  }
  return { host: host === 'localhost' ? '127.0.0.1' : host, port }
}

export function isLoopback (host: string): boolean {
  const p = parseIpOrUndefined(host)
  if (p === undefined) return false
  if (p.family === 4) return p.value >> 24n === 127n
  // ::1, or an IPv4-mapped loopback address (::ffff:127.x.y.z)
  return p.value === 1n || (p.value >> 24n) === 0xffff7fn
}

/** The metrics part of the agent's config from its flags; undefined when not asked for. */
export function metricsConfig (flags: { metricsListen?: string, metricsToken?: string }): MetricsConfig | undefined {
  if (flags.metricsListen === undefined) {
    if (flags.metricsToken !== undefined) throw new FerryError('INVALID_OPTION', '--metrics-token only makes sense with --metrics-listen')
    return undefined
  }
  const listen = parseMetricsListen(flags.metricsListen)
  if (flags.metricsToken === undefined && !isLoopback(listen.host)) {
    throw new FerryError('INVALID_OPTION',
      `--metrics-listen ${flags.metricsListen} is not a loopback address: serving metrics there needs --metrics-token FILE ` +
      '(scrapers then send "Authorization: Bearer <token>"), or listen on 127.0.0.1 behind your own TLS proxy')
  }
  return flags.metricsToken === undefined ? { listen } : { listen, tokenFile: flags.metricsToken }
}

/** A token file's first line; refused when empty, too short or readable by others than its owner. */
export async function readTokenFile (file: string): Promise<string> {
  let text: string
  let mode: number
  try {
    [text, mode] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file).then((s) => s.mode)])
  } catch (err) {
    throw new FerryError('INVALID_OPTION', `cannot read --metrics-token ${file}: ${(err as Error).message}`, { cause: err })
  }
  return checkToken(file, text, mode)
}

/** Pure part of readTokenFile. */
export function checkToken (file: string, text: string, mode: number): string {
  if ((mode & 0o077) !== 0) {
    throw new FerryError('INVALID_OPTION', `--metrics-token ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`)
  }
  const token = (text.split('\n')[0] ?? '').trim()
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new FerryError('INVALID_OPTION', `--metrics-token ${file} must hold one token of at least 16 printable characters on its first line (for example: openssl rand -hex 32)`)
  }
  return token
}
