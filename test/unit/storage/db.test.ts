import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Outbox, RoleStore, keys } from "../../../storage/index.ts";

const log = pino({ level: "silent" });

describe("storage/db", () => {
  let dir: string;
  let store: RoleStore;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-db-"));
    store = RoleStore.open({ path: path.join(dir, "nested", "db"), log });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should commit every write of a transaction and return its value", async () => {
    const r = await store.transact(() => {
      void store.db.put(keys.project("a"), { title: "A" });
      void store.db.put(keys.package("a", "p"), { name: "p" });
      // Writes are visible inside the transaction at once.
      return store.get<{ title: string }>(keys.project("a"))?.title;
    });
    assert.equal(r, "A");
    assert.deepEqual(store.get(keys.package("a", "p")), { name: "p" });
  });

  it("should roll back every write of a transaction that throws, and only that one", async () => {
    await store.transact(() => void store.db.put(keys.project("kept"), 0));
    // Queued in the same event-loop turn: they share lmdb-js's batch.
    const ok = store.transact(() => void store.db.put(keys.project("ok"), 1));
    const failing = store.transact(() => {
      void store.db.put(keys.project("half"), 2);
      void store.db.put(keys.project("kept"), 99);
      void store.db.remove(keys.project("ok"));
      throw new Error("invariant broken");
    });
    const after = store.transact(() => void store.db.put(keys.project("after"), 3));
    await assert.rejects(failing, /invariant broken/);
    await Promise.all([ok, after]);
    assert.equal(store.get(keys.project("half")), undefined);
    assert.equal(store.get(keys.project("kept")), 0);
    assert.equal(store.get(keys.project("ok")), 1);
    assert.equal(store.get(keys.project("after")), 3);
  });

  it("should hand out increasing sequence numbers, also several in one transaction", async () => {
    const seqs = await store.transact(() => [store.nextSeq("x"), store.nextSeq("x"), store.nextSeq("y")]);
    assert.deepEqual(seqs, [1, 2, 1]);
    const more = await Promise.all([
      store.transact(() => store.nextSeq("x")),
      store.transact(() => store.nextSeq("x")),
    ]);
    assert.deepEqual(more, [3, 4]);
  });

  it("should keep every event an Outbox records in one transaction", async () => {
    const sent: number[] = [];
    const outbox = new Outbox<{ n: number }>(store, async (e) => void sent.push(e.n), log);
    await store.transact(() => {
      for (let n = 1; n <= 5; n++) outbox.add({ n });
    });
    await store.transact(() => outbox.add({ n: 6 }));
    assert.equal(outbox.pending(), 6);
    await outbox.flush();
    assert.deepEqual(sent, [1, 2, 3, 4, 5, 6]);
    assert.equal(outbox.pending(), 0);
  });

  it("should survive reopening and close twice without error", async () => {
    await store.transact(() => void store.db.put(keys.meta("schema"), 3));
    await store.close();
    await store.close();
    store = RoleStore.open({ path: path.join(dir, "nested", "db"), log });
    assert.equal(store.get(keys.meta("schema")), 3);
    assert.equal(
      store.getOr(keys.meta("missing"), () => "fallback"),
      "fallback"
    );
    assert.equal(
      store.getOr(keys.meta("schema"), () => 0),
      3
    );
  });
});
