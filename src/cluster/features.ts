/**
 * Record features and the capability signal of mixed-version clusters (docs/cluster.md,
 * "Versions that interoperate"). A record feature is an optional field of the endpoint record
 * that a host of an older version would refuse (its reader was strict: an unknown field refused
 * the whole record, and with it the endpoint). Each host advertises the features it understands
 * in its host hash (`<p>host:<h>` field `features`, written by its heartbeat script), where an
 * older version's scripts never look; a writer puts such a field in its records only while every
 * live member host advertises it. A host without the entry is an older version: it understands
 * none. Pure.
 *
 * The entry as stored: "<the heartbeat's server time, ms> <JSON {"features":[…],"sig"?:…}>". The time
 * is the one the same script writes as `lastHeartbeat`: an entry whose time is not the host's last
 * heartbeat was left by an earlier run of the host (a heartbeat of an older version since, which does
 * not touch the field) and counts as none. The MAC (kind `features`, name the host id) covers the
 * feature list.
 */
import type { ClusterKey } from './key.js'
import type { ClusterEndpoint, HostInfo } from './types.js'
import type { Read } from './validate.js'

/** The record features this version knows. */
export const KNOWN_FEATURES = ['ports'] as const
export type Feature = typeof KNOWN_FEATURES[number]
/** What this version understands (and advertises). */
export const FEATURES: readonly Feature[] = KNOWN_FEATURES

/** An entry longer than this, or with more tokens than MAX_FEATURE_TOKENS, is refused. */
export const MAX_FEATURES_ENTRY = 1024
export const MAX_FEATURE_TOKENS = 16
const TOKEN_RE = /^[a-z][a-z0-9-]{0,31}$/
const ENTRY_RE = /^(\d{1,16}) (.*)$/s

/** The part of the entry the MAC covers: the feature list in its stored order. */
export function featuresContent (features: readonly string[]): string {
  return JSON.stringify({ features })
}

/** What a host sends its heartbeat script ('' = no entry: nothing new understood, as an older version). */
export function featuresEntry (hostId: string, features: readonly string[], key?: ClusterKey): string {
  if (features.length === 0) return ''
  const content = featuresContent(features)
  const sig = key?.sign('features', hostId, content)
  return sig === undefined ? content : `${content.slice(0, -1)},"sig":${JSON.stringify(sig)}}`
}

function refused (reason: 'invalid' | 'too-large' | 'bad-mac' | 'missing-mac', detail: string): Read<never> {
  return { ok: false, reason, detail }
}

/**
 * A host's entry as read (its `features` field, stamped): the features this version knows among
 * those it lists, or undefined (none signalled: an older version, or an entry from before the host's
 * last heartbeat). Refused: too long, not JSON, not a list of at most 16 tokens, a missing or wrong MAC
 * with a key. Tokens this version does not know are valid and left out (a newer host's features).
 */
export function readFeatures (raw: unknown, host: Pick<HostInfo, 'hostId' | 'lastHeartbeat'>, key?: ClusterKey): Read<Feature[] | undefined> {
  if (raw === undefined || raw === '') return { ok: true, value: undefined }
  if (typeof raw !== 'string') return refused('invalid', 'its features entry is not text')
  if (raw.length > MAX_FEATURES_ENTRY) return refused('too-large', `its features entry is ${raw.length} bytes long`)
  const m = ENTRY_RE.exec(raw)
  if (m === null) return refused('invalid', 'its features entry has no time stamp')
  let v: unknown
  try { v = JSON.parse(m[2]!) } catch { return refused('invalid', 'its features entry is not JSON') }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return refused('invalid', 'its features entry is not an object')
  const { features, sig } = v as { features?: unknown, sig?: unknown }
  if (!Array.isArray(features) || features.length > MAX_FEATURE_TOKENS || !features.every((f) => typeof f === 'string' && TOKEN_RE.test(f))) {
    return refused('invalid', `its features must be a list of at most ${MAX_FEATURE_TOKENS} short lower-case tokens`)
  }
  if (key !== undefined) {
    if (sig === undefined) return refused('missing-mac', 'its features entry carries no MAC of the cluster key')
    if (!key.verify('features', host.hostId, featuresContent(features as string[]), sig)) return refused('bad-mac', 'its features entry\'s MAC does not match the cluster key')
  }
  // Written by a heartbeat before the last one: the host ran another version since.
  if (Number(m[1]) !== host.lastHeartbeat) return { ok: true, value: undefined }
  return { ok: true, value: KNOWN_FEATURES.filter((f) => (features as string[]).includes(f)) }
}

/**
 * The features this version understands that are held back: not understood by every live member
 * host (a host without features: an older version). A host row that could not be read counts as an
 * older host (its version is not known). Sorted as FEATURES.
 */
export function heldBack (hosts: ReadonlyArray<Pick<HostInfo, 'features'>>, unreadable = 0): Feature[] {
  if (unreadable > 0) return [...FEATURES]
  return FEATURES.filter((f) => !hosts.every((h) => h.features?.includes(f) === true))
}

/** The hosts that hold a feature back (ids and versions), for status. */
export function olderHosts (hosts: ReadonlyArray<Pick<HostInfo, 'hostId' | 'version' | 'features'>>): Array<{ hostId: string, version: string, features: Feature[] }> {
  return hosts.filter((h) => !FEATURES.every((f) => h.features?.includes(f) === true))
    .map((h) => ({ hostId: h.hostId, version: h.version, features: [...(h.features ?? [])] }))
}

/** The endpoint as written while `held` features are held back: without those fields. */
export function withoutHeldBack (ep: ClusterEndpoint, held: readonly Feature[]): ClusterEndpoint {
  if (ep.ports === undefined || !held.includes('ports')) return ep
  const { ports: _ports, ...rest } = ep
  return rest
}

/** One sentence on what is held back and why, for `ferry cluster status`. */
export function compatSentence (held: readonly Feature[], older: ReadonlyArray<{ hostId: string, version: string }>): string {
  if (held.length === 0) return `every host understands ${FEATURES.join(', ')}: nothing is held back`
  const who = older.slice(0, 5).map((h) => `${h.hostId} (${h.version})`).join(', ') + (older.length > 5 ? ` and ${older.length - 5} more` : '')
  return `held back: ${held.join(', ')} (records are written without ${held.length > 1 ? 'them' : 'it'}) because ` +
    `${older.length === 0 ? 'a host row could not be read' : `${older.length === 1 ? 'host' : 'hosts'} ${who} ${older.length === 1 ? 'runs' : 'run'} an older ferry`}`
}
