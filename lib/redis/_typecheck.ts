import { createClient } from 'redis';
import { RedisClientLike } from './redis.options';
const c: RedisClientLike = createClient();
const d: RedisClientLike = createClient({ RESP: 3 });
export { c, d };
