/**
 * A host that vanishes from the underlay (issue 16, item 5), without the engine: three simulated
 * hosts (namespaces with an agent each, `--host-ttl 5`) on an underlay bridge with one
 * redis-server, a `ferry run` container on each on one overlay. Host 3's underlay link is cut:
 * - hosts 1 and 2 withdraw host 3's endpoint from their kernels within the TTL;
 * - host 3 keeps its local networking (its container answers on the overlay bridge) and its
 *   last known peers (the kernel entries of hosts 1 and 2's containers stay);
 * then the link comes back: host 3 registers again, re-asserts its endpoint, hosts 1 and 2 program
 * it again and reach its container across the overlay; nothing is left over afterwards.
 * Both firewall backends: hosts 1 and 3 run nftables, host 2 iptables, so the traffic
 * checked (1 to 3, 3 to 2) crosses both, in each direction.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { sh, ipJson } from '../harness/netns.js'
import { underlay, underlayHost } from '../harness/underlay.js'
import { NODE, cleanEnv, startAgent, type Agent } from '../harness/agent.js'
import { redisServer } from '../harness/redis.js'
import { waitFor } from '../harness/ferry-cli.js'
import { backendInUse } from '../harness/firewall.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const REDIS_IP = '192.0.2.5'

interface Host { i: number, ns: string, agent: Agent }

const env = (h: Host): NodeJS.ProcessEnv => ({ ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket })
const ferry = (h: Host, args: string[]) =>
  execFile(['ip', 'netns', 'exec', h.ns, ...NODE, ENTRY, ...args], { env: env(h), allowFailure: true, timeoutMs: 30_000 })

/** The overlay's IPv4 neighbour entries in a host's kernel (the remote endpoints it has programmed). */
function kernelPeers (h: Host): string[] {
  const vx = ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).find((n) => n.startsWith('fyv'))
  if (vx === undefined) return []
  return ipJson<Array<{ dst: string }>>(h.ns, ['-4', 'neigh', 'show', 'dev', vx]).map((n) => n.dst).sort()
}

/** One TCP exchange from a throwaway `ferry run` container on host `from` to `ip:80`. */
async function ask (from: Host, ip: string): Promise<string> {
  const r = await ferry(from, ['run', '--net', 'ov', '--', 'busybox', 'sh', '-c', `echo | nc -w 2 ${ip} 80`])
  return r.stdout.trim()
}

await t.test('a host cut from the underlay is withdrawn everywhere within the TTL, keeps its own networking, and comes back cleanly', async (t) => {
  const ul = underlay(t, 'fypul', REDIS_IP)
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const hosts: Host[] = []
  for (const i of [1, 2, 3]) {
    const ip = `192.0.2.3${i}`
    const ns = underlayHost(t, ul, `fypa${i}`, `vp${i}`, ip)
    const agent = await startAgent(t, {
      ns, pluginName: `fypa${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', ip, '--host-id', `p${i}`, '--host-ttl', '5', '--reconcile-interval', '0', '--firewall-backend', i === 2 ? 'iptables' : 'nftables'],
    })
    hosts.push({ i, ns, agent })
  }
  const [h1, h2, h3] = hosts as [Host, Host, Host]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(`host ${h.i}:\n${h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-30).join('\n')}`) })

  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ov', '--subnet', '10.47.0.0/24', '-o', 'ferry.overlay=ov'])
    t.equal(r.code, 0, r.stderr)
  }
  t.same(hosts.map((h) => backendInUse(h.ns)), ['nftables', 'iptables', 'nftables'], 'hosts 1 and 3 filter with table inet ferry, host 2 with iptables')
  const servers: ChildProcess[] = []
  t.teardown(async () => {
    for (const s of servers) {
      if (s.exitCode !== null) continue
      const done = new Promise((res) => s.once('exit', res))
      s.kill('SIGKILL')
      await done
    }
  })
  const addr = new Map<Host, string>()
  for (const h of hosts) {
    servers.push(spawn('ip', ['netns', 'exec', h.ns, ...NODE, ENTRY, 'run', '--name', `c${h.i}`, '--net', 'ov', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', `hello-from-${h.i}`],
      { env: env(h), stdio: 'ignore' }))
    const c = await waitFor(`c${h.i} to be attached`, async () =>
      (JSON.parse((await ferry(h, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string }>).find((p) => p.name === `c${h.i}` && p.address !== undefined))
    addr.set(h, c.address!)
  }
  const ip = (h: Host): string => addr.get(h)!
  const others = (h: Host): string[] => hosts.filter((o) => o !== h).map(ip).sort()
  for (const h of hosts) {
    t.same(await waitFor(`host ${h.i} to program both remote containers`, async () => {
      const p = kernelPeers(h)
      return others(h).every((x) => p.includes(x)) ? p.filter((x) => others(h).includes(x)) : undefined
    }), others(h), `host ${h.i} has the other two containers in its kernel`)
  }
  t.equal(await ask(h1, ip(h3)), 'hello-from-3', 'before the cut, host 1 reaches host 3\'s container')

  // The cut: host 3's underlay port goes down (in the underlay namespace made above).
  sh(['ip', '-n', ul.ns, 'link', 'set', 'vp3', 'down'])
  for (const h of [h1, h2]) {
    t.notOk((await waitFor(`host ${h.i} to withdraw host 3's container`, async () =>
      kernelPeers(h).includes(ip(h3)) ? undefined : kernelPeers(h))).includes(ip(h3)), `host ${h.i} withdrew host 3's container`)
    t.ok(kernelPeers(h).includes(ip(h === h1 ? h2 : h1)), `host ${h.i} keeps the container of the host still there`)
  }
  const status = JSON.parse((await ferry(h1, ['cluster', 'status', '--json'])).stdout) as { hosts: Array<{ hostId: string }> }
  t.same(status.hosts.map((x) => x.hostId).sort(), ['p1', 'p2'], 'host 3 left the cluster\'s host list')
  // Host 3, partitioned: its last known peers stay, and its own container still answers locally.
  t.same(kernelPeers(h3).filter((x) => others(h3).includes(x)), others(h3), 'host 3 keeps its last known peers in its kernel')
  const local = await execFile(['ip', 'netns', 'exec', h3.ns, 'busybox', 'sh', '-c', `echo | nc -w 2 ${ip(h3)} 80`], { allowFailure: true })
  t.equal(local.stdout.trim(), 'hello-from-3', 'host 3\'s container keeps answering on its overlay bridge')

  // The link comes back.
  sh(['ip', '-n', ul.ns, 'link', 'set', 'vp3', 'up'])
  for (const h of [h1, h2]) {
    t.ok((await waitFor(`host ${h.i} to program host 3's container again`, async () =>
      kernelPeers(h).includes(ip(h3)) ? kernelPeers(h) : undefined)).includes(ip(h3)), `host ${h.i} programs host 3's container again`)
  }
  t.equal(await waitFor('host 1 to reach host 3\'s container again', async () => {
    const got = await ask(h1, ip(h3))
    return got === 'hello-from-3' ? got : undefined
  }, 20_000), 'hello-from-3', 'host 1 reaches host 3\'s container across the overlay again')
  t.equal(await ask(h3, ip(h2)), 'hello-from-2', 'and host 3 reaches host 2\'s')
  for (const h of hosts) {
    const peers = JSON.parse((await ferry(h, ['peers', '--json'])).stdout) as Array<{ differences: number }>
    t.same(peers.map((p) => p.differences), [0], `host ${h.i}: kernel matches Redis`)
  }

  for (const s of servers) {
    const done = new Promise((res) => s.once('exit', res))
    s.kill('SIGTERM')
    await done
  }
  for (const h of hosts) {
    t.same(JSON.parse((await waitFor(`host ${h.i} to detach its container`, async () => {
      const r = await ferry(h, ['ps', '--json'])
      return r.stdout.trim() === '[]' ? r : undefined
    })).stdout), [], `host ${h.i}: nothing attached`)
    t.equal((await ferry(h, ['network', 'rm', 'ov'])).code, 0, `host ${h.i}: the overlay network is removed`)
    t.same(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => /^fy[hov]/.test(n)), [], `host ${h.i}: no veth, bridge or VXLAN device left`)
  }
})
