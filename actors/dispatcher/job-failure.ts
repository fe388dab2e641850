/**
 * Jobs the dispatcher ends itself — no worker can ever build them (OBS "package build was not
 * possible: no compliant workers"), their constraints are malformed, every worker refused them,
 * or a user aborted them before they started — are reported to the repo role like a worker's
 * failed build: a short log that says why, and the meta the build would have had, so the
 * scheduler shows the package `failed` and does not schedule it again until something changes.
 */
import { Readable } from "node:stream";
import { readBlobBytes, uploadStream, type RoleClient } from "../../transport/index.ts";
import { parseMeta, renderMeta } from "../common/build-meta.ts";
import { BuildResultCode, type BuildJob } from "../common/model.ts";
import type { RepoApi, UploadedFile } from "../repo/protocol.ts";
import { jobMeta } from "../worker/job-meta.ts";
import { DISPATCHER_WORKER_ID } from "./protocol.ts";

const MAX_META_BYTES = 64 * 1024 * 1024;

/** The log of a job the dispatcher failed. */
export function failureLog(job: BuildJob, reason: string, now: number): string {
  return [
    `[kiln] ${job.package} for ${job.project}/${job.repository}/${job.arch} was not built`,
    `[kiln] ${new Date(now).toISOString()}: ${reason}`,
    `[kiln] finished: failed`,
    "",
  ].join("\n");
}

async function uploadText(repo: RoleClient<RepoApi>, name: string, text: string): Promise<UploadedFile> {
  const data = Buffer.from(text, "utf8");
  const info = await uploadStream(repo, Readable.from([data]), { size: data.length });
  return { name, sha256: info.sha256, md5: info.md5, size: info.size };
}

/**
 * Stores a failed result for `job` with `reason` in its log. The dispatcher must already show the
 * job as assigned to {@link DISPATCHER_WORKER_ID}: the repo role checks that with `job.get`.
 */
export async function reportFailure(
  repo: RoleClient<RepoApi>,
  job: BuildJob,
  reason: string,
  startTime: number
): Promise<void> {
  const metas = new Map<string, readonly string[]>();
  const meta = await jobMeta(job, async (sha) => {
    let m = metas.get(sha);
    if (!m) {
      m = parseMeta((await readBlobBytes(repo, sha, MAX_META_BYTES)).toString("utf8"));
      metas.set(sha, m);
    }
    return m;
  });
  const now = Date.now();
  const files = await Promise.all([
    uploadText(repo, "_log", failureLog(job, reason, now)),
    uploadText(repo, "_meta", renderMeta(meta)),
  ]);
  await repo.call(
    "result.put",
    {
      project: job.project,
      repository: job.repository,
      arch: job.arch,
      package: job.package,
      jobId: job.jobId,
      workerId: DISPATCHER_WORKER_ID,
      code: BuildResultCode.Failed,
      files,
      startTime: Math.min(startTime, now),
      endTime: now,
    },
    { timeoutMs: 60_000 }
  );
}
