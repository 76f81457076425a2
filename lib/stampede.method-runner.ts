import { Logger } from '@nestjs/common';
import { Observable, isObservable, map, of } from 'rxjs';
import { UnserializableArgumentError, argumentsKey } from './core/arguments-key';
import { Coalescer, RunPolicy } from './core/coalescer';
import { boundKey } from './core/hash';
import { MemoryStore } from './core/memory-store';
import { isPromiseLike } from './core/store';
import { DEFAULT_MAX_ENTRIES, DEFAULT_TTL } from './stampede.constants';
import { CoalesceOptions, ResolvedStampedeOptions } from './stampede.options';
import { normalizeEarlyRefresh } from './stampede.validation';

/** What a decorated method runs on: an engine and its default TTL. */
export interface MethodEngine {
  readonly coalescer: Coalescer;
  readonly defaultTtl: number;
  readonly defaults: Pick<
    ResolvedStampedeOptions,
    'timeout' | 'waitTimeout' | 'onWaitTimeout' | 'staleTtl' | 'staleIfError' | 'earlyRefresh'
  >;
}

// Bindings made by the explorer at bootstrap: per instance for singletons, per
// class for request-scoped and transient providers (their instances come later).
const instanceEngines = new WeakMap<object, MethodEngine>();
const classEngines = new WeakMap<object, MethodEngine>();

/** Binds a provider instance's decorated methods to a module's engine. */
export function bindInstance(instance: object, engine: MethodEngine): void {
  instanceEngines.set(instance, engine);
}

/** Binds every instance of a class (request-scoped, transient) to a module's engine. */
export function bindClass(type: object, engine: MethodEngine): void {
  classEngines.set(type, engine);
}

/** Undoes the bindings to `engine` (when its app shuts down). */
export function unbind(targets: readonly object[], engine: MethodEngine): void {
  for (const target of targets) {
    if (instanceEngines.get(target) === engine) instanceEngines.delete(target);
    if (classEngines.get(target) === engine) classEngines.delete(target);
  }
}

let fallbackEngine: MethodEngine | undefined;

/** The engine of an instance Nest did not create: in-process, with the defaults. */
function defaultEngine(): MethodEngine {
  fallbackEngine ??= {
    coalescer: new Coalescer({ store: new MemoryStore(DEFAULT_MAX_ENTRIES), logger: new Logger('Stampede') }),
    defaultTtl: DEFAULT_TTL,
    defaults: { timeout: 0, waitTimeout: 0, onWaitTimeout: 'run', staleTtl: 0, staleIfError: 0 },
  };
  return fallbackEngine;
}

function engineFor(instance: object): MethodEngine {
  const bound = instanceEngines.get(instance);
  if (bound) return bound;
  for (let proto = Object.getPrototypeOf(instance); proto; proto = Object.getPrototypeOf(proto)) {
    const engine = classEngines.get(proto.constructor);
    if (engine) return engine;
  }
  return defaultEngine();
}

// Two classes with one name in one process get distinct key prefixes; the
// first keeps the bare name, so keys stay equal across instances of an app.
const classIds = new WeakMap<object, string>();
const namesSeen = new Map<string, number>();
function classId(type: { name: string }): string {
  let id = classIds.get(type);
  if (id === undefined) {
    const seen = (namesSeen.get(type.name) ?? 0) + 1;
    namesSeen.set(type.name, seen);
    id = seen === 1 ? type.name : `${type.name}~${seen}`;
    classIds.set(type, id);
  }
  return id;
}

type Shape = 'observable' | 'promise' | 'value';

function shapeOf(result: unknown): Shape {
  if (isObservable(result)) return 'observable';
  return isPromiseLike(result) ? 'promise' : 'value';
}

const CONTROLLER_PATH_METADATA = 'path';

/**
 * Wraps a provider method so that concurrent calls with equal arguments share
 * one execution, and its result is kept for `ttl` ms. The wrapper returns
 * what the method returns: an Observable for a method declared (or seen) to
 * return one, a Promise for an async method, and a plain value for a
 * synchronous one as long as the store answers synchronously (the default
 * in-process store does; with an asynchronous store it becomes a Promise).
 */
export function coalescedMethod(
  original: (...args: unknown[]) => unknown,
  declaringClass: { name: string; prototype: object },
  methodName: string,
  options: CoalesceOptions,
): (...args: unknown[]) => unknown {
  const logger = new Logger('Stampede');
  const earlyRefresh = options.earlyRefresh !== undefined ? normalizeEarlyRefresh(options.earlyRefresh) : undefined;
  const declaredReturn = Reflect.getMetadata('design:returntype', declaringClass.prototype, methodName);
  let shape: Shape | undefined =
    declaredReturn === Observable ? 'observable' : declaredReturn === Promise ? 'promise' : undefined;
  let warned = false;
  let isController: boolean | undefined;
  let keyPrefix: string | undefined;
  // One policy per engine; per call only when tags are a function of the arguments.
  const policies = new WeakMap<MethodEngine, RunPolicy<unknown>>();
  const policyOf = (engine: MethodEngine, args: unknown[]): RunPolicy<unknown> => {
    const tags = options.tags;
    if (typeof tags !== 'function') {
      let policy = policies.get(engine);
      if (!policy) policies.set(engine, (policy = buildPolicy(engine, tags === undefined ? undefined : () => tags)));
      return policy;
    }
    return buildPolicy(engine, (value) => tags(value, ...args));
  };
  const buildPolicy = (engine: MethodEngine, tags?: (value: unknown) => string[]): RunPolicy<unknown> => ({
    ttl: options.ttl ?? engine.defaultTtl,
    timeout: options.timeout ?? engine.defaults.timeout,
    waitTimeout: options.waitTimeout ?? engine.defaults.waitTimeout,
    onWaitTimeout: options.onWaitTimeout ?? engine.defaults.onWaitTimeout,
    staleTtl: options.staleTtl ?? engine.defaults.staleTtl,
    staleIfError: options.staleIfError ?? engine.defaults.staleIfError,
    earlyRefresh: earlyRefresh ?? engine.defaults.earlyRefresh,
    tags,
  });

  const wrapper = function (this: object, ...args: unknown[]): unknown {
    // Routes are coalesced by the interceptor, per request; a handler call is not a service call.
    isController ??= Reflect.getMetadata(CONTROLLER_PATH_METADATA, declaringClass) !== undefined;
    if (isController || this === undefined || this === null) return original.apply(this, args);

    let key: string | undefined;
    try {
      keyPrefix ??= `${classId(declaringClass)}.${methodName}(`;
      key = options.key ? options.key(...args) : `${keyPrefix}${argumentsKey(args)})`;
    } catch (error) {
      if (!(error instanceof UnserializableArgumentError)) throw error;
      if (!warned) {
        warned = true;
        logger.warn(`${declaringClass.name}.${methodName}: ${error.message}; such calls are not coalesced`);
      }
    }
    const engine = engineFor(this);
    if (key === undefined) {
      engine.coalescer.report('bypass', `${classId(declaringClass)}.${methodName}`, {
        reason: 'unserializable-arguments',
      });
      return original.apply(this, args);
    }
    const policy = policyOf(engine, args);
    const bounded = boundKey(key);
    // A fresh in-process hit answers in the method's own shape, without the Observable machinery.
    const hit = engine.coalescer.peekFresh(bounded, policy);
    if (hit !== undefined) {
      if (shape === 'value') return hit.v;
      return shape === 'observable' ? of(hit.v) : Promise.resolve(hit.v);
    }
    if (shape === 'promise') {
      const joined = engine.coalescer.joinFast(bounded, policy);
      if (joined !== undefined) return joined;
    }
    const work = () => {
      const result = original.apply(this, args);
      shape = shapeOf(result);
      return result;
    };
    const value$ = engine.coalescer.run$(bounded, work, policy).pipe(map((lookup) => lookup.value));
    if (shape === 'observable') return value$;
    return settle(value$, () => shape);
  };
  Object.defineProperty(wrapper, 'name', { value: original.name || methodName });
  return wrapper;
}

/**
 * Subscribes at once (as calling a method runs it). Settled synchronously and
 * the method is synchronous: the plain value (or the throw). Otherwise a
 * Promise; or, when the method turned out to return an Observable, one that
 * replays what the shared flight emits.
 */
function settle(value$: Observable<unknown>, shape: () => Shape | undefined): unknown {
  const emitted: unknown[] = [];
  let error: unknown;
  let state: 'pending' | 'done' | 'failed' = 'pending';
  let onSettle: (() => void) | undefined;
  value$.subscribe({
    next: (value) => emitted.push(value),
    error: (e: unknown) => {
      error = e;
      state = 'failed';
      onSettle?.();
    },
    complete: () => {
      state = 'done';
      onSettle?.();
    },
  });
  if (shape() === 'observable') {
    return new Observable((subscriber) => {
      const flush = () => {
        for (const value of emitted) subscriber.next(value);
        if (state === 'failed') subscriber.error(error);
        else subscriber.complete();
      };
      if (state !== 'pending') flush();
      else onSettle = flush;
    });
  }
  if (state !== 'pending' && shape() === 'value') {
    if (state === 'failed') throw error;
    return emitted[emitted.length - 1];
  }
  return new Promise((resolve, reject) => {
    const finish = () => (state === 'failed' ? reject(error) : resolve(emitted[emitted.length - 1]));
    if (state !== 'pending') finish();
    else onSettle = finish;
  });
}
