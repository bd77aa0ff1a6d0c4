/*
 * bench_store: the storage core's throughput next to raw LMDB, measured in
 * the same run on the same disk with the same durability.
 *
 * (a) Durable single-document inserts into a table with two secondary
 *     indexes, in groups of 1, 10, 100 and 1,000 mutations (one group =
 *     one durable commit). Beside each, raw liblmdb does what a store must
 *     at least do for the same documents: per group one write transaction
 *     and one durable commit, per document one put of the same encoded
 *     document bytes under a 20-byte random id and one put per index entry
 *     (by_creation_time and the two user indexes, the same key bytes and an
 *     empty value), plus the two meta puts per group that Herald makes
 *     (version, last creation time). The raw side has no nested
 *     transactions, no validation, no value trees and no write sets: the
 *     ratio is what those cost.
 * (b) Reads on a table of --docs documents: herald_get by id in one read
 *     snapshot and with a fresh snapshot per lookup, and 20-document index
 *     range reads (herald_query_run, a range on by_progress and take 20),
 *     each beside raw LMDB (mdb_get of the document; a cursor over 20 index
 *     entries and an mdb_get of each document).
 *
 * The two sides take turns, group by group for writes (each in its own
 * fresh database) and in batches of reads (on two copies of one file), so
 * that on a shared machine both see the same disk and the same neighbours;
 * only the time inside the transactions is counted (documents and raw
 * bytes are built before a group's transaction begins). It uses Herald's
 * private keycodec to produce the raw side's bytes. Results go to stdout
 * as markdown tables. It must never be registered as a test: it fsyncs on
 * purpose and runs for a minute.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <lmdb.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "herald/query.h"
#include "herald/store.h"
#include "keycodec.h"

#define BENCH_NAME "bench_store"
#include "bench_util.h"

#define MAP_SIZE ((size_t)4 << 30)
#define TABLE    "jobs"

static const char schema_json[] =
    "{\"tables\":{\"jobs\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "\"jobId\":{\"type\":\"string\"},\"progress\":{\"type\":\"number\"},"
    "\"stage\":{\"type\":\"string\",\"optional\":true}}},"
    "\"indexes\":[{\"name\":\"by_job\",\"fields\":[\"jobId\"]},"
    "{\"name\":\"by_progress\",\"fields\":[\"progress\"]}]}}}";

typedef struct config {
    const char *dir;
    double write_seconds;
    double read_seconds;
    size_t read_docs;
    size_t groups[8];
    size_t ngroups;
    int repeat;
    bool no_sync; /* writes without fsync, on both sides: the CPU cost alone */
    int sides;    /* bit 0 Herald, bit 1 raw LMDB (--only, for profiling one side) */
} config;

/* ---- helpers ---- */

static double rnd_unit(void)
{
    return (double)(rnd() >> 11) / (double)(1ULL << 53);
}

static void die_mdb(const char *what, int rc)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, mdb_strerror(rc));
    exit(1);
}

/* A job document as a worker would write it. */
static void make_doc(herald_value *doc, uint64_t n)
{
    char job[32];
    int len = snprintf(job, sizeof job, "job-%08llu", (unsigned long long)(n % 100000000));
    herald_value s;
    herald_object_init(doc);
    if (herald_string(&s, job, (size_t)len) || herald_object_set(doc, "jobId", 5, s) ||
        herald_object_set(doc, "progress", 8, herald_float64(rnd_unit())) ||
        herald_string(&s, "encoding", 8) || herald_object_set(doc, "stage", 5, s))
        die_herald("building a document", HERALD_ENOMEM, NULL);
}

static herald_store *open_store(const char *dir, bool no_sync)
{
    herald_store_options o = {.initial_map_size = MAP_SIZE, .no_sync = no_sync};
    herald_store *s;
    herald_error err = {0};
    int rc = herald_store_open(dir, &o, &s, &err);
    if (rc) die_herald("opening the store", rc, &err);
    if (!herald_store_schema(s)) {
        herald_schema *schema;
        if ((rc = herald_schema_from_json(schema_json, strlen(schema_json), "bench", &schema,
                                          &err)) ||
            (rc = herald_store_set_schema(s, schema, &err)))
            die_herald("installing the schema", rc, &err);
    }
    return s;
}

/* ---- (a) durable inserts ---- */

/*
 * One side of the write benchmark: a store (or a raw environment) being
 * filled group by group. Each step writes one group and adds the time of
 * its transaction, from begin to durable commit, to `timed`.
 */
typedef struct herald_writer {
    herald_store *s;
    herald_value *docs;
    size_t group;
    uint64_t n;
    double timed;
} herald_writer;

static void herald_writer_open(herald_writer *w, const char *dir, size_t group, bool no_sync)
{
    *w = (herald_writer){.s = open_store(dir, no_sync), .group = group};
    w->docs = xmalloc(group * sizeof *w->docs);
}

static void herald_writer_step(herald_writer *w)
{
    herald_error err = {0};
    for (size_t i = 0; i < w->group; i++)
        make_doc(&w->docs[i], w->n + i);
    double t0 = now_s();
    herald_group *g;
    int rc = herald_group_begin(w->s, &g, &err);
    if (rc) die_herald("group_begin", rc, &err);
    for (size_t i = 0; i < w->group; i++) {
        herald_txn *m;
        if ((rc = herald_mutation_begin(g, &m, &err)) ||
            (rc = herald_insert(m, TABLE, &w->docs[i], NULL, &err)) ||
            (rc = herald_mutation_commit(m, NULL, &err)))
            die_herald("insert", rc, &err);
    }
    if ((rc = herald_group_commit(g, &err))) die_herald("group_commit", rc, &err);
    herald_group_free(g);
    w->timed += now_s() - t0;
    for (size_t i = 0; i < w->group; i++)
        herald_value_free(&w->docs[i]);
    w->n += w->group;
}

static void herald_writer_close(herald_writer *w)
{
    free(w->docs);
    herald_store_close(w->s);
}

typedef struct raw_env {
    MDB_env *env;
    MDB_dbi meta, docs, idx;
} raw_env;

static void raw_open(raw_env *r, const char *dir, unsigned extra_flags)
{
    int rc;
    MDB_txn *txn;
    if ((rc = mdb_env_create(&r->env))) die_mdb("env_create", rc);
    mdb_env_set_maxdbs(r->env, 4);
    if ((rc = mdb_env_set_mapsize(r->env, MAP_SIZE))) die_mdb("set_mapsize", rc);
    if ((rc = mdb_env_open(r->env, dir, MDB_NOTLS | extra_flags, 0600))) die_mdb("env_open", rc);
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn))) die_mdb("txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &r->meta)) ||
        (rc = mdb_dbi_open(txn, "docs", MDB_CREATE, &r->docs)) ||
        (rc = mdb_dbi_open(txn, "idx", MDB_CREATE, &r->idx)))
        die_mdb("dbi_open", rc);
    if ((rc = mdb_txn_commit(txn))) die_mdb("txn_commit", rc);
}

/* The bytes Herald stores for one document: the document and 3 index keys. */
typedef struct raw_doc {
    uint8_t id[HERALD_ID_BYTES];
    hd_buf doc;
    hd_buf keys[3];
} raw_doc;

static void index_key(hd_buf *k, uint32_t iid, const herald_value *field, const herald_value *ct,
                      const uint8_t *id)
{
    uint8_t b[4] = {(uint8_t)(iid >> 24), (uint8_t)(iid >> 16), (uint8_t)(iid >> 8), (uint8_t)iid};
    k->len = 0;
    hd__buf_append(k, b, 4);
    if (field) hd__key_encode(k, field);
    hd__key_encode(k, ct);
    hd__buf_append(k, id, HERALD_ID_BYTES);
}

static void raw_make(raw_doc *r, uint64_t n, double ct)
{
    herald_value doc;
    make_doc(&doc, n);
    if (herald_object_set(&doc, "_creationTime", 13, herald_float64(ct)))
        die_herald("building a document", HERALD_ENOMEM, NULL);
    if (RAND_bytes(r->id + 4, HERALD_ID_BYTES - 4) != 1) die_herald("RAND_bytes", 0, NULL);
    memset(r->id, 0, 3);
    r->id[3] = 1;
    r->doc.len = 0;
    hd__key_encode(&r->doc, &doc);
    const herald_value *ctv = herald_object_get(&doc, "_creationTime");
    index_key(&r->keys[0], 2, NULL, ctv, r->id);
    index_key(&r->keys[1], 3, herald_object_get(&doc, "jobId"), ctv, r->id);
    index_key(&r->keys[2], 4, herald_object_get(&doc, "progress"), ctv, r->id);
    herald_value_free(&doc);
    if (r->doc.failed || r->keys[0].failed || r->keys[1].failed || r->keys[2].failed)
        die_herald("encoding", HERALD_ENOMEM, NULL);
}

typedef struct raw_writer {
    raw_env r;
    raw_doc *docs;
    size_t group;
    uint64_t n, version;
    double ct, timed;
} raw_writer;

static void raw_writer_open(raw_writer *w, const char *dir, size_t group, bool no_sync)
{
    *w = (raw_writer){.group = group, .ct = 1.7e12};
    raw_open(&w->r, dir, no_sync ? MDB_NOSYNC : 0);
    w->docs = calloc(group, sizeof *w->docs);
    if (!w->docs) die_herald("raw docs", HERALD_ENOMEM, NULL);
}

static void raw_writer_step(raw_writer *w)
{
    for (size_t i = 0; i < w->group; i++)
        raw_make(&w->docs[i], w->n + i, w->ct += 0.001);
    double t0 = now_s();
    MDB_txn *txn;
    int rc = mdb_txn_begin(w->r.env, NULL, 0, &txn);
    if (rc) die_mdb("txn_begin", rc);
    for (size_t i = 0; i < w->group; i++) {
        raw_doc *d = &w->docs[i];
        MDB_val k = {HERALD_ID_BYTES, d->id}, v = {d->doc.len, d->doc.p};
        if ((rc = mdb_put(txn, w->r.docs, &k, &v, MDB_NOOVERWRITE))) die_mdb("put doc", rc);
        for (int j = 0; j < 3; j++) {
            MDB_val ik = {d->keys[j].len, d->keys[j].p}, iv = {0, NULL};
            if ((rc = mdb_put(txn, w->r.idx, &ik, &iv, 0))) die_mdb("put index", rc);
        }
    }
    w->version += w->group;
    MDB_val k = {7, "version"}, v = {8, &w->version};
    MDB_val kc = {7, "last_ct"}, vc = {8, &w->ct};
    if ((rc = mdb_put(txn, w->r.meta, &k, &v, 0)) || (rc = mdb_put(txn, w->r.meta, &kc, &vc, 0)))
        die_mdb("put meta", rc);
    if ((rc = mdb_txn_commit(txn))) die_mdb("commit", rc);
    w->timed += now_s() - t0;
    w->n += w->group;
}

static void raw_writer_close(raw_writer *w)
{
    for (size_t i = 0; i < w->group; i++) {
        hd__buf_free(&w->docs[i].doc);
        for (int j = 0; j < 3; j++)
            hd__buf_free(&w->docs[i].keys[j]);
    }
    free(w->docs);
    mdb_env_close(w->r.env);
}

/*
 * Herald and raw LMDB fill their own fresh databases group by group, taking
 * turns (and swapping who goes first each round), until each has spent
 * `seconds` in its transactions: both sides see the same disk and the same
 * neighbours, which on a shared VM matters more than anything else here.
 */
static void measure_writes(const config *c, size_t group, double *herald_rate, double *raw_rate)
{
    char hdir[4096], rdir[4096];
    herald_writer h = {0};
    raw_writer r = {0};
    bool do_h = c->sides & 1, do_r = c->sides & 2;
    fresh_dir(hdir, sizeof hdir, c->dir, "w-herald");
    fresh_dir(rdir, sizeof rdir, c->dir, "w-raw");
    if (do_h) herald_writer_open(&h, hdir, group, c->no_sync);
    if (do_r) raw_writer_open(&r, rdir, group, c->no_sync);
    for (unsigned turn = 0;; turn++) {
        bool h_more = do_h && h.timed < c->write_seconds;
        bool r_more = do_r && r.timed < c->write_seconds;
        if (!h_more && !r_more) break;
        if (turn % 2 == 0) {
            if (h_more) herald_writer_step(&h);
            if (r_more) raw_writer_step(&r);
        } else {
            if (r_more) raw_writer_step(&r);
            if (h_more) herald_writer_step(&h);
        }
    }
    *herald_rate = do_h ? (double)h.n / h.timed : 0;
    *raw_rate = do_r ? (double)r.n / r.timed : 0;
    if (do_h) herald_writer_close(&h);
    if (do_r) raw_writer_close(&r);
    remove_dir(hdir);
    remove_dir(rdir);
}

static void bench_writes(const config *c)
{
    printf("## %s inserts (one document per mutation, 2 secondary indexes)\n\n",
           c->no_sync ? "Non-durable (--no-sync)" : "Durable");
    printf("%.1f s of transactions per side and measurement, the two sides taking turns "
           "group by group; median of %d measurement(s) (the ratio is the median of their "
           "ratios). Raw = liblmdb, same puts and bytes, one txn and %s commit per group.\n\n",
           c->write_seconds, c->repeat, c->no_sync ? "non-durable (MDB_NOSYNC)" : "durable");
    if (!c->no_sync)
        printf("The disk right now: %.0f fdatasync/s (4 KiB overwrite, 1 s).\n\n",
               fsync_rate(c->dir, 1));
    printf("| group size | Herald inserts/s | raw LMDB docs/s | Herald / raw |\n");
    printf("|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (size_t gi = 0; gi < c->ngroups; gi++) {
        size_t group = c->groups[gi];
        double h[16], r[16], ratio[16];
        for (int k = 0; k < c->repeat; k++) {
            measure_writes(c, group, &h[k], &r[k]);
            ratio[k] = r[k] > 0 ? h[k] / r[k] : 0;
        }
        double hm = median(h, c->repeat), rm = median(r, c->repeat);
        if (c->sides == 3)
            printf("| %zu | %.0f | %.0f | %.2f |\n", group, hm, rm, median(ratio, c->repeat));
        else
            printf("| %zu | %.0f | %.0f | - |\n", group, hm, rm);
        fflush(stdout);
    }
    printf("\n");
}

/* ---- (b) reads ---- */

typedef struct read_set_up {
    char (*ids)[HERALD_ID_CHARS + 1];
    uint8_t (*bin)[HERALD_ID_BYTES];
    size_t n;
} read_set_up;

static int collect(void *ctx, const herald_value *doc)
{
    read_set_up *r = ctx;
    const herald_value *id = herald_object_get(doc, "_id");
    memcpy(r->ids[r->n++], id->u.s.ptr, HERALD_ID_CHARS + 1);
    return 0;
}

/* Base32 id text back to its 20 bytes (same alphabet as the store). */
static void id_bytes(const char *text, uint8_t out[HERALD_ID_BYTES])
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    memset(out, 0, HERALD_ID_BYTES);
    for (int i = 0; i < HERALD_ID_CHARS; i++) {
        unsigned v = (unsigned)(strchr(alphabet, text[i]) - alphabet);
        unsigned shifted = v << (11 - (i * 5) % 8);
        out[i * 5 / 8] |= (uint8_t)(shifted >> 8);
        if (i * 5 / 8 + 1 < HERALD_ID_BYTES) out[i * 5 / 8 + 1] |= (uint8_t)shifted;
    }
}

static void load(herald_store *s, size_t ndocs)
{
    herald_error err = {0};
    for (size_t done = 0; done < ndocs;) {
        herald_group *g;
        int rc = herald_group_begin(s, &g, &err);
        if (rc) die_herald("group_begin", rc, &err);
        for (size_t i = 0; i < 1000 && done < ndocs; i++, done++) {
            herald_value doc;
            make_doc(&doc, done);
            herald_txn *m;
            if ((rc = herald_mutation_begin(g, &m, &err)) ||
                (rc = herald_insert(m, TABLE, &doc, NULL, &err)) ||
                (rc = herald_mutation_commit(m, NULL, &err)))
                die_herald("loading", rc, &err);
            herald_value_free(&doc);
        }
        if ((rc = herald_group_commit(g, &err))) die_herald("group_commit", rc, &err);
        herald_group_free(g);
    }
}

/*
 * The read side: a Herald store and a raw environment on a byte-for-byte
 * copy of its file (LMDB forbids opening one file twice in a process), so
 * that both can be open at once and take turns in short batches.
 */
#define BATCH    256
#define NQUERIES 256

typedef struct readers {
    herald_store *s;
    raw_env e;
    const read_set_up *ids;
    herald_query *q[NQUERIES]; /* take-20 ranges on by_progress from random starts */
    hd_buf lo[NQUERIES];       /* the same kind of start keys, for raw LMDB */
    uint64_t nq;
} readers;

typedef enum read_kind { GET_ONE_SNAPSHOT, GET_FRESH_SNAPSHOT, RANGE_20, NKINDS } read_kind;

static const char *const read_names[NKINDS] = {
    "get by id, one snapshot",
    "get by id, fresh snapshot each",
    "index range, take 20 (by_progress), one snapshot",
};

/* BATCH Herald reads of `kind`; returns the seconds they took. */
static double herald_batch(readers *rd, read_kind kind)
{
    herald_error err = {0};
    herald_txn *t = NULL;
    int rc;
    double t0 = now_s();
    if (kind != GET_FRESH_SNAPSHOT && (rc = herald_read_begin(rd->s, &t, &err)))
        die_herald("read_begin", rc, &err);
    for (int i = 0; i < BATCH; i++) {
        herald_value v;
        if (kind == RANGE_20) {
            if ((rc = herald_query_run(rd->q[rd->nq++ % NQUERIES], t, NULL, &v, NULL, &err)))
                die_herald("query_run", rc, &err);
            if (v.type != HERALD_ARRAY || v.u.arr.len != 20) {
                fprintf(stderr, "bench_store: a range read returned %zu documents\n",
                        v.type == HERALD_ARRAY ? v.u.arr.len : 0);
                exit(1);
            }
        } else {
            if (kind == GET_FRESH_SNAPSHOT && (rc = herald_read_begin(rd->s, &t, &err)))
                die_herald("read_begin", rc, &err);
            if ((rc = herald_get(t, TABLE, rd->ids->ids[rnd() % rd->ids->n], &v, NULL, &err)))
                die_herald("get", rc, &err);
            if (kind == GET_FRESH_SNAPSHOT) herald_txn_end(t);
        }
        herald_value_free(&v);
    }
    if (kind != GET_FRESH_SNAPSHOT) herald_txn_end(t);
    return now_s() - t0;
}

/* The same reads in raw LMDB: mdb_get of the documents, a cursor over 20 entries. */
static double raw_batch(readers *rd, read_kind kind)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc;
    size_t bytes = 0;
    double t0 = now_s();
    if (kind != GET_FRESH_SNAPSHOT && (rc = mdb_txn_begin(rd->e.env, NULL, MDB_RDONLY, &txn)))
        die_mdb("txn_begin", rc);
    if (kind == RANGE_20 && (rc = mdb_cursor_open(txn, rd->e.idx, &cur))) die_mdb("cursor", rc);
    for (int i = 0; i < BATCH; i++) {
        if (kind == RANGE_20) {
            hd_buf *lo = &rd->lo[rd->nq++ % NQUERIES];
            MDB_val k = {lo->len, lo->p}, v;
            int n = 0;
            for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < 20;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
                if (memcmp(k.mv_data, lo->p, 4) != 0) break;
                MDB_val dk = {HERALD_ID_BYTES, (uint8_t *)k.mv_data + k.mv_size - HERALD_ID_BYTES},
                        dv;
                if ((rc = mdb_get(txn, rd->e.docs, &dk, &dv))) die_mdb("get", rc);
                bytes += dv.mv_size;
            }
            if (n != 20) {
                fprintf(stderr, "bench_store: a raw range read found %d entries\n", n);
                exit(1);
            }
        } else {
            if (kind == GET_FRESH_SNAPSHOT &&
                (rc = mdb_txn_begin(rd->e.env, NULL, MDB_RDONLY, &txn)))
                die_mdb("txn_begin", rc);
            MDB_val k = {HERALD_ID_BYTES, rd->ids->bin[rnd() % rd->ids->n]}, v;
            if ((rc = mdb_get(txn, rd->e.docs, &k, &v))) die_mdb("get", rc);
            bytes += v.mv_size;
            if (kind == GET_FRESH_SNAPSHOT) mdb_txn_abort(txn);
        }
    }
    if (cur) mdb_cursor_close(cur);
    if (kind != GET_FRESH_SNAPSHOT) mdb_txn_abort(txn);
    if (bytes == 0) fprintf(stderr, "bench_store: empty documents?\n");
    return now_s() - t0;
}

/* The index id of jobs.<name>, from the store's registry. */
static uint32_t raw_index_id(raw_env *e, const char *name)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
    if (rc) die_mdb("txn_begin", rc);
    char key[64];
    int len = snprintf(key, sizeof key, "i:jobs/%s", name);
    MDB_val k = {(size_t)len, key}, v;
    if ((rc = mdb_get(txn, e->meta, &k, &v))) die_mdb("index registry", rc);
    const uint8_t *p = v.mv_data;
    uint32_t iid = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    mdb_txn_abort(txn);
    return iid;
}

static void make_queries(readers *rd)
{
    herald_error err = {0};
    uint32_t iid = raw_index_id(&rd->e, "by_progress");
    uint8_t b[4] = {(uint8_t)(iid >> 24), (uint8_t)(iid >> 16), (uint8_t)(iid >> 8), (uint8_t)iid};
    for (int i = 0; i < NQUERIES; i++) {
        double start = rnd_unit() * 0.99; /* leaves 1% of the index: 20 entries follow */
        char text[256];
        int len = snprintf(text, sizeof text,
                           "{\"table\":\"jobs\",\"index\":\"by_progress\","
                           "\"range\":[{\"gte\":[\"progress\",%.17g]}],\"take\":20}",
                           start);
        int rc = herald_query_parse(text, (size_t)len, herald_store_schema(rd->s), &rd->q[i], &err);
        if (rc) die_herald("query_parse", rc, &err);
        herald_value x = herald_float64(start);
        rd->lo[i] = (hd_buf)HD_BUF_INIT;
        hd__buf_append(&rd->lo[i], b, 4);
        hd__key_encode(&rd->lo[i], &x);
        if (rd->lo[i].failed) die_herald("encoding", HERALD_ENOMEM, NULL);
    }
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        fprintf(stderr, "bench_store: cannot copy %s: %s\n", from, strerror(errno));
        exit(1);
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            fprintf(stderr, "bench_store: cannot write %s: %s\n", to, strerror(errno));
            exit(1);
        }
    fclose(in);
    if (fclose(out) != 0) {
        fprintf(stderr, "bench_store: cannot write %s: %s\n", to, strerror(errno));
        exit(1);
    }
}

static void bench_reads(const config *c)
{
    char dir[4096], rawdir[4096], from[4200], to[4200];
    fresh_dir(dir, sizeof dir, c->dir, "reads");
    fresh_dir(rawdir, sizeof rawdir, c->dir, "reads-raw");
    herald_store *s = open_store(dir, true); /* loading need not be durable */
    double t0 = now_s();
    load(s, c->read_docs);
    double load_s = now_s() - t0;
    read_set_up ids = {xmalloc(c->read_docs * sizeof *ids.ids),
                       xmalloc(c->read_docs * sizeof *ids.bin), 0};
    herald_txn *t;
    herald_error err = {0};
    int rc = herald_read_begin(s, &t, &err);
    if (rc || (rc = herald_table_scan(t, TABLE, collect, &ids, &err)))
        die_herald("collecting ids", rc, &err);
    herald_txn_end(t);
    for (size_t i = 0; i < ids.n; i++)
        id_bytes(ids.ids[i], ids.bin[i]);
    herald_store_close(s);
    snprintf(from, sizeof from, "%s/data.mdb", dir);
    snprintf(to, sizeof to, "%s/data.mdb", rawdir);
    copy_file(from, to);

    readers rd = {.s = open_store(dir, true), .ids = &ids};
    raw_open(&rd.e, rawdir, 0);
    make_queries(&rd);
    double h[NKINDS][16], raw[NKINDS][16], ratio[NKINDS][16];
    for (int k = 0; k < c->repeat; k++) {
        for (int kind = 0; kind < NKINDS; kind++) {
            double ht = 0, rt = 0;
            uint64_t hn = 0, rn = 0;
            for (unsigned turn = 0; ht < c->read_seconds || rt < c->read_seconds; turn++) {
                if (turn % 2 == 0) {
                    ht += herald_batch(&rd, (read_kind)kind), hn += BATCH;
                    rt += raw_batch(&rd, (read_kind)kind), rn += BATCH;
                } else {
                    rt += raw_batch(&rd, (read_kind)kind), rn += BATCH;
                    ht += herald_batch(&rd, (read_kind)kind), hn += BATCH;
                }
            }
            h[kind][k] = (double)hn / ht;
            raw[kind][k] = (double)rn / rt;
            ratio[kind][k] = h[kind][k] / raw[kind][k];
        }
    }
    for (int i = 0; i < NQUERIES; i++) {
        herald_query_free(rd.q[i]);
        hd__buf_free(&rd.lo[i]);
    }
    herald_store_close(rd.s);
    mdb_env_close(rd.e.env);
    remove_dir(dir);
    remove_dir(rawdir);
    free(ids.ids);
    free(ids.bin);

    printf("## Reads (%zu documents, loaded in %.1f s, 1 thread)\n\n", ids.n, load_s);
    printf("%.1f s of reads per side and measurement, the two sides taking turns in batches "
           "of %d; median of %d measurement(s). Raw = liblmdb on a copy of the same file.\n\n",
           c->read_seconds, BATCH, c->repeat);
    printf("| read | Herald /s | raw LMDB /s | Herald / raw |\n");
    printf("|---|---:|---:|---:|\n");
    for (int kind = 0; kind < NKINDS; kind++)
        printf("| %s | %.0f | %.0f | %.2f |\n", read_names[kind], median(h[kind], c->repeat),
               median(raw[kind], c->repeat), median(ratio[kind], c->repeat));
    printf("\n");
}

/* ---- main ---- */

static const char usage[] =
    "usage: bench_store [options]\n"
    "  --dir DIR            where to create the databases (default: a new folder in $TMPDIR\n"
    "                       or /tmp; it must be on the disk you want to measure)\n"
    "  --seconds S          timed seconds per write measurement (default 2)\n"
    "  --read-seconds S     timed seconds per read measurement (default 1)\n"
    "  --docs N             documents for the read benchmarks (default 100000)\n"
    "  --groups LIST        group sizes, comma-separated (default 1,10,100,1000)\n"
    "  --repeat N           measurements per figure, the median is shown (default 1, max 16)\n"
    "  --no-writes, --no-reads   skip a part\n"
    "  --no-sync            writes without fsync on both sides (CPU cost only; not\n"
    "                       the durable figure)\n"
    "  --only herald|raw    run one side of the write benchmark (for profiling)\n"
    "  --quick              --seconds 1 --read-seconds 0.5 --docs 20000\n";

int main(int argc, char **argv)
{
    config c = {.write_seconds = 2,
                .read_seconds = 1,
                .read_docs = 100000,
                .groups = {1, 10, 100, 1000},
                .ngroups = 4,
                .repeat = 1,
                .sides = 3};
    bool writes = true, reads = true;
    enum {
        O_DIR = 1,
        O_SECONDS,
        O_READ_SECONDS,
        O_DOCS,
        O_GROUPS,
        O_REPEAT,
        O_NOW,
        O_NOR,
        O_QUICK,
        O_NOSYNC,
        O_ONLY
    };
    static const struct option opts[] = {{"dir", required_argument, NULL, O_DIR},
                                         {"seconds", required_argument, NULL, O_SECONDS},
                                         {"read-seconds", required_argument, NULL, O_READ_SECONDS},
                                         {"docs", required_argument, NULL, O_DOCS},
                                         {"groups", required_argument, NULL, O_GROUPS},
                                         {"repeat", required_argument, NULL, O_REPEAT},
                                         {"no-writes", no_argument, NULL, O_NOW},
                                         {"no-reads", no_argument, NULL, O_NOR},
                                         {"quick", no_argument, NULL, O_QUICK},
                                         {"no-sync", no_argument, NULL, O_NOSYNC},
                                         {"only", required_argument, NULL, O_ONLY},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_DIR:
            c.dir = optarg;
            break;
        case O_SECONDS:
            c.write_seconds = atof(optarg);
            break;
        case O_READ_SECONDS:
            c.read_seconds = atof(optarg);
            break;
        case O_DOCS:
            c.read_docs = strtoull(optarg, NULL, 10);
            break;
        case O_REPEAT:
            c.repeat = atoi(optarg);
            break;
        case O_NOW:
            writes = false;
            break;
        case O_NOR:
            reads = false;
            break;
        case O_NOSYNC:
            c.no_sync = true;
            break;
        case O_ONLY:
            c.sides = !strcmp(optarg, "herald") ? 1 : !strcmp(optarg, "raw") ? 2 : 0;
            if (!c.sides) {
                fputs(usage, stderr);
                return 2;
            }
            break;
        case O_QUICK:
            c.write_seconds = 1;
            c.read_seconds = 0.5;
            c.read_docs = 20000;
            break;
        case O_GROUPS:
            if (!parse_groups(optarg, c.groups, 8, &c.ngroups)) {
                fputs(usage, stderr);
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc || c.repeat < 1 || c.repeat > 16 || c.read_docs < 100 ||
        c.write_seconds <= 0 || c.read_seconds <= 0 || c.ngroups == 0) {
        fputs(usage, stderr);
        return 2;
    }
    char tmpdir[4096];
    bool own_dir = !c.dir;
    if (own_dir) {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/bench-store-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "bench_store: cannot create %s: %s\n", tmpdir, strerror(errno));
            return 1;
        }
        c.dir = tmpdir;
    } else if (mkdir(c.dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_store: cannot create %s: %s\n", c.dir, strerror(errno));
        return 1;
    }
    printf("# Herald storage benchmark\n\n");
    printf("%s, databases in %s\n\n", mdb_version(NULL, NULL, NULL), c.dir);
    if (writes) bench_writes(&c);
    if (reads) bench_reads(&c);
    if (own_dir) rmdir(tmpdir);
    return 0;
}
