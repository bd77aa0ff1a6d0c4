/*
 * The native WebSocket protocol and the HTTP API for workers
 * (docs/protocol.md). Both parse a request, check rights, and either answer
 * at once (queries) or hand a mutation to the writer and answer when its
 * group is durable.
 *
 * Every malformed input gets an error with a stable code; nothing a client
 * sends may crash the server or be logged with a secret in it.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"
#include "server.h"

#define PROTOCOL_VERSION 1

bool hd__admin_ok(hd_server *s, const char *key)
{
    if (!s->have_admin || !key) return false;
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), h);
    return CRYPTO_memcmp(h, s->admin_hash, sizeof h) == 0;
}

void hd__json_str(hd_buf *b, const char *s)
{
    herald_value v;
    if (herald_string(&v, s, strlen(s))) {
        b->failed = true;
        return;
    }
    char *j = herald_value_to_json(&v);
    herald_value_free(&v);
    if (!j) {
        b->failed = true;
        return;
    }
    hd__buf_str(b, j);
    free(j);
}

static void send_buf(hd_conn *c, hd_buf *b)
{
    if (!b->failed) hd__conn_send(c, (char *)b->p, b->len);
    hd__buf_free(b);
}

void hd__json_field(hd_buf *b, const char *name, const herald_value *v)
{
    if (!v || v->type == HERALD_UNDEFINED) return;
    char *j = herald_value_to_json(v);
    if (!j) {
        b->failed = true;
        return;
    }
    hd__buf_str(b, ",\"");
    hd__buf_str(b, name);
    hd__buf_str(b, "\":");
    hd__buf_str(b, j);
    free(j);
}

void hd__proto_error(hd_conn *c, const char *id, int code, const char *message)
{
    hd__proto_error_data(c, id, code, message, NULL);
}

void hd__proto_error_data(hd_conn *c, const char *id, int code, const char *message,
                          const herald_value *data)
{
    if (c->sync) {
        hd__sync_error(c, code, message);
        return;
    }
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"error\",\"id\":");
    if (id)
        hd__json_str(&b, id);
    else
        hd__buf_str(&b, "null");
    hd__buf_str(&b, ",\"code\":");
    hd__json_str(&b, herald_errcode_name(code));
    hd__buf_str(&b, ",\"message\":");
    hd__json_str(&b, message && message[0] ? message : herald_strerror(code));
    hd__json_field(&b, "data", data);
    hd__buf_byte(&b, '}');
    send_buf(c, &b);
}

void hd__proto_reload_ack(hd_conn *c, const char *id, bool schema_applied)
{
    const char *word = schema_applied ? "applied" : "unchanged";
    herald_value outcome, text;
    herald_object_init(&outcome);
    bool ok = herald_string(&text, word, strlen(word)) == 0 &&
              herald_object_set(&outcome, "schema", 6, text) == 0;
    hd__proto_send(c, "ack", id, 0, ok ? &outcome : NULL);
    herald_value_free(&outcome);
}

void hd__proto_send(hd_conn *c, const char *type, const char *id, uint64_t version,
                    const herald_value *value)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"");
    hd__buf_str(&b, type);
    hd__buf_str(&b, "\",\"id\":");
    if (id)
        hd__json_str(&b, id);
    else
        hd__buf_str(&b, "null");
    if (version) {
        char v[40];
        snprintf(v, sizeof v, ",\"version\":%llu", (unsigned long long)version);
        hd__buf_str(&b, v);
    }
    if (value) {
        char *j = herald_value_to_json(value);
        hd__buf_str(&b, ",\"value\":");
        if (j)
            hd__buf_str(&b, j);
        else
            b.failed = true;
        free(j);
    }
    hd__buf_byte(&b, '}');
    if (!strcmp(type, "ack") && c->npending) {
        /* After the updates the connection waits for (sub.c). */
        if (!b.failed) hd__sub_send_ack(c, (char *)b.p, b.len);
        hd__buf_free(&b);
        return;
    }
    send_buf(c, &b);
}

static bool may_write_raw(hd_server *s, hd_conn *c)
{
    return c->admin || s->cfg.dev;
}

/* Runs a one-shot raw query in a fresh snapshot. */
static int run_query(hd_server *s, const herald_value *query, herald_value *result,
                     uint64_t *version, herald_error *err)
{
    herald_query *q;
    int rc = herald_query_from_value(query, herald_store_schema(s->store), &q, err);
    if (rc) return rc;
    herald_txn *t;
    if ((rc = herald_read_begin(s->store, &t, err)) == 0) {
        rc = herald_query_run(q, t, NULL, result, NULL, err);
        *version = herald_txn_version(t);
        herald_txn_end(t);
    }
    herald_query_free(q);
    return rc;
}

/*
 * Runs a query function once, as connection `c`, in a fresh snapshot, on
 * the loop: at once if it is cheap. One of a function known to be slow, one
 * that runs over the inline budget, and any while the connection has calls
 * at the evaluator threads (its answers keep their order) go there instead:
 * then *handed is set and hd__proto_query_done() answers request `id` later.
 */
static int run_query_fn(hd_server *s, hd_conn *c, const char *path, const herald_value *args,
                        const char *id, bool *handed, herald_value *result, herald_value *data,
                        uint64_t *version, herald_error *err)
{
    *result = *data = herald_undefined();
    *handed = false;
    if (!s->fnrt) return herald_fail(err, HERALD_ENOTFOUND, "this app has no functions");
    char norm[300];
    int rc = hd__fn_path_normalize(path, norm, sizeof norm, err);
    if (rc) return rc;
    bool yielded = false;
    if (!s->eval || (!hd__eval_is_slow(s->eval, norm) && !hd__eval_lane_jobs(s->eval, c->serial))) {
        herald_txn *t;
        if ((rc = herald_read_begin(s->store, &t, err))) return rc;
        double t0 = hd__eval_cpu_now();
        hd_fncall call = {.path = norm,
                          .args = args,
                          .identity = &c->identity,
                          .admin = c->admin,
                          .kind = HD_FN_QUERY,
                          .txn = t,
                          .yield_after = s->eval ? t0 + HD_EVAL_INLINE_SECONDS : 0,
                          .yielded = &yielded};
        rc = hd__fn_call(s->fnrt, &call, result, data, err);
        *version = herald_txn_version(t);
        herald_txn_end(t);
        hd__eval_note(s->eval, norm, yielded ? HD_EVAL_INLINE_SECONDS : hd__eval_cpu_now() - t0);
        if (!yielded) return rc;
        herald_value_free(result);
        herald_value_free(data);
    }
    hd_job *j = hd__eval_job_new(c->serial, norm, args, &c->identity, c->admin);
    if (!j || (id && !(j->request_id = strdup(id)))) {
        hd__eval_job_free(j);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    j->origin = c;
    j->origin_serial = c->serial;
    c->pending_requests++;
    hd__eval_submit(s->eval, j);
    *handed = true;
    return 0;
}

/*
 * Checks on the loop's runtime that `path` names a mutation the caller may
 * call, so that a mistake is answered at once; the writer checks again.
 */
/*
 * Whether the connection may call `path` as a `want` (its normalised path
 * into norm): NotFound for none, or an internal one without the admin key;
 * InvalidArgument naming what it is for another kind.
 */
static int check_kind(hd_server *s, hd_conn *c, const char *path, hd_fn_kind want, char *norm,
                      size_t n, herald_error *err)
{
    hd_fn_kind kind;
    bool internal;
    int rc = hd__fn_path_normalize(path, norm, n, err);
    if (rc) return rc;
    if (!s->fnrt || hd__fn_kind(s->fnrt, norm, &kind, &internal) || (internal && !c->admin))
        return herald_fail(err, HERALD_ENOTFOUND, "no public function `%s`", norm);
    if (kind != want)
        return herald_fail(err, HERALD_EINVAL, "`%s` is a%s %s; call it as a%s %s", norm,
                           kind == HD_FN_ACTION ? "n" : "", hd__fn_kind_name(kind),
                           kind == HD_FN_ACTION ? "n" : "", hd__fn_kind_name(kind));
    return 0;
}

int hd__submit(hd_server *s, hd_conn *c, const char *id, const herald_value *ops, const char *path,
               const herald_value *args, const herald_value *idem, herald_error *err)
{
    int rc;
    char norm[300];
    if (path && (rc = check_kind(s, c, path, HD_FN_MUTATION, norm, sizeof norm, err))) return rc;
    if (args && args->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EVALIDATION, "`args` must be an object");
    if (idem &&
        (idem->type != HERALD_STRING || idem->u.s.len == 0 || idem->u.s.len > HERALD_MAX_IDEM_KEY))
        return herald_fail(err, HERALD_EINVAL, "`idempotencyKey` must be a string of 1 to %d bytes",
                           HERALD_MAX_IDEM_KEY);
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    r->admin = c->admin;
    /* The identity also scopes an idempotency key, raw ops included. */
    bool failed =
        herald_value_copy(&r->identity, &c->identity) != 0 ||
        (path ? !(r->fn_path = strdup(path)) || (args && herald_value_copy(&r->fn_args, args))
              : herald_value_copy(&r->ops, ops) != 0);
    if (failed || (id && !(r->request_id = strdup(id))) ||
        (idem && !(r->idempotency_key = strdup(idem->u.s.ptr)))) {
        hd__wreq_free(r);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    hd__submit_request(s, c, r);
    return 0;
}

void hd__submit_request(hd_server *s, hd_conn *c, hd_wreq *r)
{
    r->origin = c;
    r->origin_serial = c->serial;
    c->pending_requests++;
    hd__writer_submit(s->writer, r);
}

static const char *get_str(const herald_value *msg, const char *name)
{
    const herald_value *v = herald_object_get(msg, name);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

/*
 * Sets the connection's rights from a presented token: the admin key, a
 * JWT of one of the app's providers, or nothing (signed out). A token that
 * is neither leaves the connection signed out.
 */
int hd__authenticate(hd_server *s, hd_conn *c, const char *token, herald_error *err)
{
    herald_value_free(&c->identity);
    c->admin = false;
    c->identity_expires = 0;
    hd__conn_expiry_changed(c);
    if (!token || !token[0]) return 0;
    if (hd__admin_ok(s, token)) {
        c->admin = true;
        return 0;
    }
    if (strchr(token, '.') && s->auth) {
        int rc = hd__auth_verify_until(s->auth, token, (double)time(NULL), &c->identity,
                                       &c->identity_expires, err);
        hd__conn_expiry_changed(c);
        return rc;
    }
    return herald_fail(err, HERALD_EACCESS, "the token is not valid");
}

void hd__proto_message(hd_server *s, hd_conn *c, const char *text, size_t len)
{
    herald_value msg;
    herald_error err = {0};
    int rc = herald_value_from_json(text, len, &msg, &err);
    if (rc) {
        hd__proto_error(c, NULL, rc, err.message);
        return;
    }
    const char *type = get_str(&msg, "type");
    const herald_value *idv = herald_object_get(&msg, "id");
    const char *id = idv && idv->type == HERALD_STRING ? idv->u.s.ptr : NULL;
    if (msg.type != HERALD_OBJECT || !type) {
        hd__proto_error(c, id, HERALD_EINVAL, "a message is an object with a `type`");
        goto done;
    }
    if (idv && !id) {
        hd__proto_error(c, NULL, HERALD_EINVAL, "`id` must be a string");
        goto done;
    }
    if (!strcmp(type, "ping")) {
        hd__proto_send(c, "pong", id, 0, NULL);
    } else if (!strcmp(type, "auth")) {
        const herald_value *tv = herald_object_get(&msg, "token");
        if (tv && tv->type != HERALD_STRING && tv->type != HERALD_NULL) {
            hd__proto_error(c, id, HERALD_EINVAL, "`token` must be a string or null");
            goto done;
        }
        rc = hd__authenticate(s, c, get_str(&msg, "token"), &err);
        if (rc)
            hd__proto_error(c, id, rc, err.message);
        else
            hd__proto_send(c, "ack", id, 0, NULL);
        /* Whatever the outcome, subscriptions now run with the new rights. */
        hd__sub_reauth(s, c);
    } else if (!strcmp(type, "admin") || !strcmp(type, "tail")) {
        if (!c->admin)
            hd__proto_error(c, id, HERALD_EACCESS, "admin messages need the admin key");
        else if (!id)
            hd__proto_error(c, NULL, HERALD_EINVAL, "this message needs an `id` string");
        else if (!strcmp(type, "tail"))
            hd__admin_tail(s, c, id);
        else
            hd__admin_message(s, c, id, get_str(&msg, "op"));
    } else if (!strcmp(type, "reload")) {
        if (!c->admin) {
            hd__proto_error(c, id, HERALD_EACCESS, "reload needs the admin key");
        } else {
            /* A schema change is answered when the writer has applied or refused it. */
            rc = hd__server_reload(s, c, id, &err);
            if (rc < 0) {
                hd__log(HD_LOG_WARN, "reload_refused", "herald: reload refused: %s", err.message);
                hd__proto_error(c, id, rc, err.message);
            } else if (rc != HD_RELOAD_PENDING) {
                hd__proto_reload_ack(c, id, false);
            }
        }
    } else if (!strcmp(type, "action")) {
        const char *path = get_str(&msg, "path");
        if (!id)
            hd__proto_error(c, NULL, HERALD_EINVAL, "this message needs an `id` string");
        else if (!path)
            hd__proto_error(c, id, HERALD_EINVAL, "`action` needs `path` (\"module:name\")");
        else if ((rc = hd__submit_action(s, c, id, path, herald_object_get(&msg, "args"), &err)))
            hd__proto_error(c, id, rc, err.message);
    } else if (!strcmp(type, "sub") || !strcmp(type, "query") || !strcmp(type, "mutate")) {
        if (!id) {
            hd__proto_error(c, NULL, HERALD_EINVAL, "this message needs an `id` string");
            goto done;
        }
        const herald_value *pathv = herald_object_get(&msg, "path");
        const char *path = get_str(&msg, "path");
        const herald_value *args = herald_object_get(&msg, "args");
        if (pathv && !path) {
            hd__proto_error(c, id, HERALD_EINVAL, "`path` must be a string (\"module:name\")");
            goto done;
        }
        if (!path && !may_write_raw(s, c)) {
            hd__proto_error(c, id, HERALD_EACCESS,
                            "raw queries and mutations need the admin key (or a server in --dev); "
                            "call a function with `path` instead");
            goto done;
        }
        if (!strcmp(type, "mutate")) {
            const herald_value *ops = herald_object_get(&msg, "ops");
            if (!path && !ops) {
                hd__proto_error(c, id, HERALD_EINVAL, "`mutate` needs `path` (or raw `ops`)");
            } else if ((rc = hd__submit(s, c, id, ops, path, args,
                                        herald_object_get(&msg, "idempotencyKey"), &err))) {
                hd__proto_error(c, id, rc, err.message);
            }
            goto done;
        }
        const herald_value *query = herald_object_get(&msg, "query");
        if (!path && !query) {
            hd__proto_error(c, id, HERALD_EINVAL, "this message needs `path` (or a raw `query`)");
            goto done;
        }
        if (!strcmp(type, "sub")) {
            const herald_value *jv = herald_object_get(&msg, "journal");
            if (jv && jv->type != HERALD_STRING && jv->type != HERALD_NULL) {
                hd__proto_error(c, id, HERALD_EINVAL, "`journal` must be a string or null");
                goto done;
            }
            hd_subspec spec = {.query = path ? NULL : query,
                               .fn_path = path,
                               .fn_args = args,
                               .journal = get_str(&msg, "journal")};
            if ((rc = hd__sub_add(s, c, id, &spec, &err))) hd__proto_error(c, id, rc, err.message);
        } else {
            herald_value result = herald_undefined(), data = herald_undefined();
            uint64_t version = 0;
            bool handed = false;
            rc = path ? run_query_fn(s, c, path, args, id, &handed, &result, &data, &version, &err)
                      : run_query(s, query, &result, &version, &err);
            if (rc)
                hd__proto_error_data(c, id, rc, err.message, &data);
            else if (!handed)
                hd__proto_send(c, "result", id, version, &result);
            herald_value_free(&result);
            herald_value_free(&data);
        }
    } else if (!strcmp(type, "unsub")) {
        bool tail = id && c->tail_id && !strcmp(c->tail_id, id);
        if (tail) hd__admin_untail(s, c);
        if (!tail && (!id || hd__sub_remove(s, c, id)))
            hd__proto_error(c, id, HERALD_ENOTFOUND, "no such subscription");
        else
            hd__proto_send(c, "ack", id, 0, NULL);
    } else {
        hd__proto_error(c, id, HERALD_EINVAL, "unknown message type");
    }
done:
    herald_value_free(&msg);
}

/* ---- HTTP API ---- */

static void http_reply(hd_conn *c, int status, hd_buf *body)
{
    /* The reply is memory held for a client: it counts against --max-memory until sent. */
    if (c->http_reply) c->srv->mem_out -= c->http_reply_len;
    free(c->http_reply);
    c->http_status = status;
    c->http_reply = (char *)hd__buf_take(body, &c->http_reply_len);
    if (c->http_reply) c->srv->mem_out += c->http_reply_len;
    c->last_progress = hd__now();
    hd__conn_watch(c);
    c->http_waiting = false;
    if (c->wsi) {
        /* Input was paused while the request was at work (a pipelined request waits);
         * with lws 4.1 a paused HTTP connection is not written to either. */
        lws_rx_flow_control(c->wsi, 1);
        lws_callback_on_writable(c->wsi);
    }
}

static int http_status_of(int code)
{
    switch (code) {
    case HERALD_ENOTFOUND:
        return 404;
    case HERALD_EACCESS:
        return 401;
    case HERALD_ENOMEM:
    case HERALD_EIO:
    case HERALD_ESTORE:
    case HERALD_ECORRUPT:
        return 500;
    default:
        return 400;
    }
}

/*
 * An error answer. A request in Convex's shape that got as far as running
 * its function is answered 560, the status the official client reads as a
 * function's error (any other non-2xx it throws as raw text).
 */
static void http_error_data(hd_conn *c, int code, const char *message, const herald_value *data)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"status\":\"error\",\"errorMessage\":");
    hd__json_str(&b, message && message[0] ? message : herald_strerror(code));
    hd__buf_str(&b, ",\"code\":");
    hd__json_str(&b, herald_errcode_name(code));
    hd__json_field(&b, "errorData", data);
    hd__buf_str(&b, ",\"logLines\":[]}");
    http_reply(c, c->http_convex ? 560 : http_status_of(code), &b);
}

static void http_error(hd_conn *c, int code, const char *message)
{
    http_error_data(c, code, message, NULL);
}

void hd__http_error(hd_conn *c, int code, const char *message)
{
    http_error(c, code, message);
}

void hd__http_answer(hd_conn *c, int status, hd_buf *body)
{
    http_reply(c, status, body);
}

/* {"status":"success","value":...}, and for a mutation the commit `version`. */
static void http_success(hd_conn *c, const herald_value *value, uint64_t version)
{
    hd_buf b = HD_BUF_INIT;
    herald_error err = {0};
    /* For Convex's client only what it can read (printable ASCII field names). */
    char *j = c->http_convex ? hd__sync_value_json(value, &err) : herald_value_to_json(value);
    if (!j && err.code && err.code != HERALD_ENOMEM) {
        http_error(c, err.code, err.message);
        return;
    }
    hd__buf_str(&b, "{\"status\":\"success\",\"value\":");
    if (j)
        hd__buf_str(&b, j);
    else
        b.failed = true;
    free(j);
    if (version) {
        char v[40];
        snprintf(v, sizeof v, ",\"version\":%llu", (unsigned long long)version);
        hd__buf_str(&b, v);
    }
    hd__buf_str(&b, ",\"logLines\":[]}");
    if (b.failed) {
        hd__buf_free(&b);
        http_error(c, HERALD_ENOMEM, NULL);
        return;
    }
    http_reply(c, 200, &b);
}

/*
 * Convex's request shape: {"path", "format": "convex_encoded_json", "args":
 * [{...}]}. Unwraps *args (a one-element array) and sets c->http_convex;
 * false with the answer sent when the shape is wrong.
 */
static bool convex_shape(hd_conn *c, const herald_value *msg, const herald_value **args)
{
    const herald_value *format = herald_object_get(msg, "format");
    if (!format && (!*args || (*args)->type != HERALD_ARRAY)) return true; /* Herald's own shape */
    c->http_convex = true;
    if (format &&
        (format->type != HERALD_STRING ||
         (strcmp(format->u.s.ptr, "convex_encoded_json") && strcmp(format->u.s.ptr, "json")))) {
        c->http_convex = false; /* the client's own mistake: a 400 it shows as text */
        http_error(c, HERALD_EINVAL, "`format` must be \"convex_encoded_json\" or \"json\"");
        return false;
    }
    if (*args && (*args)->type == HERALD_ARRAY) {
        if ((*args)->u.arr.len > 1 ||
            ((*args)->u.arr.len == 1 && (*args)->u.arr.items[0].type != HERALD_OBJECT)) {
            c->http_convex = false;
            http_error(c, HERALD_EINVAL, "`args` must be an array holding one object");
            return false;
        }
        *args = (*args)->u.arr.len ? &(*args)->u.arr.items[0] : NULL;
    }
    return true;
}

void hd__http_request(hd_server *s, hd_conn *c, const char *path, const char *auth,
                      const char *body, size_t len)
{
    /* `Bearer <token>`, or `Convex <admin key>` as the official client's setAdminAuth sends. */
    const char *key = !auth                          ? NULL
                      : !strncmp(auth, "Bearer ", 7) ? auth + 7
                      : !strncmp(auth, "Convex ", 7) ? auth + 7
                                                     : NULL;
    herald_value msg = herald_undefined();
    herald_error err = {0};
    int rc = 0;
    bool is_query = !strcmp(path, "/api/query"), is_mutation = !strcmp(path, "/api/mutation");
    bool is_action = !strcmp(path, "/api/action");
    c->http_convex = false;
    if (!is_query && !is_mutation && !is_action) {
        http_error(c, HERALD_ENOTFOUND, "no such API endpoint");
        return;
    }
    if (auth && auth[0] && !key) {
        http_error(c, HERALD_EACCESS,
                   "the Authorization header must be `Bearer <token>` (or `Convex <admin key>`)");
        return;
    }
    if (key && !strncmp(auth, "Convex ", 7) && !hd__admin_ok(s, key)) {
        http_error(c, HERALD_EACCESS, "`Authorization: Convex` takes the admin key");
        return;
    }
    if ((rc = hd__authenticate(s, c, key, &err))) {
        http_error(c, rc, err.message);
        return;
    }
    if ((rc = herald_value_from_json(body, len, &msg, &err))) {
        http_error(c, rc, err.message);
        return;
    }
    const herald_value *args = herald_object_get(&msg, "args");
    const herald_value *fnv = herald_object_get(&msg, "path");
    const char *fn = get_str(&msg, "path");
    if (msg.type != HERALD_OBJECT) {
        http_error(c, HERALD_EINVAL, "the body must be a JSON object");
    } else if (!convex_shape(c, &msg, &args)) {
        /* answered */
    } else if (fnv && !fn) {
        http_error(c, HERALD_EINVAL, "`path` must be a string (\"module:name\")");
    } else if (is_action) {
        if (!fn)
            http_error(c, HERALD_EINVAL, "expected {\"path\": \"module:name\", \"args\": {...}}");
        else if ((rc = hd__submit_action(s, c, NULL, fn, args, &err)))
            http_error(c, rc, err.message);
        else
            c->http_waiting = true;
    } else if (fn && is_query) {
        herald_value result, data;
        uint64_t version;
        bool handed = false;
        if ((rc = run_query_fn(s, c, fn, args, NULL, &handed, &result, &data, &version, &err)))
            http_error_data(c, rc, err.message, &data);
        else if (handed)
            c->http_waiting = true;
        else
            http_success(c, &result, 0);
        herald_value_free(&result);
        herald_value_free(&data);
    } else if (fn) {
        if ((rc = hd__submit(s, c, NULL, NULL, fn, args, herald_object_get(&msg, "idempotencyKey"),
                             &err)))
            http_error(c, rc, err.message);
        else
            c->http_waiting = true;
    } else if (!may_write_raw(s, c)) {
        http_error(c, HERALD_EACCESS,
                   "raw queries and mutations need `Authorization: Bearer <admin key>`; call a "
                   "function with `path` instead");
    } else if (is_query) {
        const herald_value *query = herald_object_get(&msg, "query");
        herald_value result;
        uint64_t version;
        if (!query && args) query = args;
        if (!query) {
            http_error(c, HERALD_EINVAL, "expected {\"query\": {...}}");
        } else if ((rc = run_query(s, query, &result, &version, &err))) {
            http_error(c, rc, err.message);
        } else {
            http_success(c, &result, 0);
            herald_value_free(&result);
        }
    } else {
        const herald_value *ops = herald_object_get(&msg, "ops");
        if (!ops) {
            http_error(c, HERALD_EINVAL, "expected {\"ops\": [...]}");
        } else if ((rc = hd__submit(s, c, NULL, ops, NULL, NULL,
                                    herald_object_get(&msg, "idempotencyKey"), &err))) {
            http_error(c, rc, err.message);
        } else {
            c->http_waiting = true;
        }
    }
    herald_value_free(&msg);
}

void hd__proto_query_done(hd_server *s, hd_job *j)
{
    hd_conn *c = j->origin;
    hd__eval_note(s->eval, j->fn_path, j->seconds);
    if (c->dead || c->serial != j->origin_serial) {
        hd__conn_release(c);
        return;
    }
    if (c->websocket) {
        if (j->rc)
            hd__proto_error_data(c, j->request_id, j->rc, j->err.message, &j->err_data);
        else
            hd__proto_send(c, "result", j->request_id, j->version, &j->result);
    } else if (j->rc) {
        http_error_data(c, j->rc, j->err.message, &j->err_data);
    } else {
        http_success(c, &j->result, 0);
    }
    hd__conn_release(c);
}

void hd__proto_answer(hd_server *s, hd_wreq *r)
{
    if (r->repl_log) return; /* a stream record a replica applied: nobody waits for it */
    if (r->forward_reply) {
        hd__repl_answer(s->repl, r);
        return;
    }
    if (r->action) {
        if (r->upload_tmp && !r->rc && !r->replayed) s->stored_bytes += hd__storage_size(r);
        hd__actions_written(s->actions, r);
        return;
    }
    if (r->cron) {
        hd__sched_cron_done(s, r);
        return;
    }
    if (r->scheduled_id) {
        hd__sched_done(s, r);
        return;
    }
    hd_conn *c = r->origin;
    if (!c || c->dead || c->serial != r->origin_serial) {
        if (c) hd__conn_release(c);
        return;
    }
    if (c->http_upload) {
        hd__storage_answer(s, c, r);
    } else if (c->sync) {
        if (!r->rc && c->behind_since) hd__sub_catch_up_now(s, c);
        hd__sync_answer(s, c, r);
    } else if (c->websocket) {
        /* Read your writes also for a client whose updates were merged: the whole
         * results it is behind on go before the ack (they are at least this commit). */
        if (!r->rc && c->behind_since) hd__sub_catch_up_now(s, c);
        if (r->rc)
            hd__proto_error_data(c, r->request_id, r->rc, r->err.message, &r->error_data);
        else
            hd__proto_send(c, "ack", r->request_id, r->version, &r->result);
    } else if (r->rc) {
        http_error_data(c, r->rc, r->err.message, &r->error_data);
    } else {
        http_success(c, &r->result, r->version);
    }
    hd__conn_release(c);
}

/* ---- actions ---- */

int hd__submit_action(hd_server *s, hd_conn *c, const char *id, const char *path,
                      const herald_value *args, herald_error *err)
{
    char norm[300];
    int rc = check_kind(s, c, path, HD_FN_ACTION, norm, sizeof norm, err);
    if (rc) return rc;
    if (args && args->type != HERALD_OBJECT && args->type != HERALD_UNDEFINED)
        return herald_fail(err, HERALD_EVALIDATION, "%s: args must be an object", norm);
    if (!s->actions) return herald_fail(err, HERALD_EBUSY, "this server runs no actions");
    if (hd__actions_count(s->actions) >= HD_MAX_ACTIONS)
        return herald_fail(err, HERALD_EBUSY, "too many actions are running: try again later");
    /* One client's flood waits behind its own actions, not ahead of everyone's. */
    if (c->nactions >= HD_MAX_CONN_ACTIONS)
        return herald_fail(err, HERALD_EBUSY,
                           "this connection has %d actions running: wait for their answers",
                           HD_MAX_CONN_ACTIONS);
    hd_action *act = hd__action_new(norm, args, &c->identity, c->admin);
    if (!act || (id && !(act->request_id = strdup(id)))) {
        hd__action_free(act);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    act->origin = c;
    act->origin_serial = c->serial;
    c->pending_requests++;
    c->nactions++;
    hd__actions_submit(s->actions, act);
    return 0;
}

/* An action of a client ended: its answer. */
static void action_answer(hd_server *s, hd_action *act)
{
    hd_conn *c = act->origin;
    if (c->nactions) c->nactions--;
    if (c->dead || c->serial != act->origin_serial) {
        hd__conn_release(c);
        return;
    }
    if (c->sync) {
        hd__sync_action_answer(s, c, act);
    } else if (c->websocket) {
        if (act->rc)
            hd__proto_error_data(c, act->request_id, act->rc, act->err.message, &act->err_data);
        else
            hd__proto_send(c, "result", act->request_id, 0, &act->result);
    } else if (act->route) {
        hd__route_answer(s, c, act);
    } else if (act->rc) {
        http_error_data(c, act->rc, act->err.message, &act->err_data);
    } else {
        http_success(c, &act->result, 0);
    }
    hd__conn_release(c);
}

void hd__actions_drain(hd_server *s)
{
    if (!s->actions) return;
    for (hd_wreq *r = hd__actions_take_writes(s->actions), *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->upload_tmp && !hd__storage_admit(s, r)) {
            /* A file that does not fit: the action gets the refusal, nothing is written. */
            hd__actions_written(s->actions, r);
            hd__wreq_free(r);
            continue;
        }
        hd__writer_submit(s->writer, r);
    }
    for (hd_action *act = hd__actions_take_done(s->actions), *next; act; act = next) {
        next = act->next;
        act->next = NULL;
        hd__metrics_action_done(s, act);
        if (act->scheduled_id)
            hd__sched_action_done(s, act);
        else if (act->origin)
            action_answer(s, act);
        hd__action_free(act);
    }
}
