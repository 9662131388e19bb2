import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isLiveAgent, listenRootOnly, lockStateDir, procState } from '../../src/agent/lock.js'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import net from 'node:net'

t.test('the state letter of /proc/<pid>/stat, whatever the command name', async (t) => {
  t.equal(procState('123 (node) S 1 2 3'), 'S')
  t.equal(procState('123 (a) b) Z 1 2 3'), 'Z')
})

t.test('a second lock on the same directory is refused; released, it can be taken', async (t) => {
  const dir = t.testdir({})
  const release = await lockStateDir(dir)
  // This process's own pid is taken as a restart of the same process: use a ferry-looking other process.
  const other = spawn('bash', ['-c', "exec -a /usr/lib/ferry/bin/ferry bash -c 'sleep 30; true' agent"], { stdio: 'ignore' })
  t.teardown(() => { other.kill('SIGKILL') })
  await sleep(200)
  writeFileSync(path.join(dir, 'agent.pid'), `${other.pid}\n`)
  t.ok(isLiveAgent(other.pid!))
  await t.rejects(lockStateDir(dir), { code: 'ALREADY_RUNNING' })
  await release()
})

t.test('a pid file of a dead, zombie or foreign process is stale', async (t) => {
  const dir = t.testdir({})
  const file = path.join(dir, 'agent.pid')
  // Not an agent: a pid the kernel gave to something else since (even a `ferry run`).
  const foreign = spawn('bash', ['-c', "exec -a /usr/lib/ferry/bin/ferry bash -c 'sleep 30; true' run"], { stdio: 'ignore' })
  t.teardown(() => { foreign.kill('SIGKILL') })
  await sleep(100)
  t.notOk(isLiveAgent(foreign.pid!), 'a process that is not ferry')
  writeFileSync(file, `${foreign.pid}\n`)
  const r1 = await lockStateDir(dir)
  await r1()
  // A zombie: an agent that exited under a parent that does not reap it (sleep, which bash becomes).
  const parent = spawn('bash', ['-c', "(exec -a /usr/lib/ferry/bin/ferry bash -c 'sleep 0.1; true' agent) & echo $!; exec sleep 30"], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => { parent.kill('SIGKILL') })
  const zombiePid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()))))
  await sleep(500)
  t.match(readFileSync(`/proc/${zombiePid}/stat`, 'utf8'), /\) Z /, 'it is a zombie')
  t.notOk(isLiveAgent(zombiePid), 'an exited agent not reaped yet')
  writeFileSync(file, `${zombiePid}\n`)
  const r2 = await lockStateDir(dir)
  await r2()
  t.notOk(isLiveAgent(2 ** 22 + 7), 'a pid that does not exist')
})

t.test('a socket served for root alone: mode 0600, made under umask 077, the umask restored', async (t) => {
  const dir = mkdtempSync('/tmp/ferry-lock-') // a unix socket path must be short
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const sock = path.join(dir, 'api.sock')
  const before = process.umask()
  let umaskWhileListening = -1
  const server = net.createServer()
  t.teardown(() => { server.close() })
  await listenRootOnly({
    listen: ({ path: p }) => new Promise<void>((resolve) => {
      umaskWhileListening = process.umask()
      server.listen(p, resolve)
    }),
  }, sock)
  t.equal(umaskWhileListening, 0o077, 'made with umask 077')
  t.equal(statSync(sock).mode & 0o777, 0o600, 'then mode 0600')
  t.equal(process.umask(), before, 'the umask is restored')
  await t.rejects(listenRootOnly({ listen: async () => { throw new Error('EADDRINUSE') } }, path.join(path.dirname(sock), 'b.sock')), /EADDRINUSE/)
  t.equal(process.umask(), before, 'restored after a failure too')
})
