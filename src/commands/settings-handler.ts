/**
 * `/settings show | set | test-prompts`: the per-server settings that the comic flow (limits, default
 * model, mature content), the vote (its duration, blind labels) and the evaluation (test prompts) read
 * from guild_settings. Everyone may look; changing is for Manage Server, and every answer is private.
 */
import { MessageFlags, PermissionFlagsBits, type ChatInputCommandInteraction } from 'discord.js';
import type { BotDeps } from '../bot/deps.ts';
import { FAMILIES, familyAvailability } from '../comic/families.ts';
import { getGuildSettings, updateGuildSettings, type GuildSettingsPatch } from '../db/guild-settings.ts';
import type { GuildSettings } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { DEFAULT_TEST_PROMPTS } from '../evaluation/plan.ts';
import type { CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';
import { SettingsSetOptions, SettingsTestPromptsOptions } from './settings.ts';

/** Why "age-restricted": the one place Discord itself checks that viewers are adults. */
export const AGE_RESTRICTED_EXPLANATION =
  'Age-restricted channels are the ones a server marks as such in Discord (Edit Channel → Age-Restricted Channel); Discord asks members to confirm they are adults before showing them. Everywhere else, renders stay safe for work.';

const MATURE_LABELS: Record<GuildSettings['nsfwPolicy'], string> = {
  block: 'blocked: every render is kept safe for work',
  nsfw_channels_only: 'only in age-restricted channels; safe for work everywhere else',
};

export const settingsHandler: CommandHandler = {
  name: 'settings',
  async execute(interaction, deps) {
    if (!interaction.guildId) throw new InputError('Settings belong to a server; use this command in one.');
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'show') return settingsShow(interaction, deps, interaction.guildId);
    if (sub === 'set') return settingsSet(interaction, deps, interaction.guildId);
    if (sub === 'test-prompts') return settingsTestPrompts(interaction, deps, interaction.guildId);
    throw new InputError(`\`/settings ${sub}\` is not something I can do.`);
  },
};

function requireManageServer(interaction: ChatInputCommandInteraction): void {
  if (!interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) {
    throw new InputError(
      "Only members with Manage Server can change this server's settings. `/settings show` shows them.",
    );
  }
}

async function reply(interaction: ChatInputCommandInteraction, content: string): Promise<void> {
  await interaction.reply({
    content: content.slice(0, 2000),
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

// ---------- show ----------

async function settingsShow(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  guildId: string,
): Promise<void> {
  const settings = await getGuildSettings(deps.db, guildId);
  await reply(interaction, settingsText(settings));
}

/** Every setting a member can change, as the server sees it. */
export function settingsText(settings: GuildSettings): string {
  const prompts = settings.testPrompts.length > 0 ? settings.testPrompts : DEFAULT_TEST_PROMPTS;
  return [
    "⚙️ **This server's settings** (Manage Server changes them with `/settings set` and `/settings test-prompts`)",
    `• Comics in the making per member: **${settings.maxInFlightPerUser}** (\`comics_per_member\`)`,
    `• Comics in the making for the whole server: **${settings.maxInFlightPerGuild}** (\`comics_per_server\`)`,
    `• Default model: **${familyLabel(settings.defaultModelFamily)}** (\`default_model\`)`,
    `• Default style: ${settings.defaultStyle ? `**${settings.defaultStyle}**` : 'none'} (\`/style default\`)`,
    `• Mature content: ${MATURE_LABELS[settings.nsfwPolicy]} (\`mature_content\`)`,
    `• Votes on trained checkpoints stay open **${hours(settings.voteMinutes)}** (\`vote_hours\`), ${settings.blindVotes ? '**blind**: labelled A, B, C… in a random order' : '**not blind**: labelled by epoch'} (\`blind_votes\`)`,
    `• Who may train: ${settings.trainerRoleId ? `<@&${settings.trainerRoleId}> and Manage Server` : 'Manage Server only'} (\`/train role\`)`,
    `• Test prompts for evaluating trainings (${settings.testPrompts.length > 0 ? "this server's" : 'the built-in ones'}; the trigger word goes in front):`,
    ...prompts.map((p, i) => `  ${i + 1}. ${p}`),
  ].join('\n');
}

function familyLabel(family: GuildSettings['defaultModelFamily']): string {
  return `${FAMILIES[family].label} (${family})`;
}

function hours(minutes: number): string {
  const h = minutes / 60;
  const text = Number.isInteger(h) ? String(h) : h.toFixed(1);
  return `${text} hour${h === 1 ? '' : 's'}`;
}

// ---------- set ----------

async function settingsSet(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  guildId: string,
): Promise<void> {
  const options = parseOptions(SettingsSetOptions, optionValues(interaction), 'settings set');
  requireManageServer(interaction);
  if (options.default_model) {
    // The choices leave experimental families out; this also catches one an operator turned off.
    const availability = familyAvailability(options.default_model, deps.config.ENABLE_EXPERIMENTAL_FAMILIES);
    if (!availability.usable) throw new InputError(availability.reason);
  }
  const patch: GuildSettingsPatch = {
    ...(options.comics_per_member !== undefined ? { maxInFlightPerUser: options.comics_per_member } : {}),
    ...(options.comics_per_server !== undefined ? { maxInFlightPerGuild: options.comics_per_server } : {}),
    ...(options.default_model !== undefined ? { defaultModelFamily: options.default_model } : {}),
    ...(options.mature_content !== undefined ? { nsfwPolicy: options.mature_content } : {}),
    ...(options.vote_hours !== undefined ? { voteMinutes: options.vote_hours * 60 } : {}),
    ...(options.blind_votes !== undefined ? { blindVotes: options.blind_votes } : {}),
  };
  const settings = await updateGuildSettings(deps.db, guildId, patch);
  deps.logger.info(
    { guildId, userId: interaction.user.id, interactionId: interaction.id, patch },
    'guild settings changed',
  );

  const lines = ['✅ Saved.'];
  if (options.comics_per_member !== undefined) {
    lines.push(
      `• Each member may have **${settings.maxInFlightPerUser}** comic${settings.maxInFlightPerUser === 1 ? '' : 's'} in the making at once.`,
    );
  }
  if (options.comics_per_server !== undefined) {
    lines.push(
      `• The whole server may have **${settings.maxInFlightPerGuild}** comic${settings.maxInFlightPerGuild === 1 ? '' : 's'} in the making at once.`,
    );
  }
  if (options.default_model !== undefined) {
    lines.push(
      `• \`/comic new\` without \`model\` now draws with **${familyLabel(settings.defaultModelFamily)}**.`,
    );
  }
  if (options.mature_content !== undefined) {
    lines.push(`• Mature content: ${MATURE_LABELS[settings.nsfwPolicy]}.`, `  ${AGE_RESTRICTED_EXPLANATION}`);
  }
  if (options.vote_hours !== undefined) {
    lines.push(
      `• Votes on new trainings stay open **${hours(settings.voteMinutes)}** (a vote already open keeps its deadline).`,
    );
  }
  if (options.blind_votes !== undefined) {
    lines.push(
      settings.blindVotes
        ? '• Votes are **blind**: checkpoints are labelled A, B, C… in a random order, revealed when the vote closes.'
        : '• Votes are **not blind**: checkpoints are labelled by epoch.',
    );
  }
  await reply(interaction, lines.join('\n'));
}

// ---------- test prompts ----------

async function settingsTestPrompts(
  interaction: ChatInputCommandInteraction,
  deps: BotDeps,
  guildId: string,
): Promise<void> {
  const options = parseOptions(
    SettingsTestPromptsOptions,
    optionValues(interaction),
    'settings test-prompts',
  );
  requireManageServer(interaction);
  const settings = await updateGuildSettings(deps.db, guildId, {
    testPrompts: options.reset ? [] : options.prompts,
  });
  deps.logger.info(
    {
      guildId,
      userId: interaction.user.id,
      interactionId: interaction.id,
      testPrompts: settings.testPrompts.length,
    },
    'guild test prompts changed',
  );
  const shown = settings.testPrompts.length > 0 ? settings.testPrompts : DEFAULT_TEST_PROMPTS;
  await reply(
    interaction,
    [
      settings.testPrompts.length > 0
        ? `✅ New trainings are evaluated on ${shown.length === 1 ? 'this test prompt' : `these ${shown.length} test prompts`}, each rendered as \`<trigger>, <prompt>\`:`
        : '✅ Back to the four built-in test prompts, each rendered as `<trigger>, <prompt>`:',
      ...shown.map((p, i) => `${i + 1}. ${p}`),
    ].join('\n'),
  );
}
