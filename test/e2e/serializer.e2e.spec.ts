import { ClassSerializerInterceptor, Controller, Get, Logger, Param, Provider, UseInterceptors } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Exclude } from 'class-transformer';
import { Keyv } from 'keyv';
import { StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { PLATFORMS, Platform, Reply, RunningApp, request, startApp } from '../apps/http-app';
import { until } from '../helpers/deferred';
import { Origin } from '../apps/origin';

/**
 * `ClassSerializerInterceptor` with a real class-transformer entity, in every
 * order relative to ours and with a store that keeps objects (in-process) or
 * serializes them (Keyv): the `@Exclude()`d password never reaches a
 * response, nor a serializing store.
 */
class UserEntity {
  id!: string;
  name!: string;
  @Exclude()
  password!: string;

  constructor(fields: UserEntity) {
    Object.assign(this, fields);
  }
}

async function user(origin: Origin, id: string): Promise<UserEntity> {
  const n = await origin.run('user');
  return new UserEntity({ id, name: `user ${id} (run ${n})`, password: 'hunter2' });
}

/** The serializer outside ours: ours sees the class instance. */
@Controller('outside')
@UseInterceptors(ClassSerializerInterceptor, StampedeInterceptor)
class OutsideController {
  constructor(private readonly origin: Origin) {}

  @Get('users/:id')
  get(@Param('id') id: string) {
    return user(this.origin, id);
  }
}

/** The serializer inside ours: ours sees what is sent. */
@Controller('inside')
@UseInterceptors(StampedeInterceptor, ClassSerializerInterceptor)
class InsideController {
  constructor(private readonly origin: Origin) {}

  @Get('users/:id')
  get(@Param('id') id: string) {
    return user(this.origin, id);
  }
}

/** Under the global interceptors, in the order the app registered them. */
@Controller('global')
class GlobalController {
  constructor(private readonly origin: Origin) {}

  @Get('users/:id')
  get(@Param('id') id: string) {
    return user(this.origin, id);
  }
}

const serializer: Provider = { provide: APP_INTERCEPTOR, useClass: ClassSerializerInterceptor };
const stampedeGlobally: Provider = { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor };

/** A class instance (an ORM entity, say) and no interceptor outside ours: what is stored is what is sent. */
class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

@Controller('points')
@UseInterceptors(StampedeInterceptor)
class PointsController {
  constructor(private readonly origin: Origin) {}

  @Get('origin')
  async origin0() {
    await this.origin.run('point');
    return new Point(0, 0);
  }
}

/** Per setup: its paths, and for each whether the serializer runs outside ours. */
const SETUPS: { name: string; paths: [string, boolean][]; controllers: unknown[]; providers: Provider[] }[] = [
  {
    name: '@UseInterceptors in both orders',
    paths: [
      ['/outside', true],
      ['/inside', false],
    ],
    controllers: [OutsideController, InsideController],
    providers: [],
  },
  {
    name: 'APP_INTERCEPTOR, serializer first',
    paths: [['/global', true]],
    controllers: [GlobalController],
    providers: [serializer, stampedeGlobally],
  },
  {
    name: 'APP_INTERCEPTOR, serializer last',
    paths: [['/global', false]],
    controllers: [GlobalController],
    providers: [stampedeGlobally, serializer],
  },
];

describe.each(PLATFORMS)('serializers on %s', (platform: Platform) => {
  describe.each(['in-process', 'keyv'] as const)('with the %s store', (storeKind) => {
    describe.each(SETUPS)('$name', ({ paths, controllers, providers }) => {
      let running: RunningApp;
      let origin: Origin;
      let stampede: StampedeService;
      const map = new Map<string, unknown>();

      beforeAll(async () => {
        jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
        running = await startApp(platform, {
          imports: [
            StampedeModule.forRoot({
              ttl: 60_000,
              ...(storeKind === 'keyv' ? { store: new Keyv({ store: map }) } : {}),
            }),
          ],
          controllers: controllers as never[],
          providers: [Origin, ...providers],
        });
        origin = running.app.get(Origin);
        stampede = running.app.get(StampedeService);
      });
      afterAll(async () => {
        jest.restoreAllMocks();
        await running.close();
      });

      it.each(paths)(
        'never sends or stores the excluded field under %s (waiters, hits, later callers)',
        async (base) => {
          const path = `${base}/users/7`;
          origin.reset();
          origin.hold('user');
          const concurrent = Array.from({ length: 3 }, () => request(`${running.url}${path}`));
          await until(() => stampede.stats().waiting === 3, 'three callers');
          origin.open('user');
          const replies: Reply[] = [...(await Promise.all(concurrent))];
          for (let i = 0; i < 3; i++) replies.push(await request(`${running.url}${path}`));
          for (const reply of replies) {
            expect(reply.status).toBe(200);
            expect(JSON.parse(reply.text)).toEqual({ id: '7', name: expect.stringMatching(/^user 7 \(run \d\)$/) });
          }
          // The three waiters shared one run.
          expect(new Set(replies.slice(0, 3).map((r) => r.text)).size).toBe(1);
          expect(JSON.stringify([...map.entries()])).not.toContain('hunter2');
        },
      );
    });
  });
});

describe.each(PLATFORMS)('class instances with nothing outside on %s', (platform: Platform) => {
  it('are stored in a serializing store as they are sent, and answered from it', async () => {
    const map = new Map<string, unknown>();
    const running = await startApp(platform, {
      imports: [StampedeModule.forRoot({ ttl: 60_000, store: new Keyv({ store: map }) })],
      controllers: [PointsController],
      providers: [Origin],
    });
    const first = await request(`${running.url}/points/origin`);
    const second = await request(`${running.url}/points/origin`);
    expect([first.text, second.text]).toEqual(['{"x":0,"y":0}', '{"x":0,"y":0}']);
    expect(second.headers['cache-status']).toMatch(/; hit;/);
    expect(running.app.get(Origin).calls('point')).toBe(1);
    await running.close();
  });
});
