import {
  CanActivate,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  MiddlewareConsumer,
  Module,
  NestMiddleware,
  NestModule,
  Param,
  ParseIntPipe,
  PipeTransform,
  Type,
  UseGuards,
  UseInterceptors,
  UsePipes,
  VersioningType,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeModuleOptions } from '../../lib';
import { PLATFORMS, Platform, RunningApp, request, startApp } from '../apps/http-app';

/**
 * The edge's safety is decided when the app initialises: a route that opts in
 * with anything in its pipeline it was not told it may skip fails bootstrap,
 * naming the route and what blocks it; listed, the route is answered at the edge.
 */
@Injectable()
class TicketGuard implements CanActivate {
  static runs = 0;
  canActivate(): boolean {
    TicketGuard.runs++;
    return true;
  }
}

@Injectable()
class Trim implements PipeTransform {
  transform(value: unknown) {
    return typeof value === 'string' ? value.trim() : value;
  }
}

@Controller('guarded')
@UseInterceptors(StampedeInterceptor)
class GuardedController {
  @Get()
  @UseGuards(TicketGuard)
  @Coalesce({ edge: true })
  list() {
    return { list: true };
  }
}

@Controller('guarded')
@UseInterceptors(StampedeInterceptor)
class GuardedSafeController {
  @Get()
  @UseGuards(TicketGuard)
  @Coalesce({ edge: { skip: [TicketGuard] } })
  list() {
    return { list: true };
  }
}

@Injectable()
class Timing {
  intercept(_context: ExecutionContext, next: { handle(): unknown }) {
    return next.handle();
  }
}

@Controller('intercepted')
@UseInterceptors(Timing, StampedeInterceptor)
@Coalesce({ edge: true })
class InterceptedController {
  @Get(':id')
  byId(@Param('id') id: string) {
    return { id };
  }
}

@Controller('piped')
@UseInterceptors(StampedeInterceptor)
class PipedController {
  @Get(':id')
  @Coalesce({ edge: true })
  byId(@Param('id', ParseIntPipe) id: number) {
    return { id };
  }
}

@Controller('piped-method')
@UseInterceptors(StampedeInterceptor)
@UsePipes(Trim)
class MethodPipeController {
  @Get(':id')
  @Coalesce({ edge: true })
  byId(@Param('id') id: string) {
    return { id };
  }
}

@Controller('plain')
@UseInterceptors(StampedeInterceptor)
@Coalesce({ edge: true })
class PlainController {
  @Get()
  list() {
    return { plain: true };
  }
}

@Controller('keyed')
@UseInterceptors(StampedeInterceptor)
class KeyedController {
  @Get()
  @Coalesce({ edge: true, key: (context: ExecutionContext) => context.getClass().name })
  list() {
    return {};
  }
}

class TenantInterceptor extends StampedeInterceptor {}

@Controller('subclassed')
@UseInterceptors(TenantInterceptor)
class SubclassedController {
  @Get()
  @Coalesce({ edge: true })
  list() {
    return {};
  }
}

@Injectable()
class Prices {
  @Coalesce({ edge: true })
  current() {
    return 1;
  }
}

describe.each(PLATFORMS)('edge bootstrap checks on %s', (platform: Platform) => {
  let running: RunningApp | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  const start = (
    controllers: Type[],
    options: StampedeModuleOptions = {},
    providers: unknown[] = [],
    configure?: Parameters<typeof startApp>[2],
  ) =>
    startApp(
      platform,
      {
        imports: [StampedeModule.forRoot({ ttl: 60_000, ...options })],
        controllers,
        providers: [TicketGuard, ...(providers as never[])],
      },
      configure,
    ).then((app) => (running = app));

  async function refused(start: Promise<unknown>): Promise<string> {
    const error = (await start.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    expect(error).toBeInstanceOf(Error);
    return error!.message;
  }

  it('refuses a route with a guard, naming the route and the guard', async () => {
    const message = await refused(start([GuardedController]));
    expect(message).toContain('nestjs-stampede: edge refused for a route');
    expect(message).toContain('GuardedController.list (GET /guarded): guard TicketGuard (on the route)');
    expect(message).toContain('edge: { skip: [...] }');
  });

  it('answers at the edge a route whose guard is listed as safe to skip', async () => {
    await start([GuardedSafeController]);
    TicketGuard.runs = 0;
    await request(`${running!.url}/guarded`);
    const hit = await request(`${running!.url}/guarded`);
    expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(TicketGuard.runs).toBe(1);
  });

  it('refuses a global guard (APP_GUARD and useGlobalGuards), unless listed in the module', async () => {
    const appGuard = await refused(start([PlainController], {}, [{ provide: APP_GUARD, useClass: TicketGuard }]));
    expect(appGuard).toContain('PlainController.list (GET /plain): guard TicketGuard (an instance) (global)');
    const useGlobal = await refused(
      start([PlainController], {}, [], (app) => {
        app.useGlobalGuards(new TicketGuard());
      }),
    );
    expect(useGlobal).toContain('guard TicketGuard (an instance) (global)');
    await start([PlainController], { edge: { skip: [TicketGuard] } }, [{ provide: APP_GUARD, useClass: TicketGuard }]);
    await request(`${running!.url}/plain`);
    TicketGuard.runs = 0;
    expect((await request(`${running!.url}/plain`)).headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
    expect(TicketGuard.runs).toBe(0);
  });

  it('refuses an interceptor other than StampedeInterceptor, global or bound', async () => {
    const bound = await refused(start([InterceptedController]));
    expect(bound).toContain(
      'InterceptedController.byId (GET /intercepted/:id): interceptor Timing (on the controller)',
    );
    const global = await refused(start([PlainController], {}, [{ provide: APP_INTERCEPTOR, useClass: Timing }]));
    expect(global).toContain('interceptor Timing (an instance) (global)');
    await start([InterceptedController], { edge: { skip: [Timing] } });
  });

  it('refuses pipes on parameters: their own, the controller pipes, and global ones', async () => {
    expect(await refused(start([PipedController]))).toContain('pipe ParseIntPipe (on a parameter)');
    expect(await refused(start([MethodPipeController]))).toContain('pipe Trim (on the controller)');
    const global = await refused(
      start([PipedController], { edge: { skip: [ParseIntPipe] } }, [], (app) => {
        app.useGlobalPipes(new Trim());
      }),
    );
    expect(global).toContain('pipe Trim (an instance) (global)');
    // A handler without parameters runs no pipe: a global pipe does not stand in its way.
    await start([PlainController], {}, [], (app) => {
      app.useGlobalPipes(new Trim());
    });
  });

  it('refuses what the edge cannot key or answer the same way', async () => {
    expect(await refused(start([KeyedController]))).toContain('a key function needs the ExecutionContext');
    expect(await refused(start([SubclassedController]))).toContain(
      'interceptor TenantInterceptor (on the controller) subclasses StampedeInterceptor',
    );
    const versioned = await refused(
      start([PlainController], {}, [], (app) => {
        app.enableVersioning({ type: VersioningType.HEADER, header: 'x-version' });
      }),
    );
    expect(versioned).toContain('versioning by header');
  });

  it('lists every refused route in one error, and the module default opts every route in', async () => {
    const message = await refused(start([GuardedController, InterceptedController, PlainController]));
    expect(message).toContain('for 2 routes');
    const byDefault = await refused(start([GuardedSafeController, PipedController], { edge: true }));
    expect(byDefault).toContain('PipedController.byId');
    expect(byDefault).not.toContain('GuardedSafeController');
  });

  it('refuses edge on a provider method, where it cannot act', async () => {
    const message = await refused(start([PlainController], {}, [Prices]));
    expect(message).toContain('invalid option "edge"');
    expect(message).toContain('@Coalesce on Prices.current');
  });

  it('refuses a bad edge option with its name', async () => {
    const message = await refused(start([PlainController], { edge: { skip: 'TicketGuard' } as never }));
    expect(message).toContain('invalid option "edge.skip"');
  });
});

/** Middleware bound to the route with MiddlewareConsumer: runs before the edge on both adapters. */
@Injectable()
class Stamp implements NestMiddleware {
  static runs = 0;
  use(_request: unknown, _response: unknown, next: () => void) {
    Stamp.runs++;
    next();
  }
}

@Module({ controllers: [PlainController], providers: [Stamp] })
class StampedModule implements NestModule {
  configure(consumer: MiddlewareConsumer) {
    consumer.apply(Stamp).forRoutes('plain');
  }
}

describe.each(PLATFORMS)('bound middleware and the edge on %s', (platform: Platform) => {
  it('runs for an edge hit too: it is not skipped, so it does not refuse the route', async () => {
    const running = await startApp(platform, { imports: [StampedeModule.forRoot({ ttl: 60_000 }), StampedModule] });
    try {
      await request(`${running.url}/plain`);
      Stamp.runs = 0;
      const hit = await request(`${running.url}/plain`);
      expect(hit.headers['cache-status']).toBe('nestjs-stampede; hit; ttl=60');
      expect(Stamp.runs).toBe(1);
    } finally {
      await running.close();
    }
  });
});
