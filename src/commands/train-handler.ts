/**
 * `/train style | status | cancel | role`.
 *
 * `/train style` is for the trainer role (or Manage Server): a training holds the GPU for hours. It
 * checks what needs no download first (options, who asks, that some images were given), refusing
 * ephemerally with nothing queued; then defers, downloads the images (src/commands/train-download.ts),
 * runs the dataset checks and preparation (src/dataset, the same as `comicmaster dataset prepare`),
 * and only when the dataset is good creates the trainings row, stores the dataset in the artifact
 * store and queues the `train` job. The reply is the dataset report; progress comes in the training's
 * status message (src/bot/training-poster.ts).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  MessageFlags,
  PermissionFlagsBits,
  type ChatInputCommandInteraction,
  type GuildTextBasedChannel,
} from 'discord.js';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { BotDeps } from '../bot/deps.ts';
import { readTrainingView, trainingStatusText, trainingSubject } from '../bot/training-status.ts';
import { formatEta } from '../bot/status-message.ts';
import { captionSettingsFromConfig, prepareDataset } from '../dataset/prepare.ts';
import type { CaptionMode } from '../dataset/captions.ts';
import type { DatasetReport } from '../dataset/report.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { guildSettings, styles, trainings, type GuildSettings, type Training } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { planTraining, type TrainingPlan } from '../training/plan.ts';
import { PRESETS } from '../training/presets.ts';
import type { CommandHandler } from './handler.ts';
import { trainCharacter } from './train-character-handler.ts';
import { optionValues, parseOptions } from './options.ts';
import {
  IMAGE_OPTION_NAMES,
  TrainCancelOptions,
  TrainRoleOptions,
  TrainStatusOptions,
  TrainStyleOptions,
} from './train.ts';
import {
  allowedOrigins,
  downloadSources,
  recentChannelImages,
  sourceOf,
  type AttachmentSource,
  type DownloadRefusal,
} from './train-download.ts';

/** Statuses in which a training still holds (or waits for) the GPU. */
const ACTIVE = ['preparing', 'queued', 'training'] as const;
const MESSAGE_LIMIT = 2000;

/** Where a training's prepared dataset lives in the artifact store (a folder: one key per file). */
export function datasetPrefix(trainingId: string): string {
  return `trainings/${trainingId}/dataset/`;
}

/** The `train` job's id: one job per training, so a double enqueue is a no-op and cancel can find it. */
export function trainJobId(trainingId: string): string {
  return `train-${trainingId}`;
}

export const trainHandler: CommandHandler = {
  name: 'train',
  async execute(interaction, deps) {
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'style') return trainStyle(interaction, deps);
    if (sub === 'character') return trainCharacter(interaction, deps);
    if (sub === 'status') return trainStatus(interaction, deps);
    if (sub === 'cancel') return trainCancel(interaction, deps);
    if (sub === 'role') return trainRole(interaction, deps);
    throw new InputError(`\`/train ${sub}\` is not something I can do.`);
  },
};

// ---------- who may train ----------

/** Manage Server, or the guild's trainer role. */
export function mayTrain(interaction: ChatInputCommandInteraction, settings: GuildSettings): boolean {
  if (interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) return true;
  const roleId = settings.trainerRoleId;
  if (!roleId) return false;
  const roles = interaction.member?.roles;
  if (!roles) return false;
  return Array.isArray(roles) ? roles.includes(roleId) : roles.cache.has(roleId);
}

/** `noun` is the target's: "style" or "character" (which trains a character LoRA). */
function refusalForNonTrainer(settings: GuildSettings, noun: string): string {
  const what = noun === 'character' ? 'a character LoRA' : `a ${noun}`;
  return settings.trainerRoleId
    ? `Training ${what} holds the GPU for hours, so it is for members with the <@&${settings.trainerRoleId}> role or Manage Server.`
    : `Training ${what} holds the GPU for hours, so it is for members with Manage Server (an admin can open it to a role with \`/train role\`).`;
}

// ---------- /train style ----------

async function trainStyle(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const options = parseOptions(TrainStyleOptions, optionValues(interaction), 'train style');
  await trainFromImages(interaction, deps, {
    kind: 'style',
    name: options.name,
    trigger: options.trigger,
    base: options.base,
    fromChannel: options.from_channel,
    noun: 'style',
    async checkName(guildId) {
      const [taken] = await deps.db
        .select({ name: styles.name })
        .from(styles)
        .where(
          and(
            eq(styles.guildId, guildId),
            sql`lower(${styles.name}) = lower(${options.name})`,
            inArray(styles.status, ['ready', 'voting', 'training']),
          ),
        )
        .limit(1);
      if (taken)
        throw new InputError(`This server already has a style named **${taken.name}**; pick another name.`);
    },
  });
}

/**
 * What a training from images is for: `/train style` and `/train character` differ only in these
 * (the name check, the trigger, the dataset's minimum and the words stripped from captions).
 */
export interface TrainTarget {
  kind: Training['kind'];
  /** The style name, or the character's name. */
  name: string;
  trigger: string;
  base: TrainStyleOptions['base'];
  fromChannel: number | undefined;
  /** "style" or "character": how the replies call what is trained. */
  noun: string;
  /** Refuses (InputError) when the name cannot be trained under; runs after the reply is deferred. */
  checkName(guildId: string): Promise<void>;
  /** Dataset minimum and recommendation (the dataset module's style defaults otherwise). */
  minImages?: number;
  recommendedImages?: number;
  /** Words removed from every caption besides the style words (a character's constant features). */
  stripFromCaptions?: readonly string[];
  /** Kept in the row's config for whoever finishes the training (e.g. the character's id). */
  extraConfig?: Record<string, unknown>;
}

/**
 * Images → checked, prepared dataset → trainings row + `train` job + status message. Everything that
 * needs no download is checked first, so refusals stay ephemeral and nothing is queued.
 */
export async function trainFromImages(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  target: TrainTarget,
): Promise<void> {
  const options = {
    name: target.name,
    trigger: target.trigger,
    base: target.base,
    from_channel: target.fromChannel,
  };
  const guildId = requireGuild(interaction);
  const attachments: AttachmentSource[] = [];
  const zip = interaction.options.getAttachment('zip');
  if (zip) attachments.push({ ...sourceOf(zip), kind: 'zip' });
  for (const name of IMAGE_OPTION_NAMES) {
    const image = interaction.options.getAttachment(name);
    if (image) attachments.push(sourceOf(image));
  }
  if (attachments.length === 0 && options.from_channel === undefined) {
    throw new InputError(
      'Give me the images to learn from: attach them (`image1` … `image10`), attach one `zip`, or set `from_channel` to use the last images posted here.',
    );
  }
  // One primary-key read before deferring: a refusal for a non-trainer stays private.
  const settings = await getGuildSettings(deps.db, guildId);
  if (!mayTrain(interaction, settings)) throw new InputError(refusalForNonTrainer(settings, target.noun));

  await interaction.deferReply();

  const [active] = await deps.db
    .select({ id: trainings.id, name: trainings.name })
    .from(trainings)
    .where(and(eq(trainings.guildId, guildId), inArray(trainings.status, [...ACTIVE])))
    .limit(1);
  if (active) {
    throw new InputError(
      `**${active.name}** (\`${active.id}\`) is still training on this server; one at a time. \`/train cancel\` stops it.`,
    );
  }
  await target.checkName(guildId);

  const workDir = join(deps.config.dataDir, 'tmp', `train-${randomUUID()}`);
  const inputsDir = join(workDir, 'inputs');
  const datasetDir = join(workDir, 'dataset');
  await mkdir(inputsDir, { recursive: true });
  try {
    const sources = [...attachments];
    if (options.from_channel !== undefined) {
      const channel = interaction.channel;
      if (!channel || channel.isDMBased()) throw new InputError('`from_channel` works in a server channel.');
      sources.push(
        ...(await recentChannelImages(
          channel as GuildTextBasedChannel,
          options.from_channel,
          deps.client.user.id,
        )),
      );
    }
    await interaction.editReply({
      content: `📥 Fetching ${sources.length} file${sources.length === 1 ? '' : 's'}…`,
    });
    const downloaded = await downloadSources(sources, inputsDir, allowedOrigins(deps.config));
    if (downloaded.files.length === 0) {
      await interaction.editReply({
        content: clip(nothingToTrain(downloaded.refused, options.from_channel !== undefined)),
      });
      return;
    }

    await interaction.editReply({
      content: `🔎 Checking and preparing ${downloaded.files.length} file${downloaded.files.length === 1 ? '' : 's'}…`,
    });
    const report = await prepareDataset(
      downloaded.files.map((f) => f.path),
      {
        trigger: options.trigger,
        out: datasetDir,
        captions: captionModeFor(options.base, deps),
        ...(target.minImages !== undefined ? { minImages: target.minImages } : {}),
        ...(target.recommendedImages !== undefined ? { recommendedImages: target.recommendedImages } : {}),
        ...(target.stripFromCaptions ? { extraStyleWords: [...target.stripFromCaptions] } : {}),
      },
      captionSettingsFromConfig(deps.config),
    );
    const names = new Map(downloaded.files.map((f) => [f.path, f.filename]));
    const displayed = inWordsOf(target, withOriginalNames(report, names));
    if (report.status === 'refused') {
      await interaction.editReply({
        content: clip(reportText(displayed, downloaded.refused, null, null, target.noun)),
      });
      return;
    }

    const plan = await planTraining({
      datasetDir,
      base: options.base,
      trigger: options.trigger,
      workDir: join(workDir, 'plan'),
      python: deps.config.TRAINER_PYTHON,
      ...(deps.config.SD_SCRIPTS_DIR ? { sdScriptsDir: deps.config.SD_SCRIPTS_DIR } : {}),
      ...(deps.config.AI_TOOLKIT_DIR ? { aiToolkitDir: deps.config.AI_TOOLKIT_DIR } : {}),
    }).catch((error: unknown) => {
      // The runner plans again from the stored dataset; only the estimate is lost here.
      deps.logger.warn(
        { err: error, interactionId: interaction.id },
        'could not plan the training for its estimate',
      );
      return null;
    });

    const trainingId = randomUUID();
    const prefix = datasetPrefix(trainingId);
    await storeDataset(deps, datasetDir, prefix);
    const [training] = await deps.db
      .insert(trainings)
      .values({
        id: trainingId,
        guildId,
        channelId: interaction.channelId,
        userId: interaction.user.id,
        kind: target.kind,
        name: options.name,
        trigger: options.trigger,
        modelFamily: options.base,
        baseModel: plan?.model ?? PRESETS[options.base].defaultModel,
        config: { ...trainingConfig(options, report, plan), ...target.extraConfig },
        status: 'queued',
        datasetKey: prefix,
      })
      .returning();
    if (!training) throw new Error('inserting the trainings row returned nothing');
    await deps.producer.enqueue('train', { trainingId }, { jobId: trainJobId(trainingId) });
    await deps.producer.enqueue('post', { kind: 'training-status', trainingId });
    await interaction.editReply({
      content: clip(reportText(displayed, downloaded.refused, training, plan, target.noun)),
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** WD14 tags need kohya's tagger (SD_SCRIPTS_DIR); FLUX learns better from sentences when an LLM is configured. */
function captionModeFor(base: TrainStyleOptions['base'], deps: BotDeps): CaptionMode {
  if (base === 'flux' && deps.config.llmConfigured) return 'llm';
  if (base !== 'flux' && deps.config.SD_SCRIPTS_DIR) return 'wd14';
  return 'none';
}

/** What the runner's train worker reads besides the row's columns: the dataset's layout and the plan. */
function trainingConfig(
  options: Pick<TrainStyleOptions, 'base' | 'trigger'>,
  report: DatasetReport,
  plan: TrainingPlan | null,
): Record<string, unknown> {
  return {
    base: options.base,
    trigger: options.trigger,
    dataset: {
      /** The artifact-store keys under datasetKey mirror the prepared folder. */
      layout: 'kohya-folder',
      imageFolder: report.imageFolder,
      repeats: report.repeats,
      captionExtension: report.captionExtension,
      captionMode: report.captionMode,
      images: report.counts.prepared,
    },
    ...(plan
      ? {
          plan: {
            trainer: plan.trainer,
            model: plan.model,
            repeats: plan.repeats,
            epochs: plan.epochs,
            totalSteps: plan.totalSteps,
            checkpointsAt: plan.checkpointsAt,
            estimate: plan.estimate,
          },
        }
      : {}),
  };
}

async function storeDataset(deps: BotDeps, datasetDir: string, prefix: string): Promise<void> {
  const entries = await readdir(datasetDir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    await deps.store.put(
      `${prefix}${relative(datasetDir, path).split('\\').join('/')}`,
      await readFile(path),
    );
  }
}

/** The report with each file named as the member named it, not by its place on our disk. */
function withOriginalNames(report: DatasetReport, names: Map<string, string>): DatasetReport {
  const rename = (source: string) => {
    for (const [path, name] of names)
      if (source === path || source.startsWith(`${path}:`)) return name + source.slice(path.length);
    return source;
  };
  return {
    ...report,
    refused: report.refused.map((r) => ({ ...r, source: rename(r.source) })),
    accepted: report.accepted.map((a) => ({ ...a, source: rename(a.source) })),
    // Warnings name files too (upscaled ones, "a duplicate of …").
    warnings: report.warnings.map((w) =>
      [...names].reduce((text, [path, name]) => text.split(path).join(name), w),
    ),
  };
}

const LISTED_REFUSALS = 8;

function refusalLines(refused: { source: string; reason: string }[]): string[] {
  if (refused.length === 0) return [];
  const lines = ['🚫 Refused:'];
  for (const r of refused.slice(0, LISTED_REFUSALS))
    lines.push(`• \`${r.source.slice(0, 80)}\`: ${r.reason}`);
  if (refused.length > LISTED_REFUSALS) lines.push(`• … and ${refused.length - LISTED_REFUSALS} more`);
  return lines;
}

function nothingToTrain(refused: DownloadRefusal[], fromChannel: boolean): string {
  return [
    fromChannel && refused.length === 0
      ? '⚠️ I found no images in the recent messages of this channel; nothing is queued.'
      : '⚠️ None of the files could be fetched; nothing is queued.',
    ...refusalLines(refused),
  ].join('\n');
}

/** The dataset module speaks of styles; a character training's report says "character" instead. */
function inWordsOf(target: TrainTarget, report: DatasetReport): DatasetReport {
  if (target.noun === 'style') return report;
  const reword = (text: string) => text.replace(/\ba style\b/g, `a ${target.noun}`);
  return { ...report, message: reword(report.message), warnings: report.warnings.map(reword) };
}

function reportText(
  report: DatasetReport,
  downloadRefused: DownloadRefusal[],
  training: Training | null,
  plan: TrainingPlan | null,
  noun: string,
): string {
  const refused = [...downloadRefused, ...report.refused];
  const lines: string[] = [];
  if (!training) {
    lines.push(`⚠️ ${report.message.replace(/^Refused: /, 'Not queued: ')}`);
  } else {
    const what = noun === 'character' ? 'Character LoRA for' : noun.charAt(0).toUpperCase() + noun.slice(1);
    lines.push(
      `🎨 ${what} **${training.name}** (trigger \`${training.trigger}\`) is queued for training: \`${training.id}\`.`,
    );
  }
  const counts = report.counts;
  lines.push(
    `📦 ${counts.lookedAt + downloadRefused.length} file${counts.lookedAt === 1 ? '' : 's'} looked at: ${training ? `${counts.prepared} image${counts.prepared === 1 ? '' : 's'} prepared` : `${counts.usable} usable`}, ${refused.length} refused${counts.duplicates ? ` (${counts.duplicates} duplicate${counts.duplicates === 1 ? '' : 's'})` : ''}.`,
  );
  for (const warning of report.warnings) lines.push(`⚠️ ${warning}`);
  if (plan) {
    lines.push(
      `📐 Plan: ${plan.totalSteps} steps (${plan.trainer === 'kohya' ? `${plan.repeats} repeats × ${plan.epochs} epochs, ` : ''}${plan.checkpointsAt.length} checkpoints), about ${formatEta(plan.estimate.seconds)} and ~${plan.estimate.vramGb} GB of VRAM.`,
    );
  }
  lines.push(...refusalLines(refused));
  const samples = report.accepted.slice(0, 3);
  if (samples.length > 0 && report.captionMode !== 'none') {
    lines.push('📝 Sample captions:', ...samples.map((s) => `• \`${s.caption.slice(0, 150)}\``));
  }
  if (training) lines.push('Progress will be posted in this channel.');
  return lines.join('\n');
}

/** Discord's 2000 characters: the end (refusal list) is cut first. */
function clip(text: string): string {
  return text.length <= MESSAGE_LIMIT ? text : `${text.slice(0, MESSAGE_LIMIT - 2)} …`;
}

// ---------- /train status, cancel, role ----------

async function trainStatus(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { id } = parseOptions(TrainStatusOptions, optionValues(interaction), 'train status');
  const guildId = requireGuild(interaction);
  const training = id
    ? await trainingOfGuild(deps, id, guildId)
    : (
        await deps.db
          .select()
          .from(trainings)
          .where(eq(trainings.guildId, guildId))
          .orderBy(desc(trainings.createdAt))
          .limit(1)
      )[0];
  if (!training) {
    await interaction.reply({
      content:
        'Nothing has been trained on this server yet. `/train style` starts a style, `/train character` a character LoRA.',
      flags: MessageFlags.Ephemeral,
    });
    return;
  }
  const view = await readTrainingView(deps.db, training, deps.producer.queue('train'));
  const lines = [trainingStatusText(view)];
  if (training.statusMessageId)
    lines.push(
      `Progress: https://discord.com/channels/${training.guildId}/${training.channelId}/${training.statusMessageId}`,
    );
  lines.push(`Started by <@${training.userId}> in <#${training.channelId}>.`);
  await interaction.reply({
    content: clip(lines.join('\n')),
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

async function trainCancel(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { id } = parseOptions(TrainCancelOptions, optionValues(interaction), 'train cancel');
  const guildId = requireGuild(interaction);
  const training = await trainingOfGuild(deps, id, guildId);
  if (training.userId !== interaction.user.id) {
    const settings = await getGuildSettings(deps.db, guildId);
    if (!mayTrain(interaction, settings)) {
      throw new InputError(
        'Only the member who started that training, the trainer role or Manage Server can cancel it.',
      );
    }
  }
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const [cancelled] = await deps.db
    .update(trainings)
    .set({ status: 'cancelled', finishedAt: new Date() })
    .where(and(eq(trainings.id, training.id), inArray(trainings.status, [...ACTIVE])))
    .returning({ id: trainings.id });
  if (!cancelled) {
    await interaction.editReply({
      content: `⚠️ The training \`${training.id}\` is already ${training.status}; there is nothing to stop.`,
    });
    return;
  }
  // A job still waiting is removed; a running one is stopped by the runner, which watches the row.
  const job = await deps.producer.queue('train').getJob(trainJobId(training.id));
  const state = await job?.getState();
  if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized'))
    await job.remove().catch(() => undefined);
  await deps.producer.enqueue('post', { kind: 'training-status', trainingId: training.id });
  deps.logger.info(
    { trainingId: training.id, userId: interaction.user.id, jobState: state },
    'training cancelled',
  );
  await interaction.editReply({
    content: `🛑 The training of ${trainingSubject(training)} (\`${training.id}\`) is cancelled.`,
  });
}

async function trainRole(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { role } = parseOptions(TrainRoleOptions, optionValues(interaction), 'train role');
  const guildId = requireGuild(interaction);
  if (!interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) {
    throw new InputError('Only members with Manage Server choose who may train styles and character LoRAs.');
  }
  await getGuildSettings(deps.db, guildId);
  await deps.db
    .update(guildSettings)
    .set({ trainerRoleId: role ?? null })
    .where(eq(guildSettings.guildId, guildId));
  await interaction.reply({
    content: role
      ? `✅ Members with <@&${role}> may now train styles and character LoRAs (and cancel trainings).`
      : '✅ Only members with Manage Server may train styles and character LoRAs now.',
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

async function trainingOfGuild(deps: BotDeps, id: string, guildId: string): Promise<Training> {
  const [training] = await deps.db.select().from(trainings).where(eq(trainings.id, id));
  if (!training || training.guildId !== guildId) {
    throw new InputError(
      `There is no training \`${id}\` on this server. The id is in the training's status message.`,
    );
  }
  return training;
}

function requireGuild(interaction: ChatInputCommandInteraction): string {
  if (!interaction.guildId)
    throw new InputError('Trainings run in a server channel, not in direct messages.');
  return interaction.guildId;
}
