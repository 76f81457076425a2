/**
 * What `@nestjs/graphql` writes on resolvers, read by its metadata keys so
 * that nothing here loads the package (an optional peer). A test checks these
 * against the package's own constants.
 */
export const RESOLVER_TYPE_METADATA = 'graphql:resolver_type';
export const RESOLVER_PROPERTY_METADATA = 'graphql:resolve_property';
export const PARAM_ARGS_METADATA = '__routeArguments__';
/** `GqlParamtype.INFO`: a resolver parameter given `@Info()`. */
export const INFO_PARAMTYPE = 2;

/** What a resolver method is, from its decorators. */
export type ResolverKind = 'Query' | 'Mutation' | 'Subscription' | 'field' | undefined;

/** The kind of `method` (a function on a resolver class), or `undefined` when it resolves nothing. */
export function resolverKind(method: object): ResolverKind {
  if (Reflect.getMetadata(RESOLVER_PROPERTY_METADATA, method) === true) return 'field';
  const type: unknown = Reflect.getMetadata(RESOLVER_TYPE_METADATA, method);
  return type === 'Query' || type === 'Mutation' || type === 'Subscription' ? type : undefined;
}

/** Whether `type` is a `@Resolver()` class. */
export function isResolverClass(type: object): boolean {
  return Reflect.hasMetadata(RESOLVER_TYPE_METADATA, type);
}

/** Whether the resolver method `methodName` of `type` takes `@Info()` (it may answer per selection set). */
export function takesInfo(type: { prototype: object }, methodName: string): boolean {
  const args = (Reflect.getMetadata(PARAM_ARGS_METADATA, type, methodName) ?? {}) as Record<string, unknown>;
  return Object.keys(args).some((param) => Number(param.split(':')[0]) === INFO_PARAMTYPE);
}
