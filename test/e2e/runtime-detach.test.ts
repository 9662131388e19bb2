/**
 * `ferry run` end to end, the parts beyond the network modes: `-e`/`--env-file`,
 * Docker's `ALIAS_ENV_*` link variables, `ferry run -d` (returns at once, serves,
 * logs, `ferry stop`/`ferry rm`, cleanup when the command exits by itself) and
 * `--net host` containers registered by name (listed, shared with `--net container:`).
 *
 * As in runtime.test.ts, the agent and every ferry command run in a test namespace
 * ("host"). Build first (`npm run build`): they run from dist/. The parts the firewall
 * takes part in (a link on the ICC-off default bridge, a published port, nothing left
 * over) run once per firewall backend, the others once (on iptables).
 */
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ExecResult } from '../../src/kernel/exec.js'
import { nsExec, sh } from '../harness/netns.js'
import {
  alive, requireBuild, startCliAgent, ferry, ferryBg, hostVeths, ps as psOf, running as runningOf, waitFor, type CliCtx,
} from '../harness/ferry-cli.js'
import { BACKENDS, linkTraces, publishedCount } from '../harness/firewall.js'

requireBuild(t)

type Ctx = CliCtx

interface PsEntry {
  name: string, owner: string, mode: string, networkName: string, address?: string, detached?: boolean, log?: string,
  env?: string[], process?: { pid: number }, watch?: { pid: number }
}

const ps = (c: Ctx): Promise<PsEntry[]> => psOf<PsEntry>(c)
const running = (c: Ctx, name: string): Promise<PsEntry> => runningOf<PsEntry>(c, name)

/** The live processes of a process group (a detached command and what it started). */
function group (pgid: number): number[] {
  return sh(['pgrep', '-g', String(pgid)], { allowFailure: true }).split('\n').filter(Boolean).map(Number).filter(alive)
}

for (const backend of BACKENDS) await t.test(`ferry run: environment, -d, stop and rm, host containers (--firewall-backend ${backend})`, async (t) => {
  const c: Ctx = await startCliAgent(t, `fyd${backend[0]!}`, '10.63.0.1/24', ['--firewall-backend', backend])
  /** The parts no firewall takes part in run once. */
  const once = backend === BACKENDS[0]
  const { host, agent } = c
  const started: number[] = []
  // Detached commands outlive any ferry command: kill what a failed test leaves.
  t.teardown(() => {
    for (const pid of started) { try { process.kill(-pid, 'SIGKILL') } catch { /* gone */ } }
  })
  const detached = async (args: string[]): Promise<{ r: ExecResult }> => {
    const r = await ferry(c, ['run', '-d', ...args])
    const name = r.stdout.trim()
    const rec = r.code === 0 ? (await ps(c)).find((p) => p.name === name) : undefined
    if (rec?.process !== undefined) started.push(rec.process.pid)
    return { r }
  }

  if (once) await t.test('-e and --env-file reach the command', async (t) => {
    const file = join(agent.stateDir, '..', 'test.env')
    writeFileSync(file, '# a comment\nFROM_FILE=file value\nOVERRIDDEN=file\n')
    const r = await ferry(c, ['run', '-e', 'A=1', '--env', 'B', '-e', 'OVERRIDDEN=option', '--env-file', file, '-e', 'HOSTNAME', '--',
      'busybox', 'sh', '-c', 'echo "$A|$B|$FROM_FILE|$OVERRIDDEN"; busybox env | grep -c ^HOSTNAME= || true'], { env: { B: 'from ferry run', HOSTNAME: undefined } })
    t.equal(r.code, 0, r.stderr)
    t.equal(r.stdout, '1|from ferry run|file value|option\n0\n', "-e KEY takes ferry run's value; one it does not have is left out (even HOSTNAME)")
    const bad = await ferry(c, ['run', '--env-file', join(agent.stateDir, 'nope.env'), '--', 'true'])
    t.not(bad.code, 0)
    t.match(bad.stderr, /--env-file .*nope\.env: /, "ferry's own message (not Node's: bin/ferry ends node's options with --)")
  })

  await t.test('run -d returns at once and serves; a link sees its -e as DATABASE_ENV_*; rm leaves nothing', async (t) => {
    const { r } = await detached(['--name', 'db', '--expose', '5432', '-e', 'POSTGRES_USER=app', '-e', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', '--',
      'busybox', 'sh', '-c', 'echo db starting; sleep 600 & exec busybox nc -ll -p 5432 -e echo db-answer'])
    t.equal(r.code, 0, r.stderr)
    t.equal(r.stdout, 'db\n', 'prints the name')
    const db = await running(c, 'db')
    t.match(db, { owner: 'run', detached: true, networkName: 'bridge', address: /^10\.63\.0\.\d+$/, env: ['POSTGRES_USER=app', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'] })
    const pid = db.process!.pid
    t.equal(db.watch?.pid, pid, 'the agent watches the command itself')
    t.ok(alive(pid), 'ferry run returned while the command (a 600 s sleep and a server) runs on')
    t.equal(db.log, join(agent.stateDir, 'logs', 'db.log'))
    await waitFor('the log', async () => (readFileSync(db.log!, 'utf8').includes('db starting') ? true : undefined))
    t.equal(group(pid).length, 2, 'the command and its child, in a session of their own')
    const table = await ferry(c, ['ps'])
    t.match(table.stdout, new RegExp(`^db\\s+[0-9a-f]{12}\\s+run -d\\s+bridge\\s+${db.address!.replaceAll('.', '\\.')}\\s+${pid}\\s`, 'm'), 'ferry ps shows it')

    const client = await ferry(c, ['run', '--link', 'db:database', '--', 'busybox', 'sh', '-c', 'env | grep _ENV_ | sort; echo | nc -w 2 database 5432'])
    t.equal(client.code, 0, client.stderr)
    t.equal(client.stdout, 'DATABASE_ENV_POSTGRES_USER=app\ndb-answer\n', 'DATABASE_ENV_* (not PATH), and the detached server answers')
    t.same(linkTraces(backend, host), [], 'the link went with its container')

    // The agent restarts: the detached container keeps its record, its network and its watchdog.
    await agent.restart()
    t.match((await ps(c)).find((p) => p.name === 'db'), { process: { pid }, watch: { pid } }, 'still there after an agent restart')
    const after = await ferry(c, ['run', '--link', 'db:database', '--', 'busybox', 'sh', '-c', 'echo | nc -w 2 database 5432'])
    t.equal(after.stdout, 'db-answer\n', 'and still serving')

    const again = await detached(['--name', 'db', '--', 'true'])
    t.equal(again.r.code, 4, 'the name is taken')

    const rm = await ferry(c, ['rm', 'db'])
    t.equal(rm.code, 0, rm.stderr)
    t.equal(rm.stdout, 'db\n')
    t.same(await ps(c), [], 'detached at once')
    t.notOk(alive(pid), 'the command is gone')
    t.same(group(pid), [], 'and its child (the whole process group)')
    t.same(hostVeths(c), [], 'no veth left')
    t.notOk(existsSync(db.log!), 'rm removed the log')
    t.equal((await ferry(c, ['rm', 'db'])).code, 3, 'rm of a name that is gone: not found')
    t.equal((await ferry(c, ['rm', '-f', 'db'])).code, 0, 'rm -f: not an error')
  })

  await t.test('a detached command that exits by itself is cleaned up; its log stays', async (t) => {
    // The command exits when the test says so (a file appears), not after a sleep a busy machine may outlast.
    const go = join(t.testdir({}), 'go')
    const { r } = await detached(['--name', 'short', '-p', '8090:90', '--', 'busybox', 'sh', '-c', `echo bye from short; while [ ! -e ${go} ]; do sleep 0.1; done`])
    t.equal(r.code, 0, r.stderr)
    const rec = await running(c, 'short')
    t.equal(publishedCount(backend, host, 8090), 1, 'its port is published')
    writeFileSync(go, '')
    await waitFor('the watchdog to detach it', async () => ((await ps(c)).some((p) => p.name === 'short') ? undefined : true))
    t.same(hostVeths(c), [], 'no veth left')
    t.equal(publishedCount(backend, host, 8090), 0, 'no port rule (or map element) left')
    t.equal(readFileSync(rec.log!, 'utf8'), 'bye from short\n', 'the log is kept, to read why it exited')
    t.equal((await ferry(c, ['rm', 'short'])).code, 0, 'rm of the gone container deletes its log')
    t.notOk(existsSync(rec.log!))
  })

  if (once) await t.test('stop: SIGTERM, then SIGKILL after the grace period', async (t) => {
    // The shell runs its trap once the current sleep ends (within 0.2 s): the line is in the log only if
    // SIGKILL waited for the grace period after SIGTERM.
    const { r } = await detached(['--name', 'stubborn', '--', 'busybox', 'sh', '-c', 'trap "echo got TERM" TERM; while true; do sleep 0.2; done'])
    t.equal(r.code, 0, r.stderr)
    const rec = await running(c, 'stubborn')
    await sleep(300)
    const stop = await ferry(c, ['stop', '-t', '1', 'stubborn'])
    t.equal(stop.code, 0, stop.stderr)
    t.match(readFileSync(rec.log!, 'utf8'), /got TERM/, 'SIGTERM came first and the command outlived it: the grace period was waited')
    t.same(group(rec.process!.pid), [], 'killed, with its children')
    t.same(await ps(c), [])
    t.ok(existsSync(rec.log!), 'stop keeps the log')
    t.equal((await ferry(c, ['rm', 'stubborn'])).code, 0)

    const foreground = ferryBg(t, c, ['run', '--name', 'fg', '--', 'busybox', 'sleep', '600'])
    const fg = await running(c, 'fg')
    await waitFor('ferry run to report its command', async () => ((await ps(c)).find((p) => p.name === 'fg')?.process !== undefined ? true : undefined))
    t.equal((await ferry(c, ['stop', 'fg'])).code, 0)
    t.equal(await foreground.done, 143, 'a foreground ferry run ends with its command (128+SIGTERM)')
    t.notOk(alive(fg.watch!.pid), 'its holder too')
    t.same(await ps(c), [])
  })

  if (once) await t.test('a command that cannot be executed', async (t) => {
    const { r } = await detached(['--name', 'bad', '--', 'no-such-command-here'])
    t.equal(r.code, 127)
    t.match(r.stderr, /no-such-command-here could not be executed/)
    t.equal(r.stdout, '')
    t.same(await ps(c), [], 'nothing left attached')
    t.same(hostVeths(c), [])
    const quick = await detached(['--name', 'quick', '--', 'true'])
    t.equal(quick.r.code, 0, `a command that ends at once is fine, as with docker run -d: ${quick.r.stderr}`)
    t.equal(quick.r.stdout, 'quick\n')
    await waitFor('quick to be detached', async () => ((await ps(c)).length === 0 ? true : undefined))
    t.equal((await ferry(c, ['rm', 'quick'])).code, 0, 'its (empty) log removed')
  })

  if (once) await t.test('--net host: listed by name; --net container: of it shares the host network', async (t) => {
    const hostNs = nsExec(host, ['readlink', '/proc/self/ns/net']).trim()
    const { r } = await detached(['--net', 'host', '--name', 'hostc', '-p', '80:80', '--', 'busybox', 'nc', '-ll', '-p', '7070', '-e', 'echo', 'host-answer'])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, /Published ports are discarded when using host network mode/)
    const rec = await running(c, 'hostc')
    t.match(rec, { mode: 'host', networkName: 'host', detached: true })
    t.equal(rec.address, undefined)
    t.equal(publishedCount(backend, host, 80), 0, 'nothing published')
    const shared = await ferry(c, ['run', '--net', 'container:hostc', '--', 'busybox', 'sh', '-c', 'readlink /proc/self/ns/net; echo | nc -w 2 127.0.0.1 7070'])
    t.equal(shared.code, 0, shared.stderr)
    t.equal(shared.stdout, `${hostNs}\nhost-answer\n`, "the host's namespace, where hostc listens")

    const fh = ferryBg(t, c, ['run', '--net', 'host', '--name', 'fh', '--', 'busybox', 'sleep', '600'])
    t.match(await running(c, 'fh'), { mode: 'host', owner: 'run' })
    t.equal((await ferry(c, ['run', '--net', 'host', '--name', 'fh', '--', 'true'])).code, 4, 'the name is taken')
    fh.kill('SIGTERM')
    t.equal(await fh.done, 143)
    t.equal((await ferry(c, ['rm', 'hostc'])).code, 0)
    t.same(await ps(c), [])
    t.notOk(alive(rec.process!.pid))
  })

  await t.test('nothing is left behind', async (t) => {
    t.same(await ps(c), [])
    t.same(hostVeths(c), [])
    for (const pid of started) t.same(group(pid), [], `process group ${pid} is gone`)
    t.same(linkTraces(backend, host), [], 'no link rule (or set element)')
    t.same([8090, 5432].map((p) => publishedCount(backend, host, p)), [0, 0], 'no published port')
  })
})
