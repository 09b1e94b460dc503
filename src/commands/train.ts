/**
 * `/train style | status | cancel | role` — the definition Discord shows, and the option schemas the
 * handler (train-handler.ts) parses with.
 */
import { InteractionContextType, SlashCommandBuilder, type SlashCommandSubcommandBuilder } from 'discord.js';
import { z } from 'zod';

export const TRAIN_BASES = ['illustrious', 'noobai', 'flux'] as const;
/** Attachment options `image1` … `image10` (Discord allows 25 options; 10 images fit one upload). */
export const MAX_IMAGE_OPTIONS = 10;
export const IMAGE_OPTION_NAMES = Array.from({ length: MAX_IMAGE_OPTIONS }, (_, i) => `image${i + 1}`);
/** How many of the channel's recent images `from_channel` may take. */
export const MAX_FROM_CHANNEL = 300;
export const STYLE_NAME_MAX_LENGTH = 64;
export const TRAINING_ID_MAX_LENGTH = 64;
/** The character's name as typed; the handler finds it in the guild's cast whatever its case. */
const CHARACTER_NAME_OPTION_MAX = 40;

const BASE_LABELS: Record<(typeof TRAIN_BASES)[number], string> = {
  illustrious: 'Illustrious XL (kohya)',
  noobai: 'NoobAI-XL v-pred (kohya)',
  flux: 'FLUX.1-dev (ai-toolkit)',
};

/** The options every training from images has, after its own: base, zip, from_channel, image1…image10. */
function withBaseAndImages(
  sub: SlashCommandSubcommandBuilder,
  imageDescription: string,
): SlashCommandSubcommandBuilder {
  sub
    .addStringOption((o) =>
      o
        .setName('base')
        .setDescription('The base model to train on')
        .setRequired(true)
        .addChoices(...TRAIN_BASES.map((base) => ({ name: BASE_LABELS[base], value: base }))),
    )
    .addAttachmentOption((o) => o.setName('zip').setDescription('A zip of the training images'))
    .addIntegerOption((o) =>
      o
        .setName('from_channel')
        .setDescription("Use this many of the channel's most recent images")
        .setMinValue(1)
        .setMaxValue(MAX_FROM_CHANNEL),
    );
  for (const name of IMAGE_OPTION_NAMES)
    sub.addAttachmentOption((o) => o.setName(name).setDescription(imageDescription));
  return sub;
}

export const trainCommand = new SlashCommandBuilder()
  .setName('train')
  .setDescription('Train a style or character LoRA on the GPU box')
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) => {
    sub
      .setName('style')
      .setDescription('Train a style from images: attachments, a zip, or the last images of this channel')
      .addStringOption((o) =>
        o
          .setName('name')
          .setDescription('The style name people will pick')
          .setRequired(true)
          .setMinLength(1)
          .setMaxLength(STYLE_NAME_MAX_LENGTH),
      )
      .addStringOption((o) =>
        o
          .setName('trigger')
          .setDescription('One rare word the LoRA learns the style under (letters, digits, - or _)')
          .setRequired(true)
          .setMinLength(1)
          .setMaxLength(40),
      );
    return withBaseAndImages(sub, 'A training image');
  })
  .addSubcommand((sub) => {
    sub
      .setName('character')
      .setDescription("Train a cast character's LoRA from 8+ pictures of them (20–40 is best)")
      .addStringOption((o) =>
        o
          .setName('name')
          .setDescription('The character (from /character list)')
          .setRequired(true)
          .setMinLength(1)
          .setMaxLength(CHARACTER_NAME_OPTION_MAX),
      );
    return withBaseAndImages(sub, 'A picture of the character');
  })
  .addSubcommand((sub) =>
    sub
      .setName('status')
      .setDescription("Where a training stands (default: this server's latest)")
      .addStringOption((o) =>
        o.setName('id').setDescription('The training id').setMaxLength(TRAINING_ID_MAX_LENGTH),
      ),
  )
  .addSubcommand((sub) =>
    sub
      .setName('cancel')
      .setDescription('Stop a training (yours, or any with the trainer role or Manage Server)')
      .addStringOption((o) =>
        o
          .setName('id')
          .setDescription('The training id')
          .setRequired(true)
          .setMaxLength(TRAINING_ID_MAX_LENGTH),
      ),
  )
  .addSubcommand((sub) =>
    sub
      .setName('role')
      .setDescription(
        'Set the role allowed to train styles (Manage Server); leave empty for Manage Server only',
      )
      .addRoleOption((o) => o.setName('role').setDescription('The trainer role')),
  );

/** One word, as kohya keeps it first in every caption (the same rule as `dataset prepare`). */
export const TRIGGER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;

export const TrainStyleOptions = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'give the style a name')
    .max(STYLE_NAME_MAX_LENGTH)
    .refine((v) => !/[\n\r`@<>]/.test(v), 'the name may not contain line breaks, backticks, @ or < >'),
  trigger: z
    .string()
    .trim()
    .regex(
      TRIGGER_PATTERN,
      'one word of letters, digits, "-" or "_" (at most 40 characters), starting with a letter or digit',
    ),
  base: z.enum(TRAIN_BASES),
  from_channel: z.number().int().min(1).max(MAX_FROM_CHANNEL).optional(),
});
export type TrainStyleOptions = z.infer<typeof TrainStyleOptions>;

export const TrainCharacterOptions = z.object({
  name: z.string().trim().min(1, 'name the character to train').max(CHARACTER_NAME_OPTION_MAX),
  base: z.enum(TRAIN_BASES),
  from_channel: z.number().int().min(1).max(MAX_FROM_CHANNEL).optional(),
});
export type TrainCharacterOptions = z.infer<typeof TrainCharacterOptions>;

const TrainingId = z
  .string()
  .trim()
  .regex(/^[0-9a-f-]{36}$/i, 'a training id looks like 0b7c…-…, as in the training’s status message');

export const TrainStatusOptions = z.object({ id: TrainingId.optional() });
export const TrainCancelOptions = z.object({ id: TrainingId });
export const TrainRoleOptions = z.object({
  role: z
    .string()
    .regex(/^\d{1,24}$/)
    .optional(),
});
