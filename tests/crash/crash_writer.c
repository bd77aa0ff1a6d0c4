/*
 * crash_writer: the child process of the crash test (test_crash.py).
 *
 *   crash_writer DATA_DIR [SEED [NUM_BASE [MAX_GROUPS]]]
 *
 * Opens the store durably, installs the test schema if the store has none,
 * learns the ids already stored, prints "ready <n>", then writes groups of
 * 1..20 mutations (inserts, patches, replaces, deletes, and mutations that
 * are deliberately aborted or refused by the validator) until it is killed
 * or MAX_GROUPS groups are done (0 = forever).
 *
 * Output protocol (stdout, one line per effect, always flushed):
 *   ready <n> <version>        the store is open: n documents, last version
 *   group <g> <count>          a group of <count> committed mutations
 *   try <effect>               what the group will do if it commits; printed
 *                              and flushed BEFORE herald_group_commit(), so
 *                              the test knows what the in-flight group was
 *   ack <effect>               printed only AFTER herald_group_commit()
 *                              returned 0, one per committed mutation effect
 *   done <g> <version>         every ack of group g has been printed; the
 *                              store's version after the commit
 * Effects:
 *   ins <id> <seq> <tag> <plen> <note>     note: 0 none, 1 "n<seq>"
 *   patch <id> <val> <tag|-> <note>        note: - kept, x removed, s "n<val>"
 *   repl <id> <val> <tag> <plen> <note>    note: 0 none, 1 "n<val>"
 *   del <id>
 *   abort <num>...                         numbers a rolled-back mutation used;
 *                                          they must never be stored
 * Every number (insert seq, patch/replace val) is unique: NUM_BASE plus a
 * counter, the test giving each run its own base. A document's payload is
 * payload_text(n, plen) where n is the number of the insert or replace
 * that wrote it; tag code c is "t<c>" for c < 10, else 600 'L's then c, so
 * that the by_tag_val index has keys past LMDB's limit (truncated keys).
 *
 * This program must never print an ack before its group is durable. A
 * library call that fails unexpectedly ends it with exit status 1 and the
 * error on stderr; the normal exit path (MAX_GROUPS reached) frees
 * everything, so LeakSanitizer can check it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/store.h"

#define TABLE     "items"
#define MAX_GROUP 20
#define LONG_TAG  600

static const char schema_json[] =
    "{\"tables\":{\"items\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "\"seq\":{\"type\":\"number\"},\"val\":{\"type\":\"number\"},"
    "\"tag\":{\"type\":\"string\"},\"payload\":{\"type\":\"string\"},"
    "\"note\":{\"type\":\"string\",\"optional\":true}}},"
    "\"indexes\":[{\"name\":\"by_seq\",\"fields\":[\"seq\"]},"
    "{\"name\":\"by_val\",\"fields\":[\"val\"]},"
    "{\"name\":\"by_tag_val\",\"fields\":[\"tag\",\"val\"]}]}}}";

/* xorshift64*: reproducible from the seed on the command line. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void die(const char *what, int rc, const herald_error *err)
{
    fprintf(stderr, "crash_writer: %s: %s (%d): %s\n", what, herald_errcode_name(rc), rc,
            err && err->message[0] ? err->message : herald_strerror(rc));
    exit(1);
}

/* ---- the ids of live documents ---- */

typedef struct doc_id {
    char s[HERALD_ID_CHARS + 1];
} doc_id;

typedef struct id_list {
    doc_id *v;
    size_t len, cap;
} id_list;

static void ids_push(id_list *l, const char *id)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        doc_id *v = realloc(l->v, cap * sizeof *v);
        if (!v) die("ids", HERALD_ENOMEM, NULL);
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->len++].s, sizeof l->v[0].s, "%s", id);
}

static void ids_remove(id_list *l, const char *id)
{
    for (size_t i = 0; i < l->len; i++)
        if (strcmp(l->v[i].s, id) == 0) {
            l->v[i] = l->v[--l->len];
            return;
        }
}

static int collect_id(void *ctx, const herald_value *doc)
{
    const herald_value *id = herald_object_get(doc, "_id");
    if (!id || id->type != HERALD_STRING) return HERALD_ECORRUPT;
    ids_push(ctx, id->u.s.ptr);
    return 0;
}

/* ---- the text of a group ---- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) die("format", HERALD_EINVAL, NULL);
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1024;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) die("text", HERALD_ENOMEM, NULL);
        t->p = p;
        t->cap = cap;
    }
}

/* Prints every line of `t` with `prefix` in front. */
static void print_lines(const text *t, const char *prefix)
{
    const char *p = t->p, *end = t->p + t->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        printf("%s %.*s\n", prefix, (int)(nl - p), p);
        p = nl + 1;
    }
}

/* ---- documents ---- */

static void set_num(herald_value *doc, const char *key, double x)
{
    if (herald_object_set(doc, key, strlen(key), herald_float64(x)))
        die("object_set", HERALD_ENOMEM, NULL);
}

static void set_str(herald_value *doc, const char *key, const char *s, size_t len)
{
    herald_value v;
    if (herald_string(&v, s, len) || herald_object_set(doc, key, strlen(key), v))
        die("object_set", HERALD_ENOMEM, NULL);
}

static void set_tag(herald_value *doc, unsigned code)
{
    char tag[LONG_TAG + 16];
    int n;
    if (code < 10) {
        n = snprintf(tag, sizeof tag, "t%u", code);
    } else {
        memset(tag, 'L', LONG_TAG);
        n = LONG_TAG + snprintf(tag + LONG_TAG, sizeof tag - LONG_TAG, "%u", code);
    }
    set_str(doc, "tag", tag, (size_t)n);
}

/* "<n>-" repeated, cut to `len` bytes; test_crash.py builds the same text. */
static void set_payload(herald_value *doc, uint64_t n, size_t len)
{
    char unit[32];
    int ulen = snprintf(unit, sizeof unit, "%" PRIu64 "-", n);
    char *p = malloc(len + 1);
    if (!p) die("payload", HERALD_ENOMEM, NULL);
    for (size_t i = 0; i < len; i++)
        p[i] = unit[i % (size_t)ulen];
    set_str(doc, "payload", p, len);
    free(p);
}

static void set_note(herald_value *doc, uint64_t n)
{
    char note[32];
    int len = snprintf(note, sizeof note, "n%" PRIu64, n);
    set_str(doc, "note", note, (size_t)len);
}

static unsigned random_tag(void)
{
    return rnd_below(10) == 0 ? 10 + rnd_below(3) : rnd_below(10);
}

static size_t random_payload_len(void)
{
    return rnd_below(10) == 0 ? 1000 + rnd_below(4000) : rnd_below(200);
}

/* A full document with every field; returns it in *doc. */
static void build_doc(herald_value *doc, uint64_t seq, uint64_t val, unsigned tag, size_t plen,
                      bool note)
{
    herald_object_init(doc);
    set_num(doc, "seq", (double)seq);
    set_num(doc, "val", (double)val);
    set_tag(doc, tag);
    set_payload(doc, val, plen);
    if (note) set_note(doc, val);
}

/* ---- one mutation ---- */

typedef struct writer {
    herald_store *store;
    id_list live;
    uint64_t next_num;
    text effects; /* effect lines of the current mutation */
    text nums;    /* numbers the current mutation used, for "abort" */
    id_list added, removed;
} writer;

static uint64_t take_num(writer *w)
{
    uint64_t n = w->next_num++;
    text_printf(&w->nums, " %" PRIu64, n);
    return n;
}

static int op_insert(writer *w, herald_txn *m, herald_error *err)
{
    uint64_t seq = take_num(w);
    unsigned tag = random_tag();
    size_t plen = random_payload_len();
    bool note = rnd_below(2);
    herald_value doc;
    build_doc(&doc, seq, seq, tag, plen, note);
    char id[HERALD_ID_CHARS + 1];
    int rc = herald_insert(m, TABLE, &doc, id, err);
    herald_value_free(&doc);
    if (rc) return rc;
    text_printf(&w->effects, "ins %s %" PRIu64 " %u %zu %d\n", id, seq, tag, plen, note);
    ids_push(&w->added, id);
    return 0;
}

static int op_patch(writer *w, herald_txn *m, const char *id, herald_error *err)
{
    uint64_t val = take_num(w);
    herald_value fields;
    herald_object_init(&fields);
    set_num(&fields, "val", (double)val);
    char tagtok[16] = "-";
    if (rnd_below(3) == 0) {
        unsigned tag = random_tag();
        set_tag(&fields, tag);
        snprintf(tagtok, sizeof tagtok, "%u", tag);
    }
    char note = "-xs"[rnd_below(3)];
    if (note == 'x' && herald_object_set(&fields, "note", 4, herald_undefined()))
        die("object_set", HERALD_ENOMEM, NULL);
    if (note == 's') set_note(&fields, val);
    int rc = herald_patch(m, id, &fields, err);
    herald_value_free(&fields);
    if (rc) return rc;
    text_printf(&w->effects, "patch %s %" PRIu64 " %s %c\n", id, val, tagtok, note);
    return 0;
}

/* Reads the document first (a read inside the mutation), keeps its seq. */
static int op_replace(writer *w, herald_txn *m, const char *id, herald_error *err)
{
    herald_value old;
    int rc = herald_get(m, TABLE, id, &old, NULL, err);
    if (rc) return rc;
    const herald_value *seqv = herald_object_get(&old, "seq");
    double seq = seqv && seqv->type == HERALD_FLOAT64 ? seqv->u.f : -1;
    herald_value_free(&old);
    uint64_t val = take_num(w);
    unsigned tag = random_tag();
    size_t plen = random_payload_len();
    bool note = rnd_below(2);
    herald_value doc;
    build_doc(&doc, 0, val, tag, plen, note);
    set_num(&doc, "seq", seq);
    rc = herald_replace(m, id, &doc, err);
    herald_value_free(&doc);
    if (rc) return rc;
    text_printf(&w->effects, "repl %s %" PRIu64 " %u %zu %d\n", id, val, tag, plen, note);
    return 0;
}

static int op_delete(writer *w, herald_txn *m, const char *id, herald_error *err)
{
    int rc = herald_delete(m, id, err);
    if (rc) return rc;
    text_printf(&w->effects, "del %s\n", id);
    ids_push(&w->removed, id);
    return 0;
}

/* An insert the validator must refuse (seq is a string). */
static int op_invalid(writer *w, herald_txn *m, herald_error *err)
{
    uint64_t seq = take_num(w);
    herald_value doc;
    build_doc(&doc, seq, seq, 0, 10, false);
    set_str(&doc, "seq", "not a number", 12);
    int rc = herald_insert(m, TABLE, &doc, NULL, err);
    herald_value_free(&doc);
    if (rc != HERALD_EVALIDATION) die("an invalid insert was not refused", rc, err);
    return rc;
}

static int one_op(writer *w, herald_txn *m, herald_error *err)
{
    size_t live = w->live.len;
    unsigned r = rnd_below(100);
    if (r == 0) return op_invalid(w, m, err); /* the one op that must fail validation */
    /* Inserts win while the table is small; past ~800 documents deletes do. */
    unsigned ins = live < 800 ? 55 : 30;
    char id[HERALD_ID_CHARS + 1] = "";
    int rc;
    if (live == 0 || r < ins) {
        rc = op_insert(w, m, err);
    } else {
        memcpy(id, w->live.v[rnd_below((unsigned)live)].s, sizeof id);
        rc = r < ins + 25   ? op_patch(w, m, id, err)
             : r < ins + 35 ? op_replace(w, m, id, err)
                            : op_delete(w, m, id, err);
    }
    if (rc == HERALD_EVALIDATION) die("a valid document was refused", rc, err);
    /* Only a document this very mutation deleted may be missing. */
    if (rc == HERALD_ENOTFOUND) {
        bool deleted_here = false;
        for (size_t i = 0; i < w->removed.len; i++)
            deleted_here |= strcmp(w->removed.v[i].s, id) == 0;
        if (!deleted_here) die("a live document is missing", rc, err);
    }
    return rc;
}

/*
 * Runs one mutation of 1..3 operations. An operation on a document that an
 * earlier operation of the same mutation deleted fails with ENOTFOUND, and
 * 3% of mutations are aborted on purpose: both roll back the mutation.
 */
static void one_mutation(writer *w, herald_group *g, text *group_effects)
{
    herald_error err = {0};
    herald_txn *m;
    int rc = herald_mutation_begin(g, &m, &err);
    if (rc) die("mutation_begin", rc, &err);
    w->effects.len = w->nums.len = 0;
    w->added.len = w->removed.len = 0;
    unsigned nops = rnd_below(10) == 0 ? 2 + rnd_below(2) : 1;
    for (unsigned i = 0; i < nops && rc == 0; i++) {
        rc = one_op(w, m, &err);
        if (rc && rc != HERALD_ENOTFOUND && rc != HERALD_EVALIDATION) die("operation", rc, &err);
    }
    if (rc == 0 && rnd_below(100) < 3) rc = HERALD_EBUSY; /* deliberate abort */
    if (rc == 0) {
        rc = herald_mutation_commit(m, NULL, &err);
        if (rc) die("mutation_commit", rc, &err);
        text_printf(group_effects, "%.*s", (int)w->effects.len, w->effects.p ? w->effects.p : "");
        for (size_t i = 0; i < w->added.len; i++)
            ids_push(&w->live, w->added.v[i].s);
        for (size_t i = 0; i < w->removed.len; i++)
            ids_remove(&w->live, w->removed.v[i].s);
        return;
    }
    herald_mutation_abort(m);
    text_printf(group_effects, "abort%.*s\n", (int)w->nums.len, w->nums.p ? w->nums.p : "");
}

static void one_group(writer *w, uint64_t gno, text *effects)
{
    herald_error err = {0};
    herald_group *g;
    int rc = herald_group_begin(w->store, &g, &err);
    if (rc) die("group_begin", rc, &err);
    effects->len = 0;
    unsigned n = 1 + rnd_below(MAX_GROUP);
    for (unsigned i = 0; i < n; i++)
        one_mutation(w, g, effects);
    printf("group %" PRIu64 " %zu\n", gno, herald_group_count(g));
    print_lines(effects, "try");
    fflush(stdout);
    if ((rc = herald_group_commit(g, &err))) die("group_commit", rc, &err);
    herald_group_free(g);
    /* Durable: only now may the mutations be acknowledged. */
    print_lines(effects, "ack");
    printf("done %" PRIu64 " %" PRIu64 "\n", gno, herald_store_version(w->store));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: crash_writer DATA_DIR [SEED [NUM_BASE [MAX_GROUPS]]]\n");
        return 2;
    }
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    rng_state = rng_state * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (rng_state == 0) rng_state = 1;
    uint64_t max_groups = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    writer w = {.next_num = argc > 3 ? strtoull(argv[3], NULL, 10) : 1};

    herald_error err = {0};
    herald_store_options opts = {.no_sync = false};
    int rc = herald_store_open(argv[1], &opts, &w.store, &err);
    if (rc) die("store_open", rc, &err);
    if (!herald_store_schema(w.store)) {
        herald_schema *schema;
        if ((rc = herald_schema_from_json(schema_json, strlen(schema_json), "crash_writer", &schema,
                                          &err)))
            die("schema_from_json", rc, &err);
        if ((rc = herald_store_set_schema(w.store, schema, &err))) die("set_schema", rc, &err);
    }
    herald_txn *t;
    if ((rc = herald_read_begin(w.store, &t, &err))) die("read_begin", rc, &err);
    rc = herald_table_scan(t, TABLE, collect_id, &w.live, &err);
    herald_txn_end(t);
    if (rc) die("table_scan", rc, &err);
    printf("ready %zu %" PRIu64 "\n", w.live.len, herald_store_version(w.store));
    fflush(stdout);

    text effects = {0};
    for (uint64_t gno = 1; max_groups == 0 || gno <= max_groups; gno++)
        one_group(&w, gno, &effects);

    free(effects.p);
    free(w.effects.p);
    free(w.nums.p);
    free(w.live.v);
    free(w.added.v);
    free(w.removed.v);
    herald_store_close(w.store);
    return 0;
}
