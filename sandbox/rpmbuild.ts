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
import { SANDBOX_USER, renderDefines, shq, substituteRelease } from "./plan.ts";
import type { Personality, SandboxBind } from "./plan.ts";
import { runSandboxed } from "./run.ts";
import type { WrapperPool } from "./wrapper.ts";

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
  /** A wrapper started ahead may be waiting here (see `SandboxRunOptions.wrappers`). */
  wrappers?: WrapperPool;
  /** With debuginfo, insert the debuginfo package into specs (OBS: unless `BuildFlags: rpm-nodebugmagic`). @default true */
  debugMagic?: boolean;
  /** Source services to run on the sources in this sandbox before rpmbuild (OBS's build-time services). */
  services?: BuildtimeServices;
}

/** One build-time source service: its program's name and its arguments (`--outdir` included). */
export interface BuildtimeServiceCall {
  name: string;
  args: readonly string[];
}

/**
 * Build-time source services, run as OBS's build runs them: in the build root (here: the build's
 * own sandbox, with the dependency packages, the build's limits and its clock), one after the
 * other in a writable copy of the sources, each writing into an empty {@link BUILDTIME_SERVICE_OUTDIR}
 * whose regular files then replace the sources of the same name; then the spec is read again
 * (a service may have set its version) and rpmbuild starts. A service that fails fails the build.
 */
export interface BuildtimeServices {
  /** Host directory of the service programs, shown read-only in the sandbox. Readable by "other". */
  dir: string;
  calls: readonly BuildtimeServiceCall[];
  /** Environment of the services only (OBS_SERVICE_PROJECT, OBS_SERVICE_PACKAGE). */
  env?: Readonly<Record<string, string>>;
}

/** The `--outdir` of build-time services in the sandbox; emptied before each. */
export const BUILDTIME_SERVICE_OUTDIR = "/tmp/.kiln-service-out";
const SERVICES_AT = "/kiln/services";
const SOURCES_AT = "/kiln/sources";
const SERVICES_DONE = "[kiln] build-time services done";
const SERVICE_FAILED = /^\[kiln\] (build-time service .* failed.*)$/;
const SERVICE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
/** Exit status of the services script when a service (not rpmbuild) failed. */
const SERVICES_FAILED_STATUS = 3;

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

/**
 * The command of a build with build-time services: a shell script that runs them as
 * {@link BuildtimeServices} says, writes the spec with its `Release:` set (after the services, as
 * OBS's build does) and then execs `rpmbuild`. Everything in it is quoted here; the sandbox runs it.
 */
export function renderServicesScript(
  services: BuildtimeServices,
  specFile: string,
  release: string | undefined,
  rpmbuild: readonly string[]
): string {
  checkSpecFile(specFile);
  const env = Object.entries(services.env ?? {});
  for (const [k, v] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || v.includes("\0")) {
      throw new InvalidInputError(`invalid service environment variable "${k}"`, { data: { k } });
    }
  }
  const prefix = env.map(([k, v]) => `${k}=${shq(v)}`).join(" ");
  const sources = `${TOPDIR}/SOURCES`;
  const O = BUILDTIME_SERVICE_OUTDIR;
  const L = [
    "set -u",
    `fail() { echo "[kiln] build-time service $1 failed$2"; exit ${SERVICES_FAILED_STATUS}; }`,
    `mkdir -p ${shq(sources)} ${shq(`${TOPDIR}/SPECS`)} && cp -R --preserve=mode,timestamps ${SOURCES_AT}/. ${shq(sources)}/ || fail set-up ": copying the sources"`,
    `cd ${shq(sources)} || fail set-up ": no sources"`,
    "svc() {",
    "  name=$1; shift",
    '  echo "[kiln] running build-time service $name"',
    `  [ -f ${SERVICES_AT}/"$name" ] && [ -x ${SERVICES_AT}/"$name" ] || fail "$name" ": service '$name' is not available (no program '$name' in the services directory)"`,
    `  rm -rf ${O} && mkdir ${O} || fail "$name" ": its output directory could not be made"`,
    `  ${prefix ? `${prefix} ` : ""}${SERVICES_AT}/"$name" "$@"`,
    "  rc=$?",
    '  [ "$rc" = 0 ] || fail "$name" " (exit $rc)"',
    // Like OBS's runservices: regular files whose names do not start with ':' or '.'.
    `  for f in ${O}/*; do case "\${f##*/}" in :*) continue ;; esac; if [ -f "$f" ] && [ ! -L "$f" ]; then mv -f -T "$f" "./\${f##*/}" || fail "$name" ": its output could not be taken"; fi; done`,
    "}",
  ];
  for (const c of services.calls) {
    if (!SERVICE_NAME.test(c.name)) {
      throw new InvalidInputError(`invalid service name "${c.name}"`, { data: { name: c.name } });
    }
    L.push(["svc", c.name, ...c.args].map(shq).join(" "));
  }
  const spec = shq(specFile);
  const target = shq(`${TOPDIR}/SPECS/${specFile}`);
  L.push(
    `echo ${shq(SERVICES_DONE)}`,
    `[ -f ${spec} ] || { echo "[kiln] the spec ${specFile.replace(/[^A-Za-z0-9_.+-]/g, "?")} is missing after the build-time services"; exit ${SERVICES_FAILED_STATUS}; }`
  );
  if (release !== undefined) {
    // substituteRelease in sed: the first Release tag, any case, keeping its spacing.
    substituteRelease("", release);
    const body = release.replace(/[\\/&]/g, "\\$&");
    L.push(
      `sed -e ${shq(`0,/^release[ \\t]*:/I{s/^\\(release[ \\t]*:[ \\t]*\\)[^\\r]*/\\1${body}/I}`)} ${spec} > ${target} || exit ${SERVICES_FAILED_STATUS}`
    );
  } else {
    L.push(`cp ${spec} ${target} || exit ${SERVICES_FAILED_STATUS}`);
  }
  L.push('cd "$HOME" || exit 120', `exec ${rpmbuild.map(shq).join(" ")}`);
  return L.join("\n") + "\n";
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
  const rpmbuild = rpmbuildCommand(job.specFile, job.defines, {
    debuginfo,
    ...(job.target !== undefined ? { target: job.target } : {}),
  });
  const services = job.services?.calls.length ? job.services : undefined;
  const command = services
    ? ["/bin/sh", "-c", renderServicesScript(services, job.specFile, job.defines.release, rpmbuild), "kiln-build"]
    : rpmbuild;

  // With services the script writes the spec, after they ran; sources and services are its input.
  const binds: SandboxBind[] = services
    ? [
        { source: job.sourcesDir, target: SOURCES_AT },
        { source: services.dir, target: SERVICES_AT },
      ]
    : [{ source: job.sourcesDir, target: `${TOPDIR}/SOURCES` }];
  if (!services) {
    let spec = await readFile(specPath, "utf8");
    if (job.defines.release !== undefined) spec = substituteRelease(spec, job.defines.release);
    // Synchronous, as the sandbox's own set-up: small metadata calls on every build's path.
    const specDir = path.join(job.jobDir, "spec");
    mkdirSync(specDir, { recursive: true });
    chmodSync(specDir, 0o755);
    writeFileSync(path.join(specDir, job.specFile), spec, { mode: 0o644 });
    chmodSync(path.join(specDir, job.specFile), 0o644);
    binds.push({ source: specDir, target: `${TOPDIR}/SPECS` });
  }
  const watch = services ? new ServicesWatch() : undefined;

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
    binds,
    collect: { dir: "rpmbuild", paths: ["SRPMS", "RPMS"], maxDepth: 2, name: "*.rpm" },
    limits: job.limits,
    onOutput: watch
      ? (chunk) => {
          watch.see(chunk);
          job.onLog(chunk);
        }
      : job.onLog,
    log: job.log,
    ...(job.signal ? { signal: job.signal } : {}),
    ...(job.hiddenPaths ? { hiddenPaths: job.hiddenPaths } : {}),
    ...(job.personality ? { personality: job.personality } : {}),
    ...(job.wrappers ? { wrappers: job.wrappers } : {}),
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
  if (watch?.failure !== undefined && result.type === "sandbox.exited" && result.code === SERVICES_FAILED_STATUS) {
    job.log.info({ reason: watch.failure, wallMs: stats.wallMs }, "build-time service failed");
    return { type: "build.failed", reason: watch.failure, exitCode: result.code, stats };
  }
  const d = describeResult(result, job.limits, "rpmbuild");
  job.log.info({ reason: d.reason, wallMs: stats.wallMs }, "rpm build failed");
  const failed: BuildOutcome = { type: "build.failed", reason: d.reason, stats };
  if (d.exitCode !== undefined) failed.exitCode = d.exitCode;
  if (d.signal !== undefined) failed.signal = d.signal;
  return failed;
}

/**
 * Reads the output of the services script until rpmbuild starts: which service failed, and the
 * last line the services printed (usually the failing one's error).
 */
class ServicesWatch {
  failure?: string;
  #active = true;
  #partial = "";
  #last = "";

  see(chunk: Buffer): void {
    if (!this.#active) return;
    const lines = (this.#partial + chunk.toString("utf8")).split("\n");
    this.#partial = (lines.pop() ?? "").slice(-4096);
    for (const raw of lines) {
      const line = raw.trim();
      if (line === SERVICES_DONE) {
        this.#active = false;
        return;
      }
      const m = SERVICE_FAILED.exec(line);
      if (m) this.failure = this.#last ? `${m[1]}: ${this.#last}` : m[1];
      else if (line.startsWith("[kiln] running build-time service ")) this.#last = "";
      else if (line !== "" && !line.startsWith("[kiln] ")) this.#last = line.slice(0, 2000);
    }
  }
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
