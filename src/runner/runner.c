/* SPDX-License-Identifier: MIT */
/*
 * runner: see runner.h. This file is linked only into pyexec-runner.
 *
 * One file of about 1,400 lines: the audit hook, the import checks, the
 * static check and python3's start and exit steps share the policy's state
 * and CPython's private conventions (the frames the hook inspects, the
 * order of the exit steps), and each part is short; split, every part
 * would export what only the others use.
 *
 * How the policy is enforced
 * ==========================
 * One audit hook, added with PySys_AddAuditHook() before the interpreter
 * exists: Python code can neither remove nor replace it. It does nothing
 * until runner_run() activates the run's policy, right before the
 * program's first line, so the runner's own start-up imports freely.
 *
 * - Operations (starting processes, sockets, ctypes, ...) are refused by
 *   audit event, wherever they are raised from: reaching subprocess through
 *   sys.modules or a pickle still raises "subprocess.Popen".
 * - Writes (the "open" event with a writing mode, os.mkdir, os.rename, ...)
 *   are refused outside the work directory and /tmp.
 * - Imports the program requests are checked against the allowlist: the
 *   "import" event covers modules not loaded yet, and builtins.__import__ is
 *   replaced by a checking wrapper for those already in sys.modules (the
 *   zygote imports ZYGOTE_PREIMPORT ahead). Driving the import machinery
 *   directly raises no "import" event, so a library module's code about to
 *   run ("exec" of its <module> code) is checked too, and so are the two
 *   functions that create built-in and extension modules (_imp). A request comes from the program
 *   when the innermost Python frame outside the import machinery is the
 *   program's code: the standard library importing its own helpers is not
 *   the program's request. So that the program cannot pass its code off as
 *   the library's, compiling code under a library file name, creating code
 *   objects and unmarshalling code are refused to it.
 *
 * None of this is the security boundary (the kernel sandbox is): a program
 * that digs objects out of sys.modules or the garbage collector can reach
 * modules it could not import, and a library asked to import a name the
 * program chose (unittest's loader, say) does so as the library. What such
 * modules can do is then limited by the audit events above and, below
 * them, by the kernel: a few C functions raise no event at all (for one,
 * _posixsubprocess.fork_exec, which no allowed module loads).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images.h"
#include "mount.h"
#include "policy.h"
#include "pyexec.h"
#include "rlimit.h"
#include "sandbox-msg.h"
#include "util.h"

#define HOST_PYTHON "/usr/bin/python3"

/* The active policy; NULL until the program is about to start. */
static struct policy *active;
/* Top-level names of the program's own modules (files in the work
 * directory when it started): importing its own code is always allowed. */
static char **local_names;
static size_t n_local_names;
static PyObject *exc_import;     /* PolicyImportError(ImportError) */
static PyObject *exc_permission; /* PolicyPermissionError(PermissionError) */
static PyObject *orig_import;    /* the real builtins.__import__ */
static int in_hook;
/* The hook enforces only while the program's code runs. */
static bool enforcing;

/* ---- who is asking -------------------------------------------------- */

static bool has_prefix(const char *s, const char *p) {
        return strncmp(s, p, strlen(p)) == 0;
}

/* Code of the standard library and of installed packages: what the
 * program's code is not. */
static bool filename_is_library(const char *f) {
        return has_prefix(f, "/usr/lib/python3") || has_prefix(f, "/usr/local/lib/python3") ||
               has_prefix(f, "<frozen ");
}

static bool filename_is_import_machinery(const char *f) {
        return has_prefix(f, "<frozen importlib") || has_prefix(f, "/usr/lib/python3.11/importlib/");
}

/* Whether the innermost Python frame outside the import machinery is the
 * program's own code. No Python frame at all: the runner itself. */
static bool requested_by_program(void) {
        PyFrameObject *f = PyEval_GetFrame();
        bool user = false;

        Py_XINCREF(f);
        while (f) {
                PyCodeObject *co = PyFrame_GetCode(f);
                const char *fn = co && co->co_filename ? PyUnicode_AsUTF8(co->co_filename) : NULL;
                PyFrameObject *back;
                Py_XDECREF(co);
                if (!fn) {
                        PyErr_Clear();
                        fn = "";
                }
                if (!filename_is_import_machinery(fn)) {
                        user = !filename_is_library(fn);
                        break;
                }
                back = PyFrame_GetBack(f);
                Py_DECREF(f);
                f = back;
        }
        Py_XDECREF(f);
        return user;
}

/* Whether the innermost Python frame is the program's own code: for the
 * operations that only the program's direct use makes suspect (the import
 * machinery itself unmarshals and compiles library code). */
static bool innermost_is_program(void) {
        PyFrameObject *f = PyEval_GetFrame();
        PyCodeObject *co;
        const char *fn;
        bool user;

        if (!f)
                return false;
        co = PyFrame_GetCode(f);
        fn = co && co->co_filename ? PyUnicode_AsUTF8(co->co_filename) : NULL;
        if (!fn)
                PyErr_Clear();
        user = fn && !filename_is_library(fn) && !filename_is_import_machinery(fn);
        Py_XDECREF(co);
        return user;
}

/* The module a library file defines: "/usr/lib/python3.11/json/decoder.py"
 * is "json.decoder". False when path is not under a library root. */
static bool module_of_library_file(const char *path, char *out, size_t n) {
        static const char *const roots[] = {
                "/usr/lib/python3.11/lib-dynload/", "/usr/lib/python3/dist-packages/",
                "/usr/local/lib/python3.11/dist-packages/", "/usr/lib/python3.11/",
        };
        for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
                size_t rl = strlen(roots[i]), len;
                if (strncmp(path, roots[i], rl) != 0)
                        continue;
                snprintf(out, n, "%s", path + rl);
                len = strlen(out);
                if (len > 3 && strcmp(out + len - 3, ".py") == 0)
                        out[len -= 3] = 0;
                if (len > 9 && strcmp(out + len - 9, "/__init__") == 0)
                        out[len -= 9] = 0;
                for (char *c = out; *c; c++)
                        if (*c == '/')
                                *c = '.';
                return len > 0;
        }
        return false;
}

static bool is_local_module(const char *module) {
        size_t top = strcspn(module, ".");
        for (size_t i = 0; i < n_local_names; i++)
                if (strlen(local_names[i]) == top && memcmp(local_names[i], module, top) == 0)
                        return true;
        return false;
}

static bool module_allowed(const char *module) {
        return is_local_module(module) || policy_module_allowed(active, module);
}

static int refuse_import(const char *module) {
        PyObject *msg = PyUnicode_FromFormat("import of '%s' is not allowed by policy '%s'", module, active->name);
        PyObject *e = msg ? PyObject_CallOneArg(exc_import, msg) : NULL;
        PyObject *name = PyUnicode_FromString(module);

        if (e && name)
                PyObject_SetAttrString(e, "name", name);
        if (e)
                PyErr_SetObject(exc_import, e);
        Py_XDECREF(name);
        Py_XDECREF(e);
        Py_XDECREF(msg);
        return -1;
}

static int refuse_operation(const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        PyErr_SetString(exc_permission, buf);
        return -1;
}

/* ---- writes ---------------------------------------------------------- */

/*
 * The events that change the file system, which arguments are the paths
 * changed and which the directory descriptors they are relative to (Python
 * passes -1 or None for none), and whether the call follows a symlink in
 * the final component (chmod does; remove, rename and the creating calls
 * act on the link itself). Every path is resolved as the kernel would
 * (policy_resolve_path): a symlink made in the work directory, or a
 * descriptor of a directory elsewhere, does not move a write outside it.
 * os.open's "open" event carries no dir_fd: os.open is wrapped
 * (checked_os_open) instead.
 */
static const struct {
        const char *event;
        int paths[2];   /* argument indexes; -1 = none */
        int dir_fds[2]; /* the dir_fd argument of each path; -1 = none */
        bool follow;    /* a final symlink is followed */
} write_events[] = {
        { "os.mkdir", { 0, -1 }, { 2, -1 }, false },
        { "os.rmdir", { 0, -1 }, { 1, -1 }, false },
        { "os.remove", { 0, -1 }, { 1, -1 }, false },
        { "os.rename", { 0, 1 }, { 2, 3 }, false },
        { "os.link", { 1, -1 }, { 3, -1 }, false },
        { "os.symlink", { 1, -1 }, { 2, -1 }, false },
        { "os.chmod", { 0, -1 }, { 2, -1 }, true },
        { "os.chown", { 0, -1 }, { 3, -1 }, true },
        { "os.truncate", { 0, -1 }, { -1, -1 }, true },
        { "os.utime", { 0, -1 }, { 3, -1 }, true },
        { "os.chflags", { 0, -1 }, { -1, -1 }, true },
        { "os.lchown", { 0, -1 }, { -1, -1 }, false },
        { "shutil.rmtree", { 0, -1 }, { 1, -1 }, false },
        { "os.mkfifo", { 0, -1 }, { 2, -1 }, false },
        { "os.mknod", { 0, -1 }, { 3, -1 }, false },
};

/* Set while checked_os_open calls the real os.open, which it has checked
 * with its dir_fd: the "open" event that call raises is not checked again
 * relative to the working directory. Per thread: the event comes in the
 * calling thread, and another may run while path arguments convert. */
static _Thread_local bool open_checked;

/* The directory a path argument is relative to: the working directory,
 * or what the descriptor dir_fd (a Python int; -1 or None: none) names. */
static bool base_dir(PyObject *dir_fd, char *out, size_t n) {
        long fd = dir_fd && PyLong_Check(dir_fd) ? PyLong_AsLong(dir_fd) : -1;
        char link[64];
        ssize_t k;

        if (fd == -1 && PyErr_Occurred())
                PyErr_Clear();
        if (fd < 0 || fd > INT_MAX) {
                if (!getcwd(out, n))
                        snprintf(out, n, "/");
                return true;
        }
        snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
        k = readlink(link, out, n - 1);
        if (k <= 0 || out[0] != '/')
                return false; /* not a directory of the file tree */
        out[k] = 0;
        return true;
}

/* 1: path (an argument, relative to dir_fd) is outside what the policy lets
 * the program write (and out gets where it leads); 0: fine or not a path (a
 * descriptor); -1: error set. */
static int path_outside(PyObject *arg, PyObject *dir_fd, bool follow, char *out, size_t n) {
        PyObject *fs, *bytes = NULL;
        const char *p;
        char base[PATH_MAX];
        int r = 0;

        if (PyLong_Check(arg) || arg == Py_None)
                return 0;
        fs = PyOS_FSPath(arg);
        if (!fs) {
                PyErr_Clear();
                return 0; /* the call itself will reject it */
        }
        if (PyUnicode_Check(fs)) {
                bytes = PyUnicode_EncodeFSDefault(fs);
                if (!bytes) {
                        PyErr_Clear();
                        Py_DECREF(fs);
                        return 0;
                }
                p = PyBytes_AsString(bytes);
        } else if (PyBytes_Check(fs))
                p = PyBytes_AsString(fs);
        else
                p = NULL;
        if (p && p[0] != '/' && !base_dir(dir_fd, base, sizeof base)) {
                snprintf(out, n, "%s (relative to descriptor %ld)", p, PyLong_AsLong(dir_fd));
                PyErr_Clear();
                r = 1;
        } else if (p && (policy_resolve_path(base, p, follow, out, n) < 0 || !policy_path_writable(active, out)))
                r = 1;
        Py_XDECREF(bytes);
        Py_DECREF(fs);
        return r;
}

/* The flags of an open that writes, or may create or change a file. */
static bool open_writes(long flags) {
        return flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND);
}

/* An open follows a final symlink unless O_NOFOLLOW, or O_CREAT|O_EXCL
 * (which fails on any existing name). */
static bool open_follows(long flags) {
        return !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
}

static int refuse_write(const char *path) {
        return refuse_operation("writing to '%s' is not allowed by policy '%s': only %s and /tmp are writable", path,
                                active->name, POLICY_WORKDIR);
}

static int check_write(const char *event, PyObject *args) {
        char path[PATH_MAX];
        Py_ssize_t nargs = PyTuple_Size(args);

        if (strcmp(event, "open") == 0) {
                /* ("open", path, mode, flags); relative to the working
                 * directory, but for os.open (checked_os_open) */
                long flags;
                PyObject *f;
                if (nargs < 3 || open_checked)
                        return 0;
                f = PyTuple_GetItem(args, 2);
                flags = f && PyLong_Check(f) ? PyLong_AsLong(f) : 0;
                if (!open_writes(flags))
                        return 0;
                if (path_outside(PyTuple_GetItem(args, 0), NULL, open_follows(flags), path, sizeof path) == 1)
                        return refuse_write(path);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(write_events); i++) {
                if (strcmp(event, write_events[i].event) != 0)
                        continue;
                for (int k = 0; k < 2; k++) {
                        int idx = write_events[i].paths[k], fdx = write_events[i].dir_fds[k];
                        PyObject *dir_fd = fdx >= 0 && fdx < nargs ? PyTuple_GetItem(args, fdx) : NULL;
                        if (idx < 0 || idx >= nargs)
                                continue;
                        if (path_outside(PyTuple_GetItem(args, idx), dir_fd, write_events[i].follow, path,
                                         sizeof path) == 1)
                                return refuse_operation("changing '%s' (%s) is not allowed by policy '%s': only %s "
                                                        "and /tmp are writable",
                                                        path, event, active->name, POLICY_WORKDIR);
                }
                return 0;
        }
        return 0;
}

/*
 * os.open(path, flags, mode=0o777, *, dir_fd=None) while a policy restricts
 * writes: its audit event does not say which directory dir_fd names, so
 * the wrapper checks the path against it before the call; and afterwards
 * what the descriptor actually is (/proc/self/fd), which no rename or
 * symlink swapped in meanwhile can change: a write descriptor for a file
 * outside is closed and refused. The real os.open stays in C.
 */
static PyObject *orig_os_open;

static PyObject *checked_os_open(PyObject *self, PyObject *args, PyObject *kwargs) {
        static char *kwlist[] = { "path", "flags", "mode", "dir_fd", NULL };
        PyObject *path, *flags_o, *mode = NULL, *dir_fd = Py_None, *fs, *call_args, *call_kw = NULL, *res;
        char where[PATH_MAX], link[64];
        long flags, fd;
        bool check;
        ssize_t k;

        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O$O:open", kwlist, &path, &flags_o, &mode, &dir_fd))
                return NULL;
        /* Converted once, here: a path-like object's __fspath__ runs no
         * code between the check and the call (and so opens nothing
         * while the "open" event is taken as checked). */
        fs = PyOS_FSPath(path);
        if (!fs)
                return NULL;
        flags = PyLong_Check(flags_o) ? PyLong_AsLong(flags_o) : 0;
        if (flags == -1 && PyErr_Occurred())
                PyErr_Clear();
        check = enforcing && active && active->restrict_writes && open_writes(flags);
        if (check && path_outside(fs, dir_fd, open_follows(flags), where, sizeof where) == 1) {
                Py_DECREF(fs);
                refuse_write(where);
                return NULL;
        }
        call_args = mode ? PyTuple_Pack(3, fs, flags_o, mode) : PyTuple_Pack(2, fs, flags_o);
        Py_DECREF(fs);
        if (!call_args)
                return NULL;
        if (dir_fd != Py_None && !(call_kw = Py_BuildValue("{s:O}", "dir_fd", dir_fd))) {
                Py_DECREF(call_args);
                return NULL;
        }
        open_checked = true;
        res = PyObject_Call(orig_os_open, call_args, call_kw);
        open_checked = false;
        Py_DECREF(call_args);
        Py_XDECREF(call_kw);
        if (!check || !res || !PyLong_Check(res))
                return res;
        fd = PyLong_AsLong(res);
        snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
        k = readlink(link, where, sizeof where - 1);
        /* Pipes and sockets (/dev/stdout) have no path. */
        if (k <= 0 || where[0] != '/')
                return res;
        where[k] = 0;
        if (policy_path_writable(active, where))
                return res;
        close((int)fd);
        Py_DECREF(res);
        refuse_write(where);
        return NULL;
}

static PyMethodDef checked_os_open_def = {
        "open", (PyCFunction)(void (*)(void))checked_os_open, METH_VARARGS | METH_KEYWORDS,
        "open(path, flags, mode=0o777, *, dir_fd=None): os.open, with writes checked against pyexec's policy"
};

/* Put checked_os_open in place of open in posix and os. */
static int wrap_os_open(void) {
        static const char *const modules[] = { "posix", "os" };
        PyObject *f;

        PyObject *posix = PyImport_ImportModule("posix");
        if (!posix)
                return -1;
        orig_os_open = PyObject_GetAttrString(posix, "open");
        Py_DECREF(posix);
        if (!orig_os_open)
                return -1;
        f = PyCFunction_New(&checked_os_open_def, NULL);
        if (!f)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(modules); i++) {
                PyObject *m = PyImport_ImportModule(modules[i]);
                PyObject *cur = m ? PyObject_GetAttrString(m, "open") : NULL;
                int r = cur == orig_os_open ? PyObject_SetAttrString(m, "open", f) : 0;
                Py_XDECREF(cur);
                Py_XDECREF(m);
                if (!m || !cur || r < 0) {
                        Py_DECREF(f);
                        return -1;
                }
        }
        Py_DECREF(f);
        return 0;
}

/* ---- the hook --------------------------------------------------------- */

/*
 * ctypes.dlopen(None) made by ctypes' own import (ctypes.pythonapi, from the
 * package's module code): the handle of what the process has already
 * loaded, which loads no code. pandas imports ctypes whatever the program
 * does; every other dlopen, looking a symbol up (ctypes.dlsym) and calling
 * one (ctypes.call_function) stay refused by the policies that refuse
 * ctypes.*. The program cannot pass its code off as that module's (see the
 * top of this file).
 */
#define CTYPES_INIT "/usr/lib/python3.11/ctypes/__init__.py"

static bool frame_is(PyFrameObject *f, const char *file, const char *name) {
        PyCodeObject *co = f ? PyFrame_GetCode(f) : NULL;
        const char *fn = co ? PyUnicode_AsUTF8(co->co_filename) : NULL, *n = co ? PyUnicode_AsUTF8(co->co_name) : NULL;
        bool is = fn && n && strcmp(fn, file) == 0 && (!name || strcmp(n, name) == 0);

        if (co && (!fn || !n))
                PyErr_Clear();
        Py_XDECREF(co);
        return is;
}

static bool event_is_ctypes_import(const char *event, PyObject *args) {
        PyFrameObject *f, *back;
        bool is;

        if (strcmp(event, "ctypes.dlopen") != 0 || PyTuple_Size(args) < 1 || PyTuple_GetItem(args, 0) != Py_None)
                return false;
        f = PyEval_GetFrame(); /* borrowed: CDLL.__init__ */
        if (!frame_is(f, CTYPES_INIT, "__init__"))
                return false;
        back = PyFrame_GetBack(f);
        is = frame_is(back, CTYPES_INIT, "<module>");
        Py_XDECREF(back);
        return is;
}

static int hook_checked(const char *event, PyObject *args) {
        const char *what = NULL;

        if (strcmp(event, "import") == 0) {
                PyObject *m = PyTuple_Size(args) > 0 ? PyTuple_GetItem(args, 0) : NULL;
                const char *module = m && PyUnicode_Check(m) ? PyUnicode_AsUTF8(m) : NULL;
                if (module && !module_allowed(module) && requested_by_program())
                        return refuse_import(module);
                return 0;
        }
        if (strcmp(event, "exec") == 0 && PyTuple_Size(args) >= 1 && PyCode_Check(PyTuple_GetItem(args, 0))) {
                /* A library module's code about to run: imported by some
                 * route that raised no "import" event (the import
                 * machinery's functions called directly). */
                PyCodeObject *co = (PyCodeObject *)PyTuple_GetItem(args, 0);
                const char *fn = PyUnicode_AsUTF8(co->co_filename), *name = PyUnicode_AsUTF8(co->co_name);
                char module[256];
                if (!fn || !name) {
                        PyErr_Clear();
                        return 0;
                }
                if (strcmp(name, "<module>") == 0 && module_of_library_file(fn, module, sizeof module) &&
                    !module_allowed(module) && requested_by_program())
                        return refuse_import(module);
                return 0;
        }
        if (active->check_imports) {
                /* The program must not dress its code up as the library's
                 * (see the top of this file). */
                if (strcmp(event, "compile") == 0 && PyTuple_Size(args) >= 2) {
                        PyObject *fn = PyTuple_GetItem(args, 1);
                        PyObject *s = fn ? PyOS_FSPath(fn) : NULL;
                        const char *name = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
                        bool bad = name && (filename_is_library(name) || filename_is_import_machinery(name));
                        if (!s || !name)
                                PyErr_Clear();
                        Py_XDECREF(s);
                        if (bad && innermost_is_program())
                                return refuse_operation("compiling code under the file name '%.200s' of the "
                                                        "standard library is not allowed by policy '%s'",
                                                        name, active->name);
                        return 0;
                }
                if ((strcmp(event, "code.__new__") == 0 || strcmp(event, "marshal.loads") == 0 ||
                     strcmp(event, "marshal.load") == 0) &&
                    innermost_is_program())
                        return refuse_operation("%s is not allowed by policy '%s'", event, active->name);
        }
        if (event_is_ctypes_import(event, args))
                return 0;
        if (policy_event_denied(active, event, &what)) {
                if (what)
                        return refuse_operation("%s (%s) is not allowed by policy '%s'", what, event, active->name);
                return refuse_operation("%s is not allowed by policy '%s'", event, active->name);
        }
        if (active->restrict_writes)
                return check_write(event, args);
        return 0;
}

static int audit_hook(const char *event, PyObject *args, void *data) {
        int r = 0;
        if (in_hook)
                return 0;
        in_hook = 1;
        if (enforcing && active)
                r = hook_checked(event, args);
        /* Only an import the policy lets through (runner-images.c). */
        if (r == 0)
                runner_images_on_event(event, args);
        in_hook = 0;
        return r;
}

/*
 * A module the policy lists that is missing from the system: said so, so
 * that nobody reads the ModuleNotFoundError as a refusal. Only when the
 * missing module is the one requested or a package it is in ("numpy" for
 * "numpy.linalg"), not a module it imports itself; the exception stays a
 * ModuleNotFoundError, which a program may catch as python3's.
 */
static void explain_not_installed(const char *module) {
        PyObject *type, *value, *tb, *missing, *msg, *e;
        const char *m;
        size_t n;

        if (is_local_module(module) || module[0] == '_' || !policy_module_allowed(active, module))
                return;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        missing = value ? PyObject_GetAttrString(value, "name") : NULL;
        m = missing && PyUnicode_Check(missing) ? PyUnicode_AsUTF8(missing) : NULL;
        n = m ? strlen(m) : 0;
        if (!m || strncmp(module, m, n) != 0 || (module[n] != 0 && module[n] != '.')) {
                PyErr_Clear();
                Py_XDECREF(missing);
                PyErr_Restore(type, value, tb);
                return;
        }
        msg = PyUnicode_FromFormat("module '%s' is allowed by policy '%s' but is not installed", m, active->name);
        e = msg ? PyObject_CallOneArg(PyExc_ModuleNotFoundError, msg) : NULL;
        if (e && PyObject_SetAttrString(e, "name", missing) == 0) {
                PyErr_SetObject(PyExc_ModuleNotFoundError, e);
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(tb);
        } else {
                PyErr_Clear();
                PyErr_Restore(type, value, tb);
        }
        Py_XDECREF(e);
        Py_XDECREF(msg);
        Py_XDECREF(missing);
}

/* builtins.__import__ while a policy checks imports. */
static PyObject *checked_import(PyObject *self, PyObject *args, PyObject *kwargs) {
        static char *kwlist[] = { "name", "globals", "locals", "fromlist", "level", NULL };
        PyObject *name, *globals = NULL, *locals = NULL, *fromlist = NULL;
        int level = 0;

        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OOOi:__import__", kwlist, &name, &globals, &locals,
                                         &fromlist, &level))
                return NULL;
        if (level == 0 && active) {
                const char *module = PyUnicode_AsUTF8(name);
                PyObject *res;
                if (!module)
                        return NULL;
                if (!module_allowed(module) && requested_by_program()) {
                        refuse_import(module);
                        return NULL;
                }
                res = PyObject_Call(orig_import, args, kwargs);
                if (!res && active->check_imports && PyErr_ExceptionMatches(PyExc_ModuleNotFoundError))
                        explain_not_installed(module);
                return res;
        }
        return PyObject_Call(orig_import, args, kwargs);
}

static PyMethodDef checked_import_def = {
        "__import__", (PyCFunction)(void (*)(void))checked_import, METH_VARARGS | METH_KEYWORDS,
        "__import__(name, globals=None, locals=None, fromlist=(), level=0): the import statement's function, "
        "checked against pyexec's policy"
};

/*
 * _posixsubprocess.fork_exec starts a process and raises no audit event:
 * subprocess.Popen raises one before calling it, but the function itself
 * is within reach once a library has loaded subprocess (matplotlib does, at
 * import), as sys.modules['_posixsubprocess'].fork_exec or
 * subprocess._fork_exec. While the policy refuses subprocess.Popen, every
 * copy of it the program could reach is replaced by this wrapper, which
 * refuses as that event would (the original is kept in C only: a
 * wrapper's __self__ would hand it to the program); the wrappers of _imp (below) do the same
 * for a _posixsubprocess module created later.
 */
static PyObject *orig_fork_exec; /* never in the wrapper's __self__, where a program would find it */

static PyObject *checked_fork_exec(PyObject *self, PyObject *args) {
        const char *what = NULL;

        if ((enforcing && active && policy_event_denied(active, "subprocess.Popen", &what)) || !orig_fork_exec) {
                refuse_operation("%s (_posixsubprocess.fork_exec) is not allowed by policy '%s'",
                                 what ? what : "starting a process", active ? active->name : "?");
                return NULL;
        }
        return PyObject_Call(orig_fork_exec, args, NULL);
}

static PyMethodDef checked_fork_exec_def = {
        "fork_exec", checked_fork_exec, METH_VARARGS,
        "fork_exec(...): _posixsubprocess.fork_exec, refused while pyexec's policy refuses starting processes"
};

/* Replace module.attr, the real fork_exec, by the wrapper; 0 when absent
 * or already wrapped. */
static int wrap_fork_exec_in(PyObject *module, const char *attr) {
        PyObject *cur = PyObject_GetAttrString(module, attr), *f;
        int r;

        if (!cur || !PyCFunction_Check(cur) || PyCFunction_GET_FUNCTION(cur) == (PyCFunction)checked_fork_exec) {
                PyErr_Clear();
                Py_XDECREF(cur);
                return 0;
        }
        /* Every copy is the same C function: the first one found is kept. */
        if (!orig_fork_exec)
                orig_fork_exec = Py_NewRef(cur);
        f = PyCFunction_New(&checked_fork_exec_def, NULL);
        Py_DECREF(cur);
        if (!f)
                return -1;
        r = PyObject_SetAttrString(module, attr, f);
        Py_DECREF(f);
        return r;
}

/* The copies in modules already loaded (the zygote may have imported
 * subprocess ahead). */
static int wrap_fork_exec(void) {
        static const struct {
                const char *module, *attr;
        } holders[] = {
                { "_posixsubprocess", "fork_exec" },
                { "subprocess", "_fork_exec" },
        };
        PyObject *modules = PyImport_GetModuleDict();

        if (!policy_event_denied(active, "subprocess.Popen", NULL))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(holders); i++) {
                PyObject *m = PyDict_GetItemString(modules, holders[i].module);
                if (m && wrap_fork_exec_in(m, holders[i].attr) < 0)
                        return -1;
        }
        return 0;
}

/*
 * Modules built into the interpreter or loaded from a shared library are
 * created by _imp.create_builtin() and _imp.create_dynamic(), which raise
 * no audit event when the import machinery is driven directly. While a
 * policy checks imports, both are replaced in the _imp module by these
 * wrappers; the originals stay in C, out of the program's reach.
 */
static PyObject *orig_create_builtin, *orig_create_dynamic;

static PyObject *checked_create(PyObject *orig, PyObject *args) {
        PyObject *spec = PyTuple_Size(args) > 0 ? PyTuple_GetItem(args, 0) : NULL;
        PyObject *name = spec ? PyObject_GetAttrString(spec, "name") : NULL;
        const char *module = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        PyObject *res;

        if (!module)
                PyErr_Clear();
        if (module && active && !module_allowed(module) && requested_by_program()) {
                refuse_import(module);
                Py_DECREF(name);
                return NULL;
        }
        res = PyObject_Call(orig, args, NULL);
        if (res && module && strcmp(module, "_posixsubprocess") == 0 && active &&
            policy_event_denied(active, "subprocess.Popen", NULL) && wrap_fork_exec_in(res, "fork_exec") < 0)
                Py_CLEAR(res);
        Py_XDECREF(name);
        return res;
}

static PyObject *checked_create_builtin(PyObject *self, PyObject *args) {
        return checked_create(orig_create_builtin, args);
}

static PyObject *checked_create_dynamic(PyObject *self, PyObject *args) {
        return checked_create(orig_create_dynamic, args);
}

static PyMethodDef checked_create_defs[] = {
        { "create_builtin", checked_create_builtin, METH_VARARGS, "create a built-in module (checked by pyexec's policy)" },
        { "create_dynamic", checked_create_dynamic, METH_VARARGS,
          "create an extension module (checked by pyexec's policy)" },
};

static int wrap_imp(void) {
        PyObject *imp = PyImport_ImportModule("_imp");
        PyObject **orig[] = { &orig_create_builtin, &orig_create_dynamic };
        int r = -1;

        if (!imp)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(checked_create_defs); i++) {
                PyObject *f;
                *orig[i] = PyObject_GetAttrString(imp, checked_create_defs[i].ml_name);
                f = *orig[i] ? PyCFunction_New(&checked_create_defs[i], NULL) : NULL;
                if (!f || PyObject_SetAttrString(imp, checked_create_defs[i].ml_name, f) < 0) {
                        Py_XDECREF(f);
                        goto out;
                }
                Py_DECREF(f);
        }
        r = 0;
out:
        Py_DECREF(imp);
        return r;
}

/* _pyexec.module_allowed(name): for the static check. */
static PyObject *py_module_allowed(PyObject *self, PyObject *arg) {
        const char *m = PyUnicode_AsUTF8(arg);
        if (!m)
                return NULL;
        return PyBool_FromLong(!active || module_allowed(m));
}

static PyMethodDef pyexec_methods[] = {
        { "module_allowed", py_module_allowed, METH_O, "whether the policy lets the program import a module" },
        { NULL, NULL, 0, NULL },
};

static struct PyModuleDef pyexec_module = {
        PyModuleDef_HEAD_INIT, "_pyexec", "pyexec's policy layer", -1, pyexec_methods, NULL, NULL, NULL, NULL,
};

static PyObject *pyexec_module_init(void) {
        PyObject *m = PyModule_Create(&pyexec_module);
        if (!m)
                return NULL;
        /* Printed as plain "PolicyImportError: ..." in tracebacks. */
        exc_import = PyErr_NewExceptionWithDoc("builtins.PolicyImportError",
                                               "An import refused by pyexec's policy.", PyExc_ImportError, NULL);
        exc_permission = PyErr_NewExceptionWithDoc("builtins.PolicyPermissionError",
                                                   "An operation refused by pyexec's policy.", PyExc_PermissionError,
                                                   NULL);
        if (!exc_import || !exc_permission || PyModule_AddObjectRef(m, "PolicyImportError", exc_import) < 0 ||
            PyModule_AddObjectRef(m, "PolicyPermissionError", exc_permission) < 0) {
                Py_DECREF(m);
                return NULL;
        }
        return m;
}

int runner_setup(void) {
        if (PyImport_AppendInittab("_pyexec", pyexec_module_init) < 0)
                return -ENOMEM;
        if (PySys_AddAuditHook(audit_hook, NULL) < 0)
                return -EPERM;
        return 0;
}

/* ---- the static check ------------------------------------------------- */

/*
 * Parse every Python file of the program with CPython's own parser, before
 * any of it runs. Returns None, ("syntax", text, file, line, column) for the
 * first file that does not compile (text is what python3 would print), or
 * ("policy", [(file, line, message), ...]) for every import the policy
 * refuses.
 */
static const char static_check_py[] =
        "def check(files, policy, checked, sources=None):\n"
        "    import _ast, _pyexec\n"
        "    refused = []\n"
        "    main_code = None\n"
        "    for path in files:\n"
        "        is_main = path == '/sandbox/main.py'\n"
        "        if not is_main and not checked:\n"
        "            continue  # python3 compiles a helper when it is imported\n"
        "        if sources is not None:\n"
        "            src = sources[path]\n"
        "        else:\n"
        "            with open(path, 'rb') as f:\n"
        "                src = f.read()\n"
        "        try:\n"
        "            # main.py is compiled here, once, as python3 compiles it\n"
        "            # before running it (the compiler's own errors included);\n"
        "            # the run executes this code object.\n"
        "            tree = compile(src, path, 'exec', _ast.PyCF_ONLY_AST, dont_inherit=True) if checked else None\n"
        "            if is_main:\n"
        "                main_code = compile(src, path, 'exec', dont_inherit=True)\n"
        "        except SyntaxError as e:\n"
        "            # The program's own file: refused now. Another file fails\n"
        "            # only when imported, as under python3; a file python3\n"
        "            # cannot even decode is left for it to report its way.\n"
        "            if not is_main or str(e.msg).startswith('(unicode error)'):\n"
        "                continue\n"
        "            col = e.offset or 0\n"
        "            if col and isinstance(e.text, str):\n"
        "                # From bytes the offset counts bytes; report characters.\n"
        "                col = len(e.text.encode('utf-8', 'surrogateescape')[:col - 1].decode('utf-8', 'replace')) + 1\n"
        "            return ('syntax', e, path, e.lineno or 0, col,\n"
        "                    '%s: %s' % (type(e).__name__, e.msg))\n"
        "        except (ValueError, UnicodeError):\n"
        "            continue  # left for python3 itself to report as it runs\n"
        "        if tree is None:\n"
        "            continue\n"
        "        todo = [tree]\n"
        "        while todo:\n"
        "            node = todo.pop()\n"
        "            for field in node._fields:\n"
        "                v = getattr(node, field, None)\n"
        "                if isinstance(v, _ast.AST):\n"
        "                    todo.append(v)\n"
        "                elif isinstance(v, list):\n"
        "                    todo.extend(x for x in v if isinstance(x, _ast.AST))\n"
        "            names = []\n"
        "            if isinstance(node, _ast.Import):\n"
        "                names = [a.name for a in node.names]\n"
        "            elif isinstance(node, _ast.ImportFrom) and node.level == 0 and node.module:\n"
        "                names = [node.module]\n"
        "            elif (isinstance(node, _ast.Call) and node.args and isinstance(node.args[0], _ast.Constant)\n"
        "                  and isinstance(node.args[0].value, str)\n"
        "                  and ((isinstance(node.func, _ast.Name) and node.func.id == '__import__')\n"
        "                       or (isinstance(node.func, _ast.Attribute) and node.func.attr == 'import_module'))):\n"
        "                names = [node.args[0].value]\n"
        "            for name in names:\n"
        "                if not _pyexec.module_allowed(name):\n"
        "                    refused.append((path, node.lineno,\n"
        "                        \"import of '%s' is not allowed by policy '%s'\" % (name, policy)))\n"
        "    refused.sort(key=lambda r: (r[0] != '/sandbox/main.py', r[0], r[1]))\n"
        "    if refused:\n"
        "        return ('policy', refused)\n"
        "    return ('code', main_code) if main_code is not None else None\n";

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool names_known; /* local_names scanned (once: static_check may scan twice) */

/* The program's module names (local_names), from the work directory as it
 * is before the program runs; and, with want_files, its Python files as a
 * list (sorted, main.py first; else None). */
static PyObject *scan_workdir(bool want_files) {
        DIR *d = opendir(".");
        struct dirent *de;
        char **py = NULL;
        size_t n_py = 0;
        PyObject *list;

        if (!d)
                return want_files ? PyList_New(0) : Py_NewRef(Py_None);
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                size_t len = strlen(n);
                char **v;
                struct stat st;
                if (n[0] == '.' || stat(n, &st) < 0)
                        continue;
                if (!names_known && (S_ISDIR(st.st_mode) || (len > 3 && strcmp(n + len - 3, ".py") == 0))) {
                        v = realloc(local_names, (n_local_names + 1) * sizeof *v);
                        if (v) {
                                local_names = v;
                                local_names[n_local_names] = strndup(n, S_ISDIR(st.st_mode) ? len : len - 3);
                                if (local_names[n_local_names])
                                        n_local_names++;
                        }
                }
                if (want_files && S_ISREG(st.st_mode) && len > 3 && strcmp(n + len - 3, ".py") == 0) {
                        v = realloc(py, (n_py + 1) * sizeof *v);
                        if (v) {
                                py = v;
                                py[n_py] = strdup(n);
                                if (py[n_py])
                                        n_py++;
                        }
                }
        }
        closedir(d);
        names_known = true;
        if (!want_files)
                return Py_NewRef(Py_None);
        qsort(py, n_py, sizeof *py, cmp_str);
        list = PyList_New(0);
        for (int pass = 0; pass < 2 && list; pass++)
                for (size_t i = 0; i < n_py; i++) {
                        bool is_main = strcmp(py[i], PYEXEC_MAIN_FILE) == 0;
                        if (is_main == (pass == 0)) {
                                PyObject *s = PyUnicode_FromFormat(SANDBOX_WORKDIR "/%s", py[i]);
                                if (!s || PyList_Append(list, s) < 0) {
                                        Py_XDECREF(s);
                                        Py_CLEAR(list);
                                        break;
                                }
                                Py_DECREF(s);
                        }
                }
        for (size_t i = 0; i < n_py; i++)
                free(py[i]);
        free(py);
        return list;
}

static void send_verdict(int fd, enum pyexec_status status, const char *text) {
        struct msg m = { .type = MSG_VERDICT, .err = (int32_t)status, .t_ns = now_ns() };
        size_t n = strlen(text);
        if (n >= sizeof m.step) {
                n = sizeof m.step - 4;
                memcpy(m.step, text, n);
                memcpy(m.step + n, "...", 4);
        } else
                memcpy(m.step, text, n + 1);
        msg_send(fd, &m);
}

static const char *base_name(const char *path) {
        const char *b = strrchr(path, '/');
        return b ? b + 1 : path;
}

/* Returns true when the program may run; else the verdict was sent and
 * the report written to stderr. */
static PyObject *check_fn;

PyObject *runner_define(const char *src, const char *name) {
        PyObject *ns = PyDict_New(), *res, *fn = NULL;

        if (!ns || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) {
                Py_XDECREF(ns);
                return NULL;
        }
        res = PyRun_String(src, Py_file_input, ns, ns);
        if (res) {
                fn = PyDict_GetItemString(ns, name);
                Py_XINCREF(fn);
                Py_DECREF(res);
        }
        Py_DECREF(ns);
        return fn;
}

/* __main__'s loader, as python3 makes it for main.py: the same for every
 * run, so made once, by the zygote (runner_prepare); each run has its own
 * copy of the process and so of the object. */
static PyObject *main_loader;

static PyObject *make_main_loader(const char *path) {
        PyObject *ext = PyImport_ImportModule("_frozen_importlib_external"), *loader = NULL;

        if (ext) {
                loader = PyObject_CallMethod(ext, "SourceFileLoader", "ss", "__main__", path);
                Py_DECREF(ext);
        }
        PyErr_Clear();
        return loader;
}

int runner_prepare(void) {
        PyObject *m;

        if (!main_loader)
                main_loader = make_main_loader(SANDBOX_WORKDIR "/" PYEXEC_MAIN_FILE);
        if (check_fn)
                return 0;
        /* What the check imports, imported now. */
        m = PyImport_ImportModule("_pyexec");
        Py_XDECREF(m);
        m = m ? PyImport_ImportModule("_ast") : NULL;
        Py_XDECREF(m);
        check_fn = m ? runner_define(static_check_py, "check") : NULL;
        return check_fn ? 0 : -1;
}

/* main.py as the static check compiled it; NULL when it did not (the run
 * then compiles the file itself, as python3 would, and reports). */
static PyObject *main_code;

/*
 * main.py compiled as the check's compile() compiles it (bytes, the
 * declared encoding honoured, dont_inherit, the interpreter's optimization
 * level), or NULL with no exception set for anything the Python check
 * should see: no file, a NUL byte, a compile error (the check then reports
 * it, with the same compiler).
 */
static PyObject *compile_main(void) {
        _cleanup_close_ int fd = open(SANDBOX_WORKDIR "/" PYEXEC_MAIN_FILE, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *src = NULL;
        PyCompilerFlags cf = _PyCompilerFlags_INIT;
        PyObject *name, *code = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= INT_MAX)
                return NULL;
        src = malloc((size_t)st.st_size + 1);
        if (!src)
                return NULL;
        while (len <= (size_t)st.st_size) {
                ssize_t n = read(fd, src + len, (size_t)st.st_size + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        if (len != (size_t)st.st_size || memchr(src, 0, len))
                return NULL;
        src[len] = 0;
        cf.cf_flags = PyCF_SOURCE_IS_UTF8; /* as compile() sets it */
        name = PyUnicode_DecodeFSDefault(SANDBOX_WORKDIR "/" PYEXEC_MAIN_FILE);
        if (name)
                code = Py_CompileStringObject(src, name, Py_file_input, &cf, -1);
        Py_XDECREF(name);
        if (!code)
                PyErr_Clear();
        return code;
}

static bool static_check(int status_fd) {
        PyObject *files = NULL, *res = NULL, *ns = NULL;
        bool checked = active && (active->check_imports || active->n_deny > 0), ok = true;

        /* A policy that checks no imports leaves the check only python3's
         * compile of main.py: done from C, without the Python function's
         * frames and file objects, whose pages each run would map or copy
         * for itself (3 to 16 us a page on this project's build machine:
         * about 0.5 ms of a hello world's CPU, docs/benchmarks.md). */
        if (!checked) {
                Py_XDECREF(scan_workdir(false));
                main_code = compile_main();
                if (main_code)
                        return true;
        }
        files = scan_workdir(true);
        if (!files || runner_prepare() < 0)
                goto fail;
        res = PyObject_CallFunction(check_fn, "Osi", files, active ? active->name : "permissive", checked);
        if (!res)
                goto fail;
        if (PyTuple_Check(res) && PyTuple_Size(res) == 6) {
                /* ("syntax", exception, path, line, column, summary) */
                PyObject *exc = PyTuple_GetItem(res, 1);
                const char *path = PyUnicode_AsUTF8(PyTuple_GetItem(res, 2));
                long line = PyLong_AsLong(PyTuple_GetItem(res, 3));
                long col = PyLong_AsLong(PyTuple_GetItem(res, 4));
                const char *summary = PyUnicode_AsUTF8(PyTuple_GetItem(res, 5));
                char msg[1024];
                if (!exc || !path || !summary)
                        goto fail;
                if (col > 0)
                        snprintf(msg, sizeof msg, "%.700s (%s, line %ld, column %ld)", summary, base_name(path), line,
                                 col);
                else
                        snprintf(msg, sizeof msg, "%.700s (%s, line %ld)", summary, base_name(path), line);
                /* Reported by python3's own printer, exactly as python3
                 * reports a script that does not compile. */
                PyException_SetTraceback(exc, Py_None);
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                PyErr_Print();
                send_verdict(status_fd, PYEXEC_SYNTAX_ERROR, msg);
                ok = false;
        } else if (PyTuple_Check(res) && PyTuple_Size(res) == 2 &&
                   PyUnicode_CompareWithASCIIString(PyTuple_GetItem(res, 0), "code") == 0) {
                /* ("code", main.py compiled): what the run executes. */
                Py_XSETREF(main_code, Py_NewRef(PyTuple_GetItem(res, 1)));
        } else if (PyTuple_Check(res) && PyTuple_Size(res) == 2) {
                PyObject *list = PyTuple_GetItem(res, 1);
                struct buf b;
                buf_init(&b, sizeof ((struct msg *)0)->step - 1);
                for (Py_ssize_t i = 0; list && i < PyList_Size(list); i++) {
                        PyObject *t = PyList_GetItem(list, i);
                        const char *path = PyUnicode_AsUTF8(PyTuple_GetItem(t, 0));
                        long line = PyLong_AsLong(PyTuple_GetItem(t, 1));
                        const char *text = PyUnicode_AsUTF8(PyTuple_GetItem(t, 2));
                        if (!path || !text)
                                break;
                        fprintf(stderr, "  File \"%s\", line %ld\nPolicyImportError: %s\n", path, line, text);
                        buf_printf(&b, "%s%s (%s, line %ld)", i ? "; " : "", text, base_name(path), line);
                }
                send_verdict(status_fd, PYEXEC_POLICY_VIOLATION, b.data ? b.data : "import not allowed");
                buf_done(&b);
                ok = false;
        }
        Py_XDECREF(res);
        Py_XDECREF(files);
        Py_XDECREF(ns);
        PyErr_Clear();
        return ok;
fail:
        /* The check itself failing is not the program's fault: let it run,
         * and python3's own compile errors will speak. */
        PyErr_Clear();
        Py_XDECREF(res);
        Py_XDECREF(files);
        Py_XDECREF(ns);
        return true;
}

/* ---- running __main__ ------------------------------------------------- */

/* module.method() for a module already imported; an exception is reported
 * as python3 reports one at exit ("Exception ignored in: <module ...>"). */
static void call_at_exit(const char *module, const char *method) {
        PyObject *m = PyDict_GetItemString(PyImport_GetModuleDict(), module), *r;
        if (!m)
                return;
        Py_INCREF(m);
        r = PyObject_CallMethod(m, method, NULL);
        if (!r)
                PyErr_WriteUnraisable(m);
        Py_XDECREF(r);
        Py_DECREF(m);
}

static bool file_is_closed(PyObject *f) {
        PyObject *c = PyObject_GetAttrString(f, "closed");
        int r;
        if (!c) {
                PyErr_Clear();
                return false;
        }
        r = PyObject_IsTrue(c);
        Py_DECREF(c);
        if (r < 0)
                PyErr_Clear();
        return r > 0;
}

/* python3's flush of the standard streams at exit (pythonrun.c
 * flush_std_files): closed ones are skipped; a failing stdout is reported
 * as unraisable, a failing stderr silently; either fails the exit. */
static int flush_std_files(const char *out, const char *err) {
        PyObject *fout = PySys_GetObject(out), *ferr = PySys_GetObject(err), *r;
        int status = 0;

        if (fout && fout != Py_None && !file_is_closed(fout)) {
                Py_INCREF(fout);
                r = PyObject_CallMethod(fout, "flush", NULL);
                if (!r) {
                        PyErr_WriteUnraisable(fout);
                        status = -1;
                }
                Py_XDECREF(r);
                Py_DECREF(fout);
        }
        if (ferr && ferr != Py_None && !file_is_closed(ferr)) {
                r = PyObject_CallMethod(ferr, "flush", NULL);
                if (!r) {
                        PyErr_Clear();
                        status = -1;
                }
                Py_XDECREF(r);
        }
        return status;
}

/* A module's globals released as python3's finalization does it
 * (_PyModule_ClearDict): names starting with one underscore set to None
 * first, then the others, __builtins__ last, in their order, so a __del__
 * still finds the globals not yet released. */
static void clear_module_dict(PyObject *d) {
        PyObject *keys = PyDict_Keys(d);
        for (int pass = 0; keys && pass < 2; pass++)
                for (Py_ssize_t i = 0; i < PyList_Size(keys); i++) {
                        PyObject *k = PyList_GetItem(keys, i);
                        const char *s = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : NULL;
                        bool under = s && s[0] == '_' && s[1] != '_';
                        if (!s || strcmp(s, "__builtins__") == 0 || under != (pass == 0))
                                continue;
                        if (PyDict_SetItem(d, k, Py_None) < 0)
                                PyErr_Clear();
                }
        Py_XDECREF(keys);
        PyErr_Clear();
}

/*
 * The exit of `python3 main.py`, in its order (Py_FinalizeEx): non-daemon
 * threads awaited, atexit handlers, the standard streams flushed, then the
 * program's own modules released (their objects' __del__ may still print),
 * a collection, and the streams (also the original ones, should the
 * program have replaced them) flushed again. A failed flush makes the exit
 * status 120. What Py_FinalizeEx() does beyond that, tearing down every
 * library module, is left to _exit(): in a child of the zygote it would
 * write to every page the zygote shares with it, and take longer than the
 * program.
 */
static int finish(PyObject *main_dict, int exitcode) {
        PyObject *modules = PyImport_GetModuleDict();
        int status = 0;

        call_at_exit("threading", "_shutdown");
        /* Before atexit: pyplot's handler closes the open figures. */
        runner_images_at_exit();
        call_at_exit("atexit", "_run_exitfuncs");
        if (flush_std_files("stdout", "stderr") < 0)
                status = -1;
        /* The program's modules: __main__, then its own top-level modules
         * (looked up by name; walking sys.modules would copy every module
         * object from the zygote). */
        clear_module_dict(main_dict);
        for (size_t i = n_local_names; i-- > 0;) {
                PyObject *m = PyDict_GetItemString(modules, local_names[i]);
                if (m && PyModule_Check(m)) {
                        PyObject *d = PyModule_GetDict(m);
                        if (d && d != main_dict)
                                clear_module_dict(d);
                }
        }
        PyErr_Clear();
        PyGC_Collect();
        /* python3 has restored the original streams by its second flush. */
        if (flush_std_files("__stdout__", "__stderr__") < 0)
                status = -1;
        PyErr_Clear();
        return status < 0 ? 120 : exitcode;
}

/* SystemExit's code as python3 maps it: None 0, an int itself, anything
 * else printed to stderr and 1. Clears the exception. */
static int system_exit_code(void) {
        PyObject *type, *value, *tb, *code;
        int rc = 1;

        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        code = value ? PyObject_GetAttrString(value, "code") : NULL;
        if (!code) {
                PyErr_Clear();
                code = Py_NewRef(Py_None);
        }
        if (code == Py_None)
                rc = 0;
        else if (PyLong_Check(code)) {
                /* As python3: a value beyond a C long is -1, so 255. */
                long v = PyLong_AsLong(code);
                if (v == -1 && PyErr_Occurred())
                        PyErr_Clear();
                rc = (int)v;
        } else {
                PyObject *f = PySys_GetObject("stderr");
                if (f && f != Py_None) {
                        PyFile_WriteObject(code, f, Py_PRINT_RAW);
                        PyFile_WriteString("\n", f);
                } else
                        PyObject_Print(code, stderr, Py_PRINT_RAW);
                PyErr_Clear();
                rc = 1;
        }
        Py_DECREF(code);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return rc;
}

/* A fresh __main__ for the program, as `python3 main.py` sets it up. */
static PyObject *new_main_dict(const char *path) {
        PyObject *mod = PyModule_New("__main__"), *modules = PyImport_GetModuleDict(), *d, *loader;
        int r;

        if (!mod || PyDict_SetItemString(modules, "__main__", mod) < 0)
                goto fail;
        d = PyModule_GetDict(mod);
        {
                /* From sys.modules, where start-up put it (an import
                 * would go through importlib for nothing). */
                PyObject *b = PyImport_AddModule("builtins"); /* borrowed */
                r = b ? PyDict_SetItemString(d, "__builtins__", b) : -1;
                if (r < 0)
                        goto fail;
        }
        {
                PyObject *file = PyUnicode_FromString(path);
                r = file ? PyDict_SetItemString(d, "__file__", file) : -1;
                Py_XDECREF(file);
                if (r < 0 || PyDict_SetItemString(d, "__cached__", Py_None) < 0)
                        goto fail;
        }
        {
                PyObject *ann = PyDict_New();
                r = ann ? PyDict_SetItemString(d, "__annotations__", ann) : -1;
                Py_XDECREF(ann);
                if (r < 0)
                        goto fail;
        }
        loader = strcmp(path, SANDBOX_WORKDIR "/" PYEXEC_MAIN_FILE) == 0 && main_loader ? Py_NewRef(main_loader)
                                                                                          : make_main_loader(path);
        if (loader) {
                PyDict_SetItemString(d, "__loader__", loader);
                Py_DECREF(loader);
        }
        PyErr_Clear();
        Py_DECREF(mod); /* sys.modules holds it */
        return d;
fail:
        Py_XDECREF(mod);
        return NULL;
}

/* sys.argv, sys.path[0] and sys.executable as `python3 main.py args`
 * has them. */
static int set_sys(const struct work *w) {
        PyObject *argv = PyList_New(0), *orig = PyList_New(0), *path = PySys_GetObject("path"), *dir;
        int r = -1;

        if (!argv || !orig)
                goto out;
        if (PyList_Append(orig, PyUnicode_FromString(HOST_PYTHON)) < 0)
                goto out;
        for (size_t i = 0; i < w->n_argv; i++) {
                PyObject *s = PyUnicode_DecodeFSDefault(w->argv[i]);
                if (!s || PyList_Append(argv, s) < 0 || PyList_Append(orig, s) < 0) {
                        Py_XDECREF(s);
                        goto out;
                }
                Py_DECREF(s);
        }
        if (PySys_SetObject("argv", argv) < 0 || PySys_SetObject("orig_argv", orig) < 0)
                goto out;
        dir = PyUnicode_FromString(SANDBOX_WORKDIR);
        if (!dir || !path || !PyList_Check(path) || PyList_Insert(path, 0, dir) < 0) {
                Py_XDECREF(dir);
                goto out;
        }
        Py_DECREF(dir);
        r = 0;
out:
        Py_XDECREF(argv);
        Py_XDECREF(orig);
        return r;
}

/*
 * A program module named like one the runner imported ahead of time (the
 * zygote's pre-imports, the static check's ast) must be the program's own
 * file, as it would be under python3, which imports only its start-up
 * modules before the script's directory is on sys.path.
 */
static void unshadow_local_modules(PyObject *startup_modules) {
        PyObject *modules = PyImport_GetModuleDict();
        /* By name, not by walking sys.modules: every object the walk
         * touched would be copied from the zygote. */
        for (size_t i = 0; i < n_local_names; i++) {
                PyObject *k = PyUnicode_FromString(local_names[i]);
                if (k && PyDict_GetItemWithError(modules, k) &&
                    !(startup_modules && PySet_Contains(startup_modules, k) == 1))
                        PyDict_DelItem(modules, k);
                Py_XDECREF(k);
                PyErr_Clear();
        }
}

/* The modules an interpreter has right after start-up, before anything the
 * runner imported: set by the zygote (NULL on the cold path, where the
 * static check's imports are the only extra ones). */
PyObject *runner_startup_modules;

/* A typical exercise, for runner_probe(). */
static const char probe_program[] =
        "import math, random\n"
        "def fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x, self.y = x, y\n"
        "    def __repr__(self):\n"
        "        return f'Point({self.x}, {self.y})'\n"
        "words = 'the quick brown fox jumps over the lazy dog'.split()\n"
        "counts = {w: words.count(w) for w in words}\n"
        "print('Hello, World!', fib(15), sorted(counts.items())[:3], [Point(i, i * i) for i in range(3)])\n"
        "print(math.sqrt(2), random.random() < 1, '%5.2f' % 3.14159, str(12345)[::-1], sum(range(100)))\n"
        "try:\n"
        "    int('x')\n"
        "except ValueError as e:\n"
        "    print('error:', e)\n";

void runner_probe(const char *policy_line, const char *path) {
        struct policy pol = { 0 };
        char err[256];
        PyObject *files, *res, *d;

        if (policy_line && policy_parse(policy_line, &pol, err, sizeof err) == 0)
                active = &pol;
        files = Py_BuildValue("[s]", path);
        if (files && runner_prepare() == 0) {
                res = PyObject_CallFunction(check_fn, "Osi", files, active ? active->name : "permissive", 1);
                Py_XDECREF(res);
        }
        Py_XDECREF(files);
        PyErr_Clear();
        d = new_main_dict(path);
        if (!d)
                return;
        enforcing = true;
        res = PyRun_String(probe_program, Py_file_input, d, d);
        if (!res)
                PyErr_Print();
        Py_XDECREF(res);
        finish(d, 0);
        enforcing = false;
        active = NULL;
        policy_done(&pol);
}

/* sys.stdout flushed at each newline, as python3 has it on a terminal
 * (on a pipe it holds up to 8 KiB): what a program printed before a limit
 * killed it reaches the result, and `output` has stdout's lines and
 * stderr's (always line-buffered) in the order they were written. Output
 * is the same at a normal exit; a line not ended when the program is
 * killed is lost. */
static int line_buffered_stdout(void) {
        PyObject *out = PySys_GetObject("stdout"), *meth, *args, *kw, *r;

        if (!out || out == Py_None)
                return 0;
        meth = PyObject_GetAttrString(out, "reconfigure");
        args = PyTuple_New(0);
        kw = Py_BuildValue("{s:O}", "line_buffering", Py_True);
        r = meth && args && kw ? PyObject_Call(meth, args, kw) : NULL;
        Py_XDECREF(meth);
        Py_XDECREF(args);
        Py_XDECREF(kw);
        if (!r)
                return -1;
        Py_DECREF(r);
        return 0;
}

_Noreturn void runner_run(struct work *w, int status_fd, int work_fd, int images_fd) {
        struct policy pol = { 0 };
        char err[256];
        PyObject *d, *res = NULL, *builtins;
        FILE *fp;
        int exitcode = 0;
        bool kbint = false;
        const char *path = SANDBOX_WORKDIR "/" PYEXEC_MAIN_FILE;

        if (w->policy && w->policy[0]) {
                if (policy_parse(w->policy, &pol, err, sizeof err) < 0) {
                        fprintf(stderr, "pyexec-runner: bad policy: %s\n", err);
                        _exit(127);
                }
                active = &pol;
        }
        if (set_sys(w) < 0 || line_buffered_stdout() < 0) {
                PyErr_Print();
                _exit(127);
        }
        /* The check consults the policy (module_allowed) but runs before
         * the hook enforces anything: it is the runner's code. */
        if (!static_check(status_fd)) {
                PyObject *f = PySys_GetObject("stderr");
                if (f)
                        Py_XDECREF(PyObject_CallMethod(f, "flush", NULL));
                fflush(stderr);
                _exit(1);
        }
        if (status_fd >= 0)
                close(status_fd);
        if (work_fd >= 0)
                close(work_fd);
        work_done(w);

        unshadow_local_modules(runner_startup_modules);
        d = new_main_dict(path);
        if (!d) {
                PyErr_Print();
                _exit(127);
        }
        /* Before the import checks: its helpers are the runner's code. */
        if (runner_images_start(images_fd) < 0) {
                PyErr_Print();
                _exit(127);
        }
        if (active && (active->check_imports || active->n_deny > 0)) {
                builtins = PyEval_GetBuiltins();
                orig_import = PyDict_GetItemString(builtins, "__import__");
                Py_XINCREF(orig_import);
                PyObject *f = PyCFunction_New(&checked_import_def, NULL);
                if (!orig_import || !f || PyDict_SetItemString(builtins, "__import__", f) < 0) {
                        PyErr_Print();
                        _exit(127);
                }
                Py_DECREF(f);
                if (wrap_imp() < 0 || wrap_fork_exec() < 0) {
                        PyErr_Print();
                        _exit(127);
                }
        }
        if (active && active->restrict_writes && wrap_os_open() < 0) {
                PyErr_Print();
                _exit(127);
        }
        if (active && !active->check_imports && active->n_deny == 0 && active->n_deny_events == 0 &&
            !active->restrict_writes)
                active = NULL; /* permissive: the hook has nothing to do */
        enforcing = true;

        if (main_code) {
                /* Compiled by the static check, as python3 compiles it. */
                res = PyEval_EvalCode(main_code, d, d);
                Py_CLEAR(main_code);
        } else if ((fp = fopen(path, "rb"))) {
                PyCompilerFlags cf = _PyCompilerFlags_INIT;
                res = PyRun_FileExFlags(fp, path, Py_file_input, d, d, 1, &cf);
        } else {
                /* As python3 says it. */
                fprintf(stderr, "%s: can't open file '%s': [Errno %d] %s\n", HOST_PYTHON, path, errno,
                        strerror(errno));
                exitcode = 2;
        }
        if (exitcode == 0 && !res) {
                if (PyErr_ExceptionMatches(PyExc_SystemExit))
                        exitcode = system_exit_code();
                else {
                        /* Only KeyboardInterrupt itself, not a subclass,
                         * ends python3 by SIGINT. */
                        PyObject *t = PyErr_Occurred();
                        kbint = t == PyExc_KeyboardInterrupt;
                        PyErr_Print();
                        exitcode = 1;
                }
        }
        Py_XDECREF(res);
        exitcode = finish(d, exitcode);
        if (kbint) {
                /* python3 ends by SIGINT after an uncaught
                 * KeyboardInterrupt. */
                signal(SIGINT, SIG_DFL);
                kill(getpid(), SIGINT);
        }
        _exit(exitcode);
}

/* ---- the cold path ---------------------------------------------------- */

int runner_cold_main(void) {
        struct work w = { 0 };
        PyConfig config;
        PyStatus st;
        int r;

        r = work_decode_fd(RUNNER_WORK_FD, RUNNER_WORK_MAX, &w);
        if (r < 0) {
                fprintf(stderr, "pyexec-runner: reading the work: %s\n", strerror(-r));
                return 127;
        }
        if (runner_setup() < 0) {
                fprintf(stderr, "pyexec-runner: installing the audit hook failed\n");
                return 127;
        }
        PyConfig_InitPythonConfig(&config);
        config.parse_argv = 0;
        config.install_signal_handlers = 1;
        st = PyConfig_SetBytesString(&config, &config.program_name, HOST_PYTHON);
        if (!PyStatus_Exception(st))
                st = PyConfig_SetBytesString(&config, &config.executable, HOST_PYTHON);
        if (!PyStatus_Exception(st))
                st = PyConfig_SetBytesArgv(&config, (Py_ssize_t)w.n_argv, w.argv);
        if (!PyStatus_Exception(st))
                st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
                fprintf(stderr, "pyexec-runner: starting Python failed: %s\n", st.err_msg ? st.err_msg : "?");
                return 127;
        }
        runner_startup_modules = PySet_New(PyImport_GetModuleDict());
        /* fd 5 is the images pipe only when the run has one (images.h). */
        runner_run(&w, RUNNER_STATUS_FD, RUNNER_WORK_FD, fcntl(RUNNER_IMAGE_FD, F_GETFD) >= 0 ? RUNNER_IMAGE_FD : -1);
}
