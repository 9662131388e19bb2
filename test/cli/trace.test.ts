/**
 * `ferry trace`'s CLI (src/cli/trace.ts): `--to` as CONTAINER|IP[:PORT[/PROTO]] (an IPv6
 * address with a port in brackets), what is refused before the agent is asked, and the
 * lines printed for people, with and without --live.
 */
import t from 'tap'
import { parseTarget, renderTrace } from '../../src/cli/trace.js'
import type { TraceView } from '../../src/api/trace.js'

t.test('--to', async (t) => {
  t.same(parseTarget('web'), { target: 'web' })
  t.same(parseTarget('web:80'), { target: 'web', port: 80 })
  t.same(parseTarget('web:53/udp'), { target: 'web', port: 53, proto: 'udp' })
  t.same(parseTarget('10.0.0.3:9/sctp'), { target: '10.0.0.3', port: 9, proto: 'sctp' })
  t.same(parseTarget('fd00::3'), { target: 'fd00::3' }, 'a bare IPv6 address has no port')
  t.same(parseTarget('[fd00::3]:443'), { target: 'fd00::3', port: 443 })
  t.same(parseTarget('[fd00::3]'), { target: 'fd00::3' })
  t.throws(() => parseTarget('web:0'), /port is a number from 1 to 65535/)
  t.throws(() => parseTarget('web:65536'), /port is a number from 1 to 65535/)
  t.throws(() => parseTarget('web:80/icmp'), /optionally followed by \/tcp, \/udp or \/sctp/)
  t.throws(() => parseTarget('[10.0.0.3]:80'), /only an IPv6 address goes in brackets/)
  t.throws(() => parseTarget('we b:80'), /neither an address nor a container name/)
})

const base: TraceView = {
  family: 4, backend: 'nftables', from: 'a1', to: '10.0.0.3:80', verdict: 'dropped', adminChainUnknown: true,
  packet: { src: '10.0.0.2', dst: '10.0.0.3', proto: 'tcp', port: 80, ingress: 'container' },
  hops: [
    { where: 'ingress', verdict: 'pass', note: 'from container a1' },
    { where: 'filter-forward → user', verdict: 'unknown', note: 'the admin chain …' },
    { where: 'filter-forward', verdict: 'drop', rule: 'iifname . oifname vmap @icc', note: 'ICC is off on network x (com.docker.network.bridge.enable_icc=false)' },
  ],
}
base.decidedBy = base.hops[2]!

t.test('the explanation for people', async (t) => {
  const text = renderTrace(base)
  t.match(text, /^a1 \(10\.0\.0\.2\) → 10\.0\.0\.3:80 \(10\.0\.0\.3\), tcp port 80, IPv4; nftables backend\n/)
  t.match(text, /DROPPED at filter-forward: ICC is off on network x \(com\.docker\.network\.bridge\.enable_icc=false\)\n {2}rule: iifname \. oifname vmap @icc/)
  t.match(text, /HOP +VERDICT +WHY +RULE/)
  t.match(text, /note: the admin chain is evaluated first; ferry cannot see its verdict without --live/)
  const live = renderTrace({
    ...base, adminChainUnknown: false,
    live: {
      verdict: 'dropped', events: [{ table: 'inet ferry', chain: 'filter-forward', rule: 'iifname . oifname vmap @icc', verdict: 'drop' }, { table: 'inet ferry', chain: 'raw-prerouting', verdict: 'accept' }],
      droppedBy: { table: 'inet ferry', chain: 'filter-forward', rule: 'iifname . oifname vmap @icc', verdict: 'drop' },
      probe: { argv: ['nc', '-z', '10.0.0.3', '80'], exitCode: 1, answered: false, output: '' },
    },
  })
  t.match(live, /live: the probe \(nc -z 10\.0\.0\.3 80\) got no answer; nft monitor trace: dropped\n {2}dropped by inet ferry filter-forward: iifname \. oifname vmap @icc/)
  t.match(live, /inet ferry +raw-prerouting +accept +\(policy\)/)
  t.notMatch(live, /note: the admin chain/)
  const ping = renderTrace({ ...base, verdict: 'delivered', decidedBy: undefined, packet: { ...base.packet, proto: 'icmp', port: undefined }, hops: [] })
  t.match(ping, /ICMP echo, IPv4/)
  t.match(ping, /DELIVERED: no rule of ferry's drops it/)
  const udp = renderTrace({ ...base, live: { verdict: 'unseen', events: [], probe: { argv: ['nc', '-u'], exitCode: 0, output: '' } } })
  t.match(udp, /sent \(UDP: no answer to wait for\); nft monitor trace: no trace of the packet came back/)
})
