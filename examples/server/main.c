/*
 * kinfer-server — an OpenAI- and llama-server-compatible HTTP server with
 * continuous batching and a prompt cache.
 *
 *   kinfer-server -m model.gguf [--port 8080] [-np 4] [-c 4096]
 *
 * main: flags (llama-server's names), the HTTP side first (so /health
 * answers 503 while the model loads), then the model and the engine, then
 * wait for SIGINT/SIGTERM: stop accepting, cancel what is in flight, exit 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/args.h"
#include "http.h"
#include "router.h"
#include "server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kinfer-server -m MODEL.gguf [options]\n"
            "       kinfer-server --models-dir DIR [options]\n"
            "\n"
            "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models),\n"
            "llama-server's (/completion, /infill, /tokenize, /detokenize, /health, /slots,\n"
            "/metrics) and Ollama's (/api/generate, /api/chat, /api/tags, /api/ps, /api/show,\n"
            "/api/version).  Flags mean what llama-server's do.\n"
            "\n"
            "  -m, --model FILE            GGUF model, loaded at start, kept loaded\n"
            "  --models-dir DIR            serve every DIR/*.gguf by its file name without .gguf,\n"
            "                              loaded when a request names it; DIR/models.json may give\n"
            "                              per model: file, aliases, ctx_size, parallel, n_predict,\n"
            "                              temperature, seed, chat_template, keep_alive\n"
            "  --mem-budget SIZE           memory the loaded models may need in all, by\n"
            "                              kinfer_model_estimate (512M, 8G; default: 3/4 of the\n"
            "                              RAM available at start); idle models are unloaded least\n"
            "                              recently used first to make room\n"
            "  --max-loaded-models N       models loaded at once (default: no cap but the budget;\n"
            "                              also --models-max, llama-server's name)\n"
            "  --keep-alive DURATION       how long a model stays loaded after its last request\n"
            "                              (Ollama's: 5m default with --models-dir, 0 = unload at\n"
            "                              once, negative = forever, the default with -m)\n"
            "  -a, --alias NAME            the model name clients see (default: the file name)\n"
            "  --host ADDR                 IPv4 address to bind (default 127.0.0.1)\n"
            "  --port N                    TCP port (default 8080; 0 = any free one, printed)\n"
            "  -c, --ctx-size N            KV cache cells in all (default 4096); each slot holds\n"
            "                              up to N / -np of them\n"
            "  -np, --parallel N           slots: requests decoded together (default 4)\n"
            "  -b, --batch-size N          prompt tokens per scheduler step (default 2048)\n"
            "  -ub, --ubatch-size N        tokens per micro-batch of a step (default 512)\n"
            "  -t, --threads N             threads (default: one per core)\n"
            "  -n, --n-predict N           default tokens per request (-1 = until the slot is full)\n"
            "  --temp X                    default temperature (default 0.8)\n"
            "  -s, --seed N                default seed (-1 = random per request)\n"
            "  --chat-template NAME        a built-in template instead of the model's\n"
            "  --api-key KEY               require 'Authorization: Bearer KEY' (also KINFER_API_KEY);\n"
            "                              /health stays open\n"
            "  --metrics                   enable GET /metrics (Prometheus text)\n"
            "  --max-body BYTES            largest request body (default 8388608)\n"
            "  --max-queue N               requests waiting for a slot before 503 (default 256)\n"
            "  -ctk, --cache-type-k T      KV key type: f16 (default), q8_0, f32\n"
            "  -ctv, --cache-type-v T      KV value type\n"
            "  -ngl, --n-gpu-layers N      layers on the GPU (-1 = as many as fit, 0 = none)\n"
            "  -fa, --flash-attn on|off|auto  flash attention (default auto: on, as llama.cpp)\n"
            "  --embeddings               serve embeddings only (/v1/embeddings, /api/embed)\n"
            "  --pooling none|mean|cls|last   embeddings' pooling (default: the model's)\n"
            "  -h, --help, --version\n");
}

/* 3/4 of the RAM available now (MemAvailable; the physical pages free
 * where /proc/meminfo lacks it). */
static uint64_t default_budget(void)
{
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) avail = (uint64_t)kb * 1024;
    }
    if (f) fclose(f);
    if (!avail) avail = (uint64_t)sysconf(_SC_AVPHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    return avail / 4 * 3;
}

static void parse_args(int argc, char **argv, server_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 8u << 20;
    o->api_key = getenv("KINFER_API_KEY");
    o->model.n_predict = -1;
    o->model.temperature = 0.8f;
    o->model.seed = -1;
    o->model.keep_alive_ms = KEEP_ALIVE_UNSET;
    engine_params *e = &o->model.engine;
    e->cparams = kinfer_context_default_params();
    e->cparams.n_ctx = 4096;
    e->n_slots = 4;
    e->n_batch = 2048;
    e->queue_cap = 256;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
#define IS(x) (!strcmp(f, x))
        if (IS("-h") || IS("--help")) {
            usage(stdout);
            exit(0);
        }
        if (IS("--version")) {
            printf("kinfer-server %s (libkinfer %s)\n", KINFER_SERVER_VERSION, kinfer_version());
            exit(0);
        }
        if (IS("--metrics")) {
            o->metrics_enabled = true;
            continue;
        }
        if (IS("--cont-batching") || IS("-cb")) continue;   /* always on */
        if (IS("--embeddings") || IS("--embedding")) {   /* llama-server's: embeddings only */
            e->cparams.embeddings = true;
            continue;
        }
        if (i + 1 >= argc) args_die("%s needs a value, or is unknown (see -h)", f);
        const char *v = argv[++i];
        if (IS("-m") || IS("--model")) o->model_path = v;
        else if (IS("-a") || IS("--alias")) o->alias = v;
        else if (IS("--host")) o->host = v;
        else if (IS("--port")) o->port = (int)args_int(f, v, 0, 65535);
        else if (IS("-c") || IS("--ctx-size")) e->cparams.n_ctx = (uint32_t)args_int(f, v, 0, INT32_MAX);
        else if (IS("-np") || IS("--parallel")) e->n_slots = (int32_t)args_int(f, v, 1, KINFER_MAX_SEQ);
        else if (IS("-b") || IS("--batch-size")) e->n_batch = (int32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-ub") || IS("--ubatch-size")) e->cparams.n_batch = (uint32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-t") || IS("--threads")) e->cparams.n_threads = (int32_t)args_int(f, v, -1, 4096);
        else if (IS("-n") || IS("--n-predict")) o->model.n_predict = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("--temp")) o->model.temperature = args_float(f, v);
        else if (IS("-s") || IS("--seed")) o->model.seed = args_int(f, v, -1, INT64_MAX);
        else if (IS("--chat-template")) o->model.chat_template = v;
        else if (IS("--models-dir")) o->models_dir = v;
        else if (IS("--mem-budget")) {
            if (!router_parse_size(v, &o->mem_budget) || o->mem_budget == 0)
                args_die("%s: '%s' is not a size (512M, 8G, bytes)", f, v);
        } else if (IS("--max-loaded-models") || IS("--models-max"))
            o->max_loaded = (int32_t)args_int(f, v, 0, INT32_MAX);
        else if (IS("--keep-alive")) {
            if (!router_parse_duration(v, &o->model.keep_alive_ms))
                args_die("%s: '%s' is not a duration (5m, 1h, 30s, -1)", f, v);
        }
        else if (IS("--api-key")) o->api_key = v;
        else if (IS("--max-body")) o->max_body = (size_t)args_int(f, v, 1, 1ll << 32);
        else if (IS("--max-queue")) e->queue_cap = (int32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-ctk") || IS("--cache-type-k")) e->cparams.type_k = args_kv_type(f, v);
        else if (IS("-ctv") || IS("--cache-type-v")) e->cparams.type_v = args_kv_type(f, v);
        else if (IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers"))
            e->cparams.n_gpu_layers = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("-fa") || IS("--flash-attn")) e->cparams.flash_attn = args_flash_attn(f, v);
        else if (IS("--pooling")) {
            static const char *const names[] = {"none", "mean", "cls", "last", "rank"};
            int k = 0;
            while (k < 5 && strcmp(v, names[k])) k++;
            if (k == 5) args_die("%s: '%s' is not one of none, mean, cls, last, rank", f, v);
            e->cparams.pooling = (kinfer_pooling)k;
        }
        else args_die("unknown option %s (see -h)", f);
#undef IS
    }
    if (!o->model_path == !o->models_dir) {
        usage(stderr);
        args_die(o->model_path ? "-m and --models-dir: give one" : "no model given (-m or --models-dir)");
    }
    if (o->model.keep_alive_ms == KEEP_ALIVE_UNSET) o->model.keep_alive_ms = o->model_path ? -1 : 5 * 60 * 1000;
    if (!o->mem_budget) o->mem_budget = default_budget();
    if (o->api_key && !*o->api_key) o->api_key = NULL;
    if (e->cparams.n_threads < 0) e->cparams.n_threads = 0;
    if (!o->alias && o->model_path) {
        const char *slash = strrchr(o->model_path, '/');
        o->alias = slash ? slash + 1 : o->model_path;
    }
}

int main(int argc, char **argv)
{
    args_program("kinfer-server");
    server srv = {0};
    parse_args(argc, argv, &srv.opt);
    srv.created = (int64_t)time(NULL);
    metrics_init(&srv.metrics);

    /* Signals are taken by sigwait below, in this thread only. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    char err[512];
    http_server *http = http_start(&srv, err, sizeof err);
    if (!http) args_die("%s", err);
    fprintf(stderr, "kinfer-server: listening on http://%s:%d\n", srv.opt.host, http_port(http));
    fprintf(stderr, "kinfer-server: memory budget %.0f MiB%s\n", (double)srv.opt.mem_budget / (1 << 20),
            srv.opt.models_dir ? "" : " (-m: one model)");

    /* (the HTTP side reads srv.router once it is set: answers 503 before) */
    router *rt = router_new(&srv, err, sizeof err);
    if (!rt) {
        fprintf(stderr, "kinfer-server: %s\n", err);
        http_stop(http);
        metrics_destroy(&srv.metrics);
        return 1;
    }
    atomic_store(&srv.router, rt);
    fprintf(stderr, "kinfer-server: ready\n");

    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "kinfer-server: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_quiesce(http);
    router_stop(rt);   /* in-flight requests end as cancelled */
    http_stop(http);
    router_free(rt);
    metrics_destroy(&srv.metrics);
    return 0;
}
