import { RedisConnection } from './redis.connection';

/** Keys asked per `SCAN` step (and deleted per `UNLINK` on a single node). */
const SCAN_COUNT = 500;

/**
 * Deletes every key matching `pattern` (`SCAN MATCH` + `UNLINK`), on every
 * primary of a cluster (each holds a part of the keys); resolves with how
 * many were deleted. On a cluster the keys found in one step lie in many
 * slots, so each is deleted by its own `UNLINK`, all sent at once.
 *
 * @example
 * ```ts
 * await unlinkMatching(connection, keys.valuesMatching('GET /products/'));
 * ```
 */
export async function unlinkMatching(connection: RedisConnection, pattern: string): Promise<number> {
  let deleted = 0;
  for (const node of await connection.primaries()) {
    let cursor = '0';
    do {
      const [next, keys] = await connection.command<[string, string[]]>(
        ['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(SCAN_COUNT)],
        node,
      );
      cursor = String(next);
      if (keys.length > 0) deleted += await unlink(connection, keys);
    } while (cursor !== '0');
  }
  return deleted;
}

async function unlink(connection: RedisConnection, keys: string[]): Promise<number> {
  if (!connection.isCluster) return connection.command<number>(['UNLINK', ...keys]);
  const counts = await Promise.all(keys.map((key) => connection.command<number>(['UNLINK', key])));
  return counts.reduce((total, count) => total + Number(count), 0);
}
