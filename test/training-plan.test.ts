/**
 * The training plan: kohya's step arithmetic on mixed aspect ratios (checked by hand and against the
 * fake kohya's own count), repeats/epochs in range, the presets' flags, and `comicmaster train plan`.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.ts';
import { TrainerOutputParser } from '../src/training/parse.ts';
import { countKohyaSteps, makeBucketResolutions, planTraining } from '../src/training/plan.ts';

const FAKE_SD_SCRIPTS = join(import.meta.dirname, 'fakes', 'trainer', 'sd-scripts');
let dir: string;
let dataset: string;

/** 7 portrait 2:3, 5 landscape 3:2, 9 square, 2 very wide 3:1, 1 tall 1:2. */
const SHAPES: [number, number, number][] = [
  [7, 64, 96],
  [5, 96, 64],
  [9, 80, 80],
  [2, 150, 50],
  [1, 50, 100],
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-plan-'));
  dataset = join(dir, 'dataset');
  const images = join(dataset, '10_ohwx');
  await mkdir(images, { recursive: true });
  let n = 0;
  for (const [count, width, height] of SHAPES) {
    const png = await sharp({ create: { width, height, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    for (let i = 0; i < count; i++) {
      n += 1;
      const stem = String(n).padStart(4, '0');
      await writeFile(join(images, `${stem}.png`), png);
      await writeFile(join(images, `${stem}.txt`), 'ohwx, 1girl\n');
    }
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('kohya step arithmetic', () => {
  it('buckets are kohya’s: 1024² area, 64 px steps, from 256 up to the max', () => {
    const resos = makeBucketResolutions([1024, 1024], 256, 2048, 64);
    expect(resos).toContainEqual([1024, 1024]);
    expect(resos).toContainEqual([832, 1216]);
    expect(resos).toContainEqual([1216, 832]);
    expect(resos).toContainEqual([512, 2048]);
    expect(resos.every(([w, h]) => w % 64 === 0 && h % 64 === 0 && w * h <= 1024 * 1024)).toBe(true);
  });

  it('counts per bucket with ceil, then by gradient accumulation, then × epochs', () => {
    const images = SHAPES.flatMap(([count, width, height]) =>
      Array.from({ length: count }, () => ({ width, height, repeats: 3 })),
    );
    const settings = {
      resolution: 1024,
      minBucketReso: 256,
      maxBucketReso: 2048,
      bucketResoSteps: 64,
      batchSize: 2,
      gradientAccumulation: 4,
    };
    const count = countKohyaSteps(images, settings, 10);
    // Buckets: 2:3 → 832×1216 (7×3=21 → 11 batches), 3:2 → 1216×832 (15 → 8), 1:1 (27 → 14),
    // 3:1 → 1728×576 (6 → 3), 1:2 → 704×1408 (3 → 2). Σ = 38 batches; ceil(38/4) = 10 steps per epoch.
    expect(count.buckets.map((b) => [`${b.width}x${b.height}`, b.samples, b.batches])).toEqual([
      ['704x1408', 3, 2],
      ['832x1216', 21, 11],
      ['1024x1024', 27, 14],
      ['1216x832', 15, 8],
      ['1728x576', 6, 3],
    ]);
    expect(count.batchesPerEpoch).toBe(38);
    // Not images × repeats / batch (24 × 3 / 2 = 36): the per-bucket ceilings add batches.
    expect(count.stepsPerEpoch).toBe(10);
    expect(count.totalSteps).toBe(100);
  });

  it('chooses repeats and epochs that land in 1 500–3 000 steps, and the fake kohya counts the same', async () => {
    const plan = await planTraining({
      datasetDir: dataset,
      base: 'illustrious',
      trigger: 'ohwx',
      workDir: join(dir, 'work'),
      sdScriptsDir: FAKE_SD_SCRIPTS,
    });
    expect(plan.totalSteps).toBeGreaterThanOrEqual(1_500);
    expect(plan.totalSteps).toBeLessThanOrEqual(3_000);
    expect(plan.epochs % 2).toBe(0);
    expect(plan.totalSteps).toBe(plan.stepsPerEpoch * plan.epochs);
    expect(plan.configFile.content).toContain(`num_repeats = ${plan.repeats}`);
    expect(plan.configFile.content).toContain('caption_extension = ".txt"');

    // The fake reads the same TOML and prints kohya's "override steps" line with its own count.
    await mkdir(plan.workDir, { recursive: true });
    await writeFile(plan.configFile.path, plan.configFile.content);
    const run = spawnSync('python3', plan.command.args, {
      cwd: plan.command.cwd,
      encoding: 'utf8',
      env: { ...process.env, FAKE_TRAINER: JSON.stringify({ fail: 'crash', failAtStep: 1, stepMs: 0 }) },
    });
    expect(run.stdout).toContain(`指定エポックまでのステップ数: ${plan.totalSteps}`);
    expect(run.stdout).toContain(`1epochのバッチ数: ${plan.batchesPerEpoch}`);
  });

  it('presets: NoobAI adds v-prediction flags; LoRA+ goes through network_args; no flags kohya rejects', async () => {
    const noob = await planTraining({
      datasetDir: dataset,
      base: 'noobai',
      trigger: 'ohwx',
      workDir: join(dir, 'w2'),
    });
    const illu = await planTraining({
      datasetDir: dataset,
      base: 'illustrious',
      trigger: 'ohwx',
      workDir: join(dir, 'w3'),
    });
    expect(noob.command.args).toEqual(
      expect.arrayContaining(['--v_parameterization', '--zero_terminal_snr', '--console_log_simple']),
    );
    expect(illu.command.args).not.toContain('--v_parameterization');
    const at = (flag: string) => illu.command.args[illu.command.args.indexOf(flag) + 1];
    expect([
      at('--network_dim'),
      at('--network_alpha'),
      at('--network_args'),
      at('--optimizer_type'),
    ]).toEqual(['128', '64', 'loraplus_lr_ratio=16', 'AdamW8bit']);
    expect([
      at('--gradient_accumulation_steps'),
      at('--save_every_n_epochs'),
      at('--loss_type'),
      at('--huber_schedule'),
    ]).toEqual(['4', '2', 'smooth_l1', 'snr']);
    expect(illu.command.args.join(' ')).not.toMatch(/fused_backward_pass|text_encoder_lr1|--loraplus/);

    const flux = await planTraining({
      datasetDir: dataset,
      base: 'flux',
      trigger: 'ohwx',
      workDir: join(dir, 'w4'),
    });
    expect(flux.trainer).toBe('ai-toolkit');
    expect(flux.configFile.content).toMatch(/quantize: true\n\s+low_vram: true/);
    expect(flux.configFile.content).toContain('lr: 0.0004');
    // Every checkpoint kept for the evaluation grid.
    const keep = Number(/max_step_saves_to_keep: (\d+)/.exec(flux.configFile.content)?.[1]);
    expect(keep).toBeGreaterThanOrEqual(flux.checkpointsAt.length);
  });

  it('`comicmaster train plan --json` prints the plan without running anything', async () => {
    const lines: string[] = [];
    const original = console.log;
    console.log = (text: string) => void lines.push(text);
    try {
      await main([
        'node',
        'comicmaster',
        'train',
        'plan',
        dataset,
        '--base',
        'illustrious',
        '--trigger',
        'ohwx',
        '--json',
        '--work-dir',
        join(dir, 'w5'),
      ]);
    } finally {
      console.log = original;
    }
    const plan = JSON.parse(lines.join('\n')) as {
      totalSteps: number;
      configFile: { content: string };
      command: { args: string[] };
    };
    expect(plan.totalSteps).toBeGreaterThanOrEqual(1_500);
    expect(plan.command.args).toContain('--dataset_config');
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'w5'))).toBe(false);
  });
});

describe('trainer output parsing', () => {
  it('reads kohya tqdm updates split by \\r across chunks, epochs and saves', () => {
    const parser = new TrainerOutputParser({ progressDescription: 'steps' });
    const events = [
      ...parser.push(
        'stderr',
        '\rsteps:   0%|          | 0/1500 [00:00<?, ?it/s]\rsteps:  12%|█▏        | 180/1500 [03:45<27:30,  1.25s/it, avr_',
      ),
      ...parser.push(
        'stderr',
        'loss=0.0765]\rsteps:  45%|████▌     | 9000/20000 [1:06:40<1:21:28,  2.25it/s, avr_loss=0.1]   \r',
      ),
      ...parser.push('stdout', '\nepoch 3/10\n\nsaving checkpoint: out/mylora-000002.safetensors\n'),
    ];
    expect(events).toEqual([
      { type: 'progress', step: 0, totalSteps: 1500, loss: null, etaSeconds: null },
      { type: 'progress', step: 180, totalSteps: 1500, loss: 0.0765, etaSeconds: 1650 },
      { type: 'progress', step: 9000, totalSteps: 20000, loss: 0.1, etaSeconds: 4888 },
      { type: 'epoch', epoch: 3, totalEpochs: 10 },
      { type: 'checkpoint', path: 'out/mylora-000002.safetensors' },
    ]);
  });

  it('reads ai-toolkit progress and saves, and ignores other bars', () => {
    const parser = new TrainerOutputParser({ progressDescription: 'my_lora' });
    const events = parser.push(
      'stderr',
      'Caching latents to disk: 100%|██████████| 20/20 [00:05<00:00,  3.80it/s]\rmy_lora:  12%|█▏        | 240/2000 [08:24<1:01:35,  2.10s/it, lr: 1.0e-04 loss: 4.123e-01]\nSaved checkpoint to output/my_lora/my_lora_000000250.safetensors\n',
    );
    expect(events).toEqual([
      { type: 'progress', step: 240, totalSteps: 2000, loss: 0.4123, etaSeconds: 3695 },
      { type: 'checkpoint', path: 'output/my_lora/my_lora_000000250.safetensors' },
    ]);
  });
});
