import { Injectable } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StampedeModule, StampedeService, WorkContext } from '../../lib';
import { fakeDateOnly } from '../helpers/clock';

/**
 * The code of README's runMany and work-context recipes, as it stands there
 * (checked below), compiled by the typecheck and run.
 */

interface User {
  id: string;
  name: string;
}

/** What the README leaves to the app: a repository that loads many rows in one query. */
@Injectable()
class UsersRepository {
  readonly queries: string[][] = [];
  async findByIds(ids: string[]): Promise<User[]> {
    this.queries.push(ids);
    return ids.filter((id) => id !== 'ghost').map((id) => ({ id, name: `user ${id}` }));
  }
}

interface Rates {
  etag: string;
  eur: number;
}

/** An upstream that answers `notModified` to a matching `ifNoneMatch`, and says how long its answer holds. */
@Injectable()
class RatesUpstream {
  calls = 0;
  current: Rates = { etag: '"1"', eur: 1.08 };
  async fetch(_currency: string, options: { signal: AbortSignal; ifNoneMatch?: string }) {
    this.calls++;
    if (options.ifNoneMatch === this.current.etag) return { notModified: true as const, maxAgeMs: 60_000 };
    return { notModified: false as const, rates: this.current, maxAgeMs: 60_000 };
  }
}

// README:run-many
@Injectable()
export class UsersLoader {
  constructor(
    private readonly stampede: StampedeService,
    private readonly users: UsersRepository,
  ) {}

  /** One query for the ids nobody has cached or is loading; each user cached on its own. */
  byIds(ids: string[]): Promise<User[]> {
    return this.stampede.runMany(
      ids.map((id) => `user:${id}`),
      async (keys) => {
        const rows = await this.users.findByIds(keys.map((key) => key.slice('user:'.length)));
        return new Map(rows.map((row) => [`user:${row.id}`, row]));
      },
      { ttl: 30_000 },
    );
  }
}
// README:end

// README:work-context
@Injectable()
export class RatesClient {
  constructor(
    private readonly stampede: StampedeService,
    private readonly upstream: RatesUpstream,
  ) {}

  rates(currency: string): Promise<Rates> {
    return this.stampede.run(
      `rates:${currency}`,
      async (signal, work: WorkContext<Rates>) => {
        // Ask the upstream "changed since?" with the old value's ETag.
        const answer = await this.upstream.fetch(currency, { signal, ifNoneMatch: work.stale?.value.etag });
        if (answer.notModified) return work.notModified(); // keep the old value, fresh again
        work.setFreshness({ ttl: answer.maxAgeMs }); // the upstream says how long it holds
        return answer.rates;
      },
      { ttl: 5_000, staleIfError: 600_000, softTimeout: 200 },
    );
  }
}
// README:end

const README = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
const SOURCE = readFileSync(__filename, 'utf8');

describe('README recipes: runMany and the work context', () => {
  let app: TestingModule;

  beforeEach(async () => {
    fakeDateOnly();
    app = await Test.createTestingModule({
      imports: [StampedeModule.forRoot()],
      providers: [UsersRepository, UsersLoader, RatesUpstream, RatesClient],
    }).compile();
    await app.init();
  });
  afterEach(async () => {
    await app.close();
    jest.useRealTimers();
  });

  it.each(['run-many', 'work-context'])('the README shows the %s snippet as tested here', (name) => {
    const snippet = SOURCE.split(`// README:${name}\n`)[1].split('// README:end')[0].trim();
    expect(README).toContain(snippet);
  });

  it('runMany: concurrent loaders share one query per missing id, and a user missing from the rows fails alone', async () => {
    const loader = app.get(UsersLoader);
    const users = app.get(UsersRepository);
    const [a, b] = await Promise.all([loader.byIds(['1', '2']), loader.byIds(['2', '3'])]);
    expect(a.map((u) => u.name)).toEqual(['user 1', 'user 2']);
    expect(b.map((u) => u.name)).toEqual(['user 2', 'user 3']);
    expect(users.queries.flat().sort()).toEqual(['1', '2', '3']);
    await expect(loader.byIds(['1', 'ghost'])).rejects.toThrow(/fetchMissing gave no value/);
  });

  it('work context: an expired value is revalidated with its ETag and kept on "not modified"', async () => {
    const client = app.get(RatesClient);
    const upstream = app.get(RatesUpstream);
    const first = await client.rates('EUR');
    expect(first.eur).toBe(1.08);
    jest.setSystemTime(Date.now() + 61_000); // past the upstream's max-age
    expect(await client.rates('EUR')).toBe(first);
    expect(upstream.calls).toBe(2);
    expect(await client.rates('EUR')).toBe(first); // fresh again: no upstream call
    expect(upstream.calls).toBe(2);
    upstream.current = { etag: '"2"', eur: 1.1 };
    jest.setSystemTime(Date.now() + 61_000);
    expect((await client.rates('EUR')).eur).toBe(1.1);
  });
});
