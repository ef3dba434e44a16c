#pragma once
// Internal to the resampler: the per-ISA dot-product kernels.
#include <cstddef>
#include <cstdint>

#include "anunzi/cpu_dispatch.hpp"

namespace anunzi::detail {

// For `group`, `k` is a multiple of 16 for float and of 8 for double (the filters are padded with
// zero taps); `consecutive` takes any k.
template <typename S>
struct Kernels {
  // Up to kMaxGroup outputs at once: out[o] = dot(rows[o], xs[o]). `block` is null or the
  // vector-aligned start of a block containing every xs[o], which lets the windows share
  // loads. Bit-identical to computing each output alone with the same kernel table. The
  // samples may be read up to one vector past each window's end.
  void (*group)(const S* const* rows, const S* const* xs, const S* block, std::size_t k,
                std::size_t g, S* out);
  // n outputs with one row over consecutive windows: out[j] = sum_t row[t] * x[j + t], each a
  // single chain of multiply-adds in tap order, vectorised across outputs (no horizontal
  // sums). A different summation order from `group`: a stream uses one or the other for all
  // its outputs. Reads up to one vector of samples past the last window. Null on the
  // portable and SSE2 paths, where a scalar chain per output would be slower than `group`.
  void (*consecutive)(const S* row, const S* x, std::size_t k, std::size_t n, S* out);
};

constexpr std::size_t kMaxGroup = 8;

template <typename S>
Kernels<S> kernels_for(Isa isa);
template <>
Kernels<float> kernels_for<float>(Isa isa);
template <>
Kernels<double> kernels_for<double>(Isa isa);


}  // namespace anunzi::detail
