/*
 * TLS for the listening port (tls.h): the certificate and key from PEM
 * files, the protocol versions and ciphers, and the swap on reload.
 *
 * libwebsockets makes the port's SSL_CTX and runs the handshakes; Herald
 * configures that context once and, through OpenSSL's certificate callback,
 * gives each new handshake the pair it holds now. Swapping the pair in the
 * shared context instead would keep a previous certificate of another key
 * type (RSA, EC) beside the new one, and a client could still be shown it.
 *
 * Must never: ask a terminal for a passphrase, log key material, or leave
 * a half-loaded pair in use.
 */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * TLS 1.2: ECDHE or DHE key exchange (forward secrecy) with AES-GCM or
 * ChaCha20-Poly1305, ECDSA or RSA certificates: no RC4, 3DES, CBC, NULL,
 * export or static-RSA suites. TLS 1.3 keeps OpenSSL's suites (all AEAD).
 */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256"

typedef struct tls_pair {
    X509 *cert;             /* the server's certificate */
    EVP_PKEY *key;          /* its private key */
    STACK_OF(X509) * chain; /* the intermediates that followed it in the file */
} tls_pair;

struct hd_tls {
    const char *cert_file, *key_file; /* the caller's strings */
    tls_pair cur;
    bool ready;
};

static void pair_free(tls_pair *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    sk_X509_pop_free(p->chain, X509_free);
    memset(p, 0, sizeof *p);
}

/* PEM reads never prompt for a passphrase: an encrypted key is refused instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf, (void)size, (void)rwflag, (void)arg;
    return -1;
}

/* OpenSSL's reason for the last failure, for an error message; the queue is emptied. */
static const char *ssl_reason(char *out, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, n, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return out;
}

/* True when the last PEM read stopped at the end of the file, not at bad data. */
static bool pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    bool end = !e || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    ERR_clear_error();
    return end;
}

/* Opens a PEM file, or says which (`what`: "certificate", "key") cannot be read. */
static FILE *open_pem(const char *file, const char *what, herald_error *err)
{
    FILE *f = fopen(file, "r");
    if (!f)
        herald_fail(err, HERALD_ENOTFOUND, "cannot read the %s file %s: %s", what, file,
                    strerror(errno));
    ERR_clear_error();
    return f;
}

static int read_cert(const char *file, tls_pair *p, herald_error *err)
{
    char why[128];
    FILE *f = open_pem(file, "certificate", err);
    if (!f) return HERALD_ENOTFOUND;
    int rc = 0;
    if (!(p->cert = PEM_read_X509(f, NULL, no_passphrase, NULL))) {
        rc = herald_fail(err, HERALD_EINVAL, "%s holds no PEM certificate (%s)", file,
                         ssl_reason(why, sizeof why));
        goto done;
    }
    if (!(p->chain = sk_X509_new_null())) {
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    for (X509 *x; (x = PEM_read_X509(f, NULL, no_passphrase, NULL));) {
        if (!sk_X509_push(p->chain, x)) {
            X509_free(x);
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!pem_at_end())
        rc = herald_fail(err, HERALD_EINVAL, "%s: certificate %d of the chain cannot be read", file,
                         sk_X509_num(p->chain) + 2);
done:
    fclose(f);
    return rc;
}

static int read_key(const char *file, tls_pair *p, herald_error *err)
{
    char why[128];
    FILE *f = open_pem(file, "key", err);
    if (!f) return HERALD_ENOTFOUND;
    p->key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!p->key)
        return herald_fail(err, HERALD_EINVAL,
                           "%s holds no usable PEM private key (OpenSSL: %s); Herald takes an "
                           "unencrypted key",
                           file, ssl_reason(why, sizeof why));
    return 0;
}

/* Reads and checks a whole pair into *p (emptied on failure). */
static int read_pair(const char *cert_file, const char *key_file, tls_pair *p, herald_error *err)
{
    memset(p, 0, sizeof *p);
    int rc = read_cert(cert_file, p, err);
    if (!rc) rc = read_key(key_file, p, err);
    if (!rc && X509_check_private_key(p->cert, p->key) != 1) {
        ERR_clear_error();
        rc =
            herald_fail(err, HERALD_EINVAL, "the key in %s is not the key of the certificate in %s",
                        key_file, cert_file);
    }
    if (rc) pair_free(p);
    return rc;
}

int hd__tls_new(const char *cert_file, const char *key_file, hd_tls **out, herald_error *err)
{
    *out = NULL;
    hd_tls *t = calloc(1, sizeof *t);
    if (!t) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    t->cert_file = cert_file;
    t->key_file = key_file;
    int rc = read_pair(cert_file, key_file, &t->cur, err);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* OpenSSL's certificate callback: each handshake gets the pair held now, and only it. */
static int pair_for_handshake(SSL *ssl, void *arg)
{
    hd_tls *t = arg;
    SSL_certs_clear(ssl);
    return SSL_use_cert_and_key(ssl, t->cur.cert, t->cur.key, t->cur.chain, 1) == 1;
}

int hd__tls_setup(hd_tls *t, SSL_CTX *ctx, herald_error *err)
{
    char why[128];
    t->ready = false;
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_use_cert_and_key(ctx, t->cur.cert, t->cur.key, t->cur.chain, 1) != 1)
        return herald_fail(err, HERALD_EINVAL, "OpenSSL refused the TLS settings: %s",
                           ssl_reason(why, sizeof why));
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_cert_cb(ctx, pair_for_handshake, t);
    t->ready = true;
    return 0;
}

int hd__tls_ready(const hd_tls *t)
{
    return t && t->ready;
}

int hd__tls_reload(hd_tls *t, herald_error *err)
{
    tls_pair p;
    int rc = read_pair(t->cert_file, t->key_file, &p, err);
    if (rc) return rc;
    /* Connections made with the old pair hold references of their own to it. */
    pair_free(&t->cur);
    t->cur = p;
    return 0;
}

void hd__tls_describe(const hd_tls *t, char *out, size_t n)
{
    char subject[256] = "?", until[32] = "?", print[3 * 8] = "";
    X509_NAME_oneline(X509_get_subject_name(t->cur.cert), subject, sizeof subject);
    const ASN1_TIME *end = X509_get0_notAfter(t->cur.cert);
    struct tm tm;
    if (ASN1_TIME_to_tm(end, &tm) == 1) strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t len = 0;
    if (X509_digest(t->cur.cert, EVP_sha256(), md, &mdlen) == 1)
        for (unsigned i = 0; i < 8 && i < mdlen; i++)
            len += (size_t)snprintf(print + len, sizeof print - len, "%s%02X", i ? ":" : "", md[i]);
    snprintf(out, n, "%s, valid until %s%s, SHA-256 %s... (%s)", subject, until,
             X509_cmp_current_time(end) < 0 ? " (EXPIRED)" : "", print, t->cert_file);
    ERR_clear_error();
}

void hd__tls_free(hd_tls *t)
{
    if (!t) return;
    pair_free(&t->cur);
    free(t);
}
