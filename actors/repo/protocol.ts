/**
 * The repo role's requests (`kiln.rpc.repo.<noun>.<verb>`), its events, and the messages of its
 * actors (RepoServer → RepoArchResults per project/repository/arch).
 */
import type { BlobApi, EventBase } from "../../transport/index.ts";
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BinaryInfo, BuildResultCode, PoolBinary } from "../common/model.ts";

/** What a worker uploaded for a job; every file is already in the repo role's blob store. */
export interface UploadedFile {
  /** File name as rpmbuild produced it (`hello-1.0-1.1.x86_64.rpm`), or `_log`, `_meta`, `_statistics`. */
  name: string;
  sha256: string;
  md5: string;
  size: number;
}

/** A binary kept in a package's result. */
export interface StoredBinary extends BinaryInfo {
  filename: string;
  sha256: string;
  md5: string;
  size: number;
  isSource: boolean;
  /** Set for `::import::<arch>::<file>` binaries exported from another arch. */
  importedFrom?: string;
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

export type RepoApi = BlobApi & {
  /** From a worker: store a job's result (files uploaded before). */
  "result.put": {
    req: {
      project: string;
      repository: string;
      arch: string;
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
  "result.get": {
    req: { project: string; repository: string; arch: string; package: string };
    res: StoredResult | null;
  };
  /** All results of a repository/arch (for the scheduler's rebuild decisions). */
  "result.list": {
    req: { project: string; repository: string; arch: string };
    res: Omit<StoredResult, "binaries">[];
  };
  "pool.get": { req: { project: string; repository: string; arch: string }; res: PoolBinary[] };
  "binaries.list": {
    req: { project: string; repository: string; arch: string; package: string };
    res: { filename: string; size: number; sha256: string; md5: string; mtime: number }[];
  };
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

export interface RepoPoolChangedEvent extends EventBase {
  type: "repo.pool-changed";
  repository: string;
  arch: string;
  added: PoolBinary[];
  removed: { name: string; package: string; filename: string }[];
}

export type RepoEvent = RepoBuiltEvent | RepoPoolChangedEvent;
