/**
 * Runs `body` in a fresh module registry in which `name` cannot be found, as
 * in an app that did not install that optional peer: requiring it throws
 * Node's own `MODULE_NOT_FOUND` error. Everything else loads for real and
 * fresh: require the library (and Nest) inside `body`, so they see the
 * package missing until `body` has settled.
 */
export async function withoutPackage<T>(name: string, body: () => Promise<T>): Promise<T> {
  let result: { value: T } | undefined;
  try {
    await jest.isolateModulesAsync(async () => {
      jest.doMock(name, () => {
        throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      });
      result = { value: await body() };
    });
  } finally {
    jest.dontMock(name);
  }
  return (result as { value: T }).value;
}
