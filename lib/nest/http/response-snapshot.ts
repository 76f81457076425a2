import { HeaderEntry, replayableHeaderChanges } from '../../http/header-policy';
import { varyFingerprint, varyNames } from '../../http/cache-rules';
import { HeaderValues } from '../../http/request-key';
import { HttpResponseLike, isSent, isShareableBody } from './platform';

/** What one response becomes for the other callers of its key, and in the store. */
export interface ResponseSnapshot {
  /** False for a stream or a response the handler sent itself: others run their own handler. */
  shareable: boolean;
  status: number;
  /** The headers the handler set, minus those never replayed. */
  headers: readonly HeaderEntry[];
  body: unknown;
  /** Size of the body as sent (JSON for objects), when it may be stored. */
  bytes: number;
  /** `Vary`: the request headers it depends on, and the leader's values of them (hashed). */
  vary?: { names: string[]; fingerprint: string };
  /** An `HttpException` the handler threw (its status listed in `statusTtl`): replayed as one. */
  error?: true;
}

const UNSHAREABLE: Omit<ResponseSnapshot, 'status'> = { shareable: false, headers: [], body: undefined, bytes: 0 };

/** Size of a body as it will be sent; not JSON-serializable counts as too big to store. */
export function bodyBytes(body: unknown): number {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.byteLength;
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * Takes the snapshot of the leader's response once its handler produced
 * `body`: the status, the headers that changed since `before` (so headers set
 * by middleware for every response are not replayed), and its `Vary`.
 */
export function captureSnapshot(
  body: unknown,
  response: HttpResponseLike,
  before: Readonly<Record<string, unknown>>,
  requestHeaders: HeaderValues,
  measure: boolean,
  answeredAlready: boolean,
): ResponseSnapshot {
  // A response sent before we answered it was sent by the handler itself.
  const sentByHandler = !answeredAlready && isSent(response);
  if (!isShareableBody(body) || sentByHandler) return { ...UNSHAREABLE, status: response.statusCode };
  const headers = replayableHeaderChanges(before, response.getHeaders());
  const snapshot: ResponseSnapshot = {
    shareable: true,
    status: response.statusCode,
    headers,
    body,
    bytes: measure ? bodyBytes(body) : 0,
  };
  const names = varyNames(headers);
  if (names.length > 0) snapshot.vary = { names, fingerprint: varyFingerprint(names, requestHeaders) };
  return snapshot;
}

/** True when `snapshot` varies on a request header whose value differs in `requestHeaders`. */
export function varyMismatch(snapshot: ResponseSnapshot, requestHeaders: HeaderValues): boolean {
  return (
    snapshot.vary !== undefined && varyFingerprint(snapshot.vary.names, requestHeaders) !== snapshot.vary.fingerprint
  );
}

/** The snapshot of an `HttpException` thrown by the handler, kept when `statusTtl` lists its status. */
export function captureErrorSnapshot(
  status: number,
  body: unknown,
  response: HttpResponseLike,
  before: Readonly<Record<string, unknown>>,
  measure: boolean,
): ResponseSnapshot {
  return {
    shareable: true,
    status,
    headers: replayableHeaderChanges(before, response.getHeaders()),
    body,
    bytes: measure ? bodyBytes(body) : 0,
    error: true,
  };
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
    'body' in snapshot
  );
}
