/**
 * The cluster store as docs/cluster.md tells operators to run it across untrusted networks: TLS
 * (`rediss://…?ca=…`) to a real redis-server with a certificate from a test CA, as a Redis ACL user
 * limited to ferry's keys and channel. Two hosts define, allocate, publish and see each other's
 * changes; a server whose certificate the CA did not sign, a wrong password and a user without the
 * key pattern are refused with a sentence, never a crash.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisClusterStore } from '../../src/cluster/redis.js'
import type { ClusterEvent } from '../../src/cluster/types.js'
import { FerryError } from '../../src/errors/errors.js'
import { sh } from '../harness/netns.js'
import { freePort, redisServer } from '../harness/redis.js'
import { waitFor } from '../harness/ferry-cli.js'

const dir = mkdtempSync(join(tmpdir(), 'ferry-tls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const f = (name: string): string => join(dir, name)

/** A CA, and a server certificate for localhost/127.0.0.1 signed by it (or by `signer`). */
function makeCa (name: string): void {
  sh(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`)])
}
function makeServerCert (name: string, ca: string): void {
  sh(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)])
  sh(['sh', '-c', 'printf "subjectAltName=DNS:localhost,IP:127.0.0.1\\n" > "$1"', 'sh', f(`${name}.ext`)])
  sh(['openssl', 'x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-days', '2',
    '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)])
}
makeCa('ca')
makeCa('rogue-ca')
makeServerCert('server', 'ca')
makeServerCert('rogue', 'rogue-ca')

const tlsPort = await freePort()
const server = await redisServer(t, {
  args: ['--tls-port', String(tlsPort), '--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'),
    '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'no'],
})
// The ACL docs/cluster.md gives: ferry's keys and channel only, the commands it runs, nothing else.
const FERRY_ACL = ['on', '>ferry-secret', 'resetkeys', '~ferry:*', 'resetchannels', '&ferry:*', '-@all',
  '+@read', '+@write', '+@keyspace', '+@scripting', '+@pubsub', '+@connection', '+@transaction', '+wait', '+time', '-@dangerous']
server.cli(['acl', 'setuser', 'ferry', ...FERRY_ACL])
server.cli(['acl', 'setuser', 'other', 'on', '>other-secret', 'resetkeys', '~other:*', 'resetchannels', '&other:*', '+@all'])

const url = (user: string, pw: string, port = tlsPort, ca = 'ca.pem'): string =>
  `rediss://${user}:${pw}@127.0.0.1:${port}?ca=${encodeURIComponent(f(ca))}&servername=localhost`

function store (t: { teardown: (fn: () => unknown) => void }, hostId: string, vtep: string, u: string): RedisClusterStore {
  const s = new RedisClusterStore({ url: u, hostId, advertiseAddr: vtep, heartbeatMs: 0, connectTimeoutMs: 3_000 })
  t.teardown(() => s.close())
  return s
}

async function startError (s: RedisClusterStore): Promise<FerryError | undefined> {
  try { await s.start() } catch (err) { return err as FerryError }
  return undefined
}

t.test('two hosts over TLS as the limited ACL user: define, allocate, publish, and each sees the other', async (t) => {
  const h1 = store(t, 'h1', '192.168.50.1', url('ferry', 'ferry-secret'))
  const h2 = store(t, 'h2', '192.168.50.2', url('ferry', 'ferry-secret'))
  await h1.start()
  await h2.start()
  const seen: ClusterEvent[] = []
  h2.subscribe((e) => { seen.push(e) })
  const def = await h1.defineOverlay({ name: 'sec', subnet: '10.77.0.0/24', gateway: '10.77.0.1' })
  t.equal(def.subnet, '10.77.0.0/24')
  await h2.defineOverlay({ name: 'sec', subnet: '10.77.0.0/24', gateway: '10.77.0.1' })
  const ip = await h1.allocateAddress('sec')
  t.equal(ip, '10.77.0.2', 'allocated atomically in Redis, over TLS')
  await h1.publishEndpoint({ overlay: 'sec', endpointId: 'e1', ip, mac: '02:42:0a:4d:00:02' })
  const pushed = await waitFor('h2 to receive h1\'s publication', async () =>
    seen.find((e) => e.kind === 'endpoint-published' && e.endpoint.endpointId === 'e1'))
  t.match(pushed, { kind: 'endpoint-published', overlay: 'sec', endpoint: { ip, hostId: 'h1' } }, 'h2 receives h1\'s publication through the channel')
  const read = await h2.endpoints('sec')
  t.ok(read.some((e) => e.endpointId === 'e1' && e.ip === ip), 'h2 reads h1\'s endpoint')
  t.same(server.keys('*').filter((k) => !k.startsWith('ferry:')), [], 'every key is under ferry:, the ACL user\'s pattern')
  const clients = server.cli(['client', 'list'])
  t.match(clients, /user=ferry/, 'the agents are connected as the ACL user')
})

t.test('refusals are sentences: unknown CA, wrong password, a user without ferry\'s keys, plain TCP to a TLS port', async (t) => {
  const roguePort = await freePort()
  await redisServer(t, {
    args: ['--tls-port', String(roguePort), '--tls-cert-file', f('rogue.pem'), '--tls-key-file', f('rogue.key'),
      '--tls-ca-cert-file', f('rogue-ca.pem'), '--tls-auth-clients', 'no'],
  })
  const cases: Array<[string, string]> = [
    ['a server certificate the CA did not sign', url('ferry', 'ferry-secret', roguePort)],
    ['a wrong password', url('ferry', 'wrong')],
    ['a user whose ACL does not cover ferry: keys', url('other', 'other-secret')],
    ['plain TCP to the TLS port', `redis://ferry:ferry-secret@127.0.0.1:${tlsPort}`],
  ]
  for (const [what, u] of cases) {
    const err = await startError(store(t, 'hx', '192.168.50.9', u))
    t.ok(err instanceof FerryError, `${what}: a FerryError`)
    t.notMatch(err?.message ?? '', /\n\s+at /, `${what}: no stack trace in the message`)
    t.notMatch(err?.message ?? '', /ferry-secret|other-secret/, `${what}: the password is not repeated`)
    t.comment(`${what}: ${err?.message ?? '(started)'}`)
  }
})
