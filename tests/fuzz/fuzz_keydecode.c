/*
 * Fuzz target for hd__key_decode on arbitrary bytes.
 *
 * Stored documents and index keys are decoded from whatever LMDB hands
 * back, so corrupt bytes must be refused, never crash or read past the
 * end. Whatever does decode must be a well-formed value that the rest of
 * Herald can handle: it compares equal to itself and to its copy, writes
 * as JSON, and its re-encoding is canonical (decoding and encoding it
 * again gives the same bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/value.h"
#include "keycodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_keydecode: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald_value v;
    size_t used = 0;
    if (hd__key_decode(data, size, &used, &v)) {
        if (v.type != HERALD_UNDEFINED) fail("failed decode left a value behind");
        return 0;
    }
    if (used == 0 || used > size) fail("decode reports an impossible length");

    if (herald_value_compare(&v, &v) != 0) fail("decoded value differs from itself");
    herald_value copy;
    if (herald_value_copy(&copy, &v) == 0) {
        if (!herald_value_equal(&v, &copy)) fail("copy of decoded value differs");
        herald_value_free(&copy);
    }
    free(herald_value_to_json(&v));

    /*
     * The decoder accepts non-canonical input (unsorted or repeated keys,
     * fields holding undefined), so decode(encode(v)) may differ from v.
     * But encode(v) is canonical: decoding it and encoding again must give
     * the very same bytes.
     */
    hd_buf key = HD_BUF_INIT, again = HD_BUF_INIT;
    hd__key_encode(&key, &v);
    if (!hd__buf_failed(&key)) {
        herald_value back;
        size_t used2 = 0;
        if (hd__key_decode(key.p, key.len, &used2, &back)) fail("re-encoding does not decode");
        if (used2 != key.len) fail("re-encoding not consumed whole");
        hd__key_encode(&again, &back);
        if (!hd__buf_failed(&again) &&
            (again.len != key.len || memcmp(again.p, key.p, key.len) != 0))
            fail("encoding is not a fixed point of decode and encode");
        herald_value_free(&back);
    }
    hd__buf_free(&again);
    hd__buf_free(&key);
    herald_value_free(&v);
    return 0;
}
