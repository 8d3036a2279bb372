"""The warm path's choices for the host it runs on, and what the service
costs the host: the pool follows the load (WARM_POOL_SIZE=0), huge pages
and the prefault are decided at start (auto) or forced, and /api/stats
reports every process's memory. Each checked from the host's /proc.

Runs as root (scripts/test-e2e.sh) and as an unprivileged user
(scripts/test-unprivileged.sh).
"""
import json
import os
import threading
import time

import pytest

from conftest import PRIVILEGED, pyexec, wait_for
from test_serve import serving
from test_warm import (alive, assert_ok, blocked_signals, children, descendants, execute, start, warm_stats,
                       wait_pool_full)


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start)


def zygote_log(srv):
    """The "zygote started" line of the service's JSON log."""
    for line in srv.log_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("message") == "zygote started":
            return doc
    raise AssertionError("no 'zygote started' line: " + srv.log_text()[-2000:])


def ready_programs(zygote):
    """The sandboxes waiting in the pool, counted from the host: the
    zygote's children (each a sandbox's init) with no run going on."""
    return len(children(zygote))


def sleepers(srv, n, seconds):
    """n runs at once, each sleeping `seconds`; returns the started threads."""
    def one(i):
        assert_ok(execute(srv, f"import time\ntime.sleep({seconds})\nprint({i})"), f"{i}\n")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def test_pool_follows_the_load_and_lets_the_surplus_go(serve):
    """With WARM_POOL_SIZE=0 the idle pool holds 2 sandboxes, not
    MAX_CONCURRENT_EXECUTIONS + 1; five runs at once raise it to six (one
    more than the peak) and it refills to that; once the load has stayed
    lower for WARM_POOL_SHRINK_AFTER it lets the surplus go: from the host,
    the zygote's children go back to 2, and no process of theirs is left."""
    srv = serve(env={"MAX_CONCURRENT_EXECUTIONS": 6, "WARM_POOL_SHRINK_AFTER": 3})
    w = wait_pool_full(srv, 2)
    z = w["zygotePid"]
    assert w["poolTarget"] == 2 and ready_programs(z) == 2, w
    before = set(descendants(z))
    for t in sleepers(srv, 5, 1.5):
        t.join(60)
    w = warm_stats(srv)
    assert w["poolTarget"] == 6, w
    # The surplus goes once the peak is older than the window; refilled to
    # 6 meanwhile or not, the pool ends at 2, from the host too.
    w = wait_pool_full(srv, 2, timeout=20)
    assert w["poolTarget"] == 2 and w["letGo"] >= 1, w
    assert ready_programs(z) == 2
    left = [p for p in before if alive(p) and p not in descendants(z)]
    assert left == [], f"processes of sandboxes let go still alive: {left}"
    # The pool serves as before.
    assert_ok(execute(srv, "print('after')"), "after\n")


def test_fixed_pool_size_is_kept(serve):
    """WARM_POOL_SIZE fixes the pool: idle, it holds that many, and a load
    that needs fewer lets none go."""
    srv = serve(env={"WARM_POOL_SIZE": 4, "WARM_POOL_SHRINK_AFTER": 1})
    w = wait_pool_full(srv, 4)
    assert w["poolTarget"] == 4 and ready_programs(w["zygotePid"]) == 4, w
    assert_ok(execute(srv, "print(1)"), "1\n")
    time.sleep(2)
    w = wait_pool_full(srv, 4)
    assert w["letGo"] == 0 and ready_programs(w["zygotePid"]) == 4, w


def test_host_choices_are_measured_and_reported(serve):
    """Huge pages default to auto: the cost of a copy-on-write fault is
    measured at start and decides; /api/stats and the start-up log say
    which and why, and the prefault is only done while a CPU is idle."""
    srv = serve()
    w = warm_stats(srv)
    hp = w["hugePages"]
    assert hp["cowFaultUs"] > 0, hp
    assert hp["on"] == (hp["cowFaultUs"] >= 8), hp
    assert hp["why"].startswith("auto: a copy-on-write fault costs"), hp
    assert w["prefault"] == "idle", w
    if not hp["on"]:
        assert w["zygoteHugePages"] == 0, w
    log = zygote_log(srv)
    assert log["hugePages"] == hp["on"] and log["hugePagesWhy"] == hp["why"], log
    assert log["prefault"] == "idle" and log["poolFollowsLoad"] is True, log


@pytest.mark.parametrize("value,on,prefault", [("true", True, "always"), ("false", False, "off")])
def test_host_choices_can_be_forced(serve, value, on, prefault):
    """ZYGOTE_HUGE_PAGES and ZYGOTE_PREFAULT set to true or false override
    the measurement; runs are unchanged."""
    srv = serve(env={"ZYGOTE_HUGE_PAGES": value, "ZYGOTE_PREFAULT": value, "WARM_POOL_SIZE": 1})
    w = wait_pool_full(srv, 1, timeout=20)
    assert w["hugePages"]["on"] is on and w["hugePages"]["why"] == f"ZYGOTE_HUGE_PAGES={value}", w
    assert w["prefault"] == prefault, w
    if not on:
        assert w["zygoteHugePages"] == 0, w
    assert_ok(execute(srv, "print(6 * 7)"), "42\n")


def test_bad_choice_is_refused(tmp_path):
    """A value other than auto, true or false stops start-up, naming the key."""
    p = pyexec("serve", "--print-config", env={**os.environ, "ZYGOTE_HUGE_PAGES": "sometimes"})
    assert p.returncode != 0
    assert ("ZYGOTE_HUGE_PAGES (environment variable ZYGOTE_HUGE_PAGES) must be auto, true or false, "
            "got 'sometimes'") in p.stderr.decode()


def host_memory(server_pid):
    """From the host: every process of the service, one per address space
    (a sandbox's holder shares its program's), and their PSS and hugetlb
    pages in bytes."""
    def rollup(pid):
        d = {"Pss": 0, "Hugetlb": 0}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Pss":
                    d["Pss"] += int(v.split()[0]) * 1024
                elif k in ("Private_Hugetlb", "Shared_Hugetlb"):
                    d["Hugetlb"] += int(v.split()[0]) * 1024
        return d
    procs = [server_pid] + [p for p in descendants(server_pid) if blocked_signals(p) == 0]
    total = {"Pss": 0, "Hugetlb": 0}
    for p in procs:
        for k, v in rollup(p).items():
            total[k] += v
    return len(procs), total


@pytest.mark.skipif(not PRIVILEGED, reason="reads every sandbox's smaps_rollup from the host (root)")
def test_memory_of_every_process_is_reported(serve):
    """/api/stats `memory` counts the service and every process it started
    (the zygote, each waiting sandbox's init and program; a holder shares
    its program's memory and counts once): the same processes and about the
    same PSS as the host's /proc says."""
    srv = serve(env={"WARM_POOL_SIZE": 3})
    wait_pool_full(srv, 3)
    m = srv.stats()["memory"]
    n, host = host_memory(srv.proc.pid)
    assert m["processes"] == n, (m, n)
    assert abs(m["pssBytes"] - host["Pss"]) < 0.2 * host["Pss"], (m, host)
    assert m["hugetlbBytes"] == host["Hugetlb"], (m, host)
    assert m["totalBytes"] >= m["pssBytes"] + max(m["hugetlbBytes"], m["hugetlbReservedBytes"]) - 1, m
    # The same in the Prometheus metrics (read a moment later).
    assert srv.sample("pyexec_processes") == n
    assert srv.sample("pyexec_memory_pss_bytes") > 0


def test_memory_says_what_it_could_not_read(serve):
    """Every process of the service is either counted in `memory` or named
    in `unreadable`: as root none is unreadable; unprivileged, the
    sandboxes' programs (not dumpable, their memory not of the service's
    user namespace) and their holders are, and the rest are counted."""
    srv = serve(env={"WARM_POOL_SIZE": 2})
    z = wait_pool_full(srv, 2)["zygotePid"]
    m = srv.stats()["memory"]
    everyone = 1 + len(descendants(srv.proc.pid))
    if PRIVILEGED:
        holders = len([p for p in descendants(z) if blocked_signals(p) != 0])
        assert m["unreadable"] == 0 and m["processes"] == everyone - holders, (m, everyone, holders)
    else:
        assert m["unreadable"] >= 2, m  # at least the two programs
        assert m["processes"] + m["unreadable"] == everyone, (m, everyone)
        assert m["processes"] >= 2, m  # the server and the zygote at least
