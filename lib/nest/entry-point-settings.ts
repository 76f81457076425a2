import { Reflector } from '@nestjs/core';
import { PolicyOptions, RunPolicy, resolvePolicy } from '../core/policy';
import { COALESCE_METADATA, SKIP_COALESCE_METADATA } from './stampede.constants';
import { CoalesceOptions, KeyFunction, ResolvedStampedeOptions } from './options/stampede.options';
import { normalizeKeyHeaders } from './options/stampede.validation';

/**
 * The settings of one GraphQL resolver or message handler: its `@Coalesce`,
 * then its class's, then the module's.
 */
export interface EntryPointSettings {
  /** The policy when tags are not a function of the result; else built per call by `policyFor`. */
  policy: RunPolicy<unknown>;
  tags?: CoalesceOptions['tags'];
  key?: KeyFunction;
  keyHeaders: readonly string[];
  /** Whether the handler or its class has `@Coalesce` (field resolvers are coalesced only then). */
  explicit: boolean;
}

// Classes whose instances may answer per request (request-scoped, themselves
// or through a dependency), found at bootstrap: their results are not shared
// by arguments alone.
const perRequest = new WeakSet<object>();

/** Marks `type` as request-scoped (the bootstrap check does, for resolvers and message controllers). */
export function markPerRequest(type: object): void {
  perRequest.add(type);
}

/** Whether `type` was found request-scoped at bootstrap. */
export function isPerRequest(type: object): boolean {
  return perRequest.has(type);
}

/** Resolves and remembers the settings of each handler, per class (a handler may be inherited). */
export class EntryPointSettingsCache {
  private readonly byClass = new WeakMap<object, WeakMap<object, EntryPointSettings | null>>();

  constructor(
    private readonly reflector: Reflector,
    private readonly defaults: ResolvedStampedeOptions,
  ) {}

  /** The settings of `handler` on `type`; `null` under `@SkipCoalesce()`. */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  of(type: Function, handler: Function): EntryPointSettings | null {
    let byHandler = this.byClass.get(type);
    if (!byHandler) this.byClass.set(type, (byHandler = new WeakMap()));
    let settings = byHandler.get(handler);
    if (settings === undefined) {
      settings = this.resolve(type, handler);
      byHandler.set(handler, settings);
    }
    return settings;
  }

  /** The policy of one call: the settings' own, or one whose tags are a function of the result and `context`. */
  policyFor(settings: EntryPointSettings, context: unknown): RunPolicy<unknown> {
    const tags = settings.tags;
    if (typeof tags !== 'function') return settings.policy;
    return { ...settings.policy, tags: (value) => tags(value, context) };
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  private resolve(type: Function, handler: Function): EntryPointSettings | null {
    if (this.reflector.getAllAndOverride<boolean>(SKIP_COALESCE_METADATA, [handler, type])) return null;
    const fromHandler = this.reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, handler);
    const fromClass = this.reflector.get<CoalesceOptions | undefined>(COALESCE_METADATA, type);
    const pick = <K extends keyof CoalesceOptions>(name: K): CoalesceOptions[K] | undefined =>
      fromHandler?.[name] ?? fromClass?.[name];
    const tags = pick('tags') ?? this.defaults.tags;
    return {
      policy: resolvePolicy(
        this.defaults,
        [fromHandler as PolicyOptions | undefined, fromClass as PolicyOptions | undefined],
        { tags: Array.isArray(tags) ? () => tags : undefined },
      ),
      tags,
      key: pick('key') ?? this.defaults.key,
      keyHeaders: normalizeKeyHeaders(pick('keyHeaders') ?? [...this.defaults.keyHeaders]),
      explicit: fromHandler !== undefined || fromClass !== undefined,
    };
  }
}
