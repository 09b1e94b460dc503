/**
 * `/models`: what the runners have installed (from their presence heartbeat in Redis), grouped by
 * model family recognised from the file name, with what each family is good for and whether it is
 * usable on this server (experimental families are off unless an operator enabled them).
 */
import { MessageFlags } from 'discord.js';
import type { Redis } from 'ioredis';
import { familyAvailability, FAMILIES } from '../comic/families.ts';
import type { ModelFamily } from '../comic/recipe.ts';
import { listRunners } from '../gpu/presence.ts';
import type { CommandHandler } from './handler.ts';
import { ModelsOptions } from './models.ts';
import { optionValues, parseOptions } from './options.ts';

/** File-name patterns, most specific first (FLUX.2 before FLUX, Pony V7 before Pony). */
const PATTERNS: ReadonlyArray<[ModelFamily, RegExp]> = [
  ['flux2', /flux[._-]?2/i],
  ['flux-schnell', /flux.*schnell/i],
  ['flux', /flux/i],
  ['sd35-large', /sd[._-]?3[._]?5.*large/i],
  ['sd35-medium', /sd[._-]?3[._]?5.*medium/i],
  ['ponyv7', /pony.*v7|aura[._-]?flow/i],
  ['pony', /pony/i],
  ['playground', /playground/i],
  ['noobai', /noob/i],
  ['illustrious', /illustrious/i],
  ['sdxl', /sd[._-]?xl/i],
];

/** The family a model file belongs to, by its name; null when the name says nothing we know. */
export function familyOfFile(file: string): ModelFamily | null {
  const name = file.split(/[\\/]/).at(-1) ?? file;
  return PATTERNS.find(([, pattern]) => pattern.test(name))?.[0] ?? null;
}

export interface InstalledModel {
  file: string;
  runners: string[];
}

/** Files by family across runners; unrecognised files under null. */
export function groupByFamily(
  runners: ReadonlyArray<{ id: string; checkpoints: readonly string[] }>,
): Map<ModelFamily | null, InstalledModel[]> {
  const byFile = new Map<string, string[]>();
  for (const runner of runners) {
    for (const file of runner.checkpoints) byFile.set(file, [...(byFile.get(file) ?? []), runner.id]);
  }
  const groups = new Map<ModelFamily | null, InstalledModel[]>();
  for (const [file, ids] of [...byFile].sort(([a], [b]) => a.localeCompare(b))) {
    const family = familyOfFile(file);
    groups.set(family, [...(groups.get(family) ?? []), { file, runners: ids }]);
  }
  return groups;
}

/** The /models text. Families in the order of MODEL_FAMILIES; "Other files" last. */
export async function describeInstalledModels(
  redis: Redis,
  prefix: string,
  enabledExperimental: readonly string[],
): Promise<string> {
  const runners = (await listRunners(redis, prefix)).filter((r) => r.renderer === 'comfyui');
  if (runners.length === 0) return 'No GPU runner is online, so I cannot tell which models are installed.';
  const groups = groupByFamily(runners);
  const lines: string[] = [`Models on ${runners.length} runner(s):`];
  const files = (list: InstalledModel[]) =>
    list.map((m) => `\`${m.file}\` (${m.runners.join(', ')})`).join(', ');
  for (const family of Object.keys(FAMILIES) as ModelFamily[]) {
    const installed = groups.get(family);
    if (!installed) continue;
    const profile = FAMILIES[family];
    const availability = familyAvailability(family, enabledExperimental);
    const note = availability.usable
      ? profile.limits
        ? ` (${profile.limits})`
        : ''
      : ' — off on this server';
    lines.push(`**${profile.label}**${note}: ${profile.goodFor}.\n  ${files(installed)}`);
  }
  const other = groups.get(null);
  if (other) lines.push(`**Other files** (family not recognised from the name): ${files(other)}`);
  return lines.join('\n');
}

export const modelsHandler: CommandHandler = {
  name: 'models',
  async execute(interaction, deps) {
    parseOptions(ModelsOptions, optionValues(interaction), 'models');
    const text = await describeInstalledModels(
      deps.redis,
      deps.queueConnection.prefix,
      deps.config.ENABLE_EXPERIMENTAL_FAMILIES,
    );
    // Discord's message limit is 2000 characters; a box with many checkpoints is cut with a note.
    const content =
      text.length > 1990 ? `${text.slice(0, 1950)}\n… (more models than fit in one message)` : text;
    await interaction.reply({ content, flags: MessageFlags.Ephemeral });
  },
};
