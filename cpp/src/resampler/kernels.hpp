#pragma once
// Internal to the resampler: the multiply-add kernels, one table per instruction set.
//
// Each ISA's kernels live in their own translation unit, compiled with that ISA's flags and
// nothing else (CMakeLists.txt): kernels_portable.cpp, kernels_sse2.cpp, kernels_avx2.cpp and
// kernels_avx512.cpp all compile the one generic body in kernels_simd.hpp for their registers
// (a lane of one scalar for the portable path). Code that runs before the dispatch (everything
// else) is compiled for the baseline. Every kernel computes each output as one chain of
// multiply-adds in an order fixed by its coefficients alone, so a given path gives the same
// bits for the same taps and samples wherever they sit in memory and whichever outputs were
// computed alongside; different paths may differ in the last bits.
//
// A new kernel is written once in kernels_simd.hpp and added as one entry to Kernels.
#include <cstddef>
#include <cstdint>

#include "anunzi/cpu_dispatch.hpp"

namespace anunzi::detail {

// Most blocks a `lanes` call computes, and most taps in one TapRun on any ISA (each ISA's own
// limit is Kernels::max_run).
constexpr std::size_t kMaxLaneBlocks = 8;
constexpr std::size_t kMaxRunTaps = 12;

// A run of taps of one output phase for `correlate`: `count` taps whose sample windows lie
// `lanes` apart in one input stream, so that the windows one output block loads for a tap
// serve the next tap for the block `lanes` outputs further on. Tap i of the run multiplies
// coefs[coef + i] with streams[stream][offset + lanes * i + j] for output j.
struct TapRun {
  std::uint32_t stream;
  std::int32_t offset;
  std::uint32_t count;
  std::uint32_t coef;
};

template <typename S>
struct Kernels {
  // Samples per vector register (1 on the portable path); the output blocks of `correlate`
  // and `lanes` come in multiples of it.
  std::size_t lanes;
  // Most taps per TapRun: the broadcast coefficients of a run stay in registers.
  std::size_t max_run;
  // n outputs of one phase over consecutive windows: out[j] = sum over the runs, in order,
  // of each run's taps in order. The runs come sorted by count, longest first, and groups[c]
  // of them have count kMaxRunTaps - c. Reads up to lanes - 1 samples past the last window
  // of each stream.
  void (*correlate)(const TapRun* runs, const std::uint32_t* groups, const S* coefs,
                    const S* const* streams, std::size_t n, S* out);
  // g <= kMaxLaneBlocks blocks of `lanes` consecutive outputs: outs[b][l] =
  // sum_u coefs[b][u * lanes + l] * xs[b][u] for u < span, in order of u. Each coefficient
  // block holds, per lane, its output's taps shifted to where its window starts in xs.
  void (*lanes_blocks)(const S* const* coefs, const S* const* xs, std::size_t span,
                       std::size_t g, S* const* outs);
  // outs[r][m] = x[m * ways + r] for m < n and r < ways: the sub-streams of a decimation.
  void (*deinterleave)(const S* x, std::size_t ways, std::size_t n, S* const* outs);
  // out[m * ways + r] = ins[r][m] for m < n and r < ways: the phases of an interpolation back
  // in order.
  void (*interleave)(const S* const* ins, std::size_t ways, std::size_t n, S* out);
  // Four dot products of k taps (a multiple of 16 for float, 8 for double) with one window:
  // out[r] = dot(rows[r], x), for the cubic interpolation between table rows. Reads up to
  // one vector past the window.
  void (*interp4)(const S* const* rows, const S* x, std::size_t k, S* out);
  // For the benchmarks: `iterations` rounds of kProbeChains independent vector multiply-adds
  // on registers alone (nothing loaded or stored), seeded from seeds[0 .. kProbeChains + 2);
  // returns their sum so none is optimised away. The FMA peak the kernels are measured
  // against.
  S (*fma_probe)(const S* seeds, std::size_t iterations);
};

constexpr std::size_t kProbeChains = 12;

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

}  // namespace anunzi::detail
