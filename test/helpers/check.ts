/**
 * Waiting without sleeping-and-hoping: poll a condition until it holds or a deadline passes.
 */

export interface CheckOptions {
  /** @default 10 s */
  timeoutMs?: number;
  /** @default 25 ms */
  intervalMs?: number;
  /** Named in the timeout error. */
  name?: string;
}

/** Resolves with the first truthy value of `fn`; rejects with `<name> timeout` at the deadline. */
export async function check<T>(fn: () => T | Promise<T>, opts: CheckOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = lastErr ? `: ${(lastErr as Error).message ?? String(lastErr)}` : "";
      throw new Error(`${opts.name ?? "check"} timeout${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
