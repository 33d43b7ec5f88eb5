/* options.c - the table of options, its parser and its printer.
 *
 * One row per key: its kind (a flag, a byte size with k/m/g, milliseconds,
 * or one of named values), the field it sets, its range and default. The
 * parser takes STRATA_OPTIONS without allocating (the environment string is
 * read in place); a bad entry is reported on stderr and skipped, keeping the
 * default.
 */
#include "options.h"
#include "os.h"

#include <stdlib.h>
#include <string.h>

options_t options = { .huge_threshold = HUGE_MIN, .sbrk = true, .decay_ms = DECAY_MS, .bg = true,
                       .prof_rate = 512 << 10, .prof_out = "strata" };

typedef enum { OPT_FLAG, OPT_SIZE, OPT_MS, OPT_NAMED, OPT_TEXT } option_kind_t;

typedef struct {
  const char *key;
  option_kind_t kind;
  size_t offset;              /* of the field in options_t */
  size_t min, max;            /* OPT_SIZE, OPT_MS; OPT_TEXT: length */
  const char *names[3];       /* OPT_NAMED: value i sets the flag to i */
  const char *meaning;
} option_t;

#define FIELD(f) offsetof(options_t, f)
static const option_t option_table[] = {
  { "huge", OPT_SIZE, FIELD(huge_threshold), SMALL_MAX + 1, SIZE_MAX >> 1, {0},
    "blocks above this many bytes get a mapping of their own" },
  { "sbrk", OPT_FLAG, FIELD(sbrk), 0, 1, {0}, "grow the small tier with the program break" },
  { "decay", OPT_MS, FIELD(decay_ms), 0, 3600000, {0}, "milliseconds free memory stays before it goes back" },
  { "bg", OPT_FLAG, FIELD(bg), 0, 1, {0}, "a purge thread in programs with threads of their own" },
  { "purge", OPT_NAMED, FIELD(purge_free), 0, 1, { "dontneed", "free" }, "how decayed pages go back" },
  { "stats", OPT_FLAG, FIELD(stats), 0, 1, {0}, "print the statistics at exit" },
  { "verbose", OPT_FLAG, FIELD(verbose), 0, 1, {0}, "print the options at start, and warnings" },
  { "guard", OPT_FLAG, FIELD(guard), 0, 1, {0}, "guard pages; freed large blocks inaccessible" },
  { "junk", OPT_FLAG, FIELD(junk), 0, 1, {0}, "fill new and freed blocks" },
  { "canary", OPT_FLAG, FIELD(canary), 0, 1, {0}, "a canary word after each small block" },
  { "prof", OPT_FLAG, FIELD(prof), 0, 1, {0}, "sample allocations for a heap profile" },
  { "prof_rate", OPT_SIZE, FIELD(prof_rate), 1, (size_t)1 << 40, {0}, "mean bytes between two samples" },
  { "prof_out", OPT_TEXT, FIELD(prof_out), 1, OPTIONS_PATH_MAX - 1, {0}, "the exit profile goes to <prof_out>.<pid>.heap" },
  { "prof_leak", OPT_FLAG, FIELD(prof_leak), 0, 1, {0}, "print the sampled blocks still live at exit, by site" },
};
#undef FIELD
enum { OPTION_COUNT = sizeof option_table / sizeof option_table[0] };

/* A decimal number with an optional k/m/g suffix; false when malformed. */
static bool parse_size(const char *s, size_t len, size_t *out) {
  size_t v = 0, i = 0;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (SIZE_MAX - 9) / 10) return false;
    v = v * 10 + (size_t)(s[i] - '0');
  }
  if (i == 0) return false;
  if (i < len) {
    unsigned shift = s[i] == 'k' || s[i] == 'K' ? 10 : s[i] == 'm' || s[i] == 'M' ? 20
                   : s[i] == 'g' || s[i] == 'G' ? 30 : 64;
    if (shift == 64 || i + 1 != len || v > (SIZE_MAX >> shift)) return false;
    v <<= shift;
  }
  *out = v;
  return true;
}

static bool same(const char *s, size_t len, const char *word) {
  return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* Set the field of o from the value text; false when it is not valid. */
static bool option_set(const option_t *o, const char *val, size_t len) {
  char *field = (char *)&options + o->offset;
  size_t v = 0;
  switch (o->kind) {
  case OPT_NAMED:
    for (v = 0; v < 3 && o->names[v] && !same(val, len, o->names[v]); v++) {}
    if (v == 3 || !o->names[v]) return false;
    *(bool *)field = v;
    return true;
  case OPT_FLAG:
    if (!parse_size(val, len, &v) || v > 1) return false;
    *(bool *)field = v;
    return true;
  case OPT_MS:
    if (!parse_size(val, len, &v) || v < o->min || v > o->max) return false;
    *(uint32_t *)field = (uint32_t)v;
    return true;
  case OPT_SIZE:
    if (!parse_size(val, len, &v) || v < o->min || v > o->max) return false;
    if (o->offset == offsetof(options_t, huge_threshold)) options_huge_threshold_fix(v);
    else *(size_t *)field = v;
    return true;
  case OPT_TEXT:
    if (len < o->min || len > o->max) return false;
    memcpy(field, val, len);
    field[len] = 0;
    return true;
  }
  return false;
}

static void warn(const char *what, const char *entry, size_t len) {
  line_t l = LINE_INIT(2);
  line_put(&l, "strata: STRATA_OPTIONS: ");
  line_put(&l, what);
  line_put(&l, " '");
  line_put_n(&l, entry, len);
  line_put(&l, "'");
  os_write_line(&l);
}

void options_parse(void) {
  const char *env = getenv("STRATA_OPTIONS");
  for (; env && *env;) {
    const char *end = strchr(env, ',');
    size_t len = end ? (size_t)(end - env) : strlen(env);
    const char *eq = memchr(env, '=', len);
    size_t klen = eq ? (size_t)(eq - env) : len;
    const char *val = eq ? eq + 1 : env + len;
    size_t vlen = eq ? len - klen - 1 : 0;
    const option_t *o = NULL;
    for (unsigned i = 0; i < OPTION_COUNT && !o; i++)
      if (same(env, klen, option_table[i].key)) o = &option_table[i];
    if (!o) warn("unknown option", env, len);
    else if (!option_set(o, val, vlen)) warn("bad value in", env, len);
    env += len + (end ? 1 : 0);
  }
  if (options.verbose) options_print(2);
}

void options_print(int fd) {
  line_t l = LINE_INIT(fd);
  line_put(&l, "strata: options:");
  for (unsigned i = 0; i < OPTION_COUNT; i++) {
    const option_t *o = &option_table[i];
    const char *field = (const char *)&options + o->offset;
    line_put(&l, " ");
    line_put(&l, o->key);
    line_put(&l, "=");
    switch (o->kind) {
    case OPT_NAMED: line_put(&l, o->names[*(const bool *)field]); break;
    case OPT_FLAG: line_put_num(&l, *(const bool *)field, 0, false); break;
    case OPT_MS: line_put_num(&l, *(const uint32_t *)field, 0, false); break;
    case OPT_SIZE: line_put_num(&l, o->offset == offsetof(options_t, huge_threshold)
                                   ? options_huge_threshold() : *(const size_t *)field, 0, false); break;
    case OPT_TEXT: line_put(&l, field); break;
    }
  }
  os_write_line(&l);
}
