import assert from "node:assert/strict";
import {
  DEFAULT_LIMITS,
  formatSeconds,
  parseByteSize,
  parseDuration,
  resolveLimits,
  validateLimits,
} from "../../../sandbox/index.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe("sandbox/limits", () => {
  it("should parse byte sizes with binary single-letter and IEC units and decimal SI units", () => {
    assert.equal(parseByteSize("123"), 123);
    assert.equal(parseByteSize(4096), 4096);
    assert.equal(parseByteSize("4G"), 4 * GiB);
    assert.equal(parseByteSize("4g"), 4 * GiB);
    assert.equal(parseByteSize("512MiB"), 512 * MiB);
    assert.equal(parseByteSize("1.5k"), 1536);
    assert.equal(parseByteSize("10MB"), 10_000_000);
    assert.equal(parseByteSize(" 2 TiB "), 2 * 1024 * GiB);
  });

  it("should reject malformed byte sizes with ERR_INVALID_INPUT", () => {
    for (const bad of ["", "abc", "-1", "4X", "1.2.3M", "G"]) {
      assert.throws(() => parseByteSize(bad), { code: "ERR_INVALID_INPUT" }, bad);
    }
    assert.throws(() => parseByteSize(-5), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => parseByteSize(Number.NaN), { code: "ERR_INVALID_INPUT" });
  });

  it("should parse durations, plain numbers being seconds", () => {
    assert.equal(parseDuration("30"), 30_000);
    assert.equal(parseDuration(1.5), 1500);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("90m"), 90 * 60_000);
    assert.equal(parseDuration("10min"), 600_000);
    assert.equal(parseDuration("2h"), 7_200_000);
    assert.equal(parseDuration("1d"), 86_400_000);
    assert.throws(() => parseDuration("soon"), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => parseDuration("5y"), { code: "ERR_INVALID_INPUT" });
  });

  it("should fill missing limits from the defaults and parse strings per field", () => {
    const l = resolveLimits({ wallMs: "2h", memoryBytes: "1G", pids: 100, logBytes: "10M" });
    assert.deepEqual(l, {
      ...DEFAULT_LIMITS,
      wallMs: 7_200_000,
      memoryBytes: GiB,
      pids: 100,
      logBytes: 10 * MiB,
    });
    assert.deepEqual(resolveLimits(), { ...DEFAULT_LIMITS });
    assert.equal(resolveLimits({ idleLogMs: "90" }).idleLogMs, 90_000);
  });

  it("should reject unknown limits, non-integers and values below the minimum", () => {
    assert.throws(() => resolveLimits({ cpus: 4 } as never), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => resolveLimits({ pids: 1 }), /pids must be an integer >= 8/);
    assert.throws(() => resolveLimits({ memoryBytes: "1k" }), /memoryBytes/);
    assert.throws(() => validateLimits({ ...DEFAULT_LIMITS, wallMs: 1000.5 }), /wallMs/);
    assert.throws(() => validateLimits({ ...DEFAULT_LIMITS, diskBytes: Number.POSITIVE_INFINITY }), /diskBytes/);
  });

  it("should keep the defaults frozen and sane", () => {
    assert.ok(Object.isFrozen(DEFAULT_LIMITS));
    assert.doesNotThrow(() => validateLimits({ ...DEFAULT_LIMITS }));
  });

  it("should format milliseconds as seconds for kill reasons", () => {
    assert.equal(formatSeconds(600_000), "600 s");
    assert.equal(formatSeconds(1500), "1.5 s");
    assert.equal(formatSeconds(1234), "1.234 s");
  });
});
