/*
 * Convex's sync protocol (docs/convex-clients.md): what the official
 * `convex` npm client speaks at /api/<version>/sync, as a second codec over
 * the same subscription engine as the native protocol (proto.c, sub.c).
 *
 * The client keeps a version {querySet, identity, ts} and checks that each
 * Transition starts exactly where the last one ended; so each connection
 * keeps the version it last sent and the modifications gathered since
 * (QueryUpdated with whole values, QueryFailed, QueryRemoved), and sends
 * them as one Transition when the subscriptions are consistent: after a
 * message is handled, after a commit's MutationResponses (a mutation's
 * promise resolves only at a Transition that reaches its ts, which must come
 * after its response), or when a result comes back from an evaluator.
 *
 * ts is Herald's commit version, which is persisted and only grows: a
 * client's maxObservedTimestamp stays meaningful across server restarts.
 * Mutations are applied once per (session, request id): the pair is the
 * request's idempotency key, so a client that re-sends its unanswered
 * mutations after a reconnect gets the first answer again.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "server.h"

/* The official client reconnects after 60 s without a message; the real server pings at 15
 * (or at a quarter of --idle-timeout when that is shorter). */
#define PING_SECONDS   15.0
#define PINGS_PER_TICK 512
/* A client's ids are JavaScript numbers: integers up to 2^53. */
#define MAX_ID 9007199254740991.0

struct hd_sync {
    hd_conn *conn;
    char session[80]; /* Connect's sessionId: with a request id, a mutation's idempotency key */
    bool connected;
    /* The client's version now, and the one the last Transition ended at. */
    uint64_t query_set, identity;
    uint64_t sent_query_set, sent_identity, sent_ts;
    uint64_t newest; /* newest result version among the gathered modifications */
    hd_buf mods;     /* gathered modifications, comma-separated */
    size_t nmods;
    hd_link dirty;    /* on the server's list: a Transition is due */
    double last_sent; /* when something was last queued to the client */
    hd_link quiet;    /* on the server's list by last_sent */
};

bool hd__sync_path(const char *uri)
{
    /* /api/<version>/sync, the version one path segment. */
    if (strncmp(uri, "/api/", 5)) return false;
    const char *v = uri + 5, *slash = strchr(v, '/');
    return slash && slash > v && !strcmp(slash, "/sync");
}

/* ---- the server's lists: connections with a Transition due, and by quiet time ---- */

static void mark_dirty(hd_sync *y)
{
    if (!y->dirty.on) hd__dlist_push_back(&y->conn->srv->sync_dirty, &y->dirty);
}

void hd__sync_sent(hd_conn *c, double now)
{
    c->sync->last_sent = now;
    hd__dlist_push_back(&c->srv->sync_quiet, &c->sync->quiet);
}

int hd__sync_attach(hd_conn *c)
{
    hd_sync *y = calloc(1, sizeof *y);
    if (!y) return HERALD_ENOMEM;
    y->conn = c;
    c->sync = y;
    hd__sync_sent(c, hd__now());
    return 0;
}

void hd__sync_detach(hd_conn *c)
{
    hd_sync *y = c->sync;
    if (!y) return;
    hd__dlist_unlink(&c->srv->sync_dirty, &y->dirty);
    hd__dlist_unlink(&c->srv->sync_quiet, &y->quiet);
    hd__buf_free(&y->mods);
    free(y);
    c->sync = NULL;
}

void hd__sync_pings(hd_server *s, double now)
{
    static const char ping[] = "{\"type\":\"Ping\"}";
    double every = s->cfg.idle_seconds / 4 < PING_SECONDS ? s->cfg.idle_seconds / 4 : PING_SECONDS;
    hd_sync *y;
    int n = 0;
    while ((y = HD_CONTAINER(s->sync_quiet.head, hd_sync, quiet)) && now - y->last_sent >= every &&
           n++ < PINGS_PER_TICK) {
        hd_conn *c = y->conn;
        if (c->closing || !c->wsi || hd__conn_send(c, ping, sizeof ping - 1))
            hd__sync_sent(c, now); /* to the back either way: the list moves on */
    }
}

/* ---- values ---- */

/* Field names the official client accepts: printable ASCII, not `$`-first, at most 1,024. */
static int check_names(const herald_value *v, herald_error *err)
{
    if (v->type == HERALD_ARRAY) {
        for (size_t i = 0; i < v->u.arr.len; i++)
            if (check_names(&v->u.arr.items[i], err)) return err->code;
    } else if (v->type == HERALD_OBJECT) {
        for (size_t i = 0; i < v->u.obj.len; i++) {
            const herald_field *f = &v->u.obj.fields[i];
            bool ok = f->key_len > 0 && f->key_len <= 1024 && f->key[0] != '$';
            for (size_t k = 0; ok && k < f->key_len; k++)
                ok = f->key[k] >= 32 && f->key[k] <= 126;
            if (!ok)
                return herald_fail(err, HERALD_EINVAL,
                                   "the result has a field name a Convex client cannot read "
                                   "(printable ASCII only, at most 1024 characters): `%.64s`",
                                   f->key);
            if (check_names(&f->val, err)) return err->code;
        }
    }
    return 0;
}

char *hd__sync_value_json(const herald_value *v, herald_error *err)
{
    herald_value nullv = herald_null();
    if (v->type == HERALD_UNDEFINED) v = &nullv;
    if (check_names(v, err)) return NULL;
    char *j = herald_value_to_json(v);
    if (!j) herald_fail(err, HERALD_ENOMEM, "out of memory");
    return j;
}

/* Appends a Convex EncodedTS: base64 of the 8 little-endian bytes. */
static void put_ts(hd_buf *b, uint64_t ts)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(ts >> (8 * i));
    hd__buf_byte(b, '"');
    hd__base64_encode(b, le, sizeof le, false);
    hd__buf_byte(b, '"');
}

static bool get_ts(const herald_value *v, uint64_t *ts)
{
    if (!v || v->type != HERALD_STRING) return false;
    hd_buf raw = HD_BUF_INIT;
    bool ok = hd__base64_decode(&raw, v->u.s.ptr, v->u.s.len, false) && raw.len == 8;
    *ts = 0;
    for (int i = 0; ok && i < 8; i++)
        *ts |= (uint64_t)raw.p[i] << (8 * i);
    hd__buf_free(&raw);
    return ok;
}

static void put_u64(hd_buf *b, uint64_t n)
{
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)n);
    hd__buf_str(b, t);
}

/* ---- out ---- */

static void send_buf(hd_conn *c, hd_buf *b)
{
    if (!b->failed) hd__conn_send(c, (const char *)b->p, b->len);
    hd__buf_free(b);
}

static void begin_mod(hd_sync *y)
{
    if (y->nmods++) hd__buf_byte(&y->mods, ',');
    mark_dirty(y);
}

void hd__sync_query(hd_conn *c, const char *sub_id, const hd_qinst *qi, const char *json)
{
    hd_sync *y = c->sync;
    herald_error err = {0};
    char *own = NULL;
    int rc = qi->rc;
    if (!rc && !json && !(json = own = hd__sync_value_json(&qi->result, &err))) rc = err.code;
    const herald_error *e = qi->rc ? &qi->err : &err;
    begin_mod(y);
    hd_buf *b = &y->mods;
    hd__buf_str(b, rc ? "{\"type\":\"QueryFailed\",\"queryId\":"
                      : "{\"type\":\"QueryUpdated\",\"queryId\":");
    hd__buf_str(b, sub_id); /* the client's queryId, a number */
    if (rc) {
        hd__buf_str(b, ",\"errorMessage\":");
        hd__json_str(b, e->message[0] ? e->message : herald_strerror(rc));
        if (qi->rc) hd__json_field(b, "errorData", &qi->err_data);
    } else {
        hd__buf_str(b, ",\"value\":");
        hd__buf_str(b, json);
    }
    hd__buf_str(b, ",\"logLines\":[],\"journal\":");
    if (qi->journal)
        hd__json_str(b, qi->journal);
    else
        hd__buf_str(b, "null");
    hd__buf_byte(b, '}');
    if (qi->version > y->newest) y->newest = qi->version;
    free(own);
}

static void removed(hd_sync *y, const char *sub_id)
{
    begin_mod(y);
    hd__buf_str(&y->mods, "{\"type\":\"QueryRemoved\",\"queryId\":");
    hd__buf_str(&y->mods, sub_id);
    hd__buf_byte(&y->mods, '}');
}

static void put_version(hd_buf *b, uint64_t qs, uint64_t identity, uint64_t ts)
{
    hd__buf_str(b, "{\"querySet\":");
    put_u64(b, qs);
    hd__buf_str(b, ",\"identity\":");
    put_u64(b, identity);
    hd__buf_str(b, ",\"ts\":");
    put_ts(b, ts);
    hd__buf_byte(b, '}');
}

/* Sends the gathered modifications as one Transition from the last version sent. */
static void flush(hd_server *s, hd_sync *y)
{
    hd_conn *c = y->conn;
    uint64_t ts = y->sent_ts;
    if (s->seen_version > ts) ts = s->seen_version;
    if (y->newest > ts) ts = y->newest;
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"Transition\",\"startVersion\":");
    put_version(&b, y->sent_query_set, y->sent_identity, y->sent_ts);
    hd__buf_str(&b, ",\"endVersion\":");
    put_version(&b, y->query_set, y->identity, ts);
    hd__buf_str(&b, ",\"modifications\":[");
    hd__buf_append(&b, y->mods.p, y->mods.len);
    hd__buf_str(&b, "]}");
    if (y->mods.failed) b.failed = true;
    bool had_mods = y->nmods > 0;
    y->mods.len = 0;
    y->mods.failed = false;
    y->nmods = 0;
    y->newest = 0;
    if (b.failed) {
        /* The client's state would go wrong without it: it reconnects and starts afresh. */
        hd__buf_free(&b);
        hd__conn_close(c, "InternalServerError: out of memory");
        return;
    }
    y->sent_query_set = y->query_set;
    y->sent_identity = y->identity;
    y->sent_ts = ts;
    if (had_mods) s->updates_sent++;
    send_buf(c, &b);
}

void hd__sync_flush_all(hd_server *s)
{
    for (hd_sync *y = HD_CONTAINER(s->sync_dirty.head, hd_sync, dirty), *next; y; y = next) {
        next = HD_CONTAINER(y->dirty.next, hd_sync, dirty);
        /* A result at an evaluator thread: the client waits for all of them together. */
        if (y->conn->npending) continue;
        hd__dlist_unlink(&s->sync_dirty, &y->dirty);
        flush(s, y);
    }
}

void hd__sync_error(hd_conn *c, int code, const char *message)
{
    char reason[100];
    /* The client reconnects after a close (a FatalError would stop it for good). */
    snprintf(reason, sizeof reason, "%s: %.80s", herald_errcode_name(code),
             message && message[0] ? message : herald_strerror(code));
    hd__conn_close(c, reason);
}

static void auth_error(hd_conn *c, const char *message, uint64_t base, bool attempted)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"type\":\"AuthError\",\"error\":");
    hd__json_str(&b, message);
    hd__buf_str(&b, ",\"baseVersion\":");
    put_u64(&b, base);
    hd__buf_str(&b,
                attempted ? ",\"authUpdateAttempted\":true}" : ",\"authUpdateAttempted\":false}");
    send_buf(c, &b);
}

void hd__sync_auth_lost(hd_conn *c, const char *message)
{
    hd_sync *y = c->sync;
    /* For the identity the client has now (its last Authenticate's base is one less). */
    auth_error(c, message, y->identity ? y->identity - 1 : 0, false);
}

/*
 * A MutationResponse (ts: the commit's version) or an ActionResponse for
 * request `rid`: its result, or its failure with the error's data.
 */
static void send_response(hd_conn *c, bool action, const char *rid, uint64_t ts, int rc,
                          const char *message, const herald_value *result, const herald_value *data)
{
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, action ? "{\"type\":\"ActionResponse\",\"requestId\":"
                           : "{\"type\":\"MutationResponse\",\"requestId\":");
    hd__buf_str(&b, rid ? rid : "0");
    herald_error err = {0};
    char *json = rc ? NULL : hd__sync_value_json(result, &err);
    if (rc || !json) {
        char m[sizeof err.message + 80];
        if (!rc)
            snprintf(m, sizeof m, "the %s, but its result cannot be sent: %s",
                     action ? "action ran" : "mutation was committed", err.message);
        hd__buf_str(&b, ",\"success\":false,\"result\":");
        hd__json_str(&b, rc ? (message && message[0] ? message : herald_strerror(rc)) : m);
        if (rc) hd__json_field(&b, "errorData", data);
    } else {
        hd__buf_str(&b, ",\"success\":true,\"result\":");
        hd__buf_str(&b, json);
        if (!action) {
            hd__buf_str(&b, ",\"ts\":");
            put_ts(&b, ts);
        }
    }
    free(json);
    hd__buf_str(&b, ",\"logLines\":[]}");
    send_buf(c, &b);
}

void hd__sync_answer(hd_server *s, hd_conn *c, hd_wreq *r)
{
    send_response(c, false, r->request_id, r->version ? r->version : s->seen_version, r->rc,
                  r->err.message, &r->result, &r->error_data);
    /* The promise resolves at the next Transition that reaches the commit: it follows. */
    mark_dirty(c->sync);
}

void hd__sync_action_answer(hd_server *s, hd_conn *c, hd_action *act)
{
    (void)s;
    send_response(c, true, act->request_id, 0, act->rc, act->err.message, &act->result,
                  &act->err_data);
}

/* ---- in ---- */

/* A client id (queryId, requestId): a non-negative integer JavaScript number, as text. */
static bool get_id(const herald_value *msg, const char *name, char *out, size_t n)
{
    const herald_value *v = herald_object_get(msg, name);
    if (!v) return false;
    double d = v->type == HERALD_FLOAT64 ? v->u.f : v->type == HERALD_INT64 ? (double)v->u.i : -1;
    if (!(d >= 0 && d <= MAX_ID) || floor(d) != d) return false;
    snprintf(out, n, "%.0f", d);
    return true;
}

static bool get_count(const herald_value *msg, const char *name, uint64_t *out)
{
    char t[24];
    if (!get_id(msg, name, t, sizeof t)) return false;
    *out = strtoull(t, NULL, 10);
    return true;
}

static const char *get_str(const herald_value *msg, const char *name)
{
    const herald_value *v = herald_object_get(msg, name);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

/* Convex sends a function's arguments as a one-element array holding the object. */
static const herald_value *get_args(const herald_value *msg)
{
    const herald_value *a = herald_object_get(msg, "args");
    if (!a) return NULL;
    if (a->type != HERALD_ARRAY || a->u.arr.len != 1 || a->u.arr.items[0].type != HERALD_OBJECT)
        return NULL;
    return &a->u.arr.items[0];
}

static int on_connect(hd_server *s, hd_conn *c, const herald_value *msg)
{
    hd_sync *y = c->sync;
    const char *session = get_str(msg, "sessionId");
    if (!session || !session[0] || strlen(session) >= sizeof y->session) return -1;
    snprintf(y->session, sizeof y->session, "%s", session);
    y->connected = true;
    uint64_t seen;
    const herald_value *mo = herald_object_get(msg, "maxObservedTimestamp");
    if (mo && mo->type != HERALD_NULL && !get_ts(mo, &seen)) return -1;
    if (mo && mo->type != HERALD_NULL && seen > herald_store_version(s->store)) {
        /*
         * It saw a state this server does not have (another server's, or a data folder
         * restored from a backup): reconnecting would not help, so the client is told to
         * stop (FatalError) rather than retry forever; a page reload starts it afresh.
         */
        static const char fatal[] =
            "{\"type\":\"FatalError\",\"error\":\"this client has seen a newer state than the "
            "server holds (another server's, or data restored from a backup): reload the page\"}";
        hd__conn_send(c, fatal, sizeof fatal - 1);
        hd__conn_close(c, "the client has seen a newer state than the server holds");
    }
    return 0;
}

static void on_modify(hd_server *s, hd_conn *c, const herald_value *msg)
{
    hd_sync *y = c->sync;
    uint64_t base, next;
    const herald_value *mods = herald_object_get(msg, "modifications");
    if (!get_count(msg, "baseVersion", &base) || !get_count(msg, "newVersion", &next) || !mods ||
        mods->type != HERALD_ARRAY) {
        hd__sync_error(c, HERALD_EINVAL,
                       "ModifyQuerySet needs baseVersion, newVersion and "
                       "modifications");
        return;
    }
    if (base != y->query_set || next <= base) {
        hd__sync_error(c, HERALD_EINVAL, "ModifyQuerySet does not follow the query set's version");
        return;
    }
    for (size_t i = 0; i < mods->u.arr.len; i++) {
        const herald_value *m = &mods->u.arr.items[i];
        const char *type = get_str(m, "type");
        char qid[24];
        if (!type || !get_id(m, "queryId", qid, sizeof qid)) {
            hd__sync_error(c, HERALD_EINVAL, "a modification needs a type and a queryId");
            return;
        }
        if (!strcmp(type, "Remove")) {
            hd__sub_remove(s, c, qid);
            removed(y, qid);
            continue;
        }
        if (strcmp(type, "Add")) {
            hd__sync_error(c, HERALD_EINVAL, "a modification is an Add or a Remove");
            return;
        }
        herald_error err = {0};
        const herald_value *jv = herald_object_get(m, "journal");
        hd_subspec spec = {.fn_path = get_str(m, "udfPath"),
                           .fn_args = get_args(m),
                           .journal = jv && jv->type == HERALD_STRING ? jv->u.s.ptr : NULL};
        int rc;
        if (!spec.fn_path)
            rc = herald_fail(&err, HERALD_EINVAL, "an Add needs a udfPath");
        else if (!spec.fn_args)
            rc = herald_fail(&err, HERALD_EINVAL, "`args` must be an array holding one object");
        else
            rc = hd__sub_add(s, c, qid, &spec, &err);
        if (rc) {
            hd_qinst failed = {.rc = rc, .err = err};
            hd__sync_query(c, qid, &failed, NULL);
        }
    }
    y->query_set = next;
    mark_dirty(y);
}

static void on_mutation(hd_server *s, hd_conn *c, const herald_value *msg, bool action)
{
    hd_sync *y = c->sync;
    char rid[24];
    if (!get_id(msg, "requestId", rid, sizeof rid)) {
        hd__sync_error(c, HERALD_EINVAL, "a Mutation or Action needs a requestId");
        return;
    }
    herald_error err = {0};
    const char *path = get_str(msg, "udfPath");
    const herald_value *args = get_args(msg);
    int rc;
    if (!path) {
        rc = herald_fail(&err, HERALD_EINVAL, "a Mutation or Action needs a udfPath");
    } else if (!args) {
        rc = herald_fail(&err, HERALD_EINVAL, "`args` must be an array holding one object");
    } else if (!y->connected) {
        rc = herald_fail(&err, HERALD_EINVAL, "Connect comes first");
    } else if (action) {
        rc = hd__submit_action(s, c, rid, path, args, &err);
    } else {
        /* Once per (session, request): a re-sent mutation gets its first answer again. */
        char key[128];
        herald_value idem;
        snprintf(key, sizeof key, "convex:%s:%s", y->session, rid);
        if (herald_string(&idem, key, strlen(key))) {
            rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        } else {
            rc = hd__submit(s, c, rid, NULL, path, args, &idem, &err);
            herald_value_free(&idem);
        }
    }
    if (!rc) return;
    send_response(c, action, rid, 0, rc, err.message, NULL, NULL);
}

static void on_authenticate(hd_server *s, hd_conn *c, const herald_value *msg)
{
    hd_sync *y = c->sync;
    uint64_t base;
    const char *type = get_str(msg, "tokenType");
    if (!get_count(msg, "baseVersion", &base) || !type ||
        (strcmp(type, "None") && !get_str(msg, "value"))) {
        hd__sync_error(c, HERALD_EINVAL,
                       "Authenticate needs a baseVersion, a tokenType and a value");
        return;
    }
    if (strcmp(type, "None") && strcmp(type, "User") && strcmp(type, "Admin")) {
        hd__sync_error(c, HERALD_EINVAL, "tokenType is User, Admin or None");
        return;
    }
    herald_error err = {0};
    const char *token = strcmp(type, "None") ? get_str(msg, "value") : NULL;
    /* An admin key is no JWT, and a JWT is not the admin key. */
    bool admin_type = !strcmp(type, "Admin"), is_jwt = token && strchr(token, '.');
    int rc = token && admin_type == is_jwt
                 ? herald_fail(&err, HERALD_EACCESS, "the token is not valid")
                 : hd__authenticate(s, c, token, &err);
    if (!rc && admin_type && !c->admin) rc = herald_fail(&err, HERALD_EACCESS, "not the admin key");
    if (rc) {
        hd__authenticate(s, c, NULL, &err);
        auth_error(c, err.message[0] ? err.message : "the token is not valid", base, true);
    } else {
        y->identity = base + 1;
    }
    /* Every subscription runs again with the rights the connection has now. */
    mark_dirty(y);
    hd__sub_reauth(s, c);
}

void hd__sync_message(hd_server *s, hd_conn *c, const char *text, size_t len)
{
    herald_value msg;
    herald_error err = {0};
    int rc = herald_value_from_json(text, len, &msg, &err);
    if (rc) {
        hd__sync_error(c, rc, err.message);
        return;
    }
    const char *type = msg.type == HERALD_OBJECT ? get_str(&msg, "type") : NULL;
    if (!type) {
        hd__sync_error(c, HERALD_EINVAL, "a message is an object with a `type`");
    } else if (!strcmp(type, "Connect")) {
        if (on_connect(s, c, &msg)) hd__sync_error(c, HERALD_EINVAL, "Connect needs a sessionId");
    } else if (!strcmp(type, "ModifyQuerySet")) {
        on_modify(s, c, &msg);
    } else if (!strcmp(type, "Mutation") || !strcmp(type, "Action")) {
        on_mutation(s, c, &msg, !strcmp(type, "Action"));
    } else if (!strcmp(type, "Authenticate")) {
        on_authenticate(s, c, &msg);
    } else if (strcmp(type, "Event")) {
        /* Events are the client's debug reports: nothing to do. Anything else is a mistake. */
        hd__sync_error(c, HERALD_EINVAL, "unknown message type");
    }
    herald_value_free(&msg);
    hd__sync_flush_all(s);
}
