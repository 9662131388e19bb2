/**
 * The engine client (src/docker/client.ts) against a stand-in engine on a loopback
 * port (and no engine at all): names of ferry's networks and their containers, and namesIfUp, which says
 * when the engine could not be asked.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { EngineClient, managedPluginNames, parseDockerHost, type OwnNetworks } from '../../src/docker/client.js'

const NET = 'a'.repeat(64)
const EP = 'e'.repeat(64)
const OWN: OwnNetworks = { driverNames: ['ferry', 'ferry:latest'], pluginSocket: 'ferry.sock', ids: () => [] }

async function engine (t: Test): Promise<number> {
  const server = http.createServer((req, res) => {
    if (req.url === '/v1.41/networks') {
      res.end(JSON.stringify([{ Id: NET, Name: 'front', Driver: 'ferry' }, { Id: 'b'.repeat(64), Name: 'bridge', Driver: 'bridge' }]))
    } else if (req.url === `/v1.41/networks/${NET}`) {
      res.end(JSON.stringify({ Containers: { c1: { Name: 'web', EndpointID: EP, IPv4Address: '10.20.0.2/24', MacAddress: '02:42:0a:14:00:02' } } }))
    } else {
      res.writeHead(404).end('{}')
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return (server.address() as AddressInfo).port
}

t.test('parseDockerHost', async (t) => {
  t.same(parseDockerHost('unix:///var/run/docker.sock'), { socketPath: '/var/run/docker.sock' })
  t.same(parseDockerHost('tcp://127.0.0.1:2376'), { host: '127.0.0.1', port: 2376 })
  t.throws(() => parseDockerHost('ssh://host'), { code: 'INVALID_OPTION' })
})

t.test('names, and namesIfUp while the engine answers', async (t) => {
  const port = await engine(t)
  const c = new EngineClient(`tcp://127.0.0.1:${port}`)
  const n = await c.namesIfUp(OWN, 0)
  t.equal(c.lastError, '')
  t.equal(n?.networks.get(NET), 'front')
  t.match(n?.endpoints.get(EP), { containerName: 'web', networkId: NET, cidr: '10.20.0.2/24', mac: '02:42:0a:14:00:02' })
  t.same([...(n?.addresses.get(NET) ?? [])], ['10.20.0.2'], 'the addresses held on ferry\'s network')
})

t.test('namesIfUp: undefined when the engine cannot be asked; names() still answers, empty', async (t) => {
  const c = new EngineClient(`unix://${t.testdirName}/no-engine.sock`, 500)
  t.equal(await c.namesIfUp(OWN, 0), undefined)
  t.match(c.lastError, /cannot reach the Docker engine/)
  const n = await c.names(OWN, 0)
  t.equal(n.endpoints.size, 0, 'names() falls back to nothing (ids)')
})

/** A managed plugin as `GET /plugins` describes it (Docker 20.10's answer, the fields ferry reads). */
const plugin = (name: string, over: Record<string, unknown> = {}): unknown => ({
  Id: 'p'.repeat(64), Name: name, Enabled: true,
  Config: { Entrypoint: ['/usr/local/bin/ferry-plugin'], Interface: { Socket: 'ferry.sock', Types: [{ Capability: 'networkdriver', Prefix: 'docker', Version: '1.0' }, { Capability: 'ipamdriver', Prefix: 'docker', Version: '1.0' }] } },
  ...over,
})

t.test('managedPluginNames: the names ferry\'s managed plugins are installed under', async (t) => {
  t.same(managedPluginNames([plugin('ferry:latest')], 'ferry.sock'), ['ferry:latest', 'ferry'])
  t.same(managedPluginNames([plugin('myferry:latest'), plugin('localhost:5000/ferry:2')], 'ferry.sock'), ['myferry:latest', 'myferry', 'localhost:5000/ferry:2'])
  t.same(managedPluginNames([plugin('other:latest', { Config: { Entrypoint: ['/bin/other'], Interface: { Socket: 'ferry.sock', Types: ['docker.networkdriver/1.0'] } } })], 'ferry.sock'), [], 'another plugin on a socket of the same name')
  t.same(managedPluginNames([plugin('ferry:latest')], 'ferry2.sock'), [], 'another socket (--plugin-name)')
  t.same(managedPluginNames([plugin('vol:latest', { Config: { Entrypoint: ['/usr/local/bin/ferry-plugin'], Interface: { Socket: 'ferry.sock', Types: [{ Prefix: 'docker', Capability: 'volumedriver' }] } } })], 'ferry.sock'), [], 'not a network driver')
  for (const junk of [undefined, null, 'x', {}, [null], [{ Name: 7 }], [{ Name: 'a', Config: 'x' }], [{ Name: '', Config: { Interface: { Socket: 'ferry.sock' } } }]]) {
    t.same(managedPluginNames(junk, 'ferry.sock'), [], `ignores ${JSON.stringify(junk)}`)
  }
})

t.test('names: a network is ferry\'s by its driver, by a managed plugin\'s name, or by an id the agent holds', async (t) => {
  const nets = [
    { Id: '1'.repeat(64), Name: 'plain', Driver: 'ferry' },
    { Id: '2'.repeat(64), Name: 'reg', Driver: 'localhost:5000/ferry:2' },
    { Id: '3'.repeat(64), Name: 'held', Driver: 'renamed' },
    { Id: '4'.repeat(64), Name: 'bridge', Driver: 'bridge' },
  ]
  const detailed: string[] = []
  const server = http.createServer((req, res) => {
    const url = req.url ?? ''
    if (url === '/v1.41/networks') return res.end(JSON.stringify(nets))
    if (url === '/v1.41/plugins') return res.end(JSON.stringify([plugin('localhost:5000/ferry:2')]))
    const m = /^\/v1\.41\/networks\/(\w+)$/.exec(url)
    if (m) { detailed.push(nets.find((n) => n.Id === m[1])?.Name ?? '?'); return res.end(JSON.stringify({ Containers: {} })) }
    res.writeHead(404).end('{}')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const c = new EngineClient(`tcp://127.0.0.1:${(server.address() as AddressInfo).port}`)
  const n = await c.namesIfUp({ ...OWN, ids: () => ['3'.repeat(64)] }, 0)
  t.equal(n?.networks.size, 4, 'every network is named')
  t.same([...n?.addresses.keys() ?? []].sort(), ['1'.repeat(64), '2'.repeat(64), '3'.repeat(64)], 'ferry\'s networks: by driver, by the plugin\'s name, by id')
  t.same(detailed.sort(), ['held', 'plain', 'reg'], 'the bridge network is not read')
})

t.test('names: an engine that refuses GET /plugins still names the networks of ferry\'s driver names', async (t) => {
  const port = await engine(t) // answers 404 to /plugins
  const n = await new EngineClient(`tcp://127.0.0.1:${port}`).namesIfUp(OWN, 0)
  t.match(n?.endpoints.get(EP), { containerName: 'web' })
})
