#!/usr/bin/env node
// Runs the compiled CLI (dist/, which `npm install` builds through the `prepare` script, or
// `npm run build`). Stack traces point into the TypeScript sources through the source maps.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cmd/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('calico-fanout: dist/ is missing: run `npm run build` first\n');
  process.exit(2);
}
process.setSourceMapsEnabled(true);
await import(main.href);
