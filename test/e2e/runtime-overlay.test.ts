/**
 * `ferry run` on a multi-host overlay, without the engine: two simulated hosts
 * (namespaces with a ferry agent each) on an underlay bridge with one
 * redis-server. An overlay network made with `ferry network create -o
 * ferry.overlay=…` works as a bridge network does: a command on one host reaches
 * a command on the other by address and by name, and everything is given back.
 * Each host has its own firewall backend (host 1 nftables, host 2 iptables), so
 * the overlay's traffic leaves one backend's host and enters the other's.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { ipJson } from '../harness/netns.js'
import { underlay, underlayHost } from '../harness/underlay.js'
import { NODE, cleanEnv, startAgent, type Agent } from '../harness/agent.js'
import { redisServer } from '../harness/redis.js'
import { observe } from '../harness/until.js'
import { backendInUse } from '../harness/firewall.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const REDIS_IP = '192.0.2.5'

interface Host { ns: string, agent: Agent }

const ferry = (h: Host, args: string[]) =>
  execFile(['ip', 'netns', 'exec', h.ns, ...NODE, ENTRY, ...args], { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, allowFailure: true, timeoutMs: 30_000 })

await t.test('ferry run on an overlay across two hosts', async (t) => {
  const ul = underlay(t, 'fyrul', REDIS_IP)
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const hosts: Host[] = []
  for (const i of [1, 2]) {
    const ip = `192.0.2.2${i}`
    const ns = underlayHost(t, ul, `fyro${i}`, `vr${i}`, ip)
    const agent = await startAgent(t, {
      ns, pluginName: `fyro${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', ip, '--host-id', `r${i}`, '--reconcile-interval', '0', '--firewall-backend', i === 1 ? 'nftables' : 'iptables'],
    })
    hosts.push({ ns, agent })
  }
  const [h1, h2] = hosts as [Host, Host]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })

  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ov', '--subnet', '10.46.0.0/24', '-o', 'ferry.overlay=ov'])
    t.equal(r.code, 0, r.stderr)
  }
  t.same([backendInUse(h1.ns), backendInUse(h2.ns)], ['nftables', 'iptables'], 'host 1 filters with table inet ferry, host 2 with iptables')
  const server = spawn('ip', ['netns', 'exec', h1.ns, ...NODE, ENTRY, 'run', '--name', 'far', '--net', 'ov', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', 'across-the-overlay'],
    { env: { ...cleanEnv(), FERRY_API_SOCKET: h1.agent.apiSocket }, stdio: 'ignore' })
  const done = new Promise((res) => server.once('exit', res))
  t.teardown(async () => { if (server.exitCode === null) { server.kill('SIGKILL'); await done } })
  const far = await observe(async () => (JSON.parse((await ferry(h1, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string }>).find((c) => c.name === 'far'),
    (f) => f?.address !== undefined, { timeoutMs: 40_000, everyMs: 100 })
  t.match(far?.address, /^10\.46\.0\.\d+$/, 'an address from the cluster-wide allocation')

  const out = await observe(async () => (await ferry(h2, ['run', '--net', 'ov', '--', 'busybox', 'sh', '-c', `echo | nc -w 2 ${far!.address!} 80; nslookup far`])).stdout,
    (o) => o.includes('across-the-overlay') && o.includes(`Address: ${far!.address!}`), { timeoutMs: 60_000, everyMs: 300 })
  t.match(out, /across-the-overlay/, 'reached on the other host by address')
  t.match(out, new RegExp(`Name:\\s+far\\nAddress: ${far!.address!.replace(/\./g, '\\.')}`), 'and by name through ferry\'s DNS')

  server.kill('SIGTERM')
  await done
  for (const h of hosts) {
    t.same(JSON.parse((await ferry(h, ['ps', '--json'])).stdout), [], 'nothing attached')
    t.same(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fyh')), [], 'no veth left')
    t.equal((await ferry(h, ['network', 'rm', 'ov'])).code, 0)
  }
})
