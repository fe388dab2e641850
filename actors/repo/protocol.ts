/**
 * The repo role's requests (`kiln.rpc.repo.<noun>.<verb>`), its events, and the messages of its
 * actors (RepoServer → RepoArchResults per project/repository/arch).
 */
import type { BlobApi, BlobInfo, EventBase } from "../../transport/index.ts";
import type { RequestMsg } from "../common/actor-kit.ts";
import type { Flags } from "../common/flags.ts";
import type { BinaryInfo, BuildResultCode, PoolBinary } from "../common/model.ts";

/** What a worker uploaded for a job; every file is already in the repo role's blob store. */
export interface UploadedFile {
  /** File name as rpmbuild produced it (`hello-1.0-1.1.x86_64.rpm`), or `_log`, `_meta`, `_statistics`. */
  name: string;
  sha256: string;
  md5: string;
  size: number;
}

/** A binary kept in a package's result: its file and the header data read from it. */
export interface StoredBinary extends BinaryInfo {
  /** The file name; a binary exported here from another arch is `::import::<arch>::<file>`. */
  filename: string;
  sha256: string;
  md5: string;
  size: number;
  isSource: boolean;
  /** The source package name (OBS bininfo `source`); absent for source packages. */
  source?: string;
  leadsigmd5?: string;
  suggests?: string[];
  enhances?: string[];
  buildTime?: number;
  /** Set for a binary another arch's build exported here (OBS `ExportFilter`). */
  imported?: { fromArch: string };
  /** Meta of the build that produced the binary (OBS `:full/<name>.meta`). */
  metaSha256?: string;
}

/** The last build of one package in one repository/arch. */
export interface StoredResult {
  project: string;
  repository: string;
  arch: string;
  package: string;
  /** How the last build ended. */
  code: BuildResultCode;
  jobId: string;
  srcmd5: string;
  verifymd5: string;
  rev: number;
  versrel: string;
  bcnt: number;
  release: string;
  reason: string;
  workerId: string;
  readyTime: number;
  startTime: number;
  endTime: number;
  /** Binaries of the last successful build (a failed build keeps the previous ones, as OBS). */
  binaries: StoredBinary[];
  logSha256?: string;
  /** Meta of the last build (success or failure): basis of the scheduler's rebuild decision. */
  metaSha256?: string;
  statsSha256?: string;
}

/** A result as answered to a caller: without binaries for one who may not download them. */
export type ResultView = StoredResult & { binariesWithheld?: true };

/** Binaries another arch's build of the same package exported to this arch. */
export interface StoredImport {
  project: string;
  repository: string;
  /** The arch that stores (and builds with) the binaries. */
  arch: string;
  package: string;
  /** The arch whose build produced them. */
  fromArch: string;
  jobId: string;
  time: number;
  /** File names are `::import::<fromArch>::<file>`. */
  binaries: StoredBinary[];
}

/** One successful build in a package's build history (OBS `_history`). */
export interface BuildHistoryEntry {
  versrel: string;
  bcnt: number;
  srcmd5: string;
  rev: number;
  time: number;
  duration: number;
  code: BuildResultCode;
  workerId: string;
  reason: string;
  jobId: string;
}

/**
 * OBS's relsync (`:relsync.max`): the highest build counter a successful build of the package's
 * versrel got on any arch of the repository. A scheduler rebuilds a package whose own last build
 * of that versrel counted less ("rebuild counter sync"), so that every arch ends with the same
 * release.
 */
export interface RelsyncEntry {
  package: string;
  versrel: string;
  bcnt: number;
}

/** One finished job of a repository/arch (OBS `_jobhistory`). */
export interface JobHistoryEntry {
  package: string;
  jobId: string;
  srcmd5: string;
  verifymd5: string;
  rev: number;
  versrel: string;
  bcnt: number;
  release: string;
  reason: string;
  code: BuildResultCode;
  workerId: string;
  readyTime: number;
  startTime: number;
  endTime: number;
}

/** A binary as the publisher needs it. */
export interface PublishBinary {
  filename: string;
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  isSource: boolean;
  sha256: string;
  md5: string;
  size: number;
}

/** One package's publishable binaries in one repository/arch, with the flags that decide. */
export interface PublishPackage {
  package: string;
  publish: boolean;
  sourceaccess: boolean;
  /** Local binaries of the last successful build (imports are published by their own arch). */
  binaries: PublishBinary[];
}

/** A page of {@link PublishPackage}s of one repository/arch, in package-name order. */
export interface PublishPage {
  project: string;
  repository: string;
  arch: string;
  /** Changes whenever the repository/arch's results change: pages of one generation agree. */
  generation: string;
  packages: PublishPackage[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

/** What the repo role knows of a project for publishing. */
export interface PublishProjectView {
  project: string;
  /** Repositories with their archs, in `_meta` order. */
  repositories: { name: string; archs: string[] }[];
  flags: Flags;
}

/** What one pool change did, counted. */
export interface PoolChangeCounts {
  added: number;
  removed: number;
  changed: number;
}

type Prpa = { project: string; repository: string; arch: string };

export type RepoApi = BlobApi & {
  /** From a worker: store a job's result (files uploaded before). */
  "result.put": {
    req: Prpa & {
      package: string;
      jobId: string;
      workerId: string;
      code: BuildResultCode;
      files: UploadedFile[];
      startTime: number;
      endTime: number;
    };
    res: { stored: boolean };
  };
  /**
   * A package's last build. A caller who may not download its binaries (`binarydownload`) gets
   * the result without them: `binaries` empty and `binariesWithheld` set.
   */
  "result.get": {
    req: Prpa & { package: string };
    res: ResultView | null;
  };
  /** All results of a repository/arch (for the scheduler's rebuild decisions). */
  "result.list": {
    req: Prpa;
    res: Omit<StoredResult, "binaries">[];
  };
  /** `kiln wipe`: removes results (binaries, logs, imports); the pool follows. */
  "result.wipe": {
    req: { project: string; package?: string; repository?: string; arch?: string };
    res: { wiped: { repository: string; arch: string; package: string }[] };
  };
  /**
   * The whole pool; a large one exceeds a NATS message: use `pool.page`. Entries of packages
   * whose binaries the caller may not download are left out.
   */
  "pool.get": { req: Prpa; res: PoolBinary[] };
  /**
   * The pool in pages, by binary name after `after`; `next` is absent on the last page. Entries
   * the caller may not download are left out (counted in `withheld`); `next` moves over them.
   */
  "pool.page": {
    req: Prpa & { after?: string; limit?: number };
    res: { binaries: PoolBinary[]; next?: string; withheld?: number };
  };
  /**
   * `kiln admin rebuild-pool`: recompute the pool from the results and repair the stored one;
   * `deep` first derives each package's bininfo from its full result again.
   */
  "pool.rebuild": {
    req: Prpa & { deep?: boolean };
    res: PoolChangeCounts & { binaries: number; bininfoRepaired: number };
  };
  /** Local binaries and imports of a package, checked against `binarydownload` and `access`. */
  "binaries.list": {
    req: Prpa & { package: string };
    res: { filename: string; size: number; sha256: string; md5: string; mtime: number }[];
  };
  /**
   * A file of a package's result by its sha256, for users (kiln's roles and workers read blobs
   * with `blob.stat`/`blob.read`, which NATS authorization gives only to them): a binary or
   * import needs the right to download it (`binarydownload`, `access`), the build log sight of
   * the project. `repoFileClient` (files.ts) downloads with these.
   */
  "file.stat": { req: Prpa & { package: string; sha256: string }; res: BlobInfo };
  "file.read": {
    req: Prpa & { package: string; sha256: string; offset: number; length: number };
    res: Uint8Array;
  };
  "history.build": { req: Prpa & { package: string; limit?: number }; res: BuildHistoryEntry[] };
  /** The repository's relsync data, all archs together (for the schedulers' build counters). */
  "relsync.get": { req: { project: string; repository: string }; res: RelsyncEntry[] };
  /** Newest first. */
  "history.jobs": { req: Prpa & { package?: string; limit?: number }; res: JobHistoryEntry[] };
  "publish.project": { req: { project: string }; res: PublishProjectView | null };
  "publish.select": { req: Prpa & { after?: string; limit?: number }; res: PublishPage };
};

export type RepoRequest = RequestMsg<RepoApi>;

/** Events of the repo role. */
export interface RepoBuiltEvent extends EventBase {
  type: "repo.built";
  package: string;
  repository: string;
  arch: string;
  jobId: string;
  code: BuildResultCode;
  srcmd5: string;
  versrel: string;
  bcnt: number;
  metaSha256?: string;
}

/**
 * The pool of a repository/arch changed. Applying `removed` (by name) and then `added` to the
 * previous pool gives the new one; a binary that changed is in both. Large changes are split
 * into several events, each applicable on its own.
 */
export interface RepoPoolChangedEvent extends EventBase {
  type: "repo.pool-changed";
  repository: string;
  arch: string;
  added: PoolBinary[];
  removed: { name: string; package: string; filename: string }[];
}

/** Results were removed (`kiln wipe`, a deleted package or project): the packages have no build. */
export interface RepoWipedEvent extends EventBase {
  type: "repo.wiped";
  repository: string;
  arch: string;
  packages: string[];
}

/**
 * The repo role's copy of a project's (or one package's) flags changed: what it serves from now
 * on (pool, publishable binaries, downloads) follows the new flags.
 */
export interface RepoFlagsChangedEvent extends EventBase {
  type: "repo.flags-changed";
}

export type RepoEvent = RepoBuiltEvent | RepoPoolChangedEvent | RepoWipedEvent | RepoFlagsChangedEvent;
