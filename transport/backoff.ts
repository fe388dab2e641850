/**
 * Retry policy: the delays before each retry of a retryable failure, with jitter so that many
 * callers that failed together do not retry together.
 */

/** Default delays in ms before retry 1, 2, 3 …; the array length is the number of retries. */
export const DEFAULT_BACKOFF_MS: readonly number[] = [0, 100, 250, 500, 1000, 2000];

export interface Backoff {
  /** Delay before retry `attempt` (0-based), or undefined when no retry is left. */
  delay(attempt: number): number | undefined;
}

export function backoff(policy: readonly number[] = DEFAULT_BACKOFF_MS, jitter = 0.2): Backoff {
  return {
    delay(attempt: number): number | undefined {
      if (attempt < 0 || attempt >= policy.length) return undefined;
      const base = policy[attempt]!;
      return Math.round(base * (1 - jitter + Math.random() * 2 * jitter));
    },
  };
}

/** Sleeps `ms`, waking early (with a rejection) when the signal aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
