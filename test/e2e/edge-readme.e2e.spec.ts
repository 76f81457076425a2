import { CanActivate, Controller, Get, Injectable, Param, UseGuards, UseInterceptors } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Coalesce, StampedeInterceptor, StampedeModule } from '../../lib';
import { PLATFORMS, Platform, RunningApp, request, startApp } from '../apps/http-app';

@Injectable()
class CatalogService {
  reads = 0;
  bySku(sku: string) {
    this.reads++;
    return { sku, price: 1999 };
  }
  flags() {
    this.reads++;
    return { newCheckout: true };
  }
}

/** Counts requests for an access log; lets every request through. */
@Injectable()
class AuditGuard implements CanActivate {
  seen = 0;
  canActivate(): boolean {
    this.seen++;
    return true;
  }
}

// README:edge
@Controller('catalog')
@UseInterceptors(StampedeInterceptor)
export class CatalogController {
  constructor(private readonly catalog: CatalogService) {}

  @Get('items/:sku')
  @Coalesce({ ttl: 30_000, edge: true }) // a fresh hit is answered before Nest's pipeline
  bySku(@Param('sku') sku: string) {
    return this.catalog.bySku(sku);
  }

  @Get('flags')
  @UseGuards(AuditGuard) // only counts requests: safe to skip on a hit, so it is listed
  @Coalesce({ ttl: 5_000, edge: { skip: [AuditGuard] } })
  flags() {
    return this.catalog.flags();
  }
}
// README:end

describe.each(PLATFORMS)('the README edge example on %s', (platform: Platform) => {
  let running: RunningApp;
  beforeEach(async () => {
    running = await startApp(platform, {
      imports: [StampedeModule.forRoot()],
      controllers: [CatalogController],
      providers: [CatalogService, AuditGuard],
    });
  });
  afterEach(() => running.close());

  it('answers both routes at the edge once stored', async () => {
    const catalog = running.app.get(CatalogService);
    const audit = running.app.get(AuditGuard);
    for (const path of ['/catalog/items/A-1', '/catalog/flags']) {
      expect((await request(`${running.url}${path}`)).headers['cache-status']).toMatch(/fwd=miss; stored/);
      expect((await request(`${running.url}${path}`)).headers['cache-status']).toMatch(/; hit; ttl=/);
    }
    expect(catalog.reads).toBe(2);
    expect(audit.seen).toBe(1);
  });

  it('is shown in the README as tested here', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const source = readFileSync(__filename, 'utf8');
    expect(readme).toContain(source.split('// README:edge\n')[1].split('// README:end')[0].trim());
  });
});
