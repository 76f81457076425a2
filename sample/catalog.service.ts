import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long the pretend database takes to answer one query. */
export const QUERY_MS = 100;

export interface Product {
  sku: string;
  name: string;
  priceCents: number;
}

export interface Catalog {
  /** Which execution of the query produced this answer: shared answers carry the same number. */
  query: number;
  products: Product[];
}

const PRODUCTS: readonly Product[] = [
  { sku: 'KB-01', name: 'Keyboard', priceCents: 4_900 },
  { sku: 'MS-02', name: 'Mouse', priceCents: 1_900 },
  { sku: 'MN-03', name: 'Monitor', priceCents: 17_900 },
];

/** Stands in for a slow database, and counts how often it is queried, per caller. */
@Injectable()
export class CatalogService {
  private readonly executions = new Map<string, number>();

  async findProducts(caller: string): Promise<Catalog> {
    const query = this.executionsBy(caller) + 1;
    this.executions.set(caller, query);
    await sleep(QUERY_MS);
    return { query, products: [...PRODUCTS] };
  }

  /** How many queries `caller` has run so far (counted when they start). */
  executionsBy(caller: string): number {
    return this.executions.get(caller) ?? 0;
  }
}
