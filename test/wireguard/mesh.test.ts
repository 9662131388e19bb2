/**
 * Encrypted overlays through PeerSync and the WireGuard mesh, on the memory
 * cluster with fake kernels and a recording WireGuard driver: the FDB sends
 * to the peers' tunnel addresses, every other host is a WireGuard peer, a host
 * that leaves is removed from the device, and the device goes with the last
 * encrypted overlay.
 */
import t from 'tap'
import { MemoryCluster } from '../harness/cluster-memory.js'
import { peerHost, type PeerHost } from '../harness/peer-host.js'
import { overlayMac } from '../../src/vxlan/plan.js'
import { generateKeyPair } from '../../src/wireguard/keys.js'
import { WireGuardMesh } from '../../src/wireguard/mesh.js'
import type { WireGuardConfig, WireGuardDriver } from '../../src/wireguard/device.js'
import type { WgDeviceState, WgPeer } from '../../src/wireguard/plan.js'

type T = Parameters<Parameters<typeof t.test>[1]>[0]

class RecordingWireGuard implements WireGuardDriver {
  readonly mode = 'userspace' as const
  devices = new Map<string, { cfg: WireGuardConfig, peers: WgPeer[] }>()
  /** What was done, in order, beyond peers: route and mirror changes, removals. */
  steps: string[] = []
  /** Peers (by public key) that answer a handshake. */
  handshakes = (_key: string): boolean => false
  async routeRange (dev: string, range: string): Promise<void> { this.steps.push(`route ${range} ${dev}`) }
  failMirror = false
  async mirror (from: string, to: string): Promise<void> {
    if (this.failMirror) throw new Error('tc: no such qdisc')
    this.steps.push(`mirror ${from} ${to}`)
  }
  async ensure (dev: string, cfg: WireGuardConfig): Promise<void> { const d = this.devices.get(dev); this.devices.set(dev, { cfg, peers: d?.peers ?? [] }) }
  async setPeers (dev: string, peers: readonly WgPeer[]): Promise<void> {
    const d = this.devices.get(dev)
    if (!d) throw new Error(`no device ${dev}`)
    d.peers = [...peers]
  }
  async read (dev: string): Promise<WgDeviceState | undefined> {
    const d = this.devices.get(dev)
    return d && {
      privateKey: d.cfg.privateKey,
      peers: d.peers.map((p) => ({ publicKey: p.publicKey, allowedIps: p.allowedIps, keepalive: p.keepalive, lastHandshake: this.handshakes(p.publicKey) ? Date.now() : 0, rxBytes: 0, txBytes: 0 })),
    }
  }
  async remove (dev: string): Promise<void> { if (this.devices.delete(dev)) this.steps.push(`remove ${dev}`) }
}

interface Host extends PeerHost { wg: RecordingWireGuard, mesh: WireGuardMesh }

const saved = new Map<string, string>()

async function host (t: T, cluster: MemoryCluster, n: number, endpoint?: string, vtep = `192.168.50.${n}`): Promise<Host> {
  const wg = new RecordingWireGuard()
  const mesh = new WireGuardMesh({
    hostId: `h${n}`, keys: generateKeyPair(), port: 51820, tunnel: `100.64.0.${n}`, driver: wg, rotationWaitMs: 300, ...(endpoint !== undefined ? { endpoint } : {}),
    saveKey: async (k) => { saved.set(`h${n}`, k) },
  })
  const store = cluster.connect({ hostId: `h${n}`, advertiseAddr: vtep, heartbeatMs: 0, hostTtlMs: 1000, wireguard: mesh.info() })
  mesh.setPublisher((info) => store.setWireGuard!(info))
  t.teardown(() => store.close())
  await store.start()
  return { ...(await peerHost(t, store, vtep, { wireguard: mesh })), wg, mesh }
}

const ENC = { name: 'ove', subnet: '10.31.0.0/24', gateway: '10.31.0.1', encrypt: 'wireguard' as const }

async function join (h: Host): Promise<void> {
  const def = await h.store.defineOverlay(ENC)
  await h.sync.attach({ ...ENC, vni: def.vni })
}

async function publish (h: Host, id: string, ip: string): Promise<void> {
  await h.store.allocateAddress('ove', ip)
  await h.store.publishEndpoint({ overlay: 'ove', endpointId: id, ip, mac: overlayMac(ip) })
}

async function fdbOf (h: Host): Promise<Array<[string, string]>> {
  await h.sync.settled()
  const dev = h.sync.devices('ove')?.vxlan ?? 'none'
  return (await h.links.listFdb(dev)).map((e): [string, string] => [e.mac, e.dst ?? '']).sort()
}

t.test('an encrypted overlay sends to tunnel addresses through one WireGuard device per host', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2, h3] = [await host(t, cluster, 1), await host(t, cluster, 2), await host(t, cluster, 3)] as [Host, Host, Host]
  for (const h of [h1, h2, h3]) await join(h)
  t.match(h1.sync.devices('ove'), { local: '100.64.0.1', port: 4799, mtu: 1390 }, 'VXLAN from the tunnel address, port 4799, MTU 1500 - 60 - 50')
  t.equal(h1.sync.devices('ove')?.dev, undefined, 'not bound to the underlay device')
  const dev1 = h1.mesh.device
  t.match(h1.wg.devices.get(dev1)?.cfg, { listenPort: 51820, addressCidr: '100.64.0.1/16', mtu: 1440 })
  await publish(h2, 'e2', '10.31.0.12')
  await publish(h3, 'e3', '10.31.0.13')
  t.same(await fdbOf(h1), [[overlayMac('10.31.0.12'), '100.64.0.2'], [overlayMac('10.31.0.13'), '100.64.0.3']], 'FDB entries point at the peers\' tunnel addresses')
  const peers = (): Array<[string, string, string[]]> => (h1.wg.devices.get(dev1)?.peers ?? []).map((p) => [p.hostId, p.endpoint, p.allowedIps])
  t.same(peers(), [['h2', '192.168.50.2:51820', ['100.64.0.2/32']], ['h3', '192.168.50.3:51820', ['100.64.0.3/32']]])
  const st = await h1.sync.wireguardStatus()
  t.match(st, { mode: 'userspace', device: dev1, active: true, tunnel: '100.64.0.1', peers: [{ hostId: 'h2', tunnel: '100.64.0.2' }, { hostId: 'h3' }] })

  await h3.store.leave()
  await h1.sync.settled()
  for (let i = 0; i < 50 && peers().length !== 1; i++) await new Promise((resolve) => setImmediate(resolve))
  t.same(peers(), [['h2', '192.168.50.2:51820', ['100.64.0.2/32']]], 'a host that leaves is removed from the device')
  t.same(await fdbOf(h1), [[overlayMac('10.31.0.12'), '100.64.0.2']], 'and its endpoints from the FDB')

  await h1.sync.detach('ove')
  t.equal(h1.wg.devices.size, 0, 'the device goes with the last encrypted overlay')
})

t.test('a plain overlay beside an encrypted one keeps the underlay; a plain-only host has no device', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2] = [await host(t, cluster, 1), await host(t, cluster, 2)] as [Host, Host]
  const plain = { name: 'ovp', subnet: '10.32.0.0/24', gateway: '10.32.0.1' }
  for (const h of [h1, h2]) {
    const def = await h.store.defineOverlay(plain)
    await h.sync.attach({ ...plain, vni: def.vni })
  }
  t.match(h1.sync.devices('ovp'), { local: '192.168.50.1', port: 4789, mtu: 1450, dev: 'eth0' })
  t.equal(h1.wg.devices.size, 0, 'no WireGuard device without an encrypted overlay')
  await t.rejects(h2.store.defineOverlay({ ...plain, encrypt: 'wireguard' }), { code: 'NAME_CONFLICT', message: /already exists plain/ })
  await join(h1)
  t.equal(h1.wg.devices.size, 1)
  await h1.sync.detach('ovp')
  t.equal(h1.wg.devices.size, 1, 'removing the plain overlay keeps the device')
})

t.test('a key rotation: the new key on the other device, mirrored, published; peers switch; then the old device goes', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2, h3] = [await host(t, cluster, 1), await host(t, cluster, 2), await host(t, cluster, 3)] as [Host, Host, Host]
  for (const h of [h1, h2, h3]) await join(h)
  const old = h1.mesh.info()
  const dev0 = h1.mesh.device
  const before = await h1.mesh.status()
  t.match(before.peers, [{ hostId: 'h2', encrypted: false }, { hostId: 'h3', encrypted: false }], 'no handshake yet: nothing encrypted yet')
  t.equal(before.peers[0]?.handshakeAgeS, undefined)
  // h2 answers handshakes on the new key (it has programmed it); h3 never does (say it is cut off).
  h1.wg.handshakes = (key) => key === h2.mesh.info().publicKey
  const r = await h1.mesh.rotateKey()
  t.not(r.publicKey, old.publicKey, 'a new key')
  const after = await h1.mesh.status()
  t.match(after.peers, [{ hostId: 'h2', encrypted: true, handshakeAgeS: 0 }, { hostId: 'h3', encrypted: false }], 'a peer with a session is encrypted now')
  t.ok(after.lastRotation !== undefined)
  t.equal(saved.get('h1') !== undefined && h1.wg.devices.get(r.device)?.cfg.privateKey === saved.get('h1'), true, 'kept in the key file before it was published')
  t.match(r, { port: 51821, switched: ['h2'], late: ['h3'] })
  t.not(r.device, dev0, 'the other slot\'s device')
  t.same(h1.wg.steps, [`route 100.64.0.0/16 ${dev0}`, `mirror ${dev0} ${r.device}`, `route 100.64.0.0/16 ${r.device}`, `remove ${dev0}`],
    'mirrored while both are up, then the range routed through the new device and the old one removed')
  t.match(h1.wg.devices.get(r.device)?.cfg, { listenPort: 51821, addressCidr: '100.64.0.1/16' })
  t.same([...h1.wg.devices.keys()], [r.device], 'one device left')
  t.same(h1.mesh.info(), { publicKey: r.publicKey, port: 51821, tunnel: old.tunnel }, 'what it publishes')
  await h2.sync.settled()
  const seen = (h: Host): string[] => (h.wg.devices.get(h.mesh.device)?.peers ?? []).filter((p) => p.hostId === 'h1').map((p) => `${p.publicKey} ${p.endpoint}`)
  for (let i = 0; i < 50 && seen(h2)[0] !== `${r.publicKey} 192.168.50.1:51821`; i++) await new Promise((resolve) => setImmediate(resolve))
  t.same(seen(h2), [`${r.publicKey} 192.168.50.1:51821`], 'a peer replaces the old key by the new one (and the new port)')
  const again = await h1.mesh.rotateKey()
  t.match(again, { port: 51820, device: dev0 }, 'the next rotation goes back to the first slot')
  t.match(await h1.mesh.status(), { device: dev0, port: 51820, publicKey: again.publicKey })
  t.equal((await h1.mesh.status()).retiring, undefined)
})

t.test('without an encrypted overlay, a rotation only replaces and publishes the key', async (t) => {
  const cluster = new MemoryCluster()
  const h1 = await host(t, cluster, 1)
  const r = await h1.mesh.rotateKey()
  t.match(r, { port: 51820, switched: [], late: [], overlapMs: 0 })
  t.same(h1.wg.steps, [], 'no device touched')
  t.equal((await h1.store.hosts()).find((h) => h.hostId === 'h1')?.wg?.publicKey, r.publicKey, 'registered with the new key')
})

t.test('--key-rotation-interval rotates on a timer until stopped; one rotation at a time', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2] = [await host(t, cluster, 1), await host(t, cluster, 2)] as [Host, Host]
  for (const h of [h1, h2]) await join(h)
  const first = h1.mesh.info().publicKey
  // h2 never answers on the new key: the rotation waits its bound (300 ms here), and a second one is refused meanwhile.
  const running = h1.mesh.rotateKey()
  await t.rejects(h1.mesh.rotateKey(), { code: 'NAME_CONFLICT', message: /already under way/ })
  t.match(await running, { switched: [], late: ['h2'] }, 'a peer that never switched is reported late')
  h1.mesh.rotateEvery(20)
  t.teardown(() => h1.mesh.rotateEvery(undefined))
  const second = h1.mesh.info().publicKey
  for (let i = 0; i < 200 && h1.mesh.info().publicKey === second; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  h1.mesh.rotateEvery(undefined)
  t.not(h1.mesh.info().publicKey, second, 'the timer rotated the key')
  t.not(second, first)
})

t.test('a host behind NAT (--wireguard-endpoint): peers send to its public endpoint, which follows a key rotation to the port above', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2] = [await host(t, cluster, 1, '203.0.113.7:40000'), await host(t, cluster, 2)] as [Host, Host]
  for (const h of [h1, h2]) await join(h)
  const endpointOfH1 = async (): Promise<string | undefined> => {
    await h2.sync.settled()
    return h2.wg.devices.get(h2.mesh.device)?.peers.find((p) => p.hostId === 'h1')?.endpoint
  }
  t.equal(await endpointOfH1(), '203.0.113.7:40000')
  t.match(h2.wg.devices.get(h2.mesh.device)?.peers.find((p) => p.hostId === 'h1'), { keepalive: 25 }, 'with persistent keepalive (the NAT keeps its mapping)')
  h1.wg.handshakes = () => true
  await h1.mesh.rotateKey()
  for (let i = 0; i < 50 && (await endpointOfH1()) !== '203.0.113.7:40001'; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(await endpointOfH1(), '203.0.113.7:40001')
})

t.test('an IPv6 underlay: peers at [IPv6]:port, the WireGuard device 80 bytes under the underlay, the tunnel still IPv4', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2] = [await host(t, cluster, 1, undefined, 'fd00:50::1'), await host(t, cluster, 2, undefined, 'fd00:50::2')] as [Host, Host]
  for (const h of [h1, h2]) await join(h)
  t.match(h1.wg.devices.get(h1.mesh.device)?.cfg, { addressCidr: '100.64.0.1/16', mtu: 1420 }, 'underlay MTU - 80 (IPv6 40, UDP 8, WireGuard 32)')
  t.match(h1.sync.devices('ove'), { local: '100.64.0.1', port: 4799, mtu: 1370 }, 'the encrypted VXLAN on the IPv4 tunnel address, MTU 1500 - 80 - 50')
  await publish(h2, 'e2', '10.31.0.12')
  t.same(await fdbOf(h1), [[overlayMac('10.31.0.12'), '100.64.0.2']], 'the FDB points at the peer\'s tunnel address')
  t.same((h1.wg.devices.get(h1.mesh.device)?.peers ?? []).map((p) => [p.hostId, p.endpoint]), [['h2', '[fd00:50::2]:51820']], 'the peer\'s endpoint is its IPv6 VTEP in brackets')
})

t.test('a rotation that fails part way leaves the old key working', async (t) => {
  const cluster = new MemoryCluster()
  const [h1, h2] = [await host(t, cluster, 1), await host(t, cluster, 2)] as [Host, Host]
  for (const h of [h1, h2]) await join(h)
  const old = h1.mesh.info()
  const dev0 = h1.mesh.device
  h1.wg.failMirror = true
  await t.rejects(h1.mesh.rotateKey(), { code: 'KERNEL', message: /cannot bring the new WireGuard key up/ })
  t.same([...h1.wg.devices.keys()], [dev0], 'the new device is removed')
  t.same(h1.mesh.info(), old, 'the key is unchanged')
  h1.wg.failMirror = false
  // The store cannot be told: the new key is taken back (kept again in the key file), the old device stays.
  h1.mesh.setPublisher(async (info) => { if (info.publicKey !== old.publicKey) throw new Error('store down') })
  await t.rejects(h1.mesh.rotateKey(), { code: 'CLUSTER_UNAVAILABLE', message: /the old one stays/ })
  t.same(h1.mesh.info(), old)
  t.equal(saved.get('h1'), h1.wg.devices.get(dev0)?.cfg.privateKey, 'the key file holds the old key again')
  t.same([...h1.wg.devices.keys()], [dev0])
  t.equal((await h1.mesh.status()).retiring, undefined)
})
