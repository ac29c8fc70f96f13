/*
 * threadpool.c — fork-join pool with a spin-then-sleep barrier.
 *
 * A job is published by bumping `generation`; workers that are spinning see
 * it within a few hundred nanoseconds, sleeping ones are woken by a
 * broadcast, which is only paid for when someone actually sleeps.  The
 * caller works as thread 0, then spins until `pending` drops to zero.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
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

    kinfer_task_fn fn;         /* the current job; written before generation */
    void *ctx;
    atomic_uint generation;    /* bumped once per job */
    atomic_int pending;        /* workers still running the current job */
    atomic_bool stop;
    atomic_bool sleep_after;   /* workers skip spinning after this job */

    atomic_int n_sleeping;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

typedef struct worker_arg {
    kinfer_threadpool *pool;
    int ith;
} worker_arg;

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

static void *worker_main(void *p)
{
    worker_arg *arg = p;
    kinfer_threadpool *pool = arg->pool;
    const int ith = arg->ith;
    free(arg);
    unsigned seen = 0; /* jobs start at generation 1, even if this thread starts late */
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire))
            break;
        pool->fn(pool->ctx, ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
    return NULL;
}

static void publish(kinfer_threadpool *pool)
{
    atomic_fetch_add(&pool->generation, 1);
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
    atomic_init(&pool->pending, 0);
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
        worker_arg *arg = malloc(sizeof *arg);
        if (arg != NULL) {
            arg->pool = pool;
            arg->ith = i;
        }
        if (arg == NULL || pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
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
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->sleep_after, sleep_after, memory_order_relaxed);
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    publish(pool);
    fn(ctx, 0, pool->n_threads);
    for (unsigned spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        cpu_relax();
        /* a descheduled worker (more threads than cores): let it run */
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
        publish(pool);
        for (int i = 1; i < pool->n_threads; i++)
            pthread_join(pool->threads[i], NULL);
        free(pool->threads);
    }
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->cond);
    free(pool);
}
