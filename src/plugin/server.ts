/**
 * The Docker remote plugin protocol over HTTP (fastify): Plugin.Activate and every
 * NetworkDriver.* and IpamDriver.* method. The engine sends no Content-Type, so
 * every body is read as text and parsed here; every route validates its body with
 * a JSON schema. NetworkDriver errors answer {"Err": …}; IpamDriver errors answer
 * {"Error": …} (and "Err" too, which the engine reads on a non-2xx status).
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { fastifyOptions } from '../util/http.js'
import { FerryError, httpStatus, toFerryError } from '../errors/errors.js'
import type { NetworkDriver } from '../driver/network.js'
import type { Ipam } from '../ipam/ipam.js'
import { schemas } from './wire.js'
import type {
  ConnectivityReq, CreateEndpointReq, CreateNetworkReq, EndpointReq, GwAllocCheckReq, JoinReq, NetworkReq,
  ReleaseAddressReq, ReleasePoolReq, RequestAddressReq, RequestPoolReq, PortMapWire, ExposedPortWire,
} from './wire.js'
import { own } from '../util/dict.js'
import { EXPOSED_KEY, IFNAME_KEY, MAC_KEY, PORTMAP_KEY, parseExposed, parsePortMap } from './ports.js'

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json'
export const REPLAY_WINDOW_MS = 30_000

export interface PluginDeps {
  driver: NetworkDriver
  ipam: Ipam
  log: Logger
  /** Called after each request with its method name, duration and outcome (metrics hook). */
  onCall?: (method: string, ms: number, error?: FerryError) => void
}

type Handler<B> = (body: B) => Promise<unknown> | unknown

function ipamRoute (url: string): boolean { return url.startsWith('/IpamDriver.') }

function describeValidation (err: FastifyError): string {
  const v = err.validation?.[0]
  if (!v) return err.message
  const where = (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.')
  return `invalid request: ${where ? `${where} ` : 'body '}${v.message ?? 'is invalid'}`
}

export function buildPluginServer (deps: PluginDeps): FastifyInstance {
  const app = Fastify(fastifyOptions(deps.log, 'plugin', 16 * 1024 * 1024))
  // The engine sends no Content-Type: take every body as text and parse it here.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim()
    if (text === '') { done(null, {}); return }
    try {
      done(null, JSON.parse(text))
    } catch {
      done(new FerryError('INVALID_REQUEST', 'the request body is not valid JSON'), undefined)
    }
  })

  let replayTimer: NodeJS.Timeout | undefined
  const endReplay = (): void => {
    if (replayTimer) { clearTimeout(replayTimer); replayTimer = undefined }
    deps.ipam.endReplay()
  }
  app.addHook('onClose', async () => { if (replayTimer) clearTimeout(replayTimer) })

  const send = (reply: FastifyReply, url: string, err: FerryError): FastifyReply => {
    const body: Record<string, string> = { Err: err.message }
    if (ipamRoute(url)) body.Error = err.message
    return reply.code(httpStatus(err.category)).type(PLUGIN_CONTENT_TYPE).send(body)
  }

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const ferr = error.validation
      ? new FerryError('INVALID_REQUEST', describeValidation(error), { cause: error })
      : error instanceof FerryError
        ? error
        : (error.statusCode !== undefined && error.statusCode < 500)
            ? new FerryError('INVALID_REQUEST', `invalid request: ${error.message}`, { cause: error })
            : toFerryError(error)
    const level = ferr.category === 'internal' ? 'error' : 'warn'
    request.log[level]({ err: ferr, method: request.url }, 'plugin call failed')
    deps.onCall?.(request.url.slice(1), 0, ferr)
    return send(reply, request.url, ferr)
  })
  app.setNotFoundHandler((request, reply) => {
    send(reply, request.url, new FerryError('UNKNOWN_METHOD', `ferry does not implement ${request.method} ${request.url}`))
  })

  const route = <B>(method: string, schema: object, handler: Handler<B>): void => {
    app.post(`/${method}`, { schema: { body: schema } }, async (req: FastifyRequest, reply: FastifyReply) => {
      const t0 = performance.now()
      const res = await handler(req.body as B)
      const ms = performance.now() - t0
      req.log.debug({ method, ms: Math.round(ms * 1000) / 1000 }, 'plugin call')
      deps.onCall?.(method, ms)
      return reply.type(PLUGIN_CONTENT_TYPE).send(res ?? {})
    })
  }

  const { driver, ipam } = deps
  /** An option the engine sent (own keys only: never a member of Object.prototype). */
  const opt = (o: Record<string, unknown> | null | undefined, k: string): unknown => own(o, k)

  /** A new engine process (or a new agent for a running one): it may now replay what it holds (RequiresRequestReplay). */
  const beginReplay = (): void => {
    ipam.beginReplay()
    if (replayTimer) clearTimeout(replayTimer)
    replayTimer = setTimeout(endReplay, REPLAY_WINDOW_MS)
    replayTimer.unref()
  }
  // A plugin found in /run/docker/plugins is activated (Plugin.Activate) before anything else. A managed
  // plugin never is: its config.json declares what it implements, and the first call of a starting
  // engine is GetCapabilities, once per driver, before the replay (libnetwork's ipams/remote asks
  // IpamDriver.GetCapabilities when it registers the driver, then reservePools replays RequestPool).
  route('Plugin.Activate', schemas.Empty, () => {
    beginReplay()
    return { Implements: ['NetworkDriver', 'IpamDriver'] }
  })

  // ---- NetworkDriver ----
  /**
   * The flags and -o options of a network, from CreateNetwork's or GwAllocCheck's Options.
   * Engines since 28 send enable_ipv4 (false: `--ipv4=false`, an IPv6-only network, which
   * then has no IPv4Data; Docker 20.10 never sends it and always asks for an IPv4 pool).
   */
  const networkFlags = (o: Record<string, unknown> | null | undefined, ipv6Data = 0): { generic: Record<string, unknown>, internal: boolean, ipv6: boolean, ipv4: boolean } => {
    const generic = opt(o, 'com.docker.network.generic')
    return {
      generic: (generic && typeof generic === 'object') ? generic as Record<string, unknown> : {},
      internal: opt(o, 'com.docker.network.internal') === true,
      ipv6: opt(o, 'com.docker.network.enable_ipv6') === true || ipv6Data > 0,
      ipv4: opt(o, 'com.docker.network.enable_ipv4') !== false,
    }
  }

  // GwAllocChecker (Docker 28+): the engine asks before it allocates anything, so ferry refuses a
  // network it cannot make here, with nothing to roll back. ferry never skips the gateway: the
  // bridge holds it and Join returns it as the containers' default route.
  route('NetworkDriver.GetCapabilities', schemas.Empty, () => ({ Scope: 'local', ConnectivityScope: 'global', GwAllocChecker: true }))
  route<GwAllocCheckReq>('NetworkDriver.GwAllocCheck', schemas.GwAllocCheck, (b) => {
    driver.checkNetwork(networkFlags(b.Options))
    return { SkipIPv4: false, SkipIPv6: false }
  })
  route<CreateNetworkReq>('NetworkDriver.CreateNetwork', schemas.CreateNetwork, async (b) => {
    endReplay()
    const v6 = b.IPv6Data ?? []
    const flags = networkFlags(b.Options, v6.length)
    const v4 = b.IPv4Data ?? []
    const first = v4[0]
    if (!first && v6.length === 0) throw new FerryError('INVALID_REQUEST', 'CreateNetwork carries no address pool (neither IPv4Data nor IPv6Data): create ferry networks with --ipam-driver ferry')
    const first6 = v6[0]
    await driver.createNetwork({
      id: b.NetworkID,
      ...flags,
      // enable_ipv4 false (Docker 28's --ipv4=false): an IPv6-only network, with IPv6Data and no IPv4Data.
      extraIpv4Data: Math.max(0, v4.length - 1),
      ...(first === undefined ? {} : { subnet: first.Pool, gatewayCidr: first.Gateway ?? '', auxAddresses: Object.values(first.AuxAddresses ?? {}) }),
      ...(first6 === undefined ? {} : { subnet6: first6.Pool, gatewayCidr6: first6.Gateway ?? '', extraIpv6Data: v6.length - 1, auxAddresses6: Object.values(first6.AuxAddresses ?? {}) }),
    })
    return {}
  })
  route<NetworkReq>('NetworkDriver.DeleteNetwork', schemas.Network, async (b) => { endReplay(); await driver.deleteNetwork(b.NetworkID); return {} })
  route<CreateEndpointReq>('NetworkDriver.CreateEndpoint', schemas.CreateEndpoint, async (b) => {
    endReplay()
    const iface = b.Interface ?? {}
    if (opt(b.Options, IFNAME_KEY) !== undefined) {
      // The remote driver protocol cannot carry it (moby drivers/remote/driver.go passes no DstName).
      throw new FerryError('UNSUPPORTED', `endpoint option ${IFNAME_KEY} is not supported: the engine does not pass interface names to remote drivers, so ferry's interfaces are named eth<N>`)
    }
    let mac = iface.MacAddress ?? ''
    const macOpt = opt(b.Options, MAC_KEY)
    if (mac === '' && typeof macOpt === 'string' && macOpt !== '') {
      // The engine sends the option base64-encoded (observed: "AkIKewAz").
      mac = [...Buffer.from(macOpt, 'base64')].map((x) => x.toString(16).padStart(2, '0')).join(':')
    }
    const res = await driver.createEndpoint({
      networkId: b.NetworkID,
      endpointId: b.EndpointID,
      // Each family the network has must come with its address (the driver checks: an IPv6-only network's endpoint has AddressIPv6 alone).
      ...(iface.Address ? { addressCidr: iface.Address } : {}),
      // The engine sets the IPv6 address on the interface itself: it is never answered back.
      ...(iface.AddressIPv6 ? { addressCidr6: iface.AddressIPv6 } : {}),
      mac,
      portRequests: parsePortMap(opt(b.Options, PORTMAP_KEY) as PortMapWire[] | undefined),
      exposed: parseExposed(opt(b.Options, EXPOSED_KEY) as ExposedPortWire[] | undefined),
    })
    // Return an Interface only with what the engine did not set itself.
    return { Interface: res.mac ? { MacAddress: res.mac } : {} }
  })
  route<EndpointReq>('NetworkDriver.DeleteEndpoint', schemas.Endpoint, async (b) => { endReplay(); await driver.deleteEndpoint(b.NetworkID, b.EndpointID); return {} })
  route<EndpointReq>('NetworkDriver.EndpointOperInfo', schemas.Endpoint, (b) => ({ Value: driver.operInfo(b.NetworkID, b.EndpointID) }))
  route<JoinReq>('NetworkDriver.Join', schemas.Join, async (b) => {
    const r = await driver.join(b.NetworkID, b.EndpointID, b.SandboxKey)
    const res: Record<string, unknown> = { InterfaceName: { SrcName: r.srcName, DstPrefix: 'eth' } }
    if (r.gateway) res.Gateway = r.gateway
    if (r.gateway6) res.GatewayIPv6 = r.gateway6
    if (r.disableGatewayService) res.DisableGatewayService = true
    return res
  })
  route<EndpointReq>('NetworkDriver.Leave', schemas.Endpoint, async (b) => { endReplay(); await driver.leave(b.NetworkID, b.EndpointID); return {} })
  route<ConnectivityReq>('NetworkDriver.ProgramExternalConnectivity', schemas.Connectivity, async (b) => {
    const pm = opt(b.Options, PORTMAP_KEY) as PortMapWire[] | undefined
    await driver.programExternalConnectivity(b.NetworkID, b.EndpointID, pm === undefined ? undefined : parsePortMap(pm))
    return {}
  })
  route<EndpointReq>('NetworkDriver.RevokeExternalConnectivity', schemas.Endpoint, async (b) => {
    endReplay()
    await driver.revokeExternalConnectivity(b.NetworkID, b.EndpointID)
    return {}
  })
  // Swarm-only calls: never sent outside swarm (observed); answered harmlessly. The engine
  // registers a network allocator only for a driver of Scope global (moby drivers/remote/driver.go:67),
  // and ferry's is local, so AllocateNetwork and FreeNetwork are not sent to it by any engine.
  route('NetworkDriver.DiscoverNew', schemas.Discover, () => ({}))
  route('NetworkDriver.DiscoverDelete', schemas.Discover, () => ({}))
  route('NetworkDriver.AllocateNetwork', schemas.AllocateNetwork, () => { throw new FerryError('UNSUPPORTED', 'ferry does not take part in swarm network allocation') })
  route('NetworkDriver.FreeNetwork', schemas.Network, () => ({}))

  // ---- IpamDriver ----
  route('IpamDriver.GetCapabilities', schemas.Empty, () => { beginReplay(); return ipam.capabilities() })
  route('IpamDriver.GetDefaultAddressSpaces', schemas.Empty, () => ipam.addressSpaces())
  route<RequestPoolReq>('IpamDriver.RequestPool', schemas.RequestPool, async (b) => {
    const r = await ipam.requestPool({
      addressSpace: b.AddressSpace ?? '', pool: b.Pool ?? '', subPool: b.SubPool ?? '', options: b.Options ?? {}, v6: b.V6 ?? false,
    })
    return { PoolID: r.poolId, Pool: r.pool, Data: r.data }
  })
  route<ReleasePoolReq>('IpamDriver.ReleasePool', schemas.ReleasePool, async (b) => { await ipam.releasePool(b.PoolID); return {} })
  route<RequestAddressReq>('IpamDriver.RequestAddress', schemas.RequestAddress, async (b) => {
    const overlay = driver.overlayOfPool(b.PoolID)
    const isGateway = b.Options?.RequestAddressType === 'com.docker.network.gateway'
    if (overlay !== undefined && !isGateway) {
      // An overlay's endpoint addresses are allocated cluster-wide, atomically in Redis.
      return { Address: await driver.requestOverlayAddress(b.PoolID, overlay, b.Address ?? '', ipam.isReplaying()), Data: {} }
    }
    const r = await ipam.requestAddress({ poolId: b.PoolID, address: b.Address ?? '', options: b.Options ?? null })
    return { Address: r.address, Data: r.data }
  })
  route<ReleaseAddressReq>('IpamDriver.ReleaseAddress', schemas.ReleaseAddress, async (b) => {
    const overlay = driver.overlayOfPool(b.PoolID)
    // The gateway is held by the overlay itself ('@gateway'), so releasing it here is a no-op there.
    if (overlay !== undefined) await driver.releaseOverlayAddress(overlay, b.Address.split('/')[0]!)
    await ipam.releaseAddress(b.PoolID, b.Address)
    return {}
  })

  return app
}
