/**
 * Sample images while training, end to end: the runner's train worker runs the fake kohya and
 * ai-toolkit trainers (which honour --sample_prompts / the `sample:` section like the real ones), the
 * samples land in the artifact store under the trainers' own names, and the real bot (fake Discord)
 * attaches the newest ones to the training's one status message next to the loss chart.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrainingProgress } from '../src/db/json.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { guildSettings, trainings, type Training } from '../src/db/schema.ts';
import { startTrainWorker, type TrainWorker } from '../src/gpu/train-worker.ts';
import type { FakeDiscord } from './fakes/discord.ts';
import { startBotHarness, type BotHarness } from './helpers/bot.ts';
import { settledJob } from './helpers/redis.ts';
import { formatPlan, planTraining } from '../src/training/plan.ts';

const FAKES = join(import.meta.dirname, 'fakes', 'trainer');
const SCENES = ['a lighthouse in a storm, waves crashing', 'a detective in a rainy alley, neon signs'];

let harness: BotHarness;
let fake: FakeDiscord;
let worker: TrainWorker;
let trainQueue: Queue;
let pictures: Buffer[];

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'train-samples',
    env: () => ({
      TRAINER_PYTHON: 'python3',
      SD_SCRIPTS_DIR: join(FAKES, 'sd-scripts'),
      AI_TOOLKIT_DIR: join(FAKES, 'ai-toolkit'),
    }),
    bot: { statusIntervalMs: 100, cpuWorkers: false },
  });
  fake = harness.fake;
  // The guild's own test scenes: the samples draw the first two, led by the trigger.
  await getGuildSettings(harness.database.db, fake.guild.id);
  await harness.database.db
    .update(guildSettings)
    .set({ testPrompts: [...SCENES, 'a third scene that is not sampled'] })
    .where(eq(guildSettings.guildId, fake.guild.id));
  worker = startTrainWorker({
    connection: harness.connection,
    db: harness.database.db,
    store: harness.store,
    producer: harness.bot.deps.producer,
    runnerId: 'samples-runner',
    config: harness.config,
    logger: harness.logger,
    progressIntervalMs: 20,
    cancelPollMs: 50,
    stopGraceMs: 2_000,
  });
  trainQueue = new Queue('train', {
    connection: harness.connection.options('worker'),
    prefix: harness.connection.prefix,
  });
  pictures = await Promise.all(
    [
      [64, 96],
      [96, 64],
      [80, 80],
    ].map(([width, height]) =>
      sharp({ create: { width: width!, height: height!, channels: 3, background: '#3a6' } })
        .png()
        .toBuffer(),
    ),
  );
}, 120_000);

afterAll(async () => {
  await worker?.close();
  await trainQueue?.close();
  await harness?.close();
});

/** A queued training with its dataset in the store, trained by the worker; resolves when its job settles. */
async function trainToEnd(base: 'illustrious' | 'flux', config: Record<string, unknown>): Promise<Training> {
  const { db } = harness.database;
  const [row] = await db
    .insert(trainings)
    .values({
      guildId: fake.guild.id,
      channelId: fake.channelId,
      userId: fake.user('owner').id,
      kind: 'style',
      name: base === 'flux' ? 'Neon' : 'Ink',
      trigger: 'ohwx',
      modelFamily: base,
      baseModel: base === 'flux' ? 'black-forest-labs/FLUX.1-dev' : 'illustriousXL_v01.safetensors',
      config,
      status: 'queued',
    })
    .returning();
  const id = row!.id;
  const datasetKey = `trainings/${id}/dataset`;
  for (let i = 1; i <= 20; i++) {
    const stem = String(i).padStart(4, '0');
    await harness.store.put(`${datasetKey}/10_ohwx/${stem}.png`, pictures[i % 3]!);
    await harness.store.put(`${datasetKey}/10_ohwx/${stem}.txt`, Buffer.from('ohwx, 1girl\n'));
  }
  await db.update(trainings).set({ datasetKey }).where(eq(trainings.id, id));
  const job = await harness.bot.deps.producer.enqueue('train', { trainingId: id });
  const done = await settledJob(trainQueue, job.id);
  expect(done.failedReason).toBeUndefined();
  const [trained] = await db.select().from(trainings).where(eq(trainings.id, id));
  return trained!;
}

async function sampleKeys(trainingId: string): Promise<string[]> {
  return harness.store.list(`trainings/${trainingId}/samples/`);
}

async function sizeOf(bytes: Buffer): Promise<[string | undefined, number | undefined, number | undefined]> {
  const meta = await sharp(bytes).metadata();
  return [meta.format, meta.width, meta.height];
}

describe('sample images with kohya', () => {
  let training: Training;

  beforeAll(async () => {
    training = await trainToEnd('illustrious', { repeats: 1, epochs: 4 });
  }, 120_000);

  it("stores each checkpoint's samples under kohya's names, drawn from the guild's scenes", async () => {
    expect(training.status).toBe('evaluating');
    const names = (await sampleKeys(training.id)).map((k) => k.split('/').at(-1)!);
    // Checkpoints at epochs 2 and 4 (the final one): two prompts each, seed 42 in the name (--d).
    expect(names).toHaveLength(4);
    for (const epoch of [2, 4])
      for (const index of [0, 1])
        expect(
          names.some((n) => new RegExp(`^ohwx_e00000${epoch}_0${index}_\\d{14}_42\\.png$`).test(n)),
        ).toBe(true);
    for (const key of await sampleKeys(training.id))
      expect(await sizeOf(await harness.store.getBuffer(key))).toEqual(['png', 768, 768]);

    // What the trainer was asked to draw: the guild's first two scenes, led by the trigger.
    const log = await readFile(join(harness.dataDir, 'trainings', training.id, 'trainer.log'), 'utf8');
    expect(log).toContain(`prompt: ohwx, ${SCENES[0]}`);
    expect(log).toContain(`prompt: ohwx, ${SCENES[1]}`);
    expect(log).not.toContain('a third scene');
    const promptFile = await readFile(
      join(harness.dataDir, 'trainings', training.id, 'sample_prompts.txt'),
      'utf8',
    );
    expect(promptFile.trim().split('\n')[0]).toMatch(
      new RegExp(`^ohwx, ${SCENES[0]} --n .+ --w 768 --h 768 --s \\d+ --l [\\d.]+ --d 42$`),
    );

    // The row names the newest set, for the bot.
    const progress = TrainingProgress.parse(training.progress);
    const stepsAt4 = progress.totalSteps;
    expect(progress.samples?.map((s) => [s.epoch, s.step, s.index])).toEqual([
      [4, stepsAt4, 0],
      [4, stepsAt4, 1],
    ]);
    expect(
      progress.samples?.every((s) => s.key.startsWith(`trainings/${training.id}/samples/ohwx_e000004_`)),
    ).toBe(true);
  });

  it('shows the newest samples on the one status message, next to the loss chart', async () => {
    const progress = TrainingProgress.parse(training.progress);
    const message = await fake.waitFor(() => {
      const found = fake
        .messages()
        .find((m) => m.content.includes(`training \`${training.id}\``) && m.content.includes('🖼️'));
      return found &&
        found.attachments.length === 3 &&
        found.content.includes(`from step ${progress.totalSteps}`)
        ? found
        : undefined;
    });
    expect(fake.messages().filter((m) => m.content.includes(`training \`${training.id}\``))).toHaveLength(1);
    const [chart, ...samples] = message.attachments;
    expect(chart!.filename).toMatch(/^loss-.*\.png$/);
    expect(samples.map((a) => a.filename)).toEqual([
      `sample-step${progress.totalSteps}-1.png`,
      `sample-step${progress.totalSteps}-2.png`,
    ]);
    for (const [i, attachment] of samples.entries()) {
      expect(attachment.bytes.equals(await harness.store.getBuffer(progress.samples![i]!.key))).toBe(true);
      expect(await sizeOf(attachment.bytes)).toEqual(['png', 768, 768]);
    }
    const [row] = await harness.database.db.select().from(trainings).where(eq(trainings.id, training.id));
    expect(row!.sampleStep).toBe(progress.totalSteps);
  });
});

describe('sample images with ai-toolkit', () => {
  it("stores each save's samples under ai-toolkit's names, with no baseline at step 0", async () => {
    const training = await trainToEnd('flux', { steps: 30, saveEverySteps: 10 });
    expect(training.status).toBe('evaluating');
    const names = (await sampleKeys(training.id)).map((k) => k.split('/').at(-1)!);
    const steps = names.map((n) => {
      const m = /^\d+__(\d{9})_(\d)\.jpg$/.exec(n);
      return m ? `${m[1]}_${m[2]}` : n;
    });
    expect(steps.sort()).toEqual([
      '000000010_0',
      '000000010_1',
      '000000020_0',
      '000000020_1',
      '000000030_0',
      '000000030_1',
    ]);
    for (const key of await sampleKeys(training.id))
      expect(await sizeOf(await harness.store.getBuffer(key))).toEqual(['jpeg', 768, 768]);
    const progress = TrainingProgress.parse(training.progress);
    expect(progress.samples?.map((s) => [s.epoch, s.step, s.index])).toEqual([
      [3, 30, 0],
      [3, 30, 1],
    ]);
    const config = await readFile(join(harness.dataDir, 'trainings', training.id, 'config.yaml'), 'utf8');
    expect(config).toContain(`ohwx, ${SCENES[0]}`);
    expect(config).toContain('walk_seed: false');
  }, 120_000);
});

describe('train plan', () => {
  it('shows the sample images and their prompt file', async () => {
    const plan = await planTraining({
      datasetDir: join(
        harness.dataDir,
        'trainings',
        (await harness.database.db.select().from(trainings))[0]!.id,
        'dataset',
      ),
      base: 'noobai',
      trigger: 'ohwx',
      workDir: join(harness.dataDir, 'plan-only'),
    });
    const text = formatPlan(plan);
    expect(text).toContain('Samples: 2 images at each checkpoint (768×768');
    expect(text).toContain('sample_prompts.txt');
    expect(plan.command.args).toEqual(
      expect.arrayContaining(['--sample_every_n_epochs', '--sample_prompts']),
    );
    // Without the guild's scenes: the first two built-in ones.
    expect(plan.samples.prompts[0]).toMatch(/^ohwx, a hero standing on a rooftop/);
  });
});
