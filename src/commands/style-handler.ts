/**
 * `/style list | info | default | retire`: the server's trained styles. A style comes from a closed
 * vote (src/evaluation/vote.ts); `/comic new style:` renders with its LoRA at its default strength.
 */
import { and, asc, eq, ilike, ne, sql } from 'drizzle-orm';
import {
  MessageFlags,
  PermissionFlagsBits,
  type AttachmentPayload,
  type AutocompleteInteraction,
  type ChatInputCommandInteraction,
} from 'discord.js';
import type { BotDeps } from '../bot/deps.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { checkpoints, guildSettings, styles, trainings, type Style } from '../db/schema.ts';
import { tally } from '../db/votes.ts';
import { InputError } from '../errors.ts';
import { readEvaluation } from '../evaluation/vote.ts';
import { MAX_AUTOCOMPLETE_CHOICES, type CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';
import { StyleNameOptions } from './style.ts';
import { mayTrain } from './train-handler.ts';

export const styleHandler: CommandHandler = {
  name: 'style',
  async execute(interaction, deps) {
    const guildId = interaction.guildId;
    if (!guildId) throw new InputError('Styles belong to a server; use this command in one.');
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'list') return styleList(interaction, deps, guildId);
    const { name } = parseOptions(StyleNameOptions, optionValues(interaction), `style ${sub}`);
    const style = await findStyle(deps, guildId, name);
    if (sub === 'info') return styleInfo(interaction, deps, style);
    if (sub === 'default') return styleDefault(interaction, deps, style);
    if (sub === 'retire') return styleRetire(interaction, deps, style);
    throw new InputError(`\`/style ${sub}\` is not something I can do.`);
  },
  async autocomplete(interaction, deps) {
    await interaction.respond(await styleChoices(interaction, deps));
  },
};

async function styleChoices(interaction: AutocompleteInteraction, deps: BotDeps) {
  if (!interaction.guildId) return [];
  const typed = String(interaction.options.getFocused() ?? '').trim();
  const rows = await deps.db
    .select({ name: styles.name, status: styles.status })
    .from(styles)
    .where(
      and(
        eq(styles.guildId, interaction.guildId),
        ne(styles.status, 'retired'),
        typed ? ilike(styles.name, `%${typed.replace(/[%_\\]/g, '\\$&')}%`) : undefined,
      ),
    )
    .orderBy(asc(styles.name))
    .limit(MAX_AUTOCOMPLETE_CHOICES);
  return rows.map((r) => ({
    name: r.status === 'ready' ? r.name : `${r.name} (${r.status})`,
    value: r.name,
  }));
}

async function findStyle(deps: BotDeps, guildId: string, name: string): Promise<Style> {
  const [row] = await deps.db
    .select()
    .from(styles)
    .where(and(eq(styles.guildId, guildId), sql`lower(${styles.name}) = lower(${name})`));
  if (!row) throw new InputError(`This server has no style called “${name}”. See \`/style list\`.`);
  return row;
}

async function styleList(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  guildId: string,
): Promise<void> {
  const settings = await getGuildSettings(deps.db, guildId);
  const rows = await deps.db
    .select()
    .from(styles)
    .where(eq(styles.guildId, guildId))
    .orderBy(asc(styles.name));
  if (rows.length === 0) {
    await interaction.reply({
      content: 'This server has no styles yet. Train one with `/train style`.',
      flags: MessageFlags.Ephemeral,
    });
    return;
  }
  const lines = rows.map((s) => {
    const isDefault = settings.defaultStyle?.toLowerCase() === s.name.toLowerCase() ? ' ⭐ default' : '';
    return `• **${s.name}** — ${s.status}, trigger \`${s.trigger}\`, ${s.modelFamily}, strength ${s.defaultStrength.toFixed(1)}${isDefault}`;
  });
  await interaction.reply({
    content: ['🎨 Styles of this server:', ...lines].join('\n').slice(0, 1900),
    allowedMentions: { parse: [] },
  });
}

async function styleInfo(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  style: Style,
): Promise<void> {
  await interaction.deferReply();
  const lines = [
    `🎨 **${style.name}** — ${style.status}`,
    `Trigger \`${style.trigger}\` · ${style.modelFamily} · default strength ${style.defaultStrength.toFixed(1)}`,
  ];
  const files: AttachmentPayload[] = [];
  if (style.checkpointId) {
    const [row] = await deps.db
      .select({ checkpoint: checkpoints, training: trainings })
      .from(checkpoints)
      .innerJoin(trainings, eq(trainings.id, checkpoints.trainingId))
      .where(eq(checkpoints.id, style.checkpointId));
    if (row) {
      const { training, checkpoint } = row;
      lines.push(
        `From training \`${training.id.slice(0, 8)}\` on \`${training.baseModel}\`: epoch ${checkpoint.epoch} (step ${checkpoint.step}) won the vote.`,
      );
      const votes = await tally(deps.db, training.id);
      lines.push(`Votes: ${votes.map((v) => `epoch ${v.epoch}: ${v.votes}`).join(' · ')}`);
      const settings = Object.entries(training.config)
        .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))
        .slice(0, 10)
        .map(([k, v]) => `${k}=${String(v)}`);
      if (settings.length) lines.push(`Training settings: ${settings.join(', ')}`);
      const evaluation = readEvaluation(training);
      const measures = evaluation?.measures.find((m) => m.checkpointId === checkpoint.id);
      if (measures?.note) lines.push(`Measures: ${measures.note}`);
      const gridKey = evaluation?.overviewKey ?? evaluation?.gridKeys[0]?.[0];
      if (gridKey && (await deps.store.exists(gridKey))) {
        const data = await deps.store.getBuffer(gridKey);
        const limit = deps.uploadLimits.forGuild(interaction.guild);
        if (data.length < limit - 1024)
          files.push({ attachment: data, name: `grid.${gridKey.split('.').pop() ?? 'jpg'}` });
      }
    }
  }
  await interaction.editReply({
    content: lines.join('\n').slice(0, 1900),
    files,
    allowedMentions: { parse: [] },
  });
}

async function styleDefault(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  style: Style,
): Promise<void> {
  if (!interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) {
    throw new InputError('Choosing the server default style is for members with Manage Server.');
  }
  if (style.status !== 'ready')
    throw new InputError(
      `“${style.name}” is ${style.status}, not ready; only a ready style can be the default.`,
    );
  await getGuildSettings(deps.db, style.guildId);
  await deps.db
    .update(guildSettings)
    .set({ defaultStyle: style.name })
    .where(eq(guildSettings.guildId, style.guildId));
  await interaction.reply({
    content: `⭐ **${style.name}** is now this server's default style for \`/comic new\`.`,
    allowedMentions: { parse: [] },
  });
}

async function styleRetire(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  style: Style,
): Promise<void> {
  const settings = await getGuildSettings(deps.db, style.guildId);
  if (!mayTrain(interaction, settings))
    throw new InputError('Retiring a style is for members with the trainer role or Manage Server.');
  if (style.status === 'retired') throw new InputError(`“${style.name}” is already retired.`);
  await deps.db.update(styles).set({ status: 'retired' }).where(eq(styles.id, style.id));
  const wasDefault = settings.defaultStyle?.toLowerCase() === style.name.toLowerCase();
  if (wasDefault)
    await deps.db
      .update(guildSettings)
      .set({ defaultStyle: null })
      .where(eq(guildSettings.guildId, style.guildId));
  await interaction.reply({
    content: `🗄️ **${style.name}** is retired: \`/comic new\` no longer offers it${wasDefault ? ', and the server has no default style now' : ''}. Comics already made keep their pictures.`,
    allowedMentions: { parse: [] },
  });
}
