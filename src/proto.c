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

#include "server.h"

#define PROTOCOL_VERSION 1

bool hd__admin_ok(hd_server *s, const char *key)
{
    if (!s->have_admin || !key) return false;
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), h);
    return CRYPTO_memcmp(h, s->admin_hash, sizeof h) == 0;
}

/* Appends a JSON string (Convex JSON) for a C string. */
static void json_str(hd_buf *b, const char *s)
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

void hd__proto_error(hd_conn *c, const char *id, int code, const char *message)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"error\",\"id\":");
    if (id)
        json_str(&b, id);
    else
        hd__buf_str(&b, "null");
    hd__buf_str(&b, ",\"code\":");
    json_str(&b, herald_errcode_name(code));
    hd__buf_str(&b, ",\"message\":");
    json_str(&b, message && message[0] ? message : herald_strerror(code));
    hd__buf_byte(&b, '}');
    send_buf(c, &b);
}

static void send_simple(hd_conn *c, const char *type, const char *id, uint64_t version,
                        const herald_value *value)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"");
    hd__buf_str(&b, type);
    hd__buf_str(&b, "\",\"id\":");
    if (id)
        json_str(&b, id);
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
    send_buf(c, &b);
}

static bool may_write_raw(hd_server *s, hd_conn *c)
{
    return c->admin || s->cfg.dev;
}

/* Runs a one-shot query in a fresh snapshot. */
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

static int submit(hd_server *s, hd_conn *c, const char *id, const herald_value *ops,
                  const herald_value *idem, herald_error *err)
{
    if (idem &&
        (idem->type != HERALD_STRING || idem->u.s.len == 0 || idem->u.s.len > HERALD_MAX_IDEM_KEY))
        return herald_fail(err, HERALD_EINVAL, "`idempotencyKey` must be a string of 1 to %d bytes",
                           HERALD_MAX_IDEM_KEY);
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (herald_value_copy(&r->ops, ops) || (id && !(r->request_id = strdup(id))) ||
        (idem && !(r->idempotency_key = strdup(idem->u.s.ptr)))) {
        hd__wreq_free(r);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    r->origin = c;
    r->origin_serial = c->serial;
    c->pending_requests++;
    hd__writer_submit(s->writer, r);
    return 0;
}

static const char *get_str(const herald_value *msg, const char *name)
{
    const herald_value *v = herald_object_get(msg, name);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
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
        send_simple(c, "pong", id, 0, NULL);
    } else if (!strcmp(type, "auth")) {
        const char *token = get_str(&msg, "token");
        if (hd__admin_ok(s, token)) {
            c->admin = true;
            send_simple(c, "ack", id, 0, NULL);
        } else {
            hd__proto_error(c, id, HERALD_EACCESS, "the token is not valid");
        }
    } else if (!strcmp(type, "sub") || !strcmp(type, "query") || !strcmp(type, "mutate")) {
        if (!id) {
            hd__proto_error(c, NULL, HERALD_EINVAL, "this message needs an `id` string");
            goto done;
        }
        if (!may_write_raw(s, c)) {
            /* Raw queries and operations need the admin key (functions come later). */
            hd__proto_error(c, id, HERALD_EACCESS,
                            "raw queries and mutations need the admin key (or a server in --dev)");
            goto done;
        }
        if (!strcmp(type, "mutate")) {
            const herald_value *ops = herald_object_get(&msg, "ops");
            if (!ops) {
                hd__proto_error(c, id, HERALD_EINVAL, "`mutate` needs `ops`");
            } else if ((rc = submit(s, c, id, ops, herald_object_get(&msg, "idempotencyKey"),
                                    &err))) {
                hd__proto_error(c, id, rc, err.message);
            }
            goto done;
        }
        const herald_value *query = herald_object_get(&msg, "query");
        if (!query) {
            hd__proto_error(c, id, HERALD_EINVAL, "this message needs a `query`");
            goto done;
        }
        if (!strcmp(type, "sub")) {
            if ((rc = hd__sub_add(s, c, id, query, &err))) hd__proto_error(c, id, rc, err.message);
        } else {
            herald_value result;
            uint64_t version = 0;
            if ((rc = run_query(s, query, &result, &version, &err))) {
                hd__proto_error(c, id, rc, err.message);
            } else {
                send_simple(c, "result", id, version, &result);
                herald_value_free(&result);
            }
        }
    } else if (!strcmp(type, "unsub")) {
        if (!id || hd__sub_remove(s, c, id))
            hd__proto_error(c, id, HERALD_ENOTFOUND, "no such subscription");
        else
            send_simple(c, "ack", id, 0, NULL);
    } else {
        hd__proto_error(c, id, HERALD_EINVAL, "unknown message type");
    }
done:
    herald_value_free(&msg);
}

/* ---- HTTP API ---- */

static void http_reply(hd_conn *c, int status, hd_buf *body)
{
    free(c->http_reply);
    c->http_status = status;
    c->http_reply = (char *)hd__buf_take(body, &c->http_reply_len);
    c->http_waiting = false;
    if (c->wsi) lws_callback_on_writable(c->wsi);
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

static void http_error(hd_conn *c, int code, const char *message)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"status\":\"error\",\"errorMessage\":");
    json_str(&b, message && message[0] ? message : herald_strerror(code));
    hd__buf_str(&b, ",\"code\":");
    json_str(&b, herald_errcode_name(code));
    hd__buf_byte(&b, '}');
    http_reply(c, http_status_of(code), &b);
}

static void http_success(hd_conn *c, const herald_value *value)
{
    hd_buf b = HD_BUF_INIT;
    char *j = herald_value_to_json(value);
    hd__buf_str(&b, "{\"status\":\"success\",\"value\":");
    if (j)
        hd__buf_str(&b, j);
    else
        b.failed = true;
    free(j);
    hd__buf_byte(&b, '}');
    if (b.failed) {
        hd__buf_free(&b);
        http_error(c, HERALD_ENOMEM, NULL);
        return;
    }
    http_reply(c, 200, &b);
}

void hd__http_request(hd_server *s, hd_conn *c, const char *path, const char *auth,
                      const char *body, size_t len)
{
    const char *key = auth && !strncmp(auth, "Bearer ", 7) ? auth + 7 : NULL;
    c->admin = hd__admin_ok(s, key);
    herald_value msg = herald_undefined();
    herald_error err = {0};
    int rc = 0;
    bool is_query = !strcmp(path, "/api/query"), is_mutation = !strcmp(path, "/api/mutation");
    if (!is_query && !is_mutation) {
        http_error(c, HERALD_ENOTFOUND, "no such API endpoint");
        return;
    }
    if (!may_write_raw(s, c)) {
        http_error(c, HERALD_EACCESS, "this request needs `Authorization: Bearer <admin key>`");
        return;
    }
    if ((rc = herald_value_from_json(body, len, &msg, &err))) {
        http_error(c, rc, err.message);
        return;
    }
    const herald_value *args = herald_object_get(&msg, "args");
    const char *fn = get_str(&msg, "path");
    if (msg.type != HERALD_OBJECT) {
        http_error(c, HERALD_EINVAL, "the body must be a JSON object");
    } else if (fn) {
        http_error(c, HERALD_ENOTFOUND, "server functions are not available yet");
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
            http_success(c, &result);
            herald_value_free(&result);
        }
    } else {
        const herald_value *ops = herald_object_get(&msg, "ops");
        if (!ops) {
            http_error(c, HERALD_EINVAL, "expected {\"ops\": [...]}");
        } else if ((rc =
                        submit(s, c, NULL, ops, herald_object_get(&msg, "idempotencyKey"), &err))) {
            http_error(c, rc, err.message);
        } else {
            c->http_waiting = true;
        }
    }
    herald_value_free(&msg);
}

void hd__proto_answer(hd_server *s, hd_wreq *r)
{
    (void)s;
    hd_conn *c = r->origin;
    if (!c || c->dead || c->serial != r->origin_serial) {
        if (c) hd__conn_release(c);
        return;
    }
    if (c->websocket) {
        if (r->rc)
            hd__proto_error(c, r->request_id, r->rc, r->err.message);
        else
            send_simple(c, "ack", r->request_id, r->version, &r->result);
    } else if (r->rc) {
        http_error(c, r->rc, r->err.message);
    } else {
        http_success(c, &r->result);
    }
    hd__conn_release(c);
}
