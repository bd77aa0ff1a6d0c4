/*
 * The read-set index (src/rsindex.c) against a brute-force reference.
 *
 * The model keeps every owner's read set as given and answers a match by
 * asking herald_read_range_contains() of every range of every owner for
 * every written key: obviously right, and linear. Keys are short strings
 * over a four-letter alphabet {0x00, 0x01, 0x02, 0xff}, so equal bounds,
 * nested and touching ranges, point ranges [k, k||0x00), unbounded and
 * empty ranges, shared ranges and keys exactly on a bound are all common.
 * Each step also walks the index's own invariants (hd__rsindex_check).
 *
 * Then targeted cases, a match callback that changes the index under it,
 * allocation failures at every point of add and match (the index must be
 * unchanged and valid after each), and a 100,000-range index.
 *
 * HERALD_RSINDEX_SEED and HERALD_RSINDEX_OPS override the seed and the
 * number of random operations per round.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "herald/query.h"
#include "rsindex.h"
#include "store_priv.h"

#define NOWNERS 128
#define NINDEX  3 /* index ids 0..2 get ranges; keys also use 3, which has none */
#define MAXKEY  4
#define KEYBUF  32 /* the common prefix, MAXKEY bytes and two more */

static const uint8_t alphabet[] = {0x00, 0x01, 0x02, 0xff};

/* ---- helpers ---- */

typedef struct key {
    uint32_t index_id;
    uint8_t b[KEYBUF];
    size_t len;
} key;

static void rs_add(herald_read_set *rs, uint32_t iid, const void *lo, size_t lo_len, const void *hi,
                   size_t hi_len)
{
    CHECK_OK(hd__read_set_add(rs, iid, lo, lo_len, hi, hi_len));
}

static herald_write_key wkey(uint32_t iid, const void *k, size_t len)
{
    return (herald_write_key){.index_id = iid, .key = (uint8_t *)k, .key_len = len};
}

/* Collects what a match reports, counting repeats. */
typedef struct hits {
    uint64_t ids[4096];
    size_t n;
} hits;

static void on_hit(void *ctx, uint64_t owner)
{
    hits *h = ctx;
    if (h->n < sizeof h->ids / sizeof h->ids[0]) h->ids[h->n] = owner;
    h->n++;
}

static bool hits_has(const hits *h, uint64_t id)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->ids[i] == id) return true;
    return false;
}

/* Matches one write set with the given added keys; returns the hits. */
static hits match_keys(hd_rsindex *x, herald_write_key *keys, size_t n)
{
    hits h = {.n = 0};
    herald_write_set ws = {.added = keys, .nadded = n};
    const herald_write_set *wsp = &ws;
    CHECK_OK(hd__rsindex_match(x, &wsp, 1, on_hit, &h));
    return h;
}

static hits match_one(hd_rsindex *x, uint32_t iid, const void *k, size_t len)
{
    herald_write_key w = wkey(iid, k, len);
    return match_keys(x, &w, 1);
}

/* ---- the model ---- */

typedef struct model {
    herald_read_set rs[NOWNERS];
    bool live[NOWNERS];
    /* Every range ever generated, so that later ones reuse them. */
    herald_read_set pool;
} model;

/*
 * Some rounds start every key and bound with the same bytes, so that the
 * tree's 16-byte heads (src/rsindex.c) tie and whole keys are compared.
 */
static const uint8_t common[] = "0123456789abcdefghij";
static size_t common_len;

static void random_bytes(uint8_t *b, size_t *len, size_t max)
{
    memcpy(b, common, common_len);
    *len = common_len + check_below((unsigned)max + 1);
    for (size_t i = common_len; i < *len; i++)
        b[i] = alphabet[check_below(sizeof alphabet)];
}

static void random_range(model *m, herald_read_set *rs)
{
    uint8_t lo[KEYBUF], hi[KEYBUF];
    size_t lo_len, hi_len;
    uint32_t iid = check_below(NINDEX);
    unsigned kind = check_below(12);
    if (kind < 3 && m->pool.len) {
        /* Reuse a range: identical ranges across owners and inside one set. */
        const herald_read_range *r = &m->pool.ranges[check_below((unsigned)m->pool.len)];
        rs_add(rs, r->index_id, r->lo, r->lo_len, r->hi, r->hi_len);
        return;
    }
    random_bytes(lo, &lo_len, 3);
    switch (kind) {
    case 3: /* unbounded */
        rs_add(rs, iid, lo, lo_len, NULL, 0);
        break;
    case 4:
    case 5: /* a point, as a get reads it */
        memcpy(hi, lo, lo_len);
        hi[lo_len] = 0x00;
        rs_add(rs, iid, lo, lo_len, hi, lo_len + 1);
        break;
    case 6: /* empty */
        rs_add(rs, iid, lo, lo_len, lo, lo_len);
        break;
    case 7: /* a prefix: lo with its last byte raised */
        memcpy(hi, lo, lo_len);
        hi_len = lo_len;
        if (hi_len && hi[hi_len - 1] != 0xff)
            hi[hi_len - 1]++;
        else
            hi[hi_len++] = 0x01;
        rs_add(rs, iid, lo, lo_len, hi, hi_len);
        break;
    default: /* anything, including hi < lo */
        random_bytes(hi, &hi_len, 3);
        rs_add(rs, iid, lo, lo_len, hi, hi_len);
        break;
    }
    const herald_read_range *r = &rs->ranges[rs->len - 1];
    if (m->pool.len < 400) rs_add(&m->pool, r->index_id, r->lo, r->lo_len, r->hi, r->hi_len);
}

static void random_set(model *m, herald_read_set *rs)
{
    herald_read_set_init(rs);
    unsigned n = check_below(7);
    for (unsigned i = 0; i < n; i++)
        random_range(m, rs);
}

static void random_key(model *m, key *k)
{
    k->index_id = check_below(NINDEX + 1);
    unsigned kind = check_below(4);
    if (kind == 0 && m->pool.len) {
        /* Exactly on a bound, or just after it. */
        const herald_read_range *r = &m->pool.ranges[check_below((unsigned)m->pool.len)];
        const uint8_t *src = r->lo;
        size_t len = r->lo_len;
        if (r->hi && check_below(2)) src = r->hi, len = r->hi_len;
        memcpy(k->b, src, len);
        k->len = len;
        if (check_below(3) == 0) k->b[k->len++] = alphabet[check_below(sizeof alphabet)];
        k->index_id = check_below(4) ? r->index_id : k->index_id;
        return;
    }
    random_bytes(k->b, &k->len, MAXKEY);
}

static bool model_contains(const model *m, int o, const herald_write_key *w)
{
    const herald_read_set *rs = &m->rs[o];
    for (size_t i = 0; i < rs->len; i++)
        if (herald_read_range_contains(&rs->ranges[i], w->index_id, w->key, w->key_len))
            return true;
    return false;
}

static int cmp_range(const void *pa, const void *pb)
{
    const herald_read_range *a = pa, *b = pb;
    if (a->index_id != b->index_id) return a->index_id < b->index_id ? -1 : 1;
    size_t n = a->lo_len < b->lo_len ? a->lo_len : b->lo_len;
    int c = n ? memcmp(a->lo, b->lo, n) : 0;
    if (c) return c;
    if (a->lo_len != b->lo_len) return a->lo_len < b->lo_len ? -1 : 1;
    if (!a->hi || !b->hi) return (int)!a->hi - (int)!b->hi;
    n = a->hi_len < b->hi_len ? a->hi_len : b->hi_len;
    c = n ? memcmp(a->hi, b->hi, n) : 0;
    if (c) return c;
    return (a->hi_len > b->hi_len) - (a->hi_len < b->hi_len);
}

static bool range_empty(const herald_read_range *r)
{
    if (!r->hi) return false;
    size_t n = r->lo_len < r->hi_len ? r->lo_len : r->hi_len;
    int c = n ? memcmp(r->lo, r->hi, n) : 0;
    return c > 0 || (c == 0 && r->lo_len >= r->hi_len);
}

/* Distinct non-empty ranges and owners having one: what the index holds. */
static void model_counts(const model *m, size_t *nranges, size_t *nowners)
{
    static herald_read_range all[NOWNERS * 8];
    size_t n = 0;
    *nowners = 0;
    for (int o = 0; o < NOWNERS; o++) {
        if (!m->live[o]) continue;
        bool any = false;
        for (size_t i = 0; i < m->rs[o].len; i++)
            if (!range_empty(&m->rs[o].ranges[i])) {
                all[n++] = m->rs[o].ranges[i];
                any = true;
            }
        *nowners += any;
    }
    qsort(all, n, sizeof all[0], cmp_range);
    *nranges = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || cmp_range(&all[i - 1], &all[i]) != 0) ++*nranges;
}

static void model_set(model *m, int o, herald_read_set *rs)
{
    herald_read_set_free(&m->rs[o]);
    m->rs[o] = *rs;
    m->live[o] = true;
}

static void model_remove(model *m, int o)
{
    herald_read_set_free(&m->rs[o]);
    m->live[o] = false;
}

static void model_free(model *m)
{
    for (int o = 0; o < NOWNERS; o++)
        herald_read_set_free(&m->rs[o]);
    herald_read_set_free(&m->pool);
}

/* A match callback that also changes the index (and the model) under it. */
typedef struct meddler {
    hd_rsindex *x;
    model *m;
    hits seen;
    bool meddle;
} meddler;

static void on_hit_meddle(void *ctx, uint64_t owner)
{
    meddler *md = ctx;
    on_hit(&md->seen, owner);
    if (!md->meddle || owner >= NOWNERS) return;
    switch (check_below(4)) {
    case 0:
        hd__rsindex_remove(md->x, owner);
        model_remove(md->m, (int)owner);
        break;
    case 1: {
        herald_read_set rs;
        random_set(md->m, &rs);
        CHECK_OK(hd__rsindex_add(md->x, owner, &rs));
        model_set(md->m, (int)owner, &rs);
        break;
    }
    default:
        break;
    }
}

/* One random match against the model; false on a mismatch. */
static bool random_match(hd_rsindex *x, model *m, bool meddle, long *reported)
{
    enum { MAXWS = 3, MAXKEYS = 4 };
    key keys[MAXWS][2][MAXKEYS];
    herald_write_key wk[MAXWS][2][MAXKEYS];
    herald_write_set ws[MAXWS];
    const herald_write_set *wsp[MAXWS];
    size_t nws = check_below(MAXWS + 1);
    bool expect[NOWNERS] = {false};
    for (size_t s = 0; s < nws; s++) {
        size_t n[2];
        for (int side = 0; side < 2; side++) {
            n[side] = check_below(MAXKEYS + 1);
            for (size_t i = 0; i < n[side]; i++) {
                random_key(m, &keys[s][side][i]);
                key *k = &keys[s][side][i];
                wk[s][side][i] = wkey(k->index_id, k->b, k->len);
                for (int o = 0; o < NOWNERS; o++)
                    if (m->live[o] && model_contains(m, o, &wk[s][side][i])) expect[o] = true;
            }
        }
        ws[s] = (herald_write_set){
            .version = s, .removed = wk[s][0], .nremoved = n[0], .added = wk[s][1], .nadded = n[1]};
        wsp[s] = &ws[s];
    }
    meddler md = {.x = x, .m = m, .meddle = meddle};
    CHECK_OK(hd__rsindex_match(x, wsp, nws, on_hit_meddle, &md));
    bool ok = true;
    size_t nexpect = 0;
    for (int o = 0; o < NOWNERS; o++) {
        nexpect += expect[o];
        if (expect[o] != hits_has(&md.seen, (uint64_t)o)) ok = false;
    }
    if (md.seen.n != nexpect) ok = false; /* an owner reported twice */
    *reported += (long)md.seen.n;
    return ok;
}

static bool counts_agree(const hd_rsindex *x, const model *m)
{
    size_t nranges, nowners;
    model_counts(m, &nranges, &nowners);
    return hd__rsindex_count(x) == nranges && hd__rsindex_owners(x) == nowners;
}

/* Every key of the universe (length <= 3, every index), one match each. */
static bool agrees_everywhere(hd_rsindex *x, model *m)
{
    uint8_t b[KEYBUF];
    memcpy(b, common, common_len);
    for (uint32_t iid = 0; iid <= NINDEX; iid++)
        for (size_t len = 0; len <= 3; len++) {
            size_t total = 1;
            for (size_t i = 0; i < len; i++)
                total *= sizeof alphabet;
            for (size_t code = 0; code < total; code++) {
                size_t c = code;
                for (size_t i = 0; i < len; i++, c /= sizeof alphabet)
                    b[common_len + i] = alphabet[c % sizeof alphabet];
                herald_write_key w = wkey(iid, b, common_len + len);
                hits h = match_keys(x, &w, 1);
                size_t nexpect = 0;
                for (int o = 0; o < NOWNERS; o++) {
                    bool want = m->live[o] && model_contains(m, o, &w);
                    nexpect += want;
                    if (want != hits_has(&h, (uint64_t)o)) return false;
                }
                if (h.n != nexpect) return false;
            }
        }
    return true;
}

static void random_round(unsigned long long seed, long ops, size_t prefix)
{
    check_rng_state = seed;
    common_len = prefix;
    model m = {0};
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    long matches = 0, reported = 0;
    size_t ranges_sum = 0;
    for (long step = 0; step < ops; step++) {
        unsigned op = check_below(10);
        int o = (int)check_below(NOWNERS);
        bool ok = true;
        if (op < 5) {
            herald_read_set rs;
            random_set(&m, &rs);
            CHECK_OK(hd__rsindex_add(x, (uint64_t)o, &rs));
            model_set(&m, o, &rs);
        } else if (op < 6) {
            hd__rsindex_remove(x, (uint64_t)o);
            model_remove(&m, o);
        } else {
            ok = random_match(x, &m, op == 9, &reported);
            matches++;
            ranges_sum += hd__rsindex_count(x);
        }
        if (!ok || hd__rsindex_check(x) != 0 || !counts_agree(x, &m)) {
            fprintf(stderr, "test_rsindex: mismatch at step %ld (op %u) of seed %llu\n", step, op,
                    seed);
            CHECK(0);
            break;
        }
        if (step % 1000 == 999) CHECK(agrees_everywhere(x, &m));
    }
    CHECK(agrees_everywhere(x, &m));
    printf("test_rsindex: round (common prefix %zu): %ld matches reported %ld owners, %zu ranges "
           "on average\n",
           prefix, matches, reported, matches ? ranges_sum / (size_t)matches : 0);
    /* A model that matched almost nobody would prove little. */
    CHECK(reported > matches);
    hd__rsindex_free(x);
    model_free(&m);
    common_len = 0;
}

/* ---- targeted cases ---- */

static void test_basics(void)
{
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    CHECK(match_one(x, 1, "a", 1).n == 0);
    CHECK(hd__rsindex_check(x) == 0);

    /* A point range holds its key only. */
    herald_read_set rs;
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "doc", 3, "doc\0", 4);
    CHECK_OK(hd__rsindex_add(x, 7, &rs));
    herald_read_set_free(&rs);
    CHECK(hd__rsindex_count(x) == 1 && hd__rsindex_owners(x) == 1);
    CHECK(match_one(x, 1, "doc", 3).n == 1);
    CHECK(match_one(x, 1, "doc", 3).ids[0] == 7);
    CHECK(match_one(x, 1, "doc\0", 4).n == 0);
    CHECK(match_one(x, 1, "do", 2).n == 0);
    CHECK(match_one(x, 1, "doca", 4).n == 0);
    CHECK(match_one(x, 2, "doc", 3).n == 0);

    /* Unbounded, in another index; and an empty lo: the whole index. */
    herald_read_set_init(&rs);
    rs_add(&rs, 2, "m", 1, NULL, 0);
    rs_add(&rs, UINT32_MAX, "", 0, NULL, 0);
    CHECK_OK(hd__rsindex_add(x, 8, &rs));
    herald_read_set_free(&rs);
    CHECK(match_one(x, 2, "m", 1).n == 1);
    CHECK(match_one(x, 2, "\xff\xff\xff", 3).n == 1);
    CHECK(match_one(x, 2, "l\xff", 2).n == 0);
    CHECK(match_one(x, 3, "z", 1).n == 0);
    CHECK(match_one(x, UINT32_MAX, "", 0).n == 1);
    CHECK(match_one(x, UINT32_MAX - 1, "\xff", 1).n == 0);
    CHECK(hd__rsindex_count(x) == 3);

    /* Empty ranges are not stored; an owner with only those is no owner. */
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "b", 1, "b", 1);
    rs_add(&rs, 1, "c", 1, "b", 1);
    rs_add(&rs, 1, "", 0, "", 0);
    rs_add(&rs, 1, "b\0", 2, "b", 1);
    CHECK_OK(hd__rsindex_add(x, 9, &rs));
    CHECK(hd__rsindex_count(x) == 3 && hd__rsindex_owners(x) == 2);
    CHECK(match_one(x, 1, "b", 1).n == 0);

    /* ...and adding only those to a real owner forgets it. */
    CHECK_OK(hd__rsindex_add(x, 7, &rs));
    herald_read_set_free(&rs);
    CHECK(hd__rsindex_count(x) == 2 && hd__rsindex_owners(x) == 1);
    CHECK(match_one(x, 1, "doc", 3).n == 0);

    /* Unknown owners and repeated removes are no-ops. */
    hd__rsindex_remove(x, 12345);
    hd__rsindex_remove(x, 8);
    hd__rsindex_remove(x, 8);
    CHECK(hd__rsindex_count(x) == 0 && hd__rsindex_owners(x) == 0);
    CHECK(hd__rsindex_check(x) == 0);

    /* No write sets, and write sets without keys. */
    herald_write_set empty = {0};
    const herald_write_set *ep = &empty;
    hits h = {.n = 0};
    CHECK_OK(hd__rsindex_match(x, NULL, 0, on_hit, &h));
    CHECK_OK(hd__rsindex_match(x, &ep, 1, on_hit, &h));
    CHECK(h.n == 0);
    hd__rsindex_free(x);
    hd__rsindex_free(NULL);
}

static void test_sharing_and_replace(void)
{
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    herald_read_set rs;

    /* The same range twice in one set, and one range inside another. */
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "a", 1, "c", 1);
    rs_add(&rs, 1, "a", 1, "c", 1);
    rs_add(&rs, 1, "b", 1, "b\0", 2);
    CHECK_OK(hd__rsindex_add(x, 1, &rs));
    CHECK(hd__rsindex_count(x) == 2);
    hits h = match_one(x, 1, "b", 1);
    CHECK(h.n == 1 && h.ids[0] == 1);

    /* Re-adding the same set changes nothing; a new set replaces it. */
    CHECK_OK(hd__rsindex_add(x, 1, &rs));
    CHECK(hd__rsindex_count(x) == 2 && hd__rsindex_check(x) == 0);
    herald_read_set_free(&rs);
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "b", 1, "d", 1);
    CHECK_OK(hd__rsindex_add(x, 1, &rs));
    herald_read_set_free(&rs);
    CHECK(hd__rsindex_count(x) == 1);
    CHECK(match_one(x, 1, "a", 1).n == 0);
    CHECK(match_one(x, 1, "c", 1).n == 1);
    CHECK(match_one(x, 1, "d", 1).n == 0);

    /* A thousand owners on one range: stored once, each reported once. */
    herald_read_set_init(&rs);
    rs_add(&rs, 5, "t", 1, "u", 1);
    for (uint64_t o = 100; o < 1100; o++)
        CHECK_OK(hd__rsindex_add(x, o, &rs));
    herald_read_set_free(&rs);
    CHECK(hd__rsindex_count(x) == 2 && hd__rsindex_owners(x) == 1001);
    herald_write_key two[2] = {wkey(5, "t1", 2), wkey(5, "t2", 2)};
    h = match_keys(x, two, 2);
    CHECK(h.n == 1000);
    for (uint64_t o = 100; o < 1100; o += 2)
        hd__rsindex_remove(x, o);
    CHECK(hd__rsindex_check(x) == 0);
    h = match_one(x, 5, "t", 1);
    CHECK(h.n == 500 && hits_has(&h, 101) && !hits_has(&h, 100));
    for (uint64_t o = 101; o < 1100; o += 2)
        hd__rsindex_remove(x, o);
    CHECK(hd__rsindex_count(x) == 1 && hd__rsindex_owners(x) == 1);
    CHECK(hd__rsindex_check(x) == 0);
    hd__rsindex_free(x);
}

/* A callback that matches again from inside a match. */
typedef struct nested {
    hd_rsindex *x;
    int depth;
    hits outer, inner;
} nested;

static void on_hit_nested(void *ctx, uint64_t owner)
{
    nested *n = ctx;
    on_hit(&n->outer, owner);
    if (n->depth++) return;
    herald_write_key w = wkey(1, "k", 1);
    herald_write_set ws = {.added = &w, .nadded = 1};
    const herald_write_set *wsp = &ws;
    CHECK_OK(hd__rsindex_match(n->x, &wsp, 1, on_hit, &n->inner));
}

static void test_nested_match(void)
{
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    herald_read_set rs;
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "", 0, NULL, 0);
    for (uint64_t o = 0; o < 300; o++)
        CHECK_OK(hd__rsindex_add(x, o, &rs));
    herald_read_set_free(&rs);
    nested n = {.x = x};
    herald_write_key w = wkey(1, "z", 1);
    herald_write_set ws = {.removed = &w, .nremoved = 1};
    const herald_write_set *wsp = &ws;
    CHECK_OK(hd__rsindex_match(x, &wsp, 1, on_hit_nested, &n));
    CHECK(n.outer.n == 300 && n.inner.n == 300);
    hd__rsindex_free(x);
}

/*
 * Fails the first, second, ... allocation of each operation until it
 * succeeds; after every failure the index must be valid and answer exactly
 * as before.
 */
static void test_out_of_memory(unsigned long long seed)
{
    check_rng_state = seed ^ 0x5eedULL;
    model m = {0};
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    long failures = 0;
    for (int step = 0; step < 300 && !check_failures; step++) {
        int o = (int)check_below(NOWNERS);
        if (check_below(8) == 0) {
            hd__rsindex_remove(x, (uint64_t)o);
            model_remove(&m, o);
            continue;
        }
        herald_read_set rs;
        random_set(&m, &rs);
        for (long n = 0;; n++) {
            hd__rsindex_fail_after(x, n);
            int rc = hd__rsindex_add(x, (uint64_t)o, &rs);
            hd__rsindex_fail_after(x, -1);
            if (rc == 0) break;
            CHECK(rc == HERALD_ENOMEM);
            failures++;
            CHECK(hd__rsindex_check(x) == 0);
            CHECK(counts_agree(x, &m));
            if (step % 16 == 0) CHECK(agrees_everywhere(x, &m));
            if (check_failures) break;
        }
        model_set(&m, o, &rs);
        CHECK(hd__rsindex_check(x) == 0 && counts_agree(x, &m));
    }
    CHECK(agrees_everywhere(x, &m));
    printf("test_rsindex: %ld allocation failures injected into add\n", failures);
    CHECK(failures > 100);

    /* A match that cannot grow its list of owners reports nobody. */
    hd_rsindex *y = NULL;
    CHECK_OK(hd__rsindex_new(&y));
    herald_read_set rs;
    herald_read_set_init(&rs);
    rs_add(&rs, 1, "", 0, NULL, 0);
    for (uint64_t o = 0; o < 100; o++)
        CHECK_OK(hd__rsindex_add(y, o, &rs));
    herald_read_set_free(&rs);
    herald_write_key w = wkey(1, "k", 1);
    herald_write_set ws = {.added = &w, .nadded = 1};
    const herald_write_set *wsp = &ws;
    hits h = {.n = 0};
    hd__rsindex_fail_after(y, 0);
    CHECK(hd__rsindex_match(y, &wsp, 1, on_hit, &h) == HERALD_ENOMEM);
    CHECK(h.n == 0);
    hd__rsindex_fail_after(y, 1); /* the first block, not its growth */
    CHECK(hd__rsindex_match(y, &wsp, 1, on_hit, &h) == HERALD_ENOMEM);
    CHECK(h.n == 0);
    hd__rsindex_fail_after(y, -1);
    CHECK_OK(hd__rsindex_match(y, &wsp, 1, on_hit, &h));
    CHECK(h.n == 100 && hd__rsindex_check(y) == 0);
    hd__rsindex_free(y);

    hd__rsindex_free(x);
    model_free(&m);
}

/*
 * 100,000 ranges on distinct keys, added in key order (the AVL tree's
 * worst order): even keys read as points [k, k||0x00), odd ones as ranges
 * [k, k+1) that hold k and every key extending it.
 */
static void test_large(void)
{
    enum { N = 100000 };
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    herald_read_set rs;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t lo[4], hi[5];
        hd__put_be32(lo, i);
        memcpy(hi, lo, 4);
        hi[4] = 0x00;
        if (i % 2) hd__put_be32(hi, i + 1);
        herald_read_set_init(&rs);
        rs_add(&rs, 4, lo, 4, hi, i % 2 ? 4 : 5);
        CHECK_OK(hd__rsindex_add(x, i, &rs));
        herald_read_set_free(&rs);
    }
    /* And one prefix over all of them, held by one more owner. */
    herald_read_set_init(&rs);
    rs_add(&rs, 4, "", 0, "\x01", 1);
    CHECK_OK(hd__rsindex_add(x, N, &rs));
    herald_read_set_free(&rs);
    CHECK(hd__rsindex_count(x) == N + 1 && hd__rsindex_check(x) == 0);
    /*
     * The work of a match follows the height of the tree of non-point
     * ranges (at most 1.44 log2 n, 22 here), never n: a stab walks about
     * two root-to-leaf paths.
     */
    size_t most = 0;
    for (uint32_t i = 0; i < N; i += 997) {
        uint8_t k[5];
        hd__put_be32(k, i);
        hits h = match_one(x, 4, k, 4);
        CHECK(h.n == 2 && hits_has(&h, i) && hits_has(&h, N));
        if (hd__rsindex_visited(x) > most) most = hd__rsindex_visited(x);
        k[4] = 0x00; /* just after k: inside k's range, after k's point */
        h = match_one(x, 4, k, 5);
        CHECK(h.n == 1 + i % 2 && hits_has(&h, N) && hits_has(&h, i) == (i % 2 == 1));
        if (hd__rsindex_visited(x) > most) most = hd__rsindex_visited(x);
    }
    printf("test_rsindex: a match among %d ranges visits at most %zu tree nodes\n", N + 1, most);
    CHECK(most <= 2 * 22);
    for (uint32_t i = 0; i < N; i += 2)
        hd__rsindex_remove(x, i);
    CHECK(hd__rsindex_count(x) == N / 2 + 1 && hd__rsindex_check(x) == 0);
    uint8_t k[4];
    hd__put_be32(k, 1234);
    CHECK(match_one(x, 4, k, 4).n == 1);
    hd__put_be32(k, 1235);
    CHECK(match_one(x, 4, k, 4).n == 2);
    for (uint32_t i = 1; i < N; i += 2)
        hd__rsindex_remove(x, i);
    CHECK(hd__rsindex_count(x) == 1 && hd__rsindex_check(x) == 0);
    hd__rsindex_free(x);
}

/*
 * Keys sharing their first 20 bytes: the heads kept in the tree tie, and
 * the descent must still prune by comparing whole keys.
 */
static void test_long_keys(void)
{
    enum { N = 4096 };
    static const char common_key[] = "user/with/a/long/prefix/";
    const size_t clen = sizeof common_key - 1;
    hd_rsindex *x = NULL;
    CHECK_OK(hd__rsindex_new(&x));
    uint8_t lo[64], hi[64];
    memcpy(lo, common_key, clen);
    memcpy(hi, common_key, clen);
    for (uint32_t i = 0; i < N; i++) {
        hd__put_be32(lo + clen, 2 * i);
        hd__put_be32(hi + clen, 2 * i + 1);
        herald_read_set rs;
        herald_read_set_init(&rs);
        rs_add(&rs, 9, lo, clen + 4, hi, clen + 4);
        CHECK_OK(hd__rsindex_add(x, i, &rs));
        herald_read_set_free(&rs);
    }
    CHECK(hd__rsindex_check(x) == 0);
    size_t most = 0;
    for (uint32_t i = 0; i < 2 * N; i += 7) {
        hd__put_be32(lo + clen, i);
        hits h = match_one(x, 9, lo, clen + 4);
        CHECK(h.n == (i % 2 == 0) && (i % 2 || hits_has(&h, i / 2)));
        if (hd__rsindex_visited(x) > most) most = hd__rsindex_visited(x);
    }
    /* The height is at most 1.44 log2(4096) = 17. */
    CHECK(most <= 2 * 17);
    hd__rsindex_free(x);
}

int main(void)
{
    const char *env = getenv("HERALD_RSINDEX_SEED");
    unsigned long long seed =
        env && *env ? strtoull(env, NULL, 0)
                    : ((unsigned long long)time(NULL) << 20) ^ (unsigned long long)getpid();
    if (!seed) seed = 1;
    env = getenv("HERALD_RSINDEX_OPS");
    long ops = env && *env ? strtol(env, NULL, 0) : 5000;
    printf("test_rsindex: seed %llu (rerun with HERALD_RSINDEX_SEED=%llu), %ld ops x 4 rounds\n",
           seed, seed, ops);
    fflush(stdout);

    test_basics();
    test_sharing_and_replace();
    test_nested_match();
    /* Keys sharing no prefix, 15 bytes (heads differ in their last byte) and 17. */
    static const size_t prefixes[4] = {0, 0, 15, 17};
    for (unsigned long long round = 0; round < 4 && !check_failures; round++)
        random_round(seed + round * 0x9e3779b97f4a7c15ULL, ops, prefixes[round]);
    test_out_of_memory(seed);
    test_long_keys();
    test_large();
    if (check_failures) printf("test_rsindex: FAILED (seed %llu)\n", seed);
    CHECK_DONE();
}
