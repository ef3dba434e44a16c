#pragma once
// The one body of the resampler's vector kernels, compiled once per instruction set.
//
// kernels_avx2.cpp and kernels_avx512.cpp each define a traits type for their registers and
// instantiate these templates with it; CMake compiles each of those units, and only them, with
// its ISA's flags. Include this header in such a unit only.
//
// Everything here has internal linkage (an anonymous namespace) and calls nothing from the
// standard library that generates code (hence `smaller` instead of std::min): an inline
// function compiled in an AVX-512 unit and also emitted by a baseline unit is one symbol to
// the linker, which may keep the AVX-512 copy for both, and a CPU without AVX-512 would then
// fault in baseline code. The ctest kernel_objects_define_no_weak_symbols checks the objects.
//
// A traits type `Ops` provides
//   Scalar, Vec, kLanes            the element type, a register of kLanes of them;
//   zero(), load(p), broadcast(p)  (load is unaligned);
//   fma(a, b, c)                   a * b + c, rounded once;
//   store(p, v)                    to a 64-byte aligned p;
//   reduce(v)                      the horizontal sum, with a fixed pairing of lanes;
//   kHasReduce8, reduce8(a0, .., a7, out)
//                                  eight reductions at once, each bit for bit as reduce();
//   kHasCut, Index, index(shift), cut(lo, idx, hi)
//                                  lanes shift .. shift + kLanes - 1 of the concatenation
//                                  lo:hi (a two-source permute), when the ISA has one.
#include <cstddef>

#include "kernels.hpp"

// On every function of a traits type: inlined early, before the compiler decides what lives in
// registers, as intrinsics are.
#define ANUNZI_KERNEL_INLINE [[gnu::always_inline]]
// On each kernel body (one pass, one group size): kept out of the switches that pick them.
// Inlined there, the AVX2 fast FIR ran 15% slower.
#define ANUNZI_KERNEL_BODY [[gnu::noinline]]

namespace anunzi::detail {
namespace {

template <typename T>
constexpr T smaller(T a, T b) {
  return b < a ? b : a;
}

template <typename Ops>
using ScalarOf = typename Ops::Scalar;

// ---- Consecutive windows (the fast FIR's correlations): kLanes outputs per register, V
// registers per pass over the taps, so V independent chains hide the multiply-add latency.
template <typename Ops, int V>
ANUNZI_KERNEL_BODY void consecutive_pass(const ScalarOf<Ops>* row, const ScalarOf<Ops>* x,
                                         std::size_t k, std::size_t n, ScalarOf<Ops>* out) {
  using S = ScalarOf<Ops>;
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  Vec acc[V];
  for (int v = 0; v < V; ++v) acc[v] = Ops::zero();
  for (std::size_t t = 0; t < k; ++t) {
    const Vec c = Ops::broadcast(row + t);
    for (int v = 0; v < V; ++v) acc[v] = Ops::fma(c, Ops::load(x + t + v * kW), acc[v]);
  }
  alignas(64) S tmp[kW];
  for (int v = 0; v < V; ++v) {
    const std::size_t first = static_cast<std::size_t>(v) * kW;
    if (first >= n) break;
    Ops::store(tmp, acc[v]);
    const std::size_t count = smaller(kW, n - first);
    for (std::size_t l = 0; l < count; ++l) out[first + l] = tmp[l];
  }
}

// Only as many registers as there are outputs left, so reads end within one vector past
// the last window.
template <typename Ops>
void consecutive(const ScalarOf<Ops>* row, const ScalarOf<Ops>* x, std::size_t k,
                 std::size_t n, ScalarOf<Ops>* out) {
  constexpr std::size_t kW = Ops::kLanes;
  std::size_t j = 0;
  for (; j + 4 * kW <= n; j += 4 * kW) consecutive_pass<Ops, 4>(row, x + j, k, 4 * kW, out + j);
  const std::size_t left = n - j;
  if (left > 3 * kW) {
    consecutive_pass<Ops, 4>(row, x + j, k, left, out + j);
  } else if (left > 2 * kW) {
    consecutive_pass<Ops, 3>(row, x + j, k, left, out + j);
  } else if (left > kW) {
    consecutive_pass<Ops, 2>(row, x + j, k, left, out + j);
  } else if (left > 0) {
    consecutive_pass<Ops, 1>(row, x + j, k, left, out + j);
  }
}

// ---- Groups. Up to kMaxGroup outputs are computed together so that loads are shared: one
// coefficient row for all (decimation), one sample window for all (interpolation), or, with a
// two-source permute, shared sample vectors of one aligned block from which each window is
// cut. Without sharing, each output loads its own. Whatever the variant, each output adds its
// chunks in order into one accumulator and reduces it the same way, so its bits never depend
// on the variant or on which outputs it was grouped with.
enum class Share { kRow, kWindow, kBlock, kNone };

template <typename Ops, int G, Share kShare>
ANUNZI_KERNEL_BODY void group(const ScalarOf<Ops>* const* rows, const ScalarOf<Ops>* const* xs,
                              const ScalarOf<Ops>* block, std::size_t k, ScalarOf<Ops>* out) {
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  // One accumulator per output, chunks summed in order: the G outputs of a group are the
  // independent chains that hide the FMA latency.
  Vec acc[G];
  for (int o = 0; o < G; ++o) acc[o] = Ops::zero();
  const std::size_t chunks = k / kW;
  if constexpr (kShare == Share::kRow) {
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec c = Ops::load(rows[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(c, Ops::load(xs[o] + kW * j), acc[o]);
    }
  } else if constexpr (kShare == Share::kWindow) {
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec w = Ops::load(xs[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), w, acc[o]);
    }
  } else if constexpr (kShare == Share::kBlock) {
    typename Ops::Index idx[G];
    for (int o = 0; o < G; ++o) idx[o] = Ops::index(xs[o] - block);
    Vec lo = Ops::load(block);
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec hi = Ops::load(block + kW * (j + 1));
      for (int o = 0; o < G; ++o) {
        acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), Ops::cut(lo, idx[o], hi), acc[o]);
      }
      lo = hi;
    }
  } else {
    for (std::size_t j = 0; j < chunks; ++j) {
      for (int o = 0; o < G; ++o) {
        acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), Ops::load(xs[o] + kW * j), acc[o]);
      }
    }
  }
  if constexpr (G == 8 && Ops::kHasReduce8) {
    // By value: an accumulator whose address is taken would live in memory.
    Ops::reduce8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7], out);
  } else {
    for (int o = 0; o < G; ++o) out[o] = Ops::reduce(acc[o]);
  }
}

template <typename Ops, Share kShare>
void group_of(const ScalarOf<Ops>* const* rows, const ScalarOf<Ops>* const* xs,
              const ScalarOf<Ops>* block, std::size_t k, std::size_t g,
              ScalarOf<Ops>* out) {
  switch (g) {
    case 1:
      return group<Ops, 1, kShare>(rows, xs, block, k, out);
    case 2:
      return group<Ops, 2, kShare>(rows, xs, block, k, out);
    case 3:
      return group<Ops, 3, kShare>(rows, xs, block, k, out);
    case 4:
      return group<Ops, 4, kShare>(rows, xs, block, k, out);
    case 5:
      return group<Ops, 5, kShare>(rows, xs, block, k, out);
    case 6:
      return group<Ops, 6, kShare>(rows, xs, block, k, out);
    case 7:
      return group<Ops, 7, kShare>(rows, xs, block, k, out);
    default:
      return group<Ops, 8, kShare>(rows, xs, block, k, out);
  }
}

// Kernels::group: the variant that shares the most loads.
template <typename Ops>
void group_dispatch(const ScalarOf<Ops>* const* rows,
                    const ScalarOf<Ops>* const* xs, const ScalarOf<Ops>* block,
                    std::size_t k, std::size_t g, ScalarOf<Ops>* out) {
  bool same_row = true, same_window = true;
  for (std::size_t o = 1; o < g; ++o) {
    same_row = same_row && rows[o] == rows[0];
    same_window = same_window && xs[o] == xs[0];
  }
  if (same_row) return group_of<Ops, Share::kRow>(rows, xs, block, k, g, out);
  if (same_window) return group_of<Ops, Share::kWindow>(rows, xs, block, k, g, out);
  if constexpr (Ops::kHasCut) {
    if (block != nullptr) return group_of<Ops, Share::kBlock>(rows, xs, block, k, g, out);
  }
  // Unshared outputs need two pointers each: in fours they stay in the 16 general registers.
  for (std::size_t o = 0; o < g; o += 4) {
    group_of<Ops, Share::kNone>(rows + o, xs + o, nullptr, k, smaller<std::size_t>(4, g - o),
                                out + o);
  }
}

// The table entry for one arithmetic type.
template <typename Ops>
constexpr Kernels<ScalarOf<Ops>> kernels_of() {
  return {group_dispatch<Ops>, consecutive<Ops>};
}

}  // namespace
}  // namespace anunzi::detail
