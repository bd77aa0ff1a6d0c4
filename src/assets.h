/*
 * The files herald answers from its own binary: the admin console
 * (/admin), the JavaScript client (/herald.js, /herald-diff.js and their
 * .d.ts types) and the favicon. src/assets.list names them; the build
 * embeds their bytes (src/embed.py --assets), so an installed herald, or
 * one started in any folder, serves them without any file beside it.
 *
 * Precedence over the static folder (--static, the app's public/):
 * /admin/... and /herald* are always the embedded ones, so that the console
 * and the client match the server that answers them; /favicon.svg is the
 * folder's when it has one, the embedded one otherwise.
 *
 * Caveats: the table is read-only data, shared by every thread; nothing
 * here allocates.
 */
#ifndef HD_ASSETS_H
#define HD_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hd__asset {
    const char *path; /* the URL path it answers, "/admin/admin.js" */
    const char *data; /* its bytes (followed by a NUL that is not part of them) */
    size_t len;
    const char *etag; /* a quoted strong ETag made from a hash of the bytes */
} hd__asset;

/* The generated table (src/embed.py), in src/assets.list's order. */
extern const hd__asset hd__assets[];
extern const size_t hd__assets_count;

/*
 * The asset a URL path names, or NULL: `path` as requested, without query
 * string ("/admin" and "/admin/" are the console's index.html). When
 * `overridable` is not NULL it is set to whether a file of the same path
 * in the static folder comes first.
 */
const hd__asset *hd__asset_find(const char *path, bool *overridable);

#endif
