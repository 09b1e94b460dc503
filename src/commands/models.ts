/** `/models` — the base models the GPU runners have installed, grouped by family. */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';

export const modelsCommand = new SlashCommandBuilder()
  .setName('models')
  .setDescription('Which base models the GPU runners have, grouped by family, and what each is good for')
  .setContexts(InteractionContextType.Guild);

export const ModelsOptions = z.object({}).strict();
export type ModelsOptions = z.infer<typeof ModelsOptions>;
