import { isStrongETag, weakETag } from '../../http/validators';
import { HttpResponseLike, isFastifyReply } from './platform';

type SetHeader = (this: HeaderTarget, name: string, value: unknown) => unknown;
interface HeaderTarget {
  getHeader(name: string): unknown;
}

/**
 * Makes the strong `ETag` of `response` weak if a compression middleware
 * content-encodes its body later (Express `compression`, `@fastify/compress`:
 * both set `Content-Encoding` per request, after the interceptor, and leave
 * the ETag as it is). A strong tag names the identity bytes the entry holds;
 * the gzip bytes need another validator (RFC 9110 §8.8.3), and `W/"x"` still
 * matches `"x"` by weak comparison, so clients keep getting 304s.
 *
 * Those middlewares set the header through the response's own setter
 * (Express `res.setHeader` from its `writeHead` hook, Fastify `reply.header`
 * from its `onSend` hook), so that setter of this one response is watched.
 * Call it after the replayed headers are set: a `Content-Encoding` the
 * handler set itself is part of its representation and leaves its tag alone.
 */
export function weakenETagWhenEncoded(response: HttpResponseLike): void {
  const target = response as unknown as Record<'header' | 'setHeader', SetHeader | undefined> & HeaderTarget;
  const setter = isFastifyReply(response) ? 'header' : 'setHeader';
  const set = target[setter];
  if (typeof set !== 'function') return;
  target[setter] = function (this: HeaderTarget, name, value) {
    const result = set.call(this, name, value);
    if (name.toLowerCase() === 'content-encoding' && isCoding(value)) {
      const etag = this.getHeader('etag');
      if (typeof etag === 'string' && isStrongETag(etag)) set.call(this, 'etag', weakETag(etag));
    }
    return result;
  };
}

/** A `Content-Encoding` value that names a coding (not empty, not `identity`). */
function isCoding(value: unknown): boolean {
  const coding = String(value).trim().toLowerCase();
  return coding !== '' && coding !== 'identity';
}
