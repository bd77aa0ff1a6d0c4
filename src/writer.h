/*
 * The writer thread: the only thread that writes to the store.
 *
 * Requests (lists of document operations) are queued from the event loop;
 * the writer takes everything queued, runs each request as one mutation in
 * one group, commits the group with a single fsync, and hands the finished
 * batch back to the loop through a second queue, waking it with `wake`.
 * While a group is being flushed the next one is being gathered, and the
 * event loop never waits on the disk.
 *
 * Caveats: requests and batches are owned by the writer from submit until
 * they come back from hd__writer_take_done(); then by the caller, who frees
 * batches with hd__wbatch_free() (which frees the group and its write sets).
 */
#ifndef HD_WRITER_H
#define HD_WRITER_H

#include "fn.h"
#include "herald/store.h"

typedef struct hd_wreq hd_wreq;
struct hd_wreq {
    hd_wreq *next;
    herald_value ops;      /* array of operations (docs/protocol.md); owned */
    char *fn_path;         /* or a mutation function to call; owned */
    herald_value fn_args;  /* its arguments; owned */
    herald_value identity; /* the caller's identity, or undefined; owned */
    bool admin;            /* the caller presented the admin key */
    bool internal;         /* an action calls: internal mutations too */
    /* Optional; owned. Scoped to the caller (admin, identity's issuer and
     * subject, or anonymous) and bound to fn_path and fn_args, or to ops. */
    char *idempotency_key;
    bool system; /* may write the system tables (an upload's `_storage` row) */
    /* An upload: its received file (owned path, in DATA/files), made durable and renamed
     * to the id of the row `ops` inserts before the mutation commits (blobs.h); removed
     * when the mutation does not commit. */
    char *upload_tmp;
    bool upload_placed;
    /* A run of ctx.scheduler (`_scheduled_functions` row id; fn_path, fn_args): the
     * function and the row's new state commit together, so it runs exactly once. */
    char *scheduled_id;
    /* A scheduled action's row: marked inProgress (sched_start, only if pending), or done
     * (sched_finish: success, or failed with sched_error). */
    bool sched_start, sched_finish;
    char *sched_error;
    bool cron; /* a cron's run (sched.c): its ops, answered to hd__sched_cron_done */
    /* An action's write (action.h): answered back to the action pool. */
    void *action;
    /* Replication (repl.h). A replica's record of the stream to apply: its log and
     * sequence (owned). */
    uint8_t *repl_log;
    size_t repl_len;
    uint64_t repl_seq;
    /* A write a replica forwarded to the primary, answered (rc, result, version set):
     * it waits at the writer until this node has applied that version. */
    bool forwarded;
    double forward_deadline; /* CLOCK_MONOTONIC seconds; answered then at the latest */
    uint64_t forward_id;     /* the replica's number for it while it is out */
    /* On the primary: a write another node forwarded, answered to this NATS subject. */
    char *forward_reply;
    /* Set by the writer. */
    int rc;
    herald_error err;
    herald_value result; /* ops: per operation, the new id or null; functions: the return value */
    herald_value error_data; /* a failed function's structured error data, or undefined */
    uint64_t version;        /* commit version, when rc == 0 */
    size_t set_index;        /* index of its write set in the group, when rc == 0 */
    int attempts;            /* runs so far (a request short of map room gets two) */
    bool replayed;           /* answered from an idempotency record; nothing written */
    double submitted_at;     /* CLOCK_MONOTONIC seconds when it reached the writer's queue */
    /* Who asked; opaque to the writer. */
    void *origin;
    uint64_t origin_serial;
    char *request_id;
};

typedef struct hd_wbatch hd_wbatch;
struct hd_wbatch {
    hd_wbatch *next;
    herald_group *group; /* committed; write sets readable */
    hd_wreq *reqs;       /* in commit order */
    int commit_rc;
    double committed_at; /* CLOCK_MONOTONIC seconds when the group became durable */
};

typedef struct hd_writer hd_writer;

int hd__writer_start(herald_store *s, size_t max_group, void (*wake)(void *), void *wake_ctx,
                     hd_writer **out, herald_error *err);
/*
 * Hands the writer a new bundle of functions (it takes a reference); the
 * writer builds its own runtime from it before its next group.
 */
void hd__writer_set_functions(hd_writer *w, hd_fnbundle *bundle, const hd_fn_limits *limits);
/*
 * Hands the writer a new schema (it takes ownership, also on failure), which
 * it applies between two groups with herald_store_set_schema(): writes
 * queued meanwhile wait, read snapshots go on with the old schema until the
 * change commits. Returns at once: 0, or HERALD_EBUSY while another change
 * is pending or the writer stops. The writer wakes the loop when done.
 */
int hd__writer_change_schema(hd_writer *w, herald_schema *schema, herald_error *err);
/*
 * The outcome of the change handed over, once the writer has applied or
 * refused it: returns true with *rc (0, or the store's refusal in *err; the
 * running schema stays then) and *seconds, how long the change held the
 * writer (may be NULL). False while it is pending or none was handed over.
 */
bool hd__writer_schema_done(hd_writer *w, int *rc, double *seconds, herald_error *err);
/*
 * Queues a request; the writer owns it until it comes back in a batch. With
 * replication, a client's write on a node that is not the primary goes to
 * the primary instead (hd__repl_forward) and comes back the same way.
 */
void hd__writer_submit(hd_writer *w, hd_wreq *r);
/* Replication: the writer asks `r` before each group whether to lead, and appends. */
struct hd_repl;
void hd__writer_set_repl(hd_writer *w, struct hd_repl *r);
/* A forwarded write, answered: it joins a batch once its version is applied here. */
void hd__writer_submit_forwarded(hd_writer *w, hd_wreq *r);
/* Finished batches, oldest first (a linked list), or NULL. */
hd_wbatch *hd__writer_take_done(hd_writer *w);
void hd__wbatch_free(hd_wbatch *b);
void hd__wreq_free(hd_wreq *r);
/*
 * Takes the finished batches together with a read snapshot that holds
 * exactly them: no commit newer than the last batch, none older missing.
 * Re-running subscriptions on that snapshot can never show a client a mix
 * of states. Returns HERALD_EBUSY, without waiting, while a group is being
 * committed (the writer wakes the loop when it is done); then nothing is
 * taken. The caller ends the snapshot with herald_txn_end().
 */
int hd__writer_take_consistent(hd_writer *w, hd_wbatch **batches, herald_txn **snapshot,
                               herald_error *err);
/*
 * The same, waiting for a commit in progress (at most one group's commit):
 * for a loop whose take failed already, against a writer that never pauses.
 */
int hd__writer_take_consistent_wait(hd_writer *w, hd_wbatch **batches, herald_txn **snapshot,
                                    herald_error *err);
/*
 * For /healthz and /metrics, from any thread: whether the writer thread
 * runs, the requests queued and not taken yet, and how long the oldest of
 * them has waited (seconds; 0 when none waits).
 */
bool hd__writer_health(hd_writer *w, size_t *queued, double *oldest_wait);
/* Finishes and commits what is queued, stops the thread; done batches stay takeable. */
void hd__writer_stop(hd_writer *w);
void hd__writer_free(hd_writer *w);

/*
 * Applies a list of operations in mutation `m`: {"op":"insert","table":T,
 * "value":{...}}, {"op":"patch","id":I,"value":{...},"unset":[...]},
 * {"op":"replace","id":I,"value":{...}}, {"op":"delete","id":I}.
 * *result is an array with, per operation, the new id (insert) or null.
 */
int hd__apply_ops(herald_txn *m, const herald_value *ops, herald_value *result, herald_error *err);

#endif
