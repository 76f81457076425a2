/**
 * What travels on the invalidation channel: a key, a prefix or tags, and the
 * instance that sent it (which applied it already). Tags carry the time of
 * their invalidation on Redis's clock (`a`, epoch ms).
 */
export type InvalidationMessage =
  { k: string; o: string } | { p: string; o: string } | { g: string[]; a: number; o: string };

/**
 * Reads a message of the invalidation channel; `undefined` for anything else.
 *
 * @example
 * ```ts
 * parseInvalidation('{"k":"GET /prices","o":"b2f1"}'); // { k: 'GET /prices', o: 'b2f1' }
 * ```
 */
export function parseInvalidation(text: string): InvalidationMessage | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || typeof parsed.o !== 'string') return undefined;
  if (typeof parsed.k === 'string') return { k: parsed.k, o: parsed.o };
  if (typeof parsed.p === 'string') return { p: parsed.p, o: parsed.o };
  const { g, a } = parsed;
  if (Array.isArray(g) && g.every((tag) => typeof tag === 'string') && typeof a === 'number' && Number.isFinite(a)) {
    return { g: g as string[], a, o: parsed.o };
  }
  return undefined;
}
