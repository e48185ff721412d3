// Bounds the start requests awaiting ARM's answer at once (config `maxConcurrentStarts`).

/** A counting semaphore whose waits take an AbortSignal. */
export class Semaphore {
  private available: number;
  private readonly waiters: Array<() => void> = [];
  constructor(size: number) {
    this.available = size;
  }

  /** Resolves with the release function (idempotent); rejects with the signal's reason on abort. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.available > 0) {
      this.available--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = this.waiters.indexOf(grant);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(signal.reason);
        };
        const grant = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        this.waiters.push(grant);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.available++;
    };
  }
}
