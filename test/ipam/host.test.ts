/**
 * What the IPAM asks of the host (src/ipam/host.ts): the networks in use, over the
 * in-memory link driver, and the host's identity.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { hostIdentity, hostNetworks } from '../../src/ipam/host.js'
import { FakeLinkDriver } from '../harness/kernel-fake.js'

t.test('host networks: routes but the default one, and addresses', async (t) => {
  const links = new FakeLinkDriver({
    links: [{ name: 'eth0', kind: 'device', up: true }],
    routes: [{ dst: '0.0.0.0/0', dev: 'eth0', table: 254 }, { dst: '172.31.0.0/16', dev: 'eth0', table: 254 }],
  })
  await links.addAddress('eth0', '192.168.7.10/24')
  const nets = await hostNetworks(links)
  t.same(nets.sort(), ['172.31.0.0/16', '192.168.7.0/24', '192.168.7.10/24'], 'the default route is no network in use; the connected route and the address are')
})

t.test('host identity: machine-id, else the host id, else the host name', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'machine-id')
  writeFileSync(file, '0123456789abcdef0123456789abcdef\n')
  t.equal(await hostIdentity('h1', file), '0123456789abcdef0123456789abcdef', 'trimmed machine-id first')
  writeFileSync(file, '\n')
  t.equal(await hostIdentity('h1', file), 'h1', 'an empty machine-id: the host id')
  t.equal(await hostIdentity(undefined, join(dir, 'none')), hostname(), 'neither: the host name')
})
