/**
 * Where each kind of artifact lives in the store. One module so the runner (which writes renders), the
 * assembler (pages) and the bot (which reads both to post them) agree on the keys.
 */
const pad = (n: number) => String(n).padStart(2, '0');

export const artifactKeys = {
  /** A panel image as rendered (before cropping into its frame); one per attempt. */
  render: (comicId: string, page: number, panel: number, attempt: number, candidate = 0) =>
    `comics/${comicId}/renders/p${pad(page)}-${pad(panel)}-a${attempt}${candidate ? `-c${candidate}` : ''}.png`,
  /** The latest step preview of a render in progress (overwritten as it moves). */
  preview: (renderId: string) => `previews/${renderId}.jpg`,
  /** An assembled, lettered page. */
  page: (comicId: string, page: number) => `comics/${comicId}/pages/page-${pad(page)}.png`,
  /** The storyboard version of a page, posted while panels render. */
  storyboardPage: (comicId: string, page: number) => `comics/${comicId}/storyboard/page-${pad(page)}.png`,
  /** A LoRA file, as the runner installs it into ComfyUI's loras folder. */
  lora: (name: string) => `loras/${name}`,
};
