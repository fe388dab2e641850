/**
 * Header data of an RPM file, as `rpm -qp` reports it.
 */
import { createHash } from "node:crypto";
import { execa } from "execa";
import { InvalidInputError } from "../../transport/index.ts";
import type { BinaryInfo } from "../common/model.ts";

const FORMAT = [
  "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SOURCERPM}|%{SHA256HEADER}\\n",
  "[P %{PROVIDES} %{PROVIDEFLAGS:depflags} %{PROVIDEVERSION}\\n]",
  "[R %{REQUIRES} %{REQUIREFLAGS:depflags} %{REQUIREVERSION}\\n]",
  "[C %{CONFLICTS} %{CONFLICTFLAGS:depflags} %{CONFLICTVERSION}\\n]",
  "[O %{OBSOLETES} %{OBSOLETEFLAGS:depflags} %{OBSOLETEVERSION}\\n]",
].join("");

export async function queryRpm(file: string): Promise<{ info: BinaryInfo; isSource: boolean }> {
  const r = await execa("rpm", ["-qp", "--nosignature", "--nodigest", "--queryformat", FORMAT, file], {
    reject: false,
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.exitCode !== 0) throw new InvalidInputError(`not a readable rpm: ${r.stderr.split("\n")[0] ?? ""}`);
  const lines = r.stdout.split("\n");
  const head = (lines.shift() ?? "").split("|");
  if (head.length < 7) throw new InvalidInputError("not a readable rpm: no header");
  const [name, epoch, version, release, arch, sourceRpm, sha256hdr] = head as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const isSource = sourceRpm === "(none)";
  const info: BinaryInfo = {
    name,
    version,
    release,
    arch: isSource ? (arch === "noarch" ? "nosrc" : "src") : arch,
    provides: [],
    requires: [],
    conflicts: [],
    obsoletes: [],
    hdrmd5: createHash("md5").update(sha256hdr).digest("hex"),
  };
  if (epoch !== "(none)") info.epoch = Number(epoch);
  if (!isSource) info.sourceRpm = sourceRpm;
  const lists: Record<string, string[]> = { P: info.provides, R: info.requires, C: info.conflicts, O: info.obsoletes };
  for (const l of lines) {
    const list = lists[l[0] ?? ""];
    if (!list || l[1] !== " ") continue;
    const dep = l.slice(2).trim();
    if (dep.startsWith("rpmlib(")) continue;
    list.push(dep);
  }
  return { info, isSource };
}
