/*
 * test_tokenizer.c — the tokenizer against llama.cpp's output (fixtures from
 * tests/fixtures/gen_tokenizer_fixtures.py), plus hostile input.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/writer.h"
#include "kinfer.h"
#include "model/model.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"

/* ------------------------------------------------------------------ fixtures */

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bytes unhex(const char *s, size_t len)
{
    bytes b = {malloc(len / 2 + 1), 0};
    ck_assert_ptr_nonnull(b.p);
    if (len == 1 && s[0] == '-')
        return b;
    for (size_t i = 0; i + 1 < len; i += 2)
        b.p[b.n++] = (unsigned char)(hexval(s[i]) * 16 + hexval(s[i + 1]));
    return b;
}

/* lines of a fixture file, NUL-terminated in place */
typedef struct lines {
    char *data;
    char **v;
    size_t n;
} lines;

static lines read_lines(const char *path)
{
    lines l = {0};
    size_t size;
    l.data = (char *)test_read_file(path, &size);
    ck_assert_msg(l.data != NULL, "cannot read %s (run tests from the repo root)", path);
    size_t cap = 1024;
    l.v = malloc(cap * sizeof *l.v);
    char *p = l.data, *end = l.data + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        *nl = 0;
        if (l.n == cap)
            l.v = realloc(l.v, (cap *= 2) * sizeof *l.v);
        l.v[l.n++] = p;
        p = nl + 1;
    }
    return l;
}

static void free_lines(lines *l)
{
    free(l->data);
    free(l->v);
}

static bytes *g_corpus;
static size_t g_n_corpus;
static kinfer_model *g_smol, *g_gemma;

static void load_all(void)
{
    lines l = read_lines(FIX "corpus.txt");
    g_corpus = calloc(l.n, sizeof *g_corpus);
    for (size_t i = 0; i < l.n; i++)
        g_corpus[i] = unhex(l.v[i], strlen(l.v[i]));
    g_n_corpus = l.n;
    free_lines(&l);
    const char *p;
    if ((p = test_model_path(TEST_MODEL_SMOLLM2))) {
        kinfer_status st = kinfer_model_load(p, NULL, &g_smol);
        ck_assert_msg(st == KINFER_OK, "%s", kinfer_model_errmsg(g_smol));
    }
    if ((p = test_model_path(TEST_MODEL_GEMMA3))) {
        kinfer_status st = kinfer_model_load(p, NULL, &g_gemma);
        ck_assert_msg(st == KINFER_OK, "%s", kinfer_model_errmsg(g_gemma));
    }
}

static void free_all(void)
{
    kinfer_model_free(g_smol);
    kinfer_model_free(g_gemma);
    for (size_t i = 0; i < g_n_corpus; i++)
        free(g_corpus[i].p);
    free(g_corpus);
}

/* parse "T case mode n ids..." */
static int parse_t(char *line, size_t *ci, int *add, int *parse, int32_t **ids, int64_t *n)
{
    if (line[0] != 'T')
        return 0;
    char *p = line + 2;
    *ci = strtoul(p, &p, 10);
    while (*p == ' ')
        p++;
    *add = p[0] == '1';
    *parse = p[1] == '1';
    p += 2;
    *n = strtol(p, &p, 10);
    *ids = malloc((size_t)(*n + 1) * sizeof **ids);
    for (int64_t i = 0; i < *n; i++)
        (*ids)[i] = (int32_t)strtol(p, &p, 10);
    return 1;
}

static void print_case(const char *what, size_t ci, const int32_t *a, int64_t na,
                       const int32_t *b, int64_t nb)
{
    fprintf(stderr, "%s: case %zu: expected %lld tokens:", what, ci, (long long)na);
    for (int64_t i = 0; i < na && i < 24; i++)
        fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "\n   got %lld:", (long long)nb);
    for (int64_t i = 0; i < nb && i < 24; i++)
        fprintf(stderr, " %d", b[i]);
    fprintf(stderr, "\n");
}

/* Compare every T line of a fixture with vocab_tokenize on v. */
static void check_corpus(const struct kinfer_vocab *v, const char *file, const char *label)
{
    lines l = read_lines(file);
    size_t total = 0, bad = 0;
    int32_t *out = malloc(1 << 20);
    for (size_t i = 0; i < l.n; i++) {
        size_t ci;
        int add, parse;
        int32_t *ids;
        int64_t n;
        if (!parse_t(l.v[i], &ci, &add, &parse, &ids, &n))
            continue;
        ck_assert_uint_lt(ci, g_n_corpus);
        kinfer_status st;
        int64_t k = vocab_tokenize(v, (const char *)g_corpus[ci].p, g_corpus[ci].n, out,
                                   (1 << 20) / 4, add, parse, &st);
        ck_assert_int_eq(st, KINFER_OK);
        total++;
        if (k != n || memcmp(out, ids, (size_t)n * sizeof *ids) != 0) {
            if (bad < 5)
                print_case(label, ci, ids, n, out, k);
            bad++;
        }
        free(ids);
    }
    printf("%s: %zu/%zu tokenizations identical to llama.cpp\n", label, total - bad, total);
    free(out);
    free_lines(&l);
    ck_assert_uint_gt(total, 300);
    ck_assert_uint_eq(bad, 0);
}

/* ---------------------------------------------------------- corpus tests */

START_TEST(corpus_smollm2)
{
    if (!g_smol)
        return;
    check_corpus(g_smol->vocab, FIX "SmolLM2-135M-Instruct.tok", "SmolLM2");
}
END_TEST

START_TEST(corpus_gemma3)
{
    if (!g_gemma)
        return;
    check_corpus(g_gemma->vocab, FIX "gemma-3-270m-q4_k_m.tok", "gemma3");
}
END_TEST

static const char *const PRE_VARIANTS[] = {"default", "gpt-2", "llama-bpe", "qwen2",
    "deepseek-coder", "deepseek-llm", "deepseek-v3", "tekken", "falcon", "gpt-4o", "bloom",
    "starcoder"};

START_TEST(corpus_pre_variants)
{
    if (!g_smol)
        return;
    for (size_t i = 0; i < sizeof PRE_VARIANTS / sizeof *PRE_VARIANTS; i++) {
        struct kinfer_vocab *v = NULL;
        char err[256];
        kinfer_status st = vocab_build(g_smol->gguf, PRE_VARIANTS[i], &v, err, sizeof err);
        ck_assert_msg(st == KINFER_OK, "%s: %s", PRE_VARIANTS[i], err);
        char path[256], label[64];
        snprintf(path, sizeof path, FIX "SmolLM2-135M-Instruct.%s.tok", PRE_VARIANTS[i]);
        snprintf(label, sizeof label, "SmolLM2 vocab, pre=%s", PRE_VARIANTS[i]);
        check_corpus(v, path, label);
        vocab_free(v);
    }
}
END_TEST

/* ------------------------------------------------ ids, pieces, detokenize */

static kinfer_token special_by_name(const kinfer_model *m, const char *name)
{
    static const struct {
        const char *name;
        kinfer_token (*fn)(const kinfer_model *);
    } map[] = {
        {"bos", kinfer_token_bos}, {"eos", kinfer_token_eos}, {"eot", kinfer_token_eot},
        {"sep", kinfer_token_sep}, {"nl", kinfer_token_nl}, {"pad", kinfer_token_pad},
        {"fim_pre", kinfer_token_fim_pre}, {"fim_suf", kinfer_token_fim_suf},
        {"fim_mid", kinfer_token_fim_mid}, {"fim_pad", kinfer_token_fim_pad},
        {"fim_rep", kinfer_token_fim_rep}, {"fim_sep", kinfer_token_fim_sep},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        if (strcmp(map[i].name, name) == 0)
            return map[i].fn(m);
    }
    ck_abort_msg("unknown special %s", name);
    return 0;
}

static void check_vocab_facts(const kinfer_model *m, const char *file)
{
    lines l = read_lines(file);
    size_t n_pieces = 0, n_detok = 0;
    char *buf = malloc(1 << 20);
    int32_t *toks = malloc(1 << 20);
    for (size_t i = 0; i < l.n; i++) {
        char *s = l.v[i];
        if (s[0] == 'V') {
            long nv, ab, ae;
            ck_assert_int_eq(sscanf(s, "V %ld %ld %ld", &nv, &ab, &ae), 3);
            ck_assert_int_eq(kinfer_vocab_n_tokens(m), nv);
            ck_assert_int_eq(kinfer_vocab_add_bos(m), ab);
            ck_assert_int_eq(kinfer_vocab_add_eos(m), ae);
        } else if (s[0] == 'S') {
            char name[32];
            int id;
            ck_assert_int_eq(sscanf(s, "S %31s %d", name, &id), 2);
            ck_assert_msg(special_by_name(m, name) == id, "special %s: expected %d, got %d", name,
                          id, special_by_name(m, name));
        } else if (s[0] == 'G') {
            /* exactly these ids end generation */
            int32_t n = kinfer_vocab_n_tokens(m);
            char *p = s + 1;
            int32_t next = (int32_t)strtol(p, &p, 10);
            for (int32_t id = 0; id < n; id++) {
                int expect = id == next;
                if (expect)
                    next = *p ? (int32_t)strtol(p, &p, 10) : -1;
                ck_assert_msg(kinfer_token_is_eog(m, id) == expect, "is_eog(%d) should be %d",
                              id, expect);
            }
        } else if (s[0] == 'P') {
            int id, sp;
            char hex[4096];
            ck_assert_int_eq(sscanf(s, "P %d %d %4095s", &id, &sp, hex), 3);
            bytes want = unhex(hex, strlen(hex));
            int32_t k = kinfer_token_to_piece(m, id, buf, 1 << 20, sp);
            ck_assert_msg(k == (int32_t)want.n && memcmp(buf, want.p, want.n) == 0,
                          "piece of %d (special %d) differs", id, sp);
            if (want.n > 0)
                ck_assert_int_eq(kinfer_token_to_piece(m, id, buf, (int32_t)want.n - 1, sp),
                                 -(int32_t)want.n);
            free(want.p);
            n_pieces++;
        } else if (s[0] == 'D') {
            size_t ci = strtoul(s + 2, &s, 10);
            s++;
            bytes want = unhex(s, strlen(s));
            kinfer_error e;
            int64_t nt = kinfer_tokenize(m, (const char *)g_corpus[ci].p, g_corpus[ci].n, toks,
                                         1 << 18, false, false, &e);
            ck_assert_int_eq(e.status, KINFER_OK);
            int64_t k = kinfer_detokenize(m, toks, nt, buf, 1 << 20, false, false);
            ck_assert_msg(k == (int64_t)want.n && memcmp(buf, want.p, want.n) == 0,
                          "detokenize of case %zu differs", ci);
            free(want.p);
            n_detok++;
        }
    }
    ck_assert_uint_gt(n_pieces, 500);
    ck_assert_uint_gt(n_detok, 300);
    free(buf);
    free(toks);
    free_lines(&l);
}

START_TEST(facts_smollm2)
{
    if (g_smol)
        check_vocab_facts(g_smol, FIX "SmolLM2-135M-Instruct.tok");
}
END_TEST

START_TEST(facts_gemma3)
{
    if (g_gemma)
        check_vocab_facts(g_gemma, FIX "gemma-3-270m-q4_k_m.tok");
}
END_TEST

/* strict UTF-8 validity (what a lossless round trip needs) */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xc2))
            return 0;
        uint32_t cp = k == 1 ? c : c & (0x7f >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k;
    }
    return 1;
}

static void check_round_trip(const kinfer_model *m)
{
    char *buf = malloc(1 << 20);
    char *stream = malloc(1 << 20);
    int32_t *toks = malloc(1 << 20);
    size_t checked = 0;
    for (size_t ci = 0; ci < g_n_corpus; ci++) {
        const bytes *c = &g_corpus[ci];
        kinfer_error e;
        int64_t nt = kinfer_tokenize(m, (const char *)c->p, c->n, toks, 1 << 18, false, false, &e);
        ck_assert_int_eq(e.status, KINFER_OK);
        int64_t k = kinfer_detokenize(m, toks, nt, buf, 1 << 20, false, false);
        ck_assert_int_ge(k, 0);
        if (valid_utf8(c->p, c->n)) {
            ck_assert_msg(k == (int64_t)c->n && memcmp(buf, c->p, c->n) == 0,
                          "round trip of case %zu is not lossless", ci);
            checked++;
        }
        /* streaming gives the same text, never cut inside a character */
        kinfer_detok *d;
        ck_assert_int_eq(kinfer_detok_new(m, false, &d), KINFER_OK);
        size_t sn = 0;
        for (int64_t i = 0; i < nt; i++) {
            int32_t w = kinfer_detok_push(d, toks[i], stream + sn, (1 << 20) - (int32_t)sn);
            ck_assert_int_ge(w, 0);
            if (valid_utf8(c->p, c->n))
                ck_assert(valid_utf8((unsigned char *)stream + sn, (size_t)w));
            sn += (size_t)w;
        }
        int32_t w = kinfer_detok_flush(d, stream + sn, (1 << 20) - (int32_t)sn);
        ck_assert_int_ge(w, 0);
        sn += (size_t)w;
        kinfer_detok_free(d);
        ck_assert_msg(sn == (size_t)k && memcmp(stream, buf, sn) == 0,
                      "streamed text of case %zu differs", ci);
    }
    ck_assert_uint_gt(checked, 280);
    free(buf);
    free(stream);
    free(toks);
}

START_TEST(round_trip_smollm2)
{
    if (g_smol)
        check_round_trip(g_smol);
}
END_TEST

START_TEST(round_trip_gemma3)
{
    if (g_gemma)
        check_round_trip(g_gemma);
}
END_TEST

/*
 * Stream tokens through a decoder on v and compare with vocab_detokenize.
 * Every push and the flush are first tried with no room, so the "too small,
 * not consumed" path is exercised at every step.
 */
static void check_stream(const struct kinfer_vocab *v, const int32_t *toks, int64_t nt,
                         int special, char *want, char *got, const char *what, size_t ci)
{
    const int32_t cap = 1 << 20;
    int64_t k = vocab_detokenize(v, toks, nt, want, cap, 0, special);
    ck_assert_int_ge(k, 0);
    kinfer_detok *d;
    ck_assert_int_eq(vocab_detok_new(v, special, &d), KINFER_OK);
    int32_t sn = 0;
    for (int64_t i = 0; i <= nt; i++) {
        int32_t w = i < nt ? kinfer_detok_push(d, toks[i], got + sn, 0)
                           : kinfer_detok_flush(d, got + sn, 0);
        if (w < 0) {
            int32_t w2 = i < nt ? kinfer_detok_push(d, toks[i], got + sn, cap - sn)
                                : kinfer_detok_flush(d, got + sn, cap - sn);
            ck_assert_int_eq(w2, -w);
            w = w2;
        }
        ck_assert_int_ge(w, 0);
        sn += w;
    }
    kinfer_detok_free(d);
    ck_assert_msg(sn == k && memcmp(got, want, (size_t)sn) == 0,
                  "%s: streamed text of case %zu differs from detokenize", what, ci);
}

/* streaming == detokenize over the corpus, special tokens as text and parsed */
static void check_stream_corpus(const struct kinfer_vocab *v, const char *what)
{
    char *want = malloc(1 << 20), *got = malloc(1 << 20);
    int32_t *toks = malloc(1 << 20);
    for (int special = 0; special < 2; special++) {
        for (size_t ci = 0; ci < g_n_corpus; ci++) {
            kinfer_status st;
            int64_t nt = vocab_tokenize(v, (const char *)g_corpus[ci].p, g_corpus[ci].n, toks,
                                        1 << 18, special, special, &st);
            ck_assert_int_eq(st, KINFER_OK);
            ck_assert_int_ge(nt, 0);
            check_stream(v, toks, nt, special, want, got, what, ci);
        }
    }
    free(want);
    free(got);
    free(toks);
}

START_TEST(stream_equals_detokenize)
{
    if (g_smol)
        check_stream_corpus(g_smol->vocab, "SmolLM2");
    if (g_gemma)
        check_stream_corpus(g_gemma->vocab, "gemma3");
}
END_TEST

/* the pre-types that turn on llama.cpp's clean_spaces rule */
static const char *const CLEAN_SPACES_PRES[] = {"gpt-2", "llama-bpe", "default", "falcon",
                                                "bloom", "starcoder"};

START_TEST(stream_equals_detokenize_clean_spaces)
{
    if (!g_smol)
        return;
    char *want = malloc(1 << 20), *got = malloc(1 << 20);
    for (size_t pi = 0; pi < sizeof CLEAN_SPACES_PRES / sizeof *CLEAN_SPACES_PRES; pi++) {
        struct kinfer_vocab *v = NULL;
        char err[256], what[64];
        ck_assert_msg(vocab_build(g_smol->gguf, CLEAN_SPACES_PRES[pi], &v, err, sizeof err) ==
                          KINFER_OK, "%s", err);
        snprintf(what, sizeof what, "SmolLM2 vocab, pre=%s", CLEAN_SPACES_PRES[pi]);
        check_stream_corpus(v, what);
        /* the rule does change the corpus: " ," survives without it */
        int32_t t[8];
        kinfer_status st;
        int64_t n = vocab_tokenize(v, "a ,", 3, t, 8, 0, 0, &st);
        ck_assert_int_eq(vocab_detokenize(v, t, n, want, 16, 0, 0), 2);
        /* random sequences of the pieces the rule looks at */
        static const char *const pieces[] = {" ", "  ", "'", " '", "' ", ".", " .", ",", " ,",
            "?", "!", "s", "m", "r", "v", "e", "re", "ve", "'s", "'re", "'ve", " 'm", "x",
            " x", "\n", "t", "d", "ll", "\xc3\xa9", "\xe2\x82\xac"}; /* some cut a character */
        int32_t ids[64];
        int n_ids = 0;
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
            n = vocab_tokenize(v, pieces[i], strlen(pieces[i]), t, 8, 0, 0, &st);
            for (int64_t j = 0; j < n && n_ids < 64; j++)
                ids[n_ids++] = t[j];
        }
        uint64_t rng = 0x9e3779b97f4a7c15ull + pi;
        int32_t seq[16];
        for (int iter = 0; iter < 20000; iter++) {
            int len = 1 + (int)(rng % 16);
            for (int i = 0; i < len; i++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                seq[i] = ids[rng % (uint64_t)n_ids];
            }
            check_stream(v, seq, len, 0, want, got, what, (size_t)iter);
        }
        vocab_free(v);
    }
    free(want);
    free(got);
}
END_TEST

START_TEST(stream_holds_partial_utf8)
{
    const kinfer_model *m = g_gemma ? g_gemma : g_smol;
    if (!m)
        return;
    /* "😀" is 4 bytes; with byte tokens it arrives a byte at a time */
    kinfer_token t[8];
    kinfer_error e;
    int64_t n = kinfer_tokenize(m, "\xf0\x9f\x98\x80", 4, t, 8, false, false, &e);
    ck_assert_int_gt(n, 0);
    kinfer_detok *d;
    ck_assert_int_eq(kinfer_detok_new(m, false, &d), KINFER_OK);
    char out[16];
    size_t got = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t w = kinfer_detok_push(d, t[i], out + got, (int32_t)(sizeof out - got));
        ck_assert_int_ge(w, 0);
        if (i + 1 < n)
            ck_assert_int_eq(w, 0); /* nothing until the character is complete */
        got += (size_t)w;
    }
    ck_assert_uint_eq(got, 4);
    ck_assert_int_eq(memcmp(out, "\xf0\x9f\x98\x80", 4), 0);
    /* a cut character comes out on flush */
    kinfer_token byte_tok = kinfer_vocab_n_tokens(m) > 0 && g_gemma == m ? 238 + 0xf0 : -1;
    if (byte_tok >= 0) {
        ck_assert_int_eq(kinfer_detok_push(d, byte_tok, out, sizeof out), 0);
        ck_assert_int_eq(kinfer_detok_flush(d, out, 0), -1);  /* too small: kept */
        ck_assert_int_eq(kinfer_detok_flush(d, out, sizeof out), 1);
        ck_assert_int_eq((unsigned char)out[0], 0xf0);
    }
    kinfer_detok_free(d);
}
END_TEST

/* ---------------------------------------------------------------- hostile */

START_TEST(hostile_inputs)
{
    const kinfer_model *models[2] = {g_smol, g_gemma};
    for (int mi = 0; mi < 2; mi++) {
        const kinfer_model *m = models[mi];
        if (!m)
            continue;
        kinfer_error e;
        kinfer_token t[64];
        /* buffer too small: the count needed, negated; nothing written past n_max */
        t[2] = 12345;
        int64_t need = kinfer_tokenize(m, "hello world and more words", 26, t, 2, true, false, &e);
        ck_assert_int_eq(e.status, KINFER_OK);
        ck_assert_int_lt(need, -2);
        ck_assert_int_eq(t[2], 12345);
        int64_t n = kinfer_tokenize(m, "hello world and more words", 26, t, -need, true, false, &e);
        ck_assert_int_eq(n, -need);
        /* size query with no buffer */
        ck_assert_int_eq(kinfer_tokenize(m, "hello world and more words", 26, NULL, 0, true, false, &e), need);
        /* empty text: just BOS when the vocab adds it */
        n = kinfer_tokenize(m, "", 0, t, 64, true, false, &e);
        ck_assert_int_eq(n, kinfer_vocab_add_bos(m) ? 1 : 0);
        n = kinfer_tokenize(m, NULL, 0, t, 64, false, false, &e);
        ck_assert_int_eq(n, 0);
        ck_assert_int_eq(e.status, KINFER_OK);
        /* bad arguments */
        ck_assert_int_eq(kinfer_tokenize(m, NULL, 5, t, 64, false, false, &e), 0);
        ck_assert_int_eq(e.status, KINFER_E_INVALID_ARG);
        ck_assert_int_eq(kinfer_tokenize(m, "x", 1, NULL, 5, false, false, &e), 0);
        ck_assert_int_eq(e.status, KINFER_E_INVALID_ARG);
        /* code points past U+10FFFF and 5/6-byte forms (llama.cpp aborts on
         * some of these): defined, some tokens */
        const char *bad[] = {"\xf4\x90\x80\x80", "\xf7\xbf\xbf\xbf", "a\xf5\x80\x80\x80z",
                             "\xed\xa0\x80\xed\xb0\x80", "\xc0\xaf"};
        for (size_t i = 0; i < 5; i++) {
            n = kinfer_tokenize(m, bad[i], strlen(bad[i]), t, 64, false, true, &e);
            ck_assert_int_eq(e.status, KINFER_OK);
            ck_assert_int_gt(n, 0);
            for (int64_t j = 0; j < n; j++)
                ck_assert(t[j] >= 0 && t[j] < kinfer_vocab_n_tokens(m));
        }
        /* ids outside the vocabulary */
        char piece[8];
        ck_assert_int_eq(kinfer_token_to_piece(m, -5, piece, 8, true), 0);
        ck_assert_int_eq(kinfer_token_to_piece(m, 1 << 30, piece, 8, true), 0);
        ck_assert_ptr_null(kinfer_token_text(m, -1));
        ck_assert(!kinfer_token_is_eog(m, -1));
        kinfer_token odd[] = {-1, 1 << 30, t[0]};
        ck_assert_int_ge(kinfer_detokenize(m, odd, 3, piece, 8, false, true), 0);
        /* detokenize too small */
        kinfer_token hw[32];
        n = kinfer_tokenize(m, "hello world", 11, hw, 32, false, false, &e);
        ck_assert_int_eq(kinfer_detokenize(m, hw, n, piece, 4, false, false), -11);
        ck_assert_int_eq(kinfer_detokenize(m, hw, n, NULL, 0, false, false), -11);
    }
}
END_TEST

START_TEST(large_input)
{
    const kinfer_model *models[2] = {g_smol, g_gemma};
    /* 10 MB of mixed text: words, numbers, NULs, invalid bytes, long runs */
    size_t size = 10u << 20;
    char *text = malloc(size);
    static const char unit[] = "The quick brown fox 12345 jumps\tover\n the lazy dog; caf\xc3\xa9 "
                               "\xe4\xbd\xa0\xe5\xa5\xbd \xff\x00 <|im_end|> <end_of_turn>   \n\n";
    size_t ul = sizeof unit - 1;
    for (size_t i = 0; i < size; i++)
        text[i] = unit[i % ul];
    /* a 64 KB run with no space or newline in the middle */
    memset(text + size / 2, 'x', 1 << 16);
    for (int mi = 0; mi < 2; mi++) {
        const kinfer_model *m = models[mi];
        if (!m)
            continue;
        kinfer_error e;
        int64_t need = kinfer_tokenize(m, text, size, NULL, 0, true, false, &e);
        ck_assert_int_eq(e.status, KINFER_OK);
        ck_assert_int_lt(need, -1000000);
        kinfer_token *t = malloc((size_t)-need * sizeof *t);
        int64_t n = kinfer_tokenize(m, text, size, t, -need, true, false, &e);
        ck_assert_int_eq(n, -need);
        free(t);
    }
    free(text);
}
END_TEST

/* A model handle with no vocabulary (a file without tokenizer.ggml.model). */
START_TEST(no_vocab)
{
    kinfer_model *m = calloc(1, sizeof *m);
    kinfer_error e;
    kinfer_token t[4];
    ck_assert_int_eq(kinfer_tokenize(m, "hi", 2, t, 4, true, false, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.message, "tokenizer"));
    ck_assert_int_eq(kinfer_vocab_n_tokens(m), 0);
    ck_assert_int_eq(kinfer_token_bos(m), KINFER_TOKEN_NULL);
    ck_assert_str_eq(kinfer_vocab_type(m), "none");
    kinfer_detok *d = (kinfer_detok *)1;
    ck_assert_int_eq(kinfer_detok_new(m, false, &d), KINFER_E_UNSUPPORTED);
    ck_assert_ptr_null(d);
    free(m);
    ck_assert_int_eq(kinfer_tokenize(NULL, "hi", 2, t, 4, true, false, &e), 0);
    ck_assert_int_eq(e.status, KINFER_E_INVALID_ARG);
}
END_TEST

/* ------------------------------------------------------- malformed vocabs */

typedef enum {
    BAD_NONE, BAD_NO_MERGES, BAD_SCORES_LEN, BAD_TYPES_LEN, BAD_BOS_RANGE, BAD_DUP_TOKEN,
    BAD_MODEL_NAME, BAD_PRE, BAD_TYPES_TYPE, NO_TOKENIZER,
} bad_kind;

/* build a small GGUF image in memory and run vocab_build on it */
static kinfer_status build_vocab(bad_kind bad, const char *model, char *err, size_t err_size,
                                 struct kinfer_vocab **out)
{
    gguf_writer *w = gguf_writer_new();
    const char *toks[] = {"a", "b", "ab", "<s>", "</s>", bad == BAD_DUP_TOKEN ? "a" : "c"};
    const char *merges[] = {"a b"};
    float scores[6] = {-1, -2, -0.5f, 0, 0, -3};
    int32_t types[7] = {1, 1, 1, 3, 3, 1, 1};
    gguf_writer_set_str(w, "general.architecture", "llama");
    if (bad != NO_TOKENIZER) {
        gguf_writer_set_str(w, "tokenizer.ggml.model", bad == BAD_MODEL_NAME ? "wordpiece9" : model);
        if (bad == BAD_PRE)
            gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
        gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, bad == BAD_SCORES_LEN ? 5 : 6);
        if (bad == BAD_TYPES_TYPE)
            gguf_writer_set_arr_f32(w, "tokenizer.ggml.token_type", scores, 6);
        else
            gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, bad == BAD_TYPES_LEN ? 7 : 6);
        if (strcmp(model, "gpt2") == 0 && bad != BAD_NO_MERGES)
            gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", bad == BAD_BOS_RANGE ? 6 : 3);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 4);
    }
    char *img = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&img, &size);
    ck_assert_int_eq(gguf_writer_write_header(w, f), KINFER_OK);
    fclose(f);
    gguf_writer_free(w);
    gguf_file *gf = NULL;
    char perr[256];
    kinfer_status st = gguf_parse(img, size, &gf, perr, sizeof perr);
    ck_assert_msg(st == KINFER_OK, "%s", perr);
    st = vocab_build(gf, NULL, out, err, err_size);
    gguf_free(gf);
    free(img);
    return st;
}

START_TEST(malformed_vocab)
{
    static const struct {
        bad_kind bad;
        const char *model;
        const char *msg;
    } cases[] = {
        {BAD_NO_MERGES, "gpt2", "merges"},
        {BAD_SCORES_LEN, "llama", "scores"},
        {BAD_TYPES_LEN, "gpt2", "token_type"},
        {BAD_TYPES_TYPE, "llama", "token_type"},
        {BAD_BOS_RANGE, "llama", "bos_token_id"},
        {BAD_DUP_TOKEN, "gpt2", "repeats"},
        {BAD_MODEL_NAME, "llama", "wordpiece9"},
        {BAD_PRE, "gpt2", "no-such-pre"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        struct kinfer_vocab *v = (struct kinfer_vocab *)1;
        kinfer_status st = build_vocab(cases[i].bad, cases[i].model, err, sizeof err, &v);
        ck_assert_msg(st != KINFER_OK, "case %zu loaded", i);
        ck_assert_ptr_null(v);
        ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: message '%s'", i, err);
    }
    /* the well-formed ones load and work */
    const char *models[] = {"llama", "gpt2"};
    for (int i = 0; i < 2; i++) {
        char err[256];
        struct kinfer_vocab *v = NULL;
        ck_assert_msg(build_vocab(BAD_NONE, models[i], err, sizeof err, &v) == KINFER_OK, "%s", err);
        ck_assert_ptr_nonnull(v);
        int32_t t[8];
        kinfer_status st;
        int64_t n = vocab_tokenize(v, "ab", 2, t, 8, 0, 0, &st);
        ck_assert_int_eq(st, KINFER_OK);
        if (i == 1) { /* BPE: the merge a+b makes "ab" */
            ck_assert_int_eq(n, 1);
            ck_assert_int_eq(t[0], 2);
        }
        vocab_free(v);
    }
    /* no tokenizer at all: no vocab, no error */
    char err[256];
    struct kinfer_vocab *v = (struct kinfer_vocab *)1;
    ck_assert_int_eq(build_vocab(NO_TOKENIZER, "llama", err, sizeof err, &v), KINFER_OK);
    ck_assert_ptr_null(v);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("oracle");
    tcase_add_unchecked_fixture(tc, load_all, free_all);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, corpus_smollm2);
    tcase_add_test(tc, corpus_gemma3);
    tcase_add_test(tc, corpus_pre_variants);
    tcase_add_test(tc, facts_smollm2);
    tcase_add_test(tc, facts_gemma3);
    tcase_add_test(tc, round_trip_smollm2);
    tcase_add_test(tc, round_trip_gemma3);
    tcase_add_test(tc, stream_equals_detokenize);
    tcase_add_test(tc, stream_equals_detokenize_clean_spaces);
    tcase_add_test(tc, stream_holds_partial_utf8);
    tcase_add_test(tc, hostile_inputs);
    tcase_add_test(tc, large_input);
    tcase_add_test(tc, no_vocab);
    tcase_add_test(tc, malformed_vocab);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tokenizer_suite());
}
