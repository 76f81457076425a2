import { Controller, Injectable, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { Coalesce, StampedeInterceptor, StampedeModule, StampedeService } from '../../lib';
import { until } from '../helpers/deferred';
import { RunningMicroservice, startMicroservice } from './tcp-app';

/**
 * The code of README's Microservices section, as it stands there (checked
 * below), compiled by the typecheck and run on a real TCP microservice.
 */

/** What the README leaves to the app: each call counted, quotes held until the test opens them. */
@Injectable()
class PricesService {
  readonly calls = new Map<string, number>();
  gate: Promise<void> = Promise.resolve();
  private count(name: string): number {
    const n = (this.calls.get(name) ?? 0) + 1;
    this.calls.set(name, n);
    return n;
  }
  async quote(query: { sku: string; currency: string }): Promise<string> {
    const call = this.count(`quote:${query.sku}`);
    await this.gate;
    return `${query.sku} in ${query.currency}, call ${call}`;
  }
  catalog(page: number): string[] {
    return [`page ${page}, call ${this.count('catalog')}`];
  }
  forget(sku: string): void {
    this.count(`forget:${sku}`);
  }
}

// README:microservices
@Controller()
export class PricesController {
  constructor(private readonly prices: PricesService) {}

  @MessagePattern({ cmd: 'price' }) // coalesced by pattern and payload
  price(@Payload() query: { sku: string; currency: string }) {
    return this.prices.quote(query);
  }

  @MessagePattern({ cmd: 'catalog' })
  @Coalesce({ ttl: 60_000 })
  catalog(@Payload() page: number) {
    return this.prices.catalog(page);
  }

  @EventPattern('price.changed') // never coalesced: every event runs its handler
  changed(@Payload() sku: string) {
    this.prices.forget(sku);
  }
}

@Module({
  imports: [StampedeModule.forRoot({ ttl: 0 })], // coalesce only, store nothing
  controllers: [PricesController],
  providers: [PricesService, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
})
export class PricesModule {}
// README:end

describe('README Microservices snippet', () => {
  it('is the code of this file, word for word', () => {
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
    const self = readFileSync(__filename, 'utf8');
    const code = self.split('// README:microservices\n')[1].split('// README:end')[0];
    const block = readme.split('<!-- README:microservices -->')[1]?.split('```ts\n')[1]?.split('```')[0];
    expect(block).toEqual(code);
  });
});

describe('README Microservices snippet on TCP', () => {
  let running: RunningMicroservice;
  let prices: PricesService;
  let stampede: StampedeService;

  beforeAll(async () => {
    running = await startMicroservice({ imports: [PricesModule] });
    prices = running.app.get(PricesService);
    stampede = running.app.get(StampedeService);
  });
  afterAll(() => running?.close());

  const send = <T>(pattern: unknown, data: unknown) => firstValueFrom(running.client.send<T>(pattern, data));

  it('price: one run for 20 concurrent identical messages; none kept (ttl 0)', async () => {
    let open!: () => void;
    prices.gate = new Promise<void>((resolve) => (open = resolve));
    const replies = Promise.all(
      Array.from({ length: 20 }, () => send<string>({ cmd: 'price' }, { sku: 'a', currency: 'EUR' })),
    );
    try {
      await until(() => stampede.stats().waiting === 20, '20 callers');
    } finally {
      open();
    }
    expect(new Set(await replies)).toEqual(new Set(['a in EUR, call 1']));
    await expect(send({ cmd: 'price' }, { currency: 'EUR', sku: 'a' })).resolves.toBe('a in EUR, call 2');
  });

  it('catalog: kept 60 s by its @Coalesce', async () => {
    await expect(send({ cmd: 'catalog' }, 1)).resolves.toEqual(['page 1, call 1']);
    await expect(send({ cmd: 'catalog' }, 1)).resolves.toEqual(['page 1, call 1']);
    expect(prices.calls.get('catalog')).toBe(1);
  });

  it('price.changed: every event runs its handler', async () => {
    for (let i = 0; i < 5; i++) running.client.emit('price.changed', 'b');
    await until(() => prices.calls.get('forget:b') === 5, '5 event runs');
  });
});
