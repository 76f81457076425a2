import { ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { request } from '../apps/http-app';

/**
 * `@fastify/cookie` writes `reply.setCookie()` cookies in an onSend hook,
 * after our interceptor has finished: the response is still its caller's own.
 */
describe('a cookie set with @fastify/cookie', () => {
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    child = fork(join(__dirname, '../apps/fastify-cookie-app.ts'), [], {
      execArgv: ['-r', join(__dirname, '../redis/apps/register.cjs')],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message) => resolve((message as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the app exited (${code})`)));
    });
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(() => child.disconnect());

  it('makes the response its caller’s own: nobody gets another’s session, concurrent or later', async () => {
    const concurrent = Array.from({ length: 3 }, () => request(`${url}/session`));
    let waiting = 0;
    const poll = async () => {
      waiting = (JSON.parse((await request(`${url}/admin/waiting`)).text) as { waiting: number }).waiting;
    };
    await poll();
    while (waiting < 3) await poll();
    await request(`${url}/admin/open`, { method: 'POST' });
    const replies = [...(await Promise.all(concurrent)), await request(`${url}/session`)];
    const sessions = replies.map((reply) => (JSON.parse(reply.text) as { session: string }).session);
    expect(new Set(sessions).size).toBe(replies.length);
    replies.forEach((reply, i) => expect(reply.setCookie).toEqual([`session=${sessions[i]}; SameSite=Lax`]));
  });
});
