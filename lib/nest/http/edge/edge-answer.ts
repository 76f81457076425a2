import type { AbstractHttpAdapter } from '@nestjs/core';
import type { Coalescer } from '../../../core/coalescer';
import { ageSeconds, requestAsksToRevalidate } from '../../../http/cache-rules';
import { cacheStatus } from '../../../http/cache-status';
import { HeaderValues, announcesBody } from '../../../http/request-key';
import { requestPreconditions } from '../../../http/validators';
import { ResolvedStampedeOptions } from '../../options/stampede.options';
import { weakenETagWhenEncoded } from '../encoded-etag';
import { HttpRequestLike, HttpResponseLike, Platform, hasRequestUser } from '../platform';
import { ResponseSnapshot, answersNotModified, replayedHeaders, varyMismatch } from '../response-snapshot';
import { requestTargetKey } from '../target-key';
import { ApprovedRoute } from './edge-check';

/**
 * One edge hit, or nothing: answers a request for an approved route from a
 * fresh stored response, exactly as the interceptor's hit would (status,
 * replayed headers, `@Header()` headers, `Age`, `Cache-Status`, a 304 for a
 * matching validator), or returns false and the request goes on to Nest's
 * pipeline unchanged. Whatever is uncertain returns false: methods other than
 * GET and HEAD, credentials, a body, a request that asks to revalidate, a
 * response that varies on a header this request sent differently or that
 * another route produced, an error kept by `statusTtl`, a miss, a stale value.
 */
export class EdgeAnswer {
  constructor(
    private readonly coalescer: Coalescer,
    private readonly options: ResolvedStampedeOptions,
    private readonly platform: Platform,
    private readonly adapter: AbstractHttpAdapter,
    /** True when `snapshot` was produced by `route` itself. */
    private readonly producedBy: (snapshot: ResponseSnapshot, route: ApprovedRoute) => boolean,
  ) {}

  /** True when `response` was answered from the store. */
  answer(request: HttpRequestLike, response: HttpResponseLike, route: ApprovedRoute): boolean {
    const method = request.method;
    if ((method !== 'GET' && method !== 'HEAD') || !this.options.methods.has(method)) return false;
    const headers = request.headers;
    if (requestAsksToRevalidate(headers) || request.body !== undefined || announcesBody(headers)) return false;
    // Never one caller's answer to another: any credential, whatever the route keys by, goes to the pipeline.
    const { settings } = route;
    for (const name of settings.credentialHeaders) if (headers[name] !== undefined) return false;
    if (hasRequestUser(request)) return false;
    // A middleware made this response its caller's own (`private`, a cookie): the pipeline answers it.
    if (this.platform.isCallersOwn(response)) return false;
    const key = requestTargetKey(this.platform, request, settings);
    const fresh = this.coalescer.peek(
      key,
      settings.policy,
      (snapshot) => this.producedBy(snapshot, route) && isEdgeAnswer(snapshot, headers),
    );
    if (fresh === undefined || 'declined' in fresh) return false;
    const snapshot = fresh.value;
    const notModified = answersNotModified(requestPreconditions(method, headers), snapshot);
    const { platform } = this;
    // In Nest's order: `@Header()` before the interceptor, then the stored status and headers, Age, Cache-Status.
    for (const { name, value } of route.headers)
      platform.setHeader(response, name, typeof value === 'function' ? value() : value);
    const replayed = replayedHeaders(snapshot, notModified, headers);
    platform.applySnapshot(response, notModified ? 304 : snapshot.status, replayed);
    const now = Date.now();
    platform.setHeader(response, 'Age', String(ageSeconds(fresh.storedAt, now)));
    if (this.options.cacheStatusHeader) {
      platform.setHeader(response, 'Cache-Status', cacheStatus('hit', { ttlMs: (fresh.expiresAt ?? 0) - now }));
    }
    // Last: the headers set above are no content coding, so they need not pass through its watch.
    if (!notModified && snapshot.etag !== undefined) weakenETagWhenEncoded(response);
    // As Nest's router sends a handler's result: the status is already set.
    void this.adapter.reply(response, notModified ? undefined : snapshot.body);
    return true;
  }
}

/** A stored response the edge may send as it is: no error to rethrow, and not another variant's. */
function isEdgeAnswer(snapshot: ResponseSnapshot, headers: HeaderValues): boolean {
  return snapshot.error === undefined && !varyMismatch(snapshot, headers);
}
