import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { GATEWAY_ADDRESS_TYPE, Ipam, derivedIpv6Pool, REQUEST_ADDRESS_TYPE, type IpamOptions } from '../../src/ipam/ipam.js'
import { MemoryStore, emptyState, type State, type Store } from '../../src/store/store.js'

const GW = { [REQUEST_ADDRESS_TYPE]: GATEWAY_ADDRESS_TYPE }

/** A clock that ticks one second per call, so allocation times are distinct and ordered. */
function clock (): () => Date {
  let n = 0
  return () => new Date(Date.UTC(2024, 0, 1) + 1000 * n++)
}

function setup (opts: Partial<IpamOptions> & { host?: string[] } = {}): { ipam: Ipam, store: MemoryStore, hostCalls: () => number } {
  const store = new MemoryStore()
  let calls = 0
  const ipam = new Ipam({
    store,
    now: clock(),
    hostNetworks: async () => { calls++; return opts.host ?? [] },
    ...opts,
  })
  return { ipam, store, hostCalls: () => calls }
}

async function rejects (p: Promise<unknown>): Promise<FerryError> {
  try { await p } catch (err) { if (err instanceof FerryError) return err; throw err }
  throw new Error('expected a rejection')
}

function pool (p: string, subPool = '', extra: { addressSpace?: string, options?: Record<string, string> } = {}) {
  return { addressSpace: extra.addressSpace ?? 'FerryLocal', pool: p, subPool, options: extra.options ?? {}, v6: false }
}

t.test('capabilities and address spaces', async (t) => {
  const { ipam } = setup()
  t.same(ipam.capabilities(), { RequiresMACAddress: false, RequiresRequestReplay: true })
  t.same(ipam.addressSpaces(), { LocalDefaultAddressSpace: 'FerryLocal', GlobalDefaultAddressSpace: 'FerryGlobal' })
  const custom = setup({ addressSpaces: { local: 'L', global: 'G' } }).ipam
  t.same(custom.addressSpaces(), { LocalDefaultAddressSpace: 'L', GlobalDefaultAddressSpace: 'G' })
})

t.test('user pool: request, record, lookups', async (t) => {
  const { ipam, store, hostCalls } = setup({ host: ['10.20.0.0/16'] })
  const res = await ipam.requestPool(pool('10.20.0.0/24', '', { options: { io: '1' } }))
  t.same(res, { poolId: 'FerryLocal/10.20.0.0/24', pool: '10.20.0.0/24', data: {} })
  t.equal(store.commits, 1, 'committed before resolving')
  t.equal(hostCalls(), 0, 'user pools may overlap host networks; the host is not even asked')
  t.same(store.state.pools['FerryLocal/10.20.0.0/24'], {
    id: 'FerryLocal/10.20.0.0/24',
    addressSpace: 'FerryLocal',
    subnet: '10.20.0.0/24',
    userDefined: true,
    allocated: {},
    options: { io: '1' },
    createdAt: '2024-01-01T00:00:00.000Z',
  })
  t.equal(ipam.pool('FerryLocal/10.20.0.0/24')?.subnet, '10.20.0.0/24')
  t.equal(ipam.pool('nope'), undefined)
  t.equal(ipam.pools().length, 1)
  t.equal(ipam.poolBySubnet('10.20.0.0/24')?.id, 'FerryLocal/10.20.0.0/24')
  t.equal(ipam.poolBySubnet('10.20.0.9/24')?.id, 'FerryLocal/10.20.0.0/24', 'lookup canonicalizes')
  t.equal(ipam.poolBySubnet('10.20.0.0/25'), undefined)

  const ranged = await ipam.requestPool(pool('10.30.0.0/16', '10.30.5.0/24', { addressSpace: 'FerryGlobal' }))
  t.same(ranged, { poolId: 'FerryGlobal/10.30.0.0/16', pool: '10.30.0.0/16', data: {} })
  t.equal(ipam.pool(ranged.poolId)?.range, '10.30.5.0/24')
})

t.test('non-canonical subnets are masked, like libnetwork', async (t) => {
  const { ipam } = setup()
  const res = await ipam.requestPool(pool('10.20.0.5/24', '10.20.0.200/25'))
  t.same(res, { poolId: 'FerryLocal/10.20.0.0/24', pool: '10.20.0.0/24', data: {} })
  t.equal(ipam.pool(res.poolId)?.range, '10.20.0.128/25')
})

t.test('pool validation', async (t) => {
  const { ipam, store } = setup()
  let err = await rejects(ipam.requestPool({ ...pool('10.20.0.0/24'), v6: true }))
  t.equal(err.code, 'INVALID_CIDR')
  t.match(err.message, /^pool "10\.20\.0\.0\/24" is not an IPv6 subnet in CIDR notation \(for example fd00:1::\/64\) \(the engine asked for an IPv6 pool for --ipv6/)
  err = await rejects(ipam.requestPool({ ...pool('fd00:1::/64'), v6: false }))
  t.equal(err.code, 'INVALID_CIDR')
  t.match(err.message, /is not an IPv4 subnet .*give --subnet an IPv4 subnet first, and the IPv6 one with --ipv6/)
  err = await rejects(ipam.requestPool({ ...pool('fd00:1::/64', '10.0.0.0/24'), v6: true }))
  t.equal(err.code, 'INVALID_CIDR')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/24', '', { addressSpace: '' })))
  t.equal(err.code, 'INVALID_REQUEST')
  err = await rejects(ipam.requestPool(pool('', '10.20.0.0/25')))
  t.equal(err.code, 'INVALID_REQUEST')
  t.match(err.message, 'ip range 10.20.0.0/25 was given without a subnet')
  err = await rejects(ipam.requestPool(pool('10.20.0.0')))
  t.equal(err.code, 'INVALID_CIDR')
  err = await rejects(ipam.requestPool(pool('300.20.0.0/24')))
  t.equal(err.code, 'INVALID_CIDR')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/31')))
  t.equal(err.code, 'INVALID_REQUEST')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/32')))
  t.equal(err.code, 'INVALID_REQUEST')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/24', '10.21.0.0/25')))
  t.equal(err.code, 'INVALID_REQUEST')
  t.equal(err.message, 'ip range 10.21.0.0/25 is not inside pool 10.20.0.0/24')
  t.same(store.state.pools, {}, 'nothing recorded')
  t.equal(store.commits, 0)
})

t.test('user pools never overlap ferry pools (any address space)', async (t) => {
  const { ipam } = setup()
  await ipam.requestPool(pool('10.20.0.0/16'))
  let err = await rejects(ipam.requestPool(pool('10.20.0.0/24')))
  t.equal(err.code, 'POOL_OVERLAP')
  t.equal(err.message, '10.20.0.0/24 overlaps pool 10.20.0.0/16 already used by ferry')
  err = await rejects(ipam.requestPool(pool('10.0.0.0/8', '', { addressSpace: 'FerryGlobal' })))
  t.equal(err.message, '10.0.0.0/8 overlaps pool 10.20.0.0/16 already used by ferry')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/16')))
  t.equal(err.code, 'POOL_OVERLAP', 'the same subnet twice')
  err = await rejects(ipam.requestPool(pool('10.20.0.0/16', '10.20.1.0/24')))
  t.equal(err.code, 'POOL_OVERLAP', 'same subnet, other range')
  t.ok(await ipam.requestPool(pool('10.21.0.0/16')), 'the adjacent block is free')
})

t.test('auto pools: first free default subnet avoiding ferry pools and host networks', async (t) => {
  const { ipam, hostCalls } = setup({ host: ['172.18.0.0/16', '0.0.0.0/0', 'fe80::/64', '172.20.0.1', '192.0.2.0/24'] })
  const a = await ipam.requestPool(pool(''))
  t.same(a, { poolId: 'FerryLocal/172.17.0.0/16', pool: '172.17.0.0/16', data: {} })
  t.equal(ipam.pool(a.poolId)?.userDefined, false)
  const b = await ipam.requestPool(pool(''))
  t.equal(b.pool, '172.19.0.0/16', 'skips ours and the host route; ignores the default route and IPv6')
  const c = await ipam.requestPool(pool(''))
  t.equal(c.pool, '172.21.0.0/16', 'a bare host address blocks its /16')
  t.equal(hostCalls(), 3, 'host networks read at each pick')
  await ipam.requestPool(pool('172.22.0.0/15'))
  t.equal((await ipam.requestPool(pool(''))).pool, '172.24.0.0/16', 'skips a user pool too')
})

t.test('auto pools: libnetwork may ask again while holding one: each answer differs', async (t) => {
  const { ipam } = setup()
  const seen = new Set<string>()
  for (let i = 0; i < 5; i++) seen.add((await ipam.requestPool(pool(''))).pool)
  t.same([...seen], ['172.17.0.0/16', '172.18.0.0/16', '172.19.0.0/16', '172.20.0.0/16', '172.21.0.0/16'])
  t.ok(await ipam.releasePool('FerryLocal/172.17.0.0/16'))
  t.equal((await ipam.requestPool(pool(''))).pool, '172.17.0.0/16', 'a released pool is free again')
})

t.test('auto pools: exhaustion names the pools and the way out', async (t) => {
  const { ipam } = setup({ defaultPools: [{ base: '10.99.0.0/23', size: 24 }], host: ['10.99.1.0/24'] })
  t.equal((await ipam.requestPool(pool(''))).pool, '10.99.0.0/24')
  const err = await rejects(ipam.requestPool(pool('')))
  t.equal(err.code, 'POOL_EXHAUSTED')
  t.match(err.message, 'no free subnet left in the IPv4 default address pools (base=10.99.0.0/23,size=24)')
  t.match(err.message, '--default-address-pool base=<cidr>,size=<prefix>')
  const none = setup({ defaultPools: [] }).ipam
  t.match((await rejects(none.requestPool(pool('')))).message, 'none configured')
})

t.test('auto pools: a failing host lookup is reported, not swallowed', async (t) => {
  const ipam = new Ipam({ store: new MemoryStore(), hostNetworks: async () => { throw new Error('netlink down') } })
  const err = await rejects(ipam.requestPool(pool('')))
  t.equal(err.code, 'INTERNAL')
  t.match(err.message, 'netlink down')
  t.match((err.cause as Error).message, 'netlink down')
  const bad = new Ipam({ store: new MemoryStore(), hostNetworks: async () => ['garbage'] })
  t.match((await rejects(bad.requestPool(pool('')))).message, 'host network "garbage"')
})

t.test('releasePool: idempotent, releases every address', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/24'))
  await ipam.requestAddress({ poolId, address: '', options: GW })
  await ipam.requestAddress({ poolId, address: '', options: null })
  const commits = store.commits
  t.equal(await ipam.releasePool(poolId), true)
  t.equal(store.commits, commits + 1)
  t.same(store.state.pools, {})
  t.equal(await ipam.releasePool(poolId), false, 'twice is fine')
  t.equal(await ipam.releasePool('FerryLocal/1.2.3.0/24'), false, 'unknown is fine')
  t.equal(store.commits, commits + 1, 'no-op releases do not write')
  const again = await ipam.requestPool(pool('10.20.0.0/24'))
  t.same(ipam.pool(again.poolId)?.allocated, {}, 'a re-requested pool starts empty')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: GW })).address, '10.20.0.1/24')
})

t.test('addresses: gateway, serial endpoints, CIDR answers', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/24'))
  t.same(await ipam.requestAddress({ poolId, address: '', options: GW }), { address: '10.20.0.1/24', data: {} })
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.2/24')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: {} })).address, '10.20.0.3/24')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.4/24')
  t.same(ipam.pool(poolId)?.allocated['10.20.0.1'], { kind: 'gateway', at: '2024-01-01T00:00:01.000Z' })
  t.equal(ipam.pool(poolId)?.allocated['10.20.0.2']?.kind, 'endpoint')
  t.equal(store.commits, 5)

  t.equal(await ipam.releaseAddress(poolId, '10.20.0.3'), true)
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.5/24',
    'a released address is not reused at once')
  t.equal((await ipam.requestAddress({ poolId, address: '10.20.0.3', options: null })).address, '10.20.0.3/24',
    'but it can be asked for')
})

t.test('addresses: serial allocation wraps around and never hands out network/broadcast', async (t) => {
  const { ipam } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/29')) // hosts .1-.6
  const got: string[] = []
  got.push((await ipam.requestAddress({ poolId, address: '', options: GW })).address)
  for (let i = 0; i < 5; i++) got.push((await ipam.requestAddress({ poolId, address: '', options: null })).address)
  t.same(got, ['10.20.0.1/29', '10.20.0.2/29', '10.20.0.3/29', '10.20.0.4/29', '10.20.0.5/29', '10.20.0.6/29'])
  await ipam.releaseAddress(poolId, '10.20.0.3')
  await ipam.releaseAddress(poolId, '10.20.0.5')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.3/29', 'wraps to the oldest hole')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.5/29')
  const err = await rejects(ipam.requestAddress({ poolId, address: '', options: null }))
  t.equal(err.code, 'POOL_EXHAUSTED')
  t.equal(err.message, 'no free address left in pool 10.20.0.0/29')
})

t.test('addresses: /30 holds a gateway and one container', async (t) => {
  const { ipam } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/30'))
  t.equal((await ipam.requestAddress({ poolId, address: '', options: GW })).address, '10.20.0.1/30')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.2/30')
  const err = await rejects(ipam.requestAddress({ poolId, address: '', options: null }))
  t.equal(err.code, 'POOL_EXHAUSTED')
  t.equal(err.message, 'no free address left in pool 10.20.0.0/30')
  t.equal((await rejects(ipam.requestAddress({ poolId, address: '', options: GW }))).code, 'POOL_EXHAUSTED')
})

t.test('addresses with --ip-range (libnetwork behaviour)', async (t) => {
  const { ipam } = setup()
  const { poolId } = await ipam.requestPool(pool('10.125.0.0/24', '10.125.0.128/25'))
  t.equal((await ipam.requestAddress({ poolId, address: '', options: GW })).address, '10.125.0.128/24',
    'the gateway is the first free address of the range')
  t.equal((await ipam.requestAddress({ poolId, address: '10.125.0.5', options: null })).address, '10.125.0.5/24',
    'an aux address / --ip outside the range but inside the subnet is allowed')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.125.0.129/24')
  for (let i = 130; i <= 254; i++) {
    t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, `10.125.0.${i}/24`)
  }
  const err = await rejects(ipam.requestAddress({ poolId, address: '', options: null }))
  t.equal(err.code, 'POOL_EXHAUSTED')
  t.equal(err.message, 'no free address left in ip range 10.125.0.128/25 of pool 10.125.0.0/24')
  t.equal((await ipam.requestAddress({ poolId, address: '10.125.0.6', options: null })).address, '10.125.0.6/24',
    'specific addresses outside the full range still work')

  const wide = await ipam.requestPool(pool('10.243.0.0/16', '10.243.3.0/24'))
  t.equal((await ipam.requestAddress({ poolId: wide.poolId, address: '', options: GW })).address, '10.243.3.0/16',
    'only the subnet network address is reserved, so x.x.3.0 is a host address here')
  const low = await ipam.requestPool(pool('10.126.0.0/24', '10.126.0.0/25'))
  t.equal((await ipam.requestAddress({ poolId: low.poolId, address: '', options: GW })).address, '10.126.0.1/24')
})

t.test('specific addresses: validation and conflicts', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/24'))
  t.same(await ipam.requestAddress({ poolId, address: '10.20.0.254', options: GW }), { address: '10.20.0.254/24', data: {} },
    '--gateway 10.20.0.254')
  t.equal(ipam.pool(poolId)?.allocated['10.20.0.254']?.kind, 'gateway')
  t.equal((await ipam.requestAddress({ poolId, address: '10.20.0.5', options: null })).address, '10.20.0.5/24')
  t.equal(ipam.pool(poolId)?.allocated['10.20.0.5']?.kind, 'endpoint', 'aux addresses look like --ip: endpoint')
  t.equal((await ipam.requestAddress({ poolId, address: '10.20.0.6/24', options: null })).address, '10.20.0.6/24',
    'a CIDR is accepted')
  const commits = store.commits

  let err = await rejects(ipam.requestAddress({ poolId, address: '10.20.0.5', options: null }))
  t.equal(err.code, 'ADDRESS_IN_USE')
  t.equal(err.message, '10.20.0.5 is already in use in network pool 10.20.0.0/24')
  err = await rejects(ipam.requestAddress({ poolId, address: '10.20.1.5', options: null }))
  t.equal(err.code, 'ADDRESS_OUT_OF_POOL')
  t.equal(err.message, '10.20.1.5 is outside pool 10.20.0.0/24')
  err = await rejects(ipam.requestAddress({ poolId, address: '10.20.0.0', options: null }))
  t.equal(err.code, 'ADDRESS_OUT_OF_POOL')
  t.equal(err.message, '10.20.0.0 is the network address of pool 10.20.0.0/24 and cannot be assigned')
  err = await rejects(ipam.requestAddress({ poolId, address: '10.20.0.255', options: GW }))
  t.equal(err.code, 'ADDRESS_OUT_OF_POOL')
  t.match(err.message, 'broadcast address')
  err = await rejects(ipam.requestAddress({ poolId, address: '10.20.0.300', options: null }))
  t.equal(err.code, 'INVALID_CIDR')
  err = await rejects(ipam.requestAddress({ poolId: 'FerryLocal/9.9.9.0/24', address: '', options: null }))
  t.equal(err.code, 'POOL_NOT_FOUND')
  t.match(err.message, 'pool FerryLocal/9.9.9.0/24 is not known to ferry')
  t.equal(store.commits, commits, 'failed requests do not write')

  t.equal((await ipam.requestAddress({ poolId, address: '', options: GW })).address, '10.20.0.1/24',
    'a later gateway request without preference still takes the first free address')
  t.equal((await ipam.requestAddress({ poolId, address: '', options: null })).address, '10.20.0.2/24')
})

t.test('releaseAddress: idempotent and tolerant', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/24'))
  await ipam.requestAddress({ poolId, address: '10.20.0.9', options: null })
  await ipam.requestAddress({ poolId, address: '10.20.0.10', options: null })
  const commits = store.commits
  t.equal(await ipam.releaseAddress(poolId, '10.20.0.9'), true, 'the engine sends bare IPs')
  t.equal(await ipam.releaseAddress(poolId, '10.20.0.10/24'), true, 'CIDRs work too')
  t.equal(store.commits, commits + 2)
  t.equal(await ipam.releaseAddress(poolId, '10.20.0.9'), false, 'twice')
  t.equal(await ipam.releaseAddress(poolId, '10.20.0.77'), false, 'never allocated')
  t.equal(await ipam.releaseAddress(poolId, '192.168.0.1'), false, 'outside the pool')
  t.equal(await ipam.releaseAddress('FerryLocal/9.9.9.0/24', '9.9.9.1'), false, 'unknown pool')
  t.equal(store.commits, commits + 2, 'no-op releases do not write')
  t.same(ipam.pool(poolId)?.allocated, {})
  t.equal((await rejects(ipam.releaseAddress(poolId, 'garbage'))).code, 'INVALID_CIDR', 'garbage is still an error')
})

t.test('replay after an engine restart', async (t) => {
  const { ipam, store } = setup()
  const n1 = await ipam.requestPool(pool('10.123.0.0/24'))
  const n0 = await ipam.requestPool(pool(''))
  const nr = await ipam.requestPool(pool('10.125.0.0/24', '10.125.0.128/25'))
  await ipam.requestAddress({ poolId: n1.poolId, address: '', options: GW })
  await ipam.requestAddress({ poolId: n1.poolId, address: '', options: null })
  await ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.50', options: null })

  // Outside a replay these are conflicts.
  t.equal((await rejects(ipam.requestPool(pool('10.123.0.0/24')))).code, 'POOL_OVERLAP')
  t.equal((await rejects(ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.2', options: null }))).code, 'ADDRESS_IN_USE')

  ipam.beginReplay()
  t.ok(ipam.isReplaying())
  const commits = store.commits
  t.same(await ipam.requestPool(pool('10.123.0.0/24')), { ...n1, data: {} }, 'same pool, same id')
  t.same(await ipam.requestPool(pool('172.17.0.0/16')), { ...n0, data: {} }, 'an auto pool is replayed with its subnet')
  t.same(await ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.1', options: GW }), { address: '10.123.0.1/24', data: {} })
  t.same(await ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.2', options: null }), { address: '10.123.0.2/24', data: {} })
  t.same(await ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.50', options: null }), { address: '10.123.0.50/24', data: {} })
  t.equal(store.commits, commits, 'replaying what is held writes nothing')

  t.equal((await rejects(ipam.requestPool(pool('10.123.0.0/24')))).code, 'POOL_OVERLAP', 'a pool is replayed once only')
  t.equal((await rejects(ipam.requestPool(pool('10.125.0.0/24')))).code, 'POOL_OVERLAP', 'a different range is a different pool')
  t.same(await ipam.requestPool(pool('10.125.0.0/24', '10.125.0.128/25')), { ...nr, data: {} })
  t.equal((await ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.60', options: null })).address, '10.123.0.60/24',
    'an address we lost is allocated again')
  t.equal((await ipam.requestAddress({ poolId: n1.poolId, address: '', options: null })).address, '10.123.0.3/24',
    'new containers still get fresh addresses during replay')
  t.equal((await ipam.requestPool(pool('10.200.0.0/24'))).poolId, 'FerryLocal/10.200.0.0/24', 'a pool we lost is allocated again')

  // The engine then releases the stale endpoints.
  t.ok(await ipam.releaseAddress(n1.poolId, '10.123.0.2'))

  ipam.endReplay()
  t.notOk(ipam.isReplaying())
  t.equal((await rejects(ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.50', options: null }))).code, 'ADDRESS_IN_USE')
  t.equal((await rejects(ipam.requestPool(pool('172.17.0.0/16')))).code, 'POOL_OVERLAP')

  ipam.beginReplay()
  t.same(await ipam.requestPool(pool('10.123.0.0/24')), { ...n1, data: {} }, 'a new replay starts afresh')
  ipam.endReplay()
})

t.test('every mutation awaits the commit; a failed commit is undone', async (t) => {
  let release: (() => void) | undefined
  let fail = false
  const state: State = emptyState()
  const slow: Store = {
    state,
    commit: async () => {
      await new Promise<void>((resolve) => { release = resolve })
      if (fail) throw new FerryError('STORE', 'disk full')
    },
    touch: () => {},
  }
  const ipam = new Ipam({ store: slow, hostNetworks: async () => [] })
  const flush = async () => { await new Promise((resolve) => setImmediate(resolve)) }

  let done = false
  const p = ipam.requestPool(pool('10.20.0.0/24')).then((r) => { done = true; return r })
  await flush()
  t.notOk(done, 'not resolved while the commit is pending')
  release?.()
  const { poolId } = await p
  t.ok(done)

  fail = true
  const a = ipam.requestAddress({ poolId, address: '', options: GW })
  await flush()
  release?.()
  const err = await rejects(a)
  t.equal(err.code, 'STORE')
  t.equal(err.message, 'disk full')
  t.same(state.pools[poolId]?.allocated, {}, 'the allocation was undone')

  const q = ipam.requestPool(pool('10.30.0.0/24'))
  await flush()
  release?.()
  await rejects(q)
  t.equal(state.pools['FerryLocal/10.30.0.0/24'], undefined, 'the pool was undone')

  const r = ipam.releasePool(poolId)
  await flush()
  release?.()
  await rejects(r)
  t.ok(state.pools[poolId], 'the released pool is back')

  fail = false
  const g = ipam.requestAddress({ poolId, address: '', options: GW })
  await flush()
  release?.()
  t.equal((await g).address, '10.20.0.1/24', 'the undone address is free again')
  fail = true
  const f = ipam.requestAddress({ poolId, address: '', options: null })
  await flush()
  release?.()
  await rejects(f)
  fail = false
  const e = ipam.requestAddress({ poolId, address: '', options: null })
  await flush()
  release?.()
  t.equal((await e).address, '10.20.0.2/24', 'the cursor moved back too')
})

t.test('a stored pool without a cursor resumes after its latest endpoint allocation', async (t) => {
  const store = new MemoryStore()
  const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s)).toISOString()
  store.state.pools['X/10.9.0.0/24'] = {
    id: 'X/10.9.0.0/24',
    addressSpace: 'X',
    subnet: '10.9.0.0/24',
    userDefined: true,
    allocated: {
      '10.9.0.1': { kind: 'gateway', at: at(9) },
      '10.9.0.2': { kind: 'endpoint', at: at(1) },
      '10.9.0.40': { kind: 'endpoint', at: at(5) },
      '10.9.0.41': { kind: 'endpoint', at: at(5) },
      '10.9.0.7': { kind: 'endpoint', at: at(3) },
    },
    options: {},
    createdAt: at(0),
  }
  const ipam = new Ipam({ store, hostNetworks: async () => [] })
  t.equal((await ipam.requestAddress({ poolId: 'X/10.9.0.0/24', address: '', options: null })).address, '10.9.0.42/24')
  t.equal((await ipam.requestAddress({ poolId: 'X/10.9.0.0/24', address: '', options: null })).address, '10.9.0.43/24')
})

t.test('concurrency: requests are serialized', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(pool('10.20.0.0/24'))
  await ipam.requestAddress({ poolId, address: '', options: GW })
  const first = await Promise.all(Array.from({ length: 200 }, async () =>
    (await ipam.requestAddress({ poolId, address: '', options: null })).address))
  t.equal(new Set(first).size, 200, '200 concurrent requests, 200 distinct addresses')
  t.notOk(first.includes('10.20.0.1/24'), 'none is the gateway')
  const rest = await Promise.allSettled(Array.from({ length: 60 }, async () =>
    (await ipam.requestAddress({ poolId, address: '', options: null })).address))
  const ok = rest.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<string>).value)
  const failed = rest.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as FerryError).code)
  t.equal(ok.length, 53, '254 usable: gateway + 253 endpoints')
  t.same([...new Set(failed)], ['POOL_EXHAUSTED'])
  t.equal(failed.length, 7)
  const all = new Set([...first, ...ok])
  t.equal(all.size, 253)
  t.notOk(all.has('10.20.0.0/24') || all.has('10.20.0.255/24'), 'no network or broadcast address')
  t.equal(Object.keys(ipam.pool(poolId)?.allocated ?? {}).length, 254)

  const pools = await Promise.all(Array.from({ length: 7 }, async () => (await ipam.requestPool(pool(''))).pool))
  t.equal(new Set(pools).size, 7, 'concurrent auto pools are distinct')
  const dup = await Promise.allSettled([ipam.requestPool(pool('10.50.0.0/24')), ipam.requestPool(pool('10.50.0.0/25'))])
  t.same(dup.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'racing overlapping pools: one wins')
  t.ok(store.commits > 260)
})

// Their times are measured by bench/planners.ts (npm run bench:planners), not here.
t.test('10k allocations in a /16, a few in a /8: the next free address each time', async (t) => {
  const { ipam } = setup()
  const { poolId } = await ipam.requestPool(pool('10.64.0.0/16'))
  await ipam.requestAddress({ poolId, address: '', options: GW })
  let last = ''
  for (let i = 0; i < 10000; i++) last = (await ipam.requestAddress({ poolId, address: '', options: null })).address
  t.equal(last, '10.64.39.17/16')
  for (let i = 2; i < 5000; i++) await ipam.releaseAddress(poolId, `10.64.${i >> 8}.${i & 255}`)
  for (let i = 0; i < 1000; i++) last = (await ipam.requestAddress({ poolId, address: '', options: null })).address
  t.equal(last, '10.64.42.249/16', 'after releasing 5k behind the cursor: it goes on forward')

  const big = await ipam.requestPool(pool('11.0.0.0/8'))
  await ipam.requestAddress({ poolId: big.poolId, address: '', options: GW })
  for (let i = 0; i < 2000; i++) await ipam.requestAddress({ poolId: big.poolId, address: '', options: null })
  await ipam.requestAddress({ poolId: big.poolId, address: '11.255.255.254', options: null })
  t.equal((await ipam.requestAddress({ poolId: big.poolId, address: '', options: null })).address, '11.0.7.210/8')
})

t.test('address spaces: only the names GetDefaultAddressSpaces gives', async (t) => {
  const { ipam, store } = setup()
  for (const space of ['Ferry\nLocal', 'FerryLocal/10.0.0.0/8', 'LocalDefault', 'constructor', 'ferrylocal']) {
    const err = await rejects(ipam.requestPool(pool('10.20.0.0/24', '', { addressSpace: space })))
    t.equal(err.code, 'INVALID_REQUEST', JSON.stringify(space))
    t.equal(err.message, `address space ${JSON.stringify(space)} is not ferry's: it serves FerryLocal and FerryGlobal (create the network with --ipam-driver ferry)`)
  }
  t.same(Object.keys(store.state.pools), [], 'nothing recorded')
  const custom = setup({ addressSpaces: { local: 'L', global: 'G' } }).ipam
  t.equal((await custom.requestPool(pool('10.20.0.0/24', '', { addressSpace: 'G' }))).poolId, 'G/10.20.0.0/24')
  t.equal((await rejects(custom.requestPool(pool('10.21.0.0/24')))).code, 'INVALID_REQUEST', 'FerryLocal is not the custom agent\'s')
})

t.test('reserved pools are refused; auto pools skip reserved blocks', async (t) => {
  const { ipam } = setup({ defaultPools: [{ base: '127.0.0.0/8', size: 24 }, { base: '224.0.0.0/4', size: 16 }, { base: '10.0.0.0/8', size: 24 }] })
  for (const p of ['127.0.0.0/16', '0.0.0.0/8', '224.0.0.0/4', '128.0.0.0/1', '169.254.1.0/24', '255.255.255.0/24']) {
    t.equal((await rejects(ipam.requestPool(pool(p)))).code, 'INVALID_REQUEST', p)
  }
  t.equal((await ipam.requestPool(pool(''))).pool, '10.0.0.0/24', 'the reserved default pools are skipped')
})

t.test('pool options keyed by prototype names are kept as ordinary keys', async (t) => {
  const { ipam } = setup()
  const options = JSON.parse('{"__proto__":"a","constructor":"b","toString":"c"}') as Record<string, string>
  const p = await ipam.requestPool(pool('10.20.0.0/24', '', { options }))
  const rec = ipam.pool(p.poolId)!
  t.same(Object.keys(rec.options).sort(), ['__proto__', 'constructor', 'toString'])
  t.equal(JSON.parse(JSON.stringify(rec.options)).__proto__, 'a')
  t.equal(ipam.pool('constructor'), undefined)
  t.equal(ipam.pool('__proto__'), undefined)
  // A gateway request whose options carry a prototype name.
  const gw = await ipam.requestAddress({ poolId: p.poolId, address: '', options: JSON.parse('{"__proto__":{"RequestAddressType":"com.docker.network.gateway"}}') as Record<string, string> })
  t.equal(rec.allocated[gw.address.split('/')[0]!]?.kind, 'endpoint', 'an inherited RequestAddressType does not count')
})


const v6pool = (p: string, subPool = '') => ({ ...pool(p, subPool), v6: true })

t.test('IPv6 pools: given, with a range, limits and reserved blocks', async (t) => {
  const { ipam, store } = setup()
  const a = await ipam.requestPool(v6pool('fd00:1:0:0::5/64', 'fd00:1::ff:0/112'))
  t.same(a, { poolId: 'FerryLocal/fd00:1::/64', pool: 'fd00:1::/64', data: {} }, 'masked and canonical (RFC 5952)')
  t.equal(store.state.pools[a.poolId]?.range, 'fd00:1::ff:0/112')
  const bad: Array<[string, RegExp]> = [
    ['fd00:2::/47', /^pool fd00:2::\/47 is wider than a \/48: ferry takes IPv6 pools from \/48 to \/120$/],
    ['fd00:2::/121', /^pool fd00:2::\/121 is too small: ferry takes IPv6 pools from \/48 to \/120/],
    ['ff05::/64', /overlaps ff00::\/8, which is multicast/],
    ['fe80::/64', /overlaps fe80::\/10, which is link-local/],
    ['::ffff:0:0/104', /overlaps ::ffff:0:0\/96, which is IPv4-mapped/],
    ['::/64', /overlaps ::\/128, which is the unspecified address/],
    ['fd00:1::/48', /overlaps pool fd00:1::\/64 already used by ferry/],
  ]
  for (const [cidr, re] of bad) t.match((await rejects(ipam.requestPool(v6pool(cidr)))).message, re, cidr)
  t.equal(Object.keys(store.state.pools).length, 1)
  t.ok(await ipam.requestPool(pool('10.1.0.0/24')), 'an IPv4 pool beside it')
})

t.test('IPv6 auto pools: /64s of the host-derived ULA /48, avoiding ferry pools and host networks', async (t) => {
  const base = derivedIpv6Pool('host-a')
  t.match(base.base, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/)
  t.equal(base.size, 64)
  t.same(derivedIpv6Pool('host-a'), base, 'stable')
  t.not(derivedIpv6Pool('host-b').base, base.base, 'differs between hosts')
  const first = base.base.replace('::/48', '::/64')
  const second = base.base.replace('::/48', ':1::/64')
  const third = base.base.replace('::/48', ':2::/64')
  const { ipam } = setup({ hostIdentity: 'host-a', host: [second.replace('::/64', '::7'), '::/0', '2001:db8::/32'] })
  t.equal((await ipam.requestPool(v6pool(''))).pool, first)
  t.equal((await ipam.requestPool(v6pool(''))).pool, third, 'skips a host address (as a /128) and ferry\'s own')
  t.equal((await ipam.requestPool(pool(''))).pool, '172.17.0.0/16', 'IPv4 auto pools unchanged')
  // A configured IPv6 base replaces the derived one.
  const custom = setup({ defaultPools: [{ base: '10.0.0.0/8', size: 24 }, { base: 'fd12:3456:789a::/48', size: 64 }] }).ipam
  t.equal((await custom.requestPool(v6pool(''))).pool, 'fd12:3456:789a::/64')
  const v4only = setup({ defaultPools: [{ base: '10.0.0.0/8', size: 24 }], hostIdentity: 'host-a' }).ipam
  t.equal((await v4only.requestPool(v6pool(''))).pool, first, 'IPv4-only defaults keep the derived IPv6 pool')
  const full = setup({ defaultPools: [{ base: 'fd12:3456:789a::/64', size: 64 }], host: ['fd12:3456:789a::/64'] }).ipam
  t.match((await rejects(full.requestPool(v6pool('')))).message, /no free subnet left in the IPv6 default address pools \(base=fd12:3456:789a::\/64,size=64\)/)
})

t.test('IPv6 addresses: gateway, dynamic, fixed (--ip6), release, replay', async (t) => {
  const { ipam, store } = setup()
  const { poolId } = await ipam.requestPool(v6pool('fd00:1::/64'))
  t.same(await ipam.requestAddress({ poolId, address: '', options: GW }), { address: 'fd00:1::1/64', data: {} })
  t.same(await ipam.requestAddress({ poolId, address: '', options: null }), { address: 'fd00:1::2/64', data: {} })
  t.same(await ipam.requestAddress({ poolId, address: 'fd00:1:0::00ab', options: null }), { address: 'fd00:1::ab/64', data: {} }, 'canonical')
  t.equal(store.state.pools[poolId]?.allocated['fd00:1::ab']?.kind, 'endpoint')
  t.equal((await rejects(ipam.requestAddress({ poolId, address: 'fd00:1::ab', options: null }))).code, 'ADDRESS_IN_USE')
  t.match((await rejects(ipam.requestAddress({ poolId, address: 'fd00:2::1', options: null }))).message, 'fd00:2::1 is outside pool fd00:1::/64')
  t.match((await rejects(ipam.requestAddress({ poolId, address: '10.0.0.1', options: null }))).message, 'is not an IPv6 address, as pool fd00:1::/64 is')
  t.match((await rejects(ipam.requestAddress({ poolId, address: 'fd00:1::', options: null }))).message, 'subnet-router anycast address')
  t.ok(await ipam.requestAddress({ poolId, address: 'fd00:1::ffff:ffff:ffff:ffff', options: null }), 'IPv6 has no broadcast address')
  // An engine restarted after a crash replays what it holds.
  ipam.beginReplay()
  t.same(await ipam.requestPool(v6pool('fd00:1::/64')), { poolId, pool: 'fd00:1::/64', data: {} })
  t.same(await ipam.requestAddress({ poolId, address: 'fd00:1::1', options: GW }), { address: 'fd00:1::1/64', data: {} })
  t.same(await ipam.requestAddress({ poolId, address: 'fd00:1::ab', options: null }), { address: 'fd00:1::ab/64', data: {} })
  ipam.endReplay()
  t.equal(await ipam.releaseAddress(poolId, 'fd00:1::ab/64'), true)
  t.equal(store.state.pools[poolId]?.allocated['fd00:1::ab'], undefined)
  t.same(await ipam.requestAddress({ poolId, address: '', options: null }), { address: 'fd00:1::3/64', data: {} }, 'serial after the cursor')
  t.equal(await ipam.releasePool(poolId), true)
  t.same(store.state.pools, {})
})
