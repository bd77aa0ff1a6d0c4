/*
 * The checks of RFC 6455 that Herald makes on WebSocket frames because lws
 * 4.1.6 does not (wsguard.h).
 *
 * lws validates the close code of a client's close frame only below 3000
 * (lib/roles/ws/ops-ws.c, the LWSWSOPC_CLOSE case of lws_ws_rx_sm: it
 * rewrites codes below 1000, 1004-1006, 1012-2999 to 1002 and echoes
 * them), and echoes a one-byte payload, which is no valid close payload,
 * as it came. Those two are decided here. It must never let a frame it
 * refuses reach the protocol code, and keeps no state.
 *
 * Two rules of RFC 6455 cannot be checked here without patching lws:
 * - Unmasked client frames (section 5.1: the server must close). lws reads
 *   the bit in lws_ws_rx_sm, state LWS_RXPS_04_FRAME_HDR_LEN
 *   (ops-ws.c:244, `wsi->ws->this_frame_masked = !!(c & 0x80);`), skips
 *   the masking key when it is clear (ops-ws.c:265, 287, 348) and uses the
 *   payload as it came (ops-ws.c:397, server-ws.c:849); no callback
 *   and no public accessor (lws-ws-state.h) tells the application.
 * - Close 1007 for a close reason that is not UTF-8: lws checks the reason
 *   before LWS_CALLBACK_WS_PEER_INITIATED_CLOSE and drops the connection
 *   at once (ops-ws.c:450-456, `goto utf8_fail`), which RFC 6455 7.1.7
 *   allows. docs/protocol.md, "WebSocket framing", says both.
 */
#include "wsguard.h"

bool hd__wsguard_close_code_valid(unsigned code)
{
    /* 1000-1003 and 1007-1011 are defined by RFC 6455 itself (1004-1006 are
     * reserved, 1005 and 1006 never sent), 3000-4999 are for libraries and
     * applications; nothing below 1000 or from 5000 on is a close code. lws
     * turns 1012-1014, registered with IANA later, into 1002 before Herald
     * sees them. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

int hd__wsguard_peer_close(struct lws *wsi, const void *payload, size_t len)
{
    const unsigned char *p = payload;
    /* An empty payload is a close without a code; otherwise the code takes two bytes. */
    if (len == 0) return 0;
    if (len >= 2 && hd__wsguard_close_code_valid((unsigned)p[0] << 8 | p[1])) return 0;
    static const char why[] = "invalid close frame";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)why, sizeof why - 1);
    return -1;
}
