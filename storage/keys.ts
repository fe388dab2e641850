/**
 * The LMDB key grammar. Keys are arrays of strings and numbers (lmdb-js orders them element by
 * element: numbers before strings, strings bytewise), always starting with a space tag. Every key
 * kiln stores is built by one function here, so the layout of each role's database is readable
 * in one place:
 *
 * ```
 * shared (every role's database)
 *   ["blob", sha256]                              → BlobRecord {md5, size, time stored or last uploaded}
 *   ["md5", md5]                                  → sha256 (OBS clients speak md5)
 *   ["outbox", seq]                               → event not yet acknowledged by the stream
 *   ["meta", name]                                → role bookkeeping (schema version, node id)
 * source
 *   ["prj", project]                              → ProjectRecord
 *   ["prjconf", project, rev]                     → project config revision
 *   ["prjmeta", project, rev]                     → MetaRevision: a change of the project meta (who, why)
 *   ["pkg", project, package]                     → PackageRecord
 *   ["rev", project, package, rev]                → Revision
 *   ["pkgmeta", project, package, rev]            → MetaRevision: a change of the package meta
 *   ["user", name]                                → UserRecord
 *   ["userkey", pubkey]                           → user name
 *   ["nonce", nonce]                              → expiry (ms) of a seen request nonce
 *   ["group", name]                               → GroupRecord {name, members}
 *   ["srcref", md5, project, package]             → 1: a revision of the package holds that content
 *   ["svc", project, package, rev]                → ServiceExpansion: the server services' files for a revision
 *   ["svcrun", project, package]                  → ServiceRunRecord: the package's latest service run
 * scheduler (one database per arch)
 *   ["pkgstate", project, repo, package]          → package state, build decision, last job
 *   ["repostate", project, repo]                  → repository state
 *   ["jobsig", jobId]                             → the dependency signature a job recorded
 *   ["jobsigidx", project, repo, package, jobId]  → seq: the package's jobs with a signature, in submission order
 *   ["reason", project, repo, package]            → why the package's latest job was made (OBS `reason`)
 * repo
 *   ["result", project, repo, arch, package]      → stored build result
 *   ["pool", project, repo, arch, binaryName]     → pool entry: which package's binary (compact tuple)
 *   ["bininfo", project, repo, arch, package]     → what the pool rule needs of a package's binaries (compact)
 *   ["bhist", project, repo, arch, package, seq]  → build history entry
 *   ["jhist", project, repo, arch, seq]           → job history entry
 *   ["import", project, repo, arch, package, fromArch] → binaries another arch's build exported here
 *   ["relsync", project, repo, package]           → highest build counter of each recent versrel over all archs (OBS relsync)
 *   ["prjflags", project]                         → the repo role's copy of a project's flags and repositories
 *   ["pkgflags", project, package]                → the repo role's copy of a package's flags
 * publisher
 *   ["pubarch", project, repo, arch]              → what one arch contributes to the published repository
 *   ["pubrepo", project, repo]                    → the published repository (version, content digest)
 *   ["pubstate", project, repo, arch]             → the repository code its scheduler last announced
 * dispatcher
 *   ["job", jobId]                                → queued or running job
 *   ["worker", workerId]                          → last known registration
 *   ["load", project, repo, arch]                 → decayed load
 * ```
 *
 * Prefix scans use {@link prefixRange}.
 */

export type KeyPart = string | number;
export type Key = KeyPart[];

/** Sorts after every string and number, so `[...prefix, END]` closes a prefix range. */
const END = Buffer.from([0xff]);

/** Range options for lmdb-js `getRange` covering every key that starts with `prefix`. */
export function prefixRange(prefix: Key): { start: KeyPart[]; end: (KeyPart | Buffer)[] } {
  return { start: [...prefix], end: [...prefix, END] };
}

export const keys = {
  // shared
  blob: (sha256: string): Key => ["blob", sha256],
  blobsAll: (): Key => ["blob"],
  md5: (md5: string): Key => ["md5", md5],
  outbox: (seq: number): Key => ["outbox", seq],
  outboxAll: (): Key => ["outbox"],
  meta: (name: string): Key => ["meta", name],

  // source
  project: (project: string): Key => ["prj", project],
  projectsAll: (): Key => ["prj"],
  projectConfig: (project: string, rev: number): Key => ["prjconf", project, rev],
  projectConfigsOf: (project: string): Key => ["prjconf", project],
  projectMetaRevision: (project: string, rev: number): Key => ["prjmeta", project, rev],
  projectMetaRevisionsOf: (project: string): Key => ["prjmeta", project],
  packageMetaRevision: (project: string, pkg: string, rev: number): Key => ["pkgmeta", project, pkg, rev],
  packageMetaRevisionsOf: (project: string, pkg: string): Key => ["pkgmeta", project, pkg],
  package: (project: string, pkg: string): Key => ["pkg", project, pkg],
  packagesOf: (project: string): Key => ["pkg", project],
  revision: (project: string, pkg: string, rev: number): Key => ["rev", project, pkg, rev],
  revisionsOf: (project: string, pkg: string): Key => ["rev", project, pkg],
  user: (name: string): Key => ["user", name],
  usersAll: (): Key => ["user"],
  userKey: (pubkey: string): Key => ["userkey", pubkey],
  nonce: (nonce: string): Key => ["nonce", nonce],
  noncesAll: (): Key => ["nonce"],
  group: (name: string): Key => ["group", name],
  groupsAll: (): Key => ["group"],
  sourceRef: (md5: string, project: string, pkg: string): Key => ["srcref", md5, project, pkg],
  sourceRefsOf: (md5: string): Key => ["srcref", md5],
  serviceExpansion: (project: string, pkg: string, rev: number): Key => ["svc", project, pkg, rev],
  serviceExpansionsOf: (project: string, pkg: string): Key => ["svc", project, pkg],
  serviceRun: (project: string, pkg: string): Key => ["svcrun", project, pkg],
  serviceRunsAll: (): Key => ["svcrun"],

  // scheduler
  packageState: (project: string, repo: string, pkg: string): Key => ["pkgstate", project, repo, pkg],
  packageStatesOf: (project: string, repo?: string): Key =>
    repo === undefined ? ["pkgstate", project] : ["pkgstate", project, repo],
  repoState: (project: string, repo: string): Key => ["repostate", project, repo],
  jobSignature: (jobId: string): Key => ["jobsig", jobId],
  jobSignaturesAll: (): Key => ["jobsig"],
  /**
   * The per-package index of stored job signatures, written in the transaction that writes the
   * signature. Its value is a counter (0 for a signature adopted from before the index), so that
   * "the package's jobs older than the one its result names" is a scan of a few keys; the scheduler
   * drops those signatures, as no result can name them any more.
   */
  jobSignatureIndex: (project: string, repo: string, pkg: string, jobId: string): Key => [
    "jobsigidx",
    project,
    repo,
    pkg,
    jobId,
  ],
  /** A project's, repository's or package's entries of {@link keys.jobSignatureIndex}. */
  jobSignatureIndexOf: (project: string, repo?: string, pkg?: string): Key => [
    "jobsigidx",
    project,
    ...(repo === undefined ? [] : [repo, ...(pkg === undefined ? [] : [pkg])]),
  ],
  jobSignatureIndexAll: (): Key => ["jobsigidx"],
  buildReason: (project: string, repo: string, pkg: string): Key => ["reason", project, repo, pkg],
  buildReasonsOf: (project: string, repo?: string): Key =>
    repo === undefined ? ["reason", project] : ["reason", project, repo],
  buildReasonsAll: (): Key => ["reason"],

  // repo
  result: (project: string, repo: string, arch: string, pkg: string): Key => ["result", project, repo, arch, pkg],
  resultsOf: (project: string, repo?: string, arch?: string): Key =>
    ["result", project, repo, arch].filter((x): x is string => x !== undefined),
  poolEntry: (project: string, repo: string, arch: string, binary: string): Key => [
    "pool",
    project,
    repo,
    arch,
    binary,
  ],
  poolOf: (project: string, repo?: string, arch?: string): Key =>
    ["pool", project, repo, arch].filter((x): x is string => x !== undefined),
  buildHistory: (project: string, repo: string, arch: string, pkg: string, seq: number): Key => [
    "bhist",
    project,
    repo,
    arch,
    pkg,
    seq,
  ],
  buildHistoryOf: (project: string, repo?: string, arch?: string, pkg?: string): Key =>
    ["bhist", project, repo, arch, pkg].filter((x): x is string => x !== undefined),
  jobHistory: (project: string, repo: string, arch: string, seq: number): Key => ["jhist", project, repo, arch, seq],
  jobHistoryOf: (project: string, repo?: string, arch?: string): Key =>
    ["jhist", project, repo, arch].filter((x): x is string => x !== undefined),
  binInfo: (project: string, repo: string, arch: string, pkg: string): Key => ["bininfo", project, repo, arch, pkg],
  binInfosOf: (project: string, repo?: string, arch?: string): Key =>
    ["bininfo", project, repo, arch].filter((x): x is string => x !== undefined),
  resultImport: (project: string, repo: string, arch: string, pkg: string, fromArch: string): Key => [
    "import",
    project,
    repo,
    arch,
    pkg,
    fromArch,
  ],
  resultImportsOf: (project: string, repo?: string, arch?: string, pkg?: string): Key =>
    ["import", project, repo, arch, pkg].filter((x): x is string => x !== undefined),
  /** OBS's `:relsync.max` for one package: its highest successful build counter per versrel, any arch. */
  relsync: (project: string, repo: string, pkg: string): Key => ["relsync", project, repo, pkg],
  relsyncOf: (project: string, repo?: string): Key =>
    ["relsync", project, repo].filter((x): x is string => x !== undefined),
  projectFlags: (project: string): Key => ["prjflags", project],
  projectFlagsAll: (): Key => ["prjflags"],
  packageFlags: (project: string, pkg: string): Key => ["pkgflags", project, pkg],
  packageFlagsOf: (project: string): Key => ["pkgflags", project],

  // publisher
  publishedArch: (project: string, repo: string, arch: string): Key => ["pubarch", project, repo, arch],
  publishedArchsOf: (project: string, repo?: string): Key =>
    repo === undefined ? ["pubarch", project] : ["pubarch", project, repo],
  publishedRepo: (project: string, repo: string): Key => ["pubrepo", project, repo],
  publishedReposOf: (project: string): Key => ["pubrepo", project],
  announcedState: (project: string, repo: string, arch: string): Key => ["pubstate", project, repo, arch],
  announcedStatesAll: (): Key => ["pubstate"],
  announcedStatesOf: (project: string): Key => ["pubstate", project],

  // dispatcher
  job: (jobId: string): Key => ["job", jobId],
  jobsAll: (): Key => ["job"],
  worker: (workerId: string): Key => ["worker", workerId],
  workersAll: (): Key => ["worker"],
  load: (project: string, repo: string, arch: string): Key => ["load", project, repo, arch],
  loadsAll: (): Key => ["load"],
} as const;
