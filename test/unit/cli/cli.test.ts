import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UNFINISHED_CODES } from "../../../actors/index.ts";
import { WAIT_CODES, renderResults } from "../../../cli/commands/build.ts";
import { count } from "../../../cli/output.ts";
import { DEFAULT_NATS_URL, EXIT, adminIdentityPath, exitCodeOf, loadSettings } from "../../../cli/index.ts";
import {
  ConflictError,
  InvalidInputError,
  NoRespondersError,
  NotFoundError,
  UnauthenticatedError,
} from "../../../transport/index.ts";

describe("cli/config", () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), "kiln-cli-test-"));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it("should use defaults when nothing is set", () => {
    const s = loadSettings({}, {}, home);
    assert.equal(s.natsUrl, DEFAULT_NATS_URL);
    assert.equal(s.natsUrlSet, false);
    assert.equal(s.dataDir, path.join(home, ".local", "share", "kiln"));
    assert.equal(s.logLevel, "info");
    assert.equal(s.identityFile, undefined);
  });

  it("should merge defaults, config file, environment and flags in that order", () => {
    mkdirSync(path.join(home, ".config", "kiln"), { recursive: true });
    writeFileSync(
      path.join(home, ".config", "kiln", "config.json"),
      JSON.stringify({ nats: "nats://file:1", data: "/file", logLevel: "debug" })
    );
    const fromFile = loadSettings({}, {}, home);
    assert.deepEqual([fromFile.natsUrl, fromFile.dataDir, fromFile.logLevel], ["nats://file:1", "/file", "debug"]);
    // A server named only by the config file is one to join, not one to start.
    assert.equal(fromFile.natsUrlSet, true);
    const fromEnv = loadSettings({}, { KILN_NATS_URL: "nats://env:2", KILN_DATA: "/env" }, home);
    assert.deepEqual([fromEnv.natsUrl, fromEnv.dataDir, fromEnv.logLevel], ["nats://env:2", "/env", "debug"]);
    const fromFlags = loadSettings({ nats: "nats://flag:3", data: "/flag" }, { KILN_NATS_URL: "nats://env:2" }, home);
    assert.deepEqual([fromFlags.natsUrl, fromFlags.dataDir], ["nats://flag:3", "/flag"]);
  });

  it("should default to the admin identity of the data directory when it exists", () => {
    const data = path.join(home, "d");
    mkdirSync(data);
    assert.equal(loadSettings({ data }, {}, home).identityFile, undefined);
    writeFileSync(adminIdentityPath(data), "x");
    assert.equal(loadSettings({ data }, {}, home).identityFile, adminIdentityPath(data));
    assert.equal(loadSettings({ data, identity: "/other" }, {}, home).identityFile, "/other");
  });

  it("should refuse a bad config file with a clear error", () => {
    const f = path.join(home, "c.json");
    writeFileSync(f, "{ not json");
    assert.throws(() => loadSettings({ config: f }, {}, home), /not readable JSON/);
    writeFileSync(f, JSON.stringify({ nats: 5 }));
    assert.throws(() => loadSettings({ config: f }, {}, home), /'nats' must be a string/);
    writeFileSync(f, JSON.stringify({ colour: "blue" }));
    assert.throws(() => loadSettings({ config: f }, {}, home), /unknown setting 'colour'/);
    assert.throws(() => loadSettings({ config: path.join(home, "missing.json") }, {}, home), /does not exist/);
  });
});

describe("cli/main", () => {
  it("should map error codes to stable exit codes", () => {
    assert.equal(exitCodeOf(new InvalidInputError("x")), EXIT.usage);
    assert.equal(exitCodeOf(new NotFoundError("x")), EXIT.notFound);
    assert.equal(exitCodeOf(new UnauthenticatedError("x")), EXIT.forbidden);
    assert.equal(exitCodeOf(new ConflictError("x")), EXIT.conflict);
    assert.equal(exitCodeOf(new NoRespondersError("x")), EXIT.unavailable);
    assert.equal(exitCodeOf(new Error("x")), EXIT.failure);
  });

  it("should wait in results -w on exactly the codes the actors call unfinished", () => {
    assert.deepEqual([...WAIT_CODES].sort(), [...UNFINISHED_CODES].sort());
  });

  it("should count with the noun's plural only when it is not one", () => {
    assert.deepEqual(
      [0, 1, 2].map((n) => count(n, "file")),
      ["0 files", "1 file", "2 files"]
    );
  });

  it("should show a repository's own state in results when it has details or no packages", () => {
    const text = renderResults([
      {
        project: "p",
        repository: "broken-repo",
        arch: "x86_64",
        code: "broken",
        details: "unresolvable preinstalls: nothing provides bash",
        dirty: false,
        packages: [
          { project: "p", repository: "broken-repo", arch: "x86_64", package: "a", code: "broken", details: "" },
        ],
      },
      { project: "p", repository: "empty", arch: "x86_64", code: "finished", dirty: true, packages: [] },
      {
        project: "p",
        repository: "std",
        arch: "x86_64",
        code: "finished",
        dirty: false,
        packages: [{ project: "p", repository: "std", arch: "x86_64", package: "b", code: "succeeded", details: "" }],
      },
    ]);
    const lines = text
      .trimEnd()
      .split("\n")
      .map((l) => l.trim().split(/\s{2,}/));
    assert.deepEqual(lines.slice(1), [
      ["broken-repo", "x86_64", "(broken)", "unresolvable preinstalls: nothing provides bash"],
      ["broken-repo", "x86_64", "a", "broken"],
      ["empty", "x86_64", "(finished, outdated)"],
      ["std", "x86_64", "b", "succeeded"],
    ]);
  });
});
