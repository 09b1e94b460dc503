import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import type { Panel } from '../src/agents/script-schema.ts';
import { DEFAULT_GEOMETRY, layoutPage } from '../src/comic/layout.ts';
import { assemblePage } from '../src/comic/page.ts';

const run = promisify(execFile);
const hasTesseract = ['/usr/bin/tesseract', '/usr/local/bin/tesseract'].some((p) => existsSync(p));
const dir = mkdtempSync(join(tmpdir(), 'comicmaster-page-'));
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(dir, { recursive: true, force: true });
});

function panel(p: Partial<Panel>): Panel {
  return {
    shot: 'medium',
    angle: 'eye-level',
    setting: 'a harbour at dusk',
    time: 'dusk',
    lighting: 'warm',
    action: 'they talk',
    characters: [
      { name: 'Mina', pose: 'standing', expression: 'worried', position: 'left' },
      { name: 'Oskar', pose: 'standing', expression: 'calm', position: 'right' },
    ],
    balloons: [],
    caption: null,
    sfx: null,
    ...p,
  };
}

/** A render with a bright subject on a dark ground, at a size unlike its frame. */
function render(width: number, height: number, hue: string): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="${hue}"/><circle cx="${width * 0.7}" cy="${height / 2}" r="${height / 4}" fill="#f4e04d"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const panels = [
  panel({ shot: 'establishing', caption: 'The harbour town of Vell.', sfx: 'Boom' }),
  panel({ balloons: [{ speaker: 'Mina', text: 'The lighthouse went dark!', kind: 'speech' }] }),
  panel({
    shot: 'close-up',
    balloons: [{ speaker: 'Oskar', text: 'Stay here and keep watch.', kind: 'speech' }],
  }),
];

describe('assemblePage', () => {
  it('builds a lettered page at the page size: white paper, black borders, art in the frames', async () => {
    const frames = layoutPage(panels.map((p) => p.shot));
    const images = await Promise.all([
      render(1344, 768, '#1d3557'),
      render(832, 1216, '#457b9d'),
      render(1024, 1024, '#6d2e46'),
    ]);
    const { png, balloons } = await assemblePage({ frames, panels, images, pageNumber: 3 });
    writeFileSync(join(dir, 'page.png'), png);

    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual([
      'png',
      DEFAULT_GEOMETRY.width,
      DEFAULT_GEOMETRY.height,
    ]);

    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => {
      const i = (y * info.width + x) * info.channels;
      return [data[i], data[i + 1], data[i + 2]];
    };
    expect(px(20, 20)).toEqual([255, 255, 255]); // paper margin
    const f = frames[1]!;
    expect(px(f.x + 2, f.y + Math.round(f.height * 0.8))).toEqual([0, 0, 0]); // frame border
    expect(px(f.x - 10, f.y + 50)).toEqual([255, 255, 255]); // gutter
    const deep = px(f.x + 40, f.y + f.height - 40); // art, cropped to fill the frame
    expect(deep).not.toEqual([255, 255, 255]);

    expect(balloons.map((b) => b.kind)).toEqual(['caption', 'sfx', 'speech', 'speech']);
    for (const b of balloons) {
      const fr = frames[b.panelIndex]!;
      expect(b.box.x).toBeGreaterThanOrEqual(fr.x);
      expect(b.box.y).toBeGreaterThanOrEqual(fr.y);
      expect(b.box.x + b.box.width).toBeLessThanOrEqual(fr.x + fr.width);
      expect(b.box.y + b.box.height).toBeLessThanOrEqual(fr.y + fr.height);
    }
    // The inside of a speech balloon, beside its text, is white.
    const speech = balloons.find((b) => b.kind === 'speech')!;
    expect(px(speech.box.x + Math.round(speech.box.width / 2), speech.textBox.y - 4)).toEqual([
      255, 255, 255,
    ]);
  });

  it('mirrors the page for right-to-left reading', async () => {
    const frames = layoutPage(['close-up', 'close-up'], { rtl: true });
    const images = await Promise.all([render(1024, 1024, '#222'), render(1024, 1024, '#444')]);
    const two = [panels[1]!, panels[2]!];
    const { balloons } = await assemblePage({ frames, panels: two, images, rtl: true });
    expect(balloons).toHaveLength(2);
    expect(frames[0]!.x).toBeGreaterThan(frames[1]!.x);
  });

  it('rejects mismatched panels and images', async () => {
    const frames = layoutPage(['medium']);
    await expect(assemblePage({ frames, panels, images: [] })).rejects.toThrow(/3 panels, 0 images/);
  });

  it.skipIf(!hasTesseract)('letters legibly: OCR reads the balloon words back from the page', async () => {
    const frames = layoutPage(panels.map((p) => p.shot));
    const images = await Promise.all([
      render(1344, 768, '#1d3557'),
      render(832, 1216, '#457b9d'),
      render(1024, 1024, '#6d2e46'),
    ]);
    const { png } = await assemblePage({ frames, panels, images });
    const file = join(dir, 'ocr.png');
    writeFileSync(file, png);
    const { stdout } = await run('tesseract', [file, '-', '--psm', '11'], { maxBuffer: 10 * 1024 * 1024 });
    const words = new Set(
      stdout
        .toUpperCase()
        .split(/[^A-Z]+/)
        .filter(Boolean),
    );
    for (const w of ['LIGHTHOUSE', 'WENT', 'DARK', 'STAY', 'HERE', 'KEEP', 'WATCH'])
      expect(words, `OCR text: ${stdout}`).toContain(w);
  });
});
