// `npm run bench -- dataset`: preparing 300 mixed images (2–12 MP, JPEG and PNG, grain + shapes) as
// `comicmaster dataset prepare` does, against a baseline over the same files: a plain sharp
// decode → resize → PNG encode loop with the same sizes, PNG settings and parallelism (no byte checks,
// no fingerprints, no captions). Each phase runs in its own child process so its peak RSS is its own.
// Target: under 90 s and under 1 GB on the 2-core box.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const IMAGES = Number(process.env.BENCH_DATASET_IMAGES ?? 300);
const PARALLELISM = 2;
const phase = process.env.BENCH_DATASET_PHASE;

interface PhaseResult {
  seconds: number;
  peak_rss_mb: number;
  images: number;
}

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ASPECTS = [4 / 3, 3 / 2, 1, 2 / 3, 3 / 4, 16 / 9];

/** One test picture: coarse grain (so PNGs are realistic in size, not 36 MB of white noise) and shapes. */
async function makeImage(i: number, dir: string): Promise<void> {
  const rnd = random(i + 1);
  const megapixels = 2 + Math.floor(rnd() * 11); // 2–12 MP
  const aspect = ASPECTS[Math.floor(rnd() * ASPECTS.length)] ?? 1;
  const width = Math.round(Math.sqrt(megapixels * 1e6 * aspect));
  const height = Math.round((megapixels * 1e6) / width);
  const grain = await sharp({
    create: {
      width: Math.ceil(width / 3),
      height: Math.ceil(height / 3),
      channels: 3,
      background: { r: Math.floor(rnd() * 256), g: Math.floor(rnd() * 256), b: Math.floor(rnd() * 256) },
      noise: { type: 'gaussian', mean: 128, sigma: 30 },
    },
  })
    .png({ compressionLevel: 0 })
    .toBuffer();
  const colour = () =>
    `rgb(${Math.floor(rnd() * 256)},${Math.floor(rnd() * 256)},${Math.floor(rnd() * 256)})`;
  const shapes = Array.from({ length: 8 }, (_, k) => {
    const x = Math.floor(rnd() * width);
    const y = Math.floor(rnd() * height);
    const r = Math.floor((0.05 + rnd() * 0.25) * Math.min(width, height));
    return k % 2
      ? `<circle cx="${x}" cy="${y}" r="${r}" fill="${colour()}" fill-opacity="0.8"/>`
      : `<rect x="${x - r}" y="${y - r}" width="${2 * r}" height="${r}" fill="${colour()}" fill-opacity="0.8"/>`;
  }).join('');
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes}</svg>`,
  );
  const image = sharp(grain)
    .resize(width, height, { kernel: 'cubic' })
    .composite([{ input: svg }]);
  if (i % 2 === 0)
    await image.jpeg({ quality: 90 }).toFile(join(dir, `img${String(i).padStart(3, '0')}.jpg`));
  else await image.png().toFile(join(dir, `img${String(i).padStart(3, '0')}.png`));
}

async function runPool(count: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLELISM }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

let sampledPeak = 0;
const sampler = phase
  ? setInterval(() => (sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss())), 20)
  : undefined;
sampler?.unref();

function peakRssMb(): number {
  // VmHWM is this process image's own high-water mark. getrusage's maxRSS is not: on Linux it carries
  // the parent's RSS over fork + exec, so every child would report at least the generator's peak.
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
    if (kb > 0) return Math.round(kb / 1024);
  } catch {
    // not Linux: fall back to sampling
  }
  return Math.round(Math.max(sampledPeak, process.memoryUsage.rss()) / (1024 * 1024));
}

async function baselinePhase(images: string, out: string): Promise<PhaseResult> {
  const { targetSize } = await import('../src/dataset/prepare.ts');
  const files = (await readdir(images)).sort();
  await mkdir(out, { recursive: true });
  const started = performance.now();
  await runPool(files.length, async (i) => {
    const file = join(images, files[i] ?? '');
    const { width = 1, height = 1 } = await sharp(file).metadata();
    const size = targetSize(width, height, 1024, 2048);
    // Same pipeline shape as prepare, minus orientation, checks and fingerprints.
    await sharp(file)
      .resize(size.width, size.height, { fit: 'fill', kernel: 'lanczos3' })
      .png({ compressionLevel: 3, adaptiveFiltering: false })
      .toFile(join(out, `${String(i).padStart(4, '0')}.png`));
  });
  return { seconds: (performance.now() - started) / 1000, peak_rss_mb: peakRssMb(), images: files.length };
}

async function preparePhase(images: string, out: string): Promise<PhaseResult> {
  const { prepareDataset } = await import('../src/dataset/prepare.ts');
  const started = performance.now();
  const report = await prepareDataset([images], { trigger: 'benchstyle', out });
  const seconds = (performance.now() - started) / 1000;
  if (report.status !== 'prepared') throw new Error(`bench dataset was refused: ${report.message}`);
  if (report.refused.length > 0)
    console.error(`note: ${report.refused.length} refused, e.g. ${report.refused[0]?.reason}`);
  return { seconds, peak_rss_mb: peakRssMb(), images: report.accepted.length };
}

function runChild(which: 'baseline' | 'prepare', images: string, out: string): Promise<PhaseResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', self], {
      env: {
        ...process.env,
        BENCH_DATASET_PHASE: which,
        BENCH_DATASET_IMAGES_DIR: images,
        BENCH_DATASET_OUT: out,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`${which} phase exited with ${code}`));
      else resolve(JSON.parse(last) as PhaseResult);
    });
  });
}

if (phase === 'baseline' || phase === 'prepare') {
  const images = process.env.BENCH_DATASET_IMAGES_DIR ?? '';
  const out = process.env.BENCH_DATASET_OUT ?? '';
  const result = phase === 'baseline' ? await baselinePhase(images, out) : await preparePhase(images, out);
  console.log(JSON.stringify(result));
} else {
  const root = await mkdtemp(join(tmpdir(), 'cm-bench-dataset-'));
  try {
    const images = join(root, 'images');
    await mkdir(images);
    const genStart = performance.now();
    await runPool(IMAGES, (i) => makeImage(i, images));
    await writeFile(join(root, 'README'), 'comicmaster dataset bench scratch folder\n');
    console.log(
      `Generated ${IMAGES} images (2–12 MP, half JPEG, half PNG) in ${((performance.now() - genStart) / 1000).toFixed(1)} s (not timed).`,
    );

    const baseline = await runChild('baseline', images, join(root, 'baseline'));
    console.log(
      `baseline (decode + resize + PNG encode, ${PARALLELISM} at a time): ${baseline.seconds.toFixed(1)} s, peak RSS ${baseline.peak_rss_mb} MB`,
    );
    const prepared = await runChild('prepare', images, join(root, 'dataset'));
    console.log(
      `dataset prepare (checks, fingerprints, de-dup, orient, resize, PNG, captions): ${prepared.seconds.toFixed(1)} s, peak RSS ${prepared.peak_rss_mb} MB`,
    );
    console.log(
      `  ${(prepared.seconds / baseline.seconds).toFixed(2)}× the baseline; target under 90 s and under 1024 MB`,
    );
    console.log(
      JSON.stringify({
        seconds: Number(prepared.seconds.toFixed(2)),
        peak_rss_mb: prepared.peak_rss_mb,
        images: prepared.images,
        baseline_seconds: Number(baseline.seconds.toFixed(2)),
        baseline_peak_rss_mb: baseline.peak_rss_mb,
      }),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
