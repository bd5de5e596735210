// Prints the browser client's size: as written, minified (esbuild) and minified + gzipped
// (level 9), as one JSON line. `node size.mjs` in tests/browser; the tests run it too.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { transformSync } from 'esbuild';

const source = readFileSync(new URL('../../client/cache-sync.js', import.meta.url), 'utf8');
const { code } = transformSync(source, { minify: true, format: 'esm', target: 'es2022' });
const out = {
  file: 'client/cache-sync.js',
  source_bytes: Buffer.byteLength(source),
  minified_bytes: Buffer.byteLength(code),
  minified_gzip_bytes: gzipSync(code, { level: 9 }).length,
};
console.log(JSON.stringify(out));
