/* router.c — the models, loaded on demand within a memory budget (see router.h). */
#include "router.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_ALIASES 8

typedef enum model_state { MODEL_UNLOADED, MODEL_LOADING, MODEL_LOADED } model_state;

/* One model the server knows.  Never freed before router_free, so a
 * served pointer stays valid while a request holds it. */
typedef struct rmodel {
    char name[128];
    char path[512];
    char *aliases[MAX_ALIASES];
    int n_aliases;
    bool from_json;            /* named in models.json: kept when its file is gone */
    bool gone;                 /* its file left the directory (and it is not loaded) */
    model_opts opt;

    /* under router.mu */
    model_state state;
    bool queued;               /* a load is asked for (load_seq orders them) */
    bool draining;             /* chosen for eviction: new requests wait until it is out */
    uint64_t load_seq;
    uint64_t fail_gen;         /* bumped by each failed load: its waiters give up */
    char error[256];
    int error_status;
    int active;                /* requests holding it */
    uint64_t last_used_ns;
    int64_t keep_alive_ms;     /* what applies after its last request */
    uint64_t expires_ns;       /* idle and loaded: when keep_alive unloads it (0 = never) */
    uint64_t mem_bytes, device_bytes;
    _Atomic float progress;
    uint64_t loads, evictions, unloads;
    double load_seconds;

    served sv;
    metrics metrics;           /* its engine's counters */
} rmodel;

struct router {
    server *srv;
    bool single;               /* -m: every name routes to the one model */
    pthread_mutex_t mu;
    pthread_cond_t changed;    /* a load ended, a model was released or unloaded */
    pthread_cond_t work;       /* the worker has something to do */
    rmodel **models;
    int n_models;
    uint64_t next_load_seq;
    uint64_t used_bytes;       /* sum of the loaded models' mem_bytes */
    int n_loaded;
    bool stopping;
    pthread_t worker;
    bool worker_started;
    bool ready;
};

/* ------------------------------------------------------------ parsing */

int64_t router_seconds_ms(double seconds)
{
    double ms = seconds * 1000;
    return ms > 9e15 ? (int64_t)9e15 : ms < -9e15 ? (int64_t)-9e15 : (int64_t)ms;
}

bool router_parse_duration(const char *s, int64_t *ms)
{
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return false;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v)) return false;
    if (!*end) {   /* a bare number: seconds */
        *ms = router_seconds_ms(v);
        return true;
    }
    /* Go's time.ParseDuration: a sequence of number+unit, one sign in front */
    double total = 0;
    bool neg = *s == '-';
    const char *p = neg || *s == '+' ? s + 1 : s;
    while (*p) {
        v = strtod(p, &end);
        if (end == p || v < 0) return false;
        p = end;
        double unit;
        if (!strncmp(p, "ms", 2)) unit = 1, p += 2;
        else if (!strncmp(p, "us", 2) || !strncmp(p, "\xC2\xB5s", 3)) unit = 1e-3, p += p[0] == 'u' ? 2 : 3;
        else if (!strncmp(p, "ns", 2)) unit = 1e-6, p += 2;
        else if (*p == 's') unit = 1e3, p++;
        else if (*p == 'm') unit = 60e3, p++;
        else if (*p == 'h') unit = 3600e3, p++;
        else return false;
        total += v * unit;
    }
    if (total > 9e15) total = 9e15;
    *ms = (int64_t)(neg ? -total : total);
    return true;
}

bool router_parse_size(const char *s, uint64_t *bytes)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return false;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mul = 1024.0; break;
    case 'M': mul = 1024.0 * 1024; break;
    case 'G': mul = 1024.0 * 1024 * 1024; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
    default: return false;
    }
    if (*end) {
        end++;
        if (toupper((unsigned char)*end) == 'I') end++;
        if (toupper((unsigned char)*end) == 'B') end++;
        if (*end) return false;
    }
    if (v * mul >= 1.8e19) return false;
    *bytes = (uint64_t)(v * mul);
    return true;
}

/* ------------------------------------------------------------ the table */

static uint64_t now_ns(void) { return gen_now_ns(); }

static rmodel *find_name(router *rt, const char *name)
{
    for (int i = 0; i < rt->n_models; i++) {
        rmodel *m = rt->models[i];
        if (m->gone) continue;
        if (!strcmp(m->name, name)) return m;
        for (int j = 0; j < m->n_aliases; j++)
            if (!strcmp(m->aliases[j], name)) return m;
    }
    return NULL;
}

/* A name as clients write it: exact, or Ollama's "name:latest" for "name". */
static rmodel *find_model(router *rt, const char *name)
{
    rmodel *m = find_name(rt, name);
    size_t n = strlen(name);
    if (!m && n > 7 && !strcmp(name + n - 7, ":latest")) {
        char base[160];
        snprintf(base, sizeof base, "%.*s", (int)(n - 7), name);
        m = find_name(rt, base);
    }
    return m;
}

static rmodel *add_model(router *rt, const char *name, const char *path, char *err, size_t err_size)
{
    rmodel **grown = realloc(rt->models, (size_t)(rt->n_models + 1) * sizeof *grown);
    rmodel *m = calloc(1, sizeof *m);
    if (grown) rt->models = grown;
    if (!grown || !m || strlen(name) >= sizeof m->name || strlen(path) >= sizeof m->path) {
        free(m);
        snprintf(err, err_size, "%s: %s", name, grown && m ? "name or path too long" : "out of memory");
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->opt = rt->srv->opt.model;
    m->keep_alive_ms = m->opt.keep_alive_ms;
    metrics_init(&m->metrics);
    rt->models[rt->n_models++] = m;
    return m;
}

static bool is_gguf(const char *fname, size_t *stem_len)
{
    size_t n = strlen(fname);
    if (n <= 5 || strcmp(fname + n - 5, ".gguf") || fname[0] == '.') return false;
    *stem_len = n - 5;
    return true;
}

/* Every *.gguf of the directory that is not known yet; known ones whose
 * file is gone are hidden unless loaded (a loaded one keeps serving: its
 * pages are mapped).  With router.mu held. */
static void rescan(router *rt)
{
    const char *dir = rt->srv->opt.models_dir;
    if (!dir) return;
    for (int i = 0; i < rt->n_models; i++) {
        rmodel *m = rt->models[i];
        struct stat st;
        m->gone = stat(m->path, &st) != 0 && m->state == MODEL_UNLOADED && !m->queued && m->active == 0;
    }
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t stem;
        if (!is_gguf(de->d_name, &stem)) continue;
        char name[128], path[512];
        if (stem >= sizeof name || snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        snprintf(name, sizeof name, "%.*s", (int)stem, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        bool known = false;
        for (int i = 0; i < rt->n_models && !known; i++) known = !strcmp(rt->models[i]->path, path);
        if (known || find_name(rt, name)) continue;
        char err[64];
        add_model(rt, name, path, err, sizeof err);
    }
    closedir(d);
}

/* ------------------------------------------------------------ models.json */

static bool json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n,
                     const char *model)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi) {
        snprintf(err, n, "models.json: %s.%s must be an integer in [%lld, %lld]", model, key, (long long)lo,
                 (long long)hi);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

/* One model's entry: {"file", "aliases", "ctx_size", "parallel", "n_predict",
 * "temperature", "seed", "chat_template", "keep_alive"}. */
static bool apply_settings(router *rt, rmodel *m, const cJSON *o, char *err, size_t n)
{
    static const char *const known[] = {"file", "aliases", "ctx_size", "parallel", "n_predict", "temperature",
                                        "seed", "chat_template", "keep_alive"};
    const cJSON *f;
    cJSON_ArrayForEach(f, o)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(f->string, known[i]);
        if (!ok) {
            snprintf(err, n, "models.json: %s: unknown setting '%s' (known: file, aliases, ctx_size, parallel, "
                     "n_predict, temperature, seed, chat_template, keep_alive)", m->name, f->string);
            return false;
        }
    }
    int64_t ctx = m->opt.engine.cparams.n_ctx, np = m->opt.engine.n_slots, n_predict = m->opt.n_predict,
            seed = m->opt.seed;
    if (!json_int(o, "ctx_size", 0, INT32_MAX, &ctx, err, n, m->name) ||
        !json_int(o, "parallel", 1, KINFER_MAX_SEQ, &np, err, n, m->name) ||
        !json_int(o, "n_predict", -1, INT32_MAX, &n_predict, err, n, m->name) ||
        !json_int(o, "seed", -1, INT64_MAX, &seed, err, n, m->name))
        return false;
    m->opt.engine.cparams.n_ctx = (uint32_t)ctx;
    m->opt.engine.n_slots = (int32_t)np;
    m->opt.n_predict = (int32_t)n_predict;
    m->opt.seed = seed;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "temperature");
    if (v) {
        if (!cJSON_IsNumber(v)) return snprintf(err, n, "models.json: %s.temperature must be a number", m->name), false;
        m->opt.temperature = (float)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "chat_template");
    if (v) {
        if (!cJSON_IsString(v)) return snprintf(err, n, "models.json: %s.chat_template must be a string", m->name), false;
        m->opt.chat_template = strdup(v->valuestring);
        m->sv.template_used = m->opt.chat_template;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "keep_alive");
    if (v) {
        int64_t ms;
        bool ok = cJSON_IsNumber(v) ? (ms = router_seconds_ms(v->valuedouble), true)
                : cJSON_IsString(v) && router_parse_duration(v->valuestring, &ms);
        if (!ok) return snprintf(err, n, "models.json: %s.keep_alive must be a duration (\"5m\") or seconds", m->name), false;
        m->opt.keep_alive_ms = m->keep_alive_ms = ms;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "aliases");
    if (v) {
        if (!cJSON_IsArray(v)) return snprintf(err, n, "models.json: %s.aliases must be an array of names", m->name), false;
        const cJSON *a;
        cJSON_ArrayForEach(a, v)
        {
            if (!cJSON_IsString(a) || !*a->valuestring)
                return snprintf(err, n, "models.json: %s.aliases must be an array of names", m->name), false;
            rmodel *other = find_name(rt, a->valuestring);
            if (other && other != m)
                return snprintf(err, n, "models.json: alias '%s' of %s is already the name of %s", a->valuestring,
                                m->name, other->name), false;
            if (m->n_aliases == MAX_ALIASES - 1)
                return snprintf(err, n, "models.json: %s: at most %d aliases", m->name, MAX_ALIASES - 1), false;
            if (!(m->aliases[m->n_aliases] = strdup(a->valuestring))) return snprintf(err, n, "out of memory"), false;
            m->n_aliases++;
        }
    }
    return true;
}

static bool read_models_json(router *rt, char *err, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/models.json", rt->srv->opt.models_dir);
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? true : (snprintf(err, n, "%s: %s", path, strerror(errno)), false);
    textbuf text = {0};
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) textbuf_append(&text, buf, k);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(textbuf_str(&text), text.n);
    textbuf_free(&text);
    bool ok = cJSON_IsObject(root);
    if (!ok) snprintf(err, n, "%s: not a JSON object {\"model name\": {settings}}", path);
    const cJSON *entry, *top = ok ? root : NULL;
    cJSON_ArrayForEach(entry, top)
    {
        if (!cJSON_IsObject(entry)) {
            snprintf(err, n, "models.json: %s must be an object of settings", entry->string);
            ok = false;
            break;
        }
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(entry, "file");
        if (file && !cJSON_IsString(file)) {
            snprintf(err, n, "models.json: %s.file must be a string (a path in the directory)", entry->string);
            ok = false;
            break;
        }
        rmodel *m = find_name(rt, entry->string);
        if (file) {
            char p[512];
            snprintf(p, sizeof p, "%s%s%s", file->valuestring[0] == '/' ? "" : rt->srv->opt.models_dir,
                     file->valuestring[0] == '/' ? "" : "/", file->valuestring);
            if (m && strcmp(m->path, p)) {
                snprintf(err, n, "models.json: %s: the name is taken by %s", entry->string, m->path);
                ok = false;
                break;
            }
            if (!m && !(m = add_model(rt, entry->string, p, err, n))) {
                ok = false;
                break;
            }
        }
        if (!m) {
            snprintf(err, n, "models.json: %s: no %s.gguf in %s (give \"file\")", entry->string, entry->string,
                     rt->srv->opt.models_dir);
            ok = false;
            break;
        }
        m->from_json = true;
        if (!(ok = apply_settings(rt, m, entry, err, n))) break;
    }
    cJSON_Delete(root);
    return ok;
}

/* ------------------------------------------------------------ load, unload */

static bool on_progress(float p, void *user)
{
    rmodel *m = user;
    atomic_store(&m->progress, p);
    return true;
}

/* With mu held: free a loaded model's engine and weights. */
static void unload(router *rt, rmodel *m, bool evicted)
{
    fprintf(stderr, "kinfer-server: %s: unloaded (%s)\n", m->name, evicted ? "evicted for memory" : "keep_alive");
    engine_free(m->sv.engine);
    kinfer_model_free(m->sv.model);
    m->sv.engine = NULL;
    m->sv.model = NULL;
    m->state = MODEL_UNLOADED;
    m->draining = false;
    rt->used_bytes -= m->mem_bytes;
    rt->n_loaded--;
    m->mem_bytes = m->device_bytes = 0;
    m->unloads++;
    if (evicted) m->evictions++;
    pthread_cond_broadcast(&rt->changed);
}

/* With mu held: the load of m failed: its waiters get the reason. */
static void load_failed(router *rt, rmodel *m, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void load_failed(router *rt, rmodel *m, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    m->error_status = status;
    m->state = MODEL_UNLOADED;
    m->queued = false;
    m->fail_gen++;
    fprintf(stderr, "kinfer-server: %s: %s\n", m->name, m->error);
    pthread_cond_broadcast(&rt->changed);
}

/* With mu held: the idle loaded model used least recently, other than m. */
static rmodel *lru_victim(router *rt, const rmodel *m, bool idle_only)
{
    rmodel *best = NULL;
    for (int i = 0; i < rt->n_models; i++) {
        rmodel *c = rt->models[i];
        if (c == m || c->state != MODEL_LOADED || (idle_only && c->active)) continue;
        if (!best || c->last_used_ns < best->last_used_ns) best = c;
    }
    return best;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

/* With mu held (dropped while reading the file and making the context). */
static void load(router *rt, rmodel *m)
{
    m->state = MODEL_LOADING;
    atomic_store(&m->progress, 0.0f);
    uint64_t t0 = now_ns();
    fprintf(stderr, "kinfer-server: %s: loading %s\n", m->name, m->path);
    pthread_mutex_unlock(&rt->mu);
    kinfer_model_params mp = kinfer_model_default_params();
    mp.progress = on_progress;
    mp.progress_user_data = m;
    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(m->path, &mp, &model);
    char why[256] = "";
    kinfer_estimate est = {0};
    /* an encoder (BERT) serves embeddings whatever --embeddings says: it has nothing else */
    if (st == KINFER_OK && kinfer_model_encoder_only(model)) m->opt.engine.cparams.embeddings = true;
    if (st != KINFER_OK) snprintf(why, sizeof why, "%s", model ? kinfer_model_errmsg(model) : kinfer_status_str(st));
    else if ((st = kinfer_model_estimate(model, &m->opt.engine.cparams, &est)) != KINFER_OK)
        snprintf(why, sizeof why, "estimate: %s", est.errmsg[0] ? est.errmsg : kinfer_status_str(st));
    pthread_mutex_lock(&rt->mu);
    if (why[0]) {
        kinfer_model_free(model);
        load_failed(rt, m, 500, "cannot load %s: %s", m->path, why);
        return;
    }
    uint64_t need = est.host_bytes + est.device_bytes, budget = rt->srv->opt.mem_budget;
    if (need > budget) {
        kinfer_model_free(model);
        load_failed(rt, m, 500, "%s needs %.1f MiB (kinfer_model_estimate with -c %u), more than the whole memory "
                    "budget of %.1f MiB (--mem-budget)", m->name, mib(need), m->opt.engine.cparams.n_ctx, mib(budget));
        return;
    }
    /* make room: idle models first, least recently used first; a busy one
     * is drained (its new requests wait) and unloaded once idle */
    int32_t cap = rt->srv->opt.max_loaded;
    while (!rt->stopping && (rt->used_bytes + need > budget || (cap > 0 && rt->n_loaded >= cap))) {
        rmodel *v = lru_victim(rt, m, true);
        if (v) {
            unload(rt, v, true);
            continue;
        }
        if ((v = lru_victim(rt, m, false))) v->draining = true;
        pthread_cond_wait(&rt->changed, &rt->mu);
    }
    for (int i = 0; i < rt->n_models; i++) rt->models[i]->draining = false;
    if (rt->stopping) {
        kinfer_model_free(model);
        load_failed(rt, m, 503, "the server is shutting down");
        return;
    }
    m->sv = (served){.alias = m->name, .opt = m->opt, .model = model, .template_used = m->opt.chat_template,
                     .created = rt->srv->created};
    rt->used_bytes += need;   /* held while the context is made */
    rt->n_loaded++;
    m->mem_bytes = need;
    m->device_bytes = est.device_bytes;
    pthread_mutex_unlock(&rt->mu);
    char err[256];
    engine *e = engine_start(model, &m->opt.engine, &m->metrics, err, sizeof err);
    pthread_mutex_lock(&rt->mu);
    if (!e) {
        kinfer_model_free(model);
        rt->used_bytes -= need;
        rt->n_loaded--;
        m->mem_bytes = m->device_bytes = 0;
        load_failed(rt, m, 500, "%s", err);
        return;
    }
    m->sv.engine = e;
    m->state = MODEL_LOADED;
    m->queued = false;
    m->error[0] = '\0';
    m->loads++;
    m->load_seconds += (double)(now_ns() - t0) / 1e9;
    m->last_used_ns = now_ns();
    m->expires_ns = 0;
    atomic_store(&m->progress, 1.0f);
    fprintf(stderr, "kinfer-server: %s: loaded in %.0f ms, %.1f MiB (%.1f of %.1f MiB in use), %d slots of %d tokens\n",
            m->name, (double)(now_ns() - t0) / 1e6, mib(need), mib(rt->used_bytes), mib(budget),
            engine_n_slots(e), engine_n_ctx_slot(e));
    pthread_cond_broadcast(&rt->changed);
}

/* The worker: loads in the order asked, and keep_alive expiries. */
static void *worker_main(void *arg)
{
    router *rt = arg;
    pthread_mutex_lock(&rt->mu);
    while (!rt->stopping) {
        uint64_t now = now_ns(), next = 0;
        for (int i = 0; i < rt->n_models; i++) {
            rmodel *m = rt->models[i];
            if (m->state != MODEL_LOADED || m->active || !m->expires_ns) continue;
            if (m->expires_ns <= now) unload(rt, m, false);
            else if (!next || m->expires_ns < next) next = m->expires_ns;
        }
        rmodel *todo = NULL;
        for (int i = 0; i < rt->n_models; i++) {
            rmodel *m = rt->models[i];
            if (m->queued && m->state == MODEL_UNLOADED && (!todo || m->load_seq < todo->load_seq)) todo = m;
        }
        if (todo) {
            load(rt, todo);
            continue;
        }
        if (!next) {
            pthread_cond_wait(&rt->work, &rt->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait = next - now;
        ts.tv_sec += (time_t)(wait / 1000000000u);
        ts.tv_nsec += (long)(wait % 1000000000u);
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&rt->work, &rt->mu, &ts);
    }
    pthread_mutex_unlock(&rt->mu);
    return NULL;
}

/* ------------------------------------------------------------ requests */

served *router_acquire(router *rt, const char *name, uint64_t *load_ns, api_error *err)
{
    *load_ns = 0;
    pthread_mutex_lock(&rt->mu);
    rmodel *m = NULL;
    if (rt->single) m = rt->models[0];
    else if (!name || !*name) {
        pthread_mutex_unlock(&rt->mu);
        oai_set_error(err, 400, "invalid_request_error", "'model' is required: this server has several (GET /v1/models)");
        return NULL;
    } else if (!(m = find_model(rt, name)) || m->state == MODEL_UNLOADED) {
        rescan(rt);   /* a new file, or the file of an unloaded one gone */
        m = find_model(rt, name);
    }
    if (!m) {
        pthread_mutex_unlock(&rt->mu);
        oai_set_error(err, 404, "not_found_error", "model '%s' not found", name);
        return NULL;
    }
    uint64_t fail_gen = m->fail_gen, t0 = 0;
    for (;;) {
        if (rt->stopping) {
            pthread_mutex_unlock(&rt->mu);
            oai_set_error(err, 503, "unavailable_error", "the server is shutting down");
            return NULL;
        }
        if (m->state == MODEL_LOADED && !m->draining) break;
        if (m->fail_gen != fail_gen) {
            oai_set_error(err, m->error_status, m->error_status == 503 ? "unavailable_error" : "server_error",
                          "model '%s': %s", m->name, m->error);
            pthread_mutex_unlock(&rt->mu);
            return NULL;
        }
        if (!t0) t0 = now_ns();
        if (m->state == MODEL_UNLOADED && !m->queued) {
            m->queued = true;
            m->load_seq = ++rt->next_load_seq;
            pthread_cond_signal(&rt->work);
        }
        pthread_cond_wait(&rt->changed, &rt->mu);
    }
    m->active++;
    m->expires_ns = 0;
    m->last_used_ns = now_ns();
    if (t0) *load_ns = now_ns() - t0;
    pthread_mutex_unlock(&rt->mu);
    return &m->sv;
}

served *router_acquire_loaded(router *rt, const char *name)
{
    pthread_mutex_lock(&rt->mu);
    rmodel *m = rt->single ? rt->models[0] : find_model(rt, name);
    served *sv = NULL;
    if (m && m->state == MODEL_LOADED && !rt->stopping) {
        m->active++;
        sv = &m->sv;
    }
    pthread_mutex_unlock(&rt->mu);
    return sv;
}

/* A hold ends.  A request's (as_request) sets the keep_alive that applies
 * from now on (Ollama's: the request's, else the model's own) and counts
 * as a use; a listing's hold changes neither. */
static void release(router *rt, served *sv, int64_t keep_alive_ms, bool as_request)
{
    if (!sv) return;
    pthread_mutex_lock(&rt->mu);
    rmodel *m = NULL;
    for (int i = 0; i < rt->n_models && !m; i++)
        if (&rt->models[i]->sv == sv) m = rt->models[i];
    if (as_request) {
        m->keep_alive_ms = keep_alive_ms != KEEP_ALIVE_UNSET ? keep_alive_ms : m->opt.keep_alive_ms;
        m->last_used_ns = now_ns();
    }
    if (--m->active == 0) {
        /* (negative, or past a century: never) */
        bool never = m->keep_alive_ms < 0 || m->keep_alive_ms > 100ll * 365 * 86400 * 1000;
        m->expires_ns = never ? 0 : m->last_used_ns + (uint64_t)m->keep_alive_ms * 1000000u;
        pthread_cond_signal(&rt->work);
        pthread_cond_broadcast(&rt->changed);   /* a load may wait for this one to go idle */
    }
    pthread_mutex_unlock(&rt->mu);
}

void router_release(router *rt, served *sv, int64_t keep_alive_ms) { release(rt, sv, keep_alive_ms, true); }
void router_unhold(router *rt, served *sv) { release(rt, sv, KEEP_ALIVE_UNSET, false); }

/* ------------------------------------------------------------ lifetime */

router *router_new(server *srv, char *err, size_t err_size)
{
    router *rt = calloc(1, sizeof *rt);
    if (!rt) return snprintf(err, err_size, "out of memory"), NULL;
    rt->srv = srv;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->changed, NULL);
    pthread_cond_init(&rt->work, NULL);
    const server_options *o = &srv->opt;
    bool ok = true;
    if (o->model_path) {
        rt->single = true;
        ok = add_model(rt, o->alias, o->model_path, err, err_size) != NULL;
    } else {
        DIR *d = opendir(o->models_dir);
        if (!d) {
            snprintf(err, err_size, "--models-dir %s: %s", o->models_dir, strerror(errno));
            ok = false;
        } else {
            closedir(d);
            rescan(rt);
            ok = read_models_json(rt, err, err_size);
        }
    }
    if (ok && pthread_create(&rt->worker, NULL, worker_main, rt) != 0) {
        snprintf(err, err_size, "cannot start the router's thread");
        ok = false;
    }
    rt->worker_started = ok;
    if (ok && rt->single) {   /* -m: loaded now, as llama-server does */
        uint64_t load_ns;
        api_error e;
        served *sv = router_acquire(rt, NULL, &load_ns, &e);
        if (!sv) {
            snprintf(err, err_size, "%s", e.message);
            ok = false;
        }
        router_release(rt, sv, KEEP_ALIVE_UNSET);
    }
    if (!ok) {
        router_free(rt);
        return NULL;
    }
    pthread_mutex_lock(&rt->mu);
    rt->ready = true;
    pthread_mutex_unlock(&rt->mu);
    return rt;
}

bool router_ready(router *rt)
{
    if (!rt) return false;
    pthread_mutex_lock(&rt->mu);
    bool ready = rt->ready;
    pthread_mutex_unlock(&rt->mu);
    return ready;
}

void router_stop(router *rt)
{
    if (!rt) return;
    pthread_mutex_lock(&rt->mu);
    rt->stopping = true;
    for (int i = 0; i < rt->n_models; i++)
        if (rt->models[i]->state == MODEL_LOADED) engine_stop(rt->models[i]->sv.engine);
    pthread_cond_broadcast(&rt->work);
    pthread_cond_broadcast(&rt->changed);
    pthread_mutex_unlock(&rt->mu);
}

void router_free(router *rt)
{
    if (!rt) return;
    router_stop(rt);
    if (rt->worker_started) pthread_join(rt->worker, NULL);
    for (int i = 0; i < rt->n_models; i++) {
        rmodel *m = rt->models[i];
        engine_free(m->sv.engine);
        kinfer_model_free(m->sv.model);
        metrics_destroy(&m->metrics);
        for (int j = 0; j < m->n_aliases; j++) free(m->aliases[j]);
        if (m->opt.chat_template != rt->srv->opt.model.chat_template) free((char *)m->opt.chat_template);
        free(m);
    }
    free(rt->models);
    pthread_cond_destroy(&rt->work);
    pthread_cond_destroy(&rt->changed);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

/* ------------------------------------------------------------ listings */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const router_entry *)a)->name, ((const router_entry *)b)->name);
}

int router_list(router *rt, router_entry **out)
{
    pthread_mutex_lock(&rt->mu);
    rescan(rt);
    router_entry *e = calloc((size_t)rt->n_models + 1, sizeof *e);
    int n = 0;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    uint64_t now = now_ns();
    for (int i = 0; e && i < rt->n_models; i++) {
        const rmodel *m = rt->models[i];
        if (m->gone) continue;
        router_entry *x = &e[n++];
        snprintf(x->name, sizeof x->name, "%s", m->name);
        snprintf(x->path, sizeof x->path, "%s", m->path);
        struct stat st;
        if (stat(m->path, &st) == 0) {
            x->file_bytes = (uint64_t)st.st_size;
            x->mtime = (int64_t)st.st_mtime;
        }
        x->loaded = m->state == MODEL_LOADED;
        x->loading = m->state == MODEL_LOADING || (m->queued && m->state == MODEL_UNLOADED);
        x->progress = atomic_load(&m->progress);
        x->mem_bytes = m->mem_bytes;
        x->device_bytes = m->device_bytes;
        x->expires_ms = m->active ? 0 : m->keep_alive_ms < 0 || !m->expires_ns ? -1
                      : wall_ms + (m->expires_ns > now ? (int64_t)((m->expires_ns - now) / 1000000u) : 0);
        x->n_ctx = x->loaded ? engine_n_ctx_slot(m->sv.engine) : 0;
        x->loads = m->loads;
        x->evictions = m->evictions;
        snprintf(x->error, sizeof x->error, "%s", m->error);
    }
    pthread_mutex_unlock(&rt->mu);
    if (!e) return -1;
    qsort(e, (size_t)n, sizeof *e, by_name);
    *out = e;
    return n;
}

bool router_path(router *rt, const char *name, char *path, size_t size, char *canonical, size_t canonical_size)
{
    pthread_mutex_lock(&rt->mu);
    rmodel *m = rt->single ? rt->models[0] : find_model(rt, name);
    if (!m && !rt->single) {
        rescan(rt);
        m = find_model(rt, name);
    }
    if (m) {
        snprintf(path, size, "%s", m->path);
        snprintf(canonical, canonical_size, "%s", m->name);
    }
    pthread_mutex_unlock(&rt->mu);
    return m != NULL;
}

void router_metrics(router *rt, metrics *total, textbuf *out)
{
    pthread_mutex_lock(&rt->mu);
    for (int i = 0; i < rt->n_models; i++) metrics_accumulate(total, &rt->models[i]->metrics);
    static const char *const fam[][3] = {
        {"kinfer_model_loads_total", "counter", "Loads of a model."},
        {"kinfer_model_evictions_total", "counter", "Unloads of an idle model to make room (--mem-budget, --max-loaded-models)."},
        {"kinfer_model_unloads_total", "counter", "Unloads of a model, evictions and keep_alive expiries."},
        {"kinfer_model_load_seconds_total", "counter", "Time spent loading a model."},
        {"kinfer_model_memory_bytes", "gauge", "Memory a loaded model holds (kinfer_model_estimate: weights, KV cache, scratch)."},
        {"kinfer_model_loaded", "gauge", "1 while the model is loaded."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        textbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0], fam[f][1]);
        for (int i = 0; i < rt->n_models; i++) {
            const rmodel *m = rt->models[i];
            double v = f == 0 ? (double)m->loads : f == 1 ? (double)m->evictions : f == 2 ? (double)m->unloads
                     : f == 3 ? m->load_seconds : f == 4 ? (double)m->mem_bytes : m->state == MODEL_LOADED;
            textbuf_printf(out, "%s{model=\"", fam[f][0]);
            for (const char *c = m->name; *c; c++) textbuf_printf(out, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
            textbuf_printf(out, "\"} %.17g\n", v);
        }
    }
    textbuf_printf(out, "# HELP kinfer_memory_budget_bytes The memory budget of the loaded models (--mem-budget).\n"
                        "# TYPE kinfer_memory_budget_bytes gauge\nkinfer_memory_budget_bytes %llu\n",
                   (unsigned long long)rt->srv->opt.mem_budget);
    pthread_mutex_unlock(&rt->mu);
}
