import { LuaScript } from './redis.connection';
import { keySlot } from './redis.slot';

// The value and its remaining time in one round trip: Redis's clock, not the writer's, says how
// fresh it is. A key of another type or over the size bound is a miss (a write replaces it), not
// an error, and a huge value is never sent. KEYS: value. ARGV: max bytes.
export const READ = new LuaScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return false end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`);

// READ for many keys in one round trip (runMany): a flat list of value, PTTL per key.
export const READ_MANY = new LuaScript(`
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'string' and redis.call('STRLEN', key) <= tonumber(ARGV[1]) then
    out[2 * i - 1] = redis.call('GET', key)
    out[2 * i] = redis.call('PTTL', key)
  else
    out[2 * i - 1] = false
    out[2 * i] = -2
  end
end
return out
`);

/** A Redis reply, as node-redis gives it (a RESP3 client with a Buffer type mapping gives Buffers). */
export function asText(reply: unknown): string | undefined {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString();
  return undefined;
}

/** `keys` grouped by the Cluster slot of their Redis key (`redisKey`), in first-seen order. */
export function bySlot(keys: readonly string[], redisKey: (key: string) => string): string[][] {
  const groups = new Map<number, string[]>();
  for (const key of keys) {
    const slot = keySlot(redisKey(key));
    const group = groups.get(slot);
    if (group) group.push(key);
    else groups.set(slot, [key]);
  }
  return [...groups.values()];
}
