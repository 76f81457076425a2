import { Module } from '@nestjs/common';
import { StampedeModule } from '../lib';
import { CatalogController } from './catalog.controller';
import { CatalogService } from './catalog.service';

/** How long a coalesced answer stays cached. */
export const CACHE_TTL_MS = 5_000;

@Module({
  imports: [StampedeModule.forRoot({ ttl: CACHE_TTL_MS })],
  controllers: [CatalogController],
  providers: [CatalogService],
})
export class AppModule {}
