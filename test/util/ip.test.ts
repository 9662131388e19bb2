import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import {
  blockSize, bounds, canonical, compareIps, contains, containsCidr, familyOf, firstHost, formatCidr, fromReverseName, ipFromBytes,
  ipString, ipToBytes, ipValue, isCanonical, isCidr, isIp, lastAddress, lastHost, maskOf, networkAddress, normalizeIp, overlaps,
  parseAddress, parseCidr, prefixLen, prefixOf, reverseName, withPrefix,
} from '../../src/util/ip.js'

function code (fn: () => unknown): string | undefined {
  try { fn() } catch (err) { return err instanceof FerryError ? err.code : 'not a FerryError' }
  return undefined
}

t.test('IPv4 values round trip', async (t) => {
  t.equal(ipValue('0.0.0.0'), 0n)
  t.equal(ipValue('10.0.0.1'), 167772161n)
  t.equal(ipValue('255.255.255.255'), 0xffffffffn)
  for (const ip of ['0.0.0.0', '1.2.3.4', '128.0.0.0', '172.17.0.1', '255.255.255.255', '10.255.0.254']) {
    t.equal(ipString(4, ipValue(ip)), ip)
  }
})

t.test('IPv6 values round trip in RFC 5952 form', async (t) => {
  const cases: Array<[string, string]> = [
    ['fd00:0:0:0:0:0:0:5', 'fd00::5'],
    ['FD00::A', 'fd00::a'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['2001:db8::', '2001:db8::'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
  ]
  for (const [input, want] of cases) t.equal(normalizeIp(input), want, input)
  t.equal(ipValue('::1'), 1n)
  t.equal(familyOf('fd00::1'), 6)
  t.equal(familyOf('10.0.0.1'), 4)
  t.equal(familyOf('fd00::/64'), 6)
  t.equal(familyOf('nope'), undefined)
})

t.test('strict parsing, both families', async (t) => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-1', 'a.b.c.d', '1.2.3.4 ', ' 1.2.3.4', '1..2.3', '1.2.3.4/24',
    'fe80::1%eth0', '1::2::3', '02001:db8::1', '1:2:3:4:5:6:7:8:9', ' ::1', '::1 ', ':', 'g::1', '::/0']) {
    t.notOk(isIp(bad), `isIp(${JSON.stringify(bad)}) is false`)
    t.equal(code(() => ipValue(bad)), 'INVALID_CIDR', `ipValue(${JSON.stringify(bad)}) throws INVALID_CIDR`)
  }
  t.ok(isIp('0.0.0.0'))
  t.ok(isIp('::'))
  t.notOk(isIp('::1', 4))
  t.notOk(isIp('10.0.0.1', 6))
  t.match((() => { try { ipValue('300.1.1.1', 4) } catch (e) { return (e as Error).message } })(), /"300.1.1.1" is not a valid IPv4 address/)
})

t.test('parseCidr and canonical', async (t) => {
  t.same(parseCidr('10.20.0.0/24'), { family: 4, network: ipValue('10.20.0.0'), prefix: 24 })
  t.same(parseCidr('10.20.0.5/24'), { family: 4, network: ipValue('10.20.0.0'), prefix: 24 }, 'host bits cleared')
  t.same(parseCidr('fd00:1::5/64'), { family: 6, network: ipValue('fd00:1::'), prefix: 64 })
  t.equal(canonical('10.20.0.5/24'), '10.20.0.0/24')
  t.equal(canonical('10.20.0.5/32'), '10.20.0.5/32')
  t.equal(canonical('10.20.0.5/0'), '0.0.0.0/0')
  t.equal(canonical('172.21.200.1/14'), '172.20.0.0/14')
  t.equal(canonical('FD00:1:0:0::77/64'), 'fd00:1::/64')
  t.equal(canonical('fd00:1:2:3:4:5:6:7/48'), 'fd00:1:2::/48')
  t.equal(canonical('::/0'), '::/0')
  t.ok(isCanonical('10.20.0.0/24'))
  t.notOk(isCanonical('10.20.0.1/24'))
  t.ok(isCanonical('fd00::/64'))
  t.notOk(isCanonical('fd00:0::/64'), 'canonical means the canonical spelling too')
  t.equal(prefixLen('10.0.0.0/8'), 8)
  t.equal(formatCidr({ family: 4, network: ipValue('192.168.0.0'), prefix: 20 }), '192.168.0.0/20')
  for (const bad of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0/8', 'x/8', '10.0.0.0/24/1', 'fd00::/129', 'fd00::/064', 'fd00::']) {
    t.notOk(isCidr(bad), `isCidr(${bad}) is false`)
    t.equal(code(() => parseCidr(bad)), 'INVALID_CIDR', `parseCidr(${bad}) throws INVALID_CIDR`)
  }
  t.ok(isCidr('fd00::/64', 6))
  t.notOk(isCidr('fd00::/64', 4))
  t.equal(code(() => parseCidr('fd00::/64', 4)), 'INVALID_CIDR')
})

t.test('masks, bounds, hosts', async (t) => {
  t.equal(maskOf(4, 0), 0n)
  t.equal(maskOf(4, 8), 0xff000000n)
  t.equal(maskOf(4, 32), 0xffffffffn)
  t.equal(maskOf(6, 64), 0xffffffffffffffff0000000000000000n)
  t.equal(blockSize(4, 24), 256n)
  t.equal(blockSize(4, 0), 2n ** 32n)
  t.equal(blockSize(6, 64), 2n ** 64n)
  t.same(bounds('10.0.0.0/8'), { first: ipValue('10.0.0.0'), last: ipValue('10.255.255.255') })
  t.same(bounds('0.0.0.0/0'), { first: 0n, last: 0xffffffffn })
  t.same(bounds('fd00::/120'), { first: ipValue('fd00::'), last: ipValue('fd00::ff') })
  t.equal(networkAddress('10.20.0.77/24'), '10.20.0.0')
  t.equal(lastAddress('10.20.0.77/24'), '10.20.0.255')
  t.equal(firstHost('10.20.0.0/24'), '10.20.0.1')
  t.equal(lastHost('10.20.0.0/24'), '10.20.0.254')
  t.equal(firstHost('10.20.0.0/31'), '10.20.0.0', '/31 has no network address (RFC 3021)')
  t.equal(lastHost('10.20.0.0/31'), '10.20.0.1')
  t.equal(firstHost('10.20.0.9/32'), '10.20.0.9')
  t.equal(firstHost('fd00::/64'), 'fd00::1', 'the subnet-router anycast address is not a host')
  t.equal(lastHost('fd00::/64'), 'fd00::ffff:ffff:ffff:ffff', 'IPv6 has no broadcast address')
  t.equal(firstHost('fd00::/127'), 'fd00::', '/127 point-to-point (RFC 6164)')
})

t.test('contains, containsCidr, overlaps', async (t) => {
  t.ok(contains('10.20.0.0/24', '10.20.0.0'))
  t.ok(contains('10.20.0.0/24', '10.20.0.255'))
  t.notOk(contains('10.20.0.0/24', '10.20.1.0'))
  t.ok(contains('0.0.0.0/0', '200.1.2.3'))
  t.ok(contains('128.0.0.0/1', '255.255.255.255'))
  t.notOk(contains('128.0.0.0/1', '127.255.255.255'))
  t.ok(contains('fd00:1::/64', 'fd00:1::ffff'))
  t.notOk(contains('fd00:1::/64', 'fd00:2::1'))
  t.notOk(contains('0.0.0.0/0', '::1'), 'never across families')
  t.notOk(contains('::/0', '10.0.0.1'), 'never across families')

  t.ok(containsCidr('10.20.0.0/16', '10.20.5.0/24'))
  t.ok(containsCidr('10.20.0.0/24', '10.20.0.0/24'), 'a block contains itself')
  t.notOk(containsCidr('10.20.5.0/24', '10.20.0.0/16'))
  t.ok(containsCidr('fd00::/48', 'fd00:0:0:5::/64'))
  t.notOk(containsCidr('::/0', '10.0.0.0/8'))

  t.ok(overlaps('10.20.0.0/16', '10.20.0.0/24'))
  t.ok(overlaps('10.20.0.0/24', '10.20.0.0/16'), 'symmetric')
  t.notOk(overlaps('10.20.0.0/24', '10.20.1.0/24'), 'adjacent blocks do not overlap')
  t.ok(overlaps('10.20.0.5/24', '10.20.0.200/30'), 'non-canonical input uses its network')
  t.ok(overlaps('fd00::/48', 'fd00:0:0:1::/64'))
  t.notOk(overlaps('fd00::/64', 'fd00:0:0:1::/64'))
  t.notOk(overlaps('0.0.0.0/0', '::/0'), 'never across families')
})

t.test('withPrefix, parseAddress, prefixOf, compareIps', async (t) => {
  t.equal(withPrefix('10.0.0.5', 24), '10.0.0.5/24')
  t.equal(withPrefix('FD00:0::5', 64), 'fd00::5/64')
  t.same(parseAddress('10.0.0.5'), { ip: '10.0.0.5', family: 4 })
  t.same(parseAddress('10.0.0.5/24'), { ip: '10.0.0.5', prefix: 24, family: 4 })
  t.same(parseAddress('fd00:0::5/64'), { ip: 'fd00::5', prefix: 64, family: 6 })
  t.equal(code(() => parseAddress('10.0.0.5/40')), 'INVALID_CIDR')
  t.equal(code(() => parseAddress('fd00::5', 4)), 'INVALID_CIDR')
  t.equal(code(() => parseAddress('nope')), 'INVALID_CIDR')
  t.equal(code(() => withPrefix('10.0.0', 24)), 'INVALID_CIDR')
  t.equal(prefixOf('10.0.0.0/8'), 8)
  t.equal(prefixOf('10.0.0.1'), 32)
  t.equal(prefixOf('fd00::1'), 128)
  t.same(['fd00::2', '10.0.0.10', 'fd00::10', '10.0.0.9'].sort(compareIps), ['10.0.0.9', '10.0.0.10', 'fd00::2', 'fd00::10'])
})

t.test('bytes and reverse names', async (t) => {
  t.same([...ipToBytes('10.1.2.3')], [10, 1, 2, 3])
  t.same([...ipToBytes('fd00::1')], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  t.equal(ipFromBytes(Uint8Array.from([192, 168, 0, 1])), '192.168.0.1')
  t.equal(ipFromBytes(ipToBytes('2001:db8::ff00:42:8329')), '2001:db8::ff00:42:8329')
  t.equal(ipFromBytes(Uint8Array.from([1, 2, 3])), undefined)
  t.equal(reverseName('10.0.0.2'), '2.0.0.10.in-addr.arpa')
  t.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa')
  t.equal(fromReverseName('2.0.0.10.in-addr.arpa.'), '10.0.0.2')
  t.equal(fromReverseName(reverseName('fd00:1::abcd')), 'fd00:1::abcd')
  t.equal(fromReverseName('1.0.0.0.IP6.ARPA'), undefined, 'a partial name is not an address')
  t.equal(fromReverseName('300.0.0.10.in-addr.arpa'), undefined)
  t.equal(fromReverseName('example.com'), undefined)
})
