/*
 * The scheduler's runs (docs/functions.md, "The scheduler"): every tick the
 * loop reads the `_scheduled_functions` rows that are pending and due,
 * oldest first, and hands each to the writer, which runs the function and
 * marks the row in the same commit (writer.c, run_scheduled), so a run
 * happens exactly once, also across restarts: a row stays pending until
 * the commit that ran it is durable.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* Runs handed to the writer per tick at most, and at once in all. */
#define SCHED_PER_TICK 64

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
    snprintf(s->sched_inflight[s->nsched++], sizeof s->sched_inflight[0], "%s", id->u.s.ptr);
    hd__writer_submit(s->writer, r);
    return 0;
}

static void sched_timer(lws_sorted_usec_list_t *sul)
{
    hd__sched_tick((hd_server *)(void *)((char *)sul - offsetof(hd_server, sched_sul)));
}

/* The pending runs due by `until` (ms since the epoch; take `n`), oldest first. */
static int pending(hd_server *s, double until, int n, herald_value *rows, herald_error *err)
{
    char text[300];
    snprintf(text, sizeof text,
             "{\"table\": \"_scheduled_functions\", \"index\": \"by_state_time\", "
             "\"range\": [{\"eq\": [\"state.kind\", \"pending\"]}, "
             "{\"lte\": [\"scheduledTime\", %.3f]}], \"take\": %d}",
             until, n);
    herald_value q;
    herald_query *query = NULL;
    herald_txn *t = NULL;
    *rows = herald_undefined();
    int rc = herald_value_from_json(text, strlen(text), &q, err);
    if (!rc) {
        rc = herald_query_from_value(&q, herald_store_schema(s->store), &query, err);
        herald_value_free(&q);
    }
    if (!rc) rc = herald_read_begin(s->store, &t, err);
    if (!rc) rc = herald_query_run(query, t, NULL, rows, NULL, err);
    if (t) herald_txn_end(t);
    herald_query_free(query);
    return rc;
}

void hd__sched_tick(hd_server *s)
{
    if (!s->writer || s->nsched >= SCHED_PER_TICK) return;
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
            /* The first one not at the writer already (those are still pending until they commit). */
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
            fprintf(stderr, "herald: scheduled functions wait: %s\n", err.message);
        }
    }
}

void hd__sched_done(hd_server *s, hd_wreq *r)
{
    for (size_t i = 0; i < s->nsched; i++)
        if (!strcmp(s->sched_inflight[i], r->scheduled_id)) {
            memmove(s->sched_inflight[i], s->sched_inflight[i + 1],
                    (s->nsched - i - 1) * sizeof s->sched_inflight[0]);
            s->nsched--;
            break;
        }
    if (r->rc)
        fprintf(stderr, "herald: scheduled %s (%s) could not run: %s\n", r->fn_path,
                r->scheduled_id, r->err.message);
}
