/*
 * Option tables (src/options.c): every kind of value into every kind of
 * field, from the command line, the environment and a file, and the
 * refusals, which name where a value came from and never repeat a secret.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "options.h"

typedef struct settings {
    bool flag;
    int port;
    size_t count;
    uint64_t bytes;
    double seconds;
    const char *name, *format, *list, *secret, *url;
} settings;

#define FIELD(member) HD_OPT_FIELD(settings, member)

static bool starts_http(const char *v)
{
    return !strncmp(v, "http://", 7);
}

static const hd_option opts[] = {
    {"flag", .kind = HD_OPT_FLAG, FIELD(flag), .def = "off", .help = "a flag"},
    {"port", "bind-port", HD_OPT_NUMBER, "N", 0, 65535, .range = "0 to 65535", FIELD(port),
     .def = "3210", .help = "a port"},
    {"max-count", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 10, .range = "1 to 10",
     FIELD(count), .def = "5", .help = "a count"},
    {"max-size", .kind = HD_OPT_SIZE, .metavar = "MIB", .lo = 1, .hi = 1024, .scale = 1 << 20,
     .range = "1 to 1024 MiB", FIELD(bytes), .def = "64", .help = "a size"},
    {"timeout", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 0.5, .hi = 60,
     .range = "0.5 to 60", FIELD(seconds), .def = "30", .help = "a timeout"},
    {"name", .kind = HD_OPT_STRING, .metavar = "TEXT", FIELD(name), .def = "none",
     .help = "a name"},
    {"format", .kind = HD_OPT_STRING, .metavar = "FORMAT", .choices = "text|json", FIELD(format),
     .def = "text", .help = "a format"},
    {"list", .kind = HD_OPT_LIST, .metavar = "LIST", FIELD(list), .def = "none",
     .help = "a list, with a help text long enough to be wrapped over more than one line of the "
             "eighty columns a terminal shows"},
    {"secret", .kind = HD_OPT_STRING, .metavar = "KEY", .check = starts_http, .secret = true,
     FIELD(secret), .def = "none", .help = "a secret"},
};

static const hd_options table = {opts, sizeof opts / sizeof *opts, "TESTOPT_", "test"};

static int args(settings *s, herald_error *err, const char *a, const char *b, const char *c)
{
    char *argv[] = {(char *)a, (char *)b, (char *)c};
    int argc = !a ? 0 : !b ? 1 : !c ? 2 : 3;
    return hd__options_args(&table, s, argc, argv, err);
}

static bool says(const herald_error *err, const char *text)
{
    bool ok = strstr(err->message, text) != NULL;
    if (!ok) fprintf(stderr, "  message: %s (wanted \"%s\")\n", err->message, text);
    return ok;
}

static void test_args(void)
{
    settings s = {0};
    herald_error err = {0};
    CHECK_OK(args(&s, &err, "--port", "8080", "--flag"));
    CHECK(s.port == 8080 && s.flag);
    CHECK_OK(args(&s, &err, "--port=0", "--flag=false", NULL));
    CHECK(s.port == 0 && !s.flag);
    CHECK_OK(args(&s, &err, "--bind-port", "99", NULL));
    CHECK(s.port == 99);
    CHECK_OK(args(&s, &err, "--max-size", "3", "--max-count=10"));
    CHECK(s.bytes == (uint64_t)3 << 20 && s.count == 10);
    CHECK_OK(args(&s, &err, "--timeout", "1.5", NULL));
    CHECK(s.seconds == 1.5);
    CHECK_OK(args(&s, &err, "--name", "--port", NULL)); /* a value may look like an option */
    CHECK(!strcmp(s.name, "--port"));
    CHECK_OK(args(&s, &err, "--format=json", "--list", "a,b"));
    CHECK(!strcmp(s.format, "json") && !strcmp(s.list, "a,b"));
    CHECK(args(&s, &err, "--port", "1", "--help") == 1);
    CHECK(args(&s, &err, "-h", NULL, NULL) == 1);

    settings before = s;
    CHECK(args(&s, &err, "--nope", NULL, NULL) == HERALD_ENOTFOUND &&
          says(&err, "test: unknown option --nope"));
    CHECK(args(&s, &err, "-x", NULL, NULL) == HERALD_ENOTFOUND && says(&err, "unknown option -x"));
    CHECK(args(&s, &err, "--max_count", "2", NULL) == HERALD_ENOTFOUND);
    CHECK(args(&s, &err, "stray", NULL, NULL) == HERALD_EINVAL &&
          says(&err, "unexpected argument \"stray\""));
    CHECK(args(&s, &err, "--port", NULL, NULL) == HERALD_EINVAL &&
          says(&err, "--port needs a value (N)"));
    static const char *const bad[][2] = {
        {"--port", "65536"},     {"--port", "-1"},
        {"--port", "+1"},        {"--port", " 1"},
        {"--port", "1x"},        {"--port", ""},
        {"--max-count", "0"},    {"--max-count", "11"},
        {"--max-size", "1.5"},   {"--max-size", "0x10"},
        {"--timeout", "0.4"},    {"--timeout", "1e1"},
        {"--timeout", "inf"},    {"--timeout", "-1"},
        {"--timeout", ".5"},     {"--format", "xml"},
        {"--name", ""},          {"--flag=maybe", NULL},
        {"--secret", "ftp://x"}, {"--port", "99999999999999999999999"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = args(&s, &err, bad[i][0], bad[i][1], NULL);
        CHECK(rc == HERALD_EINVAL);
        if (rc != HERALD_EINVAL) fprintf(stderr, "  accepted %s %s\n", bad[i][0], bad[i][1]);
    }
    CHECK(memcmp(&s, &before, sizeof s) == 0); /* nothing refused was stored */
    CHECK(args(&s, &err, "--port", "x", NULL) == HERALD_EINVAL &&
          says(&err, "test: bad --port (0 to 65535)"));
    CHECK(args(&s, &err, "--format", "x", NULL) == HERALD_EINVAL &&
          says(&err, "bad --format (text|json)"));
    CHECK(args(&s, &err, "--flag=2", NULL, NULL) == HERALD_EINVAL && says(&err, "(true or false)"));
    /* A timeout of 1.0 is written "1.0" or "1". */
    CHECK_OK(args(&s, &err, "--timeout", "1.0", NULL));
    CHECK(s.seconds == 1.0);
}

static void test_env(void)
{
    settings s = {0};
    herald_error err = {0};
    char var[64];
    hd__option_env_name(&table, &opts[2], var, sizeof var);
    CHECK(!strcmp(var, "TESTOPT_MAX_COUNT"));
    setenv("TESTOPT_MAX_COUNT", "7", 1);
    setenv("TESTOPT_FLAG", "yes", 1);
    setenv("TESTOPT_NAME", "", 1);       /* empty: not set */
    setenv("TESTOPT_BIND_PORT", "5", 1); /* an alias has no variable */
    CHECK_OK(hd__options_env(&table, &s, &err));
    CHECK(s.count == 7 && s.flag && s.name == NULL && s.port == 0);
    setenv("TESTOPT_PORT", "abc", 1);
    CHECK(hd__options_env(&table, &s, &err) == HERALD_EINVAL &&
          says(&err, "TESTOPT_PORT=abc: bad --port (0 to 65535)"));
    unsetenv("TESTOPT_PORT");
    setenv("TESTOPT_SECRET", "hunter2-not-a-url", 1);
    CHECK(hd__options_env(&table, &s, &err) == HERALD_EINVAL && says(&err, "TESTOPT_SECRET=") &&
          !strstr(err.message, "hunter2"));
    unsetenv("TESTOPT_SECRET");
    unsetenv("TESTOPT_MAX_COUNT");
    unsetenv("TESTOPT_FLAG");
    unsetenv("TESTOPT_NAME");
    unsetenv("TESTOPT_BIND_PORT");
}

/* The file's text through hd__options_file: its rc, with err, s and *kept (the caller frees it). */
static int from_file(const char *text, size_t len, settings *s, char **kept, herald_error *err)
{
    char path[] = "/tmp/herald-test-options-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    close(fd);
    int rc = hd__options_file(&table, s, path, kept, err);
    CHECK(rc ? *kept == NULL : *kept != NULL);
    unlink(path);
    return rc;
}

static void test_file(void)
{
    settings s = {0};
    herald_error err = {0};
    static const char good[] = "# settings\n"
                               "\n"
                               "  port = 81   # the proxy's\n"
                               "max_count=3\r\n"
                               "max-size = 2\n"
                               "Flag = on\n"
                               "name = \"a # b\"  # quoted\n"
                               "list = x#y,z\n"
                               "TESTOPT_TIMEOUT=2.5"; /* a variable; no newline at the end */
    char *kept = NULL;
    CHECK_OK(from_file(good, sizeof good - 1, &s, &kept, &err));
    CHECK(s.port == 81 && s.count == 3 && s.bytes == 2u << 20 && s.flag && s.seconds == 2.5);
    CHECK(s.name && !strcmp(s.name, "a # b") && s.list && !strcmp(s.list, "x#y,z"));
    free(kept);
    static const struct {
        const char *text, *message;
        int rc;
    } bad[] = {
        {"port = 1\nnope = 2\n", ":2: unknown option \"nope\"", HERALD_ENOTFOUND},
        {"port 80\n", ":1: expected \"name = value\"", HERALD_EINVAL},
        {"[server]\nport = 80\n", ":1: expected", HERALD_EINVAL},
        {"\n\nport = http\n", ":3: bad --port (0 to 65535)", HERALD_EINVAL},
        {"name = \"open\n", ":1: a quoted value must end its line", HERALD_EINVAL},
        {"name = \"a\" b\n", ":1: a quoted value must end its line", HERALD_EINVAL},
        {"name =\n", ":1: bad --name", HERALD_EINVAL},
        {"secret = hunter2\n", ":1: bad --secret", HERALD_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(from_file(bad[i].text, strlen(bad[i].text), &s, &kept, &err) == bad[i].rc &&
              says(&err, bad[i].message));
        CHECK(!strstr(err.message, "hunter2"));
    }
    CHECK(from_file("port = 1\0\n", 10, &s, &kept, &err) == HERALD_EINVAL &&
          says(&err, "not a text file"));
    kept = (char *)"untouched";
    CHECK(hd__options_file(&table, &s, "/nonexistent/herald.conf", &kept, &err) == HERALD_EIO &&
          kept == NULL && says(&err, "/nonexistent/herald.conf"));
}

static void test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    hd__options_help(&table, out);
    hd__options_list(&table, out);
    fclose(out);
    CHECK(strstr(text, "  --port N (or --bind-port)\n      a port (0 to 65535)\n"
                       "      env TESTOPT_PORT, default 3210\n") != NULL);
    CHECK(strstr(text, "  --flag\n      a flag\n      env TESTOPT_FLAG, default off\n") != NULL);
    CHECK(strstr(text, "a format (text|json)") != NULL);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        CHECK(nl && nl - line <= 80);
        line = nl ? nl + 1 : NULL;
    }
    CHECK(strstr(text, "  --flag --port --max-count") != NULL);
    free(text);
}

int main(void)
{
    test_args();
    test_env();
    test_file();
    test_help();
    CHECK_DONE();
}
