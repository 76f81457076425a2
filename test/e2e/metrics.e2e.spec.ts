import { Controller, Get, UseInterceptors } from '@nestjs/common';
import { Registry } from 'prom-client';
import { StampedeInterceptor, StampedeModule } from '../../lib';
import { request, startApp } from '../apps/http-app';

@Controller('m')
@UseInterceptors(StampedeInterceptor)
class MetricsController {
  @Get()
  value() {
    return { ok: true };
  }
}

describe('metrics through prom-client', () => {
  it('counts events by type and exposes in-flight gauges, and leaves the registry on shutdown', async () => {
    const registry = new Registry();
    const running = await startApp('express', {
      imports: [StampedeModule.forRoot({ metrics: { registry, prefix: 'app_stampede_' } })],
      controllers: [MetricsController],
    });
    await request(`${running.url}/m`);
    await request(`${running.url}/m`);
    await request(`${running.url}/m`, { headers: { authorization: 'Bearer x' } });
    const text = await registry.metrics();
    expect(text).toContain('app_stampede_events_total{type="miss",reason=""} 1');
    expect(text).toContain('app_stampede_events_total{type="hit",reason=""} 1');
    expect(text).toContain('app_stampede_events_total{type="stored",reason=""} 1');
    expect(text).toContain('app_stampede_events_total{type="bypass",reason="credentials"} 1');
    expect(text).toContain('app_stampede_in_flight 0');
    expect(text).toContain('app_stampede_waiting 0');
    await running.close();
    expect(await registry.metrics()).not.toContain('app_stampede_');
  });

  it('rejects a metrics prefix that is not a metric name', async () => {
    await expect(
      startApp('express', { imports: [StampedeModule.forRoot({ metrics: { prefix: 'bad prefix' } })] }),
    ).rejects.toThrow(/option "metrics"/);
  });
});
