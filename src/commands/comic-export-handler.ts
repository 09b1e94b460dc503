/**
 * `/comic export id format:pdf|cbz` — the comic as one file a reader app opens.
 *
 * What needs only the database (the id, this server's comic, every page done) is checked before
 * deferring, so a refusal is ephemeral through the router's error path. Building the file takes
 * longer than Discord's 3 s, so the reply is deferred before the pages are read. The file is attached
 * when it fits the channel's upload limit (a PDF is re-encoded with JPEG pages to fit); when it cannot
 * fit, it is kept in the artifact store and the reply says where, and how an operator gets it.
 */
import { AttachmentBuilder, type ChatInputCommandInteraction } from 'discord.js';
import {
  buildComicExport,
  exportArtifactKey,
  findExportableComic,
  loadComicFromDatabase,
  type ComicExportFile,
} from '../comic/export/from-db.ts';
import { DISCORD_UPLOAD_LIMIT } from '../comic/encode.ts';
import { InputError } from '../errors.ts';
import type { BotDeps } from '../bot/deps.ts';
import { REQUEST_LIMIT_BYTES } from '../bot/upload-limits.ts';
import { ComicExportOptions } from './comic.ts';
import { optionValues, parseOptions } from './options.ts';

export async function comicExport(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const { id, format } = parseOptions(ComicExportOptions, optionValues(interaction), 'comic export');
  if (!interaction.guildId)
    throw new InputError('Comics are made in a server channel, not in direct messages.');
  const guildId = interaction.guildId;
  await findExportableComic(deps.db, id, { guildId });

  await interaction.deferReply();
  const comic = await loadComicFromDatabase(deps.db, deps.store, id, {
    guildId,
    resolveWriter: (userId) => memberName(interaction, userId),
  });
  // The interaction's own limit covers boosts; remembered by the router for this guild.
  const maxBytes = interaction.guild
    ? deps.uploadLimits.forGuild(interaction.guild)
    : Math.min(interaction.attachmentSizeLimit || DISCORD_UPLOAD_LIMIT, REQUEST_LIMIT_BYTES);
  const file = await buildComicExport(comic, format, { maxBytes });
  const logger = deps.logger.child({ component: 'comic-export', comicId: comic.comic.id, format });
  logger.info(
    {
      bytes: file.bytes.length,
      maxBytes,
      fits: file.fits,
      imageFormat: file.imageFormat,
      jpegQuality: file.jpegQuality,
    },
    'export built',
  );

  if (file.fits) {
    await interaction.editReply({
      content: exportedText(comic.script.title, file),
      files: [new AttachmentBuilder(Buffer.from(file.bytes), { name: file.filename })],
      allowedMentions: { parse: [] },
    });
    return;
  }

  const key = exportArtifactKey(comic.comic.id, format);
  await deps.store.put(key, Buffer.from(file.bytes), {
    contentType: format === 'pdf' ? 'application/pdf' : 'application/vnd.comicbook+zip',
  });
  await interaction.editReply({
    content: [
      `📦 **${comic.script.title}** as ${format.toUpperCase()} is ${megabytes(file.bytes.length)}, more than this channel accepts (${megabytes(maxBytes)})${format === 'pdf' ? ', even with its pages as JPEG' : ''}.`,
      `I kept it in the bot's artifact store as \`${key}\`. An operator can fetch it on the server with \`comicmaster export ${comic.comic.id} --format ${format} --out <file>\`.`,
    ].join('\n'),
    allowedMentions: { parse: [] },
  });
}

function exportedText(title: string, file: ComicExportFile): string {
  const pages = `${file.pageCount} page${file.pageCount === 1 ? '' : 's'}`;
  if (file.format === 'cbz')
    return `📚 **${title}** as CBZ (${pages}, with ComicInfo.xml for comic readers).`;
  const jpeg =
    file.imageFormat === 'jpeg'
      ? `, pages as JPEG (quality ${file.jpegQuality}) to fit the upload limit`
      : '';
  return `📄 **${title}** as a print PDF (${pages} at 300 dpi${jpeg}).`;
}

/** The member's name on this server for the Writer field; null (credited to ComicMaster) if unknown. */
async function memberName(interaction: ChatInputCommandInteraction, userId: string): Promise<string | null> {
  if (userId === interaction.user.id)
    return interaction.member && 'displayName' in interaction.member
      ? interaction.member.displayName
      : interaction.user.displayName;
  const member = await interaction.guild?.members.fetch(userId).catch(() => null);
  if (member) return member.displayName;
  const user = await interaction.client.users.fetch(userId).catch(() => null);
  return user?.displayName ?? null;
}

function megabytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
