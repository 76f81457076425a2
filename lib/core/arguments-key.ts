/** Thrown for an argument that has no stable serialization (a function, a symbol, a cycle). */
export class UnserializableArgumentError extends Error {
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(`argument ${path} is ${what}`);
    this.name = 'UnserializableArgumentError';
  }
}

/**
 * A stable text for a list of arguments, equal for equal values: object key
 * order does not matter; `undefined`, `NaN`, `-0`, `BigInt`, `Date`, `Map`,
 * `Set`, typed arrays and nested values are told apart by a type tag, so
 * values that differ never share a key (`1` vs `'1'`, `null` vs `undefined`).
 * Class instances are serialized by their own enumerable fields and class name.
 *
 * @throws UnserializableArgumentError for functions, symbols and cycles.
 */
export function argumentsKey(args: readonly unknown[]): string {
  // The common case, one primitive argument, without the generic walk.
  if (args.length === 1) {
    const only = args[0];
    const type = typeof only;
    if (type === 'string') return `[${JSON.stringify(only)}]`;
    if (type === 'number' && !Object.is(only, -0)) return `[${String(only)}]`;
  } else if (args.length === 0) {
    return '[]';
  }
  return serialize(args, '$', new Set());
}

/** Keys remembered per method for single-primitive calls (a hot method is called with a few values). */
const REMEMBERED = 256;

/**
 * The keys of one method's calls: `prefix` + `argumentsKey(args)` + `)`. The
 * key of a call with one string or number argument is remembered: building
 * and hashing a new key string on every call costs more than the rest of a
 * cached call.
 */
export class CallKeys {
  private readonly remembered = new Map<unknown, string>();
  // The last one-primitive call: a burst of callers with one argument (a stampede) skips the Map.
  private lastArgument: unknown;
  private lastKey?: string;

  constructor(private readonly prefix: string) {}

  /** The key of `of([only])` when `only` is the argument of the last call whose key was remembered; else `undefined`. */
  repeated(only: unknown): string | undefined {
    return this.lastKey !== undefined && Object.is(only, this.lastArgument) ? this.lastKey : undefined;
  }

  of(args: readonly unknown[]): string {
    const only = args[0];
    const repeated = args.length === 1 ? this.repeated(only) : undefined;
    if (repeated !== undefined) return repeated;
    const type = typeof only;
    // A Map takes -0 for 0; argumentsKey does not.
    const remembers =
      args.length === 1 &&
      ((type === 'string' && (only as string).length <= 256) || (type === 'number' && !Object.is(only, -0)));
    if (!remembers) return `${this.prefix}${argumentsKey(args)})`;
    let key = this.remembered.get(only);
    if (key === undefined) {
      key = `${this.prefix}${argumentsKey(args)})`;
      if (this.remembered.size >= REMEMBERED) this.remembered.clear();
      this.remembered.set(only, key);
    }
    this.lastArgument = only;
    this.lastKey = key;
    return key;
  }
}

function serialize(value: unknown, path: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n`;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return 'undefined';
    case 'function':
      throw new UnserializableArgumentError(path, 'a function');
    case 'symbol':
      throw new UnserializableArgumentError(path, 'a symbol');
  }
  if (value === null) return 'null';
  const object = value as object;
  if (seen.has(object)) throw new UnserializableArgumentError(path, 'a circular reference');
  seen.add(object);
  try {
    return serializeObject(object, path, seen);
  } finally {
    seen.delete(object);
  }
}

function serializeObject(object: object, path: string, seen: Set<object>): string {
  if (Array.isArray(object)) {
    return `[${object.map((item, i) => serialize(item, `${path}[${i}]`, seen)).join(',')}]`;
  }
  if (object instanceof Date) return `Date(${Number.isNaN(object.getTime()) ? 'invalid' : object.toISOString()})`;
  if (object instanceof RegExp) return `RegExp(${String(object)})`;
  if (ArrayBuffer.isView(object)) {
    const bytes = new Uint8Array(object.buffer, object.byteOffset, object.byteLength);
    return `${object.constructor.name}(${Buffer.from(bytes).toString('base64')})`;
  }
  if (object instanceof Map) {
    const entries = [...object].map(
      ([k, v], i) => `${serialize(k, `${path}.key${i}`, seen)}=>${serialize(v, `${path}.get(${i})`, seen)}`,
    );
    return `Map{${entries.sort().join(',')}}`;
  }
  if (object instanceof Set) {
    return `Set{${[...object]
      .map((v, i) => serialize(v, `${path}.item${i}`, seen))
      .sort()
      .join(',')}}`;
  }
  if (object instanceof Promise || object instanceof WeakMap || object instanceof WeakSet) {
    throw new UnserializableArgumentError(path, `a ${object.constructor.name}`);
  }
  const proto = Object.getPrototypeOf(object) as object | null;
  const tag = proto === null || proto === Object.prototype ? '' : (proto.constructor?.name ?? 'Object');
  const fields = Object.keys(object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${serialize((object as Record<string, unknown>)[k], `${path}.${k}`, seen)}`);
  return `${tag}{${fields.join(',')}}`;
}
