#!/usr/bin/env python3
"""CPU per run by process and by kind of work, from a system-wide perf profile.

Finds where a warm run's CPU goes (docs/benchmarks.md). Steps, with the service under load (wrk -c8, as bench/warm.sh):

    perf record -a -g -e cpu-clock -o p.data -- sleep 6     # 4000 samples/s per CPU
    perf script -i p.data -F comm,pid,ip,sym > p.txt
    bench/perf-categories.py p.txt RUNS                     # RUNS: requests in those 6 s

Samples are grouped by the process name (comm) and by the first matching
kernel function family in the call chain (fork's page-table copy, exit's
teardown, copy-on-write faults, the prefault's madvise, namespaces, ...);
the rest by system call, or as user time. A warm program and its init have
the same name; to tell them apart, a throw-away build can rename the program
(prctl(PR_SET_NAME, "pyexec-prog") before warm_main in supervise.c's
run_program_warm). The runner's code is on anonymous huge pages in the
zygote's children, so perf cannot name its functions: resolve the sampled
addresses with addr2line -f -e build/pyexec-runner (it is not
position-independent).

A second table splits the samples whose innermost frame is the hypervisor's
paravirtual interface (pvm_* on this project's build machine: interrupts are
re-enabled through it, so a timer sample taken while they were off lands
there) by the first ordinary function above it: context switches, TLB
shootdowns, page faults, the BPF JIT's text patching (each seccomp filter),
idle. On a paravirtualized 2-core Xeon that was about a quarter of a run's
CPU (docs/benchmarks.md).
"""
import collections
import re
import sys

RULES = [
    ("fork dup_mmap", ["dup_mmap"]),
    ("exit_mmap", ["exit_mmap"]),
    ("madvise populate", ["madvise_vma_behavior", "do_madvise", "__x64_sys_madvise"]),
    ("execve", ["__x64_sys_execve", "__x64_sys_execveat"]),
    ("cow fault", ["do_wp_page"]),
    ("other fault", ["asm_exc_page_fault"]),
    ("netns", ["copy_net_ns", "cleanup_net", "ops_exit_list", "setup_net"]),
    ("cgroup mk/rm", ["cgroup_mkdir", "cgroup_rmdir", "css_killed_work_fn", "css_free_rwork_fn",
                      "css_release_work_fn"]),
    ("mount", ["__x64_sys_mount", "__x64_sys_umount", "__x64_sys_pivot_root", "__x64_sys_fsmount",
               "__x64_sys_move_mount", "__x64_sys_mount_setattr", "__x64_sys_open_tree", "__x64_sys_fsconfig",
               "cleanup_mnt", "put_mnt_ns"]),
    ("ns other", ["__x64_sys_unshare", "copy_namespaces", "__x64_sys_setns", "free_nsproxy"]),
    ("clone other", ["__x64_sys_clone", "__x64_sys_clone3", "kernel_clone"]),
    ("exit other", ["do_exit"]),
]


PARAVIRT = [
    ("context switch", ["finish_task_switch", "finish_task_switch.isra.0"]),
    ("TLB shootdown", ["smp_call_function_many_cond", "flush_tlb_mm_range", "x2apic_send_IPI",
                       "native_flush_tlb_multi"]),
    ("idle", ["default_idle", "do_idle"]),
    ("page fault entry", ["exc_page_fault"]),
    ("BPF JIT text patching", ["__text_poke", "text_poke_copy", "text_poke_set"]),
    ("expedited RCU", ["synchronize_rcu_expedited", "kthread_queue_work"]),
]


def is_paravirt(frame):
    return frame.startswith(("pvm_", "__raw_callee", "pv_native_"))


def paravirt_cause(stack):
    """Why a sample ended in the paravirtual interface, or None if it did not."""
    if not stack or not is_paravirt(stack[0]):
        return None
    above = [f for f in stack if not is_paravirt(f)]
    for name, funcs in PARAVIRT:
        if any(f in funcs for f in above[:4]):
            return name
    return "other: " + (above[0] if above else "?")


def category(stack):
    for name, funcs in RULES:
        if any(f in stack for f in funcs):
            return name
    calls = [f for f in stack if f.startswith("__x64_sys_")]
    if calls:
        return "sys " + calls[0][len("__x64_sys_"):]
    if stack and stack[0].startswith(("pvm_", "__raw_callee")):
        return "kernel pvm"
    return "user/other"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: perf-categories.py PERF_SCRIPT_OUTPUT RUNS")
    runs = float(sys.argv[2])
    per = collections.Counter()
    paravirt = collections.Counter()
    head, stack = None, []

    def flush():
        if head:
            per[(head.split()[0][:14], category(stack))] += 1
            cause = paravirt_cause(stack)
            if cause:
                paravirt[cause] += 1

    for line in open(sys.argv[1], errors="replace"):
        if not line.strip():
            flush()
            head, stack = None, []
        elif line[0] not in "\t ":
            head = line
        else:
            parts = line.split()
            if len(parts) >= 2:
                stack.append(re.sub(r"\+0x.*", "", parts[1]))
    flush()
    ms = 1000 / 4000 / runs  # cpu-clock samples at 4000 Hz
    by_comm = collections.Counter()
    for (comm, _), n in per.items():
        by_comm[comm] += n
    print(f"total {sum(per.values()) * ms:.2f} ms per run")
    for comm, n in by_comm.most_common(8):
        print(f"{n * ms:6.2f} {comm}")
        for (c, cat), m in per.most_common():
            if c == comm and m * ms >= 0.08:
                print(f"       {m * ms:6.2f} {cat}")
    if paravirt:
        total = sum(paravirt.values())
        print(f"in the paravirtual interface: {total * ms:.2f} ms per run, by cause")
        for cause, n in paravirt.most_common(10):
            print(f"{n * ms:6.2f} {cause}")


if __name__ == "__main__":
    main()
