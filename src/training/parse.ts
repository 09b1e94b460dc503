/**
 * Reading what the trainers print (shared/reference/training.md §3, §6.2, §7).
 *
 * kohya (with --console_log_simple): plain lines on stdout (`epoch 3/10`, `saving checkpoint: …`,
 * `model saved.`); the tqdm bar on stderr, one update per optimiser step, separated by `\r`:
 *   `steps:  12%|█▏        | 180/1500 [03:45<27:30,  1.25s/it, avr_loss=0.0765]`
 * ai-toolkit: the same tqdm shape with the job name as description and `lr: 1.0e-04 loss: 4.123e-01`
 * as postfix; `Saved checkpoint to …` lines; `Error running job: …` on failure.
 *
 * The parser turns chunks into events and remembers the signatures of known failures, so that when
 * the process ends the worker can say what went wrong and what to do about it.
 */

export interface ProgressEvent {
  type: 'progress';
  step: number;
  totalSteps: number;
  /** The moving average kohya shows (avr_loss), or ai-toolkit's loss; NaN when the trainer printed nan. */
  loss: number | null;
  etaSeconds: number | null;
}
export interface EpochEvent {
  type: 'epoch';
  epoch: number;
  totalEpochs: number;
}
/** A checkpoint is being (kohya: about to be) written at this path. */
export interface CheckpointEvent {
  type: 'checkpoint';
  path: string;
}
/** A line that means the run cannot succeed: stop it now rather than wait. */
export interface FatalEvent {
  type: 'fatal';
  failure: TrainingFailureKind;
}
export type TrainerEvent = ProgressEvent | EpochEvent | CheckpointEvent | FatalEvent;

export type TrainingFailureKind =
  | 'out_of_memory'
  | 'nan_loss'
  | 'no_data'
  | 'missing_captions'
  | 'gated_model'
  | 'killed'
  | 'stalled'
  | 'cuda_setup'
  | 'crashed';

const TQDM =
  /^(.+?):\s+(\d+)%\|.*?\| (\d+)\/(\d+) \[([\d:]+)<([\d:?]+),\s+([\d.?]+)(s\/it|it\/s)(?:, (.*))?\]/;

/** `27:30` or `1:21:28` → seconds; `?` → null. */
export function clockToSeconds(clock: string): number | null {
  if (!/^\d+(:\d+)*$/.test(clock)) return null;
  return clock.split(':').reduce((total, part) => total * 60 + Number(part), 0);
}

function parseLoss(postfix: string | undefined): number | null {
  if (!postfix) return null;
  const match = /(?:^|[\s,])(?:avr_loss|loss)[=:]\s*([^\s,\]]+)/.exec(postfix);
  if (!match?.[1]) return null;
  const text = match[1].toLowerCase();
  if (text === 'nan' || text === '-nan') return Number.NaN;
  const value = Number(text);
  return Number.isFinite(value) || Number.isNaN(value) ? value : null;
}

export interface ParserOptions {
  /** The tqdm description of the training bar: `steps` for kohya, the job name for ai-toolkit. */
  progressDescription: string;
  /** Stop after this many consecutive progress updates with a NaN loss (kohya never stops by itself). */
  nanStepLimit?: number;
  /** Lines kept for the failure report. */
  tailLines?: number;
}

export class TrainerOutputParser {
  private readonly partial = new Map<string, string>();
  private readonly tail: string[] = [];
  private consecutiveNan = 0;
  /** Failure signatures seen so far (in order). */
  readonly seen = new Set<TrainingFailureKind>();
  missingCaptionCount: number | null = null;
  /** The most telling error line (ai-toolkit's `Error running job:` or an exception line). */
  errorLine: string | null = null;
  lastProgress: ProgressEvent | null = null;

  constructor(private readonly options: ParserOptions) {}

  /** Feed a chunk of one stream; returns the events of the complete lines in it. */
  push(stream: 'stdout' | 'stderr', chunk: string): TrainerEvent[] {
    const text = (this.partial.get(stream) ?? '') + chunk;
    const pieces = text.split(/\r\n|\r|\n/);
    this.partial.set(stream, pieces.pop() ?? '');
    return pieces.flatMap((line) => this.line(line));
  }

  /** The stream ended: parse what is left. */
  end(stream: 'stdout' | 'stderr'): TrainerEvent[] {
    const rest = this.partial.get(stream) ?? '';
    this.partial.set(stream, '');
    return rest ? this.line(rest) : [];
  }

  /** The last lines printed (progress updates collapsed), for the operator. */
  tailText(): string {
    return this.tail.join('\n');
  }

  private remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > (this.options.tailLines ?? 40)) this.tail.shift();
  }

  private flag(kind: TrainingFailureKind, fatal: boolean): TrainerEvent[] {
    const first = !this.seen.has(kind);
    this.seen.add(kind);
    return fatal && first ? [{ type: 'fatal', failure: kind }] : [];
  }

  private line(raw: string): TrainerEvent[] {
    const line = raw.trimEnd();
    if (!line) return [];
    const bar = TQDM.exec(line);
    if (bar) {
      if (bar[1]?.trim() !== this.options.progressDescription) return [];
      const progress: ProgressEvent = {
        type: 'progress',
        step: Number(bar[3]),
        totalSteps: Number(bar[4]),
        loss: parseLoss(bar[9]),
        etaSeconds: clockToSeconds(bar[6] ?? '?'),
      };
      this.lastProgress = progress;
      const events: TrainerEvent[] = [progress];
      if (progress.loss !== null && Number.isNaN(progress.loss)) {
        this.consecutiveNan += 1;
        if (this.consecutiveNan >= (this.options.nanStepLimit ?? 10))
          events.push(...this.flag('nan_loss', true));
      } else if (progress.loss !== null && progress.loss !== 0) {
        // ai-toolkit shows a NaN loss as 0 after printing `loss is nan`: 0 does not reset the count.
        this.consecutiveNan = 0;
      }
      return events;
    }
    this.remember(line);

    const epoch = /^epoch (\d+)\/(\d+)$/.exec(line.trim());
    if (epoch) return [{ type: 'epoch', epoch: Number(epoch[1]), totalEpochs: Number(epoch[2]) }];
    const saving = /^(?:saving checkpoint:|Saved checkpoint to) (.+\.safetensors)$/.exec(line.trim());
    if (saving?.[1]) return [{ type: 'checkpoint', path: saving[1] }];

    if (
      /OutOfMemoryError: CUDA out of memory|CUDA error: out of memory|OOM during training step \d+ times in a row/.test(
        line,
      )
    ) {
      return this.flag('out_of_memory', false);
    }
    if (/NaN detected in latents/.test(line)) return this.flag('nan_loss', true);
    if (/^loss is nan/.test(line.trim())) {
      this.consecutiveNan += 1;
      return this.consecutiveNan >= (this.options.nanStepLimit ?? 10) ? this.flag('nan_loss', true) : [];
    }
    if (/^No data found\. Please verify arguments/.test(line.trim())) return this.flag('no_data', false);
    const noCaption = /No caption file found for (\d+) images/.exec(line);
    if (noCaption || /caption file is empty/.test(line)) {
      this.missingCaptionCount = noCaption ? Number(noCaption[1]) : this.missingCaptionCount;
      return this.flag('missing_captions', true);
    }
    if (
      /GatedRepoError|Cannot access gated repo|40[13] Client Error|does not appear to have a file named config\.json/.test(
        line,
      )
    ) {
      return this.flag('gated_model', false);
    }
    if (/CUDA Setup failed despite GPU being available|libcudart\.so/.test(line))
      return this.flag('cuda_setup', false);

    const jobError = /^Error running job: (.+)$/.exec(line.trim());
    if (jobError?.[1]) this.errorLine = jobError[1];
    else if (/^[A-Za-z_.]+(Error|Exception)\b.*:/.test(line.trim()) && !line.includes('CalledProcessError'))
      this.errorLine ??= line.trim();
    return [];
  }
}

export interface TrainingFailure {
  kind: TrainingFailureKind;
  /** What happened and what to do, for the person who started the training. */
  userMessage: string;
}

export interface ExitFacts {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** We stopped it: cancelled by a user, the watchdog, or a fatal line. */
  stoppedFor?: 'cancel' | 'stalled' | TrainingFailureKind;
  /** The final LoRA file exists (kohya `{name}.safetensors`, ai-toolkit the same). */
  finalFileExists: boolean;
  stalledMinutes?: number;
  captionExtension?: string;
}

const ADVICE: Record<TrainingFailureKind, (p: TrainerOutputParser, facts: ExitFacts) => string> = {
  out_of_memory: () =>
    'The GPU ran out of memory. Make sure nothing else uses the card (ComfyUI is freed before training), then retry; if it happens again, train at a lower rank or resolution (for FLUX keep quantize and low_vram on).',
  nan_loss: () =>
    'The loss became NaN, so the LoRA would be useless; training was stopped. Lower the learning rate, train in bf16 rather than fp16 (or use --no_half_vae), and check the dataset for broken or blank images.',
  no_data: () =>
    'The trainer found no images to train on. The dataset must be laid out as <repeats>_<trigger>/ folders of images with their captions; prepare it again with `comicmaster dataset prepare`.',
  missing_captions: (p, f) =>
    `${p.missingCaptionCount ?? 'Some'} images have no caption file (${f.captionExtension ?? '.txt'}), so they would be trained on the trigger alone; training was stopped. Prepare the dataset again, or pass the caption extension the files use.`,
  gated_model: () =>
    "The base model is gated on Hugging Face (FLUX.1-dev): accept its license on huggingface.co with the account of the token, and put HF_TOKEN in the trainer's .env on the runner.",
  killed: () =>
    'The trainer was killed (exit 137), usually because the machine ran out of RAM. Close other programs or add swap on the runner, then start the training again; it resumes from its last saved state.',
  stalled: (_p, f) =>
    `The trainer printed no progress for ${f.stalledMinutes ?? 'too many'} minutes and was stopped. Check the runner (a hung GPU driver or a full disk); starting again resumes from the last saved state.`,
  cuda_setup: () =>
    "The trainer could not set up CUDA (bitsandbytes could not find the CUDA libraries). Reinstall bitsandbytes for this CUDA version in the trainer's environment.",
  crashed: (p, f) =>
    `The trainer stopped with an error${f.exitCode !== null ? ` (exit ${f.exitCode})` : f.signal ? ` (${f.signal})` : ''}${p.errorLine ? `: ${p.errorLine.slice(0, 300)}` : ''}. The operators have the full log.`,
};

/**
 * Why a run failed, or null when it succeeded. Exit 0 is a success only with the final file: kohya
 * exits 0 after "No data found", and ai-toolkit exits 0 when stopped by SIGINT.
 */
export function diagnoseExit(parser: TrainerOutputParser, facts: ExitFacts): TrainingFailure | null {
  const failure = (kind: TrainingFailureKind): TrainingFailure => ({
    kind,
    userMessage: ADVICE[kind](parser, facts),
  });
  if (facts.stoppedFor === 'stalled') return failure('stalled');
  if (facts.stoppedFor && facts.stoppedFor !== 'cancel') return failure(facts.stoppedFor);
  if (facts.exitCode === 0 && facts.finalFileExists && !parser.seen.has('no_data')) return null;
  // The most specific signature wins over the exit status.
  for (const kind of [
    'out_of_memory',
    'gated_model',
    'no_data',
    'missing_captions',
    'nan_loss',
    'cuda_setup',
  ] as const) {
    if (parser.seen.has(kind)) return failure(kind);
  }
  if (facts.exitCode === 137 || facts.signal === 'SIGKILL') return failure('killed');
  if (facts.exitCode === 0) return failure('no_data');
  return failure('crashed');
}
