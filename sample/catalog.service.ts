import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long the pretend database takes to answer one query. */
export const QUERY_MS = 100;

/** Connections in the pretend database's pool: queries beyond it wait for a free one, as in a real pool. */
export const POOL_SIZE = 10;

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

/** Stands in for a slow database with a connection pool, and counts how often it is queried, per caller. */
@Injectable()
export class CatalogService {
  private readonly executions = new Map<string, number>();
  private free = POOL_SIZE;
  private readonly queue: (() => void)[] = [];

  async findProducts(caller: string): Promise<Catalog> {
    const query = this.executionsBy(caller) + 1;
    this.executions.set(caller, query);
    await this.connection();
    try {
      await sleep(QUERY_MS);
    } finally {
      this.release();
    }
    return { query, products: [...PRODUCTS] };
  }

  private async connection(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.free++;
  }

  /** How many queries `caller` has run so far (counted when they start). */
  executionsBy(caller: string): number {
    return this.executions.get(caller) ?? 0;
  }
}
