/*
 * Connection admission: how many sockets are open, in all and per client
 * address, and whether one more may come in.
 *
 * The event loop calls hd__admit_accept() right after accept() (before
 * libwebsockets adopts the socket), hd__admit_bind() when lws creates the
 * connection for that socket, and hd__admit_release() when lws destroys
 * it. Nothing here knows lws: connections are opaque pointers.
 *
 * Caveats: single-threaded (the event loop's thread only). A socket
 * accepted but never bound (lws failed to adopt it) is released at the
 * next accept, so the counts cannot drift.
 */
#ifndef HD_ADMIT_H
#define HD_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct hd_admit hd_admit;

/* Limits: at most `max_total` sockets, `max_per_address` from one address. */
int hd__admit_new(size_t max_total, size_t max_per_address, hd_admit **out);
void hd__admit_free(hd_admit *a);
/*
 * A socket from `addr` was accepted. Returns NULL if it is admitted (it
 * then counts until released), or the reason it is refused (a static
 * string; nothing is counted).
 */
const char *hd__admit_accept(hd_admit *a, const struct sockaddr *addr, socklen_t len);
/* The socket last admitted now belongs to connection `conn`. */
void hd__admit_bind(hd_admit *a, const void *conn);
/* Connection `conn` is gone; false if it was never admitted (nothing changes). */
bool hd__admit_release(hd_admit *a, const void *conn);
/* Sockets open now. */
size_t hd__admit_count(const hd_admit *a);

#endif
