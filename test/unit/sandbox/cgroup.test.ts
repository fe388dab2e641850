import assert from "node:assert/strict";
import { cgroupDir, parseCgroupMounts, parseProcCgroup } from "../../../sandbox/cgroup.ts";

// Lines as found on a hybrid host (v1 controllers plus the unified tree) and on a v2-only host.
const HYBRID_MOUNTINFO = [
  "22 21 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755",
  "23 22 0:21 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw",
  "25 22 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
  "26 22 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
  "27 22 0:25 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids",
  "28 22 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
  "30 1 8:1 / / rw,relatime - ext4 /dev/vda rw",
].join("\n");

describe("sandbox/cgroup", () => {
  it("should find the v2 tree and each v1 controller in mountinfo", () => {
    const m = parseCgroupMounts(HYBRID_MOUNTINFO);
    assert.deepEqual(m.v2, { mountPoint: "/sys/fs/cgroup/unified", root: "/" });
    assert.deepEqual(m.v1.get("memory"), { mountPoint: "/sys/fs/cgroup/memory", root: "/" });
    assert.deepEqual(m.v1.get("pids"), { mountPoint: "/sys/fs/cgroup/pids", root: "/" });
    assert.deepEqual(m.v1.get("cpuacct"), { mountPoint: "/sys/fs/cgroup/cpu,cpuacct", root: "/" });
    assert.equal(m.v1.has("name=systemd"), false);
    assert.equal(m.v1.has("xattr"), true);
  });

  it("should read a v2-only host and unescape mount points", () => {
    const m = parseCgroupMounts("35 24 0:30 /docker/abc /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw,nsdelegate\n");
    assert.deepEqual(m.v2, { mountPoint: "/sys/fs/cgroup x", root: "/docker/abc" });
    assert.equal(m.v1.size, 0);
  });

  it("should parse /proc/self/cgroup for both versions", () => {
    const p = parseProcCgroup(
      "12:pids:/user.slice\n4:memory:/process_api/b88\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/init.scope\n"
    );
    assert.equal(p.v2, "/init.scope");
    assert.equal(p.v1.get("memory"), "/process_api/b88");
    assert.equal(p.v1.get("pids"), "/user.slice");
    assert.equal(p.v1.get("cpuacct"), "/");
    assert.equal(p.v1.has("name=systemd"), false);
  });

  it("should place a cgroup path under its mount, allowing for mounts of a sub-tree", () => {
    assert.equal(cgroupDir({ mountPoint: "/sys/fs/cgroup/memory", root: "/" }, "/a/b"), "/sys/fs/cgroup/memory/a/b");
    assert.equal(cgroupDir({ mountPoint: "/sys/fs/cgroup", root: "/docker/abc" }, "/docker/abc/x"), "/sys/fs/cgroup/x");
    // With a cgroup namespace the path is already relative to the mount's root.
    assert.equal(cgroupDir({ mountPoint: "/sys/fs/cgroup", root: "/docker/abc" }, "/x"), "/sys/fs/cgroup/x");
    assert.equal(cgroupDir({ mountPoint: "/sys/fs/cgroup", root: "/" }, "/"), "/sys/fs/cgroup");
  });
});
