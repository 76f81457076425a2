import { INestApplication, ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
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

/** Builds a Nest app from `metadata` on `platform` and listens on 127.0.0.1 (free port). */
export async function startApp(platform: Platform, metadata: ModuleMetadata): Promise<RunningApp> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
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

/** Resolves when `condition()` holds, checking after each turn of the event loop; fails after `ms`. */
export async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  // performance.now, not Date.now: tests may fake the date.
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export { fakeDateOnly } from '../support/fake-date';

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
