import assert from "node:assert/strict";
import { archBuild } from "../../../actors/worker/build-arch.ts";
import { buildableArchs } from "../../../actors/worker/worker-role.ts";

describe("worker/build-arch", () => {
  it("should build the host's own arch as it is", () => {
    assert.deepEqual(archBuild("x86_64", "x86_64"), { type: "arch.native" });
    assert.deepEqual(archBuild("aarch64", "aarch64"), { type: "arch.native" });
  });

  it("should build i586 and i686 on x86_64 under linux32 for that target, as OBS's BSCando says", () => {
    assert.deepEqual(archBuild("x86_64", "i586"), { type: "arch.foreign", target: "i586", personality: "linux32" });
    assert.deepEqual(archBuild("x86_64", "i686"), { type: "arch.foreign", target: "i686", personality: "linux32" });
    assert.deepEqual(archBuild("aarch64", "armv7l"), {
      type: "arch.foreign",
      target: "armv7l",
      personality: "linux32",
    });
  });

  it("should only name the target where the host runs the arch natively (i586 on i686)", () => {
    assert.deepEqual(archBuild("i686", "i586"), { type: "arch.foreign", target: "i586" });
    assert.deepEqual(archBuild("ppc64le", "ppc64"), { type: "arch.foreign", target: "ppc64" });
  });

  it("should refuse an arch whose helper kiln cannot apply", () => {
    const r = archBuild("mips64", "mips");
    assert.equal(r.type, "arch.unsupported");
    assert.match(
      (r as { reason: string }).reason,
      /mips64 host cannot build mips: kiln has no personality helper mips32/
    );
  });

  it("should announce by default what BSCando lists for the host, less what it would refuse", () => {
    assert.deepEqual(buildableArchs("x86_64"), ["x86_64", "i586", "i686"]);
    assert.deepEqual(buildableArchs("mips64"), ["mips64"]);
    assert.deepEqual(buildableArchs("unknown"), ["unknown"]);
  });
});
