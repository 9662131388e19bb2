/**
 * `ferry doctor`'s full-size probes (src/doctor/mtu.ts): the plan and the
 * verdicts, pure; then the probe itself on a real path: two hosts (namespaces)
 * joined through a bridge in a third namespace, whose port towards the second
 * host has a smaller MTU than the hosts' links. Full-size packets are then
 * dropped silently in the middle (a blackhole), small ones pass; with the right
 * MTU in the middle full-size packets pass. Both families.
 */
import t from 'tap'
import { judgeFullSize } from '../../src/doctor/checks.js'
import { planMtuProbes, pingArgv, reportedMtu, type MtuProbe, type runMtuProbe } from '../../src/doctor/mtu.js'
import { netns, sh } from '../harness/netns.js'
import { nsNode } from '../harness/nsnode.js'

t.test('plan: every peer host over the underlay, and through WireGuard while the device is up', async (t) => {
  const cluster = {
    hostId: 'a',
    hosts: [{ hostId: 'c', vtep: '2001:db8::3' }, { hostId: 'a', vtep: '192.0.2.1' }, { hostId: 'b', vtep: '192.0.2.2' }, { hostId: 'x', vtep: 'nope' }],
    wireguard: { active: true, peers: [{ hostId: 'b', tunnel: '100.64.0.2' }, { hostId: 'c', tunnel: '100.64.0.3' }] },
  }
  t.same(planMtuProbes(cluster, 1500), [
    { hostId: 'b', path: 'underlay', target: '192.0.2.2', family: 4, size: 1500, overlayMtu: 1450, underlayMtu: 1500 },
    { hostId: 'b', path: 'wireguard', target: '100.64.0.2', family: 4, size: 1440, overlayMtu: 1390, underlayMtu: 1500 },
    { hostId: 'c', path: 'underlay', target: '2001:db8::3', family: 6, size: 1500, overlayMtu: 1430, underlayMtu: 1500 },
    { hostId: 'c', path: 'wireguard', target: '100.64.0.3', family: 4, size: 1420, overlayMtu: 1370, underlayMtu: 1500 },
  ])
  t.equal(planMtuProbes({ ...cluster, wireguard: { active: false, peers: cluster.wireguard.peers } }, 1500).filter((p) => p.path === 'wireguard').length, 0, 'no device: no WireGuard probe')
  t.same(planMtuProbes({}, 1500), [])
  // A mixed-family cluster: this host (IPv4 only) probes the VTEP of its family, and not a host that has none.
  const mixed = { hostId: 'a', vtep: '192.0.2.1', hosts: [{ hostId: 'a', vtep: '192.0.2.1' }, { hostId: 'b', vtep: '2001:db8::2' }, { hostId: 'c', vtep: '2001:db8::3', vtep2: '192.0.2.3' }] }
  t.same(planMtuProbes(mixed, 1500).map((p) => [p.hostId, p.target]), [['c', '192.0.2.3']], 'b shares no family: not probed (judgeFamilies names it); c over its IPv4 VTEP')
  t.same(planMtuProbes({ ...mixed, vtep2: '2001:db8::1' }, 1500).map((p) => [p.hostId, p.target]), [['b', '2001:db8::2'], ['c', '2001:db8::3']], 'a dual-stack host reaches both, c by its primary')
  t.same(pingArgv({ target: '192.0.2.2', family: 4 }, 1500).slice(-5), ['-M', 'do', '-s', '1472', '192.0.2.2'])
  t.same(pingArgv({ target: '2001:db8::3', family: 6 }, 1500).slice(-5), ['-M', 'do', '-s', '1452', '2001:db8::3'])
  t.equal(reportedMtu('From 192.0.2.9 icmp_seq=1 Frag needed and DF set (mtu = 1400)'), 1400)
  t.equal(reportedMtu('ping: local error: message too long, mtu=1280'), 1280)
  t.equal(reportedMtu('100% packet loss'), undefined)
})

t.test('verdicts: pass, blackhole (silent or reported), unreachable', async (t) => {
  const p: MtuProbe = { hostId: 'b', path: 'underlay', target: '192.0.2.2', family: 4, size: 1500, overlayMtu: 1450, underlayMtu: 1500 }
  const w: MtuProbe = { ...p, path: 'wireguard', target: '100.64.0.2', size: 1440, overlayMtu: 1390 }
  const [pass, hole, reported, gone, wgHole] = judgeFullSize([
    { ...p, reachable: true, passed: true }, { ...p, reachable: true, passed: false }, { ...p, reachable: true, passed: false, reportedMtu: 1400 },
    { ...p, reachable: false, passed: false }, { ...w, reachable: true, passed: false },
  ])
  t.match(pass, { status: 'ok', check: 'overlay.mtu', what: /full-size packets \(1500 bytes, DF set\) reach host b over the underlay to 192.0.2.2: the plain overlays' 1450-byte packets get through/ })
  t.match(hole, { status: 'fail', what: /packets of 1500 bytes with DF set are lost over the underlay to 192.0.2.2 of host b while small ones pass \(no error came back: they are dropped silently\): the plain overlays' largest packets to that host are blackholed/, fix: /MTU of at least 1500/ })
  t.match(reported, { status: 'fail', what: /the path reported an MTU of 1400/ })
  t.match(gone, { status: 'warn', what: /host b does not answer ping over the underlay to 192.0.2.2: the path's MTU could not be checked/ })
  t.match(judgeFullSize([{ ...p, reachable: false, passed: false, error: 'cannot run ping: ENOENT' }])[0], { status: 'warn', what: /cannot send full-size packets to host b: cannot run ping/, fix: 'apt-get install iputils-ping' })
  t.match(wgHole, { status: 'fail', check: 'wireguard.mtu', what: /1440 bytes .* through WireGuard to its tunnel address 100.64.0.2 .* encrypted overlays' largest packets to that host are blackholed/, fix: /at least 1500/ })
})

t.test('a real path: a smaller MTU in the middle blackholes full-size packets, the right one passes (both families)', async (t) => {
  const a = netns(t, 'fymtua')
  const m = netns(t, 'fymtum')
  const b = netns(t, 'fymtub')
  sh(['ip', '-n', m, 'link', 'add', 'br0', 'type', 'bridge'])
  sh(['ip', '-n', m, 'link', 'set', 'br0', 'up'])
  for (const [ns, ip4, ip6, port] of [[a, '192.0.2.1/24', '2001:db8::1/64', 'pa'], [b, '192.0.2.2/24', '2001:db8::2/64', 'pb']] as const) {
    sh(['ip', '-n', m, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    sh(['ip', '-n', m, 'link', 'set', port, 'master', 'br0', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', ip4, 'dev', 'eth0'])
    sh(['ip', '-n', ns, 'addr', 'add', ip6, 'dev', 'eth0', 'nodad'])
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
  }
  const node = await nsNode<{ runMtuProbe: typeof runMtuProbe }>(t, a, { module: 'dist/doctor/mtu.js' })
  const probe = (target: string, family: 4 | 6): MtuProbe => ({ hostId: 'b', path: 'underlay', target, family, size: 1500, overlayMtu: 1450, underlayMtu: 1500 })
  // The bridge's port towards b carries 1400 bytes: larger frames are dropped there, with no error back.
  sh(['ip', '-n', m, 'link', 'set', 'pb', 'mtu', '1400'])
  for (const [target, family] of [['192.0.2.2', 4], ['2001:db8::2', 6]] as const) {
    const r = await node.call('runMtuProbe', [probe(target, family)])
    t.equal(r.reachable, true, `IPv${family}: small packets pass`)
    t.equal(r.passed, false, `IPv${family}: full-size packets are lost`)
    t.match(judgeFullSize([r])[0], { status: 'fail', what: /are blackholed/ })
  }
  sh(['ip', '-n', m, 'link', 'set', 'pb', 'mtu', '1500'])
  for (const [target, family] of [['192.0.2.2', 4], ['2001:db8::2', 6]] as const) {
    const r = await node.call('runMtuProbe', [probe(target, family)])
    t.same([r.reachable, r.passed], [true, true], `IPv${family}: the right MTU passes`)
    t.match(judgeFullSize([r])[0], { status: 'ok', check: 'overlay.mtu' })
  }
  // A host that does not answer at all is not called a blackhole.
  const r = await node.call('runMtuProbe', [probe('192.0.2.9', 4)])
  t.same([r.reachable, r.passed], [false, false])
})
