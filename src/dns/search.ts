/**
 * Search domains, answered at once ("autopath", after CoreDNS's plugin).
 *
 * A container's resolv.conf names search domains (the engine gives it the
 * host's `search` line, or dockerd's `--dns-search`). A stub resolver with
 * `ndots:1` (the default) asks for a short name `web` as `web.<first search
 * domain>` first, then each other search domain, and only then `web` itself; a
 * name with dots is asked as is first, then with each search domain. Each of
 * those questions that ferry cannot answer goes upstream: for a short name of
 * another container, one upstream round trip (NXDOMAIN) per search domain before
 * the question ferry does answer.
 *
 * So a question `NAME.<search domain>` where NAME is one of ferry's names in the
 * client's scope is answered here, at once, with NAME's records under the name
 * asked: a short name of another container never leaves the host, whatever the
 * client's ndots and search list order. The price: a real host called
 * `NAME.<search domain>` is hidden from the containers that see a container
 * NAME — which is what those containers get for `NAME` already.
 *
 * Pure: the search list as wire-key suffixes, and the stripping of a key.
 */
import { isEncodableName, normalizeName } from './records.js'
import { wireKey } from './wire.js'

/** At most this many search domains are used (glibc reads 6; musl and others more). */
export const MAX_SEARCH_DOMAINS = 32

export class SearchDomains {
  /** The domains used, normalized (lowercase, no trailing dot), each once, in order. */
  readonly domains: readonly string[]
  private readonly keys: ReadonlySet<string>

  /** Names that are not domain names, the root and repeats are left out. */
  constructor (domains: readonly string[]) {
    const out: string[] = []
    for (const d of domains) {
      const n = normalizeName(d)
      if (isEncodableName(n) && !out.includes(n)) out.push(n)
      if (out.length >= MAX_SEARCH_DOMAINS) break
    }
    this.domains = out
    this.keys = new Set(out.map(wireKey))
  }

  static readonly none = new SearchDomains([])

  get size (): number {
    return this.keys.size
  }

  /**
   * The wire keys `key` is a search expansion of: for each search domain it
   * ends with at a label boundary, the labels before it (never empty), the
   * shortest first.
   */
  stripped (key: string): string[] {
    if (this.keys.size === 0) return []
    const out: string[] = []
    let i = key.charCodeAt(0) + 1
    while (i < key.length) {
      if (this.keys.has(key.slice(i))) out.push(key.slice(0, i))
      i += key.charCodeAt(i) + 1
    }
    return out
  }

  /** The same list (the server rebuilds its answers only when the list changes). */
  same (other: SearchDomains): boolean {
    return this === other || (this.domains.length === other.domains.length && this.domains.every((d, i) => d === other.domains[i]))
  }
}

/** The search list of a resolv.conf: its last `search` or `domain` line wins, as in glibc. */
export function parseResolvSearch (text: string): string[] {
  let out: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim()
    const [kw, ...rest] = line.split(/\s+/)
    if (kw === 'search' || kw === 'domain') out = rest.filter((d) => d !== '')
  }
  return out
}
