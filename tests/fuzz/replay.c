/*
 * A stand-in for libFuzzer's driver, so the ordinary test run (gcc, no
 * libFuzzer) replays the committed corpus through a fuzz target.
 *
 * Usage: <target>_replay FILE_OR_DIR...
 * Every regular file named, and every regular file directly inside every
 * directory named, is read into a buffer of exactly its size (so ASan sees
 * any read past the end) and passed to LLVMFuzzerTestOneInput once, in
 * name order. A crash, sanitizer report or abort fails the test; finding
 * no input at all fails it too, since that means the corpus went missing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional, as in libFuzzer: targets that need setup may define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    /* A zero-size malloc may return NULL; one spare byte keeps it real. */
    uint8_t *data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 1;
}

static int name_order(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Returns the number of inputs run, or -1 on an I/O error. */
static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    struct dirent **names;
    int n = scandir(path, &names, not_hidden, name_order);
    if (n < 0) {
        perror(path);
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
        char *file = malloc(len);
        if (file) {
            snprintf(file, len, "%s/%s", path, names[i]->d_name);
            int rc = run_file(file);
            if (rc < 0) count = -1;
            if (rc > 0 && count >= 0) count++;
            free(file);
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long n = run_path(argv[i]);
        if (n < 0) return 1;
        total += n;
    }
    printf("%s: replayed %ld inputs\n", argv[0], total);
    return total > 0 ? 0 : 1;
}
