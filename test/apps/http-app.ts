import { INestApplication, ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import http from 'node:http';
import http2 from 'node:http2';
import { AddressInfo } from 'node:net';

/** The two HTTP platforms every e2e suite runs on. */
export type Platform = 'express' | 'fastify';
export const PLATFORMS: Platform[] = ['express', 'fastify'];

/** A real Nest app listening on a loopback port. */
export interface RunningApp {
  app: INestApplication;
  url: string;
  close(): Promise<void>;
}

/** Builds a Nest app from `metadata` on `platform` and listens on 127.0.0.1 (free port); `configure` runs before. */
export async function startApp(
  platform: Platform,
  metadata: ModuleMetadata,
  configure?: (app: INestApplication) => void | Promise<void>,
  /** Fastify's own options (e.g. `trustProxy`), given to its adapter. */
  fastifyOptions?: ConstructorParameters<typeof FastifyAdapter>[0],
): Promise<RunningApp> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(fastifyOptions), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  await configure?.(app);
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** A response read whole: status, lowercase headers, body text. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  text: string;
  setCookie: string[];
}

export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const response = await fetch(url, init);
  const text = await response.text();
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  return { status: response.status, headers, text, setCookie: response.headers.getSetCookie() };
}

export { wireRequest } from '../helpers/wire-request';
export type { WireReply } from '../helpers/wire-request';

/** An Express `Response` or a Fastify `FastifyReply`, as a handler with `@Res({ passthrough: true })` sees it. */
export interface PassthroughResponse {
  status(code: number): unknown;
  header?(name: string, value: string | string[]): unknown;
  setHeader?(name: string, value: string | string[]): unknown;
  raw?: unknown;
}

/** Sets a response header from a handler, on either platform. */
export function setResponseHeader(res: PassthroughResponse, name: string, value: string | string[]): void {
  if (res.raw !== undefined && res.header) res.header(name, value);
  else res.setHeader!(name, value);
}

/** The key of a request to `running` that has no key parts besides its target: `GET /x?a=1` -> `GET http://127.0.0.1:port/x?a=1`. */
export function keyOf(running: RunningApp, request: string): string {
  const space = request.indexOf(' ');
  return `${request.slice(0, space)} ${running.url}${request.slice(space + 1)}`;
}

/**
 * One request as sent on the wire: any `Host`, a raw target (`#`, odd escapes
 * kept), a body on any method. `fetch` can do none of these.
 */
export function rawRequest(
  url: string,
  target: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<Reply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        hostname,
        port,
        path: target,
        method: init.method ?? 'GET',
        // Node sends a GET body without framing unless told its length.
        headers:
          init.body === undefined
            ? init.headers
            : { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
        agent: false,
        // The loopback address it connects from (any of 127.0.0.0/8): a proxy the app trusts, or not.
        localAddress: init.localAddress,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (name !== 'set-cookie' && value !== undefined) headers[name] = String(value);
          }
          resolve({ status: res.statusCode ?? 0, headers, text, setCookie: res.headers['set-cookie'] ?? [] });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(init.body);
  });
}

/** One HTTP/2 (cleartext) request with exactly the pseudo-headers and headers given: `:authority` and `host` may disagree. */
export function http2Request(url: string, headers: http2.OutgoingHttpHeaders): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    // Closed however the request ends: an open session would hold the app's close() until its timeout.
    const fail = (error: unknown) => {
      session.close();
      reject(error);
    };
    session.on('error', fail);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':method': 'GET', ...headers });
    } catch (error) {
      fail(error);
      return;
    }
    let status = 0;
    const received: Record<string, string> = {};
    stream.on('response', (head) => {
      status = Number(head[':status']);
      for (const [name, value] of Object.entries(head)) if (!name.startsWith(':')) received[name] = String(value);
    });
    let text = '';
    let ended = false;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('error', fail);
    stream.on('end', () => {
      ended = true;
      resolve({ status, headers: received, text, setCookie: [] });
    });
    stream.on('close', () =>
      ended ? session.close() : fail(new Error(`HTTP/2 stream closed (code ${stream.rstCode})`)),
    );
    stream.end();
  });
}
