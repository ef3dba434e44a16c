#pragma once
// Internal to the resampler: one stream as the public Resampler holds it.
//
// What the stream is and how far it has got (a StreamState, which the public accessors and
// the one-shot plan read directly) beside the cascade of its arithmetic type, to which only the
// three operations that touch samples are dispatched.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "anunzi/resampler.hpp"
#include "cascade.hpp"
#include "ratio.hpp"
#include "spec.hpp"
#include "stages.hpp"
#include "state.hpp"

namespace anunzi::detail {

class Stream {
 public:
  // A stream of `channels` channels at `ratio` (to `out_rate` Hz), its cascade of filters
  // planned and designed for `spec` (or taken from the design cache), computed in double if
  // `use_double`, else float, on the `isa` kernels.
  Stream(RateRatio ratio, double out_rate, std::size_t channels, const FilterSpec& spec,
         bool use_double, Isa isa);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // A fresh stream with this one's configuration, sharing its filter design (no redesign,
  // even of a design too large for the cache).
  [[nodiscard]] std::unique_ptr<Stream> fresh_copy() const;

  [[nodiscard]] const StreamState& state() const { return state_; }

  // Consumes all of `in` and writes exactly state().output_frames_for(in.frames, last) frames
  // to `out`. Throws std::invalid_argument if `out` has another length and std::logic_error
  // after the last input.
  std::size_t process(const StridedConstView& in, bool last, const StridedView& out);
  void clear();
  // See Cascade::start_at_output: for the one-shot plan's copies.
  std::uint64_t start_at_output(std::uint64_t first);

 private:
  using Engine = std::variant<Cascade<float>, Cascade<double>>;
  struct FreshCopy {};
  Stream(const Stream& other, FreshCopy);

  StreamState state_;
  Engine engine_;
};

}  // namespace anunzi::detail
