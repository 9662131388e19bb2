/**
 * Crash-safe local state: one JSON document, written to a temp file, fsync'd,
 * renamed over the old one, and the directory fsync'd. Commits are serialized and
 * coalesced: callers mutate `state` and await `commit()`, which resolves once a
 * write that includes their change is on disk.
 */
import { promises as fs, constants as fsc } from 'node:fs'
import path from 'node:path'
import { FerryError } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../model/types.js'
import type { ContainerRecord } from '../runtime/types.js'

export const STATE_VERSION = 1

export interface State {
  version: number
  networks: Record<string, NetworkRecord>
  endpoints: Record<string, EndpointRecord>
  pools: Record<string, PoolRecord>
  /** This host's id in a cluster, made once and kept. */
  hostId?: string
  /** Namespaces attached by `ferry attach`, `ferry run` and the CNI plugin, by container name. */
  containers?: Record<string, ContainerRecord>
  /** Names of the networks ferry created itself (`ferry network create`, the default network), by id. */
  networkNames?: Record<string, string>
}

export function emptyState (): State {
  return { version: STATE_VERSION, networks: {}, endpoints: {}, pools: {} }
}

export interface Store {
  readonly state: State
  commit (): Promise<void>
}

export class FileStore implements Store {
  readonly state: State
  private readonly file: string
  private chain: Promise<void> = Promise.resolve()
  private queued: Promise<void> | undefined
  lastWriteMs = 0
  writes = 0

  private constructor (file: string, state: State) {
    this.file = file
    this.state = state
  }

  static async open (dir: string): Promise<FileStore> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    const file = path.join(dir, 'state.json')
    let state = emptyState()
    try {
      const text = await fs.readFile(file, 'utf8')
      const parsed = JSON.parse(text) as Partial<State>
      if (parsed.version !== STATE_VERSION) {
        throw new FerryError('STORE', `state file ${file} has version ${String(parsed.version)}, this ferry reads version ${STATE_VERSION}`)
      }
      state = { ...emptyState(), ...parsed } as State
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        if (err instanceof FerryError) throw err
        throw new FerryError('STORE', `cannot read state file ${file}: ${(err as Error).message}`, { cause: err })
      }
    }
    // A temp file left by a crash mid-write is garbage: the rename never happened.
    await fs.rm(`${file}.tmp`, { force: true })
    return new FileStore(file, state)
  }

  /** Resolves when the current state (including every change made before the call) is durable. */
  commit (): Promise<void> {
    // Callers that arrive before the queued write starts share it.
    if (this.queued) return this.queued
    const p = this.chain.then(() => {
      this.queued = undefined
      return this.write()
    })
    this.queued = p
    this.chain = p.catch(() => undefined)
    return p
  }

  private async write (): Promise<void> {
    const t0 = performance.now()
    const tmp = `${this.file}.tmp`
    const data = JSON.stringify(this.state)
    try {
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600)
      try {
        await fh.writeFile(data)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fs.rename(tmp, this.file)
      const dh = await fs.open(path.dirname(this.file), fsc.O_RDONLY)
      try { await dh.sync() } finally { await dh.close() }
    } catch (err) {
      throw new FerryError('STORE', `cannot write state file ${this.file}: ${(err as Error).message}`, { cause: err })
    }
    this.writes++
    this.lastWriteMs = performance.now() - t0
  }
}

/** In-memory store for unit tests. */
export class MemoryStore implements Store {
  readonly state: State = emptyState()
  commits = 0
  async commit (): Promise<void> { this.commits++ }
}
