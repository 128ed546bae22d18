/* Runs of a byte class, for the leak detector's prefilter (`finegate.detect._leakage`).
 *
 * `runs(data, table, shortest)` returns the (start, end) offsets of each maximal run of
 * bytes of `data` whose entry in the 256-byte `table` is nonzero and that is at least
 * `shortest` bytes long, in order. The leak prefilter found its base64 and hex runs with
 * the hyperscan pattern `(?:^|[^C])[C]{shortest}`, a bounded repeat that more than doubled
 * the cost of its scan (~5 of ~8 us per 2 KB answer, measured 2026-12-03); this is one
 * table lookup per byte (~1 us per 2 KB). The Python specification is in
 * tests/detect/test_runs.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int append_span(PyObject *out, Py_ssize_t start, Py_ssize_t end) {
    PyObject *span = Py_BuildValue("(nn)", start, end);
    if (span == NULL) return -1;
    int rc = PyList_Append(out, span);
    Py_DECREF(span);
    return rc;
}

static PyObject *runs(PyObject *self, PyObject *args) {
    Py_buffer data, table;
    Py_ssize_t shortest;
    if (!PyArg_ParseTuple(args, "y*y*n", &data, &table, &shortest)) return NULL;
    PyObject *out = NULL;
    if (table.len != 256) {
        PyErr_SetString(PyExc_ValueError, "table must be 256 bytes");
        goto done;
    }
    if (shortest < 1) {
        PyErr_SetString(PyExc_ValueError, "shortest must be at least 1");
        goto done;
    }
    out = PyList_New(0);
    if (out == NULL) goto done;
    const unsigned char *s = (const unsigned char *)data.buf;
    const unsigned char *in = (const unsigned char *)table.buf;
    Py_ssize_t n = data.len, start = 0;
    /* `start`: where the current run began (one past the last byte outside the class). The
     * class is not branched on: prose changes class at every word, and a loop that branched
     * on it mispredicted at every word; the one branch is taken only at a long run's end. */
    for (Py_ssize_t i = 0; i < n; i++) {
        int member = in[s[i]] != 0;
        if ((!member) & (i - start >= shortest)) {
            if (append_span(out, start, i) < 0) {
                Py_CLEAR(out);
                goto done;
            }
        }
        start = member ? start : i + 1;
    }
    if (n - start >= shortest && append_span(out, start, n) < 0) Py_CLEAR(out);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&table);
    return out;
}

static PyMethodDef methods[] = {
    {"runs", runs, METH_VARARGS,
     "runs(data, table, shortest) -> list[tuple[int, int]]: (start, end) of each maximal "
     "run of table bytes at least shortest long."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_runs", "Runs of a byte class (the leak prefilter's encoded runs).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__runs(void) { return PyModule_Create(&module); }
