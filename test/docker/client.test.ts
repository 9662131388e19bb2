/**
 * The engine client (src/docker/client.ts) against a stand-in engine on a loopback
 * port (and no engine at all): names of ferry's networks and their containers, and namesIfUp, which says
 * when the engine could not be asked.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { EngineClient, parseDockerHost } from '../../src/docker/client.js'

const NET = 'a'.repeat(64)
const EP = 'e'.repeat(64)

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
  const n = await c.namesIfUp(['ferry'], 0)
  t.equal(c.lastError, '')
  t.equal(n?.networks.get(NET), 'front')
  t.match(n?.endpoints.get(EP), { containerName: 'web', networkId: NET, cidr: '10.20.0.2/24', mac: '02:42:0a:14:00:02' })
  t.same([...(n?.addresses.get(NET) ?? [])], ['10.20.0.2'], 'the addresses held on ferry\'s network')
})

t.test('namesIfUp: undefined when the engine cannot be asked; names() still answers, empty', async (t) => {
  const c = new EngineClient(`unix://${t.testdirName}/no-engine.sock`, 500)
  t.equal(await c.namesIfUp(['ferry'], 0), undefined)
  t.match(c.lastError, /cannot reach the Docker engine/)
  const n = await c.names(['ferry'], 0)
  t.equal(n.endpoints.size, 0, 'names() falls back to nothing (ids)')
})
