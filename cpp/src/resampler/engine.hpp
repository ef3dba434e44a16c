#pragma once
// Internal to the resampler: the per-sample engine of one stream, for one arithmetic type.
//
// Every output sample is one dot product between a fixed row of coefficients (chosen by the
// output's exact rational position) and a window of input samples, computed by the same kernel
// with the same summation order however the input was chunked. That is what makes chunked output
// bit-identical to one-shot output, and what lets each output be released as soon as the last
// input sample it needs has arrived (no block bursts).
//
// The engine owns the samples (history, scratch) and the design; the stream's configuration and
// progress are a StreamState the caller keeps and passes in, so that they can be read without
// knowing the arithmetic type.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "anunzi/resampler.hpp"
#include "design.hpp"
#include "kernels.hpp"
#include "state.hpp"

namespace anunzi::detail {

// S is the arithmetic type of the history, the coefficients and the accumulation.
template <typename S>
class PolyphaseEngine {
 public:
  // An engine for the stream `st` describes (its layout taken from `design`), cleared.
  PolyphaseEngine(StreamState& st, std::shared_ptr<const FilterDesign<S>> design);

  [[nodiscard]] const std::shared_ptr<const FilterDesign<S>>& design() const { return filter_; }

  // Consumes all of `in` and writes `out`, which has exactly st.output_frames_for(in.frames,
  // last) frames (the caller checks).
  std::size_t process(StreamState& st, const StridedConstView& in, bool last,
                      const StridedView& out);
  // Back to a fresh stream: the signal is zero before its first sample.
  void clear(StreamState& st);
  // Turns a fresh stream into the continuation of a one-shot conversion from output `first`:
  // as if outputs [0, first) had been produced from the input before the returned frame,
  // which is where the caller feeds the input from.
  std::uint64_t start_at_output(StreamState& st, std::uint64_t first);

 private:
  static constexpr std::size_t kW = kLanes<S>;
  // Input is buffered and consumed in blocks of this many frames so the history stays in cache.
  static constexpr std::size_t kBlockFrames = 4096;
  static constexpr std::size_t kScratchMin = 256;
  static constexpr std::uint64_t kMaxPhaseMajorScratch = std::uint64_t{1} << 20;  // samples
  static constexpr std::uint64_t kMaxConsecutiveUp = 64;
  static constexpr std::uint64_t kMinPeriods = 2;
  static constexpr std::size_t kSplitSlack = 4 * kW;

  void append(StreamState& st, const StridedConstView& in, std::size_t start, std::size_t n);
  template <typename T>
  static void convert(const T* src, std::ptrdiff_t stride, std::size_t n, S scale, S* dst);
  std::size_t produce(StreamState& st, const StridedView& out, std::size_t out_pos,
                      bool final_block);
  std::size_t produce_consecutive(StreamState& st, const StridedView& out, std::size_t out_pos,
                                  std::uint64_t target);
  void deinterleave(std::size_t c, std::size_t lo, std::size_t hi);
  void store_batch(StreamState& st, const StridedView& out, std::size_t frame, std::size_t n);
  static double round_clip(double v, double lo, double hi, std::uint64_t& clips);
  std::int64_t history_before() const;
  void discard_consumed(const StreamState& st);

  Kernels<S> kernels_;
  std::shared_ptr<const FilterDesign<S>> filter_;  // shared, immutable
  const S* table_ = nullptr;
  // Planar history per channel: length_ samples, then kW zeros so a vector load that starts
  // inside the history never leaves the allocation.
  std::vector<AlignedVector<S>> history_;
  std::size_t length_ = 0;
  std::int64_t origin_ = 0;  // absolute input index of history_[c][0]
  // Integer up factors up to kMaxConsecutiveUp use the two-parallel fast FIR (the consecutive
  // kernel); other ratios with whole periods in scratch are computed phase by phase.
  bool consecutive_ = false;
  bool phase_major_ = false;
  std::vector<S> phase_tmp_;  // one phase's correlations A, B, C before they are combined
  // The de-interleaved history [channel][u0, u1, s][split_cap_] of the fast FIR.
  AlignedVector<S> split_history_;
  std::size_t split_cap_ = 0;
  std::size_t scratch_cap_ = kScratchMin;
  std::vector<S> scratch_;  // [channel][scratch_cap_] outputs awaiting conversion
};

extern template class PolyphaseEngine<float>;
extern template class PolyphaseEngine<double>;

}  // namespace anunzi::detail
