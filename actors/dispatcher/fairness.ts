/**
 * Fair ordering of queued build jobs (obs-backend.md §6.3, OBS `bs_dispatch`), for kiln's
 * in-memory queue.
 *
 * Every (project, repository, arch) — a *prpa* — has a load: the busy time of its finished jobs,
 * decaying with a half-life of 4 hours (a 4-hour build adds 0.5), plus the number of its jobs
 * building now. A prpa's load is averaged with the total of its project on that arch, so a
 * project with many repositories does not get a share per repository. The least loaded prpa,
 * scaled by its dispatch priority, is served first; jobs that only rebuild for dependency
 * changes weigh three times the load plus a staleness term. Each assignment adds one to the
 * prpa's load, so the order moves on to the next prpa: round-robin by load.
 *
 * Times are milliseconds since the epoch.
 */
import { NotFoundError, InvalidInputError } from "../../transport/index.ts";
import type { Constraints } from "./constraints.ts";

/** Why a job was created (scheduler reasons, OBS wording); other reasons are accepted as well. */
export type JobReason =
  | "new build"
  | "source change"
  | "meta change"
  | "rebuild counter sync"
  | "retrying bad build"
  | (string & Record<never, never>);

/** A job as the fair queue orders it. */
export interface QueuedJob {
  jobId: string;
  project: string;
  repository: string;
  arch: string;
  package: string;
  /** Packages of the repository waiting for this one: more first. */
  needed: number;
  reason: JobReason;
  /** When the job became ready. */
  readyTime: number;
  /** Time of the source revision it builds. */
  revTime?: number;
  /** Effective constraints, for the caller's eligibility test. */
  constraints?: Constraints;
}

/** A (project, repository, arch). */
export interface PrpaRef {
  readonly project: string;
  readonly repository: string;
  readonly arch: string;
}

/** Half-life of a prpa's busy-time load. */
export const LOAD_HALF_LIFE_MS = 4 * 3600 * 1000;
/** Loads whose last finished job is older than this are forgotten (OBS: 50 days). */
export const LOAD_FORGET_MS = 50 * 86400 * 1000;
/** Load multiplier of a prpa's jobs that are not source changes. */
export const NO_SOURCE_CHANGE_FACTOR = 3;
/** A "source change" job counts as one only this long after its revision. */
export const SOURCE_CHANGE_WINDOW_MS = 24 * 3600 * 1000;

const DECAY_PER_MS = Math.log(0.5) / LOAD_HALF_LIFE_MS;

/** A decaying busy-time load: `value` as of time `at` (the end of the latest finished job). */
export interface BusyLoad {
  readonly at: number;
  readonly value: number;
}

/** The load of a prpa that never built. */
export const NO_LOAD: BusyLoad = Object.freeze({ at: 0, value: 0 });

/**
 * Adds a finished job's busy time to a load: `1 - 2^(-duration / 4h)` (a 4-hour job adds 0.5,
 * no job adds more than 1), decayed from its end. Spans that end before they start are ignored.
 */
export function addFinishedJob(load: BusyLoad, span: { start: number; end: number }): BusyLoad {
  if (!(span.end > span.start)) return load;
  const busy = 1 - Math.exp(DECAY_PER_MS * (span.end - span.start));
  if (load.at < span.end) {
    return { at: span.end, value: load.value * Math.exp(DECAY_PER_MS * (span.end - load.at)) + busy };
  }
  // A job reported late (it ended before the latest one): its share has decayed since.
  return { at: load.at, value: load.value + busy * Math.exp(DECAY_PER_MS * (load.at - span.end)) };
}

/** A load's value at `now`. */
export function decayedLoad(load: BusyLoad, now: number): number {
  return now > load.at ? load.value * Math.exp(DECAY_PER_MS * (now - load.at)) : load.value;
}

/** A prpa's load averaged with its project-arch total (which includes it), as OBS does. */
export function effectiveLoad(own: number, projectArchTotal: number): number {
  return projectArchTotal > 0 ? (own + projectArchTotal) / 2 : own;
}

/** The load multiplier of a dispatch priority adjustment: +10 counts as ten times less loaded. */
export function priorityScale(adjust: number): number {
  const a = Math.min(10000, Math.max(-10000, adjust));
  return Math.exp((-a * Math.log(10)) / 10);
}

/**
 * Whether a job counts as a source change: a new package, or a source change within a day of
 * its revision (a link target's change makes old revisions rebuild; those count as dependency
 * changes).
 */
export function isSourceChange(job: Pick<QueuedJob, "reason" | "readyTime" | "revTime">): boolean {
  if (job.reason === "new build") return true;
  if (job.reason !== "source change") return false;
  return job.revTime === undefined || job.readyTime - job.revTime < SOURCE_CHANGE_WINDOW_MS;
}

/**
 * OBS's staleness term for prpas without source changes: grows the longer the last build lies
 * after the project's newest source change, and fades as the prpa stays idle.
 */
export function staleness(lastBuild: number, newestSourceChange: number, now: number): number {
  const lb = Math.min(lastBuild, now) / 1000;
  const v = (lb - newestSourceChange / 1000) / ((now / 1000 - lb) * 40 + 5_000_000);
  return v > 0 ? v : 0;
}

/** A dispatch priority rule (OBS `_dispatchprios`); the last rule that matches a prpa wins. */
export interface DispatchPrio {
  readonly project?: string;
  readonly repository?: string;
  readonly arch?: string;
  /** Positive: served as if `10^(adjust/10)` times less loaded. */
  readonly adjust: number;
}

/** The priority adjustment of a prpa: the last matching rule's, or 0. */
export function resolveAdjust(prios: readonly DispatchPrio[], prpa: PrpaRef): number {
  let adjust = 0;
  for (const p of prios) {
    if (p.project !== undefined && p.project !== prpa.project) continue;
    if (p.repository !== undefined && p.repository !== prpa.repository) continue;
    if (p.arch !== undefined && p.arch !== prpa.arch) continue;
    adjust = p.adjust;
  }
  return adjust;
}

/** A prpa's load as persisted between dispatcher runs. */
export interface LoadRecord extends PrpaRef {
  readonly at: number;
  readonly value: number;
}

// ---------------------------------------------------------------------------------------------
// A sorted list in chunks: O(log n + chunk) insert and delete, in-order iteration.

const CHUNK = 512;

class SortedChunks<T> {
  readonly chunks: T[][] = [];
  size = 0;
  constructor(private readonly cmp: (a: T, b: T) => number) {}

  /** Index of the first chunk whose last element is ≥ x (the last chunk if none). */
  private chunkFor(x: T): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = this.chunks[mid]!;
      if (this.cmp(c[c.length - 1]!, x) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private static position<T>(arr: readonly T[], x: T, cmp: (a: T, b: T) => number): number {
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(arr[mid]!, x) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(x: T): void {
    this.size++;
    if (this.chunks.length === 0) {
      this.chunks.push([x]);
      return;
    }
    const i = this.chunkFor(x);
    const c = this.chunks[i]!;
    c.splice(SortedChunks.position(c, x, this.cmp), 0, x);
    if (c.length > 2 * CHUNK) this.chunks.splice(i + 1, 0, c.splice(CHUNK));
  }

  delete(x: T): boolean {
    if (this.chunks.length === 0) return false;
    const i = this.chunkFor(x);
    const c = this.chunks[i]!;
    const p = SortedChunks.position(c, x, this.cmp);
    if (p >= c.length || c[p] !== x) return false;
    c.splice(p, 1);
    if (c.length === 0) this.chunks.splice(i, 1);
    this.size--;
    return true;
  }

  first(): T | undefined {
    return this.chunks[0]?.[0];
  }
}

// ---------------------------------------------------------------------------------------------
// The queue

interface Slot<J> {
  readonly job: J;
  readonly seq: number;
  readonly entry: Entry<J>;
}

/** The source-change jobs of a prpa, or the others; each is ordered in its arch's heap by score. */
interface Entry<J> {
  readonly id: number;
  readonly prpa: PrpaState<J>;
  readonly kind: "src" | "dep";
  readonly jobs: SortedChunks<Slot<J>>;
  /** Ordering key in the arch heap. */
  score: number;
  headReady: number;
  headSeq: number;
  /** Position in the arch heap, -1 while the entry has no jobs. */
  heapIndex: number;
}

interface PrpaState<J> {
  readonly key: string;
  readonly ref: PrpaRef;
  readonly pra: PraState<J>;
  load: BusyLoad;
  building: number;
  scale: number;
  /** Decayed load at the last refresh plus jobs building. */
  own: number;
  readonly src: Entry<J>;
  readonly dep: Entry<J>;
}

interface PraState<J> {
  readonly prpas: Set<PrpaState<J>>;
  total: number;
}

/** Options of {@link FairQueue}. */
export interface FairQueueOptions {
  /** Current time (default `Date.now`). */
  clock?: () => number;
  /** Loads are re-decayed and all prpas re-sorted at most this often (default 1000 ms). */
  refreshMs?: number;
  prios?: readonly DispatchPrio[];
  /** Loads persisted by {@link FairQueue.snapshotLoads}. */
  loads?: readonly LoadRecord[];
}

/** Options of {@link FairQueue.next}. */
export interface NextOptions {
  /** Only consider jobs of these archs (the asking worker's), which skips the others cheaply. */
  archs?: Iterable<string>;
  /** Give up after testing this many jobs (default: no limit). */
  maxScan?: number;
}

const compareSlots = <J extends QueuedJob>(a: Slot<J>, b: Slot<J>): number =>
  b.job.needed - a.job.needed || a.job.readyTime - b.job.readyTime || a.seq - b.seq;

// At equal score (a prpa without load) its source changes still go first.
const compareEntries = <J>(a: Entry<J>, b: Entry<J>): number =>
  a.score - b.score ||
  (a.kind === b.kind ? 0 : a.kind === "src" ? -1 : 1) ||
  a.headReady - b.headReady ||
  a.headSeq - b.headSeq ||
  a.id - b.id;

/**
 * The non-empty entries of one arch as a binary min-heap with positions stored in the entries:
 * score changes re-sift in O(log n), and {@link FairQueue.next} walks it in order lazily.
 */
class EntryHeap<J> {
  readonly items: Entry<J>[] = [];

  push(e: Entry<J>): void {
    e.heapIndex = this.items.length;
    this.items.push(e);
    this.up(e.heapIndex);
  }

  remove(e: Entry<J>): void {
    const i = e.heapIndex;
    const last = this.items.pop()!;
    e.heapIndex = -1;
    if (last === e) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.update(last);
  }

  /** Restores the heap after `e`'s key changed. */
  update(e: Entry<J>): void {
    if (!this.up(e.heapIndex)) this.down(e.heapIndex);
  }

  /** Rebuilds the heap after every key changed. */
  heapify(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private up(i: number): boolean {
    const items = this.items;
    const e = items[i]!;
    let moved = false;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (compareEntries(e, p) >= 0) break;
      items[i] = p;
      p.heapIndex = i;
      i = parent;
      moved = true;
    }
    items[i] = e;
    e.heapIndex = i;
    return moved;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const e = items[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && compareEntries(items[child + 1]!, items[child]!) < 0) child++;
      const c = items[child]!;
      if (compareEntries(c, e) >= 0) break;
      items[i] = c;
      c.heapIndex = i;
      i = child;
    }
    items[i] = e;
    e.heapIndex = i;
  }
}

/**
 * Yields the entries of several heaps in order without changing them: a small frontier heap of
 * candidate positions (a root, then the children of each yielded node). Costs O(k log k) for k
 * entries looked at, which is what {@link FairQueue.next} needs when the first entries fit.
 */
class OrderedWalk<J> {
  private readonly frontier: Entry<J>[] = [];
  private readonly owner: EntryHeap<J>[] = [];

  constructor(heaps: readonly EntryHeap<J>[]) {
    for (const h of heaps) if (h.items.length > 0) this.offer(h, 0);
  }

  next(): Entry<J> | undefined {
    const f = this.frontier;
    if (f.length === 0) return undefined;
    const top = f[0]!;
    const heap = this.owner[0]!;
    const lastE = f.pop()!;
    const lastH = this.owner.pop()!;
    if (f.length > 0) {
      f[0] = lastE;
      this.owner[0] = lastH;
      this.siftDown(0);
    }
    const i = top.heapIndex;
    if (2 * i + 1 < heap.items.length) this.offer(heap, 2 * i + 1);
    if (2 * i + 2 < heap.items.length) this.offer(heap, 2 * i + 2);
    return top;
  }

  private offer(h: EntryHeap<J>, index: number): void {
    const f = this.frontier;
    const e = h.items[index]!;
    let i = f.length;
    f.push(e);
    this.owner.push(h);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compareEntries(e, f[parent]!) >= 0) break;
      f[i] = f[parent]!;
      this.owner[i] = this.owner[parent]!;
      i = parent;
    }
    f[i] = e;
    this.owner[i] = h;
  }

  private siftDown(i: number): void {
    const f = this.frontier;
    const n = f.length;
    const e = f[i]!;
    const h = this.owner[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && compareEntries(f[child + 1]!, f[child]!) < 0) child++;
      if (compareEntries(f[child]!, e) >= 0) break;
      f[i] = f[child]!;
      this.owner[i] = this.owner[child]!;
      i = child;
    }
    f[i] = e;
    this.owner[i] = h;
  }
}

function prpaKey(p: PrpaRef): string {
  return `${p.project}\u0000${p.repository}\u0000${p.arch}`;
}

/**
 * The dispatcher's job queue in fair order. The dispatcher {@link add}s jobs, asks
 * {@link next} for the best job an idle worker can take, and reports
 * {@link recordAssignment} / {@link recordFinished}; the order adapts to each.
 *
 * Order: prpa entries by `scale × load` ascending (source-change jobs at the prpa's load, the
 * other jobs at `3 × load + staleness`), ties to source changes, then to the older head job;
 * within an entry, `needed` descending, then `readyTime` ascending, then arrival.
 */
export class FairQueue<J extends QueuedJob = QueuedJob> {
  private readonly clock: () => number;
  private readonly refreshMs: number;
  private prios: readonly DispatchPrio[];
  private readonly slots = new Map<string, Slot<J>>();
  private readonly prpas = new Map<string, PrpaState<J>>();
  private readonly pras = new Map<string, PraState<J>>();
  private readonly heaps = new Map<string, EntryHeap<J>>();
  /** Newest ready time of a source-change job, per project. */
  private readonly newestSourceChange = new Map<string, number>();
  /** Newest revision time seen, per project: the fallback for the above. */
  private readonly newestRevTime = new Map<string, number>();
  private seq = 0;
  private entryIds = 0;
  /** Loads are evaluated at this time between refreshes. */
  private now: number;

  constructor(opts: FairQueueOptions = {}) {
    this.clock = opts.clock ?? Date.now;
    this.refreshMs = opts.refreshMs ?? 1000;
    this.prios = opts.prios ?? [];
    this.now = this.clock();
    for (const r of opts.loads ?? []) {
      if (!Number.isFinite(r.at) || !Number.isFinite(r.value) || r.value < 0) {
        throw new InvalidInputError(`load record of ${r.project}/${r.repository}/${r.arch} is malformed`);
      }
      this.prpa(r).load = { at: r.at, value: r.value };
    }
    this.refresh(this.now);
  }

  /** Number of queued jobs. */
  get size(): number {
    return this.slots.size;
  }

  has(jobId: string): boolean {
    return this.slots.has(jobId);
  }

  get(jobId: string): J | undefined {
    return this.slots.get(jobId)?.job;
  }

  /** Queues a job; a queued job with the same id is replaced. */
  add(job: J): void {
    if (!Number.isFinite(job.needed) || !Number.isFinite(job.readyTime)) {
      throw new InvalidInputError(`job ${job.jobId}: needed and readyTime must be numbers`);
    }
    this.maybeRefresh();
    if (this.slots.has(job.jobId)) this.remove(job.jobId);
    const p = this.prpa(job);
    const src = isSourceChange(job);
    const entry = src ? p.src : p.dep;
    const slot: Slot<J> = { job, seq: this.seq++, entry };
    this.slots.set(job.jobId, slot);
    if (src && job.readyTime > (this.newestSourceChange.get(job.project) ?? -Infinity)) {
      this.newestSourceChange.set(job.project, job.readyTime);
    }
    if (job.revTime !== undefined && job.revTime > (this.newestRevTime.get(job.project) ?? -Infinity)) {
      this.newestRevTime.set(job.project, job.revTime);
    }
    const head = entry.jobs.first();
    entry.jobs.insert(slot);
    if (entry.heapIndex < 0) {
      this.setScore(entry);
      this.heap(job.arch).push(entry);
    } else if (entry.jobs.first() !== head) this.rescore(entry);
  }

  /** Removes a queued job (superseded or aborted); returns it, or undefined if not queued. */
  remove(jobId: string): J | undefined {
    const slot = this.slots.get(jobId);
    if (slot === undefined) return undefined;
    this.maybeRefresh();
    this.unqueue(slot);
    return slot.job;
  }

  /**
   * The best queued job for which `eligible` holds (arch, constraints, badhost — the caller
   * decides), without removing it; call {@link recordAssignment} once the worker took it.
   */
  next(eligible: (job: J) => boolean, opts: NextOptions = {}): J | undefined {
    this.maybeRefresh();
    const heaps: EntryHeap<J>[] = [];
    if (opts.archs === undefined) heaps.push(...this.heaps.values());
    else {
      for (const a of new Set(opts.archs)) {
        const h = this.heaps.get(a);
        if (h !== undefined) heaps.push(h);
      }
    }
    let budget = opts.maxScan ?? Infinity;
    const walk = new OrderedWalk(heaps);
    for (let entry = walk.next(); entry !== undefined; entry = walk.next()) {
      for (const chunk of entry.jobs.chunks) {
        for (const slot of chunk) {
          if (budget-- <= 0) return undefined;
          if (eligible(slot.job)) return slot.job;
        }
      }
    }
    return undefined;
  }

  /** The job went to a worker: it leaves the queue and counts as building for its prpa. */
  recordAssignment(jobId: string): J {
    const slot = this.slots.get(jobId);
    if (slot === undefined) throw new NotFoundError(`job ${jobId} is not queued`);
    this.maybeRefresh();
    this.unqueue(slot);
    const p = slot.entry.prpa;
    p.building++;
    this.updateOwn(p);
    return slot.job;
  }

  /**
   * A job of `prpa` stopped building. With `span` (it ran from start to end) its busy time is
   * added to the load; without (it was requeued or killed), only the building count drops.
   */
  recordFinished(prpa: PrpaRef, span?: { start: number; end: number }): void {
    this.maybeRefresh();
    const p = this.prpa(prpa);
    if (p.building > 0) p.building--;
    if (span !== undefined) p.load = addFinishedJob(p.load, span);
    this.updateOwn(p);
  }

  /** Sets how many jobs of `prpa` are building (after a restart, from the job records). */
  setBuilding(prpa: PrpaRef, count: number): void {
    if (!Number.isSafeInteger(count) || count < 0) throw new InvalidInputError(`building count ${count} is invalid`);
    this.maybeRefresh();
    const p = this.prpa(prpa);
    p.building = count;
    this.updateOwn(p);
  }

  /** Replaces the dispatch priority rules. */
  setPrios(prios: readonly DispatchPrio[]): void {
    for (const p of prios) {
      if (!Number.isFinite(p.adjust))
        throw new InvalidInputError(`dispatch priority adjust '${p.adjust}' is not a number`);
    }
    this.prios = prios;
    this.refresh(this.clock());
  }

  /** A prpa's load as ordering uses it: decayed busy time plus building jobs, averaged with its project-arch. */
  currentLoad(prpa: PrpaRef): number {
    this.maybeRefresh();
    const p = this.prpas.get(prpaKey(prpa));
    return p === undefined ? 0 : effectiveLoad(p.own, p.pra.total);
  }

  /** The loads to persist (prpas whose load has not been forgotten). */
  snapshotLoads(): LoadRecord[] {
    const out: LoadRecord[] = [];
    for (const p of this.prpas.values()) if (p.load.at > 0) out.push({ ...p.ref, at: p.load.at, value: p.load.value });
    return out;
  }

  /** Queued jobs in dispatch order (for `kiln jobs` and tests); O(n log n). */
  ordered(arch?: string): J[] {
    this.maybeRefresh();
    const heaps = arch === undefined ? [...this.heaps.values()] : [this.heaps.get(arch) ?? new EntryHeap<J>()];
    const entries = heaps.flatMap((h) => h.items).sort(compareEntries);
    return entries.flatMap((e) => e.jobs.chunks.flatMap((c) => c.map((s) => s.job)));
  }

  // -------------------------------------------------------------------------------------------

  private prpa(ref: PrpaRef): PrpaState<J> {
    const key = prpaKey(ref);
    const existing = this.prpas.get(key);
    if (existing !== undefined) return existing;
    const praKey = `${ref.project}\u0000${ref.arch}`;
    let pra = this.pras.get(praKey);
    if (pra === undefined) {
      pra = { prpas: new Set(), total: 0 };
      this.pras.set(praKey, pra);
    }
    const entry = (kind: "src" | "dep", prpa: PrpaState<J>): Entry<J> => ({
      id: this.entryIds++,
      prpa,
      kind,
      jobs: new SortedChunks<Slot<J>>(compareSlots),
      score: 0,
      headReady: 0,
      headSeq: 0,
      heapIndex: -1,
    });
    const ps = {
      key,
      ref: { project: ref.project, repository: ref.repository, arch: ref.arch },
      pra,
      load: NO_LOAD,
      building: 0,
      scale: priorityScale(resolveAdjust(this.prios, ref)),
      own: 0,
    } as PrpaState<J>;
    // The entries point back at their prpa, so they are attached once it exists.
    (ps as { src: Entry<J> }).src = entry("src", ps);
    (ps as { dep: Entry<J> }).dep = entry("dep", ps);
    this.prpas.set(key, ps);
    pra.prpas.add(ps);
    return ps;
  }

  private unqueue(slot: Slot<J>): void {
    this.slots.delete(slot.job.jobId);
    const entry = slot.entry;
    const wasHead = entry.jobs.first() === slot;
    entry.jobs.delete(slot);
    if (entry.jobs.size === 0) this.heap(entry.prpa.ref.arch).remove(entry);
    else if (wasHead) this.rescore(entry);
  }

  /** Recomputes a prpa's own load after a change and re-sorts its project-arch's entries. */
  private updateOwn(p: PrpaState<J>): void {
    const own = decayedLoad(p.load, this.now) + p.building;
    p.pra.total += own - p.own;
    p.own = own;
    for (const q of p.pra.prpas) {
      this.rescore(q.src);
      this.rescore(q.dep);
    }
  }

  private setScore(e: Entry<J>): void {
    const p = e.prpa;
    const load = effectiveLoad(p.own, p.pra.total);
    // Jobs only caused by dependency changes wait behind other prpas' source changes (OBS).
    e.score = p.scale * (e.kind === "src" ? load : load * NO_SOURCE_CHANGE_FACTOR + this.stalenessOf(p));
    const head = e.jobs.first();
    e.headReady = head?.job.readyTime ?? 0;
    e.headSeq = head?.seq ?? 0;
  }

  private stalenessOf(p: PrpaState<J>): number {
    const lastBuild = p.building > 0 ? this.now : p.load.at;
    if (lastBuild <= 0) return 0;
    const newest = this.newestSourceChange.get(p.ref.project) ?? this.newestRevTime.get(p.ref.project) ?? lastBuild;
    return staleness(lastBuild, newest, this.now);
  }

  /** Re-sifts an entry in its arch heap after its prpa's load or its head job changed. */
  private rescore(e: Entry<J>): void {
    if (e.heapIndex < 0) return;
    this.setScore(e);
    this.heap(e.prpa.ref.arch).update(e);
  }

  private heap(arch: string): EntryHeap<J> {
    let h = this.heaps.get(arch);
    if (h === undefined) {
      h = new EntryHeap<J>();
      this.heaps.set(arch, h);
    }
    return h;
  }

  private maybeRefresh(): void {
    const now = this.clock();
    if (now - this.now >= this.refreshMs || now < this.now) this.refresh(now);
  }

  /** Re-decays every load at `now`, recomputes project-arch totals and rebuilds every heap. */
  private refresh(now: number): void {
    this.now = now;
    const forgetBefore = now - LOAD_FORGET_MS;
    for (const [key, p] of this.prpas) {
      if (p.building === 0 && p.src.jobs.size === 0 && p.dep.jobs.size === 0 && p.load.at < forgetBefore) {
        this.prpas.delete(key);
        p.pra.prpas.delete(p);
        continue;
      }
      p.own = decayedLoad(p.load, now) + p.building;
      p.scale = priorityScale(resolveAdjust(this.prios, p.ref));
    }
    for (const [key, pra] of this.pras) {
      if (pra.prpas.size === 0) {
        this.pras.delete(key);
        continue;
      }
      let total = 0;
      for (const p of pra.prpas) total += p.own;
      pra.total = total;
    }
    for (const h of this.heaps.values()) {
      for (const e of h.items) this.setScore(e);
      h.heapify();
    }
  }
}
