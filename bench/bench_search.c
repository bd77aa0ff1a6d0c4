/*
 * bench_search: full-text search on its postings (src/fts.c, src/search.c)
 * beside a plain scan of the table doing the same match, at 10,000 and
 * 1,000,000 documents (--docs).
 *
 * The table holds notes of 6 to 12 words drawn from a vocabulary of 20,000
 * words with a Zipf-like law (word i with weight 1/(i+1)), and an owner of
 * 100. Documents are loaded without fsync (the load is not what is
 * measured).
 *
 * (a) Search latency, median and p99 over --queries searches in a fresh
 *     read snapshot each, for three kinds: one term of middling frequency
 *     (ranks 100-1,000: about 0.1-1% of the notes), two terms with the last
 *     a prefix of three letters (a word of rank 1,000-10,000 less its last
 *     letter: it covers 27 words, one of them of rank 26-675), and one term filtered on an
 *     owner. Beside: the scan the old search did (every document read,
 *     decoded, its text tokenised and matched; ranking left out, which
 *     favours the scan), a few times at 1,000,000 documents.
 * (b) Invalidation: --subs search subscriptions (the three kinds, random
 *     words) registered in a read-set index (src/rsindex.c) by their read
 *     sets, then --writes single-document mutations (new notes, and
 *     rewritten texts of existing ones); per write, the time to match its
 *     write set against the index and the number of searches it re-runs.
 *     Beside: what the scan gives, where every write to the table re-runs
 *     every search on it, each re-run costing one scan.
 * (c) What postings cost writes: inserts per second (no fsync) of the same
 *     notes into a table with and without the search index, up to 100,000.
 *
 * It uses Herald's private headers for the search and the read-set index.
 * Results go to stdout as markdown. It must never be registered as a test.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/query.h"
#include "herald/store.h"
#include "fts.h"
#include "rsindex.h"
#include "search.h"

#define BENCH_NAME "bench_search"
#include "bench_util.h"

#define VOCAB  20000
#define OWNERS 100

static const char schema_json[] =
    "{\"tables\":{\"notes\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "\"body\":{\"type\":\"string\"},\"owner\":{\"type\":\"string\"}}},"
    "\"searchIndexes\":[{\"name\":\"search_body\",\"searchField\":\"body\","
    "\"filterFields\":[\"owner\"]}]}}}";

static const char plain_schema_json[] =
    "{\"tables\":{\"notes\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "\"body\":{\"type\":\"string\"},\"owner\":{\"type\":\"string\"}}}}}}";

static double *zipf_cdf;

static void zipf_init(void)
{
    zipf_cdf = xmalloc(VOCAB * sizeof *zipf_cdf);
    double sum = 0;
    for (int i = 0; i < VOCAB; i++)
        zipf_cdf[i] = (sum += 1.0 / (i + 1));
    for (int i = 0; i < VOCAB; i++)
        zipf_cdf[i] /= sum;
}

static int zipf_word(void)
{
    double u = (double)(rnd() >> 11) / (double)(1ULL << 53);
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Word i is "w" followed by i in base 26 letters: w, wb, wc, ... */
static void word(int i, char *out)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = (char)('a' + i % 26);
        i /= 26;
    } while (i);
    out[0] = 'w';
    for (int j = 0; j < n; j++)
        out[1 + j] = tmp[n - 1 - j];
    out[1 + n] = 0;
}

static void note_json(char *out, size_t size, bool with_owner)
{
    size_t n = 6 + rnd() % 7, len = (size_t)snprintf(out, size, "{\"body\":\"");
    for (size_t i = 0; i < n; i++) {
        char w[16];
        word(zipf_word(), w);
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? " " : "", w);
    }
    if (with_owner)
        snprintf(out + len, size - len, "\",\"owner\":\"o%d\"}", (int)(rnd() % OWNERS));
    else
        snprintf(out + len, size - len, "\"}");
}

static herald_value parse(const char *text)
{
    herald_value v;
    herald_error err = {0};
    int rc = herald_value_from_json(text, strlen(text), &v, &err);
    if (rc) die_herald("json", rc, &err);
    return v;
}

typedef enum { Q_TERM, Q_PREFIX, Q_FILTER, NKINDS } qkind;
static const char *const kind_names[] = {"one term", "two terms, the last a prefix",
                                         "one term, filtered on owner"};

/* A search spec of kind `k` with random words. */
static void query_json(qkind k, char *out, size_t size, char *text, size_t tsize)
{
    char a[16], b[16];
    word(100 + (int)(rnd() % 900), a);
    word(1000 + (int)(rnd() % 9000), b);
    if (k == Q_PREFIX) {
        b[strlen(b) - 1] = 0; /* "wbcd" -> "wbc": wbc and wbca..wbcz */
        snprintf(text, tsize, "%s %s", a, b);
    } else {
        snprintf(text, tsize, "%s", a);
    }
    int n = snprintf(out, size,
                     "{\"table\":\"notes\",\"index\":\"search_body\",\"field\":\"body\","
                     "\"search\":\"%s\",\"take\":20",
                     text);
    if (k == Q_FILTER)
        snprintf(out + n, size - (size_t)n, ",\"filters\":[[\"owner\",\"o%d\"]]}",
                 (int)(rnd() % OWNERS));
    else
        snprintf(out + n, size - (size_t)n, "}");
}

static double load(herald_store *s, size_t docs)
{
    herald_error err = {0};
    size_t done = 0;
    char buf[512];
    double t0 = now_s();
    while (done < docs) {
        herald_group *g;
        int rc = herald_group_begin(s, &g, &err);
        if (rc) die_herald("group", rc, &err);
        for (size_t i = 0; i < 1000 && done < docs; i++, done++) {
            herald_txn *m;
            if ((rc = herald_mutation_begin(g, &m, &err))) die_herald("mutation", rc, &err);
            note_json(buf, sizeof buf, true);
            herald_value doc = parse(buf);
            if ((rc = herald_insert(m, "notes", &doc, NULL, &err))) die_herald("insert", rc, &err);
            herald_value_free(&doc);
            if ((rc = herald_mutation_commit(m, NULL, &err))) die_herald("commit", rc, &err);
        }
        if ((rc = herald_group_commit(g, &err))) die_herald("group commit", rc, &err);
        herald_group_free(g);
    }
    double dt = now_s() - t0;
    fprintf(stderr, "%s: loaded %zu notes in %.1f s\n", BENCH_NAME, docs, dt);
    return dt;
}

/* (c) Inserts per second (no fsync, groups of 1,000) with and without the search index. */
static void write_cost(const char *base, size_t docs)
{
    double rate[2];
    for (int with = 0; with < 2; with++) {
        char dir[512];
        fresh_dir(dir, sizeof dir, base, "search-load");
        herald_store_options o = {.no_sync = true, .initial_map_size = (size_t)16 << 30};
        herald_store *s;
        herald_error err = {0};
        int rc = herald_store_open(dir, &o, &s, &err);
        if (rc) die_herald("open", rc, &err);
        const char *json = with ? schema_json : plain_schema_json;
        herald_schema *schema;
        if ((rc = herald_schema_from_json(json, strlen(json), "bench", &schema, &err)) ||
            (rc = herald_store_set_schema(s, schema, &err)))
            die_herald("schema", rc, &err);
        uint64_t seed = rng_state;
        rate[with] = (double)docs / load(s, docs);
        rng_state = seed; /* the same notes both times */
        herald_store_close(s);
        remove_dir(dir);
    }
    printf("\nInserting %zu notes without fsync, groups of 1,000: %.0f/s without a search "
           "index, %.0f/s with it (%.2f×).\n",
           docs, rate[0], rate[1], rate[0] / rate[1]);
}

/* ---- the plain scan: what the search did before postings ---- */

typedef struct scan_ctx {
    char terms[2][16];
    size_t nterms;
    const char *owner;
    size_t hits;
} scan_ctx;

static int scan_doc(void *ctx, const herald_value *doc)
{
    scan_ctx *c = ctx;
    if (c->owner) {
        const herald_value *o = herald_object_get(doc, "owner");
        if (!o || strcmp(o->u.s.ptr, c->owner)) return 0;
    }
    const herald_value *body = herald_object_get(doc, "body");
    char *low;
    hd_fts_token *tok;
    size_t n;
    if (hd__fts_tokenize(body->u.s.ptr, body->u.s.len, &low, &tok, &n)) return HERALD_ENOMEM;
    bool hit = false;
    for (size_t i = 0; i < n && !hit; i++)
        for (size_t k = 0; k < c->nterms && !hit; k++) {
            size_t wl = strlen(c->terms[k]);
            bool last = k + 1 == c->nterms;
            hit = (tok[i].len == wl || (last && tok[i].len > wl)) && !memcmp(tok[i].p, c->terms[k], wl);
        }
    c->hits += hit;
    free(low);
    free(tok);
    return 0;
}

static double scan_once(herald_store *s, const char *text, const char *owner)
{
    scan_ctx c = {.owner = owner};
    sscanf(text, "%15s %15s", c.terms[0], c.terms[1]);
    c.nterms = strchr(text, ' ') ? 2 : 1;
    herald_txn *t;
    herald_error err = {0};
    double t0 = now_s();
    int rc = herald_read_begin(s, &t, &err);
    if (!rc) rc = herald_table_scan(t, "notes", scan_doc, &c, &err);
    if (rc) die_herald("scan", rc, &err);
    herald_txn_end(t);
    return now_s() - t0;
}

static double search_once(herald_store *s, const char *spec_json, herald_read_set *rs,
                          size_t *results)
{
    herald_value spec = parse(spec_json), out;
    herald_txn *t;
    herald_error err = {0};
    double t0 = now_s();
    int rc = herald_read_begin(s, &t, &err);
    if (!rc) rc = hd__search_run(t, herald_store_schema(s), &spec, &out, rs, &err);
    if (rc) die_herald("search", rc, &err);
    herald_txn_end(t);
    double dt = now_s() - t0;
    if (results) *results = out.u.arr.len;
    herald_value_free(&out);
    herald_value_free(&spec);
    return dt;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

static size_t reruns;
static void count_rerun(void *ctx, uint64_t owner)
{
    (void)ctx;
    (void)owner;
    reruns++;
}

static void run(const char *base, size_t docs, size_t queries, size_t subs, size_t writes,
                size_t scans)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, base, "search");
    herald_store_options o = {.no_sync = true, .initial_map_size = (size_t)16 << 30};
    herald_store *s;
    herald_error err = {0};
    int rc = herald_store_open(dir, &o, &s, &err);
    if (rc) die_herald("open", rc, &err);
    herald_schema *schema;
    if ((rc = herald_schema_from_json(schema_json, strlen(schema_json), "bench", &schema, &err)) ||
        (rc = herald_store_set_schema(s, schema, &err)))
        die_herald("schema", rc, &err);
    load(s, docs);
    size_t map_used = 0;
    herald_store_map_info(s, NULL, &map_used, NULL);

    printf("\n### %zu documents (database %.0f MiB)\n\n", docs, (double)map_used / 1048576.0);
    printf("| search | results (mean) | postings search p50 | p99 | plain scan p50 | scan / search |\n");
    printf("|---|---|---|---|---|---|\n");
    double *lat = xmalloc(queries * sizeof *lat);
    double search_p50[NKINDS], scan_p50[NKINDS];
    for (int k = 0; k < NKINDS; k++) {
        char spec[512], text[64];
        size_t total = 0;
        for (size_t i = 0; i < queries; i++) {
            size_t n;
            query_json((qkind)k, spec, sizeof spec, text, sizeof text);
            lat[i] = search_once(s, spec, NULL, &n);
            total += n;
        }
        double p50 = median(lat, (int)queries), p99 = pct(lat, queries, 0.99);
        double *sl = xmalloc(scans * sizeof *sl);
        for (size_t i = 0; i < scans; i++) {
            query_json((qkind)k, spec, sizeof spec, text, sizeof text);
            char owner[8];
            snprintf(owner, sizeof owner, "o%d", (int)(rnd() % OWNERS));
            sl[i] = scan_once(s, text, k == Q_FILTER ? owner : NULL);
        }
        double sp50 = median(sl, (int)scans);
        free(sl);
        search_p50[k] = p50;
        scan_p50[k] = sp50;
        printf("| %s | %.1f | %.1f µs | %.1f µs | %.1f ms | %.0f× |\n", kind_names[k],
               (double)total / (double)queries, p50 * 1e6, p99 * 1e6, sp50 * 1e3, sp50 / p50);
    }
    free(lat);

    /* (b) invalidation */
    hd_rsindex *x;
    if (hd__rsindex_new(&x)) die_herald("rsindex", HERALD_ENOMEM, NULL);
    size_t nranges = 0;
    for (size_t i = 0; i < subs; i++) {
        char spec[512], text[64];
        query_json((qkind)(i % NKINDS), spec, sizeof spec, text, sizeof text);
        herald_read_set rs;
        herald_read_set_init(&rs);
        search_once(s, spec, &rs, NULL);
        nranges += rs.len;
        if (hd__rsindex_add(x, i, &rs)) die_herald("rsindex add", HERALD_ENOMEM, NULL);
        herald_read_set_free(&rs);
    }
    double *mt = xmalloc(writes * sizeof *mt);
    size_t total_reruns = 0, max_reruns = 0, keys = 0;
    char last_id[HERALD_ID_CHARS + 1] = "";
    for (size_t w = 0; w < writes; w++) {
        herald_group *g;
        herald_txn *m;
        char buf[512];
        if ((rc = herald_group_begin(s, &g, &err)) || (rc = herald_mutation_begin(g, &m, &err)))
            die_herald("write", rc, &err);
        if (w % 2 == 0 || !last_id[0]) {
            note_json(buf, sizeof buf, true);
            herald_value doc = parse(buf);
            rc = herald_insert(m, "notes", &doc, last_id, &err);
            herald_value_free(&doc);
        } else {
            note_json(buf, sizeof buf, false); /* a new text for the note just written */
            herald_value doc = parse(buf);
            rc = herald_patch(m, last_id, &doc, &err);
            herald_value_free(&doc);
        }
        if (rc || (rc = herald_mutation_commit(m, NULL, &err)) ||
            (rc = herald_group_commit(g, &err)))
            die_herald("write", rc, &err);
        const herald_write_set *ws = herald_group_write_set(g, 0);
        keys += ws->nadded + ws->nremoved;
        reruns = 0;
        double t0 = now_s();
        if (hd__rsindex_match(x, &ws, 1, count_rerun, NULL)) die_herald("match", HERALD_ENOMEM, NULL);
        mt[w] = now_s() - t0;
        total_reruns += reruns;
        if (reruns > max_reruns) max_reruns = reruns;
        herald_group_free(g);
    }
    double mean_search = (search_p50[0] + search_p50[1] + search_p50[2]) / 3;
    double mean_scan = (scan_p50[0] + scan_p50[1] + scan_p50[2]) / 3;
    double mean_reruns = (double)total_reruns / (double)writes;
    printf("\n%zu search subscriptions (%zu read ranges), %zu writes (half new notes, half new "
           "texts; %.0f write-set keys each on average):\n\n",
           subs, nranges, writes, (double)keys / (double)writes);
    printf("| | per write: match | searches re-run (mean / max) | re-run cost (re-runs × p50) |\n");
    printf("|---|---|---|---|\n");
    printf("| postings, read sets by term | %.1f µs p50, %.1f µs p99 | %.2f / %zu | %.3f ms |\n",
           median(mt, (int)writes) * 1e6, pct(mt, writes, 0.99) * 1e6, mean_reruns, max_reruns,
           mean_reruns * mean_search * 1e3);
    printf("| plain scan, read set = the table | (every search) | %zu / %zu | %.0f ms |\n", subs,
           subs, (double)subs * mean_scan * 1e3);
    free(mt);
    hd__rsindex_free(x);
    herald_store_close(s);
    remove_dir(dir);
    write_cost(base, docs < 100000 ? docs : 100000);
}

int main(int argc, char **argv)
{
    const char *base = "/tmp";
    size_t docs[4] = {10000, 1000000}, ndocs = 2;
    size_t queries = 2000, subs = 1000, writes = 2000, scans = 0;
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"docs", required_argument, NULL, 'n'},
                                         {"queries", required_argument, NULL, 'q'},
                                         {"subs", required_argument, NULL, 's'},
                                         {"writes", required_argument, NULL, 'w'},
                                         {"scans", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': base = optarg; break;
        case 'n':
            if (!parse_groups(optarg, docs, 4, &ndocs)) {
                fprintf(stderr, "%s: --docs N[,N...]\n", BENCH_NAME);
                return 2;
            }
            break;
        case 'q': queries = strtoul(optarg, NULL, 10); break;
        case 's': subs = strtoul(optarg, NULL, 10); break;
        case 'w': writes = strtoul(optarg, NULL, 10); break;
        case 'c': scans = strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr,
                    "usage: %s [--dir D] [--docs 10000,1000000] [--queries N] [--subs N] "
                    "[--writes N] [--scans N]\n",
                    BENCH_NAME);
            return 2;
        }
    }
    if (!queries || !subs || !writes) return 2;
    zipf_init();
    printf("## bench_search\n");
    for (size_t i = 0; i < ndocs; i++)
        run(base, docs[i], queries, subs, writes, scans ? scans : docs[i] > 100000 ? 5 : 50);
    free(zipf_cdf);
    return 0;
}
