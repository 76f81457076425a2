const { TestEnvironment } = require('jest-environment-node');

/**
 * Jest's node environment gives each test file a copy of `process`: a
 * listener added to that copy never hears the real process's
 * `unhandledRejection`. This environment lets a test listen on the real one:
 * `watchUnhandledRejections(listener)` returns a function that stops it.
 */
class RealProcessEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global.watchUnhandledRejections = (listener) => {
      process.prependListener('unhandledRejection', listener);
      return () => process.off('unhandledRejection', listener);
    };
  }
}

module.exports = RealProcessEnvironment;
