/**
 * `/comic new | show | cancel` and the `style` autocomplete.
 *
 * `/comic new` checks what needs no I/O first (options, the bot's channel permissions), refusing
 * ephemerally with nothing queued; then it defers (Discord's 3 s deadline) before any database work,
 * and hands the comic to the flow. Everything after that is posted by the `post` worker through
 * channel messages, so the 15-minute interaction token does not matter.
 */
import { MessageFlags, PermissionFlagsBits, type ChatInputCommandInteraction } from 'discord.js';
import { and, asc, eq, ilike } from 'drizzle-orm';
import { cancelComic, startComic } from '../comic/flow/index.ts';
import { getComic } from '../db/comics.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { styles, type Comic, type GuildSettings } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import type { BotDeps } from '../bot/deps.ts';
import { describeMissingPermissions, missingFromPermissions } from '../bot/permissions.ts';
import { readProgress, statusText } from '../bot/status-message.ts';
import {
  ComicCancelOptions,
  ComicNewOptions,
  ComicShowOptions,
  StyleAutocompleteQuery,
  type ComicNewOptions as ComicNewValues,
} from './comic.ts';
import { comicExport } from './comic-export-handler.ts';
import { MAX_AUTOCOMPLETE_CHOICES, type CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';

export const SAFE_OUTPUT_NOTE =
  'Renders are kept safe for work here: only age-restricted channels may receive unrestricted output.';

export const comicHandler: CommandHandler = {
  name: 'comic',
  async execute(interaction, deps) {
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'new') return comicNew(interaction, deps);
    if (sub === 'show') return comicShow(interaction, deps);
    if (sub === 'cancel') return comicCancel(interaction, deps);
    if (sub === 'export') return comicExport(interaction, deps);
    throw new InputError(`\`/comic ${sub}\` is not something I can do.`);
  },
  async autocomplete(interaction, deps) {
    const focused = interaction.options.getFocused(true);
    if (focused.name !== 'style' || !interaction.guildId) return interaction.respond([]);
    const typed = StyleAutocompleteQuery.parse(focused.value).trim();
    const names = await readyStyleNames(deps, interaction.guildId, typed);
    await interaction.respond(names.map((name) => ({ name, value: name })));
  },
};

/** The guild's ready styles whose name contains what was typed, at most 25 (Discord's cap). */
export async function readyStyleNames(
  deps: Pick<BotDeps, 'db'>,
  guildId: string,
  typed: string,
): Promise<string[]> {
  const pattern = `%${typed.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const rows = await deps.db
    .select({ name: styles.name })
    .from(styles)
    .where(and(eq(styles.guildId, guildId), eq(styles.status, 'ready'), ilike(styles.name, pattern)))
    .orderBy(asc(styles.name))
    .limit(MAX_AUTOCOMPLETE_CHOICES);
  return rows.map((r) => r.name);
}

async function comicNew(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const options = parseOptions(ComicNewOptions, optionValues(interaction), 'comic new');
  const guildId = requireGuild(interaction);

  const inThread = interaction.channel?.isThread() ?? false;
  const missing = missingFromPermissions(interaction.appPermissions, inThread);
  if (missing.length > 0) {
    await interaction.reply({ content: describeMissingPermissions(missing), flags: MessageFlags.Ephemeral });
    return;
  }

  // Within Discord's 3 s, before any database or queue work.
  await interaction.deferReply();

  const settings = await getGuildSettings(deps.db, guildId);
  const safe = settings.nsfwPolicy === 'block' || !isAgeRestricted(interaction);
  const request = comicRequest(options, settings);
  const result = await startComic(deps, {
    guildId,
    channelId: interaction.channelId,
    userId: interaction.user.id,
    prompt: options.prompt,
    options: { ...request, safe },
    limits: { perUser: settings.maxInFlightPerUser, perGuild: settings.maxInFlightPerGuild },
  });
  if (!result.ok) {
    await interaction.editReply({ content: `⚠️ ${result.reason}` });
    return;
  }
  const { comic } = result;
  const lines = [
    `🖋️ Comic \`${comic.id}\` is on its way: ${plural(comic.options.pages, 'page')} of ${plural(comic.options.panelsPerPage, 'panel')}.`,
    `I'll post the storyboard first, then every panel (react 🔁 on one to draw it again) and every page, here in this channel.`,
  ];
  if (safe) lines.push(SAFE_OUTPUT_NOTE);
  await interaction.editReply({ content: lines.join('\n') });
}

function comicRequest(options: ComicNewValues, settings: GuildSettings) {
  return {
    pages: options.pages ?? settings.defaultPages,
    panelsPerPage: options.panels ?? settings.defaultPanelsPerPage,
    style: options.style ?? settings.defaultStyle ?? null,
    model: options.model ?? settings.defaultModelFamily,
    rtl: options.rtl ?? settings.defaultRtl,
    ...(options.lettering ? { lettering: options.lettering } : {}),
  };
}

/** Age-restricted (channel.nsfw); a thread inherits it from its parent. */
function isAgeRestricted(interaction: ChatInputCommandInteraction): boolean {
  const channel = interaction.channel;
  if (!channel || channel.isDMBased()) return false;
  if (channel.isThread()) return channel.parent?.nsfw ?? false;
  return 'nsfw' in channel ? Boolean(channel.nsfw) : false;
}

async function comicShow(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { id } = parseOptions(ComicShowOptions, optionValues(interaction), 'comic show');
  const comic = await comicOfGuild(deps, id, requireGuild(interaction));
  const progress = await readProgress(deps.db, comic, deps.producer.queue('render'));
  const lines = [statusText(comic, progress)];
  const link = (messageId: string) =>
    `https://discord.com/channels/${comic.guildId}/${comic.channelId}/${messageId}`;
  if (comic.storyboardMessageIds[0]) lines.push(`Storyboard: ${link(comic.storyboardMessageIds[0])}`);
  if (comic.statusMessageId) lines.push(`Progress: ${link(comic.statusMessageId)}`);
  lines.push(`Started by <@${comic.userId}> in <#${comic.channelId}>: “${truncate(comic.prompt, 200)}”`);
  await interaction.reply({
    content: lines.join('\n'),
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

async function comicCancel(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { id } = parseOptions(ComicCancelOptions, optionValues(interaction), 'comic cancel');
  const comic = await comicOfGuild(deps, id, requireGuild(interaction));
  const asModerator = interaction.memberPermissions?.has(PermissionFlagsBits.ManageMessages) ?? false;
  if (comic.userId !== interaction.user.id && !asModerator) {
    throw new InputError(
      'Only the member who started that comic, or someone with Manage Messages, can cancel it.',
    );
  }
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const result = await cancelComic(deps, comic.id, interaction.user.id, { asModerator });
  await interaction.editReply({
    content: result.cancelled ? `🛑 Comic \`${comic.id}\` is cancelled.` : `⚠️ ${result.reason}`,
  });
}

/** A comic of this guild; another guild's comic is "not found" (ids are not a way to peek). */
async function comicOfGuild(deps: BotDeps, id: string, guildId: string): Promise<Comic> {
  const comic = await getComic(deps.db, id);
  if (!comic || comic.guildId !== guildId) {
    throw new InputError(
      `There is no comic \`${id}\` on this server. The id is in the comic's status message.`,
    );
  }
  return comic;
}

function requireGuild(interaction: ChatInputCommandInteraction): string {
  if (!interaction.guildId)
    throw new InputError('Comics are made in a server channel, not in direct messages.');
  return interaction.guildId;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
