/*
 * Exact vector search (vector.h): the packed in-memory arrays of vector
 * indexes, kept in step with committed writes, and the scan over them.
 *
 * It must never show a search anything but its own snapshot (rows carry
 * the versions between which they are visible; what the cache cannot
 * answer exactly is answered from the documents), never make a commit wait
 * for a scan (the commit hook takes only `pend_lock`), and never return
 * more than HD_VECTOR_MAX_LIMIT results.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "keycodec.h"
#include "store_priv.h"
#include "vector.h"

#define LANES         16 /* floats per step of the scan; rows are padded to it */
#define NEVER         UINT64_MAX
#define MAX_PENDING   65536
#define MAP_EMPTY     0u
#define MAP_TOMBSTONE UINT32_MAX

typedef struct pending {
    uint8_t id[HERALD_ID_BYTES];
    uint64_t version;
} pending;

/* The state of `id` seen by snapshots in [from, to) is in no row: read it from the snapshot. */
typedef struct gap {
    uint8_t id[HERALD_ID_BYTES];
    uint64_t from, to;
} gap;

#define MAX_GAPS 65536

/* One vector index's packed rows. */
typedef struct vec_slot {
    const hd_table *tab;                 /* owned by the store, valid for `schema` */
    const herald_vector_index_def *def;  /* owned by the store's schema */
    size_t stride;                       /* floats per row: dimensions rounded up to LANES */
    bool built;
    bool stale; /* under pend_lock: the notes overflowed, rebuild before use */
    uint64_t applied;       /* pending writes up to this version are in the rows */
    uint64_t complete_from; /* snapshots older than this are answered from the documents */
    gap *gaps;              /* states no row holds (dropped, or between two applied writes) */
    size_t ngaps, capgaps;
    uint64_t dropped;       /* notes up to this version were dropped: build only past it */
    size_t n, cap, dead;
    float *vec; /* n * stride, 64-byte aligned, unit length */
    uint8_t (*ids)[HERALD_ID_BYTES];
    uint64_t *born, *died; /* visible to snapshots v with born <= v < died */
    uint32_t *foff, *flen; /* n * nfilter_fields: encoded filter values in `pool` */
    hd_buf pool;
    uint32_t *map; /* open addressing: live row + 1 by id */
    size_t map_cap, map_used;
    pending *pend; /* writes noted by commits, not yet applied; under pend_lock */
    size_t npend, cappend;
} vec_slot;

struct hd_vecstore {
    pthread_rwlock_t lock;      /* the rows of every slot */
    pthread_mutex_t pend_lock;  /* the pending lists, `schema` and the slot list */
    const herald_schema *schema; /* the slots were made for it */
    uint64_t dropped;            /* notes the hook could not keep, for slots to come */
    vec_slot *slots;
    size_t nslots;
};

/* ------------------------------------------------------------- the scan */

/*
 * The scan's inner loop: GCC's generic vectors (16 floats) keep four
 * accumulators in registers, one multiply and one add per 16 floats, and
 * become SSE, AVX2 or AVX-512 instructions as the clone chosen at load
 * time allows (target_clones: one binary for every x86-64). A plain
 * `for` with a float sum is not vectorised without -ffast-math (it may not
 * reorder the sum), and sixteen scalar partial sums are, but through the
 * stack (docs/performance.md, "Vector search").
 */
typedef float v16 __attribute__((vector_size(LANES * sizeof(float))));

/* By pointer: a 64-byte vector passed by value would change the ABI. */
static inline float hsum(const v16 *v)
{
    float s = 0;
    for (size_t j = 0; j < LANES; j++)
        s += (*v)[j];
    return s;
}

/*
 * Not under sanitizers: their instrumented ifunc resolver runs before they
 * start. GCC says so with __SANITIZE_*__, clang with __has_feature.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define HD_SANITIZED 1
#endif
#endif
/* GCC only: clang names the clones' dispatcher otherwise, and callers outside miss it. */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(HD_SANITIZED) && \
    !defined(__clang__)
#if __has_attribute(target_clones) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define SCAN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SCAN_CLONES
#define SCAN_CLONES
#endif

SCAN_CLONES
void hd__vector_dots(const float *q, const float *rows, size_t stride, const uint32_t *which,
                     size_t n, float *scores)
{
    for (size_t r = 0; r < n; r++) {
        const float *b = rows + (size_t)which[r] * stride;
        /* Four chains of adds, named so that they stay in registers: one
         * chain waits on the add latency and reads at half the speed. */
        v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x, y;
        size_t i = 0;
        for (; i + 4 * LANES <= stride; i += 4 * LANES) {
            memcpy(&x, q + i, sizeof x);
            memcpy(&y, b + i, sizeof y);
            a0 += x * y;
            memcpy(&x, q + i + LANES, sizeof x);
            memcpy(&y, b + i + LANES, sizeof y);
            a1 += x * y;
            memcpy(&x, q + i + 2 * LANES, sizeof x);
            memcpy(&y, b + i + 2 * LANES, sizeof y);
            a2 += x * y;
            memcpy(&x, q + i + 3 * LANES, sizeof x);
            memcpy(&y, b + i + 3 * LANES, sizeof y);
            a3 += x * y;
        }
        for (; i < stride; i += LANES) {
            memcpy(&x, q + i, sizeof x);
            memcpy(&y, b + i, sizeof y);
            a0 += x * y;
        }
        a0 += a1;
        a2 += a3;
        a0 += a2;
        scores[r] = hsum(&a0);
    }
}

static float dot(const float *q, const float *row, size_t stride)
{
    uint32_t zero = 0;
    float s;
    hd__vector_dots(q, row, stride, &zero, 1, &s);
    return s;
}

/* ------------------------------------------------------------- rows */

static void slot_clear(vec_slot *sl)
{
    free(sl->vec);
    free(sl->ids);
    free(sl->born);
    free(sl->died);
    free(sl->foff);
    free(sl->flen);
    free(sl->map);
    free(sl->gaps);
    hd__buf_free(&sl->pool);
    sl->gaps = NULL;
    sl->ngaps = sl->capgaps = 0;
    sl->vec = NULL;
    sl->ids = NULL;
    sl->born = sl->died = NULL;
    sl->foff = sl->flen = NULL;
    sl->map = NULL;
    sl->n = sl->cap = sl->dead = sl->map_cap = sl->map_used = 0;
    sl->built = false;
}

static uint64_t id_hash(const uint8_t id[HERALD_ID_BYTES])
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < HERALD_ID_BYTES; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    return h ^ h >> 29;
}

/* The live row of `id` (its map slot in *at), or SIZE_MAX. */
static size_t map_find(const vec_slot *sl, const uint8_t id[HERALD_ID_BYTES], size_t *at)
{
    if (!sl->map_cap) return SIZE_MAX;
    size_t mask = sl->map_cap - 1;
    for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
        uint32_t e = sl->map[i];
        if (e == MAP_EMPTY) return SIZE_MAX;
        if (e != MAP_TOMBSTONE && !memcmp(sl->ids[e - 1], id, HERALD_ID_BYTES)) {
            if (at) *at = i;
            return e - 1;
        }
    }
}

static void map_insert(vec_slot *sl, size_t row)
{
    size_t mask = sl->map_cap - 1;
    size_t i = id_hash(sl->ids[row]) & mask;
    while (sl->map[i] != MAP_EMPTY && sl->map[i] != MAP_TOMBSTONE)
        i = (i + 1) & mask;
    if (sl->map[i] == MAP_EMPTY) sl->map_used++;
    sl->map[i] = (uint32_t)row + 1;
}

/* Rebuilds the map of live rows with room for `want` of them. */
static int map_rebuild(vec_slot *sl, size_t want)
{
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    uint32_t *m = calloc(cap, sizeof *m);
    if (!m) return HERALD_ENOMEM;
    free(sl->map);
    sl->map = m;
    sl->map_cap = cap;
    sl->map_used = 0;
    for (size_t r = 0; r < sl->n; r++)
        if (sl->died[r] == NEVER) map_insert(sl, r);
    return 0;
}

/*
 * Room for the packed rows. Past 2 MiB they are asked for in huge pages
 * (transparent huge pages in madvise mode): a scan of hundreds of MB then
 * walks 2 MiB pages instead of 4 KiB ones; a probe on the development
 * machine summed 614 MB at ~16 GB/s against ~13.5 (docs/performance.md).
 */
static float *rows_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return aligned_alloc(64, bytes);
    bytes = (bytes + huge - 1) / huge * huge;
    float *p = aligned_alloc(huge, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static int grow_rows(vec_slot *sl)
{
    size_t cap = sl->cap ? sl->cap * 2 : 256, nf = sl->def->nfilter_fields;
    float *vec = rows_alloc(cap * sl->stride * sizeof(float));
    if (!vec) return HERALD_ENOMEM;
    if (sl->n) memcpy(vec, sl->vec, sl->n * sl->stride * sizeof(float));
    free(sl->vec);
    sl->vec = vec;
    void *p;
    if (!(p = realloc(sl->ids, cap * sizeof *sl->ids))) return HERALD_ENOMEM;
    sl->ids = p;
    if (!(p = realloc(sl->born, cap * sizeof *sl->born))) return HERALD_ENOMEM;
    sl->born = p;
    if (!(p = realloc(sl->died, cap * sizeof *sl->died))) return HERALD_ENOMEM;
    sl->died = p;
    if (nf) {
        if (!(p = realloc(sl->foff, cap * nf * sizeof *sl->foff))) return HERALD_ENOMEM;
        sl->foff = p;
        if (!(p = realloc(sl->flen, cap * nf * sizeof *sl->flen))) return HERALD_ENOMEM;
        sl->flen = p;
    }
    sl->cap = cap;
    return 0;
}

/*
 * Documents are read in their stored encoding (keycodec.h), never decoded
 * into values: a vector of 1,536 numbers would be 1,536 allocations. A
 * field's encoded bytes are also what a filter compares (keycodec is
 * canonical: equal values, equal bytes).
 */

/* Length of the escaped string at p (its 00 01 end included), or 0. */
static size_t escaped_len(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != 0) continue;
        if (p[i + 1] == 0x01) return i + 2;
        if (p[i + 1] != 0xFF) return 0;
        i++;
    }
    return 0;
}

/* Length of the encoded value at p, or 0 when it is malformed. */
static size_t value_len(const uint8_t *p, size_t n, int depth)
{
    if (n < 1 || depth > HERALD_MAX_DEPTH) return 0;
    switch (p[0]) {
    case HERALD_UNDEFINED + 1:
    case HERALD_NULL + 1:
        return 1;
    case HERALD_INT64 + 1:
    case HERALD_FLOAT64 + 1:
        return n >= 9 ? 9 : 0;
    case HERALD_BOOLEAN + 1:
        return n >= 2 ? 2 : 0;
    case HERALD_STRING + 1:
    case HERALD_BYTES + 1: {
        size_t k = escaped_len(p + 1, n - 1);
        return k ? 1 + k : 0;
    }
    case HERALD_ARRAY + 1:
    case HERALD_OBJECT + 1:
        for (size_t at = 1; at < n;) {
            if (p[at] == 0x00) return at + 1;
            if (p[0] == HERALD_OBJECT + 1) {
                size_t k = p[at] == 0x01 ? escaped_len(p + at + 1, n - at - 1) : 0;
                if (!k) return 0;
                at += 1 + k;
            }
            /* Numbers inline: a vector is 1,536 of them. */
            size_t v = (p[at] == HERALD_FLOAT64 + 1 || p[at] == HERALD_INT64 + 1) && n - at >= 9
                           ? 9
                           : value_len(p + at, n - at, depth + 1);
            if (!v) return 0;
            at += v;
        }
        return 0;
    default:
        return 0;
    }
}

/*
 * The encoded value at dotted `path` in the encoded object p (n bytes):
 * its start, with its length in *len; NULL when a step is missing or not
 * an object (herald_value_path's rule).
 */
static const uint8_t *field_at(const uint8_t *p, size_t n, const char *path, size_t *len)
{
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t seg = dot ? (size_t)(dot - path) : strlen(path);
        if (n < 1 || p[0] != HERALD_OBJECT + 1) return NULL;
        const uint8_t *found = NULL;
        size_t at = 1, vlen = 0;
        while (at < n && p[at] == 0x01 && !found) {
            size_t k = escaped_len(p + at + 1, n - at - 1);
            if (!k) return NULL;
            /* Keys hold no 0x00, so a key's escaped form is its bytes and 00 01. */
            bool match = k == seg + 2 && !memcmp(p + at + 1, path, seg);
            at += 1 + k;
            vlen = value_len(p + at, n - at, 0);
            if (!vlen) return NULL;
            if (match) found = p + at;
            at += vlen;
        }
        if (!found) return NULL;
        if (!dot) {
            *len = vlen;
            return found;
        }
        p = found;
        n = vlen;
        path = dot + 1;
    }
}

static double number_at(const uint8_t *p)
{
    uint64_t u;
    memcpy(&u, p + 1, sizeof u);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    u = __builtin_bswap64(u); /* big-endian in the encoding */
#endif
    if (p[0] == HERALD_INT64 + 1) return (double)(int64_t)(u ^ (1ULL << 63));
    u = (u >> 63) ? u & ~(1ULL << 63) : ~u;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/*
 * What a stored document (p, n: its encoding) contributes to a vector
 * index: its vector, unit length and padded, into `out` (stride floats)
 * and its filter values, encoded, appended to `enc` with their lengths in
 * `flen`. Returns 1 when the document is in the index, 0 when not (no
 * vector field, a vector of another length, something not a finite number
 * in it, all zero), or HERALD_ENOMEM.
 */
static int extract(const herald_vector_index_def *def, size_t stride, const uint8_t *p, size_t n,
                   float *out, hd_buf *enc, uint32_t *flen)
{
    size_t len;
    const uint8_t *v = field_at(p, n, def->vector_field, &len);
    size_t dims = (size_t)def->dimensions;
    /* An array of exactly `dims` numbers: tag, 9 bytes each, the end. */
    if (!v || v[0] != HERALD_ARRAY + 1 || len != 2 + 9 * dims) return 0;
    double norm = 0;
    for (size_t i = 0; i < dims; i++) {
        const uint8_t *x = v + 1 + 9 * i;
        if (x[0] != HERALD_FLOAT64 + 1 && x[0] != HERALD_INT64 + 1) return 0;
        double d = number_at(x);
        if (!isfinite(d)) return 0;
        out[i] = (float)d;
        norm += d * d;
    }
    if (!(norm > 0) || !isfinite(norm)) return 0;
    double scale = 1 / sqrt(norm);
    for (size_t i = 0; i < dims; i++)
        out[i] = (float)(number_at(v + 1 + 9 * i) * scale);
    for (size_t i = dims; i < stride; i++)
        out[i] = 0;
    for (size_t k = 0; k < def->nfilter_fields; k++) {
        size_t flen_k;
        const uint8_t *f = field_at(p, n, def->filter_fields[k], &flen_k);
        static const uint8_t undefined = HERALD_UNDEFINED + 1;
        if (!f) {
            f = &undefined;
            flen_k = 1;
        }
        hd__buf_append(enc, f, flen_k);
        flen[k] = (uint32_t)flen_k;
    }
    return enc->failed ? HERALD_ENOMEM : 1;
}

/* Appends the row of a stored document (if it is in the index) visible from `born`. */
static int add_row(vec_slot *sl, const uint8_t id[HERALD_ID_BYTES], const MDB_val *doc,
                   uint64_t born)
{
    if (sl->n == sl->cap && grow_rows(sl)) return HERALD_ENOMEM;
    size_t r = sl->n, nf = sl->def->nfilter_fields;
    size_t pool_before = sl->pool.len;
    uint32_t lens[64];
    uint32_t *flen = nf <= 64 ? lens : sl->flen + r * nf;
    int got = extract(sl->def, sl->stride, doc->mv_data, doc->mv_size, sl->vec + r * sl->stride,
                      &sl->pool, flen);
    if (got <= 0) {
        sl->pool.len = pool_before;
        return got;
    }
    if (sl->pool.len > UINT32_MAX) return HERALD_ENOMEM;
    size_t off = pool_before;
    for (size_t k = 0; k < nf; k++) {
        sl->flen[r * nf + k] = flen[k];
        sl->foff[r * nf + k] = (uint32_t)off;
        off += flen[k];
    }
    memcpy(sl->ids[r], id, HERALD_ID_BYTES);
    sl->born[r] = born;
    sl->died[r] = NEVER;
    sl->n++;
    if ((sl->map_used + 1) * 2 > sl->map_cap) return map_rebuild(sl, sl->n - sl->dead + 1);
    map_insert(sl, r);
    return 0;
}

/*
 * Records that snapshots in [from, to) must read `id` from the documents.
 * When the list is full its older half goes, and those snapshots are then
 * answered from the documents altogether (complete_from).
 */
static void gap_add(vec_slot *sl, const uint8_t id[HERALD_ID_BYTES], uint64_t from, uint64_t to)
{
    if (from >= to || to <= sl->complete_from) return;
    if (sl->ngaps == MAX_GAPS) {
        size_t half = MAX_GAPS / 2;
        for (size_t i = 0; i < half; i++)
            if (sl->complete_from < sl->gaps[i].to) sl->complete_from = sl->gaps[i].to;
        memmove(sl->gaps, sl->gaps + half, (sl->ngaps - half) * sizeof *sl->gaps);
        sl->ngaps -= half;
    }
    if (sl->ngaps == sl->capgaps) {
        size_t cap = sl->capgaps ? sl->capgaps * 2 : 64;
        gap *g = realloc(sl->gaps, cap * sizeof *g);
        if (!g) {
            if (sl->complete_from < to) sl->complete_from = to;
            return;
        }
        sl->gaps = g;
        sl->capgaps = cap;
    }
    gap *g = &sl->gaps[sl->ngaps++];
    memcpy(g->id, id, HERALD_ID_BYTES);
    g->from = from;
    g->to = to;
}

/* Drops the rows that died, once they are a quarter of all; older snapshots find them in gaps. */
static int compact(vec_slot *sl)
{
    if (sl->dead < 256 || sl->dead * 4 < sl->n) return 0;
    size_t nf = sl->def->nfilter_fields, w = 0;
    hd_buf pool = HD_BUF_INIT;
    for (size_t r = 0; r < sl->n; r++) {
        if (sl->died[r] != NEVER) {
            gap_add(sl, sl->ids[r], sl->born[r], sl->died[r]);
            continue;
        }
        if (w != r) {
            memcpy(sl->vec + w * sl->stride, sl->vec + r * sl->stride,
                   sl->stride * sizeof(float));
            memcpy(sl->ids[w], sl->ids[r], HERALD_ID_BYTES);
            sl->born[w] = sl->born[r];
            sl->died[w] = NEVER;
        }
        for (size_t k = 0; k < nf; k++) {
            sl->foff[w * nf + k] = (uint32_t)pool.len;
            sl->flen[w * nf + k] = sl->flen[r * nf + k];
            hd__buf_append(&pool, sl->pool.p + sl->foff[r * nf + k], sl->flen[r * nf + k]);
        }
        w++;
    }
    if (pool.failed) {
        hd__buf_free(&pool);
        return HERALD_ENOMEM;
    }
    hd__buf_free(&sl->pool);
    sl->pool = pool;
    sl->n = w;
    sl->dead = 0;
    return map_rebuild(sl, w + 1);
}

/* Fills an empty slot from the documents of snapshot `t`. */
static int build(vec_slot *sl, herald_txn *t, herald_error *err)
{
    slot_clear(sl);
    int rc = map_rebuild(sl, 1024);
    MDB_cursor *cur = NULL;
    if (!rc && (rc = mdb_cursor_open(t->txn, t->s->docs, &cur)))
        rc = hd__mdb_fail(err, rc, "scanning a table");
    else if (rc)
        rc = herald_fail(err, rc, "out of memory");
    /* The table's documents: ids that start with its number. */
    uint8_t prefix[4];
    hd__put_be32(prefix, sl->tab->number);
    MDB_val k = {4, prefix}, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; !rc && mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != HERALD_ID_BYTES || memcmp(k.mv_data, prefix, 4)) break;
        if ((rc = add_row(sl, k.mv_data, &v, 0))) rc = herald_fail(err, rc, "out of memory");
    }
    if (!rc && mrc && mrc != MDB_NOTFOUND) rc = hd__mdb_fail(err, mrc, "scanning a table");
    if (cur) mdb_cursor_close(cur);
    if (rc) {
        slot_clear(sl);
        return rc;
    }
    sl->built = true;
    sl->applied = sl->complete_from = t->version;
    return 0;
}

/*
 * Reads one stored document from `t` into *doc (LMDB's memory, valid while
 * `t` is): 1 found, 0 gone, or an error.
 */
static int read_doc(herald_txn *t, const uint8_t id[HERALD_ID_BYTES], MDB_val *doc,
                    herald_error *err)
{
    MDB_val k = {HERALD_ID_BYTES, (void *)id};
    int rc = mdb_get(t->txn, t->s->docs, &k, doc);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return hd__mdb_fail(err, rc, "reading a document");
    return 1;
}

static int pending_cmp(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    int c = memcmp(x->id, y->id, HERALD_ID_BYTES);
    if (c) return c;
    return x->version < y->version ? -1 : x->version > y->version;
}

/*
 * Applies the noted writes up to the snapshot `t` (a read snapshot): each
 * written document's row dies at its first write, and its state in `t`
 * (if it is in the index) is born at its last. Called with the write lock.
 */
static int apply(hd_vecstore *vs, vec_slot *sl, herald_txn *t, herald_error *err)
{
    uint64_t v = t->version;
    pthread_mutex_lock(&vs->pend_lock);
    size_t n = 0;
    for (size_t i = 0; i < sl->npend; i++)
        if (sl->pend[i].version <= v) n++;
    pending *mine = n ? malloc(n * sizeof *mine) : NULL;
    if (n && !mine) {
        pthread_mutex_unlock(&vs->pend_lock);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    size_t w = 0, m = 0;
    for (size_t i = 0; i < sl->npend; i++) {
        if (sl->pend[i].version <= v)
            mine[m++] = sl->pend[i];
        else
            sl->pend[w++] = sl->pend[i];
    }
    sl->npend = w;
    pthread_mutex_unlock(&vs->pend_lock);
    int rc = 0;
    if (n > 1) qsort(mine, n, sizeof *mine, pending_cmp);
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i;
        while (j + 1 < n && !memcmp(mine[j + 1].id, mine[i].id, HERALD_ID_BYTES))
            j++;
        uint64_t first = mine[i].version, last = mine[j].version;
        /* The state between the first and the last write is in no row. */
        gap_add(sl, mine[i].id, first, last);
        size_t at, r = map_find(sl, mine[i].id, &at);
        if (r != SIZE_MAX) {
            sl->died[r] = first;
            sl->map[at] = MAP_TOMBSTONE;
            sl->dead++;
        }
        MDB_val doc;
        int got = read_doc(t, mine[i].id, &doc, err);
        if (got < 0) rc = got;
        if (got > 0 && (rc = add_row(sl, mine[i].id, &doc, last)))
            rc = herald_fail(err, rc, "out of memory");
        i = j + 1;
    }
    free(mine);
    if (rc) {
        slot_clear(sl); /* rebuilt by the next search, from a snapshot past v */
        pthread_mutex_lock(&vs->pend_lock);
        if (sl->dropped < v) sl->dropped = v;
        pthread_mutex_unlock(&vs->pend_lock);
        return rc;
    }
    if (sl->applied < v) sl->applied = v;
    if (compact(sl)) {
        slot_clear(sl);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------- the store's slots */

static void slots_free(hd_vecstore *vs)
{
    for (size_t i = 0; i < vs->nslots; i++) {
        slot_clear(&vs->slots[i]);
        free(vs->slots[i].pend);
    }
    free(vs->slots);
    vs->slots = NULL;
    vs->nslots = 0;
}

/* Makes the slots of the store's current schema; with both locks held. */
static int slots_make(hd_vecstore *vs, herald_store *s)
{
    slots_free(vs);
    size_t n = 0;
    for (size_t i = 0; i < s->ntables; i++)
        n += s->tables[i].def->nvector_indexes;
    if (n && !(vs->slots = calloc(n, sizeof *vs->slots))) return HERALD_ENOMEM;
    for (size_t i = 0; i < s->ntables; i++)
        for (size_t j = 0; j < s->tables[i].def->nvector_indexes; j++) {
            vec_slot *sl = &vs->slots[vs->nslots++];
            sl->tab = &s->tables[i];
            sl->def = &s->tables[i].def->vector_indexes[j];
            sl->stride = ((size_t)sl->def->dimensions + LANES - 1) / LANES * LANES;
            sl->dropped = vs->dropped;
        }
    vs->schema = s->schema;
    return 0;
}

static hd_vecstore *vecstore_of(herald_store *s)
{
    hd_vecstore *vs = atomic_load(&s->vec);
    if (vs) return vs;
    vs = calloc(1, sizeof *vs);
    if (!vs) return NULL;
    pthread_rwlock_init(&vs->lock, NULL);
    pthread_mutex_init(&vs->pend_lock, NULL);
    hd_vecstore *none = NULL;
    if (!atomic_compare_exchange_strong(&s->vec, &none, vs)) {
        hd__vector_free(vs);
        return none;
    }
    return vs;
}

void hd__vector_free(hd_vecstore *vs)
{
    if (!vs) return;
    slots_free(vs);
    pthread_rwlock_destroy(&vs->lock);
    pthread_mutex_destroy(&vs->pend_lock);
    free(vs);
}

static void note_key(vec_slot *sl, const herald_write_key *k, uint64_t version)
{
    if (k->index_id != sl->tab->indexes[0].id || k->key_len != HD_IID_BYTES + HERALD_ID_BYTES)
        return;
    if (sl->npend == MAX_PENDING) {
        /* Nobody searches: forget the rows; the next search rebuilds. */
        for (size_t i = 0; i < sl->npend; i++)
            if (sl->dropped < sl->pend[i].version) sl->dropped = sl->pend[i].version;
        sl->npend = 0;
        sl->stale = true;
    }
    if (sl->npend == sl->cappend) {
        size_t cap = sl->cappend ? sl->cappend * 2 : 64;
        pending *p = realloc(sl->pend, cap * sizeof *p);
        if (!p) {
            /* Cannot remember the write: nothing older than it may be built. */
            sl->npend = 0;
            sl->stale = true;
            if (sl->dropped < version) sl->dropped = version;
            return;
        }
        sl->pend = p;
        sl->cappend = cap;
    }
    pending *e = &sl->pend[sl->npend++];
    memcpy(e->id, k->key + HD_IID_BYTES, HERALD_ID_BYTES);
    e->version = version;
}

void hd__vector_note(herald_store *s, const herald_group *g)
{
    bool any = false;
    for (size_t i = 0; i < s->ntables && !any; i++)
        any = s->tables[i].def->nvector_indexes > 0;
    if (!any || !g->nsets) return;
    hd_vecstore *vs = vecstore_of(s);
    if (!vs) return;
    pthread_mutex_lock(&vs->pend_lock);
    if (vs->schema != s->schema) {
        /* Slots of another schema: the next search remakes them, and may
         * build only from a snapshot that has these writes. */
        for (size_t i = 0; i < g->nsets; i++)
            if (vs->dropped < g->sets[i].version) vs->dropped = g->sets[i].version;
        pthread_mutex_unlock(&vs->pend_lock);
        return;
    }
    for (size_t si = 0; si < vs->nslots; si++) {
        vec_slot *sl = &vs->slots[si];
        for (size_t i = 0; i < g->nsets; i++) {
            const herald_write_set *ws = &g->sets[i];
            for (size_t k = 0; k < ws->nremoved; k++)
                note_key(sl, &ws->removed[k], ws->version);
            for (size_t k = 0; k < ws->nadded; k++)
                note_key(sl, &ws->added[k], ws->version);
        }
    }
    pthread_mutex_unlock(&vs->pend_lock);
}

/* ------------------------------------------------------------- a search */

typedef struct hit {
    float score;
    uint8_t id[HERALD_ID_BYTES];
} hit;

/* a ranks before b: higher score, then smaller id. */
static bool better(const hit *a, const hit *b)
{
    if (a->score != b->score) return a->score > b->score;
    return memcmp(a->id, b->id, HERALD_ID_BYTES) < 0;
}

/* The best `limit` hits so far, as a heap whose root is the worst of them. */
typedef struct topk {
    hit *h;
    size_t n, limit;
} topk;

static void sift_down(topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->n && better(&t->h[w], &t->h[l])) w = l;
        if (r < t->n && better(&t->h[w], &t->h[r])) w = r;
        if (w == i) return;
        hit tmp = t->h[i];
        t->h[i] = t->h[w];
        t->h[w] = tmp;
        i = w;
    }
}

static void topk_push(topk *t, float score, const uint8_t id[HERALD_ID_BYTES])
{
    hit x = {.score = score};
    if (t->n == t->limit && !(score >= t->h[0].score)) return;
    memcpy(x.id, id, HERALD_ID_BYTES);
    if (t->n < t->limit) {
        size_t i = t->n++;
        t->h[i] = x;
        while (i && better(&t->h[(i - 1) / 2], &t->h[i])) {
            hit tmp = t->h[i];
            t->h[i] = t->h[(i - 1) / 2];
            t->h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
        return;
    }
    if (!better(&x, &t->h[0])) return;
    t->h[0] = x;
    sift_down(t, 0);
}

static int hit_cmp(const void *a, const void *b)
{
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* A search's filter: a disjunction of (filter field number, encoded value). */
typedef struct filter {
    size_t n;
    size_t *field;
    hd_buf *enc;
    bool present; /* false: every row passes */
} filter;

static void filter_free(filter *f)
{
    for (size_t i = 0; i < f->n; i++)
        hd__buf_free(&f->enc[i]);
    free(f->enc);
    free(f->field);
}

static bool passes(const filter *f, size_t nf, const uint8_t *pool, const uint32_t *foff,
                   const uint32_t *flen)
{
    if (!f->present) return true;
    for (size_t i = 0; i < f->n; i++) {
        size_t k = f->field[i];
        if (flen[k] == f->enc[i].len && !memcmp(pool + foff[k], f->enc[i].p, flen[k]))
            return true;
    }
    (void)nf;
    return false;
}

/* The ids a mutation must read from its own transaction rather than the rows. */
typedef struct overlay {
    uint8_t (*ids)[HERALD_ID_BYTES];
    size_t n, cap;
} overlay;

static int overlay_add(overlay *o, uint32_t byid, const herald_write_key *k)
{
    if (k->index_id != byid || k->key_len != HD_IID_BYTES + HERALD_ID_BYTES) return 0;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        void *p = realloc(o->ids, cap * sizeof *o->ids);
        if (!p) return HERALD_ENOMEM;
        o->ids = p;
        o->cap = cap;
    }
    memcpy(o->ids[o->n++], k->key + HD_IID_BYTES, HERALD_ID_BYTES);
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HERALD_ID_BYTES);
}

static bool overlay_has(const overlay *o, const uint8_t *id)
{
    return o->n && bsearch(id, o->ids, o->n, HERALD_ID_BYTES, id_cmp);
}

/*
 * Scores the rows of `sl` visible at `v`, passing the filter and not in
 * `o`, into `top`: the checks first, then the scan of the survivors in
 * batches, so that a selective filter skips the bytes of the rows it drops.
 */
static void scan_rows(const vec_slot *sl, uint64_t v, const float *q, const filter *f,
                      const overlay *o, topk *top)
{
    enum { BATCH = 256 };
    uint32_t which[BATCH];
    float scores[BATCH];
    size_t nf = sl->def->nfilter_fields;
    for (size_t r = 0; r < sl->n;) {
        size_t n = 0;
        for (; r < sl->n && n < BATCH; r++) {
            if (sl->born[r] > v || sl->died[r] <= v) continue;
            if (nf && !passes(f, nf, sl->pool.p, sl->foff + r * nf, sl->flen + r * nf)) continue;
            if (o && overlay_has(o, sl->ids[r])) continue;
            which[n++] = (uint32_t)r;
        }
        hd__vector_dots(q, sl->vec, sl->stride, which, n, scores);
        for (size_t i = 0; i < n; i++)
            topk_push(top, scores[i], sl->ids[which[i]]);
    }
}

/* Scores the documents of `o` as `t` sees them. */
static int scan_overlay(const vec_slot *sl, herald_txn *t, const overlay *o, const float *q,
                        const filter *f, topk *top, herald_error *err)
{
    size_t nf = sl->def->nfilter_fields;
    float *row = aligned_alloc(64, sl->stride * sizeof(float));
    uint32_t *flen = calloc(nf + 1, sizeof *flen), *foff = calloc(nf + 1, sizeof *foff);
    int rc = row && flen && foff ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n && !rc; i++) {
        if (i && !memcmp(o->ids[i], o->ids[i - 1], HERALD_ID_BYTES)) continue;
        MDB_val doc;
        int got = read_doc(t, o->ids[i], &doc, err);
        if (got <= 0) {
            rc = got;
            continue;
        }
        hd_buf enc = HD_BUF_INIT;
        got = extract(sl->def, sl->stride, doc.mv_data, doc.mv_size, row, &enc, flen);
        if (got < 0) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        if (got > 0) {
            for (size_t k = 0, off = 0; k < nf; off += flen[k], k++)
                foff[k] = (uint32_t)off;
            if (passes(f, nf, enc.p, foff, flen))
                topk_push(top, dot(q, row, sl->stride), o->ids[i]);
        }
        hd__buf_free(&enc);
    }
    free(row);
    free(flen);
    free(foff);
    return rc;
}

static const char *str_of(const herald_value *spec, const char *key)
{
    const herald_value *v = herald_object_get(spec, key);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

/* The query vector, unit length and padded into q (stride floats). */
static int parse_vector(const herald_vector_index_def *def, const char *index,
                        const herald_value *v, float *q, size_t stride, herald_error *err)
{
    if (!v || v->type != HERALD_ARRAY)
        return herald_fail(err, HERALD_EINVAL, "vectorSearch needs `vector`, an array of numbers");
    if (v->u.arr.len != (size_t)def->dimensions)
        return herald_fail(err, HERALD_EINVAL,
                           "vector has %zu dimensions; vector index `%s` has %d", v->u.arr.len,
                           index, def->dimensions);
    double norm = 0;
    for (size_t i = 0; i < v->u.arr.len; i++) {
        const herald_value *x = &v->u.arr.items[i];
        if (x->type != HERALD_FLOAT64 && x->type != HERALD_INT64)
            return herald_fail(err, HERALD_EINVAL, "vector[%zu] is not a number", i);
        double d = x->type == HERALD_FLOAT64 ? x->u.f : (double)x->u.i;
        if (!isfinite(d))
            return herald_fail(err, HERALD_EINVAL, "vector[%zu] is %s", i,
                               isnan(d) ? "NaN" : "infinite");
        norm += d * d;
    }
    if (!(norm > 0) || !isfinite(norm))
        return herald_fail(err, HERALD_EINVAL, "vector has no direction (all zero or too large)");
    double scale = 1 / sqrt(norm);
    for (size_t i = 0; i < v->u.arr.len; i++) {
        const herald_value *x = &v->u.arr.items[i];
        q[i] = (float)((x->type == HERALD_FLOAT64 ? x->u.f : (double)x->u.i) * scale);
    }
    for (size_t i = v->u.arr.len; i < stride; i++)
        q[i] = 0;
    return 0;
}

static int parse_filter(const herald_vector_index_def *def, const char *index,
                        const herald_value *fv, filter *f, herald_error *err)
{
    if (!fv) return 0;
    if (fv->type != HERALD_ARRAY) return herald_fail(err, HERALD_EINVAL, "bad vector filter");
    f->present = true;
    f->field = calloc(fv->u.arr.len + 1, sizeof *f->field);
    f->enc = calloc(fv->u.arr.len + 1, sizeof *f->enc);
    if (!f->field || !f->enc) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < fv->u.arr.len; i++) {
        const herald_value *p = &fv->u.arr.items[i];
        if (p->type != HERALD_ARRAY || p->u.arr.len != 2 || p->u.arr.items[0].type != HERALD_STRING)
            return herald_fail(err, HERALD_EINVAL, "bad vector filter");
        const char *name = p->u.arr.items[0].u.s.ptr;
        size_t k = 0;
        while (k < def->nfilter_fields && strcmp(def->filter_fields[k], name))
            k++;
        if (k == def->nfilter_fields)
            return herald_fail(err, HERALD_EINVAL,
                               "`%.64s` is not a filter field of vector index `%s`", name, index);
        f->field[f->n] = k;
        hd__key_encode(&f->enc[f->n], &p->u.arr.items[1]);
        if (f->enc[f->n++].failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

static int results(topk *top, herald_value *result, herald_error *err)
{
    qsort(top->h, top->n, sizeof *top->h, hit_cmp);
    herald_array_init(result);
    int rc = 0;
    for (size_t i = 0; i < top->n && !rc; i++) {
        char text[HERALD_ID_CHARS + 1];
        hd__id_format(top->h[i].id, text);
        herald_value o, idv;
        herald_object_init(&o);
        rc = herald_string(&idv, text, HERALD_ID_CHARS);
        if (!rc && (rc = herald_object_set(&o, "_id", 3, idv))) herald_value_free(&idv);
        if (!rc) rc = herald_object_set(&o, "_score", 6, herald_float64(top->h[i].score));
        if (!rc && (rc = herald_array_push(result, o))) herald_value_free(&o);
        if (rc) herald_value_free(&o);
    }
    if (rc) {
        herald_value_free(result);
        *result = herald_undefined();
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

/*
 * A slot of the store's current schema by names, making the slots if
 * needed. Locks are always taken rows first, then pend_lock.
 */
static vec_slot *find_slot(hd_vecstore *vs, herald_store *s, const hd_table *tab,
                           const char *index)
{
    pthread_mutex_lock(&vs->pend_lock);
    if (vs->schema != s->schema) {
        pthread_mutex_unlock(&vs->pend_lock);
        pthread_rwlock_wrlock(&vs->lock);
        pthread_mutex_lock(&vs->pend_lock);
        if (vs->schema != s->schema && slots_make(vs, s)) slots_free(vs);
        pthread_rwlock_unlock(&vs->lock);
    }
    vec_slot *found = NULL;
    for (size_t i = 0; i < vs->nslots && !found; i++)
        if (vs->slots[i].tab == tab && !strcmp(vs->slots[i].def->name, index))
            found = &vs->slots[i];
    pthread_mutex_unlock(&vs->pend_lock);
    return found;
}

int hd__vector_search(herald_txn *t, const herald_value *spec, herald_value *result,
                      herald_read_set *rs, herald_error *err)
{
    *result = herald_undefined();
    herald_store *s = t->s;
    const char *table = str_of(spec, "table"), *index = str_of(spec, "index");
    const hd_table *tab = table ? hd__table_by_name(s, table) : NULL;
    if (!tab) return herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", table ? table : "");
    const herald_vector_index_def *def = NULL;
    for (size_t i = 0; index && i < tab->def->nvector_indexes && !def; i++)
        if (!strcmp(tab->def->vector_indexes[i].name, index)) def = &tab->def->vector_indexes[i];
    if (!def)
        return herald_fail(err, HERALD_ENOTFOUND, "table `%s` has no vector index `%.64s`", table,
                           index ? index : "");
    size_t limit = HD_VECTOR_DEFAULT_LIMIT;
    const herald_value *lv = herald_object_get(spec, "limit");
    if (lv) {
        double d = lv->type == HERALD_FLOAT64 ? lv->u.f
                   : lv->type == HERALD_INT64 ? (double)lv->u.i
                                              : NAN;
        if (!(d >= 1 && d <= HD_VECTOR_MAX_LIMIT) || d != floor(d))
            return herald_fail(err, HERALD_EINVAL, "vectorSearch limit must be 1 to %d",
                               HD_VECTOR_MAX_LIMIT);
        limit = (size_t)d;
    }
    size_t stride = ((size_t)def->dimensions + LANES - 1) / LANES * LANES;
    float *q = aligned_alloc(64, stride * sizeof(float));
    hit *heap = malloc(limit * sizeof *heap);
    filter f = {0};
    overlay o = {0};
    int rc = q && heap ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc) rc = parse_vector(def, index, herald_object_get(spec, "vector"), q, stride, err);
    if (!rc) rc = parse_filter(def, index, herald_object_get(spec, "filter"), &f, err);
    if (!rc && rs) {
        /* The whole table: any write to it may change the neighbours. */
        uint8_t lo[HD_IID_BYTES], hi[HD_IID_BYTES];
        hd__put_be32(lo, tab->indexes[0].id);
        hd__put_be32(hi, tab->indexes[0].id + 1);
        if (hd__read_set_add(rs, tab->indexes[0].id, lo, sizeof lo, hi, sizeof hi))
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    if (rc) goto done;
    topk top = {heap, 0, limit};
    hd_vecstore *vs = vecstore_of(s);
    vec_slot *sl = vs ? find_slot(vs, s, tab, index) : NULL;
    bool answered = false;
    if (sl && !t->group) {
        /*
         * A read snapshot. When the rows are up to it, scan them under the
         * shared lock, so that searches run side by side; otherwise bring
         * them up to it first under the exclusive lock (the notes up to
         * the snapshot, or the first build), then scan.
         */
        for (int pass = 0; pass < 2 && !answered && !rc; pass++) {
            pthread_rwlock_rdlock(&vs->lock);
            pthread_mutex_lock(&vs->pend_lock);
            bool current = sl->built && !sl->stale && sl->complete_from <= t->version;
            for (size_t i = 0; current && i < sl->npend; i++)
                if (sl->pend[i].version <= t->version) current = false;
            pthread_mutex_unlock(&vs->pend_lock);
            if (current) {
                for (size_t i = 0; i < sl->ngaps && !rc; i++) {
                    const gap *g = &sl->gaps[i];
                    if (g->from > t->version || t->version >= g->to) continue;
                    herald_write_key k = {tab->indexes[0].id, NULL, HD_IID_BYTES + HERALD_ID_BYTES};
                    uint8_t key[HD_IID_BYTES + HERALD_ID_BYTES];
                    memcpy(key + HD_IID_BYTES, g->id, HERALD_ID_BYTES);
                    k.key = key;
                    if (overlay_add(&o, k.index_id, &k))
                        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
                }
                if (!rc) scan_rows(sl, t->version, q, &f, NULL, &top);
                answered = !rc;
            }
            pthread_rwlock_unlock(&vs->lock);
            if (answered || pass) break;
            pthread_rwlock_wrlock(&vs->lock);
            pthread_mutex_lock(&vs->pend_lock);
            if (sl->stale) {
                slot_clear(sl);
                sl->stale = false;
            }
            bool can_build = sl->dropped <= t->version;
            pthread_mutex_unlock(&vs->pend_lock);
            if (!sl->built && can_build && !(rc = build(sl, t, err))) {
                /* Notes up to the snapshot are in the rows already. */
                pthread_mutex_lock(&vs->pend_lock);
                size_t w = 0;
                for (size_t i = 0; i < sl->npend; i++)
                    if (sl->pend[i].version > t->version) sl->pend[w++] = sl->pend[i];
                sl->npend = w;
                pthread_mutex_unlock(&vs->pend_lock);
            }
            if (!rc && sl->built) rc = apply(vs, sl, t, err);
            pthread_rwlock_unlock(&vs->lock);
        }
        /* The documents whose state at this snapshot no row holds. */
        if (!rc && o.n) {
            qsort(o.ids, o.n, HERALD_ID_BYTES, id_cmp);
            rc = scan_overlay(sl, t, &o, q, &f, &top, err);
        }
        if (rc) goto done;
    } else if (sl) {
        /* A mutation: the rows as of the last commit, and what its group
         * wrote (and what is not applied yet) from its own transaction. */
        uint32_t byid = tab->indexes[0].id;
        const herald_group *g = t->group;
        for (size_t i = 0; i < g->nsets && !rc; i++) {
            for (size_t k = 0; k < g->sets[i].nremoved && !rc; k++)
                rc = overlay_add(&o, byid, &g->sets[i].removed[k]);
            for (size_t k = 0; k < g->sets[i].nadded && !rc; k++)
                rc = overlay_add(&o, byid, &g->sets[i].added[k]);
        }
        for (size_t k = 0; k < t->removed.len && !rc; k++)
            rc = overlay_add(&o, byid, &t->removed.v[k]);
        for (size_t k = 0; k < t->added.len && !rc; k++)
            rc = overlay_add(&o, byid, &t->added.v[k]);
        uint64_t committed = atomic_load(&s->version);
        pthread_rwlock_rdlock(&vs->lock);
        pthread_mutex_lock(&vs->pend_lock);
        bool stale = sl->stale;
        for (size_t i = 0; i < sl->npend && !rc; i++) {
            herald_write_key k = {byid, NULL, HD_IID_BYTES + HERALD_ID_BYTES};
            uint8_t key[HD_IID_BYTES + HERALD_ID_BYTES];
            memcpy(key + HD_IID_BYTES, sl->pend[i].id, HERALD_ID_BYTES);
            k.key = key;
            rc = overlay_add(&o, byid, &k);
        }
        pthread_mutex_unlock(&vs->pend_lock);
        if (rc) rc = herald_fail(err, rc, "out of memory");
        if (!rc && sl->built && !stale && sl->complete_from <= committed) {
            if (o.n > 1) qsort(o.ids, o.n, HERALD_ID_BYTES, id_cmp);
            scan_rows(sl, committed, q, &f, &o, &top);
            answered = true;
        }
        pthread_rwlock_unlock(&vs->lock);
        if (!rc && answered) rc = scan_overlay(sl, t, &o, q, &f, &top, err);
        if (rc) goto done;
    }
    if (!answered) {
        /* No usable rows: a private copy from this snapshot's documents. */
        vec_slot mine = {.tab = tab, .def = def, .stride = stride};
        rc = build(&mine, t, err);
        if (!rc) scan_rows(&mine, NEVER - 1, q, &f, NULL, &top);
        slot_clear(&mine);
        if (rc) goto done;
    }
    rc = results(&top, result, err);
done:
    free(q);
    free(heap);
    free(o.ids);
    filter_free(&f);
    return rc;
}
