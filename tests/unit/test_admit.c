/*
 * Connection admission (src/admit.c): totals and per-address counts stay
 * exact through accepts, binds, releases and sockets lws never adopted,
 * at a few connections and at many.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "admit.h"
#include "check.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

#define ACCEPT(a, addr) hd__admit_accept((a), (const struct sockaddr *)&(addr), sizeof(addr))

static void test_limits(void)
{
    hd_admit *a;
    CHECK_OK(hd__admit_new(4, 2, &a));
    struct sockaddr_in x = v4("10.0.0.1"), y = v4("10.0.0.2");
    struct sockaddr_in6 xm = v6("::ffff:10.0.0.1"), z = v6("2001:db8::1");
    int conns[8];
    CHECK(ACCEPT(a, x) == NULL);
    hd__admit_bind(a, &conns[0]);
    CHECK(ACCEPT(a, xm) == NULL); /* the same address, IPv4-mapped */
    hd__admit_bind(a, &conns[1]);
    const char *why = ACCEPT(a, x);
    CHECK(why && strstr(why, "this address"));
    CHECK(hd__admit_count(a) == 2);
    CHECK(ACCEPT(a, y) == NULL);
    hd__admit_bind(a, &conns[2]);
    CHECK(ACCEPT(a, z) == NULL);
    hd__admit_bind(a, &conns[3]);
    why = ACCEPT(a, z);
    CHECK(why && strstr(why, "as many connections"));
    /* Releasing makes room for that address again; a second release changes nothing. */
    CHECK(hd__admit_release(a, &conns[0]));
    CHECK(!hd__admit_release(a, &conns[0]));
    CHECK(hd__admit_count(a) == 3);
    CHECK(ACCEPT(a, x) == NULL);
    hd__admit_bind(a, &conns[4]);
    /* A connection that was never admitted (a listener) is not counted. */
    hd__admit_bind(a, &conns[5]);
    CHECK(!hd__admit_release(a, &conns[5]));
    CHECK(hd__admit_count(a) == 4);
    hd__admit_free(a);
}

static void test_unbound(void)
{
    hd_admit *a;
    CHECK_OK(hd__admit_new(10, 1, &a));
    struct sockaddr_in x = v4("192.0.2.9");
    int conn;
    /* Admitted but never adopted by lws: counted out at the next accept. */
    CHECK(ACCEPT(a, x) == NULL);
    CHECK(hd__admit_count(a) == 1);
    CHECK(ACCEPT(a, x) == NULL);
    hd__admit_bind(a, &conn);
    CHECK(hd__admit_count(a) == 1);
    CHECK(hd__admit_release(a, &conn));
    CHECK(hd__admit_count(a) == 0);
    hd__admit_free(a);
}

static void test_many(void)
{
    enum { N = 50000 };
    static char conns[N];
    hd_admit *a;
    CHECK_OK(hd__admit_new(N, N, &a));
    for (int i = 0; i < N; i++) {
        struct sockaddr_in x = v4("127.0.0.1");
        x.sin_addr.s_addr = htonl(0x0a000000u + (unsigned)(i % 300));
        CHECK(ACCEPT(a, x) == NULL);
        hd__admit_bind(a, &conns[i]);
    }
    CHECK(hd__admit_count(a) == N);
    for (int i = 0; i < N; i += 2)
        CHECK(hd__admit_release(a, &conns[i]));
    CHECK(hd__admit_count(a) == N / 2);
    for (int i = 1; i < N; i += 2)
        CHECK(hd__admit_release(a, &conns[i]));
    CHECK(hd__admit_count(a) == 0);
    hd__admit_free(a);
}

int main(void)
{
    test_limits();
    test_unbound();
    test_many();
    CHECK_DONE();
}
