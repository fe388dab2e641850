import assert from "node:assert/strict";
import { check } from "../../helpers/check.ts";
import { Latch } from "../../helpers/latch.ts";

describe("test/helpers", () => {
  describe("check", () => {
    it("should resolve with the first truthy value", async () => {
      let n = 0;
      assert.equal(await check(() => (++n >= 3 ? `after ${n}` : undefined), { intervalMs: 1 }), "after 3");
      assert.equal(await check(async () => 42), 42);
    });

    it("should keep polling through errors and name the last one at the deadline", async () => {
      let n = 0;
      assert.equal(
        await check(
          () => {
            if (++n < 3) throw new Error("not yet");
            return true;
          },
          { intervalMs: 1 }
        ),
        true
      );
      await assert.rejects(
        check(
          () => {
            throw new Error("still broken");
          },
          { timeoutMs: 30, intervalMs: 5, name: "thing" }
        ),
        /^Error: thing timeout: still broken$/
      );
      await assert.rejects(
        check(() => false, { timeoutMs: 20, intervalMs: 5 }),
        /^Error: check timeout$/
      );
    });
  });

  describe("Latch", () => {
    it("should open after count countDowns", async () => {
      const l = new Latch(2);
      l.countDown();
      assert.equal(l.remaining, 1);
      l.countDown();
      l.countDown();
      assert.equal(l.remaining, 0);
      await l.wait(1000);
      await new Latch(0).wait(1000);
    });

    it("should reject at its timeout, naming what is left", async () => {
      const l = new Latch(3);
      l.countDown();
      await assert.rejects(l.wait(20, "events"), /events timeout \(2 remaining\)/);
    });
  });
});
