/**
 * ferry without the engine on dual-stack networks, end to end: the default network
 * from dockerd's `--ipv6 --fixed-cidr-v6`, `ferry run` with an IPv6 address and
 * default route that work as soon as the command starts (no DAD wait), a port
 * published on both families, ICC off and a `--link` exception over IPv6 as over
 * IPv4, `ferry network create --ipv6` with a subnet of each
 * family, `ferry attach --ip6`, and every IPv6 address given back on detach. Then an
 * IPv6-only network (`ferry network create --ipv4=false --ipv6`, Docker 28's IPv6-only
 * networks): `ferry run` on it gets one IPv6 address and route and nothing of IPv4, names
 * resolve to AAAA records only, a port published on all addresses answers over IPv6 only,
 * and the firewall has no IPv4 NAT for it.
 *
 * The agent and every ferry command run in a test namespace ("host"), as in
 * test/e2e/runtime.test.ts; the whole runs once per firewall backend. Build first (`npm run build`).
 */
import t from 'tap'
import { netns, nsExec, ipJson } from '../harness/netns.js'
import { requireBuild, startCliAgent, ferry, ferryBg, hostVeths, ps, running, waitFor, type CliCtx } from '../harness/ferry-cli.js'

requireBuild(t)

interface PsEntry { name: string, address?: string, address6?: string, prefixLen6?: number, gateway6?: string }
interface NetEntry { name: string, bridge: string, subnet?: string, gateway?: string, subnet6?: string, gateway6?: string }

const globals6 = (ns: string, dev: string): string[] =>
  ipJson<Array<{ addr_info: Array<{ local: string, prefixlen: number, scope: string }> }>>(ns, ['-6', 'addr', 'show', 'dev', dev])[0]
    ?.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`) ?? []

for (const backend of ['iptables', 'nftables']) {
  await t.test(`ferry without the engine, dual-stack (${backend})`, async (t) => {
    const c: CliCtx = await startCliAgent(t, `fy6${backend[0]!}`, '10.66.0.1/24', ['--ipv6', '--fixed-cidr-v6', 'fd00:66::/64', '--firewall-backend', backend])
    const { host } = c

    await t.test('the default network from --ipv6 --fixed-cidr-v6', async (t) => {
      const nets = JSON.parse((await ferry(c, ['network', 'ls', '--json'])).stdout) as NetEntry[]
      t.match(nets.find((n) => n.name === 'bridge'), { subnet: '10.66.0.0/24', subnet6: 'fd00:66::/64', gateway6: 'fd00:66::1' })
      t.same(globals6(host, 'docker0'), ['fd00:66::1/64'], "the bridge holds the IPv6 gateway")
    })

    await t.test('ferry run: both families, usable at once', async (t) => {
      const r = await ferry(c, ['run', '--name', 'probe', '--', 'busybox', 'sh', '-c', [
        'ip -o -6 addr show dev eth0 scope global', 'ip -6 route show default',
        'if ping -6 -c 1 -W 2 fd00:66::1 >/dev/null; then echo gw6-answers; fi', 'grep -c probe /etc/hosts || true', 'cat /etc/resolv.conf',
      ].join('; ')])
      t.equal(r.code, 0, r.stderr)
      t.match(r.stdout, /inet6 fd00:66::2\/64 scope global (nodad|flags 02) /, 'the first free IPv6 address, without DAD (busybox ip prints the flag as 02)')
      t.notMatch(r.stdout, /tentative/, 'not tentative: usable as the command starts')
      t.match(r.stdout, /^default via fd00:66::1 dev eth0/m, 'an IPv6 default route to the gateway')
      t.match(r.stdout, /^gw6-answers$/m, 'the gateway answers over IPv6 at once')
      t.match(r.stdout, /^nameserver 10\.66\.0\.1\nnameserver fd00:66::1$/m, "ferry's DNS on the gateway of each family")
    })

    await t.test('a port published on all addresses answers on both families', async (t) => {
      const web = ferryBg(t, c, ['run', '--name', 'web', '-p', '8086:80', '--', 'busybox', 'sh', '-c', 'mkdir -p /www && echo dual-web > /www/index.html && exec httpd -f -p 80 -h /www'])
      const rec = await running<PsEntry>(c, 'web')
      t.match(rec, { address: /^10\.66\.0\.\d+$/, address6: /^fd00:66::[0-9a-f]+$/, prefixLen6: 64, gateway6: 'fd00:66::1' }, 'both addresses in ferry ps')
      for (const ip of ['10.66.0.1', '[fd00:66::1]']) {
        const got = await waitFor(`http via ${ip}:8086`, async () => {
          const out = nsExec(host, ['curl', '-sg', '--max-time', '2', `http://${ip}:8086/`], { allowFailure: true })
          return out.includes('dual-web') ? out : undefined
        })
        t.match(got, /dual-web/, `reached through ${ip}:8086`)
      }
      web.kill('SIGTERM')
      await web.done
    })

    await t.test('ICC off holds over IPv6, and a --link opens its exposed port in both families', async (t) => {
      const db = ferryBg(t, c, ['run', '--name', 'db6', '--expose', '5432', '--', 'busybox', 'sh', '-c', 'mkdir -p /www && echo db6-answer > /www/index.html && exec httpd -f -p 5432 -h /www'])
      const rec = await running<PsEntry>(c, 'db6')
      const get = (ip: string): string => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 5432 | grep -q db6-answer && echo ${ip}-open || echo ${ip}-closed`
      const probe = [get(rec.address!), get(rec.address6!)].join('; ')
      const linked = await ferry(c, ['run', '--name', 'web6', '--link', 'db6:database', '--', 'busybox', 'sh', '-c', probe])
      t.equal(linked.code, 0, linked.stderr)
      t.match(linked.stdout, new RegExp(`^${rec.address!.replace(/\./g, '\\.')}-open$`, 'm'), 'linked: open over IPv4')
      t.match(linked.stdout, new RegExp(`^${rec.address6!}-open$`, 'm'), 'linked: open over IPv6')
      const other = await ferry(c, ['run', '--name', 'other6', '--', 'busybox', 'sh', '-c', probe])
      t.match(other.stdout, new RegExp(`^${rec.address!.replace(/\./g, '\\.')}-closed$`, 'm'), 'not linked, ICC off: closed over IPv4')
      t.match(other.stdout, new RegExp(`^${rec.address6!}-closed$`, 'm'), 'not linked, ICC off: closed over IPv6 as well')
      db.kill('SIGTERM')
      await db.done
    })

    await t.test('ferry network create --ipv6 and ferry attach --ip6', async (t) => {
      const made = await ferry(c, ['network', 'create', 'dual', '--ipv6', '--subnet', '10.67.0.0/24', '--subnet', 'fd00:67::/64', '--gateway', 'fd00:67::fe'])
      t.equal(made.code, 0, made.stderr)
      const nets = JSON.parse((await ferry(c, ['network', 'ls', '--json'])).stdout) as NetEntry[]
      t.match(nets.find((n) => n.name === 'dual'), { subnet: '10.67.0.0/24', subnet6: 'fd00:67::/64', gateway6: 'fd00:67::fe' })
      const x = netns(t, `fy6x${backend[0]!}`)
      const at = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x', '--net', 'dual', '--ip6', 'fd00:67::99'])
      t.equal(at.code, 0, at.stderr)
      t.match(at.stdout, /x: 10\.67\.0\.2\/24 on dual via 10\.67\.0\.1 and fd00:67::99\/64 via fd00:67::fe/)
      t.same(globals6(x, 'eth0'), ['fd00:67::99/64'])
      t.match(nsExec(x, ['ip', '-6', 'route', 'show', 'default']), /default via fd00:67::fe dev eth0/)
      const ping = nsExec(host, ['busybox', 'ping', '-6', '-c', '1', '-W', '2', 'fd00:67::99'], { allowFailure: true })
      t.match(ping, /1 received|1 packets received/, 'the host reaches the attached namespace over IPv6')
      const taken = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'y', '--net', 'dual', '--ip6', 'fd00:67::99'])
      t.not(taken.code, 0, 'an IPv6 address in use is refused')
      const v4only = await ferry(c, ['network', 'create', 'plain', '--subnet', '10.68.0.0/24'])
      t.equal(v4only.code, 0, v4only.stderr)
      const refused = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'z', '--net', 'plain', '--ip6', 'fd00:68::5'])
      t.match(refused.stderr, /--ip6 fd00:68::5: network plain has no IPv6 subnet \(create it with --ipv6\)/)
      t.equal((await ferry(c, ['detach', 'x'])).code, 0)
      t.same(ipJson<Array<{ ifname: string }>>(x, ['link']).map((l) => l.ifname), ['lo'], 'eth0 gone from the namespace')
      // The address came back: attaching again with the same --ip6 works.
      const again = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x2', '--net', 'dual', '--ip6', 'fd00:67::99'])
      t.equal(again.code, 0, again.stderr)
      t.equal((await ferry(c, ['detach', 'x2'])).code, 0)
      for (const n of ['dual', 'plain']) t.equal((await ferry(c, ['network', 'rm', n])).code, 0, `network rm ${n}`)
      const remade = await ferry(c, ['network', 'create', 'dual', '--ipv6', '--subnet', '10.67.0.0/24', '--subnet', 'fd00:67::/64'])
      t.equal(remade.code, 0, `both pools were released: the same subnets again (${remade.stderr})`)
      t.equal((await ferry(c, ['network', 'rm', 'dual'])).code, 0)
    })

    await t.test('an IPv6-only network (--ipv4=false --ipv6): IPv6 alone in the container, DNS, ports and the firewall', async (t) => {
      const refused = await ferry(c, ['network', 'create', 'none4', '--ipv4=false'])
      t.match(refused.stderr, /at least one address family: --ipv4=false takes --ipv6/)
      const made = await ferry(c, ['network', 'create', 'six', '--ipv4=false', '--ipv6', '--subnet', 'fd00:69::/64'])
      t.equal(made.code, 0, made.stderr)
      const net = (JSON.parse((await ferry(c, ['network', 'ls', '--json'])).stdout) as NetEntry[]).find((n) => n.name === 'six')!
      t.match(net, { subnet6: 'fd00:69::/64', gateway6: 'fd00:69::1' })
      t.same([net.subnet, net.gateway], [undefined, undefined], 'no IPv4 subnet or gateway')
      t.same(globals6(host, net.bridge), ['fd00:69::1/64'], 'the bridge holds the IPv6 gateway')
      t.equal(nsExec(host, ['ip', '-4', '-o', 'addr', 'show', 'dev', net.bridge]).trim(), '', 'and no IPv4 address')

      const web = ferryBg(t, c, ['run', '--name', 'web6o', '--net', 'six', '-p', '8089:80', '--', 'busybox', 'sh', '-c', 'mkdir -p /www && echo six-web > /www/index.html && exec httpd -f -p 80 -h /www'])
      const rec = await running<PsEntry>(c, 'web6o')
      t.match(rec, { address6: 'fd00:69::2', prefixLen6: 64, gateway6: 'fd00:69::1' })
      t.equal(rec.address, undefined, 'no IPv4 address in ferry ps')

      const r = await ferry(c, ['run', '--name', 'probe6o', '--net', 'six', '--', 'busybox', 'sh', '-c', [
        'echo "v4:$(ip -o -4 addr show dev eth0)"', 'echo "v4routes:$(ip -4 route)"', 'ip -o -6 addr show dev eth0 scope global', 'ip -6 route show default',
        'if ping -6 -c 1 -W 2 fd00:69::1 >/dev/null; then echo gw6-answers; fi', 'cat /etc/resolv.conf',
        'echo "A:$(dig +short +time=2 +tries=1 A web6o)"', 'echo "AAAA:$(dig +short +time=2 +tries=1 AAAA web6o)"',
      ].join('; ')])
      t.equal(r.code, 0, r.stderr)
      t.match(r.stdout, /^v4:$/m, 'no IPv4 address on eth0')
      t.match(r.stdout, /^v4routes:$/m, 'no IPv4 route')
      t.match(r.stdout, /inet6 fd00:69::3\/64 scope global (nodad|flags 02) /, 'the next IPv6 address, without DAD')
      t.match(r.stdout, /^default via fd00:69::1 dev eth0/m, 'the IPv6 default route')
      t.match(r.stdout, /^gw6-answers$/m, 'the gateway answers at once')
      t.match(r.stdout, /^nameserver fd00:69::1$/m, "ferry's DNS on the IPv6 gateway")
      t.notMatch(r.stdout, /^nameserver 10\./m, 'and not on an IPv4 address')
      t.match(r.stdout, /^A:$/m, 'no A record for a name on it')
      t.match(r.stdout, /^AAAA:fd00:69::2$/m, 'its AAAA record')

      const get = (url: string): string => nsExec(host, ['curl', '-sg', '--max-time', '2', url], { allowFailure: true })
      const got = await waitFor('http via [fd00:69::1]:8089', async () => { const out = get('http://[fd00:69::1]:8089/'); return out.includes('six-web') ? out : undefined })
      t.match(got, /six-web/, 'the port published on all addresses answers over IPv6')
      t.equal(get('http://10.66.0.1:8089/'), '', 'and not over IPv4: nothing is published there')
      t.match((await ferry(c, ['port', 'ls', 'web6o'])).stdout, /\[::\]:8089\s+\[fd00:69::2\]:80\n/, 'ferry port ls: one IPv6 binding, in brackets')

      const ip6 = (args: string[]): string => nsExec(host, args, { allowFailure: true })
      if (backend === 'iptables') {
        t.notMatch(ip6(['iptables-save', '-t', 'nat']), new RegExp(`${net.bridge}|8089`), 'no IPv4 NAT rule for it (masquerade, hairpin, loopback, DNAT)')
        t.match(ip6(['ip6tables-save', '-t', 'nat']), new RegExp(`-s fd00:69::/64 ! -o ${net.bridge} .*-j MASQUERADE`), 'IPv6 masquerade')
        t.match(ip6(['ip6tables-save', '-t', 'nat']), /--dport 8089 .*--to-destination \[fd00:69::2\]:80/, 'IPv6 DNAT')
      } else {
        const list = (kind: 'set' | 'map', name: string): string => nsExec(host, ['nft', 'list', kind, 'inet', 'ferry', name])
        t.notMatch(list('set', 'localnet'), new RegExp(net.bridge), 'no loopback guard or masquerade for it')
        t.notMatch(list('map', 'any_port'), /8089/, 'no IPv4 DNAT')
        t.match(list('map', 'any_port6'), /8089 : fd00:69::2 \. 80/, 'IPv6 DNAT')
        t.match(list('set', 'masq6'), /fd00:69::\/64/, 'IPv6 masquerade')
      }
      const x = netns(t, `fy6o${backend[0]!}`)
      const at = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x6', '--net', 'six'])
      t.equal(at.code, 0, at.stderr)
      t.match(at.stdout, /^x6: fd00:69::[0-9a-f]+\/64 on six via fd00:69::1$/m, 'ferry attach names the IPv6 address alone')
      t.equal(nsExec(x, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).trim(), '', 'no IPv4 address in the attached namespace')
      t.equal((await ferry(c, ['detach', 'x6'])).code, 0)
      web.kill('SIGTERM')
      await web.done
      t.equal((await ferry(c, ['network', 'rm', 'six'])).code, 0)
    })

    await t.test('nothing is left behind', async (t) => {
      t.same(await ps(c), [])
      t.same(hostVeths(c), [])
    })
  })
}
