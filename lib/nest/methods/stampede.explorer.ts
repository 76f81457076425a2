import { Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { COALESCED_METHODS_METADATA, COALESCE_METADATA } from '../stampede.constants';
import { CoalesceOptions } from '../options/stampede.options';
import { bindClass, bindInstance, unbind } from './stampede.method-runner';
import { StampedeEngine } from '../stampede.engine';
import { isResolverClass } from '../graphql/graphql-metadata';
import { StampedeOptionsError } from '../../errors';
import { httpOnlyOptions } from '../options/stampede.validation';

/**
 * Finds, at bootstrap, the providers with `@Coalesce()` methods and binds them
 * to this module's engine, so they use its store and its (possibly
 * `forRootAsync`) options. Singletons are bound per instance; request-scoped
 * and transient providers per class, as their instances are made later.
 */
@Injectable()
export class StampedeExplorer implements OnModuleInit, OnApplicationShutdown {
  private readonly bound: object[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly engine: StampedeEngine,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const type = wrapper.metatype as object | undefined;
      const methods = type && (Reflect.getMetadata(COALESCED_METHODS_METADATA, type) as string[] | undefined);
      // Resolvers' @Coalesce acts through the interceptor's GraphQL path (checked by StampedeEntryPointCheck).
      if (!type || !methods || isResolverClass(type)) continue;
      this.refuseHttpOptions(type as { name: string }, methods);
      if (!wrapper.isDependencyTreeStatic()) this.refuseRequestScoped(type as { name: string }, methods);
      if (!wrapper.isTransient && wrapper.isDependencyTreeStatic() && wrapper.instance) {
        bindInstance(wrapper.instance as object, this.engine);
        this.bound.push(wrapper.instance as object);
      } else {
        bindClass(type, this.engine);
        this.bound.push(type);
      }
    }
  }

  /**
   * A request-scoped provider may answer differently per request (per user);
   * sharing its results by arguments alone could hand one user's data to
   * another. Allowed only where a `key` function says what separates callers.
   */
  private refuseRequestScoped(type: { name: string; prototype?: object }, methods: string[]): void {
    for (const name of methods) {
      const method = (type.prototype as Record<string, object>)[name];
      const options = Reflect.getMetadata(COALESCE_METADATA, method) as CoalesceOptions | undefined;
      if (!options?.key) {
        throw new Error(
          `nestjs-stampede: @Coalesce() on ${type.name}.${name}: ${type.name} is request-scoped (itself or through a dependency), ` +
            `so its results may depend on the request and are not shared by arguments alone. ` +
            `Give @Coalesce({ key: (...args) => ... }) a key that separates callers, or move the method to a singleton provider.`,
        );
      }
    }
  }

  /** An HTTP-only option on a provider method would be silently ignored: refuse it, naming where it was given. */
  private refuseHttpOptions(type: { name: string; prototype?: object }, methods: string[]): void {
    for (const name of methods) {
      const method = (type.prototype as Record<string, object>)[name];
      const options = (Reflect.getMetadata(COALESCE_METADATA, method) as CoalesceOptions | undefined) ?? {};
      const [option] = httpOnlyOptions(options);
      if (option !== undefined) {
        throw new StampedeOptionsError(
          option,
          (options as Record<string, unknown>)[option],
          'no such option on a provider method: it applies to HTTP routes (a controller, or the module) only',
          `@Coalesce on ${type.name}.${name}`,
        );
      }
    }
  }

  onApplicationShutdown(): void {
    unbind(this.bound, this.engine);
    this.bound.length = 0;
  }
}
