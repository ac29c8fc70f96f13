/*
 * threadpool.c — fork-join pool with a spin-then-sleep barrier.
 *
 * A job is nth slices (nth = thread count).  It is published by bumping
 * `generation`; workers that are spinning see it within a few hundred
 * nanoseconds, sleeping ones are woken by a broadcast, which is only paid
 * for when someone actually sleeps.  Every thread, the caller included,
 * claims slices from one counter until none are left, and the caller
 * returns once all slices are done.  So a worker that is descheduled or
 * still waking up costs nothing: whoever runs takes its slice.
 *
 * The slice counter carries the job's generation in its high half, so a
 * worker that wakes up late, after its job ended, can never claim a slice
 * of the next job with the previous job's function and context.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before sleeping: long enough to bridge the
 * gaps between the matmuls of one decode step. */
#define SPIN_NS 2000000LL

struct kinfer_threadpool {
    int n_threads;
    bool spin;                 /* false when threads outnumber CPUs: a spinning
                                * thread would only keep a waiting one off its core */
    pthread_t *threads;

    _Atomic(kinfer_task_fn) fn; /* the current job; written before generation */
    _Atomic(void *) ctx;
    atomic_uint generation;    /* bumped once per job */
    atomic_uint_least64_t next; /* generation << 32 | next unclaimed slice */
    atomic_int done;           /* slices of the current job finished */
    atomic_bool stop;
    atomic_bool sleep_after;   /* workers skip spinning after this job */

    atomic_int n_sleeping;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};


static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait until generation differs from seen; returns the new value. */
static unsigned wait_for_job(kinfer_threadpool *pool, unsigned seen)
{
    const long long deadline = now_ns() + SPIN_NS;
    const bool spin = pool->spin && !atomic_load_explicit(&pool->sleep_after, memory_order_relaxed);
    for (unsigned spins = 0; spin; spins++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
        if ((spins & 1023) == 1023 && now_ns() > deadline)
            break;
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->n_sleeping, 1);
    unsigned g;
    /* the seq_cst increment above and the publisher's seq_cst bump of
     * generation cannot both miss each other: no lost wake-up */
    while ((g = atomic_load(&pool->generation)) == seen)
        pthread_cond_wait(&pool->cond, &pool->mutex);
    atomic_fetch_sub(&pool->n_sleeping, 1);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

/* Claim and run slices of job `gen` until none are left. */
static void work(kinfer_threadpool *pool, unsigned gen)
{
    const kinfer_task_fn fn = atomic_load(&pool->fn);
    void *const ctx = atomic_load(&pool->ctx);
    const int nth = pool->n_threads;
    uint_least64_t v = atomic_load(&pool->next);
    for (;;) {
        /* fn and ctx were read before this check: if the counter still
         * names our generation, they are that job's */
        if ((unsigned)(v >> 32) != gen || (int)(uint32_t)v >= nth)
            return;
        if (atomic_compare_exchange_weak(&pool->next, &v, v + 1)) {
            fn(ctx, (int)(uint32_t)v, nth);
            atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
            v = atomic_load(&pool->next);
        }
    }
}

static void *worker_main(void *p)
{
    kinfer_threadpool *pool = p;
    unsigned seen = 0; /* jobs start at generation 1, even if this thread starts late */
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire))
            break;
        work(pool, seen);
    }
    return NULL;
}

static void publish(kinfer_threadpool *pool, unsigned gen)
{
    atomic_store(&pool->generation, gen);
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->mutex);
    }
}

kinfer_threadpool *kinfer_threadpool_new(int n_threads)
{
    const long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0)
        n_threads = n_cpu > 0 ? (int)n_cpu : 1;
    kinfer_threadpool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->n_threads = n_threads;
    pool->spin = n_cpu <= 0 || n_threads <= n_cpu;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->next, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->fn, NULL);
    atomic_init(&pool->ctx, NULL);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->sleep_after, false);
    atomic_init(&pool->n_sleeping, 0);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (pool->threads == NULL) {
        kinfer_threadpool_free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            pool->n_threads = i; /* join the ones that started */
            kinfer_threadpool_free(pool);
            return NULL;
        }
    }
    return pool;
}

int kinfer_threadpool_size(const kinfer_threadpool *pool)
{
    return pool ? pool->n_threads : 1;
}

static void run_job(kinfer_threadpool *pool, kinfer_task_fn fn, void *ctx, bool sleep_after)
{
    if (pool == NULL || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    /* only this thread writes generation */
    const unsigned gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    /* the counter first: from here a late worker of the previous job can
     * no longer claim anything */
    atomic_store(&pool->next, (uint_least64_t)gen << 32);
    atomic_store(&pool->done, 0);
    atomic_store(&pool->fn, fn);
    atomic_store(&pool->ctx, ctx);
    atomic_store_explicit(&pool->sleep_after, sleep_after, memory_order_relaxed);
    publish(pool, gen);
    work(pool, gen);
    for (unsigned spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n_threads;
         spins++) {
        cpu_relax();
        /* a descheduled worker holds a slice (more threads than cores):
         * let it run */
        if (!pool->spin || (spins & 4095) == 4095)
            sched_yield();
    }
}

void kinfer_threadpool_run(kinfer_threadpool *pool, kinfer_task_fn fn, void *ctx)
{
    run_job(pool, fn, ctx, false);
}

void kinfer_threadpool_run_then_sleep(kinfer_threadpool *pool, kinfer_task_fn fn, void *ctx)
{
    run_job(pool, fn, ctx, true);
}

void kinfer_threadpool_free(kinfer_threadpool *pool)
{
    if (pool == NULL)
        return;
    if (pool->threads != NULL) {
        atomic_store_explicit(&pool->stop, true, memory_order_release);
        publish(pool, atomic_load(&pool->generation) + 1);
        for (int i = 1; i < pool->n_threads; i++)
            pthread_join(pool->threads[i], NULL);
        free(pool->threads);
    }
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->cond);
    free(pool);
}
