/**
 * The optional shared cluster key (`ferry agent --cluster-key FILE`): an
 * HMAC-SHA256 over every entry and message a host writes to the cluster store,
 * verified by every reader. The MAC covers the kind of entry and its key name
 * (host id, overlay name, overlay|endpoint id) as well as its content, so an
 * authentic entry cannot be moved to another key. Every host must use the same
 * key; an agent without a key ignores MACs.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { FerryError } from '../errors/errors.js'

/** What a MAC is about: the kind of entry and its name in the store. */
export type SignedKind = 'host' | 'overlay' | 'endpoint' | 'features'

const CONTEXT = 'ferry-cluster-v1'
export const MIN_KEY_BYTES = 32
/** A MAC as stored: base64url of 32 bytes. */
export const SIG_RE = /^[A-Za-z0-9_-]{43}$/

export class ClusterKey {
  private readonly secret: Buffer

  constructor (secret: Buffer) {
    if (secret.length < MIN_KEY_BYTES) throw new FerryError('INVALID_OPTION', `the cluster key must hold at least ${MIN_KEY_BYTES} bytes of secret`)
    this.secret = Buffer.from(secret)
  }

  /** The MAC of `content` (a canonical JSON string) stored under `kind` and `name`. */
  sign (kind: SignedKind, name: string, content: string): string {
    return createHmac('sha256', this.secret).update(`${CONTEXT}\n${kind}\n${name}\n${content}`).digest('base64url')
  }

  verify (kind: SignedKind, name: string, content: string, sig: unknown): boolean {
    if (typeof sig !== 'string' || !SIG_RE.test(sig)) return false
    const want = Buffer.from(this.sign(kind, name, content), 'base64url')
    const got = Buffer.from(sig, 'base64url')
    return got.length === want.length && timingSafeEqual(got, want)
  }
}

/** Pure part of readClusterKey: the file's mode and content checked. */
export function checkClusterKey (file: string, content: Buffer, mode: number, uid: number): ClusterKey {
  if ((mode & 0o077) !== 0) {
    throw new FerryError('INVALID_OPTION', `--cluster-key ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`)
  }
  if (uid !== 0) throw new FerryError('INVALID_OPTION', `--cluster-key ${file} must be owned by root (it is owned by uid ${uid})`)
  const secret = Buffer.from(content.toString('utf8').trim(), 'utf8')
  if (secret.length < MIN_KEY_BYTES) {
    throw new FerryError('INVALID_OPTION', `--cluster-key ${file} must hold at least ${MIN_KEY_BYTES} bytes of secret (for example: openssl rand -hex 32 > ${file})`)
  }
  return new ClusterKey(secret)
}

/** Read `--cluster-key FILE`: mode 600 (or stricter), owned by root, at least 32 bytes once trimmed. */
export async function readClusterKey (file: string): Promise<ClusterKey> {
  let content: Buffer
  let st: { mode: number, uid: number }
  try {
    [content, st] = await Promise.all([fs.readFile(file), fs.stat(file)])
  } catch (err) {
    throw new FerryError('INVALID_OPTION', `cannot read --cluster-key ${file}: ${(err as Error).message}`, { cause: err })
  }
  return checkClusterKey(file, content, st.mode, st.uid)
}
