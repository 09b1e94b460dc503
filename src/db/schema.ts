import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  real,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
// Type-only imports: drizzle-kit loads this file on its own, and the jsonb shapes are only types here.
// The values themselves are validated with zod where they enter (src/db/json.ts and the flows).
import type { ComicScript, Panel as ScriptPanel } from '../agents/script-schema.ts';
import { MODEL_FAMILIES, type RenderRecipe } from '../comic/recipe.ts';
import type { CheckpointMetadata, ComicOptions, PageLayout, TrainingProgress } from './json.ts';
import type { EvaluationRecord } from '../evaluation/record.ts';

/**
 * The whole domain in one schema. PostgreSQL is the source of truth: a lost queue job must never lose
 * a comic, so every row says what is still owed (status columns) and a sweeper can re-enqueue it.
 *
 * Discord ids are snowflakes stored as text (they overflow JavaScript numbers). Timestamps are
 * timestamptz. Migrations in migrations/ are generated from this file with `npm run db:generate`.
 */

// ---------------------------------------------------------------------------------------------------
// Enums

// The recipe's list is the one source: a family added there reaches the database enum through a migration.
export const modelFamily = pgEnum('model_family', MODEL_FAMILIES);
export const nsfwPolicy = pgEnum('nsfw_policy', ['block', 'nsfw_channels_only']);
export const scriptWriter = pgEnum('script_writer', ['llm', 'template']);
export const comicStatus = pgEnum('comic_status', [
  'scripting',
  'rendering',
  'assembling',
  'done',
  'failed',
  'cancelled',
]);
export const pageStatus = pgEnum('page_status', ['pending', 'rendering', 'assembling', 'done', 'failed']);
export const renderStatus = pgEnum('render_status', ['queued', 'running', 'done', 'failed', 'cancelled']);
export const trainingKind = pgEnum('training_kind', ['style', 'character']);
export const trainingStatus = pgEnum('training_status', [
  'preparing',
  'queued',
  'training',
  'evaluating',
  'voting',
  'done',
  'failed',
  'cancelled',
]);
export const styleStatus = pgEnum('style_status', ['training', 'voting', 'ready', 'retired']);

/** Comic statuses that still hold a slot against the per-user and per-guild limits. */
export const COMIC_IN_FLIGHT = ['scripting', 'rendering', 'assembling'] as const;

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () =>
  timestamp('updated_at', { withTimezone: true })
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date());

// ---------------------------------------------------------------------------------------------------
// Guild settings

export const guildSettings = pgTable(
  'guild_settings',
  {
    guildId: text('guild_id').primaryKey(),
    /** Name of the guild style used when `/comic new` gives none (null: the base model's look). */
    defaultStyle: text('default_style'),
    defaultModelFamily: modelFamily('default_model_family').notNull().default('illustrious'),
    defaultPages: integer('default_pages').notNull().default(1),
    defaultPanelsPerPage: integer('default_panels_per_page').notNull().default(4),
    defaultRtl: boolean('default_rtl').notNull().default(false),
    /** Comics one member may have in flight at once in this guild. */
    maxInFlightPerUser: integer('max_in_flight_per_user').notNull().default(1),
    /** Comics the whole guild may have in flight at once (one GPU box is shared). */
    maxInFlightPerGuild: integer('max_in_flight_per_guild').notNull().default(3),
    /** Prompts used for evaluation grids of this guild's trainings; empty means the built-in set. */
    testPrompts: jsonb('test_prompts').$type<string[]>().notNull().default([]),
    nsfwPolicy: nsfwPolicy('nsfw_policy').notNull().default('block'),
    /** Members with this role may start and cancel trainings (null: only Manage Guild may). */
    trainerRoleId: text('trainer_role_id'),
    /** How long a style vote stays open before its timer closes it. */
    voteMinutes: integer('vote_minutes').notNull().default(1440),
    /** Blind votes label checkpoints A, B, C… in a random order instead of by epoch. */
    blindVotes: boolean('blind_votes').notNull().default(true),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check(
      'guild_settings_limits_positive',
      sql`${t.maxInFlightPerUser} >= 1 and ${t.maxInFlightPerGuild} >= 1`,
    ),
    check('guild_settings_default_pages_range', sql`${t.defaultPages} between 1 and 8`),
    check('guild_settings_default_panels_range', sql`${t.defaultPanelsPerPage} between 1 and 6`),
  ],
);

// ---------------------------------------------------------------------------------------------------
// Comics → pages → panels → renders (deleting a comic removes all of them)

export const comics = pgTable(
  'comics',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Null when the comic was made locally with the CLI, outside Discord. */
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    userId: text('user_id').notNull(),
    prompt: text('prompt').notNull(),
    options: jsonb('options').$type<ComicOptions>().notNull(),
    /** Null until the script agent has written it. */
    script: jsonb('script').$type<ComicScript>(),
    writer: scriptWriter('writer'),
    status: comicStatus('status').notNull().default('scripting'),
    /** Operator-facing cause of a failure; the user sees a message derived from the error code. */
    error: text('error'),
    /** The one message the bot edits with progress. */
    statusMessageId: text('status_message_id'),
    storyboardMessageIds: jsonb('storyboard_message_ids').$type<string[]>().notNull().default([]),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // The in-flight limits count by guild+user and by guild; the sweeper scans by status and age.
    index('comics_guild_user_status_idx').on(t.guildId, t.userId, t.status),
    index('comics_guild_status_idx').on(t.guildId, t.status),
    index('comics_status_updated_idx').on(t.status, t.updatedAt),
    check('comics_prompt_not_empty', sql`length(${t.prompt}) > 0`),
    check('comics_script_has_writer', sql`${t.script} is null or ${t.writer} is not null`),
  ],
);

export const pages = pgTable(
  'pages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    comicId: uuid('comic_id')
      .notNull()
      .references(() => comics.id, { onDelete: 'cascade' }),
    /** 1-based page number. */
    number: integer('number').notNull(),
    layout: jsonb('layout').$type<PageLayout>(),
    status: pageStatus('status').notNull().default('pending'),
    /** Artifact-store key of the assembled page image. */
    artifactKey: text('artifact_key'),
    discordMessageId: text('discord_message_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('pages_comic_number_unique').on(t.comicId, t.number),
    check('pages_number_positive', sql`${t.number} >= 1`),
  ],
);

export const panels = pgTable(
  'panels',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    comicId: uuid('comic_id')
      .notNull()
      .references(() => comics.id, { onDelete: 'cascade' }),
    pageNumber: integer('page_number').notNull(),
    /** 1-based, in reading order within the page. */
    panelNumber: integer('panel_number').notNull(),
    scriptPanel: jsonb('script_panel').$type<ScriptPanel>().notNull(),
    /** The render shown on the page; a 🔁 reroll replaces it when the new render lands. */
    currentRenderId: uuid('current_render_id').references((): AnyPgColumn => renders.id, {
      onDelete: 'set null',
    }),
    /** The panel's own message, which carries the 🔁 reaction. */
    discordMessageId: text('discord_message_id'),
    /** True while a reroll is queued or running: a second 🔁 meanwhile is a no-op (idempotent). */
    rerollPending: boolean('reroll_pending').notNull().default(false),
    /** Rerolls asked for so far (the next render's attempt number). */
    rerollCount: integer('reroll_count').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('panels_comic_page_panel_unique').on(t.comicId, t.pageNumber, t.panelNumber),
    // A panel belongs to a page of its own comic.
    foreignKey({
      name: 'panels_page_fk',
      columns: [t.comicId, t.pageNumber],
      foreignColumns: [pages.comicId, pages.number],
    }).onDelete('cascade'),
    // A 🔁 reaction arrives with a message id; find its panel by it.
    uniqueIndex('panels_discord_message_unique').on(t.discordMessageId),
    // Deleting renders (a comic's cascade) sets this column to null; the index keeps that from scanning.
    index('panels_current_render_idx').on(t.currentRenderId),
    check('panels_numbers_positive', sql`${t.pageNumber} >= 1 and ${t.panelNumber} >= 1`),
    check('panels_reroll_count_non_negative', sql`${t.rerollCount} >= 0`),
  ],
);

export const renders = pgTable(
  'renders',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    panelId: uuid('panel_id')
      .notNull()
      .references(() => panels.id, { onDelete: 'cascade' }),
    /** 0 for the first render of a panel, then one more per reroll. */
    attempt: integer('attempt').notNull(),
    /** Everything needed to make the same image again. */
    recipe: jsonb('recipe').$type<RenderRecipe>().notNull(),
    status: renderStatus('status').notNull().default('queued'),
    artifactKey: text('artifact_key'),
    /** Which runner (GPU) took it. */
    runnerId: text('runner_id'),
    queuedAt: timestamp('queued_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    error: text('error'),
  },
  (t) => [
    unique('renders_panel_attempt_unique').on(t.panelId, t.attempt),
    // The sweeper looks for renders stuck in queued/running.
    index('renders_status_queued_idx').on(t.status, t.queuedAt),
    check('renders_attempt_non_negative', sql`${t.attempt} >= 0`),
    check('renders_done_has_artifact', sql`${t.status} <> 'done' or ${t.artifactKey} is not null`),
  ],
);

// ---------------------------------------------------------------------------------------------------
// Characters and styles (per guild)

export const characters = pgTable(
  'characters',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    guildId: text('guild_id').notNull(),
    name: text('name').notNull(),
    /** Fixed visual appearance as short tags, reused verbatim in every prompt. */
    appearance: jsonb('appearance').$type<string[]>().notNull().default([]),
    referenceImageKeys: jsonb('reference_image_keys').$type<string[]>().notNull().default([]),
    loraArtifactKey: text('lora_artifact_key'),
    loraTrigger: text('lora_trigger'),
    loraStrength: real('lora_strength'),
    ownerId: text('owner_id').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // "Mira" and "mira" are the same character to the people typing the name.
    uniqueIndex('characters_guild_name_unique').on(t.guildId, sql`lower(${t.name})`),
    check('characters_name_not_empty', sql`length(${t.name}) > 0`),
  ],
);

export const styles = pgTable(
  'styles',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    guildId: text('guild_id').notNull(),
    name: text('name').notNull(),
    /** Trigger word, placed first in every prompt that uses the style. */
    trigger: text('trigger').notNull(),
    modelFamily: modelFamily('model_family').notNull(),
    loraArtifactKey: text('lora_artifact_key'),
    /** The checkpoint that won the vote (null for a style registered by hand). */
    checkpointId: uuid('checkpoint_id').references((): AnyPgColumn => checkpoints.id, {
      onDelete: 'set null',
    }),
    status: styleStatus('status').notNull().default('training'),
    /** LoRA strength `/comic new` uses (the best-voted or best-measured strength of the evaluation). */
    defaultStrength: real('default_strength').notNull().default(0.8),
    createdBy: text('created_by').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('styles_guild_name_unique').on(t.guildId, sql`lower(${t.name})`),
    check('styles_ready_has_lora', sql`${t.status} <> 'ready' or ${t.loraArtifactKey} is not null`),
  ],
);

// ---------------------------------------------------------------------------------------------------
// Trainings → checkpoints → votes

export const trainings = pgTable(
  'trainings',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    guildId: text('guild_id').notNull(),
    channelId: text('channel_id').notNull(),
    userId: text('user_id').notNull(),
    kind: trainingKind('kind').notNull(),
    /** The style or character name the result will be registered under. */
    name: text('name').notNull(),
    trigger: text('trigger').notNull(),
    modelFamily: modelFamily('model_family').notNull(),
    /** Base model file the LoRA is trained on (as the trainer and ComfyUI name it). */
    baseModel: text('base_model').notNull(),
    /** The trainer configuration as planned (preset, steps, repeats, epochs…). */
    config: jsonb('config').$type<Record<string, unknown>>().notNull(),
    status: trainingStatus('status').notNull().default('preparing'),
    progress: jsonb('progress').$type<TrainingProgress>(),
    datasetKey: text('dataset_key'),
    error: text('error'),
    /** The one message the bot edits with progress (and the loss chart). */
    statusMessageId: text('status_message_id'),
    /** Loss over steps, for the chart; one point per progress report the bot saw, steps increasing. */
    lossHistory: jsonb('loss_history')
      .$type<{ step: number; epoch: number; loss: number }[]>()
      .notNull()
      .default([]),
    /** How many checkpoints the chart attached to the status message shows (a new one re-renders it). */
    chartCheckpoints: integer('chart_checkpoints').notNull().default(0),
    /** The step of the trainer's sample images attached to the status message (-1: none yet; newer ones replace them). */
    sampleStep: integer('sample_step').notNull().default(-1),
    /** When the vote closes by timer (null: closed by the trainer role). */
    votingClosesAt: timestamp('voting_closes_at', { withTimezone: true }),
    /** Measures, blind labels and grid keys of the evaluation (null until it has run). */
    evaluation: jsonb('evaluation').$type<EvaluationRecord>(),
    /** Posted evaluation messages by part ("grid-1-1", "overview", "chart"): posting is idempotent. */
    evaluationMessageIds: jsonb('evaluation_message_ids')
      .$type<Record<string, string>>()
      .notNull()
      .default({}),
    /** The vote message with one button per checkpoint; edited with the live tally. */
    voteMessageId: text('vote_message_id'),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('trainings_guild_status_idx').on(t.guildId, t.status),
    // The vote-closing timer scans trainings in voting by deadline.
    index('trainings_status_closes_idx').on(t.status, t.votingClosesAt),
  ],
);

export const checkpoints = pgTable(
  'checkpoints',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    trainingId: uuid('training_id')
      .notNull()
      .references(() => trainings.id, { onDelete: 'cascade' }),
    epoch: integer('epoch').notNull(),
    step: integer('step').notNull(),
    /** Artifact-store key of the .safetensors file. */
    artifactKey: text('artifact_key').notNull(),
    metadata: jsonb('metadata').$type<CheckpointMetadata>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [
    unique('checkpoints_training_epoch_unique').on(t.trainingId, t.epoch),
    // Target of votes' composite foreign key: a vote names a checkpoint of its own training.
    unique('checkpoints_training_id_unique').on(t.trainingId, t.id),
    check('checkpoints_epoch_step_non_negative', sql`${t.epoch} >= 0 and ${t.step} >= 0`),
  ],
);

export const votes = pgTable(
  'votes',
  {
    trainingId: uuid('training_id')
      .notNull()
      .references(() => trainings.id, { onDelete: 'cascade' }),
    memberId: text('member_id').notNull(),
    checkpointId: uuid('checkpoint_id').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // One vote per member per training; changing it is an upsert on this key.
    primaryKey({ name: 'votes_pkey', columns: [t.trainingId, t.memberId] }),
    foreignKey({
      name: 'votes_checkpoint_fk',
      columns: [t.trainingId, t.checkpointId],
      foreignColumns: [checkpoints.trainingId, checkpoints.id],
    }).onDelete('cascade'),
    index('votes_checkpoint_idx').on(t.checkpointId),
  ],
);

export type GuildSettings = typeof guildSettings.$inferSelect;
export type Comic = typeof comics.$inferSelect;
export type NewComic = typeof comics.$inferInsert;
export type ComicStatus = (typeof comicStatus.enumValues)[number];
export type PageRow = typeof pages.$inferSelect;
export type PanelRow = typeof panels.$inferSelect;
export type RenderRow = typeof renders.$inferSelect;
export type RenderStatus = (typeof renderStatus.enumValues)[number];
export type Character = typeof characters.$inferSelect;
export type Style = typeof styles.$inferSelect;
export type Training = typeof trainings.$inferSelect;
export type TrainingStatus = (typeof trainingStatus.enumValues)[number];
export type Checkpoint = typeof checkpoints.$inferSelect;
export type Vote = typeof votes.$inferSelect;
