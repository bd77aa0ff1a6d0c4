/*
 * TLS for `herald serve` (--tls-cert, --tls-key): the server's certificate
 * chain and private key, read from PEM files, checked, and handed to every
 * new TLS handshake on the one listening port (HTTP and WebSocket alike).
 *
 * Reloading (SIGHUP) reads the files again and swaps the pair only when the
 * new one is whole and matches: handshakes after the swap get the new
 * certificate; established connections keep the one they were made with,
 * because OpenSSL copies the certificate into each connection at its start.
 *
 * Single-threaded: everything here runs on the event loop's thread (the
 * handshakes too). Nothing here logs the key or any part of it.
 */
#ifndef HD_TLS_H
#define HD_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "herald/error.h"

typedef struct hd_tls hd_tls;

/*
 * Reads the certificate chain (PEM, the server's certificate first, then
 * any intermediates) from `cert_file` and the unencrypted private key (PEM)
 * from `key_file`, and checks that they belong together. The paths are
 * kept (not copied) for reloads: they must outlive *out. Errors name the
 * file: HERALD_ENOTFOUND (cannot be read), HERALD_EINVAL (no certificate,
 * no usable key, or a key that is not the certificate's), HERALD_ENOMEM.
 */
int hd__tls_new(const char *cert_file, const char *key_file, hd_tls **out, herald_error *err);

/*
 * Sets up the SSL_CTX libwebsockets made for the listening port: TLS 1.2
 * and 1.3 only, forward-secret AEAD ciphers for 1.2 (OpenSSL's defaults
 * for 1.3) in the server's order of preference, no renegotiation, and the
 * current pair for each handshake. HERALD_EINVAL when OpenSSL refuses.
 */
int hd__tls_setup(hd_tls *t, SSL_CTX *ctx, herald_error *err);

/* Whether hd__tls_setup() succeeded on a context (the port speaks TLS). */
int hd__tls_ready(const hd_tls *t);

/*
 * Reads the files again. On success new handshakes get the new pair; on
 * any error (as hd__tls_new's) the current pair stays and nothing changes.
 */
int hd__tls_reload(hd_tls *t, herald_error *err);

/* One line for the log about the current certificate: subject, expiry, file. */
void hd__tls_describe(const hd_tls *t, char *out, size_t n);

void hd__tls_free(hd_tls *t);

#endif
