// Counters for `rezero bench`, preloaded from outside the binary so that the kernels carry no
// instrumentation: heap allocations of the whole process (malloc and friends) and the time spent
// inside cblas_sgemm (summed over the threads that call it). bench looks the counters up with
// dlsym and reports them per measured step. The calling thread's own allocations are counted too,
// for tests that must not see another thread's (a test runner's, a library's) allocations.
// Build: cc -O2 -shared -fPIC -o bench-counters.so launch/bench-counters.c -ldl
// Use:   LD_PRELOAD=$PWD/bench-counters.so .build/release/rezero bench ...
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long calls;
static _Thread_local long thread_calls;
static atomic_long sgemm_nanoseconds;

static inline void count(void) {
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    thread_calls++;
}

void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { count(); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void *memalign(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    count();
    *out = __libc_memalign(alignment, n);
    return *out ? 0 : 12;  // ENOMEM
}

// cblas_sgemm's arguments, with the enums as the ints they are.
typedef void (*sgemm_function)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                               float, float *, int);

void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    static sgemm_function real;
    if (!real) real = (sgemm_function)dlsym(RTLD_NEXT, "cblas_sgemm");
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    real(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long elapsed = (end.tv_sec - start.tv_sec) * 1000000000L + (end.tv_nsec - start.tv_nsec);
    atomic_fetch_add_explicit(&sgemm_nanoseconds, elapsed, memory_order_relaxed);
}

long rezero_malloc_calls(void) { return atomic_load_explicit(&calls, memory_order_relaxed); }
long rezero_thread_malloc_calls(void) { return thread_calls; }
long rezero_sgemm_nanoseconds(void) { return atomic_load_explicit(&sgemm_nanoseconds, memory_order_relaxed); }
