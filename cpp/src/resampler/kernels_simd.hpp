#pragma once
// The one body of the resampler's kernels, compiled once per instruction set.
//
// kernels_portable.cpp, kernels_sse2.cpp, kernels_avx2.cpp and kernels_avx512.cpp each define
// a traits type for their registers and instantiate these templates with it; CMake compiles
// each of those units with its ISA's flags (and -ffp-contract=off). Include this header in such
// a unit only.
//
// Everything here has internal linkage (an anonymous namespace) and calls nothing from the
// standard library that generates code: an inline function compiled in an AVX-512 unit and
// also emitted by a baseline unit is one symbol to the linker, which may keep the AVX-512 copy
// for both, and a CPU without AVX-512 would then fault in baseline code. The ctest
// kernel_objects_define_no_weak_symbols checks the objects.
//
// A traits type `Ops` provides
//   Scalar, Vec, kLanes            the element type, a register of kLanes of them;
//   kAccumulators, kMaxRun         output vectors `correlate` keeps in registers at once, and
//                                  coefficients of one run beside them;
//   zero(), load(p), broadcast(p)  (load is unaligned);
//   fma(a, b, c)                   a * b + c (rounded once where the ISA has FMA);
//   store(p, v), storeu(p, v)      to a 64-byte aligned p, to any p;
//   reduce(v)                      the horizontal sum, with a fixed pairing of lanes;
//   kHasPermute, IndexScalar, load_index(p), permute2(lo, idx, hi)
//                                  lane idx[l] of the concatenation lo:hi, when the ISA has it.
//
// Why the kernels look as they do (measured on the project's AVX-512 machine, where two FMA
// units retire 2 zmm multiply-adds per cycle and a cache-line-splitting load costs about two):
// a kernel that loads one coefficient and one sample vector per multiply-add is bound by
// loads at a third of the FMA peak. Both kernels below vectorise over outputs instead, and
// reuse every register they load: `correlate` keeps up to 12 output vectors and up to 12
// broadcast coefficients in registers and loads each window once for all the outputs it
// serves (a quarter to half a load per multiply-add, 70-90 % of the FMA peak: runs of 10 taps
// reach 110 G multiply-adds/s of a 124 G peak where runs of 5 reach 93); `lanes_blocks`
// shares one aligned coefficient vector among up to 8 blocks and needs one broadcast sample
// per multiply-add.
#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels.hpp"

// On every function of a traits type and the small helpers: inlined early, before the
// compiler decides what lives in registers, as intrinsics are.
#define ANUNZI_KERNEL_INLINE [[gnu::always_inline]]
// On each kernel body (one block size): kept out of the loops that pick them, so each body's
// registers are allocated for it alone.
#define ANUNZI_KERNEL_BODY [[gnu::noinline]]
// Complete unrolling of the loops over registers, early enough that every accumulator and
// window is a register of its own (without it, GCC keeps the arrays in memory).
#define ANUNZI_UNROLL _Pragma("GCC unroll 32")

namespace anunzi::detail {
namespace {

template <typename Ops>
using ScalarOf = typename Ops::Scalar;

// The integers [kFirst, kEnd) as an index_sequence (std::make_index_sequence starts at 0).
template <std::size_t kFirst, std::size_t... kI>
constexpr std::index_sequence<(kFirst + kI)...> shift_sequence(std::index_sequence<kI...>) {
  return {};
}
template <std::size_t kFirst, std::size_t kEnd>
constexpr auto make_index_range() {
  return shift_sequence<kFirst>(std::make_index_sequence<kEnd - kFirst>());
}
template <typename Ops>
using VecOf = typename Ops::Vec;

// ---- correlate: vectors of consecutive outputs of one phase. For each run, the J coefficients
// are broadcast once, and window m (the samples of output vector m - i for tap i) is loaded
// once for the J taps that need it: A + J - 1 loads for A * J multiply-adds.
template <typename Ops, int A, int J>
ANUNZI_KERNEL_INLINE inline void run_taps(const ScalarOf<Ops>* c, const ScalarOf<Ops>* p,
                                          VecOf<Ops>* acc) {
  constexpr std::size_t kW = Ops::kLanes;
  VecOf<Ops> coef[J];
  ANUNZI_UNROLL for (int i = 0; i < J; ++i) coef[i] = Ops::broadcast(c + i);
  ANUNZI_UNROLL for (int m = 0; m < A + J - 1; ++m) {
    const VecOf<Ops> window = Ops::load(p + kW * static_cast<std::size_t>(m));
    // Output vector a takes tap i from window a + i: in order of i for each a.
    ANUNZI_UNROLL for (int i = J - 1; i >= 0; --i) {
      const int a = m - i;
      if (a >= 0 && a < A) acc[a] = Ops::fma(coef[i], window, acc[a]);
    }
  }
}

template <typename Ops, int A, int J>
ANUNZI_KERNEL_INLINE inline const TapRun* run_group(const TapRun* run, std::uint32_t count,
                                                    const ScalarOf<Ops>* coefs,
                                                    const ScalarOf<Ops>* const* streams,
                                                    std::size_t first, VecOf<Ops>* acc) {
  if constexpr (static_cast<std::size_t>(J) > Ops::kMaxRun) return run;  // never built so long
  for (std::uint32_t q = 0; q < count; ++q, ++run) {
    const ScalarOf<Ops>* p =
        streams[run->stream] + run->offset + static_cast<std::ptrdiff_t>(first);
    run_taps<Ops, A, J>(coefs + run->coef, p, acc);
  }
  return run;
}

// A vectors of outputs from output `first` on; those before n are stored.
template <typename Ops, int A>
ANUNZI_KERNEL_BODY void correlate_block(const TapRun* runs, const std::uint32_t* groups,
                                        const ScalarOf<Ops>* coefs,
                                        const ScalarOf<Ops>* const* streams, std::size_t first,
                                        std::size_t n, ScalarOf<Ops>* out) {
  static_assert(kMaxRunTaps == 12, "one run_group per run length");
  static_assert(Ops::kMaxRun <= kMaxRunTaps, "runs no longer than the groups array covers");
  constexpr std::size_t kW = Ops::kLanes;
  VecOf<Ops> acc[A];
  ANUNZI_UNROLL for (int a = 0; a < A; ++a) acc[a] = Ops::zero();
  const TapRun* run = runs;
  run = run_group<Ops, A, 12>(run, groups[0], coefs, streams, first, acc);
  run = run_group<Ops, A, 11>(run, groups[1], coefs, streams, first, acc);
  run = run_group<Ops, A, 10>(run, groups[2], coefs, streams, first, acc);
  run = run_group<Ops, A, 9>(run, groups[3], coefs, streams, first, acc);
  run = run_group<Ops, A, 8>(run, groups[4], coefs, streams, first, acc);
  run = run_group<Ops, A, 7>(run, groups[5], coefs, streams, first, acc);
  run = run_group<Ops, A, 6>(run, groups[6], coefs, streams, first, acc);
  run = run_group<Ops, A, 5>(run, groups[7], coefs, streams, first, acc);
  run = run_group<Ops, A, 4>(run, groups[8], coefs, streams, first, acc);
  run = run_group<Ops, A, 3>(run, groups[9], coefs, streams, first, acc);
  run = run_group<Ops, A, 2>(run, groups[10], coefs, streams, first, acc);
  run_group<Ops, A, 1>(run, groups[11], coefs, streams, first, acc);
  const std::size_t valid = n - first;
  ANUNZI_UNROLL for (int a = 0; a < A; ++a) {
    const std::size_t at = kW * static_cast<std::size_t>(a);
    if (at + kW <= valid) {
      Ops::storeu(out + first + at, acc[a]);
    } else if (at < valid) {  // the last, partial vector
      alignas(64) ScalarOf<Ops> last[kW];
      Ops::store(last, acc[a]);
      for (std::size_t l = 0; l < valid - at; ++l) out[first + at + l] = last[l];
    }
  }
}

template <typename Ops, int A>
ANUNZI_KERNEL_INLINE inline void correlate_blocks(const TapRun* runs, const std::uint32_t* groups,
                                                  const ScalarOf<Ops>* coefs,
                                                  const ScalarOf<Ops>* const* streams,
                                                  std::size_t vectors, std::size_t& v,
                                                  std::size_t n, ScalarOf<Ops>* out) {
  for (std::size_t i = 0; i < vectors; ++i, v += A) {
    correlate_block<Ops, A>(runs, groups, coefs, streams, v * Ops::kLanes, n, out);
  }
}

// The vectors in blocks as even as the accumulators allow (43 vectors with 12 accumulators:
// 11, 11, 11 and 10), so no block is left with a few vectors to fill the FMA pipelines. Every
// output is computed by the same chain whatever block it falls in.
template <typename Ops, std::size_t... kSizes>
void correlate_sized(const TapRun* runs, const std::uint32_t* groups, const ScalarOf<Ops>* coefs,
                     const ScalarOf<Ops>* const* streams, std::size_t n, ScalarOf<Ops>* out,
                     std::index_sequence<kSizes...>) {
  constexpr std::size_t kW = Ops::kLanes;
  constexpr std::size_t kA = Ops::kAccumulators;
  const std::size_t vectors = (n + kW - 1) / kW;
  if (vectors == 0) return;
  const std::size_t blocks = (vectors + kA - 1) / kA;
  const std::size_t small = vectors / blocks;          // blocks of `small` and `small + 1`
  const std::size_t large = vectors - small * blocks;  // this many of size small + 1
  std::size_t v = 0;
  // kSizes is 1 .. kA: one block body per size.
  ((kSizes == small + 1
        ? correlate_blocks<Ops, static_cast<int>(kSizes)>(runs, groups, coefs, streams, large,
                                                           v, n, out)
        : void()),
   ...);
  ((kSizes == small ? correlate_blocks<Ops, static_cast<int>(kSizes)>(
                          runs, groups, coefs, streams, blocks - large, v, n, out)
                    : void()),
   ...);
}

template <typename Ops>
void correlate(const TapRun* runs, const std::uint32_t* groups, const ScalarOf<Ops>* coefs,
               const ScalarOf<Ops>* const* streams, std::size_t n, ScalarOf<Ops>* out) {
  correlate_sized<Ops>(runs, groups, coefs, streams, n, out,
                       make_index_range<1, Ops::kAccumulators + 1>());
}

// ---- lanes_blocks: each block is kLanes consecutive outputs (of different phases), lane l
// one output; one broadcast sample per multiply-add, the coefficient vector shared by every
// block of the same phases (kShared: one load for all G).
template <typename Ops, int G, bool kShared>
ANUNZI_KERNEL_BODY void lanes_fixed(const ScalarOf<Ops>* const* coefs,
                                    const ScalarOf<Ops>* const* xs, std::size_t span,
                                    ScalarOf<Ops>* const* outs) {
  constexpr std::size_t kW = Ops::kLanes;
  VecOf<Ops> acc[G];
  const ScalarOf<Ops>* x[G];
  const ScalarOf<Ops>* c[G];
  ANUNZI_UNROLL for (int g = 0; g < G; ++g) {
    acc[g] = Ops::zero();
    x[g] = xs[g];
    c[g] = coefs[g];
  }
  for (std::size_t u = 0; u < span; ++u) {
    if constexpr (kShared) {
      const VecOf<Ops> coef = Ops::load(c[0] + kW * u);
      ANUNZI_UNROLL for (int g = 0; g < G; ++g) {
        acc[g] = Ops::fma(coef, Ops::broadcast(x[g] + u), acc[g]);
      }
    } else {
      ANUNZI_UNROLL for (int g = 0; g < G; ++g) {
        acc[g] = Ops::fma(Ops::load(c[g] + kW * u), Ops::broadcast(x[g] + u), acc[g]);
      }
    }
  }
  // + 0 (as 0 * 0 + acc) turns a -0 sum into +0 and leaves every other value as it is: a
  // lane's sum can become -0 (a product that rounds to -0), and the zero coefficients after
  // its own taps then keep or drop that sign by the sign of samples that are not its own,
  // which streaming may not have received yet.
  const VecOf<Ops> none = Ops::zero();
  ANUNZI_UNROLL for (int g = 0; g < G; ++g) Ops::storeu(outs[g], Ops::fma(none, none, acc[g]));
}

template <typename Ops, bool kShared>
void lanes_of(const ScalarOf<Ops>* const* coefs, const ScalarOf<Ops>* const* xs,
              std::size_t span, std::size_t g, ScalarOf<Ops>* const* out) {
  static_assert(kMaxLaneBlocks == 8, "one case per block count");
  switch (g) {
    case 1:
      return lanes_fixed<Ops, 1, kShared>(coefs, xs, span, out);
    case 2:
      return lanes_fixed<Ops, 2, kShared>(coefs, xs, span, out);
    case 3:
      return lanes_fixed<Ops, 3, kShared>(coefs, xs, span, out);
    case 4:
      return lanes_fixed<Ops, 4, kShared>(coefs, xs, span, out);
    case 5:
      return lanes_fixed<Ops, 5, kShared>(coefs, xs, span, out);
    case 6:
      return lanes_fixed<Ops, 6, kShared>(coefs, xs, span, out);
    case 7:
      return lanes_fixed<Ops, 7, kShared>(coefs, xs, span, out);
    default:
      return lanes_fixed<Ops, 8, kShared>(coefs, xs, span, out);
  }
}

template <typename Ops>
void lanes_blocks(const ScalarOf<Ops>* const* coefs, const ScalarOf<Ops>* const* xs,
                  std::size_t span, std::size_t g, ScalarOf<Ops>* const* out) {
  bool shared = true;
  for (std::size_t b = 1; b < g; ++b) shared = shared && coefs[b] == coefs[0];
  if (shared) return lanes_of<Ops, true>(coefs, xs, span, g, out);
  lanes_of<Ops, false>(coefs, xs, span, g, out);
}

// ---- deinterleave and interleave: strides of 2 and 3 (the common decimations and
// interpolations) with two-source permutes where the ISA has them (kHasPermute: IndexScalar,
// load_index(p), permute2(lo, idx, hi) picking lane idx of lo:hi), else element by element.
// The index vectors, for `ways` of 2 and 3, are constants: [ways - 2][row or vector][lane].
template <typename I, std::size_t kW>
struct StrideIndices {
  // deinterleave: row r, lane l is x[ways * l + r] of the vectors a, b, c loaded from x; the
  // first permute takes it from a:b, the second from c for what lies beyond them.
  I split_ab[2][3][kW];
  I split_c[2][3][kW];
  // interleave: output vector v, lane l is element e = v * kW + l, row e % ways, index
  // e / ways; the first permute takes rows 0 and 1, the second row 2.
  I merge_ab[2][3][kW];
  I merge_c[2][3][kW];
  constexpr StrideIndices() : split_ab{}, split_c{}, merge_ab{}, merge_c{} {
    for (std::size_t ways = 2; ways <= 3; ++ways) {
      for (std::size_t r = 0; r < ways; ++r) {
        for (std::size_t l = 0; l < kW; ++l) {
          const std::size_t e = ways * l + r;
          split_ab[ways - 2][r][l] = static_cast<I>(e < 2 * kW ? e : 0);
          split_c[ways - 2][r][l] = static_cast<I>(e < 2 * kW ? l : e - kW);
          const std::size_t f = r * kW + l, row = f % ways, i = f / ways;
          merge_ab[ways - 2][r][l] = static_cast<I>(row == 0 ? i : row == 1 ? kW + i : 0);
          merge_c[ways - 2][r][l] = static_cast<I>(row == 2 ? kW + i : l);
        }
      }
    }
  }
};

template <typename Ops>
constexpr StrideIndices<typename Ops::IndexScalar, Ops::kLanes> kStrideIndices{};

template <typename Ops>
void deinterleave(const ScalarOf<Ops>* x, std::size_t ways, std::size_t n,
                  ScalarOf<Ops>* const* outs) {
  std::size_t m = 0;
  if constexpr (Ops::kHasPermute) {
    constexpr std::size_t kW = Ops::kLanes;
    constexpr const auto& kIdx = kStrideIndices<Ops>;
    if (ways == 2 || ways == 3) {
      const std::size_t w = ways - 2;
      for (; m + kW <= n; m += kW) {
        const ScalarOf<Ops>* p = x + ways * m;
        const VecOf<Ops> a = Ops::load(p), b = Ops::load(p + kW);
        for (std::size_t r = 0; r < ways; ++r) {
          VecOf<Ops> row = Ops::permute2(a, Ops::load_index(kIdx.split_ab[w][r]), b);
          if (ways == 3) {
            row = Ops::permute2(row, Ops::load_index(kIdx.split_c[w][r]), Ops::load(p + 2 * kW));
          }
          Ops::storeu(outs[r] + m, row);
        }
      }
    }
  }
  for (; m < n; ++m) {
    for (std::size_t r = 0; r < ways; ++r) outs[r][m] = x[m * ways + r];
  }
}

template <typename Ops>
void interleave(const ScalarOf<Ops>* const* ins, std::size_t ways, std::size_t n,
                ScalarOf<Ops>* out) {
  std::size_t m = 0;
  if constexpr (Ops::kHasPermute) {
    constexpr std::size_t kW = Ops::kLanes;
    constexpr const auto& kIdx = kStrideIndices<Ops>;
    if (ways == 2 || ways == 3) {
      const std::size_t w = ways - 2;
      for (; m + kW <= n; m += kW) {
        const VecOf<Ops> a = Ops::load(ins[0] + m), b = Ops::load(ins[1] + m);
        for (std::size_t v = 0; v < ways; ++v) {
          VecOf<Ops> vec = Ops::permute2(a, Ops::load_index(kIdx.merge_ab[w][v]), b);
          if (ways == 3) {
            vec = Ops::permute2(vec, Ops::load_index(kIdx.merge_c[w][v]), Ops::load(ins[2] + m));
          }
          Ops::storeu(out + ways * m + v * kW, vec);
        }
      }
    }
  }
  for (; m < n; ++m) {
    for (std::size_t r = 0; r < ways; ++r) out[m * ways + r] = ins[r][m];
  }
}

// ---- interp4: four rows against one window, each row's chunks summed in order into one
// accumulator, then reduced.
template <typename Ops>
ANUNZI_KERNEL_BODY void interp4(const ScalarOf<Ops>* const* rows, const ScalarOf<Ops>* x,
                                std::size_t k, ScalarOf<Ops>* out) {
  constexpr std::size_t kW = Ops::kLanes;
  VecOf<Ops> acc[4];
  const ScalarOf<Ops>* row[4];
  ANUNZI_UNROLL for (int r = 0; r < 4; ++r) {
    acc[r] = Ops::zero();
    row[r] = rows[r];
  }
  for (std::size_t j = 0; j < k; j += kW) {
    const VecOf<Ops> window = Ops::load(x + j);
    ANUNZI_UNROLL for (int r = 0; r < 4; ++r) {
      acc[r] = Ops::fma(Ops::load(row[r] + j), window, acc[r]);
    }
  }
  ANUNZI_UNROLL for (int r = 0; r < 4; ++r) out[r] = Ops::reduce(acc[r]);
}

// ---- fma_probe: kProbeChains chains of a * x + b, far more than the FMA latency times the
// units, so the loop is bound by the units alone. x stays between b / (1 - a) and the seeds.
template <typename Ops>
ANUNZI_KERNEL_BODY ScalarOf<Ops> fma_probe(const ScalarOf<Ops>* seeds, std::size_t iterations) {
  constexpr int kChains = static_cast<int>(kProbeChains);
  VecOf<Ops> acc[kChains];
  ANUNZI_UNROLL for (int i = 0; i < kChains; ++i) acc[i] = Ops::broadcast(seeds + i);
  const VecOf<Ops> a = Ops::broadcast(seeds + kChains), b = Ops::broadcast(seeds + kChains + 1);
  for (std::size_t n = 0; n < iterations; ++n) {
    ANUNZI_UNROLL for (int i = 0; i < kChains; ++i) acc[i] = Ops::fma(a, acc[i], b);
  }
  ScalarOf<Ops> sum = ScalarOf<Ops>(0);
  ANUNZI_UNROLL for (int i = 0; i < kChains; ++i) sum += Ops::reduce(acc[i]);
  return sum;
}

// The table entry for one arithmetic type.
template <typename Ops>
constexpr Kernels<ScalarOf<Ops>> kernels_of() {
  return {Ops::kLanes,       Ops::kMaxRun,         correlate<Ops>,
          lanes_blocks<Ops>,  deinterleave<Ops>,   interleave<Ops>,
          interp4<Ops>,       fma_probe<Ops>};
}

}  // namespace
}  // namespace anunzi::detail
