/**
 * sandbox/ — runs untrusted builds: assembles a build root (the host's /usr read-only, dependency
 * packages unpacked over it with rpm2cpio | bsdtar, a constructed /etc) and runs `rpmbuild -ba`
 * under bubblewrap with no network, no view of the host's secrets, as an unprivileged uid, and
 * under hard limits (wall time, idle log time, log size, memory, processes, disk), so that a
 * hostile spec cannot escape and the worker survives anything a build does.
 *
 * ```ts
 * if (!(await sandboxSelfTest(log)).ok) throw new Error("cannot sandbox builds here");
 * const outcome = await runRpmBuild({
 *   jobDir: "/var/cache/kiln/jobs/42",          // private, empty; removed by cleanBuildRoot
 *   sourcesDir: "/var/cache/kiln/jobs/42-src",
 *   specFile: "hello.spec",
 *   dependencyRpms: ["/var/cache/kiln/rpms/zlib-devel-1.3-1.x86_64.rpm"],
 *   defines: { release: "3.1", disturl: "obs://kiln/home:me/standard/abc-hello" },
 *   debuginfo: true,                             // -debuginfo packages, as OBS's --debug
 *   limits: { ...DEFAULT_LIMITS, wallMs: 3600_000 },
 *   onLog: (chunk) => publish(chunk),
 *   signal: abort.signal,
 *   log,
 *   hiddenPaths: ["/var/lib/kiln", "/var/cache/kiln"],
 * });
 * if (outcome.type === "build.succeeded") upload(outcome.srpms, outcome.rpms);
 * await cleanBuildRoot("/var/cache/kiln/jobs/42");
 * ```
 *
 * Requirements: Linux with user namespaces and overlayfs, `bwrap`, util-linux (`unshare`,
 * `setpriv`, `prlimit`, `mount`), rpm (`rpmbuild`, `rpm2cpio`) and `bsdtar`. As root, memory and
 * process limits use cgroups (v2 or v1) and the sandbox runs as a fresh unprivileged host uid;
 * otherwise rlimits are the fallback.
 */
export {
  DEFAULT_LIMITS,
  parseByteSize,
  parseDuration,
  resolveLimits,
  validateLimits,
  formatSeconds,
} from "./limits.ts";
export type { SandboxLimits, SandboxLimitsInput } from "./limits.ts";
export {
  BUILDTIME_SERVICE_OUTDIR,
  DEBUGINFO_MACROS,
  runRpmBuild,
  cleanBuildRoot,
  renderServicesScript,
  rpmbuildCommand,
} from "./rpmbuild.ts";
export type { RpmBuildJob, BuildOutcome, BuildStats, BuildtimeServices, BuildtimeServiceCall } from "./rpmbuild.ts";
export { runSandboxed, KillReason } from "./run.ts";
export { WrapperPool } from "./wrapper.ts";
export type { WrapperPoolOptions } from "./wrapper.ts";
export type { SandboxRunOptions, SandboxRoot, SandboxResult, SandboxStats } from "./run.ts";
export { checkIsolatedNetworkTools, validatePorts } from "./netns.ts";
export type { IsolatedNetwork } from "./netns.ts";
export { sandboxSelfTest, REQUIRED_TOOLS } from "./self-test.ts";
export type { SelfTestOptions } from "./self-test.ts";
export { describeResult } from "./outcome.ts";
export { removeStaleCgroups as removeStaleSandboxCgroups } from "./cgroup.ts";
export type { FailureDescription } from "./outcome.ts";
export { PERSONALITIES, SANDBOX_USER, renderDefines, substituteRelease } from "./plan.ts";
export type { SandboxBind, Personality } from "./plan.ts";
export type { CollectPlan } from "./collect.ts";
export { SandboxErrorCode, SandboxSetupError, SandboxUnavailableError } from "./errors.ts";
