/*
 * Stored files and their URL tokens (blobs.h, docs/storage.md "Files").
 *
 * A file is received into DATA/files/.tmp-<random> while its SHA-256 is
 * computed, fsynced, and renamed to DATA/files/<id> by the writer, inside
 * the mutation that inserts its `_storage` row and before that mutation
 * commits: a committed row always has its bytes. Ids are checked to be
 * Herald ids (32 characters of base32) before they become a file name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adminkey.h"
#include "base64.h"
#include "blobs.h"
#include "buf.h"

#define TMP_PREFIX  ".tmp-"
#define FLUSH_EVERY ((uint64_t)1 << 20)

int hd__blobs_dir(const char *data_dir, char *out, size_t n, herald_error *err)
{
    if ((size_t)snprintf(out, n, "%s/files", data_dir) >= n)
        return herald_fail(err, HERALD_EINVAL, "the data folder's path is too long");
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return herald_fail(err, HERALD_EIO, "cannot make %s: %s", out, strerror(errno));
    return 0;
}

/* Whether `id` can name a file: a Herald id's 32 characters of lowercase base32. */
static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n != HERALD_ID_CHARS) return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z'))) return false;
    return true;
}

bool hd__blob_path(const char *dir, const char *id, char *out, size_t n)
{
    return id_ok(id) && (size_t)snprintf(out, n, "%s/%s", dir, id) < n;
}

int hd__blob_begin(const char *dir, hd_blob_writer *w, herald_error *err)
{
    uint8_t rnd[12];
    hd_buf name = HD_BUF_INIT;
    w->fd = -1;
    w->size = w->flushed = 0;
    w->sha = NULL;
    if (RAND_bytes(rnd, sizeof rnd) != 1) return herald_fail(err, HERALD_ESTORE, "no randomness");
    hd__base64_encode(&name, rnd, sizeof rnd, true);
    hd__buf_byte(&name, 0);
    int len = name.failed ? -1
                          : snprintf(w->path, sizeof w->path, "%s/" TMP_PREFIX "%s", dir,
                                     (char *)name.p);
    hd__buf_free(&name);
    if (len < 0 || (size_t)len >= sizeof w->path)
        return herald_fail(err, HERALD_EINVAL, "the files folder's path is too long");
    if (!(w->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(w->sha);
        w->sha = NULL;
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        EVP_MD_CTX_free(w->sha);
        w->sha = NULL;
        herald_fail(err, HERALD_EIO, "cannot create %s: %s", w->path, strerror(errno));
        w->path[0] = 0;
        return err ? err->code : HERALD_EIO;
    }
    return 0;
}

int hd__blob_write(hd_blob_writer *w, const void *p, size_t n, herald_error *err)
{
    const uint8_t *b = p;
    EVP_DigestUpdate(w->sha, p, n);
    w->size += n;
    while (n) {
        ssize_t k = write(w->fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return herald_fail(err, errno == ENOSPC ? HERALD_EMAPFULL : HERALD_EIO,
                               "cannot write the file: %s", strerror(errno));
        b += k;
        n -= (size_t)k;
    }
    /* Start the writeback of each MiB as it arrives (no waiting): the fsync that makes the
     * file durable, in the writer before its row commits, then has little left to do. */
    if (w->size - w->flushed >= FLUSH_EVERY) {
        sync_file_range(w->fd, (off64_t)w->flushed, (off64_t)(w->size - w->flushed),
                        SYNC_FILE_RANGE_WRITE);
        w->flushed = w->size;
    }
    return 0;
}

int hd__blob_finish(hd_blob_writer *w, char sha256[65], herald_error *err)
{
    uint8_t d[32];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(w->sha, d, &dn);
    EVP_MD_CTX_free(w->sha);
    w->sha = NULL;
    for (int i = 0; i < 32; i++)
        snprintf(sha256 + 2 * i, 3, "%02x", d[i]);
    int rc = close(w->fd) == 0 ? 0 : herald_fail(err, HERALD_EIO, "cannot close the file");
    w->fd = -1;
    return rc;
}

void hd__blob_abort(hd_blob_writer *w)
{
    EVP_MD_CTX_free(w->sha);
    w->sha = NULL;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->path[0]) unlink(w->path);
    w->path[0] = 0;
}

/* Syncs the folder holding `path` (a rename or an unlink in it). */
static int sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0) close(fd);
    return rc;
}

int hd__blob_place(const char *tmp, const char *id, herald_error *err)
{
    char dir[PATH_MAX], path[PATH_MAX + 40];
    snprintf(dir, sizeof dir, "%s", tmp);
    char *slash = strrchr(dir, '/');
    if (!slash) return herald_fail(err, HERALD_EINVAL, "no folder in %s", tmp);
    *slash = 0;
    if (!hd__blob_path(dir, id, path, sizeof path))
        return herald_fail(err, HERALD_EINVAL, "`%.64s` is not a storage id", id);
    if (rename(tmp, path) != 0 || sync_dir_of(path) != 0)
        return herald_fail(err, HERALD_EIO, "cannot store the file %s: %s", path, strerror(errno));
    return 0;
}

void hd__blob_remove(const char *dir, const char *id)
{
    char path[PATH_MAX];
    if (hd__blob_path(dir, id, path, sizeof path) && unlink(path) == 0) sync_dir_of(path);
}

int hd__blobs_sweep(herald_store *s, const char *dir, size_t *removed, herald_error *err)
{
    *removed = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : herald_fail(err, HERALD_EIO, "cannot read %s", dir);
    herald_txn *t;
    int rc = herald_read_begin(s, &t, err);
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        bool tmp = !strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX));
        bool orphan = false;
        if (!tmp && id_ok(e->d_name)) {
            herald_value doc;
            herald_error ge = {0};
            int g = herald_get(t, "_storage", e->d_name, &doc, NULL, &ge);
            if (g == 0) herald_value_free(&doc);
            orphan = g == HERALD_ENOTFOUND || g == HERALD_EINVAL;
        }
        if (!tmp && !orphan) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) (*removed)++;
    }
    if (!rc) herald_txn_end(t);
    closedir(d);
    if (!rc && *removed) sync_dir_of(dir);
    return rc;
}

/* ---- tokens ---- */

int hd__blob_key(const char *data_dir, uint8_t key[HD_BLOB_KEY_BYTES], herald_error *err)
{
    return hd__secret_file(data_dir, "storage.key", key, HD_BLOB_KEY_BYTES, err);
}

static void mac(const uint8_t key[HD_BLOB_KEY_BYTES], const void *data, size_t n,
                uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, HD_BLOB_KEY_BYTES, data, n, out, &len);
}

static void b64url(const uint8_t *p, size_t n, char *out, size_t cap)
{
    hd_buf b = HD_BUF_INIT;
    hd__base64_encode(&b, p, n, true);
    snprintf(out, cap, "%.*s", b.failed ? 0 : (int)b.len, b.failed ? "" : (char *)b.p);
    hd__buf_free(&b);
}

/* Decodes exactly `n` bytes of base64url; false otherwise. */
static bool unb64url(const char *s, uint8_t *out, size_t n)
{
    hd_buf b = HD_BUF_INIT;
    bool ok = hd__base64_decode(&b, s, strlen(s), true) && b.len == n;
    if (ok) memcpy(out, b.p, n);
    hd__buf_free(&b);
    return ok;
}

int hd__upload_token(const uint8_t key[HD_BLOB_KEY_BYTES], double expires,
                     char out[HD_UPLOAD_TOKEN_CHARS + 1])
{
    uint8_t raw[1 + 8 + 16 + 32];
    raw[0] = 'u';
    uint64_t e = (uint64_t)expires;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)(e >> (56 - 8 * i));
    if (RAND_bytes(raw + 9, 16) != 1) return HERALD_ESTORE;
    mac(key, raw, 25, raw + 25);
    b64url(raw + 1, 8 + 16 + 16, out, HD_UPLOAD_TOKEN_CHARS + 1);
    return 0;
}

bool hd__upload_token_ok(const uint8_t key[HD_BLOB_KEY_BYTES], const char *token, double now,
                         char nonce_hex[33])
{
    uint8_t raw[1 + 8 + 16 + 16], want[32];
    raw[0] = 'u';
    if (strlen(token) != HD_UPLOAD_TOKEN_CHARS || !unb64url(token, raw + 1, 40)) return false;
    mac(key, raw, 25, want);
    if (CRYPTO_memcmp(want, raw + 25, 16) != 0) return false;
    uint64_t e = 0;
    for (int i = 0; i < 8; i++)
        e = e << 8 | raw[1 + i];
    if ((double)e < now) return false;
    for (int i = 0; i < 16; i++)
        snprintf(nonce_hex + 2 * i, 3, "%02x", raw[9 + i]);
    return true;
}

void hd__read_token(const uint8_t key[HD_BLOB_KEY_BYTES], const char *id,
                    char out[HD_READ_TOKEN_CHARS + 1])
{
    uint8_t data[1 + HERALD_ID_CHARS], m[32];
    size_t n = strlen(id);
    if (n > HERALD_ID_CHARS) n = HERALD_ID_CHARS;
    data[0] = 'r';
    memcpy(data + 1, id, n);
    mac(key, data, 1 + n, m);
    b64url(m, 24, out, HD_READ_TOKEN_CHARS + 1);
}

bool hd__read_token_ok(const uint8_t key[HD_BLOB_KEY_BYTES], const char *id, const char *token)
{
    char want[HD_READ_TOKEN_CHARS + 1];
    if (!id_ok(id) || strlen(token) != HD_READ_TOKEN_CHARS) return false;
    hd__read_token(key, id, want);
    return CRYPTO_memcmp(want, token, HD_READ_TOKEN_CHARS) == 0;
}

/* ---- request headers ---- */

int hd__range_parse(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (strncmp(h, "bytes=", 6) || strchr(h, ',')) return -1;
    const char *p = h + 6, *dash = strchr(p, '-');
    if (!dash) return -1;
    char *end;
    if (dash == p) {
        unsigned long long nlast = strtoull(dash + 1, &end, 10);
        if (*end || end == dash + 1) return -1;
        if (nlast == 0 || size == 0) return 1;
        *from = nlast >= size ? 0 : size - nlast;
        *to = size - 1;
        return 0;
    }
    unsigned long long a = strtoull(p, &end, 10);
    if (end != dash) return -1;
    unsigned long long b = size ? size - 1 : 0;
    if (dash[1]) {
        b = strtoull(dash + 1, &end, 10);
        if (*end) return -1;
        if (b < a) return -1;
        if (size && b >= size) b = size - 1;
    }
    if (a >= size) return 1;
    *from = a;
    *to = b;
    return 0;
}

/* A media type as RFC 9110 writes it: type "/" subtype, then parameters; printable ASCII. */
bool hd__media_type_ok(const char *t)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    size_t i = 0, slash = 0;
    for (; t[i] && t[i] != ';'; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == '/' && !slash && i > 0) {
            slash = i;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr(tchar, ch)))
            return false;
    }
    if (!slash || slash + 1 >= i) return false;
    for (; t[i]; i++)
        if ((unsigned char)t[i] < 32 || (unsigned char)t[i] > 126) return false;
    return true;
}
