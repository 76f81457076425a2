import { Reflector } from '@nestjs/core';
import { RunPolicy } from '../../core/coalescer';
import { Freshness } from '../../core/freshness';
import { freshnessFromCacheControl, responseForbidsStore, ttlForStatus } from '../../http/cache-rules';
import {
  COALESCE_METADATA,
  NEXT_PARAMTYPE,
  RESPONSE_PARAMTYPE,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  SKIP_COALESCE_METADATA,
  SSE_METADATA,
} from '../../stampede.constants';
import { CoalesceOptions, KeyFunction, ResolvedStampedeOptions } from '../../stampede.options';
import { normalizeEarlyRefresh, normalizeKeyBody, normalizeKeyHeaders } from '../../stampede.validation';
import { ResponseSnapshot, isResponseSnapshot } from './response-snapshot';

/** A route's settings: module options, then the controller's `@Coalesce`, then the route's. */
export interface RouteSettings {
  policy: RunPolicy<ResponseSnapshot>;
  keyHeaders: readonly string[];
  key?: KeyFunction;
  tags?: CoalesceOptions['tags'];
  keyBody?: { maxBytes: number };
  /** Whether bodies must be measured (something may be stored). */
  measure: boolean;
  /** Whether a thrown `HttpException` of this status is stored (listed in `statusTtl`). */
  storesErrorStatus?: (status: number) => boolean;
  /** Whether `Authorization` / `Cookie` requests may be coalesced (listed in keyHeaders, or a key function). */
  trustsCredentials: { authorization: boolean; cookie: boolean };
}

/** A route the interceptor leaves alone. */
export const NOT_COALESCED = null;

/** `@Res()` without `passthrough`, or `@Next()`: the handler answers by hand. */
function sendsResponseItself(controller: object, methodName: string): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, methodName) ?? {}) as Record<string, unknown>;
  const takesResponse = Object.keys(args).some((param) => {
    const type = Number(param.split(':')[0]);
    return type === RESPONSE_PARAMTYPE || type === NEXT_PARAMTYPE;
  });
  return takesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, methodName);
}

/** Resolves a route's settings once; `null` when the route is not coalesced at all. */
export function resolveRouteSettings(
  reflector: Reflector,
  options: ResolvedStampedeOptions,
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  controller: Function,
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  handler: Function,
): RouteSettings | null {
  if (reflector.getAllAndOverride<boolean>(SKIP_COALESCE_METADATA, [handler, controller])) return NOT_COALESCED;
  if (reflector.get(SSE_METADATA, handler)) return NOT_COALESCED;
  if (sendsResponseItself(controller, handler.name)) return NOT_COALESCED;
  const fromClass = reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, controller) ?? {};
  const fromHandler = reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, handler) ?? {};
  const pick = <K extends keyof CoalesceOptions>(name: K): CoalesceOptions[K] | undefined =>
    fromHandler[name] ?? fromClass[name];

  const keyHeaders = normalizeKeyHeaders(pick('keyHeaders') ?? [...options.keyHeaders]);
  const key = pick('key') ?? options.key;
  const ttl = pick('ttl') ?? options.ttl;
  const maxBodyBytes = pick('maxBodyBytes') ?? options.maxBodyBytes;
  const statusTtl = pick('statusTtl') ?? options.statusTtl;
  const respectCacheControl = pick('respectCacheControl') ?? options.respectCacheControl;
  const staleTtl = pick('staleTtl') ?? options.staleTtl;
  const staleIfError = pick('staleIfError') ?? options.staleIfError;
  const earlyRefresh = pick('earlyRefresh');
  const keyBody = pick('keyBody');
  // A background refresh runs the handler of a request already answered (stale):
  // one that sets headers through @Res({ passthrough: true }) would set them on a
  // sent response (Express throws). Such routes get no background refresh.
  const refreshesInBackground = !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, handler.name);

  const freshnessFor =
    statusTtl !== undefined || respectCacheControl
      ? (snapshot: ResponseSnapshot): Partial<Freshness> | undefined => {
          const freshness: Partial<Freshness> = {};
          const forStatus = ttlForStatus(snapshot.status, ttl, statusTtl);
          if (forStatus !== undefined) freshness.ttl = forStatus;
          if (respectCacheControl) Object.assign(freshness, freshnessFromCacheControl(snapshot.headers));
          return freshness;
        }
      : undefined;

  return {
    policy: {
      ttl,
      cacheable: (snapshot) =>
        snapshot.shareable &&
        ttlForStatus(snapshot.status, ttl, statusTtl) !== undefined &&
        snapshot.bytes <= maxBodyBytes &&
        !responseForbidsStore(snapshot.headers),
      freshnessFor,
      // Stale-if-error for HTTP: thrown errors and 5xx responses.
      isFailure: (snapshot) => snapshot.status >= 500,
      timeout: pick('timeout') ?? options.timeout,
      waitTimeout: pick('waitTimeout') ?? options.waitTimeout,
      onWaitTimeout: pick('onWaitTimeout') ?? options.onWaitTimeout,
      staleTtl: refreshesInBackground ? staleTtl : 0,
      staleIfError,
      earlyRefresh: !refreshesInBackground
        ? undefined
        : earlyRefresh !== undefined
          ? normalizeEarlyRefresh(earlyRefresh)
          : options.earlyRefresh,
      isValid: isResponseSnapshot,
    },
    keyHeaders,
    key,
    tags: pick('tags') ?? options.tags,
    keyBody: keyBody !== undefined ? normalizeKeyBody(keyBody) : options.keyBody,
    measure: ttl > 0 || freshnessFor !== undefined,
    storesErrorStatus:
      statusTtl === undefined
        ? undefined
        : (status) => {
            const listed = typeof statusTtl === 'function' ? statusTtl(status) : statusTtl[status];
            return listed !== undefined && listed > 0;
          },
    trustsCredentials: {
      authorization: key !== undefined || keyHeaders.includes('authorization'),
      cookie: key !== undefined || keyHeaders.includes('cookie'),
    },
  };
}
