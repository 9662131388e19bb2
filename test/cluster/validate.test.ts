/** What is read from Redis about WireGuard: a host's information and an overlay's encryption, strict schema, covered by the cluster key's MAC. */
import t from 'tap'
import { ClusterKey } from '../../src/cluster/key.js'
import {
  MAX_PORTS, MAX_VTEP_RECORD, checkSecondVtep, hostVtepContent, readHostVtep, checkEndpoint, checkOverlayAddress, checkOverlayRequest, endpointContent, endpointKeyName, hostContent, overlayContent, readChange, readEndpoint, readHost, readOverlayDefinition,
} from '../../src/cluster/validate.js'
import { generateKeyPair } from '../../src/wireguard/keys.js'
import { wireGuardContent } from '../../src/wireguard/plan.js'

const wg = { publicKey: generateKeyPair().publicKey, port: 51820, tunnel: '100.64.7.9' }
const row = { hostId: 'h1', vtep: '192.0.2.1', version: '1', lastHeartbeat: 1, expiresAt: 2, registeredAt: 1 }

t.test('a host row with WireGuard information is read into its parts', async (t) => {
  const r = readHost({ ...row, wg: wireGuardContent(wg) })
  t.same(r, { ok: true, value: { ...row, wg } })
  t.same(readHost(row), { ok: true, value: row }, 'a host without it is fine')
})

t.test('bad WireGuard information refuses the host', async (t) => {
  for (const bad of [
    JSON.stringify({ ...wg, publicKey: 'AAAA' }),
    JSON.stringify({ ...wg, tunnel: '100.64.7.9/32' }),
    JSON.stringify({ ...wg, port: 70000 }),
    JSON.stringify({ ...wg, extra: true }),
    JSON.stringify({ port: wg.port, publicKey: wg.publicKey, tunnel: wg.tunnel }),
    'x'.repeat(1000),
    42,
  ]) {
    const r = readHost({ ...row, wg: bad })
    t.equal(r.ok, false, String(bad).slice(0, 60))
  }
})

t.test('with a cluster key, the MAC covers the WireGuard information', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('host', 'h1', hostContent({ hostId: 'h1', vtep: row.vtep, wg }))
  t.equal(readHost({ ...row, wg: wireGuardContent(wg), sig }, key).ok, true)
  const forged = { ...wg, publicKey: generateKeyPair().publicKey }
  const r = readHost({ ...row, wg: wireGuardContent(forged), sig }, key)
  t.match(r, { ok: false, reason: 'bad-mac' }, 'another key under the same MAC is refused')
  t.match(readHost({ ...row, sig }, key), { ok: false, reason: 'bad-mac' }, 'and so is the information removed')
  const nat = { ...wg, endpoint: '203.0.113.7:51820' }
  const natSig = key.sign('host', 'h1', hostContent({ hostId: 'h1', vtep: row.vtep, wg: nat }))
  t.equal(readHost({ ...row, wg: wireGuardContent(nat), sig: natSig }, key).ok, true, 'a public endpoint (behind NAT) is signed with it')
  t.match(readHost({ ...row, wg: wireGuardContent({ ...nat, endpoint: '198.51.100.9:51820' }), sig: natSig }, key), { ok: false, reason: 'bad-mac' }, 'and cannot be redirected')
})

t.test('a host-up message carries it', async (t) => {
  const r = readChange({ kind: 'host-up', rev: 3, host: { hostId: 'h1', vtep: row.vtep, version: '1', wg: wireGuardContent(wg) } })
  t.same(r, { ok: true, value: { kind: 'host-up', rev: 3, host: { hostId: 'h1', vtep: row.vtep, version: '1', wg } } })
})

// Dual-stack overlays: the definition's IPv6 side and an endpoint's IPv6 address, read as strictly as the IPv4 ones.
const def = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', vni: 4096, createdBy: 'h1', createdAt: 1 }
const def6 = { ...def, subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' }
const ep = { endpointId: 'ep1', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02', hostId: 'h2', vtep: '192.0.2.2' }
const ctx6 = { overlay: 'ov1', subnet: def6.subnet, gateway: def6.gateway, subnet6: def6.subnet6, gateway6: def6.gateway6 }

t.test('a dual-stack definition is read with its IPv6 subnet and gateway; a malformed IPv6 side refuses it', async (t) => {
  t.same(readOverlayDefinition(def6), { ok: true, value: def6 })
  t.same(readOverlayDefinition(def), { ok: true, value: def }, 'an IPv4-only one has none')
  for (const [bad, why] of [
    [{ ...def6, gateway6: undefined }, /gateway6 is not a string/],
    [{ ...def6, subnet6: 'fd00:30:0::/64' }, /not canonical/],
    [{ ...def6, gateway6: 'fd00:30:0::1' }, /not canonical/],
    [{ ...def6, subnet6: '10.40.0.0/16' }, /not an IPv6|IPv6/],
    [{ ...def6, gateway6: 'fd00:31::1' }, /IPv6 gateway fd00:31::1 is not a host address of fd00:30::\/64/],
    [{ ...def6, gateway6: 'fd00:30::' }, /not a host address/],
    [{ ...def6, subnet6: 'fd00:30::/24' }, /prefix from \/48 to \/120/],
    [{ ...def6, subnet6: 7 }, /subnet6 is not a string/],
  ] as const) {
    t.match(readOverlayDefinition(bad), { ok: false, reason: 'invalid', detail: why }, JSON.stringify(bad).slice(0, 80))
  }
})

t.test('with a cluster key, the MAC covers the IPv6 side of a definition', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('overlay', 'ov1', overlayContent(def6))
  t.equal(readOverlayDefinition({ ...def6, sig }, key).ok, true)
  t.match(readOverlayDefinition({ ...def6, subnet6: 'fd00:31::/64', gateway6: 'fd00:31::1', sig }, key), { ok: false, reason: 'bad-mac' }, 'another IPv6 subnet')
  t.match(readOverlayDefinition({ ...def, sig }, key), { ok: false, reason: 'bad-mac' }, 'the IPv6 side removed')
})

t.test('an endpoint\'s IPv6 address: canonical, in the overlay\'s IPv6 subnet, not its gateway, only on a dual-stack overlay', async (t) => {
  t.same(readEndpoint({ ...ep, ip6: 'fd00:30::2' }, ctx6), { ok: true, value: { ...ep, ip6: 'fd00:30::2' } })
  t.same(readEndpoint(JSON.stringify({ ...ep, ip6: 'fd00:30::2' }), ctx6), { ok: true, value: { ...ep, ip6: 'fd00:30::2' } }, 'as stored JSON')
  t.same(readEndpoint(ep, ctx6), { ok: true, value: ep }, 'an endpoint without one on a dual-stack overlay')
  t.match(readEndpoint({ ...ep, ip6: 'fd00:30:0::2' }, ctx6), { ok: false, reason: 'invalid', detail: /not canonical/ })
  t.match(readEndpoint({ ...ep, ip6: 'FD00:30::2' }, ctx6), { ok: false, reason: 'invalid', detail: /not canonical/ })
  t.match(readEndpoint({ ...ep, ip6: '10.30.0.9' }, ctx6), { ok: false, reason: 'invalid', detail: /not an IPv6 address/ })
  t.match(readEndpoint({ ...ep, ip6: 42 }, ctx6), { ok: false, reason: 'invalid', detail: /ip6 is not a string/ })
  t.match(readEndpoint({ ...ep, ip6: 'fd00:99::2' }, ctx6), { ok: false, reason: 'outside-subnet', detail: /fd00:99::2 is not a host address of overlay ov1 \(fd00:30::\/64\)/ })
  t.match(readEndpoint({ ...ep, ip6: 'fd00:30::1' }, ctx6), { ok: false, reason: 'outside-subnet', detail: /claims the IPv6 gateway address fd00:30::1/ })
  t.match(readEndpoint({ ...ep, ip6: 'fd00:30::2' }, { overlay: 'ov1', subnet: def.subnet, gateway: def.gateway }), { ok: false, reason: 'outside-subnet', detail: /on an IPv4-only overlay/ })
  t.same(readEndpoint({ ...ep, ip6: 'fd00:30::2' }, { overlay: 'ov1' }), { ok: true, value: { ...ep, ip6: 'fd00:30::2' } }, 'a pushed message (no definition at hand): schema only')
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), endpointContent({ ...ep, ip6: 'fd00:30::2' }))
  t.equal(readEndpoint({ ...ep, ip6: 'fd00:30::2', sig }, ctx6, key).ok, true)
  t.match(readEndpoint({ ...ep, ip6: 'fd00:30::3', sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'the MAC covers the IPv6 address')
  t.match(readEndpoint({ ...ep, sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'and its absence')
})

t.test('the write path: a host\'s own endpoint and overlay request with their IPv6 side, canonical', async (t) => {
  t.same(checkEndpoint({ ...ep, ip6: 'FD00:30:0::2' }), { ...ep, ip6: 'fd00:30::2' })
  t.throws(() => checkEndpoint({ ...ep, ip6: '10.30.0.3' }), { code: 'INVALID_CIDR', message: /endpoint IPv6 address "10.30.0.3" is not an IPv6 address/ })
  t.same(checkOverlayRequest({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::5/64', gateway6: 'FD00:30::1' }),
    { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' })
  t.throws(() => checkOverlayRequest({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::/64' }), { code: 'INVALID_OPTION' })
  t.same(checkOverlayAddress('ov1', 'fd00:30::/120', 'fd00:30::ff'), 'fd00:30::ff', 'IPv6 has no broadcast address: the last one is a host')
  t.throws(() => checkOverlayAddress('ov1', 'fd00:30::/120', 'fd00:30::'), { code: 'ADDRESS_OUT_OF_POOL' }, 'the subnet-router anycast address is not handed out')
})

t.test('an IPv6 underlay: a host and an endpoint with an IPv6 VTEP, canonical', async (t) => {
  t.same(readHost({ ...row, vtep: 'fd00:ff::1' }), { ok: true, value: { ...row, vtep: 'fd00:ff::1' } })
  t.match(readHost({ ...row, vtep: 'FD00:ff::1' }), { ok: false, detail: /VTEP address FD00:ff::1 is not canonical/ })
  t.same(readEndpoint({ ...ep, vtep: 'fd00:ff::2' }, ctx6), { ok: true, value: { ...ep, vtep: 'fd00:ff::2' } })
  t.match(readEndpoint({ ...ep, vtep: 'fd00:ff::/64' }, ctx6), { ok: false, detail: /is not an IP address/ })
  t.same(checkEndpoint({ ...ep, vtep: 'FD00:FF:0::2' }).vtep, 'fd00:ff::2')
})

const defE = { name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1', vni: 4100, createdBy: 'h1', createdAt: 5 }

t.test('an overlay definition carries its encryption', async (t) => {
  t.same(readOverlayDefinition({ ...defE, encrypt: 'wireguard' }), { ok: true, value: { ...defE, encrypt: 'wireguard' } })
  t.same(readOverlayDefinition(defE), { ok: true, value: defE }, 'absent: plain')
  t.same(readOverlayDefinition({ ...defE, encrypt: '' }), { ok: true, value: defE }, 'empty (as Redis answers a missing field): plain')
  for (const bad of ['ipsec', 'WireGuard', 7, null]) {
    t.match(readOverlayDefinition({ ...defE, encrypt: bad }), { ok: false, reason: 'invalid' }, `encrypt ${String(bad)} is refused`)
  }
  t.equal(overlayContent(defE), '{"name":"ove","subnet":"10.39.0.0/24","gateway":"10.39.0.1","vni":4100}', 'a plain definition is signed as before')
})

t.test('with a cluster key, the MAC covers the encryption of a definition', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 9))
  const sig = key.sign('overlay', 'ove', overlayContent({ ...defE, encrypt: 'wireguard' }))
  t.match(readOverlayDefinition({ ...defE, encrypt: 'wireguard', sig }, key), { ok: true, value: { encrypt: 'wireguard' } })
  t.match(readOverlayDefinition({ ...defE, sig }, key), { ok: false, reason: 'bad-mac' }, 'the flag removed (made plain) is refused')
  const plainSig = key.sign('overlay', 'ove', overlayContent(defE))
  t.match(readOverlayDefinition({ ...defE, encrypt: 'wireguard', sig: plainSig }, key), { ok: false, reason: 'bad-mac' }, 'and added to a plain one')
  const msg = { kind: 'overlay-defined', rev: 4, overlay: { ...defE, encrypt: 'wireguard', sig } }
  t.match(readChange(msg, key), { ok: true, value: { overlay: { encrypt: 'wireguard' } } }, 'an overlay-defined message carries it')
  t.match(readChange({ ...msg, overlay: { ...defE, sig } }, key), { ok: false, reason: 'bad-mac' })
})

// Published ports (SRV for remote endpoints): an optional, bounded field, strict on read, covered by the MAC.
const ports = [{ proto: 'tcp', port: 80, hostPort: 8080 }, { proto: 'udp', port: 53, hostPort: 5353, hostIp: '192.168.50.2' }, { proto: 'tcp', port: 443, hostPort: 443, hostIp: 'fd00::7' }]

t.test('an endpoint\'s published ports are read; a record without them (an older host\'s) still is', async (t) => {
  t.same(readEndpoint({ ...ep, ports }, ctx6), { ok: true, value: { ...ep, ports } })
  t.same(readEndpoint(JSON.stringify({ ...ep, ports }), ctx6), { ok: true, value: { ...ep, ports } }, 'as stored JSON')
  t.same(readEndpoint(ep, ctx6), { ok: true, value: ep }, 'no field: no ports')
  t.same(readEndpoint(JSON.parse(endpointContent({ ...ep, ports: [{ hostIp: '10.0.0.1', hostPort: 2, port: 1, proto: 'tcp' }] as never })), ctx6),
    { ok: true, value: { ...ep, ports: [{ proto: 'tcp', port: 1, hostPort: 2, hostIp: '10.0.0.1' }] } }, 'the stored form has a fixed key order')
  t.same(readChange({ kind: 'endpoint-published', rev: 4, overlay: 'ov1', endpoint: { ...ep, ports } }), { ok: true, value: { kind: 'endpoint-published', rev: 4, overlay: 'ov1', endpoint: { ...ep, ports } } }, 'pushed with the record')
})

t.test('hostile published ports refuse the endpoint, with a sentence naming the bad one', async (t) => {
  const many = Array.from({ length: MAX_PORTS + 1 }, (_, i) => ({ proto: 'tcp', port: i + 1, hostPort: i + 1 }))
  const cases: Array<[unknown, RegExp]> = [
    [[], /published ports must be an array of 1 to 64 ports/],
    [many, /published ports must be an array of 1 to 64 ports/],
    ['80/tcp', /published ports must be an array/],
    [{ 0: ports[0] }, /published ports must be an array/],
    [[null], /published port 1 is not an object/],
    [[ports[0], [80]], /published port 2 is not an object/],
    [[{ proto: 'sctp', port: 80, hostPort: 80 }], /published port 1: its protocol must be "tcp" or "udp"/],
    [[{ proto: 'TCP', port: 80, hostPort: 80 }], /its protocol must be "tcp" or "udp"/],
    [[{ proto: 'tcp', port: 0, hostPort: 80 }], /published port 1: its container port must be a whole number from 1 to 65535/],
    [[{ proto: 'tcp', port: 65536, hostPort: 80 }], /its container port must be a whole number from 1 to 65535/],
    [[{ proto: 'tcp', port: 80.5, hostPort: 80 }], /its container port must be a whole number/],
    [[{ proto: 'tcp', port: '80', hostPort: 80 }], /its container port must be a whole number/],
    [[{ proto: 'tcp', port: 80 }], /its host port must be a whole number from 1 to 65535/],
    [[{ proto: 'tcp', port: 80, hostPort: -1 }], /its host port must be a whole number/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, hostIp: 'example.com' }], /published port 1: its host address "example.com" is not an IP address/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, hostIp: 'FD00::7' }], /published port 1: its host address FD00::7 is not canonical/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, hostIp: 7 }], /its host address is not a string/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, Weight: 5 }], /published port 1 has an unknown field with a name ferry does not give fields \("Weight"\)/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, weight: 'x'.repeat(5000) }], /published port 1's unknown field "weight" is longer than 4096 bytes/],
    [[{ proto: 'tcp', port: 80, hostPort: 80, ['__proto__']: {} }], /unknown field|not an object/],
  ]
  for (const [bad, detail] of cases) {
    t.match(readEndpoint({ ...ep, ports: bad }, ctx6), { ok: false, reason: 'invalid', detail }, JSON.stringify(bad).slice(0, 80))
  }
  t.match(readEndpoint(JSON.stringify({ ...ep, ports: Array.from({ length: 2000 }, () => ports[0]) }), ctx6), { ok: false, reason: 'too-large' }, 'a huge record is refused unparsed')
  t.throws(() => checkEndpoint({ ...ep, ports: [{ proto: 'tcp', port: 0, hostPort: 1 }] }), /its container port must be a whole number/, 'the write path runs the same checks')
  t.same(checkEndpoint({ ...ep, ports: [] }), ep, 'none published: no field, as an older host\'s record')
})

t.test('with a cluster key, the MAC covers the published ports', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), endpointContent({ ...ep, ports } as never))
  t.equal(readEndpoint({ ...ep, ports, sig }, ctx6, key).ok, true)
  t.match(readEndpoint({ ...ep, ports: [{ ...ports[0], port: 22 }, ...ports.slice(1)], sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'another container port under the same MAC')
  t.match(readEndpoint({ ...ep, ports: ports.slice(1), sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'a port removed')
  t.match(readEndpoint({ ...ep, sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'all removed')
  const plain = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), endpointContent(ep))
  t.match(readEndpoint({ ...ep, ports, sig: plain }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'ports added to a record signed without them')
  t.equal(readEndpoint({ ...ep, sig: plain }, ctx6, key).ok, true, 'a signed record without them (an older host\'s) is fine')
})

// Forward compatibility: a newer version's optional fields are ignored when bounded, and covered by the MAC.
t.test('an endpoint record with an unknown optional field is read, the field ignored', async (t) => {
  const newer = { ...ep, ports, weight: 5, labels: { tier: 'web' } }
  t.same(readEndpoint(newer, ctx6), { ok: true, value: { ...ep, ports } })
  t.same(readEndpoint(JSON.stringify(newer), ctx6), { ok: true, value: { ...ep, ports } }, 'as stored JSON')
  t.same(readChange({ kind: 'endpoint-published', rev: 4, overlay: 'ov1', endpoint: newer }), { ok: true, value: { kind: 'endpoint-published', rev: 4, overlay: 'ov1', endpoint: { ...ep, ports } } },
    'and as pushed')
  t.match(readEndpoint({ ...newer, ip: 7 }, ctx6), { ok: false, reason: 'invalid', detail: /ip is not a string/ }, 'a known field of the wrong type still refuses it')
  t.match(readEndpoint({ ...newer, names: 'web' }, ctx6), { ok: false, reason: 'invalid' })
})

t.test('unknown fields that are not bounded refuse the record', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ weight: 'x'.repeat(5000) }, /unknown field "weight" is longer than 4096 bytes/],
    [Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, i])), /more than 8 unknown fields/],
    [{ Weight: 1 }, /a name ferry does not give fields/],
    [{ 'x-y': 1 }, /a name ferry does not give fields/],
    [{ ['a'.repeat(33)]: 1 }, /a name ferry does not give fields/],
    [JSON.parse('{"__proto__":{"admin":true}}') as Record<string, unknown>, /a name ferry does not give fields/],
  ]
  for (const [extra, detail] of cases) {
    t.match(readEndpoint({ ...ep, ...extra }, ctx6), { ok: false, reason: 'invalid', detail }, Object.keys(extra).join(',').slice(0, 60))
  }
  t.match(readEndpoint(JSON.stringify({ ...ep, pad: 'x'.repeat(20_000) }), ctx6), { ok: false, reason: 'too-large' }, 'an oversized record is refused unparsed')
})

t.test('with a cluster key, the MAC covers unknown fields too', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 7))
  // A newer version signs its record with the new field after every field this one knows.
  const content = JSON.stringify({ ...JSON.parse(endpointContent({ ...ep, ports } as never)) as object, weight: 5 })
  const sig = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), content)
  const stored = `${content.slice(0, -1)},"sig":${JSON.stringify(sig)}}`
  t.same(readEndpoint(stored, ctx6, key), { ok: true, value: { ...ep, ports } }, 'signed by the newer host: accepted, the field ignored')
  t.match(readEndpoint(stored.replace('"weight":5', '"weight":6'), ctx6, key), { ok: false, reason: 'bad-mac' }, 'the unknown field changed under the MAC')
  t.match(readEndpoint(stored.replace(',"weight":5', ''), ctx6, key), { ok: false, reason: 'bad-mac' }, 'or removed')
  const plain = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), endpointContent({ ...ep, ports } as never))
  t.match(readEndpoint({ ...ep, ports, weight: 5, sig: plain }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'or added to a record signed without it')
  t.match(readEndpoint({ ...ep, ports, weight: 5 }, ctx6, key), { ok: false, reason: 'missing-mac' }, 'unsigned')
})

t.test('a host-up message with an unknown optional field is read, the field ignored', async (t) => {
  const host = { hostId: 'h1', vtep: '192.0.2.1', version: '0.2.0', vtep6: 'fd00::1' }
  t.same(readChange({ kind: 'host-up', rev: 3, host }), { ok: true, value: { kind: 'host-up', rev: 3, host: { hostId: 'h1', vtep: '192.0.2.1', version: '0.2.0' } } })
  t.match(readChange({ kind: 'host-up', rev: 3, host: { ...host, vtep6: 'x'.repeat(5000) } }), { ok: false, reason: 'invalid', detail: /longer than 4096 bytes/ })
  t.match(readChange({ kind: 'host-up', rev: 3, host: { ...host, vtep: 7 } }), { ok: false, reason: 'invalid' }, 'a known field of the wrong type still refuses it')
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const sig = key.sign('host', 'h1', hostContent({ hostId: 'h1', vtep: '192.0.2.1' }))
  t.equal(readChange({ kind: 'host-up', rev: 3, host: { ...host, sig } }, key).ok, true, 'the host MAC covers hostId, vtep and wg only')
  t.match(readChange({ kind: 'host-up', rev: 3, host }, key), { ok: false, reason: 'missing-mac' }, 'an unsigned one is still refused')
})

t.test('a published port with an unknown optional field is read, the field ignored and covered by the MAC; the write path stays strict', async (t) => {
  const newer = [{ ...ports[0], name: 'http' }, ...ports.slice(1)]
  t.same(readEndpoint({ ...ep, ports: newer }, ctx6), { ok: true, value: { ...ep, ports } })
  const key = new ClusterKey(Buffer.alloc(32, 7))
  const content = JSON.stringify({ ...JSON.parse(endpointContent({ ...ep } as never)) as object, ports: newer })
  const sig = key.sign('endpoint', endpointKeyName('ov1', 'ep1'), content)
  t.same(readEndpoint(`${content.slice(0, -1)},"sig":${JSON.stringify(sig)}}`, ctx6, key), { ok: true, value: { ...ep, ports } }, 'signed with the port\'s new field')
  t.match(readEndpoint({ ...ep, ports: [{ ...ports[0], name: 'https' }, ...ports.slice(1)], sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'the field changed under the MAC')
  t.match(readEndpoint({ ...ep, ports, sig }, ctx6, key), { ok: false, reason: 'bad-mac' }, 'or removed')
  t.throws(() => checkEndpoint({ ...ep, ports: newer as never }), /published port 1 has an unknown field "name"/, 'a host never writes a field it does not know')
})

t.test('a dual-stack host\'s second VTEP record: strict schema, the other family, its host, its size, the cluster key\'s MAC', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 3))
  const rec = { hostId: 'h3', vtep: 'fd00:ff::3' }
  const sig = key.sign('host', 'h3|vtep2', hostVtepContent(rec))
  const text = (o: Record<string, unknown>): string => JSON.stringify(o)
  t.same(readHostVtep(text({ ...rec, sig }), { hostId: 'h3', primary: '192.0.2.3' }, key), { ok: true, value: rec })
  t.same(readHostVtep(text(rec), { hostId: 'h3', primary: '192.0.2.3' }), { ok: true, value: rec }, 'without a key, no MAC is needed')
  const refused: Array<[string, string, Record<string, unknown>, string]> = [
    ['no MAC', text(rec), { reason: 'missing-mac' }, ''],
    ['a MAC of another record', text({ ...rec, vtep: 'fd00:ff::4', sig }), { reason: 'bad-mac' }, ''],
    ['a MAC moved from the host record', text({ ...rec, sig: key.sign('host', 'h3', hostVtepContent(rec)) }), { reason: 'bad-mac' }, ''],
    ['the first VTEP\'s family', text({ hostId: 'h3', vtep: '192.0.2.33' }), { reason: 'invalid', detail: 'the second VTEP address 192.0.2.33 is IPv4 like the first (192.0.2.3): a host advertises at most one address per family' }, 'nokey'],
    ['another host', text({ ...rec, hostId: 'h4' }), { reason: 'invalid', detail: 'its second VTEP record names another host (h4)' }, 'nokey'],
    ['an unknown field', text({ ...rec, vtep3: 'x' }), { reason: 'invalid', detail: 'the second VTEP record has an unknown field "vtep3"' }, 'nokey'],
    ['not canonical', text({ ...rec, vtep: 'FD00:FF:0::3' }), { reason: 'invalid', detail: 'VTEP address FD00:FF:0::3 is not canonical' }, 'nokey'],
    ['not an address', text({ ...rec, vtep: 'fd00::/64' }), { reason: 'invalid' }, 'nokey'],
    ['oversized', text({ ...rec, pad: 'x'.repeat(MAX_VTEP_RECORD) }), { reason: 'too-large' }, 'nokey'],
    ['not JSON', '{', { reason: 'invalid', detail: 'its second VTEP record is not JSON' }, 'nokey'],
    ['not text', 42 as unknown as string, { reason: 'invalid' }, 'nokey'],
  ]
  for (const [what, raw, want, nokey] of refused) {
    t.match(readHostVtep(raw, { hostId: 'h3', primary: '192.0.2.3' }, nokey === 'nokey' ? undefined : key), { ok: false, ...want }, what)
  }
  t.equal(checkSecondVtep('fd00::1', '192.0.2.1'), '192.0.2.1')
  t.throws(() => checkSecondVtep('fd00::1', 'fd00::2'), { code: 'INVALID_OPTION', message: /is IPv6 like the first \(fd00::1\)/ })
})

t.test('the host record and its host-up message stay as older versions read them: a second VTEP is kept apart, never taken from them', async (t) => {
  t.same(readHost(row), { ok: true, value: row }, 'a host record without a second VTEP (every older one) is read as before')
  // A newer version's field in the message's host is ignored (forward compatibility), not taken as the host's second VTEP.
  const up = readChange({ kind: 'host-up', rev: 5, host: { hostId: 'h1', vtep: '192.0.2.1', version: '1', vtep2: 'fd00::1' } })
  t.ok(up.ok && up.value.kind === 'host-up' && up.value.host.vtep2 === undefined, 'a vtep2 in the message is ignored')
  t.match(readChange({ kind: 'host-up', rev: 5, vtep2: 'fd00::1', host: { hostId: 'h1', vtep: '192.0.2.1', version: '1' } }), { ok: false, reason: 'invalid', detail: /unknown field "vtep2"/ })
})
