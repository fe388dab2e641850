/**
 * Downloads of a result's files for users. kiln's roles and workers read the repo role's blobs by
 * hash (`blob.stat`, `blob.read`); users may not (ops/nats/authz.ts), because a hash alone says
 * nothing about the package a blob belongs to. They read through `file.stat` and `file.read`,
 * which name the package, so the repo role checks `binarydownload` and `access` on every request.
 */
import { InvalidInputError, RoleClient, type BlobApi, type CallOptions } from "../../transport/index.ts";
import type { RepoApi } from "./protocol.ts";

/** The package whose result holds the file. */
export interface RepoFileTarget {
  project: string;
  repository: string;
  arch: string;
  package: string;
}

/**
 * A blob client whose reads go through the checked `file.stat`/`file.read` of one package's
 * result, so transport's `downloadBlob` and `readBlobBytes` serve users too. Uploads through it
 * are refused.
 */
class RepoFileClient extends RoleClient<BlobApi> {
  readonly #repo: RoleClient<RepoApi>;
  readonly #target: RepoFileTarget;

  constructor(repo: RoleClient<RepoApi>, target: RepoFileTarget) {
    super(repo.rpc, (t) => repo.subject(t as keyof RepoApi & string));
    this.#repo = repo;
    this.#target = target;
  }

  override call<K extends keyof BlobApi & string>(
    type: K,
    args: BlobApi[K]["req"],
    opts?: CallOptions
  ): Promise<BlobApi[K]["res"]> {
    const t = this.#target;
    const where = { project: t.project, repository: t.repository, arch: t.arch, package: t.package };
    switch (type) {
      case "blob.stat": {
        const a = args as BlobApi["blob.stat"]["req"];
        return this.#repo.call("file.stat", { ...where, sha256: a.sha256 }, opts) as Promise<BlobApi[K]["res"]>;
      }
      case "blob.read": {
        const a = args as BlobApi["blob.read"]["req"];
        return this.#repo.call(
          "file.read",
          { ...where, sha256: a.sha256, offset: a.offset, length: a.length },
          opts
        ) as Promise<BlobApi[K]["res"]>;
      }
      default:
        return Promise.reject(new InvalidInputError(`${type} is not a read of a result's file`));
    }
  }
}

/** A client that reads the files of `target`'s result for `downloadBlob` and `readBlobBytes`. */
export function repoFileClient(repo: RoleClient<RepoApi>, target: RepoFileTarget): RoleClient<BlobApi> {
  return new RepoFileClient(repo, target);
}
