/**
 * ferry's DNS server over IPv6 in namespaces, asked by `dig` (bind9-dnsutils): the server
 * runs in a "host" namespace, fed by the agent's record source from dual-stack network and
 * endpoint records, listening where the agent would (listenAddresses: the network's IPv4
 * and IPv6 gateways); a "container" namespace linked to it by a veth pair asks over UDP and
 * TCP. Forwarding goes to an upstream on an IPv6 address of the host namespace.
 * Run under the heavy-test lock: flock /tmp/ferry-heavy.lock npx tap test/kernel/dns.test.ts
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { netns, nsExec, sh } from '../harness/netns.js'
import { REPO_ROOT, nsNode } from '../harness/nsnode.js'

interface World {
  start (networks: unknown[], endpoints: unknown[], names: unknown[], upstream?: string): Promise<Array<{ ip: string, port: number }>>
  upstream (ip: string): Promise<void>
  upstreamSeen (): string[]
  metrics (): { refused: number, forwarded: number }
  close (): Promise<void>
}

if (!existsSync(`${REPO_ROOT}dist/dns/server.js`)) t.fail('dist/dns/server.js is missing: run `npx tsc -p .` first')

const NET = { id: 'a'.repeat(64), subnet: '10.77.0.0/24', gateway: '10.77.0.1', subnet6: 'fd00:77::/64', gateway6: 'fd00:77::1' }
const ep = (id: string, address: string, address6?: string) => ({ id: id.repeat(64), networkId: NET.id, address, prefixLen: 24, ...(address6 ? { address6, prefixLen6: 64 } : {}), ports: [] })
const ENDPOINTS = [ep('1', '10.77.0.2', 'fd00:77::2'), ep('2', '10.77.0.3'), ep('3', '', 'fd00:77::6')]
const NAMES = [
  { containerId: 'c1', name: 'web', endpoints: [['1'.repeat(64), { networkId: NET.id, aliases: ['front'] }]], links: [] },
  { containerId: 'c2', name: 'db', endpoints: [['2'.repeat(64), { networkId: NET.id, aliases: [] }]], links: [{ target: 'web', alias: 'www' }] },
  { containerId: 'c3', name: 'six', endpoints: [['3'.repeat(64), { networkId: NET.id, aliases: [] }]], links: [] },
]

/** dig's whole answer from the container namespace. */
function dig (ns: string, args: string[]): { status: string, answers: string[], tcp: boolean } {
  const out = nsExec(ns, ['dig', '+tries=1', '+time=3', '+nocookie', ...args], { allowFailure: true, timeoutMs: 20_000 })
  const status = /status: (\w+)/.exec(out)?.[1] ?? `no answer: ${out}`
  const section = /;; ANSWER SECTION:\n([\s\S]*?)\n\n/.exec(out)?.[1] ?? ''
  const answers = section.split('\n').filter(Boolean).map((l) => l.split(/\s+/).slice(3).join(' '))
  return { status, answers, tcp: /\(TCP\)/.test(out) }
}

t.test('AAAA, PTR (ip6.arpa), NODATA over UDP and TCP on the IPv6 gateway; strangers refused; forwarding to an IPv6 upstream with the TCP retry', async (t) => {
  const host = netns(t, 'fydh')
  const ctr = netns(t, 'fydc')
  sh(['ip', '-n', host, 'link', 'add', 'vh', 'type', 'veth', 'peer', 'name', 'vc', 'netns', ctr])
  for (const [ns, dev, addrs] of [[host, 'vh', ['10.77.0.1/24', 'fd00:77::1/64']], [ctr, 'vc', ['10.77.0.2/24', 'fd00:77::2/64', 'fd00:77::99/64']]] as const) {
    // fd00:77::99 is deprecated (preferred_lft 0): never picked as a source unless asked for with dig -b.
    for (const a of addrs) sh(['ip', '-n', ns, 'addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : []), ...(a.startsWith('fd00:77::99') ? ['preferred_lft', '0'] : [])])
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up'])
  }
  sh(['ip', '-n', host, 'addr', 'add', 'fd00:53::53/128', 'dev', 'lo', 'nodad'])

  const w = await nsNode<World>(t, host, { module: 'test/fixtures/dns-world.mjs', factory: 'dnsWorld' })
  await w.call('upstream', ['fd00:53::53'])
  const listening = await w.call('start', [[NET], ENDPOINTS, NAMES, '[fd00:53::53]:53'])
  t.same(listening.map((a) => a.ip).sort(), ['10.77.0.1', 'fd00:77::1'], 'listening on both gateways')

  const S6 = '@fd00:77::1'
  for (const tcp of [false, true]) {
    const via = tcp ? ['+tcp'] : ['+notcp']
    const how = tcp ? 'TCP' : 'UDP'
    t.same(dig(ctr, [...via, S6, 'AAAA', 'web']).answers, ['AAAA fd00:77::2'], `${how}: AAAA of a container name`)
    t.same(dig(ctr, [...via, S6, 'AAAA', 'front']).answers, ['AAAA fd00:77::2'], `${how}: AAAA of a network alias`)
    t.same(dig(ctr, [...via, S6, 'AAAA', 'www']).answers, ['AAAA fd00:77::2'], `${how}: AAAA of a link alias`)
    t.same(dig(ctr, [...via, S6, 'A', 'web']).answers, ['A 10.77.0.2'], `${how}: A, asked over IPv6`)
    t.same(dig(ctr, [...via, S6, '-x', 'fd00:77::2']).answers, ['PTR web.'], `${how}: PTR in ip6.arpa`)
    t.same(dig(ctr, [...via, S6, '-x', 'fd00:77::6']).answers, ['PTR six.'], `${how}: PTR of an IPv6-only container`)
    for (const [type, name] of [['AAAA', 'db'], ['A', 'six']] as const) {
      const r = dig(ctr, [...via, S6, type, name])
      t.same([r.status, r.answers], ['NOERROR', []], `${how}: ${type} of ${name}: NODATA, not NXDOMAIN`)
    }
    t.same(dig(ctr, [...via, S6, 'AAAA', 'six']).answers, ['AAAA fd00:77::6'], `${how}: AAAA of an IPv6-only container`)
    t.same(dig(ctr, [...via, S6, 'AAAA', 'far.example.test']).answers, ['AAAA 2001:db8::53'], `${how}: forwarded to the IPv6 upstream`)
  }
  t.same(dig(ctr, ['@10.77.0.1', 'AAAA', 'web']).answers, ['AAAA fd00:77::2'], 'the IPv4 listener answers AAAA too')
  t.equal(dig(ctr, ['-b', 'fd00:77::99', S6, 'AAAA', 'web']).status, 'REFUSED', 'an address of no endpoint is refused')

  const seenBefore = (await w.call('upstreamSeen', [])).length
  const big = dig(ctr, [S6, 'TXT', 'big.example.test'])
  t.equal(big.answers.length, 1, 'a forwarded answer too big for UDP arrives whole')
  t.ok(big.tcp, 'dig asked again over TCP after the truncated UDP answer')
  t.same((await w.call('upstreamSeen', [])).slice(seenBefore), ['udp', 'tcp'], 'the server asked the IPv6 upstream over UDP, then over TCP')
  t.ok((await w.call('metrics', [])).refused >= 1)
})
