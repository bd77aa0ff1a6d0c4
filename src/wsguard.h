/*
 * WebSocket framing rules of RFC 6455 that lws 4.1.6 leaves to the
 * application: which close frames a client may send.
 *
 * Caveats:
 * - Event-loop thread only, called from the protocol callback; no state.
 * - lws already fails the connection for what it checks itself (reserved
 *   bits, bad opcodes, fragmented or long control frames, close codes below
 *   3000 that RFC 6455 does not allow, invalid UTF-8 in text and close
 *   frames). It does not check that client frames are masked and exposes
 *   no way to know: see docs/protocol.md, "WebSocket framing".
 */
#ifndef HD_WSGUARD_H
#define HD_WSGUARD_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

/* True when a peer may send `code` in a close frame (RFC 6455 section 7.4). */
bool hd__wsguard_close_code_valid(unsigned code);

/*
 * For LWS_CALLBACK_WS_PEER_INITIATED_CLOSE, with the callback's `in` and
 * `len` (the close payload). Returns 0 when the close is valid (lws then
 * echoes it), or -1 after setting close status 1002 on `wsi`: the callback
 * returns that, and lws answers with a 1002 close frame and drops the
 * connection.
 */
int hd__wsguard_peer_close(struct lws *wsi, const void *payload, size_t len);

#endif
