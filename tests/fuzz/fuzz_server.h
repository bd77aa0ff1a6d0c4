/*
 * A live Herald server without sockets, for the fuzz targets that talk to
 * it as clients do (fuzz_proto.c, fuzz_http.c): the real hd_server of
 * src/server.h on a store in a temporary folder (no_sync), the app in
 * tests/fuzz/app (examples/demo's schema, functions and HS256 sign-in,
 * plus a module with internal functions), the loop's function runtime,
 * the writer thread, and a known admin key, FZ_ADMIN_KEY.
 *
 * Connections are hd_conn structs with no socket (wsi NULL): what the
 * server sends them stays queued. fz_settle() plays the event loop: it
 * takes the writer's finished batches with a consistent snapshot and
 * hands them to hd__sub_commit() (what server.c's drain_batches does),
 * then "sends" every queued frame (checks that it is a JSON object with a
 * `type`, and frees it) and lets a connection that was behind catch up,
 * as the WRITEABLE callback does once a queue is empty. It returns once
 * no request is left at the writer.
 *
 * Connections are opened and closed with server.c's own hd__conn_new and
 * hd__conn_gone; a connection closed while requests of it are at the
 * writer is freed by the server itself (hd__conn_release), as in the real
 * loop.
 *
 * Every input starts from the same state: after an input that committed
 * anything, the writer is stopped, the store is put back to its first
 * state (a copy of its data file kept in memory) and the app reloaded.
 * The data folder holds the admin key's hash (reload reads it) and the
 * store; it is removed at exit, but a crash leaves it in /tmp.
 *
 * Checked after every input: every connection is gone, and with them every
 * query instance, read-set registration and tail (nothing outlives its
 * last subscriber), and the server's count of bytes held for clients is
 * back to 0. HERALD_FUZZ_VERBOSE=1 prints every frame sent.
 */
#ifndef HD_FUZZ_SERVER_H
#define HD_FUZZ_SERVER_H

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "adminkey.h"
#include "fuzz_common.h"
#include "jwt.h"
#include "server.h"

#ifndef HERALD_SOURCE_ROOT
#define HERALD_SOURCE_ROOT "."
#endif

/* The admin key the seeds present; only its SHA-256 is in the data folder, as in a real one. */
#define FZ_ADMIN_KEY "hk_fuzz-admin-key"
/*
 * Small enough that a few results put a connection over it, so updates
 * get merged and sent whole later (docs/protocol.md, "Slow clients"); a
 * few requests sent without waiting reach the bound of one connection's
 * queue, and two connections together the bound of all clients' memory.
 * Both cull.
 */
#define FZ_MAX_OUTBOUND 512
#define FZ_MAX_QUEUED   4096
#define FZ_MAX_MEMORY   6144
/* Connections closed with requests still at the writer, per input. */
#define FZ_MAX_ZOMBIES 16

static struct {
    hd_server s;
    bool ready;
    bool verbose; /* HERALD_FUZZ_VERBOSE: print every frame sent */
    char data_dir[64];
    char app_dir[4096];
    unsigned char *image; /* the store's data file in its first state */
    size_t image_len;
    uint64_t version; /* the store's version in that state */
    /* The writer's wake-ups. */
    pthread_mutex_t lock;
    pthread_cond_t woken;
    unsigned wakes;
    /* Closed connections the server frees once their last request is answered. */
    hd_conn *zombies[FZ_MAX_ZOMBIES];
    int zombie_pending[FZ_MAX_ZOMBIES];
    size_t nzombies;
} fz;

/* ---- the first state: the demo app's tables with a few documents ---- */

enum { FZ_USERS = 1, FZ_FEEDS, FZ_REELS, FZ_VIDEOS };

static const char *const fz_users[] = {
    "{\"auth0Id\":\"demo|alice\",\"email\":\"alice@example.com\",\"name\":\"Alice\","
    "\"createdAt\":1700000000000,\"lastLoginAt\":1700000000000}",
    "{\"auth0Id\":\"demo|bob\",\"createdAt\":1700000001000,\"lastLoginAt\":1700000001000}",
};
static const char *const fz_videos[] = {
    "{\"twitchId\":\"1900000000\",\"title\":\"Speedrun marathon\",\"status\":\"Queued\","
    "\"jobId\":\"job-0001\",\"createdAt\":1764000000000,\"updatedAt\":1764000005000}",
    "{\"twitchId\":\"1900007919\",\"title\":\"Late night chess\",\"status\":\"Downloading\","
    "\"jobId\":\"job-0002\",\"createdAt\":1764000060000,\"updatedAt\":1764000065000,"
    "\"progressPercentage\":12,\"currentStage\":\"Downloading\",\"estimatedCompletionSeconds\":"
    "264}",
    "{\"twitchId\":\"1900015838\",\"title\":\"Caf\\u00e9 \\\"quotes\\\"\",\"status\":\"Completed\","
    "\"createdAt\":1764000120000,\"stageProgress\":{}}",
};

/* Documents that name others: built once their ids are known (fixed: see fuzz_common.h). */
static char fz_feed_text[2][512], fz_reel_text[3][512];

static inline herald_store *fz_store_first_state(void)
{
    char user[2][HERALD_ID_CHARS + 1], feed[2][HERALD_ID_CHARS + 1];
    for (size_t i = 0; i < 2; i++) {
        fz_id(FZ_USERS, i, user[i]);
        fz_id(FZ_FEEDS, i, feed[i]);
    }
    snprintf(fz_feed_text[0], sizeof fz_feed_text[0],
             "{\"userId\":\"%s\",\"prompt\":\"cats\",\"tags\":[\"pets\"],\"status\":\"curating\","
             "\"createdAt\":1700000002000,\"updatedAt\":1700000002000}",
             user[0]);
    snprintf(fz_feed_text[1], sizeof fz_feed_text[1],
             "{\"userId\":\"%s\",\"prompt\":\"dogs\",\"tags\":[],\"status\":\"pending\","
             "\"createdAt\":1700000003000,\"updatedAt\":1700000003000}",
             user[1]);
    snprintf(fz_reel_text[0], sizeof fz_reel_text[0],
             "{\"feedId\":\"%s\",\"position\":0,\"sourceType\":\"generated\",\"status\":\"ready\","
             "\"videoUrl\":\"https://v.invalid/0.mp4\",\"createdAt\":1700000004000,"
             "\"updatedAt\":1700000004000}",
             feed[0]);
    snprintf(fz_reel_text[1], sizeof fz_reel_text[1],
             "{\"feedId\":\"%s\",\"position\":1,\"sourceType\":\"scraped\",\"status\":\"pending\","
             "\"metadata\":{\"likes\":3,\"tags\":[\"a\",null]},\"createdAt\":1700000005000,"
             "\"updatedAt\":1700000005000}",
             feed[0]);
    snprintf(fz_reel_text[2], sizeof fz_reel_text[2],
             "{\"feedId\":\"%s\",\"position\":0,\"sourceType\":\"generated\",\"status\":\"failed\","
             "\"createdAt\":1700000006000,\"updatedAt\":1700000006000}",
             feed[1]);
    const char *feeds[] = {fz_feed_text[0], fz_feed_text[1]};
    const char *reels[] = {fz_reel_text[0], fz_reel_text[1], fz_reel_text[2]};
    const fz_table tables[] = {
        {"users", fz_users, 2, NULL, FZ_USERS},
        {"feeds", feeds, 2, NULL, FZ_FEEDS},
        {"reels", reels, 3, NULL, FZ_REELS},
        {"videos", fz_videos, sizeof fz_videos / sizeof *fz_videos, NULL, FZ_VIDEOS},
    };
    char schema_path[sizeof fz.app_dir + 16];
    snprintf(schema_path, sizeof schema_path, "%s/schema.ts", fz.app_dir);
    herald_schema *schema = NULL;
    herald_error err = {0};
    if (herald_schema_load_file(schema_path, &schema, &err)) fz_die(schema_path, &err);
    snprintf(fz.data_dir, sizeof fz.data_dir, "/tmp/herald-fuzz-server-XXXXXX");
    herald_store_options opts = {.no_sync = true};
    return fz_store_new(fz.data_dir, &opts, schema, tables, sizeof tables / sizeof *tables);
}

/* ---- files of the data folder ---- */

static inline void fz_data_path(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", fz.data_dir, name);
}

static inline void fz_write_file(const char *name, const void *p, size_t len)
{
    char path[sizeof fz.data_dir + 32];
    fz_data_path(name, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, len) != (ssize_t)len || close(fd) != 0) {
        perror(path);
        abort();
    }
}

static inline void fz_read_image(void)
{
    char path[sizeof fz.data_dir + 32];
    fz_data_path("data.mdb", path, sizeof path);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !(fz.image = malloc((size_t)st.st_size)) ||
        fread(fz.image, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        perror(path);
        abort();
    }
    fz.image_len = (size_t)st.st_size;
    fclose(f);
}

/* ---- the server ---- */

static inline void fz_wake(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&fz.lock);
    fz.wakes++;
    pthread_cond_broadcast(&fz.woken);
    pthread_mutex_unlock(&fz.lock);
}

/* Opens the store as it is in the data folder, loads the app, starts the writer. */
static inline void fz_start(void)
{
    hd_server *s = &fz.s;
    herald_error err = {0};
    herald_store_options opts = {.no_sync = true, .owner = "herald serve"};
    if (herald_store_open(fz.data_dir, &opts, &s->store, &err)) fz_die("open", &err);
    fz.version = herald_store_version(s->store);
    if (hd__server_reload(s, NULL, NULL, &err)) fz_die("loading the app", &err);
    if (hd__writer_start(s->store, 1000, fz_wake, NULL, &s->writer, &err)) fz_die("writer", &err);
    hd__writer_set_functions(s->writer, hd__fnrt_bundle(s->fnrt), &s->cfg.fn_limits);
    s->rerun_functions = false;
}

static inline void fz_stop(void)
{
    hd_server *s = &fz.s;
    hd__writer_free(s->writer);
    s->writer = NULL;
    hd__fnrt_free(s->fnrt);
    s->fnrt = NULL;
    hd__auth_free(s->auth);
    s->auth = NULL;
    herald_store_close(s->store);
    s->store = NULL;
}

static inline void fz_teardown(void)
{
    fz_stop();
    hd__sub_free_all(&fz.s);
    hd__rsindex_free(fz.s.rsindex);
    free(fz.image);
    fz_remove_dir(fz.data_dir);
}

static inline void fz_setup(void)
{
    hd_server *s = &fz.s;
    const char *app = getenv("HERALD_FUZZ_APP");
    if (app)
        snprintf(fz.app_dir, sizeof fz.app_dir, "%s", app);
    else
        snprintf(fz.app_dir, sizeof fz.app_dir, "%s/tests/fuzz/app", HERALD_SOURCE_ROOT);
    fz.verbose = getenv("HERALD_FUZZ_VERBOSE") != NULL;
    pthread_mutex_init(&fz.lock, NULL);
    pthread_cond_init(&fz.woken, NULL);

    herald_store_close(fz_store_first_state());
    fz_read_image();
    SHA256((const unsigned char *)FZ_ADMIN_KEY, strlen(FZ_ADMIN_KEY), s->admin_hash);
    fz_write_file(HD_ADMINKEY_HASH_FILE, s->admin_hash, sizeof s->admin_hash);
    s->have_admin = true;

    s->cfg = (hd_server_config){
        .app_dir = fz.app_dir,
        .data_dir = fz.data_dir,
        .no_sync = true,
        .max_message = (size_t)1024 * 1024 + 65536,
        .max_outbound = FZ_MAX_OUTBOUND,
        .max_behind_seconds = 30,
        .max_subs_per_conn = 8,
        .max_queued = FZ_MAX_QUEUED,
        .max_memory = FZ_MAX_MEMORY,
        .idle_seconds = 60,
        .request_seconds = 30,
        /* Small budgets: a call that loops costs milliseconds, not seconds. */
        .fn_limits = {.instructions = 1000000, .memory = (size_t)16 << 20},
    };
    s->started_at = hd__now();
    if (hd__rsindex_new(&s->rsindex)) fz_die("read-set index", NULL);
    fz_start();
    fz.ready = true;
    atexit(fz_teardown);
}

/* Puts the store back to its first state and starts again. */
static inline void fz_reset(void)
{
    fz_stop();
    char path[sizeof fz.data_dir + 32];
    fz_data_path("lock.mdb", path, sizeof path);
    unlink(path);
    fz_write_file("data.mdb", fz.image, fz.image_len);
    fz_start();
}

/* ---- connections (server.c's conn_new, conn_free and conn_gone) ---- */

static inline hd_conn *fz_conn_open(bool websocket)
{
    hd_conn *c = hd__conn_new(&fz.s, NULL, websocket);
    if (!c) abort();
    return c;
}

/* A frame the server queued must be one JSON object with a string `type`. */
static inline void fz_check_frame(const hd_frame *f)
{
    const char *text = (const char *)f->data + LWS_PRE;
    cJSON *j = cJSON_ParseWithLength(text, f->len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type)) {
        fprintf(stderr, "%s: the server sent a frame that is not a message: %.*s\n",
                program_invocation_short_name, (int)(f->len > 2000 ? 2000 : f->len), text);
        abort();
    }
    cJSON_Delete(j);
    if (fz.verbose) fprintf(stderr, "  <- %.*s\n", (int)(f->len > 600 ? 600 : f->len), text);
}

/* "Sends" what is queued: checks each frame and frees it. */
static inline void fz_send_queued(hd_conn *c)
{
    for (hd_frame *f = c->out, *n; f; f = n) {
        n = f->next;
        fz_check_frame(f);
        c->out_bytes -= f->len;
        c->srv->mem_out -= f->len;
        free(f);
    }
    c->out = c->out_tail = NULL;
    c->out_sent = 0;
    if (c->out_bytes != 0) fz_die("the queue's byte count does not match its frames", NULL);
}

/* ---- the event loop's part ---- */

/* Requests at the writer, of open and of closed connections. */
static inline int fz_outstanding(void)
{
    int n = 0;
    for (hd_conn *c = fz.s.conns; c; c = c->next)
        n += c->pending_requests;
    for (size_t i = 0; i < fz.nzombies; i++)
        n += fz.zombie_pending[i];
    return n;
}

/* Counts the answers a batch holds for closed connections (the server frees those it answers last).
 */
static inline void fz_count_zombie_answers(const hd_wbatch *batches)
{
    for (const hd_wbatch *b = batches; b; b = b->next)
        for (const hd_wreq *r = b->reqs; r; r = r->next)
            for (size_t i = 0; i < fz.nzombies; i++) {
                if (r->origin != fz.zombies[i]) continue;
                if (--fz.zombie_pending[i] == 0) {
                    fz.zombies[i] = fz.zombies[--fz.nzombies];
                    fz.zombie_pending[i] = fz.zombie_pending[fz.nzombies];
                }
                break;
            }
}

/* What a connection's state must say between messages: a signed-out one has no expiry time. */
static inline void fz_check_conn(const hd_conn *c)
{
    if (c->identity.type == HERALD_UNDEFINED && c->identity_expires != 0)
        fz_die("a signed-out connection keeps an expiry time", NULL);
}

/* Every connection's queue goes out; one that was behind then gets its whole results. */
static inline void fz_send_all(void)
{
    for (hd_conn *c = fz.s.conns; c; c = c->next) {
        fz_check_conn(c);
        fz_send_queued(c);
        if (c->closing) continue;
        hd__sub_catch_up(&fz.s, c);
        fz_send_queued(c);
    }
}

/*
 * Processes the writer's batches until no request is left at the writer,
 * then sends everything: the client reads only once the server is idle,
 * so updates of commits made while its replies were unread (sent with
 * `&`) find its queue over the bound and are merged.
 */
static inline void fz_settle(void)
{
    hd_server *s = &fz.s;
    for (;;) {
        pthread_mutex_lock(&fz.lock);
        unsigned seen = fz.wakes;
        pthread_mutex_unlock(&fz.lock);
        hd_wbatch *b;
        herald_txn *snapshot;
        herald_error err = {0};
        int rc = hd__writer_take_consistent(s->writer, &b, &snapshot, &err);
        if (rc == 0) {
            if (b || s->rerun_functions) {
                fz_count_zombie_answers(b);
                hd__sub_commit(s, b, snapshot);
            }
            herald_txn_end(snapshot);
            hd__wbatch_free(b);
        } else if (rc != HERALD_EBUSY) {
            fz_die("snapshot", &err);
        }
        if (!fz_outstanding()) break;
        /* The writer wakes us when a group is published; the timeout only bounds a missed one. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&fz.lock);
        while (fz.wakes == seen &&
               pthread_cond_timedwait(&fz.woken, &fz.lock, &until) != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&fz.lock);
    }
    fz_send_all();
}

/* The socket is gone: as conn_gone, freed now unless requests of it are at the writer. */
static inline void fz_conn_close(hd_conn *c)
{
    if (c->pending_requests > 0 && fz.nzombies == FZ_MAX_ZOMBIES) fz_settle();
    int pending = c->pending_requests;
    fz_send_queued(c); /* what it had queued is checked before it goes */
    hd__conn_gone(&fz.s, c);
    if (pending <= 0) return;
    fz.zombies[fz.nzombies] = c;
    fz.zombie_pending[fz.nzombies++] = pending;
}

/* ---- per input ---- */

static inline void fz_begin_input(void)
{
    hd_server *s = &fz.s;
    if (!fz.ready)
        fz_setup();
    else if (herald_store_version(s->store) != fz.version)
        fz_reset();
    /* The stats start from nothing too, so `admin stats` answers the same each time. */
    s->commits = s->updates_sent = 0;
    memset(s->per_second, 0, sizeof s->per_second);
    s->nlatency = s->latency_next = 0;
}

/* Once every connection of the input is closed: nothing may be left behind. */
static inline void fz_end_input(void)
{
    hd_server *s = &fz.s;
    fz_settle();
    if (s->conns || fz.nzombies) fz_die("a connection outlived its input", NULL);
    if (s->ninst) fz_die("a query instance outlived its last subscriber", NULL);
    if (s->ntails) fz_die("a tail outlived its connection", NULL);
    if (hd__rsindex_owners(s->rsindex) || hd__rsindex_count(s->rsindex))
        fz_die("read ranges outlived their query instance", NULL);
    if (s->mem_in || s->mem_out) fz_die("the bytes held for clients do not come back to 0", NULL);
}

#endif
