/**
 * bin/ferry-cni: the CNI plugin process. Reads the environment and stdin, hands
 * the work to the ferry agent's admin API, prints the result (or the spec's error
 * JSON) on stdout and exits 0 (or 1). Nothing here touches the kernel except
 * CHECK's read of the interface (`nsenter --net=NETNS ip -j addr show dev IFNAME`, both families).
 */
import { execFile } from '../kernel/exec.js'
import { apiRequester } from '../runtime/client.js'
import { apiSocketFrom } from '../cli/client.js'
import { FerryError } from '../errors/errors.js'
import { errorResult, parseConfig, parseEnv, runCni, type AgentAttach, type AgentContainer, type CniDeps } from './plugin.js'

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString()
}

function configVersion (stdin: string): string {
  try { return parseConfig(stdin).cniVersion } catch { return '1.0.0' }
}

function socketOf (stdin: string): string | undefined {
  try { return parseConfig(stdin).apiSocket } catch { return undefined }
}

export async function main (): Promise<void> {
  let stdin = ''
  try {
    const env = parseEnv(process.env)
    stdin = env.command === 'VERSION' ? '' : await readStdin()
    const api = apiRequester(apiSocketFrom(socketOf(stdin)))
    const deps: CniDeps = {
      attach: (body) => api<AgentAttach>('POST', '/v1/containers', body),
      detach: async (name) => { await api('DELETE', `/v1/containers/${encodeURIComponent(name)}`) },
      get: async (name) => {
        try {
          return await api<AgentContainer>('GET', `/v1/containers/${encodeURIComponent(name)}`)
        } catch (err) {
          if (err instanceof FerryError && err.code === 'ENDPOINT_NOT_FOUND') return undefined
          throw err
        }
      },
      addressesIn: async (netns, ifname) => {
        const r = await execFile(['nsenter', `--net=${netns}`, '--', 'ip', '-j', 'addr', 'show', 'dev', ifname], { allowFailure: true, timeoutMs: 10_000 })
        if (r.code !== 0) return undefined
        const list = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string, prefixlen: number }> }>
        return (list[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`)
      },
    }
    const out = await runCni(env, stdin, deps)
    if (out !== '') process.stdout.write(out + '\n')
  } catch (err) {
    const { json } = errorResult(configVersion(stdin), err)
    process.stdout.write(JSON.stringify(json) + '\n')
    process.exitCode = 1
  }
}
