import { Controller, Logger, ModuleMetadata } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Ctx, EventPattern, GrpcMethod, GrpcStreamMethod, MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeOptionsError } from '../../lib';
import { grpcKind, handlerKind, patternsOf, takesContext } from '../../lib/nest/microservices/rpc-metadata';

@Controller()
class EventsController {
  @EventPattern('viewed')
  @Coalesce({ ttl: 1_000 })
  viewed(@Payload() _sku: string): void {}

  @MessagePattern({ cmd: 'price' })
  @Coalesce({ ttl: 1_000 })
  price(@Payload() sku: string, @Ctx() _context: unknown): string {
    return sku;
  }
}

@Controller()
class HeroesController {
  @GrpcMethod('HeroesService', 'FindOne')
  findOne(data: { id: number }): { id: number } {
    return data;
  }

  @GrpcStreamMethod('HeroesService', 'FindMany')
  findMany(): void {}
}

@Controller()
class HeaderKeyedController {
  @MessagePattern('price')
  @Coalesce({ keyHeaders: ['authorization'] })
  price(@Payload() sku: string): string {
    return sku;
  }
}

async function init(metadata: ModuleMetadata): Promise<void> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = moduleRef.createNestMicroservice({ logger: false });
  try {
    await app.init();
  } finally {
    await app.close();
  }
}

describe('Message handlers at bootstrap', () => {
  let warn: jest.SpyInstance;
  beforeEach(() => (warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined)));
  afterEach(() => warn.mockRestore());
  const warnings = () => warn.mock.calls.map(([message]) => String(message));

  it('reads what @nestjs/microservices writes: message and event handlers, patterns, @Ctx()', () => {
    const proto = EventsController.prototype;
    expect([handlerKind(proto.viewed), handlerKind(proto.price)]).toEqual(['event', 'message']);
    expect(patternsOf(proto.price)).toEqual([{ cmd: 'price' }]);
    expect([takesContext(EventsController, 'price'), takesContext(EventsController, 'viewed')]).toEqual([true, false]);
  });

  it('tells gRPC methods and streams apart (the one runs alone without a key function, the other always)', () => {
    const proto = HeroesController.prototype;
    expect([grpcKind(proto.findOne), grpcKind(proto.findMany), grpcKind(EventsController.prototype.price)]).toEqual([
      'unary',
      'stream',
      undefined,
    ]);
  });

  it('warns, naming the handler, about @Coalesce on an @EventPattern handler', async () => {
    await init({
      imports: [StampedeModule.forRoot()],
      controllers: [EventsController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    expect(warnings()).toEqual([
      expect.stringContaining('@Coalesce() on EventsController.viewed has no effect: it is an @EventPattern handler'),
    ]);
  });

  it('warns, naming the handler, about @Coalesce on a message handler with no StampedeInterceptor in its chain', async () => {
    await init({ imports: [StampedeModule.forRoot()], controllers: [EventsController] });
    expect(warnings()).toEqual([
      expect.stringContaining('EventsController.viewed has no effect: it is an @EventPattern handler'),
      expect.stringContaining(
        '@Coalesce() on EventsController.price has no effect: no StampedeInterceptor in its chain',
      ),
    ]);
  });

  it('refuses keyHeaders on a message handler (a message has no headers to key by), naming the handler', async () => {
    const failure = init({ imports: [StampedeModule.forRoot()], controllers: [HeaderKeyedController] });
    await expect(failure).rejects.toThrow(StampedeOptionsError);
    await expect(failure).rejects.toThrow(/"keyHeaders".*HeaderKeyedController\.price/);
  });
});
