/**
 * ferry on a current Docker engine (issue #15): Debian 13's docker.io 26.1 and containerd 1.7,
 * from the root scripts/engine-root.sh builds (FERRY_ENGINE_ROOT, default
 * /tmp/ferry-debian-cache/engine-trixie). Skipped, with the reason, when that root is not
 * there: it is never built or downloaded by the test suite (CI runs without it).
 *
 * What the 26.1 engine sends the plugin was compared with 20.10's (docs/ipv6.md): the same calls
 * and bodies, plus a `Host: plugin.moby.localhost` header and an IpamDriver.GetDefaultAddressSpaces
 * on every `network create` without a subnet. Here: a dual-stack network (given subnets, and one
 * ferry picks), a container with ports published on all addresses and on 127.0.0.1, answering
 * over IPv4 and over IPv6 (the gateway's address), `--ip6`, and removal leaving nothing of the
 * container or the networks in the agent.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { netns, nsExec } from '../harness/netns.js'
import { startDockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { startAgent } from '../harness/agent.js'

const ROOT = process.env.FERRY_ENGINE_ROOT ?? '/tmp/ferry-debian-cache/engine-trixie'
const BIN = join(ROOT, '.ferry-engine', 'bin')

if (!existsSync(join(BIN, 'dockerd'))) {
  t.plan(0, `no current engine at ${BIN} (build it with scripts/engine-root.sh; the suite never downloads it)`)
} else {
  await t.test('a dual-stack ferry network on Docker 26', async (t) => {
    const host = netns(t, 'fy26h')
    const d = await startDockerd(t, { ns: host, binDir: BIN })
    await ensureBusyboxImage(d)
    const version = (await d.dockerOk(['version', '--format', '{{.Server.Version}}'])).trim()
    t.match(version, /^2[6-9]\.|^[3-9]\d\./, `a current engine (${version})`)
    const plugin = `fy26${process.pid}`
    const agent = await startAgent(t, { ns: host, pluginName: plugin, dockerd: d, args: ['--reconcile-interval', '0', '--no-dns-server'] })
    t.teardown(() => { if (t.passing()) return; t.comment(`agent log:\n${agent.logs().slice(-6000)}\ndockerd log:\n${d.logs().slice(-4000)}`) })
    const net = (name: string, ...args: string[]) => d.docker(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', ...args, name])
    const get = (url: string) => nsExec(host, ['curl', '-s', '-g', '-m', '3', url], { allowFailure: true })

    const given = await net('d26', '--subnet', '10.46.0.0/24', '--subnet', 'fd00:46::/64')
    t.equal(given.code, 0, given.stderr)
    const picked = await net('d26auto')
    t.equal(picked.code, 0, `ferry picks both subnets (the engine asks GetDefaultAddressSpaces again): ${picked.stderr}`)
    t.match((await d.dockerOk(['network', 'inspect', '-f', '{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}', 'd26auto'])).trim(), /^true \S+ fd[0-9a-f:]+\/64$/)

    const web = await d.docker(['run', '-d', '--name', 'web26', '--net', 'd26', '-p', '18086:80', '-p', '127.0.0.1:18087:80', 'bb',
      'sh', '-c', 'mkdir -p /www && echo hello-26 > /www/index.html && exec httpd -f -p 80 -h /www'])
    t.equal(web.code, 0, web.stderr)
    t.equal((await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.d26.IPAddress}} {{.NetworkSettings.Networks.d26.GlobalIPv6Address}}', 'web26'])).trim(),
      '10.46.0.2 fd00:46::2', 'both addresses from ferry\'s IPAM')
    let body = get('http://127.0.0.1:18086/index.html')
    for (let i = 0; i < 12 && !body.includes('hello-26'); i++) { await sleep(250); body = get('http://127.0.0.1:18086/index.html') }
    t.match(body, /hello-26/, 'published on all addresses: answers on 127.0.0.1')
    t.match(get('http://[fd00:46::1]:18086/index.html'), /hello-26/, 'and over IPv6, on the gateway\'s address')
    t.match(get('http://127.0.0.1:18087/index.html'), /hello-26/, 'published on 127.0.0.1')
    t.equal(get('http://[fd00:46::1]:18087/index.html'), '', 'the 127.0.0.1 port does not answer over IPv6')

    const ip6 = await d.docker(['run', '--rm', '--net', 'd26', '--ip6', 'fd00:46::99', 'bb', 'ip', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])
    t.equal(ip6.code, 0, ip6.stderr)
    t.match(ip6.stdout, /inet6 fd00:46::99\/64/, '--ip6')

    t.equal((await d.docker(['rm', '-f', 'web26'])).code, 0)
    const eps = JSON.parse((await agent.cli(['endpoint', 'ls', '--json'])).stdout) as unknown[]
    t.same(eps, [], 'no endpoint left in the agent')
    t.equal((await d.docker(['network', 'rm', 'd26', 'd26auto'])).code, 0)
    const nets = JSON.parse((await agent.cli(['network', 'ls', '--json'])).stdout) as Array<{ name: string }>
    t.same(nets.filter((n) => n.name.startsWith('d26')), [], 'no network left in the agent')
  })
}
