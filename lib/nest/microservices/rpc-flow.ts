import { CallHandler, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable, map, of } from 'rxjs';
import { valueOf } from '../../core/answer';
import { UnserializableArgumentError, argumentsKey } from '../../core/arguments-key';
import { BypassReason } from '../../core/events';
import type { StampedeEngine } from '../stampede.engine';
import { EntryPointSettingsCache, isPerRequest } from '../entry-point-settings';
import { grpcKind, handlerKind, patternsOf, takesContext } from './rpc-metadata';

/** The methods transports' contexts name their concrete pattern with (TCP and RMQ, NATS, Redis and MQTT, Kafka). */
const PATTERN_GETTERS = ['getPattern', 'getSubject', 'getChannel', 'getTopic'] as const;

/** The pattern the message came with, as the transport gives it; else the handler's only declared one. */
function concretePattern(context: ExecutionContext, handler: object): unknown {
  const transport = context.switchToRpc().getContext<Record<string, unknown> | undefined>();
  if (transport && typeof transport === 'object') {
    for (const getter of PATTERN_GETTERS) {
      const get = transport[getter];
      if (typeof get === 'function') return (get as () => unknown).call(transport);
    }
  }
  const declared = patternsOf(handler);
  return declared.length === 1 ? declared[0] : undefined;
}

/**
 * The microservice path through `StampedeInterceptor`: concurrent identical
 * request-response messages (`@MessagePattern`) share one handler run, and
 * its reply is kept for `ttl`. Key: the transport pattern and a stable
 * serialization of the payload (and what a `key` function returns, given the
 * `ExecutionContext`). Never coalesced: `@EventPattern` handlers (each event
 * is meant to act) and gRPC streams; handlers taking `@Ctx()` (they may read
 * per-message headers), gRPC methods (handed the call's metadata) and
 * request-scoped controllers, unless a `key` function says what separates
 * messages.
 */
export class RpcFlow {
  private readonly settings: EntryPointSettingsCache;
  private readonly readsContext = new WeakMap<object, boolean>();

  constructor(
    private readonly engine: StampedeEngine,
    reflector: Reflector,
  ) {
    this.settings = new EntryPointSettingsCache(reflector, engine.defaults);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const type = context.getClass();
    const handler = context.getHandler();
    // A gRPC stream is a conversation per caller, never shared.
    if (handlerKind(handler) !== 'message' || grpcKind(handler) === 'stream') return next.handle();
    const settings = this.settings.of(type, handler);
    if (settings === null) return next.handle();
    const pattern = concretePattern(context, handler);
    const where = `rpc ${type.name}.${handler.name}`;
    let custom: string | undefined;
    if (settings.key) {
      custom = settings.key(context);
      if (custom === undefined) return this.alone(next, where, 'key-function');
    } else if (isPerRequest(type) || this.takesContext(type, handler) || grpcKind(handler) === 'unary') {
      // They may read per-message headers (a gRPC method is always handed the call's metadata).

      return this.alone(next, where, 'credentials');
    }
    if (pattern === undefined) return this.alone(next, where, 'unserializable-arguments');
    let key: string;
    try {
      key = `rpc:${argumentsKey([pattern, context.switchToRpc().getData(), custom ?? null])}`;
    } catch (error) {
      if (!(error instanceof UnserializableArgumentError)) throw error;
      return this.alone(next, where, 'unserializable-arguments');
    }
    const policy = this.settings.policyFor(settings, context);
    const hit = this.engine.coalescer.peek(key, policy);
    if (hit !== undefined) return of(hit.value);
    return this.engine.coalescer.run$(key, () => next.handle(), policy).pipe(map(valueOf));
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  private takesContext(type: Function, handler: Function): boolean {
    let reads = this.readsContext.get(handler);
    if (reads === undefined) {
      reads = takesContext(type, handler.name);
      this.readsContext.set(handler, reads);
    }
    return reads;
  }

  private alone(next: CallHandler, where: string, reason: BypassReason): Observable<unknown> {
    this.engine.coalescer.report('bypass', where, { reason });
    return next.handle();
  }
}
