/*
 * File storage over HTTP (docs/protocol.md, "Files"): uploads to the
 * single-use URLs of ctx.storage:generateUploadUrl(), downloads through the
 * URLs of ctx.storage:getUrl(), and the files of deleted rows.
 *
 * An upload is streamed to a temporary file as it arrives (never held in
 * memory), bounded in size, in number at once and in time without
 * progress; its `_storage` row is inserted by the writer, which makes the
 * file durable and renames it to the row's id before the row commits.
 * The URL's nonce is the insert's idempotency key: a URL stores one file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blobs.h"
#include "server.h"

#define DEFAULT_MAX_FILE ((uint64_t)100 * 1024 * 1024)
#define DEFAULT_UPLOADS  16

static int add_size(void *ctx, const herald_value *doc)
{
    const herald_value *n = herald_object_get(doc, "size");
    if (n && n->type == HERALD_FLOAT64 && n->u.f > 0) *(uint64_t *)ctx += (uint64_t)n->u.f;
    return 0;
}

int hd__storage_start(hd_server *s, herald_error *err)
{
    if (!s->cfg.max_file_size) s->cfg.max_file_size = DEFAULT_MAX_FILE;
    if (!s->cfg.max_uploads) s->cfg.max_uploads = DEFAULT_UPLOADS;
    int rc = hd__blobs_dir(s->cfg.data_dir, s->files_dir, sizeof s->files_dir, err);
    if (!rc) rc = hd__blob_key(s->cfg.data_dir, s->blob_key, err);
    size_t swept = 0;
    if (!rc) rc = hd__blobs_sweep(s->store, s->files_dir, &swept, err);
    if (rc) return rc;
    if (swept)
        hd__log(HD_LOG_WARN, "files_swept", "herald: removed %zu files a crash left without a row",
                swept);
    herald_txn *t;
    if ((rc = herald_read_begin(s->store, &t, err))) return rc;
    s->stored_bytes = 0;
    rc = herald_table_scan(t, "_storage", add_size, &s->stored_bytes, err);
    herald_txn_end(t);
    if (rc) return rc;
    const char *host = s->cfg.host && strcmp(s->cfg.host, "0.0.0.0") ? s->cfg.host : "localhost";
    if (s->cfg.public_url)
        snprintf(s->public_url, sizeof s->public_url, "%s", s->cfg.public_url);
    else
        snprintf(s->public_url, sizeof s->public_url, "%s://%s:%d",
                 s->cfg.tls_cert ? "https" : "http", host, s->cfg.port);
    size_t n = strlen(s->public_url);
    while (n && s->public_url[n - 1] == '/')
        s->public_url[--n] = 0;
    s->cfg.fn_limits.storage_key = s->blob_key;
    s->cfg.fn_limits.storage_url = s->public_url;
    s->cfg.fn_limits.files_dir = s->files_dir;
    return 0;
}

int hd__storage_upload_begin(hd_server *s, hd_conn *c, struct lws *wsi, const char *token,
                             char *msg, size_t n)
{
    char len_text[32] = "";
    int ln = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (!hd__upload_token_ok(s->blob_key, token, (double)time(NULL), c->upload_nonce)) {
        snprintf(msg, n, "this upload URL is not valid: expired, or not one Herald made");
        return 404;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0 || ln <= 0) {
        snprintf(msg, n,
                 "an upload needs a Content-Length header (chunked bodies are not accepted)");
        return 411;
    }
    if (ln >= (int)sizeof len_text ||
        lws_hdr_copy(wsi, len_text, sizeof len_text, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
        strspn(len_text, "0123456789") != strlen(len_text)) {
        snprintf(msg, n, "Content-Length is not a number of bytes");
        return 400;
    }
    uint64_t size = strtoull(len_text, NULL, 10);
    if (size > s->cfg.max_file_size) {
        snprintf(msg, n, "the file is larger than %llu bytes (--max-file-size)",
                 (unsigned long long)s->cfg.max_file_size);
        return 413;
    }
    if (s->cfg.max_storage && s->stored_bytes + size > s->cfg.max_storage) {
        snprintf(msg, n, "the server's storage is full (--max-storage %llu bytes)",
                 (unsigned long long)s->cfg.max_storage);
        return 507;
    }
    if (s->uploads >= s->cfg.max_uploads) {
        snprintf(msg, n, "too many uploads at once (--max-uploads %zu); try again shortly",
                 s->cfg.max_uploads);
        return 503;
    }
    int tl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (tl <= 0) {
        snprintf(c->upload_type, sizeof c->upload_type, "application/octet-stream");
    } else if (tl >= (int)sizeof c->upload_type ||
               lws_hdr_copy(wsi, c->upload_type, sizeof c->upload_type,
                            WSI_TOKEN_HTTP_CONTENT_TYPE) < 0 ||
               !hd__media_type_ok(c->upload_type)) {
        snprintf(msg, n, "Content-Type is not a media type (type/subtype, at most 127 bytes)");
        return 415;
    }
    herald_error err = {0};
    hd_blob_writer *w = malloc(sizeof *w);
    if (!w || hd__blob_begin(s->files_dir, w, &err)) {
        free(w);
        snprintf(msg, n, "%s", w ? err.message : "out of memory");
        return 500;
    }
    c->upload = w;
    s->uploads++;
    return 0;
}

int hd__storage_upload_body(hd_conn *c, const void *p, size_t n, char *msg, size_t msgn)
{
    herald_error err = {0};
    if (c->upload->size + n > c->srv->cfg.max_file_size) {
        snprintf(msg, msgn, "the body is longer than its Content-Length");
        return 400;
    }
    if (hd__blob_write(c->upload, p, n, &err)) {
        snprintf(msg, msgn, "%s", err.message);
        return err.code == HERALD_EMAPFULL ? 507 : 500;
    }
    return 0;
}

void hd__storage_upload_drop(hd_server *s, hd_conn *c)
{
    if (!c->upload) return;
    hd__blob_abort(c->upload);
    free(c->upload);
    c->upload = NULL;
    s->uploads--;
}

void hd__storage_upload_done(hd_server *s, hd_conn *c)
{
    hd_blob_writer *w = c->upload;
    herald_error err = {0};
    char sha[65];
    uint64_t size = w->size;
    int rc = hd__blob_finish(w, sha, &err);
    hd_wreq *r = rc ? NULL : calloc(1, sizeof *r);
    herald_value op = herald_undefined(), doc = herald_undefined();
    if (!rc && !r) rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
    if (!rc) {
        /* [{"op": "insert", "table": "_storage", "value": {sha256, size, contentType}}] */
        herald_value v;
        herald_object_init(&op);
        herald_object_init(&doc);
        herald_array_init(&r->ops);
        bool failed = herald_string(&v, sha, 64) || herald_object_set(&doc, "sha256", 6, v) ||
                      herald_object_set(&doc, "size", 4, herald_float64((double)size)) ||
                      herald_string(&v, c->upload_type, strlen(c->upload_type)) ||
                      herald_object_set(&doc, "contentType", 11, v) ||
                      herald_string(&v, "insert", 6) || herald_object_set(&op, "op", 2, v) ||
                      herald_string(&v, "_storage", 8) || herald_object_set(&op, "table", 5, v) ||
                      herald_object_set(&op, "value", 5, doc);
        doc = herald_undefined();
        failed = failed || herald_array_push(&r->ops, op);
        op = herald_undefined();
        char key[48];
        snprintf(key, sizeof key, "upload:%s", c->upload_nonce);
        r->system = true;
        r->upload_tmp = strdup(w->path);
        r->idempotency_key = strdup(key);
        if (failed || !r->upload_tmp || !r->idempotency_key)
            rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
    }
    herald_value_free(&op);
    herald_value_free(&doc);
    if (rc) {
        hd__wreq_free(r);
        hd__storage_upload_drop(s, c);
        hd__http_error(c, rc, err.message);
        return;
    }
    /* The writer owns the temporary file now (removed by it when no row commits). */
    w->path[0] = 0;
    hd__storage_upload_drop(s, c);
    c->http_upload = true;
    c->http_waiting = true;
    hd__submit_request(s, c, r);
}

void hd__storage_answer(hd_server *s, hd_conn *c, hd_wreq *r)
{
    c->http_upload = false;
    if (r->rc == HERALD_ECONFLICT) {
        hd__http_error(c, r->rc, "this upload URL was used already: ask for a new one");
        c->http_status = 409;
        return;
    }
    if (r->rc) {
        hd__http_error(c, r->rc, r->err.message);
        return;
    }
    const herald_value *id =
        r->result.type == HERALD_ARRAY && r->result.u.arr.len ? &r->result.u.arr.items[0] : NULL;
    if (!id || id->type != HERALD_STRING) {
        hd__http_error(c, HERALD_ECORRUPT, "the upload's row has no id");
        return;
    }
    if (!r->replayed) s->stored_bytes += hd__storage_size(r);
    hd_buf b = HD_BUF_INIT;
    hd__buf_str(&b, "{\"storageId\":\"");
    hd__buf_str(&b, id->u.s.ptr);
    hd__buf_str(&b, "\"}");
    hd__http_answer(c, 200, &b);
}

/* ---- downloads ---- */

void hd__storage_serve(hd_server *s, hd_conn *c, struct lws *wsi, const char *rest)
{
    char id[HERALD_ID_CHARS + 1], path[4400];
    const char *slash = strchr(rest, '/');
    herald_error err = {0};
    size_t idn = slash ? (size_t)(slash - rest) : 0;
    if (!slash || idn != HERALD_ID_CHARS) {
        hd__http_error(c, HERALD_ENOTFOUND, "no such file");
        return;
    }
    memcpy(id, rest, idn);
    id[idn] = 0;
    /* The same answer for a forged URL and a file that is gone: nothing to learn. */
    if (!hd__read_token_ok(s->blob_key, id, slash + 1) ||
        !hd__blob_path(s->files_dir, id, path, sizeof path)) {
        hd__http_error(c, HERALD_ENOTFOUND, "no such file");
        return;
    }
    herald_txn *t;
    herald_value row = herald_undefined();
    int rc = herald_read_begin(s->store, &t, &err);
    if (!rc) {
        rc = herald_get(t, "_storage", id, &row, NULL, &err);
        herald_txn_end(t);
    }
    int fd = rc ? -1 : open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        herald_value_free(&row);
        hd__http_error(c, rc && rc != HERALD_ENOTFOUND ? rc : HERALD_ENOTFOUND,
                       rc && rc != HERALD_ENOTFOUND ? err.message : "no such file");
        return;
    }
    const herald_value *type = herald_object_get(&row, "contentType");
    const herald_value *sha = herald_object_get(&row, "sha256");
    snprintf(c->file_type, sizeof c->file_type, "%s",
             type && type->type == HERALD_STRING ? type->u.s.ptr : "application/octet-stream");
    char etag[80];
    snprintf(etag, sizeof etag, "\"%.64s\"", sha && sha->type == HERALD_STRING ? sha->u.s.ptr : "");
    herald_value_free(&row);
    uint64_t size = (uint64_t)st.st_size, from = 0, to = size ? size - 1 : 0;
    char inm[100] = "", range[100] = "";
    int status = 200;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 && strstr(inm, etag))
        status = 304;
    if (status == 200 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_RANGE) > 0 &&
        lws_hdr_copy(wsi, range, sizeof range, WSI_TOKEN_HTTP_RANGE) > 0) {
        int pr = hd__range_parse(range, size, &from, &to);
        status = pr == 0 ? 206 : pr == 1 ? 416 : 200;
        if (pr < 0) from = 0, to = size ? size - 1 : 0;
    }
    int hl = snprintf(c->file_headers, sizeof c->file_headers,
                      "etag: %s\r\ncache-control: private, max-age=31536000, immutable\r\n"
                      "accept-ranges: bytes\r\ncontent-security-policy: sandbox\r\n",
                      etag);
    if (status == 206)
        snprintf(c->file_headers + hl, sizeof c->file_headers - (size_t)hl,
                 "content-range: bytes %llu-%llu/%llu\r\n", (unsigned long long)from,
                 (unsigned long long)to, (unsigned long long)size);
    else if (status == 416)
        snprintf(c->file_headers + hl, sizeof c->file_headers - (size_t)hl,
                 "content-range: bytes */%llu\r\n", (unsigned long long)size);
    c->file_fd = fd;
    c->file_off = from;
    c->file_left = status == 200 || status == 206 ? (size ? to - from + 1 : 0) : 0;
    c->http_status = status;
    c->last_progress = hd__now();
    hd__conn_watch(c);
    if (c->wsi) lws_callback_on_writable(c->wsi);
}

/* ---- deletions ---- */

static void on_change(void *ctx, const char *table, const char *id, herald_change_op op)
{
    hd_server *s = ctx;
    /* Something was scheduled: the scheduler looks at once rather than at the next tick. */
    if (op == HERALD_CHANGE_INSERT && !strcmp(table, "_scheduled_functions")) s->sched_poke = true;
    if (op != HERALD_CHANGE_DELETE || strcmp(table, "_storage")) return;
    char path[4400];
    struct stat st;
    if (hd__blob_path(s->files_dir, id, path, sizeof path) && stat(path, &st) == 0) {
        uint64_t size = (uint64_t)st.st_size;
        s->stored_bytes = s->stored_bytes > size ? s->stored_bytes - size : 0;
    }
    hd__blob_remove(s->files_dir, id);
}

void hd__storage_committed(hd_server *s, hd_wbatch *batches)
{
    if (!s->files_dir[0]) return;
    for (hd_wbatch *b = batches; b; b = b->next)
        for (size_t i = 0; i < herald_group_count(b->group); i++) {
            /* Most commits write no system table: skip the per-document pass for them. */
            const herald_write_set *ws = herald_group_write_set(b->group, i);
            if (herald_write_set_writes_system(s->store, ws))
                herald_write_set_changes(s->store, ws, on_change, s);
        }
}

uint64_t hd__storage_size(const hd_wreq *r)
{
    const herald_value *sz =
        r->ops.type == HERALD_ARRAY && r->ops.u.arr.len
            ? herald_object_get(herald_object_get(&r->ops.u.arr.items[0], "value"), "size")
            : NULL;
    return sz && sz->type == HERALD_FLOAT64 && sz->u.f > 0 ? (uint64_t)sz->u.f : 0;
}

bool hd__storage_admit(hd_server *s, hd_wreq *r)
{
    uint64_t size = hd__storage_size(r);
    if (!s->cfg.max_storage || s->stored_bytes + size <= s->cfg.max_storage) return true;
    r->rc = herald_fail(&r->err, HERALD_ELIMIT,
                        "the server's file storage is full (--max-storage %llu MiB)",
                        (unsigned long long)(s->cfg.max_storage >> 20));
    return false; /* the file goes with the request (hd__wreq_free) */
}
