/** The agent's plugin and API sockets are root-only: mode 0600, owned by root. */
import t from 'tap'
import { statSync } from 'node:fs'
import { netns, uniqueName } from '../harness/netns.js'
import { startAgent } from '../harness/agent.js'

t.test('plugin and API sockets are 0600 and root-owned', async (t) => {
  const ns = netns(t, 'fys')
  const agent = await startAgent(t, { ns, pluginName: uniqueName('fys') })
  for (const [what, path] of [['plugin', agent.pluginSocket], ['API', agent.apiSocket]] as const) {
    const st = statSync(path)
    t.ok(st.isSocket(), `${what} socket is a socket`)
    t.equal((st.mode & 0o777).toString(8), '600', `${what} socket mode`)
    t.equal(st.uid, 0, `${what} socket owner`)
  }
})
