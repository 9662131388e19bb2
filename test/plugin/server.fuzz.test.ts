/**
 * Random and mutated JSON thrown at every plugin route: every answer is JSON with a
 * readable Err/Error (never a stack), the server never crashes, and the next valid
 * request is served. Seeded, so a failure reproduces.
 */
import t, { type Test } from 'tap'
import { buildPluginServer } from '../../src/plugin/server.js'
import { fakeWorld, silentLog } from '../harness/fakes.js'

const METHODS = [
  'Plugin.Activate', 'NetworkDriver.GetCapabilities', 'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork',
  'NetworkDriver.CreateEndpoint', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.EndpointOperInfo', 'NetworkDriver.Join',
  'NetworkDriver.Leave', 'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.RevokeExternalConnectivity',
  'NetworkDriver.DiscoverNew', 'NetworkDriver.DiscoverDelete', 'NetworkDriver.GwAllocCheck', 'NetworkDriver.AllocateNetwork',
  'NetworkDriver.FreeNetwork', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces',
  'IpamDriver.RequestPool', 'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress',
]
const N = 'ab'.repeat(32)
const VALID: Record<string, unknown> = {
  'NetworkDriver.GwAllocCheck': { Options: { 'com.docker.network.enable_ipv4': true, 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'com.docker.network.bridge.gateway_mode_ipv4': 'nat' } } },
  'NetworkDriver.CreateNetwork': { NetworkID: N, Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }] },
  'NetworkDriver.CreateEndpoint': { NetworkID: N, EndpointID: N, Interface: { Address: '10.9.0.2/24' }, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080 }] } },
  'NetworkDriver.Join': { NetworkID: N, EndpointID: N, SandboxKey: '/x' },
  'NetworkDriver.ProgramExternalConnectivity': { NetworkID: N, EndpointID: N, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080 }] } },
  'IpamDriver.RequestPool': { AddressSpace: 'FerryLocal', Pool: '10.9.0.0/24', SubPool: '', Options: {}, V6: false },
  'IpamDriver.RequestAddress': { PoolID: 'FerryLocal/10.9.0.0/24', Address: '', Options: null },
  'IpamDriver.ReleaseAddress': { PoolID: 'FerryLocal/10.9.0.0/24', Address: '10.9.0.2' },
}

/** Names that are members of Object.prototype: ordinary ids and keys to ferry. */
const PROTO = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']
/** Pools that can never be a container network (or are wider than a /8). */
const RESERVED = ['127.0.0.0/16', '0.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4', '255.255.255.252/30', '169.254.0.0/16', '128.0.0.0/1', '0.0.0.0/0', '10.0.0.0/7']

let seed = 0x5eed
function rnd (n: number): number { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
function pick<T> (a: T[]): T { return a[rnd(a.length)]! }

function randomValue (depth: number): unknown {
  switch (rnd(depth > 2 ? 6 : 9)) {
    case 0: return null
    case 1: return rnd(2) === 0
    case 2: return pick([0, -1, 65536, 1e308, 3.5, 6, 17, 2 ** 53])
    case 3: return pick(['', 'x'.repeat(rnd(300)), '10.9.0.0/24', '../../etc', '\u0000', '$(reboot)', 'fy-; rm -rf /', N, ...PROTO, ...RESERVED])
    case 4: return 'é'.repeat(rnd(10))
    case 5: return rnd(100)
    case 6: return Array.from({ length: rnd(4) }, () => randomValue(depth + 1))
    default: return Object.fromEntries(Array.from({ length: rnd(5) }, () => [
      pick(['NetworkID', 'EndpointID', 'PoolID', 'Pool', 'Address', 'Options', 'Interface', 'IPv4Data', 'SandboxKey', 'Proto', 'Port', 'HostPort', 'com.docker.network.portmap', 'com.docker.network.generic', ...PROTO]),
      randomValue(depth + 1)]))
  }
}

function mutate (v: unknown): unknown {
  if (v === null || typeof v !== 'object') return rnd(2) ? randomValue(1) : v
  if (Array.isArray(v)) return v.map(mutate)
  const o: Record<string, unknown> = { ...(v as Record<string, unknown>) }
  const keys = Object.keys(o)
  const k = keys.length > 0 ? pick(keys) : 'x'
  switch (rnd(3)) {
    case 0: delete o[k]; break
    case 1: o[k] = randomValue(1); break
    default: o[k] = mutate(o[k])
  }
  return o
}

t.test('thousands of random and mutated bodies', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  let bad = 0
  for (let i = 0; i < 3000; i++) {
    const method = pick(METHODS)
    const base = VALID[method]
    const body = rnd(4) === 0 ? pick(['', '{', 'null', '[]', '"x"', '1', '{"a":', '\u0000\u0001', '{}'.repeat(50)])
      : JSON.stringify(base !== undefined && rnd(2) === 0 ? mutate(base) : randomValue(0))
    const res = await app.inject({ method: 'POST', url: `/${method}`, payload: body })
    let parsed: Record<string, unknown>
    try { parsed = JSON.parse(res.body) as Record<string, unknown> } catch { t.fail(`non-JSON answer to ${method} ${body}: ${res.body}`); continue }
    if (res.statusCode >= 500) t.fail(`${res.statusCode} for ${method} ${body}: ${res.body}`)
    if (res.statusCode >= 400) {
      bad++
      const msg = String(parsed.Err ?? '')
      if (msg === '' || /\n\s+at /.test(msg) || (method.startsWith('IpamDriver.') && parsed.Error !== msg)) {
        t.fail(`bad error answer to ${method} ${body}: ${res.body}`)
      }
    }
  }
  t.ok(bad > 100, `${bad} requests refused with a readable error`)
  // Still serving, and a valid flow works.
  const ok = await app.inject({ method: 'POST', url: '/NetworkDriver.GetCapabilities', payload: '' })
  t.equal(ok.statusCode, 200)
  t.same(JSON.parse(ok.body), { Scope: 'local', ConnectivityScope: 'global', GwAllocChecker: true })
})

/** Every plugin call answers below 500; the answer's body. */
async function call (t: Test, app: ReturnType<typeof buildPluginServer>, method: string, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/${method}`, payload: JSON.stringify(body) })
  if (res.statusCode >= 500) t.fail(`${res.statusCode} for ${method} ${JSON.stringify(body)}: ${res.body}`)
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> }
}

t.test('prototype names as ids, pool ids and option keys: never a 500, never a polluted prototype', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  // Unknown ids that are members of Object.prototype: not found, or nothing to do.
  for (const p of PROTO) {
    const ids = { NetworkID: p, EndpointID: p }
    for (const [m, b] of [
      ['IpamDriver.RequestAddress', { PoolID: p, Address: '' }], ['IpamDriver.ReleaseAddress', { PoolID: p, Address: '10.9.0.1' }],
      ['IpamDriver.ReleasePool', { PoolID: p }], ['NetworkDriver.CreateEndpoint', { ...ids, Interface: { Address: '10.9.0.2/24' } }],
      ['NetworkDriver.Join', { ...ids, SandboxKey: '/x' }], ['NetworkDriver.Leave', ids], ['NetworkDriver.DeleteEndpoint', ids],
      ['NetworkDriver.EndpointOperInfo', ids], ['NetworkDriver.ProgramExternalConnectivity', ids],
      ['NetworkDriver.RevokeExternalConnectivity', ids], ['NetworkDriver.DeleteNetwork', ids],
      ['NetworkDriver.CreateNetwork', { NetworkID: p, Options: { 'com.docker.network.generic': { [p]: 'x' } }, IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }] }],
    ] as const) {
      const r = await call(t, app, m, b)
      if (m === 'NetworkDriver.CreateNetwork') t.match(r.body.Err, `unknown option ${p}`, `${m} ${p}`)
    }
  }
  t.equal(({} as Record<string, unknown>).joined, undefined, 'Object.prototype untouched')

  // A whole flow whose network, endpoint and pool option keys are such names.
  for (const p of PROTO) {
    const pool = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '', Options: { [p]: 'x' }, V6: false })
    t.equal(pool.status, 200, `pool with option key ${p}`)
    const poolId = pool.body.PoolID as string
    const gw = await call(t, app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway', [p]: 'y' } })
    const net = await call(t, app, 'NetworkDriver.CreateNetwork', { NetworkID: p, Options: {}, IPv4Data: [{ Pool: pool.body.Pool, Gateway: gw.body.Address }] })
    t.equal(net.status, 200, `network ${p}`)
    const addr = await call(t, app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })
    const ep = await call(t, app, 'NetworkDriver.CreateEndpoint', { NetworkID: p, EndpointID: p, Interface: { Address: addr.body.Address } })
    t.equal(ep.status, 200, `endpoint ${p}`)
    t.equal((await call(t, app, 'NetworkDriver.Join', { NetworkID: p, EndpointID: p, SandboxKey: '/x' })).status, 200)
    t.equal((await call(t, app, 'NetworkDriver.Leave', { NetworkID: p, EndpointID: p })).status, 200)
    t.equal((await call(t, app, 'NetworkDriver.DeleteEndpoint', { NetworkID: p, EndpointID: p })).status, 200)
    t.equal((await call(t, app, 'NetworkDriver.DeleteNetwork', { NetworkID: p })).status, 200)
    t.equal((await call(t, app, 'IpamDriver.ReleasePool', { PoolID: poolId })).status, 200)
  }
  t.same(Object.keys(w.store.state.networks), [], 'every network gone')
  t.same(Object.keys(w.store.state.endpoints), [], 'every endpoint gone')
  t.same(Object.keys(w.store.state.pools), [], 'every pool gone')
  t.equal(({} as Record<string, unknown>).joined, undefined, 'Object.prototype untouched')
})

t.test('option values that are not strings: a sentence, never a 500', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  const pool = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.9.0.0/24' })
  t.equal(pool.status, 200)
  for (const v of [{}, { toString: 'x' }, { valueOf: 1 }, ['a'], [], 5, null, true]) {
    for (const k of ['com.docker.network.bridge.name', 'com.docker.network.driver.mtu', 'com.docker.network.bridge.enable_icc']) {
      const r = await call(t, app, 'NetworkDriver.CreateNetwork', { NetworkID: N, Options: { 'com.docker.network.generic': { [k]: v } }, IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }] })
      t.equal(r.status, 400, `${k}=${JSON.stringify(v)}`)
      t.match(r.body.Err, new RegExp(`^option ${k.replace(/\./g, '\\.')} must be a string \\(-o ${k.replace(/\./g, '\\.')}=VALUE\\), not (an object|a list|a number|null|a boolean)$`))
    }
  }
  for (const v of [{}, { toString: 'x' }, ['a'], 5]) {
    const r = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.10.0.0/24', Options: { 'x': v } })
    t.equal(r.status, 400, `ipam option ${JSON.stringify(v)}`)
    t.equal(r.body.Error, r.body.Err)
  }
  t.same(Object.keys(w.store.state.networks), [], 'nothing made')
  t.same(w.links.calls.filter((c) => c.op.startsWith('create')), [])
})

t.test('reserved pools and address spaces with control characters are refused with a sentence', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  for (const p of RESERVED) {
    const r = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: p, SubPool: '', Options: {}, V6: false })
    t.equal(r.status, 400, p)
    t.match(r.body.Error, /^pool \S+ (overlaps \S+, which is .* and cannot be a container network|is wider than a \/8: ferry takes pools from \/8 to \/30)$/, p)
  }
  for (const space of ['Ferry\nLocal', 'FerryLocal\n', 'FerryLocal/10.0.0.0/8', 'a\u0000b', '../x', 'LocalDefault', 'x'.repeat(5000), ...PROTO]) {
    const r = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: space, Pool: '10.9.0.0/24' })
    t.equal(r.status, 400, JSON.stringify(space.slice(0, 20)))
    t.match(r.body.Error, /^address space ".*" is not ferry's: it serves FerryLocal and FerryGlobal \(create the network with --ipam-driver ferry\)$/)
    t.notMatch(r.body.Error, /[\u0000-\u001f]/, 'no control character in the answer')
  }
  for (const id of ['Ferry\nLocal/10.9.0.0/24', '', 'x'.repeat(500)]) {
    t.equal((await call(t, app, 'IpamDriver.RequestAddress', { PoolID: id, Address: '' })).status, 400, 'a pool id with a control character or too long')
  }
  t.same(Object.keys(w.store.state.pools), [], 'no pool made')
  // The global space is ferry's too (a swarm-scoped request).
  t.equal((await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryGlobal', Pool: '10.9.0.0/24' })).status, 200)
})

t.test('CreateEndpoint over the wire with every bad address: a 4xx with one sentence, nothing made', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  const pool = await call(t, app, 'IpamDriver.RequestPool', { AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', SubPool: '', Options: {}, V6: false })
  const poolId = pool.body.PoolID as string
  const gw = await call(t, app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })
  await call(t, app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.123.0.5', Options: null })
  t.equal((await call(t, app, 'NetworkDriver.CreateNetwork', { NetworkID: N, Options: {}, IPv4Data: [{ AddressSpace: 'FerryLocal', Pool: '10.123.0.0/24', Gateway: gw.body.Address, AuxAddresses: { r: '10.123.0.5/24' } }] })).status, 200)
  const ok = await call(t, app, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })
  t.equal((await call(t, app, 'NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: 'e1', Interface: { Address: ok.body.Address } })).status, 200)
  const before = w.links.calls.length
  for (const addr of ['8.8.8.8/24', '10.123.0.1/24', '10.123.0.0/24', '10.123.0.255/24', '10.123.0.77/24', '10.123.0.5/24', ok.body.Address, '10.123.0.2/16', '10.123.0.2', 'x']) {
    const r = await call(t, app, 'NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: 'e2', Interface: { Address: addr } })
    t.ok(r.status >= 400 && r.status < 500, `${String(addr)}: ${r.status}`)
    t.match(r.body.Err, /^(endpoint address|the address pool) .+$/, String(r.body.Err))
  }
  t.equal(w.links.calls.length, before, 'the kernel was not asked anything')
  t.same(Object.keys(w.store.state.endpoints), ['e1'])
})
