#!/usr/bin/env node
// Entry point for the `comicmaster` command. The sources are TypeScript; tsx loads them directly so
// that operators run exactly what is in src/ with no separate build step to forget.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
await main(process.argv);
