/**
 * A training's evaluation and vote end to end: the real bot (runBot) and GPU runner (runRunner with the
 * storyboard renderer) against the fake Discord, real PostgreSQL and Redis. Checkpoint rows and their
 * files are put in place as the trainer would leave them; the `evaluate` job does the rest: grids
 * posted (each under the upload limit, labels legible to OCR), the overview and measures, a vote
 * message with one button per checkpoint; members vote (one changes, one clicks twice); `/vote close`
 * registers the style; a `/comic new style:` then renders with its LoRA, trigger and strength.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.ts';
import { getGuildSettings } from '../src/db/guild-settings.ts';
import { castVote } from '../src/db/votes.ts';
import { checkpoints, comics, guildSettings, renders, styles, trainings } from '../src/db/schema.ts';
import { runRunner, type RunnerHandle } from '../src/gpu/runner.ts';
import { JobProducer, QUEUE_NAMES } from '../src/queue/index.ts';
import type { ArtifactStore } from '../src/store/index.ts';
import type { FakeDiscord, FakeMessage } from './fakes/discord.ts';
import { startBotHarness, type BotHarness } from './helpers/bot.ts';

const UPLOAD_LIMIT = 10 * 1024 * 1024;

let harness: BotHarness;
let dataDir: string;
let database: Database;
let fake: FakeDiscord;
let producer: JobProducer;
let store: ArtifactStore;
let runner: RunnerHandle | undefined;

beforeAll(async () => {
  harness = await startBotHarness({
    label: 'evaluation-e2e',
    discord: {
      guilds: [{ channels: [{ name: 'styles' }, { name: 'comics' }] }],
      uploadLimitBytes: UPLOAD_LIMIT,
    },
    env: () => ({ RUNNER_ID: 'gpu-eval' }),
    bot: { statusIntervalMs: 300 },
  });
  ({ dataDir, database, fake, store } = harness);
  const { config, connection, logger } = harness;
  producer = new JobProducer(connection, { logger });
  runner = await runRunner(config, {
    logger,
    connection,
    store,
    handleSignals: false,
    heartbeatIntervalMs: 500,
    evaluation: { renderSize: 256, gridCellSize: 256, overviewCellSize: 64 },
  });
}, 120_000);

afterAll(async () => {
  await runner?.stop();
  await producer?.close();
  await harness?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(
  what: () => Promise<T | undefined | null | false> | T | undefined | null | false,
): Promise<T> {
  for (;;) {
    const value = await what();
    if (value) return value;
    await sleep(50);
  }
}

async function settled(): Promise<void> {
  for (;;) {
    let busy = 0;
    for (const name of QUEUE_NAMES) {
      const counts = await producer
        .queue(name)
        .getJobCounts('waiting', 'active', 'prioritized', 'waiting-children');
      busy += Object.values(counts).reduce((a, b) => a + b, 0);
    }
    if (busy === 0) return;
    await sleep(50);
  }
}

/** A file shaped like a .safetensors: 8-byte little-endian header length, a JSON header, the tensors. */
function fakeSafetensors(epoch: number): Buffer {
  const header = Buffer.from(JSON.stringify({ __metadata__: { ss_epoch: String(epoch) } }));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([size, header, Buffer.alloc(64, epoch)]);
}

const channelId = (name: string) => fake.guild.channels.find((c) => c.name === name)!.id;
const member = (name: string) => fake.guild.members.find((m) => m.user.username === name)!.user.id;
const botMessages = (channel: string): FakeMessage[] =>
  fake
    .messages(channel)
    .filter((m) => m.author.id === fake.botUser.id && m.interactionId === null && !m.webhookId);

interface Button {
  custom_id: string;
  label: string;
  disabled?: boolean;
}
const buttonsOf = (message: FakeMessage): Button[] =>
  (message.components as { components: Button[] }[]).flatMap((row) => row.components);

async function ocr(image: Buffer): Promise<string> {
  const file = join(dataDir, `ocr-${Date.now()}.png`);
  // Upscaled greyscale: tesseract reads 18 px labels far better at twice the size.
  await writeFile(
    file,
    await sharp(image)
      .greyscale()
      .resize({ width: (await sharp(image).metadata()).width! * 2 })
      .png()
      .toBuffer(),
  );
  const { stdout } = await promisify(execFile)('tesseract', [file, 'stdout', '--psm', '11'], {
    timeout: 60_000,
  });
  return stdout;
}

describe('evaluation → vote → style', () => {
  it('posts grids under the upload limit, takes votes, closes, and /comic new renders with the style', async () => {
    const styles_ = channelId('styles');
    const guildId = fake.guild.id;
    await getGuildSettings(database.db, guildId);
    await database.db
      .update(guildSettings)
      .set({ blindVotes: true, voteMinutes: 60 })
      .where(eq(guildSettings.guildId, guildId));

    const [training] = await database.db
      .insert(trainings)
      .values({
        guildId,
        channelId: styles_,
        userId: member('owner'),
        kind: 'style',
        name: 'inkwash',
        trigger: 'inkwash',
        modelFamily: 'illustrious',
        baseModel: 'illustriousXL_v01.safetensors',
        config: { preset: 'illustrious-24gb', epochs: 3, repeats: 10 },
        status: 'training',
      })
      .returning();
    const trainingId = training!.id;
    for (const epoch of [1, 2, 3]) {
      const key = `trainings/${trainingId}/checkpoints/inkwash-e${epoch}.safetensors`;
      await store.put(key, fakeSafetensors(epoch));
      await database.db
        .insert(checkpoints)
        .values({ trainingId, epoch, step: epoch * 100, artifactKey: key });
    }

    await producer.enqueue('evaluate', { trainingId }, { jobId: `evaluate-${trainingId}` });
    const voteMessageId = await until(
      async () =>
        (await database.db.select().from(trainings).where(eq(trainings.id, trainingId)))[0]?.voteMessageId,
    );
    await settled();

    // Grids: one per test prompt (4 built-in), each file under the upload limit, labels readable.
    const grids = botMessages(styles_).filter((m) => m.content.includes('evaluation grid'));
    expect(grids).toHaveLength(4);
    for (const grid of grids) {
      expect(grid.attachments).toHaveLength(1);
      expect(grid.attachments[0]!.bytes.length).toBeLessThanOrEqual(UPLOAD_LIMIT);
    }
    const first = grids[0]!.attachments[0]!.bytes;
    const meta = await sharp(first).metadata();
    // 3 checkpoint rows and 5 columns (baseline + 4 strengths) of 256 px cells, plus the label margins.
    expect(meta.width).toBeGreaterThan(5 * 256);
    expect(meta.height).toBeGreaterThan(3 * 256);
    const text = await ocr(first);
    expect(text).toMatch(/strength/i);
    expect(text).toMatch(/LoRA/);

    const summary = botMessages(styles_).find((m) => m.content.includes('evaluation done'))!;
    expect(summary.attachments).toHaveLength(2);

    // The vote: blind labels A, B, C, one button each, carrying training and checkpoint.
    const voteMessage = () => fake.messages(styles_).find((m) => m.id === voteMessageId)!;
    const buttons = buttonsOf(voteMessage());
    expect(buttons.map((b) => b.label.split(' ')[0])).toEqual(['A', 'B', 'C']);
    for (const b of buttons) expect(b.custom_id.startsWith(`vote:${trainingId}:`)).toBe(true);
    expect(voteMessage().content).not.toMatch(/epoch \d/);

    const [x, y] = [buttons[0]!.custom_id, buttons[1]!.custom_id];
    const click = async (user: string, customId: string) => {
      const { id } = fake.clickButton({ messageId: voteMessageId, customId, userId: member(user) });
      return until(() => fake.interaction(id)?.original?.content);
    };
    expect(await click('alice', x)).toMatch(/vote for \*\*A\*\* is in/);
    await click('bob', y);
    await click('carol', x);
    expect(await click('carol', y)).toMatch(/moved from \*\*A\*\* to \*\*B\*\*/);
    expect(await click('bob', y)).toMatch(/already voted for \*\*B\*\*/);
    await until(() => voteMessage().content.includes('Total: 3 votes'));
    expect(voteMessage().content).toMatch(/\*\*A\*\* — 1 vote/);
    expect(voteMessage().content).toMatch(/\*\*B\*\* — 2 votes/);

    // bob may not close it (no trainer role, no Manage Server); the owner may.
    const refused = fake.sendSlashCommand({
      name: 'vote',
      subcommand: 'close',
      userId: member('bob'),
      channelId: styles_,
      options: { training: trainingId },
    });
    expect(await until(() => fake.interaction(refused.id)?.original?.content)).toMatch(/Manage Server/);
    const close = fake.sendSlashCommand({
      name: 'vote',
      subcommand: 'close',
      userId: member('owner'),
      channelId: styles_,
      options: { training: trainingId },
    });
    const closedText = await until(() => {
      const content = fake.interaction(close.id)?.original?.content;
      return content && !content.startsWith('…') && content.length > 0 ? content : undefined;
    });
    expect(closedText).toMatch(/inkwash\*\* is ready/);

    const winnerId = y.split(':')[2]!;
    const [winner] = await database.db.select().from(checkpoints).where(eq(checkpoints.id, winnerId));
    const [style] = await database.db.select().from(styles).where(eq(styles.guildId, guildId));
    const [closed] = await database.db.select().from(trainings).where(eq(trainings.id, trainingId));
    const recommended = closed!.evaluation!.recommendedStrength[winnerId]!;
    expect(style).toMatchObject({
      name: 'inkwash',
      trigger: 'inkwash',
      status: 'ready',
      checkpointId: winnerId,
      modelFamily: 'illustrious',
    });
    expect(style!.defaultStrength).toBeCloseTo(recommended, 5);
    expect(style!.loraArtifactKey).toBe(
      `loras/cm_${trainingId.replace(/-/g, '').slice(0, 8)}_e${winner!.epoch}.safetensors`,
    );
    expect((await store.getBuffer(style!.loraArtifactKey!)).equals(fakeSafetensors(winner!.epoch))).toBe(
      true,
    );
    expect(closed!.status).toBe('done');
    await until(() => buttonsOf(voteMessage()).every((b) => b.disabled));
    expect(voteMessage().content).toMatch(/closed/);
    expect(voteMessage().content).toMatch(/\(epoch \d\)/);

    // After the close the buttons are disabled: Discord lets nobody click them.
    expect(() =>
      fake.clickButton({ messageId: voteMessageId, customId: x, userId: member('alice') }),
    ).toThrow(/disabled/);

    // /comic new style:inkwash renders with the style's LoRA, trigger and strength.
    fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      userId: member('alice'),
      channelId: channelId('comics'),
      options: {
        prompt: 'A cat detective finds a lost hat in the rain',
        style: 'inkwash',
        pages: 1,
        panels: 1,
      },
    });
    const comic = await until(async () => {
      const [row] = await database.db
        .select()
        .from(comics)
        .where(eq(comics.channelId, channelId('comics')));
      return row && ['done', 'failed'].includes(row.status) ? row : undefined;
    });
    expect(comic.status).toBe('done');
    const [render] = await database.db.select().from(renders).limit(1);
    const lora = render!.recipe.loras[0]!;
    expect(lora).toMatchObject({
      name: style!.loraArtifactKey!.split('/').pop(),
      artifactKey: style!.loraArtifactKey,
      trigger: 'inkwash',
    });
    expect(lora.strength).toBeCloseTo(style!.defaultStrength, 5);
    expect(render!.recipe.positive.startsWith('inkwash')).toBe(true);
    await settled();
  }, 180_000);

  it('closes by its timer; a tie goes to the earlier epoch', async () => {
    const guildId = fake.guild.id;
    const channel = channelId('styles');
    const [training] = await database.db
      .insert(trainings)
      .values({
        guildId,
        channelId: channel,
        userId: member('owner'),
        kind: 'style',
        name: 'charcoal',
        trigger: 'charcoal',
        modelFamily: 'illustrious',
        baseModel: 'illustriousXL_v01.safetensors',
        config: {},
        status: 'voting',
      })
      .returning();
    const ids: string[] = [];
    for (const epoch of [4, 2]) {
      const key = `trainings/${training!.id}/checkpoints/charcoal-e${epoch}.safetensors`;
      await store.put(key, fakeSafetensors(epoch));
      const [row] = await database.db
        .insert(checkpoints)
        .values({ trainingId: training!.id, epoch, step: epoch * 50, artifactKey: key })
        .returning();
      ids.push(row!.id);
    }
    await castVote(database.db, {
      trainingId: training!.id,
      memberId: member('alice'),
      checkpointId: ids[0]!,
    });
    await castVote(database.db, { trainingId: training!.id, memberId: member('bob'), checkpointId: ids[1]! });
    // The deadline has passed when the delayed job runs.
    await database.db
      .update(trainings)
      .set({ votingClosesAt: new Date(Date.now() - 1_000) })
      .where(eq(trainings.id, training!.id));
    await producer.enqueue(
      'post',
      { kind: 'vote-close', trainingId: training!.id },
      { jobId: `vote-close-${training!.id}` },
    );

    const style = await until(async () => {
      const [row] = await database.db.select().from(styles).where(eq(styles.name, 'charcoal'));
      return row?.status === 'ready' ? row : undefined;
    });
    // 1–1: epoch 2 (ids[1]) wins over epoch 4, being less trained.
    expect(style.checkpointId).toBe(ids[1]);
    expect(style.defaultStrength).toBeCloseTo(0.8, 5);
    await until(() =>
      botMessages(channel).some(
        (m) => m.content.includes('**charcoal** is ready') && m.content.includes('earlier epoch'),
      ),
    );
    await settled();
  }, 60_000);
});
