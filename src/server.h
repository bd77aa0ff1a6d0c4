/*
 * The live server: shared state of the event loop (server.c), the
 * subscription registry (sub.c) and the protocol handlers (proto.c).
 *
 * Everything here lives on the event-loop thread except the writer, which
 * talks to the loop only through its queues (writer.h). A connection is
 * never freed inside its own callback; it is marked closing and the loop
 * drops it when lws reports it closed.
 */
#ifndef HD_SERVER_H
#define HD_SERVER_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "action.h"
#include "buf.h"
#include "deadline.h"
#include "dlist.h"
#include "eval.h"
#include "fn.h"
#include "herald/query.h"
#include "herald/store.h"
#include "log.h"
#include "repl.h"
#include "rsindex.h"
#include "writer.h"

typedef struct hd_server hd_server;
typedef struct hd_conn hd_conn;
typedef struct hd_qinst hd_qinst;

typedef struct hd_server_config {
    const char *app_dir;    /* app folder (schema.ts / schema.json, public/) */
    const char *data_dir;   /* data folder */
    const char *static_dir; /* served at / (the app's public/ or web-demo/) */
    int port;
    const char *host;          /* address to listen on; NULL: all (127.0.0.1 with --dev) */
    const char *allow_origins; /* other origins allowed (comma-separated; "*": any) */
    bool dev;                  /* anyone may run raw queries and mutations */
    bool no_sync;              /* tests only */
    size_t max_message;        /* bytes per inbound message; default 1 MiB + 64 KiB */
    size_t max_outbound;       /* queued bytes per connection before updates are merged */
    double max_behind_seconds; /* merged for longer than this: disconnected */
    size_t max_subs_per_conn;
    size_t max_connections; /* open at once; default 10,000, fewer if descriptors are short */
    size_t max_per_address; /* open at once from one client address; default 1,000 */
    double idle_seconds;    /* a silent WebSocket is pinged at half of this, closed at it; 60 */
    double request_seconds; /* an HTTP request or a WebSocket message must arrive within; 30 */
    size_t max_queued;      /* bytes queued to one connection at most; default 16 MiB */
    size_t max_memory;      /* connection buffers of all clients together; default 1 GiB */
    hd_fn_limits fn_limits;
    size_t evaluators;            /* evaluator threads; 0: as many as processors (at most 8) */
    double idempotency_retention; /* seconds an idempotency record is kept; 0: 24 h */
    /* File storage (storage.c): */
    const char *
        public_url; /* where clients reach the server, for file URLs; NULL: http://localhost:PORT */
    uint64_t max_file_size; /* bytes per uploaded file; 0: 100 MiB */
    uint64_t max_storage;   /* bytes of all stored files together; 0: no limit but the disk */
    size_t max_uploads;     /* uploads being received at once; 0: 16 */
    /* Actions (action.h): threads, actions at once, wall-clock limit, fetch's limits. */
    hd_actions_config actions;
    double scheduled_retention; /* seconds a finished scheduled run is kept; 0: 7 days */
    const char *metrics_bind;   /* "[ADDR:]PORT" of a listener for /metrics without the key */
    double writer_stall; /* seconds a mutation may wait for the writer before /healthz says 503; 0:
                            30 */
    const char *log_format; /* "text" (NULL) or "json" (log.h) */
    /* TLS (tls.h): the certificate chain and its key, PEM files; both or neither (no TLS). */
    const char *tls_cert, *tls_key;
    /* Replication over NATS JetStream (repl.h); repl.urls NULL: a single node. */
    hd_repl_config repl;
} hd_server_config;

/* One outbound frame. */
typedef struct hd_frame {
    struct hd_frame *next;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
} hd_frame;

/* A subscription of one connection to a query instance. */
typedef struct hd_csub {
    char *id; /* the client's subscription id */
    hd_qinst *qi;
    uint64_t sent_version; /* version of the result the client has */
    bool stale;            /* updates were merged: send the whole result when possible */
    bool awaiting;         /* its first result is at an evaluator thread */
} hd_csub;

struct hd_conn {
    hd_server *srv;
    struct lws *wsi;
    uint64_t serial;
    double opened_at; /* when the WebSocket opened, or the HTTP request began */
    bool websocket;
    struct hd_sync *sync; /* speaks Convex's sync protocol (sync.c), or NULL: the native one */
    bool admin;
    herald_value identity;   /* verified JWT identity (an object), or undefined */
    double identity_expires; /* Unix time the identity's token stops being valid; 0: none */
    char *tail_id;           /* the live tail of commits this connection follows, or NULL */
    bool closing;
    char close_reason[100];
    hd_frame *out, *out_tail;
    size_t out_bytes;     /* queued, the frame being sent included */
    size_t out_sent;      /* bytes of the first frame already written (it goes in fragments) */
    double last_progress; /* when the socket last took bytes, or the queue last became non-empty */
    hd_buf in;            /* a message being reassembled, or an HTTP body */
    int in_refused;       /* the message being read is skipped; this error is reported at its end */
    double in_started;    /* when the first byte of that message or request arrived; 0: none */
    hd_csub *subs;
    size_t nsubs, capsubs;
    /*
     * Subscriptions whose instance is at an evaluator thread: until none is,
     * the connection's updates merge (as when it is behind) and its acks wait
     * in `held`, so that it never holds a mix of commits and sees its own
     * writes before their acks.
     */
    size_t npending;
    hd_frame *held, *held_tail;
    double behind_since; /* when updates started being merged; 0 if not */
    /* Changes of the batch being processed, flushed as one frame. */
    hd_buf changes;
    size_t nchanges;
    /* HTTP: the request being answered. */
    char http_path[160];
    struct hd_blob_writer *upload; /* a file being received (storage.c), or NULL */
    char upload_nonce[33];         /* its URL's once-only nonce */
    char upload_type[128];         /* its Content-Type */
    bool http_upload;              /* the answer is an upload's {"storageId"} */
    int file_fd;                   /* a stored file being sent, or -1 (0: none yet either) */
    uint64_t file_off, file_left;
    char file_headers[400]; /* its headers besides the common ones (CRLF-separated, each "name:
                               value") */
    char file_type[128];
    char cors_origin[128]; /* the request's Origin when it is another one allowed: CORS headers */
    bool http_convex;      /* the request is in Convex's shape: answered in its shape (560) */
    bool http_route;       /* a request to an HTTP route of the app's (routes.c) */
    char route_handler[32];
    char route_method[8];
    char *reply_headers; /* headers of the answer besides the common ones ("name: value\r\n"...),
                            and file_type its Content-Type; NULL: JSON, no others */
    bool http_ready;     /* the body arrived: handled at the next writable callback */
    bool http_waiting;   /* waiting for the writer */
    bool http_busy;      /* a request is being answered: further input waits (pipelining) */
    bool http_close; /* close the connection after this answer (bytes followed, or were not read) */
    unsigned http_repeats; /* completions lws signalled again for this request */
    int http_status;
    char *http_reply;
    size_t http_reply_len;
    /* Bookkeeping by lists and timers: nothing walks every connection. */
    hd_link watch_link;    /* on the list of connections with something time-bound pending */
    hd_link idle_link;     /* on the list of WebSockets, the longest silent first */
    double silent_since;   /* last heard from (or pinged) */
    bool pinged;           /* pinged since last heard from */
    bool ping_due;         /* a ping waits for the socket */
    hd_deadline expiry;    /* identity_expires, in the server's heap */
    hd_conn *next_pending; /* list of connections with changes in this batch */
    int pending_requests;  /* requests at the writer; the struct outlives its socket */
    size_t nactions;       /* its actions running or waiting (at most HD_MAX_CONN_ACTIONS) */
    bool dead;             /* the socket is gone; freed when pending_requests is 0 */
    hd_conn *prev, *next;  /* all connections */
};

/*
 * What a subscription asks for: a raw query (admin key or --dev), or a
 * query function with its arguments, run as the connection's identity.
 */
typedef struct hd_subspec {
    const herald_value *query; /* raw query, or NULL */
    const char *fn_path;       /* function path, or NULL */
    const herald_value *fn_args;
    const char *journal; /* a live page's end cursor from an earlier result, or NULL */
} hd_subspec;

/* A query evaluated once for every identical subscription. */
struct hd_qinst {
    uint64_t id;
    char *key;             /* canonical query text + identity */
    herald_query *query;   /* a raw query, or */
    char *fn_path;         /* a query function (normalised path) */
    herald_value fn_args;  /* its arguments */
    char *journal;         /* its page's end cursor, fixed by its first run (or NULL) */
    herald_value identity; /* run as (undefined: anonymous) */
    bool admin;            /* run with the admin key's rights */
    herald_value spec;     /* the raw query as the client sent it (for re-authentication) */
    herald_value result;
    uint64_t version;
    int rc; /* last evaluation's error, if any */
    herald_error err;
    herald_value err_data; /* data of a structured function error */
    herald_read_set rs;
    hd_conn **subscribers; /* parallel with sub_ids: who watches it */
    char **sub_ids;
    size_t nsubscribers, cap;
    hd_qinst *hash_next, *id_next;
    bool dirty;
    hd_qinst *next_dirty;
    /* At an evaluator thread since the loop had processed `pending_since` (sub.c). */
    bool pending;
    uint64_t pending_since;
    unsigned pending_generation; /* the functions it runs with (reloads count up) */
    hd_qinst *pending_prev, *pending_next;
};

/* Convex's sync protocol on a connection (sync.c). */
typedef struct hd_sync hd_sync;

/* Counters for /metrics that nothing else keeps (metrics.c); the loop's only. */
#define HD_LATENCY_BUCKETS 13
typedef struct hd_metrics {
    uint64_t ws_opened;        /* WebSockets opened */
    uint64_t http_requests[6]; /* answered, by status class (1xx at 1 ... 5xx at 5; 0: other) */
    uint64_t groups;           /* group commits processed */
    uint64_t reruns;           /* query instances re-run after commits */
    uint64_t bytes_pushed;     /* bytes written to WebSockets */
    uint64_t culled;           /* slow clients disconnected */
    uint64_t latency_buckets[HD_LATENCY_BUCKETS]; /* commit-to-push, per bucket (not cumulative) */
    uint64_t latency_count;
    double latency_sum;
} hd_metrics;

struct hd_server {
    hd_server_config cfg;
    herald_store *store;
    hd_writer *writer;
    hd_repl *repl; /* replication (repl.h), or NULL: a single node */
    hd_eval *eval;       /* evaluator threads, or NULL: every query runs on the loop */
    hd_actions *actions; /* the action pool, or NULL (not started yet) */
    struct lws_context *lws;
    void *evloop; /* the libev loop lws runs on, or NULL: lws's own poll() loop */
    /* The port's certificate and key (tls.h), or NULL: no TLS. */
    struct hd_tls *tls;
    hd_rsindex *rsindex;
    hd_conn *conns;
    hd_dlist watch;        /* queued output, a message or request arriving */
    hd_dlist idle;         /* WebSockets by silence */
    hd_deadlines expiries; /* token expiries */
    uint64_t next_serial;
    struct hd_admit *admit; /* open sockets, in all and per address */
    struct lws *listener;   /* the listening socket (known once a client came) */
    bool accept_paused;     /* short of file descriptors: not accepting until some close */
    size_t fd_limit;        /* the process's RLIMIT_NOFILE */
    size_t mem_in, mem_out; /* bytes held for clients: messages being read, frames queued */
    uint64_t refused;       /* connections refused at the door */
    unsigned char admin_hash[32];
    bool have_admin;
    /* Query instances by key and by id. */
    hd_qinst **by_key, **by_id;
    size_t nbuckets, ninst;
    uint64_t next_qinst;
    /* Evaluations at the evaluator threads (sub.c): the instances, the write sets
     * committed since the oldest of them started (to check their results by), and
     * results from a snapshot newer than the loop's, waiting for it. */
    hd_qinst *pending;
    struct hd_wslog *wslog, *wslog_tail;
    hd_job *early;
    uint64_t seen_version; /* the version of the last commit the loop processed */
    unsigned fn_generation;
    volatile int stop;
    volatile int reload;  /* SIGHUP: reload functions and auth */
    bool rerun_functions; /* functions changed: re-run every function subscription */
    /* A schema change a reload handed to the writer (server.c), or NULL. */
    struct hd_schema_reload *schema_reload;
    hd_fnrt *fnrt;        /* the loop's function runtime (queries), or NULL */
    struct hd_auth *auth; /* the app's auth providers */
    /* stats */
    uint64_t commits, updates_sent;
    double started_at;
    size_t ntails;       /* connections following the tail of commits */
    hd_dlist sync_dirty; /* sync connections with a Transition to send */
    /* File storage (storage.c). */
    char files_dir[4200];
    uint8_t blob_key[32];
    char public_url[300];
    size_t uploads;        /* being received */
    uint64_t stored_bytes; /* of all stored files */
    /* Scheduled runs at the writer (sched.c): their `_scheduled_functions` ids. */
    char sched_inflight[64][HERALD_ID_CHARS + 1];
    size_t nsched;
    bool sched_poke;                  /* a commit scheduled something: look now */
    lws_sorted_usec_list_t sched_sul; /* the next run due before the next tick */
    bool sched_swept;                 /* actions a previous run left inProgress are marked failed */
    double sched_purge_at;    /* when finished runs past their retention are deleted next (ms) */
    struct cron_state *crons; /* functions/crons.lua's crons, when each runs next */
    size_t ncrons;
    bool crons_loaded;
    unsigned cron_generation; /* the fn_generation they were loaded for */
    hd_dlist sync_quiet;      /* sync connections, the longest unsent-to first */
    struct {
        uint64_t second; /* monotonic second of the bucket */
        uint64_t commits;
    } per_second[16];
    float latency_ms[1000]; /* commit-to-push latencies, a ring */
    size_t nlatency, latency_next;
    float durable_ms[1000]; /* submit-to-durable: a mutation queued, run, committed and synced */
    size_t ndurable, durable_next;
    hd_metrics metrics;
    struct lws_vhost *metrics_vhost; /* --metrics-bind's listener, or NULL */
};

/* ---- server.c ---- */
double hd__now(void);
/* A new connection record (wsi may be NULL: the fuzz targets play a loop). */
hd_conn *hd__conn_new(hd_server *s, struct lws *wsi, bool websocket);
/* The socket is gone: unlink, drop subscriptions, free unless requests are out. */
void hd__conn_gone(hd_server *s, hd_conn *c);
/* Queues a text frame (copied) for a connection and asks for writability. */
int hd__conn_send(hd_conn *c, const char *text, size_t len);
/*
 * Something time-bound is pending on the connection (an answer or frames
 * queued, a message or request arriving): the tick checks it until done.
 */
void hd__conn_watch(hd_conn *c);
/* The connection's identity_expires changed (0: never). */
void hd__conn_expiry_changed(hd_conn *c);
/* Closes a connection with a reason, after what is queued. */
void hd__conn_close(hd_conn *c, const char *reason);
/*
 * True when the request comes from no browser page (no Origin header),
 * from the server's own pages, or from an origin of --allow-origin.
 */
bool hd__origin_allowed(hd_server *s, struct lws *wsi);
/* Drops a request's hold on its connection, freeing a dead one. */
void hd__conn_release(hd_conn *c);
int hd__server_run(const hd_server_config *cfg);

/* ---- sub.c ---- */
/* Subscribes connection `c` as `sub_id` to `spec`; sends the first result. */
int hd__sub_add(hd_server *s, hd_conn *c, const char *sub_id, const hd_subspec *spec,
                herald_error *err);
/*
 * The connection's identity or rights changed: every subscription is
 * re-run under the new ones and the client gets all new results in one
 * update frame. A raw subscription that is no longer allowed ends with an
 * error.
 */
void hd__sub_reauth(hd_server *s, hd_conn *c);
int hd__sub_remove(hd_server *s, hd_conn *c, const char *sub_id);
void hd__sub_drop_conn(hd_server *s, hd_conn *c);
/*
 * Processes finished write batches (a list) with a snapshot that holds
 * exactly them: re-runs the affected queries on it, sends each connection
 * one update, then the acks in commit order.
 */
void hd__sub_commit(hd_server *s, hd_wbatch *batches, herald_txn *snapshot);
/*
 * After hd__sub_commit: keeps the batches (a list, processed at `version`)
 * while evaluations are at the threads, else frees them.
 */
void hd__sub_keep_batches(hd_server *s, hd_wbatch *batches, uint64_t version);
/*
 * A subscription's evaluation came back from an evaluator thread. True when
 * the job was kept (its snapshot is newer than the loop's: checked after a
 * later commit); otherwise the caller frees it.
 */
bool hd__sub_evaluated(hd_server *s, hd_job *j);
/* Queues an ack for the connection, held while subscriptions of it are pending. */
int hd__sub_send_ack(hd_conn *c, const char *text, size_t len);
/* A connection drained its queue: sends whole results to its stale subscriptions. */
void hd__sub_catch_up(hd_server *s, hd_conn *c);
/*
 * The same whatever is queued: before a mutation's ack to a connection whose
 * updates were merged, so that it sees its own write before the ack.
 */
void hd__sub_catch_up_now(hd_server *s, hd_conn *c);
void hd__sub_free_all(hd_server *s);

/* ---- sync.c: Convex's sync protocol, a second codec over the same subscriptions ---- */
/* Whether a WebSocket path is Convex's sync endpoint (/api/<version>/sync). */
bool hd__sync_path(const char *uri);
/* The connection speaks the sync protocol from now on. */
int hd__sync_attach(hd_conn *c);
void hd__sync_detach(hd_conn *c);
/* Handles one complete text message from a sync client. */
void hd__sync_message(hd_server *s, hd_conn *c, const char *text, size_t len);
/*
 * The JSON of a value a Convex client can read (field names of printable
 * ASCII, at most 1,024 bytes), or NULL with the reason in *err.
 */
char *hd__sync_value_json(const herald_value *v, herald_error *err);
/*
 * Subscription `sub_id` has a new result (or qi->rc, an error): a
 * QueryUpdated (or QueryFailed) in the connection's next Transition.
 * `json` is the result's hd__sync_value_json() when the caller has it.
 */
void hd__sync_query(hd_conn *c, const char *sub_id, const hd_qinst *qi, const char *json);
/* A failure outside any query: the connection closes with the reason (the client reconnects). */
void hd__sync_error(hd_conn *c, int code, const char *message);
/* The token ran out, or the admin key changed: AuthError, the client fetches a new one. */
void hd__sync_auth_lost(hd_conn *c, const char *message);
/* A mutation's answer: MutationResponse, and a Transition to its commit follows. */
void hd__sync_answer(hd_server *s, hd_conn *c, hd_wreq *r);
/* An action's answer: ActionResponse. */
void hd__sync_action_answer(hd_server *s, hd_conn *c, hd_action *act);
/* Sends the Transition of every connection with something to send (and no result pending). */
void hd__sync_flush_all(hd_server *s);
/* Something was queued to the connection (resets its Ping clock). */
void hd__sync_sent(hd_conn *c, double now);
/* Pings sync connections nothing was sent to for a while (the client's inactivity timer). */
void hd__sync_pings(hd_server *s, double now);

/* ---- storage.c: files (docs/storage.md "Files", docs/protocol.md "Files") ---- */
/* Before serving: the files folder, its key, what a crash left, the public URL. */
int hd__storage_start(hd_server *s, herald_error *err);
/*
 * A POST to /api/storage/upload/<token>: checks the URL, the size and the
 * type, and starts receiving into a temporary file. 0, or an HTTP status
 * with `msg` (the request is refused at once).
 */
int hd__storage_upload_begin(hd_server *s, hd_conn *c, struct lws *wsi, const char *token,
                             char *msg, size_t n);
/* A piece of the upload's body; 0, or an HTTP status (the request is refused). */
int hd__storage_upload_body(hd_conn *c, const void *p, size_t n, char *msg, size_t msgn);
/* The body arrived: the file is closed and its row goes to the writer. */
void hd__storage_upload_done(hd_server *s, hd_conn *c);
/* The upload will not complete (refused, or the connection went): its file goes. */
void hd__storage_upload_drop(hd_server *s, hd_conn *c);
/* The writer's answer to an upload: {"storageId": ...}. */
void hd__storage_answer(hd_server *s, hd_conn *c, hd_wreq *r);
/*
 * A GET of /api/storage/<id>/<token>: opens the file and sets what
 * server.c sends (c->file_*, c->http_status), or answers an error.
 */
void hd__storage_serve(hd_server *s, hd_conn *c, struct lws *wsi, const char *rest);
/* The size of the file an upload's (or ctx.storage:store's) request stores. */
uint64_t hd__storage_size(const hd_wreq *r);
/* Whether the file of request `r` fits --max-storage; if not, r fails and its file goes. */
bool hd__storage_admit(hd_server *s, hd_wreq *r);
/* After a commit: the files whose rows the batches deleted go. */
void hd__storage_committed(hd_server *s, hd_wbatch *batches);

/* ---- proto.c: actions ---- */
/*
 * Hands action `path` to the pool for connection `c` (a WebSocket message
 * with id `id`, or an HTTP request: id NULL); answered through
 * hd__action_done().
 */
int hd__submit_action(hd_server *s, hd_conn *c, const char *id, const char *path,
                      const herald_value *args, herald_error *err);
/* Takes the pool's writes to the writer and answers the actions it finished. */
void hd__actions_drain(hd_server *s);

/* Actions waiting or running in all, and of one connection, beyond which new ones are refused. */
#define HD_MAX_ACTIONS      10000
#define HD_MAX_CONN_ACTIONS 32

/* ---- routes.c: the app's HTTP routes (functions/http.lua), under HD_ROUTES_PREFIX ---- */
#define HD_ROUTES_PREFIX "/http"
bool hd__route_path(const char *uri);
/*
 * A request to a route's path: 0 and *body (a body follows, else it is
 * handled at once), or the HTTP status that refuses it, with `msg`.
 */
int hd__route_begin(hd_server *s, hd_conn *c, struct lws *wsi, const char *uri, bool *body,
                    char *msg, size_t n);
/* The request arrived: its action goes to the pool. */
void hd__route_request(hd_server *s, hd_conn *c, struct lws *wsi);
/* The route's action ended: its response (or a 500). */
void hd__route_answer(hd_server *s, hd_conn *c, hd_action *act);

/* ---- sched.c: ctx.scheduler's runs ---- */
/* Every tick: the pending runs that are due go to the writer. */
void hd__sched_tick(hd_server *s);
/* The writer is done with a scheduled run (hd__proto_answer hands it here). */
void hd__sched_done(hd_server *s, hd_wreq *r);
/* A scheduled action ended: its row records how. */
void hd__sched_action_done(hd_server *s, hd_action *act);
/* A cron's run was committed (or not): it may run again. */
void hd__sched_cron_done(hd_server *s, hd_wreq *r);

/* ---- admin.c ---- */
/* Answers {"type":"admin","op":...} for an admin connection (docs/protocol.md). */
void hd__admin_message(hd_server *s, hd_conn *c, const char *id, const char *op);
/* Starts (or moves to `id`) the connection's live tail of commits. */
void hd__admin_tail(hd_server *s, hd_conn *c, const char *id);
void hd__admin_untail(hd_server *s, hd_conn *c);
/* After a commit's updates were queued: tail frames, commit rate and latency. */
void hd__admin_commit(hd_server *s, hd_wbatch *batches);

/* ---- metrics.c: /metrics, /healthz, /version, the access log (docs/operations.md) ---- */
/* Starts counting function calls by path (before any thread runs functions). */
void hd__metrics_start(void);
/* Stops counting them and forgets the counts (after every such thread stopped). */
void hd__metrics_stop(void);
/* An action ended: its time and outcome count for its path. */
void hd__metrics_action_done(hd_server *s, const hd_action *act);
/* `commits` commits pushed `seconds` after they became durable. */
void hd__metrics_latency(hd_server *s, double seconds, size_t commits);
/*
 * GET /metrics (the admin key, unless on --metrics-bind's listener),
 * /healthz and /version: true when it answered the request (on the
 * metrics listener every request is answered: 404 for other paths).
 */
bool hd__metrics_request(hd_server *s, hd_conn *c, struct lws *wsi, const char *uri, bool get);
/* Opens --metrics-bind's listener on the server's context (after it is created). */
int hd__metrics_listen(hd_server *s, const struct lws_protocols *protocols, herald_error *err);
/* Whether `wsi` came in through the metrics listener. */
bool hd__metrics_listener(hd_server *s, struct lws *wsi);
/* The access log's line for an HTTP request answered with `status` and `bytes` of body
 * (c may be NULL: a request refused before it had a record). */
void hd__access_http(hd_server *s, hd_conn *c, struct lws *wsi, int status, uint64_t bytes);
/* A request's method, path and client, read before it is answered (files.c may end it). */
typedef struct hd_access_seen {
    const char *method;
    char path[256];
    char client[64];
    double started;
} hd_access_seen;
void hd__access_seen(struct lws *wsi, hd_access_seen *seen);
void hd__access_http_seen(hd_server *s, const hd_access_seen *seen, uint64_t conn, int status,
                          uint64_t bytes);
/* A WebSocket opened (c->http_path holds its path), or closed. */
void hd__access_ws_open(hd_server *s, hd_conn *c, struct lws *wsi);
void hd__access_ws_close(hd_server *s, hd_conn *c, struct lws *wsi);

/* ---- proto.c ---- */
/* Appends a JSON string for a C string. */
void hd__json_str(hd_buf *b, const char *s);
/* Appends `,"<name>":<JSON of v>` when v holds a value (not NULL, not undefined). */
void hd__json_field(hd_buf *b, const char *name, const herald_value *v);
/* Sends {"type":TYPE,"id":ID[,"version":V][,"value":VALUE]}. */
void hd__proto_send(hd_conn *c, const char *type, const char *id, uint64_t version,
                    const herald_value *value);
/* Handles one complete text message from a WebSocket client. */
void hd__proto_message(hd_server *s, hd_conn *c, const char *text, size_t len);
/* Handles one complete HTTP API request; may answer later (writer). */
void hd__http_request(hd_server *s, hd_conn *c, const char *path, const char *auth,
                      const char *body, size_t len);
/* Answers the connection's HTTP request with a Convex-shaped error. */
void hd__http_error(hd_conn *c, int code, const char *message);
/* Answers the connection's HTTP request with a JSON body (taken). */
void hd__http_answer(hd_conn *c, int status, hd_buf *body);
/* Writes an error frame for request `id` (may be NULL). */
void hd__proto_error(hd_conn *c, const char *id, int code, const char *message);
/* The same with the data of a structured function error (may be NULL or undefined). */
void hd__proto_error_data(hd_conn *c, const char *id, int code, const char *message,
                          const herald_value *data);
/*
 * Reloads the app's schema, functions and auth configuration. Returns 0 when
 * done with the schema unchanged; HD_RELOAD_PENDING when the app's schema
 * differs from the running one and was handed to the writer, which applies
 * it between two groups while the loop serves on: the functions follow once
 * it is applied, and `asker` (may be NULL) is answered then with `id`, an ack
 * {"schema": "applied"} or the refusal (docs/schema.md "Changing the schema
 * of a running server"). On any error the previous schema, functions and
 * auth stay and the error is returned (naming file and line, or the
 * documents a schema change would break). Called on the loop.
 */
#define HD_RELOAD_PENDING 1
int hd__server_reload(hd_server *s, hd_conn *asker, const char *id, herald_error *err);
/* The ack of a `reload` message: {"schema": "applied"} or {"schema": "unchanged"}. */
void hd__proto_reload_ack(hd_conn *c, const char *id, bool schema_applied);
/* Sets the connection's rights from a token: the admin key, a JWT, or none (NULL, ""). */
int hd__authenticate(hd_server *s, hd_conn *c, const char *token, herald_error *err);
/*
 * Hands a mutation to the writer: raw `ops`, or function `path` with `args`;
 * answered later through hd__proto_answer() with request id `id`.
 */
int hd__submit(hd_server *s, hd_conn *c, const char *id, const herald_value *ops, const char *path,
               const herald_value *args, const herald_value *idem, herald_error *err);
/* Hands a prepared request to the writer for connection `c` (answered through hd__proto_answer). */
void hd__submit_request(hd_server *s, hd_conn *c, hd_wreq *r);
/* A one-shot query came back from an evaluator thread: answer its origin. */
void hd__proto_query_done(hd_server *s, hd_job *j);
/* A finished request came back from the writer: answer its origin. */
void hd__proto_answer(hd_server *s, hd_wreq *r);
/* Checks a presented admin key in constant time. */
bool hd__admin_ok(hd_server *s, const char *key);

#endif
