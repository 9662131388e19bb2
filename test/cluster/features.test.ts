/** The capability signal of mixed-version clusters: the features entry as read, and the writer's decision. Pure. */
import t from 'tap'
import { ClusterKey } from '../../src/cluster/key.js'
import {
  FEATURES, MAX_FEATURES_ENTRY, compatSentence, featuresContent, featuresEntry, heldBack, olderHosts, readFeatures, withoutHeldBack,
} from '../../src/cluster/features.js'
import type { ClusterEndpoint } from '../../src/cluster/types.js'

const host = { hostId: 'h1', lastHeartbeat: 1700000000123 }
const stamped = (entry: string, at = host.lastHeartbeat): string => `${at} ${entry}`

t.test('an entry written by the host\'s last heartbeat gives the features this version knows', async (t) => {
  t.same(readFeatures(stamped(featuresEntry('h1', ['ports'])), host), { ok: true, value: ['ports'] })
  t.same(readFeatures(stamped('{"features":[]}'), host), { ok: true, value: [] }, 'an empty list: nothing new understood')
  t.same(readFeatures(stamped('{"features":["ports","weight","srv-v2"]}'), host), { ok: true, value: ['ports'] },
    'tokens of a newer version are valid and left out')
})

t.test('no entry, or one left by an earlier heartbeat, is an older version: nothing understood', async (t) => {
  t.same(readFeatures(undefined, host), { ok: true, value: undefined })
  t.same(readFeatures('', host), { ok: true, value: undefined })
  // The host went back to an older version in place: its heartbeat moves lastHeartbeat and leaves the field as it was.
  t.same(readFeatures(stamped('{"features":["ports"]}', host.lastHeartbeat - 2000), host), { ok: true, value: undefined })
})

t.test('a malformed or oversized entry is refused', async (t) => {
  for (const [bad, reason] of [
    [42, 'invalid'],
    ['{"features":["ports"]}', 'invalid'], // no stamp
    [stamped('not json'), 'invalid'],
    [stamped('["ports"]'), 'invalid'],
    [stamped('{"features":"ports"}'), 'invalid'],
    [stamped('{"features":["Ports"]}'), 'invalid'],
    [stamped('{"features":["a b"]}'), 'invalid'],
    [stamped(JSON.stringify({ features: Array.from({ length: 17 }, (_, i) => `f${i}`) })), 'invalid'],
    [stamped(JSON.stringify({ features: ['ports'], pad: 'x'.repeat(MAX_FEATURES_ENTRY) })), 'too-large'],
  ] as const) {
    t.match(readFeatures(bad, host), { ok: false, reason }, String(bad).slice(0, 60))
  }
})

t.test('with a cluster key the entry must carry the host\'s MAC over its list', async (t) => {
  const key = new ClusterKey(Buffer.alloc(32, 9))
  t.same(readFeatures(stamped(featuresEntry('h1', ['ports'], key)), host, key), { ok: true, value: ['ports'] })
  t.match(readFeatures(stamped(featuresEntry('h1', ['ports'])), host, key), { ok: false, reason: 'missing-mac' })
  t.match(readFeatures(stamped(featuresEntry('h2', ['ports'], key)), host, key), { ok: false, reason: 'bad-mac' }, 'another host\'s entry moved here')
  const sig = key.sign('features', 'h1', featuresContent(['weight']))
  t.match(readFeatures(stamped(`{"features":["ports"],"sig":${JSON.stringify(sig)}}`), host, key), { ok: false, reason: 'bad-mac' }, 'a list changed under its MAC')
  t.equal(featuresEntry('h1', [], key), '', 'advertising nothing writes no entry')
})

t.test('the writer holds a feature back while any live host does not understand it', async (t) => {
  const newer = { hostId: 'a', version: '0.2.0', features: ['ports' as const] }
  const older = { hostId: 'b', version: '0.1.0' }
  t.same(heldBack([newer, { ...newer, hostId: 'c' }]), [], 'every host understands ports')
  t.same(heldBack([newer, older]), ['ports'], 'a host without the signal')
  t.same(heldBack([newer, { ...older, features: [] }]), ['ports'], 'a host that understands nothing new')
  t.same(heldBack([newer], 1), [...FEATURES], 'a host row that could not be read counts as older')
  t.same(heldBack([]), [], 'no host: nothing to hold back for')
  t.same(olderHosts([newer, older]), [{ hostId: 'b', version: '0.1.0', features: [] }])
  t.match(compatSentence(['ports'], [{ hostId: 'b', version: '0.1.0' }]), /^held back: ports .* because host b \(0\.1\.0\) runs an older ferry$/)
  t.match(compatSentence([], []), /nothing is held back/)
})

t.test('a record written while ports are held back has no ports field; otherwise it is unchanged', async (t) => {
  const ep: ClusterEndpoint = {
    endpointId: 'e1', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02', hostId: 'h1', vtep: '192.0.2.1', names: ['web'],
    ports: [{ proto: 'tcp', port: 80, hostPort: 8080 }],
  }
  const { ports: _p, ...bare } = ep
  t.same(withoutHeldBack(ep, ['ports']), bare)
  t.notOk('ports' in withoutHeldBack(ep, ['ports']), 'no field at all, as an older version writes')
  t.equal(withoutHeldBack(ep, []), ep)
  t.equal(withoutHeldBack(bare, ['ports']), bare)
})
