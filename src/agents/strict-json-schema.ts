import { z } from 'zod';

/**
 * Turn a zod schema into a JSON schema that OpenAI's strict structured-output mode accepts:
 * every object lists all its properties as required and forbids extra ones, and only keywords strict
 * mode documents are kept. Length and count limits are dropped from the wire schema on purpose: some
 * servers reject them, and zod enforces them on the answer anyway.
 */
const KEPT_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'anyOf',
  'const',
  'description',
]);

type JsonSchema = { [key: string]: unknown };

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function strictify(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictify);
  if (!isObject(node)) return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (!KEPT_KEYWORDS.has(key)) continue;
    if (key === 'properties' && isObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, strictify(sub)]));
    } else if (key === 'enum' || key === 'const' || key === 'required') {
      out[key] = value;
    } else {
      out[key] = strictify(value);
    }
  }
  if (out.type === 'object' || isObject(out.properties)) {
    const properties = isObject(out.properties) ? out.properties : {};
    out.properties = properties;
    out.required = Object.keys(properties);
    out.additionalProperties = false;
  }
  return out;
}

export function toStrictJsonSchema(schema: z.ZodType): JsonSchema {
  // 'input' describes what we accept from the model (before transforms); refinements are not expressible
  // in JSON schema and stay zod's job.
  const raw = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return strictify(raw) as JsonSchema;
}
