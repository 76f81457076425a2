import fastifyCompress from '@fastify/compress';
import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  NestInterceptor,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import compression from 'compression';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Observable } from 'rxjs';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { ByteReply } from '../helpers/byte-request';
import { PassthroughResponse, Platform, RunningApp, setResponseHeader, startApp } from './http-app';
import { Origin } from './origin';

/** Counts the requests that reach Nest's pipeline, per path: a hit the edge answered does not. */
@Injectable()
export class PipelineCounter implements NestInterceptor {
  static runs = new Map<string, number>();
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const { url } = context.switchToHttp().getRequest<{ url: string }>();
    PipelineCounter.runs.set(url, (PipelineCounter.runs.get(url) ?? 0) + 1);
    return next.handle();
  }
}

/** What the routes return, until a test changes `content.version`. */
export const content = { version: 1 };

/** A body well above both middlewares' 1 kB threshold. */
export const documentOf = (version: number) => ({
  version,
  items: Array.from({ length: 150 }, (_, id) => ({ id, name: `item ${id}` })),
});

/** The same routes twice: answered by the interceptor, and (hits) by the edge tier before the pipeline. */
function compressedRoutes(path: string, edge: boolean) {
  @Controller(path)
  @UseInterceptors(PipelineCounter, StampedeInterceptor)
  // @fastify/compress adds an onRequest hook (it decorates the reply) and a preParsing hook (it
  // decompresses request bodies) to every route: neither matters to an edge hit, so both are listed.
  @Coalesce({ edge: edge ? { skip: [PipelineCounter, 'onRequest', 'preParsing'] } : false })
  class CompressedController {
    constructor(readonly origin: Origin) {}

    @Get('doc')
    async doc() {
      await this.origin.run(`/${path}/doc`);
      return documentOf(content.version);
    }

    @Get('swr')
    @Coalesce({ ttl: 10_000, staleTtl: 60_000 })
    async swr() {
      await this.origin.run(`/${path}/swr`);
      return documentOf(content.version);
    }

    @Get('own')
    async own(@Res({ passthrough: true }) res: PassthroughResponse) {
      await this.origin.run(`/${path}/own`);
      setResponseHeader(res, 'ETag', `"own-${content.version}"`);
      return documentOf(content.version);
    }

    @Get('own-weak')
    ownWeak(@Res({ passthrough: true }) res: PassthroughResponse) {
      setResponseHeader(res, 'ETag', `W/"own-${content.version}"`);
      return documentOf(content.version);
    }

    /** Bytes the handler encoded itself (Fastify sends a returned Buffer as it is; Nest's Express adapter as JSON). */
    @Get('pre-encoded')
    preEncoded(@Res({ passthrough: true }) res: PassthroughResponse) {
      // Its own tag first: replayed before the Content-Encoding, which must not weaken it.
      setResponseHeader(res, 'ETag', `"pre-${content.version}"`);
      setResponseHeader(res, 'Content-Type', 'application/json');
      setResponseHeader(res, 'Content-Encoding', 'gzip');
      return gzipSync(JSON.stringify(documentOf(content.version)));
    }

    @Get('small')
    small() {
      return { version: content.version };
    }
  }
  return CompressedController;
}

/** Where the routes are mounted: `[what answers their hits, path, on the edge]`. */
export const PATHS = [
  ['the interceptor', 'z', false],
  ['the edge tier', 'edge', true],
] as const;

/** A running app with the platform's compression: Express `compression()`, Fastify `@fastify/compress`. */
export interface CompressedApp {
  running: RunningApp;
  origin: Origin;
  stampede: StampedeService;
  /** ETags Express computed itself (its `etag` setting, counted). */
  expressTags(): number;
  /** Back to version 1, nothing stored, nothing counted. */
  reset(): Promise<void>;
}

export async function startCompressedApp(platform: Platform): Promise<CompressedApp> {
  let expressTags = 0;
  const running = await startApp(
    platform,
    {
      imports: [StampedeModule.forRoot({ ttl: 60_000 })],
      controllers: PATHS.map(([, path, edge]) => compressedRoutes(path, edge)),
      providers: [Origin, PipelineCounter],
    },
    async (app) => {
      if (platform === 'fastify') {
        await (app as NestFastifyApplication).register(fastifyCompress);
        return;
      }
      const express = app as NestExpressApplication;
      express.use(compression());
      express.set('etag', (body: Buffer | string) => {
        expressTags++;
        return `W/"express-${Buffer.byteLength(body)}"`;
      });
    },
  );
  const origin = running.app.get(Origin);
  const stampede = running.app.get(StampedeService);
  return {
    running,
    origin,
    stampede,
    expressTags: () => expressTags,
    async reset() {
      origin.reset();
      content.version = 1;
      expressTags = 0;
      PipelineCounter.runs.clear();
      await stampede.invalidate({ prefix: '' });
    },
  };
}

/** Our strong ETag of a body as sent: its SHA-256. */
export const strongTagOf = (text: string) => `"${createHash('sha256').update(text).digest('base64url')}"`;

/** Accept-Encoding values and the coding each gets from both middlewares (undefined: identity). */
export const ENCODINGS: [string | undefined, string | undefined][] = [
  ['gzip', 'gzip'],
  ['br', 'br'],
  ['deflate', 'deflate'],
  ['gzip;q=0, identity', undefined],
  ['identity', undefined],
  [undefined, undefined],
];

/** Request headers asking for `coding` (none at all when undefined). */
export const accepting = (coding: string | undefined): Record<string, string> =>
  coding === undefined ? {} : { 'Accept-Encoding': coding };

/** The tag a reply must carry for a stored strong `etag`: weak exactly when its body went out encoded. */
export function expectTag(reply: ByteReply, etag: string): void {
  const encoded = reply.headers['content-encoding'] !== undefined;
  expect(reply.headers['etag']).toBe(encoded ? `W/${etag}` : etag);
}
