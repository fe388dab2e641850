/**
 * A scheduler's requests (`kiln.rpc.sched.<arch>.<noun>.<verb>`) and the messages of its actors
 * (Scheduler(arch) → RepoArch(project, repository)).
 */
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BuildDep, PackageCode, RepoResult } from "../common/model.ts";

/** Why a package was (re)built, as `kiln reason` shows it (OBS `_reason`). */
export interface BuildReason {
  explain: string;
  time: number;
  /** For a meta change: the dependencies that changed (`md5sum`, `added`, `removed`). */
  packagechange?: { change: "md5sum" | "added" | "removed"; key: string }[];
  oldsource?: string;
}

/** What `kiln buildinfo` shows: the job a build would get. */
export interface BuildInfoView {
  project: string;
  repository: string;
  arch: string;
  package: string;
  code: PackageCode;
  details: string;
  srcmd5?: string;
  versrel?: string;
  /** The build counter the job would get (OBS `bcnt`, `<B_CNT>`). */
  bcnt?: number;
  /** The release the job would get (prjconf `Release:`, default `<CI_CNT>.<B_CNT>`). */
  release?: string;
  specFile?: string;
  /** Whether the job builds debuginfo packages (the `debuginfo` flag). */
  debuginfo?: boolean;
  /** Binary packages the recipe declares. */
  subpacks?: string[];
  /** What a worker must offer: prjconf `Constraint:` lines, `#!BuildConstraint:` lines, `_constraints`. */
  constraints?: { prjconf: string[]; recipe: string[]; file?: string };
  bdeps: BuildDep[];
  /** The expansion error when the package is unresolvable. */
  error?: string;
}

/** What `kiln builddepinfo` shows (OBS `_builddepinfo`). */
export interface BuildDepInfoView {
  project: string;
  repository: string;
  arch: string;
  packages: { package: string; source: string; pkgdeps: string[]; subpkgs: string[]; revdeps: string[] }[];
  cycles: string[][];
}

export type SchedulerApi = {
  "results.get": { req: { project: string; repository?: string; package?: string }; res: RepoResult[] };
  "reason.get": { req: { project: string; repository: string; package: string }; res: BuildReason | null };
  "buildinfo.get": { req: { project: string; repository: string; package: string }; res: BuildInfoView };
  "builddepinfo.get": { req: { project: string; repository: string }; res: BuildDepInfoView };
  /**
   * `kiln rebuild`: forget the meta of matching packages so the next check rebuilds them.
   * `kept` of them have a queued or running job of their current sources: it stays (as in OBS).
   */
  "rebuild.request": {
    req: { project: string; package?: string; repository?: string; code?: string };
    res: { packages: number; kept: number };
  };
};

export type SchedulerRequest = RequestMsg<SchedulerApi>;
