/**
 * Black-box packaging test: packs the library as npm would publish it,
 * installs the tarball in fresh apps (one CommonJS, one ES module), compiles
 * them with their own tsc and runs them on Express and Fastify.
 *
 * Layout of the temporary folder:
 *   pack/          the tarball
 *   apps/          package.json + node_modules (one install, shared)
 *   apps/cjs/      CommonJS app: no "type", tsconfig module commonjs
 *   apps/esm/      ES module app: "type": "module", tsconfig module nodenext
 * Node and tsc both look for node_modules in parent folders, so the two apps
 * resolve the same install without a copy or a symlink.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

// npm install may have to reach the registry.
jest.setTimeout(240_000);

const ROOT = resolve(__dirname, '../..');
const FIXTURES = join(__dirname, 'fixtures');

/** Installed at the versions the root package-lock.json resolved. */
const LOCKED = [
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@nestjs/platform-fastify',
  'reflect-metadata',
  'rxjs',
  'cache-manager',
  'keyv',
  'typescript',
  '@types/node',
];
/**
 * Not in the root lock (the root typechecks with skipLibCheck); the apps check
 * every .d.ts, and @nestjs/platform-express's import 'express'.
 */
const EXTRA = ['@types/express@5.0.6'];

const MODULE_SYSTEMS = [
  { name: 'CommonJS', dir: 'cjs' },
  { name: 'ES module', dir: 'esm' },
] as const;
const PLATFORMS = ['express', 'fastify'] as const;

interface Run {
  stdout: string;
  stderr: string;
}

/**
 * The environment of `npm test` minus what npm adds for its scripts: with
 * npm_config_local_prefix or npm_config_prefix inherited, an install in a
 * temporary folder would go to this repository instead.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (
      /^npm_(package_|lifecycle_|command$|execpath$|node_execpath$)/i.test(name) ||
      /^npm_config_(local_prefix|prefix|global_prefix|call)$/i.test(name) ||
      name === 'INIT_CWD'
    ) {
      delete env[name];
    }
  }
  return env;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { cwd, env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${error.message}\n${stdout}\n${stderr}`));
      } else {
        resolvePromise({ stdout, stderr });
      }
    });
  });
}

function lockedVersion(lock: { packages: Record<string, { version?: string }> }, name: string): string {
  const version = lock.packages[`node_modules/${name}`]?.version;
  if (!version) throw new Error(`${name} is not in package-lock.json`);
  return version;
}

describe('the packed package', () => {
  let work: string | undefined;
  let tarball: string;
  let packedFiles: string[];
  let apps: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nestjs-stampede-pack-'));
    const packDir = join(work, 'pack');
    mkdirSync(packDir);

    // prepack builds dist/ with tsc. The JSON follows whatever the scripts print.
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', packDir], ROOT);
    const [packed] = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as {
      filename: string;
      files: { path: string }[];
    }[];
    packedFiles = packed.files.map((file) => file.path);
    tarball = join(packDir, packed.filename);

    apps = join(work, 'apps');
    mkdirSync(apps);
    writeFileSync(join(apps, 'package.json'), JSON.stringify({ name: 'stampede-pack-apps', private: true }));
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    const specs = [tarball, ...LOCKED.map((name) => `${name}@${lockedVersion(lock, name)}`), ...EXTRA];
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--save-exact', ...specs], apps);

    for (const { dir } of MODULE_SYSTEMS) {
      const app = join(apps, dir);
      mkdirSync(join(app, 'src'), { recursive: true });
      cpSync(join(FIXTURES, 'src'), join(app, 'src'), { recursive: true });
      cpSync(join(FIXTURES, dir, 'main.ts'), join(app, 'src', 'main.ts'));
      cpSync(join(FIXTURES, dir, 'package.json'), join(app, 'package.json'));
      cpSync(join(FIXTURES, dir, 'tsconfig.json'), join(app, 'tsconfig.json'));
    }
  });

  afterAll(async () => {
    await Promise.all([...children].map(stop));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    children.delete(child);
  }

  /** Starts `node dist/main.js <platform>` in `app`; resolves with its port once it prints it. */
  function start(app: string, platform: string): Promise<{ child: ChildProcess; port: number }> {
    const child = spawn(process.execPath, ['dist/main.js', platform], {
      cwd: app,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let output = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    return new Promise((resolvePromise, reject) => {
      const onExit = (code: number | null, signal: string | null) =>
        reject(new Error(`app exited (${code ?? signal}) before printing its port:\n${output}`));
      child.once('exit', onExit);
      child.once('error', reject);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        let port: unknown;
        try {
          port = (JSON.parse(line) as { port?: unknown }).port;
        } catch {
          return; // not the port line
        }
        if (typeof port === 'number') {
          child.off('exit', onExit);
          resolvePromise({ child, port });
        }
      });
    });
  }

  it('holds dist/, README.md and package.json, and no sources, tests or tsconfig', () => {
    expect(packedFiles).toEqual(
      expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'README.md', 'package.json']),
    );
    const unexpected = packedFiles.filter(
      (path) =>
        /^(test|sample|bench|lib)\//.test(path) ||
        /(^|\/)tsconfig[^/]*\.json$/.test(path) ||
        (path.endsWith('.ts') && !path.endsWith('.d.ts')),
    );
    expect(unexpected).toEqual([]);
  });

  describe.each(MODULE_SYSTEMS)('$name app', ({ dir }) => {
    let app: string;

    beforeAll(async () => {
      app = join(apps, dir);
      // strict, skipLibCheck false: the package's .d.ts are checked too.
      await run(process.execPath, [join(apps, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
      expect(readdirSync(join(app, 'dist'))).toContain('main.js');
    });

    it.each(PLATFORMS)('coalesces requests and method calls on %s', async (platform) => {
      const { child, port } = await start(app, platform);
      try {
        const base = `http://127.0.0.1:${port}`;
        const getJson = async <T>(path: string): Promise<T> => {
          const response = await fetch(`${base}${path}`);
          expect(response.status).toBe(200);
          return (await response.json()) as T;
        };

        const replies = await Promise.all(
          Array.from({ length: 30 }, async () => {
            const response = await fetch(`${base}/slow`);
            return {
              status: response.status,
              cacheStatus: response.headers.get('cache-status'),
              body: await response.text(),
            };
          }),
        );
        expect(replies.map((reply) => reply.status)).toEqual(Array(30).fill(200));
        expect(new Set(replies.map((reply) => reply.body))).toEqual(new Set([JSON.stringify({ execution: 1 })]));
        for (const reply of replies) expect(reply.cacheStatus).toMatch(/^nestjs-stampede; /);
        expect(await getJson('/count')).toMatchObject({ slow: 1, report: 0, price: 0 });

        // 10 concurrent calls of a @Coalesce() service method.
        const report = await getJson<{ results: unknown[]; builds: number }>('/report');
        expect(report.builds).toBe(1);
        expect(report.results).toEqual(Array(10).fill({ id: 'monthly', build: 1 }));

        // 10 concurrent StampedeService.run calls for one key.
        const price = await getJson<{ results: unknown[]; fetches: number }>('/price');
        expect(price.fetches).toBe(1);
        expect(price.results).toEqual(Array(10).fill({ sku: 'sku-1', fetch: 1 }));

        expect(await getJson('/count')).toEqual({ slow: 1, report: 1, price: 1, inFlight: 0 });
      } finally {
        await stop(child);
      }
    });
  });
});
