/**
 * The build meta of a job (obs-backend.md §4.5) as OBS's worker writes it: the job's sources,
 * then every build dependency that is part of the meta with the meta of the build that produced
 * it, pruned by gen_meta. The worker writes it next to every result; the dispatcher writes the
 * same meta for a job it fails itself, so that the scheduler does not see a change and schedule
 * the job again at once.
 */
import { depMetaLines, genMeta } from "../common/build-meta.ts";
import type { BuildJob } from "../common/model.ts";

/** The meta lines of `job`; `producerMeta` yields the lines of a dependency's producing build. */
export async function jobMeta(
  job: Pick<BuildJob, "verifymd5" | "package" | "subpacks" | "bdeps">,
  producerMeta: (sha256: string) => Promise<readonly string[]>
): Promise<string[]> {
  const lines: string[] = [];
  for (const d of job.bdeps) {
    if (d.notmeta) continue;
    const producer = d.metaSha256 ? await producerMeta(d.metaSha256) : undefined;
    lines.push(...depMetaLines(d.name, d.hdrmd5, producer, job.package));
  }
  return genMeta(`${job.verifymd5}  ${job.package}`, job.subpacks, lines);
}
