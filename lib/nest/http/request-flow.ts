import { CallHandler, GatewayTimeoutException, HttpException } from '@nestjs/common';
import { Observable, catchError, map, mergeMap, of, throwError } from 'rxjs';
import { Answer } from '../../core/answer';
import { BypassReason } from '../../core/events';
import { StampedeTimeoutError } from '../../core/deadline';
import { WorkContext } from '../../core/work-context';
import { ageSeconds, varyFingerprint } from '../../http/cache-rules';
import { CACHE_NAME, cacheStatus } from '../../http/cache-status';
import { HeaderValues, variantKey } from '../../http/request-key';
import { Preconditions, notModifiedETag } from '../../http/validators';
import { StampedeEngine } from '../stampede.engine';
import { ResolvedStampedeOptions } from '../options/stampede.options';
import { weakenETagWhenEncoded } from './encoded-etag';
import { HttpResponseLike, Platform } from './platform';
import {
  FinishedResponse,
  ResponseSnapshot,
  answersNotModified,
  captureSnapshot,
  replayedHeaders,
  varyMismatch,
} from './response-snapshot';
import { RoutePolicy, RouteSettings } from './route-settings';
import { RouteWork, bindRouteWork } from './route-work';

/** What every request's flow shares: the interceptor's parts. */
export interface FlowDeps {
  engine: StampedeEngine;
  options: ResolvedStampedeOptions;
  platform: Platform;
}

/**
 * One coalesced request, step by step: `hit` (a fresh in-process value,
 * replayed at once), `leadOrFollow` (run the handler for everyone, or wait
 * for the one that does), `settle` (what this caller makes of the answer),
 * `replay` (another caller's response as this one's), `variant` (the
 * response varies on a header this caller sent differently: its own key).
 */
export class RequestFlow {
  /** What this caller's own handler produced, when it ran (leader, or alone). */
  private ownBody: unknown;
  private ownError: unknown;
  private ranOwn = false;
  // Set once this caller is answered from elsewhere (a stale value) while its
  // handler may still run as the background refresh: its response is then ours, not the handler's.
  private answered = false;
  /**
   * The response as it stood when this caller was answered while its handler
   * still ran: what that handler's result is stored with, not the status and
   * headers (a 304, another value's ETag) the answer wrote over it.
   */
  private beforeAnswer?: { status: number; headers: Record<string, unknown> };
  /** This caller's handler revalidated the stored response (`notModified()`): it is answered with that response. */
  private revalidated = false;

  constructor(
    private readonly deps: FlowDeps,
    private readonly next: CallHandler,
    private readonly route: RouteSettings,
    private readonly policy: RoutePolicy,
    private readonly requestHeaders: HeaderValues,
    private readonly response: HttpResponseLike,
    /** `If-None-Match` / `If-Modified-Since` of a GET or HEAD: a 304 may answer it. */
    private readonly preconditions?: Preconditions,
  ) {}

  /** Answers this request for `key`. */
  run(key: string): Observable<unknown> {
    return this.hit(key, false);
  }

  /** Lets the request through alone, uncoalesced, saying why. */
  alone(key: string, reason: BypassReason, mark = true): Observable<unknown> {
    this.deps.engine.coalescer.report('bypass', key, { reason });
    if (mark) this.mark(cacheStatus('bypass'));
    return this.next.handle();
  }

  /** The hit path: a fresh in-process value is replayed without the Observable machinery. */
  private hit(key: string, isVariant: boolean): Observable<unknown> {
    // A value that varies on a header this caller sent differently is not its hit (and not counted as one).
    const fresh = this.deps.engine.coalescer.peek(
      key,
      this.policy,
      (snapshot) => !varyMismatch(snapshot, this.requestHeaders),
    );
    if (fresh === undefined) return this.leadOrFollow(key, isVariant);
    if ('declined' in fresh) return this.variant(key, fresh.declined, isVariant);
    return this.replay(fresh.value, fresh);
  }

  private leadOrFollow(key: string, isVariant: boolean): Observable<unknown> {
    return this.deps.engine.coalescer
      .run$(key, (_signal, work) => this.handle(work), this.policy)
      .pipe(
        catchError((error: unknown) => this.failed(error)),
        mergeMap((lookup) => this.settle(key, isVariant, lookup)),
      );
  }

  /**
   * This caller's own handler, as the work of a flight: its response as a
   * snapshot, or the stored one kept as it is when the handler said `notModified()`.
   */
  private handle(work: WorkContext<ResponseSnapshot>): Observable<ResponseSnapshot> {
    this.ranOwn = true;
    const before = { ...this.response.getHeaders() };
    const { route, requestHeaders } = this;
    // The handler sees bodies, not snapshots, through `@CurrentWork()`.
    const routeWork = new RouteWork(work, requestHeaders);
    bindRouteWork(this.response, routeWork);
    return this.next.handle().pipe(
      map((body) => {
        this.ownBody = body;
        const kept = routeWork.keptResponse(body);
        if (kept !== undefined) {
          this.revalidated = true;
          return kept;
        }
        const snapshot = captureSnapshot(body, this.finished(before), requestHeaders, route.measure);
        // The edge answers only with responses its own route produced.
        route.edge?.mark(snapshot);
        return snapshot;
      }),
      catchError((error: unknown) => {
        // An HttpException whose status `statusTtl` lists (e.g. 404) is kept like a response.
        if (!(error instanceof HttpException) || !route.storesErrorStatus?.(error.getStatus())) throw error;
        this.ownError = error;
        const finished = this.finished(before, error.getStatus());
        return of(captureSnapshot(error.getResponse(), finished, requestHeaders, route.measure, true));
      }),
    );
  }

  private finished(before: Record<string, unknown>, status?: number): FinishedResponse {
    const { platform } = this.deps;
    const headers = this.beforeAnswer?.headers ?? this.response.getHeaders();
    return {
      status: status ?? this.beforeAnswer?.status ?? this.response.statusCode,
      headers,
      before,
      // A response sent before we answered it was sent by the handler itself.
      sentByHandler: !this.answered && platform.isSent(this.response),
      setsCookie: platform.setsCookie(this.response, headers),
    };
  }

  /** What this caller makes of the answer of its key. */
  private settle(key: string, isVariant: boolean, lookup: Answer<ResponseSnapshot>): Observable<unknown> {
    const snapshot = lookup.value;
    if (lookup.outcome === 'miss' && this.revalidated) return this.replayRevalidated(snapshot, lookup);
    if (lookup.outcome === 'miss' || lookup.outcome === 'bypass') {
      this.mark(lookup.outcome === 'bypass' ? cacheStatus('bypass') : cacheStatus('miss', { stored: lookup.stored }));
      return this.ownError === undefined ? this.own(snapshot) : throwError(() => this.ownError);
    }
    // Not for others (private, a cookie, a stream, sent by hand): this caller runs its own handler.
    if (!snapshot.shareable) return this.alone(key, 'uncacheable');
    if (varyMismatch(snapshot, this.requestHeaders)) return this.variant(key, snapshot, isVariant);
    this.answered = true;
    // Its handler may still run (the refresh behind a stale answer, or past softTimeout).
    if (this.ranOwn) this.beforeAnswer = { status: this.response.statusCode, headers: this.headersNow() };
    return this.replay(snapshot, lookup);
  }

  /**
   * The response varies on a request header this caller sent differently: it
   * is not this caller's. Its values of those headers make a key of their own,
   * coalesced and stored apart (RFC 9111 §4.1); a variant that varies again runs alone.
   */
  private variant(key: string, snapshot: ResponseSnapshot, isVariant: boolean): Observable<unknown> {
    if (isVariant || !snapshot.vary) return this.alone(key, 'vary-mismatch');
    return this.hit(variantKey(key, varyFingerprint(snapshot.vary.names, this.requestHeaders)), true);
  }

  /**
   * This caller's own response, with the ETag its snapshot computed, so that
   * the client can revalidate it; a request it already matches gets a 304,
   * as it would from a hit (and as Express would send itself).
   */
  private own(snapshot: ResponseSnapshot): Observable<unknown> {
    const { platform } = this.deps;
    if (platform.isSent(this.response)) return of(this.ownBody);
    const notModified = this.notModified(snapshot);
    if (snapshot.etag !== undefined) {
      const etag = notModified ? notModifiedETag(snapshot.etag, this.requestHeaders) : snapshot.etag;
      platform.setHeader(this.response, 'ETag', etag);
      if (!notModified) weakenETagWhenEncoded(this.response);
    }
    if (!notModified) return of(this.ownBody);
    platform.setStatus(this.response, 304);
    return of(undefined);
  }

  /** True when this request's preconditions say its client holds `snapshot` already. */
  private notModified(snapshot: ResponseSnapshot): boolean {
    return answersNotModified(this.preconditions, snapshot);
  }

  /**
   * Answers this caller with another's response: its status, replayable
   * headers and body (or error); a `304` without a body when the request's
   * validator matches (the headers a 304 carries, and no body serialized).
   */
  private replay(snapshot: ResponseSnapshot, lookup: Answer<ResponseSnapshot>): Observable<unknown> {
    const { platform } = this.deps;
    const notModified = this.notModified(snapshot);
    const headers = replayedHeaders(snapshot, notModified, this.requestHeaders);
    platform.applySnapshot(this.response, notModified ? 304 : snapshot.status, headers);
    if (lookup.outcome === 'collapsed') {
      this.mark(cacheStatus('collapsed'));
    } else if (!platform.isSent(this.response)) {
      // `mark`, with the one check of the response both headers need.
      const now = Date.now();
      platform.setHeader(this.response, 'Age', String(ageSeconds(lookup.storedAt, now)));
      if (this.deps.options.cacheStatusHeader) {
        const ttlMs = (lookup.expiresAt ?? 0) - now;
        platform.setHeader(
          this.response,
          'Cache-Status',
          cacheStatus(lookup.outcome, { ttlMs, staleReason: lookup.staleReason }),
        );
      }
    }
    // Last: the headers set above are no content coding, so they need not pass through its watch.
    if (!notModified && snapshot.etag !== undefined) weakenETagWhenEncoded(this.response);
    if (snapshot.error) return throwError(() => new HttpException(snapshot.body as object, snapshot.status));
    // Nothing to send: Express and Fastify send a 304 without a body or a Content-Length.
    return of(notModified ? undefined : snapshot.body);
  }

  /**
   * The handler revalidated the stored response with the upstream: this
   * caller gets that response (or a 304 for its own validator), marked as a
   * revalidated stale response (RFC 9211 `fwd=stale; fwd-status=304`).
   */
  private replayRevalidated(snapshot: ResponseSnapshot, lookup: Answer<ResponseSnapshot>): Observable<unknown> {
    const replayed = this.replay(snapshot, lookup);
    this.mark(`${CACHE_NAME}; fwd=stale; fwd-status=304${lookup.stored ? '; stored' : ''}`);
    return replayed;
  }

  /** A thrown error or a timeout: every caller of the flight gets it, with a `Cache-Status` saying how. */
  private failed(error: unknown): Observable<never> {
    this.mark(this.ranOwn ? cacheStatus('miss') : cacheStatus('collapsed'));
    return throwError(() =>
      error instanceof StampedeTimeoutError ? new GatewayTimeoutException(error.message) : error,
    );
  }

  private headersNow(): Record<string, unknown> {
    return { ...this.response.getHeaders() };
  }

  private mark(value: string): void {
    const { options, platform } = this.deps;
    if (options.cacheStatusHeader && !platform.isSent(this.response)) {
      platform.setHeader(this.response, 'Cache-Status', value);
    }
  }
}
