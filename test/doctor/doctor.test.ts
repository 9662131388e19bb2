/**
 * `ferry doctor` run inside test namespaces, as an admin runs it: first on a
 * bare namespace (no engine, no agent: it must say so and exit 1), then next
 * to a real engine, an agent and Redis (every check passes, exit 0). The kernel
 * probe's scratch namespace must be gone afterwards.
 */
import t from 'tap'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { netns, sh, uniqueName } from '../harness/netns.js'
import { NODE, cleanEnv, startAgent } from '../harness/agent.js'
import { startDockerd } from '../harness/dockerd.js'
import { redisServer } from '../harness/redis.js'
import type { CheckResult } from '../../src/doctor/checks.js'

const FERRY = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'bin', 'ferry')

interface Report { ok: boolean, summary: { ok: number, warn: number, fail: number }, checks: CheckResult[] }

async function doctor (ns: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, report: Report, text: string }> {
  const json = await execFile(['ip', 'netns', 'exec', ns, ...NODE, FERRY, 'doctor', '--json', ...args], { env: { ...cleanEnv(), ...env }, allowFailure: true, timeoutMs: 60_000 })
  const text = await execFile(['ip', 'netns', 'exec', ns, ...NODE, FERRY, 'doctor', ...args], { env: { ...cleanEnv(), ...env }, allowFailure: true, timeoutMs: 60_000 })
  return { code: json.code, report: JSON.parse(json.stdout) as Report, text: text.stdout + text.stderr }
}

const status = (r: Report, check: string): string | undefined => r.checks.find((c) => c.check === check)?.status
const scratchNamespaces = (): string[] => sh(['ip', 'netns', 'list']).split('\n').filter((l) => l.startsWith('fydoc-'))

t.test('a bare namespace: kernel fine, no engine, no agent', async (t) => {
  const ns = netns(t, 'fyd')
  const { code, report, text } = await doctor(ns, ['--docker-host', 'unix:///nonexistent/docker.sock', '--plugin-name', uniqueName('fyd'), '--api-socket', '/nonexistent/api.sock'])
  t.equal(code, 1, 'exit 1: something fails')
  t.equal(report.ok, false)
  for (const c of ['kernel.bridge', 'kernel.veth', 'kernel.vxlan', 'iptables.backend', 'iptables.mixed']) t.equal(status(report, c), 'ok', c)
  t.equal(status(report, 'sysctl.ip_forward'), 'warn', 'a fresh namespace does not forward')
  t.equal(status(report, 'engine.reachable'), 'fail')
  t.equal(status(report, 'agent.plugin-socket'), 'fail')
  t.equal(status(report, 'agent.api'), 'fail')
  t.equal(status(report, 'redis.reachable'), undefined, 'no Redis check without --cluster')
  const lines = text.trimEnd().split('\n')
  for (const l of lines.slice(0, report.checks.length)) t.match(l, /^(ok|warn|fail) +[a-z_.-]+: .+/)
  t.match(lines.at(-1), /^\d+ ok, \d+ warnings, \d+ failures$/)
  t.match(text, /fail engine.reachable: no Docker engine answers at unix:\/\/\/nonexistent\/docker.sock: .* — start it/)
  t.same(scratchNamespaces(), [], 'the probe namespace is removed')
})

t.test('next to an engine, an agent and Redis: all good', async (t) => {
  const ns = netns(t, 'fyd')
  const d = await startDockerd(t, { ns })
  const plugin = uniqueName('fyd')
  const agent = await startAgent(t, { ns, pluginName: plugin, dockerd: d })
  const redis = await redisServer(t, { ns })
  const net = await d.docker(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.77.0.0/24', 'front'])
  t.equal(net.code, 0, net.stderr)
  const { code, report, text } = await doctor(ns, ['--docker-host', d.host, '--plugin-name', plugin, '--cluster', redis.url], { FERRY_API_SOCKET: agent.apiSocket })
  t.comment(text)
  for (const c of [
    'kernel.bridge', 'kernel.veth', 'kernel.vxlan', 'sysctl.ip_forward', 'iptables.backend', 'iptables.mixed',
    'engine.reachable', 'engine.iptables', 'engine.live-restore', 'engine.networks', 'engine.plugin-dir',
    'agent.plugin-socket', 'agent.plugin', 'agent.api', 'agent.api-socket', 'redis.version', 'clock.skew',
  ]) t.equal(status(report, c), 'ok', c)
  t.not(status(report, 'redis.latency'), 'fail', 'latency: warn at most on a busy test machine')
  t.match(report.checks.find((c) => c.check === 'engine.networks')?.what, /1 .* network\(s\): front/)
  t.equal(status(report, 'engine.dns'), 'ok', 'no overlay: an engine --dns elsewhere misses nothing')
  t.match(report.checks.find((c) => c.check === 'engine.dns')?.what, /dockerd \(pid \d+, .*daemon\.json\) forwards its containers' other names to [\d.]+, none of ferry's addresses \(10\.77\.0\.1\)/,
    'the harness engine found by its -H, its --dns read')
  t.equal(code, report.checks.some((c) => c.status === 'fail') ? 1 : 0)
  t.same(scratchNamespaces(), [], 'the probe namespace is removed')
})
