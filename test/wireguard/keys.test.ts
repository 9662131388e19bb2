import t from 'tap'
import { mkdtempSync, promises as fs, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { checkKey, generateKeyPair, keyFromHex, keyHex, loadOrCreateKeyPair, publicKeyOf, KEY_FILE } from '../../src/wireguard/keys.js'

t.test('a generated pair: 32-byte base64 keys, the public key derived from the private one', async (t) => {
  const p = generateKeyPair()
  t.equal(checkKey(p.privateKey), p.privateKey)
  t.equal(Buffer.from(p.publicKey, 'base64').length, 32)
  t.equal(publicKeyOf(p.privateKey), p.publicKey)
  t.equal(keyFromHex(keyHex(p.publicKey)), p.publicKey)
})

t.test('RFC 7748 test vector: the public key of a known private key', async (t) => {
  // Alice's key pair from RFC 7748 section 6.1.
  const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64')
  const pub = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64')
  t.equal(publicKeyOf(priv), pub)
})

t.test('keys that are not 32 bytes of base64 are refused', async (t) => {
  for (const bad of ['', 'abc', 'A'.repeat(44), Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=', 42, null, `${'A'.repeat(43)}=\n`]) {
    t.throws(() => checkKey(bad), /32 bytes in base64/, JSON.stringify(bad))
  }
  t.throws(() => keyFromHex('zz'), /64 hex digits/)
})

t.test('the key file: made once with mode 0600, read back the same; refused when others can read it or it is a link', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-wgkey-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const a = await loadOrCreateKeyPair(dir)
  const st = await fs.stat(path.join(dir, KEY_FILE))
  t.equal(st.mode & 0o777, 0o600)
  const b = await loadOrCreateKeyPair(dir)
  t.same(b, a)
  await fs.chmod(path.join(dir, KEY_FILE), 0o644)
  await t.rejects(loadOrCreateKeyPair(dir), /readable by others/)
  await fs.chmod(path.join(dir, KEY_FILE), 0o600)
  await fs.writeFile(path.join(dir, KEY_FILE), 'not a key\n')
  await t.rejects(loadOrCreateKeyPair(dir), /does not hold a WireGuard private key/)
  const other = mkdtempSync(path.join(tmpdir(), 'ferry-wgkey-'))
  t.teardown(() => fs.rm(other, { recursive: true, force: true }))
  symlinkSync(path.join(dir, KEY_FILE), path.join(other, KEY_FILE))
  await t.rejects(loadOrCreateKeyPair(other), /symbolic link/)
})
