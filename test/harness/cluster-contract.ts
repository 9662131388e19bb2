/**
 * The ClusterStore contract: the same cases run against the in-memory store
 * (test/harness/cluster-memory.test.ts) and the Redis store (test/cluster/redis.test.ts),
 * so that the fake keeps the real store's semantics. Every case ends with every
 * host leaving and checks that nothing is left in the store.
 */
import type { Test } from 'tap'
import type { ClusterEvent, ClusterStore, LocalClusterState } from '../../src/cluster/types.js'

export interface ContractEnv {
  /** A started store for a host (no heartbeat timer: the cases call heartbeat()). Closed on teardown. */
  store (t: Test, hostId: string, vtep: string, opts?: { ttlMs?: number, local?: LocalClusterState }): Promise<ClusterStore>
  /** Let `ms` pass on the server's clock. */
  elapse (ms: number): Promise<void>
  /** The server crashes and loses every key. */
  crash (): Promise<void>
  /** The server is back (empty). */
  revive (): Promise<void>
  isEmpty (): Promise<boolean>
  /** How many allocations each of three hosts makes concurrently. */
  concurrency: number
}

export interface Recorder {
  events: ClusterEvent[]
  /** The next event (from now or already recorded after `from`) of a kind that matches. */
  wait (kind: ClusterEvent['kind'], match?: (e: ClusterEvent) => boolean, timeoutMs?: number): Promise<ClusterEvent>
  clear (): void
}

export function record (store: ClusterStore): Recorder {
  const events: ClusterEvent[] = []
  let waiters: Array<{ kind: string, match: (e: ClusterEvent) => boolean, resolve: (e: ClusterEvent) => void }> = []
  let seen = 0
  store.subscribe((e) => {
    events.push(e)
    const w = waiters.find((x) => x.kind === e.kind && x.match(e))
    if (w) {
      waiters = waiters.filter((x) => x !== w)
      seen = events.length
      w.resolve(e)
    }
  })
  return {
    events,
    clear: () => { events.length = 0; seen = 0 },
    wait (kind, match = () => true, timeoutMs = 5000) {
      const found = events.slice(seen).find((e) => e.kind === kind && match(e))
      if (found) { seen = events.indexOf(found) + 1; return Promise.resolve(found) }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${kind} event within ${timeoutMs} ms (got ${events.map((e) => e.kind).join(', ')})`)), timeoutMs)
        waiters.push({ kind, match, resolve: (e) => { clearTimeout(timer); resolve(e) } })
      })
    },
  }
}

async function leaveAll (stores: ClusterStore[]): Promise<void> {
  for (const s of stores) await s.leave()
}

const OV = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }

export function clusterContract (t: Test, env: ContractEnv): void {
  t.test('define, join and conflicting definitions', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    const def = await h1.defineOverlay(OV)
    t.match(def, { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', vni: 4096, createdBy: 'h1' })
    t.same(await h2.defineOverlay(OV), def, 'the same command on another host joins the same definition')
    t.same(await h2.defineOverlay({ ...OV, subnet: '10.30.0.7/16' }), def, 'a non-canonical subnet is the same subnet')
    await t.rejects(h2.defineOverlay({ ...OV, subnet: '10.31.0.0/16', gateway: '10.31.0.1' }), {
      code: 'NAME_CONFLICT', message: 'overlay ov1 already exists with subnet 10.30.0.0/16 (this host asked for 10.31.0.0/16)',
    })
    await t.rejects(h2.defineOverlay({ ...OV, gateway: '10.30.0.254' }), { code: 'NAME_CONFLICT', message: /already exists with gateway 10.30.0.1 \(this host asked for 10.30.0.254\)/ })
    await t.rejects(h2.defineOverlay({ ...OV, vni: 5000 }), { code: 'NAME_CONFLICT', message: /already exists with VNI 4096 \(this host asked for 5000\)/ })
    t.same(await h2.defineOverlay({ ...OV, vni: 4096 }), def, 'asking for the VNI it has is fine')
    t.same(await h1.overlay('ov1'), def)
    t.equal(await h1.overlay('nope'), undefined)

    await t.rejects(h1.defineOverlay({ name: 'ov2', subnet: '10.30.5.0/24', gateway: '10.30.5.1' }), {
      code: 'POOL_OVERLAP', message: 'subnet 10.30.5.0/24 of overlay ov2 overlaps overlay ov1 (10.30.0.0/16)',
    })
    const v2 = await h1.defineOverlay({ name: 'ov2', subnet: '10.32.0.0/24', gateway: '10.32.0.1' })
    const v3 = await h2.defineOverlay({ name: 'ov3', subnet: '10.33.0.0/24', gateway: '10.33.0.1', vni: 4098 })
    const v4 = await h1.defineOverlay({ name: 'ov4', subnet: '10.34.0.0/24', gateway: '10.34.0.1' })
    t.same([v2.vni, v3.vni, v4.vni], [4097, 4098, 4099], 'VNIs from 4096 up, skipping a user VNI')
    await t.rejects(h2.defineOverlay({ name: 'ov5', subnet: '10.35.0.0/24', gateway: '10.35.0.1', vni: 4097 }), {
      code: 'NAME_CONFLICT', message: 'VNI 4097 is already used by overlay ov2',
    })
    const v5 = await h2.defineOverlay({ name: 'ov5', subnet: '10.35.0.0/24', gateway: '10.35.0.1', vni: 77 })
    t.equal(v5.vni, 77, 'a user VNI below 4096 is honoured')

    await t.rejects(h1.defineOverlay({ name: 'bad name', subnet: '10.36.0.0/24', gateway: '10.36.0.1' }), { code: 'INVALID_OPTION' })
    await t.rejects(h1.defineOverlay({ name: 'ov6', subnet: '10.36.0.0/31', gateway: '10.36.0.1' }), { code: 'INVALID_OPTION', message: /prefix/ })
    await t.rejects(h1.defineOverlay({ name: 'ov6', subnet: '10.36.0.0/24', gateway: '10.37.0.1' }), { code: 'INVALID_OPTION', message: /not a host address/ })
    await t.rejects(h1.defineOverlay({ name: 'ov6', subnet: '10.36.0.0/24', gateway: '10.36.0.1', vni: 0 }), { code: 'INVALID_OPTION' })
    await t.rejects(h1.defineOverlay({ name: 'ov6', subnet: 'nonsense', gateway: '10.36.0.1' }), { code: 'INVALID_CIDR' })
    await t.rejects(h2.defineOverlay({ ...OV, encrypt: 'wireguard' }), {
      code: 'NAME_CONFLICT', message: 'overlay ov1 already exists plain (this host asked for it encrypted (ferry.encrypt=wireguard))',
    })
    const enc = await h1.defineOverlay({ name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1', encrypt: 'wireguard' })
    t.match(enc, { name: 'ove', encrypt: 'wireguard' }, 'the definition carries its encryption')
    t.same(await h2.defineOverlay({ name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1', encrypt: 'wireguard' }), enc, 'an encrypted overlay is joined encrypted')
    t.same(await h2.overlay('ove'), enc, 'and read back encrypted')
    t.equal((await h2.overlay('ov1'))?.encrypt, undefined, 'a plain one has none')
    t.match((await h1.snapshot()).overlays.find((o) => o.definition.name === 'ove'), { definition: enc, hosts: ['h1', 'h2'] }, 'the snapshot has it, and its hosts')
    await t.rejects(h2.defineOverlay({ name: 'ove', subnet: '10.39.0.0/24', gateway: '10.39.0.1' }), {
      code: 'NAME_CONFLICT', message: 'overlay ove already exists encrypted (ferry.encrypt=wireguard) (this host asked for it plain)',
    })
    await h1.removeOverlayHost('ove')
    await h2.removeOverlayHost('ove')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('address allocation: serial, preferred, gateway, exhaustion, release', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    await h1.defineOverlay({ name: 'small', subnet: '10.40.0.0/29', gateway: '10.40.0.1' })
    await h2.defineOverlay({ name: 'small', subnet: '10.40.0.0/29', gateway: '10.40.0.1' })
    const got = [await h1.allocateAddress('small'), await h2.allocateAddress('small'), await h1.allocateAddress('small'),
      await h2.allocateAddress('small'), await h1.allocateAddress('small')]
    t.same(got, ['10.40.0.2', '10.40.0.3', '10.40.0.4', '10.40.0.5', '10.40.0.6'], 'serial, never the gateway')
    await t.rejects(h2.allocateAddress('small'), { code: 'POOL_EXHAUSTED', message: 'no free address is left in overlay small (10.40.0.0/29)' })
    t.equal(await h1.releaseAddress('small', '10.40.0.3'), false, 'a host cannot release another host\'s address')
    t.equal(await h2.releaseAddress('small', '10.40.0.3'), true)
    t.equal(await h2.releaseAddress('small', '10.40.0.3'), false, 'releasing twice')
    t.equal(await h2.releaseAddress('small', '10.40.0.1'), false, 'the gateway cannot be released')
    t.equal(await h1.allocateAddress('small'), '10.40.0.3', 'the freed address, found after wrapping around')
    await t.rejects(h1.allocateAddress('small', '10.40.0.3'), { code: 'ADDRESS_IN_USE', message: 'address 10.40.0.3 of overlay small is already allocated (by host h1)' })
    t.equal(await h1.allocateAddress('small', '10.40.0.3', { reclaim: true }), '10.40.0.3', 'a host may reclaim its own address')
    await t.rejects(h2.allocateAddress('small', '10.40.0.3', { reclaim: true }), { code: 'ADDRESS_IN_USE' })
    await t.rejects(h2.allocateAddress('small', '10.40.0.1'), { code: 'ADDRESS_IN_USE', message: 'address 10.40.0.1 is the gateway of overlay small' })
    await t.rejects(h2.allocateAddress('small', '10.40.0.7'), { code: 'ADDRESS_OUT_OF_POOL', message: /10.40.0.7 is not a host address of overlay small/ })
    await t.rejects(h2.allocateAddress('small', '10.41.0.2'), { code: 'ADDRESS_OUT_OF_POOL' })
    await t.rejects(h2.allocateAddress('small', 'x.y'), { code: 'INVALID_CIDR' })
    await t.rejects(h2.allocateAddress('nope'), { code: 'NETWORK_NOT_FOUND', message: 'overlay nope is not defined in the cluster' })
    t.equal(await h2.releaseAddress('small', '10.40.0.5'), true)
    t.equal(await h2.allocateAddress('small', '10.40.0.5'), '10.40.0.5', 'a preferred free address')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test(`concurrent allocation from three hosts (3 x ${env.concurrency}) never duplicates`, async (t) => {
    const hosts = await Promise.all(['h1', 'h2', 'h3'].map((h, i) => env.store(t, h, `192.168.50.${i + 1}`)))
    await Promise.all(hosts.map((h) => h.defineOverlay(OV)))
    const all = (await Promise.all(hosts.map((h) => Promise.all(Array.from({ length: env.concurrency }, () => h.allocateAddress('ov1')))))).flat()
    t.equal(all.length, 3 * env.concurrency)
    t.equal(new Set(all).size, all.length, 'all distinct')
    t.notOk(all.includes('10.30.0.1'), 'never the gateway')
    await Promise.all(hosts.map((h) => h.leave()))
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('endpoints: publish, push, revisions, snapshot, one command per change', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    const def = await h1.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const r2 = record(h2)
    await r2.wait('resync')
    const ip = await h1.allocateAddress('ov1')
    const before = h1.status().commands
    const rev = await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip, mac: '02:42:0A:1E:00:02' })
    t.equal(h1.status().commands - before, 1, 'publishing an endpoint is one command')
    const ev = await r2.wait('endpoint-published')
    t.same(ev, { kind: 'endpoint-published', rev, overlay: 'ov1', endpoint: { endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:02', hostId: 'h1', vtep: '192.168.50.1' } })
    t.equal(await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:02' }), rev, 'republishing the same is no change')
    t.equal(await h2.revision(), rev)
    t.same(await h2.endpoints('ov1'), [{ endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:02', hostId: 'h1', vtep: '192.168.50.1' }])
    const snap = await h2.snapshot()
    t.equal(snap.rev, rev)
    t.same(snap.hosts.map((h) => [h.hostId, h.vtep]), [['h1', '192.168.50.1'], ['h2', '192.168.50.2']])
    t.same(snap.overlays.map((o) => [o.definition, o.hosts, o.endpoints.map((e) => e.endpointId)]), [[def, ['h1', 'h2'], ['ep1']]])
    const moved = await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:99' })
    t.equal(moved, rev + 1, 'a changed endpoint bumps the revision')
    await r2.wait('endpoint-published', (e) => e.kind === 'endpoint-published' && e.endpoint.mac === '02:42:0a:1e:00:99')
    t.equal(await h1.withdrawEndpoint('ov1', 'ep1'), true)
    const w = await r2.wait('endpoint-withdrawn')
    t.same(w, { kind: 'endpoint-withdrawn', rev: rev + 2, overlay: 'ov1', endpointId: 'ep1', hostId: 'h1' })
    t.equal(await h1.withdrawEndpoint('ov1', 'ep1'), false, 'withdrawing twice')
    await t.rejects(h1.publishEndpoint({ overlay: 'nope', endpointId: 'ep2', ip, mac: '02:42:0a:1e:00:02' }), { code: 'NETWORK_NOT_FOUND' })
    await t.rejects(h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep2', ip, mac: 'ff:ff:ff:ff:ff:ff' }), { code: 'INVALID_REQUEST' })
    const hosts = await h1.hosts()
    t.same(hosts.map((h) => h.hostId), ['h1', 'h2'])
    t.ok(hosts.every((h) => h.expiresAt > h.lastHeartbeat && h.lastHeartbeat >= h.registeredAt && h.version !== ''), 'host times')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('dual-stack overlays: the IPv6 side in the definition, its conflicts, cluster-wide IPv6 addresses, endpoints with both', async (t) => {
    const DS = { ...OV, subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' }
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    const def = await h1.defineOverlay({ ...DS, subnet6: 'fd00:30:0:0:0:0:0:7/64' })
    t.match(def, { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1', vni: 4096 }, 'canonical IPv6 subnet')
    t.same(await h2.defineOverlay(DS), def, 'the same dual-stack command joins')
    t.same(await h2.overlay('ov1'), def, 'read back with its IPv6 side')
    await t.rejects(h2.defineOverlay(OV), {
      code: 'NAME_CONFLICT', message: 'overlay ov1 already exists dual-stack with IPv6 subnet fd00:30::/64 and gateway fd00:30::1 (this host asked for it IPv4-only)',
    })
    await t.rejects(h2.defineOverlay({ ...DS, subnet6: 'fd00:31::/64', gateway6: 'fd00:31::1' }), {
      code: 'NAME_CONFLICT', message: /already exists dual-stack with IPv6 subnet fd00:30::\/64 .*asked for it dual-stack with IPv6 subnet fd00:31::\/64/,
    })
    await t.rejects(h2.defineOverlay({ ...DS, gateway6: 'fd00:30::fe' }), { code: 'NAME_CONFLICT', message: /gateway fd00:30::fe\)$/ })
    await t.rejects(h2.defineOverlay({ ...DS, gateway6: undefined }), { code: 'INVALID_OPTION', message: /needs both an IPv6 subnet and an IPv6 gateway/ })
    await t.rejects(h2.defineOverlay({ ...DS, subnet6: 'fd00:30::/32', gateway6: 'fd00:30::1' }), { code: 'INVALID_OPTION', message: /IPv6 subnet fd00:30::\/32 must have a prefix from \/48 to \/120/ })
    await h1.defineOverlay({ name: 'v4only', subnet: '10.50.0.0/24', gateway: '10.50.0.1' })
    await t.rejects(h2.defineOverlay({ name: 'ov2', subnet: '10.60.0.0/24', gateway: '10.60.0.1', subnet6: 'fd00:30:0:0:1::/80', gateway6: 'fd00:30::1:0:0:1' }), {
      code: 'POOL_OVERLAP', message: 'IPv6 subnet fd00:30:0:0:1::/80 of overlay ov2 overlaps overlay ov1 (fd00:30::/64)',
    })
    // Addresses: serial from the subnet's start, never the gateway, never twice across hosts.
    const got = [await h1.allocateAddress('ov1', undefined, { family: 6 }), await h2.allocateAddress('ov1', undefined, { family: 6 }),
      await h1.allocateAddress('ov1', undefined, { family: 6 })]
    t.same(got, ['fd00:30::2', 'fd00:30::3', 'fd00:30::4'], 'serial IPv6 addresses, after the gateway')
    await t.rejects(h2.allocateAddress('ov1', 'fd00:30::2'), { code: 'ADDRESS_IN_USE', message: 'address fd00:30::2 of overlay ov1 is already allocated (by host h1)' })
    await t.rejects(h2.allocateAddress('ov1', 'fd00:30::1'), { code: 'ADDRESS_IN_USE', message: 'address fd00:30::1 is the gateway of overlay ov1' })
    await t.rejects(h2.allocateAddress('ov1', 'fd00:31::5'), { code: 'ADDRESS_OUT_OF_POOL', message: /fd00:31::5 is not a host address of overlay ov1/ })
    t.equal(await h2.allocateAddress('ov1', 'fd00:30:0:0:0:0:1:0'), 'fd00:30::1:0', 'a preferred address anywhere in the subnet, made canonical')
    await t.rejects(h1.allocateAddress('v4only', undefined, { family: 6 }), { code: 'ADDRESS_OUT_OF_POOL', message: 'overlay v4only has no IPv6 subnet (it was defined without --ipv6)' })
    const all = (await Promise.all([h1, h2].map((h) => Promise.all(Array.from({ length: env.concurrency }, () => h.allocateAddress('ov1', undefined, { family: 6 })))))).flat()
    t.equal(new Set([...all, ...got, 'fd00:30::1:0']).size, all.length + 4, 'concurrent IPv6 allocations from two hosts never collide')
    // Endpoints: the IPv6 address must be allocated to the publishing host, and is claimed like the IPv4 one.
    const r1 = record(h1)
    await r1.wait('resync')
    const ip = await h2.allocateAddress('ov1')
    await t.rejects(h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep6', ip, ip6: 'fd00:30::2', mac: '02:42:0a:1e:00:02' }), {
      code: 'ADDRESS_IN_USE', message: 'address fd00:30::2 of overlay ov1 is not allocated to host h2',
    })
    const rev = await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep6', ip, ip6: 'fd00:30:0::3', mac: '02:42:0a:1e:00:02' })
    const ev = await r1.wait('endpoint-published')
    t.same(ev, { kind: 'endpoint-published', rev, overlay: 'ov1', endpoint: { endpointId: 'ep6', ip, ip6: 'fd00:30::3', mac: '02:42:0a:1e:00:02', hostId: 'h2', vtep: '192.168.50.2' } })
    t.same(await h1.endpoints('ov1'), [{ endpointId: 'ep6', ip, ip6: 'fd00:30::3', mac: '02:42:0a:1e:00:02', hostId: 'h2', vtep: '192.168.50.2' }])
    const ip2 = await h2.allocateAddress('ov1')
    await t.rejects(h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep7', ip: ip2, ip6: 'fd00:30::3', mac: '02:42:0a:1e:00:03' }), {
      code: 'ADDRESS_IN_USE', message: 'address fd00:30::3 of overlay ov1 is already claimed by endpoint ep6',
    })
    const snap = await h1.snapshot()
    t.same(snap.overlays.find((o) => o.definition.name === 'ov1')?.claims.filter((c) => c.endpointId === 'ep6').map((c) => c.ip).sort(), [ip, 'fd00:30::3'].sort(), 'both addresses claimed')
    t.equal(await h2.withdrawEndpoint('ov1', 'ep6'), true)
    t.equal(await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep7', ip: ip2, ip6: 'fd00:30::3', mac: '02:42:0a:1e:00:03' }) > rev, true, 'the claim went with the withdrawal')
    t.equal(await h2.releaseAddress('ov1', 'fd00:30::1:0'), true, 'an IPv6 address is released like an IPv4 one')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('the last host to leave an overlay deletes its definition', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    const def = await h1.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const r2 = record(h2)
    const ip = await h1.allocateAddress('ov1')
    await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip, mac: '02:42:0a:1e:00:02' })
    t.same(await h1.removeOverlayHost('ov1'), { deleted: false })
    await r2.wait('endpoint-withdrawn', (e) => e.kind === 'endpoint-withdrawn' && e.endpointId === 'ep1')
    t.same(await h2.endpoints('ov1'), [], 'the leaving host\'s endpoints are withdrawn')
    t.equal(await h2.allocateAddress('ov1', ip), ip, 'and its addresses released')
    t.same(await h2.removeOverlayHost('ov1'), { deleted: true })
    await r2.wait('overlay-removed')
    t.equal(await h1.overlay('ov1'), undefined)
    t.same(await h2.removeOverlayHost('ov1'), { deleted: false }, 'leaving twice is fine')
    const again = await h1.defineOverlay({ ...OV, subnet: '10.31.0.0/16', gateway: '10.31.0.1' })
    t.not(again.vni, def.vni, 'a deleted VNI is not handed out again at once')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('a host whose heartbeat stops is removed after its TTL, with what it held', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1', { ttlMs: 1000 })
    const h2 = await env.store(t, 'h2', '192.168.50.2', { ttlMs: 1000 })
    await h1.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const ip = await h2.allocateAddress('ov1')
    await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep2', ip, mac: '02:42:0a:1e:00:02' })
    const r1 = record(h1)
    await h2.close()
    await env.elapse(600)
    await h1.heartbeat()
    t.same((await h1.hosts()).map((h) => h.hostId), ['h1', 'h2'], 'still there before the TTL')
    await env.elapse(600)
    await h1.heartbeat()
    const ev = await r1.wait('host-removed')
    t.match(ev, { kind: 'host-removed', hostId: 'h2' })
    t.same((await h1.hosts()).map((h) => h.hostId), ['h1'])
    t.same(await h1.endpoints('ov1'), [], 'its endpoints are gone')
    t.equal(await h1.allocateAddress('ov1', ip), ip, 'its addresses are free again')
    t.same((await h1.snapshot()).overlays[0]?.hosts, ['h1'])
    await leaveAll([h1])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('a host removed for a missed TTL re-asserts its state at its next heartbeat', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1', { ttlMs: 1000 })
    const h2 = await env.store(t, 'h2', '192.168.50.2', { ttlMs: 1000 })
    await h1.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const ip = await h2.allocateAddress('ov1')
    await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep2', ip, mac: '02:42:0a:1e:00:02' })
    const r1 = record(h1)
    const r2 = record(h2)
    await r2.wait('resync')
    await env.elapse(1200)
    await h1.heartbeat()
    await r1.wait('host-removed')
    await h2.heartbeat()
    await r2.wait('resync')
    await r1.wait('endpoint-published', (e) => e.kind === 'endpoint-published' && e.endpoint.endpointId === 'ep2')
    t.same((await h1.endpoints('ov1')).map((e) => e.endpointId), ['ep2'])
    await t.rejects(h1.allocateAddress('ov1', ip), { code: 'ADDRESS_IN_USE' }, 'its address is held again')
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('after a crash that loses every key, hosts fail fast, then re-assert and resync', async (t) => {
    const h1 = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    const def = await h1.defineOverlay({ ...OV, vni: 5000 })
    await h2.defineOverlay(OV)
    const ip1 = await h1.allocateAddress('ov1')
    const ip2 = await h2.allocateAddress('ov1')
    const ip3 = await h1.allocateAddress('ov1')
    await h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep1', ip: ip1, mac: '02:42:0a:1e:00:02' })
    await h2.publishEndpoint({ overlay: 'ov1', endpointId: 'ep2', ip: ip2, mac: '02:42:0a:1e:00:03' })
    const r1 = record(h1)
    const r2 = record(h2)
    await r2.wait('resync')
    const revBefore = await h2.revision()

    await env.crash()
    await r1.wait('down')
    await r2.wait('down')
    await t.rejects(h2.snapshot(), { code: 'CLUSTER_UNAVAILABLE' })
    await t.rejects(h1.defineOverlay({ name: 'ov9', subnet: '10.39.0.0/24', gateway: '10.39.0.1' }), { code: 'CLUSTER_UNAVAILABLE' })
    // They failed without waiting for the store to come back: it is still down.
    t.same([h1.status().state, h2.status().state], ['down', 'down'], 'calls fail while the store is down, without waiting for it')
    await t.rejects(h1.withdrawEndpoint('ov1', 'ep1'), { code: 'CLUSTER_UNAVAILABLE' }, 'a withdrawal fails now…')
    await t.rejects(h1.publishEndpoint({ overlay: 'ov1', endpointId: 'ep3', ip: ip3, mac: '02:42:0a:1e:00:04' }), { code: 'CLUSTER_UNAVAILABLE' })

    await env.revive()
    await r1.wait('resync', undefined, 10_000)
    await r2.wait('resync', undefined, 10_000)
    t.equal(h1.status().state, 'ready')
    const snap = await h2.snapshot()
    t.ok(snap.rev > revBefore, 'the revision never goes back, even after the data was lost')
    t.same(snap.hosts.map((h) => h.hostId), ['h1', 'h2'], 'both hosts registered again')
    t.equal(snap.overlays.length, 1)
    t.same(snap.overlays[0]?.definition.vni, def.vni, 'the overlay keeps its VNI')
    t.same(snap.overlays[0]?.endpoints.map((e) => e.endpointId), ['ep2', 'ep3'], '…and is applied after; the publication made meanwhile too')
    await t.rejects(h2.allocateAddress('ov1', ip3), { code: 'ADDRESS_IN_USE' }, 'addresses are held again')
    t.equal(await h1.releaseAddress('ov1', ip1), true)
    await leaveAll([h1, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('start(local) re-asserts this host\'s state and prunes what it no longer holds', async (t) => {
    const a = await env.store(t, 'h1', '192.168.50.1')
    await a.defineOverlay(OV)
    await a.defineOverlay({ name: 'old', subnet: '10.50.0.0/24', gateway: '10.50.0.1' })
    const ipA = await a.allocateAddress('ov1')
    const ipB = await a.allocateAddress('ov1')
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: '02:42:0a:1e:00:02' })
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epB', ip: ipB, mac: '02:42:0a:1e:00:03' })
    await a.close()
    // The agent restarts: its local store knows ov1 and endpoint A only.
    const b = await env.store(t, 'h1', '192.168.50.1', {
      local: { overlays: [OV], addresses: [{ overlay: 'ov1', ip: ipA }], endpoints: [{ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: '02:42:0a:1e:00:02' }] },
    })
    const snap = await b.snapshot()
    t.same(snap.overlays.map((o) => o.definition.name), ['ov1'], 'an overlay it left is gone')
    t.same(snap.overlays[0]?.endpoints.map((e) => e.endpointId), ['epA'])
    t.equal(await b.allocateAddress('ov1', ipB), ipB, 'an address it no longer holds is free')
    await leaveAll([b])
    t.ok(await env.isEmpty(), 'nothing left')
  })
  t.test('an endpoint\'s names survive an agent restart: its record is never published without them', async (t) => {
    const a = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    await a.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const ipA = await a.allocateAddress('ov1')
    const ipB = await a.allocateAddress('ov1')
    const macA = '02:42:0a:1e:00:02'
    const macB = '02:42:0a:1e:00:03'
    // CreateEndpoint publishes without names (the engine sends none), the DNS feed adds them later.
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA })
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA, names: ['web', 'www'] })
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epB', ip: ipB, mac: macB })
    const names = async (): Promise<Record<string, string[] | undefined>> =>
      Object.fromEntries((await h2.endpoints('ov1')).map((e) => [e.endpointId, e.names]))
    t.same(await names(), { epA: ['web', 'www'], epB: undefined })
    const seen = record(h2)
    const rev = await h2.revision()
    await a.close()
    // The agent restarts: its local store has the endpoints, not their names.
    const local: LocalClusterState = {
      overlays: [OV],
      addresses: [{ overlay: 'ov1', ip: ipA }, { overlay: 'ov1', ip: ipB }],
      endpoints: [{ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA }, { overlay: 'ov1', endpointId: 'epB', ip: ipB, mac: macB }],
    }
    const b = await env.store(t, 'h1', '192.168.50.1', { local })
    t.same(await names(), { epA: ['web', 'www'], epB: undefined }, 'after the re-assertion the record still has its names')
    t.equal(await h2.revision(), rev, 'the re-assertion changed nothing in the store')
    // The DNS feed's first sync after the restart publishes the same names: nothing changes either.
    await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA, names: ['web', 'www'] })
    t.equal(await h2.revision(), rev, 'the same names again: no change')
    // A publication that does not know the names (a second start of the client) keeps them.
    await b.start(local)
    await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA })
    t.same(await names(), { epA: ['web', 'www'], epB: undefined }, 'a nameless publication and a second start keep the names')
    t.equal(await h2.revision(), rev, 'still no change')
    t.same(seen.events.filter((e) => e.kind === 'endpoint-published'), [], 'the other host was never told of a change')
    // Names given replace them; none given as [] clears them.
    await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA, names: ['api'] })
    t.same((await names()).epA, ['api'], 'new names replace the old')
    await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip: ipA, mac: macA, names: [] })
    t.same((await names()).epA ?? [], [], '[] clears them')
    await leaveAll([b, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('published ports: one command per change, pushed with the record, kept by a publication that does not know them and across a restart, [] clears them', async (t) => {
    const a = await env.store(t, 'h1', '192.168.50.1')
    const h2 = await env.store(t, 'h2', '192.168.50.2')
    await a.defineOverlay(OV)
    await h2.defineOverlay(OV)
    const r2 = record(h2)
    await r2.wait('resync')
    const ip = await a.allocateAddress('ov1')
    const mac = '02:42:0a:1e:00:02'
    const ports = [{ proto: 'tcp' as const, port: 80, hostPort: 8080 }, { proto: 'udp' as const, port: 53, hostPort: 5353, hostIp: '192.168.50.1' }]
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac })
    const before = a.status().commands
    const rev = await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac, names: ['web'], ports })
    t.equal(a.status().commands - before, 1, 'names and ports in one command')
    const ev = await r2.wait('endpoint-published', (e) => e.kind === 'endpoint-published' && e.rev === rev)
    t.same(ev.kind === 'endpoint-published' && ev.endpoint.ports, ports, 'pushed with the record')
    const portsOf = async (): Promise<unknown> => (await h2.endpoints('ov1')).find((e) => e.endpointId === 'epA')?.ports
    t.same(await portsOf(), ports, 'read with the record')
    t.equal(await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac }), rev, 'a publication without names or ports keeps both: no change')
    t.equal(await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac, names: ['web'] }), rev, 'the same names without ports: no change')
    await a.close()
    const local: LocalClusterState = { overlays: [OV], addresses: [{ overlay: 'ov1', ip }], endpoints: [{ overlay: 'ov1', endpointId: 'epA', ip, mac }] }
    const b = await env.store(t, 'h1', '192.168.50.1', { local })
    t.same(await portsOf(), ports, 'the re-assertion after a restart keeps them')
    t.equal(await h2.revision(), rev, 'and changes nothing')
    const moved = await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac, names: ['web'], ports: [ports[0]!] })
    t.equal(moved, rev + 1, 'other ports: one change')
    t.same(await portsOf(), [ports[0]])
    await b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac, ports: [] })
    t.equal(await portsOf(), undefined, '[] clears them: the record has no field, as an older host\'s')
    t.same((await h2.endpoints('ov1'))[0]?.names, ['web'], 'and keeps its names')
    await t.rejects(b.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac, ports: [{ proto: 'tcp', port: 0, hostPort: 1 }] }), { code: 'INVALID_REQUEST', message: /container port must be a whole number/ })
    await leaveAll([b, h2])
    t.ok(await env.isEmpty(), 'nothing left')
  })

  t.test('after a restart, a stored record keeps its names only if it is the same endpoint (address, MAC)', async (t) => {
    const a = await env.store(t, 'h1', '192.168.50.1')
    await a.defineOverlay(OV)
    const ip = await a.allocateAddress('ov1')
    await a.publishEndpoint({ overlay: 'ov1', endpointId: 'epA', ip, mac: '02:42:0a:1e:00:02', names: ['web'] })
    await a.close()
    const b = await env.store(t, 'h1', '192.168.50.1', {
      local: { overlays: [OV], addresses: [{ overlay: 'ov1', ip }], endpoints: [{ overlay: 'ov1', endpointId: 'epA', ip, mac: '02:42:0a:1e:00:09' }] },
    })
    const [ep] = await b.endpoints('ov1')
    t.equal(ep?.mac, '02:42:0a:1e:00:09', 'the local state wins')
    t.equal(ep?.names, undefined, 'the names of the record with another MAC are not carried over')
    await leaveAll([b])
    t.ok(await env.isEmpty(), 'nothing left')
  })
}
