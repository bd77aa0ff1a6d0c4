/*
 * The replication log (store.h, "replication"): what a primary's group
 * records, applied to another store with the same schema, gives the same
 * documents, index entries, versions, write sets and idempotency records;
 * a log applied twice, cut short, corrupted, or naming a table the store
 * lacks is refused with nothing of the failing group kept.
 *
 * Run with a folder as its argument, it also writes its logs there as seeds
 * of the fuzz corpus (tests/fuzz/corpus/fuzz_replog).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replog_schema.h"
#include "herald/schema.h"
#include "herald/store.h"

static herald_store *open_new(char *dir)
{
    herald_error err = {0};
    herald_store *s = NULL;
    if (!mkdtemp(dir)) exit(1);
    herald_store_options o = {.no_sync = true, .initial_map_size = 4 << 20};
    CHECK_OK(herald_store_open(dir, &o, &s, &err));
    herald_schema *schema = NULL;
    CHECK_OK(herald_schema_from_json(replog_schema_json, strlen(replog_schema_json), "t.json",
                                     &schema, &err));
    CHECK_OK(herald_store_set_schema(s, schema, &err));
    return s;
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int append_doc(void *ctx, const herald_value *doc)
{
    char *t = herald_value_to_json(doc);
    size_t *len = ((size_t **)ctx)[1];
    char **out = ((char ***)ctx)[0];
    size_t n = strlen(t);
    *out = realloc(*out, *len + n + 2);
    memcpy(*out + *len, t, n);
    (*out)[*len + n] = '\n';
    (*out)[*len + n + 1] = 0;
    *len += n + 1;
    free(t);
    return 0;
}

/* Every document of both tables, as JSON lines, and the store's version. */
static char *dump(herald_store *s, uint64_t *version)
{
    herald_error err = {0};
    herald_txn *t;
    char *out = calloc(1, 1);
    size_t len = 0;
    void *ctx[2] = {&out, &len};
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_table_scan(t, "notes", append_doc, ctx, &err));
    CHECK_OK(herald_table_scan(t, "people", append_doc, ctx, &err));
    *version = herald_txn_version(t);
    herald_txn_end(t);
    return out;
}

/* Writes on the primary: inserts, a patch, a replace, a delete, an idempotency record. */
static uint8_t *primary_group(herald_store *s, int round, size_t *len, size_t *nsets)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, &err));
    herald_group_log_start(g);
    char a[HERALD_ID_CHARS + 1], b[HERALD_ID_CHARS + 1], p[HERALD_ID_CHARS + 1];
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value v = json("{\"title\":\"first\",\"n\":1,\"tags\":[\"x\",\"y\"]}");
    CHECK_OK(herald_insert(m, "notes", &v, a, &err));
    herald_value_free(&v);
    v = json("{\"title\":\"second\",\"n\":-0.5}");
    CHECK_OK(herald_insert(m, "notes", &v, b, &err));
    herald_value_free(&v);
    v = json(
        "{\"name\":\"ada\",\"deep\":{\"list\":[1,[2,{\"z\":null}]],\"b\":{\"$bytes\":\"AAE=\"}}}");
    CHECK_OK(herald_insert(m, "people", &v, p, &err));
    herald_value_free(&v);
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    /* A mutation that fails leaves nothing in the log. */
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    v = json("{\"title\":\"never\",\"n\":9}");
    CHECK_OK(herald_insert(m, "notes", &v, NULL, &err));
    herald_value_free(&v);
    herald_mutation_abort(m);
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    v = json("{\"n\":3}");
    CHECK_OK(herald_patch(m, a, &v, &err));
    herald_value_free(&v);
    v = json("{\"name\":\"ada lovelace\"}");
    CHECK_OK(herald_replace(m, p, &v, &err));
    herald_value_free(&v);
    CHECK_OK(herald_delete(m, b, &err));
    char key[32];
    snprintf(key, sizeof key, "key-%d", round);
    herald_idem idem = {.key = key, .scope = "u", .scope_len = 1, .request = "r", .request_len = 1};
    herald_value result = json("{\"ok\":true}");
    CHECK_OK(herald_idem_put(m, &idem, &result, &err));
    herald_value_free(&result);
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    *nsets = herald_group_count(g);
    size_t n;
    const uint8_t *log = herald_group_log(g, &n);
    uint8_t *copy = malloc(n);
    memcpy(copy, log, n);
    *len = n;
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    return copy;
}

/*
 * Applies `log` in a group of its own with `seq`; returns the code. Commits
 * only on success, and only with `commit` (else the group is dropped, as the
 * writer drops a group whose record failed).
 */
static int apply_in(herald_store *s, const uint8_t *log, size_t len, uint64_t seq, size_t *nsets,
                    bool commit)
{
    herald_error err = {0};
    herald_group *g;
    CHECK_OK(herald_group_begin(s, &g, &err));
    int rc = herald_group_apply_log(g, log, len, &err);
    if (!rc) rc = herald_group_set_meta(g, "repl_seq", seq, &err);
    if (nsets) *nsets = herald_group_count(g);
    if (rc || !commit)
        herald_group_abort(g);
    else
        CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    return rc;
}

static int apply(herald_store *s, const uint8_t *log, size_t len, uint64_t seq, size_t *nsets)
{
    return apply_in(s, log, len, seq, nsets, true);
}

static uint64_t repl_seq(herald_store *s)
{
    uint64_t v = 0;
    herald_error err = {0};
    CHECK_OK(herald_store_get_meta(s, "repl_seq", &v, &err));
    return v;
}

static void write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    if (!dir) return;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *seeds = argc > 1 ? argv[1] : NULL;
    char da[] = "/tmp/herald-replog-a-XXXXXX", db[] = "/tmp/herald-replog-b-XXXXXX";
    herald_store *a = open_new(da), *b = open_new(db);
    herald_error err = {0};

    /* Two groups on the primary, applied in order on the replica. */
    size_t len1, len2, sets_a, sets_b;
    uint8_t *log1 = primary_group(a, 1, &len1, &sets_a);
    CHECK(sets_a == 2);
    CHECK(len1 > 0);
    CHECK_OK(apply(b, log1, len1, 1, &sets_b));
    CHECK(sets_b == sets_a); /* one write set per mutation, as on the primary */
    uint8_t *log2 = primary_group(a, 2, &len2, &sets_a);
    CHECK_OK(apply(b, log2, len2, 2, NULL));
    write_seed(seeds, "group1", log1, len1);
    write_seed(seeds, "group2", log2, len2);

    uint64_t va, vb;
    char *ta = dump(a, &va), *tb = dump(b, &vb);
    CHECK(va == 4 && vb == 4);
    CHECK(strcmp(ta, tb) == 0);
    CHECK(strstr(tb, "ada lovelace") != NULL);
    CHECK(strstr(tb, "second") == NULL && strstr(tb, "never") == NULL);
    CHECK(repl_seq(b) == 2);
    /* Indexes and idempotency records are whole: the check passes, two records there. */
    CHECK_OK(herald_store_check(b, NULL, NULL, &err));
    herald_txn *t;
    uint64_t records = 0;
    CHECK_OK(herald_read_begin(b, &t, &err));
    CHECK_OK(herald_idem_count(t, &records, &err));
    herald_txn_end(t);
    CHECK(records == 2);

    /* Applied again: its versions are not newer; nothing changes. */
    CHECK(apply(b, log2, len2, 3, NULL) == HERALD_ECORRUPT);
    char *again = dump(b, &vb);
    CHECK(vb == 4 && strcmp(again, tb) == 0);
    CHECK(repl_seq(b) == 2);
    free(again);

    /* Every cut and many flipped bytes of a log the replica has not applied: refused
     * or applied, never a crash. A cut applies only where a record ends: at 0 and after
     * the first of its two mutations. */
    size_t len3, sets3;
    uint8_t *log3 = primary_group(a, 3, &len3, &sets3);
    int whole = 0;
    for (size_t cut = 0; cut < len3; cut++) {
        int rc = apply_in(b, log3, cut, 9, NULL, false);
        CHECK(rc == 0 || rc == HERALD_ECORRUPT);
        whole += rc == 0;
    }
    CHECK(whole == 2);
    char *now = dump(b, &vb);
    CHECK(vb == 4 && strcmp(now, tb) == 0);
    free(now);
    for (int i = 0; i < 300; i++) {
        uint8_t *bad = malloc(len3);
        memcpy(bad, log3, len3);
        bad[check_below((unsigned)len3)] ^= (uint8_t)(1u << check_below(8));
        /* On a copy of the replica, so that an accepted change cannot spoil the next ones. */
        char dc[] = "/tmp/herald-replog-c-XXXXXX";
        herald_store *c = open_new(dc);
        CHECK_OK(apply(c, log1, len1, 1, NULL));
        CHECK_OK(apply(c, log2, len2, 2, NULL));
        if (apply(c, bad, len3, 3, NULL) == 0) CHECK_OK(herald_store_check(c, NULL, NULL, &err));
        herald_store_close(c);
        remove_dir(dc);
        free(bad);
    }
    /* The real one applies. */
    CHECK_OK(apply(b, log3, len3, 3, NULL));
    free(ta);
    free(tb);
    ta = dump(a, &va);
    tb = dump(b, &vb);
    CHECK(va == vb && strcmp(ta, tb) == 0);
    write_seed(seeds, "group3", log3, len3);

    /* A table this store does not have (another schema history): refused. */
    uint8_t *odd = malloc(len1);
    memcpy(odd, log1, len1);
    /* The first change's table name follows 'M', version, count and its kind. */
    size_t at = 1 + 8 + 4 + 1 + 1;
    CHECK(odd[at] == 'n');
    odd[at] = 'm';
    size_t nsets;
    CHECK(apply(b, odd, len1, 4, &nsets) == HERALD_ECORRUPT);
    write_seed(seeds, "other_table", odd, len1);
    free(odd);

    /* Metadata: only repl_ names, of bounded length; a name never set reads 0. */
    herald_group *g;
    CHECK_OK(herald_group_begin(b, &g, &err));
    CHECK(herald_group_set_meta(g, "version", 1, &err) == HERALD_EINVAL);
    CHECK(herald_group_set_meta(g, "repl_a_name_longer_than_the_limit", 1, &err) == HERALD_EINVAL);
    herald_group_free(g);
    uint64_t never = 7;
    CHECK_OK(herald_store_get_meta(b, "repl_never", &never, &err));
    CHECK(never == 0);

    free(ta);
    free(tb);
    free(log1);
    free(log2);
    free(log3);
    herald_store_close(a);
    herald_store_close(b);
    remove_dir(da);
    remove_dir(db);
    CHECK_DONE();
}
