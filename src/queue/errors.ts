import { ComicMasterError } from '../errors.ts';

/**
 * A producer tried to enqueue a payload its queue's schema refuses. This is a bug in our code, not
 * the user's input, so the user hears the generic apology and the operator gets the zod reason.
 */
export class JobPayloadError extends ComicMasterError {
  constructor(readonly reason: string) {
    super(
      'invalid_job_payload',
      'Something went wrong on our side. The operators have the details in the logs.',
      {
        operatorMessage: reason,
      },
    );
    this.name = 'JobPayloadError';
  }
}
