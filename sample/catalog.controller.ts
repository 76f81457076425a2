import { Controller, Get, UseInterceptors } from '@nestjs/common';
import { StampedeInterceptor } from '../lib';
import { Catalog, CatalogService } from './catalog.service';

/** The same slow query behind two routes: the only difference is the interceptor. */
@Controller('catalog')
export class CatalogController {
  constructor(private readonly catalog: CatalogService) {}

  /** Every request runs its own query: a burst of N requests is N queries. */
  @Get('plain')
  plain(): Promise<Catalog> {
    return this.catalog.findProducts('plain');
  }

  /** Concurrent requests share one query, and its answer is kept for the module's ttl. */
  @Get('stampede')
  @UseInterceptors(StampedeInterceptor)
  stampede(): Promise<Catalog> {
    return this.catalog.findProducts('stampede');
  }
}
