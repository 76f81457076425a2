import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child, startChild } from './child';
import { HttpSystem, Platform } from '../servers/http-systems';

/** The compiled server script, next to this file's compiled form. */
const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'http-app.js');

/** A server to start: an id for the tables, the system it runs, and how many other keys its cache holds. */
export interface ServerSetup {
  id: string;
  system: HttpSystem;
  fill?: number;
}

/** One server child per setup, for one platform, by setup id. */
export type Servers = Record<string, Child>;

export async function startServers(platform: Platform, setups: readonly ServerSetup[]): Promise<Servers> {
  const children = await Promise.all(setups.map(({ system }) => startChild(SERVER_SCRIPT, [platform, system])));
  await Promise.all(setups.map(({ fill }, i) => (fill ? children[i].call('fill', fill) : undefined)));
  return Object.fromEntries(setups.map(({ id }, i) => [id, children[i]]));
}

export async function stopServers(servers: Servers): Promise<void> {
  await Promise.all(Object.values(servers).map((child) => child.stop()));
}

/** The server of setup `id`, which must have been started. */
export function serverOf(servers: Servers, id: string): Child {
  const child = servers[id];
  if (!child) throw new Error(`no server for ${id}`);
  return child;
}

export function portOf(child: Child): number {
  return child.ready.port as number;
}

/**
 * The order of systems in round `round`: rotated each round, so that no
 * system always runs first (right after a pause) or right after the same peer.
 */
export function rotated<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** A short breather between measurements, so one system's leftover work (GC, timers) is not billed to the next. */
export function settle(ms = 50): Promise<void> {
  return sleep(ms);
}
