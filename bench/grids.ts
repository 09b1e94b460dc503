// `npm run bench -- grids`: composing the evaluation grids of 7 checkpoints × 5 columns (baseline + 4
// strengths) × 4 prompts from 1024² PNG renders read from disk (as the evaluate job reads the store),
// encoded under Discord's upload limit, compared in the same run with a naive baseline that
// composites one cell at a time onto the growing canvas. Ends with one JSON line.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DISCORD_UPLOAD_LIMIT } from '../src/comic/encode.ts';
import { composeGridParts, type GridSpec } from '../src/evaluation/grid.ts';

const CHECKPOINTS = 7;
const STRENGTHS = [0.4, 0.6, 0.8, 1.0];
const PROMPTS = 4;
const RENDER = 1024;
const CELL = 512;
const LIMIT = DISCORD_UPLOAD_LIMIT - 256 * 1024;

const dir = await mkdtemp(join(tmpdir(), 'cm-bench-grids-'));
const fileOf = (prompt: number, ckpt: number | null, strength: number | null) =>
  join(dir, `p${prompt}-${ckpt === null ? 'base' : `e${ckpt}-s${strength}`}.png`);

/** A render-like picture: gradients, shapes and fine noise, so PNG decoding costs what a real one does. */
async function render(prompt: number, ckpt: number | null, strength: number | null): Promise<Buffer> {
  const hue = (prompt * 83 + (ckpt ?? 0) * 29 + Math.round((strength ?? 0) * 50)) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${RENDER}" height="${RENDER}">
  <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${hue},60%,70%)"/><stop offset="1" stop-color="hsl(${(hue + 140) % 360},50%,25%)"/></linearGradient></defs>
  <rect width="100%" height="100%" fill="url(#g)"/>
  <circle cx="${300 + prompt * 120}" cy="400" r="${180 + (ckpt ?? 0) * 10}" fill="hsl(${(hue + 60) % 360},70%,50%)"/>
  <rect x="100" y="${600 - prompt * 40}" width="800" height="200" rx="40" fill="hsl(${(hue + 200) % 360},40%,40%)" opacity="0.8"/></svg>`;
  const base = await sharp(Buffer.from(svg)).raw().toBuffer({ resolveWithObject: true });
  // Sampler-like grain: what makes real renders expensive to encode and decode.
  let seed = hue + 1;
  for (let i = 0; i < base.data.length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    base.data[i] = Math.max(0, Math.min(255, base.data[i]! + ((seed >> 16) % 13) - 6));
  }
  return sharp(base.data, { raw: base.info }).png({ compressionLevel: 6 }).toBuffer();
}

for (let p = 0; p < PROMPTS; p++) {
  await writeFile(fileOf(p, null, null), await render(p, null, null));
  for (let c = 1; c <= CHECKPOINTS; c++)
    for (const s of STRENGTHS) await writeFile(fileOf(p, c, s), await render(p, c, s));
}
const columns = ['no LoRA', ...STRENGTHS.map((s) => `strength ${s.toFixed(1)}`)];
const rows = Array.from({ length: CHECKPOINTS }, (_, i) => `epoch ${i + 1}`);

async function cellsOf(prompt: number): Promise<Buffer[][]> {
  return Promise.all(
    rows.map((_, r) =>
      Promise.all(
        [fileOf(prompt, null, null), ...STRENGTHS.map((s) => fileOf(prompt, r + 1, s))].map((f) =>
          readFile(f),
        ),
      ),
    ),
  );
}

// ---------- ours ----------
const rssBefore = process.memoryUsage().rss;
let peakRss = rssBefore;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);
const t0 = performance.now();
let parts = 0;
let maxBytes = 0;
for (let p = 0; p < PROMPTS; p++) {
  const spec: GridSpec = {
    title: `bench · prompt ${p + 1}`,
    rowLabels: rows,
    columnLabels: columns,
    cells: await cellsOf(p),
    cellSize: CELL,
  };
  const encoded = await composeGridParts(spec, LIMIT);
  parts += encoded.length;
  for (const e of encoded) maxBytes = Math.max(maxBytes, e.data.length);
}
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
peakRss = Math.max(peakRss, process.memoryUsage().rss);
const oursPeakMb = peakRss / 1024 / 1024;

// ---------- naive baseline: one composite (and one full canvas round trip) per cell ----------
const GUTTER = 160;
const HEADER = 80;
const width = GUTTER + columns.length * (CELL + 4);
const height = HEADER + rows.length * (CELL + 4);
// One prompt's grid, times the prompt count: the naive way is linear in grids and takes about a minute
// for all four on 2 cores, which would only slow the run down without telling more.
const b0 = performance.now();
for (let p = 0; p < 1; p++) {
  let canvas = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  const cells = await cellsOf(p);
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < columns.length; c++) {
      const cell = await sharp(cells[r]![c]!).resize(CELL, CELL).png().toBuffer();
      canvas = await sharp(canvas)
        .composite([{ input: cell, left: GUTTER + c * (CELL + 4), top: HEADER + r * (CELL + 4) }])
        .png()
        .toBuffer();
    }
  }
  await sharp(canvas).jpeg({ quality: 88 }).toBuffer();
}
const baselineSeconds = ((performance.now() - b0) / 1000) * PROMPTS;
await rm(dir, { recursive: true, force: true });

const r2 = (n: number) => Math.round(n * 100) / 100;
console.log(
  `grids: ${PROMPTS} prompts × ${CHECKPOINTS} checkpoints × ${columns.length} columns from ${RENDER}² PNG renders, ${CELL} px cells`,
);
console.log(
  `  ours (decode once, one composite, JPEG)   ${r2(seconds)} s   ${parts} image(s), largest ${r2(maxBytes / 1024 / 1024)} MiB   (target < 10 s)`,
);
console.log(
  `  naive (one composite per cell)            ${r2(baselineSeconds)} s (1 grid × ${PROMPTS})   (${r2(baselineSeconds / seconds)}x ours)`,
);
console.log(`  peak RSS during ours                      ${r2(oursPeakMb)} MB   (target < 1500 MB)`);
console.log(
  JSON.stringify({
    bench: 'grids',
    seconds: r2(seconds),
    baseline_seconds: r2(baselineSeconds),
    parts,
    peak_rss_mb: r2(oursPeakMb),
  }),
);
