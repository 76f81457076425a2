/**
 * What `@nestjs/microservices` writes on handlers, read by its metadata keys
 * so that nothing here loads the package (an optional peer). A test checks
 * these against the package's own constants.
 */
export const PATTERN_METADATA = 'microservices:pattern';
export const PATTERN_HANDLER_METADATA = 'microservices:handler_type';
export const ROUTE_ARGS_METADATA = '__routeArguments__';
export const TRANSPORT_METADATA = 'microservices:transport';
/** `Transport.GRPC`, and `GrpcMethodStreamingType.NO_STREAMING`. */
export const GRPC_TRANSPORT = 4;
export const GRPC_NO_STREAMING = 'no_stream';
/** `PatternHandler.MESSAGE` (request-response) and `PatternHandler.EVENT`. */
export const MESSAGE_HANDLER = 1;
export const EVENT_HANDLER = 2;
/** `RpcParamtype.CONTEXT`: a handler parameter given `@Ctx()`. */
export const CONTEXT_PARAMTYPE = 6;

/** What a controller method handles: `message` (request-response), `event`, or nothing. */
export function handlerKind(method: object): 'message' | 'event' | undefined {
  const kind: unknown = Reflect.getMetadata(PATTERN_HANDLER_METADATA, method);
  return kind === MESSAGE_HANDLER ? 'message' : kind === EVENT_HANDLER ? 'event' : undefined;
}

/** The patterns a handler was declared with. */
export function patternsOf(method: object): unknown[] {
  const patterns: unknown = Reflect.getMetadata(PATTERN_METADATA, method);
  return Array.isArray(patterns) ? patterns : [];
}

/** Whether the handler `methodName` of `type` takes `@Ctx()` (the transport's context: headers, subject...). */
export function takesContext(type: { prototype: object }, methodName: string): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, type, methodName) ?? {}) as Record<string, unknown>;
  return Object.keys(args).some((param) => Number(param.split(':')[0]) === CONTEXT_PARAMTYPE);
}

/** For a `@GrpcMethod` (`unary`) or `@GrpcStreamMethod` / `@GrpcStreamCall` (`stream`) handler; else `undefined`. */
export function grpcKind(method: object): 'unary' | 'stream' | undefined {
  if (Reflect.getMetadata(TRANSPORT_METADATA, method) !== GRPC_TRANSPORT) return undefined;
  const [pattern] = patternsOf(method) as ({ streaming?: unknown } | undefined)[];
  return pattern?.streaming === GRPC_NO_STREAMING ? 'unary' : 'stream';
}
