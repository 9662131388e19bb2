/**
 * Dual-stack bridge networks end to end (issue #15, IPAM and bridge): a real Docker engine
 * (Debian's 20.10) creates `--ipv6` networks with ferry as network and IPAM driver, with a
 * given IPv6 subnet and with one ferry picks; containers get their IPv6 addresses, reach each
 * other and the gateway over IPv6 as soon as `docker run` returns, `--ip6` works, the agent's
 * reconcile restores the bridge's IPv6 gateway, a restart keeps it all, and removal leaves no
 * IPv6 address or pool behind. (The firewall over IPv6, published ports, NAT and isolation, is proven in
 * test/e2e/ports.test.ts and bridge.test.ts and the kernel tests.) What is checked
 * over IPv6 stays on the bridge (container to container, container to gateway).
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { netns, nsExec, ipJson } from '../harness/netns.js'
import { startDockerd, unixHttp } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { startAgent } from '../harness/agent.js'

interface Addr { ifname: string, addr_info: Array<{ family: string, local: string, prefixlen: number, scope: string }> }

await t.test('dual-stack bridge networks with a real engine', async (t) => {
  const host = netns(t, 'fy6h')
  const d = await startDockerd(t, { ns: host })
  await ensureBusyboxImage(d)
  const plugin = `fy6${process.pid}`
  const agent = await startAgent(t, { ns: host, pluginName: plugin, dockerd: d, args: ['--reconcile-interval', '1', '--orphan-grace', '2', '--no-dns-server'] })
  t.teardown(() => { if (t.passing()) return; t.comment(`agent log:\n${agent.logs().slice(-6000)}`) })
  const net = (name: string, ...args: string[]) => d.docker(['network', 'create', '-d', plugin, '--ipam-driver', plugin, ...args, name])
  const run = (...args: string[]) => d.docker(['run', '--stop-timeout', '1', ...args])
  const v6Of = async (c: string, n: string) => (await d.dockerOk(['inspect', '-f', `{{.NetworkSettings.Networks.${n}.GlobalIPv6Address}}`, c])).trim()
  const bridgeOf = async (n: string) => (JSON.parse((await agent.cli(['network', 'inspect', n])).stdout) as { bridge: string }).bridge
  const bridgeV6 = (bridge: string) => (ipJson<Addr[]>(host, ['-6', 'addr', 'show', 'dev', bridge])[0]?.addr_info ?? [])
    .filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`)
  const sysctl = (key: string) => nsExec(host, ['cat', `/proc/sys/net/ipv6/conf/${key}`]).trim()
  /** The container's global IPv6 addresses as the kernel shows them inside it. */
  const containerV6 = async (c: string) => [...(await d.dockerOk(['exec', c, 'ip', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']))
    .matchAll(/inet6 ([0-9a-f:]+)\/(\d+)/g)].map((m) => `${m[1]}/${m[2]}`)
  const ping6 = (from: string, to: string) => d.docker(['exec', from, 'ping', '-6', '-c', '1', '-W', '2', to])
  const http6 = (from: string, to: string) => d.docker(['exec', from, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${to} 80`])

  await t.test('a dual-stack network with a given IPv6 subnet and range', async (t) => {
    const r = await net('dual', '--ipv6', '--subnet', '10.40.0.0/24', '--subnet', 'fd00:40::/64', '--ip-range', 'fd00:40::100/120', '-o', 'com.docker.network.driver.mtu=1400')
    t.equal(r.code, 0, r.stderr)
    // The engine shows a gateway in IPAM.Config only when the user gave one (--gateway).
    const cfg = (await d.dockerOk(['network', 'inspect', '-f', '{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}},{{.IPRange}} {{end}}', 'dual'])).trim()
    t.equal(cfg, 'true 10.40.0.0/24, fd00:40::/64,fd00:40::100/120', 'docker network inspect shows the IPv6 config')
    const ferry = JSON.parse((await agent.cli(['network', 'inspect', 'dual'])).stdout) as Record<string, unknown>
    t.match(ferry, { subnet6: 'fd00:40::/64', gateway6: 'fd00:40::100', gatewayMode6: 'nat' })
    const bridge = await bridgeOf('dual')
    t.same(bridgeV6(bridge), ['fd00:40::100/64'], 'the IPv6 gateway is on the bridge')
    t.same([sysctl(`${bridge}/accept_ra`), sysctl(`${bridge}/autoconf`), sysctl(`${bridge}/disable_ipv6`)], ['0', '0', '0'], 'no RA, no SLAAC on the bridge')
    t.equal(sysctl('all/forwarding'), '1', 'IPv6 forwarding on in the agent\'s namespace')
  })

  await t.test('containers get their IPv6 addresses and reach each other and the gateway as soon as docker run returns', async (t) => {
    const web = await run('-d', '--net', 'dual', '--name', 'web6', 'bb', 'sh', '-c', 'mkdir -p /www && echo hello-v6 > /www/index.html && exec httpd -f -p 80 -h /www')
    t.equal(web.code, 0, web.stderr)
    const cli = await run('-d', '--net', 'dual', '--name', 'cli6', '--ip6', 'fd00:40::beef', 'bb', 'sleep', '600')
    t.equal(cli.code, 0, cli.stderr)
    // First thing after `docker run` returns: no DAD wait on either side.
    const first = await ping6('cli6', 'fd00:40::100')
    t.equal(first.code, 0, `gateway over IPv6 at once: ${first.stdout}${first.stderr}`)
    const webIp = await v6Of('web6', 'dual')
    t.equal(webIp, 'fd00:40::101', 'the first address of the range after the gateway')
    t.equal(await v6Of('cli6', 'dual'), 'fd00:40::beef', '--ip6')
    t.same(await containerV6('web6'), ['fd00:40::101/64'], 'the kernel inside shows what the engine reports')
    t.same(await containerV6('cli6'), ['fd00:40::beef/64'])
    const p = await ping6('cli6', webIp)
    t.equal(p.code, 0, `container to container over IPv6: ${p.stdout}${p.stderr}`)
    let get = await http6('cli6', webIp)
    for (let i = 0; i < 12 && !/hello-v6/.test(get.stdout); i++) { await sleep(250); get = await http6('cli6', webIp) }
    t.match(get.stdout, /hello-v6/, 'TCP over IPv6 to the other container')
    const routes = await d.dockerOk(['exec', 'cli6', 'ip', '-6', 'route'])
    t.match(routes, /default via fd00:40::100 dev eth0/, 'the default IPv6 route is the gateway (Join\'s GatewayIPv6)')
    t.match(await d.dockerOk(['exec', 'cli6', 'cat', '/sys/class/net/eth0/mtu']), /1400/, 'MTU as for IPv4')
    const eps = JSON.parse((await agent.cli(['endpoint', 'ls', '--network', 'dual', '--json'])).stdout) as Array<{ container: string, address6?: string, hostVeth?: string }>
    t.match(eps.find((e) => e.container === 'cli6'), { address6: 'fd00:40::beef' })
    const veth = eps.find((e) => e.container === 'cli6')?.hostVeth
    if (veth !== undefined) t.equal(sysctl(`${veth}/disable_ipv6`), '1', 'the host end of the veth takes no IPv6 address')
  })

  await t.test('an IPv6 address outside the subnet and a taken one are refused', async (t) => {
    const outside = await run('--rm', '--net', 'dual', '--ip6', 'fd00:41::5', 'bb', 'true')
    t.not(outside.code, 0)
    t.match(outside.stderr, /outside pool fd00:40::\/64|fd00:41::5/, outside.stderr)
    const taken = await run('--rm', '--net', 'dual', '--ip6', 'fd00:40::beef', 'bb', 'true')
    t.not(taken.code, 0)
    t.match(taken.stderr, /already in use/, taken.stderr)
  })

  await t.test('an IPv6 address the engine asked for and lost track of is released; the containers keep theirs', async (t) => {
    const plugin = (method: string, body: unknown) => unixHttp({ socketPath: agent.pluginSocket, method: 'POST', path: `/${method}`, body: JSON.stringify(body) })
    const inspect = async () => JSON.parse((await agent.cli(['network', 'inspect', 'dual'])).stdout) as { poolId6: string, pool6?: unknown }
    const poolId6 = (await inspect()).poolId6
    const res = await plugin('IpamDriver.RequestAddress', { PoolID: poolId6, Address: '', Options: null })
    t.equal(res.status, 200, res.body)
    const lost = (JSON.parse(res.body) as { Address: string }).Address.split('/')[0]!
    const again = () => plugin('IpamDriver.RequestAddress', { PoolID: poolId6, Address: lost, Options: null })
    let r = await again()
    t.equal(r.status, 409, `${lost} is held: ${r.body}`)
    for (let i = 0; i < 40 && r.status !== 200; i++) { await sleep(250); r = await again() }
    t.equal(r.status, 200, `released after the grace period: ${r.body}`)
    await plugin('IpamDriver.ReleaseAddress', { PoolID: poolId6, Address: lost })
    t.equal((await ping6('cli6', 'fd00:40::101')).code, 0, 'the containers\' addresses stay')
  })

  await t.test('an IPv6 network without a subnet gets a /64 of the host\'s unique-local /48', async (t) => {
    const r = await net('dualauto', '--ipv6')
    t.equal(r.code, 0, r.stderr)
    const subnets = (await d.dockerOk(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', 'dualauto'])).trim().split(' ')
    const v6 = subnets.find((s) => s.includes(':'))
    t.match(v6, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/, `ferry picked ${v6}`)
    const a = await run('-d', '--net', 'dualauto', '--name', 'auto1', 'bb', 'sleep', '600')
    t.equal(a.code, 0, a.stderr)
    const b = await run('-d', '--net', 'dualauto', '--name', 'auto2', 'bb', 'sleep', '600')
    t.equal(b.code, 0, b.stderr)
    const ip = await v6Of('auto2', 'dualauto')
    t.equal(`${ip}/64`, (await containerV6('auto2'))[0])
    const p = await ping6('auto1', ip)
    t.equal(p.code, 0, `${p.stdout}${p.stderr}`)
    const gw = (JSON.parse((await agent.cli(['network', 'inspect', 'dualauto'])).stdout) as { gateway6: string }).gateway6
    t.equal(`${gw}/64`, bridgeV6(await bridgeOf('dualauto'))[0], 'the bridge holds it')
    t.equal((await ping6('auto1', gw)).code, 0, 'the gateway')
    const other = await net('dualauto2', '--ipv6')
    t.equal(other.code, 0, other.stderr)
    const v6b = (await d.dockerOk(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', 'dualauto2'])).trim().split(' ').find((s) => s.includes(':'))
    t.not(v6b, v6, 'a second auto pool does not overlap the first')
    t.equal((await d.docker(['network', 'rm', 'dualauto2'])).code, 0)
  })

  await t.test('reconcile restores a missing IPv6 gateway and the bridge\'s IPv6 settings; an agent restart keeps it working', async (t) => {
    const bridge = await bridgeOf('dual')
    nsExec(host, ['ip', '-6', 'addr', 'del', 'fd00:40::100/64', 'dev', bridge])
    nsExec(host, ['sh', '-c', `echo 1 > /proc/sys/net/ipv6/conf/${bridge}/accept_ra`])
    for (let i = 0; i < 40 && bridgeV6(bridge).length === 0; i++) await sleep(250)
    t.same(bridgeV6(bridge), ['fd00:40::100/64'], 'the gateway is back')
    for (let i = 0; i < 40 && sysctl(`${bridge}/accept_ra`) !== '0'; i++) await sleep(250)
    t.equal(sysctl(`${bridge}/accept_ra`), '0', 'accept_ra set back')
    await agent.restart()
    t.equal((await ping6('cli6', 'fd00:40::101')).code, 0, 'after a restart')
    const c = await run('-d', '--net', 'dual', '--name', 'late6', 'bb', 'sleep', '600')
    t.equal(c.code, 0, c.stderr)
    t.equal((await ping6('late6', 'fd00:40::beef')).code, 0, 'a container started after the restart')
  })

  await t.test('kill -9 of the engine: the IPv6 pools and addresses are replayed, nothing is handed out twice', async (t) => {
    await d.kill()
    await d.restart()
    t.equal((await d.docker(['start', 'web6', 'cli6'])).code, 0, 'containers start again on the dual-stack network')
    t.equal(await v6Of('cli6', 'dual'), 'fd00:40::beef', '--ip6 kept')
    t.same(await containerV6('cli6'), ['fd00:40::beef/64'])
    const web = await v6Of('web6', 'dual')
    const p = await ping6('cli6', web)
    t.equal(p.code, 0, `${p.stdout}${p.stderr}`)
    const dup = await net('dup6', '--ipv6', '--subnet', '10.41.0.0/24', '--subnet', 'fd00:40::/64')
    t.not(dup.code, 0, 'a held IPv6 pool is not handed out twice after the replay')
    t.match(dup.stderr, /fd00:40::\/64 overlaps pool fd00:40::\/64/, dup.stderr)
  })

  await t.test('removal leaves no IPv6 address or pool behind', async (t) => {
    await d.dockerOk(['rm', '-f', 'web6', 'cli6', 'late6', 'auto1', 'auto2'])
    const bridge = await bridgeOf('dual')
    t.equal((await d.docker(['network', 'rm', 'dual', 'dualauto'])).code, 0)
    t.same(ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fy')), [], 'no ferry link left')
    t.notMatch(nsExec(host, ['ip', '-6', 'addr']), /fd00:40::/, 'no IPv6 address left')
    t.notOk(ipJson<unknown[]>(host, ['link']).some((l) => (l as { ifname: string }).ifname === bridge))
    const again = await net('dual', '--ipv6', '--subnet', '10.40.0.0/24', '--subnet', 'fd00:40::/64')
    t.equal(again.code, 0, `the pools were released: ${again.stderr}`)
    t.equal((await d.docker(['network', 'rm', 'dual'])).code, 0)
    const st = JSON.parse((await agent.cli(['status', '--json'])).stdout) as { networks: number }
    t.equal(st.networks, 0)
  })
})
