import { z } from 'zod';
import { InputError } from '../errors.ts';
import { CastMember, LIMITS } from './script-schema.ts';

/** The longest story prompt we accept: enough for a detailed outline, short enough for any model's context. */
export const MAX_STORY_CHARS = 4000;

/**
 * What a person asks the script writer for. Counts come from the command's options (trusted), never
 * from the story text (data).
 */
export const ScriptRequest = z.object({
  story: z
    .string()
    .trim()
    .min(1, { message: 'The story is empty: describe what should happen in the comic.' })
    .max(MAX_STORY_CHARS, {
      message: `The story is too long (at most ${MAX_STORY_CHARS} characters): shorten it to the key events.`,
    }),
  pages: z
    .number()
    .int({ message: 'The number of pages must be a whole number.' })
    .min(LIMITS.pages.min, { message: `A comic has ${LIMITS.pages.min} to ${LIMITS.pages.max} pages.` })
    .max(LIMITS.pages.max, { message: `A comic has ${LIMITS.pages.min} to ${LIMITS.pages.max} pages.` })
    .optional(),
  panelsPerPage: z
    .number()
    .int({ message: 'The number of panels per page must be a whole number.' })
    .min(LIMITS.panelsPerPage.min, {
      message: `A page has ${LIMITS.panelsPerPage.min} to ${LIMITS.panelsPerPage.max} panels.`,
    })
    .max(LIMITS.panelsPerPage.max, {
      message: `A page has ${LIMITS.panelsPerPage.min} to ${LIMITS.panelsPerPage.max} panels.`,
    })
    .optional(),
  /** Guild characters: their names and appearance tags are kept verbatim in the script. */
  cast: z
    .array(CastMember)
    .max(LIMITS.castMax, { message: `At most ${LIMITS.castMax} characters can take part in one comic.` })
    .optional(),
  styleHint: z
    .string()
    .trim()
    .max(200, { message: 'The style hint is too long (at most 200 characters).' })
    .optional(),
});
export type ScriptRequestInput = z.input<typeof ScriptRequest>;
export type ScriptRequest = z.infer<typeof ScriptRequest>;

/** Parse a request, or throw an InputError whose message tells the person what to change. */
export function parseScriptRequest(input: unknown): ScriptRequest {
  const result = ScriptRequest.safeParse(input);
  if (result.success) return result.data;
  const messages = [...new Set(result.error.issues.map((i) => i.message))];
  throw new InputError(messages.join(' '), {
    operatorMessage: `invalid script request: ${z.prettifyError(result.error)}`,
  });
}
