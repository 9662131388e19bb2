/**
 * Encrypted overlays end to end (userspace WireGuard, `wireguard-go`): three
 * simulated hosts (namespaces with a ferry agent each, no engine) with one
 * redis-server. Hosts 1 and 2 sit on an underlay bridge; host 3 sits behind a
 * NAT (a router namespace masquerading its private link onto the underlay and
 * forwarding UDP 51820-51821 to it), started with `--wireguard-endpoint
 * <router>:51820`. Hosts 1 and 2 join a plain overlay and an encrypted one
 * (`-o ferry.encrypt=wireguard`) side by side, host 3 the encrypted one (a plain
 * overlay's VXLAN cannot cross its NAT: docs/encryption.md). A `ferry run`
 * command on one host reaches one on another by address and by name over both,
 * and across the NAT both ways. tcpdump on host 1's underlay port sees the plain
 * overlay's payload and never the encrypted one's, which crosses as WireGuard
 * (UDP 51820). Asking for a plain overlay encrypted is refused.
 *
 * Key rotation: while a TCP stream runs from host 2 to host 1 over the encrypted overlay, hosts 1 and 2
 * rotate their keys (`ferry cluster rotate-key`); the two others switch before the old key is retired, and
 * the stream ends complete with no reset.
 *
 * Departure: host 3's agent is killed; once its heartbeat is older than the host TTL, hosts 1 and 2 drop
 * it from their WireGuard devices (read over the UAPI socket) and go on reaching each other. Removing the
 * encrypted network leaves no WireGuard device, process, socket or tunnel route.
 *
 * An IPv6 underlay: two hosts whose VTEPs are IPv6 addresses carry an encrypted overlay through
 * WireGuard endpoints `[IPv6]:port`, with the MTU of WireGuard over IPv6 (underlay - 80 - 50).
 *
 * Injection: a VXLAN frame crafted on the underlay (from the redis namespace,
 * no key) for the encrypted overlay, sent to a host's underlay address, is
 * dropped by ferry's firewall before decapsulation (host 1: iptables backend,
 * host 2: nftables), while the same frame for the plain overlay (port 4789,
 * its VNI) is decapsulated there.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile } from '../../src/kernel/exec.js'
import { sh, ipJson, link, netns, nsExec, type TeardownHost } from '../harness/netns.js'
import { NODE, cleanEnv, startAgent } from '../harness/agent.js'
import { REDIS_IP, runtimeHosts, type RuntimeHost } from '../harness/runtime-hosts.js'
import { underlay, underlayHost } from '../harness/underlay.js'
import { redisServer } from '../harness/redis.js'
import { observe, until } from '../harness/until.js'
import { wgDeviceName, tunnelAddress, ENCRYPTED_VXLAN_PORT, parseUapiGet, type WgDeviceState } from '../../src/wireguard/plan.js'
import { uapiRequest } from '../../src/kernel/wireguard-uapi.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const PLAIN = 'plain-payload-7f3a51'
const SECRET = 'secret-payload-9c1e27'

type Host = RuntimeHost

const ferry = (h: Host, args: string[]) =>
  execFile(['ip', 'netns', 'exec', h.ns, ...NODE, ENTRY, ...args], { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, allowFailure: true, timeoutMs: 30_000 })

/** Ones' complement sum of 16-bit words (the IPv4 header checksum). */
function ipChecksum (b: Buffer): number {
  let sum = 0
  for (let i = 0; i < b.length; i += 2) sum += b.readUInt16BE(i)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

const INJECT_PORT = 9
/** A VXLAN packet (header + Ethernet + IPv4 + UDP to INJECT_PORT carrying `marker`) as an underlay attacker would send it. */
function vxlanFrame (vni: number, dstMac: string, dstIp: string, marker: string): Buffer {
  const payload = Buffer.from(marker)
  const udp = Buffer.alloc(8)
  udp.writeUInt16BE(40000, 0); udp.writeUInt16BE(INJECT_PORT, 2); udp.writeUInt16BE(8 + payload.length, 4)
  const ip = Buffer.alloc(20)
  ip.writeUInt8(0x45, 0); ip.writeUInt16BE(20 + 8 + payload.length, 2); ip.writeUInt8(64, 8); ip.writeUInt8(17, 9)
  Buffer.from(dstIp.split('.').map(Number)).copy(ip, 16)
  // Source: an address of the overlay's subnet no container has.
  Buffer.from([...dstIp.split('.').slice(0, 3).map(Number), 250]).copy(ip, 12)
  ip.writeUInt16BE(ipChecksum(ip), 10)
  const eth = Buffer.concat([Buffer.from(dstMac.replace(/:/g, ''), 'hex'), Buffer.from('02eeeeeeee01', 'hex'), Buffer.from([0x08, 0x00])])
  const vx = Buffer.alloc(8)
  vx.writeUInt8(0x08, 0); vx.writeUIntBE(vni, 4, 3)
  return Buffer.concat([vx, eth, ip, udp, payload])
}

/** Send one UDP datagram from namespace `ns` (node's dgram; the payload as hex on argv, no shell). */
async function sendUdp (ns: string, host: string, port: number, payload: Buffer): Promise<void> {
  const script = 'const s=require("dgram").createSocket("udp4");s.send(Buffer.from(process.argv[1],"hex"),Number(process.argv[2]),process.argv[3],(e)=>{if(e)throw e;s.close()})'
  const r = await execFile(['ip', 'netns', 'exec', ns, ...NODE, '-e', script, payload.toString('hex'), String(port), host], { env: cleanEnv(), allowFailure: true, timeoutMs: 10_000 })
  if (r.code !== 0) throw new Error(`sending from ${ns} failed: ${r.stderr}`)
}

/** A host's device as wireguard-go reports it (over the UAPI socket of whichever slot's device runs). */
async function deviceState (hostId: string): Promise<WgDeviceState | undefined> {
  for (const dev of [wgDeviceName(hostId), wgDeviceName(hostId, 1)]) {
    const sock = `/var/run/wireguard/${dev}.sock`
    if (existsSync(sock)) return parseUapiGet(await uapiRequest(sock, 'get=1\n\n'))
  }
  return undefined
}

/** The public key a host's device has for the peer of `tunnel` ('' for none). */
async function peerKeyFor (hostId: string, tunnel: string): Promise<string> {
  return (await deviceState(hostId))?.peers.find((p) => p.allowedIps.includes(`${tunnel}/32`))?.publicKey ?? ''
}

const NAT_PRIVATE = { router: '10.99.0.1', host: '10.99.0.2' }
const NAT_PUBLIC = '192.0.2.23'

/**
 * A host behind NAT: a router namespace on the underlay (`port` on the bridge, NAT_PUBLIC) with a private
 * link to the host (NAT_PRIVATE); the router masquerades what the host sends and forwards UDP 51820-51821
 * (the two WireGuard slots) to it. Returns the host's namespace.
 */
function natHost (t: TeardownHost, ulNs: string, prefix: string, port: string): string {
  const router = underlayHost(t, { ns: ulNs, bridge: 'ulbr' }, `${prefix}r`, port, `${NAT_PUBLIC}`)
  const ns = netns(t, `${prefix}3`)
  link({ ns: router, ifname: 'lan', cidr: `${NAT_PRIVATE.router}/24` }, { ns, ifname: 'eth0', cidr: `${NAT_PRIVATE.host}/24` })
  nsExec(ns, ['ip', 'route', 'add', 'default', 'via', NAT_PRIVATE.router])
  nsExec(router, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  nsExec(router, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE'])
  nsExec(router, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', 'eth0', '-p', 'udp', '--dport', '51820:51821', '-j', 'DNAT', '--to-destination', NAT_PRIVATE.host])
  return ns
}

function wgProcesses (dev: string): string {
  return sh(['pgrep', '-f', `^wireguard-go ${dev}$`], { allowFailure: true }).trim()
}

await t.test('an encrypted overlay across three hosts, one behind NAT', async (t) => {
  const id = (i: number): string => `wg${i}x${process.pid}`
  t.equal(new Set([1, 2, 3].map((i) => tunnelAddress(id(i)))).size, 3, 'distinct tunnel addresses')
  const { ul, hosts } = await runtimeHosts(t, { prefix: 'fyw', count: 2, hostId: id, args: (i) => ['--firewall-backend', i === 1 ? 'iptables' : 'nftables'] })
  const [h1, h2] = hosts as [Host, Host]
  // Host 3, behind NAT: its VTEP is its private address; peers reach its WireGuard at the router's address.
  const ns3 = natHost(t, ul, 'fyw', 'vr3')
  const h3: Host = {
    ns: ns3, hostId: id(3), ip: NAT_PRIVATE.host,
    agent: await startAgent(t, {
      ns: ns3, pluginName: `fyw3x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', NAT_PRIVATE.host, '--host-id', id(3), '--reconcile-interval', '0', '--wireguard-endpoint', `${NAT_PUBLIC}:51820`],
    }),
  }
  t.teardown(() => { if (!t.passing()) t.comment(h3.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })

  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ovp', '--subnet', '10.47.0.0/24', '-o', 'ferry.overlay=ovp'])
    t.equal(r.code, 0, r.stderr)
  }
  for (const h of [h1, h2, h3]) {
    const r = await ferry(h, ['network', 'create', 'ove', '--subnet', '10.48.0.0/24', '-o', 'ferry.overlay=ove', '-o', 'ferry.encrypt=wireguard'])
    t.equal(r.code, 0, r.stderr)
  }
  // Encryption is part of the overlay's definition: h2 asking for h1's plain overlay encrypted is refused.
  t.equal((await ferry(h1, ['network', 'create', 'ovc', '--subnet', '10.49.0.0/24', '-o', 'ferry.overlay=ovc'])).code, 0)
  const clash = await ferry(h2, ['network', 'create', 'ovc', '--subnet', '10.49.0.0/24', '-o', 'ferry.overlay=ovc', '-o', 'ferry.encrypt=wireguard'])
  t.not(clash.code, 0, 'an encrypted request for a plain overlay fails')
  t.match(clash.stderr, 'overlay ovc already exists plain (this host asked for it encrypted (ferry.encrypt=wireguard))', `with a clear sentence: ${clash.stderr}`)
  t.equal((await ferry(h1, ['network', 'rm', 'ovc'])).code, 0)

  const dev1 = wgDeviceName(h1.hostId)
  const links = ipJson<Array<{ ifname: string, mtu: number, linkinfo?: { info_kind: string, info_data?: { port: number, local?: string } } }>>(h1.ns, ['-d', 'link'])
  const wg = links.find((l) => l.ifname === dev1)
  t.equal(wg?.mtu, 1440, 'the WireGuard device: underlay MTU - 60')
  const vx = links.filter((l) => l.linkinfo?.info_kind === 'vxlan').map((l) => [l.linkinfo?.info_data?.port, l.linkinfo?.info_data?.local, l.mtu]).sort()
  t.same(vx, [[4789, '192.0.2.21', 1450], [4799, tunnelAddress(h1.hostId), 1390]], 'plain VXLAN on the underlay, encrypted VXLAN on the tunnel address, MTU 1500 - 60 - 50')

  // Capture host 1's underlay port.
  const dir = mkdtempSync(join(tmpdir(), 'ferry-wgcap-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pcap = join(dir, 'ul.pcap')
  // --immediate-mode: libpcap's TPACKET_V3 ring otherwise holds packets in a block that is handed over only
  // when full or after its 1 s timeout, and SIGINT drops an unretired block: the last second's packets (the
  // fetches below) would be missing from the file, and the checks on it would fail by chance or pass on nothing.
  const dump = spawn('ip', ['netns', 'exec', ul, 'tcpdump', '-i', 'vr1', '-n', '--immediate-mode', '-U', '-s', '0', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] })
  const dumpDone = new Promise((res) => dump.once('exit', res))
  t.teardown(async () => { if (dump.exitCode === null) { dump.kill('SIGKILL'); await dumpDone } })
  let dumpErr = ''
  dump.stderr.on('data', (b: Buffer) => { dumpErr += b.toString() })
  for (let i = 0; i < 50 && !dumpErr.includes('listening on'); i++) await sleep(100)
  t.match(dumpErr, /listening on vr1/)

  const servers: Array<{ kill: () => Promise<void> }> = []
  const serve = (h: Host, net: string, name: string, text: string) => {
    const p = spawn('ip', ['netns', 'exec', h.ns, ...NODE, ENTRY, 'run', '--name', name, '--net', net, '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', text],
      { env: { ...cleanEnv(), FERRY_API_SOCKET: h.agent.apiSocket }, stdio: 'ignore' })
    const done = new Promise((res) => p.once('exit', res))
    const kill = async (): Promise<void> => { if (p.exitCode === null && p.signalCode === null) { p.kill('SIGTERM'); await done } }
    servers.push({ kill })
    t.teardown(async () => { if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await done } })
    return kill
  }
  const NATTED = 'natted-payload-4d8b03'
  serve(h1, 'ovp', 'plainsrv', PLAIN)
  serve(h1, 'ove', 'secretsrv', SECRET)
  const stopNat = serve(h3, 'ove', 'natsrv', NATTED)
  const addr = async (name: string, h: Host = h1): Promise<string | undefined> => {
    for (let i = 0; i < 100; i++) {
      const c = (JSON.parse((await ferry(h, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string }>).find((x) => x.name === name)
      if (c?.address !== undefined) return c.address
      await sleep(100)
    }
    return undefined
  }
  const plainIp = await addr('plainsrv')
  const secretIp = await addr('secretsrv')
  const natIp = await addr('natsrv', h3)
  t.match(secretIp, /^10\.48\.0\.\d+$/)
  t.match(natIp, /^10\.48\.0\.\d+$/)
  /** A `ferry run` on `from` fetches `ip`:80 (and, with `name`, resolves it through ferry's DNS) until it answers `want`. */
  const fetch = async (net: string, ip: string, want: string, from: Host = h2, name?: string): Promise<string> =>
    observe(async () => (await ferry(from, ['run', '--net', net, '--', 'busybox', 'sh', '-c', `echo | nc -w 2 ${ip} 80${name !== undefined ? `; nslookup ${name}` : ''}`])).stdout,
      (out) => out.includes(want) && (name === undefined || out.includes(`Address: ${ip}`)), { timeoutMs: 30_000, everyMs: 300 })
  const resolved = (ip: string): RegExp => new RegExp(`Address: ${ip.replace(/\./g, '\\.')}`)
  t.match(await fetch('ovp', plainIp!, PLAIN, h2, 'plainsrv'), resolved(plainIp!), 'reached over the plain overlay, by name too')
  const viaWg = await fetch('ove', secretIp!, SECRET, h2, 'secretsrv')
  t.match(viaWg, SECRET, 'reached over the encrypted overlay')
  t.match(viaWg, resolved(secretIp!), 'and resolved by name over it')
  // Across the NAT, both ways: host 3 reaches host 1 (out through the masquerade), hosts 1 and 2 reach host 3
  // (in through the forward of its published endpoint).
  t.match(await fetch('ove', secretIp!, SECRET, h3, 'secretsrv'), resolved(secretIp!), 'host 3 behind NAT reaches host 1 over the encrypted overlay, by name')
  t.match(await fetch('ove', natIp!, NATTED, h1, 'natsrv'), resolved(natIp!), 'host 1 reaches host 3 behind NAT, by name')
  t.match(await fetch('ove', natIp!, NATTED, h2), NATTED, 'and so does host 2')
  const st1 = await deviceState(h1.hostId)
  t.equal(st1?.peers.find((p) => p.allowedIps.includes(`${tunnelAddress(h3.hostId)}/32`))?.endpoint, `${NAT_PUBLIC}:51820`, 'host 1 sends to host 3\'s published endpoint')

  const peers = JSON.parse((await h2.agent.cli(['cluster', 'status', '--json'])).stdout) as { wireguard?: { peers: Array<{ hostId: string, handshakeAgeS?: number, rxBytes: number, txBytes: number }> } }
  const p1 = peers.wireguard?.peers.find((p) => p.hostId === h1.hostId)
  t.ok(p1 !== undefined && p1.handshakeAgeS !== undefined && p1.rxBytes > 0 && p1.txBytes > 0, `h2 shows a handshake with h1 and bytes both ways: ${JSON.stringify(peers.wireguard)}`)
  t.match(p1, { encrypted: true }, 'and that traffic to h1 is encrypted')
  const reports = JSON.parse((await h2.agent.cli(['peers', '--json'])).stdout || '[]') as Array<{ overlay: string, encrypted: boolean, rows: Array<{ hostId?: string, wireguard?: { encrypted: boolean, rxBytes: number } }> }>
  const byOverlay = new Map(reports.map((r) => [r.overlay, r]))
  t.match(byOverlay.get('ovp'), { encrypted: false }, 'ferry peers: the plain overlay is plain')
  t.equal(byOverlay.get('ovp')?.rows.some((r) => r.wireguard !== undefined), false, 'with no WireGuard column')
  t.match(byOverlay.get('ove'), { encrypted: true }, 'ferry peers: the encrypted overlay is encrypted')
  t.match(byOverlay.get('ove')?.rows.find((r) => r.hostId === h1.hostId), { wireguard: { encrypted: true } }, 'and h1\'s endpoints show the WireGuard session')
  const table = (await h2.agent.cli(['peers'])).stdout
  t.match(table, /ENCRYPTED/, `ferry peers prints the column: ${table}`)

  if (process.env.FERRY_WG_BENCH === '1') {
    // A figure, not a check: MB/s of one TCP stream from h2 to h1 over each overlay (busybox nc, 64 MiB).
    for (const net of ['ovp', 'ove']) {
      const sink = spawn('ip', ['netns', 'exec', h1.ns, ...NODE, ENTRY, 'run', '--name', `sink${net}`, '--net', net, '--', 'busybox', 'sh', '-c', 'nc -l -p 5001 > /dev/null'],
        { env: { ...cleanEnv(), FERRY_API_SOCKET: h1.agent.apiSocket }, stdio: 'ignore' })
      const sinkDone = new Promise((res) => sink.once('exit', res))
      const ip = await addr(`sink${net}`)
      await sleep(500)
      const start = process.hrtime.bigint()
      const r = await ferry(h2, ['run', '--net', net, '--', 'busybox', 'sh', '-c', `dd if=/dev/zero bs=1M count=64 2>/dev/null | nc -w 5 ${ip ?? 'none'} 5001`])
      const s = Number(process.hrtime.bigint() - start) / 1e9
      t.comment(`bench ${net}: 64 MiB in ${s.toFixed(2)} s = ${(64 / s).toFixed(1)} MiB/s (exit ${r.code}; includes ~1 s of ferry run start-up)`)
      await Promise.race([sinkDone, sleep(5000)])
      if (sink.exitCode === null && sink.signalCode === null) { sink.kill('SIGKILL'); await sinkDone }
    }
  }

  await sleep(300)
  dump.kill('SIGINT')
  await dumpDone
  const captured = readFileSync(pcap)
  t.ok(captured.includes(PLAIN), 'the plain overlay\'s payload is on the underlay')
  t.notOk(captured.includes(SECRET), 'the encrypted overlay\'s payload never is')
  const wgPackets = sh(['tcpdump', '-r', pcap, '-n', 'udp port 51820'], { allowFailure: true }).split('\n').filter(Boolean).length
  t.ok(wgPackets > 0, `WireGuard packets crossed the underlay (${wgPackets})`)
  const vxlanEncrypted = sh(['tcpdump', '-r', pcap, '-n', 'udp port 4799'], { allowFailure: true }).split('\n').filter(Boolean).length
  t.equal(vxlanEncrypted, 0, 'no encrypted overlay VXLAN packet in the clear')

  // Injection from the underlay, into each host (host 1's firewall is iptables, host 2's nftables). Host 1's
  // targets are the containers (MACs from host 2's static neighbour entries); host 2 has none: broadcast.
  const macOf = (ip: string): string => ipJson<Array<{ dst: string, lladdr?: string }>>(h2.ns, ['neigh', 'show']).find((e) => e.dst === ip)?.lladdr ?? ''
  const targets = new Map<Host, { plain: [string, string], secret: [string, string] }>([
    [h1, { plain: [macOf(plainIp!), plainIp!], secret: [macOf(secretIp!), secretIp!] }],
    [h2, { plain: ['ff:ff:ff:ff:ff:ff', '10.47.0.255'], secret: ['ff:ff:ff:ff:ff:ff', '10.48.0.255'] }],
  ])
  for (const [h, tg] of targets) {
    t.match(tg.plain[0], /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, `${h.hostId}: the plain target's MAC`)
    t.match(tg.secret[0], /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, `${h.hostId}: the encrypted target's MAC`)
    const vxlans = ipJson<Array<{ linkinfo?: { info_kind: string, info_data?: { id: number, port: number } } }>>(h.ns, ['-d', 'link'])
      .filter((l) => l.linkinfo?.info_kind === 'vxlan')
    const vniOf = (port: number): number => vxlans.find((l) => l.linkinfo?.info_data?.port === port)?.linkinfo?.info_data?.id ?? -1
    // One capture of every interface of the host for the inner packets (the outer ones go to 4789/4799).
    const inj = spawn('ip', ['netns', 'exec', h.ns, 'tcpdump', '-i', 'any', '-n', '-l', '--immediate-mode', '-A', `udp dst port ${INJECT_PORT}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    const injDone = new Promise((res) => inj.once('exit', res))
    t.teardown(async () => { if (inj.exitCode === null) { inj.kill('SIGKILL'); await injDone } })
    let injOut = ''
    let injErr = ''
    inj.stdout.on('data', (b: Buffer) => { injOut += b.toString('latin1') })
    inj.stderr.on('data', (b: Buffer) => { injErr += b.toString() })
    await until('the injection capture listens', () => injErr.includes('listening on'), 10_000)
    const INJ_SECRET = `injected-encrypted-${h.hostId}`
    const INJ_PLAIN = `injected-plain-${h.hostId}`
    // The encrypted overlay's frames first, the plain one after them on the same path: once the plain one is
    // decapsulated, the encrypted ones have met the host's stack too.
    for (let i = 0; i < 3; i++) await sendUdp(ul, h.ip, ENCRYPTED_VXLAN_PORT, vxlanFrame(vniOf(ENCRYPTED_VXLAN_PORT), ...tg.secret, INJ_SECRET))
    await until('the plain overlay takes the crafted frame', async () => {
      await sendUdp(ul, h.ip, 4789, vxlanFrame(vniOf(4789), ...tg.plain, INJ_PLAIN))
      return injOut.includes(INJ_PLAIN)
    }, { timeoutMs: 20_000, everyMs: 200 })
    inj.kill('SIGINT')
    await injDone
    t.match(injOut, INJ_PLAIN, `${h.hostId}: a crafted frame sent to the plain overlay's VXLAN port is decapsulated into it`)
    t.notMatch(injOut, INJ_SECRET, `${h.hostId}: the same frame to the encrypted overlay's VXLAN port on the underlay never enters it`)
  }

  // Key rotation under a running TCP stream: h2 sends numbered lines to a container on h1 over the encrypted
  // overlay for ~12 s; h1 rotates its key, then h2 does. The stream ends complete and in order (the server
  // prints each line it gets), the sender exits 0 (no reset), and each rotation saw both other hosts (host 3
  // behind its NAT among them) switch to the new key. The longest gap between two lines at the server (stamped with /proc/uptime, 10 ms steps) is a
  // figure, not a check.
  const LINES = 600
  const expected = Array.from({ length: LINES }, (_, i) => `line${i}`)
  const sink = spawn('ip', ['netns', 'exec', h1.ns, ...NODE, ENTRY, 'run', '--name', 'streamsrv', '--net', 'ove', '--', 'busybox', 'sh', '-c',
    'nc -l -p 5002 | while read -r l; do read -r up idle < /proc/uptime; echo "$up $l"; done'],
    { env: { ...cleanEnv(), FERRY_API_SOCKET: h1.agent.apiSocket }, stdio: ['pipe', 'pipe', 'ignore'] })
  // Its stdin stays open (busybox nc stops at the end of its stdin) until the stream is over.
  let counted = ''
  sink.stdout.on('data', (b: Buffer) => { counted += b.toString() })
  const sinkDone = new Promise((res) => sink.once('exit', res))
  t.teardown(async () => { if (sink.exitCode === null && sink.signalCode === null) { sink.kill('SIGKILL'); await sinkDone } })
  const streamIp = await addr('streamsrv')
  t.match(streamIp, /^10\.48\.0\.\d+$/)
  await sleep(500)
  const sender = ferry(h2, ['run', '--net', 'ove', '--', 'busybox', 'sh', '-c',
    `i=0; while [ $i -lt ${LINES} ]; do echo line$i; i=$((i+1)); sleep 0.02; done | nc -w 3 ${streamIp ?? 'none'} 5002`])
  await sleep(3000)
  const keyBefore = await peerKeyFor(h2.hostId, tunnelAddress(h1.hostId))
  for (const [h, others] of [[h1, [h2, h3]], [h2, [h1, h3]]] as Array<[Host, Host[]]>) {
    const r = await h.agent.cli(['cluster', 'rotate-key', '--json'])
    t.equal(r.code, 0, r.stderr)
    const rot = JSON.parse(r.stdout || '{}') as { publicKey?: string, device?: string, port?: number, switched?: string[], late?: string[], overlapMs?: number }
    const ids = others.map((o) => o.hostId).sort()
    t.same([[...rot.switched ?? []].sort(), rot.late, rot.port], [ids, [], 51821], `${h.hostId}: ${ids.join(' and ')} switched to the new key before the old one was retired`)
    t.equal(rot.device, wgDeviceName(h.hostId, 1), `${h.hostId}: the new key runs on the second slot's device`)
    t.comment(`${h.hostId}: both keys accepted for ${rot.overlapMs ?? -1} ms`)
    t.notOk(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).some((l) => l.ifname === wgDeviceName(h.hostId)), `${h.hostId}: the old device is gone`)
    await sleep(1500)
  }
  t.not(await peerKeyFor(h2.hostId, tunnelAddress(h1.hostId)), keyBefore, 'h2 programs h1\'s new key')
  const sent = await sender
  t.equal(sent.code, 0, `the sender ended without an error (no reset): ${sent.stderr}`)
  sink.stdin?.end()
  await Promise.race([sinkDone, sleep(10_000)])
  const got = counted.trim().split('\n').map((l) => l.split(' '))
  t.same(got.map((l) => l[1]), expected, 'every line of the stream arrived, in order, across both rotations')
  const stamps = got.map((l) => Number(l[0]))
  if (stamps.every(Number.isFinite)) {
    const gaps = stamps.slice(1).map((v, i) => v - stamps[i]!)
    t.comment(`stream: ${LINES} lines sent every 20 ms; longest gap at the server ${(Math.max(...gaps) * 1000).toFixed(0)} ms, median ${(gaps.sort((a, b) => a - b)[Math.floor(gaps.length / 2)]! * 1000).toFixed(0)} ms`)
  }
  t.match(await fetch('ove', secretIp!, SECRET), SECRET, 'new connections work on the new keys')
  t.match(await fetch('ove', secretIp!, SECRET, h3), SECRET, 'from behind the NAT too')

  // A host's departure: host 3's agent stops (killed: no goodbye); once its heartbeat is older than the host
  // TTL (10 s), the next heartbeat of another host removes it, and hosts 1 and 2 drop it from their devices.
  await stopNat()
  await h3.agent.kill('SIGKILL')
  const t3 = `${tunnelAddress(h3.hostId)}/32`
  for (const h of [h1, h2]) {
    const st = await observe(() => deviceState(h.hostId), (d) => d !== undefined && !d.peers.some((p) => p.allowedIps.includes(t3)), { timeoutMs: 40_000, everyMs: 250 })
    t.same(st?.peers.map((p) => p.allowedIps).sort(), [[`${tunnelAddress((h === h1 ? h2 : h1).hostId)}/32`]], `${h.hostId}: host 3 is no WireGuard peer any more, the other host still is`)
  }
  t.match(await fetch('ove', secretIp!, SECRET), SECRET, 'hosts 1 and 2 still reach each other over the encrypted overlay')

  for (const s of servers) await s.kill()
  for (const h of hosts) {
    t.equal((await ferry(h, ['network', 'rm', 'ove'])).code, 0)
    for (const dev of [wgDeviceName(h.hostId), wgDeviceName(h.hostId, 1)]) {
      t.notOk(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).some((l) => l.ifname === dev), `${h.hostId}: no WireGuard device ${dev} left`)
      for (let i = 0; i < 30 && (wgProcesses(dev) !== '' || existsSync(`/var/run/wireguard/${dev}.sock`)); i++) await sleep(100)
      t.equal(wgProcesses(dev), '', `${h.hostId}: no wireguard-go left`)
      t.notOk(existsSync(`/var/run/wireguard/${dev}.sock`), `${h.hostId}: no UAPI socket left`)
    }
    t.notOk(sh(['ip', '-n', h.ns, 'route'], { allowFailure: true }).includes('100.64.'), `${h.hostId}: no tunnel route left`)
    t.equal((await ferry(h, ['network', 'rm', 'ovp'])).code, 0)
  }
})

await t.test('an encrypted overlay over an IPv6 underlay', async (t) => {
  // As test/e2e/runtime-overlay.test.ts: the VTEPs are IPv6 addresses of the underlay link, Redis stays on IPv4.
  const ul = underlay(t, 'fy6ul', REDIS_IP)
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const hosts: Host[] = []
  for (const i of [1, 2]) {
    const ns = underlayHost(t, ul, `fy6h${i}`, `vr${i}`, `192.0.2.2${i}`)
    const vtep = `fd00:ff::2${i}`
    sh(['ip', '-n', ns, 'addr', 'add', `${vtep}/64`, 'dev', 'eth0', 'nodad'])
    const hostId = `wg6${i}x${process.pid}`
    const agent = await startAgent(t, {
      ns, pluginName: `fy6h${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', vtep, '--host-id', hostId, '--reconcile-interval', '0', '--firewall-backend', i === 1 ? 'nftables' : 'iptables'],
    })
    hosts.push({ ns, hostId, ip: vtep, agent })
  }
  const [h1, h2] = hosts as [Host, Host]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })
  for (const h of hosts) {
    const r = await ferry(h, ['network', 'create', 'ove6', '--subnet', '10.49.0.0/24', '-o', 'ferry.overlay=ove6', '-o', 'ferry.encrypt=wireguard'])
    t.equal(r.code, 0, r.stderr)
  }
  const links = ipJson<Array<{ ifname: string, mtu: number, linkinfo?: { info_kind: string, info_data?: { port: number, local?: string } } }>>(h1.ns, ['-d', 'link'])
  t.equal(links.find((l) => l.ifname === wgDeviceName(h1.hostId))?.mtu, 1420, 'the WireGuard device: underlay MTU - 80 (IPv6 40, UDP 8, WireGuard 32)')
  t.same(links.filter((l) => l.linkinfo?.info_kind === 'vxlan').map((l) => [l.linkinfo?.info_data?.port, l.linkinfo?.info_data?.local, l.mtu]),
    [[ENCRYPTED_VXLAN_PORT, tunnelAddress(h1.hostId), 1370]], 'the encrypted VXLAN on the (IPv4) tunnel address, MTU 1500 - 80 - 50')

  const dir = mkdtempSync(join(tmpdir(), 'ferry-wg6cap-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pcap = join(dir, 'ul.pcap')
  const dump = spawn('ip', ['netns', 'exec', ul.ns, 'tcpdump', '-i', 'vr1', '-n', '--immediate-mode', '-U', '-s', '0', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] })
  const dumpDone = new Promise((res) => dump.once('exit', res))
  t.teardown(async () => { if (dump.exitCode === null) { dump.kill('SIGKILL'); await dumpDone } })
  let dumpErr = ''
  dump.stderr.on('data', (b: Buffer) => { dumpErr += b.toString() })
  await until('tcpdump listens', () => dumpErr.includes('listening on'), 10_000)

  const server = spawn('ip', ['netns', 'exec', h1.ns, ...NODE, ENTRY, 'run', '--name', 'far6', '--net', 'ove6', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', SECRET],
    { env: { ...cleanEnv(), FERRY_API_SOCKET: h1.agent.apiSocket }, stdio: 'ignore' })
  const done = new Promise((res) => server.once('exit', res))
  t.teardown(async () => { if (server.exitCode === null && server.signalCode === null) { server.kill('SIGKILL'); await done } })
  const far = await observe(async () => (JSON.parse((await ferry(h1, ['ps', '--json'])).stdout || '[]') as Array<{ name: string, address?: string }>).find((c) => c.name === 'far6'),
    (f) => f?.address !== undefined, { timeoutMs: 40_000, everyMs: 100 })
  const ip = far?.address ?? 'none'
  const out = await observe(async () => (await ferry(h2, ['run', '--net', 'ove6', '--', 'busybox', 'sh', '-c', `echo | nc -w 2 ${ip} 80; nslookup far6`])).stdout,
    (o) => o.includes(SECRET) && o.includes(`Address: ${ip}`), { timeoutMs: 40_000, everyMs: 300 })
  t.match(out, SECRET, 'reached on the other host over the encrypted overlay')
  t.match(out, new RegExp(`Address: ${ip.replace(/\./g, '\\.')}`), 'and resolved by name over it')
  const st = await deviceState(h2.hostId)
  t.same(st?.peers.map((p) => [p.endpoint, p.allowedIps]), [[`[${h1.ip}]:51820`, [`${tunnelAddress(h1.hostId)}/32`]]], 'host 2 sends to host 1\'s IPv6 endpoint')

  await sleep(300)
  dump.kill('SIGINT')
  await dumpDone
  t.notOk(readFileSync(pcap).includes(SECRET), 'the payload never crosses the underlay in the clear')
  const wg6 = sh(['tcpdump', '-r', pcap, '-n', 'ip6 and udp port 51820'], { allowFailure: true }).split('\n').filter(Boolean).length
  t.ok(wg6 > 0, `WireGuard over IPv6 crossed the underlay (${wg6} packets)`)

  server.kill('SIGTERM')
  await done
  for (const h of hosts) {
    t.equal((await ferry(h, ['network', 'rm', 'ove6'])).code, 0)
    const dev = wgDeviceName(h.hostId)
    t.notOk(ipJson<Array<{ ifname: string }>>(h.ns, ['link']).some((l) => l.ifname === dev), `${h.hostId}: no WireGuard device left`)
    const left = await observe(() => [wgProcesses(dev), existsSync(`/var/run/wireguard/${dev}.sock`)], ([p, sock]) => p === '' && sock === false, { timeoutMs: 5000, everyMs: 100 })
    t.same(left, ['', false], `${h.hostId}: no wireguard-go and no UAPI socket left`)
    t.notOk(sh(['ip', '-n', h.ns, 'route'], { allowFailure: true }).includes('100.64.'), `${h.hostId}: no tunnel route left`)
  }
})
