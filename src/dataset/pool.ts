// Small concurrency helper for the dataset pipeline (decoding, captioning).

/** Runs `work` over `items` with at most `parallelism` at once, keeping the order of results. */
export async function mapPool<T, R>(
  items: T[],
  parallelism: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(parallelism, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  });
  await Promise.all(workers);
  return results;
}
