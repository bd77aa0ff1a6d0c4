/*
 * bench_rsindex: the cost of finding the subscriptions a commit touches
 * must follow the matches, not the number of subscriptions.
 *
 * For N = 100 and N = 100,000 it registers N owners, each with one range
 * on its own key of one index, then times match calls for a write set
 * that touches one of them, plus one key of another index that nobody
 * reads. Each call matches exactly one owner. Keys are encoded as Herald
 * encodes them (keycodec.h). Two kinds of range:
 * - point: [k, k||0x00) on a by_id key (a 32-character id), as a `get`
 *   reads it; the write set holds the document's old and new entry, both
 *   k, as a patch writes them. These are found in the points hash table.
 * - prefix: [p, p+1) on a feed name "feed-0000123" in a by_feed_position
 *   index, as an equality on the leading field reads it; the write set
 *   adds one document of the feed. These are found in the interval tree;
 *   all the names share their first 8 bytes, so every level of the tree
 *   must compare whole keys (the slow path of subtree_hi_after).
 * It prints the CPU time per call (CLOCK_PROCESS_CPUTIME_ID), the heap
 * bytes per registered range (mallinfo2) and the ratio of the per-call
 * costs, which must stay near 1 for points and near the ratio of the tree
 * depths for prefixes (plus cache misses: 100,000 ranges do not fit in
 * the CPU caches, 100 do), nowhere near 1,000.
 *
 * --calls C sets the match calls per run (default 100,000); --only N and
 * --kind point|prefix run one case, for
 *   valgrind --tool=callgrind bench_rsindex --only N --kind K --calls C
 * whose instruction counts are repeatable (compare two values of --calls
 * to remove the setup). It never runs as a test: it measures time.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/query.h"
#include "rsindex.h"
#include "store_priv.h"

#define MAX_KEY 64

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum kind { POINT, PREFIX };
static const char *const kind_names[] = {"point", "prefix"};

typedef struct key {
    uint8_t b[MAX_KEY];
    size_t len;
} key;

/* A string in the index key encoding (keycodec.h): tag 0x06, bytes, 00 01. */
static void put_string(key *k, const char *s)
{
    k->b[k->len++] = 0x06;
    size_t n = strlen(s);
    memcpy(k->b + k->len, s, n);
    k->len += n;
    k->b[k->len++] = 0x00;
    k->b[k->len++] = 0x01;
}

/* Document i's by_id key: a 32-character pseudo-random id. */
static void id_key(key *k, uint32_t i)
{
    static const char digits[] = "0123456789abcdefghjkmnpqrstvwxyz";
    char id[33];
    uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
    for (int c = 0; c < 32; c++) {
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ULL;
        id[c] = digits[h >> 59];
    }
    id[32] = '\0';
    put_string(k, id);
}

/* Feed i's prefix in a by_feed_position index: the encoded feed name. */
static void feed_key(key *k, uint32_t i)
{
    char feed[32];
    snprintf(feed, sizeof feed, "feed-%07u", (unsigned)i);
    put_string(k, feed);
}

static void on_hit(void *ctx, uint64_t owner)
{
    uint64_t *sum = ctx;
    *sum += owner + 1;
}

typedef struct result {
    double ns_per_add; /* including building the read set */
    double ns_per_call;
    double bytes_per_range;
} result;

static int run(uint32_t n, enum kind kind, long calls, result *out)
{
    struct mallinfo2 before = mallinfo2();
    hd_rsindex *x = NULL;
    if (hd__rsindex_new(&x)) return 1;
    double t_add = cpu_seconds();
    for (uint32_t i = 0; i < n; i++) {
        key lo = {.len = 0}, hi;
        if (kind == POINT) {
            id_key(&lo, i);
            hi = lo;
            hi.b[hi.len++] = 0x00; /* [k, k||0x00) */
        } else {
            feed_key(&lo, i);
            hi = lo;
            hi.b[hi.len - 1]++; /* [p, p+1): every key starting with p */
        }
        herald_read_set rs;
        herald_read_set_init(&rs);
        int rc = hd__read_set_add(&rs, 7, lo.b, lo.len, hi.b, hi.len);
        if (!rc) rc = hd__rsindex_add(x, i, &rs);
        herald_read_set_free(&rs);
        if (rc) return 1;
    }
    out->ns_per_add = (cpu_seconds() - t_add) * 1e9 / n;
    struct mallinfo2 after = mallinfo2();
    out->bytes_per_range = (double)(after.uordblks - before.uordblks) / n;

    /*
     * The written keys, made up front so that the loop times only match:
     * for points the document's by_id key, for prefixes a document of the
     * feed (feed, a position as float64, its id).
     */
    enum { NTARGETS = 1024 };
    static key keys[NTARGETS], other;
    for (int t = 0; t < NTARGETS; t++) {
        uint32_t i = (uint32_t)(((uint64_t)t * 2654435761u) % n);
        keys[t].len = 0;
        if (kind == POINT) {
            id_key(&keys[t], i);
        } else {
            feed_key(&keys[t], i);
            static const uint8_t position[9] = {0x04, 0xc0, 0x45, 0, 0, 0, 0, 0, 0};
            memcpy(keys[t].b + keys[t].len, position, sizeof position);
            keys[t].len += sizeof position;
            id_key(&keys[t], i + n);
        }
    }
    other = keys[0]; /* the same bytes in an index nobody reads */

    uint64_t sum = 0;
    double t0 = cpu_seconds();
    for (long c = 0; c < calls; c++) {
        key *k = &keys[c % NTARGETS];
        herald_write_key removed = {7, k->b, k->len};
        herald_write_key added[2] = {{7, k->b, k->len}, {8, other.b, other.len}};
        herald_write_set ws = {.version = (uint64_t)c,
                               .removed = &removed,
                               .nremoved = kind == POINT,
                               .added = added,
                               .nadded = 2};
        const herald_write_set *wsp = &ws;
        if (hd__rsindex_match(x, &wsp, 1, on_hit, &sum)) return 1;
    }
    double t1 = cpu_seconds();
    out->ns_per_call = (t1 - t0) * 1e9 / (double)calls;
    hd__rsindex_free(x);
    /* Else glibc consolidates the freed chunks during the next run's adds. */
    malloc_trim(0);
    /* Every call matched exactly its one owner. */
    uint64_t want = 0;
    for (long c = 0; c < calls; c++)
        want += ((uint64_t)(c % NTARGETS) * 2654435761u) % n + 1;
    if (sum != want) {
        fprintf(stderr, "bench_rsindex: wrong matches for N=%u (%s)\n", n, kind_names[kind]);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long calls = 100000;
    long only = 0;
    int kinds = 3; /* bit 0 point, bit 1 prefix */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--calls") && i + 1 < argc)
            calls = strtol(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = strtol(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "point"))
            kinds = 1, i++;
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "prefix"))
            kinds = 2, i++;
        else {
            fprintf(stderr, "usage: bench_rsindex [--calls C] [--only N] [--kind point|prefix]\n");
            return 2;
        }
    }
    if (calls <= 0) calls = 1;
    if (only > 0) {
        for (int k = 0; k < 2; k++) {
            if (!(kinds & (1 << k))) continue;
            result r;
            if (run((uint32_t)only, (enum kind)k, calls, &r)) return 1;
            printf("N=%ld %s: %.1f ns per match call, %.0f ns per add, %.0f heap bytes per range\n",
                   only, kind_names[k], r.ns_per_call, r.ns_per_add, r.bytes_per_range);
        }
        return 0;
    }
    printf("%ld match calls per row, each matching 1 owner\n\n", calls);
    printf("| ranges | N | CPU ns per match | CPU ns per add | heap bytes per range |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (int k = 0; k < 2; k++) {
        if (!(kinds & (1 << k))) continue;
        const uint32_t sizes[2] = {100, 100000};
        result r[2];
        for (int s = 0; s < 2; s++) {
            if (run(sizes[s], (enum kind)k, calls, &r[s])) return 1;
            printf("| %s | %u | %.1f | %.0f | %.0f |\n", kind_names[k], sizes[s], r[s].ns_per_call,
                   r[s].ns_per_add, r[s].bytes_per_range);
        }
        printf("| %s | ratio 100,000 / 100 | %.2f | | |\n", kind_names[k],
               r[1].ns_per_call / r[0].ns_per_call);
    }
    return 0;
}
