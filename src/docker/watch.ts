/**
 * Learns container names, network aliases and links from the engine, since the
 * driver protocol carries none: a full read at start and after every reconnect,
 * then the engine's event stream (container start/die/destroy/rename, network
 * connect/disconnect) drives re-inspection of just that container. Emits
 * 'change' when what it knows changes. Never throws: without the engine, it
 * knows nothing and keeps retrying.
 */
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { Logger } from 'pino'
import { EngineClient, parseDockerHost } from './client.js'

export interface ContainerNames {
  containerId: string
  /** Without the leading slash. */
  name: string
  /** Per endpoint id: the network aliases on that network (short id included). */
  endpoints: Map<string, { networkId: string, aliases: string[] }>
  /** --link targets: container name -> alias. */
  links: Array<{ target: string, alias: string }>
}

interface InspectWire {
  Id: string
  Name: string
  HostConfig?: { Links?: string[] | null }
  NetworkSettings?: { Networks?: Record<string, { NetworkID?: string, EndpointID?: string, Aliases?: string[] | null }> | null }
}

/** "/db:/web/database" -> { target: 'db', alias: 'database' } */
export function parseLink (spec: string): { target: string, alias: string } | undefined {
  const m = /^\/?([^:]+):\/?(?:[^/]+\/)?([^/]+)$/.exec(spec)
  return m ? { target: m[1]!, alias: m[2]! } : undefined
}

export function namesFromInspect (c: InspectWire): ContainerNames {
  const endpoints = new Map<string, { networkId: string, aliases: string[] }>()
  for (const n of Object.values(c.NetworkSettings?.Networks ?? {})) {
    if (!n.EndpointID || !n.NetworkID) continue
    const aliases = new Set([...(n.Aliases ?? []), c.Id.slice(0, 12)])
    endpoints.set(n.EndpointID, { networkId: n.NetworkID, aliases: [...aliases] })
  }
  const links = (c.HostConfig?.Links ?? []).map(parseLink).filter((l): l is { target: string, alias: string } => l !== undefined)
  return { containerId: c.Id, name: c.Name.replace(/^\//, ''), endpoints, links }
}

export class EngineWatcher extends EventEmitter {
  private readonly containers = new Map<string, ContainerNames>()
  private req: http.ClientRequest | undefined
  private retry: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly dockerHost: string, private readonly engine: EngineClient, private readonly log: Logger) { super() }

  start (): void { void this.connect() }

  stop (): void {
    this.stopped = true
    if (this.retry) clearTimeout(this.retry)
    this.req?.destroy()
  }

  all (): ContainerNames[] { return [...this.containers.values()] }

  /** Re-read every container (at start and after a reconnect of the event stream). */
  async refreshAll (): Promise<void> {
    const list = await this.engine.get<Array<{ Id: string }>>('/containers/json')
    const seen = new Set<string>()
    for (const c of list) {
      seen.add(c.Id)
      await this.refresh(c.Id)
    }
    for (const id of [...this.containers.keys()]) if (!seen.has(id)) this.containers.delete(id)
    this.emit('change')
  }

  async refresh (id: string): Promise<void> {
    try {
      const c = await this.engine.get<InspectWire>(`/containers/${encodeURIComponent(id)}/json`)
      this.containers.set(c.Id, namesFromInspect(c))
    } catch {
      this.containers.delete(id)
    }
  }

  private async connect (): Promise<void> {
    if (this.stopped) return
    const target = parseDockerHost(this.dockerHost)
    const filters = encodeURIComponent(JSON.stringify({ type: ['container', 'network'] }))
    const req = http.request({ ...target, path: `/v1.41/events?filters=${filters}`, method: 'GET' }, (res) => {
      if (res.statusCode !== 200) { res.resume(); this.again(new Error(`engine answered ${res.statusCode}`)); return }
      void this.refreshAll().catch((err: unknown) => this.log.debug({ err }, 'reading containers failed'))
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (line.trim() !== '') this.onEvent(line)
        }
      })
      res.on('end', () => this.again(new Error('the event stream ended')))
      res.on('error', (err) => this.again(err))
    })
    req.on('error', (err) => this.again(err))
    req.end()
    this.req = req
  }

  private again (err: Error): void {
    if (this.stopped || this.retry) return
    this.log.debug({ err: err.message }, 'engine event stream lost; retrying')
    this.retry = setTimeout(() => { this.retry = undefined; void this.connect() }, 1000)
    this.retry.unref()
  }

  private onEvent (line: string): void {
    let ev: { Type?: string, Action?: string, Actor?: { ID?: string, Attributes?: Record<string, string> } }
    try { ev = JSON.parse(line) } catch { return }
    const id = ev.Type === 'network' ? ev.Actor?.Attributes?.container : ev.Actor?.ID
    if (!id) return
    const action = ev.Action ?? ''
    if (ev.Type === 'container' && !['start', 'die', 'destroy', 'rename', 'restart'].includes(action)) return
    if (ev.Type === 'network' && !['connect', 'disconnect'].includes(action)) return
    const done = action === 'destroy'
      ? Promise.resolve(this.containers.delete(id))
      : this.refresh(id)
    void done.then(() => this.emit('change'))
  }
}
