/*
 * Static files, served from LWS_CALLBACK_HTTP with lws_serve_http_file()
 * (lws streams the file in pieces as the socket takes them), and the files
 * embedded in the binary (assets.h: the admin console, the JavaScript
 * client), written from memory.
 *
 * Why not lws's own LWSMPRO_FILE mount: it follows symlinks out of the
 * folder, serves dotfiles, and adds no security headers. Here a request is
 * served only if the file, once every symlink is resolved, lies inside the
 * resolved folder, and neither the requested path nor the resolved one has
 * a component starting with a dot.
 *
 * This module must never serve anything outside the folder, and never
 * answer without the security headers. It keeps no state.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "assets.h"
#include "files.h"

/*
 * The types served, by extension; anything else is not served (404), as lws
 * refused types it did not know. Text is declared UTF-8, so that no browser
 * guesses an encoding.
 */
static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"ts", "application/typescript; charset=utf-8"}, /* the client's .d.ts types */
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
};

static const char *content_type(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot + 1, types[i].ext)) return types[i].type;
    return NULL;
}

/* The headers every answer carries: no type sniffing, no framing by other sites. */
static int add_security_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    static const char nosniff[] = "nosniff", frames[] = "frame-ancestors 'self'";
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                       (const unsigned char *)nosniff, sizeof nosniff - 1, p,
                                       end) ||
           lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:",
                                       (const unsigned char *)frames, sizeof frames - 1, p, end);
}

/*
 * An error answer, written at once as lws_return_http_status() does: it is
 * small, and lws_serve_http_file() writes its headers from this same
 * callback too.
 */
static int answer_error(struct lws *wsi, unsigned status, const char *code, const char *message,
                        bool head, hd_files_answer *out)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    char body[LWS_PRE + 256];
    int n =
        snprintf(body + LWS_PRE, sizeof body - LWS_PRE,
                 "{\"status\":\"error\",\"errorMessage\":\"%s\",\"code\":\"%s\"}", message, code);
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)n, &p, end) ||
        add_security_headers(wsi, &p, end) ||
        (status == HTTP_STATUS_METHOD_NOT_ALLOWED &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                     (const unsigned char *)"GET, HEAD", 9, &p, end)) ||
        lws_finalize_http_header(wsi, &p, end))
        return -1;
    out->status = (int)status;
    out->bytes = head ? 0 : (uint64_t)n;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0) return -1;
    if (!head &&
        lws_write(wsi, (unsigned char *)body + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int not_found(struct lws *wsi, bool head, hd_files_answer *out)
{
    return answer_error(wsi, HTTP_STATUS_NOT_FOUND, "NotFound", "no such page", head, out);
}

/* True when some component of `path` (components are separated by '/') starts with a dot:
 * ".", "..", dotfiles and dot-directories alike. */
static bool has_dot_component(const char *path)
{
    for (const char *p = path; *p; p++)
        if (*p == '.' && (p == path || p[-1] == '/')) return true;
    return false;
}

/*
 * Resolves `wanted` (every symlink followed) into `real` and checks that it
 * lies inside `root` (already resolved) and that no component under `root`
 * starts with a dot, so that a symlink inside cannot lead to a dotfile
 * either. False when it does not exist or is not allowed.
 */
static bool resolve_inside(const char *root, const char *wanted, char real[PATH_MAX])
{
    if (!realpath(wanted, real)) return false;
    size_t n = strlen(root);
    if (n == 1) n = 0; /* the folder is "/": everything is inside */
    if (strncmp(real, root, n) || (real[n] && real[n] != '/')) return false;
    return !has_dot_component(real + n);
}

/*
 * Answers an embedded file: 304 when the client's If-None-Match holds its
 * ETag, else the bytes in one lws_write (lws keeps what the socket did not
 * take and completes the transaction once it is out). Cache-Control asks
 * browsers to revalidate, so that a new herald's console is seen at once.
 */
static int serve_asset(struct lws *wsi, const hd__asset *asset, bool head, hd_files_answer *out)
{
    static const char revalidate[] = "no-cache";
    char match[256] = "";
    int mlen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH);
    if (mlen > 0 && mlen < (int)sizeof match)
        lws_hdr_copy(wsi, match, sizeof match, WSI_TOKEN_HTTP_IF_NONE_MATCH);
    bool fresh = match[0] && (strstr(match, asset->etag) || !strcmp(match, "*"));
    const char *type = content_type(asset->path);
    out->status = fresh ? 304 : 200;
    out->bytes = fresh || head ? 0 : asset->len;

    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    if ((fresh ? lws_add_http_header_status(wsi, HTTP_STATUS_NOT_MODIFIED, &p, end)
               : lws_add_http_common_headers(wsi, HTTP_STATUS_OK, type, (lws_filepos_t)asset->len,
                                             &p, end)) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"etag:", (const unsigned char *)asset->etag,
            (int)strlen(asset->etag), &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:", (const unsigned char *)revalidate,
            sizeof revalidate - 1, &p, end) ||
        add_security_headers(wsi, &p, end) || lws_finalize_http_header(wsi, &p, end))
        return -1;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0) return -1;
    if (!fresh && !head) {
        /* lws_write may use the LWS_PRE bytes before the data (HTTP/2 frames): a copy. */
        unsigned char *body = malloc(LWS_PRE + asset->len);
        if (!body) return -1;
        memcpy(body + LWS_PRE, asset->data, asset->len);
        int n = lws_write(wsi, body + LWS_PRE, asset->len, LWS_WRITE_HTTP_FINAL);
        free(body);
        if (n < 0) return -1;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*
 * The file of the folder `root` that `path` names, `index.html` for a
 * folder, into `real` with its type: false when there is none, or none
 * that may be served.
 */
static bool find_in_folder(const char *root, const char *path, char real[PATH_MAX],
                           const char **type)
{
    char base[PATH_MAX], wanted[2 * PATH_MAX + 16];
    struct stat st;
    if (!realpath(root, base)) return false;
    snprintf(wanted, sizeof wanted, "%s%s", base, path);
    if (!resolve_inside(base, wanted, real) || stat(real, &st) != 0) return false;
    if (S_ISDIR(st.st_mode)) {
        /* A folder is its index.html, with or without the trailing slash (/admin). */
        snprintf(wanted, sizeof wanted, "%s/index.html", real);
        if (!resolve_inside(base, wanted, real) || stat(real, &st) != 0) return false;
    }
    *type = content_type(real);
    return S_ISREG(st.st_mode) && *type;
}

bool hd__files_embedded(const char *path)
{
    return hd__asset_find(path, NULL) != NULL;
}

int hd__files_serve(struct lws *wsi, const char *root, hd_files_answer *out)
{
    out->status = 0;
    out->bytes = 0;
    bool head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    enum lws_token_indexes token = head ? WSI_TOKEN_HEAD_URI : WSI_TOKEN_GET_URI;
    int len = lws_hdr_total_length(wsi, token);
    if (len <= 0)
        return answer_error(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "InvalidArgument",
                            "static files take GET and HEAD requests", head, out);

    /* lws gives the path decoded (%xx) and with "." and ".." segments already folded;
     * what follows does not rely on it. */
    char path[PATH_MAX];
    if (len >= (int)sizeof path) return not_found(wsi, head, out);
    if (lws_hdr_copy(wsi, path, sizeof path, token) != len || strlen(path) != (size_t)len ||
        path[0] != '/' || strchr(path, '\\'))
        return answer_error(wsi, HTTP_STATUS_BAD_REQUEST, "InvalidArgument", "bad path", head, out);
    if (has_dot_component(path)) return not_found(wsi, head, out);

    bool overridable = false;
    const hd__asset *asset = hd__asset_find(path, &overridable);
    if (asset && !overridable) return serve_asset(wsi, asset, head, out);
    char real[PATH_MAX];
    const char *type;
    if (!root || !find_in_folder(root, path, real, &type))
        return asset ? serve_asset(wsi, asset, head, out) : not_found(wsi, head, out);

    unsigned char extra[256], *p = extra;
    if (add_security_headers(wsi, &p, extra + sizeof extra)) return -1;
    /*
     * lws opens `real` by name: it was just resolved and holds no symlink,
     * so only someone who may write into the folder could swap a component
     * in between, and they can change what is served anyway.
     */
    struct stat st;
    out->status = 200;
    out->bytes = !head && stat(real, &st) == 0 ? (uint64_t)st.st_size : 0;
    int n = lws_serve_http_file(wsi, real, type, (const char *)extra, (int)(p - extra));
    if (n > 0) out->status = 404;
    if (n < 0) return -1;
    if (n > 0) /* lws could not open it and answered 404 itself */
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    /* Streaming; or for a HEAD, lws wrote the headers and completed the transaction. */
    return 0;
}
