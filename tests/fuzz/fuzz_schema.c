/*
 * Fuzz target for the two schema readers: herald_schema_from_ts (the
 * Convex schema.ts subset) and herald_schema_from_json (the canonical
 * form). Every input goes through both, so the corpus can hold either kind
 * and mutations can cross between them.
 *
 * Refusing input is fine; crashing, leaking or reading past `size` is not.
 * A schema that loads must write canonical JSON that loads again and
 * writes the very same text (docs/schema.md, "Output is canonical").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_canonical(herald_schema *s, const char *parser)
{
    char *text = herald_schema_to_json(s);
    herald_schema_free(s);
    if (!text) return; /* out of memory */
    herald_schema *again = NULL;
    herald_error err = {0};
    if (herald_schema_from_json(text, strlen(text), "canonical.json", &again, &err)) {
        fprintf(stderr, "fuzz_schema (%s): canonical JSON does not load: %s\n%s\n", parser,
                err.message, text);
        abort();
    }
    char *text2 = herald_schema_to_json(again);
    if (text2 && strcmp(text, text2) != 0) {
        fprintf(stderr,
                "fuzz_schema (%s): canonical JSON changed on reload\nfirst:  %s\nsecond: %s\n",
                parser, text, text2);
        abort();
    }
    free(text2);
    herald_schema_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    if (herald_schema_from_ts((const char *)data, size, "schema.ts", &s, &err) == 0)
        check_canonical(s, "ts");
    s = NULL;
    if (herald_schema_from_json((const char *)data, size, "schema.json", &s, &err) == 0)
        check_canonical(s, "json");
    return 0;
}
