/**
 * The CLI (src/cli/main.ts) against a real admin API server (src/api/server.ts) over a fake
 * agent on a unix socket: network inspect, endpoint ls --network and port ls take names, full
 * ids and id prefixes, an ambiguous or unknown key is one sentence and an exit code, and a bad
 * key is refused before anything is sent.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApiServer, type AgentView } from '../../src/api/server.js'
import { main } from '../../src/cli/main.js'
import { silentLog } from '../harness/fakes.js'

const hex = (c: string, rest = c) => c + rest.repeat(63)
const FRONT = { id: hex('3', 'a'), name: 'front', bridge: 'fy-front', subnet: '10.1.0.0/24', gateway: '10.1.0.1', internal: false, icc: true, masquerade: true, mtu: 1500, endpoints: 1 }
const BACK = { id: hex('3', 'b'), name: 'back', bridge: 'fy-back', subnet: '10.2.0.0/24', gateway: '10.2.0.1', internal: false, icc: true, masquerade: true, mtu: 1500, endpoints: 0 }
const PORT = { proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.1.0.2', containerPort: 80, containerPortEnd: 80 }
const WEB = {
  id: hex('e', '1'), networkId: FRONT.id, networkName: 'front', container: 'web', containerId: hex('a', '1'), address: '10.1.0.2', prefixLen: 24,
  mac: '02:42:0a:01:00:02', hostVeth: 'fyh1', joined: true, ports: [PORT],
}

const notUsed = async (): Promise<never> => { throw new Error('not used') }
const CLUSTER = {
  state: 'ready', url: 'redis://127.0.0.1:6379', hostId: 'h1', vtep: '192.0.2.1', revision: 7, clusterKey: false, rejected: [],
  compat: { heldBack: ['ports'], olderHosts: [{ hostId: 'h3', version: '0.1.0', features: [] }], sentence: 'held back: ports (records are written without it) because host h3 (0.1.0) runs an older ferry' },
  hosts: [
    { hostId: 'h1', vtep: '192.0.2.1', version: '0.1.0', lastHeartbeat: Date.now(), features: ['ports'] },
    { hostId: 'h3', vtep: '192.0.2.3', version: '0.1.0', lastHeartbeat: Date.now() },
  ],
}
let asked = 0
const agent = {
  status: notUsed, reconcile: notUsed, clusterStatus: async () => CLUSTER, peers: async () => { asked++; return [] }, dnsRecords: notUsed, dnsQuery: notUsed, runtime: notUsed,
  networks: async () => { asked++; return [FRONT, BACK] }, endpoints: async () => { asked++; return [WEB] },
} as unknown as AgentView

const dir = mkdtempSync(join(tmpdir(), 'fycli-'))
const socket = join(dir, 'api.sock')
const app = buildApiServer(agent, silentLog)
await app.listen({ path: socket })
t.teardown(async () => { await app.close(); rmSync(dir, { recursive: true, force: true }) })

/** Run the CLI in this process; its output and exit code. */
async function ferry (...args: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const w = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) }
  process.stdout.write = ((s: string) => { out += s; return true }) as typeof process.stdout.write
  process.stderr.write = ((s: string) => { err += s; return true }) as typeof process.stderr.write
  const before = process.exitCode
  process.exitCode = 0
  try {
    await main(['node', 'ferry', '--api-socket', socket, ...args])
  } finally {
    process.stdout.write = w.out
    process.stderr.write = w.err
  }
  const code = Number(process.exitCode ?? 0)
  process.exitCode = before
  return { code, out, err }
}

t.test('network inspect and endpoint ls --network: name, full id, short id, any unique prefix, bridge', async (t) => {
  for (const key of ['front', FRONT.id, FRONT.id.slice(0, 12), '3a', 'fy-front']) {
    const r = await ferry('network', 'inspect', key)
    t.equal(r.code, 0, `network inspect ${key}: ${r.err}`)
    t.match(JSON.parse(r.out), { id: FRONT.id, endpointList: [{ container: 'web' }] })
    const eps = await ferry('endpoint', 'ls', '--network', key, '--json')
    t.same((JSON.parse(eps.out) as Array<{ id: string }>).map((e) => e.id), [WEB.id], `endpoint ls --network ${key}`)
  }
})

t.test('port ls: container name, id, id prefix, endpoint id', async (t) => {
  for (const key of ['web', WEB.containerId, WEB.containerId.slice(0, 12), 'a1', WEB.id.slice(0, 12)]) {
    const r = await ferry('port', 'ls', key)
    t.equal(r.code, 0, `port ls ${key}: ${r.err}`)
    t.match(r.out, /web\s+e11111111111\s+front\s+tcp\s+0\.0\.0\.0:8080\s+10\.1\.0\.2:80/)
  }
})

t.test('ambiguous, unknown and bad keys: one sentence, an exit code, no stack', async (t) => {
  const amb = await ferry('network', 'inspect', '3')
  t.equal(amb.code, 2)
  t.equal(amb.err, 'ferry: "3" names 2 ferry networks: front (3aaaaaaaaaaa), back (3bbbbbbbbbbb); give more of the id (ferry network ls lists them)\n')
  const unknown = await ferry('endpoint', 'ls', '--network', 'nope')
  t.equal(unknown.code, 3)
  t.equal(unknown.err, 'ferry: no ferry network is named "nope" or has that id; known: front (3aaaaaaaaaaa), back (3bbbbbbbbbbb) (ferry network ls lists them)\n')
  const noOne = await ferry('port', 'ls', 'nobody')
  t.equal(noOne.code, 3)
  t.equal(noOne.err, 'ferry: no container or endpoint is named "nobody" or has that id (ferry endpoint ls lists them)\n')
  const before = asked
  const bad = await ferry('network', 'inspect', 'a\u0001b')
  t.equal(bad.code, 2)
  t.equal(bad.err, 'ferry: "a\\u0001b" is not a network name or id: it holds control characters\n')
  const badC = await ferry('port', 'ls', 'web;id')
  t.equal(badC.err, 'ferry: "web;id" is not a container name or id: names are letters, digits, \'_\', \'.\' and \'-\', starting with a letter or digit\n')
  const long = await ferry('peers', '--network', 'x'.repeat(300))
  t.equal(long.err, 'ferry: a network name or id is at most 256 characters (300 given)\n')
  t.equal(asked, before, 'bad keys are refused before anything is sent')
})

t.test('cluster status: one sentence on what an older host holds back, and each host\'s features', async (t) => {
  const r = await ferry('cluster', 'status')
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^versions: held back: ports \(records are written without it\) because host h3 \(0\.1\.0\) runs an older ferry$/m)
  t.match(r.out, /^h1 \(this host\)\s+192\.0\.2\.1\s+0\.1\.0\s+ports\s/m)
  t.match(r.out, /^h3\s+192\.0\.2\.3\s+0\.1\.0\s+- \(older\)\s/m)
})
