/*
 * Fuzz target for result diffs (src/diff.c, docs/diffs.md): what a
 * client does with an update, and what the server computes for it.
 *
 * The input is two Convex JSON values: the first line is A, the rest is B.
 * When both parse:
 *
 * - B is applied to A as a diff (hd__diff_apply), as a client applies
 *   whatever arrives. It may be refused (HERALD_EINVAL), but then A must
 *   be left exactly as it was; whatever it gives must encode as JSON.
 * - hd__diff(A, B), and hd__diff(B, A), must succeed; applied to the old
 *   value, directly and after a trip through its JSON text (the wire),
 *   each must give exactly the new value. No diff must mean equal values.
 * - A diff from nothing (the first result) must give B too.
 *
 * Out of memory is allowed anywhere; anything else that breaks one of
 * these promises aborts, so libFuzzer (or the replay run) reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "herald/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const herald_value *a, const herald_value *b,
                 const herald_value *diff, const herald_error *err)
{
    char *aj = herald_value_to_json(a), *bj = herald_value_to_json(b);
    char *dj = diff ? herald_value_to_json(diff) : NULL;
    fprintf(stderr, "fuzz_diff: %s\n  old  %.1000s\n  new  %.1000s\n  diff %.1000s\n  (%s)\n", what,
            aj ? aj : "?", bj ? bj : "?", dj ? dj : "-", err ? err->message : "");
    free(aj);
    free(bj);
    free(dj);
    abort();
}

/* Applies `diff` to a copy of `old`; it must give `want` exactly. */
static void check_gives(const herald_value *old, const herald_value *diff, const herald_value *want,
                        const char *how)
{
    herald_value t;
    herald_error err = {0};
    if (old->type == HERALD_UNDEFINED)
        t = herald_undefined();
    else if (herald_value_copy(&t, old))
        return;
    int rc = hd__diff_apply(&t, diff, &err);
    if (rc == HERALD_ENOMEM) {
        herald_value_free(&t);
        return;
    }
    if (rc) fail(how, old, want, diff, &err);
    if (herald_value_compare(&t, want) != 0) fail(how, old, want, diff, NULL);
    herald_value_free(&t);
}

/* hd__diff(old, new) then applying it, directly and through JSON, must give `new`. */
static void check_round_trip(const herald_value *old, const herald_value *new_value)
{
    herald_value d;
    herald_error err = {0};
    int rc = hd__diff(old, new_value, &d, &err);
    if (rc == HERALD_ENOMEM) return;
    if (rc) fail("hd__diff failed", old, new_value, NULL, &err);
    if (d.type == HERALD_UNDEFINED) {
        if (herald_value_compare(old, new_value) != 0)
            fail("no diff between different values", old, new_value, NULL, NULL);
        return;
    }
    check_gives(old, &d, new_value, "the diff does not give the new value");
    char *json = herald_value_to_json(&d);
    herald_value wire;
    if (json && herald_value_from_json(json, strlen(json), &wire, &err) == 0) {
        check_gives(old, &wire, new_value, "the diff, through JSON, does not give the new value");
        herald_value_free(&wire);
    } else if (json) {
        fail("the diff's JSON does not parse", old, new_value, &d, &err);
    }
    free(json);
    herald_value_free(&d);
}

/* `diff` as an arbitrary update: refused without touching `old`, or something that encodes. */
static void check_arbitrary(const herald_value *old, const herald_value *diff)
{
    herald_value t;
    herald_error err = {0};
    if (herald_value_copy(&t, old)) return;
    int rc = hd__diff_apply(&t, diff, &err);
    if (rc == 0) {
        free(herald_value_to_json(&t));
    } else if (rc != HERALD_ENOMEM) {
        if (rc != HERALD_EINVAL) fail("refused with a code other than EINVAL", old, &t, diff, &err);
        if (herald_value_compare(&t, old) != 0)
            fail("a refused diff changed the value", old, &t, diff, &err);
    }
    herald_value_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    if (!nl) return 0;
    herald_value a, b;
    herald_error err = {0};
    if (herald_value_from_json(text, (size_t)(nl - text), &a, &err)) return 0;
    if (herald_value_from_json(nl + 1, size - (size_t)(nl + 1 - text), &b, &err)) {
        herald_value_free(&a);
        return 0;
    }
    check_arbitrary(&a, &b);
    check_round_trip(&a, &b);
    check_round_trip(&b, &a);
    herald_value none = herald_undefined();
    check_round_trip(&none, &b);
    herald_value_free(&a);
    herald_value_free(&b);
    return 0;
}
