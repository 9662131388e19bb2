/**
 * What a user sees of ferry networks with the real engine (Debian's 20.10), issue #19 item 5:
 * `docker network inspect` of a dual-stack ferry network shows its subnets and gateways (both
 * families) and each container's EndpointID, MacAddress, IPv4Address and IPv6Address as the
 * engine's own bridge driver does (the MAC is the one ferry answers in CreateEndpoint and puts
 * on the container's interface); and `ferry network inspect`, `endpoint ls --network`, `port ls`
 * take the engine's names, full ids and id prefixes, with one sentence for what names nothing.
 * docs/compatibility.md ("docker network inspect") says which fields the engine fills itself.
 */
import t from 'tap'
import { netns } from '../harness/netns.js'
import { startDockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { startAgent } from '../harness/agent.js'

interface Inspect {
  Id: string
  Driver: string
  EnableIPv6: boolean
  Options: Record<string, string>
  IPAM: { Config: Array<{ Subnet: string, Gateway?: string }> }
  Containers: Record<string, { Name: string, EndpointID: string, MacAddress: string, IPv4Address: string, IPv6Address: string }>
}

await t.test('docker network inspect and ferry\'s names with a real engine', async (t) => {
  const host = netns(t, 'fyih')
  const d = await startDockerd(t, { ns: host })
  await ensureBusyboxImage(d)
  const plugin = `fyi${process.pid}`
  const agent = await startAgent(t, { ns: host, pluginName: plugin, dockerd: d, args: ['--no-dns-server'] })
  t.teardown(() => { if (t.passing()) return; t.comment(`agent log:\n${agent.logs().slice(-6000)}`) })
  const inspect = async (n: string) => (JSON.parse(await d.dockerOk(['network', 'inspect', n])) as Inspect[])[0]!
  const cli = async (...args: string[]) => agent.cli(args)
  const cliJson = async <T> (...args: string[]) => {
    const r = await cli(...args)
    if (r.code !== 0) throw new Error(`ferry ${args.join(' ')}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }
  const run = (...args: string[]) => d.dockerOk(['run', '-d', '--stop-timeout', '1', ...args, 'bb', 'sleep', '600'])
  /** The MAC of eth0 inside a container, as the kernel has it. */
  const macInside = async (c: string) => (await d.dockerOk(['exec', c, 'cat', '/sys/class/net/eth0/address'])).trim()

  const subnets = ['--subnet', '10.50.0.0/24', '--gateway', '10.50.0.1', '--subnet', 'fd00:50::/64', '--gateway', 'fd00:50::1']
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', ...subnets, '-o', 'com.docker.network.bridge.name=fyinsp0', 'insp'])
  await d.dockerOk(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', 'inspauto'])
  // The engine's own bridge driver with the same request, to compare with.
  await d.dockerOk(['network', 'create', '-d', 'bridge', '--ipv6', '--subnet', '10.51.0.0/24', '--gateway', '10.51.0.1', '--subnet', 'fd00:51::/64', '--gateway', 'fd00:51::1', 'builtin'])
  const c1 = (await run('--net', 'insp', '--name', 'c1', '--ip6', 'fd00:50::beef', '-p', '18090:80')).trim()
  await run('--net', 'insp', '--name', 'c2')
  await run('--net', 'inspauto', '--name', 'c3')
  await run('--net', 'builtin', '--name', 'b1')

  await t.test('subnets and gateways of both families, and the options given', async (t) => {
    const n = await inspect('insp')
    t.equal(n.Driver, plugin)
    t.equal(n.EnableIPv6, true)
    t.same(n.IPAM.Config.map((c) => [c.Subnet, c.Gateway]), [['10.50.0.0/24', '10.50.0.1'], ['fd00:50::/64', 'fd00:50::1']])
    t.equal(n.Options['com.docker.network.bridge.name'], 'fyinsp0', 'an option given is echoed')
    const ferry = await cliJson<{ bridge: string }>('network', 'inspect', 'insp')
    t.equal(ferry.bridge, 'fyinsp0', 'and honoured')
    // Without --subnet the engine shows what ferry's IPAM answered: pool and gateway of each family
    // (20.10 prints an IPv6 gateway from IPAM with its prefix length, daemon/network.go buildIpamResources; later engines without).
    const auto = await inspect('inspauto')
    const fa = await cliJson<{ subnet: string, gateway: string, subnet6: string, gateway6: string }>('network', 'inspect', 'inspauto')
    t.same(auto.IPAM.Config.map((c) => [c.Subnet, c.Gateway?.replace(/\/\d+$/, '')]), [[fa.subnet, fa.gateway], [fa.subnet6, fa.gateway6]], 'ferry\'s automatic pools and gateways')
    const builtin = await inspect('builtin')
    t.same(builtin.IPAM.Config.map((c) => Object.keys(c).sort()), n.IPAM.Config.map((c) => Object.keys(c).sort()), 'the same fields as the engine\'s own bridge driver')
  })

  await t.test('each container\'s endpoint, MAC and addresses of both families', async (t) => {
    const n = await inspect('insp')
    const eps = await cliJson<Array<{ id: string, container: string, mac: string, address: string, address6: string }>>('endpoint', 'ls', '--network', 'insp', '--json')
    t.same(Object.values(n.Containers).map((c) => c.Name).sort(), ['c1', 'c2'])
    for (const [cid, c] of Object.entries(n.Containers)) {
      const ep = eps.find((e) => e.id === c.EndpointID)
      t.ok(ep, `${c.Name}: the EndpointID is ferry's endpoint`)
      t.equal(ep?.container, c.Name, 'named by the engine')
      t.match(c.MacAddress, /^02:42:0a:32:00:[0-9a-f]{2}$/, `${c.Name}: the MAC ferry answered in CreateEndpoint`)
      t.equal(c.MacAddress, ep?.mac)
      t.equal(c.MacAddress, await macInside(c.Name), 'is the container\'s')
      t.equal(c.IPv4Address, `${ep?.address ?? '?'}/24`)
      t.equal(c.IPv6Address, `${ep?.address6 ?? '?'}/64`)
      t.equal((await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.insp.MacAddress}}', cid])).trim(), c.MacAddress, 'docker inspect of the container agrees')
    }
    t.equal(n.Containers[c1]?.IPv6Address, 'fd00:50::beef/64', '--ip6')
    const auto = Object.values((await inspect('inspauto')).Containers)[0]
    const [autoEp] = await cliJson<Array<{ mac: string, address: string, prefixLen: number, address6: string, prefixLen6: number }>>('endpoint', 'ls', '--network', 'inspauto', '--json')
    t.same(auto && [auto.Name, auto.MacAddress, auto.IPv4Address, auto.IPv6Address],
      ['c3', autoEp?.mac, `${autoEp?.address ?? '?'}/${autoEp?.prefixLen ?? '?'}`, `${autoEp?.address6 ?? '?'}/${autoEp?.prefixLen6 ?? '?'}`], 'on automatic pools too')
    const b1 = Object.values((await inspect('builtin')).Containers)[0]
    t.same(Object.keys(b1 ?? {}).sort(), Object.keys(n.Containers[c1] ?? {}).sort(), 'the same fields as the engine\'s own bridge driver')
  })

  await t.test('ferry network inspect, endpoint ls and port ls take the engine\'s names, full ids and id prefixes', async (t) => {
    const id = (await inspect('insp')).Id
    for (const key of ['insp', id, id.slice(0, 12), id.slice(0, 5), 'fyinsp0']) {
      t.equal((await cliJson<{ id: string }>('network', 'inspect', key)).id, id, `network inspect ${key}`)
      t.same((await cliJson<Array<{ container: string }>>('endpoint', 'ls', '--network', key, '--json')).map((e) => e.container).sort(), ['c1', 'c2'], `endpoint ls --network ${key}`)
    }
    const epId = (await inspect('insp')).Containers[c1]!.EndpointID
    for (const key of ['c1', c1, c1.slice(0, 12), epId, epId.slice(0, 12)]) {
      const ports = await cliJson<Array<{ container: string, hostPort: number, containerPort: number }>>('port', 'ls', key, '--json')
      t.match(ports, [{ container: 'c1', hostPort: 18090, containerPort: 80 }], `port ls ${key}`)
    }
    t.same(await cliJson('port', 'ls', 'c2', '--json'), [], 'a container that publishes nothing')
    const unknown = await cli('port', 'ls', 'nobody')
    t.equal(unknown.code, 3)
    t.equal(unknown.stderr.trim(), 'ferry: no container or endpoint is named "nobody" or has that id (ferry endpoint ls lists them)')
    const bad = await cli('network', 'inspect', 'a\tb')
    t.not(bad.code, 0)
    t.equal(bad.stderr.trim(), 'ferry: "a\\tb" is not a network name or id: it holds control characters', 'checked before it is sent')
    const badC = await cli('port', 'ls', 'c1;true')
    t.match(badC.stderr.trim(), /^ferry: "c1;true" is not a container name or id: names are letters/)
    const missing = await cli('network', 'inspect', 'nosuch')
    t.equal(missing.code, 3)
    t.match(missing.stderr.trim(), /^ferry: no ferry network is named "nosuch" or has that id; known: .*insp \([0-9a-f]{12}\).* \(ferry network ls lists them\)$/)
  })

  await d.dockerOk(['rm', '-f', 'c1', 'c2', 'c3', 'b1'])
  await d.dockerOk(['network', 'rm', 'insp', 'inspauto', 'builtin'])
})
