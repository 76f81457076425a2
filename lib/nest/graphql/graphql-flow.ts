import { CallHandler, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable, map, of } from 'rxjs';
import { valueOf } from '../../core/answer';
import { UnserializableArgumentError, argumentsKey } from '../../core/arguments-key';
import { BypassReason } from '../../core/events';
import { sha256 } from '../../core/hash';
import type { StampedeEngine } from '../stampede.engine';
import { classId } from '../methods/stampede.method-runner';
import { EntryPointSettings, EntryPointSettingsCache, isPerRequest } from '../entry-point-settings';
import { GraphqlRequestLike, headerKeyPart, isPerCaller } from './graphql-caller';
import { takesInfo } from './graphql-metadata';

/** The parts of graphql-js's `GraphQLResolveInfo` the flow reads. */
interface ResolveInfoLike {
  fieldName: string;
  parentType: { name: string };
  operation: { operation: string };
  schema: { getQueryType(): unknown };
}

function isResolveInfo(value: unknown): value is ResolveInfoLike {
  const info = value as Partial<ResolveInfoLike> | null;
  return (
    typeof info === 'object' &&
    info !== null &&
    typeof info.fieldName === 'string' &&
    typeof info.operation?.operation === 'string' &&
    typeof info.schema?.getQueryType === 'function'
  );
}

/**
 * The GraphQL path through `StampedeInterceptor`: concurrent identical query
 * resolutions share one resolver run, and its return value is kept for `ttl`.
 *
 * Coalesced: root `Query` fields (every one behind the interceptor), and
 * field resolvers with `@Coalesce` on them or their resolver class (they are
 * intercepted only with `fieldResolverEnhancers: ['interceptors']`). Never:
 * mutations and subscriptions (nor anything resolved under them), resolvers
 * taking `@Info()` (they may answer per selection set) or of request-scoped
 * classes, without a `key` function; and per-caller requests (see `isPerCaller`).
 *
 * Key: resolver, parent type, field, a stable serialization of the arguments,
 * a hash of the parent for a field resolver, the `keyHeaders` (hashed) and
 * what the `key` function returns (given the `ExecutionContext`).
 */
export class GraphqlFlow {
  private readonly settings: EntryPointSettingsCache;
  private readonly takesInfo = new WeakMap<object, boolean>();

  constructor(
    private readonly engine: StampedeEngine,
    reflector: Reflector,
  ) {
    this.settings = new EntryPointSettingsCache(reflector, engine.defaults);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    // [parent, args, context, info]; reference and type resolvers take three (never coalesced).
    const args = context.getArgs();
    if (args.length !== 4) return next.handle();
    const [parent, fieldArgs, gqlContext, info] = args as [unknown, unknown, { req?: GraphqlRequestLike }, unknown];
    if (!isResolveInfo(info) || info.operation.operation !== 'query') return next.handle();
    const type = context.getClass();
    const handler = context.getHandler();
    const settings = this.settings.of(type, handler);
    if (settings === null) return next.handle();
    const rootField = info.parentType === info.schema.getQueryType();
    if (!rootField && !settings.explicit) return next.handle();

    const where = `graphql ${info.parentType.name}.${info.fieldName}`;
    let custom: string | undefined;
    if (settings.key) {
      custom = settings.key(context);
      if (custom === undefined) return this.alone(next, where, 'key-function');
    } else if (
      isPerRequest(type) ||
      this.readsInfo(type, handler) ||
      isPerCaller(gqlContext?.req ?? undefined, settings, this.engine.defaults.credentialHeaders)
    ) {
      // Never answer one caller with another's result: let it through, alone.
      return this.alone(next, where, 'credentials');
    }
    const key = this.keyOf(context, settings, parent, fieldArgs, info, rootField, custom);
    if (key === undefined) return this.alone(next, where, 'unserializable-arguments');

    const policy = this.settings.policyFor(settings, context);
    const hit = this.engine.coalescer.peek(key, policy);
    if (hit !== undefined) return of(hit.value);
    return this.engine.coalescer.run$(key, () => next.handle(), policy).pipe(map(valueOf));
  }

  private keyOf(
    context: ExecutionContext,
    settings: EntryPointSettings,
    parent: unknown,
    fieldArgs: unknown,
    info: ResolveInfoLike,
    rootField: boolean,
    custom: string | undefined,
  ): string | undefined {
    const gqlContext = context.getArgByIndex<{ req?: GraphqlRequestLike } | undefined>(2);
    try {
      // A field resolver answers per parent: its hash joins the key.
      const parentPart = rootField ? null : sha256(argumentsKey([parent]));
      return `gql:${argumentsKey([
        `${classId(context.getClass())}.${context.getHandler().name}`,
        info.parentType.name,
        info.fieldName,
        fieldArgs,
        parentPart,
        headerKeyPart(gqlContext?.req, settings.keyHeaders),
        custom ?? null,
      ])}`;
    } catch (error) {
      if (error instanceof UnserializableArgumentError) return undefined;
      throw error;
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  private readsInfo(type: Function, handler: Function): boolean {
    let reads = this.takesInfo.get(handler);
    if (reads === undefined) {
      reads = takesInfo(type, handler.name);
      this.takesInfo.set(handler, reads);
    }
    return reads;
  }

  private alone(next: CallHandler, where: string, reason: BypassReason): Observable<unknown> {
    this.engine.coalescer.report('bypass', where, { reason });
    return next.handle();
  }
}
