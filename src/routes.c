/*
 * The app's HTTP routes (docs/functions.md, "HTTP routes"): functions/http.lua
 * maps a method and a path under /http to a herald.httpAction, which runs at
 * the action pool with the request and answers with its response.
 *
 * The request the handler gets: method, url, path (after /http), query (an
 * object of the query string's parameters), headers (an object, names
 * lower-case: the standard ones, and those the route names in `headers`)
 * and body (bytes). CORS is the app's: no header is added to its response.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "server.h"

bool hd__route_path(const char *uri)
{
    return !strncmp(uri, HD_ROUTES_PREFIX, sizeof HD_ROUTES_PREFIX - 1) &&
           (uri[sizeof HD_ROUTES_PREFIX - 1] == '/' || !uri[sizeof HD_ROUTES_PREFIX - 1]);
}

static const struct {
    enum lws_token_indexes token;
    const char *name;
    bool body;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET", false},      {WSI_TOKEN_POST_URI, "POST", true},
    {WSI_TOKEN_PUT_URI, "PUT", true},       {WSI_TOKEN_PATCH_URI, "PATCH", true},
    {WSI_TOKEN_DELETE_URI, "DELETE", true}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS", false},
    {WSI_TOKEN_HEAD_URI, "HEAD", false},
};

int hd__route_begin(hd_server *s, hd_conn *c, struct lws *wsi, const char *uri, bool *body,
                    char *msg, size_t n)
{
    const char *path = uri + sizeof HD_ROUTES_PREFIX - 1;
    const char *method = NULL;
    *body = false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0] && !method; i++)
        if (lws_hdr_total_length(wsi, methods[i].token) > 0) {
            method = methods[i].name;
            *body = methods[i].body && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
        }
    bool mismatch = false;
    const hd_fnroute *r =
        method && s->fnrt ? hd__fnrt_route(s->fnrt, method, path[0] ? path : "/", &mismatch) : NULL;
    if (!r) {
        snprintf(msg, n, mismatch ? "this route takes other methods than %s" : "no route for %s %s",
                 method ? method : "this method", path[0] ? path : "/");
        return mismatch ? 405 : 404;
    }
    snprintf(c->route_handler, sizeof c->route_handler, "%s", r->handler);
    snprintf(c->route_method, sizeof c->route_method, "%s", method);
    c->http_route = true;
    return 0;
}

/* Sets key `name` (n bytes) of object `o`, unless it has one, to a copy of string `val`. */
static bool set_str(herald_value *o, const char *name, size_t n, const char *val)
{
    char key[128];
    if (n >= sizeof key) return false; /* no such parameter or header is worth keeping */
    memcpy(key, name, n);
    key[n] = 0;
    if (herald_object_get(o, key)) return false; /* the first one counts */
    herald_value v;
    return herald_string(&v, val, strlen(val)) || herald_object_set(o, key, n, v);
}

/* The query string's parameters (lws has them url-decoded, one "k=v" per fragment). */
static bool query_params(struct lws *wsi, herald_value *q, hd_buf *qs)
{
    char frag[2048];
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        char *eq = strchr(frag, '=');
        size_t klen = eq ? (size_t)(eq - frag) : strlen(frag);
        if (qs->len) hd__buf_byte(qs, '&');
        hd__buf_str(qs, frag);
        if (klen && set_str(q, frag, klen, eq ? eq + 1 : "")) return true;
    }
    return qs->failed;
}

/* One header into `h` (absent: nothing); token < 0: one lws knows only by its name. */
static bool add_header(struct lws *wsi, herald_value *h, const char *name, size_t nl, int token)
{
    int len = token >= 0 ? lws_hdr_total_length(wsi, (enum lws_token_indexes)token)
                         : lws_hdr_custom_length(wsi, name, (int)nl);
    if (len < 0 || (token >= 0 && len == 0)) return false;
    char *val = malloc((size_t)len + 1);
    if (!val) return true;
    int got = token >= 0 ? lws_hdr_copy(wsi, val, len + 1, (enum lws_token_indexes)token)
                         : lws_hdr_custom_copy(wsi, val, len + 1, name, (int)nl);
    bool failed = got >= 0 && set_str(h, name, nl - 1, val);
    free(val);
    return failed;
}

/* The request's headers: lws's standard set, and those the route names. */
static bool request_headers(struct lws *wsi, const hd_fnroute *r, herald_value *h)
{
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        size_t nl = name ? strlen(name) : 0;
        if (nl < 2 || name[0] == ':' || name[nl - 1] != ':') continue; /* not a header */
        if (add_header(wsi, h, name, nl, t)) return true;
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        char name[80];
        int nl = snprintf(name, sizeof name, "%s:", r->headers[i]);
        if (nl > 0 && (size_t)nl < sizeof name && add_header(wsi, h, name, (size_t)nl, -1))
            return true;
    }
    return false;
}

/* Answers the route's request with an error now. */
static void route_error(hd_conn *c, int status, int code, const char *message)
{
    hd__http_error(c, code, message);
    c->http_status = status;
}

void hd__route_request(hd_server *s, hd_conn *c, struct lws *wsi)
{
    const char *path = c->http_path + sizeof HD_ROUTES_PREFIX - 1;
    if (!path[0]) path = "/";
    bool mismatch;
    const hd_fnroute *r =
        s->fnrt ? hd__fnrt_route(s->fnrt, c->route_method, path, &mismatch) : NULL;
    if (!r) return route_error(c, 404, HERALD_ENOTFOUND, "no such route"); /* reloaded meanwhile */
    if (!s->actions || hd__actions_count(s->actions) >= HD_MAX_ACTIONS)
        return route_error(c, 503, HERALD_EBUSY, "too many actions are running: try again later");
    /* A bearer token that is the admin key or a JWT of the app's: ctx.auth sees it; any other
     * (the app's own tokens) is the handler's business. */
    int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    char auth[8192] = "";
    herald_error err = {0};
    if (alen > 7 && alen < (int)sizeof auth &&
        lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        !strncmp(auth, "Bearer ", 7) && hd__authenticate(s, c, auth + 7, &err))
        hd__authenticate(s, c, NULL, &err);
    OPENSSL_cleanse(auth, sizeof auth);
    herald_value req, q, h, v;
    hd_buf url = HD_BUF_INIT, qs = HD_BUF_INIT;
    herald_object_init(&req);
    herald_object_init(&q);
    herald_object_init(&h);
    bool failed = query_params(wsi, &q, &qs) || request_headers(wsi, r, &h);
    hd__buf_str(&url, s->public_url);
    hd__buf_str(&url, c->http_path);
    if (qs.len) {
        hd__buf_byte(&url, '?');
        hd__buf_append(&url, qs.p, qs.len);
    }
    failed = failed || url.failed || set_str(&req, "method", 6, c->route_method) ||
             herald_string(&v, (char *)url.p, url.len) || herald_object_set(&req, "url", 3, v) ||
             set_str(&req, "path", 4, path) || herald_object_set(&req, "query", 5, q) ||
             herald_object_set(&req, "headers", 7, h) ||
             herald_bytes(&v, c->in.p ? (const void *)c->in.p : "", c->in.len) ||
             herald_object_set(&req, "body", 4, v);
    hd__buf_free(&url);
    hd__buf_free(&qs);
    hd_action *act = failed ? NULL : hd__action_new(r->handler, NULL, &c->identity, c->admin);
    if (!act) {
        herald_value_free(&req);
        return route_error(c, 500, HERALD_ENOMEM, "out of memory");
    }
    act->request = req;
    act->internal = true;
    act->route = true;
    act->origin = c;
    act->origin_serial = c->serial;
    c->pending_requests++;
    c->http_waiting = true;
    hd__actions_submit(s->actions, act);
}

void hd__route_answer(hd_server *s, hd_conn *c, hd_action *act)
{
    (void)s;
    /* The handler failed: a 500 with the error (its message, as for other functions). */
    if (act->rc) return route_error(c, 500, act->rc, act->err.message);
    const herald_value *status = herald_object_get(&act->result, "status");
    const herald_value *headers = herald_object_get(&act->result, "headers");
    const herald_value *body = herald_object_get(&act->result, "body");
    hd_buf extra = HD_BUF_INIT, b = HD_BUF_INIT;
    snprintf(c->file_type, sizeof c->file_type, "text/plain; charset=utf-8");
    for (size_t i = 0; headers && headers->type == HERALD_ARRAY && i < headers->u.arr.len; i++) {
        const herald_value *pair = &headers->u.arr.items[i];
        if (pair->type != HERALD_ARRAY || pair->u.arr.len != 2 ||
            pair->u.arr.items[0].type != HERALD_STRING ||
            pair->u.arr.items[1].type != HERALD_STRING)
            continue;
        const char *name = pair->u.arr.items[0].u.s.ptr, *value = pair->u.arr.items[1].u.s.ptr;
        /* No header may break the answer apart; lws writes the framing ones itself. */
        if (!name[0] || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n") ||
            !strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
            !strcasecmp(name, "connection"))
            continue;
        if (!strcasecmp(name, "content-type")) {
            snprintf(c->file_type, sizeof c->file_type, "%s", value);
            continue;
        }
        hd__buf_str(&extra, name);
        hd__buf_str(&extra, ": ");
        hd__buf_str(&extra, value);
        hd__buf_str(&extra, "\r\n");
    }
    if (body && body->type == HERALD_BYTES) hd__buf_append(&b, body->u.s.ptr, body->u.s.len);
    int code = status && status->type == HERALD_FLOAT64 ? (int)status->u.f
               : status && status->type == HERALD_INT64 ? (int)status->u.i
                                                        : 200;
    bool bad_status = code < 100 || code > 599;
    if (bad_status || extra.failed || b.failed || extra.len > 16384) {
        hd__buf_free(&extra);
        hd__buf_free(&b);
        return route_error(c, 500, HERALD_EINVAL,
                           bad_status ? "the route answered with a status out of 100-599"
                                      : "the route's response headers are too large");
    }
    hd__buf_byte(&extra, 0);
    free(c->reply_headers);
    c->reply_headers = (char *)hd__buf_take(&extra, NULL);
    hd__http_answer(c, code, &b);
}
