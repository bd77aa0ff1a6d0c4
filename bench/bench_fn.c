/*
 * bench_fn: what a server function (Lua, src/fn.c) costs next to the same
 * operation written in C against the store, measured in the same run on
 * the same database.
 *
 * (a) Mutations: the job-progress patch of the video-processing app
 *     (examples/twitch-jobs, seed 002) on a videos table of --docs
 *     documents. The function side calls `videos:updateJobProgress` with
 *     hd__fn_call, as the writer thread does; the raw side does in C what
 *     its handler does: builds the `first()` query on `by_twitch_id`, runs
 *     it (herald_query_from_value + herald_query_run) and patches the
 *     video with herald_patch (jobId, progressPercentage, currentStage,
 *     updatedAt; estimatedCompletionSeconds and stageProgress removed, as
 *     the function's opt() does for arguments left out). Both start from
 *     the same argument object, built before the group is timed. Groups of
 *     N mutations per commit, durable and with the store's no_sync option
 *     (the CPU cost alone).
 * (b) Query re-runs: what re-running a subscription costs, on a fresh read
 *     snapshot with a read set, as src/sub.c evaluates one:
 *     `videos:getJobById` (one document) and `videos:list` (200 documents)
 *     with hd__fn_call, against the equivalent JSON query run raw, once
 *     parsed in advance (as a raw subscription is) and once parsed at
 *     every evaluation (herald_query_from_value, as ctx.db does inside the
 *     function).
 *
 * The sides take turns, group by group or batch by batch, swapping who
 * goes first, on the same store, so that both see the same disk, caches
 * and neighbours; each figure is the median of --repeat measurements. Before
 * timing, the two sides' results and read sets are compared once.
 * --profile runs one side of one case for --ops operations inside
 * profile_ops(), for perf or `valgrind --tool=callgrind
 * --toggle-collect=profile_ops`. It uses Herald's private function
 * runtime header (src/fn.h). It must never be registered as a test: it
 * fsyncs on purpose and runs for a minute or two.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fn.h"
#include "herald/query.h"
#include "herald/store.h"

#define BENCH_NAME "bench_fn"
#include "bench_util.h"

#ifndef HERALD_SOURCE_DIR
#define HERALD_SOURCE_DIR "/work/main"
#endif

#define MAP_SIZE   ((size_t)1 << 30)
#define TABLE      "videos"
#define MAX_REPEAT 16
#define MAX_GROUPS 8
#define NJOBS      64 /* distinct getJobById arguments the query batches cycle through */

#define FN_UPDATE  "videos:updateJobProgress"
#define FN_GET_JOB "videos:getJobById"
#define FN_LIST    "videos:list"
#define Q_LIST_JSON                                                                                \
    "{\"table\":\"videos\",\"index\":\"by_created_at\",\"order\":\"desc\",\"take\":200}"

typedef struct config {
    const char *dir;
    const char *app;
    size_t docs;
    double seconds;      /* timed seconds per side and mutation measurement */
    double read_seconds; /* the same for query measurements */
    size_t groups[MAX_GROUPS];
    size_t ngroups;
    int repeat;
    bool durable, no_sync; /* which durability modes to measure */
    bool mutations, queries;
    const char *profile; /* NULL, or the case to run alone */
    size_t ops;
} config;

static const char *const stages[] = {"Queued",       "Downloading", "Fetching chat",
                                     "Transcribing", "Analyzing",   "Finding highlights",
                                     "Completed"};
#define NSTAGES (sizeof stages / sizeof stages[0])

/* ---- helpers ---- */

/* What the function runtime uses for ctx.now, so that both sides pay the same clock. */
static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

/* Value building for the benchmark's own inputs: out of memory ends the run. */
static void set_value(herald_value *obj, const char *key, herald_value v)
{
    if (herald_object_set(obj, key, strlen(key), v))
        die_herald("building a value", HERALD_ENOMEM, NULL);
}

static herald_value str_value(const char *s)
{
    herald_value v;
    if (herald_string(&v, s, strlen(s))) die_herald("building a value", HERALD_ENOMEM, NULL);
    return v;
}

static void set_str(herald_value *obj, const char *key, const char *s)
{
    set_value(obj, key, str_value(s));
}

static herald_value copy_value(const herald_value *v)
{
    herald_value c;
    if (herald_value_copy(&c, v)) die_herald("copying a value", HERALD_ENOMEM, NULL);
    return c;
}

static herald_value json_value(const char *text)
{
    herald_value v;
    herald_error err = {0};
    int rc = herald_value_from_json(text, strlen(text), &v, &err);
    if (rc) die_herald("parsing the benchmark's JSON", rc, &err);
    return v;
}

/* ---- the videos table and the functions ---- */

static void twitch_id(char *out, size_t n, size_t video)
{
    snprintf(out, n, "%llu", 1900000000ULL + (unsigned long long)video * 7919ULL);
}

static void job_id(char *out, size_t n, size_t video)
{
    snprintf(out, n, "job-%07zu", video + 1);
}

/* A video as the seed's (examples/twitch-jobs/seed/videos.jsonl) look, numbered. */
static void make_video(herald_value *doc, size_t n)
{
    char buf[64];
    double created = 1764000000000.0 + (double)n * 60000.0;
    const char *stage = stages[n % NSTAGES];
    herald_object_init(doc);
    twitch_id(buf, sizeof buf, n);
    set_str(doc, "twitchId", buf);
    snprintf(buf, sizeof buf, "Stream number %zu", n);
    set_str(doc, "title", buf);
    set_str(doc, "status", stage);
    job_id(buf, sizeof buf, n);
    set_str(doc, "jobId", buf);
    set_value(doc, "createdAt", herald_float64(created));
    set_value(doc, "updatedAt", herald_float64(created + 5000));
    if (n % NSTAGES != 0) {
        set_value(doc, "progressPercentage", herald_float64((double)(n % 100)));
        set_str(doc, "currentStage", stage);
        set_value(doc, "estimatedCompletionSeconds", herald_float64((double)(300 - n % 300)));
    }
}

/* A store with the app's schema and `ndocs` videos, opened with `no_sync`. */
static herald_store *open_videos(const char *dir, bool no_sync, const char *app, size_t ndocs,
                                 double *load_seconds)
{
    herald_store_options o = {.initial_map_size = MAP_SIZE, .no_sync = no_sync};
    herald_store *s;
    herald_schema *schema;
    herald_error err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/schema.ts", app);
    int rc = herald_store_open(dir, &o, &s, &err);
    if (rc) die_herald("opening the store", rc, &err);
    if ((rc = herald_schema_load_file(path, &schema, &err)) ||
        (rc = herald_store_set_schema(s, schema, &err)))
        die_herald("installing the schema", rc, &err);
    double t0 = now_s();
    for (size_t done = 0; done < ndocs;) {
        herald_group *g;
        if ((rc = herald_group_begin(s, &g, &err))) die_herald("group_begin", rc, &err);
        for (size_t i = 0; i < 1000 && done < ndocs; i++, done++) {
            herald_value doc;
            herald_txn *m;
            make_video(&doc, done);
            if ((rc = herald_mutation_begin(g, &m, &err)) ||
                (rc = herald_insert(m, TABLE, &doc, NULL, &err)) ||
                (rc = herald_mutation_commit(m, NULL, &err)))
                die_herald("loading the videos", rc, &err);
            herald_value_free(&doc);
        }
        if ((rc = herald_group_commit(g, &err))) die_herald("group_commit", rc, &err);
        herald_group_free(g);
    }
    if (load_seconds) *load_seconds = now_s() - t0;
    return s;
}

/* The runtime a server thread would build for the app. Free it before closing the store. */
static hd_fnrt *load_functions(const char *app, herald_store *s)
{
    hd_fnbundle *b = NULL;
    hd_fnrt *rt = NULL;
    herald_error err = {0};
    int rc = hd__fnbundle_read(app, &b, &err);
    if (!rc) rc = hd__fnrt_new(b, herald_store_schema(s), NULL, &rt, &err);
    hd__fnbundle_unref(b);
    if (rc) die_herald("loading the functions", rc, &err);
    if (hd__fn_kind(rt, FN_UPDATE, NULL, NULL) || hd__fn_kind(rt, FN_GET_JOB, NULL, NULL) ||
        hd__fn_kind(rt, FN_LIST, NULL, NULL)) {
        fprintf(stderr, "bench_fn: %s/functions lacks %s, %s or %s\n", app, FN_UPDATE, FN_GET_JOB,
                FN_LIST);
        exit(1);
    }
    return rt;
}

/* ---- (a) mutations ---- */

/* updateJobProgress's arguments as the Python worker sends them. */
static void make_progress_args(herald_value *args, size_t video, uint64_t step)
{
    char buf[64];
    herald_object_init(args);
    twitch_id(buf, sizeof buf, video);
    set_str(args, "twitchId", buf);
    job_id(buf, sizeof buf, video);
    set_str(args, "jobId", buf);
    set_value(args, "progressPercentage", herald_float64((double)(step % 101)));
    set_str(args, "currentStage", stages[step % NSTAGES]);
}

/* Sets `key` of `fields` to a copy of the argument, or removes it (Lua's opt()). */
static void patch_field(herald_value *fields, const herald_value *args, const char *key)
{
    const herald_value *v = herald_object_get(args, key);
    set_value(fields, key, v ? copy_value(v) : herald_undefined());
}

/* {"table":"videos","index":"by_twitch_id","range":[{"eq":["twitchId",T]}],"first":true} */
static void by_twitch_id_query(herald_value *q, const herald_value *twitch)
{
    herald_value range, cond, pair;
    herald_array_init(&pair);
    if (herald_array_push(&pair, str_value("twitchId")) ||
        herald_array_push(&pair, copy_value(twitch)))
        die_herald("building a query", HERALD_ENOMEM, NULL);
    herald_object_init(&cond);
    set_value(&cond, "eq", pair);
    herald_array_init(&range);
    if (herald_array_push(&range, cond)) die_herald("building a query", HERALD_ENOMEM, NULL);
    herald_object_init(q);
    set_str(q, "table", TABLE);
    set_str(q, "index", "by_twitch_id");
    set_value(q, "range", range);
    set_value(q, "first", herald_bool(true));
}

/*
 * The handler of videos:updateJobProgress written in C against the store:
 * the same query, the same patch, through the same public calls, no Lua.
 */
static int raw_update_job_progress(herald_txn *m, const herald_schema *schema,
                                   const herald_value *args, herald_error *err)
{
    herald_value q, video = herald_undefined(), fields;
    herald_query *query = NULL;
    const herald_value *twitch = herald_object_get(args, "twitchId");
    if (!twitch || twitch->type != HERALD_STRING)
        return herald_fail(err, HERALD_EVALIDATION, "args.twitchId: expected string");
    by_twitch_id_query(&q, twitch);
    int rc = herald_query_from_value(&q, schema, &query, err);
    herald_value_free(&q);
    if (rc) return rc;
    rc = herald_query_run(query, m, NULL, &video, NULL, err);
    herald_query_free(query);
    if (rc) return rc;
    const herald_value *id = video.type == HERALD_OBJECT ? herald_object_get(&video, "_id") : NULL;
    if (!id) {
        herald_value_free(&video);
        return herald_fail(err, HERALD_EFUNCTION, "Video not found: %s", twitch->u.s.ptr);
    }
    herald_object_init(&fields);
    patch_field(&fields, args, "jobId");
    patch_field(&fields, args, "progressPercentage");
    patch_field(&fields, args, "currentStage");
    patch_field(&fields, args, "estimatedCompletionSeconds");
    patch_field(&fields, args, "stageProgress");
    set_value(&fields, "updatedAt", herald_float64(wall_ms()));
    rc = herald_patch(m, id->u.s.ptr, &fields, err);
    herald_value_free(&fields);
    herald_value_free(&video);
    return rc;
}

static int fn_update_job_progress(hd_fnrt *rt, herald_txn *m, const herald_value *args,
                                  herald_error *err)
{
    /* As src/writer.c calls it for the worker, which holds the admin key: ctx.now from the
     * wall clock, no read set. */
    hd_fncall call = {
        .path = FN_UPDATE, .args = args, .admin = true, .kind = HD_FN_MUTATION, .txn = m};
    herald_value result, data;
    int rc = hd__fn_call(rt, &call, &result, &data, err);
    herald_value_free(&result);
    herald_value_free(&data);
    return rc;
}

typedef enum side { SIDE_RAW = 0, SIDE_FN = 1 } side;
static const char *const side_names[] = {"raw C", "function"};

typedef struct mut_bench {
    herald_store *s;
    hd_fnrt *rt;
    size_t ndocs, group;
    herald_value *args;
    uint64_t step;
} mut_bench;

/* One group of `group` mutations from one side; returns its timed seconds. */
static double mutation_group(mut_bench *b, side sd)
{
    herald_error err = {0};
    const herald_schema *schema = herald_store_schema(b->s);
    for (size_t i = 0; i < b->group; i++)
        make_progress_args(&b->args[i], (size_t)(rnd() % b->ndocs), b->step++);
    double t0 = now_s();
    herald_group *g;
    int rc = herald_group_begin(b->s, &g, &err);
    if (rc) die_herald("group_begin", rc, &err);
    for (size_t i = 0; i < b->group; i++) {
        herald_txn *m;
        if ((rc = herald_mutation_begin(g, &m, &err))) die_herald("mutation_begin", rc, &err);
        rc = sd == SIDE_FN ? fn_update_job_progress(b->rt, m, &b->args[i], &err)
                           : raw_update_job_progress(m, schema, &b->args[i], &err);
        if (rc) die_herald(side_names[sd], rc, &err);
        if ((rc = herald_mutation_commit(m, NULL, &err))) die_herald("mutation_commit", rc, &err);
    }
    if ((rc = herald_group_commit(g, &err))) die_herald("group_commit", rc, &err);
    herald_group_free(g);
    double dt = now_s() - t0;
    for (size_t i = 0; i < b->group; i++)
        herald_value_free(&b->args[i]);
    return dt;
}

/* The document `video` as it is now, without the fields a clock decides. */
static herald_value video_now(herald_store *s, size_t video)
{
    char buf[64];
    twitch_id(buf, sizeof buf, video);
    herald_value twitch = str_value(buf), q;
    by_twitch_id_query(&q, &twitch);
    herald_value_free(&twitch);
    herald_query *query;
    herald_txn *t;
    herald_value doc;
    herald_error err = {0};
    int rc = herald_query_from_value(&q, herald_store_schema(s), &query, &err);
    if (!rc && !(rc = herald_read_begin(s, &t, &err))) {
        rc = herald_query_run(query, t, NULL, &doc, NULL, &err);
        herald_txn_end(t);
    }
    if (rc) die_herald("reading a video back", rc, &err);
    herald_query_free(query);
    herald_value_free(&q);
    herald_object_remove(&doc, "updatedAt");
    return doc;
}

/* Both sides apply the same arguments to the same video: the documents must agree. */
static void check_mutations(mut_bench *b)
{
    herald_value after[2];
    for (int sd = 0; sd < 2; sd++) {
        herald_error err = {0};
        herald_group *g;
        herald_txn *m;
        herald_value args;
        make_progress_args(&args, 3, 42);
        int rc = herald_group_begin(b->s, &g, &err);
        if (!rc && !(rc = herald_mutation_begin(g, &m, &err))) {
            rc = sd == SIDE_FN ? fn_update_job_progress(b->rt, m, &args, &err)
                               : raw_update_job_progress(m, herald_store_schema(b->s), &args, &err);
            if (rc)
                herald_mutation_abort(m);
            else
                rc = herald_mutation_commit(m, NULL, &err);
        }
        if (!rc) rc = herald_group_commit(g, &err);
        herald_group_free(g);
        herald_value_free(&args);
        if (rc) die_herald(side_names[sd], rc, &err);
        after[sd] = video_now(b->s, 3);
    }
    if (!herald_value_equal(&after[0], &after[1])) {
        char *a = herald_value_to_json(&after[0]), *f = herald_value_to_json(&after[1]);
        fprintf(stderr, "bench_fn: the two sides disagree:\n  raw      %s\n  function %s\n", a, f);
        exit(1);
    }
    herald_value_free(&after[0]);
    herald_value_free(&after[1]);
}

/*
 * One measurement: the two sides take turns group by group on the same
 * store, swapping who goes first, until each has spent `seconds` in its
 * transactions. Rates in mutations per second.
 */
static void measure_mutations(mut_bench *b, double seconds, double rate[2])
{
    double timed[2] = {0, 0};
    uint64_t n[2] = {0, 0};
    for (unsigned turn = 0; timed[0] < seconds || timed[1] < seconds; turn++) {
        for (int k = 0; k < 2; k++) {
            side sd = (side)((turn + (unsigned)k) % 2);
            if (timed[sd] >= seconds) continue;
            timed[sd] += mutation_group(b, sd);
            n[sd] += b->group;
        }
    }
    for (int sd = 0; sd < 2; sd++)
        rate[sd] = (double)n[sd] / timed[sd];
}

static void bench_mutations(const config *c, bool no_sync)
{
    char dir[4096];
    fresh_dir(dir, sizeof dir, c->dir, no_sync ? "mut-nosync" : "mut-durable");
    double load_s;
    mut_bench b = {.s = open_videos(dir, no_sync, c->app, c->docs, &load_s), .ndocs = c->docs};
    b.rt = load_functions(c->app, b.s);
    check_mutations(&b);
    printf("## %s mutations: `%s` against the same patch in C\n\n",
           no_sync ? "Non-durable (--no-sync)" : "Durable", FN_UPDATE);
    printf("%zu videos (loaded in %.2f s). %.1f s of transactions per side and measurement, "
           "the two sides taking turns group by group on the same store; median of %d "
           "measurement(s) (the ratio is the median of their ratios). One group = one %s "
           "commit.\n\n",
           c->docs, load_s, c->seconds, c->repeat,
           no_sync ? "non-durable (MDB_NOSYNC)" : "durable");
    if (!no_sync)
        printf("The disk right now: %.0f fdatasync/s (4 KiB overwrite, 1 s).\n\n",
               fsync_rate(c->dir, 1));
    printf("| group size | raw C mutations/s | function mutations/s | function / raw | "
           "function's extra µs per mutation |\n");
    printf("|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (size_t gi = 0; gi < c->ngroups; gi++) {
        b.group = c->groups[gi];
        b.args = xmalloc(b.group * sizeof *b.args);
        double raw[MAX_REPEAT], fn[MAX_REPEAT], ratio[MAX_REPEAT], extra[MAX_REPEAT];
        for (int k = 0; k < c->repeat; k++) {
            double rate[2];
            measure_mutations(&b, c->seconds, rate);
            raw[k] = rate[SIDE_RAW];
            fn[k] = rate[SIDE_FN];
            ratio[k] = fn[k] / raw[k];
            extra[k] = (1.0 / fn[k] - 1.0 / raw[k]) * 1e6;
        }
        printf("| %zu | %.0f | %.0f | %.2f | %.1f |\n", b.group, median(raw, c->repeat),
               median(fn, c->repeat), median(ratio, c->repeat), median(extra, c->repeat));
        fflush(stdout);
        free(b.args);
    }
    printf("\n");
    hd__fnrt_free(b.rt);
    herald_store_close(b.s);
    remove_dir(dir);
}

/* ---- (b) query re-runs ---- */

typedef enum qside { Q_RAW_RUN = 0, Q_RAW_PARSE = 1, Q_FN = 2, NQSIDES } qside;
static const char *const qside_names[] = {"the raw query", "the raw query parsed again",
                                          "the function"};

typedef struct qcase {
    const char *name, *path;
    int batch;
    size_t n;                      /* distinct arguments, cycled through */
    herald_value args[NJOBS];      /* the function's arguments */
    herald_value qvalue[NJOBS];    /* the equivalent JSON query, parsed into a value */
    herald_query *prepared[NJOBS]; /* and as a herald_query */
    size_t next;
} qcase;

static void qcase_init(qcase *q, const herald_schema *schema, bool list, size_t ndocs)
{
    memset(q, 0, sizeof *q);
    q->name = list ? "`videos:list` (take 200, by_created_at desc)" : "`videos:getJobById` (first)";
    q->path = list ? FN_LIST : FN_GET_JOB;
    q->batch = list ? 20 : 500;
    q->n = list ? 1 : NJOBS;
    for (size_t i = 0; i < q->n; i++) {
        char text[300], job[32];
        if (list) {
            herald_object_init(&q->args[i]);
            snprintf(text, sizeof text, "%s", Q_LIST_JSON);
        } else {
            job_id(job, sizeof job, (size_t)(rnd() % ndocs));
            herald_object_init(&q->args[i]);
            set_str(&q->args[i], "jobId", job);
            snprintf(text, sizeof text,
                     "{\"table\":\"videos\",\"index\":\"by_job_id\","
                     "\"range\":[{\"eq\":[\"jobId\",\"%s\"]}],\"first\":true}",
                     job);
        }
        q->qvalue[i] = json_value(text);
        herald_error err = {0};
        int rc = herald_query_from_value(&q->qvalue[i], schema, &q->prepared[i], &err);
        if (rc) die_herald("parsing a query", rc, &err);
    }
}

static void qcase_free(qcase *q)
{
    for (size_t i = 0; i < q->n; i++) {
        herald_value_free(&q->args[i]);
        herald_value_free(&q->qvalue[i]);
        herald_query_free(q->prepared[i]);
    }
}

/*
 * One re-evaluation as a subscription makes it: a fresh snapshot, a new
 * read set, the query or function, the result. Both are handed back (the
 * caller frees them), since a server keeps them to diff and to index.
 */
static void evaluate(herald_store *s, hd_fnrt *rt, qcase *q, size_t i, qside sd,
                     herald_value *result, herald_read_set *rs)
{
    herald_txn *t;
    herald_error err = {0};
    herald_read_set_init(rs);
    int rc = herald_read_begin(s, &t, &err);
    if (rc) die_herald("read_begin", rc, &err);
    if (sd == Q_FN) {
        hd_fncall call = {
            .path = q->path, .args = &q->args[i], .kind = HD_FN_QUERY, .txn = t, .rs = rs};
        herald_value data;
        rc = hd__fn_call(rt, &call, result, &data, &err);
        herald_value_free(&data);
    } else if (sd == Q_RAW_PARSE) {
        herald_query *query;
        rc = herald_query_from_value(&q->qvalue[i], herald_store_schema(s), &query, &err);
        if (!rc) {
            rc = herald_query_run(query, t, NULL, result, rs, &err);
            herald_query_free(query);
        }
    } else {
        rc = herald_query_run(q->prepared[i], t, NULL, result, rs, &err);
    }
    herald_txn_end(t);
    if (rc) die_herald(q->path, rc, &err);
}

static double query_batch(herald_store *s, hd_fnrt *rt, qcase *q, qside sd)
{
    double t0 = now_s();
    for (int k = 0; k < q->batch; k++) {
        herald_value result;
        herald_read_set rs;
        evaluate(s, rt, q, q->next++ % q->n, sd, &result, &rs);
        herald_value_free(&result);
        herald_read_set_free(&rs);
    }
    return now_s() - t0;
}

static bool read_sets_equal(const herald_read_set *a, const herald_read_set *b)
{
    if (a->len != b->len) return false;
    for (size_t i = 0; i < a->len; i++) {
        const herald_read_range *x = &a->ranges[i], *y = &b->ranges[i];
        if (x->index_id != y->index_id || x->lo_len != y->lo_len || x->hi_len != y->hi_len ||
            (x->lo_len && memcmp(x->lo, y->lo, x->lo_len)) ||
            (x->hi_len && memcmp(x->hi, y->hi, x->hi_len)) || !x->hi != !y->hi)
            return false;
    }
    return true;
}

/* The function and the raw query must give the same result and the same read set. */
static size_t check_query(herald_store *s, hd_fnrt *rt, qcase *q)
{
    size_t docs = 0;
    for (size_t i = 0; i < q->n; i++) {
        herald_value res[NQSIDES];
        herald_read_set rs[NQSIDES];
        for (int sd = 0; sd < NQSIDES; sd++)
            evaluate(s, rt, q, i, (qside)sd, &res[sd], &rs[sd]);
        for (int sd = 1; sd < NQSIDES; sd++) {
            if (!herald_value_equal(&res[0], &res[sd])) {
                fprintf(stderr, "bench_fn: %s: %s gives another result than the raw query\n",
                        q->path, qside_names[sd]);
                exit(1);
            }
            if (!read_sets_equal(&rs[0], &rs[sd])) {
                fprintf(stderr,
                        "bench_fn: %s: %s reads another read set (%zu ranges) than the raw "
                        "query (%zu)\n",
                        q->path, qside_names[sd], rs[sd].len, rs[0].len);
                exit(1);
            }
        }
        docs = res[0].type == HERALD_ARRAY ? res[0].u.arr.len : res[0].type == HERALD_OBJECT;
        for (int sd = 0; sd < NQSIDES; sd++) {
            herald_value_free(&res[sd]);
            herald_read_set_free(&rs[sd]);
        }
    }
    return docs;
}

static void bench_queries(const config *c)
{
    char dir[4096];
    fresh_dir(dir, sizeof dir, c->dir, "queries");
    double load_s;
    herald_store *s = open_videos(dir, true, c->app, c->docs, &load_s);
    hd_fnrt *rt = load_functions(c->app, s);
    printf("## Query re-runs: a subscription's re-evaluation\n\n");
    printf("%zu videos (loaded in %.2f s). Each evaluation: a fresh read snapshot, a new read "
           "set, the query, the result freed. %.1f s per side and measurement, the sides taking "
           "turns in batches; median of %d measurement(s). Raw run: the equivalent JSON query "
           "parsed once (as a raw subscription keeps it); raw parse+run: "
           "herald_query_from_value at every evaluation too (as ctx.db does). Results and read "
           "sets of the three were checked equal.\n\n",
           c->docs, load_s, c->read_seconds, c->repeat);
    printf("| query | documents | raw run µs | raw parse+run µs | function µs | function / raw "
           "run | function / raw parse+run |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (int list = 0; list < 2; list++) {
        qcase q;
        qcase_init(&q, herald_store_schema(s), list, c->docs);
        size_t docs = check_query(s, rt, &q);
        double us[NQSIDES][MAX_REPEAT], r_run[MAX_REPEAT], r_parse[MAX_REPEAT];
        for (int k = 0; k < c->repeat; k++) {
            double timed[NQSIDES] = {0};
            uint64_t n[NQSIDES] = {0};
            for (unsigned turn = 0;; turn++) {
                bool more = false;
                for (int j = 0; j < NQSIDES; j++) {
                    qside sd = (qside)((turn + (unsigned)j) % NQSIDES);
                    if (timed[sd] >= c->read_seconds) continue;
                    timed[sd] += query_batch(s, rt, &q, sd);
                    n[sd] += (uint64_t)q.batch;
                    more = true;
                }
                if (!more) break;
            }
            for (int sd = 0; sd < NQSIDES; sd++)
                us[sd][k] = timed[sd] / (double)n[sd] * 1e6;
            r_run[k] = us[Q_FN][k] / us[Q_RAW_RUN][k];
            r_parse[k] = us[Q_FN][k] / us[Q_RAW_PARSE][k];
        }
        printf("| %s | %zu | %.1f | %.1f | %.1f | %.2f | %.2f |\n", q.name, docs,
               median(us[Q_RAW_RUN], c->repeat), median(us[Q_RAW_PARSE], c->repeat),
               median(us[Q_FN], c->repeat), median(r_run, c->repeat), median(r_parse, c->repeat));
        fflush(stdout);
        qcase_free(&q);
    }
    printf("\n");
    hd__fnrt_free(rt);
    herald_store_close(s);
    remove_dir(dir);
}

/* ---- --profile: one side of one case, alone ---- */

static const char *const profiles[] = {"raw-mutation", "fn-mutation", "raw-get", "fn-get",
                                       "raw-list",     "fn-list",     NULL};

/* Everything measured happens in here: callgrind --toggle-collect=profile_ops. */
__attribute__((noinline)) static void profile_ops(int which, mut_bench *b, qcase *q, size_t ops)
{
    if (which < 2) {
        for (size_t done = 0; done < ops; done += b->group)
            mutation_group(b, which == 1 ? SIDE_FN : SIDE_RAW);
        return;
    }
    qside sd = which % 2 ? Q_FN : Q_RAW_RUN;
    for (size_t done = 0; done < ops; done += (size_t)q->batch)
        query_batch(b->s, b->rt, q, sd);
}

static int run_profile(const config *c)
{
    int which = 0;
    while (profiles[which] && strcmp(profiles[which], c->profile))
        which++;
    if (!profiles[which]) return 2;
    char dir[4096];
    fresh_dir(dir, sizeof dir, c->dir, "profile");
    mut_bench b = {.s = open_videos(dir, true, c->app, c->docs, NULL),
                   .ndocs = c->docs,
                   .group = c->groups[0]};
    b.rt = load_functions(c->app, b.s);
    b.args = xmalloc(b.group * sizeof *b.args);
    qcase q;
    qcase_init(&q, herald_store_schema(b.s), which >= 4, c->docs);
    size_t unit = which < 2 ? b.group : (size_t)q.batch;
    size_t ops = (c->ops + unit - 1) / unit * unit;
    double t0 = now_s();
    profile_ops(which, &b, &q, ops);
    double el = now_s() - t0;
    printf("%s: %zu operations (no-sync), %.2f s, %.2f µs each\n", c->profile, ops, el,
           el / (double)ops * 1e6);
    qcase_free(&q);
    free(b.args);
    hd__fnrt_free(b.rt);
    herald_store_close(b.s);
    remove_dir(dir);
    return 0;
}

/* ---- main ---- */

static const char usage[] =
    "usage: bench_fn [options]\n"
    "  --app DIR            the app folder, with schema.ts and functions/videos.lua\n"
    "                       (default " HERALD_SOURCE_DIR "/examples/twitch-jobs)\n"
    "  --dir DIR            where to create the databases (default: a new folder in $TMPDIR\n"
    "                       or /tmp; it must be on the disk you want to measure)\n"
    "  --docs N             videos in the table (default 10000)\n"
    "  --seconds S          timed seconds per side per mutation measurement (default 1)\n"
    "  --read-seconds S     timed seconds per side per query measurement (default 0.5)\n"
    "  --groups LIST        mutations per commit, comma-separated (default 1,100)\n"
    "  --repeat N           measurements per figure, the median is shown (default 5, max 16)\n"
    "  --durable-only, --no-sync-only   one durability mode for the mutations\n"
    "  --no-mutations, --no-queries     skip a part\n"
    "  --profile CASE       run one case alone for --ops operations (no-sync), for perf or\n"
    "                       callgrind: raw-mutation, fn-mutation (groups of the first\n"
    "                       --groups size), raw-get, fn-get, raw-list, fn-list\n"
    "  --ops N              operations for --profile (default 20000)\n"
    "  --quick              --docs 2000 --seconds 0.3 --read-seconds 0.2 --repeat 3\n";

int main(int argc, char **argv)
{
    config c = {.app = HERALD_SOURCE_DIR "/examples/twitch-jobs",
                .docs = 10000,
                .seconds = 1,
                .read_seconds = 0.5,
                .groups = {1, 100},
                .ngroups = 2,
                .repeat = 5,
                .durable = true,
                .no_sync = true,
                .mutations = true,
                .queries = true,
                .ops = 20000};
    enum {
        O_APP = 1,
        O_DIR,
        O_DOCS,
        O_SECONDS,
        O_READ_SECONDS,
        O_GROUPS,
        O_REPEAT,
        O_DURABLE_ONLY,
        O_NOSYNC_ONLY,
        O_NO_MUTATIONS,
        O_NO_QUERIES,
        O_PROFILE,
        O_OPS,
        O_QUICK
    };
    static const struct option opts[] = {{"app", required_argument, NULL, O_APP},
                                         {"dir", required_argument, NULL, O_DIR},
                                         {"docs", required_argument, NULL, O_DOCS},
                                         {"seconds", required_argument, NULL, O_SECONDS},
                                         {"read-seconds", required_argument, NULL, O_READ_SECONDS},
                                         {"groups", required_argument, NULL, O_GROUPS},
                                         {"repeat", required_argument, NULL, O_REPEAT},
                                         {"durable-only", no_argument, NULL, O_DURABLE_ONLY},
                                         {"no-sync-only", no_argument, NULL, O_NOSYNC_ONLY},
                                         {"no-mutations", no_argument, NULL, O_NO_MUTATIONS},
                                         {"no-queries", no_argument, NULL, O_NO_QUERIES},
                                         {"profile", required_argument, NULL, O_PROFILE},
                                         {"ops", required_argument, NULL, O_OPS},
                                         {"quick", no_argument, NULL, O_QUICK},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_APP:
            c.app = optarg;
            break;
        case O_DIR:
            c.dir = optarg;
            break;
        case O_DOCS:
            c.docs = strtoull(optarg, NULL, 10);
            break;
        case O_SECONDS:
            c.seconds = atof(optarg);
            break;
        case O_READ_SECONDS:
            c.read_seconds = atof(optarg);
            break;
        case O_REPEAT:
            c.repeat = atoi(optarg);
            break;
        case O_DURABLE_ONLY:
            c.no_sync = false;
            break;
        case O_NOSYNC_ONLY:
            c.durable = false;
            break;
        case O_NO_MUTATIONS:
            c.mutations = false;
            break;
        case O_NO_QUERIES:
            c.queries = false;
            break;
        case O_PROFILE:
            c.profile = optarg;
            break;
        case O_OPS:
            c.ops = strtoull(optarg, NULL, 10);
            break;
        case O_QUICK:
            c.docs = 2000;
            c.seconds = 0.3;
            c.read_seconds = 0.2;
            c.repeat = 3;
            break;
        case O_GROUPS:
            if (!parse_groups(optarg, c.groups, MAX_GROUPS, &c.ngroups)) {
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
    if (optind != argc || c.repeat < 1 || c.repeat > MAX_REPEAT || c.docs < 200 || c.seconds <= 0 ||
        c.read_seconds <= 0 || c.ngroups == 0 || (!c.durable && !c.no_sync) || c.ops == 0) {
        fputs(usage, stderr);
        return 2;
    }
    char tmpdir[4096];
    bool own_dir = !c.dir;
    if (own_dir) {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/bench-fn-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "bench_fn: cannot create %s: %s\n", tmpdir, strerror(errno));
            return 1;
        }
        c.dir = tmpdir;
    } else if (mkdir(c.dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_fn: cannot create %s: %s\n", c.dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    if (c.profile) {
        rc = run_profile(&c);
        if (rc) fputs(usage, stderr);
    } else {
        printf("# Herald server-function benchmark\n\n");
        printf("App %s, databases in %s\n\n", c.app, c.dir);
        if (c.mutations && c.durable) bench_mutations(&c, false);
        if (c.mutations && c.no_sync) bench_mutations(&c, true);
        if (c.queries) bench_queries(&c);
    }
    if (own_dir) rmdir(tmpdir);
    return rc;
}
