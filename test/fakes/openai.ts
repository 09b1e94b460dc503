import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

/**
 * A fake OpenAI-compatible server on loopback that speaks the chat completions API the way OpenAI and
 * the local servers do: POST /v1/chat/completions (stream:false), GET /v1/models, OpenAI-style error
 * bodies with the right statuses, response_format json_schema / json_object / none, and a script of
 * answers per test. Every request is recorded so tests can look at what the client sent.
 */

export type ResponseFormatKind = 'json_schema' | 'json_object';

export type FakeAnswer =
  /** A valid ComicScript matching the counts the system prompt asks for ("exactly N pages", "exactly M panels"). */
  | { kind: 'valid'; title?: string; mangleCast?: boolean }
  /** Any JSON value, serialised as the content (e.g. a script that obeys an injected instruction). */
  | { kind: 'json'; body: unknown }
  /** Raw content, as is. */
  | { kind: 'text'; content: string }
  /** Content that is not JSON at all. */
  | { kind: 'invalid-json' }
  /** Well-formed JSON that breaks the schema: an unknown shot, too many words in a balloon, a missing field. */
  | { kind: 'schema-violation' }
  | { kind: 'empty' }
  /** A refusal as OpenAI sends it: content null, message.refusal set. */
  | { kind: 'refusal'; message?: string }
  /** finish_reason "length" with half a JSON object. */
  | { kind: 'truncated' }
  /** Wait (longer than the client's timeout, typically), then answer. */
  | { kind: 'slow'; delayMs: number; then?: FakeAnswer }
  /** An HTTP error with an OpenAI-style body. */
  | { kind: 'error'; status: number; message?: string };

export interface FakeOpenAIOptions {
  /** The response_format types the server accepts; others get a 400 as real servers send. Default: both. */
  formats?: ResponseFormatKind[];
  /** How a refused response_format is reported: OpenAI's body (param set) or a terse one as some local servers send. */
  rejectStyle?: 'openai' | 'generic';
  /** Answers used in order, one per accepted completion request. */
  answers?: FakeAnswer[];
  /** The answer once `answers` is used up. Default: valid. */
  fallback?: FakeAnswer;
  /** Models the server serves; others get 404 model_not_found. */
  models?: string[];
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** In plain mode (no response_format), wrap JSON in prose and a code fence as chatty models do. Default true. */
  chattyPlainText?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: ChatRequest | undefined;
  /** The status the fake answered with (or 0 when the client went away first). */
  status: number;
}

export interface FakeOpenAI {
  /** Base URL for the client, ending in /v1. */
  url: string;
  requests: RecordedRequest[];
  /** Completion requests the fake accepted (not the ones it refused for their response_format). */
  completions(): ChatRequest[];
  push(...answers: FakeAnswer[]): void;
  close(): Promise<void>;
}

const Message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.null(), z.array(z.unknown())]).optional(),
  })
  .loose();

const ChatRequest = z
  .object({
    model: z.string().min(1),
    messages: z.array(Message).min(1),
    stream: z.boolean().optional(),
    response_format: z
      .union([
        z.object({ type: z.literal('text') }),
        z.object({ type: z.literal('json_object') }),
        z.object({
          type: z.literal('json_schema'),
          json_schema: z.object({
            name: z.string(),
            strict: z.boolean().nullable().optional(),
            schema: z.record(z.string(), z.unknown()).optional(),
            description: z.string().optional(),
          }),
        }),
      ])
      .optional(),
  })
  .loose();
export type ChatRequest = z.infer<typeof ChatRequest>;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null,
    readonly code: string | number | null,
  ) {
    super(message);
  }
}

/** The keywords OpenAI's strict mode documents; anything else in a strict schema is refused. */
const STRICT_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'anyOf',
  'const',
  'description',
  '$ref',
  '$defs',
  'definitions',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
]);

/** OpenAI's checks on a strict schema, with its wording, so the client's adaptation is really tested. */
function checkStrictSchema(node: unknown, name: string, context: string[] = []): void {
  if (Array.isArray(node)) {
    node.forEach((n, i) => checkStrictSchema(n, name, [...context, String(i)]));
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const schema = node as Record<string, unknown>;
  const where = `In context=(${context.map((c) => `'${c}'`).join(', ')})`;
  const fail = (why: string) => {
    throw new HttpError(
      400,
      `Invalid schema for response_format '${name}': ${where}, ${why}`,
      'invalid_request_error',
      'response_format',
      null,
    );
  };
  for (const key of Object.keys(schema)) {
    if (!STRICT_KEYWORDS.has(key)) fail(`'${key}' is not permitted.`);
  }
  if (schema.type === 'object') {
    if (schema.additionalProperties !== false)
      fail("'additionalProperties' is required to be supplied and to be false.");
    const props = Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {});
    const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
    const missing = props.filter((p) => !required.includes(p));
    if (missing.length > 0)
      fail(
        `'required' is required to be supplied and to be an array including every key in properties. Missing '${missing[0]}'.`,
      );
  }
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties' && typeof value === 'object' && value !== null) {
      for (const [prop, sub] of Object.entries(value))
        checkStrictSchema(sub, name, [...context, 'properties', prop]);
    } else if (key === 'items' || key === 'anyOf' || key === '$defs') {
      checkStrictSchema(value, name, [...context, key]);
    }
  }
}

function textOf(message: z.infer<typeof Message> | undefined): string {
  const c = message?.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c))
    return c
      .map((p) => (typeof p === 'object' && p && 'text' in p ? String((p as { text: unknown }).text) : ''))
      .join('');
  return '';
}

/** A valid ComicScript for what the request asks: counts read from the system prompt, cast from its <cast> block. */
export function scriptFor(
  request: ChatRequest,
  options: { title?: string; mangleCast?: boolean } = {},
): Record<string, unknown> {
  const system = request.messages
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map(textOf)
    .join('\n');
  const pages = Number(/exactly (\d+) pages?\b/i.exec(system)?.[1] ?? 1);
  const panels = Number(/exactly (\d+) panels?\b/i.exec(system)?.[1] ?? 3);
  const user = request.messages
    .filter((m) => m.role === 'user')
    .map(textOf)
    .join('\n');
  const castBlock = /<cast>\s*([\s\S]*?)\s*<\/cast>/.exec(user)?.[1];
  let cast: { name: string; role: string; appearance: string[] }[] = [
    { name: 'Ava', role: 'protagonist', appearance: ['short black hair', 'brown eyes', 'red scarf'] },
  ];
  if (castBlock) {
    const given = z
      .array(z.object({ name: z.string(), role: z.string(), appearance: z.array(z.string()) }))
      .parse(JSON.parse(castBlock));
    // A model that "improves" the guild's characters: lower-cased names, a different look.
    cast = options.mangleCast
      ? given.map((c) => ({ name: c.name.toLowerCase(), role: c.role, appearance: ['bald', 'purple eyes'] }))
      : given;
  }
  const lead = cast[0]?.name ?? 'Ava';
  return {
    title: options.title ?? 'The Fake Adventure',
    logline: 'A story written by the fake OpenAI server.',
    cast,
    pages: Array.from({ length: pages }, (_, p) => ({
      panels: Array.from({ length: panels }, (_, q) => ({
        shot: q === 0 ? 'establishing' : 'medium',
        angle: 'eye-level',
        setting: `a harbour town, page ${p + 1}`,
        time: 'dusk',
        lighting: 'warm lamplight',
        action: `${lead} does thing ${q + 1}`,
        characters: [{ name: lead, pose: 'standing', expression: 'calm', position: 'centre' }],
        balloons: [
          { speaker: lead, text: `Line ${p + 1}.${q + 1}`, kind: q === panels - 1 ? 'shout' : 'speech' },
        ],
        caption: q === 0 ? 'It began at dusk.' : null,
        sfx: null,
      })),
    })),
  };
}

function violatingScript(request: ChatRequest): Record<string, unknown> {
  const script = scriptFor(request);
  const pages = script.pages as { panels: Record<string, unknown>[] }[];
  const panel = pages[0]?.panels[0];
  if (panel) {
    panel.shot = 'dramatic-zoom';
    panel.balloons = [
      { speaker: 'Ava', text: Array.from({ length: 40 }, (_, i) => `word${i}`).join(' '), kind: 'speech' },
    ];
    delete panel.action;
  }
  return script;
}

interface Reply {
  status: number;
  body: unknown;
}

function completion(request: ChatRequest, message: Record<string, unknown>, finishReason = 'stop'): Reply {
  const promptChars = request.messages.map(textOf).join('').length;
  const completionChars = typeof message.content === 'string' ? message.content.length : 0;
  const prompt = Math.ceil(promptChars / 4);
  const done = Math.ceil(completionChars / 4);
  return {
    status: 200,
    body: {
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', refusal: null, annotations: [], ...message },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage: { prompt_tokens: prompt, completion_tokens: done, total_tokens: prompt + done },
      system_fingerprint: 'fp_fake',
      service_tier: 'default',
    },
  };
}

function errorReply(error: HttpError): Reply {
  return {
    status: error.status,
    body: { error: { message: error.message, type: error.type, param: error.param, code: error.code } },
  };
}

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const formats = new Set(options.formats ?? ['json_schema', 'json_object']);
  const models = options.models ?? ['gpt-4o-mini', 'test-model'];
  const queue: FakeAnswer[] = [...(options.answers ?? [])];
  const fallback: FakeAnswer = options.fallback ?? { kind: 'valid' };
  const chatty = options.chattyPlainText ?? true;
  const requests: RecordedRequest[] = [];
  const accepted: ChatRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const content = (request: ChatRequest, json: unknown): string => {
    const text = JSON.stringify(json);
    if (request.response_format || !chatty) return text;
    return `Sure! Here is the comic script you asked for:\n\n\`\`\`json\n${JSON.stringify(json, null, 2)}\n\`\`\`\n\nLet me know if you want changes {or more pages}.`;
  };

  const answer = async (
    request: ChatRequest,
    item: FakeAnswer,
    res: ServerResponse,
  ): Promise<Reply | undefined> => {
    switch (item.kind) {
      case 'valid':
        return completion(request, { content: content(request, scriptFor(request, item)) });
      case 'json':
        return completion(request, { content: content(request, item.body) });
      case 'text':
        return completion(request, { content: item.content });
      case 'invalid-json':
        return completion(request, {
          content: 'Title: The Lighthouse. Page one: Mara climbs the stairs {and then',
        });
      case 'schema-violation':
        return completion(request, { content: content(request, violatingScript(request)) });
      case 'empty':
        return completion(request, { content: '' });
      case 'refusal':
        return completion(request, {
          content: null,
          refusal: item.message ?? "I'm sorry, but I can't help with that request.",
        });
      case 'truncated':
        return completion(request, { content: JSON.stringify(scriptFor(request)).slice(0, 120) }, 'length');
      case 'error':
        return errorReply(
          new HttpError(
            item.status,
            item.message ??
              (item.status >= 500
                ? 'The server had an error while processing your request. Sorry about that!'
                : 'Request failed.'),
            item.status >= 500 ? 'server_error' : 'invalid_request_error',
            null,
            null,
          ),
        );
      case 'slow': {
        const gone = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            resolve(false);
          }, item.delayMs);
          timers.add(timer);
          // The client gave up (its timeout): stop waiting, there is nobody to answer.
          res.once('close', () => {
            clearTimeout(timer);
            timers.delete(timer);
            resolve(true);
          });
        });
        if (gone) return undefined;
        return answer(request, item.then ?? { kind: 'valid' }, res);
      }
    }
  };

  const handleCompletion = async (body: unknown, res: ServerResponse): Promise<Reply | undefined> => {
    const parsed = ChatRequest.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(
        400,
        `Invalid request: ${issue?.path.join('.')}: ${issue?.message}`,
        'invalid_request_error',
        issue?.path.join('.') ?? null,
        null,
      );
    }
    const request = parsed.data;
    if (!models.includes(request.model)) {
      throw new HttpError(
        404,
        `The model \`${request.model}\` does not exist or you do not have access to it.`,
        'invalid_request_error',
        null,
        'model_not_found',
      );
    }
    if (request.stream)
      throw new HttpError(
        400,
        'This fake serves stream: false only.',
        'invalid_request_error',
        'stream',
        null,
      );
    const format = request.response_format?.type;
    if (format === 'json_schema' || format === 'json_object') {
      if (!formats.has(format)) {
        throw options.rejectStyle === 'generic'
          ? new HttpError(
              400,
              `${format} response format is not supported by this server`,
              'BadRequestError',
              null,
              400,
            )
          : new HttpError(
              400,
              `Invalid parameter: 'response_format' of type '${format}' is not supported with this model.`,
              'invalid_request_error',
              'response_format',
              null,
            );
      }
      if (format === 'json_object' && !request.messages.some((m) => /json/i.test(textOf(m)))) {
        throw new HttpError(
          400,
          "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
          'invalid_request_error',
          'messages',
          null,
        );
      }
      if (request.response_format?.type === 'json_schema') {
        const { name, strict, schema } = request.response_format.json_schema;
        if (!/^[a-zA-Z0-9_-]{1,64}$/.test(name)) {
          throw new HttpError(
            400,
            `Invalid 'response_format.json_schema.name': string does not match pattern.`,
            'invalid_request_error',
            'response_format.json_schema.name',
            'invalid_value',
          );
        }
        if (strict) checkStrictSchema(schema ?? {}, name);
      }
    }
    accepted.push(request);
    return answer(request, queue.shift() ?? fallback, res);
  };

  const route = async (
    req: IncomingMessage,
    res: ServerResponse,
    raw: string,
  ): Promise<Reply | undefined> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      throw new HttpError(
        401,
        'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.',
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    }
    if (req.method === 'GET' && path === '/v1/models') {
      return {
        status: 200,
        body: {
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'fake' })),
        },
      };
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        throw new HttpError(
          400,
          'We could not parse the JSON body of your request.',
          'invalid_request_error',
          null,
          null,
        );
      }
      return handleCompletion(body, res);
    }
    throw new HttpError(404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error', null, null);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let parsedBody: ChatRequest | undefined;
      try {
        parsedBody = raw ? (JSON.parse(raw) as ChatRequest) : undefined;
      } catch {
        parsedBody = undefined;
      }
      const record: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
        body: parsedBody,
        status: 0,
      };
      requests.push(record);
      route(req, res, raw)
        .catch((error: unknown) => {
          if (error instanceof HttpError) return errorReply(error);
          return errorReply(
            new HttpError(500, `fake failure: ${(error as Error).message}`, 'server_error', null, null),
          );
        })
        .then((reply) => {
          if (!reply || res.destroyed) return;
          record.status = reply.status;
          res.writeHead(reply.status, {
            'content-type': 'application/json',
            'x-request-id': `req_${randomBytes(8).toString('hex')}`,
          });
          res.end(JSON.stringify(reply.body));
        });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    completions: () => accepted,
    push: (...answers) => queue.push(...answers),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}
