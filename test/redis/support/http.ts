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
