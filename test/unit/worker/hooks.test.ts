import assert from "node:assert/strict";
import {
  HookExit,
  HookStage,
  defaultHooks,
  hooksForJob,
  parseHookSpec,
  verdictOf,
  type HookConfig,
} from "../../../actors/worker/hooks.ts";
import { ErrorCode } from "../../../transport/index.ts";

const pre: HookConfig = { name: "check", stage: HookStage.Prebuild, program: "/opt/check" };
const post: HookConfig = { name: "lint", stage: HookStage.Postbuild, program: "/opt/lint" };
const optional: HookConfig = { name: "extra", stage: HookStage.Postbuild, program: "/opt/extra", optional: true };

describe("worker/hooks", () => {
  describe("parseHookSpec", () => {
    it("should read stage, program and name", () => {
      assert.deepEqual(parseHookSpec("prebuild:/usr/lib/kiln/hostcheck.sh"), {
        name: "hostcheck",
        stage: "prebuild",
        program: "/usr/lib/kiln/hostcheck.sh",
      });
      assert.deepEqual(parseHookSpec("optional:postbuild:/opt/a:b/lint"), {
        name: "lint",
        stage: "postbuild",
        program: "/opt/a:b/lint",
        optional: true,
      });
    });

    it("should refuse unknown stages, relative programs and unusable names", () => {
      for (const bad of ["during:/opt/x", "prebuild:x", "postbuild:/opt/.hidden", "/opt/x"]) {
        assert.throws(() => parseHookSpec(bad), { code: ErrorCode.InvalidInput }, bad);
      }
    });
  });

  describe("hooksForJob", () => {
    const hooks = [pre, post, optional];

    it("should run the default hooks and no optional one when the project says nothing", () => {
      assert.deepEqual(
        hooksForJob(hooks, undefined).map((h) => h.name),
        ["check", "lint"]
      );
    });

    it("should add optional hooks a project asks for and drop the ones it refuses", () => {
      assert.deepEqual(
        hooksForJob(hooks, ["hooks:extra", "nohooks:lint,check", "logidlelimit:30"]).map((h) => h.name),
        ["extra"]
      );
      assert.deepEqual(
        hooksForJob(hooks, ["hooks:extra", "hooks:unknown"]).map((h) => h.name),
        ["check", "lint", "extra"]
      );
    });

    it("should ship build-compare on by default and rpmlint on request", () => {
      const d = defaultHooks();
      assert.deepEqual(
        hooksForJob(d, []).map((h) => h.name),
        ["build-compare"]
      );
      assert.deepEqual(
        hooksForJob(d, ["hooks:rpmlint"]).map((h) => h.name),
        ["build-compare", "rpmlint"]
      );
    });
  });

  describe("verdictOf", () => {
    it("should map the documented exit codes", () => {
      assert.deepEqual(verdictOf(post, HookExit.Ok), { type: "hook.ok" });
      assert.deepEqual(verdictOf(post, HookExit.Unchanged), { type: "hook.unchanged" });
      assert.deepEqual(verdictOf(pre, HookExit.RejectJob), {
        type: "hook.reject",
        reason: "hook check rejected the job",
        hostBad: false,
      });
      assert.deepEqual(verdictOf(post, HookExit.HostBad), {
        type: "hook.reject",
        reason: "hook lint marked the host bad",
        hostBad: true,
      });
    });

    it("should fail the build for any other code, a signal or 'unchanged' before the build", () => {
      assert.deepEqual(verdictOf(post, 1), { type: "hook.failed", reason: "hook lint failed (exit 1)" });
      assert.deepEqual(verdictOf(post, undefined, "killed by SIGKILL"), {
        type: "hook.failed",
        reason: "hook lint failed (killed by SIGKILL)",
      });
      assert.equal(verdictOf(pre, HookExit.Unchanged).type, "hook.failed");
    });
  });
});
