/**
 * `/character create | list | show | edit | delete` — the guild's cast. The definition Discord shows,
 * and the option schemas the handler parses with (attachments are read from the interaction itself).
 */
import { InteractionContextType, SlashCommandBuilder, type SlashCommandSubcommandBuilder } from 'discord.js';
import { z } from 'zod';
import {
  APPEARANCE_TEXT_MAX,
  AppearanceText,
  CHARACTER_NAME_MAX,
  CharacterName,
} from '../characters/appearance.ts';
import { CHARACTER_LORA_MAX, CHARACTER_LORA_MIN } from '../characters/cast.ts';
import { MAX_REFERENCE_IMAGES } from '../characters/reference-images.ts';

export const LORA_FILE_MAX = 120;
export const TRIGGER_MAX = 60;

/** The attachment options, in order: image1, image2, image3. */
export const REFERENCE_IMAGE_OPTIONS = Array.from(
  { length: MAX_REFERENCE_IMAGES },
  (_, i) => `image${i + 1}`,
);

const nameOption = (sub: SlashCommandSubcommandBuilder, autocomplete: boolean) =>
  sub.addStringOption((o) =>
    o
      .setName('name')
      .setDescription("The character's name")
      .setRequired(true)
      .setMaxLength(CHARACTER_NAME_MAX)
      .setAutocomplete(autocomplete),
  );

const imageOptions = (sub: SlashCommandSubcommandBuilder, description: string) => {
  for (const name of REFERENCE_IMAGE_OPTIONS)
    sub.addAttachmentOption((o) => o.setName(name).setDescription(description));
  return sub;
};

export const characterCommand = new SlashCommandBuilder()
  .setName('character')
  .setDescription("This server's cast of recurring characters")
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) =>
    imageOptions(
      nameOption(sub.setName('create').setDescription('Add a character to the cast'), false).addStringOption(
        (o) =>
          o
            .setName('appearance')
            .setDescription('Fixed look as short comma-separated tags: red hair, green eyes, yellow raincoat')
            .setRequired(true)
            .setMaxLength(APPEARANCE_TEXT_MAX),
      ),
      'A reference picture of the character (JPEG, PNG or WebP)',
    ),
  )
  .addSubcommand((sub) => sub.setName('list').setDescription("The server's characters"))
  .addSubcommand((sub) => nameOption(sub.setName('show').setDescription('Show one character'), true))
  .addSubcommand((sub) =>
    imageOptions(
      nameOption(
        sub.setName('edit').setDescription('Change a character (yours, or any with Manage Messages)'),
        true,
      )
        .addStringOption((o) =>
          o
            .setName('appearance')
            .setDescription('New look, as comma-separated tags')
            .setMaxLength(APPEARANCE_TEXT_MAX),
        )
        .addStringOption((o) =>
          o
            .setName('lora')
            .setDescription('LoRA file of the character (name.safetensors), or "none" to remove it')
            .setMaxLength(LORA_FILE_MAX),
        )
        .addStringOption((o) =>
          o.setName('trigger').setDescription("The LoRA's trigger word").setMaxLength(TRIGGER_MAX),
        )
        .addNumberOption((o) =>
          o
            .setName('strength')
            .setDescription(`LoRA strength (${CHARACTER_LORA_MIN}–${CHARACTER_LORA_MAX})`)
            .setMinValue(CHARACTER_LORA_MIN)
            .setMaxValue(CHARACTER_LORA_MAX),
        ),
      'A new reference picture (replaces the old ones)',
    ),
  )
  .addSubcommand((sub) =>
    nameOption(
      sub.setName('delete').setDescription('Remove a character (yours, or any with Manage Messages)'),
      true,
    ),
  );

export const CharacterCreateOptions = z.object({ name: CharacterName, appearance: AppearanceText });
export type CharacterCreateOptions = z.infer<typeof CharacterCreateOptions>;

export const CharacterNameOptions = z.object({ name: CharacterName });
export type CharacterNameOptions = z.infer<typeof CharacterNameOptions>;

const LoraFile = z
  .string()
  .trim()
  .max(LORA_FILE_MAX)
  .regex(
    /^(none|[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors)$/i,
    'a LoRA file name such as mira_v1.safetensors, or "none"',
  );

export const CharacterEditOptions = z.object({
  name: CharacterName,
  appearance: AppearanceText.optional(),
  lora: LoraFile.optional(),
  trigger: z
    .string()
    .trim()
    .min(1)
    .max(TRIGGER_MAX)
    .regex(/^[^,()\n]+$/, 'one trigger word or phrase, without commas or brackets')
    .optional(),
  strength: z.number().min(CHARACTER_LORA_MIN).max(CHARACTER_LORA_MAX).optional(),
});
export type CharacterEditOptions = z.infer<typeof CharacterEditOptions>;

/** Autocomplete of `name`: the text typed so far (may be empty). */
export const CharacterAutocompleteQuery = z.string().max(CHARACTER_NAME_MAX).catch('');
