/*
 * Snapshots through JetStream (src/replsnap.c) against a nats-server of
 * its own on a loopback port, and their archive format (src/snaparc.c).
 *
 * The archive reader refuses paths out of the folder, bad modes, cut and
 * trailing bytes, and reads the same whatever the pieces it is fed in; a
 * folder is archived without its lock files and unpacked the same, and a
 * path twice, a file where a folder must go and a link are refused. A
 * store with documents, a stored file spanning several chunks, its secrets
 * and a repl_seq is published twice: the first snapshot's chunks and
 * manifest are purged, the second is fetched into a new folder holding the
 * same documents, file, secrets, version and seq. A deleted chunk, a
 * manifest whose digest or chunk count is wrong, a manifest that is not
 * JSON and an archive with a path out of the folder are refused, leaving
 * no folder behind.
 *
 * Skipped (77) when nats-server is not installed, after the archive tests.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "adminkey.h"
#include "blobs.h"
#include "check.h"
#include "herald/store.h"
#include "replsnap.h"
#include "snaparc.h"

#define CLUSTER "t1"
#define STREAM  "HERALD_t1_SNAP"
/* Larger than two chunks: the archive spans at least three. */
#define BIG_FILE ((size_t)1300 * 1024)

static char root[] = "/tmp/herald-test-replsnap-XXXXXX";

static uint8_t *slurp(const char *dir, const char *name, size_t *n, unsigned *mode);
static bool has_entry(const char *dir, const char *prefix);

/* ---- the archive format ---- */

typedef struct arc_buf {
    uint8_t *p;
    size_t len, cap;
} arc_buf;

static void put(arc_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(1);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_be(arc_buf *b, uint64_t v, int bytes)
{
    uint8_t x[8];
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        x[i] = (uint8_t)v;
    put(b, x, (size_t)bytes);
}

/* Appends entry `path` with `mode` and contents `data` to archive `b`. */
static void put_file(arc_buf *b, const char *path, uint32_t mode, const char *data)
{
    put(b, "F", 1);
    put_be(b, strlen(path), 2);
    put(b, path, strlen(path));
    put_be(b, mode, 4);
    put_be(b, strlen(data), 8);
    put(b, data, strlen(data));
}

/* An archive of file `first` and, unless NULL, `second` (contents "1" and "2"). */
static arc_buf files_arc(const char *first, const char *second)
{
    arc_buf b = {0};
    put(&b, HD_SNAPARC_MAGIC, 8);
    put_file(&b, first, 0600, "1");
    if (second) put_file(&b, second, 0600, "2");
    put(&b, "E", 1);
    return b;
}

/* What a reader reports, as text: "B path mode size", "D n", "E". */
static int note_begin(void *ctx, const char *path, uint32_t mode, uint64_t size, herald_error *err)
{
    (void)err;
    char line[400];
    snprintf(line, sizeof line, "B %s %o %llu\n", path, mode, (unsigned long long)size);
    put(ctx, line, strlen(line));
    return 0;
}
static int note_data(void *ctx, const uint8_t *p, size_t n, herald_error *err)
{
    (void)err;
    put(ctx, p, n);
    return 0;
}
static int note_end(void *ctx, herald_error *err)
{
    (void)err;
    put(ctx, "E\n", 2);
    return 0;
}

/* Reads archive `a` in pieces of `step` bytes; `notes` (may be NULL) gets what it found. */
static int read_arc(const arc_buf *a, size_t step, arc_buf *notes, herald_error *err)
{
    hd_snaparc_sink sink = {note_begin, note_data, note_end, notes};
    hd_snaparc_reader r;
    hd__snaparc_reader_init(&r, notes ? &sink : NULL);
    for (size_t at = 0; at < a->len; at += step) {
        size_t n = a->len - at < step ? a->len - at : step;
        int rc = hd__snaparc_feed(&r, a->p + at, n, err);
        if (rc) return rc;
    }
    return hd__snaparc_finish(&r, err);
}

static void test_archive_format(void)
{
    herald_error err = {0};
    arc_buf a = {0}, whole = {0}, bytes = {0};
    put(&a, HD_SNAPARC_MAGIC, 8);
    put_file(&a, "data.mdb", 0600, "database");
    put_file(&a, "files/abc", 0644, "");
    put_file(&a, "files/x.y_z-1", 0600, "file bytes");
    put(&a, "E", 1);
    CHECK_OK(read_arc(&a, a.len, &whole, &err));
    CHECK_OK(read_arc(&a, 1, &bytes, &err));
    const char *expect = "B data.mdb 600 8\ndatabaseE\nB files/abc 644 0\nE\n"
                         "B files/x.y_z-1 600 10\nfile bytesE\n";
    CHECK(whole.len == strlen(expect) && !memcmp(whole.p, expect, whole.len));
    CHECK(bytes.len == whole.len && !memcmp(bytes.p, whole.p, whole.len));
    /* Cut anywhere: refused at the end. */
    for (size_t cut = 0; cut < a.len; cut++) {
        arc_buf part = {a.p, cut, cut};
        CHECK(read_arc(&part, 3, NULL, &err) == HERALD_ECORRUPT);
    }
    /* A byte after the end. */
    arc_buf more = {0};
    put(&more, a.p, a.len);
    put(&more, "F", 1);
    CHECK(read_arc(&more, 7, NULL, &err) == HERALD_ECORRUPT);
    CHECK(strstr(err.message, "after the end") != NULL);
    free(more.p);
    /* Paths out of the folder, odd characters, bad modes, an unknown tag, a bad magic. */
    const char *bad_paths[] = {"/etc/passwd", "../x",    "files/../../x", "a//b", "a/",
                               ".",           "files/.", "a b",           "a\\b", ""};
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        arc_buf b = files_arc(bad_paths[i], NULL);
        arc_buf notes = {0};
        CHECK(read_arc(&b, 1, &notes, &err) == HERALD_ECORRUPT);
        CHECK(notes.len == 0); /* refused before the sink heard of it */
        free(b.p);
        free(notes.p);
    }
    arc_buf b = {0};
    put(&b, HD_SNAPARC_MAGIC, 8);
    put_file(&b, "data.mdb", 04755, "x");
    put(&b, "E", 1);
    CHECK(read_arc(&b, 1, NULL, &err) == HERALD_ECORRUPT);
    b.len = 8;
    put(&b, "X", 1);
    CHECK(read_arc(&b, 1, NULL, &err) == HERALD_ECORRUPT);
    memcpy(b.p, "HDSNAP02", 8);
    CHECK(read_arc(&b, 1, NULL, &err) == HERALD_ECORRUPT);
    free(b.p);
    free(a.p);
    free(whole.p);
    free(bytes.p);
}

static int emit_to(void *ctx, const uint8_t *p, size_t n, herald_error *err)
{
    (void)err;
    put(ctx, p, n);
    return 0;
}

static void write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    if (fd >= 0) close(fd);
    CHECK(chmod(path, mode) == 0);
}

/* Unpacks archive `a` into new folder `dir`: the reader's result, or the unpacker's. */
static int unpack(const arc_buf *a, const char *dir, herald_error *err)
{
    CHECK(mkdir(dir, 0700) == 0);
    hd_snaparc_unpack *u = NULL;
    hd_snaparc_sink sink;
    int rc = hd__snaparc_unpack_open(dir, &u, &sink, err);
    hd_snaparc_reader r;
    hd__snaparc_reader_init(&r, &sink);
    if (!rc) rc = hd__snaparc_feed(&r, a->p, a->len, err);
    if (!rc) rc = hd__snaparc_finish(&r, err);
    herald_error close_err = {0};
    int closed = hd__snaparc_unpack_close(u, &close_err);
    return rc ? rc : closed;
}

/* A folder archived (lock files left out) and unpacked the same; placed; refusals on disk. */
static void test_archive_folder(void)
{
    herald_error err = {0};
    char dir[] = "/tmp/herald-test-snaparc-XXXXXX", src[100], files[120], out[200], placed[100];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(files, sizeof files, "%s/files", src);
    CHECK(mkdir(src, 0700) == 0 && mkdir(files, 0700) == 0);
    write_text(src, "data.mdb", "database", 0600);
    write_text(src, "lock.mdb", "lock", 0600);
    write_text(src, "herald.lock", "pid", 0644);
    write_text(src, "storage.key", "key", 0600);
    write_text(files, "abc", "file", 0644);
    arc_buf a = {0};
    uint64_t n = 0;
    CHECK_OK(hd__snaparc_write(src, emit_to, &a, &n, &err));
    CHECK(n == 3);
    snprintf(out, sizeof out, "%s/out", dir);
    CHECK_OK(unpack(&a, out, &err));
    size_t len;
    unsigned mode;
    uint8_t *p = slurp(out, "data.mdb", &len, &mode);
    CHECK(p && len == 8 && !memcmp(p, "database", 8) && mode == 0600);
    free(p);
    p = slurp(out, "files/abc", &len, &mode);
    CHECK(p && len == 4 && !memcmp(p, "file", 4) && mode == 0644);
    free(p);
    CHECK(!has_entry(out, "lock.mdb") && !has_entry(out, "herald.lock"));
    /* Placed under a new name, trailing slashes aside; an existing one is refused. */
    char target[200];
    snprintf(placed, sizeof placed, "%s/placed//", dir);
    CHECK_OK(hd__snaparc_target(placed, target, sizeof target, &err));
    CHECK(strlen(target) == strlen(placed) - 2);
    CHECK_OK(hd__snaparc_place(out, target, &err));
    CHECK(hd__snaparc_target(target, out, sizeof out, &err) == HERALD_EINVAL);
    free(a.p);
    /* A path twice, and a file where a folder must go: refused on disk. */
    const char *twice[][2] = {{"a", "a"}, {"files", "files/x"}};
    for (int i = 0; i < 2; i++) {
        a = files_arc(twice[i][0], twice[i][1]);
        snprintf(out, sizeof out, "%s/refused-%d", dir, i);
        CHECK(unpack(&a, out, &err) == HERALD_ECORRUPT);
        free(a.p);
    }
    /* A link in the folder archived: refused. */
    char link[300];
    snprintf(link, sizeof link, "%s/files/link", src);
    CHECK(symlink("/etc/passwd", link) == 0);
    a = (arc_buf){0};
    CHECK(hd__snaparc_write(src, emit_to, &a, NULL, &err) == HERALD_EINVAL);
    free(a.p);
    hd__snaparc_remove_tree(dir);
    struct stat st;
    CHECK(lstat(dir, &st) != 0);
}

/* ---- nats-server ---- */

static const char *find_nats_server(void)
{
    static const char *const where[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                        "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++)
        if (access(where[i], X_OK) == 0) return where[i];
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static pid_t start_nats(const char *exe, int port, const char *store_dir, const char *log)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(exe, exe, "-js", "-a", "127.0.0.1", "-p", port_text, "-sd", store_dir, (char *)NULL);
        _exit(127);
    }
    /* Bounds the wait only: the server is up when its port answers. */
    for (int i = 0; pid > 0 && i < 400 && !port_answers(port); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) return -1;
        usleep(25 * 1000);
    }
    return pid;
}

/* ---- the store ---- */

static const char *schema_json =
    "{\"tables\":{\"notes\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "\"text\":{\"type\":\"string\"},\"n\":{\"type\":\"number\"}}},"
    "\"indexes\":[{\"name\":\"by_n\",\"fields\":[\"n\"]}]}}}";

static void insert_note(herald_store *s, int n)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    char doc[96];
    snprintf(doc, sizeof doc, "{\"text\":\"note %d\",\"n\":%d}", n, n);
    herald_value v = json(doc);
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK_OK(herald_insert(m, "notes", &v, NULL, &err));
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    herald_value_free(&v);
}

static void set_seq(herald_store *s, uint64_t seq)
{
    herald_error err = {0};
    herald_group *g;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_group_set_meta(g, "repl_seq", seq, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
}

/* A stored file of `n` pseudo-random bytes with its `_storage` row; `id` gets the row's id. */
static void store_file(herald_store *s, const char *data_dir, size_t n,
                       char id[HERALD_ID_CHARS + 1])
{
    herald_error err = {0};
    char files[400], sha[65], doc[200];
    CHECK_OK(hd__blobs_dir(data_dir, files, sizeof files, &err));
    hd_blob_writer w;
    CHECK_OK(hd__blob_begin(files, &w, &err));
    uint8_t block[4096];
    for (size_t done = 0; done < n; done += sizeof block) {
        for (size_t i = 0; i < sizeof block; i++)
            block[i] = (uint8_t)check_rand();
        CHECK_OK(
            hd__blob_write(&w, block, n - done < sizeof block ? n - done : sizeof block, &err));
    }
    CHECK_OK(hd__blob_finish(&w, sha, &err));
    snprintf(doc, sizeof doc, "{\"sha256\":\"%s\",\"size\":%zu}", sha, n);
    herald_value v = json(doc);
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_txn_allow_system(m, true);
    CHECK_OK(herald_insert(m, "_storage", &v, id, &err));
    CHECK_OK(hd__blob_place(w.path, id, &err));
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    herald_value_free(&v);
}

static int append_json(void *ctx, const herald_value *doc)
{
    char *text = herald_value_to_json(doc);
    if (!text) return HERALD_ENOMEM;
    put(ctx, text, strlen(text));
    put(ctx, "\n", 1);
    free(text);
    return 0;
}

/* Every document of both tables, as JSON lines, in id order. */
static char *dump(herald_store *s)
{
    herald_error err = {0};
    herald_txn *t;
    arc_buf b = {0};
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_table_scan(t, "notes", append_json, &b, &err));
    CHECK_OK(herald_table_scan(t, "_storage", append_json, &b, &err));
    herald_txn_end(t);
    put(&b, "", 1);
    return (char *)b.p;
}

/* The bytes of file `dir`/`name` (*n of them, mode in *mode), or NULL. */
static uint8_t *slurp(const char *dir, const char *name, size_t *n, unsigned *mode)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f) fclose(f);
        return NULL;
    }
    uint8_t *p = malloc((size_t)st.st_size + 1);
    *n = fread(p, 1, (size_t)st.st_size, f);
    *mode = st.st_mode & 0777;
    fclose(f);
    return p;
}

static void check_same_file(const char *a, const char *b, const char *name, unsigned mode)
{
    size_t na = 0, nb = 0;
    unsigned ma = 0, mb = 0;
    uint8_t *pa = slurp(a, name, &na, &ma), *pb = slurp(b, name, &nb, &mb);
    CHECK(pa && pb && na == nb && !memcmp(pa, pb, na));
    CHECK(mb == mode);
    if (!pa || !pb || na != nb) fprintf(stderr, "  file %s differs\n", name);
    free(pa);
    free(pb);
}

/* Whether folder `dir` holds an entry whose name begins with `prefix`. */
static bool has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && !found && (e = readdir(d)))
        found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return found;
}

/* Messages of the snapshot stream on `subject` (a filter), or all with NULL. */
static uint64_t stream_msgs(jsCtx *js, const char *subject)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *si = NULL;
    CHECK(js_GetStreamInfo(&si, js, STREAM, &o, NULL) == NATS_OK);
    uint64_t n = 0;
    if (si && !subject) n = si->State.Msgs;
    for (int i = 0; si && subject && si->State.Subjects && i < si->State.Subjects->Count; i++)
        n += si->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static void publish_raw(jsCtx *js, const char *subject, const void *p, size_t n, const char *chunk)
{
    natsMsg *m = NULL;
    CHECK(natsMsg_Create(&m, subject, NULL, p, (int)n) == NATS_OK);
    if (chunk) CHECK(natsMsgHeader_Set(m, "Herald-Snap-Chunk", chunk) == NATS_OK);
    CHECK(js_PublishMsg(NULL, js, m, NULL, NULL) == NATS_OK);
    natsMsg_Destroy(m);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    unsigned len = 0;
    EVP_Digest(p, n, d, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A fetch that must be refused as corrupt, leaving nothing behind. */
static void check_refused(jsCtx *js, const char *why)
{
    char dest[200];
    snprintf(dest, sizeof dest, "%s/refused", root);
    hd_replsnap_info info;
    herald_error err = {0};
    int rc = hd__replsnap_fetch(js, CLUSTER, dest, &info, &err);
    if (rc != HERALD_ECORRUPT) fprintf(stderr, "%s: fetch gave %d: %s\n", why, rc, err.message);
    CHECK(rc == HERALD_ECORRUPT);
    CHECK(!has_entry(root, "refused"));
}

static void test_snapshots(jsCtx *js)
{
    herald_error err = {0};
    char data[200], snaps[200], fetched[200];
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(snaps, sizeof snaps, "%s/snaps", root);
    snprintf(fetched, sizeof fetched, "%s/fetched", root);
    CHECK(mkdir(snaps, 0700) == 0);

    herald_store *s = NULL;
    CHECK_OK(herald_store_open(data, NULL, &s, &err));
    herald_schema *schema = NULL;
    CHECK_OK(herald_schema_from_json(schema_json, strlen(schema_json), "test", &schema, &err));
    CHECK_OK(herald_store_set_schema(s, schema, &err));
    for (int i = 0; i < 20; i++)
        insert_note(s, i);
    char file_id[HERALD_ID_CHARS + 1];
    store_file(s, data, BIG_FILE, file_id);
    uint8_t key[HD_BLOB_KEY_BYTES], hash[32];
    char key_path[400];
    CHECK_OK(hd__blob_key(data, key, &err));
    CHECK_OK(hd__adminkey_new(data, key_path, sizeof key_path, hash, &err));
    set_seq(s, 42);

    /* Bad names and counts; the stream made once, then found. */
    CHECK(hd__replsnap_ensure(js, "a.b", 1, &err) == HERALD_EINVAL);
    CHECK(hd__replsnap_ensure(js, CLUSTER, 4, &err) == HERALD_EINVAL);
    CHECK_OK(hd__replsnap_ensure(js, CLUSTER, 1, &err));
    CHECK_OK(hd__replsnap_ensure(js, CLUSTER, 1, &err));
    hd_replsnap_info first, second, latest, got;
    CHECK(hd__replsnap_latest(js, CLUSTER, &latest, &err) == HERALD_ENOTFOUND);
    CHECK(hd__replsnap_fetch(js, CLUSTER, fetched, &got, &err) == HERALD_ENOTFOUND);
    CHECK(!has_entry(root, "fetched"));

    int rc = hd__replsnap_publish(js, CLUSTER, s, data, snaps, &first, &err);
    if (rc) fprintf(stderr, "publish: %s\n", err.message);
    CHECK(rc == 0);
    CHECK(first.seq == 42 && first.version == herald_store_version(s));
    CHECK(first.chunks >= 3 && strlen(first.id) == 16);
    CHECK(first.bytes > BIG_FILE &&
          first.chunks == (first.bytes + HD_REPLSNAP_CHUNK - 1) / HD_REPLSNAP_CHUNK);
    CHECK(!has_entry(snaps, "")); /* the temporary folder went */
    CHECK(stream_msgs(js, NULL) == first.chunks + 1);

    /* A cluster without its stream: no snapshot, and publishing fails (nothing left behind). */
    hd_replsnap_info none;
    CHECK(hd__replsnap_latest(js, "t2", &none, &err) == HERALD_ENOTFOUND);
    CHECK(hd__replsnap_publish(js, "t2", s, data, snaps, &none, &err) == HERALD_EIO);
    CHECK(strstr(err.message, "herald.t2.snap.data.") != NULL);
    CHECK(!has_entry(snaps, ""));

    /* A second snapshot: the first one's chunks and manifest are purged. */
    insert_note(s, 100);
    set_seq(s, 43);
    CHECK_OK(hd__replsnap_publish(js, CLUSTER, s, data, snaps, &second, &err));
    CHECK(second.seq == 43 && second.version == herald_store_version(s));
    CHECK(strcmp(second.id, first.id) != 0);
    CHECK(stream_msgs(js, NULL) == second.chunks + 1);
    char subject[100];
    snprintf(subject, sizeof subject, "herald." CLUSTER ".snap.data.%s", first.id);
    CHECK(stream_msgs(js, subject) == 0);
    snprintf(subject, sizeof subject, "herald." CLUSTER ".snap.data.%s", second.id);
    CHECK(stream_msgs(js, subject) == second.chunks);
    CHECK_OK(hd__replsnap_latest(js, CLUSTER, &latest, &err));
    CHECK(!strcmp(latest.id, second.id) && latest.seq == 43 && latest.bytes == second.bytes &&
          latest.chunks == second.chunks && latest.version == second.version);

    /* Fetched: the same documents, file, secrets, version and seq. */
    rc = hd__replsnap_fetch(js, CLUSTER, fetched, &got, &err);
    if (rc) fprintf(stderr, "fetch: %s\n", err.message);
    CHECK(rc == 0);
    CHECK(!strcmp(got.id, second.id) && got.seq == 43 && got.version == second.version);
    CHECK(!has_entry(root, "fetched.tmp-"));
    herald_store *copy = NULL;
    herald_store_options ro = {.read_only = true};
    CHECK_OK(herald_store_open(fetched, &ro, &copy, &err));
    if (copy) {
        char *want = dump(s), *have = dump(copy);
        CHECK(!strcmp(want, have));
        free(want);
        free(have);
        CHECK(herald_store_version(copy) == second.version);
        uint64_t seq = 0;
        CHECK_OK(herald_store_get_meta(copy, "repl_seq", &seq, &err));
        CHECK(seq == 43);
        herald_store_close(copy);
    }
    check_same_file(data, fetched, "storage.key", 0600);
    check_same_file(data, fetched, HD_ADMINKEY_FILE, 0600);
    check_same_file(data, fetched, HD_ADMINKEY_HASH_FILE, 0600);
    char name[64];
    snprintf(name, sizeof name, "files/%s", file_id);
    check_same_file(data, fetched, name, 0600);
    /* Into a folder that exists: refused. */
    CHECK(hd__replsnap_fetch(js, CLUSTER, fetched, &got, &err) == HERALD_EINVAL);

    /* A chunk deleted from the stream: the one before the last (the chunks are in a row). */
    natsMsg *last = NULL;
    CHECK(js_GetLastMsg(&last, js, STREAM, subject, NULL, NULL) == NATS_OK);
    CHECK(last && js_DeleteMsg(js, STREAM, natsMsg_GetSequence(last) - 1, NULL, NULL) == NATS_OK);
    natsMsg_Destroy(last);
    check_refused(js, "deleted chunk");

    /* A whole snapshot again, then a manifest of it with another digest. */
    hd_replsnap_info third;
    CHECK_OK(hd__replsnap_publish(js, CLUSTER, s, data, snaps, &third, &err));
    char manifest[400];
    snprintf(manifest, sizeof manifest,
             "{\"id\":\"%s\",\"seq\":%llu,\"version\":%llu,\"chunks\":%llu,\"bytes\":%llu,"
             "\"sha256\":\"%064d\",\"created\":1}",
             third.id, (unsigned long long)third.seq, (unsigned long long)third.version,
             (unsigned long long)third.chunks, (unsigned long long)third.bytes, 0);
    publish_raw(js, "herald." CLUSTER ".snap.manifest", manifest, strlen(manifest), NULL);
    check_refused(js, "wrong digest");
    /* One more chunk than the stream holds. */
    snprintf(manifest, sizeof manifest,
             "{\"id\":\"%s\",\"seq\":1,\"version\":1,\"chunks\":%llu,\"bytes\":%llu,"
             "\"sha256\":\"%064d\",\"created\":1}",
             third.id, (unsigned long long)third.chunks + 1,
             (unsigned long long)(third.chunks * HD_REPLSNAP_CHUNK + 1), 0);
    publish_raw(js, "herald." CLUSTER ".snap.manifest", manifest, strlen(manifest), NULL);
    check_refused(js, "missing last chunk");
    /* A manifest that is not one. */
    publish_raw(js, "herald." CLUSTER ".snap.manifest", "{\"id\":", 6, NULL);
    CHECK(hd__replsnap_latest(js, CLUSTER, &latest, &err) == HERALD_ECORRUPT);
    check_refused(js, "not JSON");
    /* An archive, whole and with its right digest, with a path out of the folder. */
    arc_buf a = {0};
    put(&a, HD_SNAPARC_MAGIC, 8);
    put_file(&a, "../escaped", 0600, "x");
    put(&a, "E", 1);
    char sha[65];
    sha256_hex(a.p, a.len, sha);
    publish_raw(js, "herald." CLUSTER ".snap.data.00000000000000aa", a.p, a.len, "0");
    snprintf(manifest, sizeof manifest,
             "{\"id\":\"00000000000000aa\",\"seq\":1,\"version\":1,\"chunks\":1,\"bytes\":%zu,"
             "\"sha256\":\"%s\",\"created\":1}",
             a.len, sha);
    publish_raw(js, "herald." CLUSTER ".snap.manifest", manifest, strlen(manifest), NULL);
    check_refused(js, "path out of the folder");
    CHECK(!has_entry(root, "escaped"));
    free(a.p);
    /* Two chunks in the wrong order, each whole, with the right digest and count. */
    size_t big = HD_REPLSNAP_CHUNK + 1000;
    char *content = malloc(big + 1);
    memset(content, 'a', big);
    content[big] = 0;
    a = (arc_buf){0};
    put(&a, HD_SNAPARC_MAGIC, 8);
    put_file(&a, "data.mdb", 0600, content);
    put(&a, "E", 1);
    free(content);
    sha256_hex(a.p, a.len, sha);
    const char *swapped = "herald." CLUSTER ".snap.data.00000000000000bb";
    publish_raw(js, swapped, a.p + HD_REPLSNAP_CHUNK, a.len - HD_REPLSNAP_CHUNK, "1");
    publish_raw(js, swapped, a.p, HD_REPLSNAP_CHUNK, "0");
    snprintf(manifest, sizeof manifest,
             "{\"id\":\"00000000000000bb\",\"seq\":1,\"version\":1,\"chunks\":2,\"bytes\":%zu,"
             "\"sha256\":\"%s\",\"created\":1}",
             a.len, sha);
    publish_raw(js, "herald." CLUSTER ".snap.manifest", manifest, strlen(manifest), NULL);
    check_refused(js, "chunks out of order");
    free(a.p);

    herald_store_close(s);
}

int main(void)
{
    test_archive_format();
    test_archive_folder();
    const char *exe = find_nats_server();
    if (!exe) {
        fprintf(stderr, "nats-server is not installed: skipping the JetStream part\n");
        return check_failures ? 1 : 77;
    }
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char js_dir[200], log[200];
    snprintf(js_dir, sizeof js_dir, "%s/jetstream", root);
    snprintf(log, sizeof log, "%s/nats.log", root);
    int port = free_port();
    pid_t pid = start_nats(exe, port, js_dir, log);
    CHECK(pid > 0 && port_answers(port));
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    if (pid > 0 && natsConnection_ConnectTo(&nc, url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        test_snapshots(js);
    else
        CHECK(!"connected to nats-server");
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_CloseAndWait(5000);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (check_failures) {
        size_t n = 0;
        unsigned mode;
        char *text = (char *)slurp(root, "nats.log", &n, &mode);
        if (text) fprintf(stderr, "nats-server's log:\n%.*s\n", (int)n, text);
        free(text);
    }
    hd__snaparc_remove_tree(root);
    CHECK_DONE();
}
