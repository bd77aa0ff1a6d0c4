/*
 * Hot backups (backup.h): a compacted copy of the database from one
 * snapshot, the stored files that snapshot names, and the folder's secrets,
 * made in a temporary folder and renamed into place once all is durable.
 *
 * It must never write to the source folder nor take its writer lock: the
 * source is read through a read-only store, beside a server that keeps
 * committing. It never leaves a folder at `dest` that is not a whole backup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adminkey.h"
#include "backup.h"
#include "blobs.h"
#include "dump.h"
#include "store_priv.h"

#define STORAGE "_storage"
/* Snapshots taken before giving up on a source whose files keep being deleted. */
#define MAX_ATTEMPTS 10
/* The secrets are small; anything larger is not what Herald wrote. */
#define MAX_SECRET 4096

typedef char blob_id[HERALD_ID_CHARS + 1];

typedef struct backup_ctx {
    char from[PATH_MAX];    /* the source's files folder */
    char to[PATH_MAX + 32]; /* the temporary backup's files folder */
    uint8_t *buf;
    blob_id *ids; /* the rows of the snapshot being completed */
    size_t nids, cap;
    blob_id *missing; /* those of its rows whose file went before it could be copied */
    size_t nmissing, missing_cap;
    hd_backup_info *info;
    herald_error *err;
} backup_ctx;

static int sync_path(const char *path, herald_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    return ok ? 0 : herald_fail(err, HERALD_EIO, "cannot sync %s: %s", path, strerror(errno));
}

/* 0 when `dir` does not exist or is an empty folder. */
static int check_target(const char *dir, herald_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return herald_fail(err, errno == ENOTDIR ? HERALD_EINVAL : HERALD_EIO, "%s: %s", dir,
                           errno == ENOTDIR ? "not a folder" : strerror(errno));
    }
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty ? 0
                 : herald_fail(err, HERALD_EINVAL,
                               "%s is not empty (give a new or empty folder; nothing was written)",
                               dir);
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Removes the regular files of `dir`; `keep` (sorted, may be NULL) names those to leave. */
static void remove_files(const char *dir, const blob_id *keep, size_t nkeep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[PATH_MAX + 320];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, ".."))) continue;
        if (keep && strlen(e->d_name) == HERALD_ID_CHARS &&
            bsearch(e->d_name, keep, nkeep, sizeof *keep, compare_ids))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) unlink(path);
    }
    closedir(d);
}

/* Takes away a backup folder (an unfinished one, too): its files, then the folder. */
void hd__backup_remove(const char *dir)
{
    char files[PATH_MAX + 48];
    snprintf(files, sizeof files, "%s/files", dir);
    remove_files(files, NULL, 0);
    rmdir(files);
    remove_files(dir, NULL, 0);
    rmdir(dir);
}

static int push_id(blob_id **v, size_t *n, size_t *cap, const char *id, herald_error *err)
{
    if (*n == *cap) {
        size_t more = *cap ? 2 * *cap : 256;
        void *p = realloc(*v, more * sizeof **v);
        if (!p) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        *v = p;
        *cap = more;
    }
    snprintf((*v)[(*n)++], sizeof **v, "%s", id);
    return 0;
}

/* Copies the file of one row of the snapshot, unless an earlier attempt did. */
static int copy_row(void *ctx, const herald_value *doc)
{
    backup_ctx *c = ctx;
    hd_blob_row r;
    int rc = hd__blob_row_of(doc, &r, c->err);
    if (rc) return rc;
    char from[PATH_MAX], to[PATH_MAX];
    if (!hd__blob_path(c->from, r.id, from, sizeof from) ||
        !hd__blob_path(c->to, r.id, to, sizeof to))
        return herald_fail(c->err, HERALD_EINVAL, "`%.64s` is not a storage id", r.id);
    if ((rc = push_id(&c->ids, &c->nids, &c->cap, r.id, c->err))) return rc;
    struct stat st;
    if (lstat(to, &st) == 0) return 0; /* stored files never change: the copy is good */
    hd_blob_writer w;
    herald_error copy_err = {0};
    rc = hd__blob_copy(from, &r, c->to, c->buf, &w, &copy_err);
    /* Deleted since the snapshot, most likely: confirmed once the scan is done. */
    if (rc == HERALD_ENOTFOUND)
        return push_id(&c->missing, &c->nmissing, &c->missing_cap, r.id, c->err);
    if (rc) {
        if (c->err) *c->err = copy_err;
        return rc;
    }
    if (rename(w.path, to) != 0) {
        rc = herald_fail(c->err, HERALD_EIO, "cannot rename %s to %s: %s", w.path, to,
                         strerror(errno));
        unlink(w.path);
        return rc;
    }
    return 0;
}

/*
 * The rows whose file was missing must be gone from a snapshot of the source
 * begun after that: a row's file is there before the row commits and stays
 * until its deletion is durable, so a row that still exists had its file
 * when it was found missing, unless the folder is damaged.
 */
static int confirm_deleted(herald_store *s, backup_ctx *c)
{
    herald_txn *t = NULL;
    int rc = herald_read_begin(s, &t, c->err);
    for (size_t i = 0; !rc && i < c->nmissing; i++) {
        herald_value doc;
        herald_error get_err = {0};
        int got = herald_get(t, STORAGE, c->missing[i], &doc, NULL, &get_err);
        if (got == 0) {
            herald_value_free(&doc);
            rc = herald_fail(c->err, HERALD_ECORRUPT,
                             "`_storage` row %s has no file in %s (see `herald check`)",
                             c->missing[i], c->from);
        } else if (got != HERALD_ENOTFOUND) {
            if (c->err) *c->err = get_err;
            rc = got;
        }
    }
    herald_txn_end(t);
    return rc;
}

/*
 * One attempt: copies the database into `tmp`, then the files its
 * `_storage` rows name (those not copied yet), and removes the files it
 * does not name. c->missing counts the rows whose file had gone.
 */
static int copy_snapshot(herald_store *s, const char *tmp, backup_ctx *c)
{
    herald_error *err = c->err;
    char path[PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/data.mdb", tmp);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return herald_fail(err, HERALD_EIO, "cannot create %s: %s", path, strerror(errno));
    int rc = herald_store_copy(s, fd, err);
    if (!rc && fsync(fd) != 0)
        rc = herald_fail(err, HERALD_EIO, "cannot sync %s: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;
    /* Opened as a data folder of its own (nobody else knows it yet): its
     * lock files are made, so that `herald check` can read it as it is. */
    herald_store *copy;
    herald_store_options so = {.owner = "herald backup"};
    if ((rc = herald_store_open(tmp, &so, &copy, err))) return rc;
    herald_txn *t = NULL;
    c->nids = 0;
    c->nmissing = 0;
    if (!(rc = herald_read_begin(copy, &t, err))) {
        c->info->version = herald_txn_version(t);
        if (hd__table_by_name(copy, STORAGE)) rc = herald_table_scan(t, STORAGE, copy_row, c, err);
    }
    herald_txn_end(t);
    herald_store_close(copy);
    if (rc) return rc;
    if (c->nids) qsort(c->ids, c->nids, sizeof *c->ids, compare_ids);
    remove_files(c->to, c->ids, c->nids);
    return c->nmissing ? confirm_deleted(s, c) : 0;
}

/* Reads secret file `name` of `dir` into `buf` (*len bytes); *len = SIZE_MAX when absent. */
static int read_secret(const char *dir, const char *name, uint8_t buf[MAX_SECRET], size_t *len,
                       herald_error *err)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *len = SIZE_MAX;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT
                   ? 0
                   : herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, MAX_SECRET);
    close(fd);
    if (n < 0) return herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
    if (n == MAX_SECRET) return herald_fail(err, HERALD_ECORRUPT, "%s is too large", path);
    *len = (size_t)n;
    return 0;
}

/* Writes secret `name` into `dir`, mode 0600 from the start, and fsyncs it. */
static int write_secret(const char *dir, const char *name, const uint8_t *p, size_t len,
                        herald_error *err)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok =
        fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, p, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    return ok ? 0 : herald_fail(err, HERALD_EIO, "cannot write %s: %s", path, strerror(e));
}

/* Whether admin key file contents `key` ("hk_...\n") hash to the 32 bytes of `hash`. */
static bool admin_pair_matches(const uint8_t *key, size_t key_len, const uint8_t *hash,
                               size_t hash_len)
{
    if (key_len == SIZE_MAX || hash_len != 32) return key_len == SIZE_MAX && hash_len == SIZE_MAX;
    while (key_len && (key[key_len - 1] == '\n' || key[key_len - 1] == '\r'))
        key_len--;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(key, key_len, digest);
    bool same = CRYPTO_memcmp(digest, hash, 32) == 0;
    OPENSSL_cleanse(digest, sizeof digest);
    return same;
}

/*
 * The storage key and the admin key pair. `herald admin-key` replaces the
 * key, then its hash: read while it runs, the two may be of different keys,
 * so they are read again until they agree (a few times; a folder whose pair
 * disagrees on disk is copied as it is).
 */
static int copy_secrets(const char *from, const char *to, herald_error *err)
{
    uint8_t *key = malloc(MAX_SECRET), *hash = malloc(MAX_SECRET);
    size_t key_len, hash_len;
    int rc = key && hash ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc && !(rc = read_secret(from, "storage.key", key, &key_len, err)) && key_len != SIZE_MAX)
        rc = write_secret(to, "storage.key", key, key_len, err);
    for (int i = 0; !rc && i < 5; i++) {
        if ((rc = read_secret(from, HD_ADMINKEY_FILE, key, &key_len, err)) ||
            (rc = read_secret(from, HD_ADMINKEY_HASH_FILE, hash, &hash_len, err)))
            break;
        if (admin_pair_matches(key, key_len, hash, hash_len)) break;
    }
    if (!rc && key_len != SIZE_MAX) rc = write_secret(to, HD_ADMINKEY_FILE, key, key_len, err);
    if (!rc && hash_len != SIZE_MAX)
        rc = write_secret(to, HD_ADMINKEY_HASH_FILE, hash, hash_len, err);
    if (key) OPENSSL_cleanse(key, MAX_SECRET);
    free(key);
    free(hash);
    return rc;
}

/* The folder that holds `path` (for the fsync that makes its rename durable). */
static void parent_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = 0;
    else
        *slash = 0;
}

int hd__backup(herald_store *s, const char *data_dir, const char *dest, hd_backup_info *info,
               herald_error *err)
{
    *info = (hd_backup_info){0};
    char target[PATH_MAX], tmp[PATH_MAX + 16], files[PATH_MAX + 32], parent[PATH_MAX];
    size_t len = strlen(dest);
    while (len > 1 && dest[len - 1] == '/')
        len--;
    if (len == 0 || len >= sizeof target)
        return herald_fail(err, HERALD_EINVAL, "give the backup a folder name");
    memcpy(target, dest, len);
    target[len] = 0;
    int rc = check_target(target, err);
    if (rc) return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", target);
    if (!mkdtemp(tmp))
        return herald_fail(err, HERALD_EIO, "cannot create %s: %s", tmp, strerror(errno));
    snprintf(files, sizeof files, "%s/files", tmp);
    backup_ctx c = {.info = info, .err = err};
    snprintf(c.from, sizeof c.from, "%s/files", data_dir);
    snprintf(c.to, sizeof c.to, "%s", files);
    if (mkdir(files, 0700) != 0)
        rc = herald_fail(err, HERALD_EIO, "cannot create %s: %s", files, strerror(errno));
    if (!rc && !(c.buf = malloc(HD_BLOB_COPY_CHUNK)))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    while (!rc) {
        info->attempts++;
        if ((rc = copy_snapshot(s, tmp, &c)) || c.nmissing == 0) break;
        if (info->attempts == MAX_ATTEMPTS)
            rc = herald_fail(err, HERALD_EBUSY,
                             "stored files were deleted faster than they could be copied (%d "
                             "snapshots tried); try again when fewer files are being deleted",
                             MAX_ATTEMPTS);
    }
    /* What the backup holds, files of earlier attempts included. */
    for (size_t i = 0; !rc && i <= c.nids; i++) {
        struct stat st;
        char path[PATH_MAX + 64];
        if (i < c.nids)
            snprintf(path, sizeof path, "%s/%s", files, c.ids[i]);
        else
            snprintf(path, sizeof path, "%s/data.mdb", tmp);
        if (lstat(path, &st) != 0)
            rc = herald_fail(err, HERALD_EIO, "%s went missing: %s", path, strerror(errno));
        else
            info->bytes += (uint64_t)st.st_size;
    }
    if (!rc) info->files = c.nids;
    free(c.buf);
    free(c.ids);
    free(c.missing);
    if (!rc) rc = copy_secrets(data_dir, tmp, err);
    if (!rc) rc = sync_path(files, err);
    if (!rc) rc = sync_path(tmp, err);
    if (!rc && rename(tmp, target) != 0)
        rc = herald_fail(err, errno == ENOTEMPTY || errno == EEXIST ? HERALD_EINVAL : HERALD_EIO,
                         "cannot rename %s to %s: %s", tmp, target, strerror(errno));
    if (rc) {
        hd__backup_remove(tmp);
        return rc;
    }
    parent_of(target, parent, sizeof parent);
    return sync_path(parent, err);
}
