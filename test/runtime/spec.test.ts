/** Docker's option syntax into ferry's AttachSpec (src/runtime/spec.ts). */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import {
  exposedPorts, mergeEnv, parseAttach, parseEnvFile, parseEnvOption, parseExpose, parseLink, parseNetMode, parsePublish, validateNetworkName,
} from '../../src/runtime/spec.js'

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
  t.same(parseNetMode('host'), { kind: 'host' })
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
  t.equal(parseAttach({ ...base, ip6: 'fd00:61::9' }).ip6, 'fd00:61::9', '--ip6')
  t.throws(() => parseAttach({ name: 'x', net: 'none', pid: 1, ip6: 'fd00::5' }), /--net none: --ip6 needs a network/)
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
    ['an IPv6 address for --ip', { name: 'x', net: 'bridge', pid: 1, ip: 'fd00::5' }],
    ['an IPv4 address for --ip6', { name: 'x', net: 'bridge', pid: 1, ip6: '10.0.0.5' }],
    ['a zone in --ip6', { name: 'x', net: 'bridge', pid: 1, ip6: 'fe80::1%eth0' }],
    ['--ip6 with none', { name: 'x', net: 'none', pid: 1, ip6: 'fd00::5' }],
    ['bad dns', { name: 'x', net: 'bridge', pid: 1, dns: ['example.com'] }],
    ['bad hostname', { name: 'x', net: 'bridge', pid: 1, hostname: 'a b' }],
    ['bad ifname', { name: 'x', net: 'bridge', pid: 1, ifname: 'a-very-long-interface-name' }],
  ]
  for (const [what, w] of bad) t.equal(code(() => parseAttach(w)), 'INVALID_OPTION', what)
})

t.test('-e and --env-file, as docker run reads them', async (t) => {
  const lookup = (k: string): string | undefined => ({ HOME: '/root', EMPTY: '' } as Record<string, string>)[k]
  t.same(parseEnvOption('A=1', lookup), { key: 'A', value: '1' })
  t.same(parseEnvOption('A=b=c', lookup), { key: 'A', value: 'b=c' }, 'the value may hold =')
  t.same(parseEnvOption('A=', lookup), { key: 'A', value: '' })
  t.same(parseEnvOption('HOME', lookup), { key: 'HOME', value: '/root' }, "KEY alone: ferry run's own value")
  t.same(parseEnvOption('EMPTY', lookup), { key: 'EMPTY', value: '' })
  t.same(parseEnvOption('UNSET', lookup), { key: 'UNSET', value: undefined }, 'not set: left out')
  t.equal(code(() => parseEnvOption('=1', lookup)), 'INVALID_OPTION')
  t.equal(code(() => parseEnvOption('A=\0', lookup)), 'INVALID_OPTION')

  const text = '\uFEFF# comment\n\n  A=1  \nB="quoted"\r\nHOME\nUNSET\n\t# indented comment\nC=x=y\n'
  t.same(parseEnvFile(text, 'f', lookup), [
    { key: 'A', value: '1  ' }, { key: 'B', value: '"quoted"' }, { key: 'HOME', value: '/root' }, { key: 'C', value: 'x=y' },
  ], 'literal values, leading space and comments skipped, KEY alone looked up (and skipped when unset)')
  t.throws(() => parseEnvFile('A B=1\n', 'f', lookup), /--env-file f, line 1: variable "A B" contains white space/)
  t.throws(() => parseEnvFile('ok=1\n=1\n', 'f', lookup), /line 2: no variable name/)

  t.same(mergeEnv([{ key: 'A', value: '1' }, { key: 'B', value: '2' }, { key: 'A', value: '3' }, { key: 'C', value: undefined }]),
    { set: ['A=3', 'B=2'], unset: ['C'] }, 'the last value wins, at the first position')
  t.same(mergeEnv([{ key: 'A', value: undefined }, { key: 'A', value: 'back' }]), { set: ['A=back'], unset: [] })
})

t.test('attach bodies of ferry run: env, -d, --net host', async (t) => {
  const run = { name: 'web', pid: 42, owner: 'run' as const }
  t.same(parseAttach({ ...run, net: 'bridge', env: ['A=1', 'B=2', 'A=3'] }).env, ['A=3', 'B=2'])
  t.same(parseAttach({ ...run, net: 'bridge' }).env, [])
  t.equal(parseAttach({ ...run, net: 'bridge', detached: true }).detached, true)
  for (const env of [['A'], ['=1'], ['A=\0']]) t.equal(code(() => parseAttach({ ...run, net: 'bridge', env })), 'INVALID_OPTION', `env ${JSON.stringify(env)}`)
  t.equal(code(() => parseAttach({ name: 'x', net: 'bridge', netns: '/x', detached: true })), 'INVALID_OPTION', 'only ferry run detaches')

  const host = parseAttach({ ...run, net: 'host', publish: ['80:80'], expose: ['443'] })
  t.match(host, { mode: { kind: 'host' }, target: { kind: 'pid', pid: 42 } })
  t.equal(host.ports.length, 1, 'the ports stay in the spec: the agent warns that it ignores them')
  const bad: Array<[string, Parameters<typeof parseAttach>[0]]> = [
    ['host for attach', { name: 'x', net: 'host', pid: 1 }],
    ['host with a path', { name: 'x', net: 'host', netns: '/x', owner: 'run' }],
    ['host with links', { ...run, net: 'host', links: ['db'] }],
    ['host with a hostname', { ...run, net: 'host', hostname: 'h' }],
    ['host with an address', { ...run, net: 'host', ip: '10.0.0.2' }],
    ['host with an IPv6 address', { ...run, net: 'host', ip6: 'fd00::2' }],
    ['host with aliases', { ...run, net: 'host', aliases: ['a'] }],
    ['host with files', { ...run, net: 'host', setupFiles: true }],
  ]
  for (const [what, w] of bad) t.equal(code(() => parseAttach(w)), 'INVALID_OPTION', what)
  t.throws(() => parseAttach({ ...run, net: 'host', links: ['db'] }), /host type networking cannot be used with links/)
})
