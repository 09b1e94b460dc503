import type { CaptionMode } from './captions.ts';
import type { Refusal } from './ingest.ts';

/** What `dataset prepare` tells the person who handed over the images (and what the bot posts). */
export interface PreparedImage {
  /** Where it came from: a path, or `archive.zip:inner/name.png`. */
  source: string;
  /** The prepared PNG, relative to the output folder (e.g. `10_ohwx/0001.png`). */
  file: string;
  /** Size after orientation, scaling and capping. */
  width: number;
  height: number;
  /** Set when the image was smaller than the target short side and was enlarged. */
  upscaledFrom?: { width: number; height: number };
  /**
   * With upscaledFrom: the original pixels, relative to the output folder (`.lowres/0003.png`, listed
   * in `.lowres/manifest.json`), for the GPU runner to re-make the image with an upscale model.
   */
  original?: string;
  caption: string;
}

export interface DatasetReport {
  status: 'prepared' | 'refused';
  /** One sentence for people: what happened, and what to do when refused. */
  message: string;
  trigger: string;
  outDir: string;
  /** kohya's `<repeats>_<trigger>` folder, relative to outDir (the train_data_dir is outDir). */
  imageFolder?: string;
  repeats: number;
  captionMode: CaptionMode;
  /** Pass this to kohya as --caption_extension (its default is .caption). */
  captionExtension: string;
  accepted: PreparedImage[];
  refused: Refusal[];
  warnings: string[];
  /** usable: passed every check and de-duplication; prepared: written (0 when refused). */
  counts: { lookedAt: number; usable: number; prepared: number; refused: number; duplicates: number };
}

const MAX_LISTED_REFUSALS = 50;

/** The report as text for a terminal: summary, warnings, every refusal (up to a point) with its reason. */
export function formatReport(report: DatasetReport): string {
  const lines: string[] = [report.message, ''];
  lines.push(
    `Looked at ${report.counts.lookedAt} file(s): ${report.counts.usable} usable, ${report.counts.refused} refused` +
      (report.counts.duplicates ? ` (${report.counts.duplicates} duplicate(s))` : '') +
      '.',
  );
  if (report.status === 'prepared' && report.imageFolder) {
    lines.push(
      `Images and captions: ${report.outDir}/${report.imageFolder} (captions: ${report.captionMode}, extension ${report.captionExtension})`,
    );
  }
  if (report.warnings.length > 0) {
    lines.push('', 'Warnings:');
    for (const warning of report.warnings) lines.push(`  - ${warning}`);
  }
  if (report.refused.length > 0) {
    lines.push('', 'Refused:');
    for (const refusal of report.refused.slice(0, MAX_LISTED_REFUSALS))
      lines.push(`  - ${refusal.source}: ${refusal.reason}`);
    const more = report.refused.length - MAX_LISTED_REFUSALS;
    if (more > 0) lines.push(`  … and ${more} more (use --json for the full list)`);
  }
  const samples = report.accepted.slice(0, 5);
  if (samples.length > 0) {
    lines.push('', 'Sample captions:');
    for (const image of samples) lines.push(`  ${image.file}: ${image.caption}`);
  }
  return lines.join('\n');
}
