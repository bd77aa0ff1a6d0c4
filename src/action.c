/*
 * The action pool (action.h).
 *
 * Locking: one mutex guards the queues and the counters; a thread runs an
 * action's step without it. An action is in exactly one place at a time:
 * `waiting` (no runtime yet), `ready` (to be stepped), a thread (being
 * stepped), the fetcher (a request in flight), the loop (a write out), or
 * `done`. `all` lists every action the pool owns, for the stop.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "action.h"

enum { RESUME_START, RESUME_FETCHED, RESUME_WRITTEN };

typedef struct rt_slot {
    struct rt_slot *next;
    hd_fnrt *rt;
    unsigned generation;
} rt_slot;

struct hd_actions {
    herald_store *store;
    hd_actions_config cfg;
    hd_fetcher *fetcher;
    void (*wake)(void *);
    void *wake_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t *threads;
    size_t nthreads;
    bool stop;
    hd_fnbundle *bundle; /* the functions new actions run */
    hd_fn_limits limits;
    unsigned generation;
    rt_slot *spare; /* runtimes no action holds */
    hd_action *waiting, *waiting_tail;
    hd_action *ready, *ready_tail;
    hd_action *done, *done_tail;
    hd_wreq *writes, *writes_tail;
    hd_action *all;
    size_t running; /* actions holding a runtime */
    size_t count;   /* all */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void push(hd_action **head, hd_action **tail, hd_action *act)
{
    act->next = NULL;
    if (*tail)
        (*tail)->next = act;
    else
        *head = act;
    *tail = act;
}

static hd_action *pop(hd_action **head, hd_action **tail)
{
    hd_action *act = *head;
    if (act) {
        *head = act->next;
        if (!*head) *tail = NULL;
        act->next = NULL;
    }
    return act;
}

hd_action *hd__action_new(const char *fn_path, const herald_value *args,
                          const herald_value *identity, bool admin)
{
    hd_action *act = calloc(1, sizeof *act);
    if (!act) return NULL;
    act->args = act->identity = act->request = act->result = act->err_data = herald_undefined();
    act->written.result = act->written.error_data = herald_undefined();
    act->admin = admin;
    if (!(act->fn_path = strdup(fn_path)) || (args && herald_value_copy(&act->args, args)) ||
        (identity && herald_value_copy(&act->identity, identity))) {
        hd__action_free(act);
        return NULL;
    }
    return act;
}

void hd__action_free(hd_action *act)
{
    if (!act) return;
    free(act->fn_path);
    herald_value_free(&act->args);
    herald_value_free(&act->identity);
    herald_value_free(&act->request);
    herald_value_free(&act->result);
    herald_value_free(&act->err_data);
    free(act->request_id);
    free(act->scheduled_id);
    hd__fetch_response_free(act->fetched);
    herald_value_free(&act->written.result);
    herald_value_free(&act->written.error_data);
    free(act);
}

/* A runtime for an action (the lock is not held): a spare one of the current functions, or new. */
static int take_runtime(hd_actions *a, hd_action *act, herald_error *err)
{
    pthread_mutex_lock(&a->lock);
    rt_slot *slot = a->spare;
    if (slot) a->spare = slot->next;
    hd_fnbundle *bundle = hd__fnbundle_ref(a->bundle);
    hd_fn_limits limits = a->limits;
    unsigned generation = a->generation;
    pthread_mutex_unlock(&a->lock);
    if (slot && slot->generation == generation) {
        act->rt = slot->rt;
        act->generation = generation;
        free(slot);
        hd__fnbundle_unref(bundle);
        return 0;
    }
    if (slot) {
        hd__fnrt_free(slot->rt);
        free(slot);
    }
    int rc = hd__fnrt_new(bundle, herald_store_schema(a->store), &limits, &act->rt, err);
    hd__fnbundle_unref(bundle);
    act->generation = generation;
    return rc;
}

/* The action ended (the lock is held): its runtime is spare, the next waiting one may start. */
static void finish(hd_actions *a, hd_action *act)
{
    if (act->rt) {
        rt_slot *slot = malloc(sizeof *slot);
        if (slot && act->generation == a->generation) {
            slot->rt = act->rt;
            slot->generation = act->generation;
            slot->next = a->spare;
            a->spare = slot;
        } else {
            free(slot);
            hd__fnrt_free(act->rt);
        }
        act->rt = NULL;
        a->running--;
    }
    if (act->all_prev)
        act->all_prev->all_next = act->all_next;
    else
        a->all = act->all_next;
    if (act->all_next) act->all_next->all_prev = act->all_prev;
    act->all_prev = act->all_next = NULL;
    a->count--;
    act->seconds = mono() - act->started;
    push(&a->done, &a->done_tail, act);
    hd_action *next = a->running < a->cfg.max_running ? pop(&a->waiting, &a->waiting_tail) : NULL;
    if (next) {
        a->running++;
        push(&a->ready, &a->ready_tail, next);
        pthread_cond_signal(&a->cond);
    }
}

/* The fetcher's thread: the response an action waited for. */
static void fetched(void *ctx, hd_fetch_response *resp)
{
    hd_action *act = ctx;
    hd_actions *a = act->pool;
    pthread_mutex_lock(&a->lock);
    act->fetched = resp;
    act->resume = RESUME_FETCHED;
    push(&a->ready, &a->ready_tail, act);
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

void hd__actions_written(hd_actions *a, hd_wreq *r)
{
    hd_action *act = r->action;
    pthread_mutex_lock(&a->lock);
    act->written.rc = r->rc;
    act->written.err = r->err;
    act->written.result = r->result;
    act->written.error_data = r->error_data;
    act->written.version = r->version;
    r->result = r->error_data = herald_undefined();
    act->resume = RESUME_WRITTEN;
    push(&a->ready, &a->ready_tail, act);
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Runs one step of an action (no lock held) and puts it where it goes next. */
static void step(hd_actions *a, hd_action *act)
{
    hd_act_step st = {0};
    int rc = 0;
    if (act->resume == RESUME_START) {
        rc = take_runtime(a, act, &act->err);
        if (!rc) {
            hd_actcall call = {.path = act->fn_path,
                               .args = &act->args,
                               .identity = &act->identity,
                               .admin = act->admin,
                               .internal = act->internal,
                               .store = a->store,
                               .seconds = a->cfg.seconds,
                               .request =
                                   act->request.type == HERALD_UNDEFINED ? NULL : &act->request};
            rc = hd__fn_action_start(act->rt, &call, &st, &act->result, &act->err_data, &act->err);
        }
    } else if (act->resume == RESUME_FETCHED) {
        hd_fetch_response *resp = act->fetched;
        act->fetched = NULL;
        rc = hd__fn_action_fetched(act->rt, resp, &st, &act->result, &act->err_data, &act->err);
    } else {
        rc = hd__fn_action_written(act->rt, &act->written, &st, &act->result, &act->err_data,
                                   &act->err);
        herald_value_free(&act->written.result);
        herald_value_free(&act->written.error_data);
    }
    act->rc = rc;
    if (!rc && st.wait == HD_ACT_FETCH) {
        /* The action waits; the fetcher calls back (on its thread) when the answer is in. */
        if (st.fetch->timeout_seconds <= 0 || st.fetch->timeout_seconds > st.timeout)
            st.fetch->timeout_seconds = st.timeout > 0.001 ? st.timeout : 0.001;
        if (!hd__fetch_submit(a->fetcher, st.fetch, fetched, act)) {
            /* Not even queued (memory): the action goes on with the failure. */
            hd_fetch_response *resp = calloc(1, sizeof *resp);
            if (resp) resp->rc = herald_fail(&resp->err, HERALD_ENOMEM, "fetch: out of memory");
            if (resp) {
                fetched(act, resp);
            } else {
                pthread_mutex_lock(&a->lock);
                hd__fn_action_abandon(act->rt);
                act->rc = herald_fail(&act->err, HERALD_ENOMEM, "out of memory");
                finish(a, act);
                pthread_mutex_unlock(&a->lock);
                a->wake(a->wake_ctx);
            }
        }
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (!rc && st.wait == HD_ACT_WRITE) {
        st.write->action = act;
        st.write->next = NULL;
        if (a->writes_tail)
            a->writes_tail->next = st.write;
        else
            a->writes = st.write;
        a->writes_tail = st.write;
    } else {
        if (rc && act->rt) hd__fn_action_abandon(act->rt);
        finish(a, act);
    }
    pthread_mutex_unlock(&a->lock);
    a->wake(a->wake_ctx);
}

static void *thread_main(void *arg)
{
    hd_actions *a = arg;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->stop && !a->ready)
            pthread_cond_wait(&a->cond, &a->lock);
        if (a->stop) break;
        hd_action *act = pop(&a->ready, &a->ready_tail);
        pthread_mutex_unlock(&a->lock);
        step(a, act);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int hd__actions_start(herald_store *store, const hd_actions_config *cfg, hd_fnbundle *bundle,
                      const hd_fn_limits *limits, void (*wake)(void *), void *wake_ctx,
                      hd_actions **out, herald_error *err)
{
    *out = NULL;
    hd_actions *a = calloc(1, sizeof *a);
    if (!a) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    a->store = store;
    a->cfg = *cfg;
    if (!a->cfg.threads) a->cfg.threads = 2;
    if (!a->cfg.max_running) a->cfg.max_running = 64;
    if (a->cfg.seconds <= 0) a->cfg.seconds = 600;
    a->wake = wake;
    a->wake_ctx = wake_ctx;
    a->bundle = hd__fnbundle_ref(bundle);
    a->limits = *limits;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    int rc = hd__fetcher_start(&a->cfg.fetch, &a->fetcher, err);
    if (rc) {
        hd__actions_free(a);
        return rc;
    }
    if (!(a->threads = calloc(a->cfg.threads, sizeof *a->threads))) {
        hd__actions_free(a);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    for (; a->nthreads < a->cfg.threads; a->nthreads++)
        if (pthread_create(&a->threads[a->nthreads], NULL, thread_main, a)) {
            hd__actions_free(a);
            return herald_fail(err, HERALD_ENOMEM, "cannot start the action threads");
        }
    *out = a;
    return 0;
}

void hd__actions_set_functions(hd_actions *a, hd_fnbundle *bundle, const hd_fn_limits *limits)
{
    pthread_mutex_lock(&a->lock);
    hd__fnbundle_unref(a->bundle);
    a->bundle = hd__fnbundle_ref(bundle);
    a->limits = *limits;
    a->generation++;
    rt_slot *spare = a->spare;
    a->spare = NULL;
    pthread_mutex_unlock(&a->lock);
    while (spare) {
        rt_slot *next = spare->next;
        hd__fnrt_free(spare->rt);
        free(spare);
        spare = next;
    }
}

void hd__actions_submit(hd_actions *a, hd_action *act)
{
    act->pool = a;
    act->resume = RESUME_START;
    act->started = mono();
    pthread_mutex_lock(&a->lock);
    act->all_prev = NULL;
    act->all_next = a->all;
    if (a->all) a->all->all_prev = act;
    a->all = act;
    a->count++;
    if (a->stop) {
        act->rc = herald_fail(&act->err, HERALD_EBUSY, "the server is stopping");
        finish(a, act);
    } else if (a->running < a->cfg.max_running) {
        a->running++;
        push(&a->ready, &a->ready_tail, act);
        pthread_cond_signal(&a->cond);
    } else {
        push(&a->waiting, &a->waiting_tail, act);
    }
    pthread_mutex_unlock(&a->lock);
}

hd_action *hd__actions_take_done(hd_actions *a)
{
    pthread_mutex_lock(&a->lock);
    hd_action *list = a->done;
    a->done = a->done_tail = NULL;
    pthread_mutex_unlock(&a->lock);
    return list;
}

hd_wreq *hd__actions_take_writes(hd_actions *a)
{
    pthread_mutex_lock(&a->lock);
    hd_wreq *list = a->writes;
    a->writes = a->writes_tail = NULL;
    pthread_mutex_unlock(&a->lock);
    return list;
}

size_t hd__actions_count(hd_actions *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->count;
    pthread_mutex_unlock(&a->lock);
    return n;
}

size_t hd__actions_running(hd_actions *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->running;
    pthread_mutex_unlock(&a->lock);
    return n;
}

void hd__actions_stop(hd_actions *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < a->nthreads; i++)
        pthread_join(a->threads[i], NULL);
    a->nthreads = 0;
    /* Fetches in flight end now (through `fetched`, onto `ready`). */
    hd__fetcher_free(a->fetcher);
    a->fetcher = NULL;
    pthread_mutex_lock(&a->lock);
    for (hd_wreq *r = a->writes, *next; r; r = next) {
        next = r->next;
        hd__wreq_free(r);
    }
    a->writes = a->writes_tail = NULL;
    while (a->all) {
        hd_action *act = a->all;
        if (act->rt) hd__fn_action_abandon(act->rt);
        act->rc =
            herald_fail(&act->err, HERALD_EBUSY, "the server stopped before the action ended");
        herald_value_free(&act->result);
        hd__fetch_response_free(act->fetched);
        act->fetched = NULL;
        herald_value_free(&act->written.result);
        herald_value_free(&act->written.error_data);
        finish(a, act);
    }
    a->ready = a->ready_tail = a->waiting = a->waiting_tail = NULL;
    pthread_mutex_unlock(&a->lock);
}

void hd__actions_free(hd_actions *a)
{
    if (!a) return;
    hd__actions_stop(a);
    for (hd_action *act = a->done, *next; act; act = next) {
        next = act->next;
        hd__action_free(act);
    }
    while (a->spare) {
        rt_slot *next = a->spare->next;
        hd__fnrt_free(a->spare->rt);
        free(a->spare);
        a->spare = next;
    }
    hd__fnbundle_unref(a->bundle);
    free(a->threads);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}
