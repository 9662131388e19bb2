/** Pure helpers of the namespace adapter, ferry run and the agent flags. */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FerryError } from '../../src/errors/errors.js'
import { interfaceBatch, parseStartTime, parseStat } from '../../src/runtime/netns.js'
import { HOLDER_ARGV, attachBody, commandArgv, commandEnv, exitStatus, loadEnv, type RunRequest } from '../../src/runtime/run.js'
import { defaultBridgeConfig, parseBool } from '../../src/runtime/flags.js'

t.test('ip -batch for a moved veth', async (t) => {
  t.equal(interfaceBatch({ dev: 'fyc0123', ifname: 'eth0', cidr: '10.61.0.2/24', gateway: '10.61.0.1' }), [
    'link set dev lo up', 'link set dev fyc0123 name eth0', 'addr add 10.61.0.2/24 dev eth0', 'link set dev eth0 up', 'route add default via 10.61.0.1 dev eth0', '',
  ].join('\n'))
  t.notMatch(interfaceBatch({ dev: 'eth0', ifname: 'eth0', cidr: '10.61.0.2/24' }), /name|route/, 'no rename, no route on an internal network')
  t.equal(interfaceBatch({ dev: 'eth0', ifname: 'eth0', cidr: '10.61.0.2/24', gateway: '10.61.0.1', cidr6: 'fd00:61::2/64', gateway6: 'fd00:61::1' }), [
    'link set dev lo up', 'addr add 10.61.0.2/24 dev eth0', 'addr add fd00:61::2/64 dev eth0 nodad', 'link set dev eth0 up',
    'route add default via 10.61.0.1 dev eth0', 'route add default via fd00:61::1 dev eth0', '',
  ].join('\n'), 'dual-stack: the IPv6 address without DAD (usable at once) and a default route of each family')
  t.notMatch(interfaceBatch({ dev: 'eth0', ifname: 'eth0', cidr: '10.61.0.2/24', gateway6: 'fd00:61::1' }), /route/, 'no IPv6 route without an IPv6 address')
  t.equal(interfaceBatch({ dev: 'eth0', ifname: 'eth0', gateway: '10.61.0.1', cidr6: 'fd00:61::2/64', gateway6: 'fd00:61::1' }), [
    'link set dev lo up', 'addr add fd00:61::2/64 dev eth0 nodad', 'link set dev eth0 up', 'route add default via fd00:61::1 dev eth0', '',
  ].join('\n'), 'IPv6-only: no IPv4 address, no IPv4 route')
})

t.test('start time from /proc/PID/stat, even with spaces and parentheses in the name', async (t) => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3))
  t.equal(parseStartTime(`123 (a (weird) name) ${fields.join(' ')}`), '22')
  t.equal(parseStartTime('garbage'), undefined)
  t.same(parseStat(`77 (sleep) Z 1 77 ${fields.slice(3).join(' ')}`), { state: 'Z', pgrp: 77, startTime: '22' }, 'state and process group')
})

t.test('ferry run argv', async (t) => {
  t.same(HOLDER_ARGV.slice(0, 6), ['unshare', '--net', '--mount', '--uts', '--propagation', 'private'])
  t.same(commandArgv({ kind: 'host' }, '/w', ['sh', '-c', 'x']), ['setpriv', '--pdeathsig', 'KILL', '--', 'sh', '-c', 'x'])
  t.same(commandArgv({ kind: 'pid', pid: 9 }, '/w', ['id']), ['nsenter', '--target=9', '--net', '--mount', '--uts', '--wd=/w', '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'id'])
  t.same(commandArgv({ kind: 'netns', path: '/run/netns/x' }, '/w', ['id']), ['nsenter', '--net=/run/netns/x', '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'id'])
  t.same(commandArgv({ kind: 'pid', pid: 9 }, '/w', ['id'], { dieWithFerry: false }), ['nsenter', '--target=9', '--net', '--mount', '--uts', '--wd=/w', '--', 'id'],
    '-d: the command outlives ferry run')
  t.same(commandArgv({ kind: 'host' }, '/w', ['id'], { dieWithFerry: false }), ['id'])
  t.equal(exitStatus(3, null), 3)
  t.equal(exitStatus(null, 'SIGKILL'), 137)
  const req: RunRequest = {
    net: 'bridge', publish: ['80'], publishAll: false, expose: [], links: ['db:d'], aliases: [], dns: [], dnsSearch: [], dnsOptions: [], cmd: ['x'],
    env: { set: [], unset: [] }, detach: false,
  }
  const body = attachBody(req, 'web', 7)
  t.match(body, { name: 'web', pid: 7, watchPid: 7, owner: 'run', setupFiles: true, links: ['db:d'] })
  t.notOk('env' in body || 'detached' in body, 'nothing to keep, not detached')
  t.match(attachBody({ ...req, net: 'container:web' }, 'c', 7), { setupFiles: false })
  t.match(attachBody({ ...req, net: 'host' }, 'h', 7), { net: 'host', setupFiles: false })
  t.match(attachBody({ ...req, env: { set: ['A=1'], unset: ['B'] }, detach: true }, 'd', 7), { env: ['A=1'], detached: true }, 'only the values go to the agent')
})

t.test("the command's environment", async (t) => {
  const base = { PATH: '/bin', HOSTNAME: 'ferryhost', KEEP: 'k' }
  const env = commandEnv(base, { HOSTNAME: 'abc', DB_NAME: '/web/db' }, { set: ['A=1', 'DB_NAME=mine', 'EMPTY='], unset: ['HOSTNAME'] })
  t.same(env, { PATH: '/bin', KEEP: 'k', DB_NAME: 'mine', A: '1', EMPTY: '' }, "ferry run's, then the agent's, then -e; -e KEY unset removes")
  t.same(base, { PATH: '/bin', HOSTNAME: 'ferryhost', KEEP: 'k' }, 'the base is not changed')

  const dir = mkdtempSync(join(tmpdir(), 'fyenv-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a.env'), 'A=from-file\nB=file\nFROM_HOST\n')
  const lookup = (k: string): string | undefined => ({ FROM_HOST: 'h', X: 'x' } as Record<string, string>)[k]
  t.same(await loadEnv(['B=option', 'X', 'NOPE'], [join(dir, 'a.env')], lookup),
    { set: ['A=from-file', 'B=option', 'FROM_HOST=h', 'X=x'], unset: ['NOPE'] }, 'files first, then -e; later ones win')
  await t.rejects(loadEnv([], [join(dir, 'missing.env')], lookup), { code: 'INVALID_OPTION', message: /--env-file .*missing\.env/ })
  await t.rejects(loadEnv(['=x'], [], lookup), { code: 'INVALID_OPTION' })
})

t.test('dockerd-style agent flags', async (t) => {
  t.equal(parseBool('false'), false)
  t.equal(parseBool('1'), true)
  t.throws(() => parseBool('maybe'), FerryError)
  t.equal(defaultBridgeConfig({}), undefined, 'opt-in: no --bridge, no default network')
  t.equal(defaultBridgeConfig({ bridge: 'none' }), undefined)
  t.same(defaultBridgeConfig({ bridge: 'docker0', bip: '172.17.0.1/16', icc: false, mtu: 1450 }), { bridge: 'docker0', bip: '172.17.0.1/16', icc: false, masquerade: true, mtu: 1450 })
  t.throws(() => defaultBridgeConfig({ bip: '172.17.0.1/16' }), /give --bridge NAME too/)
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', bip: '172.17.0.0/16' }), /host address/)
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', bip: '172.17.0.1' }), /prefix/)
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', mtu: 10 }), /68-65535/)
  t.throws(() => defaultBridgeConfig({ bridge: 'a-name-far-too-long' }), FerryError)
  t.same(defaultBridgeConfig({ bridge: 'docker0', ipv6: true, fixedCidrV6: 'FD00:17:0::/64' }), { bridge: 'docker0', icc: true, masquerade: true, ipv6: true, fixedCidr6: 'fd00:17::/64' })
  t.same(defaultBridgeConfig({ bridge: 'docker0', ipv6: true }), { bridge: 'docker0', icc: true, masquerade: true, ipv6: true }, '--ipv6 alone: a /64 of the default pool')
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', fixedCidrV6: 'fd00:17::/64' }), /give --ipv6 too/)
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', ipv6: true, fixedCidrV6: '10.0.0.0/8' }), /expected an IPv6 subnet/)
  t.throws(() => defaultBridgeConfig({ bridge: 'docker0', ipv6: true, fixedCidrV6: 'fd00::/32' }), /\/48 to \/120/)
  t.throws(() => defaultBridgeConfig({ ipv6: true }), /--ipv6 configure the default network: give --bridge NAME too/)
})
