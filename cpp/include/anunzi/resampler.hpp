#pragma once
// Streaming polyphase resampler, python-soxr's presets, filters designed at construction.
//
// A stream is a cascade of one to four polyphase filter stages (half-bands before a decimation,
// a wide-transition stage after a doubling), each output sample of each stage one dot product
// of a filter row with a window of that stage's input, with a fixed summation order: chunked
// output equals one-shot output bit for bit (float types), and each output is released as soon
// as the input it needs has arrived. The implementation lives in cpp/src/resampler/ (ratio, the
// choice of stages, design and its cache, the stages and their cascade, the threaded one-shot
// plan, the per-ISA kernels).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anunzi/cpu_dispatch.hpp"
#include "anunzi/sample_type.hpp"

namespace anunzi {

// Values match python-soxr's constants so code passing soxr.HQ etc. keeps working.
enum class Quality : int { kQuick = 0, kLow = 1, kMedium = 2, kHigh = 4, kVeryHigh = 6 };

[[nodiscard]] bool quality_is_valid(int quality);

// The process-wide cache of filter designs shared by streams with the same ratio, preset and
// arithmetic type. It keeps recently used designs up to `limit_bytes` of coefficients in total
// and never a single design larger than that. For tests and diagnostics.
struct DesignCacheStats {
  std::size_t bytes;               // coefficient bytes held by the cache
  std::size_t entries;             // designs held
  std::size_t limit_bytes;         // the cap on `bytes`
  std::uint64_t designs_computed;  // designs computed so far (cache misses), cached or not
};
[[nodiscard]] DesignCacheStats design_cache_stats();

// For the benchmarks: the register-only float32 multiply-add rate of `isa`'s kernels (12
// independent chains of vector FMAs, nothing loaded), in multiply-adds per second, the best of
// `rounds` runs of about a millisecond each: the peak the resampler's kernels are measured
// against on the machine they run on.
[[nodiscard]] double fma_peak(Isa isa, int rounds);

// A strided 2-D view [frames, channels]; strides are in elements, not bytes, so C order,
// Fortran order and sliced arrays are all read in place.
struct StridedConstView {
  const void* data;
  SampleType type;
  std::size_t frames;
  std::ptrdiff_t frame_stride;
  std::ptrdiff_t channel_stride;
};
struct StridedView {
  void* data;
  SampleType type;
  std::size_t frames;
  std::ptrdiff_t frame_stride;
  std::ptrdiff_t channel_stride;
};

namespace detail {
class Stream;  // cpp/src/resampler/stream.hpp
}  // namespace detail

// One stage of a stream's cascade, for tests and diagnostics.
struct ResamplerStage {
  std::uint64_t up, down;      // its output / input rate, reduced
  std::size_t taps;            // coefficients per row (its window, in its input samples)
  std::size_t phases;          // rows of its table
  double multiply_adds;        // nonzero taps per output, on average
  double latency_frames;       // its look-ahead, in its output samples
  bool interpolated;           // rows interpolated between table rows
  const char* design;          // "equiripple", "smoothed equiripple", "kaiser", "half-band"
  const char* kernel;          // "correlate", "lanes" or "interpolated" (stage.hpp)
};

// One continuous multi-channel stream. Not thread-safe: one thread at a time per object;
// independent objects may be used concurrently.
class Resampler {
 public:
  // `io_type` is the caller's sample type; float64 and int32 streams (and VHQ) are computed in
  // double, the others in float32. `isa` is the kernel path (active_isa(): the process's
  // level, ANUNZI_FAST_ISA or set_active_isa()). Throws std::invalid_argument for
  // non-finite or non-positive rates, zero channels, an invalid quality, an ISA this CPU cannot
  // run (isa_supported()), a ratio of 2^20 + 1 or more either way, or one whose coefficient
  // table would exceed 256 MB at this quality.
  Resampler(double in_rate, double out_rate, std::size_t num_channels, Quality quality,
            SampleType io_type, Isa isa);
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;
  Resampler(Resampler&&) noexcept;
  Resampler& operator=(Resampler&&) noexcept;

  // Exact number of frames process() will write for this many more input frames.
  [[nodiscard]] std::size_t output_frames_for(std::size_t in_frames, bool last) const;
  // Consumes all of `in` and writes exactly output_frames_for(in.frames, last) frames to `out`
  // (which must have that many frames and num_channels() channels). Integer outputs are rounded
  // to nearest and clipped, never dithered. After last=true the stream accepts no more input
  // until clear(): throws std::logic_error.
  std::size_t process(const StridedConstView& in, bool last, const StridedView& out);
  void clear();

  // Output frames owed for the input given so far (what soxr's delay() reports).
  [[nodiscard]] double delay() const;
  // Fixed algorithmic latency in output frames once the stream is running.
  [[nodiscard]] double latency_frames() const;
  [[nodiscard]] std::uint64_t num_clips() const;
  [[nodiscard]] std::size_t num_channels() const;
  // Multiply-adds per output sample, all stages together, rounded up (one stage: its
  // filter's taps, less any that are zero in every row).
  [[nodiscard]] std::size_t taps_per_output() const;
  // Rows of the last stage's table.
  [[nodiscard]] std::size_t num_phases() const;
  // Whether any stage interpolates between table rows.
  [[nodiscard]] bool interpolated_phases() const;
  // The stages' designs joined by " + ", first stage first: "equiripple", "smoothed
  // equiripple", "kaiser" or "half-band" each (prototype.hpp).
  [[nodiscard]] std::string design_method() const;
  [[nodiscard]] std::vector<ResamplerStage> stages() const;
  [[nodiscard]] Isa isa() const;
  [[nodiscard]] bool double_precision() const;
  // The rational ratio out/in actually used: out_step / in_step, reduced.
  [[nodiscard]] std::uint64_t out_step() const;
  [[nodiscard]] std::uint64_t in_step() const;

  // Output length of a one-shot conversion: round(n * out / in), halves rounded up as soxr does.
  [[nodiscard]] std::size_t oneshot_length(std::size_t in_frames) const;
  // Frames process(in, true, out) writes on a fresh stream: oneshot_length, or more when the
  // filter reaches past it (very short inputs).
  [[nodiscard]] std::size_t oneshot_frames(std::size_t in_frames) const;
  // Clears this stream and converts all of `in` as one whole signal, bit for bit as
  // process(in, true, out) would, with the work split across up to `threads` threads: this
  // stream takes the first part, and each further one continues the conversion from its own
  // output frame on a copy of this stream that shares its filter design. Long conversions
  // only; short ones run on the calling thread alone. `out` must have
  // oneshot_frames(in.frames) frames. Afterwards the stream is finished (clear() to reuse).
  void oneshot(const StridedConstView& in, const StridedView& out, unsigned threads);
  // How many threads oneshot() would use for this many input frames (for tests).
  [[nodiscard]] unsigned oneshot_parts(std::size_t in_frames, unsigned threads) const;

 private:
  std::unique_ptr<detail::Stream> stream_;
};

}  // namespace anunzi
