/*
 * Fuzz target for the Convex JSON value parser (herald_value_from_json).
 *
 * Any input may be refused, but none may crash, leak or read past `size`,
 * and text holding a raw NUL byte must be refused (cJSON would cut strings
 * there). A value that parses must survive both of its encodings
 * unchanged: the JSON text written by herald_value_to_json() parses back
 * to an equal value and is itself canonical (writing it again gives the
 * same text), and the order-preserving key encoding decodes back to an
 * equal value, consuming every byte. A broken property aborts so libFuzzer
 * (or the replay run) reports the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/value.h"
#include "keycodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void check_key_round_trip(const herald_value *v)
{
    hd_buf key = HD_BUF_INIT;
    hd__key_encode(&key, v);
    if (hd__buf_failed(&key)) {
        hd__buf_free(&key);
        return; /* out of memory is allowed, not a bug */
    }
    herald_value back;
    size_t used = 0;
    int rc = hd__key_decode(key.p, key.len, &used, &back);
    if (rc) fail("key encoding does not decode", herald_strerror(rc));
    if (used != key.len) fail("key decode did not consume the whole encoding", NULL);
    if (!herald_value_equal(v, &back)) fail("key encoding round trip changed the value", NULL);
    herald_value_free(&back);
    hd__buf_free(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald_value v;
    herald_error err = {0};
    if (herald_value_from_json((const char *)data, size, &v, &err)) {
        if (v.type != HERALD_UNDEFINED) fail("failed parse left a value behind", err.message);
        return 0;
    }

    /*
     * JSON text cannot hold a raw NUL (control characters must be escaped
     * inside strings), and cJSON would silently cut a string or key there,
     * so accepting one would change the value without telling anyone.
     */
    if (memchr(data, 0, size)) fail("accepted JSON text that contains a raw NUL byte", NULL);

    char *text = herald_value_to_json(&v);
    if (text) {
        herald_value again;
        int rc = herald_value_from_json(text, strlen(text), &again, &err);
        if (rc) {
            fprintf(stderr, "text: %s\n", text);
            fail("herald_value_to_json output does not parse", err.message);
        }
        if (!herald_value_equal(&v, &again)) {
            fprintf(stderr, "text: %s\n", text);
            fail("JSON round trip changed the value", NULL);
        }
        char *text2 = herald_value_to_json(&again);
        if (text2 && strcmp(text, text2) != 0) {
            fprintf(stderr, "first:  %s\nsecond: %s\n", text, text2);
            fail("JSON output is not canonical", NULL);
        }
        free(text2);
        herald_value_free(&again);
        free(text);
    }

    check_key_round_trip(&v);
    herald_value_free(&v);
    return 0;
}
