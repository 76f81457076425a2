import { responseForbidsStore, varyFingerprint, varyNames } from '../../http/cache-rules';
import { HeaderEntry, replayableHeaderChanges } from '../../http/header-policy';
import { HeaderValues } from '../../http/request-key';
import {
  Preconditions,
  bodyETag,
  hasValidatedStatus,
  isNotModified,
  isNotModifiedHeader,
  notModifiedETag,
} from '../../http/validators';
import { isShareableBody } from './platform';

/** What one response becomes for the other callers of its key, and in the store. */
export interface ResponseSnapshot {
  /**
   * False when no other caller may be answered with it: a stream, a response
   * the handler sent itself, `Cache-Control: private / no-store`, `Vary: *`,
   * or a `Set-Cookie`. Others then run their own handler.
   */
  shareable: boolean;
  status: number;
  /** The headers the handler set, minus those never replayed. */
  headers: readonly HeaderEntry[];
  body: unknown;
  /** Size of the body as sent (JSON for objects), when it may be stored. */
  bytes: number;
  /** `Vary` of the response as sent: the request headers it depends on, and the leader's values of them (hashed). */
  vary?: { names: string[]; fingerprint: string };
  /** `Cache-Control` of the response as sent (for `respectCacheControl`), whoever set it. */
  cacheControl?: string;
  /** An `HttpException` the handler threw (its status listed in `statusTtl`): replayed as one. */
  error?: true;
  /** The body holds class instances: a serializer outside may depend on their class, which a serializing store loses. */
  instances?: true;
  /**
   * The validator of a 2xx response: the handler's own `ETag`, else a strong
   * ETag of the body, computed once here and replayed in `headers` like one
   * the handler set (also beside a `Last-Modified`: RFC 9110 §8.8.1 asks for both).
   */
  etag?: string;
  /** The handler's own `Last-Modified`, for `If-Modified-Since`. */
  lastModified?: string;
}

/** The response as it stands when the handler has finished, read by the platform. */
export interface FinishedResponse {
  status: number;
  /** Every header it holds now, whoever set it (handler, `@Header()`, middleware, hooks). */
  headers: Readonly<Record<string, unknown>>;
  /** Its headers before the handler ran: only what changed since is replayed. */
  before: Readonly<Record<string, unknown>>;
  /** Sent by the handler itself (`@Res()`): nothing to share. */
  sentByHandler: boolean;
  /** It sets a cookie (a `Set-Cookie` header, or one a plugin writes when sending). */
  setsCookie: boolean;
}

/** A body as it will be sent (JSON for objects), and whether it holds class instances; `undefined` text: unserializable. */
function serialize(body: unknown): { text: string | Uint8Array | undefined; instances: boolean } {
  if (body === undefined || body === null) return { text: '', instances: false };
  if (typeof body === 'string' || body instanceof Uint8Array) return { text: body, instances: false };
  let instances = false;
  try {
    const text = JSON.stringify(body, (_name, value: unknown) => {
      if (!instances && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const proto = Object.getPrototypeOf(value) as unknown;
        instances = proto !== Object.prototype && proto !== null;
      }
      return value;
    });
    return { text: text ?? '', instances };
  } catch {
    return { text: undefined, instances };
  }
}

function byteLength(text: string | Uint8Array | undefined): number {
  if (text === undefined) return Number.POSITIVE_INFINITY;
  return typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
}

/** Size of a body as it will be sent (JSON for objects), and whether it holds class instances; unserializable counts as too big. */
export function measureBody(body: unknown): { bytes: number; instances: boolean } {
  const { text, instances } = serialize(body);
  return { bytes: byteLength(text), instances };
}

function asText(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/**
 * Takes the snapshot of a finished response. What decides (may it be shared,
 * on what does it vary, how fresh is it) is read from the whole response as
 * sent; what is replayed to others is only what the handler changed.
 */
export function captureSnapshot(
  body: unknown,
  response: FinishedResponse,
  requestHeaders: HeaderValues,
  measure: boolean,
  error = false,
): ResponseSnapshot {
  const unshareable = { shareable: false, status: response.status, headers: [], body: undefined, bytes: 0 };
  if (response.sentByHandler || (!error && !isShareableBody(body))) return unshareable;
  const sent = response.headers;
  const control = asText(sent['cache-control']);
  const vary = asText(sent['vary']);
  const decisive: HeaderEntry[] = [];
  if (control !== undefined) decisive.push(['cache-control', control]);
  if (vary !== undefined) decisive.push(['vary', vary]);
  // private, no-store, Vary: * (RFC 9111 §3, §4.1); a cookie is one caller's own (Varnish's built-in VCL).
  if (response.setsCookie || responseForbidsStore(decisive)) return unshareable;
  const names = varyNames(decisive);
  const headers = replayableHeaderChanges(response.before, sent);
  const snapshot: ResponseSnapshot = { shareable: true, status: response.status, headers, body, bytes: 0 };
  const validated = !error && hasValidatedStatus(response.status);
  const etag = validated ? asText(sent['etag']) : undefined;
  const lastModified = validated ? asText(sent['last-modified']) : undefined;
  // The handler's own validator is kept as it is; without one, the body's ETag, computed here once.
  const tagsBody = validated && etag === undefined;
  if (measure || tagsBody) {
    const serialized = serialize(body);
    if (measure) {
      snapshot.bytes = byteLength(serialized.text);
      if (serialized.instances) snapshot.instances = true;
    }
    if (tagsBody && serialized.text !== undefined) {
      snapshot.etag = bodyETag.of(serialized.text);
      headers.push(['etag', snapshot.etag]);
    }
  }
  if (etag !== undefined) snapshot.etag = etag;
  if (lastModified !== undefined) snapshot.lastModified = lastModified;
  if (control !== undefined) snapshot.cacheControl = control;
  if (names.length > 0) snapshot.vary = { names, fingerprint: varyFingerprint(names, requestHeaders) };
  if (error) snapshot.error = true;
  return snapshot;
}

/** True when `snapshot` varies on a request header whose value differs in `requestHeaders`. */
export function varyMismatch(snapshot: ResponseSnapshot, requestHeaders: HeaderValues): boolean {
  return (
    snapshot.vary !== undefined && varyFingerprint(snapshot.vary.names, requestHeaders) !== snapshot.vary.fingerprint
  );
}

/** True when a request's `preconditions` say its client holds `snapshot` already: a 304 answers it. */
export function answersNotModified(preconditions: Preconditions | undefined, snapshot: ResponseSnapshot): boolean {
  return (
    preconditions !== undefined &&
    snapshot.shareable &&
    snapshot.error === undefined &&
    hasValidatedStatus(snapshot.status) &&
    isNotModified(preconditions, snapshot)
  );
}

/**
 * The stored headers a replay sends: all of them, or for a 304 those it
 * carries (RFC 9110 §15.4.5), its ETag in the form the client holds
 * (`notModifiedETag`: weak after an encoded body).
 */
export function replayedHeaders(
  snapshot: ResponseSnapshot,
  notModified: boolean,
  requestHeaders: HeaderValues,
): readonly HeaderEntry[] {
  if (!notModified) return snapshot.headers;
  const headers: HeaderEntry[] = [];
  for (const [name, value] of snapshot.headers) {
    if (!isNotModifiedHeader(name)) continue;
    headers.push(
      name === 'etag' && typeof value === 'string' ? [name, notModifiedETag(value, requestHeaders)] : [name, value],
    );
  }
  return headers;
}

/** True when a value read from a store has the shape of a snapshot (else it is a miss, never served). */
export function isResponseSnapshot(value: unknown): value is ResponseSnapshot {
  if (value === null || typeof value !== 'object') return false;
  const snapshot = value as Partial<ResponseSnapshot>;
  return (
    snapshot.shareable === true &&
    Number.isInteger(snapshot.status) &&
    (snapshot.status as number) >= 100 &&
    (snapshot.status as number) <= 599 &&
    Array.isArray(snapshot.headers) &&
    snapshot.headers.every(
      (header) =>
        Array.isArray(header) &&
        header.length === 2 &&
        typeof header[0] === 'string' &&
        (typeof header[1] === 'string' ||
          typeof header[1] === 'number' ||
          (Array.isArray(header[1]) && header[1].every((v) => typeof v === 'string'))),
    ) &&
    typeof snapshot.bytes === 'number' &&
    (snapshot.cacheControl === undefined || typeof snapshot.cacheControl === 'string') &&
    (snapshot.etag === undefined || typeof snapshot.etag === 'string') &&
    (snapshot.lastModified === undefined || typeof snapshot.lastModified === 'string') &&
    (snapshot.vary === undefined ||
      (Array.isArray(snapshot.vary.names) &&
        snapshot.vary.names.every((name) => typeof name === 'string') &&
        typeof snapshot.vary.fingerprint === 'string'))
    // No `'body' in snapshot`: JSON stores (Keyv, cache-manager, Redis) drop a body left `undefined`.
  );
}
