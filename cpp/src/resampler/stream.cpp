#include "stream.hpp"

#include <stdexcept>
#include <utility>

namespace anunzi::detail {
namespace {

StreamState configuration(RateRatio ratio, std::size_t channels, bool use_double, Isa isa) {
  StreamState st;
  st.up = ratio.up;
  st.down = ratio.down;
  st.channels = channels;
  st.isa = isa;
  st.double_precision = use_double;
  return st;
}

// Records the design's layout in `st` and builds the engine that runs it.
template <typename S>
std::variant<PolyphaseEngine<float>, PolyphaseEngine<double>> engine_for(
    StreamState& st, std::shared_ptr<const FilterDesign<S>> design) {
  st.taps = design->taps;
  st.before = design->before;
  st.after = design->after;
  st.rows = design->rows;
  st.interpolated = design->interpolated;
  st.kind = design->kind;
  return std::variant<PolyphaseEngine<float>, PolyphaseEngine<double>>(
      std::in_place_type<PolyphaseEngine<S>>, st, std::move(design));
}

}  // namespace

Stream::Stream(RateRatio ratio, std::size_t channels, const FilterSpec& spec, bool use_double,
               Isa isa)
    : state_(configuration(ratio, channels, use_double, isa)),
      engine_(use_double ? engine_for(state_, cached_design<double>(ratio.up, ratio.down, spec))
                         : engine_for(state_, cached_design<float>(ratio.up, ratio.down, spec))) {}

Stream::Stream(const Stream& other, FreshCopy)
    : state_(other.state_),
      engine_(std::visit(
          [this](const auto& engine) { return engine_for(state_, engine.design()); },
          other.engine_)) {}

std::unique_ptr<Stream> Stream::fresh_copy() const {
  return std::unique_ptr<Stream>(new Stream(*this, FreshCopy{}));
}

std::size_t Stream::process(const StridedConstView& in, bool last, const StridedView& out) {
  if (state_.finished) throw std::logic_error("Input after last input");
  if (out.frames != state_.output_frames_for(in.frames, last))
    throw std::invalid_argument("output view has the wrong number of frames");
  return std::visit([&](auto& engine) { return engine.process(state_, in, last, out); },
                    engine_);
}

void Stream::clear() {
  std::visit([&](auto& engine) { engine.clear(state_); }, engine_);
}

std::uint64_t Stream::start_at_output(std::uint64_t first) {
  return std::visit([&](auto& engine) { return engine.start_at_output(state_, first); },
                    engine_);
}

}  // namespace anunzi::detail
