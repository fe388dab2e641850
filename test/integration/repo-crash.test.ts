import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RepoBuiltEvent, RepoPoolChangedEvent } from "../../actors/repo/protocol.ts";
import { EVENT_STREAM, decode, ensureEventStream, parseSubject } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { RepoHarness } from "../helpers/repo-harness.ts";
import { buildTestRpms, type BuiltRpms } from "../helpers/repo-rpms.ts";
import { Child } from "../fixtures/transport/child.ts";

const P = "repo:crash";
const R = "standard";

describe("integration/repo role crash", function () {
  this.timeout(60_000);
  let h: RepoHarness;
  let dir: string;
  let rpms: BuiltRpms;
  const children: Child[] = [];

  const startRole = async (): Promise<Child> => {
    const c = Child.start("../repo-host.ts", ["--url", h.server.url, "--data", h.dataDir], "repo-host");
    children.push(c);
    await c.waitType("ready");
    return c;
  };

  /** Stores a build of crashy as a worker does; its jobId. */
  const storeCrashy = (): Promise<string> =>
    h.storeBuild({ project: P, repository: R, arch: "x86_64", package: "crashy", files: [rpms.rpms.get("crashy")!] });

  /** Events of the project as the stream holds them, in stream order. */
  const streamEvents = async (): Promise<{ type: string; id: string; jobId?: string }[]> => {
    const jsm = await h.nc.jetstreamManager();
    const info = await jsm.streams.info(EVENT_STREAM);
    const out: { type: string; id: string; jobId?: string }[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(EVENT_STREAM, { seq }).catch(() => undefined);
      if (!m) continue;
      const s = parseSubject(m.subject);
      if (s.kind === "event" && s.project === P) out.push(decode(m.data));
    }
    return out;
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-repo-crash-"));
    rpms = await buildTestRpms(dir, "noarch", [{ name: "crashy" }]);
    h = await RepoHarness.start({ repo: false });
    await h.putProject(P, `<repository name="${R}"><arch>x86_64</arch></repository>`);
  });

  after(async () => {
    for (const c of children) await c.kill();
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should publish the events of a result stored before a crash once the role is back", async () => {
    const first = await startRole();
    // Without the stream nothing can be published: the events stay in the role's outbox.
    await (await h.nc.jetstreamManager()).streams.delete(EVENT_STREAM);
    const jobId = await storeCrashy();
    const stored = await h.repo.call("result.get", { project: P, repository: R, arch: "x86_64", package: "crashy" });
    assert.equal(stored?.jobId, jobId);
    assert.equal(h.seen("repo.built", P).length, 0);
    await first.kill("SIGKILL");

    await startRole();
    const built = await check(() => h.seen<RepoBuiltEvent>("repo.built", P).find((e) => e.jobId === jobId), {
      name: "repo.built after restart",
    });
    const changed = await check(
      () => h.seen<RepoPoolChangedEvent>("repo.pool-changed", P).find((e) => e.added.some((b) => b.name === "crashy")),
      { name: "repo.pool-changed after restart" }
    );
    const inStream = await streamEvents();
    assert.deepEqual(
      inStream
        .filter((e) => e.id === built.id || e.id === changed.id)
        .map((e) => e.type)
        .sort(),
      ["repo.built", "repo.pool-changed"]
    );
    assert.equal(inStream.filter((e) => e.type === "repo.built" && e.jobId === jobId).length, 1);
  });

  it("should publish the events of a result stored during a stream outage once the stream is back, without a restart or another write", async () => {
    for (const c of children.splice(0)) await c.kill();
    await startRole();
    const jsm = await h.nc.jetstreamManager();
    await jsm.streams.delete(EVENT_STREAM);
    const jobId = await storeCrashy();
    assert.equal(
      (await h.repo.call("result.get", { project: P, repository: R, arch: "x86_64", package: "crashy" }))?.jobId,
      jobId
    );
    // The stream comes back; the role is neither restarted nor asked to write anything.
    await ensureEventStream(jsm);
    const inStream = await check(
      async () => {
        const events = await streamEvents();
        return events.some((e) => e.type === "repo.built" && e.jobId === jobId) ? events : undefined;
      },
      { name: "repo.built in the stream", timeoutMs: 20_000 }
    );
    assert.equal(inStream.filter((e) => e.type === "repo.built" && e.jobId === jobId).length, 1);
  });
});
