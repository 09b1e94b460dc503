/** `/style list | info | default | retire` — the server's trained styles. */
import { InteractionContextType, SlashCommandBuilder, type SlashCommandSubcommandBuilder } from 'discord.js';
import { z } from 'zod';

const nameOption = (sub: SlashCommandSubcommandBuilder) =>
  sub.addStringOption((o) =>
    o.setName('name').setDescription('The style').setRequired(true).setAutocomplete(true).setMaxLength(64),
  );

export const styleCommand = new SlashCommandBuilder()
  .setName('style')
  .setDescription("This server's trained styles")
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) => sub.setName('list').setDescription('The styles of this server'))
  .addSubcommand((sub) =>
    nameOption(sub.setName('info').setDescription('A style: its grid, its votes, its training settings')),
  )
  .addSubcommand((sub) =>
    nameOption(
      sub.setName('default').setDescription('Use this style when /comic new names none (Manage Server)'),
    ),
  )
  .addSubcommand((sub) =>
    nameOption(
      sub.setName('retire').setDescription('Stop offering this style (trainer role or Manage Server)'),
    ),
  );

export const StyleNameOptions = z.object({ name: z.string().trim().min(1).max(64) }).strict();
export type StyleNameOptions = z.infer<typeof StyleNameOptions>;
