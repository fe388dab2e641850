/**
 * A count-down latch: `wait()` resolves once `countDown()` was called `count` times, or rejects
 * after the timeout.
 */
export class Latch {
  #count: number;
  #resolve!: () => void;
  readonly #promise: Promise<void>;

  constructor(count = 1) {
    this.#count = count;
    this.#promise = new Promise((resolve) => (this.#resolve = resolve));
    if (count <= 0) this.#resolve();
  }

  countDown(): void {
    if (--this.#count <= 0) this.#resolve();
  }

  get remaining(): number {
    return Math.max(0, this.#count);
  }

  wait(timeoutMs = 10_000, name = "latch"): Promise<void> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} timeout (${this.#count} remaining)`)), timeoutMs);
    });
    return Promise.race([this.#promise, timeout]).finally(() => clearTimeout(timer));
  }
}
