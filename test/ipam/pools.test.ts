import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { ipValue as ipToInt } from '../../src/util/ip.js'
import {
  DOCKER_DEFAULT_POOLS, RESERVED_BLOCKS, allocationWindow, findFree, formatDefaultPool, parseDefaultPool, parsePoolSpec, pickAutoSubnet,
  poolIdFor, windowSize,
} from '../../src/ipam/pools.js'

function caught (fn: () => unknown): FerryError {
  try { fn() } catch (err) { if (err instanceof FerryError) return err; throw err }
  throw new Error('expected a FerryError')
}

t.test('Docker default pools', async (t) => {
  t.same(DOCKER_DEFAULT_POOLS.map(formatDefaultPool), [
    'base=172.17.0.0/16,size=16', 'base=172.18.0.0/16,size=16', 'base=172.19.0.0/16,size=16',
    'base=172.20.0.0/14,size=16', 'base=172.24.0.0/14,size=16', 'base=172.28.0.0/14,size=16',
    'base=192.168.0.0/16,size=20',
  ])
})

t.test('parseDefaultPool', async (t) => {
  t.same(parseDefaultPool('base=10.10.0.0/16,size=24'), { base: '10.10.0.0/16', size: 24 })
  t.same(parseDefaultPool(' size=24 , base=10.10.0.0/16 '), { base: '10.10.0.0/16', size: 24 }, 'any order, spaces')
  t.same(parseDefaultPool('base=10.10.3.0/16,size=16'), { base: '10.10.0.0/16', size: 16 }, 'base canonicalized')
  t.same(parseDefaultPool('base=10.0.0.0/8,size=30'), { base: '10.0.0.0/8', size: 30 })
  t.same(parseDefaultPool('base=fd00:0:0::1/48,size=64'), { base: 'fd00::/48', size: 64 }, 'IPv6 base, canonical (Docker\'s syntax)')
  t.same(parseDefaultPool('base=fd00::/48,size=120'), { base: 'fd00::/48', size: 120 })
  const bad: Array<[string, string, RegExp]> = [
    ['', 'INVALID_REQUEST', /expected base=<CIDR>,size=<prefix length>, for example base=10.10.0.0\/16,size=24 or base=fd00:1::\/48,size=64/],
    ['base=10.10.0.0/16', 'INVALID_REQUEST', /not valid/],
    ['size=24', 'INVALID_REQUEST', /not valid/],
    ['base=10.10.0.0/16,size=24,x=1', 'INVALID_REQUEST', /not valid/],
    ['base=10.10.0.0/16,base=10.11.0.0/16,size=24', 'INVALID_REQUEST', /not valid/],
    ['base 10.10.0.0/16,size=24', 'INVALID_REQUEST', /not valid/],
    ['base=10.10.0.0,size=24', 'INVALID_CIDR', /base "10.10.0.0" is not a CIDR/],
    ['base=fd00::/48,size=47', 'INVALID_REQUEST', /size \/47 must be between the base's \/48 and \/120/],
    ['base=fd00::/40,size=44', 'INVALID_REQUEST', /size \/44 is wider than a \/48: ferry takes IPv6 pools from \/48 to \/120/],
    ['base=fd00::/64,size=121', 'INVALID_REQUEST', /size \/121 must be between the base's \/64 and \/120/],
    ['base=fd00::zz/48,size=64', 'INVALID_CIDR', /is not a CIDR/],
    ['base=10.10.0.0/16,size=x', 'INVALID_REQUEST', /size "x" is not a prefix length/],
    ['base=10.10.0.0/16,size=8', 'INVALID_REQUEST', /size \/8 must be between the base's \/16 and \/30/],
    ['base=10.10.0.0/16,size=31', 'INVALID_REQUEST', /must be between/],
    ['base=0.0.0.0/0,size=4', 'INVALID_REQUEST', /size \/4 is wider than a \/8: ferry takes pools from \/8 to \/30/],
  ]
  for (const [spec, code, msg] of bad) {
    const err = caught(() => parseDefaultPool(spec))
    t.equal(err.code, code, `${JSON.stringify(spec)} → ${code}`)
    t.match(err.message, msg)
  }
})

t.test('parsePoolSpec', async (t) => {
  t.same(parsePoolSpec('10.20.0.0/24', ''), { subnet: '10.20.0.0/24' })
  t.same(parsePoolSpec('10.20.0.5/24', ''), { subnet: '10.20.0.0/24' }, 'masked like libnetwork')
  t.same(parsePoolSpec('10.20.0.0/24', '10.20.0.128/25'), { subnet: '10.20.0.0/24', range: '10.20.0.128/25' })
  t.same(parsePoolSpec('10.20.0.0/24', '10.20.0.130/25'), { subnet: '10.20.0.0/24', range: '10.20.0.128/25' }, 'range masked')
  t.same(parsePoolSpec('10.20.0.0/24', '10.20.0.0/24'), { subnet: '10.20.0.0/24' }, 'range = subnet is no range')
  t.same(parsePoolSpec('10.20.0.0/24', '10.20.0.9/32'), { subnet: '10.20.0.0/24', range: '10.20.0.9/32' })
  t.same(parsePoolSpec('10.20.0.0/30', ''), { subnet: '10.20.0.0/30' })
  t.same(parsePoolSpec('10.0.0.0/8', ''), { subnet: '10.0.0.0/8' })

  let err = caught(() => parsePoolSpec('10.20.0.0', ''))
  t.equal(err.code, 'INVALID_CIDR')
  t.match(err.message, 'pool "10.20.0.0" is not an IPv4 subnet in CIDR notation')
  err = caught(() => parsePoolSpec('10.20.0.0/31', ''))
  t.equal(err.code, 'INVALID_REQUEST')
  t.match(err.message, 'pool 10.20.0.0/31 is too small')
  t.equal(caught(() => parsePoolSpec('10.20.0.1/32', '')).code, 'INVALID_REQUEST')
  t.equal(caught(() => parsePoolSpec('0.0.0.0/0', '')).code, 'INVALID_REQUEST')
  err = caught(() => parsePoolSpec('10.20.0.0/24', 'bogus'))
  t.equal(err.code, 'INVALID_CIDR')
  t.match(err.message, 'ip range "bogus"')
  err = caught(() => parsePoolSpec('10.20.0.0/24', '10.20.1.0/25'))
  t.equal(err.code, 'INVALID_REQUEST')
  t.equal(err.message, 'ip range 10.20.1.0/25 is not inside pool 10.20.0.0/24')
  t.equal(caught(() => parsePoolSpec('10.20.0.0/24', '10.20.0.0/23')).code, 'INVALID_REQUEST', 'range larger than pool')
})

t.test('parsePoolSpec: reserved blocks and pools wider than a /8 are refused', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['127.0.0.0/16', /^pool 127\.0\.0\.0\/16 overlaps 127\.0\.0\.0\/8, which is loopback and cannot be a container network$/],
    ['127.1.2.0/24', /overlaps 127\.0\.0\.0\/8, which is loopback/],
    ['0.0.0.0/8', /overlaps 0\.0\.0\.0\/8, which is "this network"/],
    ['224.0.0.0/4', /^pool 224\.0\.0\.0\/4 is wider than a \/8/],
    ['224.0.0.0/8', /overlaps 224\.0\.0\.0\/4, which is multicast/],
    ['239.1.0.0/16', /multicast/],
    ['240.0.0.0/8', /overlaps 240\.0\.0\.0\/4, which is reserved/],
    ['255.255.255.252/30', /limited broadcast address 255\.255\.255\.255/],
    ['169.254.0.0/24', /overlaps 169\.254\.0\.0\/16, which is link-local/],
    ['128.0.0.0/1', /^pool 128\.0\.0\.0\/1 is wider than a \/8: ferry takes pools from \/8 to \/30$/],
    ['10.0.0.0/7', /is wider than a \/8/],
    ['0.0.0.0/0', /is wider than a \/8/],
  ]
  for (const [pool, msg] of cases) {
    const err = caught(() => parsePoolSpec(pool, ''))
    t.equal(err.code, 'INVALID_REQUEST', pool)
    t.match(err.message, msg, pool)
  }
  // Neighbours of the reserved blocks are fine.
  for (const ok of ['1.0.0.0/8', '126.0.0.0/8', '128.0.0.0/8', '169.253.0.0/16', '223.255.255.0/24', '11.0.0.0/8']) {
    t.same(parsePoolSpec(ok, ''), { subnet: ok }, ok)
  }
})

t.test('pickAutoSubnet with the reserved blocks as blockers never lands in one', async (t) => {
  const reserved = RESERVED_BLOCKS.map((b) => b.cidr)
  t.equal(pickAutoSubnet([{ base: '126.0.0.0/7', size: 8 }], reserved), '126.0.0.0/8')
  t.equal(pickAutoSubnet([{ base: '127.0.0.0/8', size: 24 }], reserved), undefined)
  t.equal(pickAutoSubnet([{ base: '0.0.0.0/0', size: 8 }], reserved), '1.0.0.0/8')
})

t.test('pickAutoSubnet', async (t) => {
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, []), '172.17.0.0/16')
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, ['172.17.0.0/16']), '172.18.0.0/16')
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, ['172.17.0.1/32', '172.18.5.0/24']), '172.19.0.0/16', 'a host route inside blocks it')
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, ['172.16.0.0/12']), '192.168.0.0/20', 'a big route blocks several pools')
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, ['172.16.0.0/12', '192.168.0.0/20', '192.168.16.0/20']), '192.168.32.0/20')
  t.equal(pickAutoSubnet(DOCKER_DEFAULT_POOLS, ['172.16.0.0/12', '192.168.0.0/16']), undefined)
  t.equal(pickAutoSubnet([], []), undefined)
  t.equal(pickAutoSubnet([{ base: '172.20.0.0/14', size: 16 }], ['172.20.0.0/16', '172.22.0.0/16']), '172.21.0.0/16')

  const tens = [{ base: '10.0.0.0/8', size: 24 }]
  t.equal(pickAutoSubnet(tens, ['10.0.0.0/9']), '10.128.0.0/24', 'one jump over a big blocker')
  t.equal(pickAutoSubnet(tens, ['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/25']), '10.0.3.0/24')
  t.equal(pickAutoSubnet(tens, ['10.0.0.128/25']), '10.0.1.0/24', 'partial overlap blocks the candidate')

  // A /8 split into /24s with 20k scattered blockers (its time: bench/planners.ts).
  const blockers: string[] = []
  for (let i = 0; i < 20000; i++) blockers.push(`10.${i >> 8}.${i & 255}.0/24`)
  t.equal(pickAutoSubnet(tens, blockers), '10.78.32.0/24')
})

t.test('allocationWindow, windowSize, findFree', async (t) => {
  const w = allocationWindow('10.20.0.0/24')
  t.same(w, { first: ipToInt('10.20.0.1'), last: ipToInt('10.20.0.254') })
  t.equal(windowSize(w), 254n)
  t.same(allocationWindow('10.20.0.0/24', '10.20.0.128/25'), { first: ipToInt('10.20.0.128'), last: ipToInt('10.20.0.254') })
  t.same(allocationWindow('10.20.0.0/24', '10.20.0.0/25'), { first: ipToInt('10.20.0.1'), last: ipToInt('10.20.0.127') })
  t.same(allocationWindow('10.243.0.0/16', '10.243.3.0/24'), { first: ipToInt('10.243.3.0'), last: ipToInt('10.243.3.255') },
    'only the subnet network/broadcast are reserved (libnetwork)')
  t.equal(windowSize(allocationWindow('10.20.0.0/30')), 2n)
  t.equal(windowSize(allocationWindow('10.20.0.0/24', '10.20.0.0/32')), 0n, 'a range that is only the network address is empty')

  const small = { first: 10n, last: 14n }
  const used = new Set([10n, 11n, 13n])
  t.equal(findFree(small, 10n, (n) => used.has(n)), 12n)
  t.equal(findFree(small, 13n, (n) => used.has(n)), 14n)
  t.equal(findFree(small, 15n, (n) => used.has(n)), 12n, 'start past the end wraps to the first')
  t.equal(findFree(small, 3n, (n) => used.has(n)), 12n, 'start before the window starts at the first')
  used.add(14n)
  t.equal(findFree(small, 13n, (n) => used.has(n)), 12n, 'wraps around')
  used.add(12n)
  t.equal(findFree(small, 10n, (n) => used.has(n)), undefined)
  t.equal(findFree({ first: 5n, last: 4n }, 5n, () => false), undefined)

  const v6 = allocationWindow('fd00:1::/64')
  t.same(v6, { first: ipToInt('fd00:1::1'), last: ipToInt('fd00:1::ffff:ffff:ffff:ffff') }, 'IPv6 keeps only the subnet-router anycast address out')
  t.equal(windowSize(v6), 2n ** 64n - 1n)
  t.same(allocationWindow('fd00:1::/64', 'fd00:1::100/120'), { first: ipToInt('fd00:1::100'), last: ipToInt('fd00:1::1ff') })
})

t.test('poolIdFor', async (t) => {
  t.equal(poolIdFor('FerryLocal', '10.20.0.0/24', () => false), 'FerryLocal/10.20.0.0/24')
  const taken = new Set(['FerryLocal/10.20.0.0/24', 'FerryLocal/10.20.0.0/24#2'])
  t.equal(poolIdFor('FerryLocal', '10.20.0.0/24', (id) => taken.has(id)), 'FerryLocal/10.20.0.0/24#3')
})
