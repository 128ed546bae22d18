/* Runs of a byte class: the leak detector's prefilter (`finegate.detect._leakage`) and the
 * JSON reader's check for integers beyond 64 bits (`finegate._json`); chains of a byte class
 * with short gaps: the scanner's screens for digit-shaped rules (`finegate.detect._pii`).
 *
 * `runs(data, table, shortest)` returns the (start, end) offsets of each maximal run of
 * bytes of `data` whose entry in the 256-byte `table` is nonzero and that is at least
 * `shortest` bytes long, in order. The leak prefilter found its base64 and hex runs with
 * the hyperscan pattern `(?:^|[^C])[C]{shortest}`, a bounded repeat that more than doubled
 * the cost of its scan (~5 of ~8 us per 2 KB answer, measured 2026-12-03); this looks at
 * a fraction of the bytes (below). The Python specification is in tests/detect/test_runs.py.
 *
 * `ChainSet(specs)`, specs `(id, member, gap, count, max_gap, before, lead)`, is called with
 * `data` and returns the ids of the chains it holds: `count` member bytes in a row, each
 * pair separated by at most `max_gap` gap bytes (the two classes disjoint), whose first
 * member is preceded by the start of `data` or by a byte not in `before`, optionally with
 * one `lead` byte in between (an empty `before`: anything may precede). A single-byte
 * `member` is searched with memchr instead of sampled. That is whether
 * `(?:^|[^B])L?M(?:G{0,max_gap}M){count-1}` matches: the phone, payment card and IPv6
 * prefilter fragments, whose bounded repeats were 2 of the 5.7 us of the rule set's
 * hyperscan scan of a 2 KB text (measured 2026-12-07). The specification is in
 * tests/detect/test_chains.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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

typedef struct {
    const unsigned char *member, *gap, *before, *lead; /* before, lead: NULL when unused */
    Py_ssize_t count, max_gap;
} Chain;

static inline int in_run(const Chain *c, unsigned char x) { return c->member[x] || c->gap[x]; }

/* Whether `i`, a member byte, may start a chain: preceded by the start, a byte not in
 * `before`, or a lead byte that is itself preceded by one of those. */
static inline int may_start(const Chain *c, const unsigned char *s, Py_ssize_t i) {
    if (c->before == NULL || i == 0 || !c->before[s[i - 1]]) return 1;
    return c->lead != NULL && c->lead[s[i - 1]] && (i == 1 || !c->before[s[i - 2]]);
}

/* Whether the run of member and gap bytes s[a:b] holds a chain. */
static int chain_in(const Chain *c, const unsigned char *s, Py_ssize_t a, Py_ssize_t b) {
    if (b - a < c->count) return 0;
    /* `have`: members of the current chain from its first possible start (0: none yet);
     * `gaps`: gap bytes since its last member (above max_gap: the chain broke). */
    Py_ssize_t have = 0, gaps = c->max_gap + 1;
    for (Py_ssize_t j = a; j < b; j++) {
        if (!c->member[s[j]]) {
            gaps++;
            continue;
        }
        if (gaps > c->max_gap) have = 0;
        if (have > 0) have++;
        else if (may_start(c, s, j)) have = 1;
        gaps = 0;
        if (have >= c->count) return 1;
    }
    return 0;
}

static int find_chain(const Chain *c, const unsigned char *s, Py_ssize_t n, int one_member) {
    Py_ssize_t last_end = 0, a, b;
    if (one_member) {
        /* One member byte (a colon): memchr finds each, and the run around it is read. */
        unsigned char m = 0;
        while (!c->member[m]) m++;
        const unsigned char *p = s;
        while ((p = memchr(p, m, (size_t)(n - (p - s)))) != NULL) {
            a = p - s;
            b = a + 1;
            while (a > last_end && in_run(c, s[a - 1])) a--;
            while (b < n && in_run(c, s[b])) b++;
            if (chain_in(c, s, a, b)) return 1;
            last_end = b;
            if (b >= n) break;
            p = s + b;
        }
        return 0;
    }
    /* A chain lies in a run of member and gap bytes at least `count` long; such runs are
     * found by sampling every `count`-th byte, as in `runs`. */
    Py_ssize_t i = c->count - 1;
    while (i < n) {
        if (!in_run(c, s[i])) {
            i += c->count;
            continue;
        }
        a = i;
        b = i + 1;
        while (a > last_end && in_run(c, s[a - 1])) a--;
        while (b < n && in_run(c, s[b])) b++;
        if (chain_in(c, s, a, b)) return 1;
        last_end = b;
        i = b + c->count;
    }
    return 0;
}

/* ChainSet: several chains, each with an id, asked in one call (`ChainSet(specs)(data)` ->
 * the ids of those found). The scanner asks its three screens of every text; one call with
 * the tables parsed once costs ~0.1 us where three calls taking the tables as buffer
 * arguments cost ~0.8 (each buffer acquired and released per call). */
typedef struct {
    Chain chain;
    Py_ssize_t id;
    int one_member;
    unsigned char tables[4][256]; /* member, gap, before, lead */
} OwnedChain;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    OwnedChain *chains;
} ChainSet;

/* Copy a table argument into `out` (a single byte: a table holding it); its length in `len`
 * (256, or 1 / 0 where allowed). */
static int table_of(PyObject *obj, unsigned char *out, int may_be_empty, int may_be_one,
                    Py_ssize_t *len) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_SIMPLE) < 0) return -1;
    int ok = b.len == 256 || (may_be_empty && b.len == 0) || (may_be_one && b.len == 1);
    if (!ok) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError,
                        "tables must be 256 bytes (member: or one byte; before, lead: or empty)");
        return -1;
    }
    memset(out, 0, 256);
    if (b.len == 256) memcpy(out, b.buf, 256);
    else if (b.len == 1) out[((const unsigned char *)b.buf)[0]] = 1;
    *len = b.len;
    PyBuffer_Release(&b);
    return 0;
}

static PyObject *ChainSet_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *specs;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "ChainSet takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O", &specs)) return NULL;
    PyObject *seq = PySequence_Fast(specs, "specs must be a sequence");
    if (seq == NULL) return NULL;
    ChainSet *self = (ChainSet *)type->tp_alloc(type, 0);
    if (self == NULL) goto fail;
    self->n = PySequence_Fast_GET_SIZE(seq);
    self->chains = PyMem_Calloc((size_t)(self->n ? self->n : 1), sizeof(OwnedChain));
    if (self->chains == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        OwnedChain *c = &self->chains[i];
        PyObject *member, *gap, *before, *lead;
        Py_ssize_t count, max_gap;
        static const char *spec = "nOOnnOO;a spec is (id, member, gap, count, max_gap, before, lead)";
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), spec, &c->id, &member, &gap, &count,
                              &max_gap, &before, &lead))
            goto fail;
        if (count < 1 || max_gap < 0) {
            PyErr_SetString(PyExc_ValueError, "count must be at least 1 and max_gap at least 0");
            goto fail;
        }
        Py_ssize_t member_len, gap_len, before_len, lead_len;
        if (table_of(member, c->tables[0], 0, 1, &member_len) < 0 ||
            table_of(gap, c->tables[1], 0, 0, &gap_len) < 0 ||
            table_of(before, c->tables[2], 1, 0, &before_len) < 0 ||
            table_of(lead, c->tables[3], 1, 0, &lead_len) < 0)
            goto fail;
        c->one_member = member_len == 1;
        c->chain.member = c->tables[0];
        c->chain.gap = c->tables[1];
        c->chain.before = before_len ? c->tables[2] : NULL;
        c->chain.lead = lead_len ? c->tables[3] : NULL;
        c->chain.count = count;
        c->chain.max_gap = max_gap;
    }
    Py_DECREF(seq);
    return (PyObject *)self;
fail:
    Py_DECREF(seq);
    Py_XDECREF(self);
    return NULL;
}

static void ChainSet_dealloc(ChainSet *self) {
    PyMem_Free(self->chains);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ChainSet_call(ChainSet *self, PyObject *args, PyObject *kwds) {
    Py_buffer data;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "a ChainSet takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < self->n; i++) {
        const OwnedChain *c = &self->chains[i];
        if (!find_chain(&c->chain, (const unsigned char *)data.buf, data.len, c->one_member))
            continue;
        PyObject *id = PyLong_FromSsize_t(c->id);
        if (id == NULL || PyList_Append(out, id) < 0) Py_CLEAR(out);
        Py_XDECREF(id);
    }
    PyBuffer_Release(&data);
    return out;
}

static PyTypeObject ChainSetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "finegate._runs.ChainSet",
    .tp_basicsize = sizeof(ChainSet),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChainSet(specs): specs are (id, member, gap, count, max_gap, before, lead); "
              "calling it with bytes returns the ids of the chains found, in spec order.",
    .tp_new = ChainSet_new,
    .tp_dealloc = (destructor)ChainSet_dealloc,
    .tp_call = (ternaryfunc)ChainSet_call,
};

static PyMethodDef methods[] = {
    {"runs", runs, METH_VARARGS,
     "runs(data, table, shortest) -> list[tuple[int, int]]: (start, end) of each maximal "
     "run of table bytes at least shortest long."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_runs",
    "Runs and chains of a byte class (encoded runs, digit runs, digit-shaped rules).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__runs(void) {
    if (PyType_Ready(&ChainSetType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ChainSetType);
    if (PyModule_AddObject(m, "ChainSet", (PyObject *)&ChainSetType) < 0) {
        Py_DECREF(&ChainSetType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
