#pragma once
// Internal to the resampler: one stage of a cascade, for one arithmetic type.
//
// Every output sample of a stage is one dot product between a fixed row of coefficients
// (chosen by the output's exact rational position) and a window of the stage's input, computed
// by the same kernel chain whatever was computed alongside it. That is what makes chunked
// output bit-identical to one-shot output, and what lets each output be released as soon as
// the last input sample it needs has arrived (no block bursts). A stage's outputs are the next
// stage's input, like any other.
//
// Three ways to compute (StageKernel), fixed per stage so every output has one summation order:
// * kCorrelate, few phases (up <= 8, down <= 16): the outputs of each phase have windows
//   `down` samples apart, so the input is split into `down` sub-streams in which they are
//   consecutive, and kernels.correlate computes vectors of them with register-blocked loads.
// * kLanes, many phases (44.1 <-> 48 kHz): vectors of consecutive outputs, lane l one phase,
//   from coefficient blocks in which each lane's taps sit where its window starts.
// * kInterpolated: rows interpolated from a table (huge or prime ratios), one output at a time.
//
// The stage owns its samples (history, scratch) and shares its design; its configuration and
// progress are a StageState the caller keeps and passes in.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "design.hpp"
#include "kernels.hpp"
#include "stages.hpp"
#include "state.hpp"

namespace anunzi::detail {

template <typename S>
class Stage {
 public:
  // A stage of `channels` channels running `design` on the `isa` kernels, cleared; records the
  // design's layout and the kernel chosen in `st`.
  Stage(StageState& st, std::size_t channels, Isa isa,
        std::shared_ptr<const FilterDesign<S>> design);
  // A fresh stage configured as `other`, sharing its design and kernel layout.
  Stage(StageState& st, const Stage& other);

  // Back to a fresh stage: the signal is zero before its first sample.
  void clear(StageState& st);
  // Turns a fresh stage into the continuation of a one-shot conversion from output `first`: as
  // if outputs [0, first) had been produced from the input before the returned index, which is
  // where the caller feeds the input from.
  std::uint64_t start_at_output(StageState& st, std::uint64_t first);

  // Appends n input frames, zero until written: by put(), or, unless planar(), through tail()
  // (channel c's n slots, valid until the history changes again).
  void grow(StageState& st, std::size_t n);
  [[nodiscard]] bool planar() const { return planar_; }
  [[nodiscard]] S* tail(std::size_t c, std::size_t n) {
    return history_[c].data() + length_ - n;
  }
  // Writes channel c's last n frames (those grow() appended last).
  void put(std::size_t c, const S* src, std::size_t n);
  // The signal is zero after its end: enough zeros that the outputs before `outputs` see them.
  void pad_for(const StageState& st, std::uint64_t outputs);
  // Computes `count` outputs from st.emitted on into dst[c][0 .. count).
  void produce(StageState& st, std::size_t count, S* const* dst);
  // Drops the history no output from st.emitted on reads.
  void discard_consumed(const StageState& st);

 private:
  struct Layout;  // per-ISA arrangement of the coefficients for the stage's kernel
  static std::shared_ptr<const Layout> make_layout(const StageState& st, const Kernels<S>& k,
                                                   const FilterDesign<S>& design);

  [[nodiscard]] std::int64_t history_start(const StageState& st) const;
  // Makes the history length + slack_ long, zero from `zero_from` on.
  void resize_history(std::size_t length, std::size_t zero_from);
  void produce_correlate(StageState& st, std::size_t count, S* const* dst);
  void correlate_batch(const StageState& st, std::size_t count, S* const* dst);
  void produce_lanes(StageState& st, std::size_t count, S* const* dst);
  // A lanes block whose window holds a NaN or an infinity: each lane as if it read only the
  // samples its own nonzero taps cover (see produce_lanes).
  void fix_lanes(std::size_t b, const S* coefs, const S* x, S* out);
  void produce_interpolated(StageState& st, std::size_t count, S* const* dst);
  static void advance(StageState& st, std::uint64_t count);

  Kernels<S> kernels_;
  std::shared_ptr<const FilterDesign<S>> design_;  // shared, immutable
  std::shared_ptr<const Layout> layout_;           // shared, immutable
  // The history per channel: length_ samples from absolute input index origin_, then zeros
  // (slack_ of them at least), so that the kernels' reads past a window never leave the
  // allocation. A planar stage (kCorrelate with down > 1) keeps it as `down` rows of row_cap_
  // columns, its sub-streams: sample p is row p % down, column p / down, origin_ a multiple
  // of down; writes split it once, and the kernels read the rows in place.
  std::vector<SampleVector<S>> history_;
  std::size_t length_ = 0;
  std::size_t slack_ = 0;
  std::int64_t origin_ = 0;
  bool planar_ = false;
  std::size_t rows_ = 1;
  std::size_t row_cap_ = 0;
  // kCorrelate: pointers into the rows; one phase's outputs. kLanes: the output blocks of one
  // call, by phase block.
  std::vector<S*> row_ptrs_;           // the rows, to fill
  std::vector<const S*> stream_ptrs_;  // where one phase's windows start in them
  std::vector<const S*> phase_ptrs_;   // the phases' outputs, to interleave
  std::vector<S*> batch_dst_;          // where a batch of outputs goes
  AlignedVector<S> phase_out_;  // kCorrelate: [phase][phase_stride_]
  std::size_t phase_stride_ = 0;
  struct LaneBlock {
    std::size_t b;      // which block of its cycle
    std::int64_t rel;   // its first output, relative to the first output of the call
    std::size_t start;  // its first window in the history
  };
  std::vector<LaneBlock> lane_blocks_;  // in the order they are computed, kMaxLaneBlocks at a time
  AlignedVector<S> clean_window_;        // fix_lanes: a block's window, non-finite samples zeroed
  AlignedVector<S> clean_out_;           // fix_lanes: the block computed from it
  std::vector<std::uint32_t> nan_before_;  // fix_lanes: NaN samples before each position
  std::vector<std::uint32_t> inf_before_;  // fix_lanes: infinite samples before each position
};

extern template class Stage<float>;
extern template class Stage<double>;

}  // namespace anunzi::detail
