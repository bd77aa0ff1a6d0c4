/*
 * Outgoing HTTP for server actions; see fetch.h. Nothing here may open a
 * socket to an address the guard refuses, and no submitted request may end
 * without its `done` being called exactly once.
 *
 * One thread owns the libcurl multi handle and every easy handle; other
 * threads only append to the incoming list, flag cancels, and wake it
 * (curl_multi_wakeup). A request lives on `live` (under the lock) from
 * submit until just before its `done`, so that a cancel finds it without
 * touching the thread's own lists.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "dlist.h"
#include "fetch.h"

#define DEFAULT_TIMEOUT   30.0
#define DEFAULT_CONNECT   10.0
#define DEFAULT_BODY      ((size_t)16 * 1024 * 1024)
#define DEFAULT_REDIRECTS 5
#define DEFAULT_IN_FLIGHT 256
/* Longest timeout a request may ask for: beyond it a double's milliseconds stop fitting a long. */
#define MAX_TIMEOUT 1e6
/* Characters of a URL shown in a message. */
#define SHOWN_URL 150
/* How long the thread sleeps when nothing is due (wake-ups end it sooner). */
#define IDLE_POLL_MS 10000

/* An address of either family; IPv4 in the first four bytes. */
typedef struct ip_addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char b[16];
} ip_addr;

typedef struct allow_range {
    ip_addr net;
    unsigned bits;
} allow_range;

/* Why a transfer was aborted from one of our callbacks (libcurl only sees a write error). */
enum abort_reason { ABORT_NONE, ABORT_TOO_LARGE, ABORT_HEADERS_TOO_LARGE, ABORT_NOMEM };

typedef struct job {
    hd_link live;              /* f->live, under f->lock */
    hd_link queue;             /* the thread's waiting or running list */
    struct job *next_incoming; /* f->incoming, under f->lock */
    struct job *next_canceled; /* the thread's, while it ends canceled requests */
    uint64_t handle;
    bool cancel; /* under f->lock */
    bool running;
    hd_fetcher *f;
    hd_fetch_request *req;
    hd_fetch_response *resp;
    hd_fetch_done_fn done;
    void *ctx;
    double timeout;  /* seconds, for messages */
    double deadline; /* CLOCK_MONOTONIC seconds */
    /* Where the request is now: changed by redirects. */
    CURL *easy;
    struct curl_slist *curl_headers;
    char *url;          /* normalized, owned */
    const char *method; /* one of `methods` */
    bool send_body;
    bool body_dropped; /* a redirect turned it into a GET */
    bool cross_origin; /* a redirect left the first scheme, host and port */
    long redirects;
    bool has_content_type, has_expect;
    /* The current hop. */
    bool connect_limited; /* the connect timeout ends before the request's time */
    bool connected;
    bool length_checked;
    size_t header_bytes;
    size_t body_cap, headers_cap;
    enum abort_reason abort;
    const char *refused_kind; /* an address the guard refused, when one was */
    char refused_addr[INET6_ADDRSTRLEN];
    char errbuf[CURL_ERROR_SIZE];
} job;

struct hd_fetcher {
    /* Settings, fixed once started. */
    double timeout, connect;
    size_t max_response, max_request, max_in_flight;
    long max_redirects;
    allow_range *allow;
    size_t nallow;

    CURLM *multi;
    pthread_t thread;
    bool thread_started;
    bool curl_acquired;

    pthread_mutex_t lock;
    /* Under lock. */
    job *incoming, *incoming_tail;
    hd_dlist live;
    uint64_t next_handle;
    bool cancel_pending;
    bool stopping;

    /* The thread's own. */
    hd_dlist waiting, running;
    size_t nrunning;
};

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- libcurl's global state: set up by the first fetcher, torn down by the last ---- */

static pthread_mutex_t curl_users_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned curl_users;

static bool curl_acquire(void)
{
    bool ok = true;
    pthread_mutex_lock(&curl_users_lock);
    if (curl_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) ok = false;
    if (ok) curl_users++;
    pthread_mutex_unlock(&curl_users_lock);
    return ok;
}

static void curl_release(void)
{
    pthread_mutex_lock(&curl_users_lock);
    if (--curl_users == 0) curl_global_cleanup();
    pthread_mutex_unlock(&curl_users_lock);
}

/* ---- The guard ---- */

typedef struct special_range {
    unsigned char net[16];
    unsigned bits;
    const char *kind;
} special_range;

static const special_range v4_special[] = {
    {{255, 255, 255, 255}, 32, "a broadcast address"},
    {{0}, 8, "an unspecified address"},
    {{127}, 8, "a loopback address"},
    {{10}, 8, "a private address"},
    {{172, 16}, 12, "a private address"},
    {{192, 168}, 16, "a private address"},
    {{100, 64}, 10, "a carrier-grade NAT address"},
    {{169, 254}, 16, "a link-local address"},
    {{224}, 4, "a multicast address"},
    {{240}, 4, "a reserved address"},
    {{192, 0, 0}, 24, "a reserved address"},    /* IETF protocol assignments */
    {{192, 0, 2}, 24, "a reserved address"},    /* documentation */
    {{198, 51, 100}, 24, "a reserved address"}, /* documentation */
    {{203, 0, 113}, 24, "a reserved address"},  /* documentation */
    {{198, 18}, 15, "a reserved address"},      /* benchmarking */
};

static const special_range v6_special[] = {
    {{0}, 128, "an unspecified address"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "a loopback address"},
    {{0xfe, 0x80}, 10, "a link-local address"},
    {{0xfe, 0xc0}, 10, "a private address"}, /* site-local, deprecated but routable inside */
    {{0xfc}, 7, "a private address"},        /* unique local */
    {{0xff}, 8, "a multicast address"},
    {{0x01, 0x00}, 64, "a reserved address"},                         /* discard-only */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "a reserved address"},             /* documentation */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "a reserved address"}, /* local-use NAT64 */
};

static bool in_range(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    size_t whole = bits / 8;
    if (memcmp(a, net, whole) != 0) return false;
    unsigned rest = bits % 8;
    if (rest == 0) return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static const char *special_kind(const special_range *table, size_t n, const unsigned char *a)
{
    for (size_t i = 0; i < n; i++)
        if (in_range(a, table[i].net, table[i].bits)) return table[i].kind;
    return NULL;
}

/*
 * The IPv4 address an IPv6 one stands for, where the IPv6 form reaches
 * that IPv4 address: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
 * translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
 * (2002:aabb:ccdd::).
 */
static bool embedded_v4(const ip_addr *a, ip_addr *v4)
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (a->family != AF_INET6) return false;
    const unsigned char *from = NULL;
    bool compatible = !memcmp(a->b, zero, 12) && (a->b[12] | a->b[13] | a->b[14] || a->b[15] > 1);
    if (!memcmp(a->b, mapped, 12) || compatible || !memcmp(a->b, translated, 12) ||
        !memcmp(a->b, nat64, 12))
        from = a->b + 12;
    else if (a->b[0] == 0x20 && a->b[1] == 0x02)
        from = a->b + 2;
    if (!from) return false;
    memset(v4, 0, sizeof *v4);
    v4->family = AF_INET;
    memcpy(v4->b, from, 4);
    return true;
}

static const char *address_kind(const ip_addr *a)
{
    if (a->family == AF_INET)
        return special_kind(v4_special, sizeof v4_special / sizeof v4_special[0], a->b);
    const char *kind = special_kind(v6_special, sizeof v6_special / sizeof v6_special[0], a->b);
    if (kind) return kind;
    ip_addr v4;
    return embedded_v4(a, &v4) ? address_kind(&v4) : NULL;
}

static bool allowed(const hd_fetcher *f, const ip_addr *a)
{
    for (size_t i = 0; i < f->nallow; i++)
        if (f->allow[i].net.family == a->family &&
            in_range(a->b, f->allow[i].net.b, f->allow[i].bits))
            return true;
    return false;
}

static const char *refusal(const hd_fetcher *f, const ip_addr *a)
{
    const char *kind = address_kind(a);
    if (!kind || allowed(f, a)) return NULL;
    ip_addr v4;
    if (embedded_v4(a, &v4) && allowed(f, &v4)) return NULL;
    return kind;
}

static bool parse_ip(const char *text, ip_addr *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out->b) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1) {
        out->family = AF_INET6;
        return true;
    }
    return false;
}

static bool sockaddr_ip(const struct sockaddr *sa, size_t len, ip_addr *out)
{
    struct sockaddr_storage ss;
    if (len > sizeof ss) return false;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, sa, len);
    memset(out, 0, sizeof *out);
    if (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        out->family = AF_INET;
        memcpy(out->b, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
        return true;
    }
    if (ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        out->family = AF_INET6;
        memcpy(out->b, &((const struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    return false;
}

const char *hd__fetch_refusal(const hd_fetcher *f, const char *address)
{
    ip_addr a;
    if (!address || !parse_ip(address, &a)) return "not an IP address";
    return refusal(f, &a);
}

/* One --allow-fetch entry, trimmed: an address, or an address and a prefix length. */
static int parse_allow_entry(const char *entry, allow_range *out, herald_error *err)
{
    char text[INET6_ADDRSTRLEN + 8];
    if (strlen(entry) >= sizeof text)
        return herald_fail(err, HERALD_EINVAL,
                           "--allow-fetch: \"%.60s...\" is not an IP address or CIDR range", entry);
    strcpy(text, entry);
    char *slash = strchr(text, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        const char *digits = slash + 1;
        size_t n = strspn(digits, "0123456789");
        if (n == 0 || n > 3 || digits[n] != '\0')
            return herald_fail(err, HERALD_EINVAL,
                               "--allow-fetch: \"%s\" is not an IP address or CIDR range", entry);
        bits = strtol(digits, NULL, 10);
    }
    if (!parse_ip(text, &out->net))
        return herald_fail(err, HERALD_EINVAL,
                           "--allow-fetch: \"%s\" is not an IP address or CIDR range", entry);
    long max_bits = out->net.family == AF_INET ? 32 : 128;
    if (bits > max_bits)
        return herald_fail(err, HERALD_EINVAL,
                           "--allow-fetch: \"%s\": a prefix of %ld bits is longer than the "
                           "address (%ld bits)",
                           entry, bits, max_bits);
    out->bits = (unsigned)(bits < 0 ? max_bits : bits);
    return 0;
}

static int parse_allow(hd_fetcher *f, const char *text, herald_error *err)
{
    if (!text || text[strspn(text, " \t")] == '\0') return 0;
    size_t entries = 1;
    for (const char *p = text; *p; p++)
        entries += *p == ',';
    f->allow = calloc(entries, sizeof *f->allow);
    if (!f->allow) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *end = p + len;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == p) return herald_fail(err, HERALD_EINVAL, "--allow-fetch: an empty entry");
        char entry[128];
        size_t n = (size_t)(end - p) < sizeof entry - 1 ? (size_t)(end - p) : sizeof entry - 1;
        memcpy(entry, p, n);
        entry[n] = '\0';
        int rc = parse_allow_entry(entry, &f->allow[f->nallow], err);
        if (rc) return rc;
        f->nallow++;
        p += strcspn(p, ",");
        if (*p != ',') break;
        p++;
    }
    return 0;
}

/* ---- Messages ---- */

/* Appends `s` to out (capacity n, already holding *len bytes), cut and NUL-terminated. */
static void append(char *out, size_t n, size_t *len, const char *s, size_t slen)
{
    if (*len >= n - 1) return;
    size_t room = n - 1 - *len;
    if (slen > room) slen = room;
    memcpy(out + *len, s, slen);
    *len += slen;
    out[*len] = '\0';
}

/*
 * `url` as messages show it: no user name, password, query or fragment,
 * no control characters, at most SHOWN_URL characters.
 */
static void shown_url(const char *url, char out[SHOWN_URL * 2])
{
    size_t n = SHOWN_URL * 2, len = 0;
    out[0] = '\0';
    if (!url) url = "";
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) port = NULL;
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) path = NULL;
        append(out, n, &len, scheme, strlen(scheme));
        append(out, n, &len, "://", 3);
        append(out, n, &len, host, strlen(host));
        if (port) {
            append(out, n, &len, ":", 1);
            append(out, n, &len, port, strlen(port));
        }
        if (path) append(out, n, &len, path, strlen(path));
    } else {
        /* Not a URL libcurl takes: its text up to the query, without a user part. */
        const char *start = url;
        const char *authority = strstr(url, "://");
        if (authority) {
            const char *at = strchr(authority + 3, '@');
            if (at && at < authority + 3 + strcspn(authority + 3, "/?#")) {
                append(out, n, &len, url, (size_t)(authority + 3 - url));
                start = at + 1;
            }
        }
        append(out, n, &len, start, strcspn(start, "?#"));
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = '?';
    if (len > SHOWN_URL) {
        len = SHOWN_URL;
        while (len > 0 && ((unsigned char)out[len] & 0xc0) == 0x80)
            len--; /* whole UTF-8 only */
        memcpy(out + len, "...", 4);
    }
}

/* "16 MiB", "64 KiB", "1000 bytes". */
static void shown_size(size_t bytes, char out[32])
{
    if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
        snprintf(out, 32, "%zu MiB", bytes / (1024 * 1024));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(out, 32, "%zu KiB", bytes / 1024);
    else
        snprintf(out, 32, "%zu bytes", bytes);
}

/*
 * Fails the request with "fetch URL: <reason>", the URL being the one
 * asked for and, after redirects, the one that failed.
 */
__attribute__((format(printf, 3, 4))) static int job_fail(job *j, int code, const char *fmt, ...)
{
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    char first[SHOWN_URL * 2], hop[SHOWN_URL * 2];
    shown_url(j->req->url, first);
    if (j->redirects > 0) {
        shown_url(j->url, hop);
        herald_fail(&j->resp->err, code, "fetch %s (redirected to %s): %s", first, hop, reason);
    } else {
        herald_fail(&j->resp->err, code, "fetch %s: %s", first, reason);
    }
    j->resp->rc = code;
    return code;
}

/* ---- Requests ---- */

static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Splits "Name: value" (RFC 9110 field syntax, no line breaks); the value
 * without the blanks around it. False when the line is not a header.
 */
static bool split_header(const char *line, size_t *name_len, const char **value, size_t *value_len)
{
    size_t n = 0;
    while (is_token_char((unsigned char)line[n]))
        n++;
    if (n == 0 || line[n] != ':') return false;
    const char *v = line + n + 1;
    for (const char *p = v; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vlen = strlen(v);
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    *name_len = n;
    *value = v;
    *value_len = vlen;
    return true;
}

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* Parses and normalizes a URL into *out (malloc'd); only http and https. */
static int take_url(job *j, const char *url, char **out)
{
    *out = NULL;
    if (!url || !*url) return job_fail(j, HERALD_EINVAL, "no URL");
    if (strlen(url) > HD_FETCH_MAX_URL)
        return job_fail(j, HERALD_ELIMIT, "URL longer than %d characters", HD_FETCH_MAX_URL);
    CURLU *u = curl_url();
    if (!u) return job_fail(j, HERALD_ENOMEM, "out of memory");
    char *scheme = NULL, *text = NULL;
    int rc = 0;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_URL, &text, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        rc = job_fail(j, HERALD_ENOMEM, "out of memory");
    else if (uc != CURLUE_OK)
        rc = job_fail(j, HERALD_EINVAL, "not a valid URL (%s)", curl_url_strerror(uc));
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        rc = job_fail(j, HERALD_EINVAL, "only http and https URLs can be fetched");
    else if (!(*out = strdup(text)))
        rc = job_fail(j, HERALD_ENOMEM, "out of memory");
    curl_free(scheme);
    curl_free(text);
    curl_url_cleanup(u);
    return rc;
}

/* Checks a request once, when the thread takes it in. */
static int check_request(hd_fetcher *f, job *j)
{
    hd_fetch_request *r = j->req;
    int rc = take_url(j, r->url, &j->url);
    if (rc) return rc;
    const char *m = r->method && *r->method ? r->method : "GET";
    for (size_t i = 0; i < sizeof methods / sizeof methods[0] && !j->method; i++)
        if (strcasecmp(m, methods[i]) == 0) j->method = methods[i];
    if (!j->method) {
        size_t shown = 0;
        while (shown < 32 && is_token_char((unsigned char)m[shown]))
            shown++;
        return job_fail(j, HERALD_EINVAL,
                        "method %.*s%s is not supported (GET, POST, PUT, PATCH, DELETE, HEAD, "
                        "OPTIONS)",
                        (int)shown, m, m[shown] ? "..." : "");
    }
    if (r->body_len > 0 && !r->body) return job_fail(j, HERALD_EINVAL, "a body length but no body");
    if (r->body_len > 0 && (!strcmp(j->method, "GET") || !strcmp(j->method, "HEAD")))
        return job_fail(j, HERALD_EINVAL, "a %s request cannot have a body", j->method);
    if (r->body_len > f->max_request) {
        char limit[32];
        shown_size(f->max_request, limit);
        return job_fail(j, HERALD_ELIMIT, "request body larger than %s", limit);
    }
    j->send_body = r->body_len > 0 || !strcmp(j->method, "POST") || !strcmp(j->method, "PUT") ||
                   !strcmp(j->method, "PATCH");
    if (r->nheaders > 0 && !r->headers) return job_fail(j, HERALD_EINVAL, "headers missing");
    size_t bytes = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *line = r->headers[i];
        size_t name_len, value_len;
        const char *value;
        if (!line || !split_header(line, &name_len, &value, &value_len))
            return job_fail(j, HERALD_EINVAL, "header %zu is not \"Name: value\"", i + 1);
        if (header_is(line, name_len, "Content-Length") ||
            header_is(line, name_len, "Transfer-Encoding"))
            return job_fail(j, HERALD_EINVAL, "the %.*s header is set by fetch itself",
                            (int)name_len, line);
        j->has_content_type |= header_is(line, name_len, "Content-Type");
        j->has_expect |= header_is(line, name_len, "Expect");
        bytes += strlen(line) + 2;
        if (bytes > HD_FETCH_MAX_HEADER_BYTES) {
            char limit[32];
            shown_size(HD_FETCH_MAX_HEADER_BYTES, limit);
            return job_fail(j, HERALD_ELIMIT, "request headers larger than %s", limit);
        }
    }
    return 0;
}

/* Headers dropped on the way: credentials once cross-origin, body headers once the body is. */
static bool header_dropped(const job *j, const char *line, size_t name_len)
{
    if (j->cross_origin &&
        (header_is(line, name_len, "Authorization") || header_is(line, name_len, "Cookie") ||
         header_is(line, name_len, "Proxy-Authorization")))
        return true;
    return j->body_dropped && (header_is(line, name_len, "Content-Type") ||
                               header_is(line, name_len, "Content-Encoding") ||
                               header_is(line, name_len, "Content-Language") ||
                               header_is(line, name_len, "Content-Location"));
}

/* The header list of the current hop; false when memory ran out. */
static bool build_headers(job *j)
{
    struct curl_slist *list = NULL, *grown;
    /* libcurl would wait for 100-continue before large bodies, and call any body a form. */
    if (!j->has_expect && !(list = curl_slist_append(list, "Expect:"))) return false;
    if (!j->has_content_type || j->body_dropped) {
        if (!(grown = curl_slist_append(list, "Content-Type:"))) goto fail;
        list = grown;
    }
    for (size_t i = 0; i < j->req->nheaders; i++) {
        const char *line = j->req->headers[i], *value;
        size_t name_len, value_len;
        split_header(line, &name_len, &value, &value_len);
        if (header_dropped(j, line, name_len)) continue;
        /* "Name:" alone would remove a header of libcurl's; "Name;" sends it empty. */
        char *text = malloc(name_len + value_len + 3);
        if (!text) goto fail;
        if (value_len)
            sprintf(text, "%.*s: %.*s", (int)name_len, line, (int)value_len, value);
        else
            sprintf(text, "%.*s;", (int)name_len, line);
        grown = curl_slist_append(list, text);
        free(text);
        if (!grown) goto fail;
        list = grown;
    }
    j->curl_headers = list;
    return true;
fail:
    curl_slist_free_all(list);
    return false;
}

static void clear_headers(hd_fetch_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    r->nheaders = 0;
}

/* ---- Callbacks (on the fetcher's thread, inside curl_multi_perform) ---- */

static curl_socket_t open_socket(void *p, curlsocktype purpose, struct curl_sockaddr *sa)
{
    job *j = p;
    ip_addr a;
    if (purpose != CURLSOCKTYPE_IPCXN || !sockaddr_ip(&sa->addr, sa->addrlen, &a)) {
        j->refused_kind = "not an IP address";
        snprintf(j->refused_addr, sizeof j->refused_addr, "the address");
        return CURL_SOCKET_BAD;
    }
    const char *kind = refusal(j->f, &a);
    if (kind) {
        j->refused_kind = kind;
        inet_ntop(a.family, a.b, j->refused_addr, sizeof j->refused_addr);
        return CURL_SOCKET_BAD;
    }
    return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* Before each request on a connection, new or reused: the guard once more, on what it reached. */
static int before_request(void *p, char *primary_ip, char *local_ip, int primary_port,
                          int local_port)
{
    (void)local_ip, (void)primary_port, (void)local_port;
    job *j = p;
    ip_addr a;
    const char *kind =
        primary_ip && parse_ip(primary_ip, &a) ? refusal(j->f, &a) : "not an IP address";
    if (kind) {
        j->refused_kind = kind;
        snprintf(j->refused_addr, sizeof j->refused_addr, "%s", primary_ip ? primary_ip : "?");
        return CURL_PREREQFUNC_ABORT;
    }
    j->connected = true;
    return CURL_PREREQFUNC_OK;
}

static bool push_header(job *j, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    hd_fetch_response *r = j->resp;
    if (r->nheaders == j->headers_cap) {
        size_t cap = j->headers_cap ? j->headers_cap * 2 : 16;
        char **grown = realloc(r->headers, cap * sizeof *grown);
        if (!grown) return false;
        r->headers = grown;
        j->headers_cap = cap;
    }
    char *line = malloc(name_len + value_len + 3);
    if (!line) return false;
    for (size_t i = 0; i < name_len; i++)
        line[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    memcpy(line + name_len, ": ", 2);
    memcpy(line + name_len + 2, value, value_len);
    line[name_len + 2 + value_len] = '\0';
    r->headers[r->nheaders++] = line;
    return true;
}

/* A folded line (obsolete, still seen) continues the previous header's value. */
static bool continue_header(job *j, const char *more, size_t len)
{
    hd_fetch_response *r = j->resp;
    if (r->nheaders == 0) return true;
    char *last = r->headers[r->nheaders - 1];
    size_t old = strlen(last);
    char *grown = realloc(last, old + 1 + len + 1);
    if (!grown) return false;
    grown[old] = ' ';
    memcpy(grown + old + 1, more, len);
    grown[old + 1 + len] = '\0';
    r->headers[r->nheaders - 1] = grown;
    return true;
}

static size_t on_header(char *data, size_t size, size_t count, void *p)
{
    job *j = p;
    size_t len = size * count;
    j->header_bytes += len;
    if (j->header_bytes > HD_FETCH_MAX_HEADER_BYTES) {
        j->abort = ABORT_HEADERS_TOO_LARGE;
        return 0;
    }
    /* A status line starts a response (an interim 1xx, or the final one): only its headers count.
     */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        clear_headers(j->resp);
        j->resp->body_len = 0;
        j->length_checked = false;
        return len;
    }
    size_t end = len;
    while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n'))
        end--;
    if (end == 0) return len;
    bool ok = true;
    if (data[0] == ' ' || data[0] == '\t') {
        size_t start = 0;
        while (start < end && (data[start] == ' ' || data[start] == '\t'))
            start++;
        ok = continue_header(j, data + start, end - start);
    } else {
        const char *colon = memchr(data, ':', end);
        if (!colon) return len; /* not a header; nothing to keep */
        size_t name_len = (size_t)(colon - data);
        size_t v = name_len + 1;
        while (v < end && (data[v] == ' ' || data[v] == '\t'))
            v++;
        size_t v_end = end;
        while (v_end > v && (data[v_end - 1] == ' ' || data[v_end - 1] == '\t'))
            v_end--;
        ok = push_header(j, data, name_len, data + v, v_end - v);
    }
    if (!ok) {
        j->abort = ABORT_NOMEM;
        return 0;
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t count, void *p)
{
    job *j = p;
    hd_fetch_response *r = j->resp;
    size_t len = size * count;
    size_t max = j->f->max_response;
    if (!j->length_checked) {
        j->length_checked = true;
        curl_off_t announced = -1;
        if (curl_easy_getinfo(j->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) ==
                CURLE_OK &&
            announced > 0 && (uint64_t)announced > max) {
            j->abort = ABORT_TOO_LARGE;
            return 0;
        }
    }
    if (len > max - r->body_len) {
        j->abort = ABORT_TOO_LARGE;
        return 0;
    }
    if (r->body_len + len + 1 > j->body_cap) {
        size_t cap = j->body_cap ? j->body_cap : 16 * 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *grown = realloc(r->body, cap);
        if (!grown) {
            j->abort = ABORT_NOMEM;
            return 0;
        }
        r->body = grown;
        j->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* ---- Transfers ---- */

/* Sets the easy handle up for the current hop, from nothing (curl_easy_reset). */
static int setup_hop(hd_fetcher *f, job *j)
{
    double left = j->deadline - now_seconds();
    if (left <= 0) return job_fail(j, HD_FETCH_ETIMEOUT, "timed out after %g s", j->timeout);
    if (!j->easy && !(j->easy = curl_easy_init()))
        return job_fail(j, HERALD_ENOMEM, "out of memory");
    CURL *e = j->easy;
    curl_easy_reset(e);
    curl_slist_free_all(j->curl_headers);
    j->curl_headers = NULL;
    long left_ms = (long)ceil(left * 1000);
    long connect_ms = (long)ceil(f->connect * 1000);
    j->connect_limited = connect_ms < left_ms;
    j->connected = false;
    j->length_checked = false;
    j->header_bytes = 0;
    j->abort = ABORT_NONE;
    j->refused_kind = NULL;
    j->errbuf[0] = '\0';
    clear_headers(j->resp);
    j->resp->body_len = 0;
    if (!build_headers(j)) return job_fail(j, HERALD_ENOMEM, "out of memory");

    CURLcode c = CURLE_OK;
#define SET(opt, value)                                                                            \
    if (c == CURLE_OK) c = curl_easy_setopt(e, opt, value)
    SET(CURLOPT_URL, j->url);
    SET(CURLOPT_PRIVATE, (void *)j);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* followed here, see next_hop */
    SET(CURLOPT_PROXY, "");          /* no proxy, whatever the environment says */
    SET(CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_TIMEOUT_MS, left_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_USERAGENT, "Herald");
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)j);
    SET(CURLOPT_PREREQFUNCTION, before_request);
    SET(CURLOPT_PREREQDATA, (void *)j);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)j);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)j);
    SET(CURLOPT_ERRORBUFFER, j->errbuf);
    SET(CURLOPT_HTTPHEADER, j->curl_headers);
    if (!strcmp(j->method, "GET")) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(j->method, "HEAD")) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (j->send_body) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, j->req->body ? j->req->body : "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->req->body_len);
        if (strcmp(j->method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, j->method);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, j->method);
    }
#undef SET
    if (c == CURLE_OUT_OF_MEMORY) return job_fail(j, HERALD_ENOMEM, "out of memory");
    if (c != CURLE_OK)
        return job_fail(j, HD_FETCH_ENETWORK, "libcurl refused an option: %s",
                        curl_easy_strerror(c));
    return 0;
}

/* Frees what a request holds and calls its `done`; it is on no list of the thread's. */
static void finish(hd_fetcher *f, job *j)
{
    pthread_mutex_lock(&f->lock);
    hd__dlist_unlink(&f->live, &j->live);
    pthread_mutex_unlock(&f->lock);
    if (j->easy) curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->curl_headers);
    hd_fetch_response *r = j->resp;
    if (r->rc != 0) {
        clear_headers(r);
        free(r->headers);
        free(r->body);
        free(r->url);
        r->headers = NULL;
        r->body = NULL;
        r->url = NULL;
        r->body_len = 0;
        r->status = 0;
    }
    if (j->done) j->done(j->ctx, r);
    hd__fetch_request_free(j->req);
    free(j->url);
    free(j);
}

static void start(hd_fetcher *f, job *j)
{
    if (setup_hop(f, j) != 0) {
        finish(f, j);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(f->multi, j->easy);
    if (mc != CURLM_OK) {
        job_fail(j, mc == CURLM_OUT_OF_MEMORY ? HERALD_ENOMEM : HD_FETCH_ENETWORK,
                 "could not start: %s", curl_multi_strerror(mc));
        finish(f, j);
        return;
    }
    j->running = true;
    hd__dlist_push_back(&f->running, &j->queue);
    f->nrunning++;
}

/* Takes a request off the thread's lists (and out of libcurl). */
static void detach(hd_fetcher *f, job *j)
{
    if (j->running) {
        curl_multi_remove_handle(f->multi, j->easy);
        hd__dlist_unlink(&f->running, &j->queue);
        f->nrunning--;
        j->running = false;
    } else {
        hd__dlist_unlink(&f->waiting, &j->queue);
    }
}

static bool same_origin(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    bool same = false;
    if (ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
        curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
        static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
        same = true;
        for (size_t i = 0; i < 3 && same; i++) {
            char *x = NULL, *y = NULL;
            same = curl_url_get(ua, parts[i], &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
                   curl_url_get(ub, parts[i], &y, CURLU_DEFAULT_PORT) == CURLUE_OK &&
                   strcasecmp(x, y) == 0;
            curl_free(x);
            curl_free(y);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/*
 * Follows a redirect to `location` (libcurl's, absolute; taken); the
 * status says how, as the Fetch standard does.
 */
static int next_hop(hd_fetcher *f, job *j, long status, char *location)
{
    if (j->redirects >= f->max_redirects) {
        free(location);
        return job_fail(j, HERALD_ELIMIT, "more than %ld redirect%s", f->max_redirects,
                        f->max_redirects == 1 ? "" : "s");
    }
    char *next = NULL;
    bool cross = !same_origin(j->url, location);
    /* Messages from here on name the new location. */
    free(j->url);
    j->url = location;
    j->redirects++;
    int rc = take_url(j, location, &next);
    if (rc) return rc;
    free(j->url);
    j->url = next;
    j->cross_origin |= cross;
    bool post = !strcmp(j->method, "POST");
    bool keeps = !strcmp(j->method, "GET") || !strcmp(j->method, "HEAD");
    if (((status == 301 || status == 302) && post) || (status == 303 && !keeps)) {
        j->method = "GET";
        j->send_body = false;
        j->body_dropped = true;
    }
    return setup_hop(f, j);
}

static int transfer_error(hd_fetcher *f, job *j, CURLcode cc)
{
    char limit[32];
    switch (j->abort) {
    case ABORT_TOO_LARGE:
        shown_size(f->max_response, limit);
        return job_fail(j, HERALD_ELIMIT, "response larger than %s", limit);
    case ABORT_HEADERS_TOO_LARGE:
        shown_size(HD_FETCH_MAX_HEADER_BYTES, limit);
        return job_fail(j, HERALD_ELIMIT, "response headers larger than %s", limit);
    case ABORT_NOMEM:
        return job_fail(j, HERALD_ENOMEM, "out of memory");
    case ABORT_NONE:
        break;
    }
    if (j->refused_kind && (cc == CURLE_COULDNT_CONNECT || cc == CURLE_ABORTED_BY_CALLBACK))
        return job_fail(j, HERALD_EACCESS, "refused: %s is %s (open it with --allow-fetch)",
                        j->refused_addr, j->refused_kind);
    const char *detail = j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        if (!j->connected && j->connect_limited)
            return job_fail(j, HD_FETCH_ETIMEOUT, "could not connect within %g s", f->connect);
        return job_fail(j, HD_FETCH_ETIMEOUT, "timed out after %g s", j->timeout);
    case CURLE_OUT_OF_MEMORY:
        return job_fail(j, HERALD_ENOMEM, "out of memory");
    case CURLE_COULDNT_RESOLVE_HOST:
        return job_fail(j, HD_FETCH_ENETWORK, "could not resolve the host name (%s)", detail);
    case CURLE_COULDNT_CONNECT:
        return job_fail(j, HD_FETCH_ENETWORK, "could not connect (%s)", detail);
    case CURLE_PEER_FAILED_VERIFICATION:
        return job_fail(j, HD_FETCH_ENETWORK, "TLS certificate not trusted: %s", detail);
    case CURLE_SSL_CONNECT_ERROR:
        return job_fail(j, HD_FETCH_ENETWORK, "TLS handshake failed: %s", detail);
    case CURLE_GOT_NOTHING:
        return job_fail(j, HD_FETCH_ENETWORK, "the server closed the connection without answering");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return job_fail(j, HERALD_EINVAL, "%s", detail);
    default:
        return job_fail(j, HD_FETCH_ENETWORK, "%s", detail);
    }
}

static void succeed(job *j)
{
    hd_fetch_response *r = j->resp;
    char *url = NULL;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(j->easy, CURLINFO_EFFECTIVE_URL, &url);
    r->url = strdup(url ? url : j->url);
    if (!r->body) r->body = calloc(1, 1);
    if (!r->url || !r->body) job_fail(j, HERALD_ENOMEM, "out of memory");
}

/* A transfer libcurl ended: the answer, an error, or the next hop of a redirect. */
static void transfer_done(hd_fetcher *f, job *j, CURLcode cc)
{
    detach(f, j);
    if (cc != CURLE_OK) {
        transfer_error(f, j, cc);
        finish(f, j);
        return;
    }
    long status = 0;
    char *location = NULL;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    bool redirect =
        status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    if (redirect && f->max_redirects >= 0 &&
        curl_easy_getinfo(j->easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location) {
        /* The location lives in the easy handle, which the next hop resets. */
        char *copy = strdup(location);
        int rc = copy ? next_hop(f, j, status, copy) : job_fail(j, HERALD_ENOMEM, "out of memory");
        if (rc == 0) {
            CURLMcode mc = curl_multi_add_handle(f->multi, j->easy);
            if (mc == CURLM_OK) {
                j->running = true;
                hd__dlist_push_back(&f->running, &j->queue);
                f->nrunning++;
                return;
            }
            job_fail(j, HD_FETCH_ENETWORK, "could not follow a redirect: %s",
                     curl_multi_strerror(mc));
        }
        finish(f, j);
        return;
    }
    succeed(j);
    finish(f, j);
}

static void take_results(hd_fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode cc = m->data.result;
        char *p = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
        transfer_done(f, (job *)(void *)p, cc);
    }
}

/* Requests just submitted: checked, then queued (or ended at once). */
static void take_in(hd_fetcher *f, job *in)
{
    while (in) {
        job *j = in;
        in = j->next_incoming;
        if (check_request(f, j) != 0)
            finish(f, j);
        else
            hd__dlist_push_back(&f->waiting, &j->queue);
    }
}

static void end_canceled(hd_fetcher *f)
{
    job *canceled = NULL;
    pthread_mutex_lock(&f->lock);
    hd_dlist *lists[] = {&f->waiting, &f->running};
    for (size_t i = 0; i < 2; i++)
        for (hd_link *l = lists[i]->head; l; l = l->next) {
            job *j = HD_CONTAINER(l, job, queue);
            if (!j->cancel) continue;
            j->next_canceled = canceled;
            canceled = j;
        }
    pthread_mutex_unlock(&f->lock);
    while (canceled) {
        job *j = canceled;
        canceled = j->next_canceled;
        detach(f, j);
        job_fail(j, HD_FETCH_ECANCELED, "canceled");
        finish(f, j);
    }
}

/* Starts what waits while there is room; ends what waited past its time. Returns the next deadline
 * of a request still waiting, or INFINITY. */
static double run_queue(hd_fetcher *f)
{
    double now = now_seconds(), next = INFINITY;
    hd_link *l = f->waiting.head;
    while (l) {
        job *j = HD_CONTAINER(l, job, queue);
        l = l->next;
        if (j->deadline <= now) {
            hd__dlist_unlink(&f->waiting, &j->queue);
            job_fail(j, HD_FETCH_ETIMEOUT, "timed out after %g s", j->timeout);
            finish(f, j);
        } else if (f->nrunning < f->max_in_flight) {
            hd__dlist_unlink(&f->waiting, &j->queue);
            start(f, j);
        } else if (j->deadline < next) {
            next = j->deadline;
        }
    }
    return next;
}

static void end_everything(hd_fetcher *f, job *in)
{
    for (;;) {
        while (in) {
            job *j = in;
            in = j->next_incoming;
            job_fail(j, HD_FETCH_ECANCELED, "canceled: Herald is stopping");
            finish(f, j);
        }
        hd_dlist *lists[] = {&f->waiting, &f->running};
        for (size_t i = 0; i < 2; i++)
            while (lists[i]->head) {
                job *j = HD_CONTAINER(lists[i]->head, job, queue);
                detach(f, j);
                job_fail(j, HD_FETCH_ECANCELED, "canceled: Herald is stopping");
                finish(f, j);
            }
        /* A `done` may have submitted again. */
        pthread_mutex_lock(&f->lock);
        in = f->incoming;
        f->incoming = f->incoming_tail = NULL;
        pthread_mutex_unlock(&f->lock);
        if (!in) return;
    }
}

static void *fetcher_main(void *arg)
{
    hd_fetcher *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        job *in = f->incoming;
        f->incoming = f->incoming_tail = NULL;
        bool cancels = f->cancel_pending, stopping = f->stopping;
        f->cancel_pending = false;
        pthread_mutex_unlock(&f->lock);
        if (stopping) {
            end_everything(f, in);
            return NULL;
        }
        take_in(f, in);
        if (cancels) end_canceled(f);
        run_queue(f);
        int still_running;
        curl_multi_perform(f->multi, &still_running);
        take_results(f);
        double next = run_queue(f);
        long wait_ms = IDLE_POLL_MS;
        if (next < INFINITY) {
            double ms = ceil((next - now_seconds()) * 1000);
            wait_ms = ms < 0 ? 0 : ms < IDLE_POLL_MS ? (long)ms : IDLE_POLL_MS;
        }
        if (curl_multi_poll(f->multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
            /* Never spin on a poll that fails at once; the transfers' own timeouts still run. */
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

/* ---- The API ---- */

int hd__fetcher_start(const hd_fetch_config *cfg, hd_fetcher **out, herald_error *err)
{
    *out = NULL;
    hd_fetch_config defaults = {0};
    if (!cfg) cfg = &defaults;
    hd_fetcher *f = calloc(1, sizeof *f);
    if (!f) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    pthread_mutex_init(&f->lock, NULL);
    f->next_handle = 1;
    f->timeout =
        cfg->timeout_seconds > 0 ? fmin(cfg->timeout_seconds, MAX_TIMEOUT) : DEFAULT_TIMEOUT;
    f->connect =
        cfg->connect_seconds > 0 ? fmin(cfg->connect_seconds, MAX_TIMEOUT) : DEFAULT_CONNECT;
    f->max_response = cfg->max_response ? cfg->max_response : DEFAULT_BODY;
    if (f->max_response > SIZE_MAX / 4)
        f->max_response = SIZE_MAX / 4; /* the body's room doubles */
    f->max_request = cfg->max_request ? cfg->max_request : DEFAULT_BODY;
    f->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : DEFAULT_IN_FLIGHT;
    f->max_redirects = cfg->max_redirects == 0 ? DEFAULT_REDIRECTS : cfg->max_redirects;
    int rc = parse_allow(f, cfg->allow, err);
    if (rc) goto fail;
    if (!(f->curl_acquired = curl_acquire())) {
        rc = herald_fail(err, HD_FETCH_ENETWORK, "fetch: libcurl could not be set up");
        goto fail;
    }
    if (!(f->multi = curl_multi_init())) {
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        goto fail;
    }
    if (pthread_create(&f->thread, NULL, fetcher_main, f) != 0) {
        rc = herald_fail(err, HD_FETCH_ENETWORK, "fetch: could not start its thread");
        goto fail;
    }
    f->thread_started = true;
    *out = f;
    return 0;
fail:
    hd__fetcher_free(f);
    return rc;
}

uint64_t hd__fetch_submit(hd_fetcher *f, hd_fetch_request *req, hd_fetch_done_fn done, void *ctx)
{
    job *j = calloc(1, sizeof *j);
    hd_fetch_response *resp = calloc(1, sizeof *resp);
    if (!req) req = calloc(1, sizeof *req); /* ends with "no URL" */
    if (!j || !resp || !req) {
        free(j);
        free(resp);
        hd__fetch_request_free(req);
        return 0;
    }
    j->f = f;
    j->req = req;
    j->resp = resp;
    j->done = done;
    j->ctx = ctx;
    double t = req->timeout_seconds;
    j->timeout = t > 0 ? fmin(t, MAX_TIMEOUT) : f->timeout; /* NaN: the config's */
    j->deadline = now_seconds() + j->timeout;
    pthread_mutex_lock(&f->lock);
    uint64_t handle = j->handle = f->next_handle++;
    hd__dlist_push_back(&f->live, &j->live);
    if (f->incoming_tail)
        f->incoming_tail->next_incoming = j;
    else
        f->incoming = j;
    f->incoming_tail = j;
    pthread_mutex_unlock(&f->lock);
    curl_multi_wakeup(f->multi);
    return handle;
}

void hd__fetch_cancel(hd_fetcher *f, uint64_t handle)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    for (hd_link *l = f->live.head; l && !found; l = l->next) {
        job *j = HD_CONTAINER(l, job, live);
        if (j->handle == handle) found = j->cancel = f->cancel_pending = true;
    }
    pthread_mutex_unlock(&f->lock);
    if (found) curl_multi_wakeup(f->multi);
}

void hd__fetcher_free(hd_fetcher *f)
{
    if (!f) return;
    if (f->thread_started) {
        pthread_mutex_lock(&f->lock);
        f->stopping = true;
        pthread_mutex_unlock(&f->lock);
        curl_multi_wakeup(f->multi);
        pthread_join(f->thread, NULL);
    }
    if (f->multi) curl_multi_cleanup(f->multi);
    if (f->curl_acquired) curl_release();
    pthread_mutex_destroy(&f->lock);
    free(f->allow);
    free(f);
}

void hd__fetch_request_free(hd_fetch_request *r)
{
    if (!r) return;
    for (size_t i = 0; r->headers && i < r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->url);
    free(r->method);
    free(r->body);
    free(r);
}

void hd__fetch_response_free(hd_fetch_response *r)
{
    if (!r) return;
    clear_headers(r);
    free(r->headers);
    free(r->body);
    free(r->url);
    free(r);
}
