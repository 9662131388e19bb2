/**
 * The multi-host overlay end to end: three simulated hosts (each a namespace with
 * its own dockerd and ferry agent, under its own plugin name) joined by an
 * underlay bridge, one redis-server on the underlay. The firewall backend is each
 * host's own choice: h1 runs nftables, h2 and h3 iptables, and egress (an overlay
 * container reaching the underlay through its host's masquerade) is asserted on both.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { nsExec, ipJson, sh } from '../harness/netns.js'
import { NODE } from '../harness/agent.js'
import { startCluster, type SimHost } from '../harness/cluster.js'
import { unixHttp } from '../harness/dockerd.js'
import { until as untilWithin, type UntilOptions } from '../harness/until.js'

const SUBNET = '10.40.0.0/16'
const SERVE = (text: string) => `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`

type Host = SimHost

/** Counts the bytes of each TCP connection on port 9000 and answers the count at its end; echoes UDP on 9001. */
const TCP_UDP_SERVER = `
const net = require('net'); const dgram = require('dgram'); const host = process.argv[1];
setTimeout(() => process.exit(0), 120000).unref();
net.createServer((s) => { let n = 0; s.on('data', (b) => { n += b.length }); s.on('end', () => s.end(String(n))); s.on('error', () => {}) }).listen(9000, host, () => {
  const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(m, r.port, r.address)); u.bind(9001, host, () => console.log('ready')) });`

/** argv[2] MiB over TCP, then UDP datagrams of several sizes (one inner fragment or more) one at a time, each to be echoed as sent. */
const TCP_UDP_CLIENT = `
const net = require('net'); const dgram = require('dgram'); const crypto = require('crypto'); const [host, mib] = [process.argv[1], Number(process.argv[2])];
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(1) }, 50000).unref();
const tcp = () => new Promise((resolve, reject) => { const buf = crypto.randomBytes(1 << 20); let reply = '';
  const s = net.connect(9000, host, () => { for (let i = 0; i < mib; i++) s.write(buf); s.end() });
  s.on('data', (b) => { reply += b }); s.on('end', () => resolve(Number(reply))); s.on('error', reject) });
const echo = (u, size) => new Promise((resolve) => { const m = crypto.randomBytes(size); let tries = 0;
  const send = () => { if (tries++ === 3) { u.off('message', on); resolve({ size, ok: false }); return } u.send(m, 9001, host); timer = setTimeout(send, 1000) };
  const on = (r) => { if (!r.equals(m)) return; clearTimeout(timer); u.off('message', on); resolve({ size, ok: true }) };
  let timer; u.on('message', on); send() });
(async () => { const tcpGot = await tcp(); const u = dgram.createSocket('udp4'); const udp = [];
  for (const size of [1, 64, 512, 1400, 1422, 1423, 3000, 8000, 60000]) udp.push(await echo(u, size));
  u.close(); console.log(JSON.stringify({ tcpSent: mib << 20, tcpGot, udp })); process.exit(0) })().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1) });`

/** Checks every 200 ms for up to 10 s unless told otherwise: each check runs commands in the hosts. */
const E2E: UntilOptions = { timeoutMs: 10_000, everyMs: 200 }
const until = (what: string, fn: () => Promise<boolean> | boolean, opts: UntilOptions | number = E2E): Promise<void> =>
  untilWithin(what, fn, typeof opts === 'number' ? { ...E2E, timeoutMs: opts } : opts)

await t.test('overlay across three hosts', async (t) => {
  const { hosts, redis } = await startCluster(t, { prefix: 'fyo', dns: '10.40.0.1', hostTtlS: 4, agentArgs: ['--orphan-grace', '2', '--reconcile-interval', '1'],
    hostArgs: (i) => ['--firewall-backend', i === 1 ? 'nftables' : 'iptables'],
  })
  const [h1, h2, h3] = hosts as [Host, Host, Host]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(`${h.name} agent log:\n${h.agent.logs().slice(-3000)}`) })
  const create = (h: Host, name: string, ...args: string[]) =>
    h.d.docker(['network', 'create', '-d', h.plugin, '--ipam-driver', h.plugin, ...args, name])
  const run = (h: Host, ...args: string[]) => h.d.docker(['run', '--stop-timeout', '1', ...args])
  const ipOf = async (h: Host, c: string) => (await h.d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.ov1.IPAddress}}', c])).trim()
  const ping = (h: Host, ip: string) => run(h, '--rm', '--net', 'ov1', 'bb', 'ping', '-c', '1', '-W', '2', ip)
  const fetch = (h: Host, ip: string) => run(h, '--rm', '--net', 'ov1', 'bb', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 80`)

  await t.test('the same command on every host joins one overlay', async (t) => {
    for (const h of hosts) {
      const r = await create(h, 'ov1', '--subnet', SUBNET, '-o', 'ferry.overlay=ov1')
      t.equal(r.code, 0, `${h.name}: ${r.stderr}`)
    }
    const bad = await create(h3, 'ov1b', '--subnet', '10.41.0.0/16', '-o', 'ferry.overlay=ov1')
    t.not(bad.code, 0)
    t.match(bad.stderr, /overlay ov1 already exists with subnet 10\.40\.0\.0\/16/, bad.stderr)
    const vxlan = ipJson<Array<{ ifname: string, linkinfo?: { info_kind: string, info_data?: { id: number, port: number, learning: boolean } } }>>(h1.ns, ['-d', 'link'])
      .find((l) => l.linkinfo?.info_kind === 'vxlan')
    t.ok(vxlan, 'a VXLAN device on h1')
    t.equal(vxlan?.linkinfo?.info_data?.port, 4789)
    t.equal(vxlan?.linkinfo?.info_data?.learning, false)
  })

  let dbIp = ''
  await t.test('containers on different hosts reach each other', async (t) => {
    t.equal((await run(h1, '-d', '--net', 'ov1', '--name', 'db', 'bb', 'sh', '-c', SERVE('db-on-h1'))).code, 0)
    dbIp = await ipOf(h1, 'db')
    t.match(dbIp, /^10\.40\./)
    // Peers are programmed within milliseconds of the publication; allow for a loaded machine.
    let p = await ping(h2, dbIp)
    for (let i = 0; i < 5 && p.code !== 0; i++) p = await ping(h2, dbIp)
    t.equal(p.code, 0, `h2 pings db on h1: ${p.stdout}${p.stderr}`)
    await until('httpd on db', async () => /db-on-h1/.test((await fetch(h3, dbIp)).stdout))
    t.match((await fetch(h3, dbIp)).stdout, /db-on-h1/, 'h3 fetches from db over the overlay')
    const out = await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '2', '192.0.2.13'])
    t.equal(out.code, 0, 'overlay containers reach the outside through their own host (nftables on h1)')
    for (const [h, backend] of [[h1, 'nftables'], [h2, 'iptables']] as const) {
      const st = JSON.parse((await h.agent.cli(['status', '--json'])).stdout) as { firewall?: { backend?: string } }
      t.equal(st.firewall?.backend, backend, `${h.name} runs ${backend}`)
    }
    const out2 = await run(h2, '--rm', '--net', 'ov1', 'bb', 'ping', '-c', '1', '-W', '2', '192.0.2.11')
    t.equal(out2.code, 0, `and through h2 (iptables): ${out2.stdout}${out2.stderr}`)
  })

  await t.test('bulk TCP and UDP across the overlay with the checksum offloads ferry sets, the outer packets NATed on the way (flannel#2152)', async (t) => {
    const vx = ipJson<Array<{ linkinfo?: { info_kind: string, info_data?: Record<string, unknown> } }>>(h1.ns, ['-d', 'link']).find((l) => l.linkinfo?.info_kind === 'vxlan')
    t.match(vx?.linkinfo?.info_data, { udp_csum: true }, 'outer UDP checksums on')
    for (const [h, name] of [[h1, 'tcpudp-srv'], [h2, 'tcpudp-cli']] as const) t.equal((await run(h, '-d', '--net', 'ov1', '--name', name, 'bb', 'sleep', '600')).code, 0, name)
    const srvIp = (await ipOf(h1, 'tcpudp-srv'))
    const inSrv = ['nsenter', '-t', String(await h1.d.pidOf('tcpudp-srv')), '-n']
    const inCli = ['nsenter', '-t', String(await h2.d.pidOf('tcpudp-cli')), '-n']
    // The outer VXLAN packets h2 sends get their source port rewritten, as a MASQUERADE --random-fully on the
    // underlay (kube-proxy's) does to flannel's: with checksum offload, the double NAT that broke them.
    const nat = ['-t', 'nat', '-p', 'udp', '--dport', '4789', '-j', 'MASQUERADE', '--random-fully']
    nsExec(h2.ns, ['iptables', '-I', 'POSTROUTING', '1', ...nat])
    t.teardown(() => { nsExec(h2.ns, ['iptables', '-D', 'POSTROUTING', ...nat], { allowFailure: true }) })
    const csumErrors = (): number => {
      const udp = nsExec(h1.ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.trim().split(/\s+/))
      return Number(udp[1]?.[udp[0]?.indexOf('InCsumErrors') ?? -1] ?? NaN)
    }
    const errorsBefore = csumErrors()
    const srv = spawn(inSrv[0]!, [...inSrv.slice(1), ...NODE, '-e', TCP_UDP_SERVER, srvIp], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { srv.kill('SIGKILL') })
    await new Promise<void>((resolve, reject) => {
      srv.stdout.on('data', (b: Buffer) => { if (b.toString().includes('ready')) resolve() })
      srv.once('exit', (code) => { reject(new Error(`the server exited (${code})`)) })
    })
    const out = JSON.parse(sh([...inCli, ...NODE, '-e', TCP_UDP_CLIENT, srvIp, '32'], { timeoutMs: 60_000 })) as { tcpSent: number, tcpGot: number, udp: Array<{ size: number, ok: boolean }> }
    t.equal(out.tcpGot, out.tcpSent, `32 MiB over TCP, every byte counted by the server (${out.tcpGot})`)
    t.same(out.udp.filter((d) => !d.ok).map((d) => d.size), [], `UDP datagrams of ${out.udp.map((d) => d.size).join(', ')} bytes echoed intact`)
    const natted = nsExec(h2.ns, ['iptables', '-t', 'nat', '-L', 'POSTROUTING', '1', '-v', '-n', '-x']).trim().split(/\s+/)
    t.ok(Number(natted[0]) > 0, `the NAT rule took the outer flows (${natted[0]} first packets; conntrack applies it to every packet of each flow)`)
    t.equal(csumErrors(), errorsBefore, 'no UDP checksum error on the receiving host')
  })

  await t.test('a dual-stack overlay: containers on two hosts reach each other over IPv4 and IPv6; an IPv4-only join is refused', async (t) => {
    for (const h of [h1, h2]) {
      const r = await create(h, 'ov6', '--ipv6', '--subnet', '10.42.0.0/16', '--subnet', 'fd00:42::/64', '-o', 'ferry.overlay=ov6')
      t.equal(r.code, 0, `${h.name}: ${r.stderr}`)
    }
    const bad = await create(h3, 'ov6', '--subnet', '10.42.0.0/16', '-o', 'ferry.overlay=ov6')
    t.match(bad.stderr, /overlay ov6 already exists dual-stack with IPv6 subnet fd00:42::\/64 and gateway fd00:42::1 \(this host asked for it IPv4-only\)/, bad.stderr)
    t.equal((await run(h1, '-d', '--net', 'ov6', '--name', 'web6', 'bb', 'sh', '-c', SERVE('web6-on-h1'))).code, 0)
    const inspect = (field: string) => h1.d.dockerOk(['inspect', '-f', `{{.NetworkSettings.Networks.ov6.${field}}}`, 'web6'])
    const addrs = { 4: (await inspect('IPAddress')).trim(), 6: (await inspect('GlobalIPv6Address')).trim() }
    t.match(addrs, { 4: /^10\.42\./, 6: /^fd00:42::[0-9a-f]+$/ }, 'an address of each family from the cluster')
    for (const family of [4, 6] as const) {
      const ip = addrs[family]
      const check = () => run(h2, '--rm', '--net', 'ov6', 'bb', 'sh', '-c', `ping -c 1 -W 2 ${ip} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 80`)
      await until(`h2 reaches web6 on h1 over IPv${family}`, async () => /web6-on-h1/.test((await check()).stdout), 30_000)
      const out = await check()
      t.match(out.stdout, / 0% packet loss[\s\S]*web6-on-h1/, `h2 pings and fetches from web6 on h1 over IPv${family}`)
    }
    await h1.d.dockerOk(['rm', '-f', 'web6'])
    for (const h of [h1, h2]) t.equal((await h.d.docker(['network', 'rm', 'ov6'])).code, 0, `${h.name}: ov6 removed`)
  })

  await t.test('a container on one host resolves a container on another by name', async (t) => {
    let out = ''
    await until('db resolvable from h2', async () => {
      const r = await run(h2, '--rm', '--net', 'ov1', 'bb', 'nslookup', 'db')
      out = r.stdout + r.stderr
      return out.includes(dbIp)
    }, 15_000).catch(() => undefined)
    t.match(out, new RegExp(dbIp.replace(/\./g, '\\.')), `through Docker's resolver and ferry: ${out}`)
    const direct = await run(h3, '--rm', '--net', 'ov1', 'bb', 'nslookup', 'db', '10.40.0.1')
    t.match(direct.stdout, new RegExp(dbIp.replace(/\./g, '\\.')), 'asking ferry directly on h3')
    const ls = JSON.parse((await h3.agent.cli(['dns', 'ls', '--network', 'ov1', '--json'])).stdout) as Array<{ name: string, ip: string }>
    t.match(ls.find((r) => r.name === 'db'), { ip: dbIp }, 'ferry dns ls on h3 lists db of h1')
  })

  await t.test('a port published on one host is an SRV record on another: the container port, its name as target', async (t) => {
    t.equal((await run(h1, '-d', '--net', 'ov1', '--name', 'api', '-p', '8081:80', 'bb', 'sh', '-c', SERVE('api-on-h1'))).code, 0)
    const apiIp = await ipOf(h1, 'api')
    const srv = () => run(h2, '--rm', '--net', 'ov1', 'bb', 'nslookup', '-type=srv', '_80._tcp.api', '10.40.0.1')
    let out = ''
    await until('_80._tcp.api resolvable on h2', async () => {
      const r = await srv()
      out = r.stdout + r.stderr
      return /service = 0 0 80 api/.test(out)
    }, 15_000).catch(() => undefined)
    t.match(out, /_80\._tcp\.api\s+service = 0 0 80 api/, `a container on h2 asks ferry on h2: ${out}`)
    const ls = JSON.parse((await h2.agent.cli(['dns', 'ls', '--network', 'ov1', '--json'])).stdout) as Array<{ name: string, ports?: unknown }>
    t.same(ls.find((r) => r.name === 'api')?.ports, [{ proto: 'tcp', port: 80 }], 'ferry dns ls on h2 lists its SRV port')
    t.match((await fetch(h2, apiIp)).stdout, /api-on-h1/, 'and the port answers over the overlay')
    await h1.d.dockerOk(['rm', '-f', 'api'])
    await until('the SRV record gone on h2', async () => !/service =/.test((await srv()).stdout), 15_000)
    t.notMatch((await srv()).stdout, /service =/, 'gone with the container')
  })

  await t.test('concurrent docker run on every host gives unique addresses', async (t) => {
    const names = hosts.flatMap((h) => [1, 2, 3].map((k) => ({ h, name: `c${h.name}${k}` })))
    const results = await Promise.all(names.map(({ h, name }) => run(h, '-d', '--net', 'ov1', '--name', name, 'bb', 'sleep', '600')))
    results.forEach((r, i) => t.equal(r.code, 0, `${names[i]!.name}: ${r.stderr}`))
    const ips = await Promise.all(names.map(({ h, name }) => ipOf(h, name)))
    t.equal(new Set([...ips, dbIp]).size, ips.length + 1, `all distinct: ${ips.join(' ')}`)
    await until('h3 reaches a container of h1', async () => (await h3.d.docker(['exec', 'ch31', 'ping', '-c', '1', '-W', '1', ips[0]!])).code === 0)
    t.equal((await h3.d.docker(['exec', 'ch31', 'ping', '-c', '1', '-W', '1', ips[0]!])).code, 0, 'h3 reaches a container of h1')
  })

  await t.test('the CLI shows the cluster and the peers', async (t) => {
    const st = JSON.parse((await h1.agent.cli(['cluster', 'status', '--json'])).stdout) as { state: string, hosts: Array<{ hostId: string, vtep: string }> }
    t.equal(st.state, 'ready')
    t.same(st.hosts.map((h) => `${h.hostId}=${h.vtep}`).sort(), ['h1=192.0.2.11', 'h2=192.0.2.12', 'h3=192.0.2.13'])
    t.match((await h1.agent.cli(['cluster', 'status'])).stdout, /h2\s+192\.0\.2\.12/)
    const peers = JSON.parse((await h2.agent.cli(['peers', '--network', 'ov1', '--json'])).stdout) as Array<{ differences: number, rows: Array<{ ip: string, status: string, hostId?: string }> }>
    t.equal(peers[0]?.differences, 0, 'kernel matches Redis')
    t.match(peers[0]?.rows.find((r) => r.ip === dbIp), { status: 'ok', hostId: 'h1' })
    t.match((await h2.agent.cli(['peers'])).stdout, /kernel matches Redis/)
  })

  await t.test('kill -9 of an agent, and a restart', async (t) => {
    await h2.agent.kill('SIGKILL')
    t.equal((await h2.d.docker(['exec', 'ch21', 'ping', '-c', '1', '-W', '2', dbIp])).code, 0, 'traffic flows while the agent is down')
    await h2.agent.restart()
    t.equal((await h2.d.docker(['exec', 'ch21', 'ping', '-c', '1', '-W', '2', dbIp])).code, 0, 'and after the restart')
    t.equal((await run(h2, '-d', '--net', 'ov1', '--name', 'late2', 'bb', 'sleep', '600')).code, 0)
    const ip = await ipOf(h2, 'late2')
    await until('h1 reaches late2', async () => (await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', ip])).code === 0)
    t.equal((await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', ip])).code, 0, 'a new container on the restarted host is reachable')
  })

  await t.test('Redis restarts with no data: the cluster converges', async (t) => {
    await redis.restart()
    await until('h1 re-registered', () => redis.keys('ferry:*').length > 0)
    t.equal((await h2.d.docker(['exec', 'ch21', 'ping', '-c', '1', '-W', '2', dbIp])).code, 0, 'traffic kept flowing')
    await until('everyone back', async () => {
      const st = JSON.parse((await h1.agent.cli(['cluster', 'status', '--json'])).stdout) as { hosts?: unknown[] }
      return (st.hosts?.length ?? 0) === 3
    })
    t.equal((await run(h3, '-d', '--net', 'ov1', '--name', 'late3', 'bb', 'sleep', '600')).code, 0)
    const ip = await ipOf(h3, 'late3')
    const others = await Promise.all([ipOf(h1, 'ch11'), ipOf(h2, 'ch21'), ipOf(h3, 'ch31')])
    t.equal(new Set([ip, dbIp, ...others]).size, 5, 'no address handed out twice after the restart')
    await until('h1 reaches late3', async () => (await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', ip])).code === 0)
    t.equal((await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', ip])).code, 0, 'changes after the restart propagate')
  })

  await t.test('an overlay address the engine lost track of is released cluster-wide', async (t) => {
    const net = JSON.parse((await h1.agent.cli(['network', 'inspect', 'ov1'])).stdout) as { poolId: string }
    // What an agent killed before answering RequestAddress leaves: the engine asks again, the first stays held.
    const r = await unixHttp({ socketPath: h1.agent.pluginSocket, method: 'POST', path: '/IpamDriver.RequestAddress', body: JSON.stringify({ PoolID: net.poolId, Address: '', Options: null }) })
    const lost = (JSON.parse(r.body) as { Address: string }).Address.split('/')[0]!
    t.equal(redis.cli(['hget', 'ferry:overlay:ov1:addrs', lost]).trim(), 'h1', `${lost} is held by h1 in Redis`)
    await until('the address released', () => redis.cli(['hget', 'ferry:overlay:ov1:addrs', lost]).trim() === '', { timeoutMs: 15_000, everyMs: 200 })
    t.equal(redis.cli(['hget', 'ferry:overlay:ov1:addrs', lost]).trim(), '', 'released after the grace period')
    t.equal(redis.cli(['hget', 'ferry:overlay:ov1:addrs', dbIp]).trim(), 'h1', "db's address, held by a live container, stays h1's")
  })

  await t.test('a host whose agent stops disappears from the others after the TTL', async (t) => {
    const late3 = await ipOf(h3, 'late3')
    await h3.agent.kill('SIGKILL')
    await until('h3 removed', async () => {
      const st = JSON.parse((await h1.agent.cli(['cluster', 'status', '--json'])).stdout) as { hosts?: Array<{ hostId: string }> }
      return st.hosts !== undefined && !st.hosts.some((h) => h.hostId === 'h3')
    }, 20_000)
    await until('h3 endpoints gone from h1\'s kernel', () => !nsExec(h1.ns, ['ip', 'neigh', 'show']).includes(late3), E2E)
    t.notMatch(nsExec(h1.ns, ['ip', 'neigh', 'show']), late3, 'h3 and its endpoints are gone from h1')
    await h3.agent.restart()
    await until('h3 back', async () => {
      const st = JSON.parse((await h1.agent.cli(['cluster', 'status', '--json'])).stdout) as { hosts?: Array<{ hostId: string }> }
      return st.hosts?.some((h) => h.hostId === 'h3') ?? false
    })
    await until('h1 reaches late3 again', async () => (await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', late3])).code === 0)
    t.equal((await h1.d.docker(['exec', 'db', 'ping', '-c', '1', '-W', '1', late3])).code, 0, 'h3 rejoins with its endpoints')
  })

  await t.test('removing the network on every host leaves nothing behind', async (t) => {
    for (const h of hosts) {
      const ids = (await h.d.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean)
      if (ids.length > 0) await h.d.dockerOk(['rm', '-f', ...ids])
      const r = await h.d.docker(['network', 'rm', 'ov1'])
      t.equal(r.code, 0, `${h.name}: ${r.stderr}`)
    }
    for (const h of hosts) {
      const links = ipJson<Array<{ ifname: string }>>(h.ns, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fy'))
      t.same(links, [], `${h.name}: no ferry device`)
      t.notMatch(nsExec(h.ns, ['ip', 'neigh', 'show']), /10\.40\./, `${h.name}: no neighbour entry`)
      t.notMatch(nsExec(h.ns, ['bridge', 'fdb', 'show']), /dst 192\.0\.2\./, `${h.name}: no FDB entry`)
    }
    // The cluster's own keys stay while hosts are members: membership, the revision and its change log
    // (src/cluster/lua.ts: the log goes with the revision when no host and no overlay is left).
    const keys = redis.keys('ferry:*').filter((k) => !/^ferry:(host|hosts|rev|events|log$)/.test(k))
    t.same(keys, [], `no overlay key left in Redis (${keys.join(' ')})`)
  })
})
