import assert from "node:assert/strict";
import { compareEvr, parseDep, parseEvr, provideMatches, rpmvercmp } from "../../../actors/common/rpm-version.ts";

describe("actors/common/rpm-version", () => {
  // Cases from rpm's documented behaviour (rpmvercmp semantics).
  const cases: [string, string, number][] = [
    ["1.0", "1.0", 0],
    ["1.0", "2.0", -1],
    ["2.0", "1.0", 1],
    ["2.0.1", "2.0.1", 0],
    ["2.0", "2.0.1", -1],
    ["2.0.1a", "2.0.1", 1],
    ["5.5p1", "5.5p2", -1],
    ["5.5p10", "5.5p1", 1],
    ["10xyz", "10.1xyz", -1],
    ["xyz10", "xyz10.1", -1],
    ["xyz.4", "8", -1],
    ["1.1.a", "1.1.1", -1],
    ["1.05", "1.5", 0],
    ["1.0~rc1", "1.0", -1],
    ["1.0~rc1", "1.0~rc2", -1],
    ["1.0~rc1~git123", "1.0~rc1", -1],
    ["1.0^", "1.0", 1],
    ["1.0^git1", "1.0^git2", -1],
    ["1.0^git1", "1.01", -1],
    ["1.0^20160101", "1.0.1", -1],
    ["1.0~rc1^git1", "1.0~rc1", 1],
    ["a", "b", -1],
    ["20101121", "20101121.0", -1],
    ["1.0a", "1.0.a", 0],
  ];
  for (const [a, b, want] of cases) {
    it(`should compare ${a} vs ${b} as ${want}`, () => {
      assert.equal(rpmvercmp(a, b), want);
      assert.equal(rpmvercmp(b, a), -want || 0);
    });
  }

  it("should parse epochs and releases", () => {
    assert.deepEqual(parseEvr("2:1.0-3.1"), { epoch: 2, version: "1.0", release: "3.1" });
    assert.deepEqual(parseEvr("1.0"), { epoch: 0, version: "1.0" });
    assert.equal(compareEvr(parseEvr("1:0.1"), parseEvr("9.9")), 1);
    assert.equal(compareEvr(parseEvr("1.0"), parseEvr("1.0-5")), 0);
  });

  it("should match versioned provides against requirements by range overlap", () => {
    const m = (p: string, r: string): boolean => provideMatches(parseDep(p), parseDep(r));
    assert.equal(m("foo = 1.2-1", "foo >= 1.0"), true);
    assert.equal(m("foo = 0.9", "foo >= 1.0"), false);
    assert.equal(m("foo", "foo >= 1.0"), true);
    assert.equal(m("foo = 2", "foo < 2"), false);
    assert.equal(m("foo = 2", "foo <= 2"), true);
    assert.equal(m("foo < 1", "foo > 2"), false);
    assert.equal(m("foo >= 3", "foo < 2"), false);
    assert.equal(m("foo >= 1", "foo < 2"), true);
    assert.equal(m("bar = 1", "foo"), false);
  });
});
