/**
 * A mixed-family underlay, without the engine (`ferry run`): three simulated hosts (namespaces with a
 * ferry agent each) on one underlay bridge with one redis-server (reached over IPv4 by every host: the
 * control plane). h1 advertises only an IPv4 VTEP, h2 only an IPv6 one, h3 both (`--advertise-addr`
 * given twice). Containers on h1 and h3, and on h2 and h3, reach each other both ways; h1 and h2 share
 * no underlay family, so their containers do not, and each side names the other in `ferry peers`
 * and `ferry cluster status`. Everything is gone after removal.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { ipJson, sh } from '../harness/netns.js'
import { underlay, underlayHost } from '../harness/underlay.js'
import { NODE, cleanEnv, startAgent, type Agent } from '../harness/agent.js'
import { redisServer } from '../harness/redis.js'
import { observe } from '../harness/until.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const REDIS_IP = '192.0.2.5'

interface Host { ns: string, agent: Agent, name: string }

const ferry = (h: Host, args: string[]) =>
  execFile(['ip', 'netns', 'exec', h.ns, ...NODE, ENTRY, ...args], { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, allowFailure: true, timeoutMs: 30_000 })

/** The VTEPs of each host: IPv4 only, IPv6 only, both (IPv4 first). */
const VTEPS: Record<string, string[]> = { m1: ['192.0.2.21'], m2: ['fd00:ff::22'], m3: ['192.0.2.23', 'fd00:ff::23'] }

t.test('mixed-family underlay: h1 IPv4 only, h2 IPv6 only, h3 both', async (t) => {
  const ul = underlay(t, 'fymul', REDIS_IP)
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const hosts: Host[] = []
  for (const i of [1, 2, 3]) {
    const name = `m${i}`
    const ns = underlayHost(t, ul, `fym${i}`, `vm${i}`, `192.0.2.2${i}`)
    const vteps = VTEPS[name]!
    for (const v of vteps) if (v.includes(':')) sh(['ip', '-n', ns, 'addr', 'add', `${v}/64`, 'dev', 'eth0', 'nodad'])
    const agent = await startAgent(t, {
      ns, pluginName: `fym${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, ...vteps.flatMap((v) => ['--advertise-addr', v]), '--host-id', name, '--reconcile-interval', '0'],
    })
    hosts.push({ ns, agent, name })
  }
  const [h1, h2, h3] = hosts as [Host, Host, Host]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })

  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ov', '--subnet', '10.48.0.0/24', '-o', 'ferry.overlay=ov'])
    t.equal(r.code, 0, r.stderr)
  }
  interface Link { ifname: string, mtu: number, linkinfo?: { info_kind: string, info_data?: Record<string, unknown>, info_slave_data?: { isolated?: boolean } } }
  const vxlans = (h: Host): Link[] => ipJson<Link[]>(h.ns, ['-d', 'link']).filter((l) => l.linkinfo?.info_kind === 'vxlan')
  t.same(vxlans(h3).map((l) => [String(l.linkinfo?.info_data?.local ?? l.linkinfo?.info_data?.local6), l.linkinfo?.info_slave_data?.isolated, l.mtu]),
    [['192.0.2.23', true, 1430], ['fd00:ff::23', true, 1430]], 'h3: a VXLAN device per underlay family, isolated ports of the bridge, the IPv6 underlay\'s MTU')
  t.same(vxlans(h1).map((l) => [String(l.linkinfo?.info_data?.local), l.mtu]), [['192.0.2.21', 1450]], 'h1: one, IPv4')
  t.same(vxlans(h2).map((l) => [String(l.linkinfo?.info_data?.local ?? l.linkinfo?.info_data?.local6), l.mtu]), [['fd00:ff::22', 1430]], 'h2: one, IPv6')

  // A long-running container on each host.
  const addresses: Record<string, string> = {}
  for (const h of hosts) {
    const c = spawn('ip', ['netns', 'exec', h.ns, ...NODE, ENTRY, 'run', '--name', `s${h.name}`, '--net', 'ov', '--', 'busybox', 'sleep', '600'],
      { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, stdio: 'ignore' })
    const done = new Promise((res) => c.once('exit', res))
    t.teardown(async () => { if (c.exitCode === null) { c.kill('SIGKILL'); await done } })
    const me = await observe(async () => (JSON.parse((await ferry(h, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string }>).find((x) => x.name === `s${h.name}`),
      (x) => x?.address !== undefined, { timeoutMs: 40_000, everyMs: 100 })
    addresses[h.name] = me?.address ?? ''
  }
  const ping = async (from: Host, to: string, want: boolean): Promise<string> => await observe(
    async () => (await ferry(from, ['run', '--net', 'ov', '--', 'busybox', 'ping', '-c', '2', '-W', '1', addresses[to] ?? ''])).stdout,
    (o) => o.includes(want ? ' 0% packet loss' : '100% packet loss'), { timeoutMs: want ? 60_000 : 20_000, everyMs: 300 })
  for (const [from, to] of [[h1, 'm3'], [h3, 'm1'], [h2, 'm3'], [h3, 'm2']] as const) {
    t.match(await ping(from, to, true), / 0% packet loss/, `${from.name} -> ${to}: they share a family`)
  }
  for (const [from, to] of [[h1, 'm2'], [h2, 'm1']] as const) {
    t.match(await ping(from, to, false), /100% packet loss/, `${from.name} -> ${to}: no family in common`)
  }

  const peers = JSON.parse((await ferry(h1, ['peers', '--json'])).stdout || '[]') as Array<{ unreachable?: string[] }>
  t.same(peers[0]?.unreachable, ['host m2 advertises only IPv6 (fd00:ff::22); this host has no IPv6 VTEP'], 'ferry peers on h1 names h2')
  const status = JSON.parse((await ferry(h2, ['cluster', 'status', '--json'])).stdout || '{}') as { vtep2?: string, peers?: { unreachableHosts?: Array<{ detail: string }> }, hosts?: Array<{ hostId: string, vtep2?: string }> }
  t.same(status.peers?.unreachableHosts?.map((u) => u.detail), ['host m1 advertises only IPv4 (192.0.2.21); this host has no IPv4 VTEP'], 'and cluster status on h2 names h1')
  t.equal(status.hosts?.find((x) => x.hostId === 'm3')?.vtep2, 'fd00:ff::23', 'h3\'s second VTEP is in the host list')
  t.same((JSON.parse((await ferry(h3, ['cluster', 'status', '--json'])).stdout || '{}') as typeof status).peers?.unreachableHosts, [], 'h3 reaches everyone')

  for (const h of hosts) {
    t.equal((await ferry(h, ['rm', '-f', `s${h.name}`])).code, 0)
    t.equal((await ferry(h, ['network', 'rm', 'ov'])).code, 0)
    t.same(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => /^fy[voh]/.test(n)), [], `${h.name}: no overlay device or veth left`)
  }
})
