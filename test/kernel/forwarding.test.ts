/** IPv6 forwarding: pure, over an in-memory /proc/sys (never the real one). */
import t from 'tap'
import { enableIpv6Forwarding, type ForwardingDeps } from '../../src/kernel/forwarding.js'
import { sysctlSegments, type SysctlKey } from '../../src/kernel/sysctl.js'

function fake (values: Record<string, string>): ForwardingDeps & { warnings: Array<{ obj: object, msg: string }>, values: Map<string, string> } {
  const m = new Map(Object.entries(values))
  const key = (k: SysctlKey) => sysctlSegments(k).join('.')
  const warnings: Array<{ obj: object, msg: string }> = []
  return {
    values: m,
    warnings,
    read: async (k) => { const v = m.get(key(k)); if (v === undefined) throw new Error('ENOENT'); return v },
    write: async (k, v) => { m.set(key(k), v) },
    interfaces: async () => ['all', 'default', 'lo', 'eth0', 'eth1', 'fy-1'],
    warn: (obj, msg) => { warnings.push({ obj, msg }) },
  }
}

t.test('turned on once, naming the interfaces that then ignore router advertisements', async (t) => {
  const f = fake({
    'net.ipv6.conf.all.forwarding': '0', 'net.ipv6.conf.lo.accept_ra': '1', 'net.ipv6.conf.eth0.accept_ra': '1',
    'net.ipv6.conf.eth1.accept_ra': '2', 'net.ipv6.conf.fy-1.accept_ra': '0',
  })
  t.equal(await enableIpv6Forwarding(f), true)
  t.equal(f.values.get('net.ipv6.conf.all.forwarding'), '1')
  t.same(f.warnings.map((w) => w.obj), [{ interfaces: ['eth0'] }], 'accept_ra=2 keeps accepting; lo and 0 do not matter')
  t.match(f.warnings[0]?.msg, /eth0 had accept_ra=1 and now ignore router advertisements; set net\.ipv6\.conf\.<interface>\.accept_ra=2/)
  t.equal(await enableIpv6Forwarding(f), false, 'already on: nothing written, no warning')
  t.equal(f.warnings.length, 1)
})

t.test('no warning when no interface depends on router advertisements', async (t) => {
  const f = fake({ 'net.ipv6.conf.all.forwarding': '0' })
  t.equal(await enableIpv6Forwarding(f), true)
  t.same(f.warnings, [])
})
