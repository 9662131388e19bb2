/**
 * Random and mutated JSON thrown at every plugin route: every answer is JSON with a
 * readable Err/Error (never a stack), the server never crashes, and the next valid
 * request is served. Seeded, so a failure reproduces.
 */
import t from 'tap'
import { buildPluginServer } from '../../src/plugin/server.js'
import { fakeWorld, silentLog } from '../harness/fakes.js'

const METHODS = [
  'Plugin.Activate', 'NetworkDriver.GetCapabilities', 'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork',
  'NetworkDriver.CreateEndpoint', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.EndpointOperInfo', 'NetworkDriver.Join',
  'NetworkDriver.Leave', 'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.RevokeExternalConnectivity',
  'NetworkDriver.DiscoverNew', 'NetworkDriver.DiscoverDelete', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces',
  'IpamDriver.RequestPool', 'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress',
]
const N = 'ab'.repeat(32)
const VALID: Record<string, unknown> = {
  'NetworkDriver.CreateNetwork': { NetworkID: N, Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }] },
  'NetworkDriver.CreateEndpoint': { NetworkID: N, EndpointID: N, Interface: { Address: '10.9.0.2/24' }, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080 }] } },
  'NetworkDriver.Join': { NetworkID: N, EndpointID: N, SandboxKey: '/x' },
  'NetworkDriver.ProgramExternalConnectivity': { NetworkID: N, EndpointID: N, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080 }] } },
  'IpamDriver.RequestPool': { AddressSpace: 'FerryLocal', Pool: '10.9.0.0/24', SubPool: '', Options: {}, V6: false },
  'IpamDriver.RequestAddress': { PoolID: 'FerryLocal/10.9.0.0/24', Address: '', Options: null },
  'IpamDriver.ReleaseAddress': { PoolID: 'FerryLocal/10.9.0.0/24', Address: '10.9.0.2' },
}

let seed = 0x5eed
function rnd (n: number): number { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
function pick<T> (a: T[]): T { return a[rnd(a.length)]! }

function randomValue (depth: number): unknown {
  switch (rnd(depth > 2 ? 6 : 9)) {
    case 0: return null
    case 1: return rnd(2) === 0
    case 2: return pick([0, -1, 65536, 1e308, 3.5, 6, 17, 2 ** 53])
    case 3: return pick(['', 'x'.repeat(rnd(300)), '10.9.0.0/24', '../../etc', '\u0000', '$(reboot)', 'fy-; rm -rf /', N])
    case 4: return 'é'.repeat(rnd(10))
    case 5: return rnd(100)
    case 6: return Array.from({ length: rnd(4) }, () => randomValue(depth + 1))
    default: return Object.fromEntries(Array.from({ length: rnd(5) }, () => [
      pick(['NetworkID', 'EndpointID', 'PoolID', 'Pool', 'Address', 'Options', 'Interface', 'IPv4Data', 'SandboxKey', 'Proto', 'Port', 'HostPort', 'com.docker.network.portmap', 'com.docker.network.generic', '__proto__', 'constructor']),
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
  t.same(JSON.parse(ok.body), { Scope: 'local', ConnectivityScope: 'global' })
})
