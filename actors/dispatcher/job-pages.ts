/**
 * Reading the dispatcher's whole job list in pages: a project may have more queued jobs than one
 * NATS message holds.
 */
import type { RoleClient } from "../../transport/index.ts";
import type { DispatcherApi, JobView } from "./protocol.ts";

/** Jobs per page of `job.list` with `after`: well under NATS's default max_payload. */
export const JOB_PAGE = 1000;

/**
 * Every job matching the filter, read page by page (a project may have more queued jobs than one
 * NATS message holds).
 */
export async function listAllJobs(
  dispatcher: RoleClient<DispatcherApi>,
  filter: Omit<DispatcherApi["job.list"]["req"], "limit" | "after">
): Promise<JobView[]> {
  const all: JobView[] = [];
  for (let after = ""; ;) {
    const page = await dispatcher.call("job.list", { ...filter, after, limit: JOB_PAGE }, { idempotent: true });
    all.push(...page);
    if (page.length < JOB_PAGE) return all;
    after = page[page.length - 1]!.jobId;
  }
}
