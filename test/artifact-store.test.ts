import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { ArtifactKeyError, ArtifactNotFoundError } from '../src/store/artifact-store.ts';
import { createArtifactStore, LocalArtifactStore } from '../src/store/local-store.ts';

let workDir: string;
let root: string;
let store: LocalArtifactStore;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'comicmaster-artifacts-'));
  root = join(workDir, 'artifacts');
  store = new LocalArtifactStore(root);
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every file under a folder, as paths relative to it (including files that are not artifacts). */
async function filesOnDisk(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(folder.length + 1));
}

describe('round trips', () => {
  it('stores a buffer and reads it back as a buffer and as a stream', async () => {
    const data = randomBytes(70_000);
    const written = await store.put('comics/c1/pages/1.png', data, { contentType: 'image/png' });
    expect(written.size).toBe(70_000);
    expect((await store.getBuffer('comics/c1/pages/1.png')).equals(data)).toBe(true);
    expect((await collect(await store.getStream('comics/c1/pages/1.png'))).equals(data)).toBe(true);
    expect(await store.exists('comics/c1/pages/1.png')).toBe(true);
    const info = await store.stat('comics/c1/pages/1.png');
    expect(info?.size).toBe(70_000);
    expect(info?.modified).toBeInstanceOf(Date);
  });

  it('stores a stream of many chunks', async () => {
    const chunks = Array.from({ length: 40 }, () => randomBytes(50_000));
    await store.put('loras/style_v1.safetensors', Readable.from(chunks));
    // Buffer.equals: a deep toEqual over megabytes is needlessly slow.
    expect((await store.getBuffer('loras/style_v1.safetensors')).equals(Buffer.concat(chunks))).toBe(true);
    expect((await store.stat('loras/style_v1.safetensors'))?.size).toBe(2_000_000);
  });

  it('replaces an artifact on a second put', async () => {
    await store.put('logs/train.log', Buffer.from('first run\n'));
    await store.put('logs/train.log', Buffer.from('second\n'));
    expect((await store.getBuffer('logs/train.log')).toString()).toBe('second\n');
  });

  it('deletes, and then the key holds nothing', async () => {
    await store.put('tmp/gone.txt', Buffer.from('x'));
    expect(await store.delete('tmp/gone.txt')).toBe(true);
    expect(await store.delete('tmp/gone.txt')).toBe(false);
    expect(await store.stat('tmp/gone.txt')).toBeNull();
    expect(await store.exists('tmp/gone.txt')).toBe(false);
    await expect(store.getBuffer('tmp/gone.txt')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    await expect(store.getStream('tmp/gone.txt')).rejects.toBeInstanceOf(ArtifactNotFoundError);
  });

  it('treats a folder of artifacts as no artifact', async () => {
    expect(await store.stat('comics/c1')).toBeNull();
    await expect(store.getBuffer('comics/c1')).rejects.toBeInstanceOf(ArtifactNotFoundError);
  });

  it('roots the configured store at DATA_DIR/artifacts', async () => {
    const dataDir = join(workDir, 'data');
    const configured = createArtifactStore({ dataDir });
    await configured.put('a/b.txt', Buffer.from('hello'));
    expect(existsSync(join(dataDir, 'artifacts', 'a', 'b.txt'))).toBe(true);
  });
});

describe('list', () => {
  it('lists keys by prefix, sorted', async () => {
    const listing = new LocalArtifactStore(join(workDir, 'listing'));
    const keys = [
      'comics/c1/pages/2.png',
      'comics/c1/pages/1.png',
      'comics/c1/renders/r1.png',
      'comics/c10/pages/1.png',
      'loras/style.safetensors',
    ];
    for (const key of keys) await listing.put(key, Buffer.from(key));

    expect(await listing.list('comics/c1/')).toEqual([
      'comics/c1/pages/1.png',
      'comics/c1/pages/2.png',
      'comics/c1/renders/r1.png',
    ]);
    expect(await listing.list('comics/c1')).toHaveLength(4);
    expect(await listing.list('comics/c1/pages/1')).toEqual(['comics/c1/pages/1.png']);
    expect(await listing.list()).toEqual([...keys].sort());
    expect(await listing.list('nothing/here/')).toEqual([]);
  });
});

describe('key validation', () => {
  const refused = [
    '../x',
    '/etc/passwd',
    'a/../../b',
    'a\\b',
    'a\0b',
    '',
    './a',
    'a//b',
    'a/',
    'a b',
    'é.png',
    'x'.repeat(600),
  ];

  it.each(refused.map((key) => [JSON.stringify(key).slice(0, 40), key]))(
    'refuses the key %s',
    async (_shown, key) => {
      await expect(store.put(key, Buffer.from('evil'))).rejects.toBeInstanceOf(ArtifactKeyError);
      await expect(store.getBuffer(key)).rejects.toBeInstanceOf(ArtifactKeyError);
      await expect(store.getStream(key)).rejects.toBeInstanceOf(ArtifactKeyError);
      await expect(store.stat(key)).rejects.toBeInstanceOf(ArtifactKeyError);
      await expect(store.delete(key)).rejects.toBeInstanceOf(ArtifactKeyError);
    },
  );

  it('wrote nothing outside its root while refusing', async () => {
    expect(existsSync(join(workDir, 'x'))).toBe(false);
    expect(existsSync(join(workDir, 'b'))).toBe(false);
  });

  it('refuses traversal in a list prefix', async () => {
    await expect(store.list('../')).rejects.toBeInstanceOf(ArtifactKeyError);
    await expect(store.list('/etc')).rejects.toBeInstanceOf(ArtifactKeyError);
  });

  it('says why, and counts as bad input (never retried by a worker)', async () => {
    const error = await store.put('a/../../b', Buffer.from('x')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as ArtifactKeyError).userMessage).toMatch(/"\.\." path segment/);
  });

  it('refuses a key whose folder is an artifact, or that is a folder of artifacts', async () => {
    await store.put('conflict/file', Buffer.from('x'));
    await expect(store.put('conflict/file/inner', Buffer.from('y'))).rejects.toBeInstanceOf(ArtifactKeyError);
    await expect(store.put('conflict', Buffer.from('z'))).rejects.toBeInstanceOf(ArtifactKeyError);
    expect((await store.getBuffer('conflict/file')).toString()).toBe('x');
  });
});

/**
 * A writer in another process, killed with SIGKILL while it streams into the store. The script is
 * written to the test's folder and run with tsx, as the product runs.
 */
async function killWriterMidWrite(storeRoot: string, key: string): Promise<void> {
  const storeModule = pathToFileURL(resolve('src/store/local-store.ts')).href;
  const script = join(workDir, 'endless-writer.mts');
  await writeFile(
    script,
    `import { Readable } from 'node:stream';
import { LocalArtifactStore } from ${JSON.stringify(storeModule)};
const [root, key] = process.argv.slice(2);
const chunk = Buffer.alloc(64 * 1024, 7);
let written = 0;
async function* endless() {
  for (;;) {
    yield chunk;
    written++; // the previous chunk is on disk once the store asks for the next one
    if (written === 32) process.stdout.write('writing\\n');
    if (written > 32) await new Promise((r) => setTimeout(r, 5));
  }
}
await new LocalArtifactStore(root).put(key, Readable.from(endless()));
process.stdout.write('finished\\n');
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, storeRoot, key], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((done) =>
    child.on('exit', (_code, signal) => done(signal)),
  );
  await new Promise<void>((started, failed) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('writing')) started();
    });
    child.on('exit', (code) => failed(new Error(`writer exited early (${code}): ${stderr}`)));
  });

  // Really mid-write: a temporary file holding megabytes exists next to where the key will be.
  // (Readable.from reads up to 16 chunks ahead of the store, so at least 16 of the 32 are on disk.)
  const partial = (await filesOnDisk(storeRoot)).filter((f) => f.includes('~tmp~'));
  expect(partial).toHaveLength(1);
  expect((await stat(join(storeRoot, partial[0]!))).size).toBeGreaterThanOrEqual(16 * 64 * 1024);

  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

describe('crash safety', () => {
  it('leaves no file under the key when the writer is killed mid-write', async () => {
    const crashRoot = join(workDir, 'crash');
    const crashStore = new LocalArtifactStore(crashRoot);
    await killWriterMidWrite(crashRoot, 'datasets/d1/images.tar');

    expect(await crashStore.stat('datasets/d1/images.tar')).toBeNull();
    expect(await crashStore.exists('datasets/d1/images.tar')).toBe(false);
    expect(await crashStore.list()).toEqual([]);
    expect(await crashStore.list('datasets/')).toEqual([]);

    // The store still works, and the leftover temporary file can be swept.
    await crashStore.put('datasets/d1/images.tar', Buffer.from('complete'));
    expect((await crashStore.getBuffer('datasets/d1/images.tar')).toString()).toBe('complete');
    expect(await crashStore.list()).toEqual(['datasets/d1/images.tar']);
    expect(await crashStore.removeStaleTemporaryFiles(0)).toBe(1);
    expect(await filesOnDisk(crashRoot)).toEqual(['datasets/d1/images.tar']);
  });

  it('keeps the previous artifact whole when a replacing writer is killed', async () => {
    const crashRoot = join(workDir, 'crash-replace');
    const crashStore = new LocalArtifactStore(crashRoot);
    await crashStore.put('loras/style.safetensors', Buffer.from('the good weights'));
    await killWriterMidWrite(crashRoot, 'loras/style.safetensors');

    expect((await crashStore.getBuffer('loras/style.safetensors')).toString()).toBe('the good weights');
    expect(await crashStore.list()).toEqual(['loras/style.safetensors']);
  });

  it('leaves no temporary file when the source stream fails', async () => {
    const failRoot = join(workDir, 'failing-source');
    const failStore = new LocalArtifactStore(failRoot);
    async function* broken() {
      yield Buffer.alloc(1000);
      throw new Error('upload interrupted');
    }
    await expect(failStore.put('uploads/u1.zip', Readable.from(broken()))).rejects.toThrow(
      'upload interrupted',
    );
    expect(await failStore.stat('uploads/u1.zip')).toBeNull();
    expect(await filesOnDisk(failRoot)).toEqual([]);
  });
});
