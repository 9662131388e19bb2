import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import {
  blockSize, bounds, broadcastAddress, canonical, contains, containsCidr, firstHost, formatCidr, intToIp, ipToInt,
  isCanonical, isCidr, isIp, lastHost, maskOf, networkAddress, overlaps, parseAddress, parseCidr, prefixLen, withPrefix,
} from '../../src/ipam/cidr.js'

function code (fn: () => unknown): string | undefined {
  try { fn() } catch (err) { return err instanceof FerryError ? err.code : 'not a FerryError' }
  return undefined
}

t.test('ipToInt / intToIp round trip', async (t) => {
  t.equal(ipToInt('0.0.0.0'), 0)
  t.equal(ipToInt('10.0.0.1'), 167772161)
  t.equal(ipToInt('255.255.255.255'), 0xffffffff)
  t.equal(ipToInt('192.168.1.2'), 0xc0a80102)
  for (const ip of ['0.0.0.0', '1.2.3.4', '128.0.0.0', '172.17.0.1', '255.255.255.255', '10.255.0.254']) {
    t.equal(intToIp(ipToInt(ip)), ip)
  }
  t.equal(intToIp(0x80000000), '128.0.0.0', 'high bit stays unsigned')
})

t.test('strict IPv4 parsing', async (t) => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-1', 'a.b.c.d', '1.2.3.4 ', ' 1.2.3.4', '::1', '1..2.3', '1.2.3.4/24']) {
    t.notOk(isIp(bad), `isIp(${JSON.stringify(bad)}) is false`)
    t.equal(code(() => ipToInt(bad)), 'INVALID_CIDR', `ipToInt(${JSON.stringify(bad)}) throws INVALID_CIDR`)
  }
  t.ok(isIp('0.0.0.0'))
  t.match((() => { try { ipToInt('300.1.1.1') } catch (e) { return (e as Error).message } })(), /"300.1.1.1" is not a valid IPv4 address/)
})

t.test('parseCidr and canonical', async (t) => {
  t.same(parseCidr('10.20.0.0/24'), { network: ipToInt('10.20.0.0'), prefix: 24 })
  t.same(parseCidr('10.20.0.5/24'), { network: ipToInt('10.20.0.0'), prefix: 24 }, 'host bits cleared')
  t.equal(canonical('10.20.0.5/24'), '10.20.0.0/24')
  t.equal(canonical('10.20.0.5/32'), '10.20.0.5/32')
  t.equal(canonical('10.20.0.5/0'), '0.0.0.0/0')
  t.equal(canonical('172.21.200.1/14'), '172.20.0.0/14')
  t.ok(isCanonical('10.20.0.0/24'))
  t.notOk(isCanonical('10.20.0.1/24'))
  t.equal(prefixLen('10.0.0.0/8'), 8)
  t.equal(formatCidr({ network: ipToInt('192.168.0.0'), prefix: 20 }), '192.168.0.0/20')
  for (const bad of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0/8', 'x/8', '10.0.0.0/24/1', 'fd00::/64']) {
    t.notOk(isCidr(bad), `isCidr(${bad}) is false`)
    t.equal(code(() => parseCidr(bad)), 'INVALID_CIDR', `parseCidr(${bad}) throws INVALID_CIDR`)
  }
})

t.test('masks, bounds, hosts', async (t) => {
  t.equal(maskOf(0), 0)
  t.equal(maskOf(8), 0xff000000)
  t.equal(maskOf(24), 0xffffff00)
  t.equal(maskOf(32), 0xffffffff)
  t.equal(blockSize(24), 256)
  t.equal(blockSize(0), 2 ** 32)
  t.same(bounds('10.0.0.0/8'), { first: ipToInt('10.0.0.0'), last: ipToInt('10.255.255.255') })
  t.same(bounds('0.0.0.0/0'), { first: 0, last: 0xffffffff })
  t.equal(networkAddress('10.20.0.77/24'), '10.20.0.0')
  t.equal(broadcastAddress('10.20.0.77/24'), '10.20.0.255')
  t.equal(firstHost('10.20.0.0/24'), '10.20.0.1')
  t.equal(lastHost('10.20.0.0/24'), '10.20.0.254')
  t.equal(firstHost('10.20.0.0/30'), '10.20.0.1')
  t.equal(lastHost('10.20.0.0/30'), '10.20.0.2')
  t.equal(firstHost('10.20.0.0/31'), '10.20.0.0', '/31 has no network address (RFC 3021)')
  t.equal(lastHost('10.20.0.0/31'), '10.20.0.1')
  t.equal(firstHost('10.20.0.9/32'), '10.20.0.9')
  t.equal(lastHost('10.20.0.9/32'), '10.20.0.9')
  t.equal(lastHost('255.255.255.0/24'), '255.255.255.254')
})

t.test('contains, containsCidr, overlaps', async (t) => {
  t.ok(contains('10.20.0.0/24', '10.20.0.0'))
  t.ok(contains('10.20.0.0/24', '10.20.0.255'))
  t.notOk(contains('10.20.0.0/24', '10.20.1.0'))
  t.ok(contains('0.0.0.0/0', '200.1.2.3'))
  t.ok(contains('128.0.0.0/1', '255.255.255.255'))
  t.notOk(contains('128.0.0.0/1', '127.255.255.255'))
  t.ok(contains('10.20.0.5/32', '10.20.0.5'))
  t.notOk(contains('10.20.0.5/32', '10.20.0.6'))

  t.ok(containsCidr('10.20.0.0/16', '10.20.5.0/24'))
  t.ok(containsCidr('10.20.0.0/24', '10.20.0.0/24'), 'a block contains itself')
  t.notOk(containsCidr('10.20.5.0/24', '10.20.0.0/16'))
  t.notOk(containsCidr('10.20.0.0/24', '10.20.1.0/25'))
  t.ok(containsCidr('0.0.0.0/0', '1.2.3.4/32'))

  t.ok(overlaps('10.20.0.0/16', '10.20.0.0/24'))
  t.ok(overlaps('10.20.0.0/24', '10.20.0.0/16'), 'symmetric')
  t.ok(overlaps('10.20.0.0/24', '10.20.0.0/24'))
  t.notOk(overlaps('10.20.0.0/24', '10.20.1.0/24'), 'adjacent blocks do not overlap')
  t.notOk(overlaps('10.20.0.0/25', '10.20.0.128/25'))
  t.ok(overlaps('0.0.0.0/0', '192.168.0.0/16'))
  t.ok(overlaps('10.20.0.7/32', '10.20.0.0/29'))
  t.ok(overlaps('10.20.0.5/24', '10.20.0.200/30'), 'non-canonical input uses its network')
})

t.test('withPrefix and parseAddress', async (t) => {
  t.equal(withPrefix('10.0.0.5', 24), '10.0.0.5/24')
  t.same(parseAddress('10.0.0.5'), { ip: '10.0.0.5' })
  t.same(parseAddress('10.0.0.5/24'), { ip: '10.0.0.5', prefix: 24 })
  t.equal(code(() => parseAddress('10.0.0.5/40')), 'INVALID_CIDR')
  t.equal(code(() => parseAddress('nope')), 'INVALID_CIDR')
  t.equal(code(() => withPrefix('10.0.0', 24)), 'INVALID_CIDR')
})
