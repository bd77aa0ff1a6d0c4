/*
 * Standard base64 (RFC 4648, with padding), as Convex's JSON encoding uses
 * for $integer, $float and $bytes, and base64url without padding for
 * cursors and ids in URLs.
 */
#ifndef HD_BASE64_H
#define HD_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

void hd__base64_encode(hd_buf *out, const uint8_t *p, size_t n, bool url);
/* Appends the decoded bytes; returns false on malformed input. */
bool hd__base64_decode(hd_buf *out, const char *s, size_t n, bool url);

#endif
