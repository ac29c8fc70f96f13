/*
 * placement.h — which layers of a model go to the GPU (internal).
 *
 * n_gpu_layers has llama.cpp's meaning: the last N repeating layers go to
 * the GPU, and when N exceeds the layer count the output layer (final norm
 * and output matrix) too; the token embedding always stays in host memory.
 * N < 0 asks for as many as fit in the device's free memory less a margin
 * the caller sets.  A layer on the GPU brings its weights and its KV cache;
 * the first layer there also brings the device's compute scratch.
 *
 * Pure arithmetic on sizes, so the rules are tested with simulated devices.
 */
#ifndef KINFER_PLACEMENT_H
#define KINFER_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"

typedef struct placement_need {
    int32_t n_layer;
    const uint64_t *layer_bytes; /* (n_layer) weights + KV cache of each repeating layer */
    uint64_t output_bytes;       /* output norm + output matrix */
    uint64_t compute_bytes;      /* device scratch, once any layer is on the device */
} placement_need;

typedef struct placement {
    int32_t n_gpu_layers;     /* as llama.cpp counts them: n_layer + 1 = every layer and the output */
    int32_t first_gpu_layer;  /* repeating layers [first_gpu_layer, n_layer) are on the GPU */
    int output_on_gpu;
    uint64_t device_bytes;    /* everything placed on the device */
} placement;

/* Device bytes of the first n (llama.cpp count, 0 .. n_layer + 1) layers. */
uint64_t placement_bytes(const placement_need *need, int32_t n);

/* Place n_gpu_layers (< 0: automatic) on a device with free_bytes free.
 * Automatic placement takes as many as fit in free_bytes - margin_bytes,
 * possibly none; layers demanded by number must fit in free_bytes, else
 * KINFER_E_DEVICE with a message (into err) saying what was needed and
 * what was free. */
kinfer_status placement_plan(const placement_need *need, int32_t n_gpu_layers, uint64_t free_bytes,
                             uint64_t margin_bytes, placement *out, char *err, size_t err_size);

/* What a context takes from host memory: the weights read from their
 * mapped file pages (already there, not allocated again), and what the
 * context allocates: the host KV cache and the scratch. */
typedef struct host_need {
    uint32_t n_ctx;
    uint64_t weights_bytes, kv_bytes, compute_bytes;
} host_need;

/* The allocations (KV + scratch) must fit in available_bytes (the machine's
 * MemAvailable); else KINFER_E_NOMEM with the estimate and what is
 * available in err.  available_bytes 0 = unknown: no check. */
kinfer_status placement_host_check(const host_need *need, uint64_t available_bytes, char *err,
                                   size_t err_size);

#endif /* KINFER_PLACEMENT_H */
