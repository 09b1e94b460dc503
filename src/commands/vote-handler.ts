/**
 * `/vote close`: closes a style vote before its timer, for a member with the trainer role or Manage
 * Server. The winner (most votes; a tie goes to the earlier epoch unless `pick` names a tied
 * checkpoint) becomes the server's style, and the vote message shows the result.
 */
import { and, desc, eq, ilike } from 'drizzle-orm';
import type { AutocompleteInteraction, ChatInputCommandInteraction } from 'discord.js';
import type { BotDeps } from '../bot/deps.ts';
import { finishVote } from '../bot/vote-poster.ts';
import { getGuildSettings } from '../db/guild-settings.ts';
import { trainings } from '../db/schema.ts';
import { InputError } from '../errors.ts';
import { closeVote, voteView } from '../evaluation/vote.ts';
import { MAX_AUTOCOMPLETE_CHOICES, type CommandHandler } from './handler.ts';
import { optionValues, parseOptions } from './options.ts';
import { mayTrain } from './train-handler.ts';
import { VoteCloseOptions } from './vote.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const voteHandler: CommandHandler = {
  name: 'vote',
  async execute(interaction, deps) {
    const sub = interaction.options.getSubcommand(true);
    if (sub === 'close') return voteClose(interaction, deps);
    throw new InputError(`\`/vote ${sub}\` is not something I can do.`);
  },
  async autocomplete(interaction, deps) {
    await interaction.respond(await votingTrainings(interaction, deps));
  },
};

async function votingTrainings(interaction: AutocompleteInteraction, deps: BotDeps) {
  if (!interaction.guildId) return [];
  const typed = String(interaction.options.getFocused() ?? '').trim();
  const rows = await deps.db
    .select({ id: trainings.id, name: trainings.name })
    .from(trainings)
    .where(
      and(
        eq(trainings.guildId, interaction.guildId),
        eq(trainings.status, 'voting'),
        typed ? ilike(trainings.name, `%${typed.replace(/[%_\\]/g, '\\$&')}%`) : undefined,
      ),
    )
    .orderBy(desc(trainings.createdAt))
    .limit(MAX_AUTOCOMPLETE_CHOICES);
  return rows.map((r) => ({ name: `${r.name} (${r.id.slice(0, 8)})`.slice(0, 100), value: r.id }));
}

async function voteClose(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const guildId = interaction.guildId;
  if (!guildId) throw new InputError('Votes belong to a server; use this command in one.');
  const settings = await getGuildSettings(deps.db, guildId);
  if (!mayTrain(interaction, settings)) {
    throw new InputError(
      settings.trainerRoleId
        ? `Closing a vote is for members with the <@&${settings.trainerRoleId}> role or Manage Server.`
        : 'Closing a vote is for members with Manage Server (an admin can open it to a role with `/train role`).',
    );
  }
  const options = parseOptions(VoteCloseOptions, optionValues(interaction), 'vote close');
  const trainingId = await resolveTraining(deps, guildId, options.training);
  await interaction.deferReply();

  let pick: string | null = null;
  if (options.pick) {
    const view = await voteView(deps.db, trainingId);
    const wanted = options.pick.toLowerCase().replace(/^epoch\s*/, '');
    const match = view.options.find(
      (o) =>
        o.label.toLowerCase() === options.pick!.toLowerCase() ||
        (!view.evaluation?.blindOrder && String(o.checkpoint.epoch) === wanted),
    );
    if (!match) throw new InputError(`There is no checkpoint labelled “${options.pick}” in this vote.`);
    pick = match.checkpoint.id;
  }
  const result = await closeVote(deps.db, deps.store, { trainingId, closedBy: interaction.user.id, pick });
  const text = await finishVote(deps, result, `<@${interaction.user.id}> closed the vote`);
  await interaction.editReply({ content: text, allowedMentions: { parse: [] } });
}

/** The training option: an id (from autocomplete) or a name of a training of this server in its vote. */
async function resolveTraining(deps: BotDeps, guildId: string, value: string): Promise<string> {
  const byId = UUID.test(value)
    ? eq(trainings.id, value)
    : ilike(trainings.name, value.replace(/[%_\\]/g, '\\$&'));
  const [row] = await deps.db
    .select({ id: trainings.id, status: trainings.status })
    .from(trainings)
    .where(and(eq(trainings.guildId, guildId), byId))
    .orderBy(desc(trainings.createdAt))
    .limit(1);
  if (!row) throw new InputError(`I can't find the training “${value}” on this server.`);
  if (row.status !== 'voting') throw new InputError('The vote on that training is not open.');
  return row.id;
}
