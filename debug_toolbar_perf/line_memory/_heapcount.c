/* A counting allocator for the line-memory panel's "heap" reading.
 *
 * Why C: a line's figure must not depend on what the previous request freed (RSS does), nor
 * cost x3-x8 (tracemalloc), nor walk the heap per reading (glibc's mallinfo2() walks every
 * free block: 6-8 ms after a few dozen requests). Counting bytes as they are handed out and
 * given back is O(1) per allocation and per reading, and no published package does it.
 *
 * While installed (a traced request runs):
 *   - the raw domain is glibc's malloc, wrapped: each block adds its usable size to a
 *     process-wide counter and to the calling thread's own counter; each free subtracts it.
 *     malloc_usable_size() reads the block's own header, so blocks allocated before the
 *     switch are counted correctly when they are freed.
 *   - the object and mem domains allocate with that counting malloc (instead of pymalloc's
 *     arenas, which glibc cannot see) and keep pymalloc's own realloc and free: pymalloc
 *     hands any block outside its arenas to PyMem_RawRealloc/PyMem_RawFree, i.e. to the
 *     counting raw domain. So every object is freed by the allocator that made it.
 * Only installed over CPython's own allocators ("pymalloc" or "malloc" by name: no debug
 * hooks, no tracemalloc, no other tool's hook) in a process with one interpreter (pymalloc's
 * block count, which blocks made here unbalance, decides an isolated subinterpreter's arena
 * teardown from 3.13), never on a free-threaded build (mimalloc).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if defined(__APPLE__)
#include <malloc/malloc.h>
#define USABLE(p) malloc_size(p)
#elif defined(__GLIBC__) && defined(__x86_64__)
#include <malloc.h>
/* What malloc_usable_size() returns, read from the chunk's size word just before the block:
 * malloc_usable_size() also reads the next chunk's header (a cache miss on most frees), which
 * cost the XSS demo page x1.30 against x1.18 (3.13, with the TLS model below). Layout: glibc's
 * size word, flags in the low 3 bits; an mmapped chunk (flag 2) has a two-word header. */
static inline size_t
glibc_usable(void *p)
{
    size_t size = ((size_t *)p)[-1];
    return (size & ~(size_t)7) - ((size & 2) ? 2 * sizeof(size_t) : sizeof(size_t));
}
#define USABLE(p) glibc_usable(p)
#else
#include <malloc.h>
#define USABLE(p) malloc_usable_size(p)
#endif

/* Exported by CPython 3.10-3.13, not declared in the public headers: the allocator's name
 * ("pymalloc", "malloc", "pymalloc_debug"...; NULL when it is none of CPython's own). */
extern const char *_PyMem_GetCurrentAllocatorName(void);

static long long total; /* process-wide: atomic adds (the raw domain runs without the GIL) */
/* This thread's allocations minus its frees. initial-exec: the default model for a dlopen'ed
 * module calls __tls_get_addr() on every access; where glibc has no static TLS left for it,
 * the import fails and the panel measures RSS, saying why. */
static __thread long long own __attribute__((tls_model("initial-exec")));
static PyMemAllocatorEx raw_orig, obj_orig, mem_orig, raw_ours, obj_ours;
static int installed;

static inline void
add(long long n)
{
    own += n;
    __atomic_fetch_add(&total, n, __ATOMIC_RELAXED);
}

static void *
count_malloc(void *ctx, size_t size)
{
    void *p = raw_orig.malloc(raw_orig.ctx, size);
    if (p != NULL) {
        add((long long)USABLE(p));
    }
    return p;
}

static void *
count_calloc(void *ctx, size_t nelem, size_t elsize)
{
    void *p = raw_orig.calloc(raw_orig.ctx, nelem, elsize);
    if (p != NULL) {
        add((long long)USABLE(p));
    }
    return p;
}

static void *
count_realloc(void *ctx, void *ptr, size_t size)
{
    long long before = ptr != NULL ? (long long)USABLE(ptr) : 0;
    void *p = raw_orig.realloc(raw_orig.ctx, ptr, size);
    if (p != NULL) {
        add((long long)USABLE(p) - before);
    }
    return p;
}

static void
count_free(void *ctx, void *ptr)
{
    if (ptr != NULL) {
        add(-(long long)USABLE(ptr));
    }
    raw_orig.free(raw_orig.ctx, ptr);
}

static int
same(const PyMemAllocatorEx *a, const PyMemAllocatorEx *b)
{
    return a->ctx == b->ctx && a->malloc == b->malloc && a->calloc == b->calloc &&
           a->realloc == b->realloc && a->free == b->free;
}

PyDoc_STRVAR(install_doc,
"install() -> bool\n\nCount: wrap the raw domain and send objects to it. False (nothing done)\n"
"when the allocator is not CPython's own pymalloc or malloc (debug hooks, tracemalloc, another\n"
"tool's hook), another interpreter exists, the build is free-threaded, or it is installed.");

static PyObject *
install(PyObject *module, PyObject *unused)
{
    PyMemAllocatorEx raw, mem, obj;
    const char *name;
#ifdef Py_GIL_DISABLED
    Py_RETURN_FALSE;
#endif
    if (installed) {
        Py_RETURN_FALSE;
    }
    name = _PyMem_GetCurrentAllocatorName();
    if (name == NULL || (strcmp(name, "pymalloc") != 0 && strcmp(name, "malloc") != 0)) {
        Py_RETURN_FALSE;
    }
    if (PyInterpreterState_Next(PyInterpreterState_Head()) != NULL) {
        Py_RETURN_FALSE;
    }
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    if (raw.ctx != NULL || mem.ctx != NULL || obj.ctx != NULL || !same(&mem, &obj)) {
        Py_RETURN_FALSE;
    }
    raw_orig = raw;
    mem_orig = mem;
    obj_orig = obj;
    raw_ours = (PyMemAllocatorEx){NULL, count_malloc, count_calloc, count_realloc, count_free};
    if (obj.malloc == raw.malloc) {
        /* PYTHONMALLOC=malloc: objects are malloc'd already; count all four. */
        obj_ours = raw_ours;
    }
    else {
        obj_ours = (PyMemAllocatorEx){NULL, count_malloc, count_calloc, obj.realloc, obj.free};
    }
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw_ours);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &obj_ours);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj_ours);
    installed = 1;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(uninstall_doc,
"uninstall() -> bool\n\nGive the allocators back. When another tool replaced one meanwhile\n"
"(tracemalloc wraps the allocator it finds), leave them all and return False: the wrapper\n"
"calls ours, so both stay correct.");

static PyObject *
uninstall(PyObject *module, PyObject *unused)
{
    PyMemAllocatorEx raw, mem, obj;
    if (!installed) {
        Py_RETURN_FALSE;
    }
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    if (!same(&raw, &raw_ours) || !same(&mem, &obj_ours) || !same(&obj, &obj_ours)) {
        Py_RETURN_FALSE;
    }
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj_orig);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem_orig);
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw_orig);
    installed = 0;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(total_doc, "total() -> int\n\nBytes counted in use, process-wide.");

static PyObject *
total_bytes(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(__atomic_load_n(&total, __ATOMIC_RELAXED));
}

PyDoc_STRVAR(own_doc, "own() -> int\n\nBytes the calling thread allocated minus those it freed.");

static PyObject *
own_bytes(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(own);
}

PyDoc_STRVAR(installed_doc, "installed() -> bool");

static PyObject *
is_installed(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(installed);
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, install_doc},
    {"uninstall", uninstall, METH_NOARGS, uninstall_doc},
    {"total", total_bytes, METH_NOARGS, total_doc},
    {"own", own_bytes, METH_NOARGS, own_doc},
    {"installed", is_installed, METH_NOARGS, installed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_heapcount",
    "A counting allocator: bytes in use, process-wide and per thread, read in O(1).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__heapcount(void)
{
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    if (m != NULL) {
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED); /* install() refuses there */
    }
#endif
    return m;
}
