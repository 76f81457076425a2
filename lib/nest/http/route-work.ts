import { ExecutionContext, createParamDecorator } from '@nestjs/common';
import { Freshness } from '../../core/freshness';
import { StaleValue, WorkContext } from '../../core/work-context';
import { hasValidatedStatus } from '../../http/validators';
import { HeaderValues } from '../../http/request-key';
import { ResponseSnapshot, varyMismatch } from './response-snapshot';

/**
 * A route handler's view of its flight's work context. The flight stores
 * response snapshots; the handler deals in bodies: `stale` is the body it
 * returned last time, with the validators stored beside it, and
 * `notModified()` keeps the whole stored response (status, headers, body)
 * as it is, fresh for a new ttl.
 */
export class RouteWork<T = unknown> implements WorkContext<T> {
  readonly stale?: StaleValue<T>;
  private kept = false;

  constructor(
    private readonly flight: WorkContext<ResponseSnapshot>,
    requestHeaders: HeaderValues,
  ) {
    const old = flight.stale;
    // A kept error (statusTtl) is nothing to revalidate: only a 2xx response has validators. Nor is
    // another variant (Vary): kept as this caller's answer, it would be another caller's response.
    if (
      old !== undefined &&
      old.value.error === undefined &&
      hasValidatedStatus(old.value.status) &&
      !varyMismatch(old.value, requestHeaders)
    ) {
      const { body, etag, lastModified } = old.value;
      this.stale = { value: body as T, storedAt: old.storedAt, expiresAt: old.expiresAt, etag, lastModified };
    }
  }

  get signal(): AbortSignal {
    return this.flight.signal;
  }

  setFreshness(freshness: Partial<Freshness>): void {
    this.flight.setFreshness(freshness);
  }

  setTags(tags: string[]): void {
    this.flight.setTags(tags);
  }

  skipStore(): void {
    this.flight.skipStore();
  }

  notModified(): T {
    if (this.stale === undefined) {
      throw new Error('nestjs-stampede: notModified() needs an old value (work.stale is undefined)');
    }
    this.kept = true;
    return this.stale.value;
  }

  /** The stored response, when the handler answered with `notModified()` (and returned what it gave). */
  keptResponse(body: unknown): ResponseSnapshot | undefined {
    return this.kept && this.stale !== undefined && body === this.stale.value ? this.flight.stale?.value : undefined;
  }
}

// Keyed by the response object: the one the interceptor and a handler's parameters both see.
const byResponse = new WeakMap<object, RouteWork>();

/** Makes `work` the one `@CurrentWork()` hands the handler answering `response`. */
export function bindRouteWork(response: object, work: RouteWork): void {
  byResponse.set(response, work);
}

/**
 * A route handler parameter: the work context of the flight this request
 * leads (`undefined` when it does not: a hit, a follower, a request let
 * through alone). `currentWork()` cannot serve a route: Nest calls the
 * handler after a turn of its interceptor chain, once ours has returned.
 *
 * @example
 * ```ts
 * @Get('rates')
 * @Coalesce({ ttl: 60_000, staleTtl: 600_000 })
 * async rates(@CurrentWork() work?: WorkContext<Rates>) {
 *   const upstream = await fetch(RATES_URL, { headers: work?.stale ? { 'if-none-match': work.stale.value.etag } : {} });
 *   if (upstream.status === 304 && work?.stale) return work.notModified(); // the stored response, fresh again
 *   return { etag: upstream.headers.get('etag'), ...(await upstream.json()) };
 * }
 * ```
 */
export const CurrentWork = createParamDecorator((_data: unknown, context: ExecutionContext): WorkContext | undefined =>
  byResponse.get(context.switchToHttp().getResponse<object>()),
);
