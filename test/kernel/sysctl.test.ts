/**
 * sysctl access. Writes happen only inside a test namespace, through the
 * nsnode harness running dist/kernel/sysctl.js (build first).
 */
import t from 'tap'
import { netns, nsExec, sh } from '../harness/netns.js'
import { nsNode } from '../harness/nsnode.js'
import { readSysctl, sysctlExists, sysctlPath } from '../../src/kernel/sysctl.js'
import type * as Sysctl from '../../src/kernel/sysctl.js'

t.test('key forms', async (t) => {
  t.equal(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward')
  t.equal(sysctlPath('net/ipv4/conf/br0.5/route_localnet'), '/proc/sys/net/ipv4/conf/br0.5/route_localnet', 'slashes keep dots')
  t.equal(sysctlPath(['net', 'ipv4', 'conf', 'br0.5', 'route_localnet']), '/proc/sys/net/ipv4/conf/br0.5/route_localnet')
  for (const bad of ['', 'net..ipv4', 'net/../../etc/passwd', ['net', '..', 'x'], ['net', 'a/b'], []]) {
    t.throws(() => sysctlPath(bad), { code: 'INVALID_REQUEST' }, JSON.stringify(bad))
  }
})

t.test('reads (read-only, any namespace)', async (t) => {
  t.equal(await readSysctl('kernel.ostype'), 'Linux', 'value without the newline')
  await t.rejects(readSysctl('net.ipv4.no_such_key'), { code: 'KERNEL', message: 'cannot read sysctl net.ipv4.no_such_key: No such file or directory' })
  t.equal(await sysctlExists('net.ipv4'), true, 'a directory of sysctls')
  t.equal(await sysctlExists('kernel.ostype'), true, 'a sysctl')
  t.equal(await sysctlExists('net.ipv4.no_such_key'), false)
})

t.test('writes inside a namespace', async (t) => {
  const ns = netns(t)
  sh(['ip', '-n', ns, 'link', 'add', 'fy.5', 'type', 'bridge'])
  const s = await nsNode<typeof Sysctl>(t, ns, { module: 'dist/kernel/sysctl.js' })
  t.equal(await s.call('readSysctl', ['net.ipv4.ip_forward']), '0')
  await s.call('writeSysctl', ['net.ipv4.ip_forward', '1'])
  t.equal(nsExec(ns, ['cat', '/proc/sys/net/ipv4/ip_forward']).trim(), '1')
  t.equal(await s.call('readSysctl', ['net.ipv4.ip_forward']), '1')

  await s.call('writeSysctl', [['net', 'ipv4', 'conf', 'fy.5', 'route_localnet'], '1'])
  t.equal(nsExec(ns, ['cat', '/proc/sys/net/ipv4/conf/fy.5/route_localnet']).trim(), '1', 'array form, dotted interface')
  t.equal(await s.call('readSysctl', ['net/ipv4/conf/fy.5/route_localnet']), '1', 'slashed form')

  await t.rejects(s.call('writeSysctl', ['net.ipv4.ip_forward', 'abc']), { code: 'KERNEL', message: 'cannot write sysctl net.ipv4.ip_forward=abc: Invalid argument' })
  await t.rejects(s.call('writeSysctl', ['net.ipv4.conf.nope.forwarding', '1']), { code: 'KERNEL', message: /^cannot write sysctl net\.ipv4\.conf\.nope\.forwarding=1: No such file or directory$/ })
})
