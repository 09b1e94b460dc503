import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The Docker image installs with `npm ci --omit=dev`: anything src/ imports must be a runtime dependency.
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

describe('package.json', () => {
  it('lists every package the product imports as a runtime dependency', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    const imported = new Set<string>();
    for (const file of [...sourceFiles('src'), 'bin/comicmaster.js']) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from|import\()\s*'([^.'][^']*)'/g)) {
        const name = packageOf(match[1]!);
        if (name.startsWith('node:') || builtinModules.includes(name)) continue;
        imported.add(name);
      }
    }
    const missing = [...imported].filter((name) => !(name in pkg.dependencies)).sort();
    expect(missing).toEqual([]);
  });
});
