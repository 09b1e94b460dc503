/**
 * `/train style` through the real bot against the fake Discord, with real PostgreSQL and Redis: who
 * may train, the dataset report (refusals with reasons, "N more needed"), the trainings row, the
 * stored dataset and the queued `train` job; then the training's one status message as the runner
 * would move it (progress rows + post jobs), edited in place, with a loss chart PNG at a checkpoint.
 * No runner consumes the train queue here: the job is asserted where it waits.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BotHandle } from '../src/bot/bot.ts';
import type { Database } from '../src/db/client.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { checkpoints, guildSettings, trainings, type Training } from '../src/db/schema.ts';
import type { ArtifactStore } from '../src/store/index.ts';
import { snowflake, type FakeDiscord, type FakeUpload, type SlashCommandInput } from './fakes/discord.ts';
import { trainingPicture } from './fixtures/dataset/build.ts';
import { commandReply, startBotHarness, type BotHarness } from './helpers/bot.ts';

const TRAINER_ROLE = snowflake();
let harness: BotHarness;
let dataDir: string;
let database: Database;
let fake: FakeDiscord;
let store: ArtifactStore;
let bot: BotHandle;

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'train-discord',
    discord: {
      guilds: [
        {
          roles: [{ id: TRAINER_ROLE, name: 'trainers', permissions: 0n }],
          members: [{ username: 'owner' }, { username: 'alice', roles: [TRAINER_ROLE] }, { username: 'bob' }],
        },
      ],
    },
    bot: { statusIntervalMs: 200, cpuWorkers: false },
  });
  ({ dataDir, database, fake, store, bot } = harness);
  await getGuildSettings(database.db, fake.guild.id);
  await database.db
    .update(guildSettings)
    .set({ trainerRoleId: TRAINER_ROLE })
    .where(eq(guildSettings.guildId, fake.guild.id));
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

async function pictures(from: number, count: number): Promise<Buffer[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => trainingPicture(from + i)));
}

function png(name: string, bytes: Buffer): FakeUpload {
  return { filename: name, bytes, contentType: 'image/png' };
}

/** Runs a command and resolves with what the member finally sees (a deferred reply's last edit). */
function run(
  input: SlashCommandInput,
  done: (content: string) => boolean = () => true,
): Promise<{ content: string; ephemeral: boolean }> {
  return commandReply(fake, input, { settled: done, timeoutMs: 60_000 });
}

/** A deferred /train style is finished when its reply is no longer a progress line. */
const settled = (content: string) => content !== '' && !content.startsWith('📥') && !content.startsWith('🔎');

async function trainingRows(): Promise<Training[]> {
  return database.db.select().from(trainings);
}

async function trainJobs() {
  return bot.deps.producer.queue('train').getJobs(['waiting', 'prioritized', 'delayed', 'active']);
}

const style = (
  options: Record<string, string | number | boolean>,
  attachments?: Record<string, FakeUpload>,
  user = 'alice',
): SlashCommandInput => ({
  name: 'train',
  subcommand: 'style',
  userId: fake.user(user).id,
  options: { name: 'Ink Wash', trigger: 'inkwash', base: 'illustrious', ...options },
  ...(attachments ? { attachments } : {}),
});

describe('/train style', () => {
  it('refuses a member without the trainer role or Manage Server, privately, with nothing queued', async () => {
    const [image] = await pictures(1, 1);
    const reply = await run(style({}, { image1: png('a.png', image!) }, 'bob'));
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain(`<@&${TRAINER_ROLE}>`);
    expect(reply.content).toContain('Manage Server');
    expect(await trainingRows()).toHaveLength(0);
    expect(await trainJobs()).toHaveLength(0);
  });

  it('refuses a bad trigger word, naming the option', async () => {
    const [image] = await pictures(1, 1);
    const reply = await run(style({ trigger: 'two words' }, { image1: png('a.png', image!) }));
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain('trigger');
    expect(await trainingRows()).toHaveLength(0);
  });

  it('refuses too few images, saying how many more are needed, and queues nothing', async () => {
    const images = await pictures(10, 3);
    const reply = await run(
      style(
        {},
        {
          image1: png('one.png', images[0]!),
          image2: png('two.png', images[1]!),
          image3: png('three.png', images[2]!),
        },
      ),
      settled,
    );
    expect(reply.content).toContain('Not queued');
    expect(reply.content).toContain('Add 17 more');
    expect(await trainingRows()).toHaveLength(0);
    expect(await trainJobs()).toHaveLength(0);
  });

  it("takes the channel's recent images with from_channel (and still counts what is missing)", async () => {
    const images = await pictures(20, 4);
    fake.postUserMessage({
      userId: fake.user('bob').id,
      content: 'my sketches',
      files: images.slice(0, 2).map((b, i) => png(`sketch-${i}.png`, b)),
    });
    fake.postUserMessage({
      userId: fake.user('owner').id,
      files: images.slice(2).map((b, i) => png(`ink-${i}.png`, b)),
    });
    const reply = await run(style({ from_channel: 10 }), settled);
    expect(reply.content).toContain('4 usable');
    expect(reply.content).toContain('Add 16 more');
    expect(await trainJobs()).toHaveLength(0);
  });

  it('refuses a hostile zip with a reason for every entry, writing nothing outside the dataset', async () => {
    const [image] = await pictures(30, 1);
    const archive = zipSync({
      '../evil.png': image!,
      '/etc/cron.png': image!,
      'notes.png': new TextEncoder().encode('this is not a picture at all, just text with a .png name'),
      'ok.png': image!,
    });
    const reply = await run(
      style(
        {},
        { zip: { filename: 'set.zip', bytes: Buffer.from(archive), contentType: 'application/zip' } },
      ),
      settled,
    );
    expect(reply.content).toContain('Not queued');
    expect(reply.content).toMatch(/set\.zip:\.\.\/evil\.png`: refused: an unsafe path/);
    expect(reply.content).toMatch(/set\.zip:\/etc\/cron\.png`: refused: an unsafe path/);
    expect(reply.content).toMatch(/set\.zip:notes\.png`: not an image/);
    expect(reply.content).toContain('Add 19 more');
    expect(existsSync(join(dataDir, 'tmp', 'evil.png'))).toBe(false);
    expect(existsSync(join(dataDir, 'evil.png'))).toBe(false);
    expect(await trainingRows()).toHaveLength(0);
  });

  it('prepares a good set, stores it, creates the training and queues it, with the report and the plan', async () => {
    const images = await pictures(100, 22);
    const archive = zipSync(
      Object.fromEntries(images.slice(0, 20).map((b, i) => [`style/${String(i).padStart(2, '0')}.png`, b])),
    );
    const reply = await run(
      style(
        {},
        {
          zip: { filename: 'ink.zip', bytes: Buffer.from(archive), contentType: 'application/zip' },
          image1: png('extra-1.png', images[20]!),
          image2: png('extra-2.png', images[21]!),
          image3: {
            filename: 'readme.png',
            bytes: Buffer.from('plain text, not an image'),
            contentType: 'image/png',
          },
          image4: png('again.png', images[3]!),
        },
      ),
      settled,
    );
    expect(reply.ephemeral).toBe(false);
    expect(reply.content).toContain('is queued for training');
    expect(reply.content).toContain('22 images prepared');
    expect(reply.content).toMatch(/readme\.png`: not an image/);
    expect(reply.content).toMatch(/again\.png`: a duplicate/);
    // Under the recommended 50: a warning, not a refusal.
    expect(reply.content).toContain('50 or more');
    expect(reply.content).toMatch(/Plan: \d+ steps/);

    const [training] = await trainingRows();
    expect(training).toMatchObject({
      name: 'Ink Wash',
      trigger: 'inkwash',
      modelFamily: 'illustrious',
      status: 'queued',
      kind: 'style',
    });
    expect(reply.content).toContain(training!.id);
    expect(training!.config).toMatchObject({
      base: 'illustrious',
      dataset: { images: 22, captionExtension: '.txt' },
    });
    const stored = await store.list(training!.datasetKey!);
    expect(stored.filter((k) => k.endsWith('.png') && !k.includes('/.lowres/'))).toHaveLength(22);
    // These small pictures were enlarged; their originals travel along so the runner can upscale them
    // with a model instead of the plain resize.
    expect(stored.filter((k) => k.includes('/.lowres/') && k.endsWith('.png'))).toHaveLength(22);
    expect(stored.filter((k) => k.endsWith('.txt'))).toHaveLength(22);
    const caption = (await store.getBuffer(stored.find((k) => k.endsWith('.txt'))!)).toString('utf8');
    expect(caption.trim().startsWith('inkwash')).toBe(true);

    const jobs = await trainJobs();
    expect(jobs.map((j) => j.data)).toEqual([{ trainingId: training!.id }]);

    // The status message appears in the channel, waiting for the GPU.
    const status = await fake.waitFor(() => {
      const row = fake.messages().find((m) => m.content.includes(`training \`${training!.id}\``));
      return row?.content.includes('Waiting for the GPU') ? row : undefined;
    });
    expect(status.content).toContain('position 1');
  }, 120_000);

  it('refuses a second training while one is active', async () => {
    const [image] = await pictures(300, 1);
    const reply = await run(style({ name: 'Other' }, { image1: png('x.png', image!) }), settled);
    expect(reply.content).toContain('still training');
    expect(await trainingRows()).toHaveLength(1);
  });
});

/** Polls until `check` holds; the test's own timeout bounds it. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('training progress in Discord', () => {
  async function theTraining(): Promise<Training> {
    const [row] = await trainingRows();
    return row!;
  }

  async function report(
    progress: { step: number; epoch: number; loss: number },
    status: Training['status'] = 'training',
  ) {
    const training = await theTraining();
    await database.db
      .update(trainings)
      .set({
        status,
        progress: { ...progress, totalSteps: 400, totalEpochs: 4, etaSeconds: (400 - progress.step) * 2 },
      })
      .where(eq(trainings.id, training.id));
    await bot.deps.producer.enqueue('post', { kind: 'training-status', trainingId: training.id });
  }

  it('edits one status message with bar, epoch, step, loss and ETA, and attaches a loss chart at a checkpoint', async () => {
    const training = await theTraining();
    for (let step = 10; step <= 100; step += 10) {
      await report({ step, epoch: 1, loss: 0.15 - step * 0.0004 });
      // Let the reading land (the bot records each one it sees) before the next.
      await until(async () => (await theTraining()).lossHistory.at(-1)?.step === step);
    }
    const updated = await fake.waitFor(() => {
      const message =
        fake.message(training.statusMessageId ?? '') ??
        fake.messages().find((m) => m.content.includes(training.id));
      return message?.content.includes('step 100/400') ? message : undefined;
    });
    expect(updated.content).toContain('epoch 1/4');
    expect(updated.content).toContain('loss 0.11');
    expect(updated.content).toMatch(/`█{3}░{9}` 25%/);
    expect(updated.content).toContain('ETA ~10 min');
    expect(updated.attachments).toHaveLength(0);

    // The runner saves the first epoch's checkpoint and reports the next step.
    await database.db.insert(checkpoints).values({
      trainingId: training.id,
      epoch: 1,
      step: 100,
      artifactKey: `trainings/${training.id}/checkpoints/e1.safetensors`,
    });
    await report({ step: 110, epoch: 2, loss: 0.105 });
    const withChart = await fake.waitFor(() => {
      const message = fake.message(updated.id);
      return message?.attachments.length === 1 && message.content.includes('step 110/400')
        ? message
        : undefined;
    });
    expect(withChart.content).toContain('Checkpoints saved: 1 (epoch 1)');
    const chart = withChart.attachments[0]!;
    expect(chart.filename).toMatch(/\.png$/);
    const meta = await sharp(chart.bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 960, 480]);
    const stats = await sharp(chart.bytes).stats();
    expect(stats.channels.every((c) => c.stdev > 5)).toBe(true);

    // Still one status message for the training, edited in place.
    expect(fake.messages().filter((m) => m.content.includes(`training \`${training.id}\``))).toHaveLength(1);
    const row = await theTraining();
    expect(row.statusMessageId).toBe(updated.id);
    expect(row.lossHistory.length).toBeGreaterThanOrEqual(2);
    expect(row.lossHistory.at(-1)).toEqual({ step: 110, epoch: 2, loss: 0.105 });
  }, 60_000);

  it('tells the owner why a training failed, with the advice, and marks the status', async () => {
    const training = await theTraining();
    await database.db.update(trainings).set({ status: 'failed' }).where(eq(trainings.id, training.id));
    const advice =
      'The GPU ran out of memory. Try again with fewer images at a time or close other GPU work.';
    await bot.deps.producer.enqueue('post', {
      kind: 'training-failed',
      trainingId: training.id,
      userMessage: advice,
    });
    const ping = await fake.waitFor(() =>
      fake.messages().find((m) => m.content.startsWith(`<@${training.userId}>`)),
    );
    expect(ping.content).toContain(advice);
    const status = await fake.waitFor(() => {
      const message = fake.message(training.statusMessageId!);
      return message?.content.includes('❌') ? message : undefined;
    });
    expect(status.content).toContain(`Reason: ${advice}`);
    // The chart stays on the message.
    expect(status.attachments).toHaveLength(1);
  });
});

describe('following the runner through the train queue', () => {
  it("turns a train job's progress reports into the training's status message and loss history", async () => {
    const [training] = await database.db
      .insert(trainings)
      .values({
        guildId: fake.guild.id,
        channelId: fake.channelId,
        userId: fake.user('owner').id,
        kind: 'style',
        name: 'Charcoal',
        trigger: 'charc',
        modelFamily: 'noobai',
        baseModel: 'noobaiXLVpred_v10.safetensors',
        config: {},
        status: 'training',
        progress: { step: 40, totalSteps: 200, epoch: 1, totalEpochs: 2, loss: 0.09, etaSeconds: 320 },
      })
      .returning();
    const id = training!.id;
    const job = await bot.deps.producer.enqueue('train', { trainingId: id }, { jobId: `train-${id}` });
    // What the runner's train worker reports through the job as it trains.
    await job.updateProgress({
      trainingId: id,
      step: 40,
      totalSteps: 200,
      epoch: 1,
      totalEpochs: 2,
      loss: 0.09,
      etaSeconds: 320,
    });
    const status = await fake.waitFor(() =>
      fake
        .messages()
        .find((m) => m.content.includes(`training \`${id}\``) && m.content.includes('step 40/200')),
    );
    expect(status.content).toContain('loss 0.0900');
    expect(status.content).toContain('ETA ~5 min');
    await until(async () => {
      const [row] = await database.db.select().from(trainings).where(eq(trainings.id, id));
      return row!.lossHistory.some((p) => p.step === 40 && p.loss === 0.09);
    });
    await job.remove();
    await database.db.update(trainings).set({ status: 'cancelled' }).where(eq(trainings.id, id));
  });
});

describe('/train status and /train cancel', () => {
  it('shows the latest training, and lets only the owner, the trainer role or Manage Server cancel', async () => {
    // A fresh queued training by alice (the earlier one failed).
    const [training] = await database.db
      .insert(trainings)
      .values({
        guildId: fake.guild.id,
        channelId: fake.channelId,
        userId: fake.user('alice').id,
        kind: 'style',
        name: 'Pastel',
        trigger: 'pastelz',
        modelFamily: 'flux',
        baseModel: 'flux1-dev.safetensors',
        config: {},
        status: 'queued',
      })
      .returning();
    await bot.deps.producer.enqueue(
      'train',
      { trainingId: training!.id },
      { jobId: `train-${training!.id}` },
    );

    const shown = await run({ name: 'train', subcommand: 'status', userId: fake.user('bob').id });
    expect(shown.ephemeral).toBe(true);
    expect(shown.content).toContain('Pastel');
    expect(shown.content).toContain('Waiting for the GPU');

    const refused = await run({
      name: 'train',
      subcommand: 'cancel',
      userId: fake.user('bob').id,
      options: { id: training!.id },
    });
    expect(refused.ephemeral).toBe(true);
    expect(refused.content).toContain('Only the member who started');
    expect(
      (await database.db.select().from(trainings).where(eq(trainings.id, training!.id)))[0]!.status,
    ).toBe('queued');

    const cancelled = await run(
      { name: 'train', subcommand: 'cancel', userId: fake.user('alice').id, options: { id: training!.id } },
      (c) => c !== '',
    );
    expect(cancelled.content).toContain('cancelled');
    expect(
      (await database.db.select().from(trainings).where(eq(trainings.id, training!.id)))[0]!.status,
    ).toBe('cancelled');
    expect(await bot.deps.producer.queue('train').getJob(`train-${training!.id}`)).toBeUndefined();
    const status = await fake.waitFor(() =>
      fake.messages().find((m) => m.content.includes(training!.id) && m.content.includes('Cancelled')),
    );
    expect(status).toBeDefined();
  });

  it('lets Manage Server set the trainer role, and nobody else', async () => {
    const other = snowflake();
    const refused = await run({
      name: 'train',
      subcommand: 'role',
      userId: fake.user('alice').id,
      options: { role: other },
    });
    expect(refused.content).toContain('Manage Server');
    const set = await run({
      name: 'train',
      subcommand: 'role',
      userId: fake.user('owner').id,
      options: { role: TRAINER_ROLE },
    });
    expect(set.ephemeral).toBe(true);
    expect(set.content).toContain(TRAINER_ROLE);
    expect((await getGuildSettings(database.db, fake.guild.id)).trainerRoleId).toBe(TRAINER_ROLE);
  });
});
