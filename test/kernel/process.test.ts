/**
 * src/kernel/process.ts against the real kernel: processes started, followed,
 * read from /proc and signalled (only the test's own children).
 */
import t from 'tap'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  exited, forkModule, listProcesses, namespaceKey, networkNamespace, processComm, processExists, processFactsSync, processStat, signalProcess, startProcess, started,
} from '../../src/kernel/process.js'
import { parseStat } from '../../src/runtime/netns.js'

const FIXTURE = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'fork-echo.mjs')

t.test('a started process: /proc facts, a signal, its exit', async (t) => {
  const child = startProcess(['sleep', '30'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  t.equal(await started(child), undefined, 'it runs')
  const pid = child.pid!
  t.equal(await processComm(pid), 'sleep', '/proc/PID/comm, trimmed')
  t.equal(await networkNamespace(pid), await networkNamespace('self'), 'same network namespace as the test')
  t.match(await networkNamespace('self'), /^net:\[\d+\]$/)
  t.equal(await namespaceKey(`/proc/${pid}/ns/net`), await namespaceKey('/proc/self/ns/net'), 'the same namespace by its file\'s identity')
  t.not(await namespaceKey('/proc/self/ns/net'), await namespaceKey('/proc/self/ns/mnt'), 'and another namespace differs')
  await t.rejects(namespaceKey('/proc/self/ns/no-such-namespace'), 'no such file: rejected')
  const st = parseStat(await processStat(pid))
  t.ok(st !== undefined && /^\d+$/.test(st.startTime), 'the stat line parses, with a start time')
  t.equal(signalProcess(pid, 'SIGTERM'), true, 'signal sent')
  t.same(await exited(child), { code: null, signal: 'SIGTERM' }, 'it died of that signal')
  t.same(await exited(child), { code: null, signal: 'SIGTERM' }, 'asked again after the exit: same answer')
  await t.rejects(processComm(pid), 'gone from /proc')
})

t.test('a program that cannot start', async (t) => {
  const child = startProcess(['/nonexistent/ferry-test-program'], { stdio: 'ignore' })
  const err = await started(child)
  t.match(err, { code: 'ENOENT' }, 'the error that kept it from starting')
  t.same(await exited(child), { code: 127, signal: null }, '127, as a shell says')
  t.throws(() => startProcess([], { stdio: 'ignore' }), { code: 'INTERNAL' }, 'no program: refused')
})

t.test('exit status and environment', async (t) => {
  const child = startProcess(['sh', '-c', 'exit "$FERRY_TEST_CODE"'], { stdio: 'ignore', env: { PATH: process.env.PATH, FERRY_TEST_CODE: '7' } })
  t.same(await exited(child), { code: 7, signal: null }, 'the env given is the env it sees')
})

t.test('a detached process has a process group of its own, signalled as one', async (t) => {
  const child = startProcess(['sleep', '30'], { stdio: 'ignore', detached: true })
  t.teardown(() => { child.kill('SIGKILL') })
  t.equal(await started(child), undefined)
  const st = parseStat(await processStat(child.pid!))
  t.equal(st?.pgrp, child.pid, 'leader of its own group')
  t.equal(signalProcess(-child.pid!, 'SIGKILL'), true, 'the group is signalled')
  t.same(await exited(child), { code: null, signal: 'SIGKILL' })
})

t.test('no such process: false, not an error', async (t) => {
  // pid_max is at most 2^22: this pid never exists.
  t.equal(signalProcess(2 ** 22 + 1, 'SIGTERM'), false)
  t.equal(processExists(2 ** 22 + 1), false)
  t.same(processFactsSync(2 ** 22 + 1), { error: 'ENOENT' })
})

t.test('stat and cmdline at once, and existence', async (t) => {
  const child = startProcess(['sleep', '30'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  t.equal(await started(child), undefined)
  const facts = processFactsSync(child.pid!)
  t.ok('stat' in facts && facts.stat.startsWith(`${child.pid!} (sleep) `), 'the stat line')
  t.ok('cmdline' in facts && facts.cmdline === 'sleep\u000030\u0000', 'the argv, NUL-separated')
  t.equal(processExists(child.pid!), true)
  t.equal(processExists(1), true, 'init exists (signalling it may be refused: EPERM counts as existing)')
})

t.test('a forked module talks over IPC', async (t) => {
  const child = forkModule(FIXTURE, ['--flag'])
  t.teardown(() => { child.kill('SIGKILL') })
  const answer = new Promise<unknown>((resolve) => child.once('message', resolve))
  child.send({ hello: new Uint8Array([1, 2]) })
  t.same(await answer, { argv: ['--flag'], echo: { hello: new Uint8Array([1, 2]) } }, 'structured clone both ways (advanced serialization)')
  t.same(await exited(child), { code: 0, signal: null })
})

t.test('the host\'s processes with their argv', async (t) => {
  const child = startProcess(['sleep', '31'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  t.equal(await started(child), undefined)
  const all = await listProcesses()
  t.same(all.find((p) => p.pid === child.pid), { pid: child.pid, argv: ['sleep', '31'] }, 'a child of the test, by pid')
  t.ok(all.some((p) => p.pid === process.pid), 'the test itself')
  const dir = t.testdir({ 12: { cmdline: 'dockerd\0-H\0unix:///x.sock\0' }, 13: {}, self: { cmdline: 'no' }, stat: 'x' })
  t.same(await listProcesses(dir), [{ pid: 12, argv: ['dockerd', '-H', 'unix:///x.sock'] }], 'numeric entries only; an unreadable one is left out')
  await t.rejects(listProcesses(`${dir}/none`), { code: 'ENOENT' })
})
