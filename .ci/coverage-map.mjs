// tap --coverage-map (npm test, npm run test:coverage): the unit tests of the planners, the IPAM, the firewall
// and NAT (src/nat: planners, executors over a recording runner, backend choice, host ports), the IP
// module and the DNS records count toward those modules only; every other test runs without coverage
// (null), so the e2e and kernel tests (and the agents they start) cost nothing more. The thresholds
// CI enforces are the tap flags of the `test` and `test:coverage` scripts in package.json.
import { readdirSync } from 'node:fs'

const ts = (dir) => readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`)

/** The modules whose coverage is enforced. */
export const COVERED = [
  'src/bridge/plan.ts',
  ...ts('src/nat'),
  'src/vxlan/plan.ts',
  ...ts('src/ipam'),
  'src/dns/records.ts',
  'src/util/ip.ts',
]

/** Their unit tests (npm run test:coverage runs these). */
export const UNIT_TESTS = [
  'test/bridge/plan.test.ts',
  ...ts('test/nat').filter((f) => f.endsWith('.test.ts')),
  'test/vxlan/plan.test.ts',
  ...ts('test/ipam').filter((f) => f.endsWith('.test.ts')),
  'test/dns/records.test.ts',
  'test/util/ip.test.ts',
]

export default (test) => (UNIT_TESTS.includes(test) ? COVERED : null)

// `node .ci/coverage-map.mjs` prints the unit tests, for `npm run test:coverage`.
if (import.meta.url === `file://${process.argv[1]}`) console.log(UNIT_TESTS.join(' '))
