/** `/queue` — your jobs and their positions. No options. */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';

export const queueCommand = new SlashCommandBuilder()
  .setName('queue')
  .setDescription('Your comics in the queue and their positions')
  .setContexts(InteractionContextType.Guild);

export const QueueOptions = z.object({}).strict();
export type QueueOptions = z.infer<typeof QueueOptions>;
