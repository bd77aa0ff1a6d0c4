/*
 * The file storage's tokens and names (src/blobs.c): an upload token holds
 * until it expires and only as written; a read token opens only its own id;
 * a name that is not an id is never a path; a file written and placed is
 * its bytes under its id, and an aborted one leaves nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs.h"
#include "check.h"

int main(void)
{
    uint8_t key[HD_BLOB_KEY_BYTES], other[HD_BLOB_KEY_BYTES];
    for (int i = 0; i < HD_BLOB_KEY_BYTES; i++) {
        key[i] = (uint8_t)i;
        other[i] = (uint8_t)(i + 1);
    }
    char up[HD_UPLOAD_TOKEN_CHARS + 1], nonce[33], nonce2[33];
    CHECK_OK(hd__upload_token(key, 2000.0, up));
    CHECK(strlen(up) == HD_UPLOAD_TOKEN_CHARS);
    CHECK(hd__upload_token_ok(key, up, 1999.0, nonce));
    CHECK(strlen(nonce) == 32);
    CHECK(!hd__upload_token_ok(key, up, 2001.0, nonce2)); /* expired */
    CHECK(!hd__upload_token_ok(other, up, 1000.0, nonce2)); /* another folder's key */
    /* Every single-character change is refused. */
    for (size_t i = 0; i < HD_UPLOAD_TOKEN_CHARS; i++) {
        char t[HD_UPLOAD_TOKEN_CHARS + 1];
        memcpy(t, up, sizeof t);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        CHECK(!hd__upload_token_ok(key, t, 1000.0, nonce2));
    }
    CHECK(!hd__upload_token_ok(key, "", 0, nonce2));
    CHECK(!hd__upload_token_ok(key, "short", 0, nonce2));
    /* Two tokens, two nonces. */
    char up2[HD_UPLOAD_TOKEN_CHARS + 1];
    CHECK_OK(hd__upload_token(key, 2000.0, up2));
    CHECK(hd__upload_token_ok(key, up2, 0, nonce2) && strcmp(nonce, nonce2) != 0);

    const char *id = "000000jzv38xy0x5jpjn9mczpaqyxbpj", *id2 = "000000jzv38xy0x5jpjn9mczpaqyxbpk";
    char rt[HD_READ_TOKEN_CHARS + 1];
    hd__read_token(key, id, rt);
    CHECK(strlen(rt) == HD_READ_TOKEN_CHARS);
    CHECK(hd__read_token_ok(key, id, rt));
    CHECK(!hd__read_token_ok(key, id2, rt));
    CHECK(!hd__read_token_ok(other, id, rt));
    CHECK(!hd__read_token_ok(key, "../admin.key", rt));

    char path[400];
    CHECK(hd__blob_path("/d", id, path, sizeof path) && !strcmp(path, "/d/000000jzv38xy0x5jpjn9mczpaqyxbpj"));
    CHECK(!hd__blob_path("/d", "../../etc/passwd", path, sizeof path));
    CHECK(!hd__blob_path("/d", "000000JZV38XY0X5JPJN9MCZPAQYXBPJ", path, sizeof path));
    CHECK(!hd__blob_path("/d", ".tmp-xyz", path, sizeof path));

    /* A file written, finished and placed; an aborted one leaves nothing. */
    char dir[] = "/tmp/herald-blobs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char files[300];
    herald_error err = {0};
    CHECK_OK(hd__blobs_dir(dir, files, sizeof files, &err));
    hd_blob_writer w;
    CHECK_OK(hd__blob_begin(files, &w, &err));
    CHECK_OK(hd__blob_write(&w, "abc", 3, &err));
    char sha[65];
    CHECK_OK(hd__blob_finish(&w, sha, &err));
    CHECK(!strcmp(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK_OK(hd__blob_place(w.path, id, &err));
    snprintf(path, sizeof path, "%s/%s", files, id);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 3);
    hd_blob_writer a;
    CHECK_OK(hd__blob_begin(files, &a, &err));
    char tmp[sizeof a.path];
    memcpy(tmp, a.path, sizeof tmp);
    CHECK_OK(hd__blob_write(&a, "xyz", 3, &err));
    hd__blob_abort(&a);
    CHECK(stat(tmp, &st) != 0);
    hd__blob_remove(files, id);
    CHECK(stat(path, &st) != 0);
    CHECK(rmdir(files) == 0 && rmdir(dir) == 0);
    CHECK_DONE();
}
