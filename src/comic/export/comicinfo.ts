import { z } from 'zod';

/**
 * ComicInfo.xml, the metadata file comic servers and readers (Komga, Kavita, ComicRack and its heirs)
 * read from a CBZ. We follow the ComicInfo v2.0 schema (the Anansi Project's ComicInfo.xsd): its
 * elements form an xs:sequence, so they must appear in the schema's order, and strict readers reject
 * a file where they do not. We write only the elements we know a value for.
 */

/** The v2.0 xs:sequence of ComicInfo, in order. Every element is optional (minOccurs 0). */
export const COMICINFO_V2_SEQUENCE = [
  'Title',
  'Series',
  'Number',
  'Count',
  'Volume',
  'AlternateSeries',
  'AlternateNumber',
  'AlternateCount',
  'Summary',
  'Notes',
  'Year',
  'Month',
  'Day',
  'Writer',
  'Penciller',
  'Inker',
  'Colorist',
  'Letterer',
  'CoverArtist',
  'Editor',
  'Publisher',
  'Imprint',
  'Genre',
  'Web',
  'PageCount',
  'LanguageISO',
  'Format',
  'BlackAndWhite',
  'Manga',
  'Characters',
  'Teams',
  'Locations',
  'ScanInformation',
  'StoryArc',
  'SeriesGroup',
  'AgeRating',
  'Pages',
  'CommunityRating',
  'MainCharacterOrTeam',
  'Review',
] as const;
export type ComicInfoElement = (typeof COMICINFO_V2_SEQUENCE)[number];

/** The schema's ComicPageType values. */
export const COMIC_PAGE_TYPES = [
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
] as const;

export const ComicInfoPage = z.object({
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  /** Size of the image file in the archive, in bytes. */
  bytes: z.number().int().nonnegative(),
});
export type ComicInfoPage = z.infer<typeof ComicInfoPage>;

export const ComicInfoInput = z.object({
  title: z.string().trim().min(1),
  /** The logline. */
  summary: z.string().trim().nullable().default(null),
  /** The member who made the comic; "ComicMaster" when no one is named. */
  writer: z.string().trim().min(1).nullable().default(null),
  genre: z.string().trim().min(1).nullable().default(null),
  /** ISO 639 language code ("en", "fr", "ja"), when known. */
  languageISO: z
    .string()
    .trim()
    .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, {
      message: 'expected an ISO 639 language code such as en or pt-BR',
    })
    .nullable()
    .default(null),
  characters: z.array(z.string().trim().min(1)).default([]),
  notes: z.string().trim().min(1).nullable().default(null),
  rtl: z.boolean(),
  /** In reading order; the first page is the front cover. */
  pages: z.array(ComicInfoPage).min(1),
});
export type ComicInfoInput = z.input<typeof ComicInfoInput>;

/**
 * Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF) are
 * dropped: escaping cannot save them and a reader would refuse the whole file.
 */
const NOT_XML_CHARS =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function xmlEscape(text: string): string {
  return text
    .replace(NOT_XML_CHARS, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Builds ComicInfo.xml (UTF-8, schema v2.0 element order). */
export function buildComicInfoXml(input: ComicInfoInput): string {
  const info = ComicInfoInput.parse(input);
  const values = new Map<ComicInfoElement, string>();
  values.set('Title', info.title);
  if (info.summary) values.set('Summary', info.summary);
  if (info.notes) values.set('Notes', info.notes);
  values.set('Writer', info.writer ?? 'ComicMaster');
  if (info.genre) values.set('Genre', info.genre);
  values.set('PageCount', String(info.pages.length));
  if (info.languageISO) values.set('LanguageISO', info.languageISO);
  values.set('Manga', info.rtl ? 'YesAndRightToLeft' : 'No');
  const characters = [...new Set(info.characters.map((c) => c.replace(/,/g, ' ').trim()).filter(Boolean))];
  if (characters.length > 0) values.set('Characters', characters.join(', '));

  const lines = [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<ComicInfo xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
  ];
  for (const element of COMICINFO_V2_SEQUENCE) {
    if (element === 'Pages') {
      lines.push('  <Pages>');
      info.pages.forEach((page, index) => {
        const type = index === 0 ? ' Type="FrontCover"' : '';
        lines.push(
          `    <Page Image="${index}"${type} ImageSize="${page.bytes}" ImageWidth="${page.width}" ImageHeight="${page.height}" />`,
        );
      });
      lines.push('  </Pages>');
      continue;
    }
    const value = values.get(element);
    if (value !== undefined) lines.push(`  <${element}>${xmlEscape(value)}</${element}>`);
  }
  lines.push('</ComicInfo>');
  return lines.join('\n') + '\n';
}
