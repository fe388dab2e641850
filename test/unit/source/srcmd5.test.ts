import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { InvalidInputError } from "../../../transport/index.ts";
import { EMPTY_SRCMD5, computeSrcmd5, srcmd5Manifest } from "../../../actors/source/srcmd5.ts";

const md5 = (s: string): string => createHash("md5").update(s, "utf8").digest("hex");

describe("actors/source/srcmd5", () => {
  it("should give OBS's empty-package srcmd5 for no files", () => {
    assert.equal(computeSrcmd5([]), "d41d8cd98f00b204e9800998ecf8427e");
    assert.equal(EMPTY_SRCMD5, "d41d8cd98f00b204e9800998ecf8427e");
  });

  it("should hash one '<md5>  <name>' line per file", () => {
    const files = [{ name: "empty.txt", md5: "d41d8cd98f00b204e9800998ecf8427e" }];
    assert.equal(srcmd5Manifest(files), "d41d8cd98f00b204e9800998ecf8427e  empty.txt\n");
    // Computed with coreutils: printf 'd41d8cd98f00b204e9800998ecf8427e  empty.txt\n' | md5sum
    assert.equal(computeSrcmd5(files), "368e6c2e9c8d8dab0c5c1f7be376e042");
  });

  it("should sort the lines by file name in byte order", () => {
    const files = [
      { name: "hello.spec", md5: "5d41402abc4b2a76b9719d911017c592" },
      { name: "a.tar.gz", md5: "0cc175b9c0f1b6a831c399e269772661" },
      { name: "B.patch", md5: "92eb5ffee6ae2fec3ad71c777531578f" },
      { name: "_service", md5: "4a8a08f09d37b73795649038408b5f33" },
    ];
    assert.equal(
      srcmd5Manifest(files),
      "92eb5ffee6ae2fec3ad71c777531578f  B.patch\n" +
        "4a8a08f09d37b73795649038408b5f33  _service\n" +
        "0cc175b9c0f1b6a831c399e269772661  a.tar.gz\n" +
        "5d41402abc4b2a76b9719d911017c592  hello.spec\n"
    );
    // Computed with coreutils: the lines above through `LC_ALL=C sort -t' ' -k3 | md5sum`.
    assert.equal(computeSrcmd5(files), "af9aa5fc85100cc214b85e1004b44ff1");
  });

  it("should not depend on the order the files are given in", () => {
    const files = [
      { name: "z", md5: "fbade9e36a3f36d3d676c1b808451dd7" },
      { name: "a", md5: "0cc175b9c0f1b6a831c399e269772661" },
      { name: "m", md5: "6f8f57715090da2632453988d9a1501b" },
      { name: "a.spec", md5: "d41d8cd98f00b204e9800998ecf8427e" },
    ];
    const want = computeSrcmd5(files);
    // Every permutation of the four files.
    const permutations = (xs: typeof files): (typeof files)[] =>
      xs.length <= 1
        ? [xs]
        : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
    const all = permutations(files);
    assert.equal(all.length, 24);
    for (const order of all) assert.equal(computeSrcmd5(order), want);
    assert.equal(want, md5(srcmd5Manifest(files)));
    assert.match(
      srcmd5Manifest(files),
      /^0cc175b9c0f1b6a831c399e269772661 {2}a\nd41d8cd98f00b204e9800998ecf8427e {2}a\.spec\n/
    );
  });

  it("should order names by UTF-8 bytes, not UTF-16 code units", () => {
    // U+FFFD is EF BF BD in UTF-8 and sorts before U+1F600 (F0 9F 98 80); in UTF-16 the emoji's
    // high surrogate D83D sorts first, so a naive JavaScript sort would differ.
    const files = [
      { name: "x-😀", md5: "900150983cd24fb0d6963f7d28e17f72" },
      { name: "x-\ufffd", md5: "e2fc714c4727ee9395f324cd2e7f331f" },
    ];
    assert.equal(
      srcmd5Manifest(files),
      "e2fc714c4727ee9395f324cd2e7f331f  x-\ufffd\n900150983cd24fb0d6963f7d28e17f72  x-😀\n"
    );
    // Computed with coreutils: the two lines through `LC_ALL=C sort -t' ' -k3 | md5sum`.
    assert.equal(computeSrcmd5(files), "5f2832832be2d41352571b486c8b7637");
  });

  it("should hash OBS's bookkeeping entries like any other name", () => {
    const files = [
      { name: "foo.spec", md5: "5d41402abc4b2a76b9719d911017c592" },
      { name: "/LINK", md5: "0cc175b9c0f1b6a831c399e269772661" },
    ];
    assert.equal(
      srcmd5Manifest(files),
      "0cc175b9c0f1b6a831c399e269772661  /LINK\n5d41402abc4b2a76b9719d911017c592  foo.spec\n"
    );
  });

  it("should change when a file's content or name changes", () => {
    const base = computeSrcmd5([{ name: "a", md5: "0cc175b9c0f1b6a831c399e269772661" }]);
    assert.notEqual(computeSrcmd5([{ name: "a", md5: "0cc175b9c0f1b6a831c399e269772662" }]), base);
    assert.notEqual(computeSrcmd5([{ name: "b", md5: "0cc175b9c0f1b6a831c399e269772661" }]), base);
  });

  const bad: [string, { name: string; md5: string }[], RegExp][] = [
    [
      "an upper-case md5",
      [{ name: "a", md5: "0CC175B9C0F1B6A831C399E269772661" }],
      /md5 must be 32 lower-case hex digits/,
    ],
    ["a short md5", [{ name: "a", md5: "0cc175b9" }], /md5 must be 32 lower-case hex digits/],
    [
      "a sha256 instead of an md5",
      [{ name: "a", md5: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" }],
      /32 lower-case/,
    ],
    ["an empty name", [{ name: "", md5: "0cc175b9c0f1b6a831c399e269772661" }], /name must be a non-empty string/],
    ["a newline in a name", [{ name: "a\nb", md5: "0cc175b9c0f1b6a831c399e269772661" }], /control character/],
    ["a NUL in a name", [{ name: "a\u0000", md5: "0cc175b9c0f1b6a831c399e269772661" }], /control character/],
    ["an unpaired surrogate", [{ name: "a\ud800", md5: "0cc175b9c0f1b6a831c399e269772661" }], /unpaired/],
    [
      "a duplicate name",
      [
        { name: "a", md5: "0cc175b9c0f1b6a831c399e269772661" },
        { name: "a", md5: "92eb5ffee6ae2fec3ad71c777531578f" },
      ],
      /file "a" is listed more than once/,
    ],
  ];
  for (const [label, files, why] of bad) {
    it(`should refuse ${label}`, () => {
      assert.throws(
        () => computeSrcmd5(files),
        (err: unknown) => err instanceof InvalidInputError && why.test(err.message)
      );
    });
  }
});
