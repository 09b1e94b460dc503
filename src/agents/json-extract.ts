/**
 * Pull a JSON object out of a model's free-text answer: reasoning blocks and code fences removed, then
 * the whole text if it parses, else the first balanced {...} block (braces inside strings ignored).
 */
export class JsonExtractionError extends Error {}

/** Remove <think>…</think> blocks (reasoning models served locally) and ``` fences. */
function clean(text: string): string {
  return text
    .replace(/<think>[\s\S]*?<\/think>/gi, '')
    .replace(/```[a-zA-Z]*\s*\n?/g, '')
    .trim();
}

/** The first balanced {...} block in text, or undefined when braces never balance. */
export function firstBalancedObject(text: string): string | undefined {
  const start = text.indexOf('{');
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) return text.slice(start, i + 1);
    }
  }
  return undefined;
}

export function extractJson(text: string): unknown {
  const cleaned = clean(text);
  if (cleaned === '') throw new JsonExtractionError('the answer was empty');
  try {
    return JSON.parse(cleaned);
  } catch {
    // Not bare JSON: look for an object inside prose.
  }
  const block = firstBalancedObject(cleaned);
  if (block === undefined) throw new JsonExtractionError('the answer contained no complete JSON object');
  try {
    return JSON.parse(block);
  } catch (error) {
    throw new JsonExtractionError(`the JSON object in the answer did not parse: ${(error as Error).message}`);
  }
}
