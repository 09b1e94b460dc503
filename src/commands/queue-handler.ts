/**
 * `/queue`: the member's comics in the making in this server, and where each one's next render stands
 * in the render queue (BullMQ's waiting and prioritized lists), read live.
 */
import { MessageFlags } from 'discord.js';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { comics, COMIC_IN_FLIGHT } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { readProgress } from '../bot/status-message.ts';
import { QueueOptions } from './queue.ts';
import type { CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';

export const queueHandler: CommandHandler = {
  name: 'queue',
  async execute(interaction, deps) {
    parseOptions(QueueOptions, optionValues(interaction), 'queue');
    if (!interaction.guildId)
      throw new InputError('The queue is per server: use /queue in a server channel.');
    const mine = await deps.db
      .select()
      .from(comics)
      .where(
        and(
          eq(comics.guildId, interaction.guildId),
          eq(comics.userId, interaction.user.id),
          inArray(comics.status, [...COMIC_IN_FLIGHT]),
        ),
      )
      .orderBy(asc(comics.createdAt));
    const renderQueue = deps.producer.queue('render');
    const counts = await renderQueue.getJobCounts('waiting', 'prioritized', 'active');
    const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
    const header = `Render queue: ${waiting} waiting, ${counts.active ?? 0} drawing now.`;
    if (mine.length === 0) {
      await interaction.reply({
        content: `${header}\nYou have no comics in the making here.`,
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    const lines = [header, 'Your comics:'];
    for (const comic of mine) {
      const progress = await readProgress(deps.db, comic, renderQueue);
      const where =
        comic.status === 'scripting'
          ? 'writing the script'
          : progress.queuePosition !== null
            ? `next panel is #${progress.queuePosition} in the queue`
            : progress.panelsDone < progress.panelsTotal
              ? 'being drawn now'
              : 'lettering pages';
      lines.push(
        `• ${progress.title ? `**${progress.title}** ` : ''}\`${comic.id}\` — panels ${progress.panelsDone}/${progress.panelsTotal}, ${where}`,
      );
    }
    await interaction.reply({ content: lines.join('\n'), flags: MessageFlags.Ephemeral });
  },
};
