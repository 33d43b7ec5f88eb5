/* test_version.c - the release numbers agree, and the library's SONAME is
 * libstrata.so.1.
 *
 * usage: test_version PATH/TO/LIBSTRATA
 *
 * STRATA_VERSION_MAJOR, _MINOR, _PATCH and STRATA_VERSION (strata.h),
 * strata_version() (the library) and meson's project version (passed in as
 * STRATA_TEST_PROJECT_VERSION) must all name one release. The SONAME is read
 * from the dynamic section of the library file that meson built, and this
 * program, linked with it, must record that name as NEEDED: a program that
 * links -lstrata then loads libstrata.so.1 at run time.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <strata.h>

#include "testlib.h"

#define STR2(x) #x
#define STR(x) STR2(x)

/* Copies each DT_SONAME (want == DT_SONAME) or DT_NEEDED string of the ELF
 * file at path into out, one per line; returns how many, -1 when the file
 * cannot be read as a 64-bit ELF object with a dynamic section. */
static int dynamic_strings(const char *path, Elf64_Sxword want, char *out, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
    close(fd);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  const unsigned char *f = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (f == MAP_FAILED) return -1;
  int found = -1;
  const Elf64_Ehdr *eh = (const void *)f;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
    goto out;
  const Elf64_Shdr *sh = (const void *)(f + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_DYNAMIC || sh[i].sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr *strtab = &sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > size || strtab->sh_offset + strtab->sh_size > size)
      goto out;
    const char *strings = (const char *)f + strtab->sh_offset;
    const Elf64_Dyn *dyn = (const void *)(f + sh[i].sh_offset);
    found = 0;
    out[0] = '\0';
    for (size_t j = 0; j < sh[i].sh_size / sizeof *dyn && dyn[j].d_tag != DT_NULL; j++) {
      if (dyn[j].d_tag != want || dyn[j].d_un.d_val >= strtab->sh_size) continue;
      size_t used = strlen(out);
      snprintf(out + used, cap - used, "%s\n", strings + dyn[j].d_un.d_val);
      found++;
    }
    break;
  }
out:
  munmap((void *)f, size);
  return found;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PATH/TO/LIBSTRATA\n", argv[0]);
    return 2;
  }

  /* The header's numbers and its string. */
  const char *numbers = STR(STRATA_VERSION_MAJOR) "." STR(STRATA_VERSION_MINOR) "."
                        STR(STRATA_VERSION_PATCH);
  info("strata.h: STRATA_VERSION \"%s\", numbers %s", STRATA_VERSION, numbers);
  CHECK(!strcmp(numbers, STRATA_VERSION),
        "STRATA_VERSION is \"%s\" but the MAJOR.MINOR.PATCH macros say %s", STRATA_VERSION,
        numbers);

  /* The library and meson's project version. */
  const char *lib = strata_version();
  REQUIRE(lib, "strata_version() returned NULL");
  info("strata_version() = \"%s\", meson project version \"%s\"", lib,
       STRATA_TEST_PROJECT_VERSION);
  CHECK(!strcmp(lib, STRATA_VERSION), "strata_version() is \"%s\", strata.h says \"%s\"", lib,
        STRATA_VERSION);
  CHECK(!strcmp(STRATA_VERSION, STRATA_TEST_PROJECT_VERSION),
        "strata.h says \"%s\", meson.build's project version is \"%s\"", STRATA_VERSION,
        STRATA_TEST_PROJECT_VERSION);

  /* The SONAME of the built library, and this program's NEEDED entry. */
  char names[1024];
  int n = dynamic_strings(argv[1], DT_SONAME, names, sizeof names);
  REQUIRE(n >= 0, "%s: not a readable ELF shared object", argv[1]);
  info("%s: SONAME %s", argv[1], n ? names : "(none)\n");
  CHECK(n == 1 && !strcmp(names, "libstrata.so.1\n"), "%s: SONAME is %s, not libstrata.so.1",
        argv[1], n ? names : "missing");
  n = dynamic_strings("/proc/self/exe", DT_NEEDED, names, sizeof names);
  REQUIRE(n >= 0, "/proc/self/exe: not a readable ELF object");
  CHECK(strstr(names, "libstrata.so.1\n") != NULL, "this program does not need libstrata.so.1:\n%s",
        names);
  return checks_result("version");
}
