/*
 * raw_push: the floor under Herald's fan-out. A libwebsockets server that
 * does nothing but push one text frame to every connected WebSocket, set
 * up as `herald serve` sets up lws (libev's epoll loop through lws's
 * plugin, else lws's poll() loop; a 64 KiB kernel send buffer per client;
 * Herald's receive buffer size), so that bench/live/fanout.mjs can hold
 * Herald's "one write to 10,000 watchers" against the same push with no
 * database, query or diff behind it, measured in the same run.
 *
 *   raw_push --port N
 *
 * HERALD_LOOP=poll picks lws's poll() loop, as it does for `herald serve`.
 *
 * A client that sends the text message {"type":"go","size":N} makes every
 * connected client (itself included) get one text frame of N bytes:
 * {"type":"update","version":V,"changes":["xx..."]}, V counting the pushes
 * from 1. Each frame is written from the client's own
 * LWS_CALLBACK_SERVER_WRITEABLE, one lws_write per callback, after
 * lws_callback_on_writable, as Herald writes its updates. Any other
 * message gets no answer. "listening" is printed once the port is open;
 * SIGTERM or SIGINT stops it and it exits 0.
 *
 * It must stay the floor: no per-connection copy of the frame, no
 * queues, no bookkeeping beyond the list of connections.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifdef HERALD_HAVE_LIBEV
#include <ev.h>
#endif
#include <libwebsockets.h>

/* Herald's default --max-outbound, which it sets as each client's SO_SNDBUF. */
#define SNDBUF_BYTES (64 * 1024)
/* Herald's receive buffer per connection (the protocols table in src/server.c). */
#define RX_BUFFER_BYTES 4096
/* Herald's default largest message; a larger "go" is cut to it. */
#define MAX_FRAME_BYTES ((size_t)1024 * 1024 + 65536)
/* A trigger message is small; anything longer is not one. */
#define MAX_TRIGGER_BYTES 256

/* Per-session data: one connected WebSocket, on the server's list. */
typedef struct raw_client {
    struct raw_client *prev, *next;
    struct lws *wsi;
    unsigned long long sent; /* the version of the last frame written to it */
} raw_client;

typedef struct raw_server {
    struct lws_context *lws;
#ifdef HERALD_HAVE_LIBEV
    struct ev_loop *evloop; /* NULL when lws's poll() loop serves */
    ev_signal sigterm, sigint;
#endif
    raw_client *clients;
    size_t nclients;
    /* The frame every client gets: LWS_PRE bytes of headroom, then the text.
     * One buffer for all: lws writes the frame header into the headroom and
     * copies whatever the socket does not take, so it can be shared. */
    unsigned char *frame;
    size_t frame_cap, frame_len;
    unsigned long long version; /* of the frame in `frame`; 0: none yet */
} raw_server;

static raw_server server;
/* Set by the signal handler of the poll() loop only (libev has watchers). */
static volatile sig_atomic_t poll_stop;

/* Builds the next frame, of `size` bytes (more if `size` cannot hold the skeleton). */
static int frame_build(raw_server *s, size_t size)
{
    char head[96];
    static const char tail[] = "\"]}";
    int hlen = snprintf(head, sizeof head, "{\"type\":\"update\",\"version\":%llu,\"changes\":[\"",
                        s->version + 1);
    if (hlen < 0 || (size_t)hlen >= sizeof head) return -1;
    size_t skeleton = (size_t)hlen + sizeof tail - 1;
    if (size > MAX_FRAME_BYTES) size = MAX_FRAME_BYTES;
    if (size < skeleton) size = skeleton;
    if (LWS_PRE + size > s->frame_cap) {
        unsigned char *grown = realloc(s->frame, LWS_PRE + size);
        if (!grown) return -1;
        s->frame = grown;
        s->frame_cap = LWS_PRE + size;
    }
    unsigned char *text = s->frame + LWS_PRE;
    memcpy(text, head, (size_t)hlen);
    memset(text + hlen, 'x', size - skeleton);
    memcpy(text + size - (sizeof tail - 1), tail, sizeof tail - 1);
    s->frame_len = size;
    s->version++;
    return 0;
}

/* A whole text message from a client: a trigger starts a push, the rest is ignored. */
static void on_message(raw_server *s, const char *in, size_t len)
{
    char msg[MAX_TRIGGER_BYTES + 1];
    if (len > MAX_TRIGGER_BYTES) return;
    memcpy(msg, in, len);
    msg[len] = 0;
    const char *size_at = strstr(msg, "\"size\":");
    if (!strstr(msg, "\"type\":\"go\"") || !size_at) return;
    char *end;
    unsigned long long size = strtoull(size_at + 7, &end, 10);
    if (end == size_at + 7) return;
    if (frame_build(s, (size_t)size)) {
        fprintf(stderr, "raw_push: out of memory for a frame of %llu bytes\n", size);
        return;
    }
    for (raw_client *c = s->clients; c; c = c->next)
        lws_callback_on_writable(c->wsi);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    raw_server *s = &server;
    raw_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: {
        /* As Herald: a fixed kernel send buffer, not loopback's autotuned one. */
        int sndbuf = SNDBUF_BYTES;
        lws_sockfd_type fd = lws_get_socket_fd(wsi);
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        c->wsi = wsi;
        c->sent = s->version; /* a frame pushed before it came is not its own */
        c->prev = NULL;
        c->next = s->clients;
        if (s->clients) s->clients->prev = c;
        s->clients = c;
        s->nclients++;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        /* A trigger is one small text frame; fragments of anything larger are ignored. */
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) && !lws_frame_is_binary(wsi))
            on_message(s, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->wsi || c->sent == s->version) return 0;
        c->sent = s->version;
        /* Whatever the socket does not take now, lws keeps and sends before the next
         * writable callback: one lws_write per callback, as Herald. */
        if (lws_write(wsi, s->frame + LWS_PRE, s->frame_len, LWS_WRITE_TEXT) < 0) return -1;
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (!c || !c->wsi) return 0;
        if (c->prev)
            c->prev->next = c->next;
        else
            s->clients = c->next;
        if (c->next) c->next->prev = c->prev;
        c->wsi = NULL;
        s->nclients--;
        return 0;
    case LWS_CALLBACK_HTTP:
        return -1; /* plain HTTP: nothing here */
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"raw-push", callback, sizeof(raw_client), RX_BUFFER_BYTES, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the loop: libev's epoll through lws's plugin, or lws's own poll() ---- */

#ifdef HERALD_HAVE_LIBEV
static void on_stop_watcher(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}
#endif

/* The poll() loop has no signal watchers: the handler only raises a flag and wakes the loop. */
static void on_stop_signal(int sig)
{
    (void)sig;
    poll_stop = 1;
    if (server.lws) lws_cancel_service(server.lws);
}

/*
 * As `herald serve`: the libev loop is ours, handed to lws as a foreign
 * loop so that lws installs no signal watchers and we stop it when we
 * want; if lws cannot load its libev plugin, its poll() loop serves.
 */
static int loop_create(raw_server *s, struct lws_context_creation_info *info)
{
#ifdef HERALD_HAVE_LIBEV
    const char *want = getenv("HERALD_LOOP");
    struct ev_loop *loop =
        want && !strcmp(want, "poll") ? NULL : ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (loop) {
        void *foreign[1] = {loop};
        info->foreign_loops = foreign;
        info->options |= LWS_SERVER_OPTION_LIBEV;
        s->lws = lws_create_context(info);
        info->foreign_loops = NULL;
        info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        if (s->lws) {
            s->evloop = loop;
            ev_signal_init(&s->sigterm, on_stop_watcher, SIGTERM);
            ev_signal_init(&s->sigint, on_stop_watcher, SIGINT);
            ev_signal_start(loop, &s->sigterm);
            ev_signal_start(loop, &s->sigint);
            return 0;
        }
        ev_loop_destroy(loop);
    }
#endif
    s->lws = lws_create_context(info);
    if (!s->lws) return -1;
#ifdef HERALD_HAVE_LIBEV
    if (!want || strcmp(want, "poll"))
        fprintf(stderr,
                "raw_push: libwebsockets' libev plugin (libwebsockets-evlib-ev) is missing: "
                "serving with poll()\n");
#endif
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    return 0;
}

static void loop_run(raw_server *s)
{
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) {
        ev_run(s->evloop, 0);
        return;
    }
#endif
    while (!poll_stop)
        if (lws_service(s->lws, 0) < 0) break;
}

static void loop_destroy(raw_server *s)
{
    if (s->lws) lws_context_destroy(s->lws);
    s->lws = NULL;
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) {
        ev_signal_stop(s->evloop, &s->sigterm);
        ev_signal_stop(s->evloop, &s->sigint);
        ev_loop_destroy(s->evloop);
    }
    s->evloop = NULL;
#endif
}

static int usage(void)
{
    fprintf(stderr, "usage: raw_push --port N\n");
    return 2;
}

int main(int argc, char **argv)
{
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) return usage();
        } else {
            return usage();
        }
    }
    if (port < 0) return usage();

    raw_server *s = &server;
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    struct lws_context_creation_info info = {0};
    info.port = (int)port;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.pt_serv_buf_size = 32 * 1024;
    info.max_http_header_data = 16 * 1024;
    signal(SIGPIPE, SIG_IGN);
    if (loop_create(s, &info)) {
        fprintf(stderr, "raw_push: cannot listen on port %ld (is it in use?)\n", port);
        return 1;
    }
    const char *loop_name = "poll";
#ifdef HERALD_HAVE_LIBEV
    if (s->evloop) loop_name = "libev";
#endif
    printf("raw_push listening on port %ld (%s)\n", port, loop_name);
    fflush(stdout);
    loop_run(s);
    unsigned long long pushes = s->version;
    loop_destroy(s);
    free(s->frame);
    printf("raw_push stopped after %llu pushes\n", pushes);
    return 0;
}
