/** `/vote close training [pick]` — close a style vote early (trainer role or Manage Server). */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';

export const voteCommand = new SlashCommandBuilder()
  .setName('vote')
  .setDescription('Style votes on trained checkpoints')
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) =>
    sub
      .setName('close')
      .setDescription('Close a style vote now; the winner becomes the server style')
      .addStringOption((o) =>
        o
          .setName('training')
          .setDescription('The training whose vote to close')
          .setRequired(true)
          .setAutocomplete(true)
          .setMaxLength(64),
      )
      .addStringOption((o) =>
        o
          .setName('pick')
          .setDescription(
            'On a tie: the label of the tied checkpoint to choose (else the earlier epoch wins)',
          )
          .setMaxLength(8),
      ),
  );

export const VoteCloseOptions = z
  .object({
    training: z.string().trim().min(1).max(64),
    pick: z.string().trim().min(1).max(8).optional(),
  })
  .strict();
export type VoteCloseOptions = z.infer<typeof VoteCloseOptions>;
