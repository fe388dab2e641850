/**
 * The publisher's requests (`kiln.rpc.publisher.<noun>.<verb>`), its events, and the event it
 * follows to learn that a repository/arch is finished.
 */
import type { EventBase } from "../../transport/index.ts";
import type { RequestMsg } from "../common/actor-kit.ts";
import type { RepoCode } from "../common/model.ts";
import type { PublishBinary } from "../repo/protocol.ts";

/** A binary chosen for a published repository. */
export interface SelectedBinary extends PublishBinary {
  package: string;
  /** Where it lies in the published tree: `<rpm arch>/<file>` (`src/` for source packages). */
  path: string;
}

/** What one arch contributes to its repository, fixed when that arch last finished. */
export interface PublishedArch {
  project: string;
  repository: string;
  arch: string;
  time: number;
  binaries: SelectedBinary[];
  /** Binary names more than one package offered; the first in package order won. */
  conflicts: { key: string; winner: string; losers: string[] }[];
}

/** The published state of a repository. */
export interface PublishedRepo {
  project: string;
  repository: string;
  /** Increases with every new tree; the tree of version N lives beside the served link. */
  version: number;
  /** sha256 over the published paths and contents: equal digests, equal trees. */
  digest: string;
  time: number;
  binaries: number;
  /** Archs whose contribution is in the tree. */
  archs: string[];
}

/** What a publish run did. */
export const PublishOutcome = {
  /** A new tree is served. */
  Published: "published",
  /** The content equals the served tree: nothing was written. */
  Unchanged: "unchanged",
  /** Nothing is publishable and nothing was published before. */
  Unpublished: "unpublished",
  /** Locked, hidden or unknown project: nothing done. */
  Skipped: "skipped",
} as const;
export type PublishOutcome = (typeof PublishOutcome)[keyof typeof PublishOutcome];

export type PublisherApi = {
  /**
   * Publishes a repository now, taking every arch's current results (not only finished archs):
   * `kiln admin publish`.
   */
  "publish.now": {
    req: { project: string; repository: string };
    res: { outcome: PublishOutcome; version?: number; binaries?: number; path?: string };
  };
  /** Published repositories of a project. */
  "publish.status": { req: { project: string }; res: (PublishedRepo & { path: string })[] };
};

export type PublisherRequest = RequestMsg<PublisherApi>;

/** A new tree of a repository is served. */
export interface RepoPublishedEvent extends EventBase {
  type: "repo.published";
  repository: string;
  version: number;
  digest: string;
  binaries: number;
  archs: string[];
}

export type PublisherEvent = RepoPublishedEvent;

/**
 * A scheduler's repository/arch changed its code (`building` → `finished`, …). The scheduler
 * publishes it; the publisher publishes a repository when an arch of it is `finished`.
 */
export interface RepoStateChangedEvent extends EventBase {
  type: "repo.state-changed";
  repository: string;
  arch: string;
  code: RepoCode;
}
