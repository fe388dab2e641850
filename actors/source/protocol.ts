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
}

/** The combined build configuration of a repository (configs along its path, base first). */
export interface BuildConfigView {
  project: string;
  repository: string;
  text: string;
  layers: { project: string; repository: string; text: string }[];
  /** Repository path expanded transitively, this repository first. */
  path: { project: string; repository: string }[];
}

type Where = { project: string };
type WherePkg = { project: string; package: string };

export type SourceApi = BlobApi & {
  "project.list": { req: Record<string, never>; res: { name: string; title: string }[] };
  "project.get-meta": { req: Where; res: { xml: string; meta: ProjectMeta } };
  "project.put-meta": { req: Where & { xml: string; comment?: string }; res: { xml: string; created: boolean } };
  "project.get-config": { req: Where & { rev?: number }; res: ConfigRevision };
  "project.put-config": { req: Where & { text: string; comment?: string }; res: { rev: number } };
  "project.delete": { req: Where & { force?: boolean; comment?: string }; res: null };
  "project.build-config": { req: Where & { repository: string }; res: BuildConfigView };
  /** All packages of a project evaluated for one repository/arch (a scheduler's full fetch). */
  "project.buildinfo": { req: Where & { repository: string; arch: string }; res: PackageBuildInfo[] };
  "package.list": { req: Where; res: string[] };
  "package.get-meta": { req: WherePkg; res: { xml: string; meta: PackageMeta } };
  "package.put-meta": { req: WherePkg & { xml: string; comment?: string }; res: { xml: string; created: boolean } };
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
}
export interface ProjectDeletedEvent extends SourceEventBase {
  type: "project.deleted";
  /** The repositories the project had, so schedulers drop their states. */
  repositories: { name: string; archs: string[] }[];
  /** The packages it held. */
  packages: string[];
}

export type SourceEvent =
  | SourceCommittedEvent
  | ProjectMetaChangedEvent
  | ProjectConfigChangedEvent
  | PackageMetaChangedEvent
  | PackageDeletedEvent
  | ProjectDeletedEvent;
