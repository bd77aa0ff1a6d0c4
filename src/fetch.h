/*
 * Outgoing HTTP for server actions: the engine under `fetch(url, options)`.
 *
 * One thread of its own drives every request with libcurl's multi
 * interface, so that hundreds of requests are in flight at once without a
 * thread each; an action that calls fetch gives its pool thread back while
 * it waits, and is resumed from the `done` callback.
 *
 * What it guards against, because the URLs come from application code and
 * often from its users:
 * - Server-side request forgery: every address a request connects to
 *   (after DNS, on every redirect hop) is checked, and loopback, private,
 *   link-local, carrier-grade NAT, unspecified, multicast, broadcast and
 *   reserved addresses, with their IPv4-mapped, -compatible, NAT64 and
 *   6to4 IPv6 forms, are refused unless `--allow-fetch` names them.
 * - Only http and https, on redirects too; proxy environment variables,
 *   .netrc and cookie files are ignored.
 * - TLS is always verified (peer and host name) against the system's CA
 *   store; there is no way to turn that off.
 * - Bounded: whole-request timeout (time waiting in the queue included),
 *   connect timeout, response body, response headers, request body and
 *   headers, redirects, requests in flight.
 *
 * Redirects (301, 302, 303, 307, 308) are followed here, not by libcurl,
 * with the rules of the Fetch standard: 303, and 301/302 after a POST,
 * become a GET without a body; Authorization, Cookie and
 * Proxy-Authorization are dropped once a redirect leaves the original
 * scheme, host and port. Response bodies are decoded (gzip and the other
 * encodings libcurl knows) as browsers do.
 *
 * Caveats:
 * - Threads: hd__fetch_submit and hd__fetch_cancel may be called from any
 *   thread, also from inside `done`. `done` runs on the fetcher's thread
 *   and holds up every other request while it runs: it should hand the
 *   response on and return. hd__fetcher_free must not be called from
 *   `done`, nor while another thread may still submit or cancel.
 * - Messages name the URL without its user name, password, query and
 *   fragment (they often hold secrets), cut to 160 characters.
 * - Requests beyond max_in_flight wait in a queue that is not bounded
 *   here; the actions runtime bounds it by bounding its actions.
 */
#ifndef HD_FETCH_H
#define HD_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"

/*
 * Codes for the failures herald/error.h has no code of its own for. Every
 * fetch failure's code is one of these, HERALD_EINVAL (bad URL, method,
 * header or body), HERALD_ELIMIT (a size limit or too many redirects),
 * HERALD_EACCESS (an address refused by the guard) or HERALD_ENOMEM.
 */
#define HD_FETCH_ETIMEOUT  HERALD_ELIMIT /* the request's time ran out */
#define HD_FETCH_ENETWORK  HERALD_EIO    /* DNS, connection, TLS or protocol failure */
#define HD_FETCH_ECANCELED HERALD_EBUSY  /* hd__fetch_cancel, or the fetcher stopped */

/* Bytes of the headers of one request, and of one response (with its interim 1xx answers). */
#define HD_FETCH_MAX_HEADER_BYTES (64 * 1024)
/* Characters of a URL, also of one a redirect points to. */
#define HD_FETCH_MAX_URL 8192

typedef struct hd_fetch_config {
    /*
     * --allow-fetch: comma-separated IP addresses or CIDR ranges
     * (127.0.0.1, 127.0.0.0/8, ::1, 10.0.0.0/8) that requests may reach
     * although the guard would refuse them; NULL or blank: none.
     */
    const char *allow;
    double timeout_seconds; /* per request, from submit to the end of the body; 0: 30 s */
    double connect_seconds; /* DNS and connection, per hop; 0: 10 s */
    size_t max_response;    /* bytes of a response body (decoded); 0: 16 MiB */
    long max_redirects;     /* 0: 5; negative: none followed (a 3xx is the response) */
    size_t max_in_flight;   /* transfers at once; 0: 256; more wait in a queue, in order */
    size_t max_request;     /* bytes of a request body; 0: 16 MiB */
} hd_fetch_config;

/* A request. Every pointer is owned by the request (freed by hd__fetch_request_free). */
typedef struct hd_fetch_request {
    char *url;      /* http:// or https:// */
    char *method;   /* GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS, any case; NULL: GET */
    char **headers; /* "Name: value"; Content-Length and Transfer-Encoding are refused */
    size_t nheaders;
    char *body; /* body_len bytes, or NULL; none with GET or HEAD */
    size_t body_len;
    /* Seconds for the whole request, or 0 for the config's; callers cap it at an
     * action's remaining wall-clock time. */
    double timeout_seconds;
} hd_fetch_request;

/*
 * An answer, or the reason there is none. Owned by whoever receives it in
 * `done`, freed with hd__fetch_response_free.
 */
typedef struct hd_fetch_response {
    int rc;           /* 0, or a code (see above) */
    herald_error err; /* when rc != 0: "fetch URL: ..." */
    /* When rc == 0 (else 0 / NULL): */
    long status;
    char **headers; /* "name: value" of the final response, names lower-case, in order */
    size_t nheaders;
    char *body; /* body_len bytes and a NUL (the body may hold NULs too); never NULL */
    size_t body_len;
    char *url; /* the final URL, after redirects */
} hd_fetch_response;

typedef struct hd_fetcher hd_fetcher;

/* Called once per submitted request, on the fetcher's thread; `resp` is the callee's. */
typedef void (*hd_fetch_done_fn)(void *ctx, hd_fetch_response *resp);

/*
 * Parses cfg->allow and starts the fetcher's thread. Returns 0 and sets
 * *out, or HERALD_EINVAL naming the first bad allow entry, HERALD_ENOMEM,
 * or HD_FETCH_ENETWORK when libcurl or the thread cannot start. `cfg` is
 * copied; its strings need not outlive the call.
 */
int hd__fetcher_start(const hd_fetch_config *cfg, hd_fetcher **out, herald_error *err);

/*
 * Queues `req` (taken in all cases) and returns its handle, never 0. `done`
 * is then called exactly once, on the fetcher's thread and never inside
 * this call, with the response or the error: a bad request
 * (HERALD_EINVAL, HERALD_ELIMIT), a refused address, a timeout, a network
 * failure, a cancel, the fetcher stopping. The one exception is memory:
 * when the request cannot even be queued, it returns 0, frees `req` and
 * never calls `done`.
 */
uint64_t hd__fetch_submit(hd_fetcher *f, hd_fetch_request *req, hd_fetch_done_fn done, void *ctx);

/*
 * Ends the request `handle` if it has not ended yet: soon after, on the
 * fetcher's thread, its `done` gets HD_FETCH_ECANCELED ("fetch URL:
 * canceled"), whether it was queued or in flight. A handle whose `done` has
 * run (or that never existed) is ignored. Never fails, never waits.
 */
void hd__fetch_cancel(hd_fetcher *f, uint64_t handle);

/*
 * Stops the thread and frees the fetcher. Requests not finished get
 * HD_FETCH_ECANCELED through their `done` first (on the fetcher's thread,
 * before this returns), so every `done` has run when it returns; requests
 * submitted from inside those calls end the same way. NULL is ignored.
 */
void hd__fetcher_free(hd_fetcher *f);

/*
 * The guard's verdict on one address in text form ("10.1.2.3", "::1"), as
 * the fetcher would give it: NULL when requests may connect to it, or why
 * not ("a private address", "a loopback address", ...; static strings).
 * Text that is no IP address gives "not an IP address".
 */
const char *hd__fetch_refusal(const hd_fetcher *f, const char *address);

/* Free a request (with everything it owns), or a response; NULL is ignored. */
void hd__fetch_request_free(hd_fetch_request *r);
void hd__fetch_response_free(hd_fetch_response *r);

#endif
