/* Evaluator threads (eval.h). */
#include "eval.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Jobs of one client (or of the subscriptions), first come first served. */
typedef struct lane {
    struct lane *next; /* the ring of lanes with jobs */
    uint64_t id;
    hd_job *head, *tail;
    size_t jobs;  /* waiting and running */
    bool running; /* one of its jobs is running */
} lane;

typedef struct slow_fn {
    char *path;
    bool slow;
} slow_fn;

struct hd_eval {
    herald_store *store;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    lane *lanes; /* every lane with jobs, in turn order */
    hd_job *done, *done_tail;
    bool stopping;
    void (*wake)(void *);
    void *wake_ctx;
    hd_fnbundle *bundle; /* the current functions; a thread rebuilds when its generation lags */
    hd_fn_limits limits;
    uint64_t generation;
    pthread_t *threads;
    size_t nthreads;
    /* The loop's own: slow functions by path. */
    slow_fn *slow;
    size_t nslow;
};

/* Puts a job on the list of finished ones (the lock held). */
static void push_done(hd_eval *e, hd_job *j)
{
    j->next = NULL;
    if (e->done_tail)
        e->done_tail->next = j;
    else
        e->done = j;
    e->done_tail = j;
}

static lane *find_lane(hd_eval *e, uint64_t id)
{
    for (lane *l = e->lanes; l; l = l->next)
        if (l->id == id) return l;
    return NULL;
}

/* The first lane in turn with a job waiting and none running; it goes to the end of the ring. */
static hd_job *next_job(hd_eval *e, lane **from)
{
    lane **pp = &e->lanes;
    for (lane *l = e->lanes; l; pp = &l->next, l = l->next) {
        if (l->running || !l->head) continue;
        hd_job *j = l->head;
        l->head = j->next;
        if (!l->head) l->tail = NULL;
        j->next = NULL;
        l->running = true;
        /* Its turn is taken: to the end of the ring. */
        *pp = l->next;
        l->next = NULL;
        lane **end = &e->lanes;
        while (*end)
            end = &(*end)->next;
        *end = l;
        *from = l;
        return j;
    }
    return NULL;
}

static void run_job(hd_eval *e, hd_fnrt *rt, hd_job *j)
{
    double t0 = hd__eval_cpu_now();
    herald_txn *t = NULL;
    herald_read_set_init(&j->rs);
    j->result = j->err_data = herald_undefined();
    j->rc = rt ? herald_read_begin(e->store, &t, &j->err)
               : herald_fail(&j->err, HERALD_ENOTFOUND, "this app has no functions");
    if (!j->rc) {
        hd_fncall call = {.path = j->fn_path,
                          .args = &j->args,
                          .identity = &j->identity,
                          .admin = j->admin,
                          .kind = HD_FN_QUERY,
                          .txn = t,
                          .rs = j->want_rs ? &j->rs : NULL,
                          .journal = j->journal,
                          .journal_out = j->want_rs ? &j->journal_out : NULL};
        free(j->journal_out);
        j->journal_out = NULL;
        j->rc = hd__fn_call(rt, &call, &j->result, &j->err_data, &j->err);
        j->version = herald_txn_version(t);
        herald_txn_end(t);
    }
    j->seconds = hd__eval_cpu_now() - t0;
}

static void *worker(void *arg)
{
    hd_eval *e = arg;
    /* Evaluations yield the processor to the loop and the writer. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    hd_fnrt *rt = NULL;
    uint64_t generation = 0;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        lane *l = NULL;
        hd_job *j = NULL;
        while (!e->stopping && !(j = next_job(e, &l)))
            pthread_cond_wait(&e->cond, &e->lock);
        if (!j) break;
        hd_fnbundle *bundle = NULL;
        if (generation != e->generation) {
            bundle = hd__fnbundle_ref(e->bundle);
            generation = e->generation;
        }
        hd_fn_limits limits = e->limits;
        pthread_mutex_unlock(&e->lock);
        if (bundle) {
            hd_fnrt *fresh = NULL;
            herald_error err = {0};
            if (hd__fnrt_new(bundle, herald_store_schema(e->store), &limits, &fresh, &err) == 0) {
                hd__fnrt_free(rt);
                rt = fresh;
            } else {
                hd__log(HD_LOG_WARN, "reload_refused",
                        "herald: evaluator thread keeps its functions: %s", err.message);
            }
            hd__fnbundle_unref(bundle);
        }
        run_job(e, rt, j);
        pthread_mutex_lock(&e->lock);
        l->running = false;
        l->jobs--;
        /* Its turn was taken: the lane leaves the ring, for good when empty, else to
         * its end, behind the lanes that waited meanwhile. */
        lane **pp = &e->lanes;
        while (*pp != l)
            pp = &(*pp)->next;
        *pp = l->next;
        l->next = NULL;
        if (!l->jobs) {
            free(l);
        } else {
            while (*pp)
                pp = &(*pp)->next;
            *pp = l;
            pthread_cond_signal(&e->cond);
        }
        push_done(e, j);
        pthread_mutex_unlock(&e->lock);
        e->wake(e->wake_ctx);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    hd__fnrt_free(rt);
    return NULL;
}

int hd__eval_start(herald_store *store, size_t threads, hd_fnbundle *bundle,
                   const hd_fn_limits *limits, void (*wake)(void *), void *wake_ctx,
                   hd_eval **out, herald_error *err)
{
    *out = NULL;
    hd_eval *e = calloc(1, sizeof *e);
    if (!e) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    e->store = store;
    e->wake = wake;
    e->wake_ctx = wake_ctx;
    e->bundle = hd__fnbundle_ref(bundle);
    e->limits = *limits;
    e->generation = 1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->threads = calloc(threads ? threads : 1, sizeof *e->threads);
    if (!e->threads) {
        hd__eval_free(e);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < threads; i++) {
        if (pthread_create(&e->threads[i], NULL, worker, e)) {
            hd__eval_free(e);
            return herald_fail(err, HERALD_ENOMEM, "cannot start an evaluator thread");
        }
        e->nthreads++;
    }
    *out = e;
    return 0;
}

void hd__eval_set_functions(hd_eval *e, hd_fnbundle *bundle, const hd_fn_limits *limits)
{
    hd_fnbundle *old;
    pthread_mutex_lock(&e->lock);
    old = e->bundle;
    e->bundle = hd__fnbundle_ref(bundle);
    e->limits = *limits;
    e->generation++;
    pthread_mutex_unlock(&e->lock);
    hd__fnbundle_unref(old);
    /* What was slow may not be any more. */
    for (size_t i = 0; i < e->nslow; i++)
        e->slow[i].slow = false;
}

hd_job *hd__eval_job_new(uint64_t lane_id, const char *fn_path, const herald_value *args,
                         const herald_value *identity, bool admin)
{
    hd_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->lane = lane_id;
    j->admin = admin;
    j->args = j->identity = j->result = j->err_data = herald_undefined();
    herald_read_set_init(&j->rs);
    if (!(j->fn_path = strdup(fn_path)) ||
        (args && herald_value_copy(&j->args, args)) ||
        (identity && herald_value_copy(&j->identity, identity))) {
        hd__eval_job_free(j);
        return NULL;
    }
    return j;
}

void hd__eval_submit(hd_eval *e, hd_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&e->lock);
    lane *l = find_lane(e, j->lane);
    if (!l && (l = calloc(1, sizeof *l))) {
        l->id = j->lane;
        lane **end = &e->lanes;
        while (*end)
            end = &(*end)->next;
        *end = l;
    }
    if (!l) {
        /* No memory for a lane: the job comes back failed. */
        j->rc = herald_fail(&j->err, HERALD_ENOMEM, "out of memory");
        push_done(e, j);
        pthread_mutex_unlock(&e->lock);
        e->wake(e->wake_ctx);
        return;
    }
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->jobs++;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

hd_job *hd__eval_take_done(hd_eval *e)
{
    if (!e) return NULL;
    pthread_mutex_lock(&e->lock);
    hd_job *j = e->done;
    e->done = e->done_tail = NULL;
    pthread_mutex_unlock(&e->lock);
    return j;
}

size_t hd__eval_lane_jobs(hd_eval *e, uint64_t lane_id)
{
    pthread_mutex_lock(&e->lock);
    lane *l = find_lane(e, lane_id);
    size_t n = l ? l->jobs : 0;
    pthread_mutex_unlock(&e->lock);
    return n;
}

void hd__eval_job_free(hd_job *j)
{
    if (!j) return;
    free(j->fn_path);
    free(j->request_id);
    free(j->journal);
    free(j->journal_out);
    herald_value_free(&j->args);
    herald_value_free(&j->identity);
    herald_value_free(&j->result);
    herald_value_free(&j->err_data);
    herald_read_set_free(&j->rs);
    free(j);
}

void hd__eval_stop(hd_eval *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < e->nthreads; i++)
        pthread_join(e->threads[i], NULL);
    e->nthreads = 0;
    for (lane *l = e->lanes, *n; l; l = n) {
        n = l->next;
        for (hd_job *j = l->head, *jn; j; j = jn) {
            jn = j->next;
            j->rc = herald_fail(&j->err, HERALD_EBUSY, "the server is stopping");
            push_done(e, j);
        }
        free(l);
    }
    e->lanes = NULL;
}

void hd__eval_free(hd_eval *e)
{
    if (!e) return;
    hd__eval_stop(e);
    free(e->threads);
    for (hd_job *j = e->done, *n; j; j = n) {
        n = j->next;
        hd__eval_job_free(j);
    }
    for (size_t i = 0; i < e->nslow; i++)
        free(e->slow[i].path);
    free(e->slow);
    hd__fnbundle_unref(e->bundle);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
}

static slow_fn *slow_entry(hd_eval *e, const char *path)
{
    for (size_t i = 0; i < e->nslow; i++)
        if (!strcmp(e->slow[i].path, path)) return &e->slow[i];
    return NULL;
}

bool hd__eval_is_slow(hd_eval *e, const char *path)
{
    slow_fn *f = e ? slow_entry(e, path) : NULL;
    return f && f->slow;
}

void hd__eval_note(hd_eval *e, const char *path, double seconds)
{
    if (!e) return;
    slow_fn *f = slow_entry(e, path);
    bool slow = seconds >= HD_EVAL_INLINE_SECONDS;
    if (!f) {
        if (!slow || e->nslow >= 4096) return; /* fast ones need no entry */
        slow_fn *v = realloc(e->slow, (e->nslow + 1) * sizeof *v);
        char *p = strdup(path);
        if (v) e->slow = v;
        if (!v || !p) {
            free(p);
            return;
        }
        f = &e->slow[e->nslow++];
        f->path = p;
    }
    if (slow)
        f->slow = true;
    else if (seconds < HD_EVAL_INLINE_SECONDS / 4)
        f->slow = false;
}
