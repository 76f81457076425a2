import { Controller, ExecutionContext, INestMicroservice, ModuleMetadata, Scope } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import {
  ClientProxy,
  ClientProxyFactory,
  Ctx,
  EventPattern,
  MessagePattern,
  MicroserviceOptions,
  Payload,
  RpcException,
  TcpContext,
  Transport,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { AddressInfo, Server } from 'node:net';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { Origin } from '../apps/origin';

/** Message handlers over TCP; each counts its runs in `Origin` under its name and payload. */
@Controller()
export class PricesController {
  constructor(private readonly origin: Origin) {}

  @MessagePattern('price')
  async price(@Payload() data: { sku: string; currency?: string }): Promise<{ sku: string; run: number }> {
    return { sku: data.sku, run: await this.origin.run(`price:${data.sku}`) };
  }

  @MessagePattern({ cmd: 'stock' })
  async stock(@Payload() data: { sku: string }): Promise<string> {
    return `stock ${data.sku} run ${await this.origin.run(`stock:${data.sku}`)}`;
  }

  @MessagePattern('quote')
  @Coalesce({ ttl: 60_000 })
  async quote(@Payload() sku: string): Promise<string> {
    return `quote ${sku} run ${await this.origin.run(`quote:${sku}`)}`;
  }

  @MessagePattern('failing')
  async failing(@Payload() sku: string): Promise<never> {
    const run = await this.origin.run(`failing:${sku}`);
    throw new RpcException(`failed run ${run}`);
  }

  /** Reads the transport context: may answer per message, so runs alone. */
  @MessagePattern('traced')
  async traced(@Payload() sku: string, @Ctx() context: TcpContext): Promise<string> {
    return `${context.getPattern()} ${sku} run ${await this.origin.run(`traced:${sku}`)}`;
  }

  /** Reads the transport context, and says by its key what separates messages: coalesced by it. */
  @MessagePattern('tagged')
  @Coalesce({ key: (context: ExecutionContext) => String(context.switchToRpc().getContext<TcpContext>().getPattern()) })
  async tagged(@Payload() sku: string, @Ctx() context: TcpContext): Promise<string> {
    return `${context.getPattern()} ${sku} run ${await this.origin.run(`tagged:${sku}`)}`;
  }

  @EventPattern('viewed')
  async viewed(@Payload() sku: string): Promise<void> {
    await this.origin.run(`viewed:${sku}`);
  }
}

/** Request-scoped: its replies may depend on the message, so each runs alone. */
@Controller({ scope: Scope.REQUEST })
export class ScopedController {
  constructor(private readonly origin: Origin) {}

  @MessagePattern('scoped')
  async scoped(@Payload() sku: string): Promise<string> {
    return `scoped ${sku} run ${await this.origin.run(`scoped:${sku}`)}`;
  }
}

/** A real TCP microservice on loopback and a client connected to it. */
export interface RunningMicroservice {
  app: INestMicroservice;
  client: ClientProxy;
  close(): Promise<void>;
}

/** Builds a Nest microservice from `metadata`, listening on TCP on 127.0.0.1 (free port), and connects a client. */
export async function startMicroservice(metadata: ModuleMetadata): Promise<RunningMicroservice> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = moduleRef.createNestMicroservice<MicroserviceOptions>({
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port: 0 },
    logger: false,
  });
  await app.listen();
  const { port } = app.unwrap<Server>().address() as AddressInfo;
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
  await client.connect();
  return {
    app,
    client,
    close: async () => {
      await client.close();
      await app.close();
    },
  };
}

/** The prices service behind the global interceptor. */
export function pricesService(ttl = 0): Promise<RunningMicroservice> {
  return startMicroservice({
    imports: [StampedeModule.forRoot({ ttl })],
    controllers: [PricesController, ScopedController],
    providers: [Origin, { provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
  });
}
