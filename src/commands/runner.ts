/** `/runner status` — runners online, GPU, VRAM, current job, queue depth. */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';

export const runnerCommand = new SlashCommandBuilder()
  .setName('runner')
  .setDescription('The GPU runners')
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) =>
    sub.setName('status').setDescription('Runners online, GPU, VRAM, current job and queue depth'),
  );

export const RunnerStatusOptions = z.object({}).strict();
export type RunnerStatusOptions = z.infer<typeof RunnerStatusOptions>;
