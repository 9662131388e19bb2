import t from 'tap'
import {
  clockOffset, doctorExitCode, fail, formatReport, formatResult, iptablesBackend, judgeAgent, judgeBridgeNfCall, judgeBrNetfilter,
  judgeClockSkew, judgeEngine, judgeEngineDns, judgeIpForward, judgeIptables, judgeIpv6AcceptRa, judgeLinkKind, judgeNoIptables, judgePluginAnswer, judgeRedis, judgeSocket, ok, warn,
} from '../../src/doctor/checks.js'
import { judgePluginDir } from '../../src/doctor/doctor.js'
import { countRules, engineChains, ferryLines, LINK_PROBES } from '../../src/doctor/probes.js'
import { redisVersion } from '../../src/doctor/redis.js'

const statuses = (rs: Array<{ status: string, check: string }>): string[] => rs.map((r) => `${r.status} ${r.check}`)

t.test('one line per check, exit code 1 only on a failure', async (t) => {
  t.equal(formatResult(ok('kernel.bridge', 'can create bridge devices')), 'ok   kernel.bridge: can create bridge devices')
  t.equal(formatResult(fail('agent.api', 'no agent\nanswers', 'start it')), 'fail agent.api: no agent answers — start it')
  t.equal(formatResult(warn('x.y', 'a', 'b')), 'warn x.y: a — b')
  const rs = [ok('a', 'x'), warn('b', 'y', 'z')]
  t.equal(doctorExitCode(rs), 0)
  t.equal(doctorExitCode([...rs, fail('c', 'd', 'e')]), 1)
  t.equal(formatReport([...rs, fail('c', 'd', 'e')]).trimEnd().split('\n').pop(), '1 ok, 1 warnings, 1 failures')
  for (const line of formatReport(rs).split('\n').slice(0, 2)) t.match(line, /^(ok|warn|fail) +\S+: /)
})

t.test('kernel and sysctls', async (t) => {
  t.equal(judgeLinkKind('vxlan', undefined).status, 'ok')
  const r = judgeLinkKind('vxlan', 'Error: Unknown device type.')
  t.equal(r.status, 'fail')
  t.match(r.fix, /modprobe vxlan/)
  t.match(r.what, /overlay/)
  t.equal(judgeBrNetfilter(true).status, 'ok')
  t.match(judgeBrNetfilter(false), { status: 'warn', fix: /modprobe br_netfilter/ })
  t.equal(judgeIpForward('1').status, 'ok')
  t.equal(judgeIpForward('0').status, 'warn')
  t.equal(judgeIpForward(undefined).status, 'warn')
  t.equal(judgeBridgeNfCall('1').status, 'ok')
  t.match(judgeBridgeNfCall('0'), { status: 'warn', fix: /bridge-nf-call-iptables=1/ })
  t.same(Object.keys(LINK_PROBES), ['bridge', 'veth', 'vxlan'])
})

t.test('iptables backends', async (t) => {
  t.equal(iptablesBackend('iptables v1.8.9 (nf_tables)\n'), 'nft')
  t.equal(iptablesBackend('iptables v1.8.7 (legacy)'), 'legacy')
  t.equal(iptablesBackend('iptables v1.6.1'), 'unknown')
  t.same(statuses(judgeIptables({ rules: {} })), ['fail iptables.backend'])
  t.same(statuses(judgeIptables({ version: 'iptables v1.8.9 (nf_tables)', rules: { nft: 40, legacy: 0 } })), ['ok iptables.backend', 'ok iptables.mixed'])
  t.same(statuses(judgeIptables({ version: 'iptables v1.8.9 (nf_tables)', rules: { nft: 40 } })), ['ok iptables.backend', 'ok iptables.mixed'])
  const mixed = judgeIptables({ version: 'iptables v1.8.9 (nf_tables)', rules: { nft: 40, legacy: 12 } })
  t.same(statuses(mixed), ['ok iptables.backend', 'fail iptables.mixed'])
  t.match(mixed[1]!.what, /legacy backend also holds 12 rule/)
  t.match(mixed[1]!.fix, /update-alternatives/)
  t.same(statuses(judgeIptables({ version: 'iptables v1.8.7 (legacy)', rules: { nft: 3, legacy: 9 } })), ['ok iptables.backend', 'fail iptables.mixed'])
  t.equal(countRules('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j X\n-A FORWARD -j Y\nCOMMIT\n'), 2)
  t.ok(engineChains('*filter\n:DOCKER-USER - [0:0]\n'))
  t.ok(engineChains('*filter\n:DOCKER - [0:0]\n'))
  t.notOk(engineChains('*filter\n:FERRY-FORWARD - [0:0]\n:DOCKERX - [0:0]\n'))
})

t.test('the engine', async (t) => {
  const down = judgeEngine({ dockerHost: 'unix:///x.sock', error: 'connect ENOENT' }, 'ferry')
  t.same(statuses(down), ['fail engine.reachable'])
  t.match(down[0]!.what, /unix:\/\/\/x\.sock/)
  const up = judgeEngine({ dockerHost: 'unix:///d.sock', version: '20.10.24', apiVersion: '1.41', liveRestore: false, managesIptables: true, networks: [{ name: 'front', ipamDriver: 'ferry' }] }, 'ferry')
  t.same(statuses(up), ['ok engine.reachable', 'ok engine.iptables', 'ok engine.live-restore', 'ok engine.networks'])
  t.match(up[2]!.fix, /live-restore/)
  t.match(up[3]!.what, /1 ferry network\(s\): front/)
  const wrongIpam = judgeEngine({ dockerHost: 'd', version: '1', networks: [{ name: 'a', ipamDriver: 'ferry' }, { name: 'b', ipamDriver: 'default' }] }, 'ferry')
  t.same(statuses(wrongIpam), ['ok engine.reachable', 'fail engine.networks'])
  t.match(wrongIpam[1]!.fix, /--ipam-driver ferry/)
  const managed = judgeEngine({ dockerHost: 'd', version: '1', networks: [{ name: 'm', driver: 'myferry:latest', ipamDriver: 'myferry:latest' }, { name: 'n', driver: 'myferry:latest', ipamDriver: 'default' }] }, 'ferry')
  t.match(managed[1]!, { status: 'fail', what: /^n: .*IPAM default/ }, 'a managed plugin installed as myferry: its networks with its own IPAM are fine, the other is named')
  t.match(judgeEngine({ dockerHost: 'd', version: '1', networks: [] }, 'ferry')[1]!, { status: 'ok', fix: /docker network create -d ferry --ipam-driver ferry/ })
  t.equal(judgePluginDir('/run/docker/plugins/').status, 'ok')
  t.equal(judgePluginDir('/tmp/plugins').status, 'warn')
})

t.test('the agent and its sockets', async (t) => {
  t.equal(judgeSocket('agent.api-socket', 'API socket', { path: '/s', isSocket: true, mode: 0o140600, uid: 0 }).status, 'ok')
  t.match(judgeSocket('agent.api-socket', 'API socket', { path: '/s', isSocket: true, mode: 0o140666, uid: 0 }), { status: 'fail', what: /mode 666/ })
  t.equal(judgeSocket('agent.api-socket', 'API socket', { path: '/s', isSocket: true, mode: 0o140600, uid: 1000 }).status, 'fail')
  t.equal(judgeSocket('agent.api-socket', 'API socket', { path: '/s', isSocket: false, mode: 0o100600, uid: 0 }).status, 'fail')
  t.match(judgeSocket('agent.plugin-socket', 'plugin socket', { path: '/s', error: 'does not exist' }), { status: 'fail', what: /does not exist/ })
  t.same(statuses(judgeAgent({ apiSocket: '/a', error: 'the ferry agent is not running' })), ['fail agent.api'])
  t.same(statuses(judgeAgent({ apiSocket: '/a', status: { version: '0.1.0', status: 'running', uptimeSeconds: 3, networks: 1, endpoints: 2, reconcile: { lastError: '' } } })), ['ok agent.api'])
  t.same(statuses(judgeAgent({ apiSocket: '/a', status: { version: '0.1.0', reconcile: { lastError: 'iptables-restore failed' } } })), ['ok agent.api', 'warn agent.reconcile'])
  // A store recovered with loss: one warn line that says what was lost and how to go on.
  const loss = { summary: 'recovered with loss: 1 damaged journal line, kept at /var/lib/ferry/state.journal.damaged-X', kept: ['/var/lib/ferry/state.journal.damaged-X'], keys: ['endpoints/e30'] }
  const lossy = judgeAgent({ apiSocket: '/a', status: { version: '0.1.0', reconcile: { lastError: '' }, store: { loss } } })
  t.same(statuses(lossy), ['ok agent.api', 'warn agent.store'])
  t.match(formatResult(lossy[1]!), /^warn agent\.store: the store was recovered with loss: 1 damaged journal line, kept at \/var\/lib\/ferry\/state\.journal\.damaged-X \(the lost changes touched endpoints\/e30\) — .*dmesg.*docker network inspect.*ferry reconcile.*move it elsewhere \(\/var\/lib\/ferry\/state\.journal\.damaged-X\)/)
  t.same(statuses(judgeAgent({ apiSocket: '/a', status: { version: '0.1.0', store: {} } })), ['ok agent.api'], 'no loss, no line')
  t.equal(judgePluginAnswer('/p.sock', undefined).status, 'ok')
  t.equal(judgePluginAnswer('/p.sock', 'ECONNREFUSED').status, 'fail')
})

t.test('Redis and clocks', async (t) => {
  t.equal(redisVersion('# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n'), '7.0.15')
  t.equal(redisVersion('nothing'), undefined)
  t.same(statuses(judgeRedis({ url: 'redis://r', error: 'ECONNREFUSED' })), ['fail redis.reachable'])
  t.same(statuses(judgeRedis({ url: 'redis://r', version: '7.0.15', latencyMs: 0.3 })), ['ok redis.version', 'ok redis.latency'])
  t.same(statuses(judgeRedis({ url: 'redis://r', version: '6.2.1', latencyMs: 20 })), ['warn redis.version', 'warn redis.latency'])
  t.same(statuses(judgeRedis({ url: 'redis://r', version: '4.0.9', latencyMs: 250 })), ['fail redis.version', 'fail redis.latency'])
  t.same(statuses(judgeRedis({ url: 'redis://r', version: '10.0.0', latencyMs: 1 })), ['ok redis.version', 'ok redis.latency'])
  t.equal(clockOffset(1000, 1100, 1300), 200, 'local midpoint minus remote')
  t.equal(clockOffset(1000, 900, 1100), 0)
  t.equal(judgeClockSkew(15, 1).status, 'ok')
  t.match(judgeClockSkew(-2500, 1), { status: 'warn', what: /2\.500 s behind/ })
  t.match(judgeClockSkew(120_000, 1), { status: 'fail', fix: /NTP/ })
  t.equal(judgeClockSkew(undefined, 0).status, 'warn')
})

t.test('an agent with --iptables=false: rules left by an earlier run are a warning; iptables itself is optional', async (t) => {
  const save = [
    '# Generated by iptables-nft-save v1.8.9 (nf_tables) for ferry',
    '*nat', ':POSTROUTING ACCEPT [0:0]', ':FERRY-POSTROUTING - [0:0]', '-A POSTROUTING -j FERRY-POSTROUTING',
    '-A FERRY-POSTROUTING -s 10.1.0.0/24 ! -o fy-1 -m comment --comment "ferry n1" -j MASQUERADE', 'COMMIT',
    '*filter', ':DOCKER-USER - [0:0]', '-A FORWARD -j DOCKER-USER', 'COMMIT',
  ].join('\n')
  t.equal(ferryLines(save), 3, 'the chain, the jump and the rule; not the comment line')
  t.equal(ferryLines(''), 0)
  const status = { version: '0.1.0', status: 'running', firewall: { iptables: false } }
  t.same(statuses(judgeAgent({ apiSocket: '/a', status }, { ferryLines: 0, forwardPolicy: 'ACCEPT' })), ['ok agent.api', 'ok agent.firewall'])
  const left = judgeAgent({ apiSocket: '/a', status }, { ferryLines: 3 })
  t.same(statuses(left), ['ok agent.api', 'warn agent.firewall'])
  t.match(left[1]!, { what: /--iptables=false, but iptables still holds 3 line\(s\) of ferry/, fix: /iptables-save \| grep -i ferry/ })
  t.same(statuses(judgeAgent({ apiSocket: '/a', status: { ...status, firewall: { iptables: true } } }, { ferryLines: 3, forwardPolicy: 'DROP' })), ['ok agent.api'], 'with iptables on, they are ferry\'s own')
  const nft = judgeAgent({ apiSocket: '/a', status: { ...status, firewall: { iptables: true, backend: 'nftables', reason: 'default: nft is installed and the kernel supports inet tables' } } })
  t.same(statuses(nft), ['ok agent.api', 'ok agent.firewall'], 'the backend in use is named')
  t.match(nft[1]?.what, /firewall backend nftables \(table inet ferry\): default: nft is installed/)
  const drop = judgeAgent({ apiSocket: '/a', status }, { ferryLines: 0, forwardPolicy: 'DROP' })
  t.same(statuses(drop), ['ok agent.api', 'ok agent.firewall', 'warn agent.forward'])
  t.match(drop[2]!, { what: /FORWARD policy is DROP/, fix: /DOCKER-USER -i fy-\+ -j ACCEPT .* --iptables=false too/ })
  t.equal(judgeNoIptables(0).status, 'ok')
  t.same(statuses(judgeIptables({ rules: {} }, false)), ['ok iptables.backend'])
  t.same(statuses(judgeIptables({ rules: {} }, true)), ['fail iptables.backend'])
})

t.test('IPv6 forwarding and interfaces that then ignore router advertisements', async (t) => {
  t.equal(judgeIpv6AcceptRa(undefined, []).status, 'ok')
  t.equal(judgeIpv6AcceptRa('0', ['eth0']).status, 'ok', 'forwarding off: RAs accepted as configured')
  t.equal(judgeIpv6AcceptRa('1', []).status, 'ok')
  const w = judgeIpv6AcceptRa('1', ['eth0', 'wlan0'])
  t.equal(w.status, 'warn')
  t.match(w.what, /eth0, wlan0 \(accept_ra=1\) ignore router advertisements/)
  t.match(w.fix, /accept_ra=2/)
})

t.test('overlay.families: hosts this host shares no underlay family with are named, with the fix', async (t) => {
  const { judgeFamilies } = await import('../../src/doctor/checks.js')
  t.match(judgeFamilies([]), { status: 'ok', check: 'overlay.families' })
  t.match(judgeFamilies([{ hostId: 'h2', detail: 'host h2 advertises only IPv6 (fd00::2); this host has no IPv6 VTEP' }]),
    { status: 'warn', check: 'overlay.families', what: 'host h2 advertises only IPv6 (fd00::2); this host has no IPv6 VTEP: overlay containers here and there cannot reach each other', fix: /--advertise-addr given twice/ })
})

t.test('wireguard: the kernel module, userspace or missing, and what userspace costs', async (t) => {
  const { judgeWireGuard } = await import('../../src/doctor/checks.js')
  t.match(judgeWireGuard({ kernelModule: false, userspace: '/usr/bin/wireguard-go' }), { status: 'ok', check: 'wireguard', what: /userspace WireGuard \(\/usr\/bin\/wireguard-go\): the kernel has no WireGuard module/, fix: /fraction of the kernel module's throughput/ })
  t.match(judgeWireGuard({ kernelModule: true, userspace: '/usr/bin/wireguard-go' }), { status: 'ok', what: /kernel's WireGuard module .*wireguard-go is installed but not needed/ })
  t.match(judgeWireGuard({ kernelModule: true, userspace: undefined }), { status: 'ok', what: /kernel's WireGuard module \(configured over generic netlink\)$/ })
  t.match(judgeWireGuard({ kernelModule: false, userspace: undefined }), { status: 'warn', what: /encrypted overlays are refused/, fix: /apt-get install wireguard-go/ })
})

t.test('wireguard.tc: clsact and mirred for a key rotation', async (t) => {
  const { judgeTc } = await import('../../src/doctor/checks.js')
  t.match(judgeTc(undefined), { status: 'ok', check: 'wireguard.tc', what: /mirred mirror action/ })
  t.match(judgeTc('tc -n x qdisc add …: not installed'), { status: 'warn', what: /tc cannot mirror packets \(tc -n x qdisc add …: not installed\): a WireGuard key rotation .* fails and the old key stays/, fix: /iproute2/ })
})

t.test('engine.dns: whether the engine\'s --dns is one of ferry\'s listen addresses', async (t) => {
  const ferry = { enabled: true, addresses: ['10.30.0.1', '10.77.0.1'], overlays: 1 }
  const set = judgeEngineDns({ pid: 42, configFile: '/etc/docker/daemon.json', servers: ['10.30.0.1', '1.1.1.1'], errors: [] }, ferry)
  t.equal(set.status, 'ok')
  t.match(set.what, /dockerd \(pid 42, \/etc\/docker\/daemon.json\) forwards its containers' other names to ferry \(10.30.0.1\)/)
  t.match(set.fix, /--dns-engine-clients/)
  const other = judgeEngineDns({ pid: 42, servers: ['1.1.1.1'], errors: [] }, ferry)
  t.equal(other.status, 'warn', 'an overlay here, and the engine asks someone else')
  t.match(other.what, /forwards its containers' other names to 1.1.1.1, none of ferry's addresses \(10.30.0.1, 10.77.0.1\): names of other hosts' overlay containers do not resolve/)
  t.match(other.fix, /"dns": \["10.30.0.1"\]/)
  const none = judgeEngineDns({ pid: 42, servers: [], errors: ['/etc/docker/daemon.json is not JSON: x'] }, ferry)
  t.equal(none.status, 'warn')
  t.match(none.what, /sets no --dns: .*could not read everything: \/etc\/docker\/daemon.json is not JSON/)
  t.equal(judgeEngineDns({ servers: [], errors: ['no dockerd process serving unix:///x.sock was found'] }, { ...ferry, overlays: 0 }).status, 'ok', 'no overlay: nothing is missed')
  t.match(judgeEngineDns({ servers: [], errors: [] }, { enabled: false, addresses: ['10.30.0.1'], overlays: 1 }), { status: 'ok', what: /--no-dns-server/ })
  t.match(judgeEngineDns({ servers: ['10.30.0.1'], errors: [] }, { enabled: true, addresses: [], overlays: 0 }), { status: 'ok', what: /no address yet/ })
})
