/*
 * The order-preserving binary encoding of values.
 *
 * For any two values a and b, memcmp() of their encodings (the shorter one
 * sorting first on a tie) has the sign of herald_value_compare(a, b). The
 * encoding is also self-delimiting and decodable, so a sequence of encoded
 * values (an index key) compares element by element, and documents are
 * stored in it too.
 *
 * Layout: one tag byte per value (type + 1: undefined 0x01 ... object
 * 0x09), then:
 *   int64    8 bytes big-endian with the sign bit flipped
 *   float64  8 bytes big-endian of the IEEE total-order transform
 *   boolean  1 byte
 *   string, bytes  the bytes with 0x00 escaped as 00 FF, ended by 00 01
 *   array    the elements, ended by 00
 *   object   per field (in key order) 01, the key as a string, the value;
 *            ended by 00
 * Undefined (a missing field) has a tag only, so it sorts before null.
 */
#ifndef HD_KEYCODEC_H
#define HD_KEYCODEC_H

#include "buf.h"
#include "herald/value.h"

/* Appends the encoding of `v`. Failure shows in `out->failed`. */
void hd__key_encode(hd_buf *out, const herald_value *v);

/*
 * Decodes one value from `p` (n bytes available) into *out; *used is set
 * to the bytes consumed. Returns HERALD_ECORRUPT on malformed input,
 * HERALD_ELIMIT past HERALD_MAX_DEPTH, HERALD_ENOMEM.
 */
int hd__key_decode(const uint8_t *p, size_t n, size_t *used, herald_value *out);

#endif
