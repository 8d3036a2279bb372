"""End-to-end tests of the bounds on a warm sandbox's hugetlb pages.

The warm path keeps the zygote's writable memory on 2 MiB hugetlb pages
(zygote-heap.c) and init copies them into each program. A program's
glibc fork() moves them back to ordinary pages first; a raw clone() does
not, and every page its children then write needs another page of the
host's pool. These tests check from the host that:

- each run's hugetlb cgroup allows exactly its copy of the zygote's pages:
  raw clone() children writing over the heap take none from the pool (they,
  or the program, get SIGBUS and the run says why), and other sandboxes keep
  being built warm;
- a run's peak memory (peakKb) counts its huge pages;
- two root services on one host each reserve their own pages: stopping one
  takes none that the other's sandboxes need, and each gives back what it
  added;
- where no hugetlb cgroup can be made (the unprivileged path), the zygote
  keeps its memory on ordinary pages and the log says why.

Other services may run on the host meanwhile and reserve huge pages of
their own: the tests compare what belongs to the services they start (their
cgroups, counters and logs), not the pool's totals.
"""
import json
import os
import platform
import threading
import time

import pytest

from conftest import PRIVILEGED, pyexec
from test_warm import (HUGE_PAGE_KB, OWN_HUGETLB, assert_ok, brief, children, execute, meminfo, nr_hugepages,
                       program_and_holder, serve, stop_ok, wait_for, wait_pool_full, warm_stats)  # noqa: F401

HUGE = HUGE_PAGE_KB * 1024

# Four raw clone(SIGCHLD) children (not glibc's fork: no atfork handler
# moves the huge pages back), each writing all over the interpreter's
# objects, most of them the zygote's (reference counts: every module's
# globals, every interned string), then holding on for a while. The parent
# reports how each child ended: "bus" for SIGBUS.
RAW_CLONE_CHILDREN = r'''
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)

def write_over_the_heap():
    seen = []
    for m in list(sys.modules.values()):
        for k, v in list(getattr(m, "__dict__", {}).items()):
            seen.append((k, v))
    junk = [str(i) * 3 for i in range(100000)]
    return len(seen) + len(junk)

kids = []
for _ in range(4):
    pid = libc.syscall(56, 17, 0, 0, 0, 0)  # clone(SIGCHLD): x86-64
    if pid == 0:
        write_over_the_heap()
        time.sleep(1.5)
        os._exit(0)
    kids.append(pid)
ends = []
for pid in kids:
    st = os.waitpid(pid, 0)[1]
    ends.append("bus" if os.WIFSIGNALED(st) and os.WTERMSIG(st) == 7 else f"status {st}")
print(*ends)
'''


def cgroup_mounts():
    """{controller or "cgroup2": (mount root, mount point)} from mountinfo."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            fields, sfields = pre.split(), post.split()
            if sfields[0] == "cgroup2":
                found.setdefault("cgroup2", (fields[3], fields[4]))
            elif sfields[0] == "cgroup":
                for c in sfields[2].split(","):
                    found.setdefault(c, (fields[3], fields[4]))
    return found


def cgroup_dir(pid, controller):
    """The directory of pid's cgroup holding controller's files (v1 hierarchy
    of its own, else the cgroup2 one), or None."""
    mounts = cgroup_mounts()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for hier, ctrls, path in lines:
        where = None
        if controller in ctrls.split(",") and controller in mounts:
            where = mounts[controller]
        elif hier == "0" and "cgroup2" in mounts:
            where = mounts["cgroup2"]
        if not where:
            continue
        root, target = where
        rel = path[len(root):] if root != "/" and path.startswith(root) else path
        d = target + rel
        probe = {"hugetlb": "hugetlb.2MB.", "memory": "memory."}[controller]
        if os.path.isdir(d) and any(n.startswith(probe) for n in os.listdir(d)):
            return d
    return None


def read_int(path):
    with open(path) as f:
        v = f.read().split()[0]
    return None if v == "max" else int(v)


def hugetlb_files(d):
    """(limit, usage) file names of a hugetlb cgroup directory: v2 or v1."""
    if os.path.exists(f"{d}/hugetlb.2MB.max"):
        return f"{d}/hugetlb.2MB.max", f"{d}/hugetlb.2MB.current"
    return f"{d}/hugetlb.2MB.limit_in_bytes", f"{d}/hugetlb.2MB.usage_in_bytes"


def memory_usage_file(d):
    return f"{d}/memory.current" if os.path.exists(f"{d}/memory.current") else f"{d}/memory.usage_in_bytes"


def ready_program(srv):
    """The ready sandbox's program (WARM_POOL_SIZE=1): the next run's."""
    w = wait_pool_full(srv, 1, timeout=20)
    (init,) = children(w["zygotePid"])
    prog, _ = program_and_holder(init)
    return w, prog


class Sampler:
    """Reads files every few milliseconds in a thread while a run goes on;
    keeps the largest value of each, and of their sum."""

    def __init__(self, paths):
        self.paths = paths
        self.max = [0] * len(paths)
        self.max_sum = 0
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            try:
                vals = [read_int(p) or 0 for p in self.paths]
            except OSError:
                time.sleep(0.005)  # torn down already
                continue
            self.samples += 1
            self.max = [max(a, b) for a, b in zip(self.max, vals)]
            self.max_sum = max(self.max_sum, sum(vals))
            time.sleep(0.005)

    def done(self):
        self.stop.set()
        self.thread.join(5)
        return self


def root_huge_server(serve, **env):
    if not PRIVILEGED:
        pytest.skip("reads the run's cgroups from the host: root only (the unprivileged path has no hugetlb pages)")
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "true", **env})
    w = wait_pool_full(srv, 1, timeout=20)
    assert w["zygoteHugePages"] > 0, "the zygote is not on huge pages: " + srv.log_text()[-3000:]
    return srv, w


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the program calls clone by its x86-64 number")
def test_raw_clone_children_take_no_page_from_the_pool(serve):
    """Each warm run may hold its copy of the zygote's huge pages and no
    more (its hugetlb cgroup, set before init copies them): four raw clone()
    children writing over the heap, three runs in a row, never take the run
    past that bound, seen from the host in the run's cgroup while it runs.
    The writers get SIGBUS (the children, or the program itself: then the
    run's verdict says why), and the pool is not drained: every sandbox
    after them is built warm, on huge pages, and none failed to build."""
    srv, w = root_huge_server(serve)
    pages = w["zygoteHugePages"]
    failures, built = w["failures"], w["sandboxes"]
    for attempt in range(3):
        _, prog = ready_program(srv)
        d = cgroup_dir(prog, "hugetlb")
        assert d, f"the run has no hugetlb cgroup: {open(f'/proc/{prog}/cgroup').read()}"
        limit, usage = hugetlb_files(d)
        assert read_int(limit) == pages * HUGE, (d, read_int(limit), pages)
        # Its copy, made by init and charged here (all of it but a page the
        # zygote wrote first, which then stayed the program's uncopied).
        assert pages * HUGE >= read_int(usage) >= (pages - 1) * HUGE, read_int(usage)
        s = Sampler([usage])
        try:
            res = execute(srv, RAW_CLONE_CHILDREN, policy="permissive")
        finally:
            s.done()
        assert s.samples > 0
        assert s.max[0] <= pages * HUGE, f"the run held {s.max[0] // HUGE} huge pages, bound {pages}"
        if res["status"] == "ok":
            # Each child wrote to a page it shared and was refused a copy.
            assert res["stdout"].split() == ["bus"] * 4, brief(res)
        else:
            # The program wrote one first: a clear verdict.
            assert res["status"] == "memory_limit" and res["signal"] == "SIGBUS", brief(res)
            assert "raw clone()" in res["message"] and "SIGBUS" in res["message"], brief(res)
    # The pool was not drained: the sandboxes built since are warm ones on
    # huge pages, and none failed.
    res = execute(srv, OWN_HUGETLB + "print(*own_hugetlb())\n", policy="permissive")
    assert_ok(res, f"{pages * HUGE_PAGE_KB} 0\n")
    wait_pool_full(srv, 1, timeout=20)
    w = warm_stats(srv)
    assert w["failures"] == failures, w
    assert w["sandboxes"] >= built + 4, w
    assert w["zygoteHugePages"] == pages


def test_peak_memory_counts_the_runs_huge_pages(serve):
    """peakKb is the run's memory cgroup's high-water mark plus its hugetlb
    cgroup's: seen from the host while the program sleeps, the two together
    never exceed what the result reports."""
    srv, w = root_huge_server(serve)
    _, prog = ready_program(srv)
    hd, md = cgroup_dir(prog, "hugetlb"), cgroup_dir(prog, "memory")
    assert hd and md, open(f"/proc/{prog}/cgroup").read()
    _, usage = hugetlb_files(hd)
    s = Sampler([memory_usage_file(md), usage])
    try:
        res = execute(srv, "import time\ntime.sleep(1.5)\nprint('done')\n", policy="permissive")
    finally:
        s.done()
    assert_ok(res, "done\n")
    assert w["zygoteHugePages"] * HUGE >= s.max[1] >= (w["zygoteHugePages"] - 1) * HUGE, s.max
    # 512 KiB of slack: usage and the peak are read at different times.
    assert res["memory"]["peakKb"] * 1024 >= s.max_sum - (512 << 10), (res["memory"], s.max, s.max_sum)
    assert res["memory"]["peakKb"] * 1024 > s.max[1], res["memory"]


def service_log(srv, message):
    return [e for e in srv.logs() if e.get("message") == message]


def other_services():
    """pids of `pyexec serve` processes on the host (other tests' services)."""
    found = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"pyexec") and argv[1] == b"serve":
            found.add(int(d))
    return found


def test_two_services_one_stops_the_other_keeps_its_pages(serve):
    """Services A and B as root on one host: each reserves the huge pages it
    needs itself, not counting the free pages of the other. A stops while B
    runs: A lowers vm.nr_hugepages by no more than the free pages it added,
    B's sandboxes keep being built warm on huge pages (no build fails), and
    each service gives back everything it added."""
    if not PRIVILEGED:
        pytest.skip("only root reserves huge pages (vm.nr_hugepages)")
    others = other_services()
    start_nr = nr_hugepages()
    a = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "true"})
    wa = wait_pool_full(a, 1, timeout=20)
    assert wa["zygoteHugePages"] > 0, a.log_text()[-3000:]
    b = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "true"})
    wb = wait_pool_full(b, 1, timeout=20)
    pages = wb["zygoteHugePages"]
    assert pages > 0, b.log_text()[-3000:]
    # B reserved all it needs, though A's free pages would have covered it.
    (rb,) = service_log(b, "reserved huge pages for the zygote's memory")
    assert rb["added"] == rb["wanted"] and rb["added"] >= pages * 4, rb

    # A run on B holds its sandbox's pages while A stops.
    box = {}
    t = threading.Thread(target=lambda: box.update(res=execute(b, OWN_HUGETLB + "import time\ntime.sleep(2)\n"
                                                                "print(*own_hugetlb())\n", policy="permissive")))
    t.start()
    try:
        time.sleep(0.5)
        stop_ok(a)
    finally:
        t.join(60)
    assert_ok(box["res"], f"{pages * HUGE_PAGE_KB} 0\n")
    gave_a = service_log(a, "gave back the huge pages this service reserved")
    assert gave_a and gave_a[0]["gaveBack"] == gave_a[0]["added"] > 0, a.log_text()[-2000:]

    # B keeps building sandboxes warm, each with its copy of the pages.
    failures = warm_stats(b)["failures"]
    for i in range(6):
        res = execute(b, OWN_HUGETLB + "print(*own_hugetlb())\n", policy="permissive")
        assert_ok(res, f"{pages * HUGE_PAGE_KB} 0\n")
        wait_pool_full(b, 1, timeout=20)
    assert warm_stats(b)["failures"] == failures, warm_stats(b)
    assert warm_stats(b)["zygoteHugePages"] == pages
    stop_ok(b)
    gave_b = service_log(b, "gave back the huge pages this service reserved")
    assert gave_b and gave_b[0]["gaveBack"] == gave_b[0]["added"] > 0, b.log_text()[-2000:]
    # With no other service on the host meanwhile, the pool is as it was.
    if not others and not other_services():
        assert nr_hugepages() == start_nr


def test_no_huge_pages_without_a_hugetlb_cgroup(serve):
    """Where no hugetlb cgroup can be made (an unprivileged service without a
    delegated one), nothing would bound a sandbox's huge pages: the zygote
    keeps its memory on ordinary pages even with a pool that has room, the
    log says why, and runs are warm as usual. As root, `pyexec check` names
    what bounds them."""
    if PRIVILEGED:
        p = pyexec("check", "--json")
        cg = json.loads(p.stdout)["cgroup"]
        if cg.get("hugetlb") is None:
            pytest.skip(f"this host has no hugetlb cgroup: {cg.get('hugetlbNote')}")
        assert "hugetlb.2MB" in cg["hugetlbBy"], cg
        return
    if meminfo()["HugePages_Free"] < 64:
        pytest.skip("no hugetlb pool with room: the zygote would stay on ordinary pages anyway")
    srv = serve(env={"WARM_POOL_SIZE": 1, "ZYGOTE_HUGE_PAGES": "true"})
    w = wait_pool_full(srv, 1, timeout=20)
    assert w["zygoteHugePages"] == 0, w
    assert "no hugetlb cgroup can bound each sandbox's huge pages" in srv.log_text(), srv.log_text()[-2000:]
    assert_ok(execute(srv, OWN_HUGETLB + "print(*own_hugetlb())\n", policy="permissive"), "0 0\n")
