/*
 * Connection admission (admit.h): a count of open sockets per client
 * address and in all, kept in two small hash tables (address -> count,
 * connection -> its address), so that admitting and releasing cost the
 * same at ten connections as at fifty thousand.
 *
 * It must never refuse a client for a count that drifted: every admitted
 * socket is released exactly once, by its connection or, if lws never made
 * one for it, at the next accept.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "herald/error.h"

typedef struct addr_entry {
    struct addr_entry *next;
    unsigned char key[17]; /* family byte, then 4 or 16 address bytes */
    size_t count;
} addr_entry;

typedef struct conn_entry {
    struct conn_entry *next;
    const void *conn;
    addr_entry *addr;
} conn_entry;

struct hd_admit {
    size_t max_total, max_per_address, total;
    addr_entry **addrs;
    size_t naddr_buckets;
    conn_entry **conns;
    size_t nconn_buckets, nconns;
    addr_entry *unbound; /* admitted, waiting for its connection */
};

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static size_t conn_bucket(const hd_admit *a, const void *conn)
{
    return (size_t)(hash_bytes(&conn, sizeof conn) % a->nconn_buckets);
}

int hd__admit_new(size_t max_total, size_t max_per_address, hd_admit **out)
{
    hd_admit *a = calloc(1, sizeof *a);
    if (!a) return HERALD_ENOMEM;
    a->max_total = max_total;
    a->max_per_address = max_per_address;
    a->naddr_buckets = 1024;
    a->nconn_buckets = 1024;
    a->addrs = calloc(a->naddr_buckets, sizeof *a->addrs);
    a->conns = calloc(a->nconn_buckets, sizeof *a->conns);
    if (!a->addrs || !a->conns) {
        hd__admit_free(a);
        return HERALD_ENOMEM;
    }
    *out = a;
    return 0;
}

void hd__admit_free(hd_admit *a)
{
    if (!a) return;
    for (size_t i = 0; a->addrs && i < a->naddr_buckets; i++)
        for (addr_entry *e = a->addrs[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    for (size_t i = 0; a->conns && i < a->nconn_buckets; i++)
        for (conn_entry *e = a->conns[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(a->addrs);
    free(a->conns);
    free(a);
}

/* The table key of an address: IPv4-mapped IPv6 addresses count as IPv4. */
static size_t addr_key(const struct sockaddr *sa, socklen_t len, unsigned char key[17])
{
    memset(key, 0, 17);
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 5;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, 12)) {
            key[0] = 4;
            memcpy(key + 1, b + 12, 4);
            return 5;
        }
        key[0] = 6;
        memcpy(key + 1, b, 16);
        return 17;
    }
    key[0] = 0; /* unix sockets and the like: one shared entry */
    return 1;
}

static void addr_put(hd_admit *a, addr_entry *e)
{
    a->total--;
    if (--e->count) return;
    addr_entry **p = &a->addrs[hash_bytes(e->key, sizeof e->key) % a->naddr_buckets];
    while (*p && *p != e)
        p = &(*p)->next;
    if (*p) *p = e->next;
    free(e);
}

const char *hd__admit_accept(hd_admit *a, const struct sockaddr *addr, socklen_t len)
{
    if (a->unbound) {
        /* lws did not make a connection for the previous socket. */
        addr_put(a, a->unbound);
        a->unbound = NULL;
    }
    if (a->total >= a->max_total) return "the server has as many connections as it takes";
    unsigned char key[17];
    addr_key(addr, len, key);
    size_t b = (size_t)(hash_bytes(key, sizeof key) % a->naddr_buckets);
    addr_entry *e = a->addrs[b];
    while (e && memcmp(e->key, key, sizeof key))
        e = e->next;
    if (e && e->count >= a->max_per_address) return "too many connections from this address";
    if (!e) {
        if (!(e = calloc(1, sizeof *e))) return "the server is out of memory";
        memcpy(e->key, key, sizeof key);
        e->next = a->addrs[b];
        a->addrs[b] = e;
    }
    e->count++;
    a->total++;
    a->unbound = e;
    return NULL;
}

/* Doubles the connection table when chains grow long. */
static void conns_grow(hd_admit *a)
{
    size_t n = a->nconn_buckets * 2;
    conn_entry **t = calloc(n, sizeof *t);
    if (!t) return; /* longer chains, still correct */
    for (size_t i = 0; i < a->nconn_buckets; i++)
        for (conn_entry *e = a->conns[i], *next; e; e = next) {
            next = e->next;
            size_t b = (size_t)(hash_bytes(&e->conn, sizeof e->conn) % n);
            e->next = t[b];
            t[b] = e;
        }
    free(a->conns);
    a->conns = t;
    a->nconn_buckets = n;
}

void hd__admit_bind(hd_admit *a, const void *conn)
{
    if (!a->unbound) return; /* not a socket we accepted (a listener, a client of ours) */
    conn_entry *e = calloc(1, sizeof *e);
    if (!e) {
        /* Cannot follow it: count it out now rather than for ever. */
        addr_put(a, a->unbound);
        a->unbound = NULL;
        return;
    }
    e->conn = conn;
    e->addr = a->unbound;
    a->unbound = NULL;
    if (a->nconns >= a->nconn_buckets * 2) conns_grow(a);
    size_t b = conn_bucket(a, conn);
    e->next = a->conns[b];
    a->conns[b] = e;
    a->nconns++;
}

bool hd__admit_release(hd_admit *a, const void *conn)
{
    conn_entry **p = &a->conns[conn_bucket(a, conn)];
    while (*p && (*p)->conn != conn)
        p = &(*p)->next;
    conn_entry *e = *p;
    if (!e) return false;
    *p = e->next;
    a->nconns--;
    addr_put(a, e->addr);
    free(e);
    return true;
}

size_t hd__admit_count(const hd_admit *a)
{
    return a->total;
}
