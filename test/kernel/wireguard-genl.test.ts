/**
 * The generic netlink encoding of the WireGuard module, byte for byte. The
 * expected bytes are written out by hand from include/uapi/linux/wireguard.h
 * (attribute numbers, nesting with NLA_F_NESTED = 0x8000, list items of type 0)
 * and the layout `wg` (wireguard-tools src/ipc-linux.h) sends: struct nlattr
 * (u16 length, u16 type, host byte order = little endian here), payloads
 * padded to 4 bytes, struct sockaddr_in with the port in network order. The
 * machines of this project have no WireGuard module: this is what checks the
 * kernel path.
 */
import t from 'tap'
import {
  MAX_PEERS_BYTES, decodeGetDevice, encodeGetDevice, encodeSetDevice, sockaddr, WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE,
} from '../../src/kernel/wireguard-genl.js'
import { decodeFamilyId, encodeGetFamily, parseAttrs } from '../../src/kernel/genl.js'

/** Hex with blanks and comments (`# …` to the end of a line) allowed. */
const h = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex')
const K1 = Buffer.alloc(32, 0x11)
const K2 = Buffer.alloc(32, 0x22)
const K3 = Buffer.alloc(32, 0x33)

t.test('command numbers are the header\'s (enum wg_cmd starts at 0)', async (t) => {
  t.equal(WG_CMD_GET_DEVICE, 0)
  t.equal(WG_CMD_SET_DEVICE, 1)
})

t.test('SET_DEVICE: key, port, replace-peers and one peer, as wg lays it out', async (t) => {
  const [m, ...rest] = encodeSetDevice({
    ifname: 'fyw-0', privateKey: K1, listenPort: 51820, replacePeers: true,
    peers: [{ publicKey: K2, endpoint: { ip: '192.0.2.1', port: 51820 }, keepalive: 25, replaceAllowedIps: true, allowedIps: [{ ip: '100.64.0.2', cidr: 32 }] }],
  })
  t.equal(rest.length, 0)
  const want = h(`
    0a00 0200 6679772d3000 0000          # WGDEVICE_A_IFNAME "fyw-0\\0", padded
    2400 0300 ${'11'.repeat(32)}         # WGDEVICE_A_PRIVATE_KEY
    0600 0600 6cca 0000                  # WGDEVICE_A_LISTEN_PORT 51820 (u16, host order), padded
    0800 0500 01000000                   # WGDEVICE_A_FLAGS WGDEVICE_F_REPLACE_PEERS
    7000 0880                            # WGDEVICE_A_PEERS | NLA_F_NESTED, 112 bytes
      6c00 0080                          #   peer 0 | NLA_F_NESTED, 108 bytes
        2400 0100 ${'22'.repeat(32)}     #     WGPEER_A_PUBLIC_KEY
        1400 0400 0200 ca6c c0000201 0000000000000000   # WGPEER_A_ENDPOINT sockaddr_in AF_INET, port 51820 big-endian, 192.0.2.1
        0600 0500 1900 0000              #     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
        0800 0300 02000000               #     WGPEER_A_FLAGS WGPEER_F_REPLACE_ALLOWEDIPS
        2000 0980                        #     WGPEER_A_ALLOWEDIPS | NLA_F_NESTED, 32 bytes
          1c00 0080                      #       allowed IP 0 | NLA_F_NESTED, 28 bytes
            0600 0100 0200 0000          #         WGALLOWEDIP_A_FAMILY AF_INET
            0800 0200 64400002           #         WGALLOWEDIP_A_IPADDR 100.64.0.2
            0500 0300 20 000000          #         WGALLOWEDIP_A_CIDR_MASK 32, padded
  `)
  t.equal(m?.toString('hex'), want.toString('hex'))
})

t.test('SET_DEVICE: a removed peer carries its key and WGPEER_F_REMOVE_ME only; no key or port unless given', async (t) => {
  const [m] = encodeSetDevice({ ifname: 'wg0', peers: [{ publicKey: K3, remove: true, endpoint: { ip: '192.0.2.9', port: 1 }, allowedIps: [{ ip: '10.0.0.1', cidr: 32 }] }] })
  t.equal(m?.toString('hex'), h(`
    0800 0200 77673000                   # WGDEVICE_A_IFNAME "wg0\\0"
    3400 0880                            # WGDEVICE_A_PEERS, 52 bytes
      3000 0080                          #   peer 0, 48 bytes
        2400 0100 ${'33'.repeat(32)}     #     WGPEER_A_PUBLIC_KEY
        0800 0300 01000000               #     WGPEER_A_FLAGS WGPEER_F_REMOVE_ME
  `).toString('hex'))
  // A change of the key alone (the rotation's new device, before its peers).
  const [k] = encodeSetDevice({ ifname: 'wg0', privateKey: K1, peers: [] })
  t.equal(k?.toString('hex'), h(`0800 0200 77673000 2400 0300 ${'11'.repeat(32)}`).toString('hex'))
})

t.test('an IPv6 endpoint is a sockaddr_in6 (28 bytes, flowinfo before the address)', async (t) => {
  t.equal(sockaddr({ ip: '2001:db8::1', port: 51820 }).toString('hex'), h('0a00 ca6c 00000000 20010db8000000000000000000000001 00000000').toString('hex'))
  t.throws(() => sockaddr({ ip: 'nope', port: 1 }), /refusing/)
  t.throws(() => sockaddr({ ip: '192.0.2.1', port: 70000 }), /16-bit/)
})

t.test('many peers are split over several messages, the device flags only in the first', async (t) => {
  const peers = Array.from({ length: 600 }, (_, i) => ({
    publicKey: Buffer.alloc(32, i % 256), endpoint: { ip: '192.0.2.1', port: 51820 }, keepalive: 25, replaceAllowedIps: true,
    allowedIps: [{ ip: `100.64.${Math.floor(i / 250)}.${(i % 250) + 1}`, cidr: 32 }],
  }))
  const msgs = encodeSetDevice({ ifname: 'wg0', privateKey: K1, replacePeers: true, peers })
  t.ok(msgs.length >= 2)
  let count = 0
  msgs.forEach((m, i) => {
    const attrs = parseAttrs(m)
    t.equal(attrs[0]?.type, 2, 'every message names the device')
    t.equal(attrs.some((a) => a.type === 3 || a.type === 5), i === 0, 'key and flags only in the first message')
    const peersAttr = attrs.find((a) => a.type === 8)
    t.ok(peersAttr !== undefined && peersAttr.data.length <= MAX_PEERS_BYTES)
    count += parseAttrs(peersAttr!.data).length
  })
  t.equal(count, 600)
  t.throws(() => encodeSetDevice({ ifname: 'bad/name', peers: [] }), /interface name/)
  t.throws(() => encodeSetDevice({ ifname: 'wg0', privateKey: Buffer.alloc(31), peers: [] }), /31 bytes/)
})

t.test('GET_DEVICE and CTRL_CMD_GETFAMILY requests', async (t) => {
  t.equal(encodeGetDevice('wg0').toString('hex'), h('0800 0200 77673000').toString('hex'))
  t.equal(encodeGetFamily('wireguard').toString('hex'), h('0e00 0200 77697265677561726400 0000').toString('hex'))
  t.equal(decodeFamilyId(h('0600 0100 1500 0000  0e00 0200 776972656775617264000000')), 0x15)
  t.throws(() => decodeFamilyId(h('0e00 0200 776972656775617264000000')), /without a family id/)
})

/** A GET_DEVICE dump as the kernel writes it (attribute order of wireguard's netlink.c get_device_dump). */
const dumpFirst = h(`
  0800 0100 07000000                     # WGDEVICE_A_IFINDEX 7
  0800 0200 77673000                     # WGDEVICE_A_IFNAME "wg0"
  2400 0300 ${'11'.repeat(32)}           # WGDEVICE_A_PRIVATE_KEY
  2400 0400 ${'44'.repeat(32)}           # WGDEVICE_A_PUBLIC_KEY
  0600 0600 6cca 0000                    # WGDEVICE_A_LISTEN_PORT 51820
  0800 0700 00000000                     # WGDEVICE_A_FWMARK 0
  c000 0880                              # WGDEVICE_A_PEERS, 192 bytes
    bc00 0080                            #   peer 0, 188 bytes
      2400 0100 ${'22'.repeat(32)}       #     WGPEER_A_PUBLIC_KEY
      2400 0200 ${'00'.repeat(32)}       #     WGPEER_A_PRESHARED_KEY (none)
      1400 0600 00f1536500000000 0065cd1d00000000   # WGPEER_A_LAST_HANDSHAKE_TIME 1700000000 s, 500000000 ns
      0600 0500 1900 0000                #     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
      0c00 0800 e803000000000000         #     WGPEER_A_TX_BYTES 1000
      0c00 0700 d007000000000000         #     WGPEER_A_RX_BYTES 2000
      0800 0a00 01000000                 #     WGPEER_A_PROTOCOL_VERSION 1
      1400 0400 0200 ca6c c0000201 0000000000000000   # WGPEER_A_ENDPOINT 192.0.2.1:51820
      2000 0980                          #     WGPEER_A_ALLOWEDIPS
        1c00 0080                        #       0
          0600 0100 0200 0000
          0800 0200 64400002             #         100.64.0.2
          0500 0300 20 000000            #         /32
`)
/** The next message: the same peer continued (key and more allowed IPs), then a second peer that never shook hands. */
const dumpSecond = h(`
  0800 0200 77673000                     # WGDEVICE_A_IFNAME "wg0"
  a800 0880                              # WGDEVICE_A_PEERS, 168 bytes
    4800 0080                            #   peer 0 continued, 72 bytes
      2400 0100 ${'22'.repeat(32)}
      2000 0980
        1c00 0080
          0600 0100 0200 0000
          0800 0200 0a000000             #         10.0.0.0
          0500 0300 08 000000            #         /8
    5c00 0080                            #   peer 1, 92 bytes
      2400 0100 ${'33'.repeat(32)}
      1400 0600 ${'00'.repeat(16)}       #     never
      0600 0500 0000 0000
      0c00 0800 0000000000000000
      0c00 0700 0000000000000000
`)

t.test('GET_DEVICE answer: messages and continued peers are joined', async (t) => {
  const d = decodeGetDevice([dumpFirst, dumpSecond])
  t.equal(d.ifindex, 7)
  t.equal(d.ifname, 'wg0')
  t.ok(d.privateKey?.equals(K1))
  t.ok(d.publicKey?.equals(Buffer.alloc(32, 0x44)))
  t.equal(d.listenPort, 51820)
  t.equal(d.fwmark, 0)
  t.equal(d.peers.length, 2)
  const [a, b] = d.peers
  t.ok(a?.publicKey.equals(K2))
  t.same(a?.endpoint, { ip: '192.0.2.1', port: 51820 })
  t.equal(a?.keepalive, 25)
  t.equal(a?.lastHandshake, 1_700_000_000_500)
  t.equal(a?.txBytes, 1000)
  t.equal(a?.rxBytes, 2000)
  t.same(a?.allowedIps, [{ ip: '100.64.0.2', cidr: 32 }, { ip: '10.0.0.0', cidr: 8 }])
  t.ok(b?.publicKey.equals(K3))
  t.equal(b?.lastHandshake, 0)
  t.equal(b?.endpoint, undefined)
  t.same(b?.allowedIps, [])
})

t.test('a malformed answer is a KERNEL error, not a crash', async (t) => {
  t.throws(() => decodeGetDevice([h('ff00 0200 7767')]), { code: 'KERNEL' })
  t.throws(() => decodeGetDevice([h('0c00 0880 0800 0080 0400 0100')]), /32-byte public key/)
  t.same(decodeGetDevice([]).peers, [])
})
