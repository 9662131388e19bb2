import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isLiveAgent, lockStateDir, procState } from '../../src/agent/lock.js'

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
  // A zombie: exited, not reaped yet (the exit event is not awaited before the check).
  const zombie = spawn('bash', ['-c', 'exec -a /usr/lib/ferry/bin/ferry true agent'], { stdio: 'ignore' })
  for (let i = 0; i < 50 && isLiveAgent(zombie.pid!); i++) await sleep(20)
  t.notOk(isLiveAgent(zombie.pid!), 'an exited ferry process (zombie or gone)')
  writeFileSync(file, `${zombie.pid}\n`)
  const r2 = await lockStateDir(dir)
  await r2()
  t.notOk(isLiveAgent(2 ** 22 + 7), 'a pid that does not exist')
})
