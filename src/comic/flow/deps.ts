import type { Logger } from 'pino';
import type { AppConfig } from '../../config/env.ts';
import type { Db } from '../../db/client.ts';
import type { PanelRenderer } from '../../gpu/renderer.ts';
import { log } from '../../log.ts';
import type { QueueConnection } from '../../queue/connection.ts';
import type { JobProducer } from '../../queue/producer.ts';
import type { ArtifactStore } from '../../store/artifact-store.ts';
import type { PageGeometry } from '../layout.ts';

/**
 * What the comic pipeline's CPU side needs. The bot builds one of these at start-up and hands it to
 * startCpuWorkers, startComic, rerollPanel, cancelComic and resumeUnfinishedComics.
 */
export interface PipelineDeps {
  db: Db;
  store: ArtifactStore;
  producer: JobProducer;
  /** The same Redis and prefix as the producer; page flows (parent + children) are added through it. */
  queueConnection: QueueConnection;
  config: AppConfig;
  logger?: Logger;
  /** Largest page image in bytes (default: Discord's 10 MiB upload limit). */
  uploadLimitBytes?: number;
  /** Page size, margins and gutters (default: a US comic page at 300 dpi). */
  geometry?: Partial<PageGeometry>;
  /** Draws the storyboard pages posted while panels render (default: the StoryboardRenderer). */
  storyboard?: PanelRenderer;
}

export function pipelineLogger(deps: Pick<PipelineDeps, 'logger'>, component: string): Logger {
  return (deps.logger ?? log()).child({ component });
}
