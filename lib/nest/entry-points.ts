import { CallHandler, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable } from 'rxjs';
import type { StampedeEngine } from './stampede.engine';
import { GraphqlFlow } from './graphql/graphql-flow';
import { RpcFlow } from './microservices/rpc-flow';

interface Flows {
  graphql?: GraphqlFlow;
  rpc?: RpcFlow;
}

// Per engine (one per app), not per interceptor: Nest makes one interceptor per module that uses it.
const flowsByEngine = new WeakMap<StampedeEngine, Flows>();

/**
 * The interceptor's non-HTTP paths: GraphQL resolvers and microservice
 * message handlers. Each flow is made the first time its kind of context is
 * seen; neither loads `@nestjs/graphql` or `@nestjs/microservices`. Anything
 * else (WebSocket gateways) passes through.
 */
export function interceptEntryPoint(
  engine: StampedeEngine,
  reflector: Reflector,
  context: ExecutionContext,
  next: CallHandler,
): Observable<unknown> {
  const type = context.getType<string>();
  if (type !== 'graphql' && type !== 'rpc') return next.handle();
  let flows = flowsByEngine.get(engine);
  if (!flows) flowsByEngine.set(engine, (flows = {}));
  if (type === 'graphql') return (flows.graphql ??= new GraphqlFlow(engine, reflector)).intercept(context, next);
  return (flows.rpc ??= new RpcFlow(engine, reflector)).intercept(context, next);
}
