import type { Attributes } from '@opentelemetry/api';
import { FlightKind } from '../../core/flight';

/** Attribute names, documented in the README ("Operating it"). */
export const ATTR = {
  keyHash: 'stampede.key_hash',
  kind: 'stampede.flight.kind',
  outcome: 'stampede.outcome',
  waiters: 'stampede.waiters',
  stored: 'stampede.stored',
  type: 'stampede.event',
  reason: 'stampede.reason',
} as const;

/** Attribute sets of the work histogram, made once: a flight builds none. */
export const WORK_ATTRIBUTES: Record<FlightKind, Record<'ok' | 'error', Attributes>> = {
  lead: { ok: { [ATTR.kind]: 'lead', [ATTR.outcome]: 'ok' }, error: { [ATTR.kind]: 'lead', [ATTR.outcome]: 'error' } },
  refresh: {
    ok: { [ATTR.kind]: 'refresh', [ATTR.outcome]: 'ok' },
    error: { [ATTR.kind]: 'refresh', [ATTR.outcome]: 'error' },
  },
};

/**
 * Attribute sets of the wait histogram and of `stampede.wait` events by
 * outcome, made once each: a follower builds none (the SDK copies event
 * attributes, and a histogram only reads them).
 */
const WAIT_ATTRIBUTES: Partial<Record<string, Attributes>> = {};

export function waitAttributes(outcome: string): Attributes {
  return (WAIT_ATTRIBUTES[outcome] ??= { [ATTR.outcome]: outcome });
}
