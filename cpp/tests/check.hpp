#pragma once
// The checks shared by the ctest programs: a failed check prints what failed, counts, and
// lets the program go on to report every failure; main() returns failures() != 0.
#include <cstdio>

namespace anunzi_test {

inline int& failures() {
  static int count = 0;
  return count;
}

inline void check(bool ok, const char* what) {
  if (!ok) {
    ++failures();
    std::fprintf(stderr, "FAILED: %s\n", what);
  }
}

}  // namespace anunzi_test

// The condition's own text and place, for checks written as CHECK(condition).
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++anunzi_test::failures();                                                    \
    }                                                                               \
  } while (0)
