#pragma once
// Internal to the resampler: what a stream is and how far it has got, whatever its sample type.
//
// The configuration fixed at construction (ratio, channels, each stage's layout) and the
// counters the stages advance as they consume input and produce output. The public accessors
// and the one-shot plan read it directly; only the stages (stage.hpp) touch samples.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "anunzi/cpu_dispatch.hpp"
#include "prototype.hpp"

namespace anunzi::detail {

// How a stage computes its outputs (stage.hpp): vectors of consecutive outputs of one phase
// (few phases: integer ratios, half-bands, 3/2), vectors of consecutive outputs of as many
// phases (many phases: 44.1 <-> 48 kHz), or one output at a time from interpolated rows.
enum class StageKernel { kCorrelate, kLanes, kInterpolated };

// One stage of the cascade. Counts and indices are absolute: input sample 0 is the stage's
// first input since the stream began (or since the one-shot plan's first output, for a copy).
struct StageState {
  // Fixed at construction. Output / input = up / down; each output is the dot product of a
  // row of `taps` coefficients with the input at offsets [-before, after] around its position.
  std::uint64_t up = 1, down = 1;
  std::size_t taps = 0, before = 0, after = 0, rows = 0;
  bool interpolated = false;
  bool halfband = false;
  PrototypeKind kind = PrototypeKind::kKaiser;
  StageKernel kernel = StageKernel::kCorrelate;
  double nonzero_taps = 0;  // multiply-adds per output

  // Advanced by the stage; back to zero on restart().
  std::uint64_t total_in = 0;                    // input frames received
  std::uint64_t emitted = 0;                     // output frames produced
  std::uint64_t next_index = 0, next_phase = 0;  // next output at (index + phase / up)

  void restart();
  // Outputs whose last tap (integer position + after) lies below `total_in_frames`.
  [[nodiscard]] std::uint64_t ready_count(std::uint64_t total_in_frames) const;
  // Input frames the first `outputs` outputs read.
  [[nodiscard]] std::uint64_t inputs_needed(std::uint64_t outputs) const;
  [[nodiscard]] const char* design_method() const;
};

struct StreamState {
  // Fixed at construction.
  std::uint64_t up = 1, down = 1;  // out / in = up / down, reduced
  std::size_t channels = 1;
  Isa isa = Isa::kPortable;
  bool double_precision = false;  // the arithmetic type: double, else float
  std::vector<StageState> stages;  // first to last

  std::uint64_t clips = 0;  // integer outputs clipped
  bool finished = false;    // the last input has been given

  // Back to a fresh stream's progress (the configuration stays).
  void restart();
  [[nodiscard]] std::uint64_t total_in() const { return stages.front().total_in; }
  [[nodiscard]] std::uint64_t emitted() const { return stages.back().emitted; }
  // Outputs computable from `total_in_frames` input frames without flushing: each stage's
  // ready outputs are the next one's input.
  [[nodiscard]] std::uint64_t ready_count(std::uint64_t total_in_frames) const;
  // round(n * up / down) with halves rounded up, as soxr does.
  [[nodiscard]] std::uint64_t oneshot_length(std::uint64_t in_frames) const;
  // Frames a one-shot conversion of `in_frames` writes on a fresh stream: oneshot_length, or
  // more when the filters reach past it (very short inputs).
  [[nodiscard]] std::uint64_t oneshot_frames(std::uint64_t in_frames) const;
  // Frames process() writes for this many more input frames.
  [[nodiscard]] std::uint64_t output_frames_for(std::uint64_t in_frames, bool last) const;
  // What each stage produces when the stream is flushed with `total_in_frames` input frames
  // in all: the final output count (oneshot_length, or the ready count if larger), and before
  // it what each stage's successor reads for that.
  [[nodiscard]] std::vector<std::uint64_t> flush_targets(std::uint64_t total_in_frames) const;
  // Output frames owed for the input so far; the fixed latency once running.
  [[nodiscard]] double delay() const;
  [[nodiscard]] double latency_frames() const;
  // Multiply-adds per output, all stages together.
  [[nodiscard]] double multiply_adds_per_output() const;
};

}  // namespace anunzi::detail
