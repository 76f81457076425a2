import type { ApplicationConfig, Reflector } from '@nestjs/core';
import { RunPolicy, resolvePolicy } from '../../core/policy';
import { Freshness } from '../../core/freshness';
import { Logger, VersioningType } from '@nestjs/common';
import { MemoryStore } from '../../core/memory-store';
import { freshnessFromCacheControl, ttlForStatus } from '../../http/cache-rules';
import {
  COALESCE_METADATA,
  HEADERS_PARAMTYPE,
  IP_PARAMTYPE,
  NEXT_PARAMTYPE,
  RESPONSE_PARAMTYPE,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  SKIP_COALESCE_METADATA,
  SSE_METADATA,
  VERSION_METADATA,
} from '../stampede.constants';
import {
  CoalesceOptions,
  KeyFunction,
  ResolvedCoalesceOptions,
  ResolvedStampedeOptions,
} from '../options/stampede.options';
import { normalizeKeyBody, normalizeKeyHeaders } from '../options/stampede.validation';
import { ResponseSnapshot, isResponseSnapshot } from './response-snapshot';
import type { EdgeGate } from './edge/edge-gate';

/**
 * The core's policy for a route. `shareable`: a result no other caller may
 * be answered with (the core lets its waiters run their own work).
 */
export type RoutePolicy = RunPolicy<ResponseSnapshot>;

/** A route's settings: module options, then the controller's `@Coalesce`, then the route's. */
export interface RouteSettings {
  policy: RoutePolicy;
  /** `keyHeaders`, and the headers the handler's `@Headers('name')` parameters read (credentials aside). */
  keyHeaders: readonly string[];
  /** The handler reads the client's address (`@Ip()`): the key holds it, hashed. */
  keyClient: boolean;
  /** The handler's version, when the app routes one URL to a handler by version (header, media type, custom). */
  version?: string;
  key?: KeyFunction;
  tags?: CoalesceOptions['tags'];
  keyBody?: { maxBytes: number };
  /** Whether bodies must be measured (something may be stored). */
  measure: boolean;
  /** Whether a thrown `HttpException` of this status is stored (listed in `statusTtl`). */
  storesErrorStatus?: (status: number) => boolean;
  /** Request headers that identify a caller: a request with one runs alone unless the route keys by it. */
  credentialHeaders: readonly string[];
  /** The route's user key (`keyUser`): a request with `request.user` is coalesced per user only with it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  keyUser?: (user: any) => string | undefined;
  /** Set when the edge tier answers this route's hits: the interceptor tells it where the route's requests go. */
  edge?: EdgeGate;
}

/** Always a caller's own, whatever `credentialHeaders` says (RFC 9111 §3.5, Varnish's built-in VCL). */
const ALWAYS_CREDENTIALS = ['authorization', 'proxy-authorization', 'cookie'];

const logger = new Logger('Stampede');

/** A route the interceptor leaves alone. */
export const NOT_COALESCED = null;

/** True when the app routes one URL to one of several handlers by a version the request carries (not its URI). */
export function routesByVersion(config: ApplicationConfig | undefined): boolean {
  const versioning = config?.getVersioning();
  return versioning !== undefined && versioning.type !== VersioningType.URI;
}

/**
 * The name of the method `handler` is on the controller: Nest keeps a
 * route's parameter metadata under it, and a decorator that wraps the
 * handler (tracing, timing) gives the function another name.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
function methodNameOf(controller: Function, handler: Function): string {
  for (let owner = controller.prototype as object | null; owner !== null && owner !== Object.prototype;) {
    for (const name of Object.getOwnPropertyNames(owner)) {
      if (name !== 'constructor' && Object.getOwnPropertyDescriptor(owner, name)?.value === handler) return name;
    }
    owner = Object.getPrototypeOf(owner) as object | null;
  }
  return handler.name;
}

/** A handler's route parameters as Nest keeps them: type, and the name a parameter decorator was given. */
function parametersOf(controller: object, methodName: string): { type: number; data: unknown }[] {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, methodName) ?? {}) as Record<
    string,
    { data?: unknown }
  >;
  return Object.entries(args).map(([param, arg]) => ({ type: Number(param.split(':')[0]), data: arg?.data }));
}

/** `@Res()` without `passthrough`, or `@Next()`: the handler answers by hand. */
function sendsResponseItself(controller: object, methodName: string): boolean {
  const takesResponse = parametersOf(controller, methodName).some(
    ({ type }) => type === RESPONSE_PARAMTYPE || type === NEXT_PARAMTYPE,
  );
  return takesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, methodName);
}

/** The version a handler answers for (its own `@Version()`, else its controller's), as a key part. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
function versionOf(controller: Function, handler: Function): string {
  const version: unknown =
    Reflect.getMetadata(VERSION_METADATA, handler) ?? Reflect.getMetadata(VERSION_METADATA, controller);
  const name = (one: unknown) => (typeof one === 'symbol' ? `(${one.description ?? 'symbol'})` : String(one));
  if (version === undefined) return '(default)';
  return Array.isArray(version) ? version.map(name).join(',') : name(version);
}

/** Resolves a route's settings once; `null` when the route is not coalesced at all. */
export function resolveRouteSettings(
  reflector: Reflector,
  options: ResolvedStampedeOptions,
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  controller: Function,
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  handler: Function,
  /** Whether an interceptor runs outside ours on this route (it may map what we store). */
  mappedOutside: boolean,
  /** Whether the app routes one URL to several handlers by version (header, media type, custom). */
  routesByVersion = false,
): RouteSettings | null {
  if (reflector.getAllAndOverride<boolean>(SKIP_COALESCE_METADATA, [handler, controller])) return NOT_COALESCED;
  if (reflector.get(SSE_METADATA, handler)) return NOT_COALESCED;
  const methodName = methodNameOf(controller, handler);
  if (sendsResponseItself(controller, methodName)) return NOT_COALESCED;
  const fromClass = reflector.get<ResolvedCoalesceOptions | undefined>(COALESCE_METADATA, controller) ?? {};
  const fromHandler = reflector.get<ResolvedCoalesceOptions | undefined>(COALESCE_METADATA, handler) ?? {};
  const pick = <K extends keyof ResolvedCoalesceOptions>(name: K): ResolvedCoalesceOptions[K] | undefined =>
    fromHandler[name] ?? fromClass[name];

  const credentialHeaders = [
    ...new Set([...ALWAYS_CREDENTIALS, ...normalizeKeyHeaders(pick('credentialHeaders') ?? options.credentialHeaders)]),
  ];
  // What the handler's parameters read of the request, past the URL, the body and the user, splits the key:
  // its named headers (a credential stays its caller's: the request runs alone unless `keyHeaders` names it).
  const parameters = parametersOf(controller, methodName);
  const explicitKeyHeaders = pick('keyHeaders');
  // `@Headers()` hands the handler every header, which no key can hold: unless the route says what it reads.
  if (
    explicitKeyHeaders === undefined &&
    pick('key') === undefined &&
    parameters.some(({ type, data }) => type === HEADERS_PARAMTYPE && data === undefined)
  ) {
    logger.warn(
      `${controller.name}.${methodName} reads every request header (@Headers()), which its key cannot hold: it is not ` +
        `coalesced. Name the headers it reads (@Headers('x-tenant')), or give it keyHeaders or a key function.`,
    );
    return NOT_COALESCED;
  }
  const readHeaders = parameters
    .filter(({ type, data }) => type === HEADERS_PARAMTYPE && typeof data === 'string')
    .map(({ data }) => (data as string).toLowerCase())
    .filter((name) => !credentialHeaders.includes(name));
  const keyHeaders = normalizeKeyHeaders([...(explicitKeyHeaders ?? options.keyHeaders), ...readHeaders]);
  const key = pick('key') ?? options.key;
  const ttl = pick('ttl') ?? options.ttl;
  const maxBodyBytes = pick('maxBodyBytes') ?? options.maxBodyBytes;
  const statusTtl = pick('statusTtl') ?? options.statusTtl;
  const respectCacheControl = pick('respectCacheControl') ?? options.respectCacheControl;
  // A serializing store (Keyv, cache-manager, Redis) loses a class instance's class, and with it
  // what a serializer outside this interceptor would remove (@Exclude): such bodies are not stored
  // there. Without an interceptor outside, what is stored is what Nest sends (JSON) anyway.
  const keepsInstances =
    !mappedOutside || (!options.redis && (options.store === undefined || options.store instanceof MemoryStore));
  let warned = false;
  const storableBody = (snapshot: ResponseSnapshot): boolean => {
    if (!snapshot.instances || keepsInstances) return true;
    if (!warned) {
      warned = true;
      logger.warn(
        `${controller.name}.${methodName} returns class instances, which the store would keep without their class ` +
          `(a serializer such as ClassSerializerInterceptor outside StampedeInterceptor would then not apply): ` +
          `its responses are coalesced but not stored. Put the serializer inside ` +
          `(@UseInterceptors(StampedeInterceptor, ClassSerializerInterceptor)) or return plain objects.`,
      );
    }
    return false;
  };
  const keyBody = pick('keyBody');
  // A background refresh runs the handler of a request already answered (stale):
  // one that sets headers through @Res({ passthrough: true }) would set them on a
  // sent response (Express throws). Such routes get no background refresh.
  const refreshesInBackground = !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, methodName);

  const freshnessFor =
    statusTtl !== undefined || respectCacheControl
      ? (snapshot: ResponseSnapshot): Partial<Freshness> | undefined => {
          const freshness: Partial<Freshness> = {};
          const forStatus = ttlForStatus(snapshot.status, ttl, statusTtl);
          if (forStatus !== undefined) freshness.ttl = forStatus;
          if (respectCacheControl) Object.assign(freshness, freshnessFromCacheControl(snapshot.cacheControl));
          return freshness;
        }
      : undefined;

  // The core's options merge like everywhere (route, controller, module); the HTTP answers are added here.
  const core = resolvePolicy<ResponseSnapshot>(options, [fromHandler, fromClass], {
    cacheable: (snapshot) =>
      snapshot.shareable &&
      ttlForStatus(snapshot.status, ttl, statusTtl) !== undefined &&
      snapshot.bytes <= maxBodyBytes &&
      storableBody(snapshot),
    shareable: (snapshot) => snapshot.shareable,
    freshnessFor,
    // Stale-if-error for HTTP: thrown errors and 5xx responses.
    isFailure: (snapshot) => snapshot.status >= 500,
    isValid: isResponseSnapshot,
  });
  if (!refreshesInBackground) {
    // Each of these answers a request first and runs its handler after.
    core.staleTtl = 0;
    core.earlyRefresh = undefined;
    core.softTimeout = 0;
  }

  return {
    policy: core,
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
    credentialHeaders,
    keyClient: parameters.some(({ type }) => type === IP_PARAMTYPE),
    ...(routesByVersion ? { version: versionOf(controller, handler) } : {}),
    keyUser: pick('keyUser') ?? options.keyUser,
  };
}
