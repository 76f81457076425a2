import { PolicyOptions, RunPolicy, resolvePolicy } from '../../core/policy';
import { StampedeOptionsError } from '../../errors';
import { ResolvedStampedeOptions } from './stampede.options';
import { MAX_POLICIES, RunOptions, hasOnlyTtl, onlyOption, signatureOf } from './stampede.run-options';
import { validateOptions } from './stampede.validation';

/**
 * The policies of `StampedeService` calls: per-call options validated and
 * merged over the module's. Calls without options share one policy; calls
 * whose options are all plain values (`{ ttl: 30_000 }`, a fresh literal
 * each call) share one per set of values, validated once.
 */
export class RunPolicies {
  private defaultPolicy?: RunPolicy<unknown>;
  private readonly policies = new Map<string, RunPolicy<unknown>>();
  private readonly singles = new Map<string, Map<unknown, RunPolicy<unknown>>>();
  // The usual one option, `ttl`, found with one lookup.
  private readonly byTtl = new Map<unknown, RunPolicy<unknown>>();
  // The last `{ ttl }` call's: a burst of `run(key, fn, { ttl })` (a stampede) skips the lookups.
  private lastTtl: unknown;
  private lastTtlPolicy?: RunPolicy<unknown>;

  constructor(private readonly defaults: ResolvedStampedeOptions) {}

  /**
   * The policy of a `run()` call. Kept this small so the JIT inlines it into
   * `run`: a call repeating the last `{ ttl }` (a burst, a stampede) costs a
   * comparison and a count of its options.
   */
  forRun<T>(key: unknown, options: RunOptions | undefined): RunPolicy<T> {
    // The last `ttl` is a primitive, so never an absent one.
    if (
      typeof key === 'string' &&
      options !== undefined &&
      options !== null &&
      options.ttl === this.lastTtl &&
      this.lastTtlPolicy !== undefined &&
      hasOnlyTtl(options)
    ) {
      return this.lastTtlPolicy as RunPolicy<T>;
    }
    return this.for(key, options);
  }

  for<T>(
    key: unknown,
    options: RunOptions | undefined,
    where = 'StampedeService.run',
    surface: 'run' | 'batch' = 'run',
  ): RunPolicy<T> {
    if (typeof key !== 'string') throw new StampedeOptionsError('key', key, 'a string', where);
    if (options === undefined) return (this.defaultPolicy ??= this.build({})) as RunPolicy<T>;
    // Not an options object (null, a number, an array): no option names to look up by; validation says why.
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      return this.build(validateOptions(options, surface, where) as RunOptions) as RunPolicy<T>;
    }
    // The usual call (`{ ttl: 30_000 }`): one plain option, found without building a signature.
    const single = surface === 'run' ? onlyOption(options) : undefined;
    const singleValue = single === undefined ? undefined : (options as Record<string, unknown>)[single];
    if (single !== undefined) {
      const known = (single === 'ttl' ? this.byTtl : this.singles.get(single))?.get(singleValue);
      if (known !== undefined) return this.remember(single, singleValue, known) as RunPolicy<T>;
    }
    const plain = signatureOf(options);
    const signature = plain === undefined ? undefined : `${surface}|${plain}`;
    if (signature !== undefined) {
      const known = this.policies.get(signature);
      if (known !== undefined) return known as RunPolicy<T>;
    }
    // Built from the options as validated: durations given as strings are milliseconds from here on.
    const policy = this.build(validateOptions(options, surface, where) as RunOptions);
    if (signature !== undefined) {
      if (this.policies.size >= MAX_POLICIES) this.policies.clear();
      this.policies.set(signature, policy);
    }
    if (single !== undefined) {
      let byValue = single === 'ttl' ? this.byTtl : this.singles.get(single);
      if (!byValue) this.singles.set(single, (byValue = new Map()));
      if (byValue.size >= MAX_POLICIES) byValue.clear();
      byValue.set(singleValue, policy);
      this.remember(single, singleValue, policy);
    }
    return policy as RunPolicy<T>;
  }

  private remember(name: string, value: unknown, policy: RunPolicy<unknown>): RunPolicy<unknown> {
    if (name === 'ttl') {
      this.lastTtl = value;
      this.lastTtlPolicy = policy;
    }
    return policy;
  }

  private build(options: RunOptions): RunPolicy<unknown> {
    const tags = options.tags ?? this.defaults.tags;
    return resolvePolicy(this.defaults, [options as PolicyOptions], {
      tags: tags === undefined ? undefined : typeof tags === 'function' ? (value) => tags(value) : () => tags,
    });
  }
}
