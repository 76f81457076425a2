import { ChildProcess, fork } from 'node:child_process';

/**
 * Child processes with a tiny request/response protocol over the IPC channel.
 * Servers and measured code run in children so that the load generator (or
 * the parent's own heap) never shares a CPU core or a GC with what it measures.
 */

interface Request {
  id: number;
  method: string;
  params: unknown;
}

type Reply = { id: number; result: unknown } | { id: number; error: string };

/** A running child: `call` a method it serves, `stop` it. */
export interface Child {
  /** What the child said when it was ready (e.g. the port it listens on). */
  readonly ready: Record<string, unknown>;
  call<T>(method: string, params?: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** Forks `script` with `args` and resolves once it reports ready. */
export function startChild(script: string, args: string[], execArgv: string[] = []): Promise<Child> {
  // execArgv is given explicitly so the parent's flags are not inherited. BENCH_CPU_PROF=<dir>
  // profiles every child instead (the profile is written when the child exits on stop()).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = fork(script, args, {
    execArgv: [...execArgv, ...profile],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  return new Promise<Child>((resolve, reject) => {
    const onExit = (code: number | null) => {
      const error = new Error(`child ${script} ${args.join(' ')} exited with ${code}`);
      reject(error);
      for (const { reject: fail } of pending.values()) fail(error);
      pending.clear();
    };
    proc.on('exit', onExit);
    proc.on('error', reject);
    proc.on('message', (message: Reply | { ready: Record<string, unknown> }) => {
      if ('ready' in message) {
        resolve(makeChild(proc, message.ready, pending, () => nextId++, onExit));
        return;
      }
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (!waiter) return;
      if ('error' in message) waiter.reject(new Error(message.error));
      else waiter.resolve(message.result);
    });
  });
}

function makeChild(
  proc: ChildProcess,
  ready: Record<string, unknown>,
  pending: Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>,
  id: () => number,
  onExit: (code: number | null) => void,
): Child {
  return {
    ready,
    call<T>(method: string, params?: unknown): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const request: Request = { id: id(), method, params };
        pending.set(request.id, { resolve: resolve as (value: unknown) => void, reject });
        proc.send(request);
      });
    },
    stop(): Promise<void> {
      return new Promise((resolve) => {
        proc.off('exit', onExit);
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    },
  };
}

/** In the child: answers the parent's calls with `methods`, then says it is ready. */
export function serveParent(
  methods: Record<string, (params: never) => unknown>,
  ready: Record<string, unknown> = {},
): void {
  process.on('message', (request: Request) => {
    const method = methods[request.method];
    Promise.resolve()
      .then(() => {
        if (!method) throw new Error(`unknown method ${request.method}`);
        return method(request.params as never);
      })
      .then(
        (result) => process.send?.({ id: request.id, result } satisfies Reply),
        (error: unknown) =>
          process.send?.({
            id: request.id,
            error: error instanceof Error ? (error.stack ?? error.message) : String(error),
          }),
      );
  });
  // Exit with the parent, never linger as an orphan; exit (rather than die) on SIGTERM so a
  // --cpu-prof profile gets written.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.send?.({ ready });
}
