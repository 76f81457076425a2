import { Controller, Get } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { request, startApp } from '../apps/http-app';

@Controller('plain')
class PlainController {
  @Get()
  plain() {
    return { ok: true };
  }
}

describe('OpenTelemetry off', () => {
  it('never loads @opentelemetry/api nor the glue, and serves as usual', async () => {
    const running = await startApp('express', {
      imports: [StampedeModule.forRoot()],
      controllers: [PlainController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: StampedeInterceptor }],
    });
    try {
      expect((await request(`${running.url}/plain`)).status).toBe(200);
      const loaded = Object.keys(require.cache);
      // The registry does list what was loaded: the engine is there.
      expect(loaded.some((path) => path.endsWith('stampede.engine.ts'))).toBe(true);
      for (const glue of ['otel', 'otel-flight', 'otel-followers', 'otel-attributes']) {
        expect(loaded.filter((path) => path.endsWith(`stampede.${glue}.ts`))).toEqual([]);
      }
      expect(loaded.some((path) => path.includes('@opentelemetry'))).toBe(false);
    } finally {
      await running.close();
    }
  });
});
