import {
  CanActivate,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  Req,
  UnauthorizedException,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, Reply, request, startApp } from '../apps/http-app';

/**
 * The code of README's Security section, as it stands there (checked below),
 * compiled by the typecheck and run over real HTTP on both platforms.
 */

/** What the README leaves to the app: a guard that sets `request.user`, and a service. */
@Injectable()
class SessionGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string>; user?: unknown }>();
    const session = request.headers['x-session'];
    if (!session) throw new UnauthorizedException();
    request.user = { id: session.split(':')[0] };
    return true;
  }
}

@Injectable()
class ProfilesService {
  calls = 0;
  of(id: string) {
    return { id, call: ++this.calls };
  }
}

// README:per-user
@Controller('me')
@UseGuards(SessionGuard) // sets request.user, as Passport's AuthGuard does
@UseInterceptors(StampedeInterceptor)
export class ProfileController {
  constructor(private readonly profiles: ProfilesService) {}

  @Get()
  @Coalesce({ ttl: 10_000, keyUser: (user: { id: string }) => user.id })
  profile(@Req() request: { user: { id: string } }) {
    return this.profiles.of(request.user.id); // once per user however many tabs ask; never another user's
  }
}
// README:end

// README:subclass
/** Keys by the tenant a guard resolved (request.tenant), so each tenant has entries of its own. */
@Injectable()
export class TenantStampedeInterceptor extends StampedeInterceptor {
  protected override keyFor(context: ExecutionContext): string | undefined {
    const key = super.keyFor(context);
    const { tenant } = context.switchToHttp().getRequest<{ tenant?: string }>();
    return key === undefined || tenant === undefined ? undefined : `${key}|tenant:${encodeURIComponent(tenant)}`;
  }
}
// README:end

@Injectable()
class TenantGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string>; tenant?: string }>();
    request.tenant = request.headers['x-tenant-token']?.split('.')[0];
    return true;
  }
}

@Controller('catalog')
@UseGuards(TenantGuard)
@UseInterceptors(TenantStampedeInterceptor)
class CatalogController {
  private calls = 0;

  @Get()
  list(@Req() request: { tenant?: string }) {
    return { tenant: request.tenant ?? null, call: ++this.calls };
  }
}

const body = (reply: Reply) => JSON.parse(reply.text) as Record<string, unknown>;

describe('README Security snippets', () => {
  it('are the code of this file, word for word', () => {
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
    const self = readFileSync(__filename, 'utf8');
    for (const name of ['per-user', 'subclass']) {
      const code = self.split(`// README:${name}\n`)[1].split('// README:end')[0];
      const block = readme.split(`<!-- README:${name} -->`)[1]?.split('```ts\n')[1]?.split('```')[0];
      expect([name, block]).toEqual([name, code]);
    }
  });
});

describe.each(PLATFORMS)('README Security snippets on %s', (platform) => {
  it('keyUser: coalesces and stores per user, never answering one user with another’s profile', async () => {
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot()],
      controllers: [ProfileController],
      providers: [ProfilesService, SessionGuard],
    });
    const get = (session: string) => request(`${running.url}/me`, { headers: { 'x-session': session } });
    const answers = [await get('ann:tab1'), await get('bob:tab1'), await get('ann:tab2')].map(body);
    expect(answers).toEqual([
      { id: 'ann', call: 1 },
      { id: 'bob', call: 2 },
      { id: 'ann', call: 1 },
    ]);
    await running.close();
  });

  it('a subclass keying by tenant: each tenant its own entries', async () => {
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot()],
      controllers: [CatalogController],
      providers: [TenantGuard],
    });
    const get = (token?: string) =>
      request(`${running.url}/catalog`, { headers: token ? { 'x-tenant-token': token } : {} });
    const answers = [await get('acme.1'), await get('globex.1'), await get('acme.2'), await get()];
    expect(answers.map(body)).toEqual([
      { tenant: 'acme', call: 1 },
      { tenant: 'globex', call: 2 },
      { tenant: 'acme', call: 1 },
      { tenant: null, call: 3 },
    ]);
    expect(answers[2].headers['cache-status']).toMatch(/; hit;/);
    await running.close();
  });
});
