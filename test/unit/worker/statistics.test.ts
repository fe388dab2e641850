import assert from "node:assert/strict";
import { parseStatisticsTimes, renderStatistics } from "../../../actors/worker/statistics.ts";

describe("worker/statistics", () => {
  it("should render OBS's buildstatistics and read the times back", () => {
    const xml = renderStatistics({
      diskBytes: 5 * 1024 * 1024 + 1,
      peakMemoryBytes: 300 * 1024 * 1024,
      times: {
        totalMs: 12_345,
        downloadMs: 120,
        prebuildMs: 0,
        mainMs: 11_000,
        hooksMs: { "build-compare": 400, rpmlint: 700, "site-check": 5 },
      },
      download: { bytes: 4096, binaries: 3, cacheHits: 2 },
    });
    assert.match(xml, /^<buildstatistics>\n {2}<disk>\n {4}<usage>\n {6}<size unit="M">6<\/size>/);
    assert.match(xml, /<memory>\n {4}<usage>\n {6}<size unit="M">300<\/size>/);
    assert.match(
      xml,
      /<download>\n {4}<size unit="k">4<\/size>\n {4}<binaries>3<\/binaries>\n {4}<cachehits>2<\/cachehits>/
    );
    assert.doesNotMatch(xml, /<prebuild>/);
    assert.deepEqual(parseStatisticsTimes(xml), {
      total: 12_345,
      download: 120,
      main: 11_000,
      buildcmp: 400,
      rpmlint: 700,
      "site-check": 5,
    });
  });

  it("should leave out what was not measured", () => {
    const xml = renderStatistics({
      times: { totalMs: 1, downloadMs: 0, prebuildMs: 2, mainMs: 0, hooksMs: {} },
      download: { bytes: 0, binaries: 0, cacheHits: 0 },
    });
    assert.doesNotMatch(xml, /<disk>|<memory>/);
    assert.equal(parseStatisticsTimes(xml).prebuild, 2);
  });
});
