/**
 * Runs tasks one after another per key (a comic id), in this process. Posting for one comic is
 * serialised so two jobs cannot both find "no status message yet" and post two; different comics
 * still post in parallel. One bot process consumes the `post` queue, so an in-process lock suffices.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    // Forget the key once nothing more is queued behind this task, so the map does not grow forever.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
