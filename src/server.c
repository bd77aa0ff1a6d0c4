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
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "jwt.h"
#include "server.h"

#define DEFAULT_MAX_MESSAGE  ((size_t)1024 * 1024 + 65536)
#define DEFAULT_MAX_OUTBOUND ((size_t)64 * 1024)
#define HARD_OUTBOUND_FACTOR 8

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

static hd_conn *conn_new(hd_server *s, struct lws *wsi, bool websocket)
{
    hd_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = s;
    c->wsi = wsi;
    c->websocket = websocket;
    c->serial = ++s->next_serial;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    return c;
}

static void conn_free(hd_conn *c)
{
    for (hd_frame *f = c->out, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    hd__buf_free(&c->in);
    hd__buf_free(&c->changes);
    herald_value_free(&c->identity);
    free(c->http_reply);
    free(c);
}

void hd__conn_release(hd_conn *c)
{
    if (--c->pending_requests <= 0 && c->dead) conn_free(c);
}

/* The socket is gone: unlink, drop subscriptions, free unless requests are out. */
static void conn_gone(hd_server *s, hd_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    hd__sub_drop_conn(s, c);
    hd__admin_untail(s, c);
    c->wsi = NULL;
    c->dead = true;
    if (c->pending_requests <= 0) conn_free(c);
}

int hd__conn_send(hd_conn *c, const char *text, size_t len)
{
    if (c->dead || c->closing || !c->websocket) return 0;
    if (c->out_bytes > c->srv->cfg.max_outbound * HARD_OUTBOUND_FACTOR) {
        cull(c, "too far behind: not reading its messages");
        return HERALD_ELIMIT;
    }
    hd_frame *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f) return HERALD_ENOMEM;
    f->next = NULL;
    f->len = len;
    memcpy(f->data + LWS_PRE, text, len);
    if (c->out_tail)
        c->out_tail->next = f;
    else
        c->out = f;
    c->out_tail = f;
    c->out_bytes += len;
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
    for (hd_frame *f = c->out, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    c->out = c->out_tail = NULL;
    c->out_bytes = 0;
    fprintf(stderr, "herald: closing connection %llu: %s\n", (unsigned long long)c->serial, reason);
    hd__conn_close(c, reason);
    if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 30);
}

/* ---- HTTP ---- */

static int http_write(struct lws *wsi, pss *p, hd_conn *c)
{
    if (p->http_phase == 0) {
        unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *pos = start,
                                          *end = buf + sizeof buf;
        if (lws_add_http_common_headers(wsi, (unsigned)c->http_status, "application/json",
                                        c->http_reply_len, &pos, end) ||
            lws_finalize_http_header(wsi, &pos, end))
            return -1;
        if (lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP_HEADERS) < 0) return -1;
        p->http_phase = 1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    unsigned char *buf = malloc(LWS_PRE + c->http_reply_len + 1);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, c->http_reply, c->http_reply_len);
    int n = lws_write(wsi, buf + LWS_PRE, c->http_reply_len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    free(c->http_reply);
    c->http_reply = NULL;
    p->http_phase = 0;
    /* One record per request: a keep-alive connection starts the next one afresh. */
    conn_gone(c->srv, c);
    p->conn = NULL;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the writer's wake-up and the stop signal ---- */

static void wake_loop(void *ctx)
{
    hd_server *s = ctx;
    if (s->lws) lws_cancel_service(s->lws);
}

static void drain_batches(hd_server *s)
{
    hd_wbatch *b;
    herald_txn *snapshot;
    herald_error err;
    if (hd__writer_take_consistent(s->writer, &b, &snapshot, &err) != 0) return;
    if (b || s->rerun_functions) hd__sub_commit(s, b, snapshot);
    herald_txn_end(snapshot);
    hd__wbatch_free(b);
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
        hd__proto_error(c, NULL, HERALD_EACCESS, "the admin key was changed: authenticate again");
        hd__sub_reauth(s, c);
    }
}

int hd__server_reload(hd_server *s, herald_error *err)
{
    unsigned char old_hash[sizeof s->admin_hash];
    memcpy(old_hash, s->admin_hash, sizeof old_hash);
    hd_fnbundle *b = NULL;
    hd_fnrt *rt = NULL;
    hd_auth *auth = NULL;
    int rc = hd__fnbundle_read(s->cfg.app_dir, &b, err);
    if (!rc) rc = hd__fnrt_new(b, herald_store_schema(s->store), &s->cfg.fn_limits, &rt, err);
    if (!rc) rc = hd__auth_load(s->cfg.app_dir ? s->cfg.app_dir : ".", &auth, err);
    /* A key made with `herald admin-key` takes over (at start the key is handled later). */
    if (!rc && s->have_admin) rc = admin_hash_read(s, err);
    if (rc) {
        hd__fnrt_free(rt);
        hd__fnbundle_unref(b);
        return rc;
    }
    hd__fnrt_free(s->fnrt);
    s->fnrt = rt;
    hd__auth_free(s->auth);
    s->auth = auth;
    if (s->writer) hd__writer_set_functions(s->writer, b, &s->cfg.fn_limits);
    hd__fnbundle_unref(b);
    s->rerun_functions = true;
    if (s->have_admin && memcmp(old_hash, s->admin_hash, sizeof old_hash)) admin_key_changed(s);
    if (s->lws) lws_cancel_service(s->lws);
    printf("herald: %zu functions loaded, %zu auth providers\n", hd__fnrt_count(rt),
           hd__auth_provider_count(auth));
    fflush(stdout);
    return 0;
}

/* SIGHUP: reload; a broken file is reported and the previous version stays. */
static void reload_on_signal(hd_server *s)
{
    if (!s->reload) return;
    s->reload = 0;
    herald_error err = {0};
    if (hd__server_reload(s, &err))
        fprintf(stderr, "herald: reload refused, the previous functions stay: %s\n", err.message);
}

static void check_laggards(hd_server *s)
{
    double now = hd__now(), wall = (double)time(NULL);
    for (hd_conn *c = s->conns; c; c = c->next) {
        if (c->behind_since && now - c->behind_since > s->cfg.max_behind_seconds)
            cull(c, "too far behind: updates were waiting too long");
        if (c->identity_expires && wall > c->identity_expires && !c->closing) {
            /* The token ran out: the connection goes on signed out until it sends a new one. */
            herald_value_free(&c->identity);
            c->identity_expires = 0;
            hd__proto_error(c, NULL, HERALD_EACCESS, "the token expired: authenticate again");
            hd__sub_reauth(s, c);
        }
    }
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
    check_laggards(s);
    lws_sul_schedule(s->lws, 0, sul, tick, 250 * LWS_US_PER_MS);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    hd_server *s = the_server;
    pss *p = user;
    hd_conn *c = p ? p->conn : NULL;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s) reload_on_signal(s);
        if (s && s->writer) drain_batches(s);
        if (s) check_laggards(s);
        return 0;

    case LWS_CALLBACK_ESTABLISHED: {
        /* A fixed kernel send buffer: without it loopback autotuning lets a
         * client that never reads park megabytes per socket in the kernel,
         * and the server would never notice it falling behind. */
        int sndbuf = (int)s->cfg.max_outbound;
        lws_sockfd_type fd = lws_get_socket_fd(wsi);
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        p->conn = conn_new(s, wsi, true);
        return p->conn ? 0 : -1;
    }

    case LWS_CALLBACK_RECEIVE: {
        if (!c || c->closing) return 0;
        if (lws_frame_is_binary(wsi)) {
            hd__proto_error(c, NULL, HERALD_EINVAL,
                            "binary frames are not supported; send JSON text");
            c->in.len = 0;
            return 0;
        }
        if (c->in.len + len > s->cfg.max_message) {
            /* Skip the rest of this message, then report once. */
            c->in.len = SIZE_MAX / 2;
        } else {
            hd__buf_append(&c->in, in, len);
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
        if (c->in.len == SIZE_MAX / 2) {
            char m[120];
            snprintf(m, sizeof m, "message larger than %zu bytes", s->cfg.max_message);
            hd__proto_error(c, NULL, HERALD_ELIMIT, m);
        } else if (c->in.failed) {
            hd__proto_error(c, NULL, HERALD_ENOMEM, "out of memory");
        } else {
            hd__proto_message(s, c, (char *)c->in.p, c->in.len);
        }
        c->in.len = 0;
        c->in.failed = false;
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!c) return 0;
        hd_frame *f = c->out;
        if (f) {
            c->out = f->next;
            if (!c->out) c->out_tail = NULL;
            c->out_bytes -= f->len;
            int n = lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
            free(f);
            if (n < 0) return -1;
            if (c->out) {
                lws_callback_on_writable(wsi);
                return 0;
            }
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
        if (c) conn_gone(s, c);
        if (p) p->conn = NULL;
        return 0;

    case LWS_CALLBACK_HTTP: {
        if (!c) c = p->conn = conn_new(s, wsi, false);
        if (!c) return -1;
        const char *path = in;
        snprintf(c->http_path, sizeof c->http_path, "/api%s", path ? path : "");
        if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) {
            c->in.len = 0;
            return 0; /* the body follows */
        }
        /* Not a POST: the API takes only POSTs; anything else is a page that is not there. */
        char uri[64] = "";
        lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
        if (!strncmp(uri, "/api/", 5) || !strcmp(uri, "/api")) {
            hd__http_error(c, HERALD_EINVAL, "the API takes POST requests");
            c->http_status = 405;
        } else {
            hd__http_error(c, HERALD_ENOTFOUND, "no such page");
        }
        return 0;
    }

    case LWS_CALLBACK_HTTP_BODY:
        if (!c) return -1;
        if (c->in.len + len > s->cfg.max_message) return -1;
        hd__buf_append(&c->in, in, len);
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        if (!c) return -1;
        /* Room for a JWT of any size lws accepted: the header is never cut short. */
        int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
        char *auth = calloc(1, (size_t)(alen > 0 ? alen : 0) + 1);
        if (!auth) return -1;
        if (alen > 0 && lws_hdr_copy(wsi, auth, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            auth[0] = 0;
        hd__http_request(s, c, c->http_path, auth, (char *)c->in.p, c->in.len);
        OPENSSL_cleanse(auth, (size_t)(alen > 0 ? alen : 0) + 1);
        free(auth);
        c->in.len = 0;
        return 0;
    }

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->http_reply) return 0;
        return http_write(wsi, p, c);

    case LWS_CALLBACK_CLOSED_HTTP:
        /* lws may close a request it could not parse before any session data exists. */
        if (c) conn_gone(s, c);
        if (p) p->conn = NULL;
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* A 16 KiB receive buffer per connection: larger messages arrive in pieces and
 * are reassembled (memory per idle connection, docs/performance.md). */
static const struct lws_protocols protocols[] = {
    {"herald", callback, sizeof(pss), 16384, 0, NULL, 0},
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

int hd__admin_key_new(const char *data_dir, char *key, size_t size, unsigned char hash[32],
                      herald_error *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/admin-key.sha256", data_dir);
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return herald_fail(err, HERALD_ESTORE, "no randomness");
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "hk_");
    hd__base64_encode(&b, raw, sizeof raw, true);
    OPENSSL_cleanse(raw, sizeof raw);
    if (b.failed || b.len + 1 > size) {
        hd__buf_free(&b);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    memcpy(key, b.p, b.len);
    key[b.len] = 0;
    SHA256(b.p, b.len, hash);
    OPENSSL_cleanse(b.p, b.len);
    hd__buf_free(&b);
    /* Only the hash is kept: written to a temporary name, fsynced, renamed. */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0 && write(fd, hash, 32) == 32 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok || rename(tmp, path) != 0) {
        OPENSSL_cleanse(key, size);
        return herald_fail(err, HERALD_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Reads the stored hash of the admin key; HERALD_ENOTFOUND when there is none. */
static int admin_hash_read(hd_server *s, herald_error *err)
{
    char path[4096];
    unsigned char hash[sizeof s->admin_hash];
    snprintf(path, sizeof path, "%s/admin-key.sha256", s->cfg.data_dir);
    FILE *f = fopen(path, "rb");
    if (!f) return herald_fail(err, HERALD_ENOTFOUND, "%s does not exist", path);
    size_t n = fread(hash, 1, sizeof hash, f);
    fclose(f);
    if (n != sizeof hash)
        return herald_fail(err, HERALD_ECORRUPT, "%s is damaged; delete it to make a new key",
                           path);
    memcpy(s->admin_hash, hash, sizeof hash);
    s->have_admin = true;
    return 0;
}

/* Loads the admin key's hash, or makes a key, prints it once and stores its hash. */
static int admin_key(hd_server *s, herald_error *err)
{
    int rc = admin_hash_read(s, err);
    if (rc != HERALD_ENOTFOUND) return rc;
    char key[128];
    rc = hd__admin_key_new(s->cfg.data_dir, key, sizeof key, s->admin_hash, err);
    if (rc) return rc;
    printf("admin key (shown once, only its hash is stored): %s\n", key);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof key);
    s->have_admin = true;
    return 0;
}

int hd__server_run(const hd_server_config *cfg)
{
    hd_server srv = {.cfg = *cfg, .started_at = hd__now()};
    hd_server *s = &srv;
    herald_error err = {0};
    int rc = 0;
    if (!s->cfg.max_message) s->cfg.max_message = DEFAULT_MAX_MESSAGE;
    if (!s->cfg.max_outbound) s->cfg.max_outbound = DEFAULT_MAX_OUTBOUND;
    if (s->cfg.max_behind_seconds <= 0) s->cfg.max_behind_seconds = 30;
    if (!s->cfg.max_subs_per_conn) s->cfg.max_subs_per_conn = 1000;
    herald_store_options so = {.no_sync = cfg->no_sync,
                               .owner = "herald serve",
                               .idem_retention = cfg->idempotency_retention};
    if ((rc = herald_store_open(cfg->data_dir, &so, &s->store, &err))) goto fail;
    if (!herald_store_schema(s->store)) {
        rc = herald_fail(&err, HERALD_ESCHEMA,
                         "the data folder has no schema: start with --app DIR");
        goto fail;
    }
    if ((rc = hd__server_reload(s, &err))) goto fail;
    if ((rc = admin_key(s, &err))) goto fail;
    if (hd__rsindex_new(&s->rsindex)) {
        rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        goto fail;
    }
    the_server = s;
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    struct lws_http_mount api = {
        .mountpoint = "/api",
        .origin = "herald",
        .origin_protocol = LWSMPRO_CALLBACK,
        .mountpoint_len = 4,
    };
    struct lws_http_mount files = {
        .mount_next = &api,
        .mountpoint = "/",
        .origin = cfg->static_dir,
        .def = "index.html",
        .origin_protocol = LWSMPRO_FILE,
        .mountpoint_len = 1,
    };
    struct lws_context_creation_info info = {0};
    info.port = cfg->port;
    info.protocols = protocols;
    info.mounts = cfg->static_dir ? &files : &api;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.pt_serv_buf_size = 32 * 1024;
    /* Request headers may carry a JWT of several kilobytes. */
    info.max_http_header_data = 16 * 1024;
    s->lws = lws_create_context(&info);
    if (!s->lws) {
        rc = herald_fail(&err, HERALD_EBUSY, "cannot listen on port %d (is it in use?)", cfg->port);
        goto fail;
    }
    if ((rc = hd__writer_start(s->store, 1000, wake_loop, s, &s->writer, &err))) goto fail;
    hd__writer_set_functions(s->writer, hd__fnrt_bundle(s->fnrt), &s->cfg.fn_limits);
    s->rerun_functions = false;
    signal(SIGHUP, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (cfg->dev)
        printf("\n  *** --dev: ANY client may read and write ANY data without a key ***\n\n");
    printf("herald listening on http://localhost:%d (WebSocket at ws://localhost:%d/ws)\n",
           cfg->port, cfg->port);
    fflush(stdout);
    memset(&tick_sul, 0, sizeof tick_sul);
    lws_sul_schedule(s->lws, 0, &tick_sul, tick, 250 * LWS_US_PER_MS);
    while (!s->stop && lws_service(s->lws, 0) >= 0) {
    }
    /* Stop: finish and fsync the current group, answer it, close clients with a reason. */
    hd__writer_stop(s->writer);
    drain_batches(s);
    for (hd_conn *c = s->conns; c; c = c->next)
        if (c->websocket) hd__conn_close(c, "server shutting down");
    double deadline = hd__now() + 2.0;
    while (s->conns && hd__now() < deadline)
        lws_service(s->lws, 0);
    lws_context_destroy(s->lws);
    s->lws = NULL;
    printf("herald stopped at version %llu\n", (unsigned long long)herald_store_version(s->store));
    goto done;
fail:
    fprintf(stderr, "herald: %s: %s\n", herald_errcode_name(rc), err.message);
done:
    if (s->lws) lws_context_destroy(s->lws);
    hd__writer_free(s->writer);
    hd__sub_free_all(s);
    hd__fnrt_free(s->fnrt);
    hd__auth_free(s->auth);
    hd__rsindex_free(s->rsindex);
    herald_store_close(s->store);
    the_server = NULL;
    return rc ? 1 : 0;
}
