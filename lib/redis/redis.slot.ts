/** Hash slots of a Redis Cluster. */
export const SLOTS = 16_384;

// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[i] = crc;
}

/**
 * The Redis Cluster hash slot of `key`, as the server computes it (`CLUSTER
 * KEYSLOT`): the CRC16 of its hash tag (the text between the first `{` and
 * the first `}` after it, when not empty), or of the whole key.
 *
 * @example
 * ```ts
 * keySlot('stampede:v:{1a2b3c4d}GET /prices') === keySlot('stampede:lock:{1a2b3c4d}GET /prices'); // true
 * ```
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  return crc % SLOTS;
}
