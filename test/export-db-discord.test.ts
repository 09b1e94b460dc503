/**
 * `/comic export` through the real bot against the fake Discord: the member gets the file attached
 * (the fake keeps the uploaded bytes), a file too big for the channel is kept in the artifact store
 * and the reply says where, and an unfinished comic or another server's comic is refused ephemerally.
 * The upload limit is set small so a "too big" PDF stays a small test image.
 */
import { unzipSync } from 'fflate';
import { PDFDocument } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTemplateScript } from '../src/agents/template-writer.ts';
import type { Database } from '../src/db/client.ts';
import { comics, pages, type Comic } from '../src/db/schema.ts';
import { artifactKeys } from '../src/store/keys.ts';
import type { ArtifactStore } from '../src/store/index.ts';
import type { FakeAttachment, FakeDiscord, SlashCommandInput } from './fakes/discord.ts';
import { commandReply, startBotHarness, type BotHarness } from './helpers/bot.ts';

const UPLOAD_LIMIT = 96 * 1024;
let harness: BotHarness;
let database: Database;
let store: ArtifactStore;
let fake: FakeDiscord;

beforeAll(async () => {
  // runBot applies the migrations, so rows can be written once it is up.
  harness = await startBotHarness({
    label: 'export-db-discord',
    discord: { uploadLimitBytes: UPLOAD_LIMIT },
  });
  ({ database, store, fake } = harness);
}, 120_000);

afterAll(async () => {
  await harness?.close();
});

/** A flat page (compresses to almost nothing) or a noisy one (no JPEG quality makes it small). */
async function pageImage(kind: 'flat' | 'noise', number: number): Promise<Buffer> {
  if (kind === 'flat') {
    return sharp({
      create: { width: 300, height: 460, channels: 3, background: { r: 250, g: 240 - 20 * number, b: 220 } },
    })
      .png()
      .toBuffer();
  }
  const width = 600;
  const height = 920;
  const pixels = Buffer.alloc(width * height * 3);
  // A fixed pseudo-random pattern, so the test is the same every run.
  let state = 12345 + number;
  for (let i = 0; i < pixels.length; i++) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    pixels[i] = state >> 16;
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

async function seedComic(opts: {
  pages: number;
  kind?: 'flat' | 'noise';
  rtl?: boolean;
  guildId?: string;
  donePages?: number;
}): Promise<Comic> {
  const done = opts.donePages ?? opts.pages;
  const script = writeTemplateScript({
    story: 'Two pigeons open a tiny post office on a rooftop',
    pages: opts.pages,
    panelsPerPage: 1,
  });
  const [comic] = await database.db
    .insert(comics)
    .values({
      guildId: opts.guildId ?? fake.guild.id,
      channelId: fake.guild.channels[0]!.id,
      userId: fake.user('alice').id,
      prompt: 'Two pigeons open a tiny post office on a rooftop',
      options: {
        pages: opts.pages,
        panelsPerPage: 1,
        style: null,
        modelFamily: 'illustrious',
        rtl: opts.rtl ?? false,
      },
      script,
      writer: 'template',
      status: done === opts.pages ? 'done' : 'rendering',
    })
    .returning();
  for (let number = 1; number <= opts.pages; number++) {
    const key = artifactKeys.page(comic!.id, number);
    if (number <= done) await store.put(key, await pageImage(opts.kind ?? 'flat', number));
    await database.db.insert(pages).values({
      comicId: comic!.id,
      number,
      layout: {},
      status: number <= done ? 'done' : 'rendering',
      artifactKey: number <= done ? key : null,
    });
  }
  return comic!;
}

interface Reply {
  content: string;
  ephemeral: boolean;
  attachments: FakeAttachment[];
}

/** Runs a command and resolves with what the member sees: text, whether ephemeral, attached files. */
function run(input: SlashCommandInput): Promise<Reply> {
  return commandReply(fake, input, { timeoutMs: 60_000 });
}

describe('/comic export', () => {
  it('attaches the CBZ of a finished comic, with ComicInfo.xml naming the member', async () => {
    const comic = await seedComic({ pages: 2, rtl: true });
    const reply = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: comic.id, format: 'cbz' },
    });
    expect(reply.ephemeral).toBe(false);
    expect(reply.content).toContain('CBZ');
    expect(reply.attachments).toHaveLength(1);
    const [file] = reply.attachments;
    expect(file!.filename).toMatch(/\.cbz$/);
    const zip = unzipSync(new Uint8Array(file!.bytes));
    const xml = new TextDecoder().decode(zip['ComicInfo.xml']!);
    expect(xml).toContain('<PageCount>2</PageCount>');
    expect(xml).toContain('<Manga>YesAndRightToLeft</Manga>');
    expect(xml).toContain('<Writer>alice</Writer>');
    expect(Object.keys(zip).filter((name) => name.endsWith('.png'))).toHaveLength(2);
  });

  it('attaches the print PDF of a finished comic', async () => {
    const comic = await seedComic({ pages: 3 });
    const reply = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: comic.id, format: 'pdf' },
    });
    expect(reply.attachments).toHaveLength(1);
    const pdf = await PDFDocument.load(new Uint8Array(reply.attachments[0]!.bytes));
    expect(pdf.getPageCount()).toBe(3);
    expect(pdf.getPage(0).getSize().width).toBeCloseTo((300 / 300) * 72, 3);
    expect(reply.attachments[0]!.size).toBeLessThanOrEqual(UPLOAD_LIMIT);
  });

  it('keeps a PDF too big for the channel in the artifact store and says where', async () => {
    const comic = await seedComic({ pages: 1, kind: 'noise' });
    const reply = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: comic.id, format: 'pdf' },
    });
    expect(reply.attachments).toHaveLength(0);
    const key = `exports/${comic.id}.pdf`;
    expect(reply.content).toContain(key);
    expect(reply.content).toContain(`comicmaster export ${comic.id}`);
    const stored = await store.getBuffer(key);
    expect(stored.length).toBeGreaterThan(UPLOAD_LIMIT);
    expect((await PDFDocument.load(new Uint8Array(stored))).getPageCount()).toBe(1);
  });

  it('refuses a comic still being made, ephemerally, saying how far it is', async () => {
    const comic = await seedComic({ pages: 3, donePages: 2 });
    const reply = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: comic.id, format: 'cbz' },
    });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content).toContain(`Comic \`${comic.id}\` is still being made: 2 of 3 pages are ready.`);
  });

  it('refuses unknown ids and comics of another server, ephemerally', async () => {
    const unknown = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: '00000000-0000-4000-8000-000000000000', format: 'pdf' },
    });
    expect(unknown.ephemeral).toBe(true);
    expect(unknown.content).toContain('There is no comic');
    const elsewhere = await seedComic({ pages: 1, guildId: '999999999999999999' });
    const refused = await run({
      name: 'comic',
      subcommand: 'export',
      options: { id: elsewhere.id, format: 'cbz' },
    });
    expect(refused.ephemeral).toBe(true);
    expect(refused.content).toContain('on this server');
    expect(refused.attachments).toHaveLength(0);
  });
});
