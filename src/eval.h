/*
 * Evaluator threads: query functions that take long run here, off the
 * event loop, each thread with its own Lua runtime and its own read
 * snapshots, so that one client's expensive queries never stall the
 * others' pings, answers and updates.
 *
 * The loop runs a query function itself first, with a short budget
 * (HD_EVAL_INLINE_SECONDS); a call still running then stops (hd_fncall
 * yield_after) and comes here, and its function is known as slow from
 * then on: its later calls come here at once, until one runs quickly
 * again. A cheap call never pays a thread hop.
 *
 * Fairness: jobs wait in lanes, one per connection (and one per
 * subscribed query instance for its re-runs); a lane has at most one job
 * running, and the threads take lanes in turn. A client's flood of expensive calls waits
 * behind its own earlier calls, never ahead of other clients'.
 *
 * Finished jobs go back to the loop (hd__eval_take_done), which it learns
 * through the wake-up callback; everything about connections, instances
 * and frames happens there, on the loop's thread.
 */
#ifndef HD_EVAL_H
#define HD_EVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "fn.h"
#include "herald/query.h"
#include "herald/store.h"

/* How much CPU time the loop lets a query function take before handing it over. */
#define HD_EVAL_INLINE_SECONDS 0.002

/* The calling thread's CPU time in seconds (what the budgets above count). */
static inline double hd__eval_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct hd_eval hd_eval;

/* Lanes: a connection's serial, or this bit with a query instance's id. */
#define HD_EVAL_LANE_INSTANCE (1ULL << 63)

typedef struct hd_job {
    struct hd_job *next;
    uint64_t lane; /* who waits: a connection's serial, or an instance (HD_EVAL_LANE_INSTANCE) */
    /* What runs: a query function, as someone. */
    char *fn_path;
    herald_value args;
    herald_value identity;
    bool admin;
    bool want_rs; /* collect the read set (subscriptions) */
    /* Whom it is for (the loop's business; untouched here). */
    void *origin;
    uint64_t origin_serial;
    char *request_id;
    uint64_t qinst_id;
    char *journal; /* a live page's end cursor (hd_fncall.journal), or NULL */
    /* The outcome. */
    int rc;
    herald_error err;
    herald_value result;
    herald_value err_data;
    herald_read_set rs;
    char *journal_out; /* hd_fncall.journal_out (with want_rs) */
    uint64_t version; /* of the snapshot it ran on */
    double seconds;   /* the CPU time it took */
} hd_job;

/* Starts `threads` evaluators on `store` with the functions of `bundle`. */
int hd__eval_start(herald_store *store, size_t threads, hd_fnbundle *bundle,
                   const hd_fn_limits *limits, void (*wake)(void *), void *wake_ctx,
                   hd_eval **out, herald_error *err);
/* New functions (a reload): each thread builds its runtime anew before its next job. */
void hd__eval_set_functions(hd_eval *e, hd_fnbundle *bundle, const hd_fn_limits *limits);
/* A new job (filled by the caller; owned by the pool until it comes back done). */
hd_job *hd__eval_job_new(uint64_t lane, const char *fn_path, const herald_value *args,
                         const herald_value *identity, bool admin);
void hd__eval_submit(hd_eval *e, hd_job *job);
/* The finished jobs, oldest first (a list), or NULL. */
hd_job *hd__eval_take_done(hd_eval *e);
/* Jobs waiting or running in the lane. */
size_t hd__eval_lane_jobs(hd_eval *e, uint64_t lane);
void hd__eval_job_free(hd_job *job);
/*
 * Stops the threads after the jobs running; the jobs that did not start
 * come back done with HERALD_EBUSY, for the loop to answer.
 */
void hd__eval_stop(hd_eval *e);
/* Stops the threads if still running and frees everything. */
void hd__eval_free(hd_eval *e);

/*
 * Which query functions are slow, by path (the loop's thread only): a
 * function becomes slow when a call ran over the inline budget, and fast
 * again when a call took less than a quarter of it.
 */
bool hd__eval_is_slow(hd_eval *e, const char *path);
void hd__eval_note(hd_eval *e, const char *path, double seconds);

#endif
