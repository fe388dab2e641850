/**
 * Worker hooks (seed 001, "Backend worker API"): programs the worker runs around a build.
 *
 * - `prebuild` hooks run on the host, as the worker's user, after the sources and dependencies
 *   were fetched and before the sandbox starts. They are the worker admin's own programs (host
 *   checks, host set-up such as binfmt registration) and see only the job.
 * - `postbuild` hooks run after the build, before the results go back, each in a sandbox of its
 *   own: no network, read-only views of the built packages, the previous build's packages, the
 *   sources and the log. What they print goes into the build log (rpmlint findings); their exit
 *   code decides the result (build-compare's "unchanged").
 *
 * Interface (README "Hooks"): `<program> <stage>`; environment `KILN_HOOK`, `KILN_HOOK_STAGE`,
 * `KILN_JOB_ID`, `KILN_PROJECT`, `KILN_REPOSITORY`, `KILN_ARCH`, `KILN_PACKAGE`, `KILN_SRCMD5`,
 * `KILN_VERSREL`, `KILN_RELEASE`, `KILN_DISTURL`, `KILN_REASON`, `KILN_WORKER_ID`, `KILN_JOB`
 * (the job as JSON), `KILN_SOURCES`, `KILN_DEPS`; post-build also `KILN_BUILD_RESULT`
 * (`succeeded`/`failed`), `KILN_RPMS` (`SRPMS/`, `RPMS/<arch>/`), `KILN_OLD_RPMS` (the previous
 * build's packages, maybe none) and `KILN_LOG`. Exit 0 goes on; {@link HookExit} lists the
 * others; any other code fails the build.
 */
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import type { Logger } from "pino";
import { InvalidInputError } from "../../transport/index.ts";
import { resolveLimits, runSandboxed, type SandboxLimits, type WrapperPool } from "../../sandbox/index.ts";
import type { BuildJob } from "../common/model.ts";

export const HookStage = { Prebuild: "prebuild", Postbuild: "postbuild" } as const;
export type HookStage = (typeof HookStage)[keyof typeof HookStage];

/** Exit codes with a meaning; every other non-zero code fails the build. */
export const HookExit = {
  Ok: 0,
  /** Post-build: the packages equal the previous build's; the result is `unchanged`. */
  Unchanged: 10,
  /** This worker will not build the job; the dispatcher gives it to another one. */
  RejectJob: 11,
  /** This host is broken: the job goes elsewhere and the worker takes no more jobs. */
  HostBad: 12,
} as const;

/** A hook a worker offers. */
export interface HookConfig {
  /** Projects name it in `BuildFlags: hooks:<name>` / `nohooks:<name>`. */
  name: string;
  stage: HookStage;
  /** Absolute path of the program. */
  program: string;
  /** Runs only for projects that ask for it (`BuildFlags: hooks:<name>`). */
  optional?: boolean;
  /** @default 10 min */
  timeoutMs?: number;
}

/** What a hook run decided. */
export type HookVerdict =
  | { type: "hook.ok" }
  | { type: "hook.unchanged" }
  | { type: "hook.failed"; reason: string }
  | { type: "hook.reject"; reason: string; hostBad: boolean };

const HOOKS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "ops", "hooks");

/** The hooks kiln ships: build-compare (on by default) and rpmlint (for projects that ask). */
export function defaultHooks(): HookConfig[] {
  return [
    { name: "build-compare", stage: HookStage.Postbuild, program: path.join(HOOKS_DIR, "build-compare") },
    { name: "rpmlint", stage: HookStage.Postbuild, program: path.join(HOOKS_DIR, "rpmlint"), optional: true },
  ];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

/**
 * Parses `[optional:]<stage>:<program>` (the `kiln worker --hook` syntax); the name is the
 * program's file name without extension.
 */
export function parseHookSpec(spec: string): HookConfig {
  const parts = spec.split(":");
  const optional = parts[0] === "optional";
  if (optional) parts.shift();
  const stage = parts.shift();
  const program = parts.join(":");
  if (stage !== HookStage.Prebuild && stage !== HookStage.Postbuild) {
    throw new InvalidInputError(`hook '${spec}': the stage must be prebuild or postbuild`);
  }
  if (!path.isAbsolute(program)) throw new InvalidInputError(`hook '${spec}': the program must be an absolute path`);
  const name = path.basename(program).replace(/\.[^.]*$/, "");
  if (!NAME.test(name)) throw new InvalidInputError(`hook '${spec}': '${name}' is not a usable hook name`);
  return { name, stage, program, ...(optional ? { optional: true } : {}) };
}

/** Checks that every hook program exists and is executable (at worker start-up). */
export async function checkHooks(hooks: readonly HookConfig[]): Promise<void> {
  const names = new Set<string>();
  for (const h of hooks) {
    if (names.has(h.name)) throw new InvalidInputError(`two hooks are named ${h.name}`);
    names.add(h.name);
    const st = await stat(h.program).catch(() => undefined);
    if (!st?.isFile() || (st.mode & 0o111) === 0) {
      throw new InvalidInputError(`hook ${h.name}: ${h.program} is not an executable file`);
    }
  }
}

/** Values of `BuildFlags: <flag>:a,b` entries, all of them. */
function flagList(flags: readonly string[] | undefined, flag: string): Set<string> {
  const out = new Set<string>();
  for (const f of flags ?? []) {
    const i = f.indexOf(":");
    if (i < 0 || f.slice(0, i).toLowerCase() !== flag) continue;
    for (const n of f.slice(i + 1).split(/[,\s]+/)) if (n) out.add(n);
  }
  return out;
}

/**
 * The hooks that run for a job, in configuration order: the default ones unless the project
 * says `BuildFlags: nohooks:<name>`, and optional ones the project asks for with
 * `BuildFlags: hooks:<name>`.
 */
export function hooksForJob(hooks: readonly HookConfig[], buildFlags: readonly string[] | undefined): HookConfig[] {
  const wanted = flagList(buildFlags, "hooks");
  const unwanted = flagList(buildFlags, "nohooks");
  return hooks.filter((h) => !unwanted.has(h.name) && (!h.optional || wanted.has(h.name)));
}

/** The verdict of an exit code at a stage. */
export function verdictOf(hook: HookConfig, exitCode: number | undefined, why?: string): HookVerdict {
  switch (exitCode) {
    case HookExit.Ok:
      return { type: "hook.ok" };
    case HookExit.Unchanged:
      return hook.stage === HookStage.Postbuild
        ? { type: "hook.unchanged" }
        : { type: "hook.failed", reason: `hook ${hook.name} said "unchanged" before the build` };
    case HookExit.RejectJob:
      return { type: "hook.reject", reason: `hook ${hook.name} rejected the job`, hostBad: false };
    case HookExit.HostBad:
      return { type: "hook.reject", reason: `hook ${hook.name} marked the host bad`, hostBad: true };
    default:
      return {
        type: "hook.failed",
        reason: `hook ${hook.name} failed (${why ?? (exitCode === undefined ? "no exit code" : `exit ${exitCode}`)})`,
      };
  }
}

/** Where a job's files are, on the host. */
export interface HookPaths {
  jobDir: string;
  sources: string;
  deps: string;
  /** Post-build: the collected packages (`SRPMS/`, `RPMS/<arch>/`), or undefined after a failure. */
  rpms?: string;
  /** Post-build: the previous build's packages (empty directory when there is none). */
  oldRpms?: string;
  log?: string;
}

function jobEnv(hook: HookConfig, job: BuildJob, workerId: string): Record<string, string> {
  return {
    KILN_HOOK: hook.name,
    KILN_HOOK_STAGE: hook.stage,
    KILN_JOB_ID: job.jobId,
    KILN_PROJECT: job.project,
    KILN_REPOSITORY: job.repository,
    KILN_ARCH: job.arch,
    KILN_PACKAGE: job.package,
    KILN_SRCMD5: job.srcmd5,
    KILN_VERSREL: job.versrel,
    KILN_RELEASE: job.release,
    KILN_DISTURL: job.disturl,
    KILN_REASON: job.reason,
    KILN_WORKER_ID: workerId,
  };
}

/** A JSON copy of the job for hooks (`KILN_JOB`), written once per job. */
export async function writeJobFile(dir: string, job: BuildJob): Promise<string> {
  const file = path.join(dir, "job.json");
  await writeFile(file, JSON.stringify(job, null, 2));
  await chmod(file, 0o644);
  return file;
}

export interface HookRun {
  hook: HookConfig;
  job: BuildJob;
  workerId: string;
  paths: HookPaths;
  jobFile: string;
  /** Post-build: how the build ended. */
  buildResult?: "succeeded" | "failed";
  onOutput: (chunk: Buffer) => void;
  signal: AbortSignal;
  log: Logger;
  /** Memory of the post-build sandbox (the job's own limit). */
  memoryBytes: number;
  /** The worker's wrappers started ahead, for the post-build sandbox. */
  wrappers?: WrapperPool;
}

const HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const HOOK_OUTPUT_BYTES = 4 * 1024 * 1024;

/** Runs a pre-build hook on the host. */
async function runOnHost(r: HookRun): Promise<HookVerdict> {
  const h = r.hook;
  const env: Record<string, string> = {
    PATH: HOST_PATH,
    LANG: "C.UTF-8",
    HOME: r.paths.jobDir,
    ...jobEnv(h, r.job, r.workerId),
    KILN_JOB: r.jobFile,
    KILN_SOURCES: r.paths.sources,
    KILN_DEPS: r.paths.deps,
  };
  let out = 0;
  const child = execa(h.program, [h.stage], {
    cwd: r.paths.jobDir,
    env,
    extendEnv: false,
    stdin: "ignore",
    all: true,
    buffer: false,
    reject: false,
    timeout: h.timeoutMs ?? 600_000,
    cancelSignal: r.signal,
    forceKillAfterDelay: 2000,
  });
  child.all?.on("data", (c: Buffer) => {
    if (out >= HOOK_OUTPUT_BYTES) return;
    const part = c.subarray(0, HOOK_OUTPUT_BYTES - out);
    out += part.length;
    r.onOutput(part);
  });
  const res = await child;
  if (res.timedOut) return verdictOf(h, undefined, "timed out");
  if (res.isCanceled) return { type: "hook.failed", reason: `hook ${h.name} cancelled` };
  if (res.signal) return verdictOf(h, undefined, `killed by ${res.signal}`);
  if (res.failed && res.exitCode === undefined) return verdictOf(h, undefined, res.shortMessage);
  return verdictOf(h, res.exitCode);
}

const IN = "/kiln";

/** Runs a post-build hook in a sandbox of its own. */
async function runInSandbox(r: HookRun, dir: string): Promise<HookVerdict> {
  const h = r.hook;
  const binds = [
    { source: h.program, target: `${IN}/hook/${h.name}` },
    { source: r.paths.sources, target: `${IN}/sources` },
    { source: r.paths.deps, target: `${IN}/deps` },
    { source: r.jobFile, target: `${IN}/job.json` },
  ];
  const env: Record<string, string> = {
    ...jobEnv(h, r.job, r.workerId),
    KILN_JOB: `${IN}/job.json`,
    KILN_SOURCES: `${IN}/sources`,
    KILN_DEPS: `${IN}/deps`,
    KILN_BUILD_RESULT: r.buildResult ?? "failed",
  };
  if (r.paths.rpms) {
    binds.push({ source: r.paths.rpms, target: `${IN}/rpms` });
    env.KILN_RPMS = `${IN}/rpms`;
  }
  if (r.paths.oldRpms) {
    binds.push({ source: r.paths.oldRpms, target: `${IN}/old` });
    env.KILN_OLD_RPMS = `${IN}/old`;
  }
  if (r.paths.log) {
    binds.push({ source: r.paths.log, target: `${IN}/log` });
    env.KILN_LOG = `${IN}/log`;
  }
  const timeout = h.timeoutMs ?? 600_000;
  const limits: SandboxLimits = resolveLimits({
    wallMs: timeout,
    idleLogMs: timeout,
    logBytes: HOOK_OUTPUT_BYTES,
    memoryBytes: r.memoryBytes,
    diskBytes: 512 * 1024 * 1024,
    pids: 512,
  });
  const res = await runSandboxed({
    dir,
    command: [`${IN}/hook/${h.name}`, h.stage],
    env,
    binds,
    limits,
    onOutput: r.onOutput,
    signal: r.signal,
    log: r.log,
    hostname: "kiln-hook",
    ...(r.wrappers ? { wrappers: r.wrappers } : {}),
  });
  switch (res.type) {
    case "sandbox.exited":
      return verdictOf(h, res.code);
    case "sandbox.timedOut":
      return verdictOf(h, undefined, res.limit === "wall" ? "timed out" : "no output for too long");
    case "sandbox.killed":
      return verdictOf(h, undefined, `killed: ${res.reason}`);
    case "sandbox.unpackFailed":
      return verdictOf(h, undefined, "sandbox set-up failed");
    default:
      return res satisfies never;
  }
}

/** Runs one hook at its stage; `scratch` is an empty directory the run may use. */
export async function runHook(r: HookRun, scratch: string): Promise<HookVerdict> {
  await mkdir(scratch, { recursive: true });
  return r.hook.stage === HookStage.Prebuild ? runOnHost(r) : runInSandbox(r, scratch);
}
