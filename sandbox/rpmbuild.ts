/**
 * {@link runRpmBuild}: `rpmbuild -ba` of one spec in the sandbox, with the job's dependency
 * packages unpacked over the host's /usr, and {@link cleanBuildRoot} to remove what it left.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { chmod, lstat, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { InvalidInputError } from "../transport/index.ts";
import type { SandboxLimits } from "./limits.ts";
import { describeResult } from "./outcome.ts";
import { SANDBOX_USER, renderDefines, substituteRelease } from "./plan.ts";
import type { Personality } from "./plan.ts";
import { runSandboxed } from "./run.ts";

/** One package build, as the worker hands it over. */
export interface RpmBuildJob {
  /** Private, empty directory of this job; everything the build leaves lives under it. */
  jobDir: string;
  /** The spec and its sources; read-only to the build. Must be readable by any uid. */
  sourcesDir: string;
  /** File name of the spec within `sourcesDir`. */
  specFile: string;
  /** .rpm files unpacked into the build root (rpm2cpio | bsdtar, never `rpm -i`). */
  dependencyRpms: string[];
  /**
   * rpm macros for this build. `release`, when given, also replaces the spec's `Release:` tag, as
   * OBS does, so the packages carry it.
   */
  defines: Record<string, string>;
  /**
   * rpm macro text of the project config (`Macros:` blocks, several lines), installed as
   * `/etc/rpm/macros.kiln` in the build root; the single-line `defines` still win.
   */
  macros?: string;
  limits: SandboxLimits;
  /** Build output (stdout and stderr merged, in order) as it happens. */
  onLog: (chunk: Buffer) => void;
  /** Abort: the whole process tree is gone within a few seconds. */
  signal?: AbortSignal;
  log: Logger;
  /** Host paths that must never be visible to the build (kiln's data directory, the worker cache). */
  hiddenPaths?: string[];
  /**
   * rpm's build target (`rpmbuild --target`): the cpu the packages are built for when it is not
   * the host's (`i586` on an x86_64 host). @default what rpm detects
   */
  target?: string;
  /** Personality rpmbuild runs under (`linux32` for i586/i686 on x86_64, as OBS runs its build). */
  personality?: Personality;
  /**
   * The job's debuginfo setting, as OBS's build script applies it. On: `_build_create_debug` is
   * defined and, unless `debugMagic` is false, {@link DEBUGINFO_MACROS} add the `-debuginfo`
   * package to every spec that does not add it itself. Off: `_enable_debug_packages` is undefined,
   * so rpm's own automatic debuginfo (Fedora-style macros) stays off. @default false
   */
  debuginfo?: boolean;
  /** With debuginfo, insert the debuginfo package into specs (OBS: unless `BuildFlags: rpm-nodebugmagic`). @default true */
  debugMagic?: boolean;
}

/**
 * rpm macros that put `%debug_package` into a spec at its first `%prep` or `%package` line when
 * `_build_create_debug` is defined and the spec did not call it (`__debug_package` unset): OBS's
 * build script does this for builds with debuginfo, since distributions' rpm does not add the
 * debuginfo package by itself. Redefining `prep` and `package` works because rpm expands macros
 * on a line before it reads a section name from it; `%%` leaves the section name itself.
 */
export const DEBUGINFO_MACROS = [
  "%prep %{?_build_create_debug:%{?!__debug_package:%{_kiln_debug_package}}}%%prep",
  "%package %{?_build_create_debug:%{?!__debug_package:%{_kiln_debug_package}}}%%package",
  // Marked done first, so that a noarch spec (where %debug_package adds nothing) gets it once.
  "%_kiln_debug_package \\",
  "%global __debug_package 1\\",
  "%undefine _enable_debug_packages\\",
  "%debug_package",
  "",
].join("\n");

/** Measurements of one build. */
export interface BuildStats {
  startedAt: number;
  endedAt: number;
  wallMs: number;
  peakMemoryBytes?: number;
  diskBytes?: number;
  logBytes: number;
}

/** How a build ended; paths are absolute, under `jobDir`. */
export type BuildOutcome =
  | { type: "build.succeeded"; srpms: string[]; rpms: string[]; stats: BuildStats }
  | { type: "build.failed"; reason: string; exitCode?: number; signal?: string; stats: BuildStats };

const TOPDIR = `${SANDBOX_USER.home}/rpmbuild`;

/** Options of {@link rpmbuildCommand}. */
export interface RpmbuildCommandOptions {
  /** `--target` (a cpu such as `i586`, or a platform such as `i586-suse-linux`). */
  target?: string;
  /** On: define `_build_create_debug`; off: undefine `_enable_debug_packages`; unset: neither. */
  debuginfo?: boolean;
}

const TARGET = /^[A-Za-z0-9_]+(-[A-Za-z0-9_.]+)*$/;

/** The rpmbuild command line (inside the sandbox) for a spec and the job's macros. */
export function rpmbuildCommand(
  specFile: string,
  defines: Readonly<Record<string, string>>,
  opts: RpmbuildCommandOptions = {}
): string[] {
  if (opts.target !== undefined && !TARGET.test(opts.target)) {
    throw new InvalidInputError(`invalid build target "${opts.target}"`, { data: { target: opts.target } });
  }
  return [
    "rpmbuild",
    "-ba",
    "--nodeps",
    ...(opts.target !== undefined ? [`--target=${opts.target}`] : []),
    // Before the job's macros, as OBS's build script puts them before its own.
    ...(opts.debuginfo === true ? renderDefines({ _build_create_debug: "1" }) : []),
    ...(opts.debuginfo === false ? ["--undefine", "_enable_debug_packages"] : []),
    ...renderDefines(defines),
    // After the job's macros, so that the layout the results are collected from cannot be moved.
    ...renderDefines({
      _topdir: TOPDIR,
      _sourcedir: `${TOPDIR}/SOURCES`,
      _specdir: `${TOPDIR}/SPECS`,
    }),
    `${TOPDIR}/SPECS/${specFile}`,
  ];
}

function checkSpecFile(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new InvalidInputError(`invalid spec file name "${name}"`, { data: { specFile: name } });
  }
}

/**
 * Builds the job's spec with `rpmbuild -ba --nodeps` in the sandbox. A build that fails or is
 * killed is a `build.failed` outcome; throws InvalidInputError for a malformed job and
 * SandboxSetupError when this host could not set the sandbox up.
 */
export async function runRpmBuild(job: RpmBuildJob): Promise<BuildOutcome> {
  checkSpecFile(job.specFile);
  if (!path.isAbsolute(job.jobDir) || !path.isAbsolute(job.sourcesDir)) {
    throw new InvalidInputError("jobDir and sourcesDir must be absolute", { data: { jobDir: job.jobDir } });
  }
  const specPath = path.join(job.sourcesDir, job.specFile);
  const st = await lstat(specPath).catch(() => undefined);
  if (!st?.isFile()) throw new InvalidInputError(`spec ${job.specFile} not found in sources`, { data: { specPath } });
  const debuginfo = job.debuginfo ?? false;
  const command = rpmbuildCommand(job.specFile, job.defines, {
    debuginfo,
    ...(job.target !== undefined ? { target: job.target } : {}),
  });

  let spec = await readFile(specPath, "utf8");
  if (job.defines.release !== undefined) spec = substituteRelease(spec, job.defines.release);
  // Synchronous, as the sandbox's own set-up: small metadata calls on every build's path.
  const specDir = path.join(job.jobDir, "spec");
  mkdirSync(specDir, { recursive: true });
  chmodSync(specDir, 0o755);
  writeFileSync(path.join(specDir, job.specFile), spec, { mode: 0o644 });
  chmodSync(path.join(specDir, job.specFile), 0o644);

  const layers: string[] = [];
  let macros = job.macros !== undefined && job.macros.trim() !== "" ? job.macros.replace(/\n?$/, "\n") : "";
  // After the project's macros, as OBS appends them to the config's.
  if (debuginfo && job.debugMagic !== false) macros += DEBUGINFO_MACROS;
  if (macros !== "") {
    const layer = path.join(job.jobDir, "layer");
    const rpmEtc = path.join(layer, "etc", "rpm");
    mkdirSync(rpmEtc, { recursive: true });
    for (const d of [layer, path.join(layer, "etc"), rpmEtc]) chmodSync(d, 0o755);
    writeFileSync(path.join(rpmEtc, "macros.kiln"), macros);
    chmodSync(path.join(rpmEtc, "macros.kiln"), 0o644);
    layers.push(layer);
  }

  const result = await runSandboxed({
    dir: path.join(job.jobDir, "build"),
    command,
    root: { rpms: job.dependencyRpms, layers },
    binds: [
      { source: job.sourcesDir, target: `${TOPDIR}/SOURCES` },
      { source: specDir, target: `${TOPDIR}/SPECS` },
    ],
    collect: { dir: "rpmbuild", paths: ["SRPMS", "RPMS"], maxDepth: 2, name: "*.rpm" },
    limits: job.limits,
    onOutput: job.onLog,
    log: job.log,
    ...(job.signal ? { signal: job.signal } : {}),
    ...(job.hiddenPaths ? { hiddenPaths: job.hiddenPaths } : {}),
    ...(job.personality ? { personality: job.personality } : {}),
  });

  const s = result.stats;
  const stats: BuildStats = { startedAt: s.startedAt, endedAt: s.endedAt, wallMs: s.wallMs, logBytes: s.outputBytes };
  if (s.peakMemoryBytes !== undefined) stats.peakMemoryBytes = s.peakMemoryBytes;
  if (s.diskBytes !== undefined) stats.diskBytes = s.diskBytes;

  if (result.type === "sandbox.exited" && result.code === 0) {
    if (!result.collectOk) return { type: "build.failed", reason: "copying the built packages out failed", stats };
    const srpms = result.files.filter((f) => f.endsWith(".src.rpm") || f.endsWith(".nosrc.rpm"));
    const rpms = result.files.filter((f) => !srpms.includes(f));
    if (srpms.length === 0) return { type: "build.failed", reason: "rpmbuild produced no source package", stats };
    job.log.info({ srpms: srpms.length, rpms: rpms.length, wallMs: stats.wallMs }, "rpm build succeeded");
    return { type: "build.succeeded", srpms, rpms, stats };
  }
  const d = describeResult(result, job.limits, "rpmbuild");
  job.log.info({ reason: d.reason, wallMs: stats.wallMs }, "rpm build failed");
  const failed: BuildOutcome = { type: "build.failed", reason: d.reason, stats };
  if (d.exitCode !== undefined) failed.exitCode = d.exitCode;
  if (d.signal !== undefined) failed.signal = d.signal;
  return failed;
}

/**
 * Removes a job directory and everything in it. Call it only after {@link runRpmBuild} has
 * resolved (the sandbox's mounts live in a namespace that is gone by then, so nothing here is a
 * mount point).
 */
export async function cleanBuildRoot(jobDir: string): Promise<void> {
  const norm = path.normalize(jobDir);
  if (!path.isAbsolute(norm) || norm.split("/").filter(Boolean).length < 2) {
    throw new InvalidInputError(`refusing to remove "${jobDir}"`, { data: { jobDir } });
  }
  try {
    await rm(norm, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EACCES") throw err;
    // Not root: packages may have unpacked read-only directories.
    await makeWritable(norm);
    await rm(norm, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await makeWritable(path.join(dir, e.name));
  }
}
