/*
 * placement.c — the layer placement rules of placement.h.
 */
#include "runtime/placement.h"

#include <stdio.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

uint64_t placement_bytes(const placement_need *need, int32_t n)
{
    if (n <= 0) return 0;
    const int32_t n_rep = n < need->n_layer ? n : need->n_layer;
    uint64_t bytes = need->compute_bytes;
    for (int32_t il = need->n_layer - n_rep; il < need->n_layer; il++) bytes += need->layer_bytes[il];
    if (n > need->n_layer) bytes += need->output_bytes;
    return bytes;
}

kinfer_status placement_plan(const placement_need *need, int32_t n_gpu_layers, uint64_t free_bytes,
                             uint64_t margin_bytes, placement *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    const int32_t n_all = need->n_layer + 1; /* every repeating layer and the output */
    int32_t n;
    if (n_gpu_layers < 0) {
        /* the bytes grow with n: take the largest n that fits beside the margin */
        const uint64_t budget = free_bytes > margin_bytes ? free_bytes - margin_bytes : 0;
        for (n = n_all; n > 0 && placement_bytes(need, n) > budget; n--) {}
    } else {
        /* layers asked for by number go there if they fit at all */
        n = n_gpu_layers < n_all ? n_gpu_layers : n_all; /* llama.cpp's "-ngl 99" */
        const uint64_t bytes = placement_bytes(need, n);
        if (bytes > free_bytes) {
            if (err)
                snprintf(err, err_size,
                         "n_gpu_layers = %d needs %.1f MiB of GPU memory (%d layers%s and %.1f MiB "
                         "of scratch) but %.1f MiB are free",
                         n_gpu_layers, bytes / MIB, n < need->n_layer ? n : need->n_layer,
                         n > need->n_layer ? ", the output" : "", need->compute_bytes / MIB,
                         free_bytes / MIB);
            return KINFER_E_DEVICE;
        }
    }
    out->n_gpu_layers = n;
    out->first_gpu_layer = need->n_layer - (n < need->n_layer ? n : need->n_layer);
    out->output_on_gpu = n > need->n_layer;
    out->device_bytes = placement_bytes(need, n);
    return KINFER_OK;
}

kinfer_status placement_host_check(const host_need *need, uint64_t available_bytes, char *err,
                                   size_t err_size)
{
    const uint64_t alloc = need->kv_bytes + need->compute_bytes;
    if (!available_bytes || alloc <= available_bytes) return KINFER_OK;
    if (err)
        snprintf(err, err_size,
                 "n_ctx %u needs %.1f MiB of host memory (weights %.1f MiB, already mapped, + KV "
                 "cache %.1f MiB + scratch %.1f MiB); the KV cache and scratch do not fit in the "
                 "%.1f MiB available (MemAvailable)",
                 need->n_ctx, (need->weights_bytes + alloc) / MIB, need->weights_bytes / MIB,
                 need->kv_bytes / MIB, need->compute_bytes / MIB, available_bytes / MIB);
    return KINFER_E_NOMEM;
}
