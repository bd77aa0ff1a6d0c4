/*
 * The action pool: herald.action functions run here, off the event loop and
 * off the writer (docs/functions.md, "Actions").
 *
 * An action owns a runtime of its own while it runs (fn.h, "actions"), so
 * that a few threads carry many actions: a thread runs an action until it
 * waits (a fetch, a write) or ends, and takes the next one. Fetches go to
 * the fetcher's thread (fetch.h) and come back here; writes go to the loop
 * (hd__actions_take_writes), which hands them to the writer and gives the
 * answers back (hd__actions_written). At most `max_running` actions hold a
 * runtime at once; more wait their turn, first come first served.
 *
 * Finished actions go back to the loop (hd__actions_take_done), which it
 * learns through the wake-up callback, as for the writer and the
 * evaluators.
 */
#ifndef HD_ACTION_H
#define HD_ACTION_H

#include <stdbool.h>
#include <stdint.h>

#include "fetch.h"
#include "fn.h"
#include "herald/store.h"
#include "writer.h"

typedef struct hd_actions hd_actions;

typedef struct hd_action {
    struct hd_action *next;
    /* What runs, as whom. */
    char *fn_path;
    herald_value args;
    herald_value identity;
    bool admin;
    bool internal;        /* internal actions may run (the scheduler, crons) */
    herald_value request; /* an HTTP route's request (hd_actcall.request), or undefined */
    /* Whom it is for (the loop's business; untouched here). */
    void *origin;
    uint64_t origin_serial;
    char *request_id;
    char *scheduled_id; /* a `_scheduled_functions` run */
    bool route;         /* an HTTP route's handler: the result is the response */
    /* The outcome. */
    int rc;
    herald_error err;
    herald_value result;
    herald_value err_data;
    double seconds; /* wall-clock time it took */
    /* The pool's. */
    struct hd_actions *pool;
    hd_fnrt *rt;
    unsigned generation;
    int resume; /* what it waits to be resumed with (action.c) */
    hd_fetch_response *fetched;
    hd_wreq written; /* the answer to its write: rc, err, result, error_data */
    double started;
    struct hd_action *all_prev, *all_next;
} hd_action;

typedef struct hd_actions_config {
    size_t threads;     /* 0: 2 */
    size_t max_running; /* actions holding a runtime at once; 0: 64 */
    double seconds;     /* wall-clock limit of one action; 0: 600 */
    hd_fetch_config fetch;
} hd_actions_config;

int hd__actions_start(herald_store *store, const hd_actions_config *cfg, hd_fnbundle *bundle,
                      const hd_fn_limits *limits, void (*wake)(void *), void *wake_ctx,
                      hd_actions **out, herald_error *err);
/* New functions (a reload): actions that start from now on run them. */
void hd__actions_set_functions(hd_actions *a, hd_fnbundle *bundle, const hd_fn_limits *limits);
hd_action *hd__action_new(const char *fn_path, const herald_value *args,
                          const herald_value *identity, bool admin);
void hd__action_free(hd_action *act);
/* Queues an action (the pool owns it until it comes back done). */
void hd__actions_submit(hd_actions *a, hd_action *act);
/* Finished actions, oldest first (a list), or NULL. */
hd_action *hd__actions_take_done(hd_actions *a);
/* Writes actions wait for (a list; r->action names the action), for the writer. */
hd_wreq *hd__actions_take_writes(hd_actions *a);
/* A write came back from the writer: its action goes on with the answer (moved out of `r`). */
void hd__actions_written(hd_actions *a, hd_wreq *r);
/* Actions running or waiting. */
size_t hd__actions_count(hd_actions *a);
/* Actions holding a runtime (the others counted wait for one). */
size_t hd__actions_running(hd_actions *a);
/*
 * Stops the threads after the steps running; every action not done comes
 * back done with HERALD_EBUSY ("the server stopped"), writes out at the
 * writer included (their answers are then dropped).
 */
void hd__actions_stop(hd_actions *a);
void hd__actions_free(hd_actions *a);

#endif
