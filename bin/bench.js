#!/usr/bin/env node
// `npm run bench -- <name>` runs bench/<name>.ts. Each benchmark prints readable figures and ends with
// one line of JSON, so runs can be compared.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench');
const name = process.argv[2];
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>\navailable: ${available.join(', ') || '(none yet)'}`);
  process.exit(2);
}
const file = join(benchDir, `${name}.ts`);
if (!existsSync(file)) process.exit(2);
register();
await import(file);
