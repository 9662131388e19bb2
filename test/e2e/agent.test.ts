/**
 * The agent's lifecycle as an admin meets it: one agent per state dir and per
 * socket, a clean SIGTERM, sockets root-only, the CLI's errors when the agent is
 * not there, and bad flags refused with one sentence. Once per firewall backend:
 * the nftables one runs a child of its own (a long-running `nft -i`; nftables
 * events are read in the agent, no `nft monitor`), which a clean stop must not
 * leave behind.
 */
import t from 'tap'
import { statSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFile } from '../../src/kernel/exec.js'
import { netns } from '../harness/netns.js'
import { startAgent, NODE } from '../harness/agent.js'
import { BACKENDS } from '../harness/firewall.js'

const FERRY = join(import.meta.dirname, '..', '..', 'bin', 'ferry')
const ferry = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFile([...NODE, FERRY, ...args], { allowFailure: true, timeoutMs: 30_000, env: { ...process.env, ...env } })
const inNs = (ns: string, args: string[]) =>
  execFile(['ip', 'netns', 'exec', ns, ...NODE, FERRY, ...args], { allowFailure: true, timeoutMs: 30_000 })

/** The processes in namespace `ns`, as `pid argv`. */
async function processes (ns: string): Promise<string[]> {
  const pids = (await execFile(['ip', 'netns', 'pids', ns])).stdout.split('\n').filter(Boolean)
  return pids.flatMap((pid) => {
    try {
      return [`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`]
    } catch {
      return [] // exited meanwhile
    }
  })
}

for (const backend of BACKENDS) await t.test(`agent lifecycle (--firewall-backend ${backend})`, async (t) => {
  const ns = netns(t, `fyag${backend[0]!}`)
  const plugin = `fyag${backend[0]!}${process.pid}`
  const agent = await startAgent(t, { ns, pluginName: plugin, args: ['--firewall-backend', backend] })

  await t.test('sockets are root-only', async (t) => {
    t.equal(statSync(agent.pluginSocket).mode & 0o777, 0o600)
    t.equal(statSync(agent.apiSocket).mode & 0o777, 0o600)
  })

  await t.test('a second agent on the same state dir or socket is refused', async (t) => {
    const sameDir = await inNs(ns, ['agent', '--plugin-name', `${plugin}b`, '--state-dir', agent.stateDir, '--api-socket', `${agent.apiSocket}.b`])
    t.equal(sameDir.code, 4)
    t.match(sameDir.stderr, /^ferry agent: another ferry agent \(pid \d+\) is already using the state directory/m)
    t.notMatch(sameDir.stderr, /\n\s+at /, 'no stack trace')
    const sameSock = await inNs(ns, ['agent', '--plugin-name', plugin, '--state-dir', `${agent.stateDir}-b`, '--api-socket', `${agent.apiSocket}.c`])
    t.equal(sameSock.code, 4)
    t.match(sameSock.stderr, /plugin socket .* is already served by another process/)
    t.ok(existsSync(agent.pluginSocket), 'the running agent keeps its socket')
    t.equal((await agent.cli(['status'])).code, 0, 'and keeps serving')
  })

  await t.test('bad flags get one sentence', async (t) => {
    const r = await inNs(ns, ['agent', '--plugin-name', 'bad/name', '--state-dir', `${agent.stateDir}-x`])
    t.equal(r.code, 2)
    t.match(r.stderr, /--plugin-name "bad\/name" must be letters/)
    const c = await inNs(ns, ['agent', '--plugin-name', `${plugin}c`, '--state-dir', `${agent.stateDir}-y`, '--cluster', 'redis://127.0.0.1:1'])
    t.equal(c.code, 2)
    t.match(c.stderr, /--cluster needs --advertise-addr/)
    const pool = await inNs(ns, ['agent', '--plugin-name', `${plugin}d`, '--state-dir', `${agent.stateDir}-z`, '--default-address-pool', 'base=10.0.0.0/8,size=4'])
    t.not(pool.code, 0)
    t.notMatch(pool.stderr, /\n\s+at /)
  })

  await t.test('SIGTERM stops it cleanly; the CLI then says the agent is not running', async (t) => {
    const running = await processes(ns)
    if (backend === 'nftables') t.notOk(running.some((p) => /\bnft monitor\b/.test(p)), `the agent watches nftables events in its own process: ${running.join('; ')}`)
    const exit = await agent.kill('SIGTERM')
    t.same(exit, { code: 0, signal: null })
    t.notOk(existsSync(agent.pluginSocket), 'plugin socket removed')
    t.notOk(existsSync(agent.apiSocket), 'API socket removed')
    t.same(await processes(ns), [], 'no process of the agent is left in its namespace (nft -i)')
    const r = await ferry(['status'], { FERRY_API_SOCKET: agent.apiSocket })
    t.equal(r.code, 5)
    t.match(r.stderr, /^ferry: the ferry agent is not running: nothing answers on /)
    const flag = await ferry(['--api-socket', '/nonexistent/ferry.sock', 'network', 'ls'])
    t.equal(flag.code, 5)
    t.match(flag.stderr, /\/nonexistent\/ferry\.sock/)
    const unknown = await ferry(['frobnicate'])
    t.not(unknown.code, 0)
    t.match(unknown.stderr, /unknown command/)
  })
})
