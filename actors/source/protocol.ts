/**
 * The source role's requests (`kiln.rpc.source.<noun>.<verb>`), its events, and its records.
 *
 * SourceServer routes project-scoped requests to a Project actor and package-scoped ones on to a
 * Package actor, so changes to one package are serialised while different packages commit in
 * parallel.
 */
import type { BlobApi, EventBase, SignedAuth } from "../../transport/index.ts";
import type { RequestMsg } from "../common/actor-kit.ts";
import type { SourceFile } from "../common/model.ts";
import type { ServiceParam, ServiceRunKind, ServiceSpec } from "../service/service-xml.ts";
import type { AccessNeed, Principal } from "./access.ts";
import type { PackageMeta, ProjectMeta } from "./meta-xml.ts";

/** A file as a committer announces it (osc's commitfilelist entry). */
export interface CommitEntry {
  name: string;
  md5: string;
  size: number;
}

/** One revision of a package. */
export interface Revision {
  rev: number;
  srcmd5: string;
  user: string;
  comment: string;
  time: number;
  files: SourceFile[];
}

/** One change of a project or package meta, kept as the meta's history (OBS `_history?meta=1`). */
export interface MetaRevision {
  rev: number;
  /** The normalised meta after the change. */
  xml: string;
  user: string;
  comment: string;
  time: number;
}

export interface ProjectRecord {
  name: string;
  meta: ProjectMeta;
  /** The normalised XML (what `meta.get` returns). */
  xml: string;
  created: number;
  updated: number;
  /** Latest `_config` revision, 0 when none. */
  configRev: number;
}

export interface PackageRecord {
  project: string;
  name: string;
  meta: PackageMeta;
  xml: string;
  /** Latest revision, 0 when nothing was committed. */
  rev: number;
  srcmd5: string;
  created: number;
  updated: number;
}

export interface ConfigRevision {
  rev: number;
  text: string;
  user: string;
  comment: string;
  time: number;
}

/** Flags of a package evaluated for one repository/arch. */
export interface EvaluatedFlags {
  build: boolean;
  lock: boolean;
  useforbuild: boolean;
  debuginfo: boolean;
  publish: boolean;
}

/** What a scheduler needs to know about one package for one repository/arch (OBS getprojpack). */
export interface PackageBuildInfo {
  project: string;
  package: string;
  repository: string;
  arch: string;
  rev: number;
  srcmd5: string;
  verifymd5: string;
  revTime: number;
  files: SourceFile[];
  specFile?: string;
  name?: string;
  version?: string;
  release?: string;
  epoch?: number;
  buildRequires: string[];
  subpacks: string[];
  /** `#!BuildConstraint:` lines of the recipe. */
  constraints: string[];
  /** Content of the package's `_constraints` file. */
  constraintsFile?: string;
  flags: EvaluatedFlags;
  /** Set when the package cannot build here: `excluded`, `broken: …`, `no recipe file`, … */
  error?: string;
  /** The code the error stands for. */
  errorCode?: "excluded" | "broken" | "disabled" | "blocked";
  /** `buildtime` services of the package and its project, run by the worker before the build. */
  buildtimeServices?: { name: string; params: ServiceParam[] }[];
}

/** How a service run stands. */
export const ServiceState = {
  Running: "running",
  Succeeded: "succeeded",
  Failed: "failed",
} as const;
export type ServiceState = (typeof ServiceState)[keyof typeof ServiceState];

/**
 * What the server's services made of one revision (OBS's service tree): the `_service:<name>:<file>`
 * files that, together with the revision's own files, are the sources a build gets.
 */
export interface ServiceExpansion {
  rev: number;
  runId: number;
  state: ServiceState;
  /** `_service:<name>:<file>` files (on success). */
  files: SourceFile[];
  /** srcmd5 of the revision's files and these together (OBS's xsrcmd5): the build's srcmd5. */
  xsrcmd5?: string;
  /** One line: why the run failed. */
  error?: string;
  /** Service files of the last successful run, handed to the next run as `.old/` (OBS). */
  old?: SourceFile[];
  time: number;
}

/** A package's latest service run, of any kind. */
export interface ServiceRunRecord {
  /** Counts the package's runs; a result is accepted only for the current one. */
  runId: number;
  kind: ServiceRunKind;
  /** The revision it runs on. */
  rev: number;
  state: ServiceState;
  /** Who caused it (the committer, or who asked for the run). */
  user: string;
  requested: number;
  ended?: number;
  error?: string;
  /** The services' output (stdout and stderr), bounded. */
  output?: string;
  /** A manual or disabled run: the revision its output was committed as. */
  committedRev?: number;
}

/** A service run as the service role gets it. */
export interface ServiceJob {
  project: string;
  package: string;
  rev: number;
  runId: number;
  kind: ServiceRunKind;
  /** The revision's files: the services' working directory. */
  files: SourceFile[];
  /** What to run, in order (the package's services, then the project's). */
  services: ServiceSpec[];
  /** Service files of the last successful run, for the `.old/` directory. */
  old: SourceFile[];
}

/** `kiln service status`. */
export interface ServiceStatusView {
  project: string;
  package: string;
  /** The package's current revision. */
  rev: number;
  /** Every service of the current revision and of the project, with where it comes from. */
  services: (ServiceSpec & { origin: "package" | "project" })[];
  run?: ServiceRunRecord;
  /** The server services' result for the current revision, when it has one. */
  expansion?: ServiceExpansion;
}

/** The combined build configuration of a repository (configs along its path, base first). */
export interface BuildConfigView {
  project: string;
  repository: string;
  text: string;
  layers: { project: string; repository: string; text: string }[];
  /**
   * The repository path expanded as OBS does (this repository, its path, then recursively the path
   * of the last entry only), this repository first.
   */
  path: { project: string; repository: string }[];
}

type Where = { project: string };
type WherePkg = { project: string; package: string };

export type SourceApi = BlobApi & {
  "project.list": { req: Record<string, never>; res: { name: string; title: string }[] };
  "project.get-meta": { req: Where; res: { xml: string; meta: ProjectMeta } };
  /**
   * Creates or replaces a project's meta. Removing a repository that other projects build
   * against is refused unless `force`.
   */
  "project.put-meta": {
    req: Where & { xml: string; comment?: string; force?: boolean };
    res: { xml: string; created: boolean };
  };
  /** The changes of a project's meta, oldest first. */
  "project.meta-history": { req: Where; res: MetaRevision[] };
  "project.get-config": { req: Where & { rev?: number }; res: ConfigRevision };
  "project.put-config": { req: Where & { text: string; comment?: string }; res: { rev: number } };
  "project.delete": { req: Where & { force?: boolean; comment?: string }; res: null };
  "project.build-config": { req: Where & { repository: string }; res: BuildConfigView };
  /** All packages of a project evaluated for one repository/arch (a scheduler's full fetch). */
  "project.buildinfo": { req: Where & { repository: string; arch: string }; res: PackageBuildInfo[] };
  "package.list": { req: Where; res: string[] };
  "package.get-meta": { req: WherePkg; res: { xml: string; meta: PackageMeta } };
  "package.put-meta": { req: WherePkg & { xml: string; comment?: string }; res: { xml: string; created: boolean } };
  /** The changes of a package's meta made with `package.put-meta`, oldest first. */
  "package.meta-history": { req: WherePkg; res: MetaRevision[] };
  /**
   * osc's commit protocol: the complete new file list with md5s. The answer is either the files
   * the server lacks (upload them, then commit again) or the new revision.
   */
  "package.commit": {
    req: WherePkg & { files: CommitEntry[]; comment?: string };
    res: { missing: CommitEntry[] } | { revision: Revision };
  };
  "package.get": { req: WherePkg & { rev?: number }; res: Revision & { project: string; package: string } };
  "package.history": { req: WherePkg; res: Omit<Revision, "files">[] };
  "package.delete": { req: WherePkg & { comment?: string }; res: null };
  "package.buildinfo": { req: WherePkg & { repository: string; arch: string }; res: PackageBuildInfo };
  /**
   * Runs the package's services again (`kind` server, OBS's runservice), or its manual or
   * disabled ones, whose output becomes a new revision. Needs the right to change the package.
   */
  "package.service-run": { req: WherePkg & { kind?: ServiceRunKind }; res: { runId: number; rev: number } };
  "package.service-status": { req: WherePkg; res: ServiceStatusView };
  /** The service role fetches a run; null when it is no longer the package's current run. */
  "package.service-job": { req: WherePkg & { runId: number }; res: ServiceJob | null };
  /**
   * The service role delivers a run's outcome: on success the files it made (uploaded before),
   * named `_service:<name>:<file>` for a server run and plainly for a manual one. Only kiln's
   * roles (service users) and admins may; a result for a run that is not current is dropped.
   */
  "package.service-result": {
    req: WherePkg & { runId: number; ok: boolean; files: CommitEntry[]; error?: string; output: string };
    res: { accepted: boolean; rev?: number };
  };
  /** Service runs that were asked for and have not ended (service users and admins). */
  "service.pending": { req: Record<string, never>; res: { project: string; package: string; runId: number }[] };
  "user.add": { req: { name: string; pubkey: string; admin?: boolean; service?: boolean }; res: UserView };
  "user.list": { req: Record<string, never>; res: UserView[] };
  "user.remove": { req: { name: string }; res: null };
  "user.whoami": {
    req: Record<string, never>;
    res: { user: string; admin: boolean; service: boolean; anonymous: boolean; groups: string[] };
  };
  /** Creates or replaces a group (admins only). */
  "group.set": { req: { name: string; members: string[] }; res: GroupView };
  "group.list": { req: Record<string, never>; res: GroupView[] };
  "group.remove": { req: { name: string }; res: null };
  /**
   * May the caller of another role's request do this? Roles pass their caller's request through
   * (`as`: its subject, raw arguments and signature) and the source role authenticates it like
   * its own requests (signature, time, nonce, registered key), then answers with the caller, or
   * refuses with the error the caller should get: ERR_NOT_FOUND for a project hidden from them,
   * ERR_FORBIDDEN for what their role does not allow, ERR_UNAUTHENTICATED for a bad signature or
   * an unsigned change.
   */
  "access.check": {
    req: Where & { package?: string; repository?: string; arch?: string; need: AccessNeed; as?: PassedRequest };
    res: { user: string };
  };
  /**
   * Which of these projects or packages the caller of another role's request may access as
   * `need` says: one authentication of the passed request (its nonce is used once), then the
   * rules of `access.check` for each target; `allowed[i]` answers `targets[i]`. For listings that
   * span projects (jobs, workers). An admin passes for targets that no longer exist (jobs may
   * outlive their package). With `strict`, the first refused target fails the request with
   * `access.check`'s error.
   */
  "access.filter": {
    req: {
      targets: { project: string; package?: string; repository?: string; arch?: string }[];
      need: AccessNeed;
      strict?: boolean;
      as?: PassedRequest;
    };
    res: { user: string; allowed: boolean[] };
  };
  /**
   * Events from the event stream that the caller may see, after stream sequence `after` (default:
   * only events from now on), waiting up to `waitMs` for the first one. `next` is the cursor of
   * the following call, also when every event read was hidden from the caller.
   */
  "events.read": {
    req: { after?: number; project?: string; max?: number; waitMs?: number };
    res: { events: { seq: number; event: EventBase & Record<string, unknown> }[]; next: number };
  };
};

/** Another role's request as its caller sent it, for `access.check`. */
export interface PassedRequest {
  subject: string;
  args: unknown;
  auth?: SignedAuth;
}

export interface UserView {
  name: string;
  pubkey: string;
  admin: boolean;
  service: boolean;
  created: number;
}

export interface GroupView {
  name: string;
  members: string[];
  updated: number;
}

/** A validated request with its authenticated caller. */
export type SourceRequest = RequestMsg<SourceApi> & { caller: Principal };

interface SourceEventBase extends EventBase {
  user: string;
}

export interface SourceCommittedEvent extends SourceEventBase {
  type: "source.committed";
  package: string;
  rev: number;
  srcmd5: string;
  /** Files in the new revision. */
  files: number;
  /** The commit created the package. */
  created: boolean;
}
export interface ProjectMetaChangedEvent extends SourceEventBase {
  type: "project.meta-changed";
  /** Repositories (with archs) after the change. */
  repositories: { name: string; archs: string[] }[];
  /** Repositories before it (empty for a new project), so schedulers know what went. */
  previous: { name: string; archs: string[] }[];
  created: boolean;
}
export interface ProjectConfigChangedEvent extends SourceEventBase {
  type: "project.config-changed";
  rev: number;
}
export interface PackageMetaChangedEvent extends SourceEventBase {
  type: "package.meta-changed";
  package: string;
  created: boolean;
}
export interface PackageDeletedEvent extends SourceEventBase {
  type: "package.deleted";
  package: string;
  /** Why, as the deleter said (`kiln rdelete -m`). */
  comment: string;
}
export interface ProjectDeletedEvent extends SourceEventBase {
  type: "project.deleted";
  /** The repositories the project had, so schedulers drop their states. */
  repositories: { name: string; archs: string[] }[];
  /** The packages it held. */
  packages: string[];
  /** Why, as the deleter said (`kiln rdelete -m`). */
  comment: string;
}

/** A service run was asked for (by a commit or `kiln service run`); the package is blocked until it ends. */
export interface ServiceRequestedEvent extends SourceEventBase {
  type: "service.requested";
  package: string;
  rev: number;
  runId: number;
  kind: ServiceRunKind;
}
/** A service run ended: its files are the package's expanded sources, or its error makes it broken. */
export interface ServiceFinishedEvent extends SourceEventBase {
  type: "service.finished";
  package: string;
  rev: number;
  runId: number;
  kind: ServiceRunKind;
  ok: boolean;
  error?: string;
}

export type SourceEvent =
  | SourceCommittedEvent
  | ServiceRequestedEvent
  | ServiceFinishedEvent
  | ProjectMetaChangedEvent
  | ProjectConfigChangedEvent
  | PackageMetaChangedEvent
  | PackageDeletedEvent
  | ProjectDeletedEvent;
