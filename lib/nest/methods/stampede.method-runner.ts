import { Logger } from '@nestjs/common';
import { Observable, from, isObservable, map, of } from 'rxjs';
import { valueOf } from '../../core/answer';
import { CallKeys, UnserializableArgumentError } from '../../core/arguments-key';
import { Coalescer, RunPolicy } from '../../core/coalescer';
import { LastJoin } from '../../core/last-join';
import { MemoryStore } from '../../core/memory-store';
import { PolicyDefaults, PolicyOptions, resolvePolicy } from '../../core/policy';
import { isPromiseLike } from '../../core/store';
import { isResolverClass } from '../graphql/graphql-metadata';
import { DEFAULTS } from '../options/stampede.validation';
import { CoalesceOptions, ResolvedStampedeOptions } from '../options/stampede.options';

/** What a decorated method runs on: an engine and its defaults. */
export interface MethodEngine {
  readonly coalescer: Coalescer;
  readonly defaultTtl: number;
  readonly defaults: PolicyDefaults & Pick<ResolvedStampedeOptions, 'tags'>;
}

// Bindings made by the explorer at bootstrap: per instance for singletons, per
// class for request-scoped and transient providers (their instances come later).
const instanceEngines = new WeakMap<object, MethodEngine>();
const classEngines = new WeakMap<object, MethodEngine>();
// Counts every change of the bindings: an engine a wrapper remembers for an instance holds while it is unchanged.
let bindings = 0;
// What each wrapper remembers of its last call, dropped when an app's bindings go (no closed app kept alive).
const remembered = new Set<() => void>();

/** Binds a provider instance's decorated methods to a module's engine. */
export function bindInstance(instance: object, engine: MethodEngine): void {
  bindings++;
  instanceEngines.set(instance, engine);
}

/** Binds every instance of a class (request-scoped, transient) to a module's engine. */
export function bindClass(type: object, engine: MethodEngine): void {
  bindings++;
  classEngines.set(type, engine);
}

/** Undoes the bindings to `engine` (when its app shuts down). */
export function unbind(targets: readonly object[], engine: MethodEngine): void {
  bindings++;
  for (const forget of remembered) forget();
  for (const target of targets) {
    if (instanceEngines.get(target) === engine) instanceEngines.delete(target);
    if (classEngines.get(target) === engine) classEngines.delete(target);
  }
}

let fallbackEngine: MethodEngine | undefined;

/** The engine of an instance Nest did not create: in-process, with the defaults. */
function defaultEngine(): MethodEngine {
  fallbackEngine ??= {
    coalescer: new Coalescer({ store: new MemoryStore(DEFAULTS.maxEntries), logger: new Logger('Stampede') }),
    defaultTtl: DEFAULTS.ttl,
    defaults: DEFAULTS,
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

// Two classes with one name in one process get distinct key prefixes, fixed
// when the class is decorated: the same code decorates in the same order in
// every instance of an app, so the prefixes (and keys) are equal across them.
const classIds = new WeakMap<object, string>();
const namesSeen = new Map<string, number>();
/** The key prefix of `type`'s methods: its name, and `~N` for the N-th class of that name. */
export function classId(type: { name: string }): string {
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
  const declaredReturn = Reflect.getMetadata('design:returntype', declaringClass.prototype, methodName);
  let shape: Shape | undefined =
    declaredReturn === Observable ? 'observable' : declaredReturn === Promise ? 'promise' : undefined;
  let warned = false;
  let isController: boolean | undefined;
  const name = `${classId(declaringClass)}.${methodName}`;
  const keys = new CallKeys(`${name}(`);
  // One policy per engine; per call only when tags are a function of the arguments.
  const policies = new WeakMap<MethodEngine, RunPolicy<unknown>>();
  const buildPolicy = (engine: MethodEngine, tags?: (value: unknown) => string[]): RunPolicy<unknown> =>
    resolvePolicy(engine.defaults, [options as PolicyOptions], { tags });
  // The last singleton called and its engine and policy (nearly always a match). Request-scoped and
  // transient instances are not remembered: each is new, and one kept would keep its request alive.
  let lastThis: object | undefined;
  let lastBindings = -1;
  let lastEngine: MethodEngine | undefined;
  let lastPolicy: RunPolicy<unknown> | undefined;
  // The flight the hot path below joined last, for its next caller.
  const lastJoin = new LastJoin();
  remembered.add(() => {
    lastThis = lastEngine = lastPolicy = undefined;
    lastJoin.clear();
  });
  const engineOf = (instance: object): MethodEngine => {
    if (instance === lastThis && bindings === lastBindings) return lastEngine!;
    const bound = instanceEngines.get(instance);
    if (bound === undefined) return engineFor(instance);
    lastThis = instance;
    lastBindings = bindings;
    lastPolicy = undefined;
    return (lastEngine = bound);
  };
  const policyOf = (engine: MethodEngine, args: unknown[]): RunPolicy<unknown> => {
    // Never set when tags are a function of the arguments (one policy per call then).
    if (engine === lastEngine && lastPolicy !== undefined) return lastPolicy;
    const tags = options.tags ?? engine.defaults.tags;
    if (typeof tags === 'function') return buildPolicy(engine, (value) => tags(value, ...args));
    let policy = policies.get(engine);
    if (!policy) policies.set(engine, (policy = buildPolicy(engine, tags === undefined ? undefined : () => tags)));
    if (engine === lastEngine) lastPolicy = policy;
    return policy;
  };

  // Made outside `call`: a closure there over `this` and `args` would cost every call a context, joins included.
  const workOf = (self: object, args: unknown[]) => (): unknown => {
    const result = original.apply(self, args);
    shape = shapeOf(result);
    return result;
  };

  // Every call but the hot one below.
  const call = function (this: object, ...args: unknown[]): unknown {
    // Routes and resolvers are coalesced by the interceptor, per request; a handler call is not a service call.
    isController ??=
      Reflect.getMetadata(CONTROLLER_PATH_METADATA, declaringClass) !== undefined || isResolverClass(declaringClass);
    if (isController || this === undefined || this === null) return original.apply(this, args);

    let key: string | undefined;
    try {
      key = options.key ? options.key(...args) : keys.of(args);
    } catch (error) {
      if (!(error instanceof UnserializableArgumentError)) throw error;
      if (!warned) {
        warned = true;
        logger.warn(`${declaringClass.name}.${methodName}: ${error.message}; such calls are not coalesced`);
      }
    }
    const engine = engineOf(this);
    if (key === undefined) {
      engine.coalescer.report('bypass', name, { reason: 'unserializable-arguments' });
      return original.apply(this, args);
    }
    const policy = policyOf(engine, args);
    if (shape === 'promise') {
      // A call in flight is joined before anything is built for a call of its own.
      const joined = engine.coalescer.joinInFlight(key, policy);
      if (joined !== undefined) return joined;
    }
    const work = workOf(this, args);
    if (shape === 'observable') {
      // A hit answers at once; otherwise every value of the shared flight reaches this caller.
      const hit = engine.coalescer.peek(key, policy);
      return hit !== undefined ? of(hit.value) : engine.coalescer.run$(key, work, policy).pipe(map(valueOf));
    }
    if (shape === 'promise') {
      try {
        const value = engine.coalescer.value(key, work, policy);
        return isPromiseLike(value) ? value : Promise.resolve(value);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // Not known yet, or synchronous: a plain value while everything answered synchronously.
    const value = engine.coalescer.value(key, work, policy);
    // The first call of a method found to return an Observable still answers with one.
    if ((shape as Shape | undefined) === 'observable') return isPromiseLike(value) ? from(value) : of(value);
    return value;
  };

  // Small, so the JIT optimizes (and inlines) it whole. `arguments`, not a rest parameter: read by
  // index and forwarded with `apply`, the JIT makes no array of them (a rest array costs every join).
  const wrapper = function (this: object): unknown {
    // The hot path, a stampede: the last singleton called again with the last argument, its key in flight.
    // Each check stands for one `call` makes (it set `lastPolicy` only when they passed).
    if (arguments.length === 1 && this === lastThis && bindings === lastBindings && lastPolicy !== undefined) {
      // eslint-disable-next-line prefer-rest-params -- see above
      const key = shape === 'promise' && options.key === undefined ? keys.repeated(arguments[0]) : undefined;
      const joined = key === undefined ? undefined : lastJoin.join(lastEngine!.coalescer, key, lastPolicy);
      if (joined !== undefined) return joined;
    }
    // eslint-disable-next-line prefer-rest-params -- see above
    return call.apply(this, arguments as unknown as unknown[]);
  };
  Object.defineProperty(wrapper, 'name', { value: original.name || methodName });
  return wrapper;
}
