import assert from "node:assert/strict";
import {
  ANONYMOUS_PRINCIPAL,
  canDownloadBinaries,
  canReadSources,
  canSee,
  canWritePackage,
  canWriteProject,
  isMember,
  mayCreateProject,
  parentProjects,
  type AclMeta,
  type Principal,
} from "../../../actors/source/access.ts";
import type { FlagEntry } from "../../../actors/common/flags.ts";

const user = (name: string, o: Partial<Principal> = {}): Principal => ({
  user: name,
  admin: false,
  service: false,
  anonymous: false,
  groups: new Set(),
  ...o,
});
const admin = user("root", { admin: true });
const service = user("kiln-roles", { service: true });
const anon = ANONYMOUS_PRINCIPAL;

const meta = (o: Partial<AclMeta> & { flags?: Record<string, FlagEntry[]> } = {}): AclMeta => ({
  persons: [],
  groups: [],
  flags: {},
  ...o,
});
const disable = (o: Omit<FlagEntry, "state"> = {}): FlagEntry[] => [{ state: "disable", ...o }];

describe("actors/source/access", () => {
  const hidden = meta({
    persons: [
      { userid: "mia", role: "maintainer" },
      { userid: "rita", role: "reader" },
    ],
    groups: [{ groupid: "devs", role: "bugowner" }],
    flags: { access: disable() },
  });

  it("should hide an access-disabled project from everyone but members, admins and roles", () => {
    const table: [Principal, boolean][] = [
      [admin, true],
      [service, true],
      [user("mia"), true],
      [user("rita"), true],
      [user("gus", { groups: new Set(["devs"]) }), true],
      [user("otto"), false],
      [user("otto", { groups: new Set(["others"]) }), false],
      [anon, false],
    ];
    for (const [p, expected] of table) assert.equal(canSee(p, hidden), expected, p.user);
  });

  it("should count only project-wide access entries, as OBS does", () => {
    const perRepo = meta({ flags: { access: disable({ repository: "std" }) } });
    assert.equal(canSee(anon, perRepo), true);
    const reenabled = meta({ flags: { access: [...disable(), { state: "enable" }] } });
    assert.equal(canSee(anon, reenabled), false, "at equal specificity the disable wins");
  });

  it("should hide sources by sourceaccess, with the package's entry overriding the project's", () => {
    const prj = meta({ flags: { sourceaccess: disable() }, persons: [{ userid: "mia", role: "maintainer" }] });
    const pkgOpen = meta({ flags: { sourceaccess: [{ state: "enable" }] } });
    const pkgOwner = meta({ persons: [{ userid: "pam", role: "maintainer" }] });
    assert.equal(canReadSources(user("otto"), prj), false);
    assert.equal(canReadSources(anon, prj, pkgOpen), true);
    assert.equal(canReadSources(user("mia"), prj), true);
    assert.equal(canReadSources(user("pam"), prj, pkgOwner), true, "package members read their package");
    assert.equal(canReadSources(service, prj), true);
    assert.equal(canReadSources(user("otto"), hidden), false, "hidden project, hidden sources");
  });

  it("should evaluate binarydownload per repository and arch", () => {
    const prj = meta({ flags: { binarydownload: disable({ repository: "std", arch: "x86_64" }) } });
    assert.equal(canDownloadBinaries(anon, prj, undefined, "std", "x86_64"), false);
    assert.equal(canDownloadBinaries(anon, prj, undefined, "std", "aarch64"), true);
    assert.equal(canDownloadBinaries(anon, prj, undefined, "other", "x86_64"), true);
    const pkg = meta({ flags: { binarydownload: [{ state: "enable" }] } });
    assert.equal(canDownloadBinaries(anon, prj, pkg, "std", "x86_64"), true, "package entry overrides");
    assert.equal(canDownloadBinaries(admin, prj, undefined, "std", "x86_64"), true);
  });

  it("should let maintainers (in person or by group) change projects, and package maintainers their package", () => {
    const prj = meta({
      persons: [
        { userid: "mia", role: "maintainer" },
        { userid: "bob", role: "bugowner" },
      ],
      groups: [{ groupid: "core", role: "maintainer" }],
    });
    const pkg = meta({ persons: [{ userid: "pam", role: "maintainer" }] });
    assert.equal(canWriteProject(user("mia"), prj), true);
    assert.equal(canWriteProject(user("gus", { groups: new Set(["core"]) }), prj), true);
    assert.equal(canWriteProject(user("bob"), prj), false);
    assert.equal(canWriteProject(admin, prj), true);
    assert.equal(canWriteProject(service, prj), false);
    assert.equal(canWritePackage(user("pam"), prj, pkg), true);
    assert.equal(canWriteProject(user("pam"), prj), false);
    assert.equal(canWritePackage(user("pam"), prj, undefined), false);
    assert.equal(canWritePackage(anon, prj, pkg), false);
    assert.equal(isMember(user("bob"), prj), true);
  });

  it("should let admins, home owners and parent maintainers create projects", () => {
    const projects = new Map<string, AclMeta>([
      ["home:ann", meta({ persons: [{ userid: "ann", role: "maintainer" }] })],
      ["devel", meta({ persons: [{ userid: "dev", role: "maintainer" }] })],
    ]);
    const lookup = (p: string): AclMeta | undefined => projects.get(p);
    assert.deepEqual(parentProjects("a:b:c"), ["a:b", "a"]);
    assert.deepEqual(mayCreateProject(admin, "anything", lookup), { allowed: true });
    assert.deepEqual(mayCreateProject(user("zed"), "home:zed", lookup), { allowed: true });
    assert.deepEqual(mayCreateProject(user("ann"), "home:ann:sub:deeper", lookup), { allowed: true });
    assert.deepEqual(mayCreateProject(user("dev"), "devel:tools", lookup), { allowed: true });
    assert.deepEqual(mayCreateProject(user("zed"), "devel:tools", lookup), {
      allowed: false,
      needs: "an admin or a maintainer of 'devel'",
    });
    assert.deepEqual(mayCreateProject(user("zed"), "home:ann:x", lookup), {
      allowed: false,
      needs: "an admin or a maintainer of 'home:ann'",
    });
    assert.deepEqual(mayCreateProject(user("zed"), "toplevel", lookup), {
      allowed: false,
      needs: "an admin (or it must be 'home:zed')",
    });
    assert.equal(mayCreateProject(anon, "home:anonymous", lookup).allowed, false);
    assert.equal(mayCreateProject(service, "x", lookup).allowed, false);
  });
});
