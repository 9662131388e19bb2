import t from 'tap'
import { generateKeyPair } from '../../src/wireguard/keys.js'
import {
  checkEndpoint, checkWireGuardInfo, genlSet, parseUapiGet, parseUapiSet, planMesh, readWireGuardContent, slotEndpoint, stateOfGenl, tunnelAddress, tunnelsOf, uapiSet, wgDeviceName, wgFamily, wgOverhead,
  wireGuardContent,
  type WireGuardInfo,
} from '../../src/wireguard/plan.js'
import { contains } from '../../src/util/ip.js'

const k = (): string => generateKeyPair().publicKey
const info = (tunnel: string, publicKey = k()): WireGuardInfo => ({ publicKey, port: 51820, tunnel })

t.test('names and tunnel addresses are deterministic and in range', async (t) => {
  t.equal(wgDeviceName('host-a'), wgDeviceName('host-a'))
  t.ok(wgDeviceName('host-a').length <= 15)
  t.not(wgDeviceName('host-a'), wgDeviceName('host-b'))
  const a = tunnelAddress('host-a')
  t.equal(tunnelAddress('host-a'), a)
  t.ok(contains('100.64.0.0/16', a))
  t.not(a, '100.64.0.0'); t.not(a, '100.64.255.255')
  t.ok(contains('10.9.8.0/24', tunnelAddress('x', '10.9.8.0/24')))
  t.throws(() => tunnelAddress('x', '10.0.0.0/30'), /\/8 to \/24/)
})

t.test('what a host publishes is checked strictly', async (t) => {
  const good = info('100.64.1.2')
  t.same(checkWireGuardInfo(good), good)
  t.same(readWireGuardContent(wireGuardContent(good)), good)
  t.throws(() => checkWireGuardInfo({ ...good, extra: 1 }), /unknown field/)
  t.throws(() => checkWireGuardInfo({ ...good, publicKey: 'x' }), /32 bytes/)
  t.throws(() => checkWireGuardInfo({ ...good, port: 0 }), /port/)
  t.throws(() => checkWireGuardInfo({ ...good, tunnel: '100.64.1.2/32' }), /canonical IPv4/)
  t.throws(() => checkWireGuardInfo({ ...good, tunnel: '10.0.0.1' }), /not a host address of 100.64.0.0\/16/)
  t.throws(() => checkWireGuardInfo({ ...good, tunnel: '100.64.0.0' }), /not a host address/)
  t.throws(() => readWireGuardContent('{"port":51820,"publicKey":"' + good.publicKey + '","tunnel":"100.64.1.2"}'), /canonical form/)
  t.throws(() => readWireGuardContent('x'.repeat(300)), /short JSON/)
  t.throws(() => readWireGuardContent('{'), /not JSON/)
})

t.test('the mesh: every other host is a peer; duplicates of tunnel or key lose to the smaller host id', async (t) => {
  const self = { hostId: 'h1', wg: info('100.64.0.1') }
  const shared = k()
  const plan = planMesh(self, [
    { hostId: 'h1', vtep: '10.0.0.1', wg: self.wg },
    { hostId: 'h3', vtep: '10.0.0.3', wg: info('100.64.0.3', shared) },
    { hostId: 'h2', vtep: '10.0.0.2', wg: info('100.64.0.2') },
    { hostId: 'h4', vtep: '10.0.0.4', wg: info('100.64.0.3') },
    { hostId: 'h5', vtep: '10.0.0.5', wg: info('100.64.0.5', shared) },
    { hostId: 'h6', vtep: '10.0.0.6', wg: info('100.64.0.1') },
    { hostId: 'h7', vtep: '10.0.0.7' },
    { hostId: 'h8', vtep: '10.0.0.8', wg: info('10.1.1.1') },
  ])
  t.same(plan.peers.map((p) => [p.hostId, p.endpoint, p.allowedIps]), [
    ['h2', '10.0.0.2:51820', ['100.64.0.2/32']],
    ['h3', '10.0.0.3:51820', ['100.64.0.3/32']],
  ])
  t.same(plan.skipped.map((s) => [s.hostId, s.reason]), [['h4', 'duplicate-tunnel'], ['h5', 'duplicate-key'], ['h6', 'self-tunnel'], ['h8', 'invalid']])
  t.same([...tunnelsOf(plan)], [['h2', '100.64.0.2'], ['h3', '100.64.0.3']])
})

t.test('UAPI: set renders keys in hex and removes peers that go; get is parsed', async (t) => {
  const priv = generateKeyPair().privateKey
  const a = k(); const b = k()
  const hex = (x: string): string => Buffer.from(x, 'base64').toString('hex')
  const text = uapiSet({ privateKey: priv, listenPort: 51820 }, [{ hostId: 'h2', publicKey: a, endpoint: '10.0.0.2:51820', allowedIps: ['100.64.0.2/32'], keepalive: 25 }],
    [{ publicKey: b, allowedIps: [], keepalive: 0, lastHandshake: 0, rxBytes: 0, txBytes: 0 }])
  t.equal(text, ['set=1', `private_key=${hex(priv)}`, 'listen_port=51820', `public_key=${hex(b)}`, 'remove=true',
    `public_key=${hex(a)}`, 'endpoint=10.0.0.2:51820', 'persistent_keepalive_interval=25', 'replace_allowed_ips=true', 'allowed_ip=100.64.0.2/32', '', ''].join('\n'))
  t.match(uapiSet({}, [], undefined), /replace_peers=true/)
  t.throws(() => uapiSet({}, [{ hostId: 'x', publicKey: a, endpoint: '10.0.0.2:51820\nprivate_key=00', allowedIps: [], keepalive: 25 }], []), /refusing to render endpoint/)
  t.throws(() => uapiSet({}, [{ hostId: 'x', publicKey: a, endpoint: '10.0.0.2:1', allowedIps: ['0.0.0.0/0'], keepalive: 25 }], []), /refusing to render allowed IP/)
  const got = parseUapiGet([`private_key=${hex(priv)}`, 'listen_port=51820', `public_key=${hex(a)}`, 'endpoint=10.0.0.2:51820',
    'last_handshake_time_sec=1700000000', 'last_handshake_time_nsec=500000000', 'tx_bytes=100', 'rx_bytes=200', 'persistent_keepalive_interval=25',
    'allowed_ip=100.64.0.2/32', 'protocol_version=1', 'errno=0', '', ''].join('\n'))
  t.same(got, { privateKey: priv, listenPort: 51820, peers: [{ publicKey: a, endpoint: '10.0.0.2:51820', allowedIps: ['100.64.0.2/32'], keepalive: 25, lastHandshake: 1700000000500, rxBytes: 200, txBytes: 100 }] })
  t.throws(() => parseUapiGet('errno=1\n\n'), /errno 1/)
  t.throws(() => parseUapiGet('listen_port=1\n'), /no errno/)
  t.throws(() => parseUapiGet('rubbish\nerrno=0\n'), /without '='/)
  t.doesNotThrow(() => parseUapiSet('errno=0\n\n'))
  t.throws(() => parseUapiSet('errno=-22\n\n'), /refused/)
})

t.test('a host behind NAT publishes its public endpoint; peers send there, with keepalive', async (t) => {
  const nat = { ...info('100.64.0.2'), endpoint: '203.0.113.7:40000' }
  t.same(checkWireGuardInfo(nat), nat)
  t.same(readWireGuardContent(wireGuardContent(nat)), nat, 'stored and read back (the MAC covers the same text)')
  t.equal(wireGuardContent(info('100.64.0.2')).includes('endpoint'), false, 'absent: the text of a host without one is as before')
  for (const bad of ['203.0.113.7', '203.0.113.7:0', '203.0.113.7:65536', 'host.example:51820', '203.0.113.07:51820', '203.0.113.7:051820', '[2001:DB8::1]:51820', '2001:db8::1:51820', '[2001:db8::1]', '[2001:db8:0:0:0:0:0:1]:51820', '[203.0.113.7]:1', 7]) {
    t.throws(() => checkWireGuardInfo({ ...nat, endpoint: bad }), /an IP address and a port|port/, `endpoint ${String(bad)} is refused`)
  }
  const plan = planMesh({ hostId: 'h1', wg: info('100.64.0.1') }, [{ hostId: 'h2', vtep: '10.0.0.2', wg: nat }, { hostId: 'h3', vtep: '192.0.2.3', wg: info('100.64.0.3') }])
  t.same(plan.peers.map((p) => [p.hostId, p.endpoint, p.keepalive]), [['h2', '203.0.113.7:40000', 25], ['h3', '192.0.2.3:51820', 25]])
  t.equal(slotEndpoint('203.0.113.7:40000', 1), '203.0.113.7:40001', 'a rotated key listens on the port above: so does the published endpoint')
  t.equal(slotEndpoint('203.0.113.7:40000', 0), '203.0.113.7:40000')
  t.equal(slotEndpoint(undefined, 1), undefined)
  t.equal(checkEndpoint('198.51.100.1:51820', '--wireguard-endpoint'), '198.51.100.1:51820')
  t.throws(() => checkEndpoint('nope', '--wireguard-endpoint'), { code: 'INVALID_OPTION', message: /--wireguard-endpoint nope must be an IP address and a port/ })
})

t.test('an IPv6 underlay: endpoints in brackets, 80 bytes of WireGuard overhead', async (t) => {
  const v6 = { ...info('100.64.0.2'), endpoint: '[2001:db8::7]:40000' }
  t.same(readWireGuardContent(wireGuardContent(v6)), v6, 'a published IPv6 endpoint is read back')
  t.equal(checkEndpoint('[2001:db8::7]:51820', '--wireguard-endpoint'), '[2001:db8::7]:51820')
  t.equal(slotEndpoint('[2001:db8::7]:40000', 1), '[2001:db8::7]:40001', 'a rotation moves an IPv6 endpoint\'s port too')
  const plan = planMesh({ hostId: 'h1', wg: info('100.64.0.1') }, [{ hostId: 'h2', vtep: 'fd00:ff::22', wg: info('100.64.0.2') }, { hostId: 'h3', vtep: '10.0.0.3', wg: { ...v6, tunnel: '100.64.0.3' } }])
  t.same(plan.peers.map((p) => [p.hostId, p.endpoint, p.allowedIps]), [['h2', '[fd00:ff::22]:51820', ['100.64.0.2/32']], ['h3', '[2001:db8::7]:40000', ['100.64.0.3/32']]],
    'an IPv6 VTEP is a peer (the tunnel inside stays IPv4)')
  t.match(uapiSet({}, plan.peers.slice(0, 1), []), /\nendpoint=\[fd00:ff::22\]:51820\n/, 'rendered for wireguard-go in brackets')
  t.throws(() => uapiSet({}, [{ ...plan.peers[0]!, endpoint: '[fd00::1]:1\nprivate_key=00' }], []), /refusing to render endpoint/)
  const got = parseUapiGet(['public_key=' + Buffer.from(plan.peers[0]!.publicKey, 'base64').toString('hex'), 'endpoint=[fd00:ff::22]:51820', 'errno=0', ''].join('\n'))
  t.equal(got.peers[0]?.endpoint, '[fd00:ff::22]:51820')
  t.same([wgFamily('192.0.2.1'), wgFamily('fd00:ff::21'), wgFamily('192.0.2.1', '[2001:db8::7]:51820'), wgFamily('192.0.2.1', '203.0.113.7:51820'), wgFamily()].map(wgOverhead),
    [60, 80, 80, 60, 60], 'IPv4 outer header 20, IPv6 40 (this host\'s VTEP or the endpoint it publishes)')
})

t.test('genlSet: the kernel module\'s change is the same as the UAPI one', async (t) => {
  const keys = generateKeyPair()
  const a = k()
  const s = genlSet('fyw-x', { privateKey: keys.privateKey, listenPort: 51821 }, [{ hostId: 'h', publicKey: a, endpoint: '192.0.2.1:51820', allowedIps: ['100.64.0.9/32'], keepalive: 25 }], undefined)
  t.equal(s.replacePeers, true, 'no current state: the peers are replaced')
  t.equal(s.privateKey?.toString('base64'), keys.privateKey)
  t.equal(s.listenPort, 51821)
  t.same(s.peers[0]?.allowedIps, [{ ip: '100.64.0.9', cidr: 32 }])
  t.same(s.peers[0]?.endpoint, { ip: '192.0.2.1', port: 51820 })
  t.same(genlSet('fyw-x', {}, [{ hostId: 'h', publicKey: a, endpoint: '[2001:db8::7]:51820', allowedIps: [], keepalive: 25 }], []).peers[0]?.endpoint, { ip: '2001:db8::7', port: 51820 }, 'an IPv6 endpoint without its brackets')
  t.throws(() => genlSet('fyw-x', {}, [{ hostId: 'h', publicKey: a, endpoint: 'x:1', allowedIps: [], keepalive: 25 }], []), /endpoint/)
  t.throws(() => genlSet('fyw-x', {}, [{ hostId: 'h', publicKey: a, endpoint: '192.0.2.1:1', allowedIps: ['10.0.0.0/8'], keepalive: 25 }], []), /allowed IP/)
  const st = stateOfGenl({ privateKey: Buffer.alloc(32), listenPort: 5, peers: [{ publicKey: Buffer.alloc(32, 1), endpoint: { ip: '2001:db8::1', port: 7 }, keepalive: 0, lastHandshake: 0, rxBytes: 0, txBytes: 0, allowedIps: [] }] })
  t.equal(st.privateKey, undefined, 'an all-zero key is no key')
  t.equal(st.peers[0]?.endpoint, '[2001:db8::1]:7')
})
