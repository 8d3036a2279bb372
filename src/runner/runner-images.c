/* SPDX-License-Identifier: MIT */
/*
 * runner-images: the pictures a program shows, sent to the supervisor on
 * the images pipe (images.h has the frame format and what the supervisor
 * checks).
 *
 * Nothing is imported for a program that draws nothing, and nothing the
 * program can see changes until it imports matplotlib.pyplot or
 * PIL.ImageShow: the audit hook's "import" event for one of them (raised
 * only for a module not imported yet) puts a finder at the head of
 * sys.meta_path, which takes itself out when asked for that module and
 * patches the module once its own code has run. Modules the zygote
 * imported ahead are patched when the run starts. plt.show() sends every open figure as PNG and closes it;
 * the figures still open when the program ends are sent before its atexit
 * handlers run (pyplot registers one that closes them); Pillow's
 * Image.show() finds a viewer, first in the list, that sends the image.
 *
 * The helpers (Python, below) are defined once by the zygote; on the
 * cold path only in a run that imports one of the two modules. They
 * import nothing themselves (the send function, io.BytesIO and
 * sys.modules are handed to them), as an import of theirs in the middle of
 * the program's would be checked as the program's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "runner.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "images.h"

static int images_fd = -1;
static PyObject *start_fn, *arm_fn, *at_exit_fn;

static const char images_py[] =
        "def images(send, BytesIO, modules):\n"
        "    def figures_out():\n"
        "        helpers = modules.get('matplotlib._pylab_helpers')\n"
        "        plt = modules.get('matplotlib.pyplot')\n"
        "        if helpers is None or plt is None:\n"
        "            return\n"
        "        for manager in list(helpers.Gcf.get_all_fig_managers()):\n"
        "            fig = manager.canvas.figure\n"
        "            b = BytesIO()\n"
        "            try:\n"
        "                fig.savefig(b, format='png')\n"
        "            finally:\n"
        "                plt.close(fig)\n"
        "            send(b.getvalue())\n"
        "    def patch_pyplot(plt):\n"
        "        def show(*args, **kwargs):\n"
        "            figures_out()\n"
        "        show.__doc__ = plt.show.__doc__\n"
        "        show.__module__ = plt.show.__module__\n"
        "        plt.show = show\n"
        "    def patch_imageshow(ImageShow):\n"
        "        class ResultViewer(ImageShow.Viewer):\n"
        "            format = 'PNG'\n"
        "            def show_image(self, image, **options):\n"
        "                b = BytesIO()\n"
        "                image.save(b, format='PNG')\n"
        "                send(b.getvalue())\n"
        "                return 1\n"
        "        ImageShow.register(ResultViewer, order=0)\n"
        "    patches = {'matplotlib.pyplot': patch_pyplot, 'PIL.ImageShow': patch_imageshow}\n"
        "    class ImagesFinder:\n"
        "        def __init__(self, name, meta_path):\n"
        "            self.name = name\n"
        "            self.meta_path = meta_path\n"
        "        def find_spec(self, name, path=None, target=None):\n"
        "            if name != self.name:\n"
        "                return None\n"
        "            meta_path = self.meta_path\n"
        "            if self in meta_path:\n"
        "                meta_path.remove(self)\n"
        "            for finder in meta_path:\n"
        "                find = getattr(finder, 'find_spec', None)\n"
        "                if find is None:\n"
        "                    continue\n"
        "                spec = find(name, path, target)\n"
        "                if spec is not None:\n"
        "                    break\n"
        "            else:\n"
        "                return None\n"
        "            exec_module = getattr(spec.loader, 'exec_module', None)\n"
        "            if exec_module is not None:\n"
        "                patch = patches[name]\n"
        "                def exec_and_patch(module):\n"
        "                    exec_module(module)\n"
        "                    patch(module)\n"
        "                spec.loader.exec_module = exec_and_patch\n"
        "            return spec\n"
        "    def start():\n"
        "        for name, patch in patches.items():\n"
        "            m = modules.get(name)\n"
        "            if m is not None:\n"
        "                patch(m)\n"
        "    def arm(name, meta_path):\n"
        "        if name in patches and not any(isinstance(f, ImagesFinder) for f in meta_path):\n"
        "            meta_path.insert(0, ImagesFinder(name, meta_path))\n"
        "    def at_exit():\n"
        "        figures_out()\n"
        "    return start, arm, at_exit\n";

/* send(data): one frame per call, written whole while holding the GIL, so
 * the program's threads cannot interleave theirs; a picture too large for
 * a frame, or a pipe gone, drops the picture only. */
static PyObject *images_send(PyObject *self, PyObject *arg) {
        unsigned char hdr[IMAGE_FRAME_HEADER];
        Py_buffer b;

        (void)self;
        if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
                return NULL;
        if (images_fd >= 0 && (uint64_t)b.len <= UINT32_MAX) {
                uint32_t len = (uint32_t)b.len;
                memcpy(hdr, IMAGE_FRAME_MAGIC, 4);
                for (int i = 0; i < 4; i++)
                        hdr[4 + i] = (unsigned char)(len >> (8 * i));
                if (write_all(images_fd, hdr, sizeof hdr) == 0)
                        (void)write_all(images_fd, b.buf, (size_t)b.len);
        }
        PyBuffer_Release(&b);
        Py_RETURN_NONE;
}

static PyMethodDef images_send_def = { "send", images_send, METH_O, "send one PNG to the run's result" };

/* The helpers, given what they use rather than importing it: they may be
 * defined in the middle of the program's import, where an import of theirs
 * would be checked as the program's. */
int runner_images_prepare(void) {
        PyObject *make, *send, *io, *bytesio = NULL, *pair = NULL;

        if (start_fn)
                return 0;
        io = PyDict_GetItemString(PyImport_GetModuleDict(), "io"); /* borrowed; imported at start-up */
        make = runner_define(images_py, "images");
        send = PyCFunction_New(&images_send_def, NULL);
        if (io)
                bytesio = PyObject_GetAttrString(io, "BytesIO");
        if (make && send && bytesio)
                pair = PyObject_CallFunctionObjArgs(make, send, bytesio, PyImport_GetModuleDict(), NULL);
        Py_XDECREF(make);
        Py_XDECREF(send);
        Py_XDECREF(bytesio);
        if (!pair || !PyArg_ParseTuple(pair, "OOO", &start_fn, &arm_fn, &at_exit_fn)) {
                Py_XDECREF(pair);
                start_fn = NULL;
                if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_RuntimeError, "pyexec: defining the images helpers failed");
                return -1;
        }
        Py_INCREF(start_fn);
        Py_INCREF(arm_fn);
        Py_INCREF(at_exit_fn);
        Py_DECREF(pair);
        return 0;
}

/* Whether a module is in sys.modules, looked up from C: most runs have
 * neither, and pay no Python call. */
static bool imported(const char *name) {
        return PyDict_GetItemString(PyImport_GetModuleDict(), name) != NULL;
}

int runner_images_start(int fd) {
        PyObject *r;

        if (fd < 0)
                return 0;
        /* At the same number on both paths (the cold runner finds it
         * there): a program sees the same descriptors warm or cold. The
         * work and status descriptors are closed by now. */
        if (fd != RUNNER_IMAGE_FD) {
                if (dup2(fd, RUNNER_IMAGE_FD) < 0) {
                        PyErr_SetFromErrno(PyExc_OSError);
                        return -1;
                }
                close(fd);
                fd = RUNNER_IMAGE_FD;
        }
        images_fd = fd;
        /* The cold path defines the helpers only for a run that draws. */
        if (!imported("matplotlib.pyplot") && !imported("PIL.ImageShow"))
                return 0;
        if (runner_images_prepare() < 0)
                return -1;
        r = PyObject_CallNoArgs(start_fn);
        if (!r)
                return -1;
        Py_DECREF(r);
        return 0;
}

void runner_images_on_event(const char *event, PyObject *args) {
        PyObject *name, *meta_path, *r;
        const char *s;

        if (images_fd < 0 || strcmp(event, "import") != 0)
                return;
        /* ("import", module, filename, sys.path, sys.meta_path, sys.path_hooks) */
        if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 4)
                return;
        name = PyTuple_GET_ITEM(args, 0);
        meta_path = PyTuple_GET_ITEM(args, 3);
        s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (!s) {
                PyErr_Clear();
                return;
        }
        if ((strcmp(s, "matplotlib.pyplot") != 0 && strcmp(s, "PIL.ImageShow") != 0) || !PyList_Check(meta_path))
                return;
        /* The import goes on whatever happens here: at worst the module
         * is not patched, and its pictures come at exit only. */
        r = runner_images_prepare() == 0 ? PyObject_CallFunctionObjArgs(arm_fn, name, meta_path, NULL) : NULL;
        if (!r)
                PyErr_Clear();
        Py_XDECREF(r);
}

void runner_images_at_exit(void) {
        PyObject *r;

        if (images_fd < 0 || !imported("matplotlib.pyplot"))
                return;
        r = runner_images_prepare() == 0 ? PyObject_CallNoArgs(at_exit_fn) : NULL;
        if (!r)
                PyErr_Print();
        Py_XDECREF(r);
}
