/**
 * Replays what Docker 26.1 (Debian 13's docker.io) really sent ferry's plugin, captured byte for
 * byte (test/fixtures/engine-26-capture.json): a dual-stack network, a container publishing a
 * port on all addresses and one on 127.0.0.1, its removal, the network's. Against 20.10's wire
 * (docs/compatibility.md) the differences are the `Host: plugin.moby.localhost` header and a
 * repeated IpamDriver.GetDefaultAddressSpaces; every call must get the answer status it got then.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildPluginServer } from '../../src/plugin/server.js'
import { fakeWorld, silentLog } from '../harness/fakes.js'

interface Step { method: string, headers: Record<string, string>, body: string, status: number }
const fixture = JSON.parse(readFileSync(new URL('../fixtures/engine-26-capture.json', import.meta.url), 'utf8')) as { engine: string, steps: Step[] }

t.test('Docker 26.1\'s dual-stack lifecycle, as captured, with its headers', async (t) => {
  const w = fakeWorld()
  const app = buildPluginServer({ driver: w.driver, ipam: w.ipam, log: silentLog })
  t.teardown(() => app.close())
  t.ok(fixture.steps.every((s) => s.headers.host === 'plugin.moby.localhost'), 'Docker 26 names a host (20.10 sent an empty one)')
  t.equal(fixture.steps.filter((s) => s.method === 'IpamDriver.GetDefaultAddressSpaces').length, 2)
  let ports: unknown
  for (const [i, s] of fixture.steps.entries()) {
    const res = await app.inject({ method: 'POST', url: `/${s.method}`, headers: { ...s.headers, 'content-length': String(Buffer.byteLength(s.body)) }, payload: s.body })
    t.equal(res.statusCode, s.status, `${i} ${s.method}: ${res.body}`)
    if (s.method === 'NetworkDriver.EndpointOperInfo') ports = (JSON.parse(res.body) as { Value: Record<string, unknown> }).Value['ferry.ports']
  }
  const list = ports as string[]
  t.same(list.filter((p) => p.includes('18081')), ['127.0.0.1:18081->80/tcp'])
  t.ok(list.includes('0.0.0.0:18080->80/tcp'), 'the port published on all addresses')
  t.equal(new Set(list).size, list.length, `no line twice (a port on all addresses read 0.0.0.0 for its IPv6 binding too): ${list.join(', ')}`)
  t.same(w.store.state.networks, {}, 'nothing left')
  t.same(w.store.state.endpoints, {})
})
