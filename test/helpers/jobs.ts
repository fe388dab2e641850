/** Build jobs and result uploads as the scheduler and a worker make them, for tests that stand in for either. */
import type { BuildJob, UploadedFile } from "../../actors/index.ts";
import { uploadFile, type BlobApi, type RoleClient } from "../../transport/index.ts";

/**
 * A job's fields as the scheduler fills them for a package built from `srcmd5` (in `standard` on
 * x86_64 unless given): a test spreads what it needs over them, and adds the jobId.
 */
export function jobFields(
  o: Pick<BuildJob, "project" | "package" | "srcmd5"> & Partial<Pick<BuildJob, "repository" | "arch">>
): Omit<BuildJob, "jobId"> {
  const repository = o.repository ?? "standard";
  return {
    name: `${o.project}::${repository}::${o.package}-${o.srcmd5}`,
    project: o.project,
    repository,
    arch: o.arch ?? "x86_64",
    package: o.package,
    srcmd5: o.srcmd5,
    verifymd5: o.srcmd5,
    rev: 1,
    specFile: `${o.package}.spec`,
    files: [],
    versrel: "1.0-1",
    bcnt: 1,
    release: "1.1",
    reason: "new build",
    needed: 0,
    readyTime: Date.now(),
    debuginfo: false,
    disturl: `obs://kiln/${o.project}/${repository}/${o.srcmd5}-${o.package}`,
    subpacks: [o.package],
    bdeps: [],
    path: [{ project: o.project, repository }],
    constraints: { prjconf: [], recipe: [] },
  };
}

/** Uploads each local file as a worker does, under its name, for a `result.put`. */
export async function uploadAs(
  client: RoleClient<BlobApi>,
  files: [name: string, file: string][]
): Promise<UploadedFile[]> {
  const uploaded: UploadedFile[] = [];
  for (const [name, file] of files) {
    const info = await uploadFile(client, file);
    uploaded.push({ name, sha256: info.sha256, md5: info.md5, size: info.size });
  }
  return uploaded;
}
