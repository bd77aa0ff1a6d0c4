/*
 * Fuzz target for what file storage reads from a client (src/blobs.c):
 * the Range and Content-Type headers of its requests, and the tokens and
 * ids in its URLs. The first byte picks which; the rest is the text.
 *
 * A range that is accepted lies inside the file; an accepted media type
 * has a type and a subtype; an upload token is accepted only if it is one
 * this key made and has not expired, and gives a 32-hex-digit nonce; a read
 * token opens only its own id, and an id becomes a path only if it is 32
 * lowercase base32 characters (no `/`, no `.`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_storage: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    static const uint8_t key[HD_BLOB_KEY_BYTES] = {1, 2, 3};
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    switch (data[0] % 4) {
    case 0: {
        /* The file's size from the text's length, so that every size gets tried. */
        uint64_t fsize = (uint64_t)(size * 37 % 1000), from = 7, to = 7;
        int rc = hd__range_parse(text, fsize, &from, &to);
        if (rc == 0 && !(from <= to && to < fsize)) fail("an accepted range lies outside the file");
        if (rc != 0 && rc != 1 && rc != -1) fail("a range parse result out of its set");
        break;
    }
    case 1:
        if (hd__media_type_ok(text)) {
            const char *slash = strchr(text, '/');
            if (!slash || slash == text || !slash[1] || slash[1] == ';')
                fail("a media type without a type and a subtype was accepted");
            for (const char *p = text; *p; p++)
                if ((unsigned char)*p < 32 || (unsigned char)*p > 126) fail("a control byte");
        }
        break;
    case 2: {
        char nonce[33] = "";
        if (hd__upload_token_ok(key, text, 0, nonce)) {
            if (strlen(nonce) != 32 || strspn(nonce, "0123456789abcdef") != 32)
                fail("an accepted upload token gave a bad nonce");
        }
        /* A token made here is accepted until it expires, and never after. */
        char made[HD_UPLOAD_TOKEN_CHARS + 1];
        double expires = (double)(size * 1000);
        if (hd__upload_token(key, expires, made) == 0) {
            if (!hd__upload_token_ok(key, made, expires - 1, nonce)) fail("own token refused");
            if (hd__upload_token_ok(key, made, expires + 1, nonce)) fail("expired token accepted");
        }
        break;
    }
    default: {
        char *slash = strchr(text, '/');
        const char *token = slash ? slash + 1 : "";
        if (slash) *slash = 0;
        char path[200], own[HD_READ_TOKEN_CHARS + 1];
        if (hd__blob_path("/d", text, path, sizeof path)) {
            if (strchr(text, '/') || strchr(text, '.') || strlen(text) != HERALD_ID_CHARS)
                fail("a name that is not an id became a path");
            hd__read_token(key, text, own);
            if (!hd__read_token_ok(key, text, own)) fail("an id's own read token refused");
        }
        if (hd__read_token_ok(key, text, token)) {
            hd__read_token(key, text, own);
            if (strcmp(own, token)) fail("a read token not made for this id was accepted");
        }
        break;
    }
    }
    free(text);
    return 0;
}
