/**
 * Bridge networks end to end: a real Docker engine uses ferry as its network and
 * IPAM driver. One "host" namespace runs dockerd and the ferry agent; an
 * "outside" namespace stands for the world beyond the host (it has no route to
 * the container subnets, so only masqueraded traffic gets answers). The uplink
 * carries both families; the way out, internal networks and isolation are
 * checked in each (IPv6 on dual-stack networks).
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawn } from 'node:child_process'
import { netns, ipJson } from '../harness/netns.js'
import { startDockerd, unixHttp } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { startAgent } from '../harness/agent.js'
import { BACKENDS, FAMILIES, ferryTraces } from '../harness/firewall.js'
import { FAMILY, UPLINK, containerAddr, dualUplink } from '../harness/uplink.js'

const OUTSIDE_IP = UPLINK[4].outside

for (const backend of BACKENDS) await t.test(`bridge networks with a real engine (--firewall-backend ${backend})`, async (t) => {
  const host = netns(t, 'fyeh')
  const outside = netns(t, 'fyeo')
  dualUplink(host, outside)

  const d = await startDockerd(t, { ns: host })
  await ensureBusyboxImage(d)
  const plugin = `fyb${process.pid}${backend[0]}`
  // The upstream resolver for names ferry does not know lives "outside".
  const responder = spawn('ip', ['netns', 'exec', outside, 'env', '-u', 'NODE_OPTIONS', process.execPath,
    new URL('../fixtures/dns-responder.mjs', import.meta.url).pathname, OUTSIDE_IP, '53'], { stdio: 'ignore' })
  t.teardown(() => { responder.kill('SIGKILL') })
  const agent = await startAgent(t, { ns: host, pluginName: plugin, dockerd: d, args: ['--dns', OUTSIDE_IP, '--orphan-grace', '2', '--reconcile-interval', '1', '--firewall-backend', backend] })
  const net = (name: string, ...args: string[]) => d.docker(['network', 'create', '-d', plugin, '--ipam-driver', plugin, ...args, name])
  const run = (...args: string[]) => d.docker(['run', '--stop-timeout', '1', ...args])
  const fyLinks = () => ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fy'))
  const cli = async (...args: string[]) => {
    const r = await agent.cli(args)
    return r
  }
  const httpGet = (target: string) => ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} 80`]

  t.teardown(() => { if (t.passing()) return; t.comment(`agent log:\n${agent.logs().slice(-6000)}`) })

  await t.test('networks with a user subnet and with an automatic pool', async (t) => {
    const front = await net('front', '--subnet', '10.20.0.0/24')
    t.equal(front.code, 0, front.stderr)
    const back = await net('back')
    t.equal(back.code, 0, back.stderr)
    const subnet = (await d.dockerOk(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', 'back'])).trim()
    t.match(subnet, /^\d+\.\d+\.\d+\.\d+\/\d+$/, `ferry picked ${subnet}`)
    t.notMatch(subnet, /^(10\.20\.|198\.1[89]\.|203\.0\.113\.)/, 'not overlapping a ferry pool or a host route')
  })

  await t.test('containers reach each other by name and address', async (t) => {
    const web = await run('-d', '--net', 'front', '--name', 'web', 'bb', 'sh', '-c',
      'mkdir -p /www && echo hello-ferry > /www/index.html && exec httpd -f -p 80 -h /www')
    t.equal(web.code, 0, web.stderr)
    t.equal((await run('-d', '--net', 'front', '--name', 'cli', 'bb', 'sleep', '600')).code, 0)
    const ip = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web'])).trim()
    t.equal(ip, '10.20.0.2')
    // httpd may need a moment after `docker run -d` returns.
    for (let i = 0; i < 12 && !/hello-ferry/.test((await d.docker(['exec', 'cli', ...httpGet(ip)])).stdout); i++) await sleep(250)
    const get = await run('--rm', '--net', 'front', 'bb', ...httpGet('web'))
    t.match(get.stdout, /hello-ferry/, `wget by name: ${get.stderr}`)
    t.match((await d.docker(['exec', 'cli', ...httpGet(ip)])).stdout, /hello-ferry/, 'by address')
    const ping = await d.docker(['exec', 'cli', 'ping', '-c', '1', '-W', '2', 'web'])
    t.equal(ping.code, 0, `ping by name: ${ping.stdout}${ping.stderr}`)
    const mac = (await d.dockerOk(['exec', 'web', 'cat', '/sys/class/net/eth0/address'])).trim()
    t.equal(mac, '02:42:0a:14:00:02', 'deterministic MAC')
    const bridge = (JSON.parse((await cli('network', 'inspect', 'front')).stdout) as { bridge: string }).bridge
    const br = ipJson<Array<{ address: string }>>(host, ['link', 'show', bridge])[0]
    t.equal(br?.address, '02:42:0a:14:00:01', 'the bridge has a fixed MAC (it does not follow its ports)')
  })

  // The way out, internal networks and isolation in each family, on networks of their own
  // (IPv6: dual-stack), removed afterwards: 10.n.0.0/24 (and fd00:n::/64) from n = 50 (IPv4) or 60 (IPv6).
  for (const fam of FAMILIES) {
    const F = FAMILY[fam]
    const base = fam === 4 ? 50 : 60
    const addrOf = (ctr: string, network: string) => containerAddr(d, fam, ctr, network)
    const ping = (args: string[], to: string, wait = '1') => d.docker([...args, ...F.ping, '-c', '1', '-W', wait, to])
    const [a, b, nomasq, inner] = ['a', 'b', 'nomasq', 'inner'].map((n) => `${n}${fam}`) as [string, string, string, string]

    await t.test(`outbound traffic is masqueraded (IPv${fam})`, async (t) => {
      t.equal((await net(a, ...F.netArgs(base))).code, 0)
      const srv = await run('-d', '--net', a, '--name', `srv${fam}`, 'bb', 'sh', '-c', `mkdir -p /www && echo hello-${a} > /www/index.html && exec httpd -f -p 80 -h /www`)
      t.equal(srv.code, 0, srv.stderr)
      const out = await ping(['exec', `srv${fam}`], F.outside, '2')
      t.equal(out.code, 0, `the outside answers the host's address: ${out.stdout}${out.stderr}`)
      t.equal((await net(nomasq, ...F.netArgs(base + 2), '-o', 'com.docker.network.bridge.enable_ip_masquerade=false')).code, 0)
      const no = await ping(['run', '--rm', '--net', nomasq, 'bb'], F.outside)
      t.not(no.code, 0, 'without masquerade the outside cannot answer')
    })

    await t.test(`an internal network has no way out (IPv${fam})`, async (t) => {
      t.equal((await net(inner, '--internal', ...F.netArgs(base + 3))).code, 0)
      const in1 = await run('-d', '--net', inner, '--name', `in1${fam}`, 'bb', 'sleep', '600')
      t.equal(in1.code, 0, in1.stderr)
      const routes = await d.dockerOk(['exec', `in1${fam}`, ...F.ip, 'route'])
      t.notMatch(routes, /default/, `no default route: ${routes}`)
      t.not((await ping(['exec', `in1${fam}`], F.outside)).code, 0, 'outside unreachable')
      const peer = await ping(['run', '--rm', '--net', inner, 'bb'], await addrOf(`in1${fam}`, inner), '2')
      t.equal(peer.code, 0, `containers of the internal network still talk: ${peer.stdout}${peer.stderr}`)
    })

    await t.test(`networks are isolated from each other (IPv${fam})`, async (t) => {
      t.equal((await net(b, ...F.netArgs(base + 1))).code, 0)
      const target = await addrOf(`srv${fam}`, a)
      t.match((await run('--rm', '--net', a, 'bb', ...httpGet(target))).stdout, new RegExp(`hello-${a}`), 'a container of the same network reaches it')
      t.not((await ping(['run', '--rm', '--net', b, 'bb'], target)).code, 0, `${b} cannot ping ${a}`)
      t.notMatch((await run('--rm', '--net', b, 'bb', ...httpGet(target))).stdout, /hello/, `${b} cannot connect to ${a}`)
      await d.dockerOk(['rm', '-f', `srv${fam}`, `in1${fam}`])
      for (const n of [a, b, nomasq, inner]) t.equal((await d.docker(['network', 'rm', n])).code, 0, `network rm ${n}`)
    })
  }

  await t.test('the CLI shows networks and containers by name', async (t) => {
    const ls = await cli('network', 'ls')
    t.equal(ls.code, 0, ls.stderr)
    t.match(ls.stdout, /NETWORK ID\s+NAME\s+BRIDGE/)
    t.match(ls.stdout, /front\s+fy-\w+\s+10\.20\.0\.0\/24\s+10\.20\.0\.1\s+2/)
    t.match(ls.stdout, /back/)
    const inspect = JSON.parse((await cli('network', 'inspect', 'front')).stdout) as { subnet: string, endpointList: Array<{ container: string }> }
    t.equal(inspect.subnet, '10.20.0.0/24')
    t.same(inspect.endpointList.map((e) => e.container).sort(), ['cli', 'web'])
    const eps = await cli('endpoint', 'ls', '--network', 'front')
    t.match(eps.stdout, /web\s+front\s+10\.20\.0\.2\/24\s+02:42:0a:14:00:02/)
    const st = JSON.parse((await cli('status', '--json')).stdout) as { networks: number, endpoints: number, status: string }
    t.equal(st.status, 'running')
    t.equal(st.networks, 2, 'front, back')
    t.match((await cli('status')).stdout, /uptime:/)
    t.match((await cli('status')).stdout, new RegExp(`^firewall: +${backend} \\(`, 'm'), 'ferry status names the backend')
    const missing = await cli('network', 'inspect', 'nosuchnet')
    t.equal(missing.code, 3)
    t.match(missing.stderr.trim(), /^ferry: no ferry network is named "nosuchnet" or has that id; known: (front|back) \([0-9a-f]{12}\), (front|back) \([0-9a-f]{12}\) \(ferry network ls lists them\)$/)
  })

  await t.test('ferry serves DNS on the gateway: names by network, forwarding, PTR', async (t) => {
    const dnsLs = async () => JSON.parse((await cli('dns', 'ls', '--network', 'front', '--json')).stdout) as Array<{ name: string, ip: string }>
    for (let i = 0; i < 40 && !(await dnsLs()).some((r) => r.name === 'cli'); i++) await sleep(250)
    const recs = await dnsLs()
    t.match(recs.find((r) => r.name === 'web'), { ip: '10.20.0.2' }, 'web learned from the engine')
    const look = await d.docker(['exec', 'cli', 'nslookup', 'web', '10.20.0.1'])
    t.match(look.stdout, /10\.20\.0\.2/, `a container asks ferry: ${look.stdout}${look.stderr}`)
    const ptr = await d.docker(['exec', 'cli', 'nslookup', '10.20.0.2', '10.20.0.1'])
    t.match(ptr.stdout, /web/, `PTR: ${ptr.stdout}`)
    const up = await d.docker(['exec', 'cli', 'nslookup', 'www.example.test', '10.20.0.1'])
    t.match(up.stdout, /192\.0\.2\.99/, `other names go upstream: ${up.stdout}${up.stderr}`)
    const other = await run('--rm', '--net', 'back', 'bb', 'nslookup', 'web', '10.20.0.1')
    t.notMatch(other.stdout, /10\.20\.0\.2/, 'a container of another network does not see the name')
    const q = await cli('dns', 'query', 'web', '--network', 'front')
    t.match(q.stdout, /web\s+A\s+10\.20\.0\.2/)
    t.equal((await run('-d', '--net', 'front', '--name', 'brief', 'bb', 'sleep', '600')).code, 0)
    for (let i = 0; i < 40 && !(await dnsLs()).some((r) => r.name === 'brief'); i++) await sleep(250)
    t.ok((await dnsLs()).some((r) => r.name === 'brief'), 'a new container gets a record')
    await d.dockerOk(['rm', '-f', 'brief'])
    for (let i = 0; i < 40 && (await dnsLs()).some((r) => r.name === 'brief'); i++) await sleep(250)
    t.notOk((await dnsLs()).some((r) => r.name === 'brief'), 'the record goes with its container')
  })

  await t.test('the engine shows ferry\'s errors', async (t) => {
    const overlap = await net('overlap', '--subnet', '10.20.0.0/16')
    t.not(overlap.code, 0)
    t.match(overlap.stderr, /10\.20\.0\.0\/16 overlaps/, overlap.stderr)
    const bad = await net('badmtu', '--subnet', '10.24.0.0/24', '-o', 'com.docker.network.driver.mtu=big')
    t.not(bad.code, 0)
    t.match(bad.stderr, /com\.docker\.network\.driver\.mtu must be a whole number/, bad.stderr)
    // Refused with ferry's sentence, with nothing left: the subnet can be used right after.
    const v6 = await net('v6', '--ipv6', '--subnet', '10.26.0.0/24', '--subnet', 'fe80::/64')
    t.not(v6.code, 0)
    t.match(v6.stderr, /pool fe80::\/64 overlaps fe80::\/10, which is link-local and cannot be a container network/, v6.stderr)
    const routed = await net('routed', '--subnet', '10.26.0.0/24', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=routed')
    t.not(routed.code, 0)
    t.match(routed.stderr, /gateway_mode_ipv4=routed is not supported: ferry has no routed mode/, routed.stderr)
    t.equal((await net('natmode', '--subnet', '10.26.0.0/24', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=nat')).code, 0)
    t.equal((await d.docker(['network', 'rm', 'natmode'])).code, 0)
    t.equal((await net('tiny', '--subnet', '10.25.0.0/30')).code, 0)
    t.equal((await run('-d', '--net', 'tiny', '--name', 'tiny1', 'bb', 'sleep', '600')).code, 0)
    const full = await run('-d', '--net', 'tiny', '--name', 'tiny2', 'bb', 'sleep', '600')
    t.not(full.code, 0)
    t.match(full.stderr, /no free address/, full.stderr)
    await d.docker(['rm', '-f', 'tiny1', 'tiny2'])
    t.equal((await d.docker(['network', 'rm', 'tiny'])).code, 0)
    t.notOk(fyLinks().some((n) => n.startsWith('fyh') && !n), 'nothing half-created')
  })

  await t.test('an endpoint the engine made but never joined (it died in between) is collected', async (t) => {
    const plugin = (method: string, body: unknown) => unixHttp({ socketPath: agent.pluginSocket, method: 'POST', path: `/${method}`, body: JSON.stringify(body) })
    const net = JSON.parse((await cli('network', 'inspect', 'front')).stdout) as { id: string, poolId: string }
    const addr = JSON.parse((await plugin('IpamDriver.RequestAddress', { PoolID: net.poolId, Address: '', Options: null })).body) as { Address: string }
    const eid = 'e0'.repeat(32)
    const ce = await plugin('NetworkDriver.CreateEndpoint', { NetworkID: net.id, EndpointID: eid, Interface: { Address: addr.Address, AddressIPv6: '', MacAddress: '' }, Options: {} })
    t.equal(ce.status, 200, ce.body)
    t.ok(fyLinks().includes(`fyh${eid.slice(0, 12)}`), 'its veth exists')
    for (let i = 0; i < 40 && fyLinks().includes(`fyh${eid.slice(0, 12)}`); i++) await sleep(250)
    t.notOk(fyLinks().includes(`fyh${eid.slice(0, 12)}`), 'collected after the grace period: veth gone')
    const eps = JSON.parse((await cli('endpoint', 'ls', '--json')).stdout) as Array<{ id: string }>
    t.notOk(eps.some((e) => e.id === eid), 'and its record')
    const again = await plugin('IpamDriver.RequestAddress', { PoolID: net.poolId, Address: addr.Address.split('/')[0], Options: null })
    t.equal(again.status, 200, `its address was released: ${again.body}`)
    await plugin('IpamDriver.ReleaseAddress', { PoolID: net.poolId, Address: addr.Address.split('/')[0] })
    const live = JSON.parse((await cli('endpoint', 'ls', '--network', 'front', '--json')).stdout) as Array<{ container: string }>
    t.same(live.map((e) => e.container).sort(), ['cli', 'web'], "the engine's own endpoints are untouched")
  })

  await t.test('an address the engine asked for and lost track of is released; its containers keep theirs', async (t) => {
    const plugin = (method: string, body: unknown) => unixHttp({ socketPath: agent.pluginSocket, method: 'POST', path: `/${method}`, body: JSON.stringify(body) })
    const net = JSON.parse((await cli('network', 'inspect', 'front')).stdout) as { id: string, poolId: string }
    const allocated = async (): Promise<string[]> => {
      const pools = JSON.parse((await cli('network', 'inspect', 'front')).stdout) as { pool?: { allocated: Record<string, unknown> } }
      return Object.keys(pools.pool?.allocated ?? {})
    }
    // What an agent killed before answering RequestAddress leaves: the engine asks again, the first stays allocated.
    const lost = (JSON.parse((await plugin('IpamDriver.RequestAddress', { PoolID: net.poolId, Address: '', Options: null })).body) as { Address: string }).Address.split('/')[0]!
    const before = await allocated()
    t.ok(before.includes(lost), `${lost} is allocated`)
    for (let i = 0; i < 40 && (await allocated()).includes(lost); i++) await sleep(250)
    const after = await allocated()
    t.notOk(after.includes(lost), 'released after the grace period')
    t.same(after.sort(), before.filter((a) => a !== lost).sort(), "the gateway's and the live containers' addresses stay")
  })

  await t.test('kill -9 of the agent: traffic keeps flowing, state survives', async (t) => {
    await agent.kill('SIGKILL')
    t.match((await d.docker(['exec', 'cli', ...httpGet('web')])).stdout, /hello-ferry/, 'while the agent is down')
    await agent.restart()
    t.match((await d.docker(['exec', 'cli', ...httpGet('web')])).stdout, /hello-ferry/, 'after the restart')
    const fresh = await run('--rm', '--net', 'front', 'bb', ...httpGet('web'))
    t.match(fresh.stdout, /hello-ferry/, `a new container works: ${fresh.stderr}`)
    const webEp = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.front.EndpointID}}', 'web'])).trim()
    t.ok(fyLinks().includes(`fyh${webEp.slice(0, 12)}`))
    t.equal((await d.docker(['rm', '-f', 'web'])).code, 0)
    t.notOk(fyLinks().includes(`fyh${webEp.slice(0, 12)}`), 'removing an old container leaves no veth')
    const again = await run('-d', '--net', 'front', '--name', 'web', 'bb', 'sh', '-c',
      'mkdir -p /www && echo hello-again > /www/index.html && exec httpd -f -p 80 -h /www')
    t.equal(again.code, 0, again.stderr)
    for (let i = 0; i < 12 && !/hello-again/.test((await d.docker(['exec', 'cli', ...httpGet('web')])).stdout); i++) await sleep(250)
  })

  await t.test('kill -9 of the engine: replay keeps ferry consistent', async (t) => {
    await d.kill()
    await d.restart()
    // The restarted engine replays pools and addresses, then removes the stale endpoints.
    const st = JSON.parse((await cli('status', '--json')).stdout) as { endpoints: number }
    t.equal(st.endpoints, 0, 'stale endpoints removed by the engine')
    t.equal((await d.docker(['start', 'web'])).code, 0, 'a container starts again on its network')
    const get = await run('--rm', '--net', 'front', 'bb', ...httpGet('web'))
    t.match(get.stdout, /hello-again/, get.stderr)
    const dup = await net('dup', '--subnet', '10.20.0.0/24')
    t.not(dup.code, 0, 'a held pool is not handed out twice after the replay')
  })

  await t.test('removing everything leaves nothing of ferry', async (t) => {
    const ids = (await d.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean)
    if (ids.length > 0) await d.dockerOk(['rm', '-f', ...ids])
    for (const n of ['front', 'back']) t.equal((await d.docker(['network', 'rm', n])).code, 0, `network rm ${n}`)
    const st = JSON.parse((await cli('status', '--json')).stdout) as { networks: number, endpoints: number, pools: number }
    t.same({ networks: st.networks, endpoints: st.endpoints, pools: st.pools }, { networks: 0, endpoints: 0, pools: 0 })
    t.same(fyLinks(), [], 'no ferry link left')
    t.equal(ferryTraces(host), '', 'no ferry rule left in iptables-save, ip6tables-save nor nft list ruleset')
  })
})
