/**
 * Every failure the product expects carries two messages: one a user can act on (shown in Discord or
 * the CLI) and one for the operator (the cause, logged). Unknown errors are wrapped at the edges.
 */
export class ComicMasterError extends Error {
  /** Machine-readable kind, stable across versions, for logs and tests. */
  readonly code: string;
  /** Safe to show to the person who asked: no secrets, no stack. */
  readonly userMessage: string;

  constructor(
    code: string,
    userMessage: string,
    options: { cause?: unknown; operatorMessage?: string } = {},
  ) {
    super(options.operatorMessage ?? userMessage, { cause: options.cause });
    this.name = 'ComicMasterError';
    this.code = code;
    this.userMessage = userMessage;
  }
}

/** Input from a person or a file was wrong; retrying will not help. */
export class InputError extends ComicMasterError {
  constructor(userMessage: string, options: { cause?: unknown; operatorMessage?: string } = {}) {
    super('bad_input', userMessage, options);
    this.name = 'InputError';
  }
}

/** A service we depend on (LLM, ComfyUI, Discord, Redis) failed or timed out. */
export class UpstreamError extends ComicMasterError {
  constructor(
    readonly service: string,
    userMessage: string,
    options: { cause?: unknown; operatorMessage?: string; retryable?: boolean } = {},
  ) {
    super(`upstream_${service}`, userMessage, options);
    this.name = 'UpstreamError';
    this.retryable = options.retryable ?? true;
  }
  readonly retryable: boolean;
}

export function userMessageOf(error: unknown): string {
  if (error instanceof ComicMasterError) return error.userMessage;
  return 'Something went wrong on our side. The operators have the details in the logs.';
}
