// The resampler's kernels in plain C++, for any CPU (compiled with the baseline flags).
#include <cstddef>

#include "kernels.hpp"

namespace anunzi::detail {
namespace {

// Eight independent lanes keep the portable path's order fixed and let the compiler pipeline.
template <typename S>
S dot_portable(const S* c, const S* x, std::size_t k) {
  S acc[8] = {};
  for (std::size_t i = 0; i < k; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) acc[j] += c[i + j] * x[i + j];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace

constexpr IsaKernels kPortableKernels = {
    {group_of_dots<float, dot_portable<float>>, nullptr},
    {group_of_dots<double, dot_portable<double>>, nullptr},
};

}  // namespace anunzi::detail
