import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { encodeUnderLimit } from '../src/comic/encode.ts';

const W = 1988;
const H = 3056;

async function noisePage(): Promise<Buffer> {
  // Random noise is the worst case for every codec: the PNG alone is ~18 MB.
  const raw = randomBytes(W * H * 3);
  return sharp(raw, { raw: { width: W, height: H, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
}

describe('encodeUnderLimit', () => {
  it('keeps a full noisy page under 2 MiB and reports what it produced', async () => {
    const page = await noisePage();
    const max = 2 * 1024 * 1024;
    expect(page.length).toBeGreaterThan(max);
    const out = await encodeUnderLimit(page, { maxBytes: max });
    expect(out.data.length).toBeLessThanOrEqual(max);
    expect(out.format).not.toBe('png');
    const meta = await sharp(out.data).metadata();
    expect(meta.format).toBe(out.format);
    expect([meta.width, meta.height]).toEqual([out.width, out.height]);
    // Aspect ratio is preserved when it has to downscale.
    expect(Math.abs(out.width / out.height - W / H)).toBeLessThan(0.01);
  });

  it('honours a JPEG preference under a tight limit', async () => {
    const page = await noisePage();
    const out = await encodeUnderLimit(page, { maxBytes: 300 * 1024, prefer: 'jpeg' });
    expect(out.format).toBe('jpeg');
    expect(out.data.length).toBeLessThanOrEqual(300 * 1024);
    expect((await sharp(out.data).metadata()).format).toBe('jpeg');
  });

  it('keeps a flat page as lossless PNG at full size when it fits', async () => {
    const page = await sharp({ create: { width: W, height: H, channels: 3, background: '#ffffff' } })
      .composite([
        {
          input: { create: { width: 800, height: 600, channels: 3, background: '#203040' } },
          left: 100,
          top: 100,
        },
      ])
      .png()
      .toBuffer();
    const out = await encodeUnderLimit(page, { maxBytes: 10 * 1024 * 1024 });
    expect(out).toMatchObject({ format: 'png', width: W, height: H });
  });

  it('refuses an impossible limit with a clear error', async () => {
    const page = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#fff' } })
      .png()
      .toBuffer();
    await expect(encodeUnderLimit(page, { maxBytes: 10 })).rejects.toThrow(/below 1 KiB/);
  });
});
