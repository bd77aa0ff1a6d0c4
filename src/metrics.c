/*
 * What an operator watches (docs/operations.md, "Metrics and health" and
 * "Logs"): GET /metrics in Prometheus' text format (0.0.4), GET /healthz,
 * GET /version, the separate listener of --metrics-bind, the access log
 * of HTTP requests and WebSockets, and the table of function calls by
 * path that the threads running functions fill.
 *
 * Everything but the function table lives on the event loop. The table is
 * shared by every thread that runs functions (writer, evaluators, loop,
 * actions) and is guarded by its own lock, held for a few additions.
 *
 * It must never put a secret in a log line or a label: paths of storage
 * URLs lose their token, and labels hold only function paths the app
 * defined (at most FN_MAX_PATHS of them), never what a client typed.
 */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "log.h"
#include "server.h"

#ifndef HERALD_VERSION
#define HERALD_VERSION "unknown"
#endif

/* A request the writer has not taken for this long means the writer is stuck. */
#define WRITER_STALL_SECONDS 30.0
/* Scheduled runs pending are counted up to this many (a scrape reads at most this many rows). */
#define SCHED_COUNT_MAX 10000
/* Distinct function paths with series of their own; later ones share path="_other". */
#define FN_MAX_PATHS 1000

/* Upper bounds of the commit-to-push histogram's buckets, in seconds. */
static const double latency_bounds[HD_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

/* Upper bounds of the function-duration histogram's buckets, in seconds. */
#define FN_BUCKETS 12
static const double fn_bounds[FN_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   1,      10};

/* ---- functions, by path (any thread) ---- */

typedef struct fn_stat {
    char *path; /* NULL: a free slot */
    hd_fn_kind kind;
    uint64_t calls, errors;
    uint64_t buckets[FN_BUCKETS]; /* not cumulative; summed when written */
    double seconds;
} fn_stat;

#define FN_SLOTS 2048 /* a power of two, over twice FN_MAX_PATHS */

static struct {
    pthread_mutex_t lock;
    fn_stat slots[FN_SLOTS];
    size_t used;
    fn_stat other; /* paths past FN_MAX_PATHS */
} fns = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t fn_hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The slot of `path` (the lock held): found, or made, or the shared one past the limit. */
static fn_stat *fn_slot(const char *path, hd_fn_kind kind)
{
    for (size_t i = fn_hash(path) & (FN_SLOTS - 1);; i = (i + 1) & (FN_SLOTS - 1)) {
        fn_stat *f = &fns.slots[i];
        if (f->path && !strcmp(f->path, path)) return f;
        if (f->path) continue;
        if (fns.used >= FN_MAX_PATHS || !(f->path = strdup(path))) return &fns.other;
        f->kind = kind;
        fns.used++;
        return f;
    }
}

static void fn_observe(const char *path, hd_fn_kind kind, int rc, double seconds)
{
    size_t b = 0;
    while (b < FN_BUCKETS && seconds > fn_bounds[b])
        b++;
    pthread_mutex_lock(&fns.lock);
    fn_stat *f = fn_slot(path, kind);
    f->calls++;
    if (rc) f->errors++;
    if (b < FN_BUCKETS) f->buckets[b]++;
    f->seconds += seconds;
    pthread_mutex_unlock(&fns.lock);
}

void hd__metrics_start(void)
{
    hd__fn_observer = fn_observe;
}

void hd__metrics_stop(void)
{
    hd__fn_observer = NULL;
    pthread_mutex_lock(&fns.lock);
    for (size_t i = 0; i < FN_SLOTS; i++)
        free(fns.slots[i].path);
    memset(fns.slots, 0, sizeof fns.slots);
    memset(&fns.other, 0, sizeof fns.other);
    fns.used = 0;
    pthread_mutex_unlock(&fns.lock);
}

void hd__metrics_action_done(hd_server *s, const hd_action *act)
{
    hd_fn_kind kind;
    /* Only a path the app defines gets a series: a client may send any. */
    if (s->fnrt && act->fn_path && !hd__fn_kind(s->fnrt, act->fn_path, &kind, NULL))
        fn_observe(act->fn_path, kind, act->rc, act->seconds);
}

/* ---- commit-to-push latency (the loop) ---- */

void hd__metrics_latency(hd_server *s, double seconds, size_t commits)
{
    size_t b = 0;
    while (b < HD_LATENCY_BUCKETS && seconds > latency_bounds[b])
        b++;
    if (b < HD_LATENCY_BUCKETS) s->metrics.latency_buckets[b] += commits;
    s->metrics.latency_count += commits;
    s->metrics.latency_sum += seconds * (double)commits;
}

/* ---- the exposition ---- */

/* A metric with one unlabelled sample. */
static void metric(hd_buf *b, const char *name, const char *type, const char *help, double value)
{
    hd__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                   value);
}

/* A label value as the format wants it: backslash, quote and newline escaped. */
static void label_value(char *out, size_t n, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < n; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[o++] = '\\';
            out[o++] = *v == '\n' ? 'n' : *v;
        } else {
            out[o++] = *v;
        }
    }
    out[o] = 0;
}

/* The buckets, count and sum of a histogram (`labels`: "" or `a="b",`). */
static void histogram(hd_buf *b, const char *name, const char *labels, const double *bounds,
                      const uint64_t *buckets, size_t nb, uint64_t count, double sum)
{
    uint64_t cum = 0;
    size_t llen = strlen(labels);
    /* `labels` ends with a comma; without the bucket's `le` it must not. */
    char plain[600];
    snprintf(plain, sizeof plain, "%.*s", (int)(llen ? llen - 1 : 0), labels);
    for (size_t i = 0; i < nb; i++) {
        cum += buckets[i];
        hd__buf_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i],
                       (unsigned long long)cum);
    }
    hd__buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)count);
    hd__buf_printf(b, "%s_count%s%s%s %llu\n", name, llen ? "{" : "", plain, llen ? "}" : "",
                   (unsigned long long)count);
    hd__buf_printf(b, "%s_sum%s%s%s %.17g\n", name, llen ? "{" : "", plain, llen ? "}" : "", sum);
}

static void fn_metrics(hd_buf *b)
{
    static const char *const kinds[] = {"query", "mutation", "action"};
    hd__buf_printf(b, "# HELP herald_function_calls_total Function calls that ran, by path.\n"
                      "# TYPE herald_function_calls_total counter\n");
    hd_buf errors = HD_BUF_INIT, durations = HD_BUF_INIT;
    hd__buf_printf(&errors,
                   "# HELP herald_function_errors_total Function calls that failed, by path.\n"
                   "# TYPE herald_function_errors_total counter\n");
    hd__buf_printf(&durations,
                   "# HELP herald_function_duration_seconds Time a function call ran, by path.\n"
                   "# TYPE herald_function_duration_seconds histogram\n");
    pthread_mutex_lock(&fns.lock);
    for (size_t i = 0; i <= FN_SLOTS; i++) {
        const fn_stat *f = i < FN_SLOTS ? &fns.slots[i] : &fns.other;
        if (i < FN_SLOTS ? !f->path : !f->calls) continue;
        char path[400], labels[500];
        label_value(path, sizeof path, f->path ? f->path : "_other");
        snprintf(labels, sizeof labels, "path=\"%s\",kind=\"%s\",", path,
                 f->path && (size_t)f->kind < 3 ? kinds[f->kind] : "other");
        labels[strlen(labels) - 1] = 0;
        hd__buf_printf(b, "herald_function_calls_total{%s} %llu\n", labels,
                       (unsigned long long)f->calls);
        hd__buf_printf(&errors, "herald_function_errors_total{%s} %llu\n", labels,
                       (unsigned long long)f->errors);
        strcat(labels, ",");
        histogram(&durations, "herald_function_duration_seconds", labels, fn_bounds, f->buckets,
                  FN_BUCKETS, f->calls, f->seconds);
    }
    pthread_mutex_unlock(&fns.lock);
    hd__buf_append(b, errors.p, errors.len);
    hd__buf_append(b, durations.p, durations.len);
    if (errors.failed || durations.failed) b->failed = true;
    hd__buf_free(&errors);
    hd__buf_free(&durations);
}

/* Scheduled runs pending, counted up to SCHED_COUNT_MAX; -1 when they cannot be read. */
static double sched_pending(hd_server *s)
{
    char text[300];
    snprintf(text, sizeof text,
             "{\"table\": \"_scheduled_functions\", \"index\": \"by_state_time\", "
             "\"range\": [{\"eq\": [\"state.kind\", \"pending\"]}], \"take\": %d}",
             SCHED_COUNT_MAX);
    herald_error err = {0};
    herald_query *q = NULL;
    herald_txn *t = NULL;
    herald_value rows = herald_undefined();
    double n = -1;
    if (!herald_query_parse(text, strlen(text), herald_store_schema(s->store), &q, &err) &&
        !herald_read_begin(s->store, &t, &err) &&
        !herald_query_run(q, t, NULL, &rows, NULL, &err) && rows.type == HERALD_ARRAY)
        n = (double)rows.u.arr.len;
    herald_value_free(&rows);
    if (t) herald_txn_end(t);
    herald_query_free(q);
    return n;
}

/* The exposition of every metric; false when out of memory. */
static bool render(hd_server *s, hd_buf *b)
{
    const hd_metrics *m = &s->metrics;
    size_t conns = 0, subs = 0;
    for (hd_conn *c = s->conns; c; c = c->next)
        if (c->websocket) {
            conns++;
            subs += c->nsubs;
        }
    metric(b, "herald_up", "gauge", "1 while the server runs.", 1);
    metric(b, "herald_uptime_seconds", "gauge", "Seconds since the server started.",
           hd__now() - s->started_at);
    metric(b, "herald_store_version", "gauge", "Version of the last commit.",
           (double)herald_store_version(s->store));
    metric(b, "herald_connections", "gauge", "WebSocket connections open.", (double)conns);
    metric(b, "herald_connections_opened_total", "counter", "WebSocket connections opened.",
           (double)m->ws_opened);
    metric(b, "herald_sockets", "gauge", "Client sockets open (WebSocket and HTTP).",
           s->admit ? (double)hd__admit_count(s->admit) : 0);
    metric(b, "herald_connections_refused_total", "counter",
           "Connections refused at the door (limits, descriptors).", (double)s->refused);
    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    hd__buf_printf(b, "# HELP herald_http_requests_total HTTP requests answered, by status class.\n"
                      "# TYPE herald_http_requests_total counter\n");
    for (size_t i = 0; i < 6; i++)
        hd__buf_printf(b, "herald_http_requests_total{code=\"%s\"} %llu\n", classes[i],
                       (unsigned long long)m->http_requests[i]);
    metric(b, "herald_subscriptions", "gauge", "Subscriptions of all connections.", (double)subs);
    metric(b, "herald_query_instances", "gauge",
           "Query instances (identical subscriptions share one).", (double)s->ninst);
    metric(b, "herald_commits_total", "counter", "Commits the server pushed.", (double)s->commits);
    metric(b, "herald_groups_total", "counter", "Group commits (one fsync each) the server pushed.",
           (double)m->groups);
    hd__buf_printf(
        b, "# HELP herald_commit_push_seconds Time from a commit being durable to its updates "
           "being queued to clients.\n# TYPE herald_commit_push_seconds histogram\n");
    histogram(b, "herald_commit_push_seconds", "", latency_bounds, m->latency_buckets,
              HD_LATENCY_BUCKETS, m->latency_count, m->latency_sum);
    metric(b, "herald_query_reruns_total", "counter", "Query instances re-run after a commit.",
           (double)m->reruns);
    metric(b, "herald_updates_pushed_total", "counter", "Update messages queued to clients.",
           (double)s->updates_sent);
    metric(b, "herald_bytes_pushed_total", "counter", "Bytes written to WebSockets.",
           (double)m->bytes_pushed);
    metric(b, "herald_clients_culled_total", "counter",
           "Slow clients disconnected for staying behind.", (double)m->culled);
    metric(b, "herald_client_memory_bytes", "gauge",
           "Bytes held for clients: messages being read and frames queued.",
           (double)(s->mem_in + s->mem_out));
    size_t size = 0, used = 0, max = 0;
    herald_store_map_info(s->store, &size, &used, &max);
    metric(b, "herald_lmdb_map_used_bytes", "gauge", "Bytes of the LMDB map in use.", (double)used);
    metric(b, "herald_lmdb_map_size_bytes", "gauge", "Bytes of the LMDB map as mapped now.",
           (double)size);
    metric(b, "herald_lmdb_map_max_bytes", "gauge", "Bytes the LMDB map may grow to.", (double)max);
    size_t queued = 0;
    double oldest = 0;
    if (s->writer) hd__writer_health(s->writer, &queued, &oldest);
    metric(b, "herald_writer_queue_depth", "gauge", "Mutations waiting for the writer.",
           (double)queued);
    metric(b, "herald_writer_oldest_wait_seconds", "gauge",
           "How long the oldest mutation waiting for the writer has waited.", oldest);
    if (s->repl) {
        metric(b, "herald_replication_primary", "gauge",
               "1 while this node is its cluster's primary, 0 otherwise.",
               hd__repl_is_primary(s->repl) ? 1 : 0);
        metric(b, "herald_replication_sequence", "gauge",
               "The last replication stream record this node's store holds.",
               (double)hd__repl_applied_seq(s->repl));
    }
    size_t all = s->actions ? hd__actions_count(s->actions) : 0;
    size_t running = s->actions ? hd__actions_running(s->actions) : 0;
    metric(b, "herald_actions_running", "gauge", "Actions holding a runtime.", (double)running);
    metric(b, "herald_actions_waiting", "gauge", "Actions waiting for a runtime.",
           (double)(all > running ? all - running : 0));
    double pending = sched_pending(s);
    if (pending >= 0)
        metric(b, "herald_scheduled_pending", "gauge",
               "Scheduled runs waiting (counted up to 10,000).", pending);
    metric(b, "herald_functions", "gauge", "Functions loaded.",
           s->fnrt ? (double)hd__fnrt_count(s->fnrt) : 0);
    fn_metrics(b);
    return !b->failed;
}

/* ---- health ---- */

/* Whether the server can take writes; if not, why (a fixed text). */
static const char *unhealthy(hd_server *s)
{
    if (!s->store) return "the store is not open";
    herald_txn *t = NULL;
    herald_error err = {0};
    if (herald_read_begin(s->store, &t, &err)) return "the store cannot be read";
    herald_txn_end(t);
    size_t queued = 0;
    double oldest = 0;
    if (!s->writer || !hd__writer_health(s->writer, &queued, &oldest))
        return "the writer thread is not running";
    double stall = s->cfg.writer_stall > 0 ? s->cfg.writer_stall : WRITER_STALL_SECONDS;
    if (oldest > stall)
        return "the writer has not taken a waiting mutation for --writer-stall seconds";
    return NULL;
}

/* ---- HTTP ---- */

static void answer(hd_conn *c, int status, const char *type, hd_buf *body)
{
    free(c->reply_headers);
    c->reply_headers = strdup("");
    if (!c->reply_headers) body->failed = true;
    snprintf(c->file_type, sizeof c->file_type, "%s", type);
    if (body->failed) {
        hd__buf_free(body);
        free(c->reply_headers);
        c->reply_headers = NULL;
        hd__http_error(c, HERALD_ENOMEM, "out of memory");
        return;
    }
    hd__http_answer(c, status, body);
}

/* Whether the request carries the admin key as `Authorization: Bearer <key>`. */
static bool has_admin_key(hd_server *s, struct lws *wsi)
{
    int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (alen <= 7 || alen > 4096) return false;
    char *auth = calloc(1, (size_t)alen + 1);
    if (!auth) return false;
    bool ok = lws_hdr_copy(wsi, auth, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
              !strncasecmp(auth, "Bearer ", 7) && hd__admin_ok(s, auth + 7);
    OPENSSL_cleanse(auth, (size_t)alen + 1);
    free(auth);
    return ok;
}

bool hd__metrics_request(hd_server *s, hd_conn *c, struct lws *wsi, const char *uri, bool get)
{
    bool own = hd__metrics_listener(s, wsi);
    hd_buf b = HD_BUF_INIT;
    if (get && !strcmp(uri, "/metrics")) {
        if (!own && !has_admin_key(s, wsi)) {
            hd__http_error(c, HERALD_EACCESS,
                           "/metrics needs the admin key (Authorization: Bearer <key>), or "
                           "--metrics-bind");
            c->http_status = 401;
            return true;
        }
        render(s, &b);
        answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    } else if (get && !strcmp(uri, "/healthz")) {
        const char *why = unhealthy(s);
        hd__buf_str(&b, why ? "{\"status\":\"unavailable\",\"reason\":" : "{\"status\":\"ok\"");
        if (why) hd__json_str(&b, why);
        if (s->repl) {
            hd__buf_str(&b, ",\"replication\":");
            hd__repl_status_json(s->repl, &b);
        }
        hd__buf_byte(&b, '}');
        hd__http_answer(c, why ? 503 : 200, &b);
    } else if (get && !strcmp(uri, "/version")) {
        hd__buf_str(&b, "{\"version\":");
        hd__json_str(&b, HERALD_VERSION);
        hd__buf_byte(&b, '}');
        hd__http_answer(c, 200, &b);
    } else if (own) {
        /* The metrics listener serves nothing else. */
        hd__http_error(c, HERALD_ENOTFOUND,
                       "this listener serves /metrics, /healthz and /version only");
        c->http_status = get ? 404 : 405;
        /* A body that may follow is not read: the connection closes after the answer. */
        c->http_busy = c->http_close = !get;
    } else {
        return false;
    }
    return true;
}

/* ---- the metrics listener ---- */

int hd__metrics_listen(hd_server *s, const struct lws_protocols *protocols, herald_error *err)
{
    const char *bind = s->cfg.metrics_bind;
    char host[64] = "127.0.0.1";
    const char *port_text = bind, *colon = strrchr(bind, ':');
    if (colon) {
        const char *h = bind;
        size_t hl = (size_t)(colon - bind);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
        if (!hl || hl >= sizeof host)
            return herald_fail(err, HERALD_EINVAL, "--metrics-bind: bad address in \"%s\"", bind);
        snprintf(host, sizeof host, "%.*s", (int)hl, h);
        port_text = colon + 1;
    }
    char *end;
    long port = strtol(port_text, &end, 10);
    if (!*port_text || *end || port < 1 || port > 65535)
        return herald_fail(err, HERALD_EINVAL, "--metrics-bind: bad port in \"%s\"", bind);
    struct lws_context_creation_info info = {0};
    static const lws_retry_bo_t no_validity_timers;
    info.port = (int)port;
    info.iface = host;
    info.vhost_name = "metrics";
    info.protocols = protocols;
    info.retry_and_idle_policy = &no_validity_timers;
    info.timeout_secs = (unsigned)s->cfg.request_seconds + 5;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    s->metrics_vhost = lws_create_vhost(s->lws, &info);
    if (!s->metrics_vhost)
        return herald_fail(err, HERALD_EBUSY, "--metrics-bind: cannot listen on %s port %ld", host,
                           port);
    hd__log(HD_LOG_INFO, "metrics_listening", "herald: metrics on http://%s%s%s:%ld/metrics",
            strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    return 0;
}

bool hd__metrics_listener(hd_server *s, struct lws *wsi)
{
    return s->metrics_vhost && lws_get_vhost(wsi) == s->metrics_vhost;
}

/* ---- the access log ---- */

static const struct {
    enum lws_token_indexes token;
    const char *name;
} methods[] = {{WSI_TOKEN_GET_URI, "GET"},        {WSI_TOKEN_POST_URI, "POST"},
               {WSI_TOKEN_HEAD_URI, "HEAD"},      {WSI_TOKEN_PUT_URI, "PUT"},
               {WSI_TOKEN_PATCH_URI, "PATCH"},    {WSI_TOKEN_DELETE_URI, "DELETE"},
               {WSI_TOKEN_OPTIONS_URI, "OPTIONS"}};

/*
 * The request's method and path as the log shows them: no query string,
 * and a storage URL's token cut off (it grants the file).
 */
static const char *request_line(struct lws *wsi, char *path, size_t n)
{
    const char *method = "-";
    path[0] = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        int len = lws_hdr_total_length(wsi, methods[i].token);
        if (len <= 0) continue;
        method = methods[i].name;
        if (lws_hdr_copy(wsi, path, (int)n, methods[i].token) < 0) snprintf(path, n, "(too long)");
        break;
    }
    path[strcspn(path, "?")] = 0;
    if (!strncmp(path, "/api/storage/upload/", 20)) {
        snprintf(path + 20, n - 20, "[token]");
    } else if (!strncmp(path, "/api/storage/", 13)) {
        char *slash = strchr(path + 13, '/');
        if (slash && (size_t)(slash + 1 - path) + 8 <= n) snprintf(slash + 1, 8, "[token]");
    }
    return method;
}

static void peer(struct lws *wsi, char *out, size_t n)
{
    out[0] = 0;
    if (!wsi || !lws_get_peer_simple(wsi, out, n)) snprintf(out, n, "-");
    /* An IPv4 client of a dual-stack socket is shown as IPv4. */
    if (!strncmp(out, "::ffff:", 7) && strchr(out + 7, '.'))
        memmove(out, out + 7, strlen(out + 7) + 1);
}

void hd__access_seen(struct lws *wsi, hd_access_seen *seen)
{
    seen->method = request_line(wsi, seen->path, sizeof seen->path);
    peer(wsi, seen->client, sizeof seen->client);
    seen->started = hd__now();
}

void hd__access_http(hd_server *s, hd_conn *c, struct lws *wsi, int status, uint64_t bytes)
{
    hd_access_seen seen;
    hd__access_seen(wsi, &seen);
    seen.started = c && c->opened_at > 0 ? c->opened_at : 0;
    hd__access_http_seen(s, &seen, c ? c->serial : 0, status, bytes);
}

void hd__access_http_seen(hd_server *s, const hd_access_seen *seen, uint64_t conn, int status,
                          uint64_t bytes)
{
    if (status >= 100 && status < 600)
        s->metrics.http_requests[status / 100]++;
    else
        s->metrics.http_requests[0]++;
    double ms = seen->started > 0 ? (hd__now() - seen->started) * 1000.0 : 0;
    const hd_log_field f[] = {
        HD_LOG_STR("client", seen->client), HD_LOG_STR("method", seen->method),
        HD_LOG_STR("path", seen->path),     HD_LOG_INT("status", status),
        HD_LOG_NUM("duration_ms", ms),      HD_LOG_INT("bytes", bytes),
        HD_LOG_INT("conn", conn),
    };
    hd__logf(HD_LOG_INFO, "http", f, sizeof f / sizeof f[0], "herald: http");
}

/* The line of a WebSocket's open or close. */
static void ws_line(hd_conn *c, struct lws *wsi, bool closed)
{
    char client[64];
    peer(wsi, client, sizeof client);
    const hd_log_field f[] = {
        HD_LOG_STR("client", client),
        HD_LOG_STR("path", c->http_path),
        HD_LOG_INT("conn", c->serial),
        HD_LOG_NUM("duration_ms", (hd__now() - c->opened_at) * 1000.0),
        HD_LOG_STR("reason", c->closing ? c->close_reason : "closed by the client"),
    };
    /* An open says who and where; its duration and reason come with the close. */
    hd__logf(HD_LOG_INFO, closed ? "ws_close" : "ws_open", f, closed ? 5 : 3,
             closed ? "herald: websocket closed" : "herald: websocket open");
}

void hd__access_ws_open(hd_server *s, hd_conn *c, struct lws *wsi)
{
    s->metrics.ws_opened++;
    ws_line(c, wsi, false);
}

void hd__access_ws_close(hd_server *s, hd_conn *c, struct lws *wsi)
{
    (void)s;
    ws_line(c, wsi, true);
}
