/*
 * pretok.c — BPE pre-tokenizers: the regex splits llama.cpp applies before
 * merging, selected by tokenizer.ggml.pre, run with PCRE2 (UTF + UCP + JIT).
 *
 * llama.cpp (src/llama-vocab.cpp, src/unicode.cpp) splits text with a list of
 * regexes: the first splits the whole text into matches and the gaps between
 * them; each following regex splits every piece again the same way.  Its
 * hand-written fast paths (gpt2, llama3, qwen2) implement the same regexes.
 *
 * Two details make PCRE2 agree with llama.cpp byte for byte:
 *  - llama.cpp's \s is its own whitespace table, which differs from PCRE2's
 *    (PCRE2 14.0 also counts U+180E).  The regexes below spell that table out
 *    as the class WS instead of writing \s / \S.
 *  - llama.cpp first decodes the text, replacing each byte that starts no
 *    valid sequence by U+FFFD, and works on the re-encoded text.  We do the
 *    same (pretok_split returns that text); surrogate code points, which
 *    llama.cpp's decoder accepts and PCRE2 does not, are shown to the regex as
 *    U+E000 (same class, same length).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define MAX_REGEXES 6

/* llama.cpp's whitespace set (unicode_set_whitespace), as class contents. */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define S_ "[" WS "]"     /* \s */
#define NS_ "[^" WS "]"   /* \S */

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS_ ")"

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
#define RE_LLAMA3_NUM(num) \
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" num "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ \
    "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_LLAMA3 RE_LLAMA3_NUM("\\p{N}{1,3}")
#define RE_QWEN2 RE_LLAMA3_NUM("\\p{N}")

#define RE_CJK_DEEPSEEK "[一-龥ࠀ-一가-퟿]+"

/* the upper/lower letter-run split of tekken and gpt-4o, written (as in
 * llama.cpp) with lookaheads instead of \p{Lu}/\p{Ll} */
#define RE_CASE_RUNS(suffix) \
    "[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])*(?:(?=\\p{L})[^A-Z])+" suffix \
    "|[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])+(?:(?=\\p{L})[^A-Z])*" suffix

typedef struct pretok_type {
    const char *names;          /* '|'-separated tokenizer.ggml.pre values */
    const char *regex[MAX_REGEXES];
    pretok_info info;
} pretok_type;

static const pretok_type PRETOK_TYPES[] = {
    {"default",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     {0, 1, 0}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     {RE_LLAMA3}, {1, 1, 1}},
    {"dbrx|smaug-bpe", {RE_LLAMA3}, {0, 1, 0}},
    {"chatglm-bpe", {RE_LLAMA3}, {0, 1, 0}},
    {"glm4|glm5", {RE_LLAMA3}, {1, 1, 0}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|solar-open|hunyuan|grok-2", {RE_QWEN2}, {0, 0, 0}},
    {"stablelm2|megrez", {RE_QWEN2}, {0, 1, 0}},
    {"smollm", {"\\p{N}", RE_GPT2}, {0, 0, 0}},
    {"command-r", {"\\p{N}", RE_GPT2}, {0, 0, 0}},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2", {"\\p{N}", RE_GPT2}, {0, 1, 0}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "mpt|olmo|jais|exaone4|jina-v1-en|jina-v2-code|roberta-bpe",
     {RE_GPT2}, {0, 1, 0}},
    {"trillion|granite-docling", {RE_GPT2}, {0, 0, 0}},
    {"deepseek-coder",
     {"[\\r\\n]", S_ "?\\p{L}+", S_ "?\\p{P}+", RE_CJK_DEEPSEEK, "\\p{N}"},
     {0, 0, 0}},
    {"deepseek-llm",
     {"[\\r\\n]",
      S_ "?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      S_ "?[!-/:-~！-／：-～‘-‟　-。]+",
      S_ "+\\z", RE_CJK_DEEPSEEK, "\\p{N}+"},
     {0, 0, 0}},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4",
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
      "| ?[\\p{P}\\p{S}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"},
     {0, 0, 0}},
    {"tekken",
     {RE_CASE_RUNS("") "|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_
                       "+(?!" NS_ ")|" S_ "+"},
     {1, 0, 1}},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2",
     {RE_CASE_RUNS(CONTRACTIONS "?") "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_
                                     "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"},
     {0, 0, 0}},
    {"falcon",
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"},
     {0, 1, 0}},
    {"poro-chat|viking", {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"},
     {0, 0, 0}},
    {"bloom|gpt3-finnish", {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"},
     {0, 1, 0}},
};

struct pretok {
    int n_regex;
    pcre2_code *re[MAX_REGEXES];
};

static int name_in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* viking adds \p{N} after its first regex */
static const char *const VIKING_EXTRA = "\\p{N}";

kinfer_status pretok_new(const char *name, pretok **out, pretok_info *info, char *err,
                         size_t err_size)
{
    *out = NULL;
    if (!name || !*name)
        name = "default";
    const pretok_type *type = NULL;
    for (size_t i = 0; i < sizeof PRETOK_TYPES / sizeof PRETOK_TYPES[0]; i++) {
        if (name_in_list(PRETOK_TYPES[i].names, name)) {
            type = &PRETOK_TYPES[i];
            break;
        }
    }
    if (!type) {
        snprintf(err, err_size, "unsupported pre-tokenizer type '%s' (tokenizer.ggml.pre)", name);
        return KINFER_E_UNSUPPORTED;
    }
    pretok *pt = calloc(1, sizeof *pt);
    if (!pt) {
        snprintf(err, err_size, "out of memory");
        return KINFER_E_NOMEM;
    }
    const char *regex[MAX_REGEXES + 1] = {0};
    int n = 0;
    for (; n < MAX_REGEXES && type->regex[n]; n++)
        regex[n] = type->regex[n];
    if (strcmp(name, "viking") == 0)
        regex[n++] = VIKING_EXTRA;
    for (int i = 0; i < n && i < MAX_REGEXES; i++) {
        int errcode;
        PCRE2_SIZE erroff;
        pt->re[i] = pcre2_compile((PCRE2_SPTR)regex[i], PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &errcode, &erroff,
                                  NULL);
        if (!pt->re[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(errcode, msg, sizeof msg);
            snprintf(err, err_size, "pre-tokenizer '%s': regex %d does not compile at %zu: %s",
                     name, i, (size_t)erroff, (const char *)msg);
            pretok_free(pt);
            return KINFER_E_UNSUPPORTED;
        }
        /* JIT is an optimization: the interpreter gives the same results */
        (void)pcre2_jit_compile(pt->re[i], PCRE2_JIT_COMPLETE);
        pt->n_regex = i + 1;
    }
    if (info)
        *info = type->info;
    *out = pt;
    return KINFER_OK;
}

void pretok_free(pretok *pt)
{
    if (!pt)
        return;
    for (int i = 0; i < pt->n_regex; i++)
        pcre2_code_free(pt->re[i]);
    free(pt);
}

/* ------------------------------------------------------------------- UTF-8 */

size_t utf8_decode_llama(const uint8_t *s, size_t n, uint32_t *cpt)
{
    uint8_t c = s[0];
    if (!(c & 0x80)) {
        *cpt = c;
        return 1;
    }
    if (!(c & 0x40))
        return 0;
    if (!(c & 0x20)) {
        if (n < 2 || (s[1] & 0xc0) != 0x80)
            return 0;
        *cpt = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (!(c & 0x10)) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        *cpt = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return 3;
    }
    if (!(c & 0x08)) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                     ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        /* llama.cpp throws (and aborts) on code points past U+10FFFF when it
         * re-encodes them; we treat the lead byte as invalid instead */
        if (v > 0x10ffff)
            return 0;
        *cpt = v;
        return 4;
    }
    return 0;
}

static size_t utf8_encode(uint32_t cpt, char *out)
{
    if (cpt <= 0x7f) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt <= 0x7ff) {
        out[0] = (char)(0xc0 | (cpt >> 6));
        out[1] = (char)(0x80 | (cpt & 0x3f));
        return 2;
    }
    if (cpt <= 0xffff) {
        out[0] = (char)(0xe0 | (cpt >> 12));
        out[1] = (char)(0x80 | ((cpt >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cpt & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cpt >> 18));
    out[1] = (char)(0x80 | ((cpt >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cpt >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cpt & 0x3f));
    return 4;
}

/* ---------------------------------------------------------- GPT-2 byte map */

/* Bytes that stand for themselves: '!'..'~', 0xA1..0xAC, 0xAE..0xFF.  The
 * others (controls, space, 0x7F..0xA0, 0xAD) are numbered from U+0100 up in
 * byte order. */
static uint32_t byte_cpt(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
        return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++) {
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae))
            n++;
    }
    return 256 + n;
}

int bpe_byte_to_utf8(uint8_t b, char out[2])
{
    /* every code point of the map is below U+0800, so 2 bytes hold it; the
     * 4-byte buffer is for utf8_encode's signature */
    char utf8[4];
    size_t n = utf8_encode(byte_cpt(b), utf8);
    memcpy(out, utf8, n);
    return (int)n;
}

int bpe_cpt_to_byte(uint32_t cpt)
{
    if ((cpt >= 0x21 && cpt <= 0x7e) || (cpt >= 0xa1 && cpt <= 0xac) || (cpt >= 0xae && cpt <= 0xff))
        return (int)cpt;
    if (cpt < 256 || cpt >= 256 + 68)
        return -1;
    uint32_t n = 0;
    for (unsigned c = 0; c < 256; c++) {
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)) {
            if (256 + n == cpt)
                return (int)c;
            n++;
        }
    }
    return -1;
}

/* -------------------------------------------------------------------- split */

typedef struct word_vec {
    pretok_word *v;
    size_t n, cap;
} word_vec;

static int word_push(word_vec *w, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (w->n == w->cap) {
        pretok_word *v = array_grow(w->v, &w->cap, sizeof *v, 64);
        if (!v)
            return -1;
        w->v = v;
    }
    w->v[w->n].off = (uint32_t)off;
    w->v[w->n].len = (uint32_t)len;
    w->n++;
    return 0;
}

/* text as llama.cpp sees it into norm (room for 3 * len + 1 bytes): each
 * invalid UTF-8 byte replaced by U+FFFD.  Returns its length; *has_surrogate
 * tells whether it encodes a code point in D800..DFFF. */
static size_t normalize_utf8(const char *text, size_t len, char *norm, bool *has_surrogate)
{
    size_t nl = 0;
    *has_surrogate = false;
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cpt;
        size_t k = utf8_decode_llama(s + i, len - i, &cpt);
        if (k == 0) {
            cpt = 0xfffd;
            k = 1;
        }
        if (cpt >= 0xd800 && cpt <= 0xdfff)
            *has_surrogate = true;
        nl += utf8_encode(cpt, norm + nl);
        i += k;
    }
    norm[nl] = 0;
    return nl;
}

/* A copy of norm for the regexes, which PCRE2 in UTF mode would refuse
 * with surrogates in it: each one becomes U+E000 (same length, so the
 * offsets still hold).  NULL when out of memory. */
static char *surrogates_replaced(const char *norm, size_t nl)
{
    char *rx = malloc(nl + 1);
    if (!rx)
        return NULL;
    memcpy(rx, norm, nl + 1);
    for (size_t i = 0; i + 2 < nl; i++) {
        /* ED A0..BF xx encodes D800..DFFF; EE 80 80 is U+E000 */
        if ((uint8_t)rx[i] == 0xed && ((uint8_t)rx[i + 1] & 0xe0) == 0xa0) {
            rx[i] = (char)0xee;
            rx[i + 1] = (char)0x80;
            rx[i + 2] = (char)0x80;
            i += 2;
        }
    }
    return rx;
}

/* PCRE2's per-call state: match data and a JIT stack. */
typedef struct match_state {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} match_state;

static void match_state_free(match_state *ms)
{
    pcre2_match_data_free(ms->md);
    pcre2_match_context_free(ms->mctx);
    pcre2_jit_stack_free(ms->jstack);
}

static int match_state_init(match_state *ms)
{
    ms->md = pcre2_match_data_create(1, NULL);
    ms->mctx = pcre2_match_context_create(NULL);
    ms->jstack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!ms->md || !ms->mctx || !ms->jstack)
        return -1;
    pcre2_jit_stack_assign(ms->mctx, NULL, ms->jstack);
    return 0;
}

/* One regex over every word of cur: its matches and the gaps between them
 * (empty ones dropped) appended to next, in order. */
static kinfer_status split_by_regex(const pcre2_code *re, const char *subject, const word_vec *cur,
                                    word_vec *next, match_state *ms)
{
    for (size_t w = 0; w < cur->n; w++) {
        size_t off = cur->v[w].off, wl = cur->v[w].len;
        PCRE2_SPTR sub = (PCRE2_SPTR)(subject + off);
        size_t pos = 0, gap = 0;
        while (pos < wl) {
            int rc = pcre2_match(re, sub, wl, pos, PCRE2_NO_UTF_CHECK, ms->md, ms->mctx);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return rc == PCRE2_ERROR_NOMEMORY ? KINFER_E_NOMEM : KINFER_E_INVALID_ARG;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ms->md);
            size_t match_start = ov[0], match_end = ov[1];
            if (match_end == match_start) { /* empty match: no piece; step one character */
                pos = match_start + 1;
                while (pos < wl && ((uint8_t)sub[pos] & 0xc0) == 0x80)
                    pos++;
                continue;
            }
            if (word_push(next, off + gap, match_start - gap) < 0 ||
                word_push(next, off + match_start, match_end - match_start) < 0)
                return KINFER_E_NOMEM;
            gap = pos = match_end;
        }
        if (word_push(next, off + gap, wl - gap) < 0)
            return KINFER_E_NOMEM;
    }
    return KINFER_OK;
}

kinfer_status pretok_split(const pretok *pt, const char *text, size_t len, char **norm_out,
                           size_t *norm_len_out, pretok_word **words_out, size_t *n_words_out)
{
    *norm_out = NULL;
    *words_out = NULL;
    *n_words_out = 0;
    *norm_len_out = 0;
    if (len > UINT32_MAX / 3)
        return KINFER_E_INVALID_ARG; /* offsets are 32-bit; callers split larger inputs */

    /* every invalid byte becomes 3 bytes of U+FFFD: at most 3x growth */
    char *norm = malloc(len * 3 + 1);
    char *rx = NULL; /* what the regexes see, only when it differs from norm */
    word_vec cur = {0}, next = {0};
    match_state ms = {0};
    kinfer_status st = KINFER_E_NOMEM;
    if (!norm)
        goto done;
    bool has_surrogate;
    size_t nl = normalize_utf8(text, len, norm, &has_surrogate);
    if (has_surrogate && !(rx = surrogates_replaced(norm, nl)))
        goto done;
    if (word_push(&cur, 0, nl) < 0 || match_state_init(&ms) < 0)
        goto done;

    /* each regex splits the words the previous one left */
    for (int r = 0; r < pt->n_regex; r++) {
        next.n = 0;
        st = split_by_regex(pt->re[r], rx ? rx : norm, &cur, &next, &ms);
        if (st != KINFER_OK)
            goto done;
        word_vec t = cur;
        cur = next;
        next = t;
    }

    *norm_out = norm;
    *norm_len_out = nl;
    *words_out = cur.v;
    *n_words_out = cur.n;
    norm = NULL;
    cur.v = NULL;
    st = KINFER_OK;
done:
    free(norm);
    free(rx);
    free(cur.v);
    free(next.v);
    match_state_free(&ms);
    return st;
}
