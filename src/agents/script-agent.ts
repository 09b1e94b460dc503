import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AppConfig } from '../config/env.ts';
import { ComicMasterError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import { JsonExtractionError, extractJson } from './json-extract.ts';
import { buildStoryMessage, buildSystemPrompt } from './script-prompt.ts';
import { parseScriptRequest, type ScriptRequest, type ScriptRequestInput } from './script-request.ts';
import { ComicScript, LIMITS, type CastMember } from './script-schema.ts';
import { toStrictJsonSchema } from './strict-json-schema.ts';
import { writeTemplateScript } from './template-writer.ts';

export type { ScriptRequest, ScriptRequestInput } from './script-request.ts';

export interface ScriptResult {
  script: ComicScript;
  writer: 'llm' | 'template';
  /** The model that wrote the script; null for the template writer. */
  model: string | null;
  /** Human-readable remarks on how the script was made (writer, fallbacks, repairs). */
  notes: string[];
}

export interface ScriptAgentDeps {
  config: AppConfig;
  logger?: Logger;
  signal?: AbortSignal;
  /** Attempts from scratch (each with one repair turn) and the first backoff delay; doubled each time. */
  retry?: { attempts?: number; backoffMs?: number };
}

/** How we ask for JSON, from the most to the least constrained; servers that refuse one get the next. */
export type ResponseMode = 'json_schema' | 'json_object' | 'text';
const MODES: readonly ResponseMode[] = ['json_schema', 'json_object', 'text'];
const MODE_LABEL: Record<ResponseMode, string> = {
  json_schema: 'json_schema structured output',
  json_object: 'JSON mode',
  text: 'plain text with JSON extraction',
};

/** The response mode that last worked per base URL, for the life of the process. */
const workingModes = new Map<string, ResponseMode>();

/** The mode remembered for a server, if any (exposed for diagnostics and tests). */
export function rememberedResponseMode(baseURL: string): ResponseMode | undefined {
  return workingModes.get(baseURL);
}

export const DEFAULT_OPENAI_BASE_URL = 'https://api.openai.com/v1';
const DEFAULT_ATTEMPTS = 3;
const DEFAULT_BACKOFF_MS = 1000;
const MAX_ISSUES_SENT = 20;

type FailureKind = 'invalid' | 'empty' | 'refused' | 'truncated' | 'timeout' | 'unreachable' | 'server';

/** The script writer failed for good; `reason` says why, for callers that react differently. */
export class ScriptWriterError extends UpstreamError {
  constructor(
    readonly reason: FailureKind | 'auth' | 'model' | 'rejected',
    userMessage: string,
    options: { cause?: unknown; operatorMessage?: string; retryable?: boolean } = {},
  ) {
    super('llm', userMessage, options);
    this.name = 'ScriptWriterError';
  }
}

interface Target {
  baseURL: string;
  host: string;
  model: string;
}

interface Failure {
  kind: FailureKind;
  problem: string;
}

type Judgement =
  | { ok: true; script: ComicScript }
  | { ok: false; failure: Failure; repair?: { answer: string; message: string } };

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

function describeTarget(config: AppConfig): Target {
  const baseURL = (config.OPENAI_BASE_URL ?? DEFAULT_OPENAI_BASE_URL).replace(/\/+$/, '');
  return { baseURL, host: new URL(baseURL).host, model: config.LLM_MODEL };
}

function responseFormat(mode: ResponseMode, jsonSchema: Record<string, unknown>) {
  if (mode === 'json_schema') {
    return {
      response_format: {
        type: 'json_schema' as const,
        json_schema: { name: 'comic_script', strict: true, schema: jsonSchema },
      },
    };
  }
  if (mode === 'json_object') return { response_format: { type: 'json_object' as const } };
  return {};
}

/** Did the server turn down the response_format we asked for (rather than the request as a whole)? */
function isFormatRejection(error: unknown): boolean {
  if (!(error instanceof APIError) || (error.status !== 400 && error.status !== 422)) return false;
  if (error.param === 'response_format') return true;
  return /response_format|json_schema|json_object|structured output|unsupported parameter|not supported/i.test(
    error.message,
  );
}

function issueList(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string[] {
  return issues.map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(root)'}: ${i.message}`);
}

/**
 * Problems with the counts the person asked for, in zod's issue shape. Works on any JSON, so that a
 * repair turn names the wanted counts even when the schema already failed (e.g. 20 pages).
 */
function countIssues(
  script: unknown,
  request: ScriptRequest,
): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const shape = z
    .object({ pages: z.array(z.object({ panels: z.array(z.unknown()) }).loose()) })
    .loose()
    .safeParse(script);
  if (!shape.success) return issues;
  const pages = shape.data.pages;
  if (request.pages !== undefined && pages.length !== request.pages) {
    issues.push({ path: ['pages'], message: `expected exactly ${request.pages} pages, got ${pages.length}` });
  }
  if (request.panelsPerPage !== undefined) {
    pages.forEach((page, i) => {
      if (page.panels.length !== request.panelsPerPage) {
        issues.push({
          path: ['pages', i, 'panels'],
          message: `expected exactly ${request.panelsPerPage} panels on every page, got ${page.panels.length}`,
        });
      }
    });
  }
  return issues;
}

function repairMessage(problems: string[]): string {
  const shown = problems.slice(0, MAX_ISSUES_SENT);
  const more =
    problems.length > shown.length
      ? `\n(and ${problems.length - shown.length} more problems of the same kind)`
      : '';
  return (
    'Your answer does not follow the rules. Fix these problems and answer with the whole corrected JSON object only:\n' +
    shown.map((p) => `- ${p}`).join('\n') +
    more
  );
}

/**
 * The guild's characters are canonical: whatever the model did to them, their names and appearance
 * tags come back verbatim, and names on panels are spelled the guild's way.
 */
export function enforceCast(script: ComicScript, cast: readonly CastMember[]): ComicScript {
  if (cast.length === 0) return script;
  const canonical = new Map(cast.map((c) => [c.name.toLowerCase(), c]));
  const spell = (name: string) => canonical.get(name.toLowerCase())?.name ?? name;
  const scriptCast = script.cast.map((member) => {
    const guild = canonical.get(member.name.toLowerCase());
    return guild ? { ...member, name: guild.name, appearance: [...guild.appearance] } : member;
  });
  for (const guild of cast) {
    const present = scriptCast.some((m) => m.name.toLowerCase() === guild.name.toLowerCase());
    if (!present && scriptCast.length < LIMITS.castMax)
      scriptCast.push({ ...guild, appearance: [...guild.appearance] });
  }
  return ComicScript.parse({
    ...script,
    cast: scriptCast,
    pages: script.pages.map((page) => ({
      panels: page.panels.map((panel) => ({
        ...panel,
        characters: panel.characters.map((c) => ({ ...c, name: spell(c.name) })),
        balloons: panel.balloons.map((b) => ({ ...b, speaker: spell(b.speaker) })),
      })),
    })),
  });
}

function judge(
  choice: OpenAI.Chat.Completions.ChatCompletion.Choice | undefined,
  request: ScriptRequest,
): Judgement {
  const message = choice?.message;
  if (message?.refusal)
    return {
      ok: false,
      failure: { kind: 'refused', problem: `it declined: "${message.refusal.slice(0, 200)}"` },
    };
  const content = message?.content ?? '';
  if (content.trim() === '')
    return { ok: false, failure: { kind: 'empty', problem: 'the answer was empty' } };
  if (choice?.finish_reason === 'length') {
    return {
      ok: false,
      failure: { kind: 'truncated', problem: 'the answer was cut off at the token limit' },
    };
  }
  let data: unknown;
  try {
    data = extractJson(content);
  } catch (error) {
    const problem = error instanceof JsonExtractionError ? error.message : String(error);
    return {
      ok: false,
      failure: { kind: 'invalid', problem: `the answer was not valid JSON (${problem})` },
      repair: {
        answer: content,
        message: repairMessage([`the answer must be one valid JSON object: ${problem}`]),
      },
    };
  }
  const parsed = ComicScript.safeParse(data);
  const problems = issueList([...countIssues(data, request), ...(parsed.success ? [] : parsed.error.issues)]);
  if (parsed.success && problems.length === 0) return { ok: true, script: parsed.data };
  return {
    ok: false,
    failure: { kind: 'invalid', problem: problems.slice(0, 3).join('; ') },
    repair: { answer: content, message: repairMessage(problems) },
  };
}

function describeError(error: unknown): Failure {
  if (error instanceof APIConnectionTimeoutError)
    return { kind: 'timeout', problem: 'no answer before the timeout' };
  if (error instanceof APIError && error.status === undefined) {
    return { kind: 'unreachable', problem: `could not connect (${error.message})` };
  }
  if (error instanceof APIError) return { kind: 'server', problem: `HTTP ${error.status}: ${error.message}` };
  return { kind: 'server', problem: error instanceof Error ? error.message : String(error) };
}

/** Errors that retrying cannot fix: wrong key, missing model, a request the server will never accept. */
function fatalError(error: unknown, target: Target): ScriptWriterError | undefined {
  if (!(error instanceof APIError) || error.status === undefined) return undefined;
  const where = `model ${target.model} at ${target.host}`;
  const operatorMessage = `LLM ${where} answered HTTP ${error.status}: ${error.message}`;
  if (error.status === 401 || error.status === 403) {
    return new ScriptWriterError(
      'auth',
      `The script writer at ${target.host} refused our credentials (HTTP ${error.status}); the operator must check OPENAI_API_KEY.`,
      { cause: error, operatorMessage, retryable: false },
    );
  }
  if (error.status === 404) {
    return new ScriptWriterError(
      'model',
      `The model ${target.model} is not available at ${target.host}; the operator must check LLM_MODEL (and that the model is pulled or loaded).`,
      { cause: error, operatorMessage, retryable: false },
    );
  }
  if (
    error.status >= 400 &&
    error.status < 500 &&
    error.status !== 408 &&
    error.status !== 409 &&
    error.status !== 429
  ) {
    return new ScriptWriterError(
      'rejected',
      `The script writer (${where}) rejected the request (HTTP ${error.status}: ${error.message.slice(0, 200)}).`,
      { cause: error, operatorMessage, retryable: false },
    );
  }
  return undefined;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function finalError(failures: Failure[], target: Target, timeoutMs: number): ScriptWriterError {
  const last = failures[failures.length - 1] ?? { kind: 'server' as const, problem: 'no attempt was made' };
  const where = `model ${target.model} at ${target.host}`;
  const operatorMessage = `script writer gave up after ${failures.length} attempts: ${failures.map((f) => `[${f.kind}] ${f.problem}`).join(' | ')}`;
  const options = { operatorMessage, retryable: true };
  switch (last.kind) {
    case 'timeout':
      return new ScriptWriterError(
        'timeout',
        `The script writer (${where}) did not answer within ${seconds(timeoutMs)}, ${failures.length} times. Check that the server is running and the model is loaded, try a shorter story, or raise LLM_TIMEOUT_MS.`,
        options,
      );
    case 'unreachable':
      return new ScriptWriterError(
        'unreachable',
        `Could not reach the script writer at ${target.host}. Check OPENAI_BASE_URL and that the server is running.`,
        options,
      );
    case 'server':
      return new ScriptWriterError(
        'server',
        `The script writer (${where}) kept failing: ${last.problem}. Try again later.`,
        options,
      );
    case 'refused':
      return new ScriptWriterError(
        'refused',
        `The script writer (${where}) declined to write this story (${last.problem}). Try rephrasing the story.`,
        options,
      );
    default:
      return new ScriptWriterError(
        last.kind,
        `The script writer (${where}) kept returning invalid scripts: ${last.problem}. Try a shorter story, fewer pages or panels, or a larger model.`,
        options,
      );
  }
}

/**
 * Write a comic script. With no LLM configured the template writer does it (and the notes say so);
 * otherwise the configured OpenAI-compatible server, validated by zod, repaired once per attempt and
 * retried with backoff.
 */
export async function writeScript(input: ScriptRequestInput, deps: ScriptAgentDeps): Promise<ScriptResult> {
  const request = parseScriptRequest(input);
  const { config, signal } = deps;
  const logger = (deps.logger ?? log()).child({ component: 'script-agent' });

  if (!config.llmConfigured) {
    logger.info('no LLM configured; using the template writer');
    return {
      script: writeTemplateScript(request),
      writer: 'template',
      model: null,
      notes: [
        'No LLM is configured (OPENAI_API_KEY and OPENAI_BASE_URL are unset), so the built-in template writer wrote this script from your story. Configure an LLM for a real script.',
      ],
    };
  }

  const target = describeTarget(config);
  const client = new OpenAI({
    baseURL: target.baseURL,
    // Local servers (Ollama, llama.cpp, vLLM, LM Studio) need no key, but the SDK insists on one.
    apiKey: config.OPENAI_API_KEY ?? 'not-needed',
    timeout: config.LLM_TIMEOUT_MS,
    maxRetries: 0, // we retry ourselves, with repair turns and our own backoff
  });
  const attempts = Math.max(1, deps.retry?.attempts ?? DEFAULT_ATTEMPTS);
  const backoffMs = Math.max(0, deps.retry?.backoffMs ?? DEFAULT_BACKOFF_MS);
  const jsonSchema = toStrictJsonSchema(ComicScript);
  const notes: string[] = [];
  const baseMessages: Message[] = [
    { role: 'system', content: buildSystemPrompt(request, jsonSchema) },
    { role: 'user', content: buildStoryMessage(request) },
  ];
  const bind = { model: target.model, host: target.host };

  /** One chat completion, stepping down response modes while the server refuses them. */
  const complete = async (messages: Message[]) => {
    let mode = workingModes.get(target.baseURL) ?? 'json_schema';
    for (;;) {
      try {
        const completion = await client.chat.completions.create(
          { model: target.model, messages, stream: false, ...responseFormat(mode, jsonSchema) },
          { signal },
        );
        if (workingModes.get(target.baseURL) !== mode) workingModes.set(target.baseURL, mode);
        logger.info({ ...bind, mode, usage: completion.usage }, 'script writer answered');
        return completion;
      } catch (error) {
        const next = MODES[MODES.indexOf(mode) + 1];
        if (!next || !isFormatRejection(error)) throw error;
        logger.warn(
          { ...bind, mode, next, err: (error as Error).message },
          'server refused the response format; stepping down',
        );
        notes.push(`The server does not accept ${MODE_LABEL[mode]}; fell back to ${MODE_LABEL[next]}.`);
        workingModes.set(target.baseURL, next);
        mode = next;
      }
    }
  };

  const failures: Failure[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      if (attempt > 1) await sleep(backoffMs * 2 ** (attempt - 2), undefined, { signal });
      const first = judge((await complete(baseMessages)).choices[0], request);
      let verdict = first;
      if (!first.ok && first.repair) {
        logger.warn(
          { ...bind, attempt, problem: first.failure.problem },
          'invalid script; asking for a repair',
        );
        verdict = judge(
          (
            await complete([
              ...baseMessages,
              { role: 'assistant', content: first.repair.answer },
              { role: 'user', content: first.repair.message },
            ])
          ).choices[0],
          request,
        );
        if (verdict.ok) notes.push('The first answer broke the script rules; it was repaired.');
      }
      if (verdict.ok) {
        const mode = workingModes.get(target.baseURL) ?? 'json_schema';
        notes.unshift(`Written by ${target.model} at ${target.host} using ${MODE_LABEL[mode]}.`);
        if (attempt > 1) notes.push(`Succeeded on attempt ${attempt} of ${attempts}.`);
        return {
          script: enforceCast(verdict.script, request.cast ?? []),
          writer: 'llm',
          model: target.model,
          notes,
        };
      }
      failures.push(verdict.failure);
      logger.warn(
        { ...bind, attempt, kind: verdict.failure.kind, problem: verdict.failure.problem },
        'script attempt failed',
      );
    } catch (error) {
      if (error instanceof APIUserAbortError || signal?.aborted || (error as Error).name === 'AbortError') {
        throw new ComicMasterError('cancelled', 'The script was cancelled.', { cause: error });
      }
      const fatal = fatalError(error, target);
      if (fatal) {
        logger.error({ ...bind, err: fatal.message }, 'script writer cannot be used');
        throw fatal;
      }
      const failure = describeError(error);
      failures.push(failure);
      logger.warn(
        { ...bind, attempt, kind: failure.kind, problem: failure.problem },
        'script attempt failed',
      );
    }
  }
  const error = finalError(failures, target, config.LLM_TIMEOUT_MS);
  logger.error({ ...bind, err: error.message }, 'script writer gave up');
  throw error;
}

/** Exposed for tests and diagnostics: the JSON schema sent in json_schema mode. */
export const comicScriptJsonSchema = (): Record<string, unknown> => toStrictJsonSchema(ComicScript);
