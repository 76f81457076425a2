import type { AbstractHttpAdapter } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { HttpRequestLike, Platform } from '../../lib/nest/http/platform';
import { requestTargetKey } from '../../lib/nest/http/target-key';

/**
 * The host name part of a request's key: Nest's own Express and Fastify
 * adapters are asked for it only when it can differ from the Host's (see
 * `Platform.hostnameFollowsHost`); any other adapter, a subclass of theirs
 * included, always. Each request here says `tenant.example` is its host name
 * whatever its Host: the key shows whether the adapter was asked.
 */
const platformOf = (adapter: AbstractHttpAdapter) => new Platform(() => adapter);

function request(headers: Record<string, string>, raw?: { headers: unknown }): HttpRequestLike {
  return {
    method: 'GET',
    url: '/page',
    headers,
    hostname: 'tenant.example',
    ...(raw ? { raw } : {}),
  } as HttpRequestLike;
}
const keyOf = (platform: Platform, asked: HttpRequestLike) =>
  requestTargetKey(platform, asked, { keyHeaders: [], keyClient: false });

describe('requestTargetKey: the host name the platform reports', () => {
  it("keys the host Nest's own adapters report, port included, when it differs from the authority", () => {
    const express = platformOf(new ExpressAdapter());
    const forwarded = (host: string) =>
      ({ ...request({ host: 'shop.example', 'x-forwarded-host': 'x' }), host }) as HttpRequestLike;
    expect(keyOf(express, forwarded('x.example:1'))).toContain('shop.example(x.example:1)');
    expect(keyOf(express, forwarded('x.example:1'))).not.toBe(keyOf(express, forwarded('x.example:2')));
    // Not trusted: the platform reports the Host, and the key is that of a request without the header.
    expect(keyOf(express, forwarded('shop.example'))).toBe(keyOf(express, request({ host: 'shop.example' })));
  });

  it('asks Express only when a forwarding header could change its answer', () => {
    const express = platformOf(new ExpressAdapter());
    expect(keyOf(express, request({ host: 'shop.example' }))).not.toContain('tenant.example');
    expect(keyOf(express, request({ host: 'shop.example', 'x-forwarded-host': 'x' }))).toContain('(tenant.example)');
    expect(keyOf(express, request({ host: 'shop.example', forwarded: 'host=x' }))).toContain('(tenant.example)');
  });

  it('asks Fastify when its request headers are not those it received, or HTTP/2 sent both :authority and Host', () => {
    const fastify = platformOf(new FastifyAdapter());
    const received = { host: 'shop.example' };
    expect(keyOf(fastify, request(received, { headers: received }))).not.toContain('tenant.example');
    // A hook replaced the headers: Fastify's host name still reads the ones received.
    const replaced = request({ host: 'shop.example' }, { headers: { host: 'raw.example' } });
    expect(keyOf(fastify, replaced)).toContain('(tenant.example)');
    const h2 = { ':authority': 'shop.example' };
    expect(keyOf(fastify, request(h2, { headers: h2 }))).not.toContain('tenant.example');
    const both = { ':authority': 'shop.example', host: 'other.example' };
    expect(keyOf(fastify, request(both, { headers: both }))).toContain('(tenant.example)');
  });

  it('always asks a subclass that reports host names its own way, and any other adapter', () => {
    class TenantAdapter extends ExpressAdapter {
      override getRequestHostname(): string {
        return 'tenant.example';
      }
    }
    const subclass = platformOf(new TenantAdapter());
    expect(keyOf(subclass, request({ host: 'shop.example' }))).toContain('shop.example(tenant.example)');
    // Its requests still report a host with its port (a trusted forwarded one): each port keys apart.
    const forwarded = (port: number) =>
      ({ ...request({ host: 'shop.example', 'x-forwarded-host': 'x' }), host: `x.example:${port}` }) as HttpRequestLike;
    expect(keyOf(subclass, forwarded(1))).not.toBe(keyOf(subclass, forwarded(2)));
    expect(keyOf(subclass, forwarded(1))).toContain('|a:x.example:1');
    const other = {
      getType: () => 'custom',
      getRequestUrl: (asked: HttpRequestLike) => asked.url,
      getRequestHostname: () => 'tenant.example',
    } as unknown as AbstractHttpAdapter;
    expect(keyOf(platformOf(other), request({ host: 'shop.example' }))).toContain('shop.example(tenant.example)');
  });
});
