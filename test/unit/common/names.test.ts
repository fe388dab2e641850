import assert from "node:assert/strict";
import { InvalidInputError } from "../../../transport/index.ts";
import {
  quoteForMessage,
  validateArch,
  validateFileName,
  validateGroupName,
  validatePackageName,
  validateProjectName,
  validateRepositoryName,
  validateUserName,
} from "../../../actors/common/names.ts";

type Check = (name: unknown) => void;

/** Asserts that `check` refuses `name` with an InvalidInputError whose message matches all patterns. */
function refuses(check: Check, name: unknown, ...patterns: RegExp[]): void {
  assert.throws(
    () => check(name),
    (err: unknown) => {
      assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${String(err)}`);
      for (const p of patterns) assert.match(err.message, p);
      return true;
    }
  );
}

function table(check: Check, kind: RegExp, good: string[], bad: [string, RegExp][]): void {
  for (const name of good) {
    it(`should accept ${JSON.stringify(name)}`, () => {
      assert.doesNotThrow(() => check(name));
    });
  }
  for (const [name, why] of bad) {
    it(`should refuse ${JSON.stringify(name.length > 40 ? name.slice(0, 40) + "…" : name)}`, () => {
      refuses(check, name, kind, why);
    });
  }
}

describe("actors/common/names", () => {
  describe("validateProjectName", () => {
    table(
      validateProjectName,
      /^invalid project name/,
      [
        "home:foo",
        "openSUSE:Factory",
        "devel:languages:python:Factory",
        "a",
        "A1",
        "0a",
        "home:foo:branches:openSUSE:Factory",
        "x-y+z.w_v",
        "home:-dash",
        "p".repeat(200),
      ],
      [
        ["", /must not be empty/],
        ["_foo", /must start with a letter or digit/],
        [".foo", /must start with a letter or digit/],
        ["-foo", /must start with a letter or digit/],
        [".", /must start with a letter or digit/],
        ["..", /must start with a letter or digit/],
        ["home:_foo", /part "_foo" starts with '_'/],
        ["home:.foo", /part ".foo" starts with '.'/],
        ["home::foo", /empty ':'-separated part/],
        ["home:", /empty ':'-separated part/],
        [":home", /must start with a letter or digit/],
        ["home/foo", /character "\/" is not allowed/],
        ["home foo", /character " " is not allowed/],
        ["hôme", /character "ô" is not allowed/],
        ["home\u0000foo", /control character/],
        ["home\nfoo", /control character/],
        ["0", /'0' is reserved/],
        ["p".repeat(201), /201 bytes long, the limit is 200/],
      ]
    );
    it("should refuse values that are not strings", () => {
      refuses(validateProjectName, 42, /invalid project name: must be a string, not number/);
      refuses(validateProjectName, null, /not null/);
      refuses(validateProjectName, undefined, /not undefined/);
    });
  });

  describe("validatePackageName", () => {
    table(
      validatePackageName,
      /^invalid package name/,
      [
        "foo",
        "python3-requests",
        "gcc13",
        "libfoo++",
        "foo_bar.baz",
        "0ad",
        "_project",
        "_product",
        "_pattern",
        "_patchinfo",
        "_product:openSUSE-release",
        "_patchinfo:foo",
        "k".repeat(200),
      ],
      [
        ["", /must not be empty/],
        ["_foo", /must not start with '_'/],
        ["_service", /must not start with '_'/],
        [".", /must start with a letter or digit/],
        ["..", /must start with a letter or digit/],
        [".hidden", /must start with a letter or digit/],
        ["-foo", /must start with a letter or digit/],
        ["0", /'0' is reserved/],
        ["foo:bar", /':' is not allowed/],
        ["foo/bar", /character "\/" is not allowed/],
        ["foo bar", /character " " is not allowed/],
        ["föo", /character "ö" is not allowed/],
        ["foo\u0001", /control character/],
        ["_product:", /the part after '_product:' is empty/],
        ["_product:_x", /must not start with "_"/],
        ["_product:a:b", /character ":" is not allowed/],
        ["_patchinfo:.x", /must not start with "."/],
        ["k".repeat(201), /201 bytes long/],
      ]
    );
  });

  describe("validatePackageName with multibuild flavors", () => {
    const check: Check = (n) => validatePackageName(n, { allowMultibuild: true });
    table(
      check,
      /^invalid package or multibuild flavor name/,
      ["foo", "foo:flavor", "foo:python3", "foo:-minus", "_product:x", "_product", "_patchinfo:x"],
      [
        ["foo:", /the flavor after ':' is empty/],
        [":flavor", /the package part before ':' is empty/],
        ["foo:a:b", /exactly one ':'/],
        ["foo:_x", /must not start with "_"/],
        ["foo:.x", /must not start with "."/],
        ["_project:x", /_project has no multibuild flavors/],
        ["_pattern:x", /_pattern has no multibuild flavors/],
        ["_foo:x", /must not start with '_'/],
        ["foo:a b", /character " " is not allowed/],
      ]
    );
  });

  describe("validateRepositoryName", () => {
    table(
      validateRepositoryName,
      /^invalid repository name/,
      ["openSUSE_Tumbleweed", "standard", "SLE_15_SP5", "images", "Fedora 40", "ünïcode", "a.b", "r".repeat(200)],
      [
        ["", /must not be empty/],
        ["_foo", /must not start with '_'/],
        [".foo", /must not start with '\.'/],
        [".", /must not start with '\.'/],
        ["..", /must not start with '\.'/],
        ["a:b", /':' is not allowed/],
        ["a/b", /'\/' is not allowed/],
        ["a\tb", /control character/],
        ["a\u007fb", /control character/],
        ["a\ud800b", /unpaired UTF-16 surrogate/],
        ["r".repeat(201), /201 bytes long/],
        // 100 two-byte characters make 200 bytes; one more is over the limit.
        ["é".repeat(101), /202 bytes long, the limit is 200/],
      ]
    );
  });

  describe("validateArch", () => {
    table(
      validateArch,
      /^invalid architecture name/,
      ["x86_64", "i586", "aarch64", "armv7hl", "ppc64le", "s390x", "riscv64", "noarch", "local", "_weird"],
      [
        ["", /must not be empty/],
        ["x86.64", /character "\." is not allowed/],
        ["a:b", /character ":" is not allowed/],
        ["a/b", /character "\/" is not allowed/],
        ["a b", /character " " is not allowed/],
        ["a\nb", /control character/],
        ["a".repeat(201), /201 bytes long/],
      ]
    );
  });

  describe("validateFileName", () => {
    table(
      validateFileName,
      /^invalid file name/,
      [
        "foo.spec",
        "foo-1.0.tar.gz",
        "_service",
        "_link",
        "foo bar.patch",
        "ünïcode.txt",
        "a:b",
        "_servicex",
        "f".repeat(255),
        "é".repeat(127),
      ],
      [
        ["", /must not be empty/],
        [".", /'\.' and '\.\.' are not file names/],
        ["..", /'\.' and '\.\.' are not file names/],
        [".hidden", /must not start with '\.'/],
        ["a/b", /'\/' is not allowed/],
        ["/etc/passwd", /'\/' is not allowed/],
        ["a\u0000b", /control character/],
        ["a\nb", /control character/],
        ["a\rb", /control character/],
        ["a\u0085b", /control character/],
        ["_service:obs_scm:foo.tar", /prefix '_service:' is reserved/],
        ["f".repeat(256), /256 bytes long, the limit is 255/],
        ["é".repeat(128), /256 bytes long, the limit is 255/],
        ["a\udc00", /unpaired UTF-16 surrogate/],
      ]
    );
    it("should accept the _service: prefix when allowed", () => {
      assert.doesNotThrow(() => validateFileName("_service:obs_scm:foo.tar", { allowServicePrefix: true }));
    });
    it("should still apply the other rules when the prefix is allowed", () => {
      refuses((n) => validateFileName(n, { allowServicePrefix: true }), "_service:a/b", /'\/' is not allowed/);
    });
  });

  describe("validateUserName", () => {
    table(
      validateUserName,
      /^invalid user name/,
      ["foo", "Admin", "_nobody_", "john.doe", "a b", "o'brien", "x+y&z#1*$^"],
      [
        ["", /must not be empty/],
        ["a", /at least 2 characters/],
        ["a/b", /character "\/" is not allowed/],
        ["a:b", /character ":" is not allowed/],
        ["a@b", /character "@" is not allowed/],
        ["jörg", /character "ö" is not allowed/],
        ["a\u0000", /control character/],
        ["u".repeat(101), /101 bytes long, the limit is 100/],
      ]
    );
  });

  describe("validateGroupName", () => {
    table(
      validateGroupName,
      /^invalid group name/,
      ["factory-maintainers", "qa_team", "g.1"],
      [
        ["g", /at least 2 characters/],
        ["a b", /character " " is not allowed/],
        ["a+b", /character "\+" is not allowed/],
      ]
    );
  });

  describe("quoteForMessage", () => {
    it("should escape control characters so a name cannot forge log lines", () => {
      assert.equal(quoteForMessage("a\nb\u0000c\u001b[31m"), '"a\\u{a}b\\u{0}c\\u{1b}[31m"');
    });
    it("should escape quotes, backslashes and bidirectional overrides", () => {
      assert.equal(quoteForMessage('a"b\\c\u202ed'), '"a\\"b\\\\c\\u{202e}d"');
    });
    it("should truncate long values", () => {
      const q = quoteForMessage("x".repeat(1000));
      assert.equal(q, `"${"x".repeat(80)}…"`);
    });
    it("should not split a surrogate pair when truncating", () => {
      assert.equal(quoteForMessage("😀".repeat(5), 3), '"😀😀😀…"');
    });
    it("should quote the offending name safely in validation errors", () => {
      refuses(validateFileName, "evil\nINFO fake log line", /"evil\\u\{a\}INFO fake log line"/);
      const long = "a/".repeat(5000);
      assert.throws(
        () => validateFileName(long),
        (err: Error) => err.message.length < 300
      );
    });
  });
});
