import type { AbstractHttpAdapter } from '@nestjs/core';
import { HttpRequestLike, Platform } from '../../lib/nest/http/platform';
import { requestTargetKey } from '../../lib/nest/http/target-key';

/**
 * The host name part of a request's key: Express and Fastify are asked for it
 * only when it can differ from the Host's (see `Platform.hostnameFollowsHost`);
 * any other adapter, always.
 */
function platformOf(type: string, hostname: string): Platform {
  const adapter = {
    getType: () => type,
    getRequestUrl: (request: HttpRequestLike) => request.url,
    getRequestHostname: () => hostname,
  } as unknown as AbstractHttpAdapter;
  return new Platform(() => adapter);
}

const request = (headers: Record<string, string>): HttpRequestLike => ({ method: 'GET', url: '/page', headers });
const keyOf = (platform: Platform, headers: Record<string, string>) =>
  requestTargetKey(platform, request(headers), { keyHeaders: [] });

describe('requestTargetKey: the host name the platform reports', () => {
  it("holds another adapter's host name even without a forwarding header (it may come from anywhere)", () => {
    const custom = platformOf('custom', 'tenant.example');
    expect(keyOf(custom, { host: 'shop.example' })).toContain('shop.example(tenant.example)');
  });

  it('asks Express only when a forwarding header could change its answer', () => {
    // This adapter would answer with another name: it is not asked for a request that sends no forwarding header.
    const express = platformOf('express', 'tenant.example');
    expect(keyOf(express, { host: 'shop.example' })).not.toContain('tenant.example');
    expect(keyOf(express, { host: 'shop.example', 'x-forwarded-host': 'x' })).toContain('(tenant.example)');
    expect(keyOf(express, { host: 'shop.example', forwarded: 'host=x' })).toContain('(tenant.example)');
    // HTTP/2: the key holds `:authority`, the platform may read `Host`.
    expect(keyOf(express, { ':authority': 'shop.example' })).toContain('(tenant.example)');
  });

  it('asks Fastify when its request headers are not those it received (a hook replaced them)', () => {
    const fastify = platformOf('fastify', 'tenant.example');
    const received = { host: 'shop.example' };
    const asReceived = { ...request(received), raw: { headers: received } } as HttpRequestLike;
    expect(requestTargetKey(fastify, asReceived, { keyHeaders: [] })).not.toContain('tenant.example');
    const replaced = {
      ...request({ host: 'shop.example' }),
      raw: { headers: { host: 'raw.example' } },
    } as HttpRequestLike;
    expect(requestTargetKey(fastify, replaced, { keyHeaders: [] })).toContain('(tenant.example)');
  });
});
