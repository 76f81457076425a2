import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The README, as shipped. */
export const README = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');

/**
 * The code between `// README:name` and `// README:end` in `source`, with
 * the indentation they share removed (a snippet may sit inside a function or
 * an array in the test) and the library imported as an app does, from
 * `'nestjs-stampede'`: the text the README must contain word for word.
 */
export function readmeSnippet(source: string, name: string): string {
  const parts = source.split(new RegExp(`^[ \\t]*// README:${name}\\n`, 'm'));
  if (parts.length !== 2) throw new Error(`no single "// README:${name}" marker`);
  const body = parts[1].split(/^[ \t]*\/\/ README:end/m)[0];
  const lines = body.replace(/\s+$/, '').split('\n');
  const indent = Math.min(...lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length));
  return lines
    .map((line) => line.slice(indent))
    .join('\n')
    .replace(/from '\.\.\/\.\.\/lib'/g, "from 'nestjs-stampede'");
}
