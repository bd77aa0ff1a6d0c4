/*
 * Static files: the folder served at / (the app's public/ or web-demo/),
 * and the files embedded in the binary (assets.h: /admin, /herald.js...),
 * which answer whatever the folder, or when there is none.
 *
 * Caveats:
 * - Runs on the event-loop thread, inside LWS_CALLBACK_HTTP; it keeps no
 *   state between requests (the folder is resolved again for each one, so
 *   a folder replaced while the server runs is served as it is now).
 * - Only what lies inside the folder once every symlink is resolved is
 *   served; nothing whose path, requested or resolved, has a component
 *   starting with a dot; only the file types it knows (files.c).
 * - Every answer, errors included, carries `X-Content-Type-Options:
 *   nosniff` and `Content-Security-Policy: frame-ancestors 'self'`.
 */
#ifndef HD_FILES_H
#define HD_FILES_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Answers the request on `wsi` (its method and path are read from lws's
 * headers) from the embedded files and the folder `root` (NULL: none), in
 * the precedence assets.h gives: the file, `index.html` for a folder,
 * 404 for what is not there or not served, 400 for a path that is not a
 * plain one (backslashes, NUL), 405 for methods other than GET and HEAD.
 * A HEAD is answered with the headers alone. Error bodies have the HTTP
 * API's shape: {"status":"error","errorMessage":...,"code":...}.
 *
 * *out says what the answer was, for the access log. Returns what
 * LWS_CALLBACK_HTTP returns: 0, or -1 when the connection
 * must close. A file is then being streamed by lws (its end comes as
 * LWS_CALLBACK_HTTP_FILE_COMPLETION, which lws_callback_http_dummy()
 * completes), or the answer is complete. Completing the transaction makes
 * lws free the session's user data and bind a fresh one: the caller must
 * be done with its per-session data before calling this.
 */
typedef struct hd_files_answer {
    int status;     /* the answer's status (0: none was made) */
    uint64_t bytes; /* of its body */
} hd_files_answer;
int hd__files_serve(struct lws *wsi, const char *root, hd_files_answer *out);

/* True when `path` (a URL path, no query string) names a file embedded in
 * the binary: hd__files_serve() answers it even with no folder. */
bool hd__files_embedded(const char *path);

#endif
