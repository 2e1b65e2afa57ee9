/* Other threads' stacks, read with the garbage collector off.
 *
 * On CPython 3.11 a frame object for another thread's running frame is made on demand
 * (sys._current_frames(), f_back). Making one allocates, an allocation may run the
 * garbage collector there and then, and a collection runs Python code (gc.callbacks,
 * __del__, weakref callbacks) that can hand the GIL to the thread whose frame is being
 * wrapped. If that thread returns from the frame meanwhile, the new frame object points
 * into its freed data stack, and the next read of it (f_code) crashes the process: a
 * sampler thread of ours segfaulted gunicorn gthread workers, as Sentry's and Datadog's
 * do (sentry-python #6119, dd-trace-py #13567). 3.12 runs collections only between
 * bytecodes, not inside an allocation; 3.10 has no lazily made frame objects.
 *
 * stacks() reads sys._current_frames() and walks f_back in one C call with collections
 * off (PyGC_Disable), and runs no Python code in between, so no other thread runs while
 * collections are off and none can switch them on or off meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

/* The frames of the stack whose innermost frame is `top`, innermost first. */
static PyObject *
chain(PyFrameObject *top)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    Py_INCREF(top);
    PyFrameObject *f = top;
    while (f != NULL) {
        if (PyList_Append(list, (PyObject *)f) < 0) {
            Py_DECREF(f);
            Py_DECREF(list);
            return NULL;
        }
        PyFrameObject *back = PyFrame_GetBack(f); /* new reference or NULL */
        Py_DECREF(f); /* the list holds it: never the last reference */
        f = back;
    }
    return list;
}

static PyObject *
collect(PyObject *want)
{
    PyObject *frames = _PyThread_CurrentFrames();
    if (frames == NULL) {
        return NULL;
    }
    PyObject *result = PyDict_New();
    if (result == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(frames, &pos, &key, &value)) {
        if (want != Py_None) {
            int wanted = PySequence_Contains(want, key);
            if (wanted < 0) {
                goto error;
            }
            if (!wanted) {
                continue;
            }
        }
        if (!PyFrame_Check(value)) {
            continue;
        }
        PyObject *stack = chain((PyFrameObject *)value);
        if (stack == NULL) {
            goto error;
        }
        int failed = PyDict_SetItem(result, key, stack);
        Py_DECREF(stack);
        if (failed < 0) {
            goto error;
        }
    }
    Py_DECREF(frames);
    return result;
error:
    Py_DECREF(frames);
    Py_DECREF(result);
    return NULL;
}

static PyObject *
stacks(PyObject *self, PyObject *args)
{
    PyObject *want = Py_None;
    if (!PyArg_ParseTuple(args, "|O:stacks", &want)) {
        return NULL;
    }
    if (want != Py_None && !PyAnySet_Check(want) && !PyTuple_Check(want)) {
        PyErr_SetString(PyExc_TypeError, "stacks() takes None, a set or a tuple of idents");
        return NULL;
    }
    int was_enabled = PyGC_Disable();
    PyObject *result = collect(want);
    if (was_enabled) {
        PyGC_Enable();
    }
    return result;
}

static PyMethodDef methods[] = {
    {"stacks", stacks, METH_VARARGS,
     "stacks(idents=None) -> {ident: [frame, ...innermost first]}, collections off."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_stacks", "Other threads' stacks, read with the GC off.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__stacks(void)
{
    return PyModule_Create(&module);
}
