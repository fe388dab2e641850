/**
 * Shape check of a build job received over NATS. Jobs come from schedulers, but the dispatcher
 * persists what it gets, so a malformed job is refused before it can poison the queue.
 */
import { InvalidInputError } from "../../transport/index.ts";
import type { BuildDep, BuildJob, SourceFile } from "../common/model.ts";
import { arr, bool, int, md5, obj, optInt, optStr, sha256, str, type Raw } from "../common/validate.ts";

function sourceFile(v: unknown): SourceFile {
  const o = obj(v, "file");
  return {
    name: str(o, "name", { max: 255 }),
    md5: md5(o, "md5"),
    sha256: sha256(o, "sha256"),
    size: int(o, "size", { min: 0 }),
  };
}

function buildDep(v: unknown): BuildDep {
  const o = obj(v, "bdep");
  const d: BuildDep = {
    name: str(o, "name"),
    version: str(o, "version"),
    release: str(o, "release"),
    arch: str(o, "arch"),
    project: str(o, "project"),
    repository: str(o, "repository"),
    package: str(o, "package"),
    filename: str(o, "filename"),
    sha256: sha256(o, "sha256"),
    hdrmd5: str(o, "hdrmd5"),
    size: int(o, "size", { min: 0 }),
  };
  const epoch = optInt(o, "epoch", { min: 0 });
  if (epoch !== undefined) d.epoch = epoch;
  const meta = optStr(o, "metaSha256");
  if (meta !== undefined) d.metaSha256 = meta;
  for (const f of ["notmeta", "preinstall", "vminstall", "runscripts"] as const) if (bool(o, f, false)) d[f] = true;
  return d;
}

function strings(o: Raw, field: string): string[] {
  return arr(o, field, (v) => {
    if (typeof v !== "string") throw new TypeError(`${field} entries must be strings`);
    return v;
  });
}

export function validateJob(raw: unknown): BuildJob {
  const o = obj(raw, "job");
  const c = obj(o.constraints ?? {}, "'constraints'");
  const job: BuildJob = {
    jobId: str(o, "jobId", { max: 64 }),
    name: str(o, "name", { max: 1000 }),
    project: str(o, "project"),
    repository: str(o, "repository"),
    arch: str(o, "arch"),
    package: str(o, "package"),
    srcmd5: md5(o, "srcmd5"),
    verifymd5: md5(o, "verifymd5"),
    rev: int(o, "rev", { min: 0 }),
    specFile: str(o, "specFile", { max: 255 }),
    files: arr(o, "files", sourceFile),
    versrel: str(o, "versrel"),
    bcnt: int(o, "bcnt", { min: 0 }),
    release: str(o, "release"),
    reason: str(o, "reason"),
    needed: int(o, "needed", { min: 0 }),
    readyTime: int(o, "readyTime", { min: 0 }),
    debuginfo: bool(o, "debuginfo", false),
    disturl: str(o, "disturl", { max: 4096 }),
    subpacks: strings(o, "subpacks"),
    bdeps: arr(o, "bdeps", buildDep),
    path: arr(o, "path", (v) => {
      const p = obj(v, "path entry");
      return { project: str(p, "project"), repository: str(p, "repository") };
    }),
    constraints: { prjconf: c.prjconf ? strings(c, "prjconf") : [], recipe: c.recipe ? strings(c, "recipe") : [] },
  };
  const revTime = optInt(o, "revTime", { min: 0 });
  if (revTime !== undefined) job.revTime = revTime;
  const file = optStr(c, "file", { max: 1024 * 1024 });
  if (file !== undefined) job.constraints.file = file;
  const macros = optStr(o, "macros", { max: 1024 * 1024, allowEmpty: true });
  if (macros !== undefined) job.macros = macros;
  if (o.buildFlags !== undefined && o.buildFlags !== null) {
    job.buildFlags = arr(o, "buildFlags", (v) => {
      if (typeof v !== "string" || v.length > 4096) throw new InvalidInputError("buildFlags entries must be strings");
      return v;
    });
  }
  if (o.buildtimeServices !== undefined && o.buildtimeServices !== null) {
    job.buildtimeServices = arr(o, "buildtimeServices", (v) => {
      const sv = obj(v, "buildtime service");
      return {
        name: str(sv, "name", { max: 100 }),
        params: arr(sv, "params", (pv) => {
          const p = obj(pv, "service parameter");
          return { name: str(p, "name", { max: 100 }), value: str(p, "value", { max: 64 * 1024, allowEmpty: true }) };
        }),
      };
    });
  }
  return job;
}
