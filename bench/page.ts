// `npm run bench -- page`: assembling and lettering a 6-panel page vs. a plain sharp composite of the
// same frames (same renders cropped into the same frames, same PNG settings, no borders or lettering).
import sharp from 'sharp';
import type { Panel } from '../src/agents/script-schema.ts';
import { DEFAULT_GEOMETRY, layoutPage } from '../src/comic/layout.ts';
import { assemblePage, cropIntoFrame, PAGE_PNG_OPTIONS } from '../src/comic/page.ts';

const WARMUP = 2;
const ITERATIONS = 10;

const cast: Panel['characters'] = [
  { name: 'Mina', pose: 'pointing', expression: 'alarmed', position: 'left' },
  { name: 'Oskar', pose: 'crouching', expression: 'wary', position: 'right' },
];
const panel = (p: Partial<Panel>): Panel => ({
  shot: 'medium',
  angle: 'eye-level',
  setting: 'harbour',
  time: 'dusk',
  lighting: 'warm',
  action: 'they talk',
  characters: cast,
  balloons: [],
  caption: null,
  sfx: null,
  ...p,
});
const panels: Panel[] = [
  panel({
    shot: 'establishing',
    caption: 'The harbour of Vell, the night the lighthouse went dark.',
    sfx: 'Krakoom',
  }),
  panel({
    balloons: [
      { speaker: 'Mina', text: 'Did you see that? The light just died!', kind: 'speech' },
      { speaker: 'Oskar', text: 'Keep your voice down. Someone might hear us.', kind: 'whisper' },
    ],
  }),
  panel({
    shot: 'close-up',
    balloons: [{ speaker: 'Oskar', text: 'Something is out there on the water...', kind: 'thought' }],
  }),
  panel({ shot: 'full', balloons: [{ speaker: 'Mina', text: 'Oskar! Run!', kind: 'shout' }], sfx: 'Splash' }),
  panel({
    caption: 'Minutes later.',
    balloons: [
      {
        speaker: 'Oskar',
        text: 'We have to warn the keeper before the fishing boats come back.',
        kind: 'speech',
      },
      { speaker: 'Mina', text: 'Then we go now.', kind: 'speech' },
    ],
  }),
  panel({ shot: 'wide', balloons: [{ speaker: 'Mina', text: 'Look, the door is open.', kind: 'speech' }] }),
];

/** Render-like images: gradients, shapes and grain, at SDXL bucket sizes. */
async function fakeRender(i: number): Promise<Buffer> {
  const sizes: [number, number][] = [
    [1344, 768],
    [1216, 832],
    [832, 1216],
    [1024, 1024],
    [1152, 896],
    [1536, 640],
  ];
  const [w, h] = sizes[i % sizes.length]!;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><defs><linearGradient id="g" x2="0" y2="1"><stop offset="0" stop-color="hsl(${i * 50},50%,60%)"/><stop offset="1" stop-color="hsl(${i * 50 + 30},40%,20%)"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/><circle cx="${w * 0.6}" cy="${h * 0.45}" r="${h * 0.25}" fill="#f1d9b5"/><rect y="${h * 0.75}" width="100%" height="${h * 0.25}" fill="#1b1b24"/></svg>`;
  const grain = await sharp({
    create: {
      width: w,
      height: h,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 8 },
    },
  })
    .raw()
    .toBuffer();
  return sharp(Buffer.from(svg))
    .composite([{ input: grain, raw: { width: w, height: h, channels: 3 }, blend: 'overlay' }])
    .png()
    .toBuffer();
}

async function plainComposite(images: Buffer[], frames: ReturnType<typeof layoutPage>): Promise<Buffer> {
  const crops = await Promise.all(frames.map((f, i) => cropIntoFrame(images[i]!, f)));
  return sharp({
    create: {
      width: DEFAULT_GEOMETRY.width,
      height: DEFAULT_GEOMETRY.height,
      channels: 3,
      background: '#ffffff',
    },
  })
    .composite(
      crops.map((data, i) => ({
        input: data,
        raw: { width: frames[i]!.width, height: frames[i]!.height, channels: 3 as const },
        left: frames[i]!.x,
        top: frames[i]!.y,
      })),
    )
    .png(PAGE_PNG_OPTIONS)
    .toBuffer();
}

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))]!;
const r1 = (n: number) => Math.round(n * 10) / 10;

const frames = layoutPage(panels.map((p) => p.shot));
const images = await Promise.all(panels.map((_, i) => fakeRender(i)));
let balloons = 0;
let lastPage: Buffer | undefined;
// Alternate runs so both see the same machine load.
const assembled: number[] = [];
const plain: number[] = [];
for (let round = 0; round < 2; round++) {
  assembled.push(
    ...(await time(async () => {
      const page = await assemblePage({ frames, panels, images, pageNumber: 1 });
      balloons = page.balloons.length;
      lastPage = page.png;
    })),
  );
  plain.push(...(await time(() => plainComposite(images, frames))));
}
assembled.sort((a, b) => a - b);
plain.sort((a, b) => a - b);
// Where the time goes: the six attention crops (both sides), and the PNG encode of the lettered page.
const crops = await time(() => Promise.all(frames.map((f, i) => cropIntoFrame(images[i]!, f))));
const pagePixels = await sharp(lastPage!).raw().toBuffer({ resolveWithObject: true });
const encode = await time(() =>
  sharp(pagePixels.data, { raw: pagePixels.info }).png(PAGE_PNG_OPTIONS).toBuffer(),
);
const peakRssMb = process.resourceUsage().maxRSS / 1024;
const ratio = pct(assembled, 0.5) / pct(plain, 0.5);

console.log(
  `page: ${frames.length} panels, ${balloons} lettering items, ${DEFAULT_GEOMETRY.width}x${DEFAULT_GEOMETRY.height}, ${assembled.length} runs each after warm-up`,
);
console.log(
  `  assemble + letter   p50 ${r1(pct(assembled, 0.5))} ms   p90 ${r1(pct(assembled, 0.9))} ms   min ${r1(assembled[0]!)} ms`,
);
console.log(
  `  plain composite     p50 ${r1(pct(plain, 0.5))} ms   p90 ${r1(pct(plain, 0.9))} ms   min ${r1(plain[0]!)} ms`,
);
console.log(
  `  assemble phases: 6 attention crops p50 ${r1(pct(crops, 0.5))} ms (run alongside the lettering)`,
);
console.log(
  `                   page PNG encode p50 ${r1(pct(encode, 0.5))} ms (${pagePixels.info.channels} channels)`,
);
console.log(`  ratio (p50)         ${ratio.toFixed(2)}x   (target ≤ 2x and < 400 ms)`);
console.log(`  peak RSS            ${r1(peakRssMb)} MB`);
console.log(
  JSON.stringify({
    bench: 'page',
    assemble_ms_p50: r1(pct(assembled, 0.5)),
    assemble_ms_p90: r1(pct(assembled, 0.9)),
    plain_ms_p50: r1(pct(plain, 0.5)),
    plain_ms_p90: r1(pct(plain, 0.9)),
    ratio: Math.round(ratio * 100) / 100,
    peak_rss_mb: r1(peakRssMb),
  }),
);
