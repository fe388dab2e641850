import assert from "node:assert/strict";
import { parseSize } from "../../../cli/commands/run-commands.ts";
import { ErrorCode, type KilnError } from "../../../transport/index.ts";

describe("cli/source limits", () => {
  it("should read sizes in bytes or with K, M, G, T suffixes", () => {
    const p = parseSize("--max-file-size");
    assert.equal(p("65536"), 65536);
    assert.equal(p("64K"), 64 * 1024);
    assert.equal(p("512M"), 512 * 1024 ** 2);
    assert.equal(p("4G"), 4 * 1024 ** 3);
    assert.equal(p("2gib"), 2 * 1024 ** 3);
    assert.equal(p(" 1T "), 1024 ** 4);
  });

  it("should refuse what is not a positive size, naming the flag", () => {
    for (const bad of ["", "0", "-1", "1.5G", "12X", "G", "9".repeat(30)]) {
      assert.throws(
        () => parseSize("--max-config-size")(bad),
        (err: unknown) =>
          (err as KilnError).code === ErrorCode.InvalidInput &&
          /--max-config-size must be a size such as 4G/.test((err as Error).message),
        bad
      );
    }
  });
});
