/**
 * Domain types that travel between roles: package and repository codes, build jobs (OBS's
 * buildinfo), binaries with their dependency data, and stored results.
 */

/** Package codes, OBS's names (obs-backend.md §2.1). */
export const PackageCode = {
  Unknown: "unknown",
  Excluded: "excluded",
  Locked: "locked",
  Disabled: "disabled",
  Broken: "broken",
  Blocked: "blocked",
  Unresolvable: "unresolvable",
  Scheduled: "scheduled",
  Dispatching: "dispatching",
  Building: "building",
  Signing: "signing",
  Finished: "finished",
  Succeeded: "succeeded",
  Failed: "failed",
} as const;
export type PackageCode = (typeof PackageCode)[keyof typeof PackageCode];

/** Codes while which `kiln results -w` keeps waiting (as osc does). */
export const UNFINISHED_CODES: ReadonlySet<PackageCode> = new Set<PackageCode>([
  PackageCode.Blocked,
  PackageCode.Scheduled,
  PackageCode.Dispatching,
  PackageCode.Building,
  PackageCode.Signing,
  PackageCode.Finished,
]);

/** Repository (per arch) codes. */
export const RepoCode = {
  Unknown: "unknown",
  Scheduling: "scheduling",
  Blocked: "blocked",
  Building: "building",
  Finished: "finished",
  Broken: "broken",
  Disabled: "disabled",
  Excluded: "excluded",
  Unpublished: "unpublished",
  Publishing: "publishing",
  Published: "published",
  PublishFailed: "publishfailed",
} as const;
export type RepoCode = (typeof RepoCode)[keyof typeof RepoCode];

/** Job status codes kept by the dispatcher (OBS's `:status` file). */
export const JobCode = {
  Scheduled: "scheduled",
  Dispatching: "dispatching",
  Building: "building",
  Finished: "finished",
} as const;
export type JobCode = (typeof JobCode)[keyof typeof JobCode];

/** How a build ended, as the worker reports it. */
export const BuildResultCode = {
  Succeeded: "succeeded",
  Failed: "failed",
  Unchanged: "unchanged",
  BadHost: "badhost",
} as const;
export type BuildResultCode = (typeof BuildResultCode)[keyof typeof BuildResultCode];

/** One line of `kiln results --json`. */
export interface PackageResult {
  project: string;
  repository: string;
  arch: string;
  package: string;
  code: PackageCode;
  details: string;
}

/** One repository/arch in `kiln results`. */
export interface RepoResult {
  project: string;
  repository: string;
  arch: string;
  code: RepoCode;
  /** Why it is in that state, when OBS says so (`broken`: `unresolvable preinstalls: …`, …). */
  details?: string;
  /** Events that can change these results are not yet processed. */
  dirty: boolean;
  packages: PackageResult[];
}

/** A file of a source revision. */
export interface SourceFile {
  name: string;
  md5: string;
  sha256: string;
  size: number;
}

/** A binary package as the pool and the schedulers see it (OBS bininfo + dependency data). */
export interface BinaryInfo {
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  provides: string[];
  requires: string[];
  conflicts: string[];
  obsoletes: string[];
  recommends?: string[];
  supplements?: string[];
  hdrmd5: string;
  /** Name of the source rpm this binary was built from. */
  sourceRpm?: string;
}

/** A binary in a repository/arch pool: which package's result holds it, and where. */
export interface PoolBinary extends BinaryInfo {
  package: string;
  filename: string;
  sha256: string;
  size: number;
  /** Blob of the meta of the build that produced it (OBS `:full/<name>.meta`). */
  metaSha256?: string;
}

/** A build dependency of a job (OBS `bdep`), resolved to a pool location. */
export interface BuildDep {
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  project: string;
  repository: string;
  package: string;
  filename: string;
  sha256: string;
  hdrmd5: string;
  size: number;
  metaSha256?: string;
  /** Installed but not part of the meta: its changes do not trigger rebuilds (Support:, Preinstall:). */
  notmeta?: boolean;
  preinstall?: boolean;
  vminstall?: boolean;
  runscripts?: boolean;
}

/** A build job (OBS buildinfo, obs-backend.md §6.4). */
export interface BuildJob {
  /** md5 of the job's content: the handshake identity between dispatcher, worker and repo. */
  jobId: string;
  /** `<project>::<repository>::<package>-<srcmd5>` (OBS job name). */
  name: string;
  project: string;
  repository: string;
  arch: string;
  package: string;
  srcmd5: string;
  verifymd5: string;
  rev: number;
  revTime?: number;
  specFile: string;
  files: SourceFile[];
  versrel: string;
  bcnt: number;
  release: string;
  reason: string;
  /** Packages (in this repository) that wait for this one. */
  needed: number;
  readyTime: number;
  debuginfo: boolean;
  disturl: string;
  subpacks: string[];
  bdeps: BuildDep[];
  path: { project: string; repository: string }[];
  /** Constraint sources, merged by the dispatcher with OBS's precedence. */
  constraints: { prjconf: string[]; recipe: string[]; file?: string };
  /** Macros from the project config (rpm macro text), given to rpmbuild. */
  macros?: string;
  /**
   * The package's `buildtime` source services (and its project's), in order: the worker runs them
   * on the job's sources, in the build's sandbox without network, before the build (OBS's
   * build-time services).
   */
  buildtimeServices?: { name: string; params: { name: string; value: string }[] }[];
  /**
   * `BuildFlags:` of the project config (`name` or `name:value`). The worker reads the ones that
   * concern a build: `logidlelimit`, `buildtimeout`, `hooks`, `nohooks` (README "Workers").
   */
  buildFlags?: string[];
}
