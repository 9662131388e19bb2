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
import { ClusterKey } from '../../src/cluster/key.js'
import { record } from '../harness/cluster-contract.js'
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

t.test('a dual-stack host\'s second VTEP in real Redis: its own key and channel, read with the host list, its host-up change and a catch-up; gone with the host', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 5))
  const url = `redis://[::1]:${server.port}/0`
  const h1 = await connectCluster({ url, hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, key })
  t.teardown(() => h1.close())
  const events = record(h1)
  await events.wait('resync')
  const h3 = await connectCluster({ url, hostId: 'h3', advertiseAddr: '192.168.50.3', advertiseAddr2: 'fd00:ff::3', heartbeatMs: 0, key })
  t.teardown(() => h3.close())
  const up = await events.wait('host-up', (e) => e.kind === 'host-up' && e.host.hostId === 'h3')
  t.equal(up.kind === 'host-up' ? up.host.vtep2 : undefined, 'fd00:ff::3', 'the host-up change carries it (its channel came first)')
  t.same(server.keys('ferry:host:h3:vtep2'), ['ferry:host:h3:vtep2'], 'a key of its own, apart from the host hash')
  t.notOk(server.cli(['hkeys', 'ferry:host:h3']).split('\n').includes('vtep2'), 'the host hash that older versions read has no new field')
  t.same((await h1.hosts()).map((h) => [h.hostId, h.vtep2]), [['h1', undefined], ['h3', 'fd00:ff::3']], 'the host list has it')
  // h1's connections drop while h4 (IPv6 first) registers: the catch-up from the change log brings its second VTEP.
  for (const l of server.cli(['client', 'list']).split('\n').filter((l) => / name=ferry-h1 /.test(l))) server.cli(['client', 'kill', 'id', /^id=(\d+)/.exec(l)?.[1] ?? ''])
  const h4 = await connectCluster({ url, hostId: 'h4', advertiseAddr: 'fd00:ff::4', advertiseAddr2: '192.168.50.4', heartbeatMs: 0, key })
  t.teardown(() => h4.close())
  await events.wait('resumed', undefined, 10_000)
  const up4 = events.events.find((e) => e.kind === 'host-up' && e.host.hostId === 'h4')
  t.equal(up4?.kind === 'host-up' ? up4.host.vtep2 : undefined, '192.168.50.4', 'handed on with the missed host-up')
  t.same(h1.status().rejected, [], 'nothing refused')
  for (const h of [h3, h4, h1]) await h.leave()
  t.same(server.keys('*'), [], 'nothing left: the second VTEP keys go with their hosts')
})
