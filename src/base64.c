/* base64 encoding and strict decoding; see base64.h. */
#include "base64.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void hd__base64_encode(hd_buf *out, const uint8_t *p, size_t n, bool url)
{
    const char *a = url ? url_alphabet : std_alphabet;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
        hd__buf_append(out, q, 4);
    }
    size_t rest = n - i;
    if (rest) {
        uint32_t v = (uint32_t)p[i] << 16 | (rest > 1 ? (uint32_t)p[i + 1] << 8 : 0);
        hd__buf_byte(out, (uint8_t)a[v >> 18]);
        hd__buf_byte(out, (uint8_t)a[(v >> 12) & 63]);
        if (rest > 1) hd__buf_byte(out, (uint8_t)a[(v >> 6) & 63]);
        if (!url) hd__buf_append(out, rest > 1 ? "=" : "==", rest > 1 ? 1 : 2);
    }
}

static int sextet(char c, bool url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

bool hd__base64_decode(hd_buf *out, const char *s, size_t n, bool url)
{
    if (!url) {
        if (n % 4) return false;
        if (n && s[n - 1] == '=') n--;
        if (n && s[n - 1] == '=') n--;
    }
    if (n % 4 == 1) return false;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = sextet(s[i], url);
        if (v < 0) return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            hd__buf_byte(out, (uint8_t)(acc >> bits));
        }
    }
    /* Leftover bits must be zero, so that every byte string has one encoding. */
    if (acc & ((1u << bits) - 1)) return false;
    return !out->failed;
}
