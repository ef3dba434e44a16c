#pragma once
// The checks shared by the resampler's ctest programs: a failed CHECK prints where and what,
// counts, and lets the program go on to report every failure; main() returns failures() != 0.
#include <cstdio>

namespace anunzi_test {
inline int& failures() {
  static int count = 0;
  return count;
}
}  // namespace anunzi_test

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++anunzi_test::failures();                                                    \
    }                                                                               \
  } while (0)
