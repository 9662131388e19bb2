/**
 * `ferry run` on a multi-host overlay, without the engine: two simulated hosts
 * (namespaces with a ferry agent each) on an underlay bridge with one
 * redis-server. An overlay network made with `ferry network create -o
 * ferry.overlay=…` works as a bridge network does: a command on one host reaches
 * a command on the other by address and by name, and everything is given back.
 * The same test runs on an IPv4 overlay and on a dual-stack one (`--ipv6`), where
 * each check runs over both families: TCP, ping and the name's A/AAAA record;
 * and on a dual-stack one over an IPv6 underlay (VTEPs with IPv6 addresses).
 * Each host has its own firewall backend (host 1 nftables, host 2 iptables), so
 * the overlay's traffic leaves one backend's host and enters the other's.
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
import { backendInUse } from '../harness/firewall.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const REDIS_IP = '192.0.2.5'

interface Host { ns: string, agent: Agent }

/** The overlays the test runs on, the families each one is checked over, and the underlay's family (the VTEPs'). */
const DUAL = ['--ipv6', '--subnet', '10.47.0.0/24', '--subnet', 'fd00:47::/64']
const STACKS = [
  { name: 'an IPv4 overlay', create: ['--subnet', '10.46.0.0/24'], families: [4] as const, prefix: 'fyr', underlay: 4 },
  { name: 'a dual-stack overlay', create: DUAL, families: [4, 6] as const, prefix: 'fys', underlay: 4 },
  { name: 'a dual-stack overlay over an IPv6 underlay', create: DUAL, families: [4, 6] as const, prefix: 'fyu', underlay: 6 },
]

const ferry = (h: Host, args: string[]) =>
  execFile(['ip', 'netns', 'exec', h.ns, ...NODE, ENTRY, ...args], { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, allowFailure: true, timeoutMs: 30_000 })

for (const stack of STACKS) {
  await t.test(`ferry run on ${stack.name} across two hosts`, async (t) => {
    const ul = underlay(t, `${stack.prefix}ul`, REDIS_IP)
    await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
    const hosts: Host[] = []
    for (const i of [1, 2]) {
      const ip = `192.0.2.2${i}`
      const ns = underlayHost(t, ul, `${stack.prefix}o${i}`, `vr${i}`, ip)
      // Over an IPv6 underlay the VTEP is an IPv6 address of the same link (Redis stays reachable over IPv4).
      const vtep = stack.underlay === 6 ? `fd00:ff::2${i}` : ip
      if (stack.underlay === 6) sh(['ip', '-n', ns, 'addr', 'add', `${vtep}/64`, 'dev', 'eth0', 'nodad'])
      const agent = await startAgent(t, {
        ns, pluginName: `${stack.prefix}o${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
        args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', vtep, '--host-id', `r${i}`, '--reconcile-interval', '0', '--firewall-backend', i === 1 ? 'nftables' : 'iptables'],
      })
      hosts.push({ ns, agent })
    }
    const [h1, h2] = hosts as [Host, Host]
    t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })

    for (const h of hosts) {
      const r = await ferry(h, ['network', 'create', 'ov', ...stack.create, '-o', 'ferry.overlay=ov'])
      t.equal(r.code, 0, r.stderr)
      const vxlan = ipJson<Array<{ linkinfo?: { info_kind: string, info_data?: Record<string, unknown> } }>>(h.ns, ['-d', 'link']).find((l) => l.linkinfo?.info_kind === 'vxlan')
      t.match(JSON.stringify(vxlan?.linkinfo?.info_data), stack.underlay === 6 ? /"local6?":"fd00:ff::2\d"/ : /"local":"192\.0\.2\.2\d"/, `the VXLAN device sends from the IPv${stack.underlay} VTEP`)
    }
    t.same([backendInUse(h1.ns), backendInUse(h2.ns)], ['nftables', 'iptables'], 'host 1 filters with table inet ferry, host 2 with iptables')
    const server = spawn('ip', ['netns', 'exec', h1.ns, ...NODE, ENTRY, 'run', '--name', 'far', '--net', 'ov', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', 'across-the-overlay'],
      { env: { ...cleanEnv(), FERRY_API_SOCKET: h1.agent.apiSocket }, stdio: 'ignore' })
    const done = new Promise((res) => server.once('exit', res))
    t.teardown(async () => { if (server.exitCode === null) { server.kill('SIGKILL'); await done } })
    const far = await observe(async () => (JSON.parse((await ferry(h1, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string, address6?: string }>).find((c) => c.name === 'far'),
      (f) => f?.address !== undefined, { timeoutMs: 40_000, everyMs: 100 })
    t.match(far?.address, /^10\.4[67]\.0\.\d+$/, 'an address from the cluster-wide allocation')
    if (stack.families.includes(6)) t.match(far?.address6, /^fd00:47::[0-9a-f]+$/, 'and an IPv6 one from the cluster-wide IPv6 allocation')

    for (const family of stack.families) {
      const ip = (family === 4 ? far?.address : far?.address6) ?? ''
      const out = await observe(async () => (await ferry(h2, ['run', '--net', 'ov', '--', 'busybox', 'sh', '-c', `echo | nc -w 2 ${ip} 80; ping -c 1 -W 2 ${ip}; nslookup far`])).stdout,
        (o) => o.includes('across-the-overlay') && o.includes(' 0% packet loss') && o.includes(`Address: ${ip}`), { timeoutMs: 60_000, everyMs: 300 })
      t.match(out, /across-the-overlay/, `reached on the other host by address over IPv${family}`)
      t.match(out, / 0% packet loss/, `and pinged over IPv${family}`)
      t.match(out, new RegExp(`Name:\\s+far\\nAddress: ${ip.replace(/\./g, '\\.')}`), `and by name through ferry's DNS (${family === 4 ? 'A' : 'AAAA'})`)
    }

    server.kill('SIGTERM')
    await done
    for (const h of hosts) {
      t.same(JSON.parse((await ferry(h, ['ps', '--json'])).stdout), [], 'nothing attached')
      t.same(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fyh')), [], 'no veth left')
      t.equal((await ferry(h, ['network', 'rm', 'ov'])).code, 0)
    }
  })
}
