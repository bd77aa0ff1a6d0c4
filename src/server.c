/*
 * `herald serve`: the libwebsockets event loop, connections and their
 * bounded outbound queues, static files, the admin key, and the hand-off
 * between the writer thread and the loop.
 *
 * libwebsockets owns the loop. Frames are written only from
 * LWS_CALLBACK_SERVER_WRITEABLE, one lws_write per callback. The loop never
 * waits on the disk: the writer wakes it with lws_cancel_service() when a
 * group is durable. A connection's memory is never freed inside its own
 * callback while requests of it are still at the writer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef HERALD_HAVE_LIBEV
#include <ev.h>
#endif

#include "adminkey.h"
#include "admit.h"
#include "base64.h"
#include "files.h"
#include "jwt.h"
#include "log.h"
#include "schema_priv.h"
#include "server.h"
#include "tls.h"
#include "wsguard.h"

#define DEFAULT_MAX_MESSAGE     ((size_t)1024 * 1024 + 65536)
#define DEFAULT_MAX_OUTBOUND    ((size_t)64 * 1024)
#define DEFAULT_MAX_QUEUED      ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_MEMORY      ((size_t)1024 * 1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS 10000
#define DEFAULT_MAX_PER_ADDRESS 1000
/* Descriptors kept for the store, static files and the like, never for clients. */
#define FD_RESERVE 32
/* A frame goes out in fragments of at most this size, one per writable callback,
 * so that progress is seen while a large result drains and lws buffers little. */
#define FRAGMENT ((size_t)64 * 1024)
/* Silent WebSockets pinged per 250 ms tick at most (1,024 a second). */
#define PINGS_PER_TICK 256
/* A reassembly buffer larger than this is given back once its message is handled. */
#define KEEP_INPUT ((size_t)64 * 1024)

static hd_server *the_server; /* for the signal handler only */

static void cull(hd_conn *c, const char *reason);

double hd__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct pss {
    hd_conn *conn;
    int http_phase; /* 0 headers pending, 1 body pending */
} pss;

/* ---- bookkeeping: lists and timers of the connections concerned ---- */

void hd__conn_watch(hd_conn *c)
{
    if (c->watch_link.on || c->dead) return;
    hd__dlist_push_back(&c->srv->watch, &c->watch_link);
}

static void unwatch(hd_conn *c)
{
    hd__dlist_unlink(&c->srv->watch, &c->watch_link);
}

static void idle_unlink(hd_conn *c)
{
    hd__dlist_unlink(&c->srv->idle, &c->idle_link);
}

/* The WebSocket was heard from (or was just pinged): it goes to the end of the list. */
static void idle_touch(hd_conn *c, double now, bool pinged)
{
    c->silent_since = now;
    c->pinged = pinged;
    hd__dlist_push_back(&c->srv->idle, &c->idle_link);
}

void hd__conn_expiry_changed(hd_conn *c)
{
    if (hd__deadline_set(&c->srv->expiries, &c->expiry, c->dead ? 0 : c->identity_expires)) {
        /* No memory for the heap: the token cannot be timed, so it is not kept. */
        herald_value_free(&c->identity);
        c->identity_expires = 0;
    }
}

hd_conn *hd__conn_new(hd_server *s, struct lws *wsi, bool websocket)
{
    hd_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = s;
    c->wsi = wsi;
    c->websocket = websocket;
    c->serial = ++s->next_serial;
    c->opened_at = hd__now();
    c->file_fd = -1;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (websocket) idle_touch(c, hd__now(), false);
    return c;
}

/* Drops what is queued for a connection, keeping the server's count of held bytes. */
static void drop_queue(hd_conn *c)
{
    for (hd_frame *f = c->out, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    c->out = c->out_tail = NULL;
    c->srv->mem_out -= c->out_bytes;
    c->out_bytes = c->out_sent = 0;
}

/* Gives back a connection's reassembly buffer. */
static void drop_input(hd_conn *c)
{
    c->srv->mem_in -= c->in.cap;
    hd__buf_free(&c->in);
}

/* Appends to a connection's reassembly buffer, keeping the count of held bytes. */
static void append_input(hd_conn *c, const void *p, size_t len)
{
    size_t cap = c->in.cap;
    hd__buf_append(&c->in, p, len);
    c->srv->mem_in += c->in.cap - cap;
}

/* Gives back an HTTP connection's reply. */
static void drop_reply(hd_conn *c)
{
    if (!c->http_reply) return;
    c->srv->mem_out -= c->http_reply_len;
    free(c->http_reply);
    c->http_reply = NULL;
    c->out_sent = 0;
}

static void conn_free(hd_conn *c)
{
    for (hd_frame *f = c->held, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    drop_queue(c);
    drop_input(c);
    drop_reply(c);
    free(c->reply_headers);
    if (c->file_fd >= 0) close(c->file_fd);
    hd__buf_free(&c->changes);
    herald_value_free(&c->identity);
    free(c);
}

void hd__conn_release(hd_conn *c)
{
    if (--c->pending_requests <= 0 && c->dead) conn_free(c);
}

void hd__conn_gone(hd_server *s, hd_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    hd__sub_drop_conn(s, c);
    hd__admin_untail(s, c);
    hd__sync_detach(c);
    hd__storage_upload_drop(s, c);
    unwatch(c);
    idle_unlink(c);
    c->wsi = NULL;
    c->dead = true;
    hd__conn_expiry_changed(c);
    if (c->pending_requests <= 0) conn_free(c);
}

int hd__conn_send(hd_conn *c, const char *text, size_t len)
{
    hd_server *s = c->srv;
    if (c->dead || c->closing || !c->websocket) return 0;
    /* A client that reads gets what it asked for, however large; the bounds are
     * for one that does not: its own queue, and everyone's memory together. */
    if (c->out_bytes + len > s->cfg.max_queued) {
        cull(c, "too far behind: too much queued for it");
        return HERALD_ELIMIT;
    }
    if (c->out && s->mem_in + s->mem_out + len > s->cfg.max_memory) {
        cull(c, "too far behind: the server's memory for clients is used up");
        return HERALD_ELIMIT;
    }
    hd_frame *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f) return HERALD_ENOMEM;
    f->next = NULL;
    f->len = len;
    memcpy(f->data + LWS_PRE, text, len);
    if (c->out_tail) {
        c->out_tail->next = f;
    } else {
        c->out = f;
        c->last_progress = hd__now(); /* the clock of a laggard starts now */
        hd__conn_watch(c);
    }
    c->out_tail = f;
    c->out_bytes += len;
    s->mem_out += len;
    if (c->sync) hd__sync_sent(c, hd__now());
    if (c->wsi) lws_callback_on_writable(c->wsi);
    return 0;
}

void hd__conn_close(hd_conn *c, const char *reason)
{
    if (c->closing || c->dead) return;
    c->closing = true;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    if (c->wsi) lws_callback_on_writable(c->wsi);
}

/*
 * A client that stays behind: its queue is dropped now (that is the memory
 * we must not keep), the close frame with the reason goes out when its
 * socket drains, and if it never reads again lws kills it after a while.
 */
static void cull(hd_conn *c, const char *reason)
{
    if (c->closing || c->dead) return;
    c->srv->metrics.culled++;
    const hd_log_field f[] = {HD_LOG_INT("conn", c->serial), HD_LOG_STR("reason", reason)};
    hd__logf(HD_LOG_WARN, "cull", f, 2, "herald: closing connection");
    if (c->out_sent) {
        /* Half a message is on the wire: the close frame cannot follow it. */
        drop_queue(c);
        c->closing = true;
        if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    drop_queue(c);
    hd__conn_close(c, reason);
    if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 30);
}

/* ---- HTTP ---- */

/*
 * CORS for the origins --allow-origin lets in: the answer names the page's
 * origin, so that its scripts may read it (an upload's storageId, an API
 * result); other origins get no such header and their scripts see nothing.
 */
static void cors_origin(hd_server *s, struct lws *wsi, char *out, size_t n)
{
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    out[0] = 0;
    if (len <= 0 || (size_t)len >= n || !hd__origin_allowed(s, wsi) ||
        lws_hdr_copy(wsi, out, (int)n, WSI_TOKEN_ORIGIN) < 0)
        out[0] = 0;
}

static int cors_headers(struct lws *wsi, const char *origin, unsigned char **pos,
                        unsigned char *end)
{
    static const char vary[] = "origin";
    if (!origin[0]) return 0;
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                       (const unsigned char *)origin, (int)strlen(origin), pos,
                                       end) ||
           lws_add_http_header_by_name(wsi,
                                       (const unsigned char *)"vary:", (const unsigned char *)vary,
                                       sizeof vary - 1, pos, end);
}

/* Adds headers written as "name: value\r\n" lines; false when they do not fit. */
static bool add_headers(struct lws *wsi, const char *lines, unsigned char **pos, unsigned char *end)
{
    for (const char *line = lines, *next; *line; line = next) {
        const char *eol = strstr(line, "\r\n"), *colon = strchr(line, ':');
        if (!eol || !colon || colon > eol) break;
        next = eol + 2;
        char name[128];
        if (colon + 1 - line >= (long)sizeof name) continue;
        snprintf(name, sizeof name, "%.*s", (int)(colon + 1 - line), line);
        const char *value = colon + 2;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                        (const unsigned char *)value, (int)(eol - value), pos, end))
            return false;
    }
    return true;
}

/*
 * Writes an HTTP answer: the headers and the first fragment of the body in
 * one write (one system call for an answer that fits), then a fragment per
 * writable callback, as WebSocket frames go, so that lws holds little and
 * a client that stops reading is seen stopping.
 */
static int http_write(struct lws *wsi, pss *p, hd_conn *c)
{
    /* Room for the headers: the common ones and up to 16 KiB of a route's own (routes.c). */
    static unsigned char buf[LWS_PRE + 20 * 1024 + FRAGMENT];
    unsigned char *start = buf + LWS_PRE, *pos = start, *end = buf + sizeof buf;
    size_t left = c->http_reply_len - c->out_sent, chunk = left > FRAGMENT ? FRAGMENT : left;
    int n;
    if (p->http_phase == 0) {
        static const char nosniff[] = "nosniff", close[] = "close";
        if (lws_add_http_common_headers(wsi, (unsigned)c->http_status,
                                        c->reply_headers ? c->file_type : "application/json",
                                        c->http_reply_len, &pos, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                        (const unsigned char *)nosniff, sizeof nosniff - 1, &pos,
                                        end) ||
            (c->reply_headers && !add_headers(wsi, c->reply_headers, &pos, end)) ||
            (c->http_close &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)close,
                                          sizeof close - 1, &pos, end)) ||
            cors_headers(wsi, c->cors_origin, &pos, end) ||
            lws_finalize_http_header(wsi, &pos, end) || (size_t)(end - pos) < chunk)
            return -1;
        memcpy(pos, c->http_reply, chunk);
        pos += chunk;
        /* HTTP/1.1 only: lws counts no body bytes sent along with the headers. */
        n = lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP_HEADERS);
        p->http_phase = 1;
    } else {
        memcpy(start, c->http_reply + c->out_sent, chunk);
        n = lws_write(wsi, start, chunk, chunk == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    }
    c->last_progress = hd__now();
    if (n >= 0 && chunk < left) {
        c->out_sent += chunk;
        lws_callback_on_writable(wsi);
        return 0;
    }
    hd__access_http(c->srv, c, wsi, c->http_status, c->http_reply_len);
    drop_reply(c);
    p->http_phase = 0;
    bool close = c->http_close;
    /* One record per request: a keep-alive connection starts the next one afresh. */
    hd__conn_gone(c->srv, c);
    p->conn = NULL;
    return n < 0 || close || lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*
 * Sends a stored file (storage.c set c->file_*): the headers with the first
 * fragment, then a fragment per writable callback, read with pread() so
 * that a file of any size costs one fragment of memory.
 */
static int http_file_write(struct lws *wsi, pss *p, hd_conn *c)
{
    static unsigned char buf[LWS_PRE + 2048 + FRAGMENT];
    unsigned char *start = buf + LWS_PRE, *pos = start, *end = buf + sizeof buf;
    size_t chunk = c->file_left > FRAGMENT ? FRAGMENT : (size_t)c->file_left;
    int n;
    if (p->http_phase == 0) {
        static const char nosniff[] = "nosniff";
        bool ok = !lws_add_http_common_headers(wsi, (unsigned)c->http_status, c->file_type,
                                               c->file_left, &pos, end) &&
                  !lws_add_http_header_by_name(
                      wsi, (const unsigned char *)"x-content-type-options:",
                      (const unsigned char *)nosniff, sizeof nosniff - 1, &pos, end);
        /* storage.c's own headers. */
        if (!ok || !add_headers(wsi, c->file_headers, &pos, end) ||
            cors_headers(wsi, c->cors_origin, &pos, end) ||
            lws_finalize_http_header(wsi, &pos, end))
            return -1;
        n = lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP_HEADERS);
        p->http_phase = 1;
        /* The body's length, for the access log (a file's answer has no http_reply). */
        c->http_reply_len = c->file_left;
        if (n < 0) return -1;
        if (c->file_left) {
            c->last_progress = hd__now();
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else {
        ssize_t got = pread(c->file_fd, start, chunk, (off_t)c->file_off);
        if (got <= 0) return -1; /* the file shrank under us: end the connection */
        c->file_off += (uint64_t)got;
        c->file_left -= (uint64_t)got;
        n = lws_write(wsi, start, (size_t)got,
                      c->file_left ? LWS_WRITE_HTTP : LWS_WRITE_HTTP_FINAL);
        c->last_progress = hd__now();
        if (n < 0) return -1;
        if (c->file_left) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    close(c->file_fd);
    c->file_fd = -1;
    p->http_phase = 0;
    hd__access_http(c->srv, c, wsi, c->http_status, c->http_reply_len);
    hd__conn_gone(c->srv, c);
    p->conn = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*
 * Handles a request whose body arrived (http_ready), from the connection's
 * first writable callback: by then lws has shown whether more bytes follow
 * the body in its buffer (http_close), and a request lws read from its own
 * buffer after another one never gets here (see LWS_CALLBACK_HTTP_BODY_COMPLETION).
 */
static int http_handle(struct lws *wsi, hd_server *s, hd_conn *c)
{
    c->http_ready = false;
    c->http_busy = true;
    if (c->upload) {
        hd__storage_upload_done(s, c);
        if (c->http_waiting) lws_rx_flow_control(wsi, 0);
        return 0;
    }
    /* Room for a JWT of any size lws accepted: the header is never cut short. */
    int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    char *auth = calloc(1, (size_t)(alen > 0 ? alen : 0) + 1);
    if (!auth) return -1;
    if (alen > 0 && lws_hdr_copy(wsi, auth, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        auth[0] = 0;
    if (c->http_route)
        hd__route_request(s, c, wsi);
    else
        hd__http_request(s, c, c->http_path, auth, (char *)c->in.p, c->in.len);
    OPENSSL_cleanse(auth, (size_t)(alen > 0 ? alen : 0) + 1);
    free(auth);
    drop_input(c);
    /* Input pauses while the request is at the writer (proto.c's answer resumes it). */
    if (c->http_waiting) lws_rx_flow_control(wsi, 0);
    return 0;
}

/* ---- the writer's wake-up and the stop signal ---- */

static void wake_loop(void *ctx)
{
    hd_server *s = ctx;
    if (s->lws) lws_cancel_service(s->lws);
}

/* Evaluations the evaluator threads finished: answered, or published (sub.c). */
static void drain_evaluations(hd_server *s)
{
    for (hd_job *j = hd__eval_take_done(s->eval), *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (j->qinst_id) {
            if (hd__sub_evaluated(s, j)) continue;
        } else {
            hd__proto_query_done(s, j);
        }
        hd__eval_job_free(j);
    }
}

static lws_sorted_usec_list_t drain_retry_sul;
static void drain_retry(lws_sorted_usec_list_t *sul);

static void take_batches(hd_server *s, bool wait)
{
    hd_wbatch *b;
    herald_txn *snapshot;
    herald_error err;
    int rc = wait ? hd__writer_take_consistent_wait(s->writer, &b, &snapshot, &err)
                  : hd__writer_take_consistent(s->writer, &b, &snapshot, &err);
    if (rc == HERALD_EBUSY && s->lws) {
        /* The writer is committing its next group. Its next wake-up may again find it
         * mid-commit (a writer that never pauses kept the loop from its batches for up
         * to 30 ms): in 200 µs the loop takes them, waiting for that one commit if need be. */
        lws_sul_schedule(s->lws, 0, &drain_retry_sul, drain_retry, 200);
        return;
    }
    if (rc) return;
    if (b || s->rerun_functions) hd__sub_commit(s, b, snapshot);
    hd__storage_committed(s, b);
    if (s->sched_poke) {
        s->sched_poke = false;
        hd__sched_tick(s);
    }
    uint64_t version = herald_txn_version(snapshot);
    herald_txn_end(snapshot);
    hd__sub_keep_batches(s, b, version);
}

static void drain_batches(hd_server *s)
{
    take_batches(s, false);
}

static void drain_retry(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    if (the_server && the_server->writer) take_batches(the_server, true);
}

/*
 * Loads the app's functions and providers into the server: the loop's
 * runtime is replaced, and the writer is handed the same bundle, only
 * once everything loaded; then every function subscription runs again.
 */
static int admin_hash_read(hd_server *s, herald_error *err);

/* The admin key changed: connections signed in with the old one lose its rights. */
static void admin_key_changed(hd_server *s)
{
    for (hd_conn *c = s->conns; c; c = c->next) {
        if (!c->admin || c->closing) continue;
        c->admin = false;
        hd__admin_untail(s, c);
        if (c->sync)
            hd__sync_auth_lost(c, "the admin key was changed: authenticate again");
        else
            hd__proto_error(c, NULL, HERALD_EACCESS,
                            "the admin key was changed: authenticate again");
        hd__sub_reauth(s, c);
    }
}

/*
 * A schema change a reload handed to the writer: the functions read with it
 * (installed once the writer has applied it), and who asked (a connection's
 * serial and request id; 0 for SIGHUP), answered then.
 */
struct hd_schema_reload {
    hd_fnbundle *bundle;
    uint64_t asker;
    char *id;
};

static void schema_reload_free(struct hd_schema_reload *r)
{
    if (!r) return;
    hd__fnbundle_unref(r->bundle);
    free(r->id);
    free(r);
}

/*
 * The app's schema file read again: *out gets it when it differs from the
 * store's, NULL when it is the same.
 */
static int read_app_schema(hd_server *s, herald_schema **out, herald_error *err)
{
    *out = NULL;
    if (!s->cfg.app_dir) return 0;
    herald_schema *next = NULL;
    int rc = hd__schema_load_app(s->cfg.app_dir, &next, err);
    if (rc) return rc;
    char *want = herald_schema_to_json(next);
    char *have = herald_schema_to_json(herald_store_schema(s->store));
    if (!want || !have) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    bool same = !rc && !strcmp(want, have);
    free(want);
    free(have);
    if (rc || same)
        herald_schema_free(next);
    else
        *out = next;
    return rc;
}

/*
 * Builds the loop's runtime from `b` against the store's schema, loads the
 * auth configuration and the admin key, and only when all of them loaded
 * installs them and hands `b` to the writer, the evaluators and the action
 * pool; then every subscription runs again.
 */
static int install_functions(hd_server *s, hd_fnbundle *b, herald_error *err)
{
    unsigned char old_hash[sizeof s->admin_hash];
    memcpy(old_hash, s->admin_hash, sizeof old_hash);
    hd_fnrt *rt = NULL;
    hd_auth *auth = NULL;
    int rc = hd__fnrt_new(b, herald_store_schema(s->store), &s->cfg.fn_limits, &rt, err);
    if (!rc) rc = hd__auth_load(s->cfg.app_dir ? s->cfg.app_dir : ".", &auth, err);
    /* A key made with `herald admin-key` takes over (at start the key is handled later). */
    if (!rc && s->have_admin) rc = admin_hash_read(s, err);
    if (rc) {
        hd__fnrt_free(rt);
        hd__auth_free(auth);
        return rc;
    }
    hd__fnrt_free(s->fnrt);
    s->fnrt = rt;
    hd__auth_free(s->auth);
    s->auth = auth;
    if (s->writer) hd__writer_set_functions(s->writer, b, &s->cfg.fn_limits);
    if (s->eval) hd__eval_set_functions(s->eval, b, &s->cfg.fn_limits);
    if (s->actions) hd__actions_set_functions(s->actions, b, &s->cfg.fn_limits);
    s->rerun_functions = true;
    s->fn_generation++;
    if (s->have_admin && memcmp(old_hash, s->admin_hash, sizeof old_hash)) admin_key_changed(s);
    if (s->lws) lws_cancel_service(s->lws);
    const hd_log_field f[] = {HD_LOG_INT("functions", hd__fnrt_count(rt)),
                              HD_LOG_INT("auth_providers", hd__auth_provider_count(auth))};
    hd__logf(HD_LOG_INFO, "functions_loaded", f, 2,
             "herald: %zu functions loaded, %zu auth providers", hd__fnrt_count(rt),
             hd__auth_provider_count(auth));
    return 0;
}

int hd__server_reload(hd_server *s, hd_conn *asker, const char *id, herald_error *err)
{
    if (s->schema_reload)
        return herald_fail(err, HERALD_EBUSY, "a schema change is being applied: reload after it");
    hd_fnbundle *b = NULL;
    herald_schema *next = NULL;
    int rc = hd__fnbundle_read(s->cfg.app_dir, &b, err);
    if (!rc) rc = read_app_schema(s, &next, err);
    if (!rc && next && s->writer) {
        /* The writer applies it between two groups while the loop serves on; the
         * functions follow in schema_reload_done(), checked against it. */
        struct hd_schema_reload *pending = calloc(1, sizeof *pending);
        if (!pending || (id && !(pending->id = strdup(id)))) {
            free(pending);
            herald_schema_free(next);
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        } else if ((rc = hd__writer_change_schema(s->writer, next, err))) {
            schema_reload_free(pending);
        } else {
            pending->bundle = b;
            pending->asker = asker ? asker->serial : 0;
            s->schema_reload = pending;
            return HD_RELOAD_PENDING;
        }
    } else if (!rc && next) {
        /* No writer yet (the server starts): the store applies it here. */
        rc = herald_store_set_schema(s->store, next, err);
    }
    if (!rc) rc = install_functions(s, b, err);
    hd__fnbundle_unref(b);
    return rc;
}

/*
 * The writer's answer to a schema change a reload handed over: applied (the
 * functions read with it are installed, checked against it) or refused (the
 * running schema and functions stay). Logged, and answered to the admin who
 * sent `reload` if still connected.
 */
static void schema_reload_done(hd_server *s)
{
    struct hd_schema_reload *pending = s->schema_reload;
    herald_error err = {0};
    double seconds = 0;
    int rc;
    if (!pending || !hd__writer_schema_done(s->writer, &rc, &seconds, &err)) return;
    s->schema_reload = NULL;
    if (!rc) {
        hd__log(HD_LOG_INFO, "schema_applied",
                "herald: schema applied: %zu tables (writes waited %.3f s)",
                herald_store_schema(s->store)->ntables, seconds);
        if ((rc = install_functions(s, pending->bundle, &err))) {
            /* The store runs the new schema already: subscriptions follow it. */
            herald_error why = err;
            herald_fail(&err, why.code, "the schema was applied, but the functions stay: %s",
                        why.message);
            s->rerun_functions = true;
            if (s->lws) lws_cancel_service(s->lws);
        }
    }
    if (rc)
        hd__log(HD_LOG_WARN, "reload_refused",
                "herald: reload refused, the previous schema and functions stay: %s", err.message);
    hd_conn *c = s->conns;
    while (pending->asker && c && c->serial != pending->asker)
        c = c->next;
    if (pending->asker && c && !c->dead && c->websocket) {
        if (rc)
            hd__proto_error(c, pending->id, rc, err.message);
        else
            hd__proto_reload_ack(c, pending->id, true);
    }
    schema_reload_free(pending);
}

/* SIGHUP with TLS: the certificate and key files again; a broken pair leaves the current one. */
static void reload_tls(hd_server *s)
{
    herald_error err = {0};
    char about[600];
    if (hd__tls_reload(s->tls, &err)) {
        hd__log(HD_LOG_WARN, "tls_reload_refused",
                "herald: TLS reload refused, the previous certificate stays: %s", err.message);
        return;
    }
    hd__tls_describe(s->tls, about, sizeof about);
    hd__log(HD_LOG_INFO, "tls_reloaded", "herald: TLS certificate reloaded: %s", about);
    fflush(stdout);
}

/* SIGHUP: reload; a broken file is reported and the previous version stays. */
static void reload_on_signal(hd_server *s)
{
    schema_reload_done(s);
    /* A SIGHUP during a schema change waits for it. */
    if (!s->reload || s->schema_reload) return;
    s->reload = 0;
    herald_error err = {0};
    if (hd__server_reload(s, NULL, NULL, &err) < 0)
        hd__log(HD_LOG_WARN, "reload_refused",
                "herald: reload refused, the previous schema and functions stay: %s", err.message);
    if (s->tls) reload_tls(s);
}

/*
 * Answers an HTTP request at once with an error and closes the connection
 * after the answer: the request's body, if any, is never read.
 */
static void http_refuse(hd_conn *c, int status, int code, const char *message)
{
    c->http_close = true;
    c->http_busy = true;
    hd__http_error(c, code, message);
    c->http_status = status;
}

/*
 * Laggards are decided by time without progress, never by the size of one
 * frame: a connection with something queued whose socket took nothing for
 * --max-behind seconds, and a message or request whose bytes did not all
 * arrive within --request-timeout. Only the connections with something
 * pending are looked at; one with nothing pending leaves the list.
 */
static void check_laggards(hd_server *s, double now)
{
    for (hd_conn *c = HD_CONTAINER(s->watch.head, hd_conn, watch_link), *next; c; c = next) {
        next = HD_CONTAINER(c->watch_link.next, hd_conn, watch_link);
        if (c->out && now - c->last_progress > s->cfg.max_behind_seconds)
            cull(c, "too far behind: not reading its messages");
        if (!c->websocket && (c->http_reply || c->file_fd >= 0) && c->wsi && !c->closing &&
            now - c->last_progress > s->cfg.max_behind_seconds) {
            /* An HTTP client that stopped reading its answer: the connection ends. */
            c->closing = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        if (c->in_started && now - c->in_started > s->cfg.request_seconds && !c->closing) {
            c->in_started = 0;
            if (c->websocket) {
                cull(c, "a message did not arrive in time");
            } else if (!c->http_busy) {
                http_refuse(c, 408, HERALD_ELIMIT, "the request did not arrive in time");
            }
        }
        if (!c->out && !c->http_reply && c->file_fd < 0 && !c->in_started) unwatch(c);
    }
}

/* Tokens that ran out, earliest first, from the heap of expiries. */
static void check_expiries(hd_server *s)
{
    double wall = (double)time(NULL);
    hd_deadline *d;
    while ((d = hd__deadline_due(&s->expiries, wall))) {
        hd_conn *c = (hd_conn *)((char *)d - offsetof(hd_conn, expiry));
        hd__deadline_set(&s->expiries, d, 0);
        c->identity_expires = 0;
        if (c->closing) continue;
        /* The token ran out: the connection goes on signed out until it sends a new one. */
        herald_value_free(&c->identity);
        if (c->sync)
            hd__sync_auth_lost(c, "the token expired: authenticate again");
        else
            hd__proto_error(c, NULL, HERALD_EACCESS, "the token expired: authenticate again");
        hd__sub_reauth(s, c);
    }
}

/*
 * Silent WebSockets, the longest silent first: pinged at half the idle
 * time, closed when still silent at the whole of it. Anything the client
 * sends, a pong included, puts it back at the end of the list.
 */
static void check_idle(hd_server *s, double now)
{
    double half = s->cfg.idle_seconds / 2;
    hd_conn *c;
    /* At most PINGS_PER_TICK a tick: clients that connected together fall silent
     * together, and 5,000 pings and pongs at once held the loop for tens of ms. */
    int pings = 0;
    while ((c = HD_CONTAINER(s->idle.head, hd_conn, idle_link)) && now - c->silent_since >= half &&
           pings < PINGS_PER_TICK) {
        if (c->pinged || c->closing || !c->wsi) {
            idle_unlink(c);
            if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        c->ping_due = true;
        lws_callback_on_writable(c->wsi);
        idle_touch(c, now, true);
        pings++;
    }
}

/*
 * Pausing and resuming the listener happen outside the callbacks that decide
 * them (lws is then in the middle of its accept loop or of a close), and
 * each change of state is logged once.
 */
static lws_sorted_usec_list_t listen_sul;
static bool listen_logged_pause;

static void listen_apply(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    hd_server *s = the_server;
    if (!s || !s->listener) return;
    lws_rx_flow_control(s->listener, s->accept_paused ? 0 : 1);
    if (s->accept_paused && !listen_logged_pause) {
        listen_logged_pause = true;
        hd__log(HD_LOG_WARN, "accept_paused",
                "herald: out of file descriptors (limit %zu, %zu connections): not accepting new "
                "connections until some close",
                s->fd_limit, hd__admit_count(s->admit));
    }
}

static void listen_switch(hd_server *s)
{
    if (!s->accept_paused && listen_logged_pause &&
        hd__admit_count(s->admit) + 3 * FD_RESERVE / 2 < s->fd_limit) {
        /* Well clear of the limit again: say so, and a later shortage is news. */
        listen_logged_pause = false;
        hd__log(HD_LOG_INFO, "accept_resumed", "herald: accepting connections again");
    }
    if (s->lws) lws_sul_schedule(s->lws, 0, &listen_sul, listen_apply, 1);
}

/*
 * lws's log lines, at most five a second: lws logs some bad requests (headers
 * that do not fit its header table) once each, and a client must not be able
 * to fill the server's log.
 */
static void lws_log(int level, const char *line)
{
    static double window;
    static int lines, dropped;
    double now = hd__now();
    if (now - window >= 1.0) {
        if (dropped)
            hd__log(HD_LOG_WARN, "libwebsockets",
                    "herald: %d more libwebsockets messages not shown", dropped);
        window = now;
        lines = dropped = 0;
    }
    if (++lines > 5) {
        dropped++;
        return;
    }
    hd__log(level & LLL_ERR ? HD_LOG_ERROR : HD_LOG_WARN, "libwebsockets", "libwebsockets: %s",
            line);
}

/* The API's error body for a fixed message (no characters that need escaping). */
static int error_json(char *out, size_t n, int code, const char *message)
{
    int len = snprintf(out, n, "{\"status\":\"error\",\"errorMessage\":\"%s\",\"code\":\"%s\"}",
                       message, herald_errcode_name(code));
    return len > 0 && (size_t)len < n ? len : -1;
}

/*
 * Tells a refused client why in a plain HTTP answer, then lws closes the socket
 * (on a TLS port, where the client waits for a handshake, it only closes).
 */
static void refuse_socket(hd_server *s, int fd, const char *status, int code, const char *reason)
{
    if (s->tls) return;
    char body[256], msg[512];
    int bl = error_json(body, sizeof body, code, reason);
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
                      "content-length: %d\r\nconnection: close\r\nretry-after: 5\r\n\r\n%s",
                      status, bl, body);
    if (bl > 0 && ml > 0 && (size_t)ml < sizeof msg) {
        ssize_t n = send(fd, msg, (size_t)ml, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n; /* best effort: the socket closes either way */
    }
}

/*
 * A client was accepted (lws_filter_network_conn_args `filt`): admit it,
 * or refuse it at once with the reason. Near the descriptor limit, accepting
 * pauses (the listener stops being polled, so accept() never spins on
 * EMFILE) until a connection closes.
 */
static int admit_socket(hd_server *s, struct lws *listener, void *filt_arg, int fd)
{
    const struct lws_filter_network_conn_args *filt = filt_arg;
    /* The listener that pauses when descriptors run short is the main one. */
    if (!hd__metrics_listener(s, listener)) s->listener = listener;
    if (s->fd_limit && fd >= 0 && (size_t)fd + FD_RESERVE >= s->fd_limit) {
        refuse_socket(s, fd, "503 Service Unavailable", HERALD_EBUSY,
                      "the server is out of file descriptors; try again later");
        s->refused++;
        if (!s->accept_paused) {
            s->accept_paused = true;
            listen_switch(s);
        }
        return 1;
    }
    const char *why =
        hd__admit_accept(s->admit, (const struct sockaddr *)&filt->cli_addr, filt->clilen);
    if (why) {
        refuse_socket(s, fd, "503 Service Unavailable", HERALD_EBUSY, why);
        s->refused++;
        return 1;
    }
    return 0;
}

/* Whether `origin` is one of the comma-separated origins in `list`. */
static bool origin_listed(const char *list, const char *origin, size_t olen)
{
    while (list && *list) {
        list += strspn(list, " ,");
        size_t n = strcspn(list, ",");
        size_t t = n;
        while (t && (list[t - 1] == ' ' || list[t - 1] == '/'))
            t--;
        if (t && t == olen && !strncasecmp(list, origin, olen)) return true;
        list += n;
    }
    return false;
}

bool hd__origin_allowed(hd_server *s, struct lws *wsi)
{
    char origin[512], host[300], own[320];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n <= 0) return true; /* not sent by a browser page: a worker, a script, a native app */
    if (s->cfg.allow_origins && !strcmp(s->cfg.allow_origins, "*")) return true;
    if (n >= (int)sizeof origin || lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) < 0)
        return false;
    size_t olen = strlen(origin);
    while (olen && origin[olen - 1] == '/')
        origin[--olen] = 0;
    /* The server's own pages: the origin names the host the request was sent to. */
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0) {
        snprintf(own, sizeof own, "%s://%s", lws_is_ssl(wsi) ? "https" : "http", host);
        if (!strcasecmp(own, origin)) return true;
    }
    return origin_listed(s->cfg.allow_origins, origin, olen);
}

/*
 * Answers a request at once, from inside its callback, with an error in the
 * API's shape; the caller then closes the connection (a body that may
 * follow is never read). For refusals before anything else was written.
 */
/* The access log's line for a request answered from inside its callback. */
static void access_now(hd_server *s, struct lws *wsi, int status, uint64_t bytes)
{
    pss *p = lws_wsi_user(wsi);
    hd__access_http(s, p ? p->conn : NULL, wsi, status, bytes);
}

static void answer_now(struct lws *wsi, int status, int code, const char *message)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *pos = start,
                                       *end = buf + sizeof buf;
    char body[400], origin[128];
    int bl = error_json(body, sizeof body, code, message);
    static const char nosniff[] = "nosniff", close[] = "close";
    if (the_server) cors_origin(the_server, wsi, origin, sizeof origin);
    if (bl < 0 ||
        lws_add_http_common_headers(wsi, (unsigned)status, "application/json", (lws_filepos_t)bl,
                                    &pos, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"x-content-type-options:", (const unsigned char *)nosniff,
            sizeof nosniff - 1, &pos, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)close,
                                     sizeof close - 1, &pos, end) ||
        (the_server && cors_headers(wsi, origin, &pos, end)) ||
        lws_finalize_http_header(wsi, &pos, end) || end - pos < bl)
        return;
    memcpy(pos, body, (size_t)bl);
    pos += bl;
    lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP_HEADERS);
    if (the_server) access_now(the_server, wsi, status, (uint64_t)bl);
}

/*
 * A browser's CORS preflight for the API: 204 with what an allowed origin may
 * send (POST and GET, JSON, a token, a file's type), 403 for another. The
 * connection closes after it (true).
 */
static bool preflight(hd_server *s, struct lws *wsi)
{
    char origin[128];
    cors_origin(s, wsi, origin, sizeof origin);
    if (!origin[0]) {
        answer_now(wsi, 403, HERALD_EACCESS,
                   "requests from this page's origin are not allowed (see --allow-origin)");
        return true;
    }
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *pos = start,
                                       *end = buf + sizeof buf;
    static const char methods[] = "GET, POST",
                      headers[] = "content-type, authorization, convex-client", age[] = "600",
                      close[] = "close";
    if (lws_add_http_common_headers(wsi, 204, "text/plain", 0, &pos, end) ||
        cors_headers(wsi, origin, &pos, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-methods:",
                                    (const unsigned char *)methods, sizeof methods - 1, &pos,
                                    end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-headers:",
                                    (const unsigned char *)headers, sizeof headers - 1, &pos,
                                    end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-max-age:",
                                    (const unsigned char *)age, sizeof age - 1, &pos, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)close,
                                     sizeof close - 1, &pos, end) ||
        lws_finalize_http_header(wsi, &pos, end))
        return true;
    lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP_HEADERS);
    access_now(s, wsi, 204, 0);
    return true;
}

/*
 * Checks a POST before its body is read, and refuses at once what cannot
 * be served: a browser page from another origin (403), a body without a
 * Content-Length (chunked or none: 411), a length that is not a number
 * (400), a body over the limit (413). True when it was refused.
 */
static bool post_refused(hd_server *s, struct lws *wsi, bool check_origin)
{
    char len_text[32] = "", m[160];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (check_origin && !hd__origin_allowed(s, wsi)) {
        answer_now(wsi, 403, HERALD_EACCESS,
                   "requests from this page's origin are not allowed (see --allow-origin)");
    } else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        answer_now(wsi, 411, HERALD_EINVAL,
                   "chunked request bodies are not accepted: send Content-Length");
    } else if (n <= 0) {
        answer_now(wsi, 411, HERALD_EINVAL, "a POST needs a Content-Length header");
    } else if (n >= (int)sizeof len_text ||
               lws_hdr_copy(wsi, len_text, sizeof len_text, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
               strspn(len_text, "0123456789") != strlen(len_text)) {
        answer_now(wsi, 400, HERALD_EINVAL, "Content-Length is not a number of bytes");
    } else if (strtoull(len_text, NULL, 10) > s->cfg.max_message) {
        snprintf(m, sizeof m, "the body is larger than %zu bytes", s->cfg.max_message);
        answer_now(wsi, 413, HERALD_ELIMIT, m);
    } else {
        return false;
    }
    return true;
}

/* The request's path, whatever its method ("" when it does not fit: no such endpoint). */
static void request_uri(struct lws *wsi, char *out, size_t n)
{
    static const enum lws_token_indexes methods[] = {
        WSI_TOKEN_POST_URI,  WSI_TOKEN_GET_URI,    WSI_TOKEN_HEAD_URI,   WSI_TOKEN_PUT_URI,
        WSI_TOKEN_PATCH_URI, WSI_TOKEN_DELETE_URI, WSI_TOKEN_OPTIONS_URI};
    out[0] = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        int len = lws_hdr_total_length(wsi, methods[i]);
        if (len <= 0) continue;
        if ((size_t)len >= n || lws_hdr_copy(wsi, out, (int)n, methods[i]) < 0) out[0] = 0;
        return;
    }
}

/* ---- the event loop: libev's epoll through lws's plugin, or lws's own poll() ---- */

/*
 * With libev (lws's `libwebsockets-evlib-ev` plugin) Herald owns the loop:
 * it is created here and handed to lws as a foreign loop, so that lws
 * installs no signal watchers of its own and the loop stops when Herald
 * says. Without the plugin (or without libev at build time) lws's default
 * poll() loop serves, the same but for its cost per socket.
 */
static int loop_create(hd_server *s, struct lws_context_creation_info *info)
{
#ifdef HERALD_HAVE_LIBEV
    /* HERALD_LOOP=poll: lws's own loop, for comparison and diagnosis. */
    const char *want = getenv("HERALD_LOOP");
    struct ev_loop *loop =
        want && !strcmp(want, "poll") ? NULL : ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (loop) {
        void *foreign[1] = {loop};
        info->foreign_loops = foreign;
        info->options |= LWS_SERVER_OPTION_LIBEV;
        s->lws = lws_create_context(info);
        info->foreign_loops = NULL;
        info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        if (s->lws) {
            s->evloop = loop;
            return 0;
        }
        ev_loop_destroy(loop);
    }
#endif
    s->lws = lws_create_context(info);
    if (!s->lws) return -1;
#ifdef HERALD_HAVE_LIBEV
    if (!want || strcmp(want, "poll"))
        hd__log(HD_LOG_WARN, "no_libev",
                "herald: libwebsockets' libev plugin (libwebsockets-evlib-ev) is missing: "
                "serving with poll(), which costs more per connection");
#endif
    return 0;
}

/* Runs the loop until loop_break(). */
static void loop_run(hd_server *s)
{
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) {
        ev_run(s->evloop, 0);
        return;
    }
#endif
    while (!s->stop && lws_service(s->lws, 0) >= 0) {
    }
}

/* One pass of the loop: what is ready, or the next timer (the tick bounds the wait). */
static void loop_once(hd_server *s)
{
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) {
        ev_run(s->evloop, EVRUN_ONCE);
        return;
    }
#endif
    lws_service(s->lws, 0);
}

/* Makes loop_run() return (the poll() loop sees s->stop itself). */
static void loop_break(hd_server *s)
{
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) ev_break(s->evloop, EVBREAK_ALL);
#else
    (void)s;
#endif
}

static void loop_destroy(hd_server *s)
{
    if (s->lws) lws_context_destroy(s->lws);
    s->lws = NULL;
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) ev_loop_destroy(s->evloop);
    s->evloop = NULL;
#endif
}

/* A tick every 250 ms: culls laggards, and bounds every wait while stopping. */
static lws_sorted_usec_list_t tick_sul;

static void tick(lws_sorted_usec_list_t *sul)
{
    hd_server *s = the_server;
    if (!s || !s->lws) return;
    reload_on_signal(s);
    /* Batches a busy moment left behind (no snapshot could be had then). */
    if (s->writer) drain_batches(s);
    if (s->eval) drain_evaluations(s);
    hd__actions_drain(s);
    double now = hd__now();
    check_laggards(s, now);
    check_expiries(s);
    check_idle(s, now);
    hd__sync_pings(s, now);
    hd__sched_tick(s);
    lws_sul_schedule(s->lws, 0, sul, tick, 250 * LWS_US_PER_MS);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    hd_server *s = the_server;
    /* The connection-level notices come before any session data exists. */
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return s ? admit_socket(s, wsi, user, (int)(intptr_t)in) : 0;
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: {
        /* lws made the TLS port's context (user): Herald's versions, ciphers and pair. */
        herald_error err = {0};
        if (!s || !s->tls || !hd__tls_setup(s->tls, user, &err)) return 0;
        hd__log(HD_LOG_ERROR, "tls_setup", "herald: %s", err.message);
        return -1;
    }
    case LWS_CALLBACK_WSI_CREATE:
        if (s && s->admit) hd__admit_bind(s->admit, wsi);
        return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: {
        /* A fixed kernel send buffer for every client (WebSocket or HTTP): without it
         * loopback autotuning lets a client that never reads park megabytes per socket
         * in the kernel, and the server would never notice it falling behind. */
        int sndbuf = s ? (int)s->cfg.max_outbound : 0;
        lws_sockfd_type fd = lws_get_socket_fd(wsi);
        if (fd >= 0 && sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        return 0;
    }
    case LWS_CALLBACK_WSI_DESTROY:
        if (s && s->admit && hd__admit_release(s->admit, wsi) &&
            (s->accept_paused || listen_logged_pause)) {
            /* A descriptor came free: take the next client (paused again if still short). */
            s->accept_paused = false;
            listen_switch(s);
        }
        return 0;
    default:
        break;
    }
    pss *p = user;
    hd_conn *c = p ? p->conn : NULL;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && s->stop) loop_break(s);
        if (s) reload_on_signal(s);
        if (s && s->writer) drain_batches(s);
        if (s && s->eval) drain_evaluations(s);
        if (s) hd__actions_drain(s);
        return 0;

    case LWS_CALLBACK_ESTABLISHED: {
        char uri[64];
        request_uri(wsi, uri, sizeof uri);
        p->conn = hd__conn_new(s, wsi, true);
        if (p->conn) {
            snprintf(p->conn->http_path, sizeof p->conn->http_path, "%s", uri);
            hd__access_ws_open(s, p->conn, wsi);
        }
        if (p->conn && hd__sync_path(uri) && hd__sync_attach(p->conn)) return -1;
        return p->conn ? 0 : -1;
    }

    case LWS_CALLBACK_RECEIVE: {
        if (!c || c->closing) return 0;
        double now = hd__now();
        idle_touch(c, now, false);
        if (!c->in_started) c->in_started = now;
        if (lws_frame_is_binary(wsi) && !c->in_refused) c->in_refused = HERALD_EINVAL;
        if (c->in_refused) {
            /* Skipping the rest of a refused message. */
        } else if (c->in.len + len > s->cfg.max_message) {
            c->in_refused = HERALD_ELIMIT;
        } else if (s->mem_in + s->mem_out + len > s->cfg.max_memory) {
            c->in_refused = HERALD_EBUSY;
        } else {
            append_input(c, in, len);
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) {
            hd__conn_watch(c); /* the rest must come within --request-timeout */
            return 0;
        }
        char m[120];
        if (c->in_refused == HERALD_EINVAL) {
            hd__proto_error(c, NULL, HERALD_EINVAL,
                            "binary frames are not supported; send JSON text");
        } else if (c->in_refused == HERALD_ELIMIT) {
            snprintf(m, sizeof m, "message larger than %zu bytes", s->cfg.max_message);
            hd__proto_error(c, NULL, HERALD_ELIMIT, m);
        } else if (c->in_refused) {
            hd__proto_error(c, NULL, HERALD_EBUSY,
                            "the server's memory for clients is used up: message not handled");
        } else if (c->in.failed) {
            hd__proto_error(c, NULL, HERALD_ENOMEM, "out of memory");
        } else {
            (c->sync ? hd__sync_message : hd__proto_message)(s, c, (char *)c->in.p, c->in.len);
        }
        c->in_refused = 0;
        c->in_started = 0;
        if (!c->out) unwatch(c);
        c->in.len = 0;
        c->in.failed = false;
        /* One large message must not pin its buffer for the life of the connection. */
        if (c->in.cap > KEEP_INPUT) drop_input(c);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c) idle_touch(c, hd__now(), false);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!c) return 0;
        /* Writable again: lws has passed everything written before to the kernel. */
        c->last_progress = hd__now();
        if (c->ping_due && !c->out_sent && !c->closing) {
            /* With a payload: lws 4.1 reports no empty pong. */
            unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 'h', 'd', 'p', 'g'};
            c->ping_due = false;
            if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0) return -1;
        }
        /* Queued frames go out while the socket takes them (a large frame in fragments). */
        bool sent = c->out != NULL;
        hd_frame *f;
        while ((f = c->out)) {
            size_t left = f->len - c->out_sent, chunk = left > FRAGMENT ? FRAGMENT : left;
            /* The bytes before the fragment were sent already: lws may use them as headroom. */
            int n = lws_write(wsi, f->data + LWS_PRE + c->out_sent, chunk,
                              (enum lws_write_protocol)lws_write_ws_flags(
                                  LWS_WRITE_TEXT, c->out_sent == 0, chunk == left));
            if (n < 0) return -1;
            s->metrics.bytes_pushed += chunk;
            if (chunk < left) {
                c->out_sent += chunk;
            } else {
                c->out = f->next;
                if (!c->out) c->out_tail = NULL;
                c->out_bytes -= f->len;
                s->mem_out -= f->len;
                c->out_sent = 0;
                free(f);
            }
            if (c->out && lws_send_pipe_choked(wsi)) break;
        }
        if (c->out) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        /* Nothing queued: off the tick's list at once (the list stays as short as what
         * is pending right now, not everyone who had something in the last 250 ms). */
        if (!c->in_started) unwatch(c);
        if (sent) {
            hd__sub_catch_up(s, c);
            if (c->out) return 0;
        }
        if (c->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                             (unsigned char *)c->close_reason, strlen(c->close_reason));
            return -1;
        }
        return 0;
    }

    case LWS_CALLBACK_CLOSED:
        if (c) hd__access_ws_close(s, c, wsi);
        if (c) hd__conn_gone(s, c);
        if (p) p->conn = NULL;
        return 0;

    case LWS_CALLBACK_HTTP: {
        if (!c) c = p->conn = hd__conn_new(s, wsi, false);
        if (!c) return -1;
        (void)in; /* relative to a mount: the whole path is read from the request line */
        char uri[160] = "";
        request_uri(wsi, uri, sizeof uri);
        snprintf(c->http_path, sizeof c->http_path, "%s", uri);
        cors_origin(s, wsi, c->cors_origin, sizeof c->cors_origin);
        bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
        /* /metrics, /healthz, /version (metrics.c); all of the metrics listener's requests. */
        if (hd__metrics_request(s, c, wsi, uri, get)) return 0;
        if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0 && !strncmp(uri, "/api/", 5))
            return preflight(s, wsi) ? -1 : 0;
        if (hd__route_path(uri)) {
            /* An HTTP route of the app's (routes.c): any method, the body if one comes. */
            bool body;
            char msg[200];
            int status = hd__route_begin(s, c, wsi, uri, &body, msg, sizeof msg);
            if (status) {
                answer_now(wsi, status, status == 404 ? HERALD_ENOTFOUND : HERALD_EINVAL, msg);
                return -1;
            }
            c->in.len = 0;
            if (body) {
                c->in_started = hd__now();
                hd__conn_watch(c);
                return post_refused(s, wsi, false) ? -1 : 0;
            }
            c->http_ready = true;
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) {
            c->in.len = 0;
            c->in_started = hd__now();
            hd__conn_watch(c);
            if (!strncmp(uri, "/api/storage/upload/", 20)) {
                /* A file: streamed to disk as it arrives (storage.c). */
                char msg[200];
                int status = hd__origin_allowed(s, wsi)
                                 ? hd__storage_upload_begin(s, c, wsi, uri + 20, msg, sizeof msg)
                                 : (snprintf(msg, sizeof msg,
                                             "requests from this page's origin are not allowed "
                                             "(see --allow-origin)"),
                                    403);
                if (!status) return 0;
                answer_now(wsi, status,
                           status == 404                    ? HERALD_ENOTFOUND
                           : status == 403                  ? HERALD_EACCESS
                           : status == 413 || status == 507 ? HERALD_ELIMIT
                           : status == 503                  ? HERALD_EBUSY
                                                            : HERALD_EINVAL,
                           msg);
                return -1;
            }
            return post_refused(s, wsi, true) ? -1 : 0; /* the body follows */
        }
        if (get && !strncmp(uri, "/api/storage/", 13)) {
            hd__storage_serve(s, c, wsi, uri + 13);
            return 0;
        }
        /* Not a POST: the API takes only POSTs; anything else is a page or nothing. */
        if (!strncmp(uri, "/api/", 5) || !strcmp(uri, "/api")) {
            hd__http_error(c, HERALD_EINVAL, "the API takes POST requests");
            c->http_status = 405;
        } else if (s->cfg.static_dir || hd__files_embedded(uri)) {
            /* A static or embedded file needs no request record. It goes first: completing the
             * transaction, as files.c may, makes lws replace this session's data. */
            hd_access_seen seen;
            hd_files_answer answer;
            hd__access_seen(wsi, &seen);
            hd__conn_gone(s, c);
            p->conn = NULL;
            int rc = hd__files_serve(wsi, s->cfg.static_dir, &answer);
            hd__access_http_seen(s, &seen, 0, answer.status, answer.bytes);
            return rc;
        } else {
            hd__http_error(c, HERALD_ENOTFOUND, "no such page");
        }
        return 0;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* RFC 6455 close codes lws lets through (wsguard.c). */
        return hd__wsguard_peer_close(wsi, in, len);

    case LWS_CALLBACK_HTTP_BODY:
        if (!c) return -1;
        if (c->http_busy) return 0; /* refused: the rest is not read */
        if (c->upload) {
            char msg[200];
            int status = hd__storage_upload_body(c, in, len, msg, sizeof msg);
            /* A slow upload lives as long as bytes keep coming (--request-timeout between them). */
            c->in_started = hd__now();
            if (status) {
                hd__storage_upload_drop(s, c);
                http_refuse(c, status, status == 507 ? HERALD_ELIMIT : HERALD_EINVAL, msg);
            }
            return 0;
        }
        if (c->in.len + len > s->cfg.max_message) {
            /* More than its Content-Length said: cannot happen with lws; refuse anyway. */
            http_refuse(c, 413, HERALD_ELIMIT, "the body is larger than the limit");
            return 0;
        }
        append_input(c, in, len);
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!c) return -1;
        if (c->http_ready || c->http_busy) {
            /*
             * Bytes follow the body (a pipelined request, a stray CRLF): lws 4.1
             * signals completion again for them, once per loop pass or, for a
             * request it reads from its own buffer, over and over inside one
             * call. So this request is answered with `Connection: close` and the
             * connection ends there; a request lws took from its buffer is never
             * handled (it loops here until the cap closes the connection), so
             * nothing is done without its answer (docs/protocol.md). The client
             * sends the next request again on a new connection.
             */
            c->http_close = true;
            return ++c->http_repeats > 1000 ? -1 : 0;
        }
        c->http_ready = true;
        c->in_started = 0;
        lws_callback_on_writable(wsi);
        return 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c) return 0;
        if (c->file_fd >= 0 && !c->http_reply) return http_file_write(wsi, p, c);
        if (c->http_ready && http_handle(wsi, s, c)) return -1;
        if (!c->http_reply) return 0;
        return http_write(wsi, p, c);

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Two WebSocket endpoints: the native protocol at /ws, Convex's at /api/<v>/sync. */
        char uri[64];
        request_uri(wsi, uri, sizeof uri);
        if ((strcmp(uri, "/ws") && !hd__sync_path(uri)) || hd__metrics_listener(s, wsi)) {
            answer_now(wsi, 404, HERALD_ENOTFOUND,
                       "no WebSocket endpoint here: the native protocol is at /ws, Convex's "
                       "sync protocol at /api/<version>/sync");
            return -1;
        }
        /* A WebSocket from a browser page is the server's own, or allowed. */
        if (hd__origin_allowed(s, wsi)) return 0;
        answer_now(wsi, 403, HERALD_EACCESS,
                   "WebSocket connections from this page's origin are not allowed (see "
                   "--allow-origin)");
        return -1;
    }

    case LWS_CALLBACK_CLOSED_HTTP:
        /* lws may close a request it could not parse before any session data exists
         * (docs/protocol.md, "Limits": headers over 16 KiB). */
        if (c) hd__conn_gone(s, c);
        if (p) p->conn = NULL;
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* A 4 KiB receive buffer per connection: lws allocates it when a WebSocket opens and
 * the first message touches it, so its size is most of an idle connection's memory
 * (16 KiB: 7.2 KiB per connection, 4 KiB: 5.8, 1 KiB: 2.8; docs/performance.md); lws
 * also reads at most this much from a socket per pass, which a busy writer feels
 * below 4 KiB. Larger messages arrive in pieces and are reassembled. Writes are not
 * tied to it: without a tx_packet_size lws 4.1 passes at most rx_buffer_size bytes
 * per send to the kernel and buffers the rest itself (with 4 KiB, p50 at 2,000
 * updates/s went from 1.0 to 8 ms); FRAGMENT bounds what Herald writes at once. */
static const struct lws_protocols protocols[] = {
    {"herald", callback, sizeof(pss), 4096, 0, NULL, FRAGMENT},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    if (the_server) {
        if (sig == SIGHUP)
            the_server->reload = 1;
        else
            the_server->stop = 1;
        if (the_server->lws) lws_cancel_service(the_server->lws);
    }
}

/* Reads the stored hash of the admin key; HERALD_ENOTFOUND when there is none. */
static int admin_hash_read(hd_server *s, herald_error *err)
{
    int rc = hd__adminkey_hash_read(s->cfg.data_dir, s->admin_hash, err);
    if (!rc) s->have_admin = true;
    return rc;
}

/*
 * Loads the admin key's hash, or makes a key: the key goes to a file only
 * the folder's owner can read, and only that file's path is printed, so
 * that the key never lands in a terminal's scrollback or a service's log.
 */
static int admin_key(hd_server *s, herald_error *err)
{
    int rc = admin_hash_read(s, err);
    if (rc != HERALD_ENOTFOUND) return rc;
    char path[4200];
    rc = hd__adminkey_new(s->cfg.data_dir, path, sizeof path, s->admin_hash, err);
    if (rc) return rc;
    hd__log(HD_LOG_INFO, "admin_key_written", "admin key written to %s (mode 0600)", path);
    s->have_admin = true;
    return 0;
}

int hd__server_run(const hd_server_config *cfg)
{
    hd_server srv = {.cfg = *cfg, .started_at = hd__now()};
    hd_server *s = &srv;
    herald_error err = {0};
    int rc = 0;
    hd_log_format log_format = HD_LOG_TEXT;
    if (cfg->log_format && !hd__log_format_parse(cfg->log_format, &log_format)) {
        rc = herald_fail(&err, HERALD_EINVAL, "--log-format must be text or json");
        goto fail;
    }
    hd__log_set_format(log_format);
    if (!s->cfg.max_message) s->cfg.max_message = DEFAULT_MAX_MESSAGE;
    if (!s->cfg.max_outbound) s->cfg.max_outbound = DEFAULT_MAX_OUTBOUND;
    if (s->cfg.max_behind_seconds <= 0) s->cfg.max_behind_seconds = 30;
    if (!s->cfg.max_subs_per_conn) s->cfg.max_subs_per_conn = 1000;
    if (!s->cfg.max_queued) s->cfg.max_queued = DEFAULT_MAX_QUEUED;
    if (s->cfg.max_queued < s->cfg.max_outbound) s->cfg.max_queued = s->cfg.max_outbound;
    if (!s->cfg.max_memory) s->cfg.max_memory = DEFAULT_MAX_MEMORY;
    if (s->cfg.idle_seconds <= 0) s->cfg.idle_seconds = 60;
    if (s->cfg.request_seconds <= 0) s->cfg.request_seconds = 30;
    if (!s->cfg.max_per_address) s->cfg.max_per_address = DEFAULT_MAX_PER_ADDRESS;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
        s->fd_limit = (size_t)nofile.rlim_cur;
    if (!s->cfg.max_connections) {
        /* As many as the descriptors allow, keeping some for everything else. */
        s->cfg.max_connections = DEFAULT_MAX_CONNECTIONS;
        if (s->fd_limit && s->fd_limit < DEFAULT_MAX_CONNECTIONS + 2 * FD_RESERVE)
            s->cfg.max_connections =
                s->fd_limit > 3 * FD_RESERVE ? s->fd_limit - 2 * FD_RESERVE : FD_RESERVE;
    }
    if (hd__admit_new(s->cfg.max_connections, s->cfg.max_per_address, &s->admit)) {
        rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        goto fail;
    }
    /* A certificate that cannot serve is reported before anything starts. */
    if (s->cfg.tls_cert && (rc = hd__tls_new(s->cfg.tls_cert, s->cfg.tls_key, &s->tls, &err)))
        goto fail;
    /* A replica's data folder is filled from a snapshot before the store opens. */
    if (cfg->repl.urls &&
        (rc = hd__repl_open(&cfg->repl, cfg->data_dir, cfg->port, &s->repl, &err)))
        goto fail;
    herald_store_options so = {.no_sync = cfg->no_sync,
                               .owner = "herald serve",
                               .idem_retention = cfg->idempotency_retention};
    if ((rc = herald_store_open(cfg->data_dir, &so, &s->store, &err))) goto fail;
    if (!herald_store_schema(s->store)) {
        rc = herald_fail(&err, HERALD_ESCHEMA,
                         "the data folder has no schema: start with --app DIR");
        goto fail;
    }
    /* The loop has seen every commit made before it starts. */
    s->seen_version = herald_store_version(s->store);
    /* File storage first: the functions' runtimes take its key and URL. */
    if ((rc = hd__storage_start(s, &err))) goto fail;
    if ((rc = hd__server_reload(s, NULL, NULL, &err))) goto fail;
    if ((rc = admin_key(s, &err))) goto fail;
    if (hd__rsindex_new(&s->rsindex)) {
        rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        goto fail;
    }
    the_server = s;
    hd__metrics_start();
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_http_mount api = {
        .mountpoint = "/api",
        .origin = "herald",
        .origin_protocol = LWSMPRO_CALLBACK,
        .mountpoint_len = 4,
    };
    struct lws_context_creation_info info = {0};
    info.port = cfg->port;
    info.iface = cfg->host;
    /* No lws validity timers at all: lws 4.1 keeps them in one sorted list and inserts by
     * walking it from the front, so each new connection and each pong walked every
     * connection's timer (without a policy of its own a context still gets one, ping at
     * 300 s); with every field 0 lws sets none. Herald's list of silent WebSockets does
     * the pinging (check_idle). */
    static const lws_retry_bo_t no_validity_timers;
    info.retry_and_idle_policy = &no_validity_timers;
    /* lws's own waits (headers, a body that stops arriving) end a little after the request
     * timeout, so that Herald's own check answers 408 first. */
    info.timeout_secs = (unsigned)s->cfg.request_seconds + 5;
    info.protocols = protocols;
    /* Static files are not an lws mount: every path outside /api comes to the callback,
     * and files.c serves it with checks lws's file mount does not make. */
    info.mounts = &api;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    /* lws binds an IPv4 address only on an IPv4 socket (on IPv6 it listens everywhere). */
    struct in_addr v4;
    if (cfg->host && inet_pton(AF_INET, cfg->host, &v4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 32 * 1024;
    /* Request headers may carry a JWT of several kilobytes. */
    info.max_http_header_data = 16 * 1024;
    /* With TLS lws makes the port's SSL_CTX and Herald sets it up (the callback's
     * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS): HTTP and WebSocket both. */
    if (s->tls)
        info.options |=
            LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX;
    /* HTTP/1.1 alone, as without TLS: lws would offer HTTP/2 by ALPN, which Herald's
     * request and WebSocket handling are not written for. */
    info.alpn = "http/1.1";
    if (loop_create(s, &info)) {
        rc = herald_fail(&err, HERALD_EBUSY, "cannot listen on port %d (is it in use?)", cfg->port);
        goto fail;
    }
    if (s->tls && !hd__tls_ready(s->tls)) {
        rc = herald_fail(&err, HERALD_EINVAL, "libwebsockets did not set up TLS on port %d",
                         cfg->port);
        goto fail;
    }
    if (cfg->metrics_bind && (rc = hd__metrics_listen(s, protocols, &err))) goto fail;
    if ((rc = hd__writer_start(s->store, 1000, wake_loop, s, &s->writer, &err))) goto fail;
    hd__writer_set_functions(s->writer, hd__fnrt_bundle(s->fnrt), &s->cfg.fn_limits);
    s->rerun_functions = false;
    if (s->repl &&
        (rc = hd__repl_run(s->repl, s->store, s->writer, cfg->data_dir, wake_loop, s, &err)))
        goto fail;
    if (!s->cfg.evaluators) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.evaluators = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus;
    }
    if ((rc = hd__eval_start(s->store, s->cfg.evaluators, hd__fnrt_bundle(s->fnrt),
                             &s->cfg.fn_limits, wake_loop, s, &s->eval, &err)))
        goto fail;
    if ((rc = hd__actions_start(s->store, &s->cfg.actions, hd__fnrt_bundle(s->fnrt),
                                &s->cfg.fn_limits, wake_loop, s, &s->actions, &err)))
        goto fail;
    signal(SIGHUP, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (cfg->dev)
        hd__log(HD_LOG_WARN, "dev_mode",
                "\n  *** --dev: ANY client may read and write ANY data without a key ***\n");
    const char *shown = cfg->host && strcmp(cfg->host, "0.0.0.0") ? cfg->host : "localhost";
    if (s->tls) {
        char about[600];
        hd__tls_describe(s->tls, about, sizeof about);
        hd__log(HD_LOG_INFO, "tls_certificate", "herald: TLS certificate %s", about);
    }
    hd__log(HD_LOG_INFO, "listening", "herald listening on %s://%s:%d (WebSocket at %s://%s:%d/ws)",
            s->tls ? "https" : "http", shown, cfg->port, s->tls ? "wss" : "ws", shown, cfg->port);
    memset(&tick_sul, 0, sizeof tick_sul);
    memset(&listen_sul, 0, sizeof listen_sul);
    memset(&drain_retry_sul, 0, sizeof drain_retry_sul);
    listen_logged_pause = false;
    lws_sul_schedule(s->lws, 0, &tick_sul, tick, 250 * LWS_US_PER_MS);
    loop_run(s);
    /* Stop: replication first (a primary gives its lease up), then finish and fsync the
     * current group, answer it, close clients with a reason. */
    hd__repl_stop(s->repl);
    hd__writer_stop(s->writer);
    drain_batches(s);
    /* Evaluations still at work are dropped: their clients are told the server stops. */
    hd__eval_stop(s->eval);
    drain_evaluations(s);
    /* Actions still running end with an error (a scheduled one stays inProgress: the next
     * start marks it failed). */
    hd__actions_stop(s->actions);
    hd__actions_drain(s);
    for (hd_conn *c = s->conns; c; c = c->next)
        if (c->websocket) hd__conn_close(c, "server shutting down");
    double deadline = hd__now() + 2.0;
    while (s->conns && hd__now() < deadline)
        loop_once(s);
    loop_destroy(s);
    hd__log(HD_LOG_INFO, "stopped", "herald stopped at version %llu",
            (unsigned long long)herald_store_version(s->store));
    goto done;
fail:
    hd__log(HD_LOG_ERROR, "fatal", "herald: %s: %s", herald_errcode_name(rc), err.message);
done:
    loop_destroy(s);
    hd__tls_free(s->tls);
    s->tls = NULL;
    hd__actions_free(s->actions);
    s->actions = NULL;
    free(s->crons);
    s->crons = NULL;
    hd__eval_free(s->eval);
    s->eval = NULL;
    hd__repl_stop(s->repl);
    hd__writer_free(s->writer);
    hd__repl_free(s->repl);
    s->repl = NULL;
    schema_reload_free(s->schema_reload);
    s->schema_reload = NULL;
    hd__sub_free_all(s);
    hd__fnrt_free(s->fnrt);
    hd__auth_free(s->auth);
    hd__rsindex_free(s->rsindex);
    hd__admit_free(s->admit);
    hd__deadlines_free(&s->expiries);
    herald_store_close(s->store);
    hd__metrics_stop();
    the_server = NULL;
    return rc ? 1 : 0;
}
