/*
 * `herald console`: the admin console in a terminal. A client of a running
 * server over the native WebSocket protocol and its admin messages
 * (docs/protocol.md), as the web console at /admin is: tables, schema,
 * functions, stats, one-shot and live queries, function calls, the commit
 * tail, the scheduler's runs. Interactive with line editing and history (libedit) when stdin is
 * a terminal; otherwise one command a line from stdin, stopping with
 * status 1 at the first command that fails (docs/console.md).
 *
 * One thread. libwebsockets owns the connection: frames are written only
 * from LWS_CALLBACK_CLIENT_WRITEABLE, one lws_write per callback, and each
 * complete message received is parsed and queued in `inbox` for the
 * command waiting for it. A tick every 100 ms bounds every lws_service()
 * call, so that Ctrl-C, `--seconds` and the connect deadline are noticed.
 * The prompt does not service the connection: between commands the server
 * sends nothing unasked (watch and tail are foreground commands that end
 * with `unsub`), and a connection that closed meanwhile is noticed, and
 * reopened, before the next command.
 *
 * It must never print, log or keep in its history the key it signs in
 * with; never write anything but the history file; and in script mode
 * never go on after a command that failed.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <locale.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HERALD_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#include "buf.h"
#include "console.h"
#include "diff.h"
#include "fn.h"
#include "herald/error.h"
#include "herald/value.h"

#define DEFAULT_URL     "ws://localhost:3210"
#define DEFAULT_PORT    3210
#define CONNECT_SECONDS 30.0
#define TICK_US         (100 * LWS_US_PER_MS)
#define MAX_INBOUND     ((size_t)256 << 20)
#define HISTORY_NAME    ".herald_console_history"
#define HISTORY_LINES   1000
#define PROMPT          "herald> "
#define CMD_QUIT        1

enum conn_state { CONN_NONE, CONN_CONNECTING, CONN_OPEN, CONN_CLOSED };

/* What next_message() found: a message, or why it stopped waiting. */
enum wait_result { WAIT_MESSAGE, WAIT_INTERRUPTED, WAIT_TIMEOUT, WAIT_CLOSED };

typedef struct outframe {
    struct outframe *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of room for lws, then the text */
} outframe;

typedef struct inmsg {
    struct inmsg *next;
    herald_value msg;
} inmsg;

typedef struct console {
    /* where, and as whom */
    char host[256];
    char host_header[300];
    char path[1024];
    char url[1400]; /* as shown to people */
    int port;
    bool tls;
    const char *ca_file; /* --ca: a CA trusted besides the system's, or NULL */
    /* OpenSSL's first objection to the server's certificate (X509_V_ERR_*), or 0 */
    long tls_error;
    char *token; /* the admin key (or a user's JWT): never printed */
    bool json, interactive;
    /* the connection */
    struct lws_context *lws;
    struct lws *wsi;
    enum conn_state state;
    char reason[400]; /* why the connection ended */
    outframe *out_head, **out_tail;
    inmsg *in_head, **in_tail;
    hd_buf rx;
    bool rx_dropping;
    lws_sorted_usec_list_t tick, poke;
    unsigned long next_id;
    /* the app's functions from the `functions` admin op; undefined until asked */
    herald_value functions;
    unsigned long line_no;
} console;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- values ---- */

static const char *get_str(const herald_value *obj, const char *key)
{
    const herald_value *v = obj ? herald_object_get(obj, key) : NULL;
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

static bool num_of(const herald_value *v, double *out)
{
    if (!v) return false;
    if (v->type == HERALD_INT64)
        *out = (double)v->u.i;
    else if (v->type == HERALD_FLOAT64)
        *out = v->u.f;
    else
        return false;
    return true;
}

static unsigned long long version_of(const herald_value *msg)
{
    double d;
    return num_of(herald_object_get(msg, "version"), &d) && d > 0 ? (unsigned long long)d : 0;
}

static int obj_set(herald_value *obj, const char *key, herald_value v)
{
    return herald_object_set(obj, key, strlen(key), v);
}

static int obj_set_str(herald_value *obj, const char *key, const char *s)
{
    herald_value v;
    int rc = herald_string(&v, s, strlen(s));
    return rc ? rc : obj_set(obj, key, v);
}

/* A new message {"type": type, "id": id}; id may be NULL. */
static int message_new(herald_value *m, const char *type, const char *id, herald_error *err)
{
    herald_object_init(m);
    if (obj_set_str(m, "type", type) || (id && obj_set_str(m, "id", id))) {
        herald_value_free(m);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

/* The wire name of an error code back to the code; unknown names are InvalidArgument. */
static int code_of(const char *name)
{
    for (int c = HERALD_ENOMEM; c >= HERALD_EFUNCTION; c--)
        if (!strcmp(herald_errcode_name(c), name)) return c;
    return HERALD_EINVAL;
}

/* Fills `err` from an `error` frame: "Code: message", and the function's data. */
static int server_error(const herald_value *frame, herald_error *err)
{
    const char *code = get_str(frame, "code"), *message = get_str(frame, "message");
    const herald_value *data = herald_object_get(frame, "data");
    char *data_json = data && data->type != HERALD_NULL ? herald_value_to_json(data) : NULL;
    int rc = herald_fail(err, code ? code_of(code) : HERALD_EINVAL, "%s: %s%s%s",
                         code ? code : "Error", message ? message : "(no message)",
                         data_json ? " " : "", data_json ? data_json : "");
    free(data_json);
    return rc;
}

/* ---- output ---- */

/* The shortest text that reads back as the same double. */
static void fmt_double(char *out, size_t n, double d)
{
    if (isnan(d)) {
        snprintf(out, n, "NaN");
    } else if (isinf(d)) {
        snprintf(out, n, d < 0 ? "-Infinity" : "Infinity");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, n, "%.*g", prec, d);
            if (strtod(out, NULL) == d) break;
        }
    }
}

static void put_json_string(hd_buf *b, const char *s, size_t len)
{
    herald_value v;
    if (herald_string(&v, s, len)) {
        b->failed = true;
        return;
    }
    char *json = herald_value_to_json(&v);
    herald_value_free(&v);
    if (!json) {
        b->failed = true;
        return;
    }
    hd__buf_str(b, json);
    free(json);
}

static void indent(hd_buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        hd__buf_str(b, "  ");
}

/*
 * JSON for people: indented, int64 as plain digits, NaN and infinities as
 * words. Bytes keep their Convex form ({"$bytes": ...}).
 */
static void pretty(hd_buf *b, const herald_value *v, int depth)
{
    char num[64];
    switch (v->type) {
    case HERALD_UNDEFINED:
        hd__buf_str(b, "undefined");
        break;
    case HERALD_NULL:
        hd__buf_str(b, "null");
        break;
    case HERALD_BOOLEAN:
        hd__buf_str(b, v->u.b ? "true" : "false");
        break;
    case HERALD_INT64:
        snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        hd__buf_str(b, num);
        break;
    case HERALD_FLOAT64:
        fmt_double(num, sizeof num, v->u.f);
        hd__buf_str(b, num);
        break;
    case HERALD_STRING:
        put_json_string(b, v->u.s.ptr, v->u.s.len);
        break;
    case HERALD_BYTES: {
        char *json = herald_value_to_json(v);
        if (json)
            hd__buf_str(b, json);
        else
            b->failed = true;
        free(json);
        break;
    }
    case HERALD_ARRAY:
        if (!v->u.arr.len) {
            hd__buf_str(b, "[]");
            break;
        }
        hd__buf_str(b, "[\n");
        for (size_t i = 0; i < v->u.arr.len; i++) {
            indent(b, depth + 1);
            pretty(b, &v->u.arr.items[i], depth + 1);
            hd__buf_str(b, i + 1 < v->u.arr.len ? ",\n" : "\n");
        }
        indent(b, depth);
        hd__buf_byte(b, ']');
        break;
    case HERALD_OBJECT:
        if (!v->u.obj.len) {
            hd__buf_str(b, "{}");
            break;
        }
        hd__buf_str(b, "{\n");
        for (size_t i = 0; i < v->u.obj.len; i++) {
            const herald_field *f = &v->u.obj.fields[i];
            indent(b, depth + 1);
            put_json_string(b, f->key, f->key_len);
            hd__buf_str(b, ": ");
            pretty(b, &f->val, depth + 1);
            hd__buf_str(b, i + 1 < v->u.obj.len ? ",\n" : "\n");
        }
        indent(b, depth);
        hd__buf_byte(b, '}');
        break;
    }
}

/* Prints a value on stdout: pretty for people, one line of Convex JSON with --json. */
static int print_value(const console *con, const herald_value *v, herald_error *err)
{
    if (con->json) {
        char *json = herald_value_to_json(v);
        if (!json) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        puts(json);
        free(json);
        return 0;
    }
    hd_buf b = HD_BUF_INIT;
    pretty(&b, v, 0);
    hd__buf_byte(&b, '\n');
    int rc = 0;
    if (b.failed)
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    else
        fwrite(b.p, 1, b.len, stdout);
    hd__buf_free(&b);
    return rc;
}

/* A cell's text for a value: strings bare, numbers short, anything else as JSON. */
static char *cell_text(const herald_value *v, bool stat)
{
    char num[64];
    if (!v) return strdup("");
    if (v->type == HERALD_STRING) return strdup(v->u.s.ptr);
    if (v->type == HERALD_INT64) {
        snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        return strdup(num);
    }
    if (v->type == HERALD_FLOAT64) {
        double d = v->u.f;
        if (stat && isfinite(d) && d != floor(d)) {
            /* Rates and latencies: three decimals are plenty. */
            snprintf(num, sizeof num, "%.3f", d);
            size_t n = strlen(num);
            while (n > 1 && num[n - 1] == '0')
                num[--n] = 0;
            if (num[n - 1] == '.') num[n - 1] = 0;
        } else {
            fmt_double(num, sizeof num, d);
        }
        return strdup(num);
    }
    return herald_value_to_json(v);
}

/* Rows of text cells printed in aligned columns. */
typedef struct table {
    size_t ncols;
    unsigned right; /* bit i: column i is aligned right */
    char **cells;
    size_t ncells, cap;
    bool failed;
} table;

/* Adds a cell, taking ownership of `text` (NULL means out of memory). */
static void table_take(table *t, char *text)
{
    if (!text || t->failed) {
        free(text);
        t->failed = true;
        return;
    }
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **cells = realloc(t->cells, cap * sizeof *cells);
        if (!cells) {
            free(text);
            t->failed = true;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    t->cells[t->ncells++] = text;
}

static void table_add(table *t, const char *text)
{
    table_take(t, strdup(text));
}

/* Width on a terminal: code points, not bytes. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int table_print(table *t, herald_error *err)
{
    if (t->failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    size_t width[16] = {0};
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = text_width(t->cells[i]), col = i % t->ncols;
        if (w > width[col]) width[col] = w;
    }
    hd_buf row = HD_BUF_INIT;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols, pad = width[col] - text_width(t->cells[i]);
        bool right = t->right & (1u << col);
        for (size_t k = 0; right && k < pad; k++)
            hd__buf_byte(&row, ' ');
        hd__buf_str(&row, t->cells[i]);
        for (size_t k = 0; !right && k < pad; k++)
            hd__buf_byte(&row, ' ');
        if (col + 1 < t->ncols && i + 1 < t->ncells) {
            hd__buf_str(&row, "  ");
            continue;
        }
        while (row.len && row.p[row.len - 1] == ' ') /* an empty last column */
            row.len--;
        hd__buf_byte(&row, '\n');
        if (!row.failed) fwrite(row.p, 1, row.len, stdout);
        row.len = 0;
    }
    bool failed = row.failed;
    hd__buf_free(&row);
    return failed ? herald_fail(err, HERALD_ENOMEM, "out of memory") : 0;
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- the connection ---- */

static void frame_free(outframe *f)
{
    OPENSSL_cleanse(f->buf, LWS_PRE + f->len); /* the auth frame carries the key */
    free(f);
}

static void outbox_clear(console *con)
{
    for (outframe *f = con->out_head, *next; f; f = next) {
        next = f->next;
        frame_free(f);
    }
    con->out_head = NULL;
    con->out_tail = &con->out_head;
}

static void inbox_clear(console *con)
{
    for (inmsg *m = con->in_head, *next; m; m = next) {
        next = m->next;
        herald_value_free(&m->msg);
        free(m);
    }
    con->in_head = NULL;
    con->in_tail = &con->in_head;
}

static void set_reason(console *con, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records why the connection ended; the first reason stays. */
static void set_reason(console *con, const char *fmt, ...)
{
    if (con->reason[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(con->reason, sizeof con->reason, fmt, ap);
    va_end(ap);
}

/* A complete text message from the server: parsed and queued. */
static int received(console *con)
{
    herald_value msg;
    herald_error err = {0};
    int rc = herald_value_from_json((const char *)con->rx.p, con->rx.len, &msg, &err);
    con->rx.len = 0;
    if (rc || msg.type != HERALD_OBJECT) {
        if (!rc) herald_value_free(&msg);
        set_reason(con, "the server sent a message that is not a JSON object%s%s", rc ? ": " : "",
                   rc ? err.message : "");
        return -1;
    }
    inmsg *m = malloc(sizeof *m);
    if (!m) {
        herald_value_free(&msg);
        set_reason(con, "out of memory");
        return -1;
    }
    m->next = NULL;
    m->msg = msg;
    *con->in_tail = m;
    con->in_tail = &m->next;
    return 0;
}

/* Verification errors that name no problem with the certificate but its issuer's absence. */
static bool unknown_issuer(long e)
{
    return e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
           e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
           e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    console *con = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS:
        /* The client context (user): nothing older than the server accepts, TLS 1.2. */
        SSL_CTX_set_min_proto_version(user, TLS1_2_VERSION);
        return 0;
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* OpenSSL's verdict on a certificate of the server's chain (len 0: refused): lws
         * fails the handshake, and the first reason is what the user is told. */
        if (!len && !con->tls_error) con->tls_error = X509_STORE_CTX_get_error(user);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        con->state = CONN_OPEN;
        if (con->out_head) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (con->tls_error)
            set_reason(con, "the server's certificate is not trusted: %s%s",
                       X509_verify_cert_error_string(con->tls_error),
                       unknown_issuer(con->tls_error)
                           ? " (to trust a private CA, give its certificate with --ca FILE)"
                           : "");
        else
            set_reason(con, "%s", in && len ? (const char *)in : "the connection failed");
        con->state = CONN_CLOSED;
        con->wsi = NULL;
        outbox_clear(con);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The close payload: a 2-byte status, then the server's reason. */
        if (len > 2)
            set_reason(con, "the server closed the connection: %.*s", (int)(len - 2),
                       (const char *)in + 2);
        /* Nothing more will be answered: a command must not wait for the socket to close. */
        con->state = CONN_CLOSED;
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        set_reason(con, "the server closed the connection");
        con->state = CONN_CLOSED;
        con->wsi = NULL;
        outbox_clear(con);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        /* A message may come in several fragments and several callbacks. */
        if (!con->rx_dropping && con->rx.len + len > MAX_INBOUND) con->rx_dropping = true;
        if (!con->rx_dropping) hd__buf_append(&con->rx, in, len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
        if (con->rx_dropping || con->rx.failed) {
            set_reason(con, "a message from the server is too large for memory");
            return -1;
        }
        if (lws_frame_is_binary(wsi)) {
            con->rx.len = 0; /* the protocol has no binary messages */
            return 0;
        }
        return received(con);
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        outframe *f = con->out_head;
        if (!f) return 0;
        con->out_head = f->next;
        if (!con->out_head) con->out_tail = &con->out_head;
        int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        bool ok = n >= 0 && (size_t)n >= f->len;
        frame_free(f);
        if (!ok) {
            set_reason(con, "cannot send to the server");
            return -1;
        }
        if (con->out_head) lws_callback_on_writable(wsi);
        return 0;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"herald-console", callback, 0, 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Keeps lws_service() from sleeping longer than a tick. */
static void on_tick(lws_sorted_usec_list_t *sul)
{
    console *con = lws_container_of(sul, console, tick);
    lws_sul_schedule(con->lws, 0, &con->tick, on_tick, TICK_US);
}

static void on_poke(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

static void conn_close(console *con)
{
    if (con->lws) lws_context_destroy(con->lws);
    con->lws = NULL;
    con->wsi = NULL;
    con->state = CONN_NONE;
    con->rx_dropping = false;
    outbox_clear(con);
    inbox_clear(con);
    hd__buf_free(&con->rx);
}

/*
 * Waits for the next message (queued or arriving), printing and skipping
 * the server's notices (errors with a null id). `deadline` 0 waits with no
 * limit. *out is the caller's to free when WAIT_MESSAGE is returned.
 */
static enum wait_result next_message(console *con, double deadline, herald_value *out)
{
    for (;;) {
        while (con->in_head) {
            inmsg *m = con->in_head;
            con->in_head = m->next;
            if (!con->in_head) con->in_tail = &con->in_head;
            *out = m->msg;
            free(m);
            const herald_value *id = herald_object_get(out, "id");
            const char *type = get_str(out, "type");
            if (type && !strcmp(type, "error") && (!id || id->type == HERALD_NULL)) {
                herald_error notice = {0};
                server_error(out, &notice);
                fprintf(stderr, "herald console: the server says: %s\n", notice.message);
                herald_value_free(out);
                continue;
            }
            return WAIT_MESSAGE;
        }
        if (interrupted) return WAIT_INTERRUPTED;
        if (con->state != CONN_OPEN) return WAIT_CLOSED;
        if (deadline > 0 && now_seconds() >= deadline) return WAIT_TIMEOUT;
        if (lws_service(con->lws, 0) < 0) {
            set_reason(con, "the event loop failed");
            con->state = CONN_CLOSED;
        }
    }
}

/* Lets lws notice what happened while the prompt waited (a close), without sleeping. */
static void service_now(console *con)
{
    if (!con->lws || con->state != CONN_OPEN) return;
    lws_sul_schedule(con->lws, 0, &con->poke, on_poke, 1);
    lws_service(con->lws, 0);
}

static int send_message(console *con, const herald_value *msg, herald_error *err)
{
    if (con->state != CONN_OPEN)
        return herald_fail(err, HERALD_EIO, "connection lost: %s",
                           con->reason[0] ? con->reason : "not connected");
    char *text = herald_value_to_json(msg);
    if (!text) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    size_t len = strlen(text);
    outframe *f = malloc(sizeof *f + LWS_PRE + len);
    if (f) {
        f->next = NULL;
        f->len = len;
        memcpy(f->buf + LWS_PRE, text, len);
        *con->out_tail = f;
        con->out_tail = &f->next;
        lws_callback_on_writable(con->wsi);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return f ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
}

static void new_id(console *con, char *id, size_t n)
{
    snprintf(id, n, "c%lu", ++con->next_id);
}

/*
 * Sends `msg`, whose `id` is `id`, and waits for its answer (a result, ack
 * or pong: *reply, the caller's to free; an error: the return value and
 * `err`). Other messages are dropped: they belong to ended commands.
 */
static int request(console *con, const herald_value *msg, const char *id, herald_value *reply,
                   herald_error *err)
{
    *reply = herald_undefined();
    int rc = send_message(con, msg, err);
    if (rc) return rc;
    for (;;) {
        herald_value m;
        switch (next_message(con, 0, &m)) {
        case WAIT_MESSAGE:
            break;
        case WAIT_INTERRUPTED:
            interrupted = 0;
            return herald_fail(err, HERALD_EBUSY, "interrupted");
        case WAIT_TIMEOUT:
        case WAIT_CLOSED:
            return herald_fail(err, HERALD_EIO, "connection lost: %s", con->reason);
        }
        const char *mid = get_str(&m, "id"), *type = get_str(&m, "type");
        if (mid && type && !strcmp(mid, id) && strcmp(type, "commit")) {
            if (!strcmp(type, "error")) {
                rc = server_error(&m, err);
                herald_value_free(&m);
                return rc;
            }
            *reply = m;
            return 0;
        }
        herald_value_free(&m);
    }
}

/* Wipes and frees the token inside an auth message. */
static void auth_message_free(herald_value *m)
{
    herald_value *t = (herald_value *)herald_object_get(m, "token");
    if (t && t->type == HERALD_STRING) OPENSSL_cleanse(t->u.s.ptr, t->u.s.len);
    herald_value_free(m);
}

/* Connects (again) and signs in with the token, if there is one. */
static int conn_open(console *con, herald_error *err)
{
    conn_close(con);
    con->reason[0] = 0;
    con->tls_error = 0;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = con;
    info.gid = -1;
    info.uid = -1;
    /* lws indexes its sockets by descriptor: room for any we may be given. */
    info.fd_limit_per_thread = 1024;
    /* The server's certificate is checked against the system's CAs (and --ca's), and
     * its name against the host; lws refuses the connection otherwise. */
    if (con->tls) info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.client_ssl_ca_filepath = con->ca_file;
    /* The Origin is sent as written: lws would make it http:// even for a wss:// server. */
    info.options |= LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
    con->lws = lws_create_context(&info);
    if (!con->lws) return herald_fail(err, HERALD_ENOMEM, "cannot start libwebsockets");
    memset(&con->tick, 0, sizeof con->tick);
    memset(&con->poke, 0, sizeof con->poke);
    lws_sul_schedule(con->lws, 0, &con->tick, on_tick, TICK_US);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = con->lws;
    ci.address = con->host;
    ci.port = con->port;
    ci.path = con->path;
    ci.host = con->host_header;
    char origin[sizeof con->host_header + 16];
    snprintf(origin, sizeof origin, "%s://%s", con->tls ? "https" : "http", con->host_header);
    ci.origin = origin;
    ci.ssl_connection = con->tls ? LCCSCF_USE_SSL : 0;
    ci.local_protocol_name = protocols[0].name;
    ci.pwsi = &con->wsi;
    con->state = CONN_CONNECTING;
    if (!lws_client_connect_via_info(&ci) && con->state == CONN_CONNECTING) {
        set_reason(con, "the connection could not be started");
        con->state = CONN_CLOSED;
    }
    double deadline = now_seconds() + CONNECT_SECONDS;
    while (con->state == CONN_CONNECTING) {
        if (interrupted)
            set_reason(con, "interrupted");
        else if (now_seconds() >= deadline)
            set_reason(con, "no answer in 30 seconds");
        else if (lws_service(con->lws, 0) >= 0)
            continue;
        else
            set_reason(con, "the event loop failed");
        break;
    }
    interrupted = 0;
    if (con->state != CONN_OPEN) {
        int rc = herald_fail(err, HERALD_EIO, "cannot connect to %s: %s", con->url, con->reason);
        conn_close(con);
        return rc;
    }
    if (!con->token) return 0;
    char id[32];
    herald_value m, reply;
    new_id(con, id, sizeof id);
    int rc = message_new(&m, "auth", id, err);
    if (rc) return rc;
    if (obj_set_str(&m, "token", con->token)) {
        auth_message_free(&m);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    herald_error aerr = {0};
    rc = request(con, &m, id, &reply, &aerr);
    auth_message_free(&m);
    herald_value_free(&reply);
    if (rc) return herald_fail(err, rc, "cannot sign in to %s: %s", con->url, aerr.message);
    return 0;
}

/* Before a command: the connection is open, or reopened when interactive. */
static int ensure_connected(console *con, herald_error *err)
{
    service_now(con);
    if (con->state == CONN_OPEN) return 0;
    if (!con->interactive)
        return herald_fail(err, HERALD_EIO, "connection lost: %s",
                           con->reason[0] ? con->reason : "not connected");
    fprintf(stderr, "herald console: %s; connecting again\n",
            con->reason[0] ? con->reason : "not connected");
    herald_value_free(&con->functions);
    return conn_open(con, err);
}

/* ---- commands ---- */

/*
 * Sends message `m` of type `type` (its `id` is set here) with `field` set
 * to `v` (taken, also on failure), and gives the answer's value: *value is
 * the caller's to free.
 */
static int ask_value(console *con, const char *type, const char *field, herald_value v,
                     herald_value *value, herald_error *err)
{
    char id[32];
    herald_value m, reply;
    *value = herald_undefined();
    new_id(con, id, sizeof id);
    int rc = message_new(&m, type, id, err);
    if (rc) {
        herald_value_free(&v);
        return rc;
    }
    if (obj_set(&m, field, v)) {
        herald_value_free(&m);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    rc = request(con, &m, id, &reply, err);
    herald_value_free(&m);
    if (rc) return rc;
    const herald_value *got = herald_object_get(&reply, "value");
    if (got && herald_value_copy(value, got)) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!got) *value = herald_null();
    herald_value_free(&reply);
    return rc;
}

/* An admin op's result value (the caller frees it). */
static int admin_op(console *con, const char *op, herald_value *value, herald_error *err)
{
    herald_value name;
    *value = herald_undefined();
    if (herald_string(&name, op, strlen(op)))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    return ask_value(con, "admin", "op", name, value, err);
}

/* A raw query, given as JSON text, run once: its result (the caller frees it). */
static int raw_query(console *con, const char *query, herald_value *value, herald_error *err)
{
    herald_value q;
    *value = herald_undefined();
    int rc = herald_value_from_json(query, strlen(query), &q, err);
    return rc ? rc : ask_value(con, "query", "query", q, value, err);
}

static int expect_no_args(const char *cmd, const char *rest, herald_error *err)
{
    return *rest ? herald_fail(err, HERALD_EINVAL, "`%s` takes no arguments", cmd) : 0;
}

/* "by_status (status, createdAt)": an index with the fields it orders by. */
static void describe_index(hd_buf *b, const herald_value *ix, bool search)
{
    const char *name = get_str(ix, "name");
    hd__buf_str(b, name ? name : "?");
    const herald_value *fields = herald_object_get(ix, "fields");
    const char *search_field = get_str(ix, "searchField");
    if (search) {
        hd__buf_str(b, " (search");
        if (search_field) {
            hd__buf_str(b, " ");
            hd__buf_str(b, search_field);
        }
        hd__buf_byte(b, ')');
    } else if (fields && fields->type == HERALD_ARRAY && fields->u.arr.len) {
        hd__buf_str(b, " (");
        for (size_t i = 0; i < fields->u.arr.len; i++) {
            const herald_value *f = &fields->u.arr.items[i];
            if (i) hd__buf_str(b, ", ");
            hd__buf_str(b, f->type == HERALD_STRING ? f->u.s.ptr : "?");
        }
        hd__buf_byte(b, ')');
    }
}

static int cmd_tables(console *con, const char *rest, herald_error *err)
{
    herald_value value;
    int rc = expect_no_args("tables", rest, err);
    if (rc || (rc = admin_op(con, "tables", &value, err))) return rc;
    if (con->json || value.type != HERALD_ARRAY) {
        rc = print_value(con, &value, err);
        herald_value_free(&value);
        return rc;
    }
    table t = {.ncols = 3, .right = 1u << 1};
    table_add(&t, "TABLE");
    table_add(&t, "DOCUMENTS");
    table_add(&t, "INDEXES");
    for (size_t i = 0; i < value.u.arr.len; i++) {
        const herald_value *tab = &value.u.arr.items[i];
        const char *name = get_str(tab, "name");
        table_add(&t, name ? name : "?");
        table_take(&t, cell_text(herald_object_get(tab, "count"), false));
        hd_buf b = HD_BUF_INIT;
        const char *lists[] = {"indexes", "searchIndexes"};
        for (int l = 0; l < 2; l++) {
            const herald_value *ixs = herald_object_get(tab, lists[l]);
            for (size_t j = 0; ixs && ixs->type == HERALD_ARRAY && j < ixs->u.arr.len; j++) {
                if (b.len) hd__buf_str(&b, ", ");
                describe_index(&b, &ixs->u.arr.items[j], l == 1);
            }
        }
        hd__buf_byte(&b, 0);
        table_take(&t, b.failed ? NULL : (char *)hd__buf_take(&b, NULL));
        hd__buf_free(&b);
    }
    rc = table_print(&t, err);
    table_free(&t);
    herald_value_free(&value);
    return rc;
}

static int cmd_schema(console *con, const char *rest, herald_error *err)
{
    herald_value value;
    int rc = expect_no_args("schema", rest, err);
    if (rc || (rc = admin_op(con, "schema", &value, err))) return rc;
    rc = print_value(con, &value, err);
    herald_value_free(&value);
    return rc;
}

static int load_functions(console *con, herald_error *err)
{
    if (con->functions.type != HERALD_UNDEFINED) return 0;
    return admin_op(con, "functions", &con->functions, err);
}

static int cmd_functions(console *con, const char *rest, herald_error *err)
{
    int rc = expect_no_args("functions", rest, err);
    herald_value_free(&con->functions); /* ask again: the app may have been reloaded */
    if (rc || (rc = load_functions(con, err))) return rc;
    const herald_value *fns = &con->functions;
    if (con->json || fns->type != HERALD_ARRAY) return print_value(con, fns, err);
    table t = {.ncols = 3};
    table_add(&t, "FUNCTION");
    table_add(&t, "KIND");
    table_add(&t, "");
    for (size_t i = 0; i < fns->u.arr.len; i++) {
        const herald_value *fn = &fns->u.arr.items[i];
        const herald_value *internal = herald_object_get(fn, "internal");
        const char *path = get_str(fn, "path"), *kind = get_str(fn, "kind");
        table_add(&t, path ? path : "?");
        table_add(&t, kind ? kind : "?");
        table_add(&t,
                  internal && internal->type == HERALD_BOOLEAN && internal->u.b ? "internal" : "");
    }
    rc = table_print(&t, err);
    table_free(&t);
    return rc;
}

/* "53248 (52 KiB)": a byte count for people, exact first. */
static char *size_text(double bytes)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    char text[96];
    double scaled = bytes;
    size_t u = 0;
    while (scaled >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        scaled /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(text, sizeof text, "%.0f", bytes);
    else
        snprintf(text, sizeof text, "%.0f (%.*f %s)", bytes, scaled < 10 ? 1 : 0, scaled, units[u]);
    return strdup(text);
}

/* Stats rows: nested objects flattened to dotted names ("commitToPush.p99Ms"). */
static void stats_rows(table *t, const char *prefix, const herald_value *obj, int depth)
{
    for (size_t i = 0; i < obj->u.obj.len; i++) {
        const herald_field *f = &obj->u.obj.fields[i];
        size_t n = strlen(prefix) + f->key_len + 2;
        char *name = malloc(n);
        if (!name) {
            t->failed = true;
            return;
        }
        snprintf(name, n, "%s%s%s", prefix, prefix[0] ? "." : "", f->key);
        if (f->val.type == HERALD_OBJECT && f->val.u.obj.len && depth < 4) {
            stats_rows(t, name, &f->val, depth + 1);
            free(name);
        } else {
            double bytes;
            size_t len = strlen(name);
            table_take(t, name);
            if (len > 5 && !strcmp(name + len - 5, "Bytes") && num_of(&f->val, &bytes))
                table_take(t, size_text(bytes));
            else
                table_take(t, cell_text(&f->val, true));
        }
    }
}

static int cmd_stats(console *con, const char *rest, herald_error *err)
{
    herald_value value;
    int rc = expect_no_args("stats", rest, err);
    if (rc || (rc = admin_op(con, "stats", &value, err))) return rc;
    if (con->json || value.type != HERALD_OBJECT) {
        rc = print_value(con, &value, err);
        herald_value_free(&value);
        return rc;
    }
    table t = {.ncols = 2};
    stats_rows(&t, "", &value, 0);
    rc = table_print(&t, err);
    table_free(&t);
    herald_value_free(&value);
    return rc;
}

/* What a query, watch or run names: a function and its arguments, or a raw query. */
typedef struct target {
    char path[300];     /* normalised; empty for a raw query */
    herald_value args;  /* an object, for a function */
    herald_value query; /* an object, for a raw query */
} target;

static int parse_json_object(const char *text, const char *what, herald_value *out,
                             herald_error *err)
{
    herald_error jerr = {0};
    if (herald_value_from_json(text, strlen(text), out, &jerr))
        return herald_fail(err, HERALD_EINVAL, "bad JSON in %s: %s", what, jerr.message);
    if (out->type != HERALD_OBJECT) {
        herald_value_free(out);
        return herald_fail(err, HERALD_EINVAL, "%s must be a JSON object", what);
    }
    return 0;
}

/* `{raw query}` or `module:function [{args}]`. */
static int parse_target(const char *text, bool allow_raw, target *t, herald_error *err)
{
    memset(t->path, 0, sizeof t->path);
    t->args = herald_undefined();
    t->query = herald_undefined();
    while (*text == ' ' || *text == '\t')
        text++;
    if (!*text)
        return herald_fail(err, HERALD_EINVAL,
                           allow_raw ? "expected a raw JSON query or module:function {args}"
                                     : "expected module:function {args}");
    if (*text == '{') {
        if (!allow_raw)
            return herald_fail(err, HERALD_EINVAL,
                               "expected module:function {args} (a raw query goes to `query`)");
        return parse_json_object(text, "the query", &t->query, err);
    }
    size_t n = strcspn(text, " \t");
    char path[300];
    if (n >= sizeof path) return herald_fail(err, HERALD_EINVAL, "the function path is too long");
    memcpy(path, text, n);
    path[n] = 0;
    int rc = hd__fn_path_normalize(path, t->path, sizeof t->path, err);
    if (rc) return rc;
    text += n;
    while (*text == ' ' || *text == '\t')
        text++;
    if (!*text) {
        herald_object_init(&t->args);
        return 0;
    }
    return parse_json_object(text, "the arguments", &t->args, err);
}

static void target_free(target *t)
{
    herald_value_free(&t->args);
    herald_value_free(&t->query);
}

/* Moves the target into a `query`, `sub` or `mutate` message. */
static int target_into(target *t, herald_value *m, herald_error *err)
{
    int rc;
    if (t->path[0]) {
        rc = obj_set_str(m, "path", t->path);
        if (!rc) rc = obj_set(m, "args", t->args);
        t->args = herald_undefined();
    } else {
        rc = obj_set(m, "query", t->query);
        t->query = herald_undefined();
    }
    return rc ? herald_fail(err, HERALD_ENOMEM, "out of memory") : 0;
}

/* Sends a one-shot `query` or a `mutate` and prints the answer. */
static int call_once(console *con, const char *type, target *t, herald_error *err)
{
    char id[32];
    herald_value m, reply;
    new_id(con, id, sizeof id);
    int rc = message_new(&m, type, id, err);
    if (rc) return rc;
    if ((rc = target_into(t, &m, err)) || (rc = request(con, &m, id, &reply, err))) {
        herald_value_free(&m);
        return rc;
    }
    herald_value_free(&m);
    const herald_value *value = herald_object_get(&reply, "value");
    herald_value null = herald_null();
    if (!value) value = &null;
    if (strcmp(type, "mutate")) {
        rc = print_value(con, value, err);
    } else if (con->json) {
        /* {"version": N, "value": V}: the reply without its type and id. */
        herald_object_remove(&reply, "type");
        herald_object_remove(&reply, "id");
        rc = print_value(con, &reply, err);
    } else {
        printf("committed at version %llu\n", version_of(&reply));
        if (value->type != HERALD_NULL) rc = print_value(con, value, err);
    }
    herald_value_free(&reply);
    return rc;
}

static int cmd_query(console *con, const char *rest, herald_error *err)
{
    target t;
    int rc = parse_target(rest, true, &t, err);
    if (!rc) rc = call_once(con, "query", &t, err);
    target_free(&t);
    return rc;
}

/* Whether `path` is a mutation, from the server's list of functions. */
static int function_kind(console *con, const char *path, bool *mutation, herald_error *err)
{
    int rc = load_functions(con, err);
    if (rc) return rc;
    const herald_value *fns = &con->functions;
    for (size_t i = 0; fns->type == HERALD_ARRAY && i < fns->u.arr.len; i++) {
        const char *p = get_str(&fns->u.arr.items[i], "path");
        const char *kind = get_str(&fns->u.arr.items[i], "kind");
        if (p && !strcmp(p, path)) {
            *mutation = kind && !strcmp(kind, "mutation");
            return 0;
        }
    }
    return herald_fail(err, HERALD_ENOTFOUND, "no function `%s` (`functions` lists them)", path);
}

static int cmd_run(console *con, const char *rest, herald_error *err)
{
    target t;
    bool mutation = false;
    int rc = parse_target(rest, false, &t, err);
    if (!rc) rc = function_kind(con, t.path, &mutation, err);
    if (!rc) rc = call_once(con, mutation ? "mutate" : "query", &t, err);
    target_free(&t);
    return rc;
}

/* `--count N` and `--seconds S` before the rest of a watch or tail. */
static int parse_limits(const char **text, long *count, double *seconds, herald_error *err)
{
    *count = 0;
    *seconds = 0;
    const char *p = *text;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        bool is_count = !strncmp(p, "--count", 7) && (p[7] == ' ' || p[7] == '\t');
        bool is_seconds = !strncmp(p, "--seconds", 9) && (p[9] == ' ' || p[9] == '\t');
        if (!is_count && !is_seconds) break;
        p += is_count ? 7 : 9;
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p || errno || !(d > 0) || !isfinite(d) || (is_count && d != floor(d)) ||
            (*end && *end != ' ' && *end != '\t'))
            return herald_fail(err, HERALD_EINVAL, "%s needs a positive %s",
                               is_count ? "--count" : "--seconds",
                               is_count ? "whole number" : "number");
        if (is_count)
            *count = d > 1e9 ? 1000000000L : (long)d;
        else
            *seconds = d;
        p = end;
    }
    if (*p == '-' && p[1] == '-') {
        size_t n = strcspn(p, " \t");
        return herald_fail(err, HERALD_EINVAL, "unknown option `%.*s` (--count N, --seconds S)",
                           (int)n, p);
    }
    *text = p;
    return 0;
}

/* Ends a watch or a tail: `unsub`, and its ack. Only a lost connection is an error. */
static int unsubscribe(console *con, const char *id, herald_error *err)
{
    herald_value m, reply;
    herald_error uerr = {0};
    int rc = message_new(&m, "unsub", id, err);
    if (rc) return rc;
    rc = request(con, &m, id, &reply, &uerr);
    herald_value_free(&m);
    herald_value_free(&reply);
    if (rc == HERALD_EIO) return herald_fail(err, rc, "%s", uerr.message);
    return 0;
}

static int print_versioned(console *con, unsigned long long version, const herald_value *v,
                           herald_error *err)
{
    if (!con->json) {
        printf("version %llu\n", version);
        return print_value(con, v, err);
    }
    char *json = herald_value_to_json(v);
    if (!json) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    printf("{\"version\":%llu,\"value\":%s}\n", version, json);
    free(json);
    return 0;
}

/*
 * Applies the changes of an `update` frame for subscription `id` to the
 * local copy of its result. *changed says whether one was there.
 */
static int apply_update(const herald_value *frame, const char *id, herald_value *current,
                        bool *changed, herald_error *err)
{
    const herald_value *changes = herald_object_get(frame, "changes");
    *changed = false;
    for (size_t i = 0; changes && changes->type == HERALD_ARRAY && i < changes->u.arr.len; i++) {
        const herald_value *c = &changes->u.arr.items[i];
        const char *cid = get_str(c, "id");
        if (!cid || strcmp(cid, id)) continue;
        const herald_value *diff = herald_object_get(c, "diff");
        const herald_value *value = herald_object_get(c, "value");
        herald_error derr = {0};
        if (diff) {
            if (hd__diff_apply(current, diff, &derr))
                return herald_fail(err, HERALD_EINVAL,
                                   "an update does not fit the result it changes: %s",
                                   derr.message);
        } else if (value) {
            herald_value copy;
            if (herald_value_copy(&copy, value))
                return herald_fail(err, HERALD_ENOMEM, "out of memory");
            herald_value_free(current);
            *current = copy;
        } else {
            continue;
        }
        *changed = true;
    }
    return 0;
}

/*
 * The next message while `watch` or `tail` runs in the foreground; false
 * when the command ends: Ctrl-C, its time is up, or the connection was lost
 * (then *rc says so and *subscribed is false: there is nothing to end).
 */
static bool follow_next(console *con, double deadline, herald_value *msg, bool *subscribed, int *rc,
                        herald_error *err)
{
    enum wait_result w = next_message(con, deadline, msg);
    if (w == WAIT_INTERRUPTED) {
        interrupted = 0;
        putchar('\n'); /* after the terminal's ^C */
        return false;
    }
    if (w == WAIT_CLOSED) {
        *rc = herald_fail(err, HERALD_EIO, "connection lost: %s", con->reason);
        *subscribed = false;
    }
    return w == WAIT_MESSAGE;
}

static int cmd_watch(console *con, const char *rest, herald_error *err)
{
    long count;
    double seconds;
    target t;
    int rc = parse_limits(&rest, &count, &seconds, err);
    if (rc || (rc = parse_target(rest, true, &t, err))) return rc;
    char id[32];
    herald_value m, current = herald_undefined();
    new_id(con, id, sizeof id);
    if ((rc = message_new(&m, "sub", id, err))) {
        target_free(&t);
        return rc;
    }
    rc = target_into(&t, &m, err);
    if (!rc) rc = send_message(con, &m, err);
    herald_value_free(&m);
    target_free(&t);
    if (rc) return rc;
    if (con->interactive && !con->json) fprintf(stderr, "(watching: Ctrl-C to stop)\n");
    bool have = false, subscribed = true;
    long printed = 0;
    double deadline = seconds > 0 ? now_seconds() + seconds : 0;
    while (!rc && (!count || printed < count)) {
        herald_value msg;
        if (!follow_next(con, deadline, &msg, &subscribed, &rc, err)) break;
        const char *type = get_str(&msg, "type"), *mid = get_str(&msg, "id");
        bool mine = mid && !strcmp(mid, id);
        if (type && mine && !strcmp(type, "result")) {
            const herald_value *v = herald_object_get(&msg, "value");
            herald_value_free(&current);
            if (herald_value_copy(&current, v ? v : &(herald_value){.type = HERALD_NULL})) {
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            } else {
                have = true;
                printed++;
                rc = print_versioned(con, version_of(&msg), &current, err);
            }
        } else if (type && mine && !strcmp(type, "error")) {
            rc = server_error(&msg, err); /* the subscription is over */
            subscribed = false;
        } else if (type && have && !strcmp(type, "update")) {
            bool changed;
            rc = apply_update(&msg, id, &current, &changed, err);
            if (!rc && changed) {
                printed++;
                rc = print_versioned(con, version_of(&msg), &current, err);
            }
        }
        herald_value_free(&msg);
        fflush(stdout);
    }
    herald_value_free(&current);
    if (subscribed) {
        herald_error uerr = {0};
        int urc = unsubscribe(con, id, &uerr);
        if (urc && !rc) rc = herald_fail(err, urc, "%s", uerr.message);
    }
    return rc;
}

static void print_commit(console *con, const herald_value *frame)
{
    if (con->json) {
        char *json = herald_value_to_json(frame);
        if (json) puts(json);
        free(json);
        return;
    }
    unsigned long long version = version_of(frame);
    const herald_value *changes = herald_object_get(frame, "changes");
    if (!changes || changes->type != HERALD_ARRAY || !changes->u.arr.len) {
        printf("version %-8llu (no changes)\n", version);
        return;
    }
    for (size_t i = 0; i < changes->u.arr.len; i++) {
        const herald_value *c = &changes->u.arr.items[i];
        const char *tab = get_str(c, "table"), *op = get_str(c, "op"), *doc = get_str(c, "doc");
        printf("version %-8llu %-16s %-7s %s\n", version, tab ? tab : "?", op ? op : "?",
               doc ? doc : "?");
    }
}

static int cmd_tail(console *con, const char *rest, herald_error *err)
{
    long count;
    double seconds;
    int rc = parse_limits(&rest, &count, &seconds, err);
    if (rc || (rc = expect_no_args("tail", rest, err))) return rc;
    char id[32];
    herald_value m, reply;
    new_id(con, id, sizeof id);
    if ((rc = message_new(&m, "tail", id, err))) return rc;
    rc = request(con, &m, id, &reply, err);
    herald_value_free(&m);
    herald_value_free(&reply);
    if (rc) return rc;
    if (con->interactive && !con->json) fprintf(stderr, "(tailing commits: Ctrl-C to stop)\n");
    fflush(stdout);
    long printed = 0;
    bool subscribed = true;
    double deadline = seconds > 0 ? now_seconds() + seconds : 0;
    while (!count || printed < count) {
        herald_value msg;
        if (!follow_next(con, deadline, &msg, &subscribed, &rc, err)) break;
        const char *type = get_str(&msg, "type"), *mid = get_str(&msg, "id");
        if (type && mid && !strcmp(mid, id)) {
            if (!strcmp(type, "commit")) {
                print_commit(con, &msg);
                printed++;
                fflush(stdout);
            } else if (!strcmp(type, "error")) {
                rc = server_error(&msg, err);
                subscribed = false;
                herald_value_free(&msg);
                break;
            }
        }
        herald_value_free(&msg);
    }
    if (subscribed) {
        herald_error uerr = {0};
        int urc = unsubscribe(con, id, &uerr);
        if (urc && !rc) rc = herald_fail(err, urc, "%s", uerr.message);
    }
    return rc;
}

/* ---- scheduled runs ---- */

#define SCHEDULED_COUNT 20 /* runs of each list `scheduled` shows unless told */

/*
 * `_scheduled_functions` through by_state_time (state.kind, scheduledTime).
 * The kinds sort "canceled" < "failed" < "inProgress" < "pending" <
 * "success", so running and pending runs are one range, running first.
 */
#define SCHEDULED_TABLE "{\"table\":\"_scheduled_functions\",\"index\":\"by_state_time\","

static const char *const finished_kinds[] = {"success", "failed", "canceled"};

static double row_time(const herald_value *row, const char *field)
{
    double t;
    return num_of(herald_object_get(row, field), &t) ? t : -INFINITY;
}

/* Newest completion first; ties (and rows without one) by creation, newest first. */
static int cmp_finished(const void *a, const void *b)
{
    const herald_value *x = a, *y = b;
    double tx = row_time(x, "completedTime"), ty = row_time(y, "completedTime");
    if (tx != ty) return tx < ty ? 1 : -1;
    tx = row_time(x, "_creationTime");
    ty = row_time(y, "_creationTime");
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

/*
 * The runs pending or running (due soonest first, at most `count` + 1, to
 * tell that there are more) and the `count` finished most recently, newest
 * first: two arrays of `_scheduled_functions` rows, the caller's to free.
 */
static int scheduled_runs(console *con, long count, herald_value *active, herald_value *finished,
                          herald_error *err)
{
    char query[400];
    herald_array_init(finished);
    snprintf(query, sizeof query,
             SCHEDULED_TABLE "\"range\":[{\"gte\":[\"state.kind\",\"inProgress\"]},"
                             "{\"lte\":[\"state.kind\",\"pending\"]}],\"take\":%ld}",
             count + 1);
    int rc = raw_query(con, query, active, err);
    for (size_t k = 0; !rc && k < sizeof finished_kinds / sizeof finished_kinds[0]; k++) {
        herald_value rows;
        snprintf(query, sizeof query,
                 SCHEDULED_TABLE "\"range\":[{\"eq\":[\"state.kind\",\"%s\"]}],"
                                 "\"order\":\"desc\",\"take\":%ld}",
                 finished_kinds[k], count);
        if ((rc = raw_query(con, query, &rows, err))) break;
        for (size_t i = 0; rows.type == HERALD_ARRAY && i < rows.u.arr.len && !rc; i++) {
            /* Moved, not copied: `rows` gives its items up below. */
            if (herald_array_push(finished, rows.u.arr.items[i]))
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            rows.u.arr.items[i] = herald_undefined();
        }
        herald_value_free(&rows);
    }
    if (!rc && active->type != HERALD_ARRAY)
        rc = herald_fail(err, HERALD_EINVAL, "the server's answer is not a list of runs");
    if (rc) {
        herald_value_free(active);
        herald_value_free(finished);
        return rc;
    }
    if (finished->u.arr.len > 1) /* an empty array has no items to hand qsort */
        qsort(finished->u.arr.items, finished->u.arr.len, sizeof *finished->u.arr.items,
              cmp_finished);
    while (finished->u.arr.len > (size_t)count)
        herald_value_free(&finished->u.arr.items[--finished->u.arr.len]);
    return 0;
}

/* Milliseconds since the epoch as local time: "2025-11-24 12:00:01.234". */
static char *time_text(double ms, double now_ms, bool relative)
{
    char text[96], day[40];
    if (!isfinite(ms)) return strdup("");
    if (fabs(ms) > 1e15) { /* over 30,000 years from 1970: the number, not a date */
        fmt_double(text, sizeof text, ms);
        return strdup(text);
    }
    time_t secs = (time_t)floor(ms / 1000);
    struct tm tm;
    if (!localtime_r(&secs, &tm) || !strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm))
        return strdup("?");
    int n = snprintf(text, sizeof text, "%s.%03d", day, (int)(ms - (double)secs * 1000));
    if (relative && n > 0 && (size_t)n < sizeof text) {
        /* When it is due from now: "in 59.8 s", "1.2 s late" (waiting for its turn). */
        static const struct {
            double seconds;
            const char *name;
        } units[] = {{86400, "days"}, {3600, "h"}, {60, "min"}, {1, "s"}};
        double s = fabs(ms - now_ms) / 1000;
        size_t u = 0;
        while (u + 1 < sizeof units / sizeof units[0] && s < units[u].seconds)
            u++;
        snprintf(text + n, sizeof text - (size_t)n,
                 ms >= now_ms ? " (in %.1f %s)" : " (%.1f %s late)", s / units[u].seconds,
                 units[u].name);
    }
    return strdup(text);
}

/* A value on one line of at most `max` characters: "…" marks where it was cut. */
static char *one_line(const herald_value *v, size_t max)
{
    char *text = v ? cell_text(v, false) : strdup("");
    if (!text) return NULL;
    size_t chars = 0, i = 0;
    for (; text[i]; i++) {
        if (text[i] == '\n' || text[i] == '\r' || text[i] == '\t') text[i] = ' ';
        if (((unsigned char)text[i] & 0xC0) != 0x80 && ++chars > max) break;
    }
    if (!text[i]) return text;
    char *cut = malloc(i + 4);
    if (cut) {
        memcpy(cut, text, i);
        memcpy(cut + i, "\u2026", 4); /* "…" and its NUL */
    }
    free(text);
    return cut;
}

/* One table of runs: pending and running ones with when they are due, or finished ones. */
static int print_runs(const herald_value *rows, size_t n, bool finished, herald_error *err)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    static const char *const heads[] = {"STATE", "DUE", "FUNCTION", "ARGS", "ID", "ERROR"};
    table t = {.ncols = finished ? 6 : 5};
    for (size_t c = 0; c < t.ncols; c++)
        table_add(&t, finished && c == 1 ? "COMPLETED" : heads[c]);
    for (size_t i = 0; i < n; i++) {
        const herald_value *row = &rows[i];
        const herald_value *state = herald_object_get(row, "state");
        const char *kind = get_str(state, "kind"), *name = get_str(row, "name");
        const char *id = get_str(row, "_id");
        bool running = kind && !strcmp(kind, "inProgress");
        table_add(&t, running ? "running" : kind ? kind : "?");
        table_take(&t, finished ? time_text(row_time(row, "completedTime"), now_ms, false)
                                : time_text(row_time(row, "scheduledTime"), now_ms, !running));
        table_add(&t, name ? name : "?");
        table_take(&t, one_line(herald_object_get(row, "args"), 60));
        table_add(&t, id ? id : "?");
        if (finished) table_take(&t, one_line(herald_object_get(state, "error"), 200));
    }
    int rc = table_print(&t, err);
    table_free(&t);
    return rc;
}

static int cmd_scheduled(console *con, const char *rest, herald_error *err)
{
    long count = SCHEDULED_COUNT;
    double seconds;
    herald_value active, finished;
    int rc = parse_limits(&rest, &count, &seconds, err);
    if (rc || (rc = expect_no_args("scheduled", rest, err))) return rc;
    if (seconds > 0) return herald_fail(err, HERALD_EINVAL, "`scheduled` takes --count N only");
    if (!count) count = SCHEDULED_COUNT;
    if (count > 10000) count = 10000;
    if ((rc = scheduled_runs(con, count, &active, &finished, err))) return rc;
    bool more = active.u.arr.len > (size_t)count;
    size_t nactive = more ? (size_t)count : active.u.arr.len;
    if (con->json) {
        /* {"active": [...], "finished": [...]}: the rows as the server holds them. */
        herald_value out;
        herald_object_init(&out);
        while (active.u.arr.len > nactive)
            herald_value_free(&active.u.arr.items[--active.u.arr.len]);
        bool failed = obj_set(&out, "active", active) != 0;
        if (obj_set(&out, "finished", finished) || failed)
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        else
            rc = print_value(con, &out, err);
        herald_value_free(&out);
        return rc;
    }
    if (!nactive)
        puts("no runs pending or running");
    else
        printf("pending and running (%s%zu, due soonest first):\n", more ? "the first " : "",
               nactive);
    if (nactive) rc = print_runs(active.u.arr.items, nactive, false, err);
    if (!rc && more) puts("(more runs are pending than shown: `scheduled --count N` lists N)");
    if (!rc && !finished.u.arr.len)
        puts("no finished runs");
    else if (!rc)
        printf("finished (the last %zu, newest first):\n", finished.u.arr.len);
    if (!rc && finished.u.arr.len)
        rc = print_runs(finished.u.arr.items, finished.u.arr.len, true, err);
    herald_value_free(&active);
    herald_value_free(&finished);
    return rc;
}

static int cmd_reload(console *con, const char *rest, herald_error *err)
{
    char id[32];
    herald_value m, reply;
    int rc = expect_no_args("reload", rest, err);
    if (rc) return rc;
    new_id(con, id, sizeof id);
    if ((rc = message_new(&m, "reload", id, err))) return rc;
    rc = request(con, &m, id, &reply, err);
    herald_value_free(&m);
    /* The server says whether the app's schema changed ("applied" or "unchanged"). */
    const herald_value *value = rc ? NULL : herald_object_get(&reply, "value");
    const herald_value *schema = value ? herald_object_get(value, "schema") : NULL;
    if (!rc && !con->json)
        printf("reloaded: the app's functions and auth configuration; schema %s\n",
               schema && schema->type == HERALD_STRING ? schema->u.s.ptr : "unchanged");
    herald_value_free(&reply);
    herald_value_free(&con->functions);
    return rc;
}

static int cmd_help(console *con, const char *rest, herald_error *err);

static const struct command {
    const char *name;
    int (*run)(console *, const char *, herald_error *);
    const char *usage;
    const char *help;
} commands[] = {
    {"help", cmd_help, "help", "this list"},
    {"tables", cmd_tables, "tables", "tables with their document counts and indexes"},
    {"schema", cmd_schema, "schema", "the schema, as canonical JSON"},
    {"functions", cmd_functions, "functions", "the app's queries and mutations"},
    {"query", cmd_query, "query {raw query} | query module:fn [{args}]",
     "run a query once and print its result"},
    {"watch", cmd_watch, "watch [--count N] [--seconds S] {raw query} | module:fn [{args}]",
     "print the result, then the new result at each commit that changes it,\n"
     "      until Ctrl-C (or N results, or S seconds)"},
    {"run", cmd_run, "run module:fn [{args}]", "call a mutation (or a query) and print its value"},
    {"tail", cmd_tail, "tail [--count N] [--seconds S]",
     "one line per document each commit changes: version, table, op, id;\n"
     "      until Ctrl-C (or N commits, or S seconds)"},
    {"scheduled", cmd_scheduled, "scheduled [--count N]",
     "runs of ctx.scheduler: pending and running ones, then the last finished ones\n"
     "      (success, failed with its error, canceled); N of each (default 20)"},
    {"stats", cmd_stats, "stats", "the server's counters and latencies"},
    {"reload", cmd_reload, "reload", "reload the app's functions and auth configuration"},
    {"quit", NULL, "quit | exit", "leave (Ctrl-D too)"},
};

static int cmd_help(console *con, const char *rest, herald_error *err)
{
    (void)con;
    int rc = expect_no_args("help", rest, err);
    if (rc) return rc;
    printf("commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %s\n      %s\n", commands[i].usage, commands[i].help);
    printf("Raw queries are docs/queries.md's JSON, e.g. {\"table\":\"videos\",\"take\":5};\n"
           "values use Convex's JSON encoding. Lines starting with # are comments.\n");
    return 0;
}

/* Runs one line. Returns 0, CMD_QUIT, or a negative code with `err` filled. */
static int run_command(console *con, char *line, herald_error *err)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                 line[n - 1] == '\t'))
        line[--n] = 0;
    while (*line == ' ' || *line == '\t')
        line++;
    if (!*line || *line == '#') return 0;
    size_t wlen = strcspn(line, " \t");
    const char *rest = line + wlen;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if ((wlen == 4 && !strncmp(line, "quit", 4)) || (wlen == 4 && !strncmp(line, "exit", 4)))
        return CMD_QUIT;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *c = &commands[i];
        if (!c->run || strlen(c->name) != wlen || strncmp(c->name, line, wlen)) continue;
        if (c->run != cmd_help) {
            int rc = ensure_connected(con, err);
            if (rc) return rc;
        }
        return c->run(con, rest, err);
    }
    return herald_fail(err, HERALD_EINVAL, "unknown command `%.*s` (`help` lists them)",
                       (int)(wlen > 60 ? 60 : wlen), line);
}

/* ---- the two modes ---- */

#ifdef HERALD_HAVE_LIBEDIT
/*
 * libedit's source of keys: stdin, one character (a UTF-8 sequence decoded
 * to its code point) at a time. Ctrl-C interrupts the read (the handler
 * has no SA_RESTART) and is returned as end of input, so that readline()
 * gives up the line at once; the loop below sees `interrupted` and
 * discards it.
 */
static int prompt_getc(FILE *in)
{
    unsigned char bytes[4];
    size_t want = 1, have = 0;
    while (have < want) {
        if (interrupted) return EOF;
        ssize_t n = read(fileno(in), bytes + have, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return EOF;
        if (have++ == 0) {
            unsigned char b = bytes[0];
            if (b == 3) { /* ^C as a character: the terminal does not make signals */
                interrupted = 1;
                return EOF;
            }
            if (MB_CUR_MAX > 1) /* a UTF-8 locale: libedit takes code points */
                want = b >= 0xF8 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        } else if ((bytes[have - 1] & 0xC0) != 0x80) {
            return bytes[have - 1]; /* not UTF-8: the bytes so far are dropped */
        }
    }
    if (want == 1) return bytes[0];
    int cp = bytes[0] & (0xFF >> (want + 1));
    for (size_t i = 1; i < want; i++)
        cp = (cp << 6) | (bytes[i] & 0x3F);
    return cp;
}

/* Line editing and history through libedit. */
static void lines_open(const char *history)
{
    rl_getc_function = prompt_getc; /* before using_history(), which sets libedit up */
    using_history();
    stifle_history(HISTORY_LINES);
    if (history[0]) read_history(history); /* best effort: a first run has none */
}

static char *line_read(void)
{
    return readline(PROMPT);
}

static void line_remember(const char *line)
{
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (!last || strcmp(last->line, line)) add_history(line);
}

static void lines_close(const char *history)
{
    if (history[0] && write_history(history) == 0) chmod(history, 0600);
    clear_history();
}
#else
/* Built without libedit: plain lines, no editing and no history. */
static void lines_open(const char *history)
{
    (void)history;
}

static char *line_read(void)
{
    fputs(PROMPT, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin); /* Ctrl-C interrupts it (no SA_RESTART) */
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
    return line;
}

static void line_remember(const char *line)
{
    (void)line;
}

static void lines_close(const char *history)
{
    (void)history;
}
#endif

static int interactive_loop(console *con)
{
    char history[4096] = "";
    const char *home = getenv("HOME");
    if (home && home[0]) {
        int n = snprintf(history, sizeof history, "%s/%s", home, HISTORY_NAME);
        if (n < 0 || (size_t)n >= sizeof history) history[0] = 0;
    }
    setlocale(LC_CTYPE, ""); /* the terminal's encoding, for line editing */
    lines_open(history);
    printf("connected to %s%s; `help` lists the commands, `quit` leaves\n", con->url,
           con->token ? "" : " without a key");
    for (;;) {
        interrupted = 0;
        fflush(stdout);
        char *line = line_read();
        if (interrupted) { /* Ctrl-C at the prompt: the line is dropped, a fresh prompt */
            free(line);
            fputs("^C\n", stdout);
            continue;
        }
        if (!line) {
            putchar('\n');
            break;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p) line_remember(line);
        herald_error err = {0};
        int rc = run_command(con, line, &err);
        free(line);
        if (rc == CMD_QUIT) break;
        fflush(stdout);
        if (rc < 0) fprintf(stderr, "error: %s\n", err.message);
    }
    lines_close(history);
    return 0;
}

static int script_loop(console *con)
{
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        con->line_no++;
        herald_error err = {0};
        int rc = run_command(con, line, &err);
        if (fflush(stdout) != 0) {
            status = 1; /* nobody reads our output any more */
            break;
        }
        if (rc == CMD_QUIT) break;
        if (rc < 0) {
            fprintf(stderr, "herald console: line %lu: %s\n", con->line_no, err.message);
            status = 1;
            break;
        }
    }
    free(line);
    return status;
}

/* ---- setup ---- */

static const char usage[] =
    "usage: herald console [--key KEY | --key-file FILE] [--json] [--ca FILE] [URL]\n"
    "\n"
    "  URL              the server: ws://HOST:PORT (default " DEFAULT_URL "), /ws is added\n"
    "  --key KEY        sign in with the admin key (visible to other users in `ps`: prefer\n"
    "                   HERALD_ADMIN_KEY or --key-file)\n"
    "  --key-file FILE  read the admin key from FILE\n"
    "  --json           print results as one line of Convex JSON each, for scripts\n"
    "  --ca FILE        with wss://, trust the CA certificates in FILE (PEM) besides the\n"
    "                   system's: a server whose certificate neither vouches for is refused\n"
    "\n"
    "Without a terminal on stdin it reads one command a line and stops with status 1 at\n"
    "the first one that fails. Type `help` for the commands; see docs/console.md.\n";

static int parse_url(console *con, const char *url, herald_error *err)
{
    const char *p = url;
    int default_port = DEFAULT_PORT;
    static const struct {
        const char *scheme;
        bool tls;
    } schemes[] = {{"ws://", false}, {"wss://", true}, {"http://", false}, {"https://", true}};
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (!strncmp(p, schemes[i].scheme, n)) {
            p += n;
            con->tls = schemes[i].tls;
            if (con->tls) default_port = 443;
            break;
        }
    }
    if (strstr(p, "://")) return herald_fail(err, HERALD_EINVAL, "use a ws:// or wss:// URL");
    size_t hlen;
    const char *host = p;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close) return herald_fail(err, HERALD_EINVAL, "bad URL: no `]` after the address");
        host = p + 1;
        hlen = (size_t)(close - host);
        p = close + 1;
    } else {
        hlen = strcspn(p, ":/");
        p += hlen;
    }
    if (hlen >= sizeof con->host) return herald_fail(err, HERALD_EINVAL, "bad URL: host too long");
    memcpy(con->host, host, hlen);
    con->host[hlen] = 0;
    if (!hlen) snprintf(con->host, sizeof con->host, "localhost");
    con->port = default_port;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return herald_fail(err, HERALD_EINVAL, "bad URL: the port must be 1 to 65535");
        con->port = (int)port;
        p = end;
    } else if (*p && *p != '/') {
        return herald_fail(err, HERALD_EINVAL, "bad URL %s", url);
    }
    if (strlen(p) >= sizeof con->path) return herald_fail(err, HERALD_EINVAL, "URL too long");
    snprintf(con->path, sizeof con->path, "%s", !*p || !strcmp(p, "/") ? "/ws" : p);
    bool v6 = strchr(con->host, ':') != NULL;
    snprintf(con->host_header, sizeof con->host_header, "%s%s%s:%d", v6 ? "[" : "", con->host,
             v6 ? "]" : "", con->port);
    snprintf(con->url, sizeof con->url, "%s://%s%s", con->tls ? "wss" : "ws", con->host_header,
             con->path);
    return 0;
}

/* --ca FILE is read here, so that a wrong file is named at once, not as a failed handshake. */
static int check_ca_file(const char *file, herald_error *err)
{
    FILE *f = fopen(file, "r");
    if (!f) return herald_fail(err, HERALD_ENOTFOUND, "cannot read %s: %s", file, strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    if (!x) return herald_fail(err, HERALD_EINVAL, "%s holds no PEM certificate", file);
    X509_free(x);
    return 0;
}

static int read_key_file(console *con, const char *file, herald_error *err)
{
    FILE *f = fopen(file, "r");
    if (!f) return herald_fail(err, HERALD_ENOTFOUND, "cannot read %s: %s", file, strerror(errno));
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool too_long = n == sizeof buf - 1 && fgetc(f) != EOF;
    fclose(f);
    buf[n] = 0;
    size_t start = strspn(buf, " \t\r\n");
    size_t len = strcspn(buf + start, " \t\r\n");
    int rc = 0;
    if (too_long)
        rc = herald_fail(err, HERALD_EINVAL, "%s is too long to hold a key", file);
    else if (!len)
        rc = herald_fail(err, HERALD_EINVAL, "%s holds no key", file);
    else if (!(con->token = strndup(buf + start, len)))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int hd__console_main(int argc, char **argv)
{
    console con;
    memset(&con, 0, sizeof con);
    con.out_tail = &con.out_head;
    con.in_tail = &con.in_head;
    con.functions = herald_undefined();
    const char *url = NULL, *key_file = NULL;
    char *key_arg = NULL;
    herald_error err = {0};
    int status = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc) {
            key_arg = argv[++i];
        } else if (!strcmp(argv[i], "--key-file") && i + 1 < argc) {
            key_file = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            con.json = true;
        } else if (!strcmp(argv[i], "--ca") && i + 1 < argc) {
            con.ca_file = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' || url) {
            fprintf(stderr, "herald console: unexpected `%s`\n\n%s", argv[i], usage);
            return 2;
        } else {
            url = argv[i];
        }
    }
    if (key_arg && key_file) {
        fprintf(stderr, "herald console: give --key or --key-file, not both\n");
        return 2;
    }
    if (parse_url(&con, url ? url : DEFAULT_URL, &err)) {
        fprintf(stderr, "herald console: %s\n", err.message);
        return 2;
    }
    if (con.ca_file && check_ca_file(con.ca_file, &err)) {
        fprintf(stderr, "herald console: --ca: %s\n", err.message);
        return 2;
    }
    const char *env_key = getenv("HERALD_ADMIN_KEY");
    if (key_arg) {
        con.token = strdup(key_arg);
        /* What `ps` shows is this memory: the key leaves it. */
        OPENSSL_cleanse(key_arg, strlen(key_arg));
    } else if (key_file) {
        if (read_key_file(&con, key_file, &err)) {
            fprintf(stderr, "herald console: %s\n", err.message);
            return 1;
        }
    } else if (env_key && env_key[0]) {
        con.token = strdup(env_key);
    }
    if ((key_arg || (!key_file && env_key && env_key[0])) && !con.token) {
        fprintf(stderr, "herald console: out of memory\n");
        return 1;
    }
    if (!con.token)
        fprintf(stderr, "herald console: no admin key (--key-file, --key or HERALD_ADMIN_KEY): "
                        "admin commands will be refused\n");
    con.interactive = isatty(STDIN_FILENO);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(0, NULL);
    if (con.interactive) {
        /* Ctrl-C ends a watch or a tail and comes back to the prompt. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    if (conn_open(&con, &err)) {
        fprintf(stderr, "herald console: %s\n", err.message);
        status = 1;
    } else {
        status = con.interactive ? interactive_loop(&con) : script_loop(&con);
    }
    conn_close(&con);
    herald_value_free(&con.functions);
    if (con.token) {
        OPENSSL_cleanse(con.token, strlen(con.token));
        free(con.token);
    }
    return status;
}
