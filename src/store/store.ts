/**
 * Crash-safe local state: a snapshot (`state.json`) plus an append-only journal
 * (`state.journal`). Callers mutate `state`, then await `commit(...paths)`, which
 * resolves once a write that includes their change is on disk.
 *
 * - `commit(['endpoints', id])` names what changed: one journal line with the
 *   current value at each path (or its deletion) is appended and fdatasync'd. Its
 *   cost depends on the size of the change, not of the state: publishing one more
 *   port on a host with a thousand endpoints costs what it costs with none.
 * - `commit()` names nothing: anything may have changed, so the whole state is
 *   written as a new snapshot (temp file, fsync, rename, fsync of the directory),
 *   and the journal starts over. Rare operations (networks, the runtime's records)
 *   use it; so does the store itself once the journal outgrows the snapshot.
 * - `touch(paths)` marks a change that rides with the next commit without waiting
 *   for a write of its own (informational fields, such as an endpoint's `joined`).
 * - Commits are serialized and coalesced: callers that arrive while a write is in
 *   flight share the next one.
 *
 * Journal lines are `<crc32 hex> <json>`; each carries a sequence number, and the
 * snapshot records the last one it includes. Opening replays the lines after the
 * snapshot's number and stops at the first torn or corrupt line (a crash during an
 * append that was never acknowledged), then compacts. With FERRY_STORE_VERIFY=1
 * (the test suites) every journaled commit is checked against the whole state, so
 * a change a caller forgot to name fails loudly instead of vanishing on restart.
 */
import { promises as fs, constants as fsc } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { crc32 } from 'node:zlib'
import { FerryError } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../model/types.js'
import type { ContainerRecord } from '../runtime/types.js'
import { dict, toDict } from '../util/dict.js'

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

/** The maps keyed by ids and names have no prototype (src/util/dict.ts): 'constructor' or '__proto__' is an ordinary key. */
export function emptyState (): State {
  return { version: STATE_VERSION, networks: dict(), endpoints: dict(), pools: dict(), containers: dict(), networkNames: dict() }
}

/** The state with its id-keyed maps made prototype-free (as read from a snapshot). */
function withDicts (s: State): State {
  return { ...s, networks: toDict(s.networks), endpoints: toDict(s.endpoints), pools: toDict(s.pools), containers: toDict(s.containers), networkNames: toDict(s.networkNames) }
}

/** Where a change is, from the top of the state: `['endpoints', id]`, `['pools', id, 'allocated', ip]`. */
export type StorePath = readonly string[]

export interface Store {
  readonly state: State
  /** Durable once resolved. With paths: only what they name changed; without: anything may have. */
  commit (...changed: StorePath[]): Promise<void>
  /** Mark a change that reaches the disk with the next commit. */
  touch (...changed: StorePath[]): void
}

/** One journaled change: the value now at `path`, or its deletion. */
export type JournalOp = ['set', StorePath, unknown] | ['del', StorePath]

interface JournalEntry { seq: number, ops: JournalOp[] }

/** The snapshot on disk: the state plus the last journal sequence number it includes. */
type Snapshot = State & { journalSeq?: number }

const SNAPSHOT = 'state.json'
const JOURNAL = 'state.journal'
/** The journal is folded into a new snapshot once it is this large and larger than the snapshot. */
const MIN_COMPACT_BYTES = 1 << 20

function valueAt (root: unknown, p: StorePath): unknown {
  let cur = root
  for (const key of p) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** Apply one journal operation to a plain JSON tree (missing parents are made for a set, ignored for a delete). */
export function applyOp (root: Record<string, unknown>, op: JournalOp): void {
  const p = op[1]
  if (p.length === 0) return
  let cur: Record<string, unknown> = root
  for (const key of p.slice(0, -1)) {
    let next = Object.hasOwn(cur, key) ? cur[key] : undefined
    if (next === null || typeof next !== 'object') {
      if (op[0] === 'del') return
      next = {}
      cur[key] = next
    }
    cur = next as Record<string, unknown>
  }
  const last = p[p.length - 1]!
  if (op[0] === 'del') delete cur[last]
  else cur[last] = op[2]
}

export function encodeEntry (e: JournalEntry): string {
  const json = JSON.stringify(e)
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`
}

/** The entries of a journal, up to the first line that is torn, corrupt or out of order. */
export function decodeJournal (text: string): { entries: JournalEntry[], validBytes: number, rest: number } {
  const entries: JournalEntry[] = []
  let pos = 0
  let lastSeq = -Infinity
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos)
    if (nl < 0) break
    const line = text.slice(pos, nl)
    const json = line.slice(9)
    if (line[8] !== ' ' || crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) break
    let e: JournalEntry
    try { e = JSON.parse(json) as JournalEntry } catch { break }
    if (!Number.isInteger(e.seq) || e.seq <= lastSeq || !Array.isArray(e.ops)) break
    lastSeq = e.seq
    entries.push(e)
    pos = nl + 1
  }
  return { entries, validBytes: Buffer.byteLength(text.slice(0, pos)), rest: text.length - pos }
}

/** The state as JSON gives it back (what a snapshot or a journal line holds). */
function plainCopy (state: State): State {
  return withDicts(JSON.parse(JSON.stringify(state)) as State)
}

/** Where two states differ, to two levels (`endpoints/<id>`), for the verify message. */
function differences (a: State, b: State): string[] {
  const out: string[] = []
  const x = a as unknown as Record<string, unknown>
  const y = b as unknown as Record<string, unknown>
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    const u = x[k]
    const v = y[k]
    if (isDeepStrictEqual(u, v)) continue
    if (u === null || v === null || typeof u !== 'object' || typeof v !== 'object') { out.push(k); continue }
    const uo = u as Record<string, unknown>
    const vo = v as Record<string, unknown>
    for (const j of new Set([...Object.keys(uo), ...Object.keys(vo)])) if (!isDeepStrictEqual(uo[j], vo[j])) out.push(`${k}/${j}`)
  }
  return out
}

function storeError (what: string, file: string, err: unknown): FerryError {
  return new FerryError('STORE', `cannot ${what} ${file}: ${(err as Error).message}`, { cause: err })
}

async function syncDir (dir: string): Promise<void> {
  const dh = await fs.open(dir, fsc.O_RDONLY)
  try { await dh.sync() } finally { await dh.close() }
}

async function readIfAny (file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw storeError('read state file', file, err)
  }
}

export class FileStore implements Store {
  readonly state: State
  private readonly dir: string
  private readonly file: string
  private readonly journalFile: string
  private journal: FileHandle | undefined
  private journalBytes = 0
  private snapshotBytes = 0
  private seq: number
  private chain: Promise<void> = Promise.resolve()
  private queued: Promise<void> | undefined
  /** Paths changed since the last write, keyed by their joined form. */
  private pending = new Map<string, StorePath>()
  /** A commit without paths (or a failed append) is pending: the next write is a snapshot. */
  private pendingFull = false
  /** FERRY_STORE_VERIFY: the state as the disk has it, to check every journaled commit against. */
  private shadow: State | undefined
  lastWriteMs = 0
  writes = 0
  journalWrites = 0
  snapshots = 0

  private constructor (dir: string, state: State, seq: number, verify: boolean) {
    this.dir = dir
    this.file = path.join(dir, SNAPSHOT)
    this.journalFile = path.join(dir, JOURNAL)
    this.state = state
    this.seq = seq
    if (verify) this.shadow = plainCopy(state)
  }

  static async open (dir: string, opts: { verify?: boolean } = {}): Promise<FileStore> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    const file = path.join(dir, SNAPSHOT)
    const journalFile = path.join(dir, JOURNAL)
    let state = emptyState()
    let seq = 0
    const text = await readIfAny(file)
    if (text !== undefined) {
      let parsed: Partial<Snapshot>
      try {
        parsed = JSON.parse(text) as Partial<Snapshot>
      } catch (err) {
        throw storeError('read state file', file, err)
      }
      if (parsed.version !== STATE_VERSION) {
        throw new FerryError('STORE', `state file ${file} has version ${String(parsed.version)}, this ferry reads version ${STATE_VERSION}`)
      }
      seq = typeof parsed.journalSeq === 'number' ? parsed.journalSeq : 0
      delete parsed.journalSeq
      state = withDicts({ ...emptyState(), ...parsed } as State)
    }
    const journal = await readIfAny(journalFile)
    let replayed = 0
    if (journal !== undefined) {
      const { entries } = decodeJournal(journal)
      for (const e of entries) {
        if (e.seq <= seq) continue // already in the snapshot (a crash between its rename and the journal's reset)
        for (const op of e.ops) applyOp(state as unknown as Record<string, unknown>, op)
        seq = e.seq
        replayed++
      }
    }
    // A temp file left by a crash mid-write is garbage: the rename never happened.
    await fs.rm(`${file}.tmp`, { force: true })
    const verify = opts.verify ?? process.env.FERRY_STORE_VERIFY === '1'
    const store = new FileStore(dir, state, seq, verify)
    // Start from a clean pair: everything in one snapshot, an empty journal.
    if (replayed > 0 || journal === undefined || journal.length > 0 || text === undefined) await store.commit()
    else {
      store.snapshotBytes = Buffer.byteLength(text)
      await store.openJournal(false)
    }
    return store
  }

  touch (...changed: StorePath[]): void {
    for (const p of changed) this.pending.set(p.join('\u0000'), p)
  }

  /** Resolves when the current state (including every change made before the call) is durable. */
  commit (...changed: StorePath[]): Promise<void> {
    if (changed.length === 0) this.pendingFull = true
    else this.touch(...changed)
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

  /** Close the journal (the agent's shutdown); later commits reopen it. */
  async close (): Promise<void> {
    await this.chain
    const j = this.journal
    this.journal = undefined
    await j?.close()
  }

  private async write (): Promise<void> {
    const t0 = performance.now()
    const full = this.pendingFull || this.journal === undefined ||
      (this.journalBytes > MIN_COMPACT_BYTES && this.journalBytes > this.snapshotBytes)
    const paths = [...this.pending.values()]
    this.pending = new Map()
    this.pendingFull = false
    if (full) await this.writeSnapshot()
    else if (paths.length > 0) await this.append(paths)
    this.writes++
    this.lastWriteMs = performance.now() - t0
  }

  private async append (paths: StorePath[]): Promise<void> {
    const ops: JournalOp[] = paths.map((p) => {
      const v = valueAt(this.state, p)
      return v === undefined ? ['del', p] : ['set', p, v]
    })
    const line = encodeEntry({ seq: this.seq + 1, ops })
    // Checked now, against the state the line was made from: callers may change more during the write.
    if (this.shadow !== undefined) this.verify(decodeJournal(line).entries[0]!.ops, paths)
    const bytes = Buffer.byteLength(line)
    try {
      await this.journal!.write(line)
      await this.journal!.datasync()
    } catch (err) {
      // Whatever part of the line reached the file would hide every later one: cut
      // it off, and make the next write a snapshot in any case.
      this.pendingFull = true
      await this.journal!.truncate(this.journalBytes).catch(() => undefined)
      throw storeError('append to state journal', this.journalFile, err)
    }
    this.seq++
    this.journalBytes += bytes
    this.journalWrites++
  }

  /**
   * FERRY_STORE_VERIFY: the last snapshot plus the journal, replayed as `open` would
   * (`ops` are decoded from the line about to be written), must give exactly the state.
   */
  private verify (ops: JournalOp[], paths: StorePath[]): void {
    for (const op of ops) applyOp(this.shadow as unknown as Record<string, unknown>, op)
    const want = plainCopy(this.state)
    if (isDeepStrictEqual(this.shadow, want)) return
    const shadow = this.shadow!
    this.shadow = want
    this.pendingFull = true
    const named = paths.map((p) => p.join('/')).join(', ')
    throw new FerryError('STORE', `store journal is missing a change: a commit named only ${named} but ${differences(shadow, want).join(', ')} changed too (a caller must name what it changes)`)
  }

  private async writeSnapshot (): Promise<void> {
    const tmp = `${this.file}.tmp`
    const seq = this.seq
    const data = JSON.stringify({ ...this.state, journalSeq: seq })
    try {
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600)
      try {
        await fh.writeFile(data)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fs.rename(tmp, this.file)
      await syncDir(this.dir)
    } catch (err) {
      throw storeError('write state file', this.file, err)
    }
    this.snapshotBytes = Buffer.byteLength(data)
    this.snapshots++
    if (this.shadow !== undefined) {
      // What this snapshot holds (the state may have changed during the write).
      const { journalSeq: _, ...written } = JSON.parse(data) as Snapshot
      this.shadow = withDicts(written)
    }
    // The snapshot holds everything up to seq: the journal starts over. Should this
    // fail, its old lines are skipped on the next open (their numbers are <= seq).
    await this.openJournal(true)
  }

  private async openJournal (reset: boolean): Promise<void> {
    try {
      if (this.journal === undefined) {
        this.journal = await fs.open(this.journalFile, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND, 0o600)
        await syncDir(this.dir)
      }
      if (reset) {
        await this.journal.truncate(0)
        await this.journal.datasync()
      }
      this.journalBytes = reset ? 0 : (await this.journal.stat()).size
    } catch (err) {
      const j = this.journal
      this.journal = undefined
      await j?.close().catch(() => undefined)
      throw storeError('open state journal', this.journalFile, err)
    }
  }
}

/** In-memory store for unit tests. */
export class MemoryStore implements Store {
  readonly state: State = emptyState()
  commits = 0
  touched: StorePath[] = []
  async commit (...changed: StorePath[]): Promise<void> {
    this.touched.push(...changed)
    this.commits++
  }

  touch (...changed: StorePath[]): void { this.touched.push(...changed) }
}
