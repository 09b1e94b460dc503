/**
 * Downloading a training's attachments: only from allowed origins, no redirects, and every file cut
 * off at its limit even when the server does not say (or lies about) how big it is. A loopback HTTP
 * server plays the CDN.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowedOrigins, downloadSources, type DownloadLimits } from '../src/commands/train-download.ts';

let server: Server;
let origin: string;
let dir: string;
const limits: DownloadLimits = {
  maxImageBytes: 64 * 1024,
  maxZipBytes: 256 * 1024,
  maxTotalBytes: 300 * 1024,
  timeoutMs: 10_000,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-train-dl-'));
  server = createServer((req, res) => {
    if (req.url === '/small.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 1000 });
      res.end(Buffer.alloc(1000, 1));
    } else if (req.url === '/endless.png') {
      // No content-length: the size is only known by counting.
      res.writeHead(200, { 'content-type': 'image/png' });
      const chunk = Buffer.alloc(16 * 1024, 2);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent > 10 * 1024 * 1024 || res.destroyed) {
          clearInterval(timer);
          res.end();
          return;
        }
        sent += chunk.length;
        res.write(chunk);
      }, 1);
      res.on('close', () => clearInterval(timer));
    } else if (req.url === '/redirect.png') {
      res.writeHead(302, { location: 'http://example.invalid/x.png' });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('downloading training attachments', () => {
  it('accepts Discord’s CDN over https and the configured API origin, nothing else', () => {
    const allowed = allowedOrigins({ DISCORD_API_URL: `${origin}/api` });
    expect(allowed(new URL('https://cdn.discordapp.com/attachments/1/2/a.png'))).toBe(true);
    expect(allowed(new URL('https://media.discordapp.net/attachments/1/2/a.png'))).toBe(true);
    expect(allowed(new URL(`${origin}/attachments/1/2/a.png`))).toBe(true);
    expect(allowed(new URL('http://cdn.discordapp.com/a.png'))).toBe(false);
    expect(allowed(new URL('https://cdn.discordapp.com.evil.example/a.png'))).toBe(false);
    expect(allowed(new URL('http://169.254.169.254/latest/meta-data'))).toBe(false);
    expect(allowed(new URL('http://127.0.0.1:1/a.png'))).toBe(false);
  });

  it('keeps what fits, refuses the rest with reasons, and leaves no partial file', async () => {
    const out = await mkdtemp(join(dir, 'a-'));
    const allowed = allowedOrigins({ DISCORD_API_URL: `${origin}/api` });
    const result = await downloadSources(
      [
        { url: `${origin}/small.png`, filename: 'small.png', size: 1000, kind: 'image' },
        { url: `${origin}/endless.png`, filename: 'liar.png', size: 500, kind: 'image' },
        { url: `${origin}/small.png`, filename: 'claims-huge.png', size: 10 * 1024 * 1024, kind: 'image' },
        { url: `${origin}/redirect.png`, filename: 'moved.png', size: 10, kind: 'image' },
        { url: 'http://169.254.169.254/latest/meta-data', filename: 'metadata.png', size: 10, kind: 'image' },
      ],
      out,
      allowed,
      limits,
    );
    expect(result.files.map((f) => f.filename)).toEqual(['small.png']);
    expect((await readFile(result.files[0]!.path)).length).toBe(1000);
    const reasons = Object.fromEntries(result.refused.map((r) => [r.source, r.reason]));
    expect(reasons['liar.png']).toContain('stopped');
    expect(reasons['claims-huge.png']).toContain('over the');
    expect(reasons['moved.png']).toContain('could not be downloaded');
    expect(reasons['metadata.png']).toContain("not Discord's file server");
    // Only the kept file is on disk.
    expect(await readdir(out)).toHaveLength(1);
    expect(existsSync(join(out, '001-liar.png'))).toBe(false);
  });

  it('stops at the total budget for one training', async () => {
    const out = await mkdtemp(join(dir, 'b-'));
    const allowed = allowedOrigins({ DISCORD_API_URL: `${origin}/api` });
    const result = await downloadSources(
      Array.from({ length: 4 }, (_, i) => ({
        url: `${origin}/small.png`,
        filename: `s${i}.png`,
        size: 1000,
        kind: 'image' as const,
      })),
      out,
      allowed,
      { ...limits, maxTotalBytes: 2500 },
    );
    expect(result.files).toHaveLength(2);
    expect(result.refused.map((r) => r.source)).toEqual(['s2.png', 's3.png']);
  });
});
