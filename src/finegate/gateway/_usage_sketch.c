/* The usage monitor's prompt sketch in C: bottom-k of the word-trigram hashes of a text.
 *
 * `sketch(text, k, seed)` splits a str where `str.split()` does (Py_UNICODE_ISSPACE),
 * hashes each of its first 2,000 words (FNV-1a over the code points lowercased one by one
 * with Py_UNICODE_TOLOWER, seeded, then a 64-bit finalizer), combines each three
 * consecutive word hashes into a trigram hash and returns the k smallest distinct ones as a
 * frozenset of ints. A text of fewer than three words gives one hash of its words.
 * Lowercasing here rather than with `str.lower()` first saved a copy of the text and a
 * pass over it (~20% of the sketch's instructions); the two differ only where `str.lower()`
 * uses a full mapping (U+0130 becomes two characters, a final sigma another letter).
 *
 * The pure-Python sketch (`finegate.gateway.usage._sketch_py`) made ~650 str, tuple and
 * int objects per 2 KB prompt: ~40 us alone and, through the caches it evicted, ~60 us of
 * the gateway's CPU per request. This allocates three small buffers and the result. The reference
 * implementation of exactly this function is in tests/gateway/test_usage_sketch.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 2000
#define FNV_PRIME 0x100000001b3ULL
#define FNV_BASIS 0xcbf29ce484222325ULL

static inline uint64_t mix64(uint64_t x) {
    /* splitmix64's finalizer: every input bit reaches every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* str.split()'s separators and each character's simple lowercase mapping, for the first 256
 * code points (filled at import). */
static unsigned char space_table[256];
static Py_UCS4 lower_table[256];

static inline int is_space(Py_UCS4 c) {
    return c < 256 ? space_table[c] : Py_UNICODE_ISSPACE(c);
}

static inline Py_UCS4 to_lower(Py_UCS4 c) {
    return c < 256 ? lower_table[c] : Py_UNICODE_TOLOWER(c);
}

static inline uint64_t trigram(uint64_t a, uint64_t b, uint64_t c) {
    return mix64(mix64(mix64(a) ^ b) ^ c);
}

/* A max-heap of at most k distinct values with a membership table: the bottom-k values. */
typedef struct {
    uint64_t *heap;
    Py_ssize_t size, k;
    uint64_t *slots; /* open addressing, linear probing */
    unsigned char *used; /* per slot: 0 empty, 1 live, 2 deleted */
    Py_ssize_t mask, deleted;
} BottomK;

static Py_ssize_t bk_find(const BottomK *b, uint64_t x) {
    Py_ssize_t i = (Py_ssize_t)(x & (uint64_t)b->mask);
    while (b->used[i]) {
        if (b->used[i] == 1 && b->slots[i] == x) return i;
        i = (i + 1) & b->mask;
    }
    return -1;
}

static void bk_insert_slot(BottomK *b, uint64_t x) {
    Py_ssize_t i = (Py_ssize_t)(x & (uint64_t)b->mask);
    while (b->used[i] == 1) i = (i + 1) & b->mask;
    if (b->used[i] == 2) b->deleted--;
    b->used[i] = 1;
    b->slots[i] = x;
}

static void bk_rebuild_slots(BottomK *b) {
    memset(b->used, 0, (size_t)(b->mask + 1));
    b->deleted = 0;
    for (Py_ssize_t i = 0; i < b->size; i++) bk_insert_slot(b, b->heap[i]);
}

static void bk_sift_down(uint64_t *v, Py_ssize_t n) {
    Py_ssize_t root = 0;
    while (2 * root + 1 < n) {
        Py_ssize_t child = 2 * root + 1;
        if (child + 1 < n && v[child] < v[child + 1]) child++;
        if (v[root] >= v[child]) return;
        uint64_t t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

static void bk_add(BottomK *b, uint64_t x) {
    if (b->size == b->k && x >= b->heap[0]) return; /* most values, once the heap is full */
    if (bk_find(b, x) >= 0) return;
    if (b->size < b->k) {
        Py_ssize_t i = b->size++;
        b->heap[i] = x;
        while (i > 0 && b->heap[(i - 1) / 2] < b->heap[i]) { /* sift up */
            uint64_t t = b->heap[i];
            b->heap[i] = b->heap[(i - 1) / 2];
            b->heap[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else {
        Py_ssize_t gone = bk_find(b, b->heap[0]);
        b->used[gone] = 2;
        b->deleted++;
        b->heap[0] = x;
        bk_sift_down(b->heap, b->size);
        if (b->deleted > b->k) bk_rebuild_slots(b); /* keep probe runs short */
    }
    bk_insert_slot(b, x);
}

static PyObject *sketch(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t k;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "UnK", &text, &k, &seed)) return NULL;
    if (k < 1 || k > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "k must be between 1 and 2**20");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    uint64_t words[MAX_WORDS];
    Py_ssize_t nw = 0;
    uint64_t basis = FNV_BASIS ^ (uint64_t)seed;
    /* One loop per storage kind, so the character width is not decided per character; the
     * first 256 code points (all of most text) through tables. */
#define SPLIT_WORDS(TYPE)                                                   \
    do {                                                                    \
        const TYPE *s = (const TYPE *)data;                                 \
        for (Py_ssize_t i = 0; i < len && nw < MAX_WORDS;) {                \
            while (i < len && is_space(s[i])) i++;                          \
            if (i >= len) break;                                            \
            uint64_t h = basis;                                             \
            while (i < len && !is_space(s[i])) {                            \
                h = (h ^ (uint64_t)to_lower(s[i])) * FNV_PRIME;             \
                i++;                                                        \
            }                                                               \
            words[nw++] = mix64(h);                                         \
        }                                                                   \
    } while (0)
    if (kind == PyUnicode_1BYTE_KIND) SPLIT_WORDS(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND) SPLIT_WORDS(Py_UCS2);
    else SPLIT_WORDS(Py_UCS4);
#undef SPLIT_WORDS
    PyObject *out = PyFrozenSet_New(NULL);
    if (out == NULL) return NULL;
    uint64_t one = 0;
    uint64_t *values = &one;
    Py_ssize_t count = 1;
    BottomK b = {0};
    if (nw >= 3) {
        Py_ssize_t slots = 8;
        while (slots < 4 * k) slots *= 2;
        b.k = k;
        b.mask = slots - 1;
        b.heap = PyMem_Malloc((size_t)k * sizeof(uint64_t));
        b.slots = PyMem_Malloc((size_t)slots * sizeof(uint64_t));
        b.used = PyMem_Calloc((size_t)slots, 1);
        if (b.heap == NULL || b.slots == NULL || b.used == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i + 2 < nw; i++)
            bk_add(&b, trigram(words[i], words[i + 1], words[i + 2]));
        values = b.heap;
        count = b.size;
    } else {
        one = trigram(nw > 0 ? words[0] : 0, nw > 1 ? words[1] : 0, (uint64_t)nw);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(values[i]);
        if (v == NULL || PySet_Add(out, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    PyMem_Free(b.heap);
    PyMem_Free(b.slots);
    PyMem_Free(b.used);
    return out;
fail:
    PyMem_Free(b.heap);
    PyMem_Free(b.slots);
    PyMem_Free(b.used);
    Py_DECREF(out);
    return NULL;
}

/* HashCounts: how many remembered sketches hold each hash (a multiset of 64-bit values).
 *
 * The usage monitor adds each prompt's sketch, removes it when the prompt leaves the window
 * and asks, per prompt, how many of its hashes the window holds in all (`shared`). A dict
 * of Python ints did it with three 64-step Python-level loops per request (~10 us); this
 * keeps exact counts in an open-addressing table of machine integers. */
typedef struct {
    PyObject_HEAD
    uint64_t *keys;
    Py_ssize_t *counts;
    unsigned char *state; /* per slot: 0 empty, 1 live, 2 deleted */
    Py_ssize_t mask, live, deleted;
} HashCounts;

static int value_of(PyObject *item, uint64_t *out) {
    /* Any int of 64 bits, signed or not (C sketches are unsigned, Python's hashes signed;
     * one window holds one kind): values equal modulo 2**64 are one value. */
    if (PyLong_Check(item)) {
        /* PyLong_AsUnsignedLongLong goes through a byte array (~190 instructions for a
         * 64-bit value, three times per hash per request); the mask conversion reads the
         * digits, and is exact once the bit length shows the value in range. */
        size_t bits = _PyLong_NumBits(item);
        if (bits == (size_t)-1 && PyErr_Occurred()) return -1;
        if (bits <= (_PyLong_Sign(item) < 0 ? 63u : 64u)) {
            *out = (uint64_t)PyLong_AsUnsignedLongLongMask(item);
            return 0;
        }
    }
    unsigned long long u = PyLong_AsUnsignedLongLong(item);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        long long v = PyLong_AsLongLong(item);
        if (v == -1 && PyErr_Occurred()) return -1;
        u = (unsigned long long)v;
    }
    *out = (uint64_t)u;
    return 0;
}

static Py_ssize_t hc_slot(const HashCounts *t, uint64_t x) {
    /* The live slot of x, or -1. */
    Py_ssize_t i = (Py_ssize_t)(mix64(x) & (uint64_t)t->mask);
    while (t->state[i]) {
        if (t->state[i] == 1 && t->keys[i] == x) return i;
        i = (i + 1) & t->mask;
    }
    return -1;
}

static int hc_alloc(HashCounts *t, Py_ssize_t slots) {
    t->keys = PyMem_Malloc((size_t)slots * sizeof(uint64_t));
    t->counts = PyMem_Malloc((size_t)slots * sizeof(Py_ssize_t));
    t->state = PyMem_Calloc((size_t)slots, 1);
    if (t->keys == NULL || t->counts == NULL || t->state == NULL) {
        PyMem_Free(t->keys);
        PyMem_Free(t->counts);
        PyMem_Free(t->state);
        t->keys = NULL, t->counts = NULL, t->state = NULL;
        PyErr_NoMemory();
        return -1;
    }
    t->mask = slots - 1;
    t->live = t->deleted = 0;
    return 0;
}

static void hc_put_new(HashCounts *t, uint64_t x, Py_ssize_t count) {
    Py_ssize_t i = (Py_ssize_t)(mix64(x) & (uint64_t)t->mask);
    while (t->state[i] == 1) i = (i + 1) & t->mask;
    if (t->state[i] == 2) t->deleted--;
    t->state[i] = 1;
    t->keys[i] = x;
    t->counts[i] = count;
    t->live++;
}

static int hc_resize(HashCounts *t) {
    /* Room for at least twice the live values, tombstones dropped. */
    Py_ssize_t slots = 16;
    while (slots < 4 * (t->live + 1)) slots *= 2;
    HashCounts old = *t;
    if (hc_alloc(t, slots) < 0) {
        *t = old;
        return -1;
    }
    for (Py_ssize_t i = 0; i <= old.mask; i++)
        if (old.state[i] == 1) hc_put_new(t, old.keys[i], old.counts[i]);
    PyMem_Free(old.keys);
    PyMem_Free(old.counts);
    PyMem_Free(old.state);
    return 0;
}

static PyObject *HashCounts_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "HashCounts() takes no arguments");
        return NULL;
    }
    HashCounts *t = (HashCounts *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    if (hc_alloc(t, 16) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void HashCounts_dealloc(HashCounts *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->counts);
    PyMem_Free(t->state);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

/* Calls `step(t, value)` for each int of `values`; -1 on error. */
static int hc_each(HashCounts *t, PyObject *values, int (*step)(HashCounts *, uint64_t)) {
    PyObject *it = PyObject_GetIter(values);
    if (it == NULL) return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        uint64_t x;
        int rc = value_of(item, &x);
        Py_DECREF(item);
        if (rc < 0 || step(t, x) < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int hc_add_one(HashCounts *t, uint64_t x) {
    Py_ssize_t i = hc_slot(t, x);
    if (i >= 0) {
        t->counts[i]++;
        return 0;
    }
    if (2 * (t->live + t->deleted + 1) > t->mask + 1 && hc_resize(t) < 0) return -1;
    hc_put_new(t, x, 1);
    return 0;
}

static int hc_remove_one(HashCounts *t, uint64_t x) {
    Py_ssize_t i = hc_slot(t, x);
    if (i < 0) {
        PyErr_SetString(PyExc_KeyError, "a value that was not added");
        return -1;
    }
    if (--t->counts[i] == 0) {
        t->state[i] = 2;
        t->live--;
        t->deleted++;
    }
    return 0;
}

static PyObject *HashCounts_add(HashCounts *t, PyObject *values) {
    if (hc_each(t, values, hc_add_one) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *HashCounts_remove(HashCounts *t, PyObject *values) {
    if (hc_each(t, values, hc_remove_one) < 0) return NULL;
    if (t->deleted > t->live + 16 && hc_resize(t) < 0) return NULL; /* short probe runs */
    Py_RETURN_NONE;
}

static PyObject *HashCounts_shared(HashCounts *t, PyObject *values) {
    PyObject *it = PyObject_GetIter(values);
    if (it == NULL) return NULL;
    Py_ssize_t total = 0;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        uint64_t x;
        int rc = value_of(item, &x);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return NULL;
        }
        Py_ssize_t i = hc_slot(t, x);
        if (i >= 0) total += t->counts[i];
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromSsize_t(total);
}

static Py_ssize_t HashCounts_len(HashCounts *t) { return t->live; }

static PyMethodDef HashCounts_methods[] = {
    {"add", (PyCFunction)HashCounts_add, METH_O, "add(values): count each value once more."},
    {"remove", (PyCFunction)HashCounts_remove, METH_O,
     "remove(values): count each value once less (KeyError for one not held)."},
    {"shared", (PyCFunction)HashCounts_shared, METH_O,
     "shared(values) -> int: the sum of the counts of values."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods HashCounts_as_sequence = {.sq_length = (lenfunc)HashCounts_len};

static PyTypeObject HashCountsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "finegate.gateway._usage_sketch.HashCounts",
    .tp_doc = "How many times each 64-bit value was added (less removed); len: distinct values.",
    .tp_basicsize = sizeof(HashCounts),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = HashCounts_new,
    .tp_dealloc = (destructor)HashCounts_dealloc,
    .tp_methods = HashCounts_methods,
    .tp_as_sequence = &HashCounts_as_sequence,
};

static PyMethodDef methods[] = {
    {"sketch", sketch, METH_VARARGS,
     "sketch(text, k, seed) -> frozenset[int]: bottom-k word-trigram hashes of text."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_usage_sketch", "The usage monitor's prompt sketch in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__usage_sketch(void) {
    for (Py_UCS4 c = 0; c < 256; c++) {
        space_table[c] = (unsigned char)(Py_UNICODE_ISSPACE(c) != 0);
        lower_table[c] = Py_UNICODE_TOLOWER(c);
    }
    if (PyType_Ready(&HashCountsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&HashCountsType);
    if (PyModule_AddObject(m, "HashCounts", (PyObject *)&HashCountsType) < 0) {
        Py_DECREF(&HashCountsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
