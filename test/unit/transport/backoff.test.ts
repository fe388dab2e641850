import assert from "node:assert/strict";
import { DEFAULT_BACKOFF_MS, backoff, delay } from "../../../transport/index.ts";

describe("transport/backoff", () => {
  it("should give one delay per policy entry and none after", () => {
    const b = backoff([10, 20, 30], 0);
    assert.deepEqual(
      [0, 1, 2].map((i) => b.delay(i)),
      [10, 20, 30]
    );
    assert.equal(b.delay(3), undefined);
    assert.equal(b.delay(100), undefined);
    assert.equal(b.delay(-1), undefined);
    assert.equal(backoff([]).delay(0), undefined);
  });

  it("should default to the documented policy", () => {
    const b = backoff(undefined, 0);
    assert.deepEqual(
      DEFAULT_BACKOFF_MS.map((_, i) => b.delay(i)),
      [...DEFAULT_BACKOFF_MS]
    );
    assert.equal(b.delay(DEFAULT_BACKOFF_MS.length), undefined);
    const d = backoff();
    for (let i = 0; i < DEFAULT_BACKOFF_MS.length; i++) assert.notEqual(d.delay(i), undefined);
  });

  it("should keep jitter within ±jitter of the base delay and actually spread", () => {
    for (const jitter of [0.2, 0.5]) {
      const b = backoff([1000], jitter);
      const seen = new Set<number>();
      for (let i = 0; i < 2000; i++) {
        const d = b.delay(0)!;
        assert.ok(d >= 1000 * (1 - jitter) && d <= 1000 * (1 + jitter), `delay ${d} outside jitter ${jitter}`);
        seen.add(d);
      }
      // 2000 draws over a range of 400+ integers: a constant or near-constant delay is a bug.
      assert.ok(seen.size > 100, `only ${seen.size} distinct delays`);
      assert.ok(Math.min(...seen) < 1000 && Math.max(...seen) > 1000);
    }
  });

  it("should keep a zero delay zero", () => {
    const b = backoff([0, 0]);
    for (let i = 0; i < 100; i++) assert.equal(b.delay(0), 0);
  });

  it("should reject a delay with the abort reason when aborted", async () => {
    const ac = new AbortController();
    const p = delay(60_000, ac.signal);
    ac.abort(new Error("stop now"));
    await assert.rejects(p, /stop now/);
    await assert.rejects(delay(10, ac.signal), /stop now/);
    await delay(0);
  });
});
