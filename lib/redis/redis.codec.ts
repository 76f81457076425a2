import { StoredEntry } from '../core/store';

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
  if (raw === undefined && key === '') return tag('u');
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
      return undefined;
    default:
      throw new MalformedTag();
  }
}

function isEntries(value: unknown): value is [unknown, unknown][] {
  return Array.isArray(value) && value.every((entry) => Array.isArray(entry) && entry.length === 2);
}

/**
 * Serializes a stored entry for Redis. Throws (`TypeError`) for a value JSON
 * cannot hold, e.g. a circular one: such a value is not stored.
 *
 * @example
 * ```ts
 * const text = encodeEntry({ v: { at: new Date(0), body: Buffer.from('hi') }, e: Date.now() + 5000 });
 * ```
 */
export function encodeEntry(entry: StoredEntry): string {
  return JSON.stringify({ e: entry.e, v: entry.v }, replacer);
}

/**
 * Reads back what `encodeEntry` wrote; anything else (garbage, another
 * program's data under the prefix, a malformed tag) is `undefined`, a miss.
 *
 * @example
 * ```ts
 * decodeEntry(encodeEntry({ v: new Map([[1, 'a']]), e: 1 })); // => { v: Map { 1 => 'a' }, e: 1 }
 * decodeEntry('not json'); // => undefined
 * ```
 */
export function decodeEntry(text: unknown): StoredEntry | undefined {
  if (typeof text !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, reviver);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const { e } = parsed as Partial<StoredEntry>;
  if (typeof e !== 'number' || !Number.isFinite(e) || (!('v' in parsed) && !isUndefinedValue(text))) return undefined;
  return { v: (parsed as StoredEntry).v, e };
}

// `{"e":1,"v":{"$t":"u"}}`: the reviver returned undefined, so JSON.parse dropped `v`.
function isUndefinedValue(text: string): boolean {
  return text.endsWith(`"v":{"${TAG}":"u"}}`);
}
