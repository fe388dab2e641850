/**
 * actors/ — kiln's roles as nact actors, and the domain types that travel between them.
 *
 * ```ts
 * const ctx: RoleContext = { nc, rpc, system: start(), log, dataDir, nodeId, replicas: 1 };
 * const roles = [await startSourceRole(ctx), await startRepoRole(ctx), await startDispatcherRole(ctx)];
 * roles.push(await startSchedulerRole(ctx, { arch: "x86_64" }), await startWorker(ctx, { workerId: "w1" }));
 * ```
 */
export { startSourceRole } from "./source/source-role.ts";
export type { SourceRoleOptions } from "./source/source-role.ts";
export { DEFAULT_SOURCE_LIMITS } from "./source/source-state.ts";
export type { SourceLimits } from "./source/source-state.ts";
export { AccessNeed } from "./source/access.ts";
export { AccessGate } from "./source/access-gate.ts";
export { startRepoRole } from "./repo/repo-role.ts";
export type { RepoRoleOptions } from "./repo/repo-role.ts";
export { startDispatcherRole } from "./dispatcher/dispatcher.ts";
export type { DispatcherOptions } from "./dispatcher/dispatcher.ts";
export { startSchedulerRole } from "./scheduler/scheduler-role.ts";
export type { SchedulerOptions } from "./scheduler/scheduler-role.ts";
export { startWorker, hostArch, buildableArchs } from "./worker/worker-role.ts";
export type { WorkerOptions } from "./worker/worker-role.ts";
export { HookExit, HookStage, defaultHooks, parseHookSpec } from "./worker/hooks.ts";
export type { HookConfig } from "./worker/hooks.ts";
export { parseStatisticsTimes } from "./worker/statistics.ts";
export { DISPATCHER_WORKER_ID } from "./dispatcher/protocol.ts";
export { JOB_PAGE, listAllJobs } from "./dispatcher/job-pages.ts";
export { answerPings, collectPings, pingInfo, acquireLease, leaseKey, LEASE_TTL_MS } from "./common/runtime.ts";
export type { RoleContext, RunningRole, PingInfo, Lease } from "./common/runtime.ts";
export { PackageCode, RepoCode, JobCode, BuildResultCode, UNFINISHED_CODES } from "./common/model.ts";
export type {
  PackageResult,
  RepoResult,
  SourceFile,
  BinaryInfo,
  PoolBinary,
  BuildDep,
  BuildJob,
} from "./common/model.ts";
export type {
  SourceApi,
  SourceEvent,
  CommitEntry,
  Revision,
  PackageBuildInfo,
  BuildConfigView,
  UserView,
  GroupView,
  ServiceStatusView,
  ServiceRunRecord,
  ServiceExpansion,
  ServiceJob,
} from "./source/protocol.ts";
export type {
  RepoApi,
  RepoEvent,
  ResultView,
  StoredResult,
  StoredBinary,
  StoredImport,
  UploadedFile,
  BuildHistoryEntry,
  JobHistoryEntry,
} from "./repo/protocol.ts";
export { repoFileClient } from "./repo/files.ts";
export type { RepoFileTarget } from "./repo/files.ts";
export { startServiceRole } from "./service/service-role.ts";
export type { ServiceRoleOptions } from "./service/service-role.ts";
export { DEFAULT_SERVICES_DIR, DEFAULT_SERVICE_LIMITS, runServices } from "./service/runner.ts";
export type { ServicesOutcome, RunServicesOptions } from "./service/runner.ts";
export { ServiceMode, ServiceRunKind, parseServiceXml } from "./service/service-xml.ts";
export type { ServiceSpec, ServiceParam } from "./service/service-xml.ts";
export type { ServiceApi, RunView } from "./service/protocol.ts";
export { ServiceState } from "./source/protocol.ts";
export { startPublisherRole } from "./publisher/publisher-role.ts";
export type { PublisherOptions, RunningPublisher } from "./publisher/publisher-role.ts";
export { PublishOutcome } from "./publisher/protocol.ts";
export type { PublisherApi, PublisherEvent, PublishedRepo, RepoStateChangedEvent } from "./publisher/protocol.ts";
export type { DispatcherApi, WorkerView, JobView, WorkerRegistration } from "./dispatcher/protocol.ts";
export type { WorkerApi } from "./worker/protocol.ts";
export type { SchedulerApi, BuildReason, BuildInfoView, BuildDepInfoView } from "./scheduler/protocol.ts";
export { actorName } from "./common/actor-kit.ts";
