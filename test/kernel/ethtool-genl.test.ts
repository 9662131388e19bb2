/**
 * Offload features through ethtool netlink: the request encoding (byte layout of
 * include/uapi/linux/ethtool_netlink.h's verbose bitsets), the answer decoding, and
 * the real kernel in a namespace (a dummy device's features turned off and on, read back).
 */
import t from 'tap'
import { decodeActiveFeatures, encodeFeaturesGet, encodeFeaturesSet } from '../../src/kernel/ethtool-genl.js'
import type { LinkDriver } from '../../src/kernel/types.js'
import { netns, sh } from '../harness/netns.js'
import { nsNode } from '../harness/nsnode.js'

/** One attribute: length, type, payload, padding. */
function nla (type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4)
  h.writeUInt16LE(4 + payload.length, 0)
  h.writeUInt16LE(type, 2)
  return Buffer.concat([h, payload, Buffer.alloc((4 - (payload.length % 4)) % 4)])
}
const N = 0x8000
const strz = (s: string): Buffer => Buffer.from(`${s}\0`)

t.test('FEATURES_GET: the header names the device', async (t) => {
  t.same(encodeFeaturesGet('fyv-2a'), nla(1 | N, nla(2, strz('fyv-2a'))))
  t.throws(() => encodeFeaturesGet('a/b'), { code: 'INVALID_REQUEST' })
})

t.test('FEATURES_SET: reply omitted; the wanted bitset lists each name, VALUE when on', async (t) => {
  const flags = Buffer.alloc(4)
  flags.writeUInt32LE(2)
  const bit = (name: string, on: boolean): Buffer => nla(1 | N, Buffer.concat([nla(2, strz(name)), ...(on ? [nla(3, Buffer.alloc(0))] : [])]))
  t.same(encodeFeaturesSet('fyv-2a', { 'rx-gro': true, 'tx-checksum-ip-generic': false }), Buffer.concat([
    nla(1 | N, Buffer.concat([nla(2, strz('fyv-2a')), nla(3, flags)])),
    nla(3 | N, nla(3 | N, Buffer.concat([bit('rx-gro', true), bit('tx-checksum-ip-generic', false)]))),
  ]))
  t.throws(() => encodeFeaturesSet('fyv-2a', { 'rx gro; rm': true }), { code: 'INVALID_REQUEST' }, 'a name is validated before it goes out')
})

t.test('the active features of an answer: a NOMASK list, or the bits with VALUE', async (t) => {
  const bit = (name: string, value: boolean): Buffer => nla(1 | N, Buffer.concat([nla(1, Buffer.alloc(4)), nla(2, strz(name)), ...(value ? [nla(3, Buffer.alloc(0))] : [])]))
  const header = nla(1 | N, nla(2, strz('x')))
  const nomask = nla(4 | N, Buffer.concat([nla(1, Buffer.alloc(0)), nla(3 | N, Buffer.concat([bit('rx-gro', false), bit('tx-scatter-gather', false)]))]))
  t.same([...decodeActiveFeatures(Buffer.concat([header, nomask]))].sort(), ['rx-gro', 'tx-scatter-gather'])
  const masked = nla(4 | N, nla(3 | N, Buffer.concat([bit('rx-gro', true), bit('tx-scatter-gather', false)])))
  t.same([...decodeActiveFeatures(Buffer.concat([header, masked]))], ['rx-gro'])
  t.throws(() => decodeActiveFeatures(header), { code: 'KERNEL' }, 'no active set')
  t.throws(() => decodeActiveFeatures(Buffer.from([8, 0, 4, 0])), { code: 'KERNEL' }, 'truncated')
})

t.test('the kernel: features turned off and on, read back (a veth in a namespace)', async (t) => {
  const ns = netns(t, 'fyet')
  sh(['ip', '-n', ns, 'link', 'add', 'fy-d0', 'type', 'veth', 'peer', 'name', 'fy-d1'])
  const d = await nsNode<LinkDriver>(t, ns, { module: 'dist/kernel/netlink.js', factory: 'openLinkDriver' })
  const before = await d.call('getFeatures', ['fy-d0'])
  t.ok(before.includes('tx-checksum-ip-generic') && before.includes('tx-tcp-segmentation'), `a veth's defaults: ${before.join(' ')}`)
  t.notOk(before.includes('rx-gro'), 'a veth has no GRO by default')
  await d.call('setFeatures', ['fy-d0', { 'tx-checksum-ip-generic': false, 'rx-gro': true }])
  const changed = await d.call('getFeatures', ['fy-d0'])
  t.notOk(changed.includes('tx-checksum-ip-generic'), 'checksum offload off')
  t.notOk(changed.includes('tx-tcp-segmentation'), 'TSO goes with checksum offload (the kernel\'s dependency)')
  t.ok(changed.includes('rx-gro'), 'GRO on')
  await d.call('setFeatures', ['fy-d0', { 'tx-checksum-ip-generic': true, 'rx-gro': false }])
  t.same(await d.call('getFeatures', ['fy-d0']), before, 'all back')
  await t.rejects(d.call('setFeatures', ['fy-nope', { 'rx-gro': true }]), { code: 'KERNEL' })
})
