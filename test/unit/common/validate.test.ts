import assert from "node:assert/strict";
import {
  archField,
  obj,
  optField,
  packageField,
  projectField,
  repositoryField,
  str,
} from "../../../actors/common/validate.ts";

describe("actors/common/validate", () => {
  it("should return typed fields and name the field that is wrong", () => {
    const o = obj({ project: "home:user", package: "foo.bar", repository: "openSUSE_Tumbleweed", arch: "x86_64" });
    assert.equal(projectField(o), "home:user");
    assert.equal(packageField(o), "foo.bar");
    assert.equal(repositoryField(o), "openSUSE_Tumbleweed");
    assert.equal(archField(o), "x86_64");
    assert.throws(() => obj([1]), { code: "ERR_INVALID_INPUT", message: /arguments must be an object/ });
    assert.throws(() => str({ name: 3 }, "name"), { message: /'name' must be a string/ });
    assert.throws(() => projectField({}), { message: /'project' must be a string/ });
  });

  it("should check names by kiln's name rules, with their messages even for very long names", () => {
    assert.throws(() => projectField({ project: ".." }), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => packageField({ package: "_hidden" }), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => repositoryField({ repository: "a/b" }), { code: "ERR_INVALID_INPUT" });
    assert.throws(() => archField({ arch: "x86 64" }), { code: "ERR_INVALID_INPUT" });
    // The rule (not the generic string bound) says what is wrong with a 1,000-character name.
    assert.throws(
      () => projectField({ project: "a".repeat(1000) }),
      (e: Error) => !/longer than 4096/.test(e.message)
    );
    assert.equal(projectField({ other: "x" }, "other"), "x");
  });

  it("should read optional fields only when present", () => {
    assert.equal(optField({}, "arch", archField), undefined);
    assert.equal(optField({ arch: null }, "arch", archField), undefined);
    assert.equal(optField({ arch: "i586" }, "arch", archField), "i586");
    assert.throws(() => optField({ arch: "" }, "arch", archField), { message: /'arch' must not be empty/ });
  });
});
