/**
 * `/character create | list | show | edit | delete` and the `name` autocomplete.
 *
 * Anyone may add a character; only its owner, or a member with Manage Messages or Manage Guild, may
 * change or delete it. Reference images are downloaded and checked after the deferral (Discord's 3 s
 * deadline), all of them before any is stored.
 */
import { randomUUID } from 'node:crypto';
import {
  MessageFlags,
  PermissionFlagsBits,
  type Attachment,
  type ChatInputCommandInteraction,
} from 'discord.js';
import { and, asc, eq, ilike } from 'drizzle-orm';
import { characterLoraOf } from '../characters/cast.ts';
import { storeReferenceImages } from '../characters/reference-images.ts';
import {
  createCharacter,
  deleteCharacter,
  findCharacter,
  listCharacters,
  requireCharacter,
  updateCharacter,
  type CharacterChanges,
} from '../characters/repository.ts';
import { characters, type Character } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import type { BotDeps } from '../bot/deps.ts';
import { artifactKeys } from '../store/keys.ts';
import {
  CharacterAutocompleteQuery,
  CharacterCreateOptions,
  CharacterEditOptions,
  CharacterNameOptions,
  REFERENCE_IMAGE_OPTIONS,
} from './character.ts';
import { MAX_AUTOCOMPLETE_CHOICES, type CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';

export const characterHandler: CommandHandler = {
  name: 'character',
  async execute(interaction, deps) {
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'create') return characterCreate(interaction, deps);
    if (sub === 'list') return characterList(interaction, deps);
    if (sub === 'show') return characterShow(interaction, deps);
    if (sub === 'edit') return characterEdit(interaction, deps);
    if (sub === 'delete') return characterDelete(interaction, deps);
    throw new InputError(`\`/character ${sub}\` is not something I can do.`);
  },
  async autocomplete(interaction, deps) {
    const focused = interaction.options.getFocused(true);
    if (focused.name !== 'name' || !interaction.guildId) return interaction.respond([]);
    const typed = CharacterAutocompleteQuery.parse(focused.value).trim();
    const pattern = `%${typed.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = await deps.db
      .select({ name: characters.name })
      .from(characters)
      .where(and(eq(characters.guildId, interaction.guildId), ilike(characters.name, pattern)))
      .orderBy(asc(characters.name))
      .limit(MAX_AUTOCOMPLETE_CHOICES);
    await interaction.respond(rows.map((r) => ({ name: r.name, value: r.name })));
  },
};

async function characterCreate(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const options = parseOptions(CharacterCreateOptions, optionValues(interaction), 'character create');
  const guildId = requireGuild(interaction);
  const images = attachedImages(interaction);
  // Refuse a taken name before downloading anything; the unique index still decides a race.
  if (await findCharacter(deps.db, guildId, options.name)) {
    throw new InputError(
      `There is already a character called “${options.name}” on this server. Pick another name, or \`/character edit\` it.`,
    );
  }
  await interaction.deferReply();

  const id = randomUUID();
  const keys = await storeReferenceImages(deps.store, guildId, id, images);
  let character: Character;
  try {
    character = await createCharacter(deps.db, {
      id,
      guildId,
      name: options.name,
      appearance: options.appearance,
      ownerId: interaction.user.id,
      referenceImageKeys: keys,
    });
  } catch (error) {
    await deleteKeys(deps, keys);
    throw error;
  }
  deps.logger.info({ guildId, characterId: character.id, images: keys.length }, 'character created');
  await interaction.editReply({
    content: [
      `🎭 **${character.name}** joined the cast: ${character.appearance.join(', ')}.`,
      referencesLine(character),
      `Name ${character.name} in a \`/comic new\` story and they appear with this look.`,
    ].join('\n'),
    allowedMentions: { parse: [] },
  });
}

async function characterList(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const guildId = requireGuild(interaction);
  const cast = await listCharacters(deps.db, guildId);
  if (cast.length === 0) {
    await interaction.reply({
      content: 'This server has no characters yet. Add one with `/character create`.',
      flags: MessageFlags.Ephemeral,
    });
    return;
  }
  const shown = cast.slice(0, 25);
  const lines = shown.map(
    (c) =>
      `• **${c.name}** — ${truncate(c.appearance.join(', '), 120)}${c.loraArtifactKey ? ' · LoRA' : ''}${c.referenceImageKeys.length ? ` · ${c.referenceImageKeys.length} 🖼️` : ''}`,
  );
  if (cast.length > shown.length) lines.push(`…and ${cast.length - shown.length} more.`);
  await interaction.reply({
    content: [`🎭 The cast (${cast.length}):`, ...lines].join('\n'),
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

async function characterShow(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { name } = parseOptions(CharacterNameOptions, optionValues(interaction), 'character show');
  const character = await requireCharacter(deps.db, requireGuild(interaction), name);
  const lora = characterLoraOf(character);
  const lines = [
    `🎭 **${character.name}**`,
    `Appearance: ${character.appearance.join(', ')}`,
    referencesLine(character),
    lora
      ? `LoRA: \`${lora.name}\` (trigger “${lora.trigger}”, strength ${lora.strength})`
      : 'LoRA: none (drawn from the appearance tags).',
    `Created by <@${character.ownerId}>.`,
  ];
  await interaction.reply({
    content: lines.join('\n'),
    flags: MessageFlags.Ephemeral,
    allowedMentions: { parse: [] },
  });
}

async function characterEdit(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const options = parseOptions(CharacterEditOptions, optionValues(interaction), 'character edit');
  const guildId = requireGuild(interaction);
  const character = await requireCharacter(deps.db, guildId, options.name);
  assertMayChange(interaction, character, 'edit');
  const images = attachedImages(interaction);

  const changes: CharacterChanges = {};
  if (options.appearance) changes.appearance = options.appearance;
  Object.assign(changes, loraChanges(character, options));
  if (images.length === 0 && Object.keys(changes).length === 0) {
    throw new InputError(
      'Nothing to change: give a new `appearance`, reference images, or a `lora` with its `trigger`.',
    );
  }
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });

  const newKeys =
    images.length > 0 ? await storeReferenceImages(deps.store, guildId, character.id, images) : null;
  if (newKeys) changes.referenceImageKeys = newKeys;
  const updated = await updateCharacter(deps.db, character.id, changes);
  if (newKeys)
    await deleteKeys(
      deps,
      character.referenceImageKeys.filter((k) => !newKeys.includes(k)),
    );
  deps.logger.info({ guildId, characterId: character.id, changed: Object.keys(changes) }, 'character edited');

  const lora = characterLoraOf(updated);
  await interaction.editReply({
    content: [
      `✏️ **${updated.name}** is updated: ${updated.appearance.join(', ')}.`,
      referencesLine(updated),
      lora ? `LoRA: \`${lora.name}\` (trigger “${lora.trigger}”, strength ${lora.strength}).` : 'No LoRA.',
    ].join('\n'),
    allowedMentions: { parse: [] },
  });
}

/** What the `lora`, `trigger` and `strength` options change; a LoRA always comes with its trigger. */
function loraChanges(character: Character, options: CharacterEditOptions): CharacterChanges {
  if (options.lora?.toLowerCase() === 'none') {
    return { loraArtifactKey: null, loraTrigger: null, loraStrength: null };
  }
  const changes: CharacterChanges = {};
  if (options.lora) changes.loraArtifactKey = artifactKeys.lora(options.lora);
  if (options.trigger) changes.loraTrigger = options.trigger;
  if (options.strength !== undefined) changes.loraStrength = options.strength;
  const key = changes.loraArtifactKey ?? character.loraArtifactKey;
  const trigger = changes.loraTrigger ?? character.loraTrigger;
  if ((options.trigger || options.strength !== undefined) && !key) {
    throw new InputError(`${character.name} has no LoRA yet: give the \`lora\` file name too.`);
  }
  if (key && !trigger) throw new InputError('A LoRA needs its `trigger` word, the one it was trained with.');
  return changes;
}

async function characterDelete(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { name } = parseOptions(CharacterNameOptions, optionValues(interaction), 'character delete');
  const guildId = requireGuild(interaction);
  const character = await requireCharacter(deps.db, guildId, name);
  assertMayChange(interaction, character, 'delete');
  await deleteCharacter(deps.db, character.id);
  await deleteKeys(deps, character.referenceImageKeys);
  deps.logger.info({ guildId, characterId: character.id }, 'character deleted');
  await interaction.reply({
    content: `🗑️ **${character.name}** left the cast. Comics already made keep their pictures.`,
    allowedMentions: { parse: [] },
  });
}

/** The owner, or a moderator (Manage Messages or Manage Guild). */
function assertMayChange(interaction: ChatInputCommandInteraction, character: Character, verb: string): void {
  const permissions = interaction.memberPermissions;
  const moderator =
    (permissions?.has(PermissionFlagsBits.ManageMessages) ?? false) ||
    (permissions?.has(PermissionFlagsBits.ManageGuild) ?? false);
  if (character.ownerId !== interaction.user.id && !moderator) {
    throw new InputError(
      `Only the member who created ${character.name}, or someone with Manage Messages or Manage Server, can ${verb} them.`,
    );
  }
}

function attachedImages(interaction: ChatInputCommandInteraction): Attachment[] {
  return REFERENCE_IMAGE_OPTIONS.map((name) => interaction.options.getAttachment(name)).filter(
    (a): a is Attachment => a !== null,
  );
}

async function deleteKeys(deps: BotDeps, keys: readonly string[]): Promise<void> {
  for (const key of keys) {
    await deps.store
      .delete(key)
      .catch((err: unknown) => deps.logger.warn({ key, err }, 'could not delete a reference image'));
  }
}

function referencesLine(character: Character): string {
  const n = character.referenceImageKeys.length;
  return n === 0
    ? 'No reference images (add some with `/character edit` to keep the face steady).'
    : `${n} reference image${n === 1 ? '' : 's'}, used on GPU boxes with IPAdapter.`;
}

function requireGuild(interaction: ChatInputCommandInteraction): string {
  if (!interaction.guildId)
    throw new InputError('Characters belong to a server: use this in a server channel.');
  return interaction.guildId;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
