import t from 'tap'
import { IFNAME_MAX, bridgeNameCandidates, isFerryLinkName, pickNames, vethNameCandidates, vethNames } from '../../src/bridge/names.js'

t.test('name candidates: the id prefix first, then hashes of the whole id; all valid ferry link names', async (t) => {
  const a = 'ab'.repeat(6) + '0'.repeat(52)
  const b = 'ab'.repeat(6) + '1'.repeat(52)
  const ca = vethNameCandidates(a)
  const cb = vethNameCandidates(b)
  t.same(ca[0], vethNames(a), 'first choice unchanged')
  t.same(ca[0], cb[0], 'ids sharing 12 characters share the first choice')
  t.not(ca[1]!.host, cb[1]!.host, 'but not the next')
  t.same(vethNameCandidates(a), ca, 'deterministic')
  for (const c of [...ca, ...cb]) {
    t.ok(c.host.length <= IFNAME_MAX && c.container.length <= IFNAME_MAX)
    t.ok(isFerryLinkName(c.host) && isFerryLinkName(c.container))
    t.equal(c.host.slice(3), c.container.slice(3), 'the pair shares its suffix')
  }
  t.equal(new Set(ca.map((c) => c.host)).size, ca.length, 'distinct candidates')
  const br = bridgeNameCandidates('x'.repeat(64))
  t.equal(br[0], 'fy-xxxxxxxxxxxx')
  t.ok(br.every((n) => n.length <= IFNAME_MAX && isFerryLinkName(n)))
})

t.test('pickNames skips names in use or in the kernel, claims the choice, and says when every one is taken', async (t) => {
  const cands = vethNameCandidates('e'.repeat(64))
  const used = new Set([cands[0]!.container])
  const kernel = new Set([cands[1]!.host])
  const claimed: string[][] = []
  const got = await pickNames(cands, (n) => used.has(n), async (n) => kernel.has(n), (ns) => claimed.push(ns), 'endpoint eeee')
  t.same(got, cands[2])
  t.same(claimed, [[cands[2]!.host, cands[2]!.container]])
  await t.rejects(pickNames(cands, () => true, async () => false, () => undefined, 'endpoint eeee'),
    { code: 'NAME_CONFLICT', message: /^every kernel name ferry can derive for endpoint eeee is taken/ })
})
