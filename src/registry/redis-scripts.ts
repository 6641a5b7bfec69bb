// The registry's Lua scripts for Redis: each operation atomic, every key in KEYS, time from TIME, loops bounded.
//
// Layout, all under one hash tag so the scripts stay legal on a cluster (one slot):
//   P:{reg}:alloc              hash  id -> allocation JSON (the truth)
//   P:{reg}:exp                zset  id -> expiresAt ms, active leases
//   P:{reg}:rm                 zset  id -> removeAt ms, expired leases awaiting deregistration
//   P:{reg}:port:HOST          hash  port -> id, every port held on HOST
//   P:{reg}:bm:HOST:FIRST-LAST bitmap of the range's taken ports on HOST (an index over port:HOST: BITPOS finds a
//                              free port in 0.1 ms where a scan took 2 ms; a stale 0 bit is healed when met)
//   P:{reg}:rev                counter bumped by every change; PUBLISH P:{reg}:events {rev, op, ...}
// No key TTLs and no keyspace notifications: leases live in the zsets and the reap script reads them.

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: alloc, exp, rm, rev, port:HOST, then one bitmap per range ARGV names.
 * ARGV: channel, mode ("new" | "restore"), record JSON, preferred ("" for none), required ("1"/""), ttl ("new")
 *       or deregisterAfter ("restore"), nRanges, (first, last) × nRanges, excluded ports...
 * "new": picks the port, stamps id-less fields from TIME. "restore": writes a known record back (Redis came back
 * empty) with its own port and times, unless its id or port is already there.
 * Returns {rev, json} or {"err", code}.
 */
export const ALLOCATE = `${NOW}
local channel, mode, rec = ARGV[1], ARGV[2], cjson.decode(ARGV[3])
local preferred, required, ttl = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local excl = {}
for i = 8 + 2 * n, #ARGV do excl[ARGV[i]] = true end
local function taken(p)
  return excl[tostring(p)] or redis.call('HEXISTS', KEYS[5], p) == 1
end
local function setbits(p, v)
  for r = 1, n do
    local first, last = tonumber(ARGV[6 + 2 * r]), tonumber(ARGV[7 + 2 * r])
    if p >= first and p <= last then redis.call('SETBIT', KEYS[5 + r], p - first, v) end
  end
end
local port = nil
if mode == 'restore' then
  if redis.call('HEXISTS', KEYS[1], rec.id) == 1 then return {'err', 'exists'} end
  if redis.call('HEXISTS', KEYS[5], rec.port) == 1 then return {'err', 'port_unavailable'} end
  port = rec.port
else
  if preferred then
    if not taken(preferred) then port = preferred elseif required then return {'err', 'port_unavailable'} end
  end
  if not port then
    for r = 1, n do
      local key = KEYS[5 + r]
      local first, last = tonumber(ARGV[6 + 2 * r]), tonumber(ARGV[7 + 2 * r])
      local size = last - first + 1
      -- BITPOS with an explicit end does not look past the string: make the string span the whole range.
      if redis.call('STRLEN', key) * 8 < size then redis.call('SETBIT', key, size - 1, redis.call('GETBIT', key, size - 1)) end
      local start = 0
      for _ = 1, size do
        local pos = redis.call('BITPOS', key, 0, start, size - 1, 'BIT')
        if pos < 0 or pos >= size then break end
        local p = first + pos
        if not taken(p) then port = p break end
        if redis.call('HEXISTS', KEYS[5], p) == 1 then redis.call('SETBIT', key, pos, 1) end
        start = pos + 1
        if start >= size then break end
      end
      if port then break end
    end
  end
  if not port then return {'err', 'range_exhausted'} end
  rec.port = port
  rec.allocatedAt = now
  rec.lastHeartbeat = now
  rec.ttl = ttl
  rec.status = 'active'
end
setbits(port, 1)
local json = cjson.encode(rec)
redis.call('HSET', KEYS[1], rec.id, json)
redis.call('HSET', KEYS[5], port, rec.id)
if rec.status == 'expired' then
  redis.call('ZADD', KEYS[3], rec.lastHeartbeat + rec.ttl + tonumber(ARGV[6]), rec.id)
else
  redis.call('ZADD', KEYS[2], rec.lastHeartbeat + rec.ttl, rec.id)
end
local rev = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', channel, cjson.encode({rev = rev, op = 'allocate', rec = json}))
return {rev, json}`;

/**
 * KEYS: alloc, exp, rm, rev. ARGV: channel, id, ttl. Renews the lease from TIME and revives an expired one.
 * Returns {rev, json}, or nil when the allocation is not stored (removed or released: the client allocates again).
 */
export const HEARTBEAT = `${NOW}
local json = redis.call('HGET', KEYS[1], ARGV[2])
if not json then return nil end
local rec = cjson.decode(json)
rec.lastHeartbeat = now
rec.ttl = tonumber(ARGV[3])
rec.status = 'active'
json = cjson.encode(rec)
redis.call('HSET', KEYS[1], rec.id, json)
redis.call('ZREM', KEYS[3], rec.id)
redis.call('ZADD', KEYS[2], now + rec.ttl, rec.id)
local rev = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[1], cjson.encode({rev = rev, op = 'heartbeat', rec = json}))
return {rev, json}`;

/**
 * KEYS: alloc, exp, rm, rev, port:HOST, then one bitmap per range. ARGV: channel, id, host, mode, nRanges,
 * (first, last) × nRanges. mode "release" removes at once; "reap" only while the lease is still due for removal
 * (a heartbeat that won the race revived it); "cleanup" only while it is expired.
 * Returns {rev, json}, {"host", json} when the record lives on another host than the keys given, {"kept"}, or nil.
 */
export const RELEASE = `${NOW}
local json = redis.call('HGET', KEYS[1], ARGV[2])
if not json then return nil end
local rec = cjson.decode(json)
if rec.host ~= ARGV[3] then return {'host', json} end
local mode = ARGV[4]
if mode == 'reap' then
  local due = redis.call('ZSCORE', KEYS[3], rec.id)
  if not due or tonumber(due) > now then return {'kept'} end
elseif mode == 'cleanup' then
  if rec.status ~= 'expired' and now < rec.lastHeartbeat + rec.ttl then return {'kept'} end
end
redis.call('HDEL', KEYS[1], rec.id)
redis.call('ZREM', KEYS[2], rec.id)
redis.call('ZREM', KEYS[3], rec.id)
if redis.call('HGET', KEYS[5], rec.port) == rec.id then
  redis.call('HDEL', KEYS[5], rec.port)
  local n = tonumber(ARGV[5])
  for r = 1, n do
    local first, last = tonumber(ARGV[4 + 2 * r]), tonumber(ARGV[5 + 2 * r])
    if rec.port >= first and rec.port <= last then redis.call('SETBIT', KEYS[5 + r], rec.port - first, 0) end
  end
end
local rev = redis.call('INCR', KEYS[4])
local op = 'release'
if mode ~= 'release' then op = 'remove' end
redis.call('PUBLISH', ARGV[1], cjson.encode({rev = rev, op = op, id = rec.id}))
return {rev, json}`;

/**
 * KEYS: alloc, exp, rm, rev. ARGV: channel, deregisterAfter, limit. Expires up to `limit` leases past their ttl
 * (they move from exp to rm) and lists up to `limit` due for removal, which the client removes one by one with
 * RELEASE in "reap" mode (their hosts' keys are only known from the records).
 * Returns {rev, {expired json...}, {due json...}}.
 */
export const REAP = `${NOW}
local limit = tonumber(ARGV[3])
local expired, due = {}, {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if json then
    local rec = cjson.decode(json)
    rec.status = 'expired'
    json = cjson.encode(rec)
    redis.call('HSET', KEYS[1], id, json)
    redis.call('ZADD', KEYS[3], rec.lastHeartbeat + rec.ttl + tonumber(ARGV[2]), id)
    table.insert(expired, json)
  end
end
local rev = tonumber(redis.call('GET', KEYS[4]) or '0')
if #expired > 0 then
  rev = redis.call('INCR', KEYS[4])
  redis.call('PUBLISH', ARGV[1], cjson.encode({rev = rev, op = 'expire', recs = expired}))
end
local rm = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(rm) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then table.insert(due, json) else redis.call('ZREM', KEYS[3], id) end
end
return {rev, expired, due}`;
