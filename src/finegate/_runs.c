/* Runs of a byte class: the leak detector's prefilter (`finegate.detect._leakage`) and the
 * JSON reader's check for integers beyond 64 bits (`finegate._json`).
 *
 * `runs(data, table, shortest)` returns the (start, end) offsets of each maximal run of
 * bytes of `data` whose entry in the 256-byte `table` is nonzero and that is at least
 * `shortest` bytes long, in order. The leak prefilter found its base64 and hex runs with
 * the hyperscan pattern `(?:^|[^C])[C]{shortest}`, a bounded repeat that more than doubled
 * the cost of its scan (~5 of ~8 us per 2 KB answer, measured 2026-12-03); this looks at
 * a fraction of the bytes (below). The Python specification is in tests/detect/test_runs.py.
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
    Py_ssize_t n = data.len, last_end = 0;
    /* Only every `shortest`-th byte is looked at until one is in the class: a run at least
     * `shortest` long holds one of them. From each such byte the run is followed both ways
     * (never back past the previous run's end), and sampling goes on `shortest` bytes past
     * its end, where the next run's first `shortest` bytes end at the earliest. Text with
     * few class bytes (digits in prose) costs a byte in `shortest`; prose against the
     * base64 class a few per word, not one per byte. */
    if (shortest > n) goto done; /* no run fits (and `i` below cannot overflow) */
    Py_ssize_t i = shortest - 1;
    while (i < n) {
        if (!in[s[i]]) {
            i += shortest;
            continue;
        }
        Py_ssize_t a = i, b = i + 1;
        while (a > last_end && in[s[a - 1]]) a--;
        while (b < n && in[s[b]]) b++;
        if (b - a >= shortest && append_span(out, a, b) < 0) {
            Py_CLEAR(out);
            goto done;
        }
        last_end = b;
        i = b + shortest;
    }
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
    PyModuleDef_HEAD_INIT, "_runs", "Runs of a byte class (encoded runs, digit runs).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__runs(void) { return PyModule_Create(&module); }
