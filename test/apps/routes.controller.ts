import {
  Controller,
  Get,
  Header,
  Headers,
  Param,
  Post,
  Query,
  Res,
  ServiceUnavailableException,
  StreamableFile,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { Coalesce, SkipCoalesce, StampedeInterceptor } from '../../lib';
import { UseInterceptors } from '@nestjs/common';
import { PassthroughResponse, setResponseHeader } from './http-app';
import { Origin } from './origin';

@Controller('r')
@UseInterceptors(StampedeInterceptor)
export class RoutesController {
  constructor(private readonly origin: Origin) {}

  @Get('slow')
  async slow(@Query() query: Record<string, string>) {
    const n = await this.origin.run('slow');
    return { n, query };
  }

  @Get('item/:id')
  async item(@Param('id') id: string) {
    const n = await this.origin.run(`item:${id}`);
    return { id, n };
  }

  @Post('slow')
  async post() {
    const n = await this.origin.run('post');
    return { n };
  }

  @Get('replay')
  @Header('x-static', 'from-decorator')
  async replay(@Res({ passthrough: true }) res: PassthroughResponse) {
    const n = await this.origin.run('replay');
    res.status(203);
    setResponseHeader(res, 'x-custom', `run-${n}`);
    setResponseHeader(res, 'access-control-allow-origin', 'https://leader.example');
    setResponseHeader(res, 'x-ratelimit-remaining', '41');
    setResponseHeader(res, 'ratelimit-policy', '100;w=60');
    return { n };
  }

  @Get('cookie')
  async cookie(@Res({ passthrough: true }) res: PassthroughResponse) {
    const n = await this.origin.run('cookie');
    setResponseHeader(res, 'set-cookie', [`session=run-${n}`]);
    return { n };
  }

  @Get('fail')
  async fail() {
    const n = await this.origin.run('fail');
    throw new ServiceUnavailableException(`origin down (run ${n})`);
  }

  @Get('created')
  async created(@Res({ passthrough: true }) res: PassthroughResponse) {
    const n = await this.origin.run('created');
    res.status(500);
    return { n };
  }

  @Get('skip')
  @SkipCoalesce()
  async skip() {
    return { n: await this.origin.run('skip') };
  }

  @Get('nottl')
  @Coalesce({ ttl: 0 })
  async nottl() {
    return { n: await this.origin.run('nottl') };
  }

  @Get('tenant')
  @Coalesce({ keyHeaders: ['X-Tenant'] })
  async tenant(@Headers('x-tenant') tenant: string) {
    return { tenant, n: await this.origin.run(`tenant:${tenant}`) };
  }

  @Get('authed')
  @Coalesce({ keyHeaders: ['authorization'] })
  async authed(@Headers('authorization') authorization: string) {
    return { authorization, n: await this.origin.run(`authed:${authorization}`) };
  }

  @Get('custom')
  @Coalesce({
    key: (context: { switchToHttp(): { getRequest(): { headers: Record<string, string> } } }) =>
      context.switchToHttp().getRequest().headers['x-user'],
  })
  async custom(@Headers('x-user') user: string) {
    return { user, n: await this.origin.run(`custom:${user}`) };
  }

  @Get('stream')
  async stream() {
    const n = await this.origin.run('stream');
    return new StreamableFile(Readable.from([`stream-${n}`]));
  }

  @Get('manual')
  async manual(@Res() res: { send?(body: string): unknown; status(code: number): { send(body: string): unknown } }) {
    const n = await this.origin.run('manual');
    res.status(200).send(`manual-${n}`);
  }
}

@Controller('class')
@UseInterceptors(StampedeInterceptor)
@Coalesce({ ttl: 0 })
export class ClassSettingsController {
  constructor(private readonly origin: Origin) {}

  @Get('inherits')
  async inherits() {
    return { n: await this.origin.run('class:inherits') };
  }

  @Get('overrides')
  @Coalesce({ ttl: 60_000 })
  async overrides() {
    return { n: await this.origin.run('class:overrides') };
  }
}
