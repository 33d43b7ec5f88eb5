// test_cxx_new.cc - the C++ allocation functions reach Strata and keep their
// standard semantics.
//
// Strata does not define operator new/delete; libstdc++'s versions call
// malloc, aligned_alloc and free, which are Strata's. This test checks:
//   1. every form of new returns a Strata block (strata_owns), aligned as
//      asked, writable over its whole size, and every matching delete takes
//      it back: plain, array, sized delete, nothrow, std::align_val_t from
//      16 B to 64 KiB and 2 MiB (plain, array, sized, nothrow), over-aligned
//      types in new-expressions and in std::vector;
//   2. a new that cannot succeed (SIZE_MAX / 2 bytes) throws std::bad_alloc,
//      and the nothrow forms return nullptr, for plain, array and aligned;
//   3. the new-handler: a handler that counts its calls and then removes
//      itself is called exactly 3 times before bad_alloc (or nullptr for the
//      nothrow forms, which call the throwing form);
//   4. a handler that frees a reserve makes the retry succeed: in a child
//      process whose address space is limited (RLIMIT_AS), a 640 MiB reserve
//      is held, a 640 MiB new fails inside Strata, the handler frees the
//      reserve and the retry returns a Strata block.
// Built linked with libstrata.so and for LD_PRELOAD (see meson.build).
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "link_common.h"

namespace {

// A block from some form of new: not null, Strata's, aligned, writable.
void check_block(const char *what, void *p, size_t n, size_t align) {
  CHECK(p != nullptr, "%s(%zu, align %zu) returned nullptr", what, n, align);
  if (!p) return;
  CHECK(link_owns(p) == 1, "%s(%zu, align %zu) = %p is not a Strata block", what, n, align, p);
  CHECK((uintptr_t)p % align == 0, "%s(%zu) = %p is not aligned to %zu", what, n, p, align);
  memset(p, 0x5a, n);
  if (n) {
    CHECK(((unsigned char *)p)[n - 1] == 0x5a, "%s(%zu): last byte not writable", what, n);
  }
}

// ---- 1. every form reaches Strata ------------------------------------------
struct Plain {
  char bytes[40];
};
struct WithDtor {   // a destructor makes new[] store an element count
  long value = 42;
  ~WithDtor() { value = -1; }
};
struct alignas(64) Aligned64 {
  char bytes[100];
};
struct alignas(4096) AlignedPage {
  char bytes[5000];
};

const size_t kSizes[] = {0, 1, 8, 16, 24, 100, 1000, 4096, 65536, 1 << 20, (17 << 20) + 1};
const size_t kAligns[] = {16, 32, 64, 128, 256, 4096, 8192, 65536, 2u << 20};

void test_forms() {
  // New-expressions.
  int *i = new int(7);
  check_block("new int", i, sizeof *i, alignof(int));
  delete i;
  Plain *pl = new Plain;
  check_block("new Plain", pl, sizeof *pl, alignof(Plain));
  delete pl;   // sized delete: operator delete(void *, size_t)
  WithDtor *wd = new WithDtor[hide(100)];
  check_block("new WithDtor[100]", wd, 100 * sizeof *wd, alignof(WithDtor));
  delete[] wd;   // sized array delete, with the element-count cookie
  char *ca = new char[hide(5000)];
  check_block("new char[5000]", ca, 5000, 1);
  delete[] ca;
  Aligned64 *a64 = new Aligned64;
  check_block("new Aligned64", a64, sizeof *a64, 64);
  delete a64;
  AlignedPage *ap = new AlignedPage[hide(3)];
  check_block("new AlignedPage[3]", ap, 3 * sizeof *ap, 4096);
  delete[] ap;
  int *nt = new (std::nothrow) int[hide(1000)];
  check_block("new (nothrow) int[1000]", nt, 1000 * sizeof(int), alignof(int));
  delete[] nt;
  {
    std::vector<AlignedPage> v(5);   // std::allocator uses aligned new
    check_block("vector<AlignedPage>", v.data(), 5 * sizeof(AlignedPage), 4096);
  }

  // The allocation functions themselves, every size.
  for (size_t n : kSizes) {
    void *p = ::operator new(n);
    check_block("operator new", p, n, 16);
    ::operator delete(p);
    p = ::operator new(n);
    check_block("operator new", p, n, 16);
    ::operator delete(p, n);   // sized
    p = ::operator new[](n);
    check_block("operator new[]", p, n, 16);
    ::operator delete[](p);
    p = ::operator new[](n);
    check_block("operator new[]", p, n, 16);
    ::operator delete[](p, n);   // sized
    p = ::operator new(n, std::nothrow);
    check_block("operator new(nothrow)", p, n, 16);
    ::operator delete(p, std::nothrow);
    p = ::operator new[](n, std::nothrow);
    check_block("operator new[](nothrow)", p, n, 16);
    ::operator delete[](p, std::nothrow);
  }

  // Aligned forms, alignments 16 B .. 2 MiB, sizes below, at and above the
  // alignment.
  for (size_t a : kAligns) {
    std::align_val_t al{a};
    for (size_t n : {size_t{1}, size_t{100}, a, 3 * a + 5}) {
      void *p = ::operator new(n, al);
      check_block("operator new(align)", p, n, a);
      ::operator delete(p, al);
      p = ::operator new(n, al);
      check_block("operator new(align)", p, n, a);
      ::operator delete(p, n, al);   // sized and aligned
      p = ::operator new[](n, al);
      check_block("operator new[](align)", p, n, a);
      ::operator delete[](p, al);
      p = ::operator new[](n, al);
      check_block("operator new[](align)", p, n, a);
      ::operator delete[](p, n, al);
      p = ::operator new(n, al, std::nothrow);
      check_block("operator new(align, nothrow)", p, n, a);
      ::operator delete(p, al, std::nothrow);
      p = ::operator new[](n, al, std::nothrow);
      check_block("operator new[](align, nothrow)", p, n, a);
      ::operator delete[](p, al, std::nothrow);
    }
  }
}

// ---- 2. and 3. failing new ------------------------------------------------
const size_t kHuge = SIZE_MAX / 2;   // over PTRDIFF_MAX: can never succeed

int handler_calls;
void counting_handler() {
  // Called by operator new each time malloc fails; after the third call it
  // removes itself, so the next failure throws std::bad_alloc.
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}

// The eight forms of a huge request: returns nullptr or throws bad_alloc.
enum Form { PLAIN, ARRAY, ALIGNED, ALIGNED_ARRAY, NT, NT_ARRAY, NT_ALIGNED, NT_ALIGNED_ARRAY };
const char *const kFormNames[] = {"new",          "new[]",          "new(align)",
                                  "new[](align)", "new(nothrow)",   "new[](nothrow)",
                                  "new(align, nothrow)", "new[](align, nothrow)"};
void *huge_new(Form f, size_t n) {
  std::align_val_t al{64};
  switch (f) {
    case PLAIN: return ::operator new(n);
    case ARRAY: return ::operator new[](n);
    case ALIGNED: return ::operator new(n, al);
    case ALIGNED_ARRAY: return ::operator new[](n, al);
    case NT: return ::operator new(n, std::nothrow);
    case NT_ARRAY: return ::operator new[](n, std::nothrow);
    case NT_ALIGNED: return ::operator new(n, al, std::nothrow);
    case NT_ALIGNED_ARRAY: return ::operator new[](n, al, std::nothrow);
  }
  return nullptr;
}

void test_failure(bool with_handler) {
  for (int f = PLAIN; f <= NT_ALIGNED_ARRAY; f++) {
    bool nothrow = f >= NT;
    handler_calls = 0;
    std::set_new_handler(with_handler ? counting_handler : nullptr);
    bool threw = false;
    void *p = nullptr;
    try {
      p = huge_new((Form)f, hide(kHuge));
    } catch (const std::bad_alloc &) {
      threw = true;
    }
    const char *name = kFormNames[f];
    if (nothrow) {
      CHECK(!threw && p == nullptr, "%s(SIZE_MAX/2): expected nullptr, got %p%s", name, p,
            threw ? " and an exception" : "");
    } else {
      CHECK(threw, "%s(SIZE_MAX/2) did not throw std::bad_alloc (returned %p)", name, p);
    }
    int expected_calls = with_handler ? 3 : 0;
    CHECK(handler_calls == expected_calls, "%s(SIZE_MAX/2): the new-handler ran %d times, "
          "expected %d", name, handler_calls, expected_calls);
    CHECK(std::get_new_handler() == nullptr, "%s: the handler did not remove itself", name);
  }
  std::set_new_handler(nullptr);
  // A new-expression of an array too large for memory.
  bool threw = false;
  try {
    char *p = new char[hide(kHuge)];
    LINK_ESCAPE(p);
    delete[] p;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw, "new char[SIZE_MAX/2] did not throw");
  char *q = new (std::nothrow) char[hide(kHuge)];
  CHECK(q == nullptr, "new (nothrow) char[SIZE_MAX/2] returned %p", (void *)q);
}

// ---- 4. a handler that frees a reserve ----------------------------------------
constexpr size_t kReserve = 640u << 20;   // 640 MiB
void *reserve;
int reserve_calls;
void release_reserve() {
  reserve_calls++;
  if (reserve) {
    free(reserve);   // gives the address space back; the retry can succeed
    reserve = nullptr;
  } else {
    std::set_new_handler(nullptr);   // nothing left to give: fail
  }
}

// Runs in a child process (it limits its own address space); returns the
// number of failed checks as the exit status.
int reserve_child() {
  // Allow the current address space plus 1 GiB: the 640 MiB reserve fits,
  // a second 640 MiB block beside it does not.
  long vm_kib = status_kib("VmSize:");
  if (vm_kib <= 0) link_die("cannot read VmSize");
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)vm_kib * 1024 + (1u << 30);
  if (setrlimit(RLIMIT_AS, &rl)) link_die("setrlimit(RLIMIT_AS) failed");

  for (int f : {PLAIN, NT, ALIGNED}) {
    const char *name = kFormNames[f];
    reserve = malloc(hide(kReserve));
    if (!reserve) link_die("the %zu MiB reserve could not be allocated", kReserve >> 20);
    reserve_calls = 0;
    std::set_new_handler(release_reserve);
    void *p = nullptr;
    try {
      p = huge_new((Form)f, hide(kReserve));
    } catch (const std::bad_alloc &) {
      CHECK(false, "%s(640 MiB) threw std::bad_alloc after %d handler call(s)", name,
            reserve_calls);
    }
    std::set_new_handler(nullptr);
    CHECK(reserve_calls == 1, "%s(640 MiB): the handler ran %d times, expected 1 (the first "
          "attempt must fail under the limit, the retry succeed)", name, reserve_calls);
    CHECK(p && link_owns(p) == 1, "%s(640 MiB) after the handler = %p, not a Strata block",
          name, p);
    if (p) {
      ((char *)p)[0] = 1;
      ((char *)p)[kReserve - 1] = 2;
      if (f == ALIGNED)
        ::operator delete(p, std::align_val_t{64});
      else
        ::operator delete(p);
    }
    free(reserve);   // when the handler was not called
    reserve = nullptr;
  }
  return failures;
}

}  // namespace

int main() {
  link_setup("test_cxx_new");
  test_forms();
  info("every form of new/delete reaches Strata%s", failures ? " (with failures)" : "");
  test_failure(false);
  test_failure(true);
  info("failing new: bad_alloc, nullptr and the new-handler checked");

  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) link_die("fork failed");
  if (pid == 0) _exit(reserve_child() ? 1 : 0);
  int status;
  if (waitpid(pid, &status, 0) != pid) link_die("waitpid failed");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "the reserve-handler child failed (status %#x)", status);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    info("a handler freeing a 640 MiB reserve let the retry succeed");

  return checks_result("test_cxx_new");
}
