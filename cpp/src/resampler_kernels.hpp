#pragma once
// Internal to the resampler: the per-ISA dot-product kernels.
#include <cstddef>
#include <cstdint>

#include "anunzi/resampler.hpp"

namespace anunzi::detail {

// `k` is a multiple of 16 for float and of 8 for double (the filters are padded with zero taps).
template <typename S>
struct Kernels {
  // Up to kMaxGroup outputs at once: out[o] = dot(rows[o], xs[o]). `block` is null or the
  // vector-aligned start of a block containing every xs[o], which lets the windows share
  // loads. Bit-identical to computing each output alone with the same kernel table. The
  // samples may be read up to one vector past each window's end.
  void (*group)(const S* const* rows, const S* const* xs, const S* block, std::size_t k,
                std::size_t g, S* out);
};

constexpr std::size_t kMaxGroup = 8;

template <typename S>
Kernels<S> kernels_for(Isa isa);
template <>
Kernels<float> kernels_for<float>(Isa isa);
template <>
Kernels<double> kernels_for<double>(Isa isa);

bool cpu_supports(Isa isa);

}  // namespace anunzi::detail
