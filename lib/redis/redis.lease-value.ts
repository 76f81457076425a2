// What a lease key holds: the holder's random token, and with tracing what it shares of its span.

/** A lease value: `token`, then what the holder shares of its trace (if anything), after a space. */
export function leaseValue(token: string, shared: string | undefined): string {
  // A token has no space; a shared text with a space or of an odd size is not written.
  return shared && shared.length <= 128 && !/\s/.test(shared) ? `${token} ${shared}` : token;
}

/** What a lease value says the holder shares: after its first space, if any. Anything else: `undefined`. */
export function sharedBy(value: string | undefined): string | undefined {
  const space = value === undefined ? -1 : value.indexOf(' ');
  return space < 0 ? undefined : value!.slice(space + 1);
}
