// FAISS IndexFlatIP behind a C interface, for bench/bench_vector.c only:
// the reference exact inner-product search Herald's vector scan is held
// against. Built when Debian's libfaiss-dev is installed.
#include <faiss/IndexFlat.h>

extern "C" {
void *bench_faiss_new(int dims)
{
    return new faiss::IndexFlatIP(dims);
}

void bench_faiss_add(void *index, long n, const float *x)
{
    static_cast<faiss::IndexFlatIP *>(index)->add(n, x);
}

void bench_faiss_search(void *index, const float *q, long k, float *scores, long *labels)
{
    faiss::Index::idx_t got[256];
    static_cast<faiss::IndexFlatIP *>(index)->search(1, q, k, scores, got);
    for (long i = 0; i < k; i++)
        labels[i] = static_cast<long>(got[i]);
}

void bench_faiss_free(void *index)
{
    delete static_cast<faiss::IndexFlatIP *>(index);
}
}
