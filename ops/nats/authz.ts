/**
 * NATS authorization for kiln: which subjects each kind of client may publish and subscribe to.
 * `ops/nats/kiln-authz.conf` is this, rendered for an example set of users (regenerate with
 * `node --import tsx ops/nats/authz.ts > ops/nats/kiln-authz.conf`); a unit test keeps the two
 * in step, and an integration test runs kiln's source role and clients against it.
 *
 * Kinds of client (see ops/nats/README.md):
 * - roles (`source`, `service`, `repo`, `dispatcher`, `scheduler`, `publisher`): their own request subjects,
 *   the requests they make, events, JetStream (event stream, consumers, the lease bucket);
 * - workers: their own request subject, the dispatcher, repo uploads, source downloads, live logs;
 * - operators (trusted people on the service hosts): every request, raw events and live logs;
 * - users (everyone else): only requests that the answering role checks against kiln's access
 *   rules, and their own replies. No raw events (`kiln events` asks the source role, which
 *   leaves out what the user may not see), no live logs, no JetStream.
 *
 * Every client receives replies under its own inbox prefix (`_INBOX_<user>.`; kiln derives it
 * from the user in the NATS URL), so no client can read another's replies.
 */
import { pathToFileURL } from "node:url";
import { encodeToken, inboxPrefixOf, toConf, type ConfObject } from "../../transport/index.ts";

export const ClientKind = {
  Source: "source",
  Service: "service",
  Repo: "repo",
  Dispatcher: "dispatcher",
  Scheduler: "scheduler",
  Publisher: "publisher",
  Worker: "worker",
  Operator: "operator",
  User: "user",
} as const;
export type ClientKind = (typeof ClientKind)[keyof typeof ClientKind];

export interface NatsUser {
  user: string;
  password: string;
  kind: ClientKind;
  /** For workers: the worker id (`kiln worker --id`), whose request subject it serves. */
  workerId?: string;
}

const SYS = ["kiln.sys.ping"];
// JetStream for roles: the event stream and its consumers, and the lease bucket.
const JETSTREAM = [
  "$JS.API.INFO",
  "$JS.API.STREAM.INFO.KILN_EVENTS",
  "$JS.API.STREAM.CREATE.KILN_EVENTS",
  "$JS.API.CONSUMER.>",
  "$JS.ACK.KILN_EVENTS.>",
  "$JS.FC.>",
  "$JS.API.STREAM.INFO.KV_kiln-leases",
  "$JS.API.STREAM.CREATE.KV_kiln-leases",
  "$JS.API.STREAM.MSG.GET.KV_kiln-leases",
  "$JS.API.DIRECT.GET.KV_kiln-leases.>",
  "$KV.kiln-leases.>",
  "kiln.evt.>",
];

/** Requests whose answering role checks the caller (source role rules, `access.check`). */
const CHECKED_REQUESTS = [
  "kiln.rpc.source.>",
  "kiln.rpc.repo.binaries.list",
  "kiln.rpc.repo.result.get",
  "kiln.rpc.repo.result.list",
  "kiln.rpc.repo.result.wipe",
  "kiln.rpc.repo.pool.get",
  "kiln.rpc.repo.pool.page",
  "kiln.rpc.repo.pool.rebuild",
  "kiln.rpc.repo.history.build",
  "kiln.rpc.repo.history.jobs",
  "kiln.rpc.repo.publish.project",
  "kiln.rpc.repo.publish.select",
  // Files of results, checked per package (binarydownload). Reads of repo blobs by hash alone
  // (blob.stat, blob.read) are for roles and workers: a hash says nothing about who may read it.
  "kiln.rpc.repo.file.stat",
  "kiln.rpc.repo.file.read",
  "kiln.rpc.sched.*.results.get",
  "kiln.rpc.sched.*.reason.get",
  "kiln.rpc.sched.*.buildinfo.get",
  "kiln.rpc.sched.*.builddepinfo.get",
  "kiln.rpc.sched.*.rebuild.request",
  // `kiln jobs`, `kiln workers`, `kiln abort` and `kiln log` (which asks for the package's job
  // first); the dispatcher checks each caller. Not job.submit, job.discard nor the workers' verbs.
  "kiln.rpc.dispatcher.job.list",
  "kiln.rpc.dispatcher.job.get",
  "kiln.rpc.dispatcher.worker.list",
  "kiln.rpc.dispatcher.job.abort",
  // `kiln log -f` of a running build, checked by the worker.
  "kiln.rpc.worker.*.log.read",
  "kiln.rpc.publisher.publish.status",
  "kiln.rpc.publisher.publish.now",
];

/** The permissions of one user. */
export function permissionsOf(u: NatsUser): ConfObject {
  const inbox = `${inboxPrefixOf(u.user)}.>`;
  const perms = (pub: string[], sub: string[]): ConfObject => ({
    publish: { allow: pub },
    subscribe: { allow: [...sub, inbox] },
    // Responders answer on the caller's inbox without a publish permission for it.
    allow_responses: true,
  });
  switch (u.kind) {
    case "source":
      return perms([...JETSTREAM], ["kiln.rpc.source.>", ...SYS]);
    case "service":
      return perms(["kiln.rpc.source.>", ...JETSTREAM], ["kiln.rpc.service.>", ...SYS]);
    case "repo":
      return perms(["kiln.rpc.source.>", "kiln.rpc.dispatcher.>", ...JETSTREAM], ["kiln.rpc.repo.>", ...SYS]);
    case "dispatcher":
      return perms(
        ["kiln.rpc.worker.>", "kiln.rpc.repo.>", "kiln.rpc.source.>", ...JETSTREAM],
        ["kiln.rpc.dispatcher.>", ...SYS]
      );
    case "scheduler":
      return perms(
        ["kiln.rpc.source.>", "kiln.rpc.repo.>", "kiln.rpc.dispatcher.>", ...JETSTREAM],
        ["kiln.rpc.sched.>", ...SYS]
      );
    case "publisher":
      return perms(["kiln.rpc.source.>", "kiln.rpc.repo.>", ...JETSTREAM], ["kiln.rpc.publisher.>", ...SYS]);
    case "worker": {
      if (!u.workerId) throw new Error(`worker user ${u.user} needs a workerId`);
      return perms(
        // access.check: a worker asks the source role who may read a running build's log.
        [
          "kiln.rpc.dispatcher.>",
          "kiln.rpc.repo.>",
          "kiln.rpc.source.blob.>",
          "kiln.rpc.source.access.check",
          "kiln.log.>",
        ],
        [`kiln.rpc.worker.${encodeToken(u.workerId)}.>`, ...SYS]
      );
    }
    case "operator":
      return perms(["kiln.rpc.>", ...SYS], ["kiln.evt.>", "kiln.log.>"]);
    case "user":
      return perms([...CHECKED_REQUESTS, ...SYS], []);
    default: {
      const never: never = u.kind;
      throw new Error(`unknown client kind ${String(never)}`);
    }
  }
}

/** The `authorization` block for these users. */
export function kilnAuthorization(users: NatsUser[]): ConfObject {
  return {
    authorization: {
      users: users.map((u) => ({ user: u.user, password: u.password, permissions: permissionsOf(u) })),
    },
  };
}

/** The example users of ops/nats/kiln-authz.conf (replace the passwords). */
export const EXAMPLE_USERS: NatsUser[] = [
  { user: "source", password: "change-me-source", kind: "source" },
  { user: "service", password: "change-me-service", kind: "service" },
  { user: "repo", password: "change-me-repo", kind: "repo" },
  { user: "dispatcher", password: "change-me-dispatcher", kind: "dispatcher" },
  { user: "scheduler", password: "change-me-scheduler", kind: "scheduler" },
  { user: "publisher", password: "change-me-publisher", kind: "publisher" },
  { user: "worker-build1", password: "change-me-build1", kind: "worker", workerId: "build1:1" },
  { user: "ops", password: "change-me-ops", kind: "operator" },
  { user: "alice", password: "change-me-alice", kind: "user" },
];

/** The example config file's text. */
export function exampleConf(): string {
  return (
    "# kiln: NATS authorization, one user per client (generated by ops/nats/authz.ts; see README.md).\n" +
    "# Include it from the server config: `include kiln-authz.conf`. Replace every password.\n" +
    toConf(kilnAuthorization(EXAMPLE_USERS))
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.stdout.write(exampleConf());
