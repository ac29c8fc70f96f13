/*
 * test_sched.c — the server's batch scheduler (examples/server/sched.c)
 * with fake requests: the queue, slot choice (longest cached prefix, else
 * least recently used), prompt-cache reuse (own prefix kept, another
 * slot's copied, never the whole prompt), mixed batch building (one token
 * per generating slot, prompt chunks bounded by n_batch, round robin,
 * logits where sampling needs them), commit, cancellation.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../examples/server/sched.h"

static int fake[16];   /* request handles: only their addresses matter */

START_TEST(test_common_prefix)
{
    const kinfer_token a[] = {1, 2, 3, 4}, b[] = {1, 2, 9}, c[] = {7};
    ck_assert_int_eq(sched_common_prefix(a, 4, b, 3), 2);
    ck_assert_int_eq(sched_common_prefix(a, 4, a, 4), 4);
    ck_assert_int_eq(sched_common_prefix(a, 4, c, 1), 0);
    ck_assert_int_eq(sched_common_prefix(a, 0, a, 4), 0);
}
END_TEST

START_TEST(test_queue_bounded_fifo)
{
    sched s;
    ck_assert(sched_init(&s, 1, 64, 16, 3));
    ck_assert(sched_queue_push(&s.queue, &fake[0]));
    ck_assert(sched_queue_push(&s.queue, &fake[1]));
    ck_assert(sched_queue_push(&s.queue, &fake[2]));
    ck_assert(!sched_queue_push(&s.queue, &fake[3]));   /* full: the caller answers 503 */
    ck_assert(sched_queue_remove(&s.queue, &fake[1]));  /* a client gone while waiting */
    ck_assert(!sched_queue_remove(&s.queue, &fake[1]));
    ck_assert(sched_queue_push(&s.queue, &fake[4]));     /* wraps around */
    ck_assert_ptr_eq(sched_queue_pop(&s.queue), &fake[0]);
    ck_assert_ptr_eq(sched_queue_pop(&s.queue), &fake[2]);
    ck_assert_ptr_eq(sched_queue_pop(&s.queue), &fake[4]);
    ck_assert_ptr_null(sched_queue_pop(&s.queue));
    sched_free(&s);
}
END_TEST

START_TEST(test_init_rejects_bad_sizes)
{
    sched s;
    ck_assert(!sched_init(&s, 0, 64, 16, 4));
    ck_assert(!sched_init(&s, 2, 1, 16, 4));
    ck_assert(!sched_init(&s, 2, 64, 0, 4));
    ck_assert(!sched_init(&s, 2, 64, 16, 0));
}
END_TEST

/* Run a slot's prompt to completion and release it, so its cache holds the
 * prompt (as after a finished request). */
static void run_prompt(sched *s, sched_batch *b, const kinfer_token *p, int32_t n, void *req, int32_t *slot)
{
    sched_admission a;
    ck_assert(sched_admit(s, p, n, true, req, &a));
    while (s->slots[a.slot].state == SLOT_PROMPT && s->slots[a.slot].n_prompt_done < n) {
        ck_assert_int_gt(sched_build_batch(s, b), 0);
        sched_commit_batch(s, b);
    }
    sched_release(s, a.slot, true);
    *slot = a.slot;
}

START_TEST(test_admit_prefers_longest_prefix_then_lru)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 3, 64, 32, 4));
    ck_assert(sched_batch_init(&b, 32 + 3));
    const kinfer_token p1[] = {1, 2, 3, 4, 5}, p2[] = {9, 9, 9};
    int32_t s1, s2;
    run_prompt(&s, &b, p1, 5, &fake[0], &s1);
    run_prompt(&s, &b, p2, 3, &fake[1], &s2);
    ck_assert_int_ne(s1, s2);
    ck_assert_int_eq(s.slots[s1].n_cache, 5);

    /* shares 4 tokens with p1: goes to p1's slot, keeps 4 cells */
    const kinfer_token q[] = {1, 2, 3, 4, 7, 8};
    sched_admission a;
    ck_assert(sched_admit(&s, q, 6, true, &fake[2], &a));
    ck_assert_int_eq(a.slot, s1);
    ck_assert_int_eq(a.n_reuse, 4);
    ck_assert_int_eq(a.donor, -1);
    ck_assert_int_eq(s.slots[s1].n_prompt_done, 4);
    ck_assert_int_eq(s.slots[s1].n_cache, 4);

    /* nothing shared: the slot never used (least recently) */
    const kinfer_token r[] = {5, 5};
    ck_assert(sched_admit(&s, r, 2, true, &fake[3], &a));
    ck_assert_int_ne(a.slot, s1);
    ck_assert_int_ne(a.slot, s2);
    ck_assert_int_eq(a.n_reuse, 0);
    ck_assert_int_eq(sched_n_idle(&s), 1);
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

START_TEST(test_admit_copies_prefix_of_busy_slot)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 2, 64, 32, 4));
    ck_assert(sched_batch_init(&b, 34));
    const kinfer_token sys[] = {1, 2, 3, 4, 5, 6, 7, 8};
    sched_admission a0;
    ck_assert(sched_admit(&s, sys, 8, true, &fake[0], &a0));
    sched_build_batch(&s, &b);
    sched_commit_batch(&s, &b);
    sched_set_next(&s, a0.slot, 42);   /* slot a0 is generating, its cache holds sys */

    const kinfer_token q[] = {1, 2, 3, 4, 5, 6, 9};
    sched_admission a;
    ck_assert(sched_admit(&s, q, 7, true, &fake[1], &a));
    ck_assert_int_ne(a.slot, a0.slot);
    ck_assert_int_eq(a.donor, a0.slot);    /* copied with kv_seq_cp, not recomputed */
    ck_assert_int_eq(a.n_reuse, 6);
    ck_assert_int_eq(s.slots[a.slot].n_cache, 6);
    ck_assert_int_eq(memcmp(s.slots[a.slot].cache, sys, 6 * sizeof(kinfer_token)), 0);
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

START_TEST(test_admit_never_reuses_whole_prompt)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 1, 64, 32, 4));
    ck_assert(sched_batch_init(&b, 33));
    const kinfer_token p[] = {3, 1, 4, 1, 5};
    int32_t slot;
    run_prompt(&s, &b, p, 5, &fake[0], &slot);
    sched_admission a;
    ck_assert(sched_admit(&s, p, 5, true, &fake[1], &a));
    ck_assert_int_eq(a.n_reuse, 4);   /* the last token is decoded again for its logits */
    ck_assert_int_eq(sched_build_batch(&s, &b), 1);
    ck_assert_int_eq(b.pos[0], 4);
    ck_assert(b.logits[0]);
    sched_release(&s, a.slot, true);

    ck_assert(sched_admit(&s, p, 5, false, &fake[2], &a));   /* cache_prompt: false */
    ck_assert_int_eq(a.n_reuse, 0);
    ck_assert_int_eq(s.slots[a.slot].n_cache, 0);
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

START_TEST(test_admit_fails_when_all_busy)
{
    sched s;
    ck_assert(sched_init(&s, 2, 64, 32, 4));
    const kinfer_token p[] = {1, 2};
    sched_admission a;
    ck_assert(sched_admit(&s, p, 2, true, &fake[0], &a));
    ck_assert(sched_admit(&s, p, 2, true, &fake[1], &a));
    ck_assert(!sched_admit(&s, p, 2, true, &fake[2], &a));
    ck_assert_int_eq(sched_n_idle(&s), 0);
    sched_free(&s);
}
END_TEST

START_TEST(test_batch_mixes_generation_and_chunks)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 3, 256, 8, 4));
    ck_assert(sched_batch_init(&b, 8 + 3));
    kinfer_token gen_prompt[3] = {1, 2, 3}, longp[20];
    for (int i = 0; i < 20; i++) longp[i] = 100 + i;
    sched_admission g, l;
    ck_assert(sched_admit(&s, gen_prompt, 3, true, &fake[0], &g));
    ck_assert_int_eq(sched_build_batch(&s, &b), 3);
    sched_commit_batch(&s, &b);
    sched_set_next(&s, g.slot, 77);
    ck_assert(sched_admit(&s, longp, 20, true, &fake[1], &l));

    /* step: the generating slot's token first, then 8 prompt tokens */
    ck_assert_int_eq(sched_build_batch(&s, &b), 1 + 8);
    ck_assert_int_eq(b.slot[0], g.slot);
    ck_assert_int_eq(b.token[0], 77);
    ck_assert_int_eq(b.pos[0], 3);
    ck_assert(b.logits[0]);
    for (int k = 1; k < 9; k++) {
        ck_assert_int_eq(b.seq[k], l.slot);
        ck_assert_int_eq(b.pos[k], k - 1);
        ck_assert_int_eq(b.token[k], longp[k - 1]);
        ck_assert(!b.logits[k]);   /* not the prompt's last token */
    }
    sched_commit_batch(&s, &b);
    ck_assert_int_eq(s.slots[g.slot].n_cache, 4);
    ck_assert_int_eq(s.slots[l.slot].n_prompt_done, 8);
    sched_set_next(&s, g.slot, 78);

    /* two more steps finish the prompt; logits on its last token only */
    ck_assert_int_eq(sched_build_batch(&s, &b), 9);
    sched_commit_batch(&s, &b);
    sched_set_next(&s, g.slot, 79);
    ck_assert_int_eq(sched_build_batch(&s, &b), 1 + 4);
    ck_assert_int_eq(b.pos[4], 19);
    ck_assert(b.logits[4]);
    for (int k = 1; k < 4; k++) ck_assert(!b.logits[k]);
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

/* Each sequence appears with consecutive positions after its cache, once
 * per step (what kinfer_decode demands). */
static void check_batch_well_formed(const sched *s, const sched_batch *b)
{
    kinfer_pos next[8];
    for (int32_t i = 0; i < s->n_slots; i++) next[i] = s->slots[i].n_cache;
    for (int32_t k = 0; k < b->n; k++) {
        ck_assert_int_eq(b->seq[k], b->slot[k]);
        ck_assert_int_eq(b->pos[k], next[b->seq[k]]);
        next[b->seq[k]]++;
    }
}

START_TEST(test_batch_round_robin_fair_and_well_formed)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 4, 256, 6, 4));
    ck_assert(sched_batch_init(&b, 6 + 4));
    kinfer_token p[4][10];
    sched_admission a[4];
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 10; i++) p[r][i] = (kinfer_token)(r * 10 + i);
        ck_assert(sched_admit(&s, p[r], r == 0 ? 2 : 10, true, &fake[r], &a[r]));
    }
    /* a short prompt ahead of the others must not let any slot appear twice
     * in one step (the first slot's prompt is not committed until after the
     * decode) */
    int32_t served[4] = {0}, steps = 0;
    while (sched_build_batch(&s, &b) > 0 && steps < 20) {
        check_batch_well_formed(&s, &b);
        for (int32_t k = 0; k < b.n; k++) served[b.slot[k]]++;
        sched_commit_batch(&s, &b);
        for (int r = 0; r < 4; r++)
            if (s.slots[a[r].slot].state == SLOT_PROMPT &&
                s.slots[a[r].slot].n_prompt_done == s.slots[a[r].slot].n_prompt)
                sched_release(&s, a[r].slot, true);
        steps++;
    }
    ck_assert_int_eq(served[a[0].slot], 2);
    for (int r = 1; r < 4; r++) ck_assert_int_eq(served[a[r].slot], 10);
    ck_assert_int_le(steps, (2 + 30) / 6 + 1);   /* every step but the last is full */
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

START_TEST(test_slot_full_and_release)
{
    sched s;
    sched_batch b;
    ck_assert(sched_init(&s, 1, 4, 8, 2));
    ck_assert(sched_batch_init(&b, 9));
    const kinfer_token p[] = {1, 2, 3};
    sched_admission a;
    ck_assert(sched_admit(&s, p, 3, true, &fake[0], &a));
    sched_build_batch(&s, &b);
    sched_commit_batch(&s, &b);
    ck_assert(!sched_slot_full(&s, a.slot));
    sched_set_next(&s, a.slot, 9);
    ck_assert_int_eq(sched_build_batch(&s, &b), 1);
    sched_commit_batch(&s, &b);
    ck_assert(sched_slot_full(&s, a.slot));   /* 4 of 4 cells */

    /* cancelled: the tokens are forgotten (the engine removes the cells) */
    sched_release(&s, a.slot, false);
    ck_assert_int_eq(s.slots[a.slot].state, SLOT_IDLE);
    ck_assert_int_eq(s.slots[a.slot].n_cache, 0);
    ck_assert_ptr_null(s.slots[a.slot].request);
    ck_assert_int_eq(sched_build_batch(&s, &b), 0);
    sched_batch_free(&b);
    sched_free(&s);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_add_test(tc, test_common_prefix);
    tcase_add_test(tc, test_queue_bounded_fifo);
    tcase_add_test(tc, test_init_rejects_bad_sizes);
    tcase_add_test(tc, test_admit_prefers_longest_prefix_then_lru);
    tcase_add_test(tc, test_admit_copies_prefix_of_busy_slot);
    tcase_add_test(tc, test_admit_never_reuses_whole_prompt);
    tcase_add_test(tc, test_admit_fails_when_all_busy);
    tcase_add_test(tc, test_batch_mixes_generation_and_chunks);
    tcase_add_test(tc, test_batch_round_robin_fair_and_well_formed);
    tcase_add_test(tc, test_slot_full_and_release);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(sched_suite()); }
