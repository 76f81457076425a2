import { StoredEntry } from '../core/store';

/**
 * Epoch ms after which nothing in `entry` is of use: the last of its fresh,
 * stale and fallback windows.
 *
 * @example
 * ```ts
 * lastUse({ v: 1, e: 1_000, s: 5_000 }); // 5000
 * ```
 */
export function lastUse(entry: StoredEntry): number {
  return Math.max(entry.e, entry.s ?? 0, entry.f ?? 0);
}

/**
 * How values cross Redis: JSON, with the types JSON would silently change
 * tagged so they come back as they went in. A tagged value is an object
 * `{ "$t": tag, "v": payload }`; a plain object that happens to have a `$t`
 * key is tagged too (`O`, as its entries), so no stored value is ever
 * mistaken for a tag. Everything else follows JSON: `undefined` in an object
 * is dropped, `NaN` becomes `null`, class instances come back as plain objects.
 */
const TAG = '$t';

type Tagged = { [TAG]: string; v?: unknown };

/**
 * What is stored: the entry's fields, plus `x`, when the writer expects Redis
 * to drop the key (its own clock). A reader compares `x` with Redis's
 * remaining TTL to learn how far the writer's clock is from its own, and
 * shifts the entry's times by that much. The class lets the replacer tell an
 * `undefined` value (kept) from an absent field (dropped).
 */
class Envelope {
  readonly v: unknown;
  readonly e: number;
  // `declare`: optional fields are not defined at all when absent (no `"t": null`).
  declare readonly x?: number;
  declare readonly t?: number;
  declare readonly s?: number;
  declare readonly f?: number;
  declare readonly d?: number;
  declare readonly g?: string[];

  constructor(entry: StoredEntry, expiresAt: number | undefined) {
    this.v = entry.v;
    this.e = entry.e;
    for (const field of ['t', 's', 'f', 'd'] as const) {
      if (typeof entry[field] === 'number') Object.assign(this, { [field]: entry[field] });
    }
    if (Array.isArray(entry.g)) Object.assign(this, { g: entry.g });
    if (expiresAt !== undefined) Object.assign(this, { x: expiresAt });
  }
}

/** The entry fields that are epoch milliseconds, shifted together when clocks differ. */
const TIMES = ['e', 't', 's', 'f'] as const;

// What a tagged `undefined` is read back as, until the envelope is unpacked.
const UNDEFINED = Object.freeze({});

function tag(t: string, v?: unknown): Tagged {
  return v === undefined ? { [TAG]: t } : { [TAG]: t, v };
}

// `this[key]` is the value before `toJSON` (Date, Buffer have one) turned it into a string or a plain object.
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Date) return tag('D', Number.isNaN(raw.getTime()) ? null : raw.getTime());
  if (Buffer.isBuffer(raw)) return tag('B', raw.toString('base64'));
  if (raw instanceof Uint8Array)
    return tag('U', Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64'));
  if (typeof raw === 'bigint') return tag('N', raw.toString());
  if (raw instanceof Map) return tag('M', [...raw.entries()]);
  if (raw instanceof Set) return tag('S', [...raw.values()]);
  if (raw === undefined && key === 'v' && this instanceof Envelope) return tag('u');
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, TAG)) {
    return tag('O', Object.entries(value));
  }
  return value;
}

function isTagged(value: unknown): value is Tagged {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof (value as Tagged)[TAG] === 'string' &&
    Object.keys(value).every((key) => key === TAG || key === 'v')
  );
}

class MalformedTag extends Error {}

// JSON.parse revives innermost values first, so a Map's entries are already revived here.
function reviver(_key: string, value: unknown): unknown {
  if (!isTagged(value)) return value;
  const v = value.v;
  switch (value[TAG]) {
    case 'D':
      if (v !== null && typeof v !== 'number') throw new MalformedTag();
      return new Date(v ?? NaN);
    case 'B':
      if (typeof v !== 'string') throw new MalformedTag();
      return Buffer.from(v, 'base64');
    case 'U':
      if (typeof v !== 'string') throw new MalformedTag();
      return new Uint8Array(Buffer.from(v, 'base64'));
    case 'N':
      if (typeof v !== 'string') throw new MalformedTag();
      return BigInt(v);
    case 'M':
      if (!isEntries(v)) throw new MalformedTag();
      return new Map(v);
    case 'S':
      if (!Array.isArray(v)) throw new MalformedTag();
      return new Set(v);
    case 'O':
      if (!isEntries(v)) throw new MalformedTag();
      return Object.fromEntries(v);
    case 'u':
      return UNDEFINED;
    default:
      throw new MalformedTag();
  }
}

function isEntries(value: unknown): value is [unknown, unknown][] {
  return Array.isArray(value) && value.every((entry) => Array.isArray(entry) && entry.length === 2);
}

/**
 * Serializes a stored entry for Redis; `expiresAt` is when the key will
 * expire (epoch ms, this process's clock), which lets readers correct for
 * clock differences. Throws (`TypeError`) for a value JSON cannot hold, e.g.
 * a circular one: such a value is not stored.
 *
 * @example
 * ```ts
 * const ttl = 5_000;
 * const entry = { v: { at: new Date(0), body: Buffer.from('hi') }, e: Date.now() + ttl };
 * await client.set(key, encodeEntry(entry, Date.now() + ttl), { PX: ttl });
 * ```
 */
export function encodeEntry(entry: StoredEntry, expiresAt?: number): string {
  return JSON.stringify(new Envelope(entry, expiresAt), replacer);
}

/**
 * Reads back what `encodeEntry` wrote; anything else (garbage, another
 * program's data under the prefix, a malformed tag) is `undefined`, a miss.
 * With `pttl` (Redis's remaining TTL of the key, ms), the entry's times are
 * moved to this process's clock: Redis's expiry, not the writer's clock,
 * decides how fresh a value is. `readAt` is when the read was sent (this
 * clock): Redis measured `pttl` after it, so however slow the reply, the
 * entry never looks younger or fresher than it is (tags compare its start).
 *
 * @example
 * ```ts
 * decodeEntry(encodeEntry({ v: new Map([[1, 'a']]), e: 1 })); // => { v: Map { 1 => 'a' }, e: 1 }
 * decodeEntry('not json'); // => undefined
 * ```
 */
export function decodeEntry(text: unknown, pttl?: number, readAt = Date.now()): StoredEntry | undefined {
  if (typeof text !== 'string') return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text, reviver) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || !('v' in parsed)) return undefined;
  const isTime = (value: unknown) => value === undefined || (typeof value === 'number' && Number.isFinite(value));
  if (typeof parsed.e !== 'number' || ![...TIMES, 'd', 'x'].every((field) => isTime(parsed[field]))) return undefined;
  const { g } = parsed;
  if (g !== undefined && !(Array.isArray(g) && g.every((tag) => typeof tag === 'string'))) return undefined;

  const entry: StoredEntry = { v: parsed.v === UNDEFINED ? undefined : parsed.v, e: parsed.e };
  const x = parsed.x as number | undefined;
  const shift = x !== undefined && pttl !== undefined && pttl > 0 ? readAt + pttl - x : 0;
  for (const field of TIMES) {
    const time = parsed[field] as number | undefined;
    if (time !== undefined) entry[field] = time + shift;
  }
  if (parsed.d !== undefined) entry.d = parsed.d as number;
  if (g !== undefined) entry.g = g as string[];
  return entry;
}
