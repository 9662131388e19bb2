/**
 * The choice of implementation (with injected probes) and the kernel module's
 * executor over a fake generic netlink socket and the fake link driver (this
 * project's machines have no WireGuard module; the encoding itself is checked
 * byte for byte in test/kernel/wireguard-genl.test.ts).
 */
import t from 'tap'
import { detectWireGuard, KernelWireGuard, type GenlDevices } from '../../src/wireguard/device.js'
import type { WgDeviceGet, WgSetDevice } from '../../src/kernel/wireguard-genl.js'
import { generateKeyPair } from '../../src/wireguard/keys.js'
import { FakeLinkDriver } from '../harness/kernel-fake.js'

t.test('the kernel module wins where it exists, else wireguard-go, else nothing', async (t) => {
  const yes = async (): Promise<boolean> => true
  const no = async (): Promise<boolean> => false
  const go = async (): Promise<string | undefined> => '/usr/bin/wireguard-go'
  const none = async (): Promise<string | undefined> => undefined
  t.same(await detectWireGuard({ probeKernel: yes, findUserspace: go }), { kernelModule: true, userspace: '/usr/bin/wireguard-go', mode: 'kernel' })
  t.same(await detectWireGuard({ probeKernel: yes, findUserspace: none }), { kernelModule: true, userspace: undefined, mode: 'kernel' })
  t.same(await detectWireGuard({ probeKernel: no, findUserspace: go }), { kernelModule: false, userspace: '/usr/bin/wireguard-go', mode: 'userspace' })
  t.same(await detectWireGuard({ probeKernel: no, findUserspace: none }), { kernelModule: false, userspace: undefined, mode: undefined })
  // A probe that fails is "no module", not a crash.
  t.same(await detectWireGuard({ probeKernel: async () => { throw new Error('EPERM') }, findUserspace: go }), { kernelModule: false, userspace: '/usr/bin/wireguard-go', mode: 'userspace' })
})

t.test('the real probe answers on this host (no module here: userspace or nothing)', async (t) => {
  const d = await detectWireGuard()
  t.equal(typeof d.kernelModule, 'boolean')
  t.not(d.mode, d.kernelModule ? 'userspace' : 'kernel')
})

class FakeGenl implements GenlDevices {
  sets: WgSetDevice[] = []
  devices = new Map<string, WgDeviceGet>()
  async setDevice (req: WgSetDevice): Promise<void> {
    this.sets.push(req)
    const d = this.devices.get(req.ifname) ?? { peers: [] }
    if (req.privateKey) d.privateKey = req.privateKey
    if (req.listenPort !== undefined) d.listenPort = req.listenPort
    for (const p of req.peers) {
      d.peers = d.peers.filter((x) => !x.publicKey.equals(p.publicKey))
      if (p.remove !== true) d.peers.push({ publicKey: p.publicKey, keepalive: p.keepalive ?? 0, lastHandshake: 0, rxBytes: 0, txBytes: 0, allowedIps: p.allowedIps ?? [], ...(p.endpoint ? { endpoint: p.endpoint } : {}) })
    }
    this.devices.set(req.ifname, d)
  }

  /** The kernel answers every WireGuard link (read() asks only for those). */
  async getDevice (ifname: string): Promise<WgDeviceGet | undefined> { return this.devices.get(ifname) ?? { peers: [] } }
}

t.test('kernel executor: peers over generic netlink, read back as the mesh reads wireguard-go', async (t) => {
  const links = new FakeLinkDriver()
  const genl = new FakeGenl()
  const wg = new KernelWireGuard(links, genl)
  t.equal(wg.mode, 'kernel')
  t.equal(await wg.read('fyw-a'), undefined, 'no device yet')
  await t.rejects(wg.setPeers('fyw-a', []), /does not exist/)
  await links.createWireGuard('fyw-a')
  t.equal((await links.getLink('fyw-a'))?.kind, 'wireguard')
  const a = generateKeyPair().publicKey
  const b = generateKeyPair().publicKey
  await wg.setPeers('fyw-a', [
    { hostId: 'h1', publicKey: a, endpoint: '192.0.2.1:51820', allowedIps: ['100.64.0.1/32'], keepalive: 25 },
    { hostId: 'h2', publicKey: b, endpoint: '192.0.2.2:51821', allowedIps: ['100.64.0.2/32'], keepalive: 25 },
  ])
  t.same(genl.sets[0]?.peers.map((p) => p.remove === true), [false, false])
  const s = await wg.read('fyw-a')
  t.same(s?.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps, p.keepalive]), [
    [a, '192.0.2.1:51820', ['100.64.0.1/32'], 25], [b, '192.0.2.2:51821', ['100.64.0.2/32'], 25],
  ])
  // A peer that goes is removed by key; the one that stays is updated in place.
  await wg.setPeers('fyw-a', [{ hostId: 'h2', publicKey: b, endpoint: '192.0.2.2:51821', allowedIps: ['100.64.0.2/32'], keepalive: 25 }])
  const last = genl.sets[genl.sets.length - 1]
  t.same(last?.peers.map((p) => [p.publicKey.toString('base64'), p.remove === true]), [[a, true], [b, false]])
  t.equal(last?.replacePeers, undefined, 'sessions of kept peers are not dropped')
  t.same((await wg.read('fyw-a'))?.peers.map((p) => p.publicKey), [b])
  // A TUN or other device of the name is not read as a kernel WireGuard device.
  await links.createBridge('fyw-b')
  t.equal(await wg.read('fyw-b'), undefined)
  await wg.remove('fyw-a')
  await wg.remove('fyw-a')
  t.equal(await links.getLink('fyw-a'), undefined)
})
