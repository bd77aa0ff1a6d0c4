/*
 * Replication over NATS JetStream (docs/replication.md).
 *
 * One node, the primary, holds a lease in a JetStream key-value bucket and
 * is the only one whose writer commits groups of mutations: before a group
 * commits in LMDB, its log (herald_group_log: every document written or
 * deleted, with its version) is appended to the cluster's stream with the
 * condition that the stream still ends where this node last appended, so a
 * node that lost the lease can never append (fencing). Only once JetStream
 * acknowledged the append does the group commit, so a mutation is answered
 * only when it is durable in both. The stream's sequence of the group is
 * stored with it (meta `repl_seq`).
 *
 * Every other node is a replica: it applies the stream in order, one group
 * per record, through the same writer and commit path (so its
 * subscriptions see the same write sets, diffs and versions), and forwards
 * the mutations its clients send to the primary over NATS request/reply;
 * the answer waits until the replica applied that version (read your
 * writes). A replica with an empty data folder, or one that fell behind the
 * stream's retention, starts from the latest snapshot the primary
 * published to JetStream (replsnap.h). When the lease lapses, a replica
 * takes it, applies the stream to its end, and becomes primary.
 *
 * Threads: NATS delivers on its own threads; a lease thread renews or
 * watches the lease, times out forwarded requests and starts snapshots;
 * the writer calls hd__repl_append(); the loop calls the answer and status
 * functions.
 *
 * Caveats:
 * - Every node must run the same app (schema and functions); stored files
 *   (`_storage`) are not replicated: uploads are refused on replicas, and a
 *   replica's file URLs name files it does not have (docs/replication.md).
 * - Scheduled functions and crons run on the primary only.
 */
#ifndef HD_REPL_H
#define HD_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "herald/store.h"

typedef struct hd_repl_config {
    const char *urls;        /* --replicate: nats:// URLs, comma-separated; NULL: none */
    const char *role;        /* auto (NULL), primary or replica */
    const char *node;        /* this node's name; NULL: host name and port */
    const char *cluster;     /* the cluster's name; NULL: "herald" */
    double lease;            /* seconds the primary's lease lives unrenewed; 0: 5 */
    uint64_t retain;         /* groups the stream keeps; 0: 1,000,000 */
    uint64_t snapshot_every; /* groups between the primary's snapshots; 0: 10,000 */
    const char *ca; /* CA certificates (PEM) of the NATS servers' TLS; NULL: the system's */
} hd_repl_config;

typedef struct hd_repl hd_repl;
struct hd_writer;
struct hd_wreq;

/*
 * Connects to NATS, makes the stream, the lease bucket and the snapshot
 * stream if missing, and readies data folder `data_dir`: a folder that is
 * missing, empty of a Herald database, or behind the stream's retention
 * is filled from the latest snapshot (an older database is moved aside to
 * `<data_dir>.stale-<time>` first). Runs before the store is opened.
 * `port` names the node when the config does not.
 */
int hd__repl_open(const hd_repl_config *cfg, const char *data_dir, int port, hd_repl **out,
                  herald_error *err);
/*
 * Starts following the stream (or leading it) with the open store and the
 * running writer; `wake` wakes the event loop (a role change).
 */
int hd__repl_run(hd_repl *r, herald_store *s, struct hd_writer *w, const char *data_dir,
                 void (*wake)(void *), void *wake_ctx, herald_error *err);
/* Stops the threads and subscriptions (before the writer stops) and frees. */
void hd__repl_stop(hd_repl *r);
void hd__repl_free(hd_repl *r);

/* Whether this node is the primary now (any thread). */
bool hd__repl_is_primary(hd_repl *r);

/*
 * The writer, before a group commits on the primary: appends `log` (may be
 * empty: nothing is appended) and gives the stream sequence in *seq. On
 * failure the group must not commit: the node stops being primary until it
 * has applied the stream again.
 */
int hd__repl_append(hd_repl *r, const uint8_t *log, size_t len, uint64_t *seq, herald_error *err);
/* The last stream record this node's store holds. */
uint64_t hd__repl_applied_seq(hd_repl *r);
/* The writer, after a commit that holds stream sequence `seq` (0: none). */
void hd__repl_committed(hd_repl *r, uint64_t seq);
/* The writer could not apply a record: the node starts again from a snapshot. */
void hd__repl_apply_failed(hd_repl *r, const herald_error *err);

/*
 * A client's write on a node that is not the primary: sent to the primary;
 * the request comes back through the writer once answered and applied.
 */
void hd__repl_forward(hd_repl *r, struct hd_wreq *req);
/* The loop: a request the primary ran for another node, answered to it. */
void hd__repl_answer(hd_repl *r, const struct hd_wreq *req);

/* The "replication" member of /healthz: role, node, primary, seq, version. */
void hd__repl_status_json(hd_repl *r, hd_buf *b);

/*
 * The command line, for a replica that must start again from a snapshot:
 * such a replica stops its server as SIGTERM does, and `herald serve`, once
 * the server returned, calls hd__repl_restart_if_wanted(), which runs the
 * same command line again (and returns only if it could not).
 */
void hd__repl_set_argv(char **argv);
void hd__repl_restart_if_wanted(void);

#endif
