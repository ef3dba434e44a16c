#pragma once
// Internal to the resampler: a stream's stages in a row, for one arithmetic type.
//
// The caller's samples are converted into the first stage's history; each stage's outputs are
// appended to the next stage's history as soon as they are computed; the last stage's outputs
// are converted into the caller's array. Every stage computes each output from a fixed window
// with a fixed summation order, and releases it as soon as that window has arrived, so the
// cascade does too: chunked output equals one-shot output bit for bit, released sample by
// sample after the sum of the stages' latencies.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "anunzi/resampler.hpp"
#include "design.hpp"
#include "stage.hpp"
#include "state.hpp"

namespace anunzi::detail {

template <typename S>
class Cascade {
 public:
  // A cascade running `designs` (one per stage of st.stages, whose ratios are set), cleared.
  Cascade(StreamState& st, std::vector<std::shared_ptr<const FilterDesign<S>>> designs);
  // A fresh cascade configured as `other`, sharing its designs (st is a copy of other's state).
  Cascade(StreamState& st, const Cascade& other);

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
  // Input is buffered and consumed in blocks of this many frames so the histories stay in
  // cache (a block also bounds what one stage hands the next at a time).
  static constexpr std::size_t kBlockFrames = 8192;
  static constexpr std::size_t kScratchFrames = 4096;

  void append(StreamState& st, const StridedConstView& in, std::size_t start, std::size_t n);
  template <typename T>
  static void convert(const T* src, std::ptrdiff_t stride, std::size_t n, S scale, S* dst);
  std::size_t run_stages(StreamState& st, const StridedView& out, std::size_t out_pos,
                         bool final_block);
  bool writes_directly(const StridedView& out);
  void store_batch(StreamState& st, const StridedView& out, std::size_t frame, std::size_t n);
  static double round_clip(double v, double lo, double hi, std::uint64_t& clips);

  std::vector<Stage<S>> stages_;
  std::vector<S> scratch_;  // [channel][kScratchFrames] outputs awaiting conversion
  std::vector<S*> dst_;     // one pointer per channel
  std::vector<S> staging_;  // samples on their way into a planar stage's rows
  std::vector<std::uint64_t> flush_;  // each stage's output count when flushing
};

extern template class Cascade<float>;
extern template class Cascade<double>;

}  // namespace anunzi::detail
