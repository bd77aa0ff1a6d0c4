/*
 * Fuzz target for the HTTP API for workers (docs/protocol.md, "HTTP
 * API"): hd__http_request() of src/proto.c on a real server
 * (tests/fuzz/fuzz_server.h), as server.c calls it once a POST body is
 * complete.
 *
 * The input is one request:
 *
 *   byte 0         the endpoint, by its value modulo 4: /api/query,
 *                  /api/mutation, /api/run (none such), /api
 *   up to '\n'     the Authorization header's value (empty: no header)
 *   the rest       the body
 *
 * Whatever the request, it must be answered exactly once: once the writer
 * is done, the connection holds a reply with an HTTP status the API uses,
 * and the reply is a JSON object whose `status` is "success" (HTTP 200)
 * or "error". A crash, a sanitizer report or a leak is a bug too.
 * HERALD_FUZZ_VERBOSE=1 prints each request and its reply.
 */
#include <stdint.h>

#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const hd_conn *c)
{
    const char *problem = NULL;
    cJSON *j = c->http_reply ? cJSON_ParseWithLength(c->http_reply, c->http_reply_len) : NULL;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
    bool success = cJSON_IsString(status) && !strcmp(status->valuestring, "success");
    if (!c->http_reply || c->http_waiting)
        problem = "the request was not answered";
    else if (!cJSON_IsObject(j) || !cJSON_IsString(status))
        problem = "the reply is not a JSON object with a `status`";
    else if (success != (c->http_status == 200) ||
             (!success && strcmp(status->valuestring, "error")))
        problem = "the reply's `status` does not match its HTTP status";
    else if (c->http_status != 200 && c->http_status != 400 && c->http_status != 401 &&
             c->http_status != 404 && c->http_status != 500)
        problem = "the HTTP status is not one the API uses";
    cJSON_Delete(j);
    if (fz.verbose)
        fprintf(stderr, "  <- %d %.*s\n", c->http_status,
                (int)(c->http_reply_len > 600 ? 600 : c->http_reply_len),
                c->http_reply ? c->http_reply : "(none)");
    if (problem) {
        fprintf(stderr, "fuzz_http: %s (HTTP %d): %.*s\n", problem, c->http_status,
                (int)(c->http_reply_len > 2000 ? 2000 : c->http_reply_len),
                c->http_reply ? c->http_reply : "");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/api/query", "/api/mutation", "/api/run", "/api"};
    if (size < 1) return 0;
    fz_begin_input();
    const char *path = paths[data[0] % 4];
    const char *rest = (const char *)data + 1, *end = (const char *)data + size;
    const char *nl = memchr(rest, '\n', (size_t)(end - rest));
    const char *body = nl ? nl + 1 : end;
    /* The header as server.c hands it over: a string (lws stops it at a NUL byte). */
    size_t auth_len = (size_t)((nl ? nl : end) - rest);
    char *auth = malloc(auth_len + 1);
    size_t body_len = (size_t)(end - body);
    char *body_copy = malloc(body_len ? body_len : 1);
    if (!auth || !body_copy) abort();
    memcpy(auth, rest, auth_len);
    auth[auth_len] = 0;
    memcpy(body_copy, body, body_len);
    if (fz.verbose) fprintf(stderr, "-> POST %s [%s] %.*s\n", path, auth, (int)body_len, body_copy);

    hd_conn *c = fz_conn_open(false);
    hd__http_request(&fz.s, c, path, auth, body_copy, body_len);
    free(auth);
    free(body_copy);
    fz_settle();
    check_reply(c);
    fz_conn_close(c);
    fz_end_input();
    return 0;
}
