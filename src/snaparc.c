/*
 * Snapshot archives (snaparc.h): a backup folder written as one stream of
 * bytes, read back by a reader that takes the stream in pieces of any size,
 * and unpacked into a new folder.
 *
 * The reader sees bytes from the network: it must refuse anything that is
 * not an archive with HERALD_ECORRUPT and never let a path name a place
 * outside the folder it unpacks into (no absolute path, no "..", no link
 * followed). It allocates nothing, so that it can be fuzzed on its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snaparc.h"

/* Files are read through a buffer of this size. */
#define READ_CHUNK ((size_t)256 * 1024)
/* Folders nested deeper than this are not what a backup holds. */
#define MAX_DEPTH 8

enum { ST_MAGIC, ST_TAG, ST_PATH_LEN, ST_PATH, ST_META, ST_DATA, ST_DONE };

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Whether `p` (n bytes) is a relative path the format allows; else *why says why. */
static bool path_ok(const char *p, size_t n, const char **why)
{
    *why = "is empty or too long";
    if (n == 0 || n > HD_SNAPARC_MAX_PATH) return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/') {
            if (!name_char(p[i])) {
                *why = "has a character other than [A-Za-z0-9._-/]";
                return false;
            }
            continue;
        }
        size_t len = i - start;
        if (len == 0) {
            *why = start == 0 ? "is absolute" : "has an empty component";
            return false;
        }
        if ((len == 1 && p[start] == '.') || (len == 2 && p[start] == '.' && p[start + 1] == '.')) {
            *why = "has a \".\" or \"..\" component";
            return false;
        }
        start = i + 1;
    }
    return true;
}

/* ---- Writing ---- */

typedef struct arc_writer {
    hd_snaparc_emit_fn emit;
    void *ctx;
    uint8_t *buf;
    uint64_t files;
    herald_error *err;
} arc_writer;

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int write_file(arc_writer *w, const char *path, const char *rel, herald_error *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = herald_fail(err, HERALD_EINVAL, "%s is not a regular file", path);
    size_t rel_len = strlen(rel);
    uint8_t head[1 + 2 + HD_SNAPARC_MAX_PATH + 4 + 8];
    size_t h = 0;
    if (!rc) {
        head[h++] = 'F';
        put_be(head + h, rel_len, 2);
        memcpy(head + h + 2, rel, rel_len);
        h += 2 + rel_len;
        put_be(head + h, (uint64_t)st.st_mode & 0777, 4);
        put_be(head + h + 4, (uint64_t)st.st_size, 8);
        rc = w->emit(w->ctx, head, h + 12, err);
    }
    for (uint64_t left = rc ? 0 : (uint64_t)st.st_size; !rc;) {
        size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
        /* One byte more than is left: a file that grew is noticed. */
        ssize_t n = read(fd, w->buf, left < READ_CHUNK ? want + 1 : want);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
        } else if ((uint64_t)n > left || (n == 0 && left)) {
            rc = herald_fail(err, HERALD_EIO, "%s changed size while it was archived", path);
        } else if (n == 0) {
            break;
        } else {
            left -= (uint64_t)n;
            rc = w->emit(w->ctx, w->buf, (size_t)n, err);
        }
    }
    close(fd);
    if (!rc) w->files++;
    return rc;
}

/* Archives folder `dir`, whose path in the archive is `rel` ("" at the top). */
static int write_dir(arc_writer *w, const char *dir, const char *rel, int depth)
{
    herald_error *err = w->err;
    if (depth > MAX_DEPTH)
        return herald_fail(err, HERALD_EINVAL, "%s: folders nested too deep", dir);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) return herald_fail(err, HERALD_EIO, "cannot list %s: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (rc || !strcmp(name, ".") || !strcmp(name, "..")) continue;
        if (!*rel && (!strcmp(name, "lock.mdb") || !strcmp(name, "herald.lock"))) continue;
        char path[PATH_MAX], sub[HD_SNAPARC_MAX_PATH + 2];
        const char *why;
        int plen = snprintf(path, sizeof path, "%s/%s", dir, name);
        int slen = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name);
        struct stat st;
        if (plen < 0 || (size_t)plen >= sizeof path || slen < 0 ||
            !path_ok(sub, (size_t)slen, &why))
            rc =
                herald_fail(err, HERALD_EINVAL, "%s/%s: a name a snapshot cannot carry", dir, name);
        else if (lstat(path, &st) != 0)
            rc = herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = write_dir(w, path, sub, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = write_file(w, path, sub, err);
        else
            rc = herald_fail(err, HERALD_EINVAL, "%s is neither a file nor a folder", path);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int hd__snaparc_write(const char *dir, hd_snaparc_emit_fn emit, void *ctx, uint64_t *files,
                      herald_error *err)
{
    arc_writer w = {.emit = emit, .ctx = ctx, .err = err};
    if (files) *files = 0;
    if (!(w.buf = malloc(READ_CHUNK))) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = emit(ctx, (const uint8_t *)HD_SNAPARC_MAGIC, 8, err);
    if (!rc) rc = write_dir(&w, dir, "", 0);
    if (!rc) rc = emit(ctx, (const uint8_t *)"E", 1, err);
    free(w.buf);
    if (!rc && files) *files = w.files;
    return rc;
}

/* ---- Reading ---- */

void hd__snaparc_reader_init(hd_snaparc_reader *r, const hd_snaparc_sink *sink)
{
    *r = (hd_snaparc_reader){.state = ST_MAGIC, .need = 8};
    if (sink) r->sink = *sink;
}

static int corrupt(hd_snaparc_reader *r, herald_error *err, const char *what)
{
    return r->failed = herald_fail(err, HERALD_ECORRUPT, "snapshot archive, byte %llu: %s",
                                   (unsigned long long)r->offset, what);
}

static void expect(hd_snaparc_reader *r, int state, size_t need)
{
    r->state = state;
    r->have = 0;
    r->need = need;
}

/* The file whose data just ended: tells the sink, and expects the next tag. */
static int end_file(hd_snaparc_reader *r, herald_error *err)
{
    r->files++;
    expect(r, ST_TAG, 1);
    int rc = r->sink.end ? r->sink.end(r->sink.ctx, err) : 0;
    return rc ? (r->failed = rc) : 0;
}

/* A field is complete (r->head or r->path): acts on it. */
static int field_done(hd_snaparc_reader *r, herald_error *err)
{
    const char *why;
    switch (r->state) {
    case ST_MAGIC:
        if (memcmp(r->head, HD_SNAPARC_MAGIC, 8)) return corrupt(r, err, "not a snapshot archive");
        expect(r, ST_TAG, 1);
        return 0;
    case ST_TAG:
        if (r->head[0] == 'E') {
            expect(r, ST_DONE, 0);
            return 0;
        }
        if (r->head[0] != 'F') return corrupt(r, err, "unknown entry tag");
        expect(r, ST_PATH_LEN, 2);
        return 0;
    case ST_PATH_LEN: {
        size_t len = (size_t)get_be(r->head, 2);
        if (len == 0 || len > HD_SNAPARC_MAX_PATH) return corrupt(r, err, "bad path length");
        expect(r, ST_PATH, len);
        return 0;
    }
    case ST_PATH:
        r->path[r->need] = 0;
        if (!path_ok(r->path, r->need, &why)) {
            char msg[128];
            snprintf(msg, sizeof msg, "a path that %s", why);
            return corrupt(r, err, msg);
        }
        expect(r, ST_META, 12);
        return 0;
    case ST_META: {
        uint64_t mode = get_be(r->head, 4);
        r->left = get_be(r->head + 4, 8);
        if (mode & ~(uint64_t)0777) return corrupt(r, err, "a mode with more than permissions");
        int rc =
            r->sink.begin ? r->sink.begin(r->sink.ctx, r->path, (uint32_t)mode, r->left, err) : 0;
        if (rc) return r->failed = rc;
        expect(r, ST_DATA, 0);
        return r->left ? 0 : end_file(r, err);
    }
    }
    return corrupt(r, err, "reader state lost");
}

int hd__snaparc_feed(hd_snaparc_reader *r, const uint8_t *p, size_t n, herald_error *err)
{
    if (r->failed) return herald_fail(err, r->failed, "snapshot archive: read after an error");
    while (n) {
        if (r->state == ST_DONE) return corrupt(r, err, "bytes after the end");
        if (r->state == ST_DATA) {
            size_t take = r->left < n ? (size_t)r->left : n;
            int rc = r->sink.data ? r->sink.data(r->sink.ctx, p, take, err) : 0;
            if (rc) return r->failed = rc;
            r->left -= take;
            r->offset += take;
            p += take;
            n -= take;
            if (!r->left && (rc = end_file(r, err))) return rc;
            continue;
        }
        size_t take = r->need - r->have < n ? r->need - r->have : n;
        memcpy(r->state == ST_PATH ? (uint8_t *)r->path + r->have : r->head + r->have, p, take);
        r->have += take;
        p += take;
        n -= take;
        r->offset += take;
        if (r->have == r->need) {
            int rc = field_done(r, err);
            if (rc) return rc;
        }
    }
    return 0;
}

int hd__snaparc_finish(hd_snaparc_reader *r, herald_error *err)
{
    if (r->failed) return herald_fail(err, r->failed, "snapshot archive: read after an error");
    return r->state == ST_DONE ? 0 : corrupt(r, err, "cut short");
}

/* ---- Unpacking into a folder ---- */

struct hd_snaparc_unpack {
    int root; /* the folder unpacked into */
    int fd;   /* the file being written, or -1 */
    char path[HD_SNAPARC_MAX_PATH + 1];
    uint32_t mode;
    char **made; /* folders made (paths under root), fsynced at the end */
    size_t nmade;
    const char *root_path;
};

/* Opens (making it if needed) folder `name` in folder `at`; -1 with errno when it cannot. */
static int open_dir_at(int at, const char *name, bool *made)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT) return fd;
    if (mkdirat(at, name, 0700) != 0) return -1;
    *made = true;
    return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int remember_dir(hd_snaparc_unpack *u, const char *path, size_t len, herald_error *err)
{
    char **more = realloc(u->made, (u->nmade + 1) * sizeof *more);
    if (!more) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    u->made = more;
    if (!(u->made[u->nmade] = strndup(path, len)))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    u->nmade++;
    return 0;
}

static int unpack_begin(void *ctx, const char *path, uint32_t mode, uint64_t size,
                        herald_error *err)
{
    (void)size;
    hd_snaparc_unpack *u = ctx;
    snprintf(u->path, sizeof u->path, "%s", path);
    u->mode = mode;
    int dir = u->root, rc = 0;
    char name[HD_SNAPARC_MAX_PATH + 1];
    const char *p = path;
    for (const char *slash; !rc && (slash = strchr(p, '/')); p = slash + 1) {
        snprintf(name, sizeof name, "%.*s", (int)(slash - p), p);
        bool made = false;
        int next = open_dir_at(dir, name, &made);
        if (next < 0)
            rc = herald_fail(err, errno == ENOTDIR || errno == ELOOP ? HERALD_ECORRUPT : HERALD_EIO,
                             "snapshot: cannot make folder %.*s in %s: %s", (int)(slash - path),
                             path, u->root_path, strerror(errno));
        else if (made)
            rc = remember_dir(u, path, (size_t)(slash - path), err);
        if (dir != u->root) close(dir);
        dir = next;
    }
    if (!rc) {
        u->fd = openat(dir, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (u->fd < 0)
            rc = herald_fail(err, errno == EEXIST ? HERALD_ECORRUPT : HERALD_EIO,
                             "snapshot: cannot create %s in %s: %s", path, u->root_path,
                             errno == EEXIST ? "it comes twice" : strerror(errno));
    }
    if (dir >= 0 && dir != u->root) close(dir);
    return rc;
}

static int unpack_data(void *ctx, const uint8_t *p, size_t n, herald_error *err)
{
    hd_snaparc_unpack *u = ctx;
    while (n) {
        ssize_t w = write(u->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return herald_fail(err, HERALD_EIO, "snapshot: cannot write %s in %s: %s", u->path,
                               u->root_path, w < 0 ? strerror(errno) : "no space");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int unpack_end(void *ctx, herald_error *err)
{
    hd_snaparc_unpack *u = ctx;
    bool ok = fchmod(u->fd, u->mode) == 0 && fsync(u->fd) == 0;
    int e = errno;
    close(u->fd);
    u->fd = -1;
    return ok ? 0
              : herald_fail(err, HERALD_EIO, "snapshot: cannot sync %s in %s: %s", u->path,
                            u->root_path, strerror(e));
}

int hd__snaparc_unpack_open(const char *root, hd_snaparc_unpack **out, hd_snaparc_sink *sink,
                            herald_error *err)
{
    *out = NULL;
    hd_snaparc_unpack *u = calloc(1, sizeof *u);
    if (!u) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    u->fd = -1;
    u->root_path = root;
    u->root = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u->root < 0) {
        int e = errno;
        free(u);
        return herald_fail(err, HERALD_EIO, "cannot open %s: %s", root, strerror(e));
    }
    *sink = (hd_snaparc_sink){unpack_begin, unpack_data, unpack_end, u};
    *out = u;
    return 0;
}

int hd__snaparc_unpack_close(hd_snaparc_unpack *u, herald_error *err)
{
    if (!u) return 0;
    /* A file left open is one whose archive failed: nothing is synced then. */
    bool failed = u->fd >= 0;
    if (failed) close(u->fd);
    int rc = 0;
    for (size_t i = 0; i < u->nmade; i++) {
        if (!failed && !rc) {
            int fd = openat(u->root, u->made[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || fsync(fd) != 0)
                rc = herald_fail(err, HERALD_EIO, "cannot sync %s in %s: %s", u->made[i],
                                 u->root_path, strerror(errno));
            if (fd >= 0) close(fd);
        }
        free(u->made[i]);
    }
    if (!failed && !rc && fsync(u->root) != 0)
        rc = herald_fail(err, HERALD_EIO, "cannot sync %s: %s", u->root_path, strerror(errno));
    close(u->root);
    free(u->made);
    free(u);
    return rc;
}

static int sync_dir(const char *dir, herald_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && fsync(fd) == 0) return close(fd), 0;
    int e = errno;
    if (fd >= 0) close(fd);
    return herald_fail(err, HERALD_EIO, "cannot sync %s: %s", dir, strerror(e));
}

int hd__snaparc_target(const char *dest, char *target, size_t size, herald_error *err)
{
    size_t len = strlen(dest);
    for (; len > 1 && dest[len - 1] == '/'; len--) {
    }
    if (len == 0 || len >= size) return herald_fail(err, HERALD_EINVAL, "give a new folder's name");
    snprintf(target, size, "%.*s", (int)len, dest);
    struct stat st;
    if (lstat(target, &st) == 0)
        return herald_fail(err, HERALD_EINVAL, "%s exists (give a new folder)", target);
    return errno == ENOENT ? 0 : herald_fail(err, HERALD_EIO, "%s: %s", target, strerror(errno));
}

int hd__snaparc_place(const char *tmp, const char *target, herald_error *err)
{
    int rc = sync_dir(tmp, err);
    if (rc) return rc;
    if (rename(tmp, target) != 0)
        return herald_fail(err, errno == EEXIST || errno == ENOTEMPTY ? HERALD_EINVAL : HERALD_EIO,
                           "cannot rename %s to %s: %s", tmp, target, strerror(errno));
    /* The rename is durable once the folder holding `target` is synced. */
    const char *slash = strrchr(target, '/');
    char parent[PATH_MAX];
    int len = !slash ? 0 : slash == target ? 1 : (int)(slash - target);
    snprintf(parent, sizeof parent, "%.*s", len ? len : 1, len ? target : ".");
    return sync_dir(parent, err);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void hd__snaparc_remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
