/** A response read whole. */
export interface Reply {
  status: number;
  text: string;
  cacheStatus: string | null;
}

/** GET (or POST) `url`; a connection failure rejects. */
export async function send(url: string, method = 'GET'): Promise<Reply> {
  const response = await fetch(url, { method });
  return { status: response.status, text: await response.text(), cacheStatus: response.headers.get('cache-status') };
}

/** GET `url` as JSON. */
export async function json<T>(url: string, method = 'GET'): Promise<T> {
  const reply = await send(url, method);
  if (reply.status >= 300) throw new Error(`${method} ${url}: ${reply.status} ${reply.text}`);
  return JSON.parse(reply.text) as T;
}

/**
 * Resolves when `condition()` holds, checking again as soon as the previous
 * check answered (a check is a request to another process: it paces itself);
 * fails after `ms` with `what`.
 */
export async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
