/**
 * WireGuard keys of this host: an x25519 key pair made with node:crypto, kept
 * in the state directory (`wireguard.key`, the private key in base64, mode
 * 0600, never a symbolic link). Only the public key leaves the host (published
 * beside the host registration in the cluster).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'
import { FerryError } from '../errors/errors.js'

export const KEY_FILE = 'wireguard.key'
/** 32 bytes in standard base64 (43 characters and one '='), as `wg` prints keys. */
export const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/
/** PKCS#8 DER prefix of a raw X25519 private key (RFC 8410). */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')

export interface KeyPair {
  /** base64 of the 32 raw bytes */
  privateKey: string
  publicKey: string
}

/** A WireGuard key as base64 of exactly 32 bytes, or a clear error. */
export function checkKey (key: unknown, what = 'WireGuard key'): string {
  if (typeof key !== 'string' || !KEY_RE.test(key) || Buffer.from(key, 'base64').length !== 32) {
    throw new FerryError('INVALID_REQUEST', `${what} is not 32 bytes in base64`)
  }
  return key
}

/** The key as the UAPI protocol writes it: 64 hex digits. */
export function keyHex (key: string): string {
  return Buffer.from(checkKey(key), 'base64').toString('hex')
}

/** The base64 key of 64 hex digits (what `get=1` answers). */
export function keyFromHex (hex: string): string {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new FerryError('INVALID_REQUEST', 'a WireGuard key in hex must be 64 hex digits')
  return Buffer.from(hex, 'hex').toString('base64')
}

function b64 (u: string): string { return Buffer.from(u, 'base64url').toString('base64') }

export function generateKeyPair (): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  const d = privateKey.export({ format: 'jwk' }).d
  const x = publicKey.export({ format: 'jwk' }).x
  if (d === undefined || x === undefined) throw new FerryError('INTERNAL', 'node:crypto gave an x25519 key without its raw bytes')
  return { privateKey: b64(d), publicKey: b64(x) }
}

/** The public key of a private key (both base64). */
export function publicKeyOf (privateKey: string): string {
  const raw = Buffer.from(checkKey(privateKey, 'the WireGuard private key'), 'base64')
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' })
  const x = createPublicKey(key).export({ format: 'jwk' }).x
  if (x === undefined) throw new FerryError('INTERNAL', 'node:crypto gave an x25519 public key without its raw bytes')
  return b64(x)
}

/**
 * This host's key pair: read from `<stateDir>/wireguard.key`, or made and
 * written there (mode 0600, exclusive create) when it is missing. A key file
 * others can read, a link, or one that does not hold a key is refused.
 */
export async function loadOrCreateKeyPair (stateDir: string): Promise<KeyPair> {
  const file = path.join(stateDir, KEY_FILE)
  let text: string | undefined
  try {
    const h = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const st = await h.stat()
      if (!st.isFile()) throw new FerryError('INVALID_OPTION', `${file} is not a regular file`)
      if ((st.mode & 0o077) !== 0) throw new FerryError('INVALID_OPTION', `${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it or remove it to make a new key`)
      if (st.size > 256) throw new FerryError('INVALID_OPTION', `${file} does not hold a WireGuard key (too long)`)
      text = (await h.readFile('utf8')).trim()
    } finally { await h.close() }
  } catch (err) {
    if (err instanceof FerryError) throw err
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP') throw new FerryError('INVALID_OPTION', `${file} is a symbolic link: ferry follows none in its state directory`, { cause: err })
    if (code !== 'ENOENT') throw new FerryError('INVALID_OPTION', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (text !== undefined) {
    try { return { privateKey: text, publicKey: publicKeyOf(text) } } catch (err) {
      throw new FerryError('INVALID_OPTION', `${file} does not hold a WireGuard private key (32 bytes in base64)`, { cause: err })
    }
  }
  const pair = generateKeyPair()
  await writeKeyFile(file, pair.privateKey)
  return pair
}

/** Write the private key: a temporary file made 0600 exclusively, fsync, rename over. */
export async function writeKeyFile (file: string, privateKey: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  const h = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  try {
    await h.writeFile(checkKey(privateKey) + '\n')
    await h.sync()
  } finally { await h.close() }
  await fs.rename(tmp, file)
}

/** Remove this host's key (gone already is fine). */
export async function removeKeyFile (stateDir: string): Promise<void> {
  await fs.rm(path.join(stateDir, KEY_FILE), { force: true })
}
