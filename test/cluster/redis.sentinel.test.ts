/**
 * Redis Sentinel failover with real processes on loopback: a primary, two
 * replicas and three `redis-server --sentinel` (quorum 2). Three hosts allocate
 * addresses through `sentinel://…?wait=1` while the primary is killed: every
 * host follows the new primary, no address is handed out twice, and every
 * acknowledged allocation is on the new primary.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { RedisClusterStore } from '../../src/cluster/redis.js'
import { freePort, redisServer } from '../harness/redis.js'
import { sh } from '../harness/netns.js'
import { observe, until } from '../harness/until.js'

const cli = (port: number, args: string[]): string => sh(['redis-cli', '-p', String(port), ...args], { allowFailure: true })

t.test('kill the primary while three hosts allocate: they follow the new primary, no address twice, none lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-failover-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Replication writes RDB files: each server keeps its own in the scratch directory (never in the
  // working directory, where a later redis-server would load it).
  const own = (name: string): string[] => ['--dir', dir, '--dbfilename', `${name}.rdb`]
  const primary = await redisServer(t, { args: own('primary') })
  const replicas = [
    await redisServer(t, { args: [...own('replica1'), '--replicaof', '127.0.0.1', String(primary.port)] }),
    await redisServer(t, { args: [...own('replica2'), '--replicaof', '127.0.0.1', String(primary.port)] }),
  ]
  await until('both replicas in sync', () => /connected_slaves:2/.test(cli(primary.port, ['info', 'replication'])), { timeoutMs: 40_000, everyMs: 50 })
  const sentinels: number[] = []
  for (let i = 0; i < 3; i++) {
    // A free port can be taken by another process before the sentinel binds it: then it exits, and another port is tried.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const conf = join(dir, `sentinel${i}.conf`)
      writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\nsentinel monitor fy 127.0.0.1 ${primary.port} 2\n` +
        'sentinel down-after-milliseconds fy 500\nsentinel failover-timeout fy 3000\nsentinel parallel-syncs fy 2\n')
      const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
      t.teardown(() => { proc.kill('SIGKILL') })
      await until(`sentinel ${i} to answer or exit`, () => proc.exitCode !== null || cli(port, ['ping']).trim() === 'PONG', { timeoutMs: 20_000, everyMs: 50 })
      if (proc.exitCode === null) { sentinels.push(port); break }
      if (attempt === 3) throw new Error(`sentinel ${i} exited three times (exit ${proc.exitCode})`)
    }
  }
  // Each sentinel knows the two others (through the primary's hello channel): a quorum can form.
  await until('the sentinels to know each other', () => sentinels.every((p) => /num-other-sentinels\n2\n/.test(cli(p, ['sentinel', 'master', 'fy']))), { timeoutMs: 40_000, everyMs: 50 })
  const url = `sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/fy?wait=1`
  const OV = { name: 'ovf', subnet: '10.70.0.0/16', gateway: '10.70.0.1' }
  const hosts = await Promise.all([1, 2, 3].map(async (n) => {
    const s = new RedisClusterStore({ url, hostId: `h${n}`, advertiseAddr: `192.168.50.${n}`, heartbeatMs: 0, unavailableWaitMs: 60_000, startTimeoutMs: 10_000 })
    t.teardown(() => s.close())
    await s.start({ overlays: [], addresses: [], endpoints: [] })
    await s.defineOverlay(OV)
    return s
  }))

  const PER_HOST = 40
  const BEFORE_KILL = 13
  const handed: Array<{ ip: string, host: string }> = []
  const failures: string[] = []
  let killed = false
  const allocations = hosts.map(async (s) => {
    for (let i = 0; i < PER_HOST; i++) {
      // A third of each host's allocations before the kill, the rest after it: without this gate a fast Redis
      // finished all of them before the kill landed, and the test proved nothing about the failover.
      if (i === BEFORE_KILL) await until('the primary to be killed', () => killed, { timeoutMs: 60_000, everyMs: 10 })
      try {
        handed.push({ ip: await s.allocateAddress(OV.name), host: s.hostId })
      } catch (err) {
        failures.push(`${s.hostId}: ${(err as Error).message}`)
      }
    }
  })
  // Kill the primary once a third of the allocations are acknowledged (each host waits at its gate).
  await until('a third of the allocations', () => handed.length + failures.length >= BEFORE_KILL * hosts.length, { timeoutMs: 40_000, everyMs: 50 })
  await primary.kill()
  killed = true
  const failedOverFrom = handed.length
  await Promise.all(allocations)
  t.ok(killed)
  const newPrimary = Number(cli(sentinels[0]!, ['sentinel', 'get-master-addr-by-name', 'fy']).split('\n')[1])
  t.ok(replicas.some((r) => r.port === newPrimary), `a replica was promoted (port ${newPrimary})`)
  t.ok(handed.length > failedOverFrom, `allocations went on after the failover (${handed.length - failedOverFrom} of ${handed.length})`)
  t.same(failures, [], 'no request failed: those made during the failover waited for the new primary')
  const ips = handed.map((h) => h.ip)
  t.equal(new Set(ips).size, ips.length, `no address handed out twice (${ips.length} addresses)`)
  // Its subscriber connection may still be finding the new primary when the last allocation returns.
  for (const s of hosts) {
    await until(`${s.hostId} to be ready`, () => s.status().state === 'ready', { timeoutMs: 20_000, everyMs: 50 }).catch(() => undefined)
    t.equal(s.status().state, 'ready', `${s.hostId} follows the new primary`)
  }
  // Every acknowledged allocation is on the new primary, held by the host it was given to: there already, or (where
  // asynchronous replication lost it: Sentinel may promote the replica that had not acknowledged it) re-asserted by
  // its owner once it follows the new primary, as after a Redis restart.
  const lostNow = (): Array<{ ip: string, host: string }> => {
    const owners = new Map<string, string>()
    const pairs = cli(newPrimary, ['hgetall', `ferry:overlay:${OV.name}:addrs`]).split('\n').filter(Boolean)
    for (let i = 0; i + 1 < pairs.length; i += 2) owners.set(pairs[i]!, pairs[i + 1]!)
    return handed.filter((h) => owners.get(h.ip) !== h.host)
  }
  const lost = await observe(lostNow, (l) => l.length === 0, { timeoutMs: 15_000, everyMs: 100 })
  t.same(lost, [], 'no acknowledged allocation lost in the failover')
})
