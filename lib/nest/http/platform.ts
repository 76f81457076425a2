import { StreamableFile } from '@nestjs/common';
import { HeaderEntry, isReplayableHeader } from '../../http/header-policy';
import { HeaderValues } from '../../http/request-key';

/**
 * The few places where Express and Fastify differ, in one file. Everything
 * else in the interceptor is the same for both.
 */

/** An Express `Request` or a Fastify `FastifyRequest`, as far as keys need. */
export interface HttpRequestLike {
  method: string;
  url: string;
  originalUrl?: string;
  headers: HeaderValues;
}

/** An Express `Response` or a Fastify `FastifyReply`, as far as replay needs. */
export interface HttpResponseLike {
  statusCode: number;
  getHeaders(): Record<string, unknown>;
  status(code: number): unknown;
  // Express
  setHeader?(name: string, value: unknown): unknown;
  headersSent?: boolean;
  // Fastify
  raw?: { headersSent?: boolean };
  header?(name: string, value: unknown): unknown;
  sent?: boolean;
}

/** The request target as received: path and query (Express may have rewritten `url`). */
export function requestUrl(request: HttpRequestLike): string {
  return request.originalUrl ?? request.url;
}

function isFastifyReply(response: HttpResponseLike): boolean {
  return response.raw !== undefined && typeof response.header === 'function';
}

/** Sets one response header on either platform. */
export function setHeader(response: HttpResponseLike, name: string, value: unknown): void {
  if (isFastifyReply(response)) response.header!(name, value);
  else response.setHeader!(name, value);
}

/** Applies a stored status and headers to another caller's response. */
export function applySnapshot(response: HttpResponseLike, status: number, headers: readonly HeaderEntry[]): void {
  response.status(status);
  // Filtered again on the way out: a store shared with other versions may hold anything.
  for (const [name, value] of headers) if (isReplayableHeader(name)) setHeader(response, name, value);
}

/** True once the handler (through `@Res()`) has sent the response itself. */
export function isSent(response: HttpResponseLike): boolean {
  return isFastifyReply(response) ? response.sent === true : response.headersSent === true;
}

/** A body that is read once (a stream, a `StreamableFile`) cannot be shared or stored. */
export function isShareableBody(body: unknown): boolean {
  if (body instanceof StreamableFile) return false;
  return !(
    body !== null &&
    typeof body === 'object' &&
    typeof (body as { pipe?: unknown }).pipe === 'function' &&
    typeof (body as { on?: unknown }).on === 'function'
  );
}
