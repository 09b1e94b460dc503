import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { unzipSync } from 'fflate';
import { PDFDocument, ReadingDirection } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/env.ts';
import { buildComicInfoXml } from '../src/comic/export/comicinfo.ts';
import { exportCbz } from '../src/comic/export/cbz.ts';
import { loadComic } from '../src/comic/export/load.ts';
import { exportPdf } from '../src/comic/export/pdf.ts';
import { runLocalComic } from '../src/comic/run-comic.ts';
import { StoryboardRenderer } from '../src/gpu/storyboard-renderer.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'comicmaster-export-'));
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// A small strict XML reader, enough to check ComicInfo.xml is well-formed and to walk its elements.

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

function decodeEntities(text: string): string {
  return text.replace(
    /&(amp|lt|gt|quot|apos);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!,
  );
}

function parseXml(xml: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`XML not well-formed at ${i}: ${why}`);
  };
  if (xml.startsWith('<?xml')) i = xml.indexOf('?>') + 2;
  const skipSpace = () => {
    while (/\s/.test(xml[i] ?? '')) i++;
  };
  const element = (): XmlElement => {
    if (xml[i] !== '<') fail('expected <');
    const nameMatch = /^<([A-Za-z_][\w.-]*)/.exec(xml.slice(i)) ?? fail('bad element name');
    const name = nameMatch[1]!;
    i += nameMatch[0].length;
    const attributes: Record<string, string> = {};
    for (;;) {
      skipSpace();
      if (xml.startsWith('/>', i)) {
        i += 2;
        return { name, attributes, children: [], text: '' };
      }
      if (xml[i] === '>') {
        i++;
        break;
      }
      const attr = /^([A-Za-z_][\w:.-]*)="([^"<]*)"/.exec(xml.slice(i)) ?? fail('bad attribute');
      if (attr[1]! in attributes) fail(`duplicate attribute ${attr[1]}`);
      attributes[attr[1]!] = decodeEntities(attr[2]!);
      i += attr[0].length;
    }
    const children: XmlElement[] = [];
    let text = '';
    for (;;) {
      if (xml.startsWith(`</${name}>`, i)) {
        i += name.length + 3;
        return { name, attributes, children, text: decodeEntities(text) };
      }
      if (xml.startsWith('</', i)) fail(`mismatched closing tag for ${name}`);
      if (xml[i] === '<') children.push(element());
      else if (i >= xml.length) fail(`unclosed ${name}`);
      else {
        if (xml[i] === '&' && !/^&(amp|lt|gt|quot|apos);/.test(xml.slice(i))) fail('bare &');
        text += xml[i++];
      }
    }
  };
  skipSpace();
  const root = element();
  skipSpace();
  if (i !== xml.length) fail('content after the root element');
  return root;
}

/** The ComicInfo v2.0 XSD's xs:sequence, written out here independently of the product's copy. */
const XSD_SEQUENCE = (
  'Title Series Number Count Volume AlternateSeries AlternateNumber AlternateCount Summary Notes Year Month Day ' +
  'Writer Penciller Inker Colorist Letterer CoverArtist Editor Publisher Imprint Genre Web PageCount LanguageISO ' +
  'Format BlackAndWhite Manga Characters Teams Locations ScanInformation StoryArc SeriesGroup AgeRating Pages ' +
  'CommunityRating MainCharacterOrTeam Review'
).split(' ');
const XSD_INT_ELEMENTS = new Set(['Count', 'Volume', 'AlternateCount', 'Year', 'Month', 'Day', 'PageCount']);
const MANGA_VALUES = ['Unknown', 'No', 'Yes', 'YesAndRightToLeft'];
const PAGE_TYPES = [
  'FrontCover',
  'InnerCover',
  'Roundup',
  'Story',
  'Advertisement',
  'Editorial',
  'Letters',
  'Preview',
  'BackCover',
  'Other',
  'Deleted',
];

/** Checks the shape the ComicInfo.xsd requires; returns the elements by name. */
function validateComicInfo(xml: string): Map<string, XmlElement> {
  const root = parseXml(xml);
  expect(root.name).toBe('ComicInfo');
  const names = root.children.map((c) => c.name);
  for (const name of names) expect(XSD_SEQUENCE, `unknown element ${name}`).toContain(name);
  const positions = names.map((n) => XSD_SEQUENCE.indexOf(n));
  // xs:sequence with maxOccurs 1: strictly increasing positions (in order, no repeats).
  positions.forEach((p, k) => {
    if (k > 0) expect(p, `${names[k]} after ${names[k - 1]}`).toBeGreaterThan(positions[k - 1]!);
  });
  const byName = new Map(root.children.map((c) => [c.name, c]));
  for (const [name, el] of byName) {
    if (XSD_INT_ELEMENTS.has(name)) expect(el.text, name).toMatch(/^-?\d+$/);
    if (name !== 'Pages') expect(el.children, `${name} holds text only`).toEqual([]);
  }
  if (byName.has('Manga')) expect(MANGA_VALUES).toContain(byName.get('Manga')!.text);
  const pages = byName.get('Pages');
  if (pages) {
    for (const page of pages.children) {
      expect(page.name).toBe('Page');
      expect(page.attributes.Image, 'Image is required').toMatch(/^\d+$/);
      for (const a of ['ImageSize', 'ImageWidth', 'ImageHeight']) {
        if (a in page.attributes) expect(page.attributes[a], a).toMatch(/^\d+$/);
      }
      if ('Type' in page.attributes) expect(PAGE_TYPES).toContain(page.attributes.Type);
    }
  }
  return byName;
}

// ---------------------------------------------------------------------------------------------------

const config = parseConfig({ DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent' });
let rtlDir = '';
let ltrDir = '';

beforeAll(async () => {
  const renderer = new StoryboardRenderer();
  const rtl = await runLocalComic(
    {
      story: 'Two rival chefs & a stolen recipe book',
      pages: 2,
      panelsPerPage: 3,
      rtl: true,
      out: join(dir, 'rtl'),
    },
    { config, renderer },
  );
  const ltr = await runLocalComic(
    {
      story: 'A lighthouse keeper finds a message in a bottle',
      pages: 1,
      panelsPerPage: 2,
      out: join(dir, 'ltr'),
    },
    { config, renderer },
  );
  rtlDir = rtl.outDir;
  ltrDir = ltr.outDir;
}, 120_000);

describe('CBZ', () => {
  it('holds the pages in reading order, stored byte for byte, and a ComicInfo.xml with the comic’s metadata', async () => {
    const comic = await loadComic(rtlDir);
    const { bytes } = exportCbz(comic, { writer: 'Mina', genre: 'Comedy', languageISO: 'en' });
    const archive = Buffer.from(bytes);
    const entries = unzipSync(bytes);
    expect(Object.keys(entries)).toEqual(['001.png', '002.png', 'ComicInfo.xml']);

    const pageFiles = [1, 2].map((n) => readFileSync(join(rtlDir, 'pages', `page-0${n}.png`)));
    pageFiles.forEach((png, k) => {
      const entry = entries[`00${k + 1}.png`]!;
      expect(Buffer.from(entry).equals(png)).toBe(true);
      // Stored, not deflated: the PNG's bytes appear verbatim in the archive.
      expect(archive.indexOf(png)).toBeGreaterThan(0);
    });

    const xml = new TextDecoder().decode(entries['ComicInfo.xml']);
    const info = validateComicInfo(xml);
    const manifest = comic.manifest;
    expect(info.get('Title')!.text).toBe(manifest.script.title);
    expect(info.get('Summary')!.text).toBe(manifest.script.logline);
    expect(info.get('Writer')!.text).toBe('Mina');
    expect(info.get('Genre')!.text).toBe('Comedy');
    expect(info.get('LanguageISO')!.text).toBe('en');
    expect(info.get('Manga')!.text).toBe('YesAndRightToLeft');
    expect(info.get('Characters')!.text.split(', ')).toEqual(manifest.script.cast.map((c) => c.name));
    expect(Number(info.get('PageCount')!.text)).toBe(2);

    const pages = info.get('Pages')!.children;
    expect(pages).toHaveLength(2);
    expect(pages.map((p) => p.attributes.Image)).toEqual(['0', '1']);
    expect(pages[0]!.attributes.Type).toBe('FrontCover');
    for (const [k, page] of pages.entries()) {
      const meta = await sharp(pageFiles[k]).metadata();
      expect(Number(page.attributes.ImageWidth)).toBe(meta.width);
      expect(Number(page.attributes.ImageHeight)).toBe(meta.height);
      expect(Number(page.attributes.ImageSize)).toBe(pageFiles[k]!.length);
    }
  });

  it('marks a left-to-right comic as Manga=No and credits ComicMaster when no member is named', async () => {
    const { bytes } = exportCbz(await loadComic(join(ltrDir, 'manifest.json')));
    const info = validateComicInfo(new TextDecoder().decode(unzipSync(bytes)['ComicInfo.xml']));
    expect(info.get('Manga')!.text).toBe('No');
    expect(info.get('Writer')!.text).toBe('ComicMaster');
    expect(info.get('PageCount')!.text).toBe('1');
    expect(info.has('LanguageISO')).toBe(false);
  });

  it('escapes text so titles with markup characters survive, and drops characters XML cannot hold', () => {
    const xml = buildComicInfoXml({
      title: 'Tom & Jerry <"Part 2"> it\'s',
      summary: 'a\u0001b </Summary><Evil>',
      characters: ['Tom', 'Jerry, Jr.'],
      rtl: false,
      pages: [{ width: 10, height: 20, bytes: 30 }],
    });
    const info = validateComicInfo(xml);
    expect(info.get('Title')!.text).toBe('Tom & Jerry <"Part 2"> it\'s');
    expect(info.get('Summary')!.text).toBe('ab </Summary><Evil>');
    expect(info.has('Evil')).toBe(false);
    // A comma inside a name would split it in two for readers of the comma-separated list.
    expect(info.get('Characters')!.text).toBe('Tom, Jerry  Jr.');
  });
});

describe('PDF', () => {
  it('has one page per comic page at 300 dpi print size, with the title metadata', async () => {
    const comic = await loadComic(rtlDir);
    const result = await exportPdf(comic, { writer: 'Mina' });
    expect(result.fits).toBe(true);
    expect(result.imageFormat).toBe('png');
    const pdf = await PDFDocument.load(result.bytes, { updateMetadata: false });
    expect(pdf.getPageCount()).toBe(2);
    for (const page of pdf.getPages()) {
      // 1988 × 3056 px at 300 dpi → 477.12 × 733.44 pt
      expect(page.getWidth()).toBeCloseTo(477.12, 2);
      expect(page.getHeight()).toBeCloseTo(733.44, 2);
    }
    expect(pdf.getTitle()).toBe(comic.manifest.script.title);
    expect(pdf.getAuthor()).toBe('Mina');
    expect(pdf.getSubject()).toBe(comic.manifest.script.logline);
    expect(pdf.getCreator()).toBe('ComicMaster');
    expect(pdf.getProducer()).toContain('ComicMaster');
    // A right-to-left comic asks viewers to turn pages the manga way.
    expect(pdf.catalog.getViewerPreferences()?.getReadingDirection()).toBe(ReadingDirection.R2L);
  });

  it('re-encodes pages as JPEG to fit a size budget, and says so when nothing fits', async () => {
    const comic = await loadComic(rtlDir);
    const full = await exportPdf(comic);
    const budget = Math.floor(full.bytes.length / 2);
    const fitted = await exportPdf(comic, { maxBytes: budget });
    expect(fitted.fits).toBe(true);
    expect(fitted.imageFormat).toBe('jpeg');
    expect(fitted.bytes.length).toBeLessThanOrEqual(budget);
    const pdf = await PDFDocument.load(fitted.bytes, { updateMetadata: false });
    expect(pdf.getPageCount()).toBe(2);
    expect(pdf.getPage(0).getWidth()).toBeCloseTo(477.12, 2);

    const hopeless = await exportPdf(comic, { maxBytes: 1000 });
    expect(hopeless.fits).toBe(false);
    expect(hopeless.bytes.length).toBeGreaterThan(1000);
    expect((await PDFDocument.load(hopeless.bytes, { updateMetadata: false })).getPageCount()).toBe(2);
  });
});

describe('comicmaster export', () => {
  const cli = resolve('bin/comicmaster.js');
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: join(dir, 'data'),
    LOG_LEVEL: 'silent',
  };

  it('writes a CBZ and a PDF from a comic folder', async () => {
    const cbzFile = join(dir, 'out', 'comic.cbz');
    const cbz = await run(process.execPath, [cli, 'export', rtlDir, '--format', 'cbz', '--out', cbzFile], {
      env,
      cwd: dir,
    });
    expect(cbz.stdout).toContain('2 page(s)');
    const entries = unzipSync(readFileSync(cbzFile));
    expect(Object.keys(entries)).toEqual(['001.png', '002.png', 'ComicInfo.xml']);

    const pdfFile = join(dir, 'out', 'comic.pdf');
    await run(
      process.execPath,
      [cli, 'export', join(ltrDir, 'manifest.json'), '--format', 'pdf', '--out', pdfFile],
      { env, cwd: dir },
    );
    const pdf = await PDFDocument.load(readFileSync(pdfFile), { updateMetadata: false });
    expect(pdf.getPageCount()).toBe(1);
    expect(pdf.getPage(0).getHeight()).toBeCloseTo(733.44, 2);
  });

  it('exits non-zero with a readable message for a folder that is not a comic', async () => {
    const failure = await run(
      process.execPath,
      [cli, 'export', join(dir, 'nothing-here'), '--format', 'pdf', '--out', join(dir, 'x.pdf')],
      {
        env,
        cwd: dir,
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect('code' in failure && failure.code).toBe(1);
    expect((failure as { stderr: string }).stderr).toContain('does not exist');
  });
});
