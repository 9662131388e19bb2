/** The one resolver of network and container keys (src/util/resolve.ts): names, full ids, id prefixes, ambiguity and bad input. */
import t from 'tap'
import { checkContainerKey, checkNetworkKey, listCandidates, matchKey, MAX_KEY_LENGTH, resolveEndpoints, resolveNetwork, resolveOne } from '../../src/util/resolve.js'

const hex = (c: string, rest = c) => c + rest.repeat(63)
const FRONT = { id: hex('3', 'a'), name: 'front', bridge: 'fy-3aaaaaaaaaaa' }
const BACK = { id: hex('3', 'b'), name: 'back', bridge: 'br-back' }
const OV = { id: hex('c'), name: 'ov-net', bridge: 'fyo-cccccccccc', overlay: { name: 'ov1' } }
const NETS = [FRONT, BACK, OV]

t.test('a network by its name, full id, unique id prefix, bridge or overlay name', async (t) => {
  t.equal(resolveNetwork('front', NETS), FRONT, 'name')
  t.equal(resolveNetwork(FRONT.id, NETS), FRONT, 'full id')
  t.equal(resolveNetwork(BACK.id.slice(0, 12), NETS), BACK, 'a 12-digit short id')
  t.equal(resolveNetwork('3b', NETS), BACK, 'any unique prefix, as Docker')
  t.equal(resolveNetwork('c', NETS), OV, 'one character when unique')
  t.equal(resolveNetwork('br-back', NETS), BACK, 'the bridge')
  t.equal(resolveNetwork('ov1', NETS), OV, 'the overlay\'s name')
})

t.test('a full id, then a name, then a prefix (Docker\'s order)', async (t) => {
  const named3 = { id: hex('f'), name: '3', bridge: 'x' }
  t.equal(resolveNetwork('3', [...NETS, named3]), named3, 'an exact name beats an id prefix it also is')
  const namedAsId = { id: hex('d'), name: FRONT.id, bridge: 'y' }
  t.equal(resolveNetwork(FRONT.id, [namedAsId, FRONT]), FRONT, 'a full id beats a name that is that id')
})

t.test('an ambiguous prefix or name is one sentence naming the candidates, bounded', async (t) => {
  t.throws(() => resolveNetwork('3', NETS), {
    code: 'INVALID_REQUEST',
    message: '"3" names 2 ferry networks: front (3aaaaaaaaaaa), back (3bbbbbbbbbbb); give more of the id (ferry network ls lists them)',
  })
  const many = Array.from({ length: 9 }, (_, i) => ({ id: `e${i}`.padEnd(64, '0'), name: `n${i}` }))
  t.throws(() => resolveNetwork('e', many), { message: /^"e" names 9 ferry networks: n0 \(e00000000000\), n1 .*, n4 \(e40000000000\) and 4 more; give more of the id/ })
  const twins = [{ id: hex('1'), name: 'same' }, { id: hex('2'), name: 'same' }]
  t.throws(() => resolveNetwork('same', twins), { code: 'INVALID_REQUEST', message: /^"same" names 2 ferry networks: same \(111111111111\), same \(222222222222\)/ }, 'two networks of one name (the engine allows it)')
})

t.test('an unknown network lists what is known (bounded); none known says so', async (t) => {
  t.throws(() => resolveNetwork('nope', NETS), {
    code: 'NETWORK_NOT_FOUND',
    message: 'no ferry network is named "nope" or has that id; known: front (3aaaaaaaaaaa), back (3bbbbbbbbbbb), ov-net (cccccccccccc) (ferry network ls lists them)',
  })
  t.throws(() => resolveNetwork('nope', []), { code: 'NETWORK_NOT_FOUND', message: /^no ferry network is named "nope" or has that id; there is none/ })
  t.throws(() => resolveNetwork('3a', NETS, 12), { code: 'NETWORK_NOT_FOUND' }, 'a prefix shorter than asked for names nothing')
  t.equal(resolveNetwork(FRONT.id.slice(0, 12), NETS, 12), FRONT)
})

t.test('keys are checked where they enter: length and characters', async (t) => {
  t.equal(checkNetworkKey('my net.1'), 'my net.1', 'Docker 20.10 network names may hold spaces')
  t.throws(() => checkNetworkKey(''), { code: 'INVALID_REQUEST', message: /empty/ })
  t.throws(() => checkNetworkKey('x'.repeat(MAX_KEY_LENGTH + 1)), { code: 'INVALID_REQUEST', message: /at most 256 characters \(257 given\)/ })
  t.throws(() => checkNetworkKey('a\nb'), { code: 'INVALID_REQUEST', message: '"a\\nb" is not a network name or id: it holds control characters' })
  t.throws(() => resolveNetwork('a\u0000', NETS), { code: 'INVALID_REQUEST' }, 'the resolver checks too')
  t.equal(checkContainerKey('/web_1.a-b'), '/web_1.a-b')
  t.equal(checkContainerKey('3f2a9c'), '3f2a9c')
  for (const bad of ['-web', 'a b', 'web;rm', 'café', '../x', 'a:b']) {
    t.throws(() => checkContainerKey(bad), { code: 'INVALID_REQUEST', message: /is not a container name or id/ }, bad)
  }
  t.throws(() => checkContainerKey(''), { code: 'INVALID_REQUEST' })
})

const C1 = hex('a', '1')
const C2 = hex('a', '2')
const ep = (id: string, container: string, containerId: string, networkName = 'front') => ({ id, container, containerId, networkName })
const E1 = ep(hex('e', '1'), 'web', C1)
const E1b = ep(hex('e', '4'), 'web', C1, 'back')
const E2 = ep(hex('e', '2'), 'db', C2)
const E3 = ep(hex('f', '3'), 'job', '')
const E4 = ep(hex('9'), '', '')
const EPS = [E1, E1b, E2, E3, E4]

t.test('a container by name (with or without the engine\'s /), full id or prefix: every endpoint of it', async (t) => {
  t.same(resolveEndpoints('web', EPS), [E1, E1b], 'both networks of web')
  t.same(resolveEndpoints('/web', EPS), [E1, E1b])
  t.same(resolveEndpoints(C2, EPS), [E2], 'full container id')
  t.same(resolveEndpoints('a2', EPS), [E2], 'container id prefix')
  t.same(resolveEndpoints('job', EPS), [E3], 'a container of ferry run the engine does not know')
  t.same(resolveEndpoints(E1b.id, EPS), [E1b], 'an endpoint id: that endpoint alone')
  t.same(resolveEndpoints('e4', EPS), [E1b], 'an endpoint id prefix')
  t.same(resolveEndpoints('99', EPS), [E4], 'an endpoint of no known container')
  t.same(resolveEndpoints('nobody', EPS), [], 'unknown: nothing')
})

t.test('an ambiguous container key names its candidates', async (t) => {
  t.throws(() => resolveEndpoints('a', EPS), { code: 'INVALID_REQUEST', message: '"a" names 2 containers or endpoints: web (a11111111111), db (a22222222222); give more of the id' })
  t.throws(() => resolveEndpoints('e', EPS), { message: /^"e" names 3 containers or endpoints: e11111111111, e44444444444, e22222222222;/ })
  const dup = [...EPS, ep(hex('8'), 'job', '')]
  t.same(resolveEndpoints('job', dup), [E3, dup[5]], 'one container of ferry run known by name alone: its endpoints')
  const twin = [...EPS, ep(hex('7'), 'web', hex('b'))]
  t.throws(() => resolveEndpoints('web', twin), { message: /^"web" names 2 containers or endpoints: web \(a11111111111\), web \(bbbbbbbbbbbb\)/ })
  t.throws(() => resolveEndpoints('bad name', EPS), { code: 'INVALID_REQUEST' })
})

t.test('the generic pieces', async (t) => {
  const cands = [{ id: 'abc1', names: ['x'] }, { id: 'abc2', names: [] }, { id: 'name:job', names: ['job'] }]
  t.same(matchKey('abc', cands, 4), [], 'below the minimum prefix')
  t.same(matchKey('abc1', cands, 4), [cands[0]])
  t.equal(listCandidates(cands), 'x (abc1), abc2, job', 'a made-up id is never shown')
  t.throws(() => resolveOne('zz', cands, { what: 'thing', notFound: 'ENDPOINT_NOT_FOUND' }), { code: 'ENDPOINT_NOT_FOUND', message: 'no thing is named "zz" or has that id; known: x (abc1), abc2, job' })
})
