#pragma once
// Internal to the resampler: the dot-product kernels, one table per instruction set.
//
// Each ISA's kernels live in their own translation unit, compiled with that ISA's flags and
// nothing else (CMakeLists.txt): kernels_portable.cpp, kernels_sse2.cpp, and kernels_avx2.cpp
// and kernels_avx512.cpp, which compile the one generic body in kernels_simd.hpp for their
// registers. Code that runs before the dispatch (everything else) is compiled for the
// baseline. Each variant has a fixed summation order, so a given path gives the same bits for
// the same taps and samples wherever they sit in memory; different paths may differ in the
// last bits.
//
// A new kernel is written once in kernels_simd.hpp (for the vector ISAs) and added as one entry
// to Kernels and to each ISA's table.
#include <cstddef>

#include "anunzi/cpu_dispatch.hpp"

namespace anunzi::detail {

constexpr std::size_t kMaxGroup = 8;

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

// One ISA's kernels for both arithmetic types. The tables are constants (no code runs to build
// them), so nothing compiled with an ISA's flags runs before the dispatch has chosen it.
struct IsaKernels {
  Kernels<float> f32;
  Kernels<double> f64;
};

extern const IsaKernels kPortableKernels;
#if ANUNZI_X86_KERNELS
extern const IsaKernels kSse2Kernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;
#endif

// The kernels of `isa`, which this CPU must support (isa_supported()).
template <typename S>
[[nodiscard]] Kernels<S> kernels_for(Isa isa);
template <>
[[nodiscard]] Kernels<float> kernels_for<float>(Isa isa);
template <>
[[nodiscard]] Kernels<double> kernels_for<double>(Isa isa);

// The group kernel of ISAs without a group-specific kernel: each output on its own with the
// ISA's single dot product.
template <typename S, S (*Dot)(const S*, const S*, std::size_t)>
void group_of_dots(const S* const* rows, const S* const* xs, const S* /*block*/, std::size_t k,
                   std::size_t g, S* out) {
  for (std::size_t o = 0; o < g; ++o) out[o] = Dot(rows[o], xs[o], k);
}

}  // namespace anunzi::detail
