/**
 * The Lua scripts that make every cluster change one atomic Redis command
 * (EVALSHA). They mirror MemoryCluster (test/harness/cluster-memory.ts) step by step.
 * Each script gets the key prefix as ARGV[1] (default `ferry:`); keys:
 *
 *   <p>rev                    STRING  global revision: seeded from the server clock in µs when
 *                                     created (so it never goes back, even after a restart that
 *                                     lost the data), INCR per change, deleted when nothing is left
 *   <p>events                 channel every change as JSON {rev, kind, …}
 *   <p>log                    LIST    the last CHANGE_LOG_LENGTH of those messages, oldest first (one per
 *                                     revision, without gaps: the last one is the revision's), so that a host
 *                                     back after a short outage (a failover, a restart) reads what it missed
 *                                     instead of everything (ClusterBackend.changesSince); deleted with rev
 *   <p>hosts                  ZSET    host id -> expiry (ms, server clock)
 *   <p>host:<h>               HASH    vtep version lastHeartbeat registeredAt, and `features` ("<ms> <entry>": the record
 *                                     features the host understands, src/cluster/features.ts; absent for older versions)
 *   <p>host:<h>:eps           SET     "<overlay>|<endpoint id>" the host published
 *   <p>host:<h>:addrs         SET     "<overlay>|<ip>" the host holds
 *   <p>host:<h>:overlays      SET     overlays the host uses
 *   <p>host:<h>:vtep2         STRING  a dual-stack host's second VTEP record, JSON {hostId, vtep, sig?} (apart from
 *                                     the host hash, whose fields older versions check), written by the heartbeat
 *   <p>vteps                  channel {hostId, record} ('' = none) when a host's second VTEP record is set, just
 *                                     before its host-up change (older versions do not subscribe to it)
 *   <p>overlays               SET     overlay names
 *   <p>overlay:<o>            HASH    name subnet gateway vni net prefix createdBy createdAt cursor, and for a
 *                                     dual-stack overlay subnet6 gateway6 net6 (its 8 groups, "a,b,…") prefix6 cursor6
 *   <p>overlay:<o>:hosts      SET     hosts that use the overlay
 *   <p>overlay:<o>:addrs      HASH    ip -> owner host id ('@gateway' for the gateways), IPv4 and IPv6 alike
 *   <p>overlay:<o>:eps        HASH    endpoint id -> JSON {endpointId, ip, ip6?, mac, hostId, vtep, names?, sig?}
 *   <p>overlay:<o>:claims     HASH    ip -> the endpoint id that published it first (publish refuses a second one), both families
 *   <p>vnis                   HASH    vni -> overlay
 *   <p>vnicursor              STRING  the last VNI handed out
 *
 * Host keys (<p>host:<h> and its sets) expire a few TTLs after the host's last
 * heartbeat, should no other host reap it. `sig` fields (host and overlay
 * hashes, endpoint JSON) hold the --cluster-key MAC made by the writing host;
 * scripts store and pass them on, never check them (the key never reaches Redis).
 *
 * Everything read back is data anyone with write access to Redis may have
 * forged: scripts decode stored JSON with pcall and skip what does not parse,
 * so a bad entry cannot make a script fail for everyone.
 *
 * Scripts validate before they write (a Lua error does not undo earlier writes)
 * and raise errors as `CODE message`, CODE being a ferry ErrorCode. Scripts
 * touch keys they compute, so they need a standalone Redis (or a Sentinel
 * master), not Redis Cluster.
 */
import { createHash } from 'node:crypto'

export interface LuaScript { name: string, source: string, sha: string }

/**
 * Changes kept in the `log` list: what a host may miss and still catch up without a full read. At
 * ~300 bytes a message, about 300 KiB of Redis memory whatever the size of the cluster.
 */
export const CHANGE_LOG_LENGTH = 1000

const PRELUDE = `
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fail(code, msg) error({ err = code .. ' ' .. msg }) end
local function fmt(n) return string.format('%d', n) end
local function okey(o) return P .. 'overlay:' .. o end
local function hkey(h) return P .. 'host:' .. h end
local function split(m)
  local bar = string.find(m, '|', 1, true)
  if not bar then return nil, nil end
  return string.sub(m, 1, bar - 1), string.sub(m, bar + 1)
end
local function dec(s)
  if type(s) ~= 'string' then return nil end
  local ok, v = pcall(cjson.decode, s)
  if ok and type(v) == 'table' then return v end
  return nil
end
local function field(s, name)
  local e = dec(s)
  if e and type(e[name]) == 'string' then return e[name] end
  return nil
end
local function ip2int(ip)
  local a, b, c, d = string.match(ip, '^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
  return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end
local function int2ip(n)
  local d = n % 256
  n = math.floor(n / 256)
  local c = n % 256
  n = math.floor(n / 256)
  local b = n % 256
  local a = math.floor(n / 256)
  return fmt(a) .. '.' .. fmt(b) .. '.' .. fmt(c) .. '.' .. fmt(d)
end
local function v6groups(csv)
  local g = {}
  for x in string.gmatch(csv or '', '%d+') do g[#g + 1] = tonumber(x) end
  return g
end
-- RFC 5952 text of 8 groups: lower-case hex, the longest run (2+) of zero groups as '::'.
local function v6fmt(g)
  local bs, bl, cs, cl = 0, 0, 0, 0
  for i = 1, 8 do
    if g[i] == 0 then
      if cl == 0 then cs = i end
      cl = cl + 1
      if cl > bl then bs, bl = cs, cl end
    else
      cl = 0
    end
  end
  local head, tail = {}, {}
  if bl < 2 then bs, bl = 9, 0 end
  for j = 1, bs - 1 do head[#head + 1] = string.format('%x', g[j]) end
  for j = bs + bl, 8 do tail[#tail + 1] = string.format('%x', g[j]) end
  if bl == 0 then return table.concat(head, ':') end
  return table.concat(head, ':') .. '::' .. table.concat(tail, ':')
end
-- The address n (below 2^32) after the network net: it fits the last two groups (subnets are /48 to /120).
local function v6add(net, n)
  local g = {}
  for i = 1, 8 do g[i] = net[i] or 0 end
  local low = g[7] * 65536 + g[8] + n
  g[7] = math.floor(low / 65536) % 65536
  g[8] = low % 65536
  return v6fmt(g)
end
-- Do two IPv6 prefixes (groups, length) overlap? Their first min(length) bits agree.
local function v6overlap(a, pa, b, pb)
  local p = math.min(pa, pb)
  for i = 1, 8 do
    local bits = math.min(16, p - 16 * (i - 1))
    if bits <= 0 then return true end
    local d = 2 ^ (16 - bits)
    if math.floor((a[i] or 0) / d) ~= math.floor((b[i] or 0) / d) then return false end
  end
  return true
end
local function bump(body)
  local rk = P .. 'rev'
  if redis.call('EXISTS', rk) == 0 then redis.call('SET', rk, fmt(now_ms() * 1000)) end
  local rev = redis.call('INCR', rk)
  local msg = '{"rev":' .. fmt(rev) .. ',' .. body .. '}'
  redis.call('PUBLISH', P .. 'events', msg)
  redis.call('RPUSH', P .. 'log', msg)
  redis.call('LTRIM', P .. 'log', -${CHANGE_LOG_LENGTH}, -1)
  return rev
end
local function cleanup_if_empty()
  if redis.call('ZCARD', P .. 'hosts') == 0 and redis.call('SCARD', P .. 'overlays') == 0 then
    redis.call('DEL', P .. 'rev', P .. 'vnicursor', P .. 'log')
  end
end
local function join(h, o)
  redis.call('SADD', okey(o) .. ':hosts', h)
  redis.call('SADD', hkey(h) .. ':overlays', o)
end
local function delete_overlay(o)
  local ok = okey(o)
  local eps = redis.call('HGETALL', ok .. ':eps')
  for i = 1, #eps, 2 do
    local eh = field(eps[i + 1], 'hostId')
    if eh then redis.call('SREM', hkey(eh) .. ':eps', o .. '|' .. eps[i]) end
  end
  local addrs = redis.call('HGETALL', ok .. ':addrs')
  for i = 1, #addrs, 2 do redis.call('SREM', hkey(addrs[i + 1]) .. ':addrs', o .. '|' .. addrs[i]) end
  for _, h in ipairs(redis.call('SMEMBERS', ok .. ':hosts')) do redis.call('SREM', hkey(h) .. ':overlays', o) end
  local vni = redis.call('HGET', ok, 'vni')
  if vni then redis.call('HDEL', P .. 'vnis', vni) end
  redis.call('DEL', ok, ok .. ':hosts', ok .. ':addrs', ok .. ':eps', ok .. ':claims')
  redis.call('SREM', P .. 'overlays', o)
  bump('"kind":"overlay-removed","name":' .. cjson.encode(o))
end
local function leave_membership(h, o)
  redis.call('SREM', hkey(h) .. ':overlays', o)
  if redis.call('EXISTS', okey(o)) == 0 then return false end
  redis.call('SREM', okey(o) .. ':hosts', h)
  if redis.call('SCARD', okey(o) .. ':hosts') > 0 then return false end
  delete_overlay(o)
  return true
end
local function unclaim(o, ip, id)
  if ip and redis.call('HGET', okey(o) .. ':claims', ip) == id then redis.call('HDEL', okey(o) .. ':claims', ip) end
end
local function withdraw(o, id)
  local ek = okey(o) .. ':eps'
  local old = redis.call('HGET', ek, id)
  if not old then return false end
  redis.call('HDEL', ek, id)
  unclaim(o, field(old, 'ip'), id)
  unclaim(o, field(old, 'ip6'), id)
  local h = field(old, 'hostId') or ''
  if h ~= '' then redis.call('SREM', hkey(h) .. ':eps', o .. '|' .. id) end
  bump('"kind":"endpoint-withdrawn","overlay":' .. cjson.encode(o) .. ',"endpointId":' .. cjson.encode(id) .. ',"hostId":' .. cjson.encode(h))
  return true
end
local function release(h, o, ip)
  local ak = okey(o) .. ':addrs'
  if redis.call('HGET', ak, ip) ~= h then return false end
  redis.call('HDEL', ak, ip)
  redis.call('HDEL', okey(o) .. ':claims', ip)
  redis.call('SREM', hkey(h) .. ':addrs', o .. '|' .. ip)
  return true
end
local function leave_overlay(h, o)
  if redis.call('EXISTS', okey(o)) == 0 then
    redis.call('SREM', hkey(h) .. ':overlays', o)
    return false
  end
  local pre = o .. '|'
  for _, m in ipairs(redis.call('SMEMBERS', hkey(h) .. ':eps')) do
    if string.sub(m, 1, #pre) == pre then withdraw(o, string.sub(m, #pre + 1)) end
  end
  for _, m in ipairs(redis.call('SMEMBERS', hkey(h) .. ':addrs')) do
    if string.sub(m, 1, #pre) == pre then release(h, o, string.sub(m, #pre + 1)) end
  end
  local deleted = leave_membership(h, o)
  cleanup_if_empty()
  return deleted
end
local function remove_host(h)
  local hk = hkey(h)
  for _, m in ipairs(redis.call('SMEMBERS', hk .. ':eps')) do
    local o, id = split(m)
    if o then
      local old = redis.call('HGET', okey(o) .. ':eps', id)
      unclaim(o, field(old, 'ip'), id)
      unclaim(o, field(old, 'ip6'), id)
      redis.call('HDEL', okey(o) .. ':eps', id)
    end
  end
  for _, m in ipairs(redis.call('SMEMBERS', hk .. ':addrs')) do
    local o, ip = split(m)
    if o then
      local ak = okey(o) .. ':addrs'
      if redis.call('HGET', ak, ip) == h then
        redis.call('HDEL', ak, ip)
        redis.call('HDEL', okey(o) .. ':claims', ip)
      end
    end
  end
  local ovs = redis.call('SMEMBERS', hk .. ':overlays')
  local existed = redis.call('EXISTS', hk) == 1 or redis.call('ZSCORE', P .. 'hosts', h)
  redis.call('DEL', hk, hk .. ':eps', hk .. ':addrs', hk .. ':overlays', hk .. ':vtep2')
  redis.call('ZREM', P .. 'hosts', h)
  if existed then bump('"kind":"host-removed","hostId":' .. cjson.encode(h)) end
  for _, o in ipairs(ovs) do leave_membership(h, o) end
  cleanup_if_empty()
end
-- A host's second VTEP record ('' = none, or not a string: a forged key of another type).
local function vtep2_of(h)
  local v = redis.pcall('GET', hkey(h) .. ':vtep2')
  if type(v) == 'string' then return v end
  return ''
end
local function host_rows()
  local rows = {}
  local hs = redis.call('ZRANGE', P .. 'hosts', 0, -1, 'WITHSCORES')
  for i = 1, #hs, 2 do
    local f = redis.call('HMGET', hkey(hs[i]), 'vtep', 'version', 'lastHeartbeat', 'registeredAt', 'sig', 'wg', 'features')
    rows[#rows + 1] = { hs[i], f[1] or '', f[2] or '', f[3] or '0', hs[i + 1], f[4] or '0', f[5] or '', f[6] or '', f[7] or '', vtep2_of(hs[i]) }
  end
  return rows
end
local function overlay_row(o)
  local f = redis.call('HMGET', okey(o), 'subnet', 'gateway', 'vni', 'createdBy', 'createdAt', 'sig', 'encrypt', 'subnet6', 'gateway6')
  if not f[1] then return nil end
  return { o, f[1], f[2] or '', f[3] or '0', f[4] or '', f[5] or '0', f[6] or '', f[7] or '', f[8] or '', f[9] or '' }
end
`

/**
 * ARGV: prefix, host, vtep, version, ttl ms, reap 0|1, key ttl ms, sig, wg, features entry ('' = none),
 * second VTEP record ('' = none). Returns {isNew 0|1, {removed host ids}}.
 * The features entry is stored stamped with this heartbeat's time ("<ms> <entry>", the same as lastHeartbeat:
 * src/cluster/features.ts); a change of it is announced with host-up as a new host is (the message itself
 * carries no new field: older hosts refuse unknown fields in it).
 */
const HEARTBEAT = `
local h, vtep, version, ttl, reap, keyTtl, sig, wg = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9] or ''
local feat = ARGV[10] or ''
local v2 = ARGV[11] or ''
local now = now_ms()
local hk = hkey(h)
local isNew = not redis.call('ZSCORE', P .. 'hosts', h)
local oldVtep = redis.call('HGET', hk, 'vtep')
local oldSig = redis.call('HGET', hk, 'sig') or ''
local oldWg = redis.call('HGET', hk, 'wg') or ''
local oldFeat = string.match(redis.call('HGET', hk, 'features') or '', '^%d+ (.*)$') or ''
local oldV2 = vtep2_of(h)
if v2 ~= '' then redis.call('SET', hk .. ':vtep2', v2) elseif oldV2 ~= '' then redis.call('DEL', hk .. ':vtep2') end
redis.call('ZADD', P .. 'hosts', fmt(now + ttl), h)
if isNew or redis.call('HEXISTS', hk, 'registeredAt') == 0 then redis.call('HSET', hk, 'registeredAt', fmt(now)) end
redis.call('HSET', hk, 'vtep', vtep, 'version', version, 'lastHeartbeat', fmt(now), 'sig', sig)
if wg ~= '' then redis.call('HSET', hk, 'wg', wg) else redis.call('HDEL', hk, 'wg') end
if feat ~= '' then redis.call('HSET', hk, 'features', fmt(now) .. ' ' .. feat) else redis.call('HDEL', hk, 'features') end
for _, k in ipairs({ hk, hk .. ':eps', hk .. ':addrs', hk .. ':overlays', hk .. ':vtep2' }) do redis.call('PEXPIRE', k, keyTtl) end
if isNew or oldVtep ~= vtep or oldSig ~= sig or oldWg ~= wg or oldFeat ~= feat or oldV2 ~= v2 then
  -- The second VTEP first, on its own channel: a reader has it when the host-up change comes.
  if v2 ~= '' or oldV2 ~= '' then redis.call('PUBLISH', P .. 'vteps', cjson.encode({ hostId = h, record = v2 })) end
  local host = { hostId = h, vtep = vtep, version = version }
  if sig ~= '' then host.sig = sig end
  if wg ~= '' then host.wg = wg end
  bump('"kind":"host-up","host":' .. cjson.encode(host))
end
local removed = {}
if reap == '1' then
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'hosts', '-inf', fmt(now))) do
    if d ~= h then
      remove_host(d)
      removed[#removed + 1] = d
    end
  end
end
return { isNew and 1 or 0, removed }
`

/**
 * ARGV: prefix, host, name, subnet, gateway, vni|'', mode, net, prefix len, vni min, vni max, announce 0|1.
 * ARGV 13: encryption ('' = plain, 'wireguard'): part of the definition (and of its MAC), compared on join.
 * ARGV 14-17: the IPv6 side of a dual-stack overlay: subnet6, gateway6, its network as 8 groups "a,b,…", prefix6 ('' = IPv4 only).
 * A definition row: { name, subnet, gateway, vni, createdBy, createdAt, sig, encrypt, subnet6, gateway6 } ('' where absent).
 * Returns {definition row, created 0|1}; with announce 0 the overlay-defined message is left to SEAL.
 */
const DEFINE = `
local h, name, subnet, gateway, vniArg, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local net, plen = tonumber(ARGV[8]), tonumber(ARGV[9])
local vmin, vmax = tonumber(ARGV[10]), tonumber(ARGV[11])
local announce = ARGV[12] == '1'
local enc = ARGV[13] or ''
local s6, g6, net6, plen6 = ARGV[14] or '', ARGV[15] or '', ARGV[16] or '', tonumber(ARGV[17] or '0')
local ok = okey(name)
local ex = overlay_row(name)
if ex then
  local exEnc = ex[8]
  if exEnc ~= enc then
    local function what(e) if e == '' then return 'plain' end return 'encrypted (ferry.encrypt=' .. e .. ')' end
    fail('NAME_CONFLICT', 'overlay ' .. name .. ' already exists ' .. what(exEnc) .. ' (this host asked for it ' .. what(enc) .. ')')
  end
  if ex[2] ~= subnet then fail('NAME_CONFLICT', 'overlay ' .. name .. ' already exists with subnet ' .. ex[2] .. ' (this host asked for ' .. subnet .. ')') end
  if ex[3] ~= gateway then fail('NAME_CONFLICT', 'overlay ' .. name .. ' already exists with gateway ' .. ex[3] .. ' (this host asked for ' .. gateway .. ')') end
  if ex[9] ~= s6 or ex[10] ~= g6 then
    local function stack(s, g) if s == '' then return 'IPv4-only' end return 'dual-stack with IPv6 subnet ' .. s .. ' and gateway ' .. g end
    fail('NAME_CONFLICT', 'overlay ' .. name .. ' already exists ' .. stack(ex[9], ex[10]) .. ' (this host asked for it ' .. stack(s6, g6) .. ')')
  end
  if mode == 'require' and vniArg ~= '' and vniArg ~= ex[4] then
    fail('NAME_CONFLICT', 'overlay ' .. name .. ' already exists with VNI ' .. ex[4] .. ' (this host asked for ' .. vniArg .. ')')
  end
  join(h, name)
  return { ex, 0 }
end
local last = net + 2 ^ (32 - plen) - 1
local others = redis.call('SMEMBERS', P .. 'overlays')
table.sort(others)
for _, o in ipairs(others) do
  local f = redis.call('HMGET', okey(o), 'net', 'prefix', 'subnet', 'net6', 'prefix6', 'subnet6')
  local on, op = tonumber(f[1]), tonumber(f[2])
  if on and op and net <= on + 2 ^ (32 - op) - 1 and on <= last then
    fail('POOL_OVERLAP', 'subnet ' .. subnet .. ' of overlay ' .. name .. ' overlaps overlay ' .. o .. ' (' .. f[3] .. ')')
  end
  if s6 ~= '' and f[4] and tonumber(f[5]) and v6overlap(v6groups(net6), plen6, v6groups(f[4]), tonumber(f[5])) then
    fail('POOL_OVERLAP', 'IPv6 subnet ' .. s6 .. ' of overlay ' .. name .. ' overlaps overlay ' .. o .. ' (' .. (f[6] or '?') .. ')')
  end
end
local vni = nil
if vniArg ~= '' then
  local owner = redis.call('HGET', P .. 'vnis', vniArg)
  if owner then
    if mode == 'require' then fail('NAME_CONFLICT', 'VNI ' .. vniArg .. ' is already used by overlay ' .. owner) end
  else
    vni = tonumber(vniArg)
  end
end
if not vni then
  local span = vmax - vmin + 1
  local cursor = tonumber(redis.call('GET', P .. 'vnicursor') or fmt(vmin - 1))
  for i = 1, span do
    local v = vmin + ((cursor + i - vmin) % span)
    if redis.call('HEXISTS', P .. 'vnis', fmt(v)) == 0 then
      vni = v
      break
    end
  end
  if not vni then fail('POOL_EXHAUSTED', 'no free VNI is left in the cluster') end
  redis.call('SET', P .. 'vnicursor', fmt(vni))
end
local now = now_ms()
redis.call('HSET', ok, 'name', name, 'subnet', subnet, 'gateway', gateway, 'vni', fmt(vni), 'net', fmt(net), 'prefix', fmt(plen),
  'createdBy', h, 'createdAt', fmt(now))
if enc ~= '' then redis.call('HSET', ok, 'encrypt', enc) end
redis.call('HSET', ok .. ':addrs', gateway, '@gateway')
if s6 ~= '' then
  redis.call('HSET', ok, 'subnet6', s6, 'gateway6', g6, 'net6', net6, 'prefix6', fmt(plen6))
  redis.call('HSET', ok .. ':addrs', g6, '@gateway')
end
redis.call('HSET', P .. 'vnis', fmt(vni), name)
redis.call('SADD', P .. 'overlays', name)
join(h, name)
if announce then
  local d = { name = name, subnet = subnet, gateway = gateway, vni = vni, createdBy = h, createdAt = now }
  if enc ~= '' then d.encrypt = enc end
  if s6 ~= '' then d.subnet6 = s6; d.gateway6 = g6 end
  bump('"kind":"overlay-defined","overlay":' .. cjson.encode(d))
end
return { { name, subnet, gateway, fmt(vni), h, fmt(now), '', enc, s6, s6 ~= '' and g6 or '' }, 1 }
`

/**
 * ARGV: prefix, name, subnet, gateway, vni, sig, encryption|'', subnet6|'', gateway6|''. Stores the MAC when the
 * definition still matches, and announces it. Returns 1 when stored.
 */
const SEAL = `
local name, subnet, gateway, vni, sig, enc = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7] or ''
local s6, g6 = ARGV[8] or '', ARGV[9] or ''
local ex = overlay_row(name)
if not ex or ex[2] ~= subnet or ex[3] ~= gateway or ex[4] ~= vni or ex[8] ~= enc or ex[9] ~= s6 or ex[10] ~= g6 then return 0 end
redis.call('HSET', okey(name), 'sig', sig)
local d = { name = name, subnet = subnet, gateway = gateway, vni = tonumber(vni), createdBy = ex[5], createdAt = tonumber(ex[6]), sig = sig }
if enc ~= '' then d.encrypt = enc end
if s6 ~= '' then d.subnet6 = s6; d.gateway6 = g6 end
bump('"kind":"overlay-defined","overlay":' .. cjson.encode(d))
return 1
`

/** ARGV: prefix, host, name. Returns 1 when the definition was deleted. */
const LEAVE_OVERLAY = `
return leave_overlay(ARGV[2], ARGV[3]) and 1 or 0
`

/**
 * ARGV: prefix, host, overlay, preferred ip|'', reclaim 0|1, scanned, limit.
 * Returns {address or '', addresses looked at}. Looks at no more than limit
 * addresses from the cursor (which moves past them), so a nearly full /8 costs
 * many short calls rather than one that blocks Redis; scanned counts the
 * earlier calls of the same allocation, to tell when every address was seen.
 */
const ALLOCATE = `
local h, name, pref, reclaim = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local scanned, limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local v6 = ARGV[8] == '6'
local ok = okey(name)
if redis.call('EXISTS', ok) == 0 then fail('NETWORK_NOT_FOUND', 'overlay ' .. name .. ' is not defined in the cluster') end
-- The family's range as numbers from first to last, toip(n) its address, and its cursor field:
-- IPv4 addresses are numbers; IPv6 ones are offsets (1 to 2^32 - 1 at most) from the subnet's network.
local first, last, toip, cfield, sub
if v6 then
  local f = redis.call('HMGET', ok, 'net6', 'prefix6', 'subnet6')
  if not f[1] then fail('ADDRESS_OUT_OF_POOL', 'overlay ' .. name .. ' has no IPv6 subnet (it was defined without --ipv6)') end
  local net, plen = v6groups(f[1]), tonumber(f[2])
  first, last, cfield, sub = 1, 2 ^ math.min(32, 128 - plen) - 1, 'cursor6', f[3]
  toip = function(n) return v6add(net, n) end
else
  local f = redis.call('HMGET', ok, 'net', 'prefix', 'subnet')
  local net, plen = tonumber(f[1]), tonumber(f[2])
  first, last, cfield, sub = net + 1, net + 2 ^ (32 - plen) - 2, 'cursor', f[3]
  toip = int2ip
end
local ak = ok .. ':addrs'
local function take(ip, n)
  redis.call('HSET', ak, ip, h)
  if n then redis.call('HSET', ok, cfield, fmt(n)) end
  redis.call('SADD', hkey(h) .. ':addrs', name .. '|' .. ip)
  join(h, name)
  return ip
end
if pref ~= '' then
  -- An IPv6 preferred address was checked against the subnet by the client (it is canonical text).
  if not v6 then
    local n = ip2int(pref)
    if n < first or n > last then fail('ADDRESS_OUT_OF_POOL', 'address ' .. pref .. ' is not a host address of overlay ' .. name .. ' (' .. sub .. ')') end
  end
  local owner = redis.call('HGET', ak, pref)
  if not owner or (owner == h and reclaim == '1') then return { take(pref, nil), 1 } end
  if owner == '@gateway' then fail('ADDRESS_IN_USE', 'address ' .. pref .. ' is the gateway of overlay ' .. name) end
  fail('ADDRESS_IN_USE', 'address ' .. pref .. ' of overlay ' .. name .. ' is already allocated (by host ' .. owner .. ')')
end
local count = last - first + 1
local start = tonumber(redis.call('HGET', ok, cfield)) or (first - 1)
if start < first - 1 or start > last then start = first - 1 end
local left = count - scanned
if left <= 0 then fail('POOL_EXHAUSTED', 'no free address is left in overlay ' .. name .. ' (' .. sub .. ')') end
local steps = math.min(limit, left)
for i = 1, steps do
  local n = first + ((start + i - first) % count)
  local ip = toip(n)
  if redis.call('HEXISTS', ak, ip) == 0 then return { take(ip, n), i } end
end
if steps >= left then fail('POOL_EXHAUSTED', 'no free address is left in overlay ' .. name .. ' (' .. sub .. ')') end
redis.call('HSET', ok, cfield, fmt(first + ((start + steps - first) % count)))
return { '', steps }
`

/** ARGV: prefix, host, overlay, ip. Returns 1 when released. */
const RELEASE = `
return release(ARGV[2], ARGV[3], ARGV[4]) and 1 or 0
`

/**
 * ARGV: prefix, host, overlay, endpoint id, endpoint address, endpoint JSON, endpoint IPv6 address|''. Returns the revision.
 * The address must be allocated to the host and not claimed by another endpoint
 * still published with it: the first claim of an address wins.
 */
const PUBLISH = `
local h, name, id, ip, json = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ip6 = ARGV[7] or ''
local ok = okey(name)
if redis.call('EXISTS', ok) == 0 then fail('NETWORK_NOT_FOUND', 'overlay ' .. name .. ' is not defined in the cluster') end
local ek = ok .. ':eps'
local ck = ok .. ':claims'
local mine = { { ip, 'ip' } }
if ip6 ~= '' then mine[2] = { ip6, 'ip6' } end
for _, a in ipairs(mine) do
  if redis.call('HGET', ok .. ':addrs', a[1]) ~= h then
    fail('ADDRESS_IN_USE', 'address ' .. a[1] .. ' of overlay ' .. name .. ' is not allocated to host ' .. h)
  end
  local claimant = redis.call('HGET', ck, a[1])
  if claimant and claimant ~= id and field(redis.call('HGET', ek, claimant), a[2]) == a[1] then
    fail('ADDRESS_IN_USE', 'address ' .. a[1] .. ' of overlay ' .. name .. ' is already claimed by endpoint ' .. string.sub(claimant, 1, 12))
  end
end
local old = redis.call('HGET', ek, id)
local oldIp, oldIp6 = field(old, 'ip'), field(old, 'ip6')
if oldIp and oldIp ~= ip then unclaim(name, oldIp, id) end
if oldIp6 and oldIp6 ~= ip6 then unclaim(name, oldIp6, id) end
for _, a in ipairs(mine) do redis.call('HSET', ck, a[1], id) end
if old == json then return tonumber(redis.call('GET', P .. 'rev') or '0') end
if old then
  local oh = field(old, 'hostId')
  if oh and oh ~= h then redis.call('SREM', hkey(oh) .. ':eps', name .. '|' .. id) end
end
redis.call('HSET', ek, id, json)
redis.call('SADD', hkey(h) .. ':eps', name .. '|' .. id)
join(h, name)
return bump('"kind":"endpoint-published","overlay":' .. cjson.encode(name) .. ',"endpoint":' .. json)
`

/** ARGV: prefix, overlay, endpoint id. Returns 1 when withdrawn. */
const WITHDRAW = `
return withdraw(ARGV[2], ARGV[3]) and 1 or 0
`

/** ARGV: prefix, host, JSON {overlays, addresses, endpoints} to keep. */
const PRUNE = `
local h = ARGV[2]
local keep = cjson.decode(ARGV[3])
local function set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end
local eps, addrs, ovs = set(keep.endpoints), set(keep.addresses), set(keep.overlays)
for _, m in ipairs(redis.call('SMEMBERS', hkey(h) .. ':eps')) do
  if not eps[m] then
    local o, id = split(m)
    if o then withdraw(o, id) else redis.call('SREM', hkey(h) .. ':eps', m) end
  end
end
for _, m in ipairs(redis.call('SMEMBERS', hkey(h) .. ':addrs')) do
  if not addrs[m] then
    local o, ip = split(m)
    if o then release(h, o, ip) end
    redis.call('SREM', hkey(h) .. ':addrs', m)
  end
end
for _, o in ipairs(redis.call('SMEMBERS', hkey(h) .. ':overlays')) do
  if not ovs[o] then leave_overlay(h, o) end
end
cleanup_if_empty()
return 1
`

/** ARGV: prefix, host. */
const REMOVE_HOST = `
remove_host(ARGV[2])
return 1
`

/**
 * ARGV: prefix. Returns {rev, now, host rows, overlay rows {…, hosts}}: the
 * head of a full read. The endpoints and claims of each overlay follow in
 * pages (HSCAN), so no reply holds a whole large overlay and Redis is never
 * busy with one reader for long; changes made meanwhile come through the
 * change channel with revisions after `rev`, and the reader replays them.
 */
const SNAPSHOT = `
local rev = tonumber(redis.call('GET', P .. 'rev') or '0')
local overlays = {}
local names = redis.call('SMEMBERS', P .. 'overlays')
table.sort(names)
for _, o in ipairs(names) do
  local row = overlay_row(o)
  if row then
    row[#row + 1] = redis.call('SMEMBERS', okey(o) .. ':hosts')
    overlays[#overlays + 1] = row
  end
end
return { rev, now_ms(), host_rows(), overlays }
`

/** ARGV: prefix. */
const HOSTS = `
return host_rows()
`

/** ARGV: prefix, name. Returns the definition row or nil. */
const OVERLAY = `
return overlay_row(ARGV[2])
`

/** ARGV: prefix, name. Returns the definition row or false (the endpoints follow in pages). */
const ENDPOINTS = `
return { overlay_row(ARGV[2]) or false }
`

/**
 * ARGV: prefix, revision, overlap. The current revision and the logged messages from revision
 * `revision` (and up to `overlap` before it, as far as the log goes) to the current one, oldest
 * first; the list is false when the log does not reach back to `revision` or the store is behind it
 * (it lost changes): the caller reads in full.
 */
const CHANGES_SINCE = `
local cur = tonumber(redis.call('GET', P .. 'rev') or '0')
local since = tonumber(ARGV[2])
local overlap = tonumber(ARGV[3])
if since == nil or overlap == nil or overlap < 0 or cur < since then return { fmt(cur), false } end
local need = cur - since + 1
local len = redis.call('LLEN', P .. 'log')
if need > len then return { fmt(cur), false } end
local msgs = redis.call('LRANGE', P .. 'log', -math.min(len, need + overlap), -1)
-- The second VTEP records of the hosts these changes bring up (host id, record or ''), as they are now.
local recs, seen = {}, {}
for _, m in ipairs(msgs) do
  if string.find(m, '"kind":"host-up"', 1, true) then
    local e = dec(m)
    local id = e and type(e.host) == 'table' and e.host.hostId
    if type(id) == 'string' and string.match(id, '^[%w][%w_.-]*$') and not seen[id] then
      seen[id] = true
      recs[#recs + 1] = id
      recs[#recs + 1] = vtep2_of(id)
    end
  end
end
return { fmt(cur), msgs, recs }
`

function script (name: string, body: string): LuaScript {
  const source = `-- ferry ${name}\n${PRELUDE}\n${body}`
  return { name, source, sha: createHash('sha1').update(source).digest('hex') }
}

export const SCRIPTS = {
  heartbeat: script('heartbeat', HEARTBEAT),
  define: script('define', DEFINE),
  seal: script('seal', SEAL),
  leaveOverlay: script('leaveOverlay', LEAVE_OVERLAY),
  allocate: script('allocate', ALLOCATE),
  release: script('release', RELEASE),
  publish: script('publish', PUBLISH),
  withdraw: script('withdraw', WITHDRAW),
  prune: script('prune', PRUNE),
  removeHost: script('removeHost', REMOVE_HOST),
  snapshot: script('snapshot', SNAPSHOT),
  hosts: script('hosts', HOSTS),
  overlay: script('overlay', OVERLAY),
  endpoints: script('endpoints', ENDPOINTS),
  changesSince: script('changesSince', CHANGES_SINCE),
} as const
