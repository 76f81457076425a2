import {
  CanActivate,
  Controller,
  ExecutionContext,
  Get,
  Headers,
  Injectable,
  Req,
  UnauthorizedException,
  UseGuards,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions, StampedeService } from '../../lib';
import { PLATFORMS, Platform, Reply, RunningApp, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

/**
 * Credentials as Nest apps carry them, behind the global interceptor: each
 * attack is a second user asking the same URL with other credentials, after
 * or alongside the first; it must get its own answer, never the first's.
 */
const ACCOUNTS: Record<string, string> = { 'key-alice': 'alice', 'key-bob': 'bob', 'key-carol': 'carol' };

/** A Passport-style guard: authenticates a ticket and sets `request.user`. */
@Injectable()
class TicketGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string>; user?: unknown }>();
    const name = ACCOUNTS[request.headers['x-user-ticket'] ?? ''];
    if (!name) throw new UnauthorizedException();
    request.user = { id: `user-${name}`, name };
    return true;
  }
}

@Controller('c')
class AccountsController {
  constructor(private readonly origin: Origin) {}

  @Get('api-key')
  async apiKey(@Headers('x-api-key') key?: string) {
    return { account: ACCOUNTS[key ?? ''] ?? null, n: await this.origin.run('api-key') };
  }

  @Get('proxy')
  async proxy(@Headers('proxy-authorization') credentials?: string) {
    return { account: credentials ?? null, n: await this.origin.run('proxy') };
  }

  @Get('tenant-secret')
  async tenantSecret(@Headers('x-tenant-secret') secret?: string) {
    return { account: secret ?? null, n: await this.origin.run('tenant-secret') };
  }

  @Get('me')
  @UseGuards(TicketGuard)
  async me(@Req() request: { user: { name: string } }) {
    return { account: request.user.name, n: await this.origin.run('me') };
  }

  @Get('me-per-user')
  @UseGuards(TicketGuard)
  @Coalesce({ keyUser: (user: { id: string }) => user.id })
  async mePerUser(@Req() request: { user: { name: string } }) {
    return { account: request.user.name, n: await this.origin.run('me-per-user') };
  }
}

const body = (reply: Reply) => JSON.parse(reply.text) as { account: string | null; n: number };

describe.each(PLATFORMS)('credentials on %s', (platform: Platform) => {
  let running: RunningApp;
  let origin: Origin;
  let stampede: StampedeService;

  async function start(options: StampedeModuleOptions = {}) {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, ...options })],
      controllers: [AccountsController],
      providers: [Origin, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    origin = running.app.get(Origin);
    stampede = running.app.get(StampedeService);
  }
  afterEach(() => running.close());

  const get = (path: string, headers: Record<string, string>) => request(`${running.url}${path}`, { headers });

  /** Alice, then Bob, then both at once with Carol: every caller gets its own account's answer. */
  async function expectEachOwn(path: string, name: string, header: string, values: string[], expected: string[]) {
    for (let i = 0; i < values.length; i++) {
      const reply = await get(path, { [header]: values[i] });
      expect(body(reply).account).toBe(expected[i]);
      expect(reply.headers['cache-status']).toBe('nestjs-stampede; fwd=bypass');
    }
    origin.hold(name);
    const callers = [...values, ...values];
    const replies = callers.map((value) => get(path, { [header]: value }));
    // Each runs its own handler: none waits on another's.
    await until(() => origin.calls(name) === values.length + callers.length, 'every caller in its own handler');
    origin.open(name);
    (await Promise.all(replies)).forEach((reply, i) => expect(body(reply).account).toBe(expected[i % values.length]));
  }

  it('never answers one API key with the response of another (X-Api-Key, a default credential header)', async () => {
    await start();
    const keys = ['key-alice', 'key-bob', 'key-carol'];
    await expectEachOwn('/c/api-key', 'api-key', 'x-api-key', keys, ['alice', 'bob', 'carol']);
  });

  it('never answers one Proxy-Authorization with the response of another', async () => {
    await start();
    const values = ['Basic YWxpY2U6MQ==', 'Basic Ym9iOjI='];
    await expectEachOwn('/c/proxy', 'proxy', 'proxy-authorization', values, values);
  });

  it('takes the headers of the credentialHeaders option as credentials', async () => {
    await start({ credentialHeaders: ['X-Tenant-Secret'] });
    const values = ['s3cret-a', 's3cret-b'];
    await expectEachOwn('/c/tenant-secret', 'tenant-secret', 'x-tenant-secret', values, values);
  });

  it('runs a request alone once a guard set request.user (Passport), unless the route keys by the user', async () => {
    await start();
    const tickets = ['key-alice', 'key-bob'];
    await expectEachOwn('/c/me', 'me', 'x-user-ticket', tickets, ['alice', 'bob']);
  });

  it('coalesces and stores per user with keyUser: one run per user, never another user’s answer', async () => {
    await start();
    origin.hold('me-per-user');
    const tickets = ['key-alice', 'key-bob', 'key-alice', 'key-bob', 'key-alice'];
    const replies = tickets.map((ticket) => get('/c/me-per-user', { 'x-user-ticket': ticket }));
    await until(() => stampede.stats().waiting === tickets.length, 'every caller waiting');
    expect(origin.calls('me-per-user')).toBe(2);
    origin.open('me-per-user');
    const answered = (await Promise.all(replies)).map(body);
    answered.forEach((answer, i) => expect(answer.account).toBe(ACCOUNTS[tickets[i]]));
    const runOf = (name: string) => new Set(answered.filter((a) => a.account === name).map((a) => a.n));
    expect([runOf('alice').size, runOf('bob').size]).toEqual([1, 1]);
    const bobAgain = await get('/c/me-per-user', { 'x-user-ticket': 'key-bob' });
    expect(body(bobAgain)).toEqual({ account: 'bob', n: [...runOf('bob')][0] });
    expect(bobAgain.headers['cache-status']).toMatch(/; hit;/);
    const carol = await get('/c/me-per-user', { 'x-user-ticket': 'key-carol' });
    expect(body(carol)).toEqual({ account: 'carol', n: 3 });
  });
});
