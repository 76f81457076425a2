/**
 * Lets a child process `require` the TypeScript sources (lib/, test/) as Jest
 * does: Jest's transform does not reach processes a test forks, so the
 * multi-instance apps load through this hook (`node -r ./register.cjs`),
 * compiled by the same swc with the same settings as the Jest config.
 */
const Module = require('node:module');
const { readFileSync } = require('node:fs');
const { transformSync } = require('@swc/core');

const options = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

Module._extensions['.ts'] = function compileTypeScript(module, filename) {
  const { code } = transformSync(readFileSync(filename, 'utf8'), { ...options, filename });
  module._compile(code, filename);
};
