/*
 * The admin key of a data folder: made here, written to a file only its
 * owner can read, and kept by the server as a SHA-256 (adminkey.h).
 *
 * This module must never write the key to stdout, stderr or a log, and
 * never create a file that others can read, even for a moment: both files
 * are created with mode 0600 from the start (O_CREAT's mode, which the
 * umask can only narrow), under a temporary name, then fsynced and renamed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adminkey.h"

#define KEY_BYTES 32

/* Writes `len` bytes to a new file `tmp` (mode 0600) and fsyncs it; -1 with errno on failure. */
static int temp_write(const char *tmp, const void *data, size_t len)
{
    /* A temporary file left by a crash is replaced, never written through: O_EXCL after
     * unlink, and O_NOFOLLOW so that a planted symlink cannot redirect the key. */
    if (unlink(tmp) != 0 && errno != ENOENT) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    const unsigned char *p = data;
    bool ok = true;
    while (ok && len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) {
            p += n;
            len -= (size_t)n;
        }
    }
    ok = ok && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0) ok = false;
    if (!ok) {
        unlink(tmp);
        errno = saved ? saved : EIO;
        return -1;
    }
    return 0;
}

/* Makes a key ("hk_" + base64url without padding) in `key`; false when there is no randomness. */
static bool key_make(char key[64])
{
    unsigned char raw[KEY_BYTES], b64[64];
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    /* Encoded on the stack rather than in a growing buffer, which would leave copies behind. */
    int n = EVP_EncodeBlock(b64, raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    size_t len = 3;
    memcpy(key, "hk_", 3);
    for (int i = 0; i < n && b64[i] != '='; i++)
        key[len++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    key[len] = 0;
    OPENSSL_cleanse(b64, sizeof b64);
    return true;
}

int hd__adminkey_new(const char *data_dir, char *path, size_t path_size, unsigned char hash[32],
                     herald_error *err)
{
    char key_path[PATH_MAX + 32], hash_path[PATH_MAX + 32], key_tmp[PATH_MAX + 40],
        hash_tmp[PATH_MAX + 40], line[80];
    char dir[PATH_MAX];
    int rc = 0;
    /* The path is shown to the user: absolute, so that it can be found from anywhere. */
    if (!realpath(data_dir, dir)) snprintf(dir, sizeof dir, "%s", data_dir);
    snprintf(key_path, sizeof key_path, "%s/" HD_ADMINKEY_FILE, dir);
    snprintf(hash_path, sizeof hash_path, "%s/" HD_ADMINKEY_HASH_FILE, dir);
    snprintf(key_tmp, sizeof key_tmp, "%s.tmp", key_path);
    snprintf(hash_tmp, sizeof hash_tmp, "%s.tmp", hash_path);

    char key[64];
    if (!key_make(key)) return herald_fail(err, HERALD_ESTORE, "no randomness for the admin key");
    size_t key_len = strlen(key);
    SHA256((const unsigned char *)key, key_len, hash);
    snprintf(line, sizeof line, "%s\n", key);
    OPENSSL_cleanse(key, sizeof key);

    const char *failed = NULL;
    if (temp_write(key_tmp, line, key_len + 1) != 0)
        failed = key_path;
    else if (temp_write(hash_tmp, hash, 32) != 0)
        failed = hash_path;
    OPENSSL_cleanse(line, sizeof line);
    if (failed) goto fail;
    /* The key first: a crash between the renames leaves the old hash and a new key file,
     * which the next `herald admin-key` or deleting the hash repairs; never a hash
     * whose key exists nowhere. */
    if (rename(key_tmp, key_path) != 0) {
        failed = key_path;
        goto fail;
    }
    if (rename(hash_tmp, hash_path) != 0) {
        failed = hash_path;
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) failed = dir;
    if (dfd >= 0) close(dfd);
    if (failed) goto fail;
    snprintf(path, path_size, "%s", key_path);
    return 0;
fail:
    rc = herald_fail(err, HERALD_EIO, "cannot write %s: %s", failed, strerror(errno));
    unlink(key_tmp);
    unlink(hash_tmp);
    OPENSSL_cleanse(hash, 32);
    return rc;
}

int hd__adminkey_hash_read(const char *data_dir, unsigned char hash[32], herald_error *err)
{
    char path[PATH_MAX + 32];
    unsigned char buf[33];
    snprintf(path, sizeof path, "%s/" HD_ADMINKEY_HASH_FILE, data_dir);
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT) return herald_fail(err, HERALD_ENOTFOUND, "%s does not exist", path);
    /* Unreadable is not absent: a new key must not replace one we merely cannot read. */
    if (!f) return herald_fail(err, HERALD_EIO, "cannot read %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n != 32)
        return herald_fail(err, HERALD_ECORRUPT, "%s is damaged; delete it to make a new key",
                           path);
    memcpy(hash, buf, 32);
    return 0;
}

int hd__secret_file(const char *data_dir, const char *name, unsigned char *out, size_t n,
                    herald_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t got = fread(out, 1, n, f);
        int extra = fgetc(f);
        fclose(f);
        if (got != n || extra != EOF)
            return herald_fail(err, HERALD_ECORRUPT, "%s is not %zu bytes", path, n);
        return 0;
    }
    if (errno != ENOENT) return herald_fail(err, HERALD_EIO, "%s: %s", path, strerror(errno));
    if (RAND_bytes(out, (int)n) != 1) return herald_fail(err, HERALD_ESTORE, "no randomness");
    if (temp_write(tmp, out, n) != 0 || rename(tmp, path) != 0)
        return herald_fail(err, HERALD_EIO, "cannot write %s: %s", path, strerror(errno));
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool synced = dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0) close(dfd);
    if (!synced) return herald_fail(err, HERALD_EIO, "cannot sync %s: %s", data_dir, strerror(errno));
    return 0;
}
