/** `/runner status`: the GPU runners whose heartbeat is live in Redis, and the render queue's depth. */
import { MessageFlags } from 'discord.js';
import { listRunners, type RunnerPresence } from '../gpu/presence.ts';
import { InputError } from '../errors.ts';
import { RunnerStatusOptions } from './runner.ts';
import type { CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';

export const runnerHandler: CommandHandler = {
  name: 'runner',
  async execute(interaction, deps) {
    const sub = interaction.options.getSubcommand(true);
    if (sub !== 'status') throw new InputError(`\`/runner ${sub}\` is not something I can do.`);
    parseOptions(RunnerStatusOptions, optionValues(interaction), 'runner status');
    const [runners, counts] = await Promise.all([
      listRunners(deps.redis, deps.queueConnection.prefix),
      deps.producer.queue('render').getJobCounts('waiting', 'prioritized', 'active', 'delayed'),
    ]);
    const depth = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
    const lines = [`Render queue: ${depth} waiting, ${counts.active ?? 0} drawing now.`];
    if (runners.length === 0) lines.push('No runner is online: panels wait in the queue until one starts.');
    for (const runner of runners) lines.push(describeRunner(runner));
    await interaction.reply({ content: lines.join('\n'), flags: MessageFlags.Ephemeral });
  },
};

export function describeRunner(runner: RunnerPresence): string {
  const state = runner.online
    ? '🟢 online'
    : `🔴 offline${runner.offlineReason ? ` (${runner.offlineReason})` : ''}`;
  const gpu =
    runner.gpu ?? (runner.renderer === 'storyboard' ? 'storyboard sketches, no GPU' : 'GPU unknown');
  const vram =
    runner.vramTotal !== null ? ` · VRAM ${gib(runner.vramFree ?? 0)} free of ${gib(runner.vramTotal)}` : '';
  const jobs = runner.currentJobs.length ? ` · working on ${runner.currentJobs.length} render(s)` : ' · idle';
  return `• **${runner.id}** ${state} · ${gpu}${vram}${jobs}`;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
}
