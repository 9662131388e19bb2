import t from 'tap'
import { planRules, CHAIN } from '../../src/nat/plan.js'

t.test('every isolation drop comes before any way out', async (t) => {
  const nets = ['a', 'b', 'c'].map((x, i) => ({
    id: x.repeat(64), bridge: `fy-${x}`, subnet: `10.${i}.0.0/24`, gateway: `10.${i}.0.1`, icc: true, masquerade: true, internal: false,
  }))
  const rules = planRules({ networks: nets, endpoints: [] }).tables.filter[CHAIN.forward]!.rules
  const lastDrop = Math.max(...rules.map((r, i) => (r.includes('ferry:isolate') ? i : -1)))
  const firstOut = rules.findIndex((r) => r.includes('ferry:out'))
  t.ok(lastDrop >= 0 && firstOut > lastDrop, 'isolation before egress accepts')
})
