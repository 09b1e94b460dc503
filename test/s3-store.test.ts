/**
 * The S3 artifact store against the fake S3 on loopback (real HTTP, SigV4-signed requests).
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/env.ts';
import { UpstreamError } from '../src/errors.ts';
import { ArtifactKeyError, ArtifactNotFoundError } from '../src/store/artifact-store.ts';
import { createArtifactStore } from '../src/store/local-store.ts';
import { S3ArtifactStore } from '../src/store/s3-store.ts';
import { startFakeS3, type FakeS3 } from './fakes/s3.ts';

let s3: FakeS3;
let store: S3ArtifactStore;
const credentials = { accessKeyId: 'comicmaster', secretAccessKey: 'not-a-real-secret' };

beforeAll(async () => {
  s3 = await startFakeS3({ bucket: 'artifacts', accessKeyId: credentials.accessKeyId, pageSize: 2 });
  store = new S3ArtifactStore({ endpoint: s3.url, bucket: 'artifacts', ...credentials });
});

afterAll(async () => {
  await s3.close();
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('S3 artifact store', () => {
  it('stores a buffer and a stream, and reads them back whole, with their content type', async () => {
    const png = Buffer.from('\x89PNG fake bytes');
    expect(await store.put('comics/c1/pages/page-01.png', png, { contentType: 'image/png' })).toMatchObject({
      size: png.length,
    });
    expect(await store.getBuffer('comics/c1/pages/page-01.png')).toEqual(png);
    expect(await collect(await store.getStream('comics/c1/pages/page-01.png'))).toEqual(png);
    expect(s3.objects.get('comics/c1/pages/page-01.png')?.contentType).toBe('image/png');

    await store.put('loras/style.safetensors', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
    expect((await store.getBuffer('loras/style.safetensors')).toString()).toBe('abcd');
    expect(await store.stat('loras/style.safetensors')).toMatchObject({ size: 4 });
  });

  it('says when a key holds nothing, and deletes', async () => {
    await expect(store.getBuffer('comics/none.png')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    await expect(store.getStream('comics/none.png')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    expect(await store.stat('comics/none.png')).toBeNull();
    await store.put('tmp/gone.txt', Buffer.from('x'));
    expect(await store.exists('tmp/gone.txt')).toBe(true);
    expect(await store.delete('tmp/gone.txt')).toBe(true);
    expect(await store.delete('tmp/gone.txt')).toBe(false);
    expect(await store.exists('tmp/gone.txt')).toBe(false);
  });

  it('lists by prefix across pages, sorted', async () => {
    for (const n of [3, 1, 5, 2, 4]) await store.put(`comics/c2/renders/p01-0${n}-a0.png`, Buffer.from([n]));
    await store.put('comics/c20/renders/p01-01-a0.png', Buffer.from([9]));
    expect(await store.list('comics/c2/')).toEqual(
      [1, 2, 3, 4, 5].map((n) => `comics/c2/renders/p01-0${n}-a0.png`),
    );
    expect(await store.list('comics/c2')).toHaveLength(6);
    expect(s3.requests.filter((r) => r.path === '/artifacts').length).toBeGreaterThanOrEqual(3); // continuation pages
  });

  it('validates keys exactly as the local store does, before anything is sent', async () => {
    const before = s3.requests.length;
    for (const key of ['../etc/passwd', '/abs.png', 'a//b.png', 'a/./b.png', 'spaces in.png', 'a\\b.png']) {
      await expect(store.put(key, Buffer.from('x'))).rejects.toBeInstanceOf(ArtifactKeyError);
    }
    await expect(store.list('../')).rejects.toBeInstanceOf(ArtifactKeyError);
    expect(s3.requests.length).toBe(before);
  });

  it('refuses wrong credentials as a non-retryable upstream error', async () => {
    const wrong = new S3ArtifactStore({
      endpoint: s3.url,
      bucket: 'artifacts',
      accessKeyId: 'someone-else',
      secretAccessKey: 'x',
    });
    const error = await wrong.put('a.png', Buffer.from('x')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).retryable).toBe(false);
    expect((error as UpstreamError).userMessage).toMatch(/file store/);
  });

  it('is what createArtifactStore gives when ARTIFACT_STORE=s3', async () => {
    const config = parseConfig({
      ARTIFACT_STORE: 's3',
      S3_ENDPOINT: s3.url,
      S3_BUCKET: 'artifacts',
      S3_ACCESS_KEY_ID: credentials.accessKeyId,
      S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      LOG_LEVEL: 'silent',
    });
    const configured = createArtifactStore(config);
    expect(configured).toBeInstanceOf(S3ArtifactStore);
    await configured.put('shared/hello.txt', Buffer.from('hi'));
    expect(s3.objects.get('shared/hello.txt')?.body.toString()).toBe('hi');
  });
});
