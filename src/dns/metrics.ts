/**
 * Counters of the DNS server: one plain object, incremented in place on the hot
 * path, read by whoever exposes them (the agent's API, a Prometheus endpoint).
 */
import { type CacheCounters, newCacheCounters } from './cache.js'

export interface DnsMetrics extends CacheCounters {
  /** Every packet received (before rate limiting). */
  queries: number
  udp: number
  tcp: number
  /** Parsed queries by question type. */
  byType: { A: number, AAAA: number, PTR: number, other: number }
  /** Answered from ferry's records (including NODATA and truncated answers). */
  answered: number
  /** ...of which the name is ferry's but has no record of the asked type. */
  nodata: number
  /** Sent to an upstream resolver. */
  forwarded: number
  /** An upstream answered (any rcode). */
  upstreamAnswers: number
  upstreamTimeouts: number
  /** ICMP errors (ECONNREFUSED), send errors, TCP resets from upstreams. */
  upstreamErrors: number
  /** Times a query moved on to the next upstream. */
  upstreamRetries: number
  /** SERVFAIL because no upstream answered (or none is configured, or too many were in flight). */
  servfail: number
  /** Queries from addresses that are no ferry network's clients. */
  refused: number
  formerr: number
  notimp: number
  badvers: number
  /** Unparseable packets and responses sent to the server, ignored. */
  dropped: number
  rateLimited: number
  /** UDP answers sent empty with TC set. */
  truncated: number
  tcpConnections: number
  /** TCP connections closed at accept: the total cap was reached. */
  tcpRejected: number
  /** ...closed at accept: the source is no ferry network's client. */
  tcpRejectedNonClient: number
  /** ...closed at accept: the source has its cap of connections open. */
  tcpRejectedPerSource: number
  /** TCP connections dropped because their client did not read its answers (queued bytes past the cap). */
  tcpSlowReaders: number
  /** TCP connections dropped idle, or because a query's bytes did not all arrive in time. */
  tcpTimeouts: number
  /** TCP connections closed gracefully at their lifetime or query count. */
  tcpClosedAtLimit: number
  /** Upstream UDP answers with the wrong source, id or question (the query was asked again over TCP). */
  spoofedAnswers: number
  /** Bugs: a handler threw. Should stay 0. */
  internalErrors: number
}

export function newMetrics (): DnsMetrics {
  return {
    queries: 0, udp: 0, tcp: 0,
    byType: { A: 0, AAAA: 0, PTR: 0, other: 0 },
    answered: 0, nodata: 0, forwarded: 0,
    upstreamAnswers: 0, upstreamTimeouts: 0, upstreamErrors: 0, upstreamRetries: 0,
    servfail: 0, refused: 0, formerr: 0, notimp: 0, badvers: 0, dropped: 0,
    rateLimited: 0, truncated: 0, tcpConnections: 0, tcpRejected: 0, tcpRejectedNonClient: 0, tcpRejectedPerSource: 0,
    tcpSlowReaders: 0, tcpTimeouts: 0, tcpClosedAtLimit: 0, spoofedAnswers: 0, internalErrors: 0,
    ...newCacheCounters(),
  }
}
