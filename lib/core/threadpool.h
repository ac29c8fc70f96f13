/*
 * threadpool.h — persistent worker threads for the compute kernels
 * (internal).
 *
 * kinfer_threadpool_run() hands one function to every thread and returns when
 * all have finished: a fork-join barrier.  Workers spin briefly between jobs
 * (a decode step runs a few hundred of them, microseconds apart), then sleep
 * on a condition variable, so an idle pool costs no CPU.
 *
 * A pool is used by one thread at a time (the one that owns the context).
 */
#ifndef KINFER_THREADPOOL_H
#define KINFER_THREADPOOL_H

/* One slice of a job: called once for each ith in 0..nth-1 (nth = pool
 * size), each on some thread of the pool, the caller's included.  Slices of
 * one job may run in parallel; a thread may run several in turn.  So ith
 * names a share of the work (and may index per-slice scratch), not an OS
 * thread. */
typedef void (*kinfer_task_fn)(void *ctx, int ith, int nth);

typedef struct kinfer_threadpool kinfer_threadpool;

/* n_threads counts the calling thread: n_threads - 1 workers are started.
 * n_threads <= 0 means one per online CPU.  NULL when out of memory or
 * threads cannot be created. */
kinfer_threadpool *kinfer_threadpool_new(int n_threads);

/* Threads that run each job (workers + the caller). 1 for a NULL pool. */
int kinfer_threadpool_size(const kinfer_threadpool *pool);

/* Run fn(ctx, ith, nth) for every slice; returns when every call returned.
 * A NULL pool runs fn(ctx, 0, 1) on the caller. */
void kinfer_threadpool_run(kinfer_threadpool *pool, kinfer_task_fn fn, void *ctx);

/* Same, but the workers go to sleep right after this job instead of
 * spinning for the next one: for when the caller is about to hand the CPUs
 * to someone else (OpenBLAS's own threads). */
void kinfer_threadpool_run_then_sleep(kinfer_threadpool *pool, kinfer_task_fn fn, void *ctx);

/* Stops and joins the workers.  Accepts NULL. */
void kinfer_threadpool_free(kinfer_threadpool *pool);

#endif /* KINFER_THREADPOOL_H */
