/*
 * The scheduler's runs (docs/functions.md, "The scheduler"): every tick the
 * loop reads the `_scheduled_functions` rows that are pending and due,
 * oldest first, and hands each to the writer, which runs the function and
 * marks the row in the same commit (writer.c, run_scheduled), so a run
 * happens exactly once, also across restarts: a row stays pending until
 * the commit that ran it is durable.
 *
 * A scheduled action runs at the action pool instead: its row is marked
 * inProgress in one commit, the action runs, and a second commit records
 * how it ended. An action cut short by a crash is never run again: the
 * first tick of the next start marks it failed (at most once, as Convex).
 *
 * Crons (functions/crons.lua): each tick, a cron that is due gets a
 * `_scheduled_functions` row due now, and its `_cron_jobs` row the time,
 * in one commit; the scheduler runs it from there. A cron's next time
 * follows its last run, so runs missed while the server was down come to
 * one run at start.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "server.h"

/* Runs handed to the writer per tick at most, and at once in all. */
#define SCHED_PER_TICK 64

/* Runs raw query `q` (freed) on a snapshot of its own: *rows. */
static int run_rows(hd_server *s, herald_value *q, herald_value *rows, herald_error *err)
{
    herald_query *query = NULL;
    herald_txn *t = NULL;
    int rc = herald_query_from_value(q, herald_store_schema(s->store), &query, err);
    herald_value_free(q);
    if (!rc) rc = herald_read_begin(s->store, &t, err);
    if (!rc) rc = herald_query_run(query, t, NULL, rows, NULL, err);
    if (t) herald_txn_end(t);
    herald_query_free(query);
    return rc;
}

static bool in_flight(hd_server *s, const char *id)
{
    for (size_t i = 0; i < s->nsched; i++)
        if (!strcmp(s->sched_inflight[i], id)) return true;
    return false;
}

static int hand_over(hd_server *s, const herald_value *row)
{
    const herald_value *id = herald_object_get(row, "_id");
    const herald_value *name = herald_object_get(row, "name");
    const herald_value *args = herald_object_get(row, "args");
    if (!id || id->type != HERALD_STRING || !name || name->type != HERALD_STRING) return 0;
    if (in_flight(s, id->u.s.ptr) || s->nsched >= SCHED_PER_TICK) return 0;
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r || !(r->scheduled_id = strdup(id->u.s.ptr)) || !(r->fn_path = strdup(name->u.s.ptr)) ||
        (args && herald_value_copy(&r->fn_args, args))) {
        hd__wreq_free(r);
        return HERALD_ENOMEM;
    }
    /* An action: its row is marked inProgress first, then it runs at the pool. */
    hd_fn_kind kind;
    r->sched_start =
        s->fnrt && !hd__fn_kind(s->fnrt, r->fn_path, &kind, NULL) && kind == HD_FN_ACTION;
    snprintf(s->sched_inflight[s->nsched++], sizeof s->sched_inflight[0], "%s", id->u.s.ptr);
    hd__writer_submit(s->writer, r);
    return 0;
}

/* Records how a scheduled action ended (error NULL: success) in its row. */
static void finish_action(hd_server *s, const char *id, const char *path, const char *error)
{
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r || !(r->scheduled_id = strdup(id)) || !(r->fn_path = strdup(path)) ||
        (error && !(r->sched_error = strdup(error)))) {
        hd__wreq_free(r);
        hd__log(HD_LOG_ERROR, "scheduled_failed",
                "herald: scheduled %s (%s): out of memory recording its end", path, id);
        return;
    }
    r->sched_finish = true;
    hd__writer_submit(s->writer, r);
}

/* Rows of `table` by index `index` where `field` equals `value` (take `n`). */
static int rows_where(hd_server *s, const char *table, const char *index, const char *field,
                      const char *value, int n, herald_value *rows, herald_error *err)
{
    herald_value q, v, range, cond, pair;
    herald_object_init(&q);
    *rows = herald_undefined();
    herald_array_init(&range);
    herald_object_init(&cond);
    herald_array_init(&pair);
    bool failed = herald_string(&v, table, strlen(table)) || herald_object_set(&q, "table", 5, v) ||
                  herald_string(&v, index, strlen(index)) || herald_object_set(&q, "index", 5, v) ||
                  herald_string(&v, field, strlen(field)) || herald_array_push(&pair, v) ||
                  herald_string(&v, value, strlen(value)) || herald_array_push(&pair, v) ||
                  herald_object_set(&cond, "eq", 2, pair) || herald_array_push(&range, cond) ||
                  herald_object_set(&q, "range", 5, range) ||
                  herald_object_set(&q, "take", 4, herald_float64(n));
    if (failed) {
        herald_value_free(&q);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return run_rows(s, &q, rows, err);
}

/* At the first tick: actions a previous run of the server left inProgress failed. */
static void sweep_interrupted(hd_server *s)
{
    herald_value rows;
    herald_error err = {0};
    if (rows_where(s, "_scheduled_functions", "by_state_time", "state.kind", "inProgress", 10000,
                   &rows, &err)) {
        hd__log(HD_LOG_WARN, "scheduled_sweep", "herald: scheduled actions left running: %s",
                err.message);
        return;
    }
    for (size_t i = 0; rows.type == HERALD_ARRAY && i < rows.u.arr.len; i++) {
        const herald_value *id = herald_object_get(&rows.u.arr.items[i], "_id");
        const herald_value *name = herald_object_get(&rows.u.arr.items[i], "name");
        if (id && id->type == HERALD_STRING && name && name->type == HERALD_STRING)
            finish_action(s, id->u.s.ptr, name->u.s.ptr,
                          "interrupted: the server stopped while the action ran");
    }
    herald_value_free(&rows);
}

static void sched_timer(lws_sorted_usec_list_t *sul)
{
    hd__sched_tick((hd_server *)(void *)((char *)sul - offsetof(hd_server, sched_sul)));
}

/* The runs in state `kind` due by `until` (ms since the epoch; take `n`), oldest first. */
static int due(hd_server *s, const char *kind, double until, int n, herald_value *rows,
               herald_error *err)
{
    char text[300];
    snprintf(text, sizeof text,
             "{\"table\": \"_scheduled_functions\", \"index\": \"by_state_time\", "
             "\"range\": [{\"eq\": [\"state.kind\", \"%s\"]}, "
             "{\"lte\": [\"scheduledTime\", %.3f]}], \"take\": %d}",
             kind, until, n);
    herald_value q;
    *rows = herald_undefined();
    int rc = herald_value_from_json(text, strlen(text), &q, err);
    return rc ? rc : run_rows(s, &q, rows, err);
}

static int pending(hd_server *s, double until, int n, herald_value *rows, herald_error *err)
{
    return due(s, "pending", until, n, rows, err);
}

/* Finished runs deleted per pass at most. */
#define PURGE_BATCH 1000

/*
 * Finished runs (success, failed, canceled) older than --scheduled-retention
 * (7 days) are deleted, a batch at a time, so that crons and retries do not
 * grow the table without end.
 */
static void purge_finished(hd_server *s, double now)
{
    double keep = s->cfg.scheduled_retention > 0 ? s->cfg.scheduled_retention : 7 * 86400.0;
    if (now < s->sched_purge_at) return;
    /* Hourly, or sooner for a short retention; again soon while batches come out full. */
    s->sched_purge_at = now + 1000 * (keep / 2 < 3600 ? (keep / 2 > 1 ? keep / 2 : 1) : 3600);
    static const char *const kinds[] = {"success", "failed", "canceled"};
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r) return;
    herald_array_init(&r->ops);
    bool failed = false;
    for (size_t k = 0; k < 3 && !failed && r->ops.u.arr.len < PURGE_BATCH; k++) {
        herald_value rows;
        herald_error err = {0};
        if (due(s, kinds[k], now - keep * 1000, PURGE_BATCH - (int)r->ops.u.arr.len, &rows, &err))
            break;
        for (size_t i = 0; rows.type == HERALD_ARRAY && i < rows.u.arr.len && !failed; i++) {
            const herald_value *id = herald_object_get(&rows.u.arr.items[i], "_id");
            herald_value op, v;
            herald_object_init(&op);
            failed = !id || id->type != HERALD_STRING || herald_string(&v, "delete", 6) ||
                     herald_object_set(&op, "op", 2, v) ||
                     herald_string(&v, id->u.s.ptr, id->u.s.len) ||
                     herald_object_set(&op, "id", 2, v);
            if (failed)
                herald_value_free(&op);
            else
                failed = herald_array_push(&r->ops, op);
        }
        herald_value_free(&rows);
    }
    if (failed || !r->ops.u.arr.len) {
        hd__wreq_free(r);
        return;
    }
    if (r->ops.u.arr.len == PURGE_BATCH) s->sched_purge_at = now + 1000;
    r->system = true;
    hd__writer_submit(s->writer, r);
}

static void cron_tick(hd_server *s, double now);

void hd__sched_tick(hd_server *s)
{
    if (!s->writer) return;
    /* Scheduled runs and crons are the primary's. */
    if (s->repl && !hd__repl_is_primary(s->repl)) {
        s->sched_swept = false; /* a new primary sweeps what the old one left running */
        return;
    }
    if (!s->sched_swept) {
        s->sched_swept = true;
        sweep_interrupted(s);
    }
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    cron_tick(s, (double)now_ts.tv_sec * 1e3 + (double)now_ts.tv_nsec / 1e6);
    purge_finished(s, (double)now_ts.tv_sec * 1e3 + (double)now_ts.tv_nsec / 1e6);
    if (s->nsched >= SCHED_PER_TICK) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    herald_value rows;
    herald_error err = {0};
    int rc = pending(s, now, SCHED_PER_TICK, &rows, &err);
    for (size_t i = 0; !rc && rows.type == HERALD_ARRAY && i < rows.u.arr.len; i++)
        rc = hand_over(s, &rows.u.arr.items[i]);
    herald_value_free(&rows);
    /* A run due before the next tick gets a timer of its own (lateness: docs/performance.md). */
    if (!rc && s->lws && !(rc = pending(s, now + 250, SCHED_PER_TICK + 1, &rows, &err)))
        for (size_t i = 0; rows.type == HERALD_ARRAY && i < rows.u.arr.len; i++) {
            /* The first one not at the writer already (those are still pending until they commit).
             */
            const herald_value *at = herald_object_get(&rows.u.arr.items[i], "scheduledTime");
            const herald_value *id = herald_object_get(&rows.u.arr.items[i], "_id");
            const herald_value *name = herald_object_get(&rows.u.arr.items[i], "name");
            if (!at || at->type != HERALD_FLOAT64 || !id || id->type != HERALD_STRING || !name ||
                name->type != HERALD_STRING || in_flight(s, id->u.s.ptr))
                continue;
            double wait_ms = at->u.f - now;
            lws_sul_schedule(s->lws, 0, &s->sched_sul, sched_timer,
                             (lws_usec_t)((wait_ms > 0 ? wait_ms : 0) * 1000) + 1000);
            break;
        }
    herald_value_free(&rows);
    if (rc) {
        static double logged;
        if (hd__now() - logged > 60) {
            logged = hd__now();
            hd__log(HD_LOG_WARN, "scheduled_wait", "herald: scheduled functions wait: %s",
                    err.message);
        }
    }
}

void hd__sched_done(hd_server *s, hd_wreq *r)
{
    /* At the cap, due runs were left for later: look again after this batch. */
    if (s->nsched >= SCHED_PER_TICK) s->sched_poke = true;
    for (size_t i = 0; i < s->nsched; i++)
        if (!strcmp(s->sched_inflight[i], r->scheduled_id)) {
            memmove(s->sched_inflight[i], s->sched_inflight[i + 1],
                    (s->nsched - i - 1) * sizeof s->sched_inflight[0]);
            s->nsched--;
            break;
        }
    if (r->rc) {
        hd__log(HD_LOG_WARN, "scheduled_failed", "herald: scheduled %s (%s) could not run: %s",
                r->fn_path, r->scheduled_id, r->err.message);
        return;
    }
    if (!r->sched_start || r->replayed) return;
    /* The action's row says inProgress: it runs now, with the rights of the app itself. */
    hd_action *act = s->actions ? hd__action_new(r->fn_path, &r->fn_args, NULL, true) : NULL;
    if (!act || !(act->scheduled_id = strdup(r->scheduled_id))) {
        hd__action_free(act);
        finish_action(s, r->scheduled_id, r->fn_path, "the server could not start the action");
        return;
    }
    act->internal = true;
    hd__actions_submit(s->actions, act);
}

void hd__sched_action_done(hd_server *s, hd_action *act)
{
    char error[sizeof act->err.message + 16];
    if (act->rc)
        snprintf(error, sizeof error, "%s",
                 act->err.message[0] ? act->err.message : herald_strerror(act->rc));
    if (act->rc)
        hd__log(HD_LOG_WARN, "scheduled_failed", "herald: scheduled %s (%s) failed: %s",
                act->fn_path, act->scheduled_id, error);
    if (s->writer) finish_action(s, act->scheduled_id, act->fn_path, act->rc ? error : NULL);
}

/* ---- crons ---- */

typedef struct cron_state {
    char name[128];
    hd_cron expr;
    bool is_cron;
    double interval;
    double next;                  /* ms since the epoch */
    char id[HERALD_ID_CHARS + 1]; /* its `_cron_jobs` row, or "" */
    bool busy;                    /* its run is at the writer */
} cron_state;

/* The cron's next time after `t` (ms), or -1: never. */
static double cron_after(const cron_state *c, double t)
{
    if (!c->is_cron) return t + c->interval;
    int64_t next = hd__cron_next(&c->expr, (int64_t)t);
    return next < 0 ? -1 : (double)next;
}

/* The functions changed (or the first tick): the crons they declare, from their rows. */
static void cron_load(hd_server *s, double now)
{
    free(s->crons);
    s->crons = NULL;
    s->ncrons = 0;
    s->cron_generation = s->fn_generation;
    const hd_fncron *decl;
    size_t n = s->fnrt ? hd__fnrt_crons(s->fnrt, &decl) : 0;
    if (!n || !(s->crons = calloc(n, sizeof *s->crons))) return;
    for (size_t i = 0; i < n; i++) {
        cron_state *c = &s->crons[s->ncrons++];
        snprintf(c->name, sizeof c->name, "%s", decl[i].name);
        c->is_cron = decl[i].cron != NULL;
        c->interval = decl[i].interval;
        if (c->is_cron && hd__cron_parse(decl[i].cron, &c->expr, NULL)) c->is_cron = false;
        herald_value rows;
        herald_error err = {0};
        double last = 0;
        if (!rows_where(s, "_cron_jobs", "by_name", "name", c->name, 1, &rows, &err) &&
            rows.type == HERALD_ARRAY && rows.u.arr.len == 1) {
            const herald_value *id = herald_object_get(&rows.u.arr.items[0], "_id");
            const herald_value *at = herald_object_get(&rows.u.arr.items[0], "lastRun");
            if (id && id->type == HERALD_STRING) snprintf(c->id, sizeof c->id, "%s", id->u.s.ptr);
            if (at && at->type == HERALD_FLOAT64) last = at->u.f;
        }
        herald_value_free(&rows);
        /* Never run: from now. Run before: from then, so that a missed run is due at once. */
        c->next = cron_after(c, last > 0 ? last : now);
    }
}

/* The ops of a cron's run: its `_scheduled_functions` row due now, its `_cron_jobs` row. */
static int cron_ops(const cron_state *c, const hd_fncron *d, double now, herald_value *ops)
{
    herald_value ins, row, state, v, jobs, jrow;
    herald_array_init(ops);
    herald_object_init(&ins);
    herald_object_init(&row);
    herald_object_init(&state);
    herald_object_init(&jobs);
    herald_object_init(&jrow);
    bool failed = herald_string(&v, "insert", 6) || herald_object_set(&ins, "op", 2, v) ||
                  herald_string(&v, "_scheduled_functions", 20) ||
                  herald_object_set(&ins, "table", 5, v) ||
                  herald_string(&v, d->fn_path, strlen(d->fn_path)) ||
                  herald_object_set(&row, "name", 4, v) || herald_value_copy(&v, &d->args) ||
                  herald_object_set(&row, "args", 4, v) ||
                  herald_object_set(&row, "scheduledTime", 13, herald_float64(now)) ||
                  herald_string(&v, "pending", 7) || herald_object_set(&state, "kind", 4, v) ||
                  herald_object_set(&row, "state", 5, state) ||
                  herald_object_set(&ins, "value", 5, row) || herald_array_push(ops, ins);
    bool have = c->id[0] != 0;
    failed =
        failed || herald_string(&v, have ? "patch" : "insert", have ? 5 : 6) ||
        herald_object_set(&jobs, "op", 2, v) ||
        (have ? herald_string(&v, c->id, strlen(c->id)) || herald_object_set(&jobs, "id", 2, v)
              : herald_string(&v, "_cron_jobs", 10) || herald_object_set(&jobs, "table", 5, v) ||
                    herald_string(&v, c->name, strlen(c->name)) ||
                    herald_object_set(&jrow, "name", 4, v)) ||
        herald_object_set(&jrow, "lastRun", 7, herald_float64(now)) ||
        herald_object_set(&jobs, "value", 5, jrow) || herald_array_push(ops, jobs);
    return failed ? HERALD_ENOMEM : 0;
}

static void cron_tick(hd_server *s, double now)
{
    if (!s->crons_loaded || s->cron_generation != s->fn_generation) {
        s->crons_loaded = true;
        cron_load(s, now);
    }
    const hd_fncron *decl;
    size_t n = s->fnrt ? hd__fnrt_crons(s->fnrt, &decl) : 0;
    for (size_t i = 0; i < s->ncrons && i < n; i++) {
        cron_state *c = &s->crons[i];
        if (c->busy || c->next < 0 || c->next > now) continue;
        hd_wreq *r = calloc(1, sizeof *r);
        if (!r || cron_ops(c, &decl[i], now, &r->ops)) {
            hd__wreq_free(r);
            continue;
        }
        r->system = true;
        r->cron = true;
        c->busy = true;
        c->next = cron_after(c, now);
        hd__writer_submit(s->writer, r);
    }
}

void hd__sched_cron_done(hd_server *s, hd_wreq *r)
{
    /* Which cron: the name in its `_cron_jobs` op. */
    const herald_value *jobs =
        r->ops.type == HERALD_ARRAY && r->ops.u.arr.len == 2 ? &r->ops.u.arr.items[1] : NULL;
    const herald_value *value = herald_object_get(jobs, "value");
    const herald_value *name = herald_object_get(value, "name");
    const herald_value *id = herald_object_get(jobs, "id");
    for (size_t i = 0; i < s->ncrons; i++) {
        cron_state *c = &s->crons[i];
        bool match = (name && name->type == HERALD_STRING && !strcmp(c->name, name->u.s.ptr)) ||
                     (id && id->type == HERALD_STRING && !strcmp(c->id, id->u.s.ptr));
        if (!match) continue;
        c->busy = false;
        const herald_value *ids = &r->result;
        if (!r->rc && !c->id[0] && ids->type == HERALD_ARRAY && ids->u.arr.len == 2 &&
            ids->u.arr.items[1].type == HERALD_STRING)
            snprintf(c->id, sizeof c->id, "%s", ids->u.arr.items[1].u.s.ptr);
        if (r->rc)
            hd__log(HD_LOG_WARN, "cron_failed", "herald: cron \"%s\" could not be scheduled: %s",
                    c->name, r->err.message);
        break;
    }
}
