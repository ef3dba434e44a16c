#pragma once
// Internal to the resampler: what a stream is and how far it has got, whatever its sample type.
//
// The configuration fixed at construction (ratio, channels, the design's layout) and the
// counters the engine advances as it consumes input and produces output. The public accessors
// and the one-shot plan read it directly; only the engine (engine.hpp) touches samples.
#include <cstddef>
#include <cstdint>

#include "anunzi/cpu_dispatch.hpp"
#include "prototype.hpp"

namespace anunzi::detail {

struct StreamState {
  // Fixed at construction.
  std::uint64_t up = 1, down = 1;  // out / in = up / down, reduced
  std::size_t channels = 1;
  Isa isa = Isa::kPortable;
  bool double_precision = false;  // the arithmetic type: double, else float
  // The design's layout: each output is the dot product of `taps` coefficients with the input
  // at offsets [-before, after] around its position; `rows` phases, interpolated between
  // (cubic) when `interpolated`.
  std::size_t taps = 0, before = 0, after = 0, rows = 0;
  bool interpolated = false;
  PrototypeKind kind = PrototypeKind::kKaiser;

  // Advanced by the engine; back to zero on restart().
  std::uint64_t total_in = 0;                    // input frames received
  std::uint64_t emitted = 0;                     // output frames produced
  std::uint64_t next_index = 0, next_phase = 0;  // next output at (index + phase / up)
  std::uint64_t clips = 0;                       // integer outputs clipped
  bool finished = false;                         // the last input has been given

  // Back to a fresh stream's progress (the configuration stays).
  void restart();
  // Outputs computable from `total_in` input frames without flushing: those whose last tap
  // (integer position + after) has arrived.
  [[nodiscard]] std::uint64_t ready_count(std::uint64_t total_in_frames) const;
  // round(n * up / down) with halves rounded up, as soxr does.
  [[nodiscard]] std::uint64_t oneshot_length(std::uint64_t in_frames) const;
  // Frames a one-shot conversion of `in_frames` writes on a fresh stream: oneshot_length, or
  // more when the filter reaches past it (very short inputs).
  [[nodiscard]] std::uint64_t oneshot_frames(std::uint64_t in_frames) const;
  // Frames process() writes for this many more input frames.
  [[nodiscard]] std::uint64_t output_frames_for(std::uint64_t in_frames, bool last) const;
  // Output frames owed for the input so far; the fixed latency once running.
  [[nodiscard]] double delay() const;
  [[nodiscard]] double latency_frames() const;
  [[nodiscard]] const char* design_method() const;
};

}  // namespace anunzi::detail
