/**
 * Turning a slash command's options into a plain record and validating it with zod. Discord already
 * enforces the limits declared in the definitions; the schemas repeat them so a handler never trusts
 * the wire (and so handlers can be tested with plain objects).
 */
import type { ChatInputCommandInteraction, CommandInteractionOption } from 'discord.js';
import type { z } from 'zod';
import { InputError } from '../errors.ts';

export type OptionValues = Record<string, string | number | boolean>;

/** The leaf options of the invoked (sub)command, by name. */
export function optionValues(interaction: Pick<ChatInputCommandInteraction, 'options'>): OptionValues {
  return leafValues(interaction.options.data);
}

function leafValues(options: readonly CommandInteractionOption[]): OptionValues {
  const values: OptionValues = {};
  for (const option of options) {
    if (option.options) Object.assign(values, leafValues(option.options));
    else if (option.value !== undefined && option.value !== null) values[option.name] = option.value;
  }
  return values;
}

/** Parses options with a schema; a failure is an InputError that names the option and the rule. */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  values: OptionValues,
  command: string,
): z.infer<S> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `\`${String(issue.path[0] ?? 'options')}\`: ${issue.message}`,
  );
  throw new InputError(`That \`/${command}\` didn't work: ${problems.join('; ')}.`, {
    operatorMessage: `invalid options for /${command}: ${JSON.stringify(result.error.issues)}`,
  });
}
