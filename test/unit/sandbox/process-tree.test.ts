import assert from "node:assert/strict";
import { descendantsOf, parseStatPpid } from "../../../sandbox/process-tree.ts";

describe("sandbox/process-tree", () => {
  it("should read the ppid even when the command name has spaces and parentheses", () => {
    assert.equal(parseStatPpid("123 (bash) S 45 123 123 0 -1"), 45);
    assert.equal(parseStatPpid("7 (a) b (c) R 1 7 7 0"), 1);
    assert.equal(parseStatPpid("garbage"), undefined);
  });

  it("should list descendants parents first, without the root and without unrelated processes", () => {
    const table = new Map([
      [10, 1],
      [11, 10],
      [12, 10],
      [13, 11],
      [14, 13],
      [20, 1],
      [21, 20],
    ]);
    assert.deepEqual(descendantsOf(10, table), [11, 12, 13, 14]);
    assert.deepEqual(descendantsOf(20, table), [21]);
    assert.deepEqual(descendantsOf(99, table), []);
  });
});
