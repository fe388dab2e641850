/** Asserting that a request is refused with a given error code (and message). */
import assert from "node:assert/strict";
import type { KilnError } from "../../transport/index.ts";

/** Resolves with the error when `p` rejects with `code` (and a message matching `why`); fails otherwise. */
export async function refused(p: Promise<unknown>, code: string, why?: RegExp): Promise<KilnError> {
  try {
    await p;
  } catch (err) {
    const e = err as KilnError;
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (why) assert.match(e.message, why);
    return e;
  }
  assert.fail(`expected ${code}, but the request succeeded`);
}
