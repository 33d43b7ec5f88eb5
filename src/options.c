/* options.c - the table of options, its parser and its printer.
 *
 * One row per key: its kind (a flag, a byte size with k/m/g, milliseconds,
 * one of named values, a flag or a named mode, or text), the field it sets,
 * its limits and default. Two sources are read, the program's own string
 * (strata_options, which it defines as jemalloc's programs define
 * malloc_conf) and then the environment's STRATA_OPTIONS, so that the
 * environment overrides the program. Both are read in place, without
 * allocating. Spaces around keys and values do not count; keys and words
 * match in any case. An entry that is not valid is reported on stderr,
 * naming its source and what is valid, and skipped, keeping the value
 * before it.
 */
#include "options.h"
#include "os.h"

#include <stdlib.h>
#include <string.h>

options_t options = { .huge_threshold = HUGE_MIN, .sbrk = true, .decay_ms = DECAY_MS, .bg = true,
                       .prof_rate = 512 << 10, .prof_out = "strata" };

/* The program's defaults (strata.h). A weak reference: a program that does
 * not define the string links all the same, and it reads NULL here. */
extern const char *strata_options __attribute__((weak));

typedef enum {
  OPT_FLAG,    /* bool: a flag word */
  OPT_SIZE,    /* size_t: bytes, k/m/g suffixes, min..max */
  OPT_MS,      /* uint32_t: milliseconds, min..max */
  OPT_NAMED,   /* bool: names[i] sets i */
  OPT_MODE,    /* unsigned: a flag word sets 0 or 1, names[i] sets 2 + i */
  OPT_TEXT,    /* char[]: min..max bytes */
} option_kind_t;

typedef struct {
  const char *key;
  option_kind_t kind;
  size_t offset;              /* of the field in options_t */
  size_t min, max;            /* OPT_SIZE, OPT_MS; OPT_TEXT: length */
  const char *names[2];       /* OPT_NAMED, OPT_MODE */
  const char *meaning;
} option_t;

/* A size limit that is no limit: no block is larger. */
#define SIZE_UNBOUNDED ((size_t)PTRDIFF_MAX)

#define FIELD(f) offsetof(options_t, f)
static const option_t option_table[] = {
  { "huge", OPT_SIZE, FIELD(huge_threshold), SMALL_MAX + 1, SIZE_UNBOUNDED, {0},
    "blocks above this many bytes get a mapping of their own" },
  { "sbrk", OPT_FLAG, FIELD(sbrk), 0, 1, {0}, "grow the small tier with the program break" },
  { "decay", OPT_MS, FIELD(decay_ms), 0, 3600000, {0}, "milliseconds free memory stays before it goes back" },
  { "bg", OPT_FLAG, FIELD(bg), 0, 1, {0}, "a purge thread in programs with threads of their own" },
  { "purge", OPT_NAMED, FIELD(purge_free), 0, 1, { "dontneed", "free" }, "how decayed pages go back" },
  { "stats", OPT_MODE, FIELD(stats), 0, 1, { "json" }, "print the statistics at exit, as a table or JSON" },
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

/* The words a flag takes: flag_words[v] set it to v. */
static const char *const flag_words[2][4] = { { "0", "no", "false", "off" }, { "1", "yes", "true", "on" } };
enum { FLAG_WORDS = 4 };

/* s[0, len) is `word`, in any case (ASCII: the strings are read before
 * any locale could be set). */
static bool same(const char *s, size_t len, const char *word) {
  if (strlen(word) != len) return false;
  for (size_t i = 0; i < len; i++) {
    char a = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    if (a != word[i]) return false;
  }
  return true;
}

/* The value of a flag word, -1 for anything else. */
static int flag_value(const char *s, size_t len) {
  for (int v = 0; v < 2; v++)
    for (unsigned w = 0; w < FLAG_WORDS; w++)
      if (same(s, len, flag_words[v][w])) return v;
  return -1;
}

/* The index of the name s[0, len) among o's names, -1 when none. */
static int name_index(const option_t *o, const char *s, size_t len) {
  for (int i = 0; i < 2 && o->names[i]; i++)
    if (same(s, len, o->names[i])) return i;
  return -1;
}

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

/* Set the field of o from the value text; false when it is not valid. */
static bool option_set(const option_t *o, const char *val, size_t len) {
  char *field = (char *)&options + o->offset;
  size_t v = 0;
  int i;
  switch (o->kind) {
  case OPT_FLAG:
    if ((i = flag_value(val, len)) < 0) return false;
    *(bool *)field = i;
    return true;
  case OPT_NAMED:
    if ((i = name_index(o, val, len)) < 0) return false;
    *(bool *)field = i;
    return true;
  case OPT_MODE:
    if ((i = flag_value(val, len)) < 0 && (i = name_index(o, val, len)) >= 0) i += 2;
    if (i < 0) return false;
    *(unsigned *)field = (unsigned)i;
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

bool options_value(unsigned i, option_value_t *out) {
  if (i >= OPTION_COUNT) return false;
  const option_t *o = &option_table[i];
  const char *field = (const char *)&options + o->offset;
  *out = (option_value_t){ .key = o->key };
  switch (o->kind) {
  case OPT_FLAG: out->number = *(const bool *)field; break;
  case OPT_NAMED: out->text = o->names[*(const bool *)field]; break;
  case OPT_MODE: {
    unsigned v = *(const unsigned *)field;
    if (v < 2) out->number = v;
    else out->text = o->names[v - 2];
    break;
  }
  case OPT_MS: out->number = *(const uint32_t *)field; break;
  case OPT_SIZE: out->number = o->offset == offsetof(options_t, huge_threshold)
                               ? options_huge_threshold() : *(const size_t *)field; break;
  case OPT_TEXT: out->text = field; break;
  }
  return true;
}

/* s[0, len), or its first `cap` bytes and "..." when it is longer: a
 * warning quotes an entry and a value only so far, leaving room for the
 * keys or the limits after them, and the listing cuts a text value that
 * would not fit on a line of its own. */
static void put_cut(line_t *l, const char *s, size_t len, size_t cap) {
  line_put_n(l, s, len < cap ? len : cap);
  if (len > cap) line_put(l, "...");
}
enum { WARN_QUOTE_MAX = 48 };

static void put_value(line_t *l, unsigned i, size_t cap) {
  option_value_t v;
  options_value(i, &v);
  if (v.text) put_cut(l, v.text, strlen(v.text), cap);
  else line_put_num(l, v.number, 0, false);
}

/* A byte count with the largest of k/m/g that divides it. */
static void put_size(line_t *l, size_t v) {
  unsigned shift = 30;
  while (shift && (v == 0 || v & (((size_t)1 << shift) - 1))) shift -= 10;
  line_put_num(l, v >> shift, 0, false);
  line_put(l, shift == 30 ? "g" : shift == 20 ? "m" : shift == 10 ? "k" : "");
}

/* The separator before item i of n: "a, b or c". */
static void put_sep(line_t *l, unsigned i, unsigned n) {
  line_put(l, i == 0 ? "" : i + 1 == n ? " or " : ", ");
}

/* "<lead>min-max<tail>", the range of o in decimal. */
static void put_range(line_t *l, const char *lead, const option_t *o, const char *tail) {
  line_put(l, lead);
  line_put_num(l, o->min, 0, false);
  line_put(l, "-");
  line_put_num(l, o->max, 0, false);
  line_put(l, tail);
}

/* What o accepts, as the README's table says it. */
static void put_limits(line_t *l, const option_t *o) {
  unsigned n = 0, names = 0;
  switch (o->kind) {
  case OPT_FLAG:
  case OPT_MODE:
    for (; o->kind == OPT_MODE && names < 2 && o->names[names]; names++) {}
    n = FLAG_WORDS + names;
    for (unsigned w = 0; w < FLAG_WORDS; w++) {
      put_sep(l, w, n);
      line_put(l, flag_words[1][w]);
      line_put(l, "/");
      line_put(l, flag_words[0][w]);
    }
    for (unsigned i = 0; i < names; i++) {
      put_sep(l, FLAG_WORDS + i, n);
      line_put(l, o->names[i]);
    }
    break;
  case OPT_NAMED:
    for (unsigned i = 0; i < 2; i++) {
      put_sep(l, i, 2);
      line_put(l, o->names[i]);
    }
    break;
  case OPT_MS:
    put_range(l, "milliseconds ", o, "");
    break;
  case OPT_SIZE:
    line_put(l, "bytes ");
    put_size(l, o->min);
    if (o->max == SIZE_UNBOUNDED) {
      line_put(l, " and up");
    } else {
      line_put(l, "-");
      put_size(l, o->max);
    }
    break;
  case OPT_TEXT:
    put_range(l, "text of ", o, " bytes");
    break;
  }
}

/* One line on stderr for an entry that is skipped: for an unknown key (o
 * NULL) the keys there are, for a bad value what is valid and the value
 * that stays. */
static void warn(const char *source, const option_t *o, const char *entry, size_t len) {
  line_t l = LINE_INIT(2);
  line_put(&l, "strata: ");
  line_put(&l, source);
  line_put(&l, o ? ": bad value '" : ": unknown option '");
  put_cut(&l, entry, len, WARN_QUOTE_MAX);
  if (o) {
    line_put(&l, "': ");
    put_limits(&l, o);
    line_put(&l, "; keeping ");
    put_value(&l, (unsigned)(o - option_table), WARN_QUOTE_MAX);
  } else {
    line_put(&l, "'; keys are ");
    for (unsigned i = 0; i < OPTION_COUNT; i++) {
      line_put(&l, i ? ", " : "");
      line_put(&l, option_table[i].key);
    }
    line_put(&l, "; ignored");
  }
  os_write_line(&l);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* s[0, *len) without the spaces around it. */
static const char *trim(const char *s, size_t *len) {
  while (*len && is_space(*s)) s++, (*len)--;
  while (*len && is_space(s[*len - 1])) (*len)--;
  return s;
}

static void parse_entry(const char *entry, size_t len, const char *source) {
  const char *eq = memchr(entry, '=', len);
  size_t klen = eq ? (size_t)(eq - entry) : len;
  size_t vlen = eq ? len - klen - 1 : 0;
  const char *key = trim(entry, &klen);
  const char *val = trim(eq ? eq + 1 : entry + len, &vlen);
  const option_t *o = NULL;
  for (unsigned i = 0; i < OPTION_COUNT && !o; i++)
    if (same(key, klen, option_table[i].key)) o = &option_table[i];
  if (!o) warn(source, NULL, entry, len);
  else if (!option_set(o, val, vlen)) warn(source, o, entry, len);
}

/* key=value entries separated by commas; empty ones (a trailing comma) are
 * nothing to warn about. */
static void parse_string(const char *s, const char *source) {
  while (s && *s) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    const char *next = end ? end + 1 : s + len;
    const char *entry = trim(s, &len);
    if (len) parse_entry(entry, len, source);
    s = next;
  }
}

void options_parse(void) {
  if (&strata_options) parse_string(strata_options, "strata_options");
  parse_string(getenv("STRATA_OPTIONS"), "STRATA_OPTIONS");
  if (options.verbose) options_print(2);
}

void options_print(int fd) {
  static const char head[] = "strata: options:";
  line_t l = LINE_INIT(fd);
  line_put(&l, head);
  for (unsigned i = 0; i < OPTION_COUNT; i++) {
    line_t item = LINE_INIT(fd);
    line_put(&item, " ");
    line_put(&item, option_table[i].key);
    line_put(&item, "=");
    put_value(&item, i, sizeof l.buf - sizeof head - item.n - sizeof "...");
    if (l.n + item.n >= sizeof l.buf - 1) {     /* it goes on the next line */
      os_write_line(&l);
      line_put(&l, head);
    }
    line_put_n(&l, item.buf, item.n);
  }
  os_write_line(&l);
}
