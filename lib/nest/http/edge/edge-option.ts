import { Check, fail } from '../../options/stampede.option-checks';
import { EdgeOptions } from '../../options/stampede.options';
import { FASTIFY_LATER_HOOKS } from './edge-gate';

/** `edge`: `true`, `false`, or `{ skip: [...] }` listing classes or instances. */
export const edgeOption: Check = (value, name, where) => {
  if (typeof value === 'boolean') return value;
  const expected = 'true, false or { skip: [guard, interceptor or pipe classes or instances] }';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(name, value, expected, where);
  for (const key of Object.keys(value as object)) {
    if (key !== 'skip')
      fail(`${name}.${key}`, (value as Record<string, unknown>)[key], 'no such option (only skip)', where);
  }
  const skip = (value as EdgeOptions).skip;
  if (skip === undefined) return value;
  if (
    !Array.isArray(skip) ||
    skip.some(
      (item) =>
        item === null ||
        (typeof item !== 'function' && typeof item !== 'object' && !FASTIFY_LATER_HOOKS.includes(item as never)),
    )
  ) {
    fail(
      `${name}.skip`,
      skip,
      `a list of guard, interceptor or pipe classes or instances, kinds of Fastify hook (${FASTIFY_LATER_HOOKS.map((kind) => `'${kind}'`).join(', ')})`,
      where,
    );
  }
  return value;
};

/** A route's `edge` setting: on or off (the nearest one given wins), and what it may skip (every level's list). */
export interface EdgeSetting {
  on: boolean;
  skip: readonly unknown[];
}

type EdgeValue = boolean | EdgeOptions | undefined;

/** Resolves `edge` from the route's, the controller's and the module's values. */
export function resolveEdgeSetting(route: EdgeValue, controller: EdgeValue, module: EdgeValue): EdgeSetting {
  const nearest = route ?? controller ?? module;
  const skip: unknown[] = [];
  for (const value of [route, controller, module]) {
    if (typeof value === 'object') skip.push(...(value.skip ?? []));
  }
  return { on: nearest !== undefined && nearest !== false, skip };
}

/** True when `enhancer` (a class or an instance) is listed in `skip` (by itself, or by its class). */
export function isListed(enhancer: unknown, skip: readonly unknown[]): boolean {
  if (skip.includes(enhancer)) return true;
  const type = typeof enhancer === 'function' ? enhancer : (enhancer as object | null)?.constructor;
  return type !== undefined && skip.includes(type);
}
