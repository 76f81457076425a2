import { LuaScript } from './redis.connection';

/**
 * Reads the value, or takes the lease, or says who holds it, atomically: a
 * holder that finished between a caller's store read and its lease attempt
 * is seen here, so that caller answers with the value instead of running the
 * work a second time. A value key of another type or over the size bound is
 * not read (the holder's write replaces it). A lease key the package did not
 * write (no expiry, another type) would stall the key for good: it is
 * replaced. KEYS: value, lock. ARGV: token, lease ms, read value?, max bytes,
 * holder's value wanted? (then a wait also returns the start of the lease value).
 */
export const ACQUIRE = new LuaScript(`
if ARGV[3] == '1' and redis.call('TYPE', KEYS[1]).ok == 'string'
  and redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[4]) then
  return {'v', redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'l'} end
local pttl = redis.call('PTTL', KEYS[2])
if pttl < 0 or redis.call('TYPE', KEYS[2]).ok ~= 'string' then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {'l'}
end
if ARGV[5] == '1' then return {'w', pttl, redis.call('GETRANGE', KEYS[2], 0, 199)} end
return {'w', pttl}
`);

/**
 * Fenced write and release: only while the lease is still this holder's
 * (same token) is the value written (if any), the lease deleted and the
 * waiters woken. A holder whose lease expired, or was revoked by an
 * invalidation, changes nothing. KEYS: lock, value. ARGV: token, value ('' =
 * none), ttl ms, channel, message, 's' for sharded pub/sub (the channel is in
 * the keys' slot; a server without it fails the wake-up only, the waiters
 * poll). Returns 1 if it still held the lease.
 */
export const COMMIT = new LuaScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[1])
if ARGV[6] == 's' then redis.pcall('SPUBLISH', ARGV[4], ARGV[5]) else redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
`);
