/** What is read from Redis about WireGuard: a host's information and an overlay's encryption, strict schema, covered by the cluster key's MAC. */
import t from 'tap'
import { ClusterKey } from '../../src/cluster/key.js'
import { hostContent, overlayContent, readChange, readHost, readOverlayDefinition } from '../../src/cluster/validate.js'
import { generateKeyPair } from '../../src/wireguard/keys.js'
import { wireGuardContent } from '../../src/wireguard/plan.js'

const wg = { publicKey: generateKeyPair().publicKey, port: 51820, tunnel: '100.64.7.9' }
const row = { hostId: 'h1', vtep: '192.0.2.1', version: '1', lastHeartbeat: 1, expiresAt: 2, registeredAt: 1 }

t.test('a host row with WireGuard information is read into its parts', async (t) => {
  const r = readHost({ ...row, wg: wireGuardContent(wg) })
  t.same(r, { ok: true, value: { ...row, wg } })
  t.same(readHost(row), { ok: true, value: row }, 'a host without it is fine')
})

t.test('bad WireGuard information refuses the host', async (t) => {
  for (const bad of [
    JSON.stringify({ ...wg, publicKey: 'AAAA' }),
    JSON.stringify({ ...wg, tunnel: '100.64.7.9/32' }),
    JSON.stringify({ ...wg, port: 70000 }),
    JSON.stringify({ ...wg, extra: true }),
    JSON.stringify({ port: wg.port, publicKey: wg.publicKey, tunnel: wg.tunnel }),
    'x'.repeat(1000),
    42,
  ]) {
    const r = readHost({ ...row, wg: bad })
    t.equal(r.ok, false, String(bad).slice(0, 60))
  }
})

t.test('with a cluster key, the MAC covers the WireGuard information', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('host', 'h1', hostContent({ hostId: 'h1', vtep: row.vtep, wg }))
  t.equal(readHost({ ...row, wg: wireGuardContent(wg), sig }, key).ok, true)
  const forged = { ...wg, publicKey: generateKeyPair().publicKey }
  const r = readHost({ ...row, wg: wireGuardContent(forged), sig }, key)
  t.match(r, { ok: false, reason: 'bad-mac' }, 'another key under the same MAC is refused')
  t.match(readHost({ ...row, sig }, key), { ok: false, reason: 'bad-mac' }, 'and so is the information removed')
  const nat = { ...wg, endpoint: '203.0.113.7:51820' }
  const natSig = key.sign('host', 'h1', hostContent({ hostId: 'h1', vtep: row.vtep, wg: nat }))
  t.equal(readHost({ ...row, wg: wireGuardContent(nat), sig: natSig }, key).ok, true, 'a public endpoint (behind NAT) is signed with it')
  t.match(readHost({ ...row, wg: wireGuardContent({ ...nat, endpoint: '198.51.100.9:51820' }), sig: natSig }, key), { ok: false, reason: 'bad-mac' }, 'and cannot be redirected')
})

t.test('a host-up message carries it', async (t) => {
  const r = readChange({ kind: 'host-up', rev: 3, host: { hostId: 'h1', vtep: row.vtep, version: '1', wg: wireGuardContent(wg) } })
  t.same(r, { ok: true, value: { kind: 'host-up', rev: 3, host: { hostId: 'h1', vtep: row.vtep, version: '1', wg } } })
})

const def = { name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1', vni: 4100, createdBy: 'h1', createdAt: 5 }

t.test('an overlay definition carries its encryption', async (t) => {
  t.same(readOverlayDefinition({ ...def, encrypt: 'wireguard' }), { ok: true, value: { ...def, encrypt: 'wireguard' } })
  t.same(readOverlayDefinition(def), { ok: true, value: def }, 'absent: plain')
  t.same(readOverlayDefinition({ ...def, encrypt: '' }), { ok: true, value: def }, 'empty (as Redis answers a missing field): plain')
  for (const bad of ['ipsec', 'WireGuard', 7, null]) {
    t.match(readOverlayDefinition({ ...def, encrypt: bad }), { ok: false, reason: 'invalid' }, `encrypt ${String(bad)} is refused`)
  }
  t.equal(overlayContent(def), '{"name":"ove","subnet":"10.39.0.0/24","gateway":"10.39.0.1","vni":4100}', 'a plain definition is signed as before')
})

t.test('with a cluster key, the MAC covers the encryption of a definition', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 9))
  const sig = key.sign('overlay', 'ove', overlayContent({ ...def, encrypt: 'wireguard' }))
  t.match(readOverlayDefinition({ ...def, encrypt: 'wireguard', sig }, key), { ok: true, value: { encrypt: 'wireguard' } })
  t.match(readOverlayDefinition({ ...def, sig }, key), { ok: false, reason: 'bad-mac' }, 'the flag removed (made plain) is refused')
  const plainSig = key.sign('overlay', 'ove', overlayContent(def))
  t.match(readOverlayDefinition({ ...def, encrypt: 'wireguard', sig: plainSig }, key), { ok: false, reason: 'bad-mac' }, 'and added to a plain one')
  const msg = { kind: 'overlay-defined', rev: 4, overlay: { ...def, encrypt: 'wireguard', sig } }
  t.match(readChange(msg, key), { ok: true, value: { overlay: { encrypt: 'wireguard' } } }, 'an overlay-defined message carries it')
  t.match(readChange({ ...msg, overlay: { ...def, sig } }, key), { ok: false, reason: 'bad-mac' })
})
