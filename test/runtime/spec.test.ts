/** Docker's option syntax into ferry's AttachSpec (src/runtime/spec.ts). */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { exposedPorts, parseAttach, parseExpose, parseLink, parseNetMode, parsePublish, validateNetworkName } from '../../src/runtime/spec.js'

const code = (fn: () => unknown): string | undefined => {
  try { fn(); return undefined } catch (err) { return err instanceof FerryError ? err.code : 'not a FerryError' }
}

t.test('-p in every form Docker accepts', async (t) => {
  const p = (proto: string, cp: number, cpe: number, hostIp: string, hp: number, hpe: number) =>
    ({ proto, containerPort: cp, containerPortEnd: cpe, hostIp, hostPort: hp, hostPortEnd: hpe })
  t.same(parsePublish('80'), p('tcp', 80, 80, '', 0, 0))
  t.same(parsePublish('8080:80'), p('tcp', 80, 80, '', 8080, 8080))
  t.same(parsePublish('127.0.0.1:8080:80/udp'), p('udp', 80, 80, '127.0.0.1', 8080, 8080))
  t.same(parsePublish('127.0.0.1::80'), p('tcp', 80, 80, '127.0.0.1', 0, 0))
  t.same(parsePublish('0.0.0.0:8080:80'), p('tcp', 80, 80, '', 8080, 8080))
  t.same(parsePublish('8000-8010:80'), p('tcp', 80, 80, '', 8000, 8010))
  t.same(parsePublish('8000-8001:80-81/sctp'), p('sctp', 80, 81, '', 8000, 8001))
  for (const bad of ['', 'x', '0', '70000', '8000-8002:80-81', '1:2:3:4', 'a.b:1:2', '80/icmp', '90-80', '::1:80:80']) {
    t.equal(code(() => parsePublish(bad)), 'INVALID_OPTION', `refuses "${bad}"`)
  }
})

t.test('--expose, --link, --net', async (t) => {
  t.same(parseExpose('5432'), [{ proto: 'tcp', port: 5432 }])
  t.same(parseExpose('7000-7001/udp'), [{ proto: 'udp', port: 7000 }, { proto: 'udp', port: 7001 }])
  t.equal(code(() => parseExpose('1-20000')), 'INVALID_OPTION')
  t.same(parseLink('db:database'), { name: 'db', alias: 'database' })
  t.same(parseLink('db'), { name: 'db', alias: 'db' })
  for (const bad of ['', ':x', 'db:', 'a:b:c', 'db:bad alias']) t.equal(code(() => parseLink(bad)), 'INVALID_OPTION', bad)
  t.same(parseNetMode('none'), { kind: 'none' })
  t.same(parseNetMode('container:web'), { kind: 'container', container: 'web' })
  t.same(parseNetMode('bridge'), { kind: 'network', network: 'bridge' })
  t.same(parseNetMode('default'), { kind: 'network', network: 'bridge' })
  t.same(parseNetMode('back'), { kind: 'network', network: 'back' })
  t.equal(code(() => parseNetMode('host')), 'INVALID_OPTION')
  t.equal(code(() => parseNetMode('container:')), 'INVALID_OPTION')
  t.equal(code(() => validateNetworkName('none')), 'INVALID_OPTION')
  t.equal(code(() => validateNetworkName('back')), undefined)
})

t.test('exposed ports include every published container port', async (t) => {
  t.same(exposedPorts([{ proto: 'tcp', port: 80 }], [parsePublish('8000-8001:80-81'), parsePublish('53/udp')]),
    [{ proto: 'tcp', port: 80 }, { proto: 'tcp', port: 81 }, { proto: 'udp', port: 53 }])
})

t.test('attach bodies', async (t) => {
  const base = { name: 'web', net: 'bridge', pid: 42 }
  const s = parseAttach({ ...base, publish: ['8080:80'], expose: ['443'], links: ['db:database'], dns: ['10.0.0.53'], ip: '10.61.0.9' })
  t.match(s, { name: 'web', target: { kind: 'pid', pid: 42 }, mode: { kind: 'network', network: 'bridge' }, ifname: 'eth0', ip: '10.61.0.9', owner: 'attach', setupFiles: false })
  t.same(s.exposed, [{ proto: 'tcp', port: 80 }, { proto: 'tcp', port: 443 }])
  const all = parseAttach({ ...base, publish: ['8080:80'], expose: ['80', '443'], publishAll: true })
  t.same(all.ports.map((p) => `${p.hostPort}:${p.containerPort}`), ['8080:80', '0:443'], '-P adds the exposed ports not yet published')
  t.match(parseAttach({ name: 'x', net: 'back', netns: '/var/run/netns/x', ifname: 'net1' }), { target: { kind: 'path', path: '/var/run/netns/x' }, ifname: 'net1' })
  const bad: Array<[string, Parameters<typeof parseAttach>[0]]> = [
    ['no target', { name: 'x', net: 'bridge' }],
    ['two targets', { name: 'x', net: 'bridge', pid: 1, netns: '/x' }],
    ['relative path', { name: 'x', net: 'bridge', netns: 'x' }],
    ['bad name', { name: '-x', net: 'bridge', pid: 1 }],
    ['ports with none', { name: 'x', net: 'none', pid: 1, publish: ['80'] }],
    ['links with container:', { name: 'x', net: 'container:web', pid: 1, links: ['db'] }],
    ['hostname with container:', { name: 'x', net: 'container:web', pid: 1, hostname: 'h' }],
    ['files without a pid', { name: 'x', net: 'bridge', netns: '/x', setupFiles: true }],
    ['bad ip', { name: 'x', net: 'bridge', pid: 1, ip: '10.0.0.300' }],
    ['bad dns', { name: 'x', net: 'bridge', pid: 1, dns: ['example.com'] }],
    ['bad hostname', { name: 'x', net: 'bridge', pid: 1, hostname: 'a b' }],
    ['bad ifname', { name: 'x', net: 'bridge', pid: 1, ifname: 'a-very-long-interface-name' }],
  ]
  for (const [what, w] of bad) t.equal(code(() => parseAttach(w)), 'INVALID_OPTION', what)
})
