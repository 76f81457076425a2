import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AddressInfo } from 'node:net';
import { AppModule, CACHE_TTL_MS } from './app.module';
import { burst } from './burst';
import { CatalogService, POOL_SIZE, QUERY_MS } from './catalog.service';
import { portFromEnv, portToListenOn } from './port';
import { RouteResult, table } from './report';

const HOST = '127.0.0.1';
const REQUESTS = 200;
const ROUTES = ['plain', 'stampede'] as const;
type Route = (typeof ROUTES)[number];

async function main(): Promise<void> {
  const once = process.argv.includes('--once') || process.env.SAMPLE_ONCE === '1';
  const preferred = portFromEnv();

  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(await portToListenOn(preferred, HOST), HOST);
  const { port } = app.getHttpServer().address() as AddressInfo;
  const base = `http://${HOST}:${port}`;
  const catalog = app.get(CatalogService);

  // Executions are read from the service's own counter, before and after the burst.
  const measure = async (route: Route): Promise<RouteResult> => {
    const before = catalog.executionsBy(route);
    const result = await burst(`${base}/catalog/${route}`, REQUESTS);
    return { route: `GET /catalog/${route}`, executions: catalog.executionsBy(route) - before, ...result };
  };

  // An untimed round on other keys first: it opens the client's connections and warms up both code
  // paths, so that the first measured route does not pay for that alone. Those keys stay out of the tables.
  for (const route of ROUTES) await burst(`${base}/catalog/${route}?warmup`, REQUESTS);

  console.log(
    `\nCold burst: ${REQUESTS} concurrent GETs per route, nothing cached (each query takes ${QUERY_MS} ms on a pool of ${POOL_SIZE} connections)\n`,
  );
  const plainCold = await measure('plain');
  const stampedeCold = await measure('stampede');
  console.log(table([plainCold, stampedeCold]));
  const saved = plainCold.executions - stampedeCold.executions;
  console.log(
    `\nThe pretend database has ${POOL_SIZE} connections: without coalescing the ${REQUESTS} queries queue for them;`,
  );
  console.log(`with it, ${saved} queries are never sent. Latencies include the load client (same process).`);

  console.log(`\nWarm burst: the same again, within the ${CACHE_TTL_MS / 1000} s ttl\n`);
  const plainWarm = await measure('plain');
  const stampedeWarm = await measure('stampede');
  console.log(table([plainWarm, stampedeWarm]));

  const problems = [
    stampedeCold.executions !== 1 && `cold stampede burst ran ${stampedeCold.executions} executions, expected 1`,
    stampedeWarm.executions !== 0 && `warm stampede burst ran ${stampedeWarm.executions} executions, expected 0`,
    ![plainCold, stampedeCold, plainWarm, stampedeWarm].every((r) => r.allOk) && 'some requests failed',
  ].filter((problem): problem is string => typeof problem === 'string');
  for (const problem of problems) console.error(`\nFAILED: ${problem}`);

  if (once) {
    await app.close();
    process.exitCode = problems.length === 0 ? 0 : 1;
    return;
  }

  if (preferred !== 0 && port !== preferred) console.log(`\nPort ${preferred} is busy: using ${port} instead.`);
  console.log(`\nServing on ${base} (Ctrl+C to stop). Try:\n`);
  console.log(`  curl ${base}/catalog/plain`);
  console.log(`  curl ${base}/catalog/stampede`);
  console.log(
    `  curl -si ${base}/catalog/stampede | grep -i cache-status   # fwd=miss; stored on a cold key, then hit for ${CACHE_TTL_MS / 1000} s`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
