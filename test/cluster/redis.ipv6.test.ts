/**
 * The cluster store over IPv6 (issue #15): a real redis-server and a real
 * redis-sentinel listening on ::1 only, reached through `redis://[::1]:PORT/0`
 * and `sentinel://[::1]:PORT/MASTER`. The server's own client list shows that
 * ferry's connections came over IPv6. Loopback only, nothing else is touched.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectCluster } from '../../src/cluster/redis.js'
import { freePort, redisServer } from '../harness/redis.js'
import { sh } from '../harness/netns.js'
import { until } from '../harness/until.js'

const server = await redisServer(t, { host: '::1' })

/** The names and peer addresses of the server's clients (CLIENT LIST), ferry's only. */
function ferryClients (): string[] {
  return server.cli(['client', 'list']).split('\n').filter((l) => / name=ferry-/.test(l))
    .map((l) => `${/ name=(\S*)/.exec(l)?.[1] ?? '?'} ${/ addr=(\S*)/.exec(l)?.[1] ?? '?'}`)
}

t.test('redis://[::1]:PORT/0: the store works over IPv6', async (t) => {
  t.equal(server.url, `redis://[::1]:${server.port}`, 'the harness writes the address in brackets')
  const s = await connectCluster({ url: `redis://[::1]:${server.port}/0`, hostId: 'h6', advertiseAddr: 'fd00:50::6', heartbeatMs: 0 })
  t.teardown(() => s.close())
  const def = await s.defineOverlay({ name: 'ov6', subnet: '10.61.0.0/24', gateway: '10.61.0.1' })
  t.equal(def.vni, 4096)
  t.same(server.keys('ferry:overlay:ov6'), ['ferry:overlay:ov6'])
  const clients = ferryClients()
  t.ok(clients.length > 0, `ferry's connections are listed (${clients.join(', ')})`)
  t.ok(clients.every((c) => /^ferry-h6 \[::1\]:\d+$/.test(c)), `every one came from [::1] (${clients.join(', ')})`)
  await s.leave()
  t.same(server.keys('*'), [])
})

t.test('sentinel://[::1]:PORT/MASTER: a sentinel on ::1 names a master on ::1', async (t) => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ferry-sentinel6-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, `port ${port}\nbind ::1\nprotected-mode no\ndir ${dir}\nsentinel monitor fymaster6 ::1 ${server.port} 1\n`)
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  t.teardown(() => { proc.kill('SIGKILL') })
  await until('the sentinel on ::1 to know its master', () => {
    if (proc.exitCode !== null) throw new Error(`the sentinel exited (${proc.exitCode}): port ${port} taken?`)
    return sh(['redis-cli', '-h', '::1', '-p', String(port), 'sentinel', 'get-master-addr-by-name', 'fymaster6'], { allowFailure: true }).includes('::1')
  }, { everyMs: 50 })
  const s = await connectCluster({ url: `sentinel://[::1]:${port}/fymaster6`, hostId: 'h7', advertiseAddr: 'fd00:50::7', heartbeatMs: 0 })
  t.teardown(() => s.close())
  const def = await s.defineOverlay({ name: 'ov7', subnet: '10.62.0.0/24', gateway: '10.62.0.1' })
  t.equal(def.vni, 4096)
  t.same(server.keys('ferry:overlay:ov7'), ['ferry:overlay:ov7'], 'written to the master the sentinel named')
  t.ok(ferryClients().some((c) => /^ferry-h7 \[::1\]:\d+$/.test(c)), 'the master connection came from [::1]')
  await s.leave()
  t.same(server.keys('*'), [])
})
