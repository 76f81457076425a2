import { Injectable, Logger, OnApplicationBootstrap, OnModuleInit, Optional } from '@nestjs/common';
import { DiscoveryService, ExternalContextCreator } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { COALESCE_METADATA } from './stampede.constants';
import { StampedeOptionsError } from '../errors';
import { markPerRequest } from './entry-point-settings';
import { isResolverClass, resolverKind } from './graphql/graphql-metadata';
import { handlerKind } from './microservices/rpc-metadata';

const INTERCEPTORS_METADATA = '__interceptors__';
/** `@nestjs/graphql`'s options token, to see whether field resolvers are intercepted. */
const GRAPHQL_MODULE_OPTIONS = 'GqlModuleOptions';
/** Options that mean something for HTTP responses only. */
// `edge` too: the edge tier answers HTTP routes only, a resolver or a message handler would ignore it.
const HTTP_RESPONSE_OPTIONS = ['maxBodyBytes', 'statusTtl', 'respectCacheControl', 'keyBody', 'edge'];

type Class = { name: string; prototype: object };

/** The methods of `type` (inherited ones too), by name. */
function methodsOf(type: Class): Map<string, object> {
  const methods = new Map<string, object>();
  for (let proto = type.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const value = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name !== 'constructor' && typeof value === 'function' && !methods.has(name)) methods.set(name, value);
    }
  }
  return methods;
}

/** Whether `interceptors` (a `@UseInterceptors` list or the global one) holds a `StampedeInterceptor`. */
function holdsStampede(interceptors: unknown): boolean {
  if (!Array.isArray(interceptors)) return false;
  return interceptors.some((item: unknown) => {
    const type = typeof item === 'function' ? item : (item as object | null)?.constructor;
    // By name, up the class chain: a subclass of StampedeInterceptor counts, and no import cycle.
    for (let t = type as { name?: string } | null; t; t = Object.getPrototypeOf(t) as { name?: string } | null) {
      if (t.name === 'StampedeInterceptor') return true;
    }
    return false;
  });
}

/**
 * Checks, at bootstrap, the `@Coalesce` settings on GraphQL resolvers and
 * microservice handlers: refuses them where they would do harm (a mutation or
 * subscription, an HTTP response option), warns where they cannot act (an
 * `@EventPattern`, no `StampedeInterceptor` in the handler's chain, a field
 * resolver without `fieldResolverEnhancers: ['interceptors']`), and marks
 * request-scoped resolvers and message controllers (never coalesced by
 * arguments alone).
 */
@Injectable()
export class StampedeEntryPointCheck implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('Stampede');
  /** Decorated handlers, for the interceptor check once global interceptors are known. */
  private readonly decorated: { type: Class; name: string; method: object; field: boolean }[] = [];
  // NestMicroservice.init() runs the lifecycle hooks twice: check (and warn) once.
  private readonly ran = { init: false, bootstrap: false };

  constructor(
    private readonly discovery: DiscoveryService,
    @Optional() private readonly contexts?: ExternalContextCreator,
  ) {}

  onModuleInit(): void {
    if (this.ran.init) return;
    this.ran.init = true;
    for (const wrapper of this.discovery.getProviders()) {
      const type = wrapper.metatype as Class | undefined;
      if (typeof type === 'function' && isResolverClass(type)) this.checkResolver(type, wrapper);
    }
    for (const wrapper of this.discovery.getControllers()) {
      const type = wrapper.metatype as Class | undefined;
      if (typeof type === 'function') this.checkController(type, wrapper);
    }
  }

  onApplicationBootstrap(): void {
    if (this.ran.bootstrap) return;
    this.ran.bootstrap = true;
    const global = this.globalInterceptors();
    const fieldsIntercepted = this.fieldResolversIntercepted();
    for (const { type, name, method, field } of this.decorated) {
      const where = `${type.name}.${name}`;
      if (field && fieldsIntercepted === false) {
        this.logger.warn(
          `@Coalesce() on ${where} has no effect: field resolvers pass through interceptors only with ` +
            `GraphQLModule.forRoot({ fieldResolverEnhancers: ['interceptors'] })`,
        );
      } else if (
        global !== undefined &&
        !holdsStampede(global) &&
        !holdsStampede(Reflect.getMetadata(INTERCEPTORS_METADATA, type)) &&
        !holdsStampede(Reflect.getMetadata(INTERCEPTORS_METADATA, method))
      ) {
        this.logger.warn(
          `@Coalesce() on ${where} has no effect: no StampedeInterceptor in its chain. Register it globally ` +
            `({ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }) or with @UseInterceptors(StampedeInterceptor)`,
        );
      }
    }
    this.decorated.length = 0;
  }

  private checkResolver(type: Class, wrapper: InstanceWrapper): void {
    if (!wrapper.isDependencyTreeStatic()) markPerRequest(type);
    const onClass = Reflect.getMetadata(COALESCE_METADATA, type) as object | undefined;
    if (onClass) this.refuseHttpOptions(onClass, `@Coalesce on resolver ${type.name}`);
    for (const [name, method] of methodsOf(type)) {
      const own = Reflect.getMetadata(COALESCE_METADATA, method) as object | undefined;
      const kind = resolverKind(method);
      if (kind === undefined) continue;
      if (!own) {
        // A class-level @Coalesce acts on its queries: they too need the interceptor.
        if (onClass && kind === 'Query') this.decorated.push({ type, name, method, field: false });
        continue;
      }
      if (kind === 'Mutation' || kind === 'Subscription') {
        throw new Error(
          `nestjs-stampede: @Coalesce() on ${type.name}.${name}, a ${kind.toLowerCase()} resolver: ` +
            `${kind === 'Mutation' ? 'each mutation must run (coalescing would drop writes)' : 'a subscription is a stream per subscriber'}, ` +
            `so it is never coalesced. Remove @Coalesce() from ${type.name}.${name}.`,
        );
      }
      this.refuseHttpOptions(own, `@Coalesce on resolver ${type.name}.${name}`);
      this.decorated.push({ type, name, method, field: kind === 'field' });
    }
  }

  private checkController(type: Class, wrapper: InstanceWrapper): void {
    const onClass = Reflect.getMetadata(COALESCE_METADATA, type) as object | undefined;
    let handlesMessages = false;
    for (const [name, method] of methodsOf(type)) {
      const kind = handlerKind(method);
      if (kind === undefined) continue;
      handlesMessages = true;
      const own = Reflect.getMetadata(COALESCE_METADATA, method) as object | undefined;
      if (!own) {
        if (onClass && kind === 'message') this.decorated.push({ type, name, method, field: false });
        continue;
      }
      if (kind === 'event') {
        this.logger.warn(
          `@Coalesce() on ${type.name}.${name} has no effect: it is an @EventPattern handler, and every event runs its handler`,
        );
        continue;
      }
      this.refuseHttpOptions(own, `@Coalesce on message handler ${type.name}.${name}`, true);
      this.decorated.push({ type, name, method, field: false });
    }
    if (!handlesMessages) return;
    if (!wrapper.isDependencyTreeStatic()) markPerRequest(type);
    if (onClass) this.refuseHttpOptions(onClass, `@Coalesce on controller ${type.name}`, true);
  }

  /** HTTP response options (and, on a message handler, `keyHeaders`: a message has none) are errors here. */
  private refuseHttpOptions(options: object, where: string, message = false): void {
    for (const name of [...HTTP_RESPONSE_OPTIONS, ...(message ? ['keyHeaders'] : [])]) {
      const value = (options as Record<string, unknown>)[name];
      if (value !== undefined) {
        throw new StampedeOptionsError(name, value, 'no such option here: it applies to HTTP routes only', where);
      }
    }
  }

  /** The app's global interceptors; `undefined` when they cannot be read (then nothing is said). */
  private globalInterceptors(): unknown[] | undefined {
    type Config = { getGlobalInterceptors(): unknown[]; getGlobalRequestInterceptors(): { metatype?: unknown }[] };
    const config = (this.contexts as unknown as { interceptorsContextCreator?: { config?: Config } } | undefined)
      ?.interceptorsContextCreator?.config;
    if (typeof config?.getGlobalInterceptors !== 'function') return undefined;
    const scoped = config.getGlobalRequestInterceptors?.() ?? [];
    return [...config.getGlobalInterceptors(), ...scoped.map((wrapper) => wrapper.metatype)];
  }

  /** Whether the GraphQL module intercepts field resolvers; `undefined` when no GraphQL module is seen. */
  private fieldResolversIntercepted(): boolean | undefined {
    const options = this.discovery.getProviders().find((wrapper) => wrapper.token === GRAPHQL_MODULE_OPTIONS)
      ?.instance as { fieldResolverEnhancers?: string[] } | undefined;
    if (!options) return undefined;
    return options.fieldResolverEnhancers?.includes('interceptors') ?? false;
  }
}
