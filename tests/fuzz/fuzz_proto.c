/*
 * Fuzz target for the WebSocket protocols as a connection receives them:
 * the native one (docs/protocol.md), hd__proto_message() of src/proto.c,
 * and Convex's sync protocol (docs/convex-clients.md), hd__sync_message()
 * of src/sync.c, on a real
 * server (tests/fuzz/fuzz_server.h), reaching authentication (admin key,
 * JWTs, sign-out), subscriptions and their updates after commits,
 * one-shot queries, mutations through the writer thread (raw operations,
 * functions, idempotency keys), reload, the admin messages and the live
 * tail of commits.
 *
 * An input is a few messages, one per line, sent in order by two
 * connections:
 *
 *   MESSAGE        sent by connection A
 *   ~MESSAGE       sent by connection B (which may share A's subscriptions)
 *   &MESSAGE       (also ~&MESSAGE) sent without waiting for the writer and
 *                  without reading the replies, so that requests pile up
 *                  and the queue can overflow
 *   !close         (also ~!close) the connection goes away, perhaps with
 *                  requests still at the writer; a new one takes its place
 *   !sync          (also ~!sync) the same, and the new one speaks Convex's
 *                  sync protocol (as if opened at /api/<version>/sync)
 *
 * After every other line the writer's commits are processed and every
 * queued frame is "sent" (fz_settle). Errors are answers, not bugs; a
 * crash, a sanitizer report, a leak, a frame that is not a JSON message,
 * or anything an input leaves behind (a connection, a query instance,
 * read ranges, a tail) is.
 *
 * Each line goes to the server in a buffer of exactly its length, as
 * lws hands over a message: nothing after it to read.
 * HERALD_FUZZ_VERBOSE=1 prints each message and every frame sent back.
 */
#include <stdint.h>

#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lines past this many are ignored: a little above what a useful input sends. */
#define MAX_LINES 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_begin_input();
    hd_conn *conns[2] = {fz_conn_open(true), fz_conn_open(true)};
    const char *p = (const char *)data, *end = p + size;
    for (int n = 0; p < end && n < MAX_LINES; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *text = p;
        p = nl ? nl + 1 : end;
        int which = 0;
        bool wait = true;
        if (text < line_end && *text == '~') {
            which = 1;
            text++;
        }
        if (text < line_end && *text == '&') {
            wait = false;
            text++;
        }
        size_t len = (size_t)(line_end - text);
        if (fz.verbose) fprintf(stderr, "%c-> %.*s\n", "AB"[which], (int)len, text);
        bool sync = len == 5 && !memcmp(text, "!sync", 5);
        if (sync || (len == 6 && !memcmp(text, "!close", 6))) {
            fz_conn_close(conns[which]);
            conns[which] = fz_conn_open(true);
            if (sync && hd__sync_attach(conns[which])) abort();
        } else {
            char *message = malloc(len ? len : 1);
            if (!message) abort();
            memcpy(message, text, len);
            hd_conn *c = conns[which];
            (c->sync ? hd__sync_message : hd__proto_message)(&fz.s, c, message, len);
            free(message);
        }
        if (wait) fz_settle();
    }
    fz_settle();
    fz_conn_close(conns[0]);
    fz_conn_close(conns[1]);
    fz_end_input();
    return 0;
}
